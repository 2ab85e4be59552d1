//! Monitoring: Celery's own event receiver, `celery inspect` and Flower
//! watching a Chard worker on a private Redis.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::util::{eventually, free_port, host, plugin_folder, python, python_script, run_python, RedisServer, Worker};

/// A Python script that talks with the test line by line on its stdout;
/// killed on drop, its stderr kept for the failure message.
struct Script {
    child: Child,
    stdout: BufReader<ChildStdout>,
    stderr: tempfile::NamedTempFile,
}

impl Script {
    fn start(name: &str, args: &[&str]) -> Self {
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new(python())
            .arg(python_script(name))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(stderr.reopen().unwrap())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self { child, stdout, stderr }
    }

    /// The next line the script prints (it has its own timeouts).
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "script ended early; stderr:\n{}", std::fs::read_to_string(self.stderr.path()).unwrap_or_default());
        line.trim().to_string()
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `type`s of a list of event summaries.
fn types(events: &Value) -> Vec<&str> {
    events.as_array().unwrap().iter().map(|event| event["type"].as_str().unwrap()).collect()
}

fn last(events: &Value) -> &Value {
    events.as_array().unwrap().last().unwrap_or_else(|| panic!("no events"))
}

#[test]
fn events_reach_celerys_receiver_from_online_to_offline() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math", "faults"]);
    let host = "ev1@test";
    let mut script = Script::start("celery_events.py", &["watch", &redis.url(0), &redis.url(1), host]);
    assert_eq!(script.line(), "ready");
    // One thread, so a long job makes the worker busy.
    let mut worker = Worker::start(plugins.path(), &redis.url(0), &["--result-backend", &redis.url(1), "-n", host, "-c", "1"]);
    let pid = worker_pid(&worker);
    assert_eq!(script.line(), "stop-me");
    worker.signal("TERM");
    assert_eq!(worker.wait_exit(Duration::from_secs(60)), Some(0));
    let seen: Value = serde_json::from_str(&script.line()).unwrap();

    let online = &seen["online"];
    assert_eq!(online["type"], "worker-online", "{seen}");
    assert_eq!(online["hostname"], host);
    assert_eq!(online["pid"], json!(pid));
    assert_eq!(online["freq"], json!(2.0));
    assert_eq!((online["sw_ident"].as_str(), online["sw_sys"].as_str()), (Some("chard"), Some("Linux")));
    assert_eq!(online["loadavg"].as_array().map(Vec::len), Some(3));
    assert!(online["utcoffset"].is_number() && online["clock"].as_u64() >= Some(1) && online["timestamp"].is_f64(), "{online}");
    assert_eq!(seen["heartbeat"]["freq"], json!(2.0));
    let gaps: Vec<f64> = seen["heartbeat_gaps"].as_array().unwrap().iter().map(|gap| gap.as_f64().unwrap()).collect();
    assert!(!gaps.is_empty() && gaps.iter().all(|gap| (1.0..4.0).contains(gap)), "heartbeats every 2 s: {gaps:?}");
    assert!(seen["heartbeats_on_request"].as_u64() >= Some(3), "a heartbeat per `heartbeat` broadcast: {seen}");

    assert_eq!(seen["task_events_before_enable"], 0, "task events are off by default");
    assert_eq!(seen["enable_reply"], json!([{host: {"ok": "task events enabled"}}]));
    assert_eq!(seen["enable_again"], json!([{host: {"ok": "task events already enabled"}}]));

    let add = &seen["add"];
    assert_eq!(seen["add_result"], 5);
    assert_eq!(types(add), ["task-received", "task-started", "task-succeeded"], "{add}");
    let received = &add[0];
    assert_eq!(received["name"], "math.add");
    assert_eq!((received["args"].as_str(), received["kwargs"].as_str()), (Some("[2, 3]"), Some("{}")));
    assert_eq!(received["root_id"], seen["add_id"]);
    assert_eq!((received["parent_id"].clone(), received["retries"].clone(), received["eta"].clone()), (Value::Null, json!(0), Value::Null));
    assert_eq!(add[2]["result"], "5");
    assert!((0.0..5.0).contains(&add[2]["runtime"].as_f64().unwrap()), "{add}");
    let common = json!(["clock", "hostname", "pid", "timestamp", "type", "utcoffset"]);
    assert!(seen["add_common"].as_array().unwrap().iter().all(|fields| fields == &common), "{}", seen["add_common"]);
    assert_eq!(seen["add_hostnames"], json!([host]));

    let fail = last(&seen["fail"]);
    assert_eq!(types(&seen["fail"]), ["task-received", "task-started", "task-failed"]);
    assert_eq!(fail["exception"], "Exception('boom')");
    assert!(fail["traceback"].as_str().unwrap().contains("boom"), "{fail}");

    let flaky = &seen["flaky"];
    assert_eq!(seen["flaky_result"], 1);
    assert_eq!(types(flaky), ["task-received", "task-started", "task-retried", "task-received", "task-started", "task-succeeded"], "{flaky}");
    assert!(flaky[2]["exception"].as_str().unwrap().starts_with("Retry('Retry in"), "{flaky}");
    assert_eq!((flaky[3]["retries"].clone(), flaky[3]["parent_id"].clone()), (json!(1), seen["flaky"][0]["root_id"].clone()));
    assert!(flaky[3]["eta"].is_string(), "{flaky}");
    assert_eq!(last(flaky)["result"], "1");

    assert_eq!(last(&seen["unknown"])["type"], "task-failed");
    assert_eq!(last(&seen["unknown"])["exception"], "NotRegistered('no.such.task')");
    let expired = last(&seen["expired"]);
    assert_eq!((expired["type"].as_str(), expired["expired"].clone(), expired["terminated"].clone()), (Some("task-revoked"), json!(true), json!(false)));
    assert!(expired["expires"].is_null(), "only task-received carries `expires`");
    assert_eq!(types(&seen["expired"])[0], "task-received");
    assert!(seen["expired"][0]["expires"].is_string());
    let revoked = last(&seen["revoked"]);
    assert_eq!((revoked["type"].as_str(), revoked["expired"].clone(), revoked["signum"].clone()), (Some("task-revoked"), json!(false), Value::Null));

    assert!(seen["busy_seconds"].as_f64().unwrap() >= 4.0, "{seen}");
    let busy = seen["busy_heartbeats_active"].as_array().unwrap();
    assert!(!busy.is_empty() && busy.iter().all(|active| active == 1), "heartbeats while the only thread is busy, saying so: {busy:?}");

    assert_eq!(seen["disable_reply"], json!([{host: {"ok": "task events disabled"}}]));
    assert_eq!(seen["disable_again"], json!([{host: {"ok": "task events already disabled"}}]));
    assert_eq!(seen["task_events_after_disable"], 0);

    assert_eq!(seen["state_worker_alive"], true, "celery.events.state.State sees the worker alive");
    assert_eq!(seen["state_add"], json!({"state": "SUCCESS", "name": "math.add", "result": "5", "args": "[2, 3]"}));
    assert!(seen["processed_last_heartbeat"].as_u64() >= Some(7), "{seen}");
    assert_eq!(seen["offline"]["type"], "worker-offline", "graceful shutdown says goodbye: {seen}");
    assert_eq!(seen["clocks_distinct"], true);
}

