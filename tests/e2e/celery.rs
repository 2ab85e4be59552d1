//! Compatibility with stock Celery 5.7 in both directions.


use serde_json::json;

use crate::util::{host, plugin_folder, run_python, CeleryWorker, RedisServer, Worker};

#[test]
fn celery_client_against_host_worker() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math", "faults"]);
    let _worker = Worker::start(plugins.path(), &redis.url(0), &["--result-backend", &redis.url(1), "-c", "2"]);
    let seen = run_python("celery_client.py", &["basic", &redis.url(0), &redis.url(1)]);

    assert_eq!(seen["add"], json!(5));
    assert_eq!(seen["kwargs"], json!(42));
    assert_eq!(seen["xsum"], json!(7.0));
    assert_eq!(seen["echo"], json!({"s": "héllo", "l": [1, 2.5, null]}));
    assert_eq!(seen["fail"], json!({"type": "Exception", "module": "builtins", "args": ["card declined"]}));
    assert_eq!(seen["typed"], json!({"type": "ValueError", "module": "builtins", "args": ["bad value 7"]}));
    assert_eq!(seen["unknown"], json!({"type": "NotRegistered", "module": "celery.exceptions", "args": ["no.such.task"]}));
    assert_eq!(seen["argerror"]["type"], json!("TypeError"));
    assert_eq!(seen["argerror"]["args"], json!(["add: expected 2 arguments (x, y), got 3"]));
    assert_eq!(seen["timeout"]["type"], json!("TimeLimitExceeded"));
    let expected: Vec<i64> = (0..200).map(|i| i * 2).collect();
    assert_eq!(seen["many"], json!(expected));
    assert_eq!(seen["failed_state"], json!("FAILURE"));
}

#[test]
fn celery_canvas_runs_on_host_worker() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math", "faults"]);
    let _worker = Worker::start(plugins.path(), &redis.url(0), &["--result-backend", &redis.url(1)]);
    let seen = run_python("celery_client.py", &["canvas", &redis.url(0), &redis.url(1)]);
    assert_eq!(seen["chain"], json!(40));
    assert_eq!(seen["chain3"], json!(13));
    // An immutable middle link fails; the last link's result, which the
    // client waits on, carries that error.
    assert_eq!(seen["chain_error"], json!({"type": "ValueError", "module": "builtins", "args": ["bad 7"]}));
    assert_eq!(seen["group"], json!([0, 2, 4, 6, 8, 10, 12, 14, 16, 18]));
    assert_eq!(seen["link_parent"], json!(5));
    assert_eq!(seen["link_child"], json!(50));
}

#[test]
fn celery_remote_control_ping_inspect_and_revoke() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math", "faults"]);
    let _worker = Worker::start(plugins.path(), &redis.url(0), &["--result-backend", &redis.url(1), "-n", "w1@test"]);
    let seen = run_python("celery_client.py", &["control", &redis.url(0), &redis.url(1)]);
    assert_eq!(seen["ping"], json!([{"w1@test": {"ok": "pong"}}]));
    let registered = seen["registered"]["w1@test"].as_array().expect("registered reply");
    assert!(registered.contains(&json!("math.add")) && registered.contains(&json!("faults.spin")), "{registered:?}");
    assert_eq!(seen["revoked_eta"], json!({"type": "TaskRevokedError", "module": "celery.exceptions", "args": ["revoked"]}));
    assert_eq!(seen["terminated"], json!({"type": "TaskRevokedError", "module": "celery.exceptions", "args": ["terminated"]}));
    assert_eq!(seen["after"], json!(4), "the worker keeps serving after a terminate");
}

#[test]
fn revoking_a_task_nobody_holds_stores_revoked_as_celery_does() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math"]);
    let _worker = Worker::start(plugins.path(), &redis.url(0), &["--result-backend", &redis.url(1)]);
    let seen = run_python("celery_client.py", &["revoke_unheld", &redis.url(0), &redis.url(1)]);
    assert_eq!(seen["waiting"], json!({"type": "TaskRevokedError", "module": "celery.exceptions", "args": ["revoked"]}));
    assert_eq!(seen["waiting_state"], json!("REVOKED"));
    // A finished task keeps its result.
    assert_eq!(seen["finished"], json!(4));
    assert_eq!(seen["finished_state"], json!("SUCCESS"));
}

