//! The worker on a real Redis: queues, priorities, crashes, restarts,
//! shutdown, bad input.

use std::time::Duration;

use redis::Commands;
use serde_json::{json, Value};

use crate::util::{eventually, host, plugin_folder, run_python, RedisServer, Worker};

fn result(redis: &RedisServer, db: u8, id: &str) -> Option<Value> {
    let stored: Option<String> = redis.connection(db).get(format!("celery-task-meta-{id}")).unwrap();
    stored.map(|text| serde_json::from_str(&text).unwrap())
}

fn ready(redis: &RedisServer, db: u8, id: &str) -> Option<Value> {
    result(redis, db, id).filter(|doc| matches!(doc["status"].as_str(), Some("SUCCESS" | "FAILURE" | "REVOKED")))
}

/// Waits until `count` messages are leased in `unacked`.
fn wait_for_held(redis: &RedisServer, count: i64, what: &str) {
    eventually(Duration::from_secs(10), what, || {
        let held: i64 = redis.connection(0).hlen("unacked").unwrap();
        (held == count).then_some(())
    });
}

fn submit(redis: &RedisServer, args: &[&str]) -> String {
    let mut all = vec!["submit"];
    all.extend_from_slice(args);
    let url = redis.url(0);
    all.extend_from_slice(&["--broker", &url]);
    host(&all).ok().to_string()
}

#[test]
fn several_queues_and_only_those() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math"]);
    let _worker = Worker::start(plugins.path(), &redis.url(0), &["-Q", "alpha,beta"]);
    let a = submit(&redis, &["math.add", "[1, 2]", "-Q", "alpha"]);
    let b = submit(&redis, &["math.add", "[3, 4]", "-Q", "beta"]);
    let c = submit(&redis, &["math.add", "[5, 6]", "-Q", "gamma"]);
    let wait = Duration::from_secs(20);
    assert_eq!(eventually(wait, "alpha", || ready(&redis, 0, &a))["result"], json!(3));
    assert_eq!(eventually(wait, "beta", || ready(&redis, 0, &b))["result"], json!(7));
    std::thread::sleep(Duration::from_millis(300));
    assert!(result(&redis, 0, &c).is_none(), "a queue the worker does not consume must not be touched");
    let waiting: i64 = redis.connection(0).llen("gamma").unwrap();
    assert_eq!(waiting, 1);
}

#[test]
fn lower_priority_numbers_run_first() {
    let redis = RedisServer::start();
    let ids = run_python("celery_client.py", &["priorities", &redis.url(0), &redis.url(0)]);
    let ids = ids.as_object().unwrap().clone();
    let plugins = plugin_folder(&["faults"]);
    let _worker = Worker::start(plugins.path(), &redis.url(0), &["-c", "1", "--prefetch", "1"]);
    let mut done: Vec<(String, Value)> = ids
        .iter()
        .map(|(id, priority)| {
            let doc = eventually(Duration::from_secs(20), "priority task", || ready(&redis, 0, id));
            (doc["date_done"].as_str().unwrap().to_string(), priority.clone())
        })
        .collect();
    done.sort_by(|a, b| a.0.cmp(&b.0));
    let order: Vec<Value> = done.into_iter().map(|(_, priority)| priority).collect();
    // As verified against kombu: 0, none, 0, 1 (bucket 0, FIFO), then 3, 5, 6, 9.
    assert_eq!(order, vec![json!(0), Value::Null, json!(0), json!(1), json!(3), json!(5), json!(6), json!(9)]);
}

#[test]
fn killed_worker_loses_nothing() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["faults"]);
    let mut first = Worker::start(plugins.path(), &redis.url(0), &["--visibility-timeout", "2"]);
    let id = submit(&redis, &["faults.sleep", "[1500]"]);
    wait_for_held(&redis, 1, "job leased");
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(5));
    assert!(result(&redis, 0, &id).is_none(), "the killed worker must not have finished the job");
    let _second = Worker::start(plugins.path(), &redis.url(0), &["--visibility-timeout", "2"]);
    let doc = eventually(Duration::from_secs(30), "job restored and run", || ready(&redis, 0, &id));
    assert_eq!(doc["status"], json!("SUCCESS"));
    assert_eq!(doc["result"], json!(1500));
    let mut connection = redis.connection(0);
    eventually(Duration::from_secs(5), "bookkeeping cleared", || {
        let held: i64 = connection.hlen("unacked").unwrap();
        let index: i64 = connection.zcard("unacked_index").unwrap();
        let queued: i64 = connection.llen("celery").unwrap();
        (held == 0 && index == 0 && queued == 0).then_some(())
    });
}