fn worker_pid(worker: &Worker) -> u32 {
    worker.pid() as u32
}

#[test]
fn events_inspect_answers_what_flower_polls() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math", "faults"]);
    let host = "insp@test";
    // The ETA job (60 s ahead) must stay in this worker's memory, where
    // `inspect scheduled` sees it: past --delay-beyond it waits in Redis.
    let worker = Worker::start(plugins.path(), &redis.url(0), &["--result-backend", &redis.url(1), "-n", host, "-c", "1", "--delay-beyond", "120"]);
    let seen = run_python("celery_events.py", &["inspect", &redis.url(0), &redis.url(1), host]);
    let ids = &seen["ids"];
    let pid = json!(worker_pid(&worker));

    let active = &seen["active"][host];
    assert_eq!(active.as_array().map(Vec::len), Some(1), "{seen}");
    let running = &active[0];
    assert_eq!((&running["id"], &running["name"], &running["type"]), (&ids["busy"], &json!("faults.sleep"), &json!("faults.sleep")));
    assert_eq!((running["args"].as_str(), running["kwargs"].as_str()), (Some("[3000]"), Some("{}")), "safe=True gives reprs");
    assert_eq!((&running["hostname"], &running["worker_pid"], &running["acknowledged"]), (&json!(host), &pid, &json!(false)));
    assert!(running["time_start"].as_f64().unwrap() > 1.7e9);
    assert_eq!(running["delivery_info"]["routing_key"], "celery");
    assert_eq!(seen["active_unsafe"][host][0]["args"], json!([3000]));

    let reserved = &seen["reserved"][host];
    assert_eq!(reserved.as_array().map(Vec::len), Some(1), "the job waiting for the only thread: {seen}");
    assert_eq!((&reserved[0]["id"], &reserved[0]["args"], &reserved[0]["kwargs"]), (&ids["queued"], &json!([5, 5]), &json!({})));
    assert_eq!((&reserved[0]["time_start"], &reserved[0]["worker_pid"]), (&Value::Null, &Value::Null));

    let scheduled = &seen["scheduled"][host];
    assert_eq!(scheduled.as_array().map(Vec::len), Some(1), "{seen}");
    assert_eq!(scheduled[0]["request"]["id"], ids["later"]);
    assert_eq!(scheduled[0]["request"]["kwargs"], json!({"y": 7}));
    assert!(scheduled[0]["eta"].is_string() && scheduled[0]["priority"].is_number(), "{scheduled}");

    let query = &seen["query_task"][host];
    for (name, state) in [("busy", "active"), ("queued", "reserved"), ("later", "scheduled")] {
        let id = ids[name].as_str().unwrap();
        assert_eq!(query[id][0], state, "{query}");
        assert_eq!(query[id][1]["id"], ids[name]);
    }
    assert!(seen["clock"][host]["clock"].as_u64() > Some(0), "{seen}");

    let stats = &seen["stats"][host];
    assert_eq!(stats["total"], json!({"faults.sleep": 1, "math.add": 1}), "{stats}");
    assert_eq!((&stats["pid"], &stats["pool"]["max-concurrency"], &stats["pool"]["processes"]), (&pid, &json!(1), &json!([pid])));
    assert_eq!((&stats["broker"]["port"], &stats["broker"]["virtual_host"]), (&json!(redis.port), &json!("0")));
    assert!(stats["clock"].as_str().unwrap().parse::<u64>().unwrap() > 0, "Celery sends the clock as a string: {stats}");
    assert!(stats["rusage"]["maxrss"].as_u64() > Some(0) && stats["prefetch_count"].is_number(), "{stats}");

    let conf = &seen["conf"][host];
    assert_eq!(conf["broker_url"], redis.url(0));
    assert_eq!((&conf["worker_concurrency"], &conf["worker_send_task_events"]), (&json!(1), &json!(false)));
    assert_eq!(seen["active_queues"][host][0]["name"], "celery");
    assert!(seen["registered"][host].as_array().unwrap().contains(&json!("math.add")));
    assert!(seen["revoked"][host].as_array().unwrap().contains(&ids["later"]));
}

