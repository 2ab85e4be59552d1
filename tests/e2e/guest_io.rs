//! What a task does beyond computing, from the Python, JavaScript and C SDKs:
//! progress, sending and replacing tasks, key-value, exception arguments,
//! retry `exc`, reject. The same tasks live in `pyio`, `jsio` and `cio`; a
//! stock Celery client drives them through one worker. (Outbound HTTP:
//! `guest_http.rs`.)

use serde_json::{json, Value};

use crate::util::{host, plugin_folder, run_python, RedisServer, Worker};

pub(crate) const PLUGINS: [&str; 3] = ["pyio", "jsio", "cio"];

/// Compiles the plugins into the test run's compile cache once, before any
/// worker here starts: a cold compile of a Python and a JavaScript
/// component by several workers at once can outlast a worker's start-up
/// wait on a busy 2-core machine.
fn warm_compile_cache() {
    static WARM: std::sync::Once = std::sync::Once::new();
    WARM.call_once(|| {
        let folder = plugin_folder(&PLUGINS);
        host(&["tasks", "--plugins", folder.path().to_str().unwrap()]).ok();
    });
}

/// A worker serving `names`, each granted `capabilities` (TOML lines under
/// `[capabilities]`); `args` are more worker flags.
pub(crate) fn worker(redis: &RedisServer, names: &[&str], capabilities: &str, args: &[&str]) -> (tempfile::TempDir, Worker) {
    warm_compile_cache();
    let plugins = plugin_folder(names);
    for plugin in names {
        std::fs::write(plugins.path().join(format!("{plugin}.toml")), format!("[capabilities]\n{capabilities}\n")).unwrap();
    }
    let backend = redis.url(1);
    let worker = Worker::start(plugins.path(), &redis.url(0), &[&["--result-backend", backend.as_str()][..], args].concat());
    (plugins, worker)
}

pub(crate) fn scenario(redis: &RedisServer, name: &str, plugin: &str, args: &[&str]) -> Value {
    let broker = redis.url(0);
    let backend = redis.url(1);
    run_python("guest_io.py", &[&[name, broker.as_str(), backend.as_str(), plugin][..], args].concat())
}

#[test]
fn progress_is_polled_from_the_celery_client() {
    let redis = RedisServer::start();
    let (_plugins, _worker) = worker(&redis, &PLUGINS, "progress = true", &[]);
    for plugin in PLUGINS {
        let seen = scenario(&redis, "progress", plugin, &[]);
        let steps = seen["seen"].as_array().unwrap();
        assert!(!steps.is_empty(), "{plugin}: the client saw no PROGRESS state: {seen}");
        for step in steps {
            assert_eq!(step["total"], json!(5), "{plugin}: {seen}");
            assert!((1..=5).contains(&step["done"].as_i64().unwrap()), "{plugin}: {seen}");
        }
        // The final result replaces the progress.
        assert_eq!(seen["final"], json!({"done": 5}), "{plugin}");
        assert_eq!(seen["final_state"], json!("SUCCESS"), "{plugin}");
    }
}

#[test]
fn tasks_send_and_replace_tasks() {
    let redis = RedisServer::start();
    let (_plugins, _worker) = worker(&redis, &PLUGINS, "send = true", &[]);
    for plugin in PLUGINS {
        let seen = scenario(&redis, "canvas", plugin, &[]);
        assert_eq!(seen["children"], json!([0, 2, 4, 6, 8]), "{plugin}: {seen}");
        let ids: Vec<&str> = seen["ids"].as_array().unwrap().iter().map(|id| id.as_str().unwrap()).collect();
        assert_eq!(ids.iter().collect::<std::collections::HashSet<_>>().len(), 5, "{plugin}: distinct ids");
        assert_eq!(seen["replace_chain"], json!(16), "{plugin}: (5 + 1) + 10");
        assert_eq!(seen["replace_group"], json!([0, 2, 4]), "{plugin}");
    }
}

#[test]
fn a_task_that_sends_then_fails_sends_nothing() {
    let redis = RedisServer::start();
    // One job at a time, in queue order: a child sent by the failed task
    // would run before the sentinel the client sends next.
    let (_plugins, _worker) = worker(&redis, &PLUGINS, "send = true", &["-c", "1"]);
    let mut stored = 0;
    for plugin in PLUGINS {
        let seen = scenario(&redis, "send_then_fail", plugin, &[]);
        assert_eq!(seen["error"]["type"], json!("ValueError"), "{plugin}: {seen}");
        assert_eq!(seen["error"]["args"], json!(["failed after sending"]), "{plugin}: {seen}");
        assert_eq!(seen["sentinel"], json!(42), "{plugin}");
        stored += 2; // the failure and the sentinel, nothing else
        assert_eq!(seen["results"], json!(stored), "{plugin}: a result more means the failed task's child ran");
    }
}

