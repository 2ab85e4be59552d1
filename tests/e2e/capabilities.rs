//! What a task can do beyond computing (WIT 0.2): progress, sending and
//! replacing tasks, the key-value store, the complete request, failures
//! with arguments, reject; each behind its grant. Driven by the stock
//! Celery 5.7 client against the `io` plugin; and a plugin built against
//! the 0.1 world still runs.

use std::path::Path;

use serde_json::json;

use crate::util::{host, plugin_folder, run_python, RedisServer, Worker};

/// The `io` manifest granting everything it uses.
const GRANTS: &str = "[capabilities]\nprogress = true\nsend = true\nkeyvalue = true\n";

fn granted_folder() -> tempfile::TempDir {
    let plugins = plugin_folder(&["math", "io"]);
    std::fs::write(plugins.path().join("io.toml"), GRANTS).unwrap();
    plugins
}

fn worker(plugins: &Path, redis: &RedisServer) -> Worker {
    Worker::start(plugins, &redis.url(0), &["--result-backend", &redis.url(1), "-c", "2"])
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name).display().to_string()
}

#[test]
fn a_plugin_built_against_the_0_1_world_still_runs() {
    assert_eq!(host(&["call", &fixture("math_v0_1.wasm"), "add", "[2, 3]"]).ok(), "5");
    let redis = RedisServer::start();
    let plugins = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("math_v0_1.wasm"), plugins.path().join("math.wasm")).unwrap();
    let _worker = worker(plugins.path(), &redis);
    let url = redis.url(0);
    let args = ["submit", "math.add", "[20, 22]", "--broker", &url, "--result-backend", &redis.url(1), "--wait"];
    assert_eq!(host(&args).ok(), "42");
}

#[test]
fn progress_is_polled_by_the_celery_client_and_replaced_by_the_result() {
    let redis = RedisServer::start();
    let plugins = granted_folder();
    let _worker = worker(plugins.path(), &redis);
    let seen = run_python("celery_io.py", &["progress", &redis.url(0), &redis.url(1)]);
    let reports = seen["seen"].as_array().expect("progress reports");
    // Coalescing may skip a step; every report is a real one, in order, and
    // the client saw most of the ten 150 ms steps.
    assert!(reports.len() >= 5, "{reports:?}");
    let steps: Vec<u64> = reports.iter().map(|report| report["current"].as_u64().unwrap()).collect();
    assert!(steps.windows(2).all(|pair| pair[0] < pair[1]), "{steps:?}");
    assert!(reports.iter().all(|report| report["total"] == json!(10)), "{reports:?}");
    assert_eq!(seen["final"], json!("done"));
    assert_eq!(seen["state"], json!("SUCCESS"));
    assert_eq!(seen["info"], json!("done"));
}

#[test]
fn a_task_fans_out_a_hundred_children() {
    let redis = RedisServer::start();
    let plugins = granted_folder();
    let _worker = worker(plugins.path(), &redis);
    let seen = run_python("celery_io.py", &["fan_out", &redis.url(0), &redis.url(1)]);
    assert_eq!(seen["ids"], json!(100));
    let expected: Vec<u64> = (0..100).map(|i| i * 2).collect();
    assert_eq!(seen["children"], json!(expected));
}

#[test]
fn a_task_that_sends_then_fails_sends_nothing() {
    let redis = RedisServer::start();
    let plugins = granted_folder();
    let _worker = Worker::start(plugins.path(), &redis.url(0), &["--result-backend", &redis.url(1), "-c", "1"]);
    let seen = run_python("celery_io.py", &["send_then_fail", &redis.url(0), &redis.url(1)]);
    assert_eq!(seen["error"]["type"], json!("RuntimeError"));
    assert_eq!(seen["child_state"], json!("PENDING"));
}

#[test]
fn chains_groups_and_chords_sent_from_a_task() {
    let redis = RedisServer::start();
    let plugins = granted_folder();
    let _worker = worker(plugins.path(), &redis);
    let seen = run_python("celery_io.py", &["canvas", &redis.url(0), &redis.url(1)]);
    assert_eq!(seen["chain"], json!(41));
    assert_eq!(seen["group_id_is_str"], json!(true));
    assert_eq!(seen["chord"], json!(6.0));
}

#[test]
fn replace_in_a_chain_in_a_chord_header_and_alone() {
    let redis = RedisServer::start();
    let plugins = granted_folder();
    let _worker = worker(plugins.path(), &redis);
    let seen = run_python("celery_io.py", &["replace", &redis.url(0), &redis.url(1)]);
    // a | b.replace(group(add(1,1), add(2,2))) | xsum
    assert_eq!(seen["chain_group"], json!(6.0));
    assert_eq!(seen["replaced_step"], json!([2, 4]), "the replaced step's id holds the group's results");
    assert_eq!(seen["single"], json!(42));
    assert_eq!(seen["chord_member"], json!(12.0));
}

