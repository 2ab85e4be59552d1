//! Celery's canvas, nested in every way, on a Chard worker: the answers a
//! Python worker gives, for the calls from issue #12 and for random
//! canvases run on both workers (`tests/python/canvas_fuzz.py`).
//!
//! The random run is seeded: `CHARD_CANVAS_SEED` (default 12) and
//! `CHARD_CANVAS_COUNT` (default 200; `make fuzz-canvas` runs thousands).
//! Every difference it found became a named test below it.

use serde_json::{json, Value};

use crate::util::{plugin_folder, run_python, CeleryWorker, RedisServer, Worker};

/// A Chard worker (with task events) serving the `canvas` plugin.
///
/// The random canvases run with one job at a time, like the Python worker
/// (`-P solo`): which header member completes a chord decides the body's
/// parent and root, and the order must not differ by chance.
fn chard(redis: &RedisServer, concurrency: &str) -> (tempfile::TempDir, Worker) {
    let plugins = plugin_folder(&["canvas"]);
    let worker = Worker::start(plugins.path(), &redis.url(0), &["--result-backend", &redis.url(1), "-E", "-c", concurrency]);
    (plugins, worker)
}

#[test]
fn the_five_calls_from_the_issue_return_celerys_answers() {
    let redis = RedisServer::start();
    let _chard = chard(&redis, "2");
    let seen = run_python("canvas_fuzz.py", &["issue", &redis.url(0), &redis.url(1)]);
    assert_eq!(seen["chain_group_tsum"], json!(7));
    assert_eq!(seen["chord_chain_body"], json!(6));
    assert_eq!(seen["chain_after_chord"], json!([1, 1]));
    assert_eq!(seen["chain_in_chord_header"], json!([1337]));
    assert_eq!(seen["chord_in_chord_header"], json!([31337]));
}

/// Runs `count` canvases from `seed` on a Python worker and on a Chard
/// worker; returns the canvases whose tasks ended differently.
fn differences(seed: u64, count: u64) -> Vec<String> {
    let (seed, count) = (seed.to_string(), count.to_string());
    let python = {
        let redis = RedisServer::start();
        let _worker = CeleryWorker::start_with(&redis.url(0), &redis.url(1), &["-E"]);
        run_python("canvas_fuzz.py", &["run", &redis.url(0), &redis.url(1), &seed, &count])
    };
    let chard_run = {
        let redis = RedisServer::start();
        let _worker = chard(&redis, "1");
        run_python("canvas_fuzz.py", &["run", &redis.url(0), &redis.url(1), &seed, &count])
    };
    let (python, chard_run) = (python.as_array().unwrap(), chard_run.as_array().unwrap());
    assert_eq!(python.len(), chard_run.len());
    python
        .iter()
        .zip(chard_run)
        .filter(|(expected, seen)| expected["tasks"] != seen["tasks"])
        .map(|(expected, seen)| describe(expected, seen))
        .collect()
}

fn describe(expected: &Value, seen: &Value) -> String {
    let mut lines = vec![format!("canvas {}: {}", expected["canvas"], expected["repr"].as_str().unwrap_or("?"))];
    for (id, python) in expected["tasks"].as_object().unwrap() {
        let chard = &seen["tasks"][id];
        if python != chard {
            lines.push(format!("  {id}: python {python}\n  {id}: chard  {chard}"));
        }
    }
    lines.join("\n")
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

#[test]
fn random_canvases_end_as_on_a_python_worker() {
    let (seed, count) = (env_number("CHARD_CANVAS_SEED", 12), env_number("CHARD_CANVAS_COUNT", 200));
    let found = differences(seed, count);
    assert!(found.is_empty(), "{} of {count} canvases (seed {seed}) differ:\n{}", found.len(), found.join("\n\n"));
}
