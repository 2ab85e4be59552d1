//! Messages and plugins that once stopped a worker or grew it without
//! bound (issue #11): absurd limits and countdowns, keys that are not
//! queues, oversized messages, results and errors, and a plugin's
//! `time_limit = 0`.

use std::time::Duration;

use chard::protocol::{OutgoingTask, Signature};
use redis::Commands;
use serde_json::{json, Value};

use crate::util::{eventually, host, plugin_folder, run_python, RedisServer, Worker};

fn ready(redis: &RedisServer, db: u8, id: &str) -> Option<Value> {
    let stored: Option<String> = redis.connection(db).get(format!("celery-task-meta-{id}")).unwrap();
    stored.map(|text| serde_json::from_str::<Value>(&text).unwrap()).filter(|doc| doc["status"] != "PENDING" && doc["status"] != "STARTED")
}

fn task(name: &str, args: Value) -> OutgoingTask {
    let raw = |value: Value| serde_json::value::to_raw_value(&value).unwrap();
    OutgoingTask::new(name, raw(args), raw(json!({})), "test@hostile".into())
}

fn push(redis: &RedisServer, envelope: &str) {
    let _: () = redis.connection(0).lpush("celery", envelope).unwrap();
}

fn exception(doc: &Value) -> (String, String) {
    let result = &doc["result"];
    (result["exc_type"].as_str().unwrap_or_default().to_string(), result["exc_message"][0].as_str().unwrap_or_default().to_string())
}

#[test]
fn absurd_time_limits_from_a_celery_client_leave_every_job_thread_running() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math"]);
    let worker = Worker::start(plugins.path(), &redis.url(0), &["-c", "2"]);
    // Two messages for two threads: each once panicked the thread it reached.
    let results = run_python("hostile_client.py", &["absurd_limits", &redis.url(0), &redis.url(0)]);
    assert_eq!(results, json!({"absurd": [3, 3], "after": 7}), "{}", worker.log());
    assert!(!worker.log().contains("panicked"), "{}", worker.log());
}

#[test]
fn a_countdown_of_centuries_from_a_plugin_saturates_instead_of_panicking() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["faults"]);
    // Autoretry with a backoff of 4.6e15 s, the countdown of 2^62 ms a
    // plugin can return: adding it to the clock overflowed.
    std::fs::write(
        plugins.path().join("faults.toml"),
        "[tasks.fail]\nautoretry_for = [\"Exception\"]\nretry_backoff = 4.6e15\nretry_backoff_max = 4.6e15\nretry_jitter = false\n",
    )
    .unwrap();
    let worker = Worker::start(plugins.path(), &redis.url(0), &["-c", "1"]);
    let failing = task("faults.fail", json!(["again"]));
    push(&redis, &failing.to_envelope());
    let doc = eventually(Duration::from_secs(20), "the retry", || ready(&redis, 0, &failing.id));
    assert_eq!(doc["status"], "RETRY", "{doc}");
    // The one thread lives on.
    let echo = task("faults.echo", json!(["still here"]));
    push(&redis, &echo.to_envelope());
    let doc = eventually(Duration::from_secs(20), "the next job", || ready(&redis, 0, &echo.id));
    assert_eq!(doc["result"], json!("still here"), "{}", worker.log());
    // The retry waits for its saturated ETA, a century away, in the
    // delayed set.
    let delayed: Vec<String> = redis.connection(0).hvals("chard:delayed:messages").unwrap();
    let retry = delayed.iter().find(|entry| entry.contains(&failing.id)).expect("the retry waits in the delayed set");
    let envelope: Value = serde_json::from_str(retry).unwrap();
    let eta = envelope["headers"]["eta"].as_str().unwrap();
    let years_ahead = eta[..4].parse::<i32>().unwrap() - chrono::Utc::now().format("%Y").to_string().parse::<i32>().unwrap();
    assert!((99..=100).contains(&years_ahead), "{eta}");
}