/// `celery flower` on a free port, killed on drop.
struct Flower {
    child: Child,
    url: String,
    log: tempfile::NamedTempFile,
}

impl Flower {
    fn start(broker: &str, backend: &str) -> Self {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(python())
            .args(["-m", "celery", "--broker", broker, "--result-backend", backend, "flower"])
            .arg("--address=127.0.0.1")
            .arg(format!("--port={port}"))
            .env("FLOWER_UNAUTHENTICATED_API", "true")
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("starting flower");
        Self { child, url: format!("http://127.0.0.1:{port}"), log }
    }
}

impl Drop for Flower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("flower log:\n{}", std::fs::read_to_string(self.log.path()).unwrap_or_default());
        }
    }
}

#[test]
fn events_flower_shows_the_worker_online_and_its_tasks() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math", "faults"]);
    let host = "flower@test";
    // No -E: Flower switches task events on by itself.
    let _worker = Worker::start(plugins.path(), &redis.url(0), &["--result-backend", &redis.url(1), "-n", host]);
    let flower = Flower::start(&redis.url(0), &redis.url(1));
    let seen = run_python("celery_events.py", &["flower", &redis.url(0), &redis.url(1), host, &flower.url]);

    assert_eq!(seen["events_enabled_by_flower"], true, "{seen}");
    let tasks = &seen["tasks"];
    let add = &tasks["add"];
    assert_eq!((add["name"].as_str(), add["state"].as_str(), add["result"].as_str()), (Some("math.add"), Some("SUCCESS"), Some("5")), "{tasks}");
    assert_eq!((add["args"].as_str(), add["worker"].as_str()), (Some("[2, 3]"), Some(host)));
    assert!(add["received"].is_f64() && add["started"].is_f64() && add["succeeded"].is_f64(), "{add}");
    assert_eq!((tasks["mul"]["state"].as_str(), tasks["mul"]["result"].as_str()), (Some("SUCCESS"), Some("42")));
    assert_eq!((tasks["fail"]["name"].as_str(), tasks["fail"]["state"].as_str()), (Some("faults.fail"), Some("FAILURE")));
    assert_eq!(tasks["fail"]["exception"], "Exception('boom')");
    assert_eq!(seen["task_info_add"], json!({"state": "SUCCESS", "result": "5", "worker": host}));

    let keys = seen["api_workers_keys"].as_array().unwrap();
    for key in ["stats", "registered", "active_queues", "conf", "active", "reserved", "scheduled", "revoked"] {
        assert!(keys.contains(&json!(key)), "Flower's inspect of {key} got an answer: {keys:?}");
    }
    assert!(seen["api_workers_registered"].as_array().unwrap().contains(&json!("math.add")));
    assert_eq!(seen["api_workers_total"]["math.add"], 1, "{seen}");
    assert_eq!(seen["api_workers_queues"], json!(["celery"]));
    assert_eq!(seen["status"], json!({host: true}), "Flower shows the worker online");
    let dashboard = seen["dashboard"].as_array().unwrap();
    assert!(dashboard.iter().any(|row| row["hostname"] == host && row["status"] == true && row["sw_ident"] == "chard"), "{dashboard:?}");
    assert_eq!(seen["worker_page"], json!({"code": 200, "has_name": true, "has_total": true}));
}