#[test]
fn host_revoke_is_honoured_by_a_worker_started_later() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let id = host(&["submit", "math.add", "[1, 2]", "--broker", &url]).ok().to_string();
    assert_eq!(host(&["revoke", &id, "--broker", &url]).ok(), format!("revoked {id}"));
    let plugins = plugin_folder(&["math"]);
    let _worker = Worker::start(plugins.path(), &url, &[]);
    let run = host(&["result", &id, "--broker", &url, "--wait", "--timeout", "20"]);
    assert_eq!(run.code, Some(1));
    assert!(run.stdout.starts_with("REVOKED"), "{}", run.stdout);
    assert_eq!(host(&["submit", "math.add", "[2, 2]", "--broker", &url, "--wait"]).ok(), "4");
}

#[test]
fn celery_revoke_by_stamped_headers_skips_held_stops_running_and_refuses_later_jobs() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math", "faults"]);
    let _worker = Worker::start(plugins.path(), &redis.url(0), &["--result-backend", &redis.url(1), "-n", "w1@stamps", "-c", "2"]);
    let seen = run_python("celery_client.py", &["revoke_stamped", &redis.url(0), &redis.url(1)]);
    // Celery's reply: the stamps of the jobs it stopped, as a defaultdict(set).
    assert_eq!(seen["replies"], json!([{"w1@stamps": {"ok": "headers defaultdict(<class 'set'>, {'mon': {'batch-7'}}) revoked"}}]));
    let revoked = json!({"type": "TaskRevokedError", "module": "celery.exceptions", "args": ["revoked"]});
    assert_eq!(seen["held"], revoked, "an ETA job stamped batch-7 is skipped when its time comes");
    assert_eq!(seen["held_in_list"], revoked, "a list stamp matches by any of its values");
    assert_eq!(seen["later"], revoked, "a job received after the revoke is refused");
    assert_eq!(seen["running"], json!({"type": "TaskRevokedError", "module": "celery.exceptions", "args": ["terminated"]}));
    for key in ["held_state", "held_in_list_state", "later_state", "running_state"] {
        assert_eq!(seen[key], json!("REVOKED"), "{key}");
    }
    assert_eq!(seen["other_batch"], json!(5));
    assert_eq!(seen["unstamped"], json!(6));
    assert_eq!(seen["after"], json!(5));
}

#[test]
fn host_revoke_stamped_is_honoured_by_a_worker_started_later() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let run = host(&["revoke", "--stamped", "tenant=acme", "--broker", &url]);
    assert_eq!(run.ok(), "revoked every job stamped tenant=acme");
    let ids = run_python("celery_client.py", &["send_stamped", &url, &url]);
    let plugins = plugin_folder(&["math"]);
    let _worker = Worker::start(plugins.path(), &url, &[]);
    let stamped = host(&["result", ids["stamped"].as_str().unwrap(), "--broker", &url, "--wait", "--timeout", "20"]);
    assert_eq!(stamped.code, Some(1));
    assert!(stamped.stdout.starts_with("REVOKED"), "{}", stamped.stdout);
    let unstamped = host(&["result", ids["unstamped"].as_str().unwrap(), "--broker", &url, "--wait", "--timeout", "20"]);
    assert_eq!(unstamped.ok(), "SUCCESS 4");
    let bad = host(&["revoke", "--stamped", "tenant", "--broker", &url]);
    assert_eq!(bad.error_line(), "error: --stamped takes HEADER=VALUE, e.g. --stamped mon=batch-7, got \"tenant\"");
}

#[test]
fn celery_chords_complete_on_host_workers() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math", "faults"]);
    // Two workers: header members finish on both, the join must fire once.
    let _first = Worker::start(plugins.path(), &redis.url(0), &["--result-backend", &redis.url(1)]);
    let _second = Worker::start(plugins.path(), &redis.url(0), &["--result-backend", &redis.url(1)]);
    let seen = run_python("celery_client.py", &["chords", &redis.url(0), &redis.url(1)]);
    assert_eq!(seen["small"], json!(90.0));
    assert_eq!(seen["big"], json!((0..1000).map(|i| i + 1).sum::<i64>() as f64));
    assert_eq!(seen["failing_get"]["type"], json!("ValueError"), "{}", seen["failing_get"]);
    assert_eq!(seen["failing"]["state"], json!("FAILURE"));
    assert_eq!(seen["failing"]["type"], json!("ChordError"), "{}", seen["failing"]);
    let message = seen["failing"]["args"][0].as_str().unwrap();
    assert!(message.starts_with("Dependency ") && message.ends_with("raised ValueError('bad 9')"), "{message}");
}