#[test]
fn far_eta_jobs_wait_in_redis_not_in_workers_and_run_once_even_if_a_worker_dies() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math"]);
    // Anything over 2 s ahead goes to the delayed set; a 1 s visibility
    // timeout means a lease nobody renews is restored quickly.
    let args = ["--delay-beyond", "0", "--visibility-timeout", "1", "-v"];
    let mut first = Worker::start(plugins.path(), &redis.url(0), &args);
    let url = redis.url(0);
    let ids: Vec<String> = (0..20)
        .map(|i| host(&["submit", "math.add", &format!("[{i}, 100]"), "--countdown", "6", "--broker", &url]).ok().to_string())
        .collect();
    eventually(Duration::from_secs(5), "every job in the delayed set", || {
        let delayed: i64 = redis.connection(0).zcard("chard:delayed").unwrap();
        let leased: i64 = redis.connection(0).hlen("unacked").unwrap();
        (delayed == 20 && leased == 0).then_some(())
    });
    // The worker that delayed them dies; another one releases and runs them.
    first.kill();
    let second = Worker::start(plugins.path(), &redis.url(0), &args);
    for id in &ids {
        assert!(ready(&redis, 0, id).is_none(), "an ETA job ran before its time");
    }
    for (i, id) in ids.iter().enumerate() {
        let doc = eventually(Duration::from_secs(20), "a delayed job", || ready(&redis, 0, id));
        assert_eq!(doc["result"], json!(i + 100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let logs = first.log() + &second.log();
    for id in &ids {
        let runs = logs.lines().filter(|line| line.contains("succeeded") && line.contains(id.as_str())).count();
        assert_eq!(runs, 1, "job {id} ran {runs} times");
    }
    let left: i64 = redis.connection(0).zcard("chard:delayed").unwrap();
    let entries: i64 = redis.connection(0).hlen("chard:delayed:messages").unwrap();
    assert_eq!((left, entries), (0, 0));
}

#[test]
fn far_eta_jobs_run_at_their_eta_with_python_celery_workers_on_the_same_queue() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math"]);
    let url = redis.url(0);
    let _chard = Worker::start(plugins.path(), &url, &["--delay-beyond", "0"]);
    let _python = crate::util::CeleryWorker::start(&url, &url);
    let results = run_python("hostile_client.py", &["eta_jobs", &url, &url]);
    let expected: Vec<Value> = (0..20).map(|i| json!({"i": i, "value": i + 100, "early": false})).collect();
    assert_eq!(results, json!(expected));
}

#[test]
fn a_queue_that_is_not_a_list_fails_only_the_job_that_names_it() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math"]);
    let _: () = redis.connection(0).hset("myhash", "field", "value").unwrap();
    // Queue the whole batch first, so the bad one is written with others.
    let mut good = Vec::new();
    let mut bad_callback = task("math.add", json!([1, 2]));
    let mut callback = Signature::new("math.add", vec![json!(10)], Default::default());
    callback.options.insert("queue".into(), json!("myhash"));
    bad_callback.embed.callbacks = Some(vec![callback]);
    for i in 0..50 {
        let job = task("math.add", json!([i, 1]));
        push(&redis, &job.to_envelope());
        good.push((job.id, i + 1));
        if i == 25 {
            push(&redis, &bad_callback.to_envelope());
        }
    }
    // Queue names that address kombu's or Chard's own keys are refused
    // before anything is written.
    let mut reserved_route = task("math.add", json!([1, 1]));
    reserved_route.queue = "unacked".into();
    let mut reserved_callback = task("math.add", json!([1, 1]));
    let mut callback = Signature::new("math.add", vec![], Default::default());
    callback.options.insert("queue".into(), json!("_kombu.binding.celery"));
    reserved_callback.embed.callbacks = Some(vec![callback]);
    push(&redis, &reserved_route.to_envelope());
    push(&redis, &reserved_callback.to_envelope());

    let worker = Worker::start(plugins.path(), &redis.url(0), &[]);
    for (id, expected) in &good {
        let doc = eventually(Duration::from_secs(30), "a good job", || ready(&redis, 0, id));
        assert_eq!(doc["result"], json!(expected), "{doc}");
    }
    let doc = eventually(Duration::from_secs(30), "the job whose callback queue is a hash", || ready(&redis, 0, &bad_callback.id));
    let (exc_type, message) = exception(&doc);
    assert_eq!((doc["status"].as_str(), exc_type.as_str()), (Some("FAILURE"), "RedisCommandError"), "{doc}");
    assert!(message.contains("\"myhash\""), "{message}");
    for refused in [&reserved_route, &reserved_callback] {
        let doc = eventually(Duration::from_secs(30), "a reserved queue", || ready(&redis, 0, &refused.id));
        let (exc_type, message) = exception(&doc);
        assert_eq!(exc_type, "MalformedMessage", "{doc}");
        assert!(message.contains("names a key kombu or Chard keeps"), "{message}");
    }
    let kind: String = redis::cmd("TYPE").arg("myhash").query(&mut redis.connection(0)).unwrap();
    assert_eq!(kind, "hash");
    eventually(Duration::from_secs(10), "nothing left in unacked", || {
        (redis.connection(0).hlen::<_, i64>("unacked").unwrap() == 0).then_some(())
    });
    // And the worker goes on.
    let url = redis.url(0);
    assert_eq!(host(&["submit", "math.add", "[2, 2]", "--broker", &url, "--wait"]).ok(), "4", "{}", worker.log());
}