#[test]
fn long_job_is_not_redelivered_while_its_worker_lives() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["faults"]);
    let args = ["--visibility-timeout", "1"];
    let first = Worker::start(plugins.path(), &redis.url(0), &args);
    let second = Worker::start(plugins.path(), &redis.url(0), &args);
    let id = submit(&redis, &["faults.sleep", "[3500]"]);
    let doc = eventually(Duration::from_secs(20), "long job", || ready(&redis, 0, &id));
    assert_eq!(doc["result"], json!(3500));
    std::thread::sleep(Duration::from_millis(1500));
    // The job outlived the visibility timeout three times over; lease
    // renewal must have kept the other worker's sweep away from it.
    let runs = [first.log(), second.log()].iter().map(|log| log.matches("restored messages").count()).sum::<usize>();
    assert_eq!(runs, 0, "no restore may happen:\n{}\n{}", first.log(), second.log());
}

#[test]
fn redis_restart_under_a_running_worker() {
    let mut redis = RedisServer::start();
    let plugins = plugin_folder(&["math"]);
    let worker = Worker::start(plugins.path(), &redis.url(0), &[]);
    let before = submit(&redis, &["math.add", "[1, 1]", "--wait", "--timeout", "20"]);
    assert_eq!(before, "2");
    redis.restart();
    std::thread::sleep(Duration::from_millis(500));
    let after = submit(&redis, &["math.add", "[2, 2]", "--wait", "--timeout", "30"]);
    assert_eq!(after, "4", "worker log:\n{}", worker.log());
}

#[test]
fn sigterm_drains_running_jobs_then_exits_zero() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["faults"]);
    let mut worker = Worker::start(plugins.path(), &redis.url(0), &["-c", "1"]);
    let running = submit(&redis, &["faults.sleep", "[1000]"]);
    wait_for_held(&redis, 1, "job leased");
    std::thread::sleep(Duration::from_millis(100));
    let waiting = submit(&redis, &["faults.sleep", "[10]", "--countdown", "30"]);
    wait_for_held(&redis, 2, "eta job held");
    worker.signal("TERM");
    assert_eq!(worker.wait_exit(Duration::from_secs(20)), Some(0));
    assert_eq!(ready(&redis, 0, &running).expect("running job finished during drain")["result"], json!(1000));
    assert!(result(&redis, 0, &waiting).is_none());
    let mut connection = redis.connection(0);
    let queued: Vec<String> = connection.lrange("celery", 0, -1).unwrap();
    assert_eq!(queued.len(), 1, "the ETA job goes back to the queue");
    assert!(queued[0].contains(&waiting));
    let held: i64 = connection.hlen("unacked").unwrap();
    assert_eq!(held, 0);
}

/// An idle worker waits with its fetch script queued behind a blocking
/// BLMOVE (see `wait_and_fetch`): a worker stopped while it waits must
/// neither leave a message leased to nobody nor take one once it is gone.
#[test]
fn stopping_an_idle_worker_leaves_no_message_behind() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math"]);
    let mut worker = Worker::start(plugins.path(), &redis.url(0), &[]);
    std::thread::sleep(Duration::from_millis(300));
    worker.signal("TERM");
    // Pushed as it stops: run before it stopped, or back in the queue.
    let during = submit(&redis, &["math.add", "[1, 2]"]);
    assert_eq!(worker.wait_exit(Duration::from_secs(10)), Some(0));
    let after = submit(&redis, &["math.add", "[3, 4]"]);
    std::thread::sleep(Duration::from_millis(300));
    let mut connection = redis.connection(0);
    let queued: Vec<String> = connection.lrange("celery", 0, -1).unwrap();
    let held: i64 = connection.hlen("unacked").unwrap();
    assert_eq!(held, 0, "nothing may stay leased");
    let ran = ready(&redis, 0, &during);
    let requeued = queued.iter().filter(|message| message.contains(&during)).count();
    match ran {
        Some(doc) => assert_eq!((doc["result"].clone(), requeued), (json!(3), 0)),
        None => assert_eq!(requeued, 1, "the message pushed while stopping is back in its queue: {queued:?}"),
    }
    assert_eq!(queued.iter().filter(|message| message.contains(&after)).count(), 1);
    assert!(result(&redis, 0, &after).is_none());
}

#[test]
fn drain_timeout_stops_and_requeues_a_long_job() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["faults"]);
    let mut worker = Worker::start(plugins.path(), &redis.url(0), &["--drain-timeout", "0.5"]);
    let id = submit(&redis, &["faults.sleep", "[20000]"]);
    wait_for_held(&redis, 1, "job leased");
    std::thread::sleep(Duration::from_millis(200));
    worker.signal("TERM");
    assert_eq!(worker.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(result(&redis, 0, &id).is_none());
    let queued: Vec<String> = redis.connection(0).lrange("celery", 0, -1).unwrap();
    assert_eq!(queued.len(), 1);
    assert!(queued[0].contains(&id) && queued[0].contains("\"redelivered\":true"));
}