#[test]
fn celery_retries_countdown_eta_expires_and_limits() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math", "faults"]);
    let _worker = Worker::start(plugins.path(), &redis.url(0), &["--result-backend", &redis.url(1)]);
    let seen = run_python("celery_client.py", &["semantics", &redis.url(0), &redis.url(1)]);
    assert_eq!(seen["flaky3"], json!(3), "three retries, then success");
    assert_eq!(seen["flaky9"]["type"], json!("MaxRetriesExceededError"), "{}", seen["flaky9"]);
    assert_eq!(seen["countdown"], json!(3));
    assert_eq!(seen["countdown_waited"], json!(true), "a countdown job must not run early");
    assert_eq!(seen["eta"], json!(4));
    assert_eq!(seen["eta_waited"], json!(true), "an ETA with a -05:00 offset must not run early");
    assert_eq!(seen["expired"], json!({"type": "TaskRevokedError", "module": "celery.exceptions", "args": ["expired"]}));
    assert_eq!(seen["soft_limit_context"]["time_limit_ms"], json!(7000), "the message's timelimit header wins");
}

#[test]
fn celery_builtin_canvas_tasks_run_on_host_worker() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math", "faults"]);
    let _worker = Worker::start(plugins.path(), &redis.url(0), &["--result-backend", &redis.url(1)]);
    let seen = run_python("celery_client.py", &["builtins", &redis.url(0), &redis.url(1)]);
    assert_eq!(seen["starmap"], json!([3, 7, 11]));
    assert_eq!(seen["map"], json!(["a", [1], {"k": 2}]));
    assert_eq!(seen["chunks"], json!([[0, 2, 4], [6, 8, 10], [12, 14, 16], [18]]));
    assert_eq!(seen["starmap_error"]["type"], json!("TypeError"), "{}", seen["starmap_error"]);
    assert_eq!(seen["chunks_task"], json!([[2, 4], [6]]));
    assert_eq!(seen["accumulate"], json!([1, 2, 3]));
    assert_eq!(seen["accumulate_index"], json!(2));
}

/// The same canvas from `host chain`/`group`/`chord`/`submit --link`, run by
/// a Chard worker and by a stock Python Celery worker: same results.
#[test]
fn host_canvas_runs_on_chard_and_on_python_celery_workers() {
    for python_worker in [false, true] {
        let redis = RedisServer::start();
        let (broker, backend) = (redis.url(0), redis.url(1));
        let plugins = plugin_folder(&["math", "faults"]);
        let _python = python_worker.then(|| CeleryWorker::start(&broker, &backend));
        let _chard = (!python_worker).then(|| Worker::start(plugins.path(), &broker, &["--result-backend", &backend]));
        let connection = ["--broker", broker.as_str(), "--result-backend", backend.as_str(), "--wait", "--timeout", "60"];
        let run = |args: &[&str]| host(&[args, &connection[..]].concat());
        let who = if python_worker { "python celery worker" } else { "chard worker" };
        assert_eq!(run(&["chain", "math.add [2, 2]", "math.mul [10]", "math.add [1]"]).ok(), "41", "{who}");
        assert_eq!(run(&["group", "math.add [1, 1]", "math.add [2, 2]", "math.mul [3, 3]"]).ok(), "[2,4,9]", "{who}");
        assert_eq!(run(&["chord", "--body", "math.xsum", "math.add [1, 1]", "math.add [2, 2]", "math.add [3, 3]"]).ok(), "12.0", "{who}");
        assert_eq!(run(&["submit", "faults.flaky", "[2]"]).ok(), "2", "{who}: retried twice, then succeeded");
        assert_eq!(run(&["submit", "math.mul", "[6]", "--kwargs", r#"{"y": 7}"#]).ok(), "42", "{who}");
        // A link: the parent's result is the callback's first argument.
        let parent = host(&["submit", "math.add", "[2, 3]", "--link", "math.mul [10]", "--broker", &broker, "--result-backend", &backend]).ok().to_string();
        assert_eq!(host(&["result", &parent, "--broker", &broker, "--result-backend", &backend, "--wait"]).ok(), "SUCCESS 5");
        let mut store = redis.connection(1);
        let document: String = redis::Commands::get(&mut store, format!("celery-task-meta-{parent}")).unwrap();
        let document: serde_json::Value = serde_json::from_str(&document).unwrap();
        let child = document["children"][0][0][0].as_str().unwrap_or_else(|| panic!("{who}: no child in {document}")).to_string();
        assert_eq!(host(&["result", &child, "--broker", &broker, "--result-backend", &backend, "--wait"]).ok(), "SUCCESS 50", "{who}");
    }
}