#[test]
fn oversized_messages_and_results_fail_with_their_size() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math", "faults"]);
    let args = ["--max-message-size", "4", "--max-result-size", "1", "--prefetch-size", "4", "-c", "2"];
    let worker = Worker::start(plugins.path(), &redis.url(0), &args);
    let huge = task("faults.echo", json!(["y".repeat(6 << 20)]));
    push(&redis, &huge.to_envelope());
    let large_result = task("faults.echo", json!(["z".repeat(3 << 19)]));
    push(&redis, &large_result.to_envelope());
    // Ten messages of almost 3 MB under a 4 MB prefetch budget: taken one
    // or two at a time, all of them run.
    let several: Vec<OutgoingTask> = (0..10).map(|i| task("faults.echo", json!([format!("{i}{}", "w".repeat(2 << 20))]))).collect();
    for job in &several {
        push(&redis, &job.to_envelope());
    }
    let doc = eventually(Duration::from_secs(30), "the oversized message", || ready(&redis, 0, &huge.id));
    let (exc_type, message) = exception(&doc);
    assert_eq!(exc_type, "MessageTooLarge", "{doc}");
    assert!(message.contains("over the 4194304-byte cap"), "{message}");
    let doc = eventually(Duration::from_secs(30), "the oversized result", || ready(&redis, 0, &large_result.id));
    let (exc_type, message) = exception(&doc);
    assert_eq!(exc_type, "ResultTooLarge", "{doc}");
    assert!(message.starts_with(&format!("result is {} bytes, over the 1048576-byte cap", (3 << 19) + 2)), "{message}");
    for job in &several {
        let doc = eventually(Duration::from_secs(60), "a 2 MB job", || ready(&redis, 0, &job.id));
        assert_eq!(doc["status"], "FAILURE", "{doc}");
        assert_eq!(exception(&doc).0, "ResultTooLarge");
    }
    eventually(Duration::from_secs(10), "nothing left in unacked", || {
        (redis.connection(0).hlen::<_, i64>("unacked").unwrap() == 0).then_some(())
    });
    let longest = worker.log().lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 20_000, "a log line of {longest} bytes");
}

#[test]
fn a_20_mb_argument_does_not_come_back_as_a_20_mb_error() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["faults"]);
    let worker = Worker::start(plugins.path(), &redis.url(0), &["--max-message-size", "64", "--prefetch-size", "64"]);
    let result = run_python("hostile_client.py", &["huge_error", &redis.url(0), &redis.url(0)]);
    assert_eq!(result["starts"], json!("xxxxxxxxxx"));
    let length = result["error_length"].as_u64().unwrap();
    assert!(length < 5000, "an error message of {length} bytes");
    let longest = worker.log().lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 20_000, "a log line of {longest} bytes");
}

#[test]
fn a_plugin_time_limit_of_zero_means_no_limit() {
    let plugins = plugin_folder(&["faults"]);
    std::fs::write(plugins.path().join("faults.toml"), "[tasks.sleep]\ntime_limit = 0\n").unwrap();
    let wasm = plugins.path().join("faults.wasm");
    // The worker's own limit would stop it; the plugin's 0 lifts it.
    let run = host(&["call", wasm.to_str().unwrap(), "sleep", "[300]", "--time-limit", "0.1"]);
    assert_eq!(run.ok(), "300");
}

