//! Routing by task name and the global rate limit, on private Redis servers.

use std::time::Duration;

use redis::Commands;
use serde_json::Value;

use crate::util::{eventually, host, plugin_folder, RedisServer, Worker};

#[test]
fn routes_from_the_config_file_and_flags_pick_queues() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("chard.toml");
    std::fs::write(&config, "[routes]\n\"math.*\" = \"cpu\"\n\"math.add\" = \"fast\"\n").unwrap();
    let config = config.to_str().unwrap();
    let mut connection = redis.connection(0);

    // The client side: no -Q, so the task's route picks the queue.
    host(&["submit", "math.mul", "[6, 7]", "--config", config, "--broker", &url]).ok();
    host(&["submit", "math.add", "[1, 2]", "--config", config, "--broker", &url]).ok();
    host(&["submit", "math.add", "[1, 2]", "--config", config, "--route", "math.add=io", "--broker", &url]).ok();
    host(&["submit", "faults.echo", "[1]", "--config", config, "--broker", &url]).ok();
    let lengths: Vec<usize> = ["cpu", "fast", "io", "celery"].iter().map(|queue| connection.llen(*queue).unwrap()).collect();
    assert_eq!(lengths, vec![1, 1, 1, 1], "cpu, fast, io (the flag wins), celery (no route)");
    let _: () = redis::cmd("FLUSHDB").query(&mut connection).unwrap();

    // The worker side: a callback without a queue of its own goes where the
    // worker's routes say, not to the parent's queue.
    let plugins = plugin_folder(&["math"]);
    let worker = Worker::start(plugins.path(), &url, &["-Q", "celery", "--route", "math.mul=cpu"]);
    let parent = host(&["submit", "math.add", "[2, 3]", "--link", "math.mul [10]", "--broker", &url]).ok().to_string();
    assert_eq!(host(&["result", &parent, "--broker", &url, "--wait"]).ok(), "SUCCESS 5");
    eventually(Duration::from_secs(10), "the callback in the cpu queue", || {
        (connection.llen::<_, usize>("cpu").unwrap() == 1).then_some(())
    });
    drop(worker);
    let _cpu_worker = Worker::start(plugins.path(), &url, &["-Q", "cpu"]);
    let document: String = connection.get(format!("celery-task-meta-{parent}")).unwrap();
    let document: Value = serde_json::from_str(&document).unwrap();
    let child = document["children"][0][0][0].as_str().unwrap().to_string();
    assert_eq!(host(&["result", &child, "--broker", &url, "--wait"]).ok(), "SUCCESS 50");
}

#[test]
fn a_global_rate_limit_is_shared_by_every_worker() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let plugins = plugin_folder(&["math"]);
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("chard.toml");
    std::fs::write(&config, "[global_rate_limits]\n\"math.add\" = \"10/s\"\n").unwrap();
    let args = ["--config", config.to_str().unwrap(), "-c", "1"];
    let _first = Worker::start(plugins.path(), &url, &args);
    let _second = Worker::start(plugins.path(), &url, &args);
    let ids: Vec<String> = (0..21)
        .map(|i| host(&["submit", "math.add", &format!("[{i}, 0]"), "--broker", &url]).ok().to_string())
        .collect();
    let mut connection = redis.connection(0);
    let mut done = Vec::new();
    for id in &ids {
        let document: Value = eventually(Duration::from_secs(30), "result", || {
            let text: Option<String> = connection.get(format!("celery-task-meta-{id}")).unwrap();
            text.map(|text| serde_json::from_str(&text).unwrap())
        });
        assert_eq!(document["status"], "SUCCESS", "{document}");
        let finished = chrono::DateTime::parse_from_rfc3339(document["date_done"].as_str().unwrap()).unwrap();
        done.push(finished);
    }
    done.sort();
    let span = (*done.last().unwrap() - *done.first().unwrap()).num_milliseconds();
    // 21 jobs at 10/s across both workers: at least 2 s from first to last
    // (two independent per-worker limits would allow 1 s). Only a lower
    // bound: a slow machine can only make it longer.
    assert!(span >= 1_900, "21 jobs finished within {span} ms: the limit was not shared");
}

#[test]
fn autoretry_with_backoff_from_the_manifest() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let plugins = plugin_folder(&["faults"]);
    std::fs::write(
        plugins.path().join("faults.toml"),
        "[tasks.raise_as]\nautoretry_for = [\"ConnectionError\"]\nmax_retries = 2\nretry_backoff = 0.1\nretry_backoff_max = 1\n",
    )
    .unwrap();
    let worker = Worker::start(plugins.path(), &url, &[]);
    let submit = |args: &str| host(&["submit", "faults.raise_as", args, "--broker", &url, "--wait", "--timeout", "30"]);
    let run = submit(r#"["ConnectionError", "db down"]"#);
    assert_eq!(run.error_line(), "error: task failed: ConnectionError: db down", "the last error after the retries");
    let log = worker.log();
    assert_eq!(log.matches("retry 1 of 2").count() + log.matches("retry 2 of 2").count(), 2, "{log}");
    assert!(log.contains("retries exhausted after 3 attempts"), "{log}");
    // An error not listed is not retried.
    let run = submit(r#"["ValueError", "bad"]"#);
    assert_eq!(run.error_line(), "error: task failed: ValueError: bad");
    assert_eq!(worker.log().matches("retry 1 of 2").count(), 1);
}