#[test]
fn events_publish_failures_are_logged_once_and_jobs_go_on() {
    let mut redis = RedisServer::start();
    let plugins = plugin_folder(&["math"]);
    let worker = Worker::start(plugins.path(), &redis.url(0), &["-E"]);
    let url = redis.url(0);
    assert_eq!(host(&["submit", "math.add", "[1, 1]", "--broker", &url, "--wait", "--timeout", "20"]).ok(), "2");
    redis.stop();
    // Several heartbeats fail while Redis is away.
    std::thread::sleep(Duration::from_secs(5));
    redis.restart();
    assert_eq!(host(&["submit", "math.add", "[2, 2]", "--broker", &url, "--wait", "--timeout", "30"]).ok(), "4", "{}", worker.log());
    eventually(Duration::from_secs(15), "events published again", || worker.log().contains("monitoring events are published again").then_some(()));
    // Once the events flow again, a subscriber gets them.
    let mut subscriber = redis.connection(0);
    let mut pubsub = subscriber.as_pubsub();
    pubsub.psubscribe("/0.celeryev/*").unwrap();
    pubsub.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    let channel = pubsub.get_message().expect("a heartbeat within 6 s").get_channel_name().to_string();
    assert_eq!(channel, "/0.celeryev/worker.heartbeat");
    let log = worker.log();
    assert_eq!(log.matches("cannot publish monitoring events").count(), 1, "logged once per outage:\n{log}");
}