#[test]
fn malformed_messages_do_not_stop_good_ones() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math"]);
    let worker = Worker::start(plugins.path(), &redis.url(0), &["--result-backend", &redis.url(1)]);
    let client = redis::Client::open(redis.url(0)).unwrap();
    let mut connection = client.get_connection().unwrap();
    let mut good = Vec::new();
    let bad_kinds = [
        "not json at all".to_string(),
        "{\"body\": 12}".to_string(),
        r#"{"body": "!!notbase64!!", "headers": {"id": "bad-b64", "task": "math.add"}, "properties": {"delivery_tag": "t-bad-b64", "body_encoding": "base64"}}"#.to_string(),
        r#"{"body": "W10=", "headers": {"task": "math.add"}, "properties": {}}"#.to_string(),
        format!(r#"{{"body": "{}", "headers": {{"id": "huge", "task": "math.add"}}}}"#, "A".repeat(1 << 20)),
    ];
    for i in 0..1000 {
        let _: () = connection.lpush("celery", &bad_kinds[i % bad_kinds.len()]).unwrap();
        if i % 5 == 0 {
            let args = format!("[{i}, 1]");
            let id = host(&["submit", "math.add", &args, "--broker", &redis.url(0), "--result-backend", &redis.url(1)]).ok().to_string();
            good.push((id, i + 1));
        }
    }
    for (id, expected) in &good {
        let doc = eventually(Duration::from_secs(60), "good job", || ready(&redis, 1, id));
        assert_eq!(doc["result"], json!(expected), "{doc}");
    }
    let bad = ready(&redis, 1, "bad-b64").expect("a malformed message with an id gets a FAILURE");
    assert_eq!(bad["status"], json!("FAILURE"));
    assert!(bad["result"]["exc_message"][0].as_str().unwrap().contains("base64"));
    let held: i64 = connection.hlen("unacked").unwrap();
    assert_eq!(held, 0, "malformed messages are acked, not left to loop");
    assert!(worker.log().contains("malformed message dropped"));
    assert_eq!(host(&["submit", "math.add", "[2, 2]", "--broker", &redis.url(0), "--result-backend", &redis.url(1), "--wait"]).ok(), "4");
}

#[test]
fn rate_limit_spaces_jobs_without_losing_any() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math"]);
    let _worker = Worker::start(plugins.path(), &redis.url(0), &["--rate-limit", "math.add=10/s"]);
    let ids: Vec<String> = (0..20).map(|i| submit(&redis, &["math.add", &format!("[{i}, 0]")])).collect();
    let mut done: Vec<chrono::DateTime<chrono::Utc>> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let doc = eventually(Duration::from_secs(30), "rate-limited job", || ready(&redis, 0, id));
            assert_eq!(doc["result"], json!(i));
            chrono::DateTime::parse_from_rfc3339(doc["date_done"].as_str().unwrap()).unwrap().into()
        })
        .collect();
    done.sort();
    let spread = (done[19] - done[0]).to_std().unwrap();
    // 20 jobs at 10/s: at least 19 intervals of 100 ms between first and last.
    assert!(spread >= Duration::from_millis(1800), "jobs were not spaced: {spread:?}");
    assert!(host(&["run", "--plugins", ".", "--rate-limit", "math.add=10/d"]).error_line().contains("unit must be s, m or h"));
}

#[test]
fn eta_jobs_neither_block_ready_ones_nor_run_twice() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math"]);
    // Visibility timeout 1 s, ETA 3 s away, two workers: only lease renewal
    // keeps the second worker's sweep from running the held job again.
    let args = ["--visibility-timeout", "1", "--prefetch", "2", "-v"];
    let first = Worker::start(plugins.path(), &redis.url(0), &args);
    let second = Worker::start(plugins.path(), &redis.url(0), &args);
    let held: Vec<String> = (0..6).map(|i| submit(&redis, &["math.add", &format!("[{i}, 100]"), "--countdown", "3"])).collect();
    let ready_now = submit(&redis, &["math.add", "[1, 1]"]);
    let doc = eventually(Duration::from_secs(10), "ready job", || ready(&redis, 0, &ready_now));
    assert_eq!(doc["result"], json!(2));
    for id in &held {
        assert!(result(&redis, 0, id).is_none(), "an ETA job ran before its time");
    }
    for (i, id) in held.iter().enumerate() {
        assert_eq!(eventually(Duration::from_secs(20), "eta job", || ready(&redis, 0, id))["result"], json!(i + 100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let logs = first.log() + &second.log();
    for id in &held {
        let runs = logs.lines().filter(|line| line.contains("succeeded") && line.contains(id.as_str())).count();
        assert_eq!(runs, 1, "job {id} ran {runs} times:\n{logs}");
    }
}

#[test]
fn pages_a_job_wrote_all_over_are_pristine_for_the_next() {
    // `faults.scatter` leaves 128 separate runs of dirty pages, more than
    // one pagemap scan reports (vendor/README.md). On one job thread each
    // job reuses the pooled memory of the one before, so a page the reset
    // missed would show up as already marked.
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["faults"]);
    let _worker = Worker::start(plugins.path(), &redis.url(0), &["-c", "1"]);
    for _ in 0..5 {
        let id = submit(&redis, &["faults.scatter", "[]"]);
        let doc = eventually(Duration::from_secs(20), "scatter job", || ready(&redis, 0, &id));
        assert_eq!(doc["result"], json!(0), "{doc}");
    }
}
