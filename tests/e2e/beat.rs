//! `host beat`: periodic tasks, sent once per due time even by two beats.

use std::collections::HashSet;
use std::time::Duration;

use base64::Engine as _;
use redis::Commands;
use serde_json::Value;

use crate::util::{host, plugin_folder, RedisServer, Worker};

#[test]
fn two_beats_send_each_run_exactly_once() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let dir = tempfile::tempdir().unwrap();
    let schedule = dir.path().join("beat.toml");
    std::fs::write(
        &schedule,
        r#"[entries.tick]
task = "math.add"
args = [1, 2]
every = 1

[entries.cron]
task = "math.mul"
args = [6, 7]
cron = "*/2 * * * * *"     # every 2 s (six fields: seconds first)
queue = "cpu"
"#,
    )
    .unwrap();
    let beat_args = ["beat", "--schedule", schedule.to_str().unwrap(), "--broker", &url];
    let first = Worker::spawn(&beat_args, "beat ready");
    let second = Worker::spawn(&beat_args, "beat ready");
    std::thread::sleep(Duration::from_millis(4500));
    drop(first);
    drop(second);

    let mut connection = redis.connection(0);
    let ids = |queue: &str, connection: &mut redis::Connection| -> Vec<(String, String)> {
        let envelopes: Vec<String> = connection.lrange(queue, 0, -1).unwrap();
        envelopes
            .iter()
            .map(|envelope| {
                let envelope: Value = serde_json::from_str(envelope).unwrap();
                let body = base64::engine::general_purpose::STANDARD.decode(envelope["body"].as_str().unwrap()).unwrap();
                let body: Value = serde_json::from_slice(&body).unwrap();
                (envelope["headers"]["id"].as_str().unwrap().to_string(), body[0].to_string())
            })
            .collect()
    };
    let ticks = ids("celery", &mut connection);
    let crons = ids("cpu", &mut connection);
    let unique: HashSet<&String> = ticks.iter().chain(&crons).map(|(id, _)| id).collect();
    assert_eq!(unique.len(), ticks.len() + crons.len(), "a run was sent twice: {ticks:?} {crons:?}");
    assert!(ticks.len() >= 3, "one tick a second for 4.5 s: {ticks:?}");
    assert!(!crons.is_empty(), "every 2 s for 4.5 s: {crons:?}");
    assert!(ticks.iter().all(|(_, args)| args == "[1,2]") && crons.iter().all(|(_, args)| args == "[6,7]"));
    let markers: Vec<String> = connection.keys("chard:beat:sent:*").unwrap();
    assert_eq!(markers.len(), unique.len(), "one marker per run");

    // The worker runs them.
    let plugins = plugin_folder(&["math"]);
    let _worker = Worker::start(plugins.path(), &url, &["-Q", "celery,cpu"]);
    let (tick, _) = &ticks[0];
    assert_eq!(host(&["result", tick, "--broker", &url, "--wait"]).ok(), "SUCCESS 3");
    let (cron, _) = &crons[0];
    assert_eq!(host(&["result", cron, "--broker", &url, "--wait"]).ok(), "SUCCESS 42");
}

#[test]
fn a_bad_schedule_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let schedule = dir.path().join("beat.toml");
    std::fs::write(&schedule, "[entries.report]\ntask = \"reports.daily\"\ncron = \"30 9 * * 1-5\"\ntimezone = \"Europe/Pariss\"\n").unwrap();
    let run = host(&["beat", "--schedule", schedule.to_str().unwrap(), "--broker", "redis://127.0.0.1:1/0"]);
    assert!(run.error_line().ends_with("[entries.report]: unknown time zone \"Europe/Pariss\" (use IANA names like \"Europe/Paris\")"), "{}", run.stderr);
}