/// A header member whose join Redis refuses for good can never be counted,
/// so the chord would wait forever: instead it ends as Celery's
/// `on_chord_part_return` ends a chord whose join raises. The member fails
/// naming the refusal, the body fails with `ChordError('Join error: ...')`,
/// and the body's errbacks run.
#[test]
fn a_chord_join_redis_refuses_fails_the_body_with_a_chord_error_and_runs_its_errbacks() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math", "faults"]);
    let group_id = uuid::Uuid::new_v4().to_string();
    let (body_id, errback_id) = (uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string());
    // A string where the join's sorted set goes: every ZADD is WRONGTYPE.
    let mut connection = redis.connection(0);
    let _: () = connection.set(format!("celery-taskset-meta-{group_id}.j"), "not a sorted set").unwrap();
    let _: () = connection.set(format!("celery-taskset-meta-{group_id}.s"), 2).unwrap();
    let mut errback = Signature::new("faults.echo", vec![], Default::default());
    errback.options.insert("task_id".into(), json!(errback_id));
    let mut body = Signature::new("math.xsum", vec![], Default::default());
    body.options.insert("task_id".into(), json!(body_id));
    body.options.insert("link_error".into(), json!([errback]));
    let mut members = Vec::new();
    for index in 0..2u32 {
        let mut member = task("math.add", json!([index, index]));
        member.group = Some(group_id.clone());
        member.group_index = Some(index);
        member.embed.chord = Some(body.clone());
        push(&redis, &member.to_envelope());
        members.push(member.id);
    }
    let worker = Worker::start(plugins.path(), &redis.url(0), &["-c", "1"]);

    let doc = eventually(Duration::from_secs(30), "the chord body's failure", || ready(&redis, 0, &body_id));
    let (exc_type, message) = exception(&doc);
    assert_eq!((doc["status"].as_str(), exc_type.as_str(), doc["result"]["exc_module"].as_str()), (Some("FAILURE"), "ChordError", Some("celery.exceptions")), "{doc}");
    let expected = format!("Join error: Redis refused the chord join of group {group_id:?}: ");
    assert!(message.starts_with(&expected) && message.contains("WRONGTYPE"), "{message}");
    let doc = eventually(Duration::from_secs(30), "the body's errback", || ready(&redis, 0, &errback_id));
    assert_eq!((doc["status"].as_str(), &doc["result"]), (Some("SUCCESS"), &json!(body_id)), "{doc}");
    // The member whose join was refused fails; the chord is over by the
    // time the other one joins, so that one just succeeds.
    let mut states: Vec<(String, String)> = members
        .iter()
        .map(|id| {
            let doc = eventually(Duration::from_secs(30), "a header member", || ready(&redis, 0, id));
            (doc["status"].as_str().unwrap().to_string(), exception(&doc).0)
        })
        .collect();
    states.sort();
    assert_eq!(states, [("FAILURE".to_string(), "RedisCommandError".to_string()), ("SUCCESS".to_string(), String::new())], "{}", worker.log());
    eventually(Duration::from_secs(10), "nothing left in unacked", || (redis.connection(0).hlen::<_, i64>("unacked").unwrap() == 0).then_some(()));
}

/// Python workers never release `chard:delayed`, so the last Chard worker
/// to stop hands the parked jobs back to their queue, ETA unchanged; a
/// Python worker then holds them and runs them at their ETA, as Celery
/// does. While another Chard worker runs, they stay parked.
#[test]
fn the_last_chard_worker_to_stop_hands_far_eta_jobs_back_for_python_workers() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math"]);
    let url = redis.url(0);
    let mut first = Worker::start(plugins.path(), &url, &["--delay-beyond", "0", "-n", "first@test"]);
    let mut second = Worker::start(plugins.path(), &url, &["--delay-beyond", "0", "-n", "second@test"]);
    let ids: Vec<String> = (0..5)
        .map(|i| host(&["submit", "math.add", &format!("[{i}, 100]"), "--countdown", "15", "--broker", &url]).ok().to_string())
        .collect();
    let parked = || -> (i64, i64) { (redis.connection(0).zcard("chard:delayed").unwrap(), redis.connection(0).llen("celery").unwrap()) };
    eventually(Duration::from_secs(5), "every job parked", || (parked() == (5, 0)).then_some(()));

    first.signal("TERM");
    assert_eq!(first.wait_exit(Duration::from_secs(20)), Some(0), "{}", first.log());
    assert_eq!(parked(), (5, 0), "another Chard worker runs: {}", first.log());
    second.signal("TERM");
    assert_eq!(second.wait_exit(Duration::from_secs(20)), Some(0), "{}", second.log());
    assert!(second.log().contains("far-ETA jobs handed back to their queues") && second.log().contains("handed=5"), "{}", second.log());
    assert_eq!(parked(), (0, 5));
    let entries: i64 = redis.connection(0).hlen("chard:delayed:messages").unwrap();
    assert_eq!(entries, 0);

    let _python = crate::util::CeleryWorker::start(&url, &url);
    for id in &ids {
        assert!(ready(&redis, 0, id).is_none(), "an ETA job ran before its time");
    }
    for (i, id) in ids.iter().enumerate() {
        let doc = eventually(Duration::from_secs(40), "a handed-back job, run by the Python worker", || ready(&redis, 0, id));
        assert_eq!(doc["result"], json!(i + 100), "{doc}");
    }
}