#[test]
fn a_key_value_marker_makes_a_task_run_once() {
    let redis = RedisServer::start();
    let (_plugins, _worker) = worker(&redis, &PLUGINS, "keyvalue = true", &[]);
    for plugin in PLUGINS {
        let seen = scenario(&redis, "once", plugin, &["order-7"]);
        assert_eq!(seen[0], json!({"order": "order-7", "ran": true, "runs": 1}), "{plugin}");
        assert_eq!(seen[1], json!({"order": "order-7", "ran": false, "runs": 1}), "{plugin}");
    }
    // Each plugin has its own store.
    let mut store = redis.connection(1);
    let keys: Vec<String> = redis::cmd("KEYS").arg("chard:kv:*:runs").query(&mut store).unwrap();
    assert_eq!(keys.len(), PLUGINS.len(), "{keys:?}");
}

#[test]
fn exception_args_retry_exc_and_reject_from_every_guest_language() {
    let redis = RedisServer::start();
    let (_plugins, _worker) = worker(&redis, &PLUGINS, "", &[]);
    for plugin in PLUGINS {
        let seen = scenario(&redis, "errors", plugin, &[]);
        assert_eq!(seen["args"]["type"], json!("ExpectedException"), "{plugin}: {seen}");
        assert_eq!(seen["args"]["args"], json!(["card declined", 42]), "{plugin}: {seen}");
        // A retry's `exc` is what the job fails with once no retry is left.
        assert_eq!(seen["retry_exc"]["type"], json!("ExpectedException"), "{plugin}: {seen}");
        assert_eq!(seen["retry_exc"]["args"], json!(["upstream down", 503]), "{plugin}: {seen}");
        // Rejected without requeue: dropped, nothing stored (the worker went on).
        assert_eq!(seen["sentinel"], json!(3), "{plugin}");
        assert_eq!(seen["rejected_state"], json!("PENDING"), "{plugin}: {seen}");
    }
}

#[test]
fn every_capability_is_denied_without_its_grant() {
    let redis = RedisServer::start();
    let (_plugins, _worker) = worker(&redis, &PLUGINS, "", &[]);
    for plugin in PLUGINS {
        let seen = scenario(&redis, "denied", plugin, &[]);
        for key in ["progress", "send", "keyvalue"] {
            let message = seen[key]["args"][0].as_str().unwrap_or_default();
            assert!(message.contains(&format!("`{key} = true`")) && message.contains(&format!("{plugin}.toml")), "{plugin}, {key}: {}", seen[key]);
        }
    }
}


/// Each SDK declares which parameters may be left out, so the worker's
/// check of the calls it sends (Celery's `Task.typing`) accepts what the
/// task accepts and refuses the rest with Python's message, failing the
/// task that would have sent it. (Rust: `io.rest`'s listing.)
#[test]
fn a_chain_step_is_checked_against_the_parameters_each_sdk_declares() {
    let redis = RedisServer::start();
    let (_plugins, _worker) = worker(&redis, &PLUGINS, "", &[]);
    for plugin in PLUGINS {
        let seen = scenario(&redis, "typing", plugin, &[]);
        assert_eq!(seen["default"], json!(20), "{plugin}: {seen}");
        assert_eq!(seen["given"], json!(6), "{plugin}: {seen}");
        let message = json!(["scale() takes from 1 to 2 positional arguments but 3 were given"]);
        for task in ["add", "scale"] {
            assert_eq!(seen["too_many"][task]["type"], json!("TypeError"), "{plugin}: {seen}");
            assert_eq!(seen["too_many"][task]["args"], message, "{plugin} {task}: {seen}");
        }
    }
    let rust = plugin_folder(&["io"]);
    let run = host(&["tasks", "--plugins", rust.path().to_str().unwrap()]);
    let listing = run.ok();
    assert!(listing.lines().any(|line| line.starts_with("io.rest(first, second?, *args, **kwargs)  [")), "{listing}");
}