/// Nested canvases a task sends or is replaced by end as on a Python
/// worker running the same tasks: a group replacing a chain step with two
/// steps after it, chord members replaced by a group and by a chord, a
/// chain holding a group, a chord whose body is a chain.
#[test]
fn nested_canvases_sent_or_replaced_from_a_task_end_as_on_a_python_worker() {
    let python_redis = RedisServer::start();
    let python_worker = crate::util::CeleryWorker::start(&python_redis.url(0), &python_redis.url(1));
    let on_python = run_python("celery_io.py", &["nested", &python_redis.url(0), &python_redis.url(1)]);
    drop(python_worker);

    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math", "io", "canvas"]);
    std::fs::write(plugins.path().join("io.toml"), GRANTS).unwrap();
    let _worker = worker(plugins.path(), &redis);
    let on_chard = run_python("celery_io.py", &["nested", &redis.url(0), &redis.url(1)]);
    assert_eq!(on_chard, on_python, "Chard (left) and a Python worker (right) differ");
    // And what they agree on is what the canvases compute.
    assert_eq!(on_chard["group_then_two_steps"], json!(16));
    assert_eq!(on_chard["member_to_group"], json!([[2, 4], 6]));
    assert_eq!(on_chard["member_to_chord"], json!([6, 6]));
    assert_eq!(on_chard["to_chain_with_group"], json!(7));
    assert_eq!(on_chard["sent_chain_with_group"], json!(7));
    assert_eq!(on_chard["children"], json!([["AsyncResult", 0]]), "a chain: its first task");
    assert_eq!(on_chard["first_child_ran"], json!(2));
    assert_eq!(on_chard["group_child"], json!([["GroupResult", true, [2, 4]]]));
    assert_eq!(on_chard["sent_chord_with_chain_body"], json!(7));
}

#[test]
fn key_value_makes_a_task_idempotent_across_two_workers() {
    let redis = RedisServer::start();
    let plugins = granted_folder();
    let _first = worker(plugins.path(), &redis);
    let _second = worker(plugins.path(), &redis);
    let seen = run_python("celery_io.py", &["once", &redis.url(0), &redis.url(1)]);
    let mut expected = vec!["processed"];
    expected.extend(["skipped"; 19]);
    expected.sort();
    assert_eq!(seen["outcomes"], json!(expected));
    assert_eq!(
        seen["tour"],
        json!({"before": false, "read": {"n": 1}, "counter": 5, "deleted": true, "after": null})
    );
    let mut connection = redis.connection(1);
    let processed: i64 = redis::cmd("GET").arg("chard:kv:io:processed").query(&mut connection).unwrap();
    assert_eq!(processed, 1, "namespaced under chard:kv:<plugin>:");
}

#[test]
fn each_capability_is_denied_without_its_grant() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math", "io"]);
    let _worker = worker(plugins.path(), &redis);
    let seen = run_python("celery_io.py", &["denied", &redis.url(0), &redis.url(1)]);
    for (task, what, key) in [
        ("progress", "progress (update-state)", "progress"),
        ("fan_out", "sending tasks", "send"),
        ("once", "the key-value store", "keyvalue"),
        ("replace_with", "replacing the task", "send"),
    ] {
        let message = seen[task]["args"][0].as_str().unwrap_or_default();
        let wanted = format!("{what} is not granted to plugin io: add `{key} = true` under [capabilities] in io.toml");
        assert!(message.contains(&wanted), "{task}: {message}");
    }
}

#[test]
fn the_request_exception_args_retry_exc_and_reject_reach_celery() {
    let redis = RedisServer::start();
    let plugins = granted_folder();
    let _worker = worker(plugins.path(), &redis);
    let seen = run_python("celery_io.py", &["request", &redis.url(0), &redis.url(1)]);
    let request = &seen["request"];
    assert_eq!(request["priority"], json!(7));
    assert_eq!(request["routing_key"], json!("celery"));
    assert_eq!(request["redelivered"], json!(false));
    assert_eq!(request["headers"]["x-tenant"], json!("acme"), "custom headers as sent");
    assert_eq!(request["headers"]["task"], json!("io.request"), "standard headers too");
    assert!(request["correlation_id"].is_string() && request["reply_to"].is_string(), "{request}");
    assert_eq!(request["requested_time_limit_ms"], json!(30000));
    assert_eq!(request["requested_soft_time_limit_ms"], json!(20000));
    assert_eq!(seen["exc_args"], json!({"type": "ValueError", "module": "builtins", "args": ["msg", 42]}));
    assert_eq!(seen["retry_exc"], json!({"type": "ConnectionError", "module": "builtins", "args": ["service down", 503]}));
    assert_eq!(seen["retry_expired"]["type"], json!("TaskRevokedError"));
    assert_eq!(seen["rest"], json!({"first": 1, "second": 2, "args": [3, 4], "kwargs": {"k": null}}));
    assert_eq!(seen["rest_missing"]["second"], json!("missing"));
    assert_eq!(seen["rest_null"]["second"], json!("null"));
    assert_eq!(seen["requeued"], json!(2), "rejected with requeue once, then ran again");
    assert_eq!(seen["dropped_state"], json!("PENDING"), "rejected without requeue: acked, no state stored");
}
