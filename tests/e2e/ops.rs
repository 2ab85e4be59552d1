//! Running in production: Prometheus metrics and health probes of
//! `host run --metrics`, `host inspect`/`host control` (and Celery's own
//! CLI) against Chard and Python workers, and the HTTP job API.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::util::{eventually, free_port, host, plugin_folder, python, run_python, CeleryWorker, RedisServer, Worker};

/// One scrape, parsed by Python's `prometheus_client`: `name{labels}` -> value.
struct Scrape {
    samples: Vec<(String, HashMap<String, String>, f64)>,
}

impl Scrape {
    fn take(port: u16) -> Self {
        let page = run_python("ops_probe.py", &["scrape", &format!("http://127.0.0.1:{port}/metrics")]);
        assert!(page["content_type"].as_str().unwrap().starts_with("application/openmetrics-text"), "{page}");
        assert!(page["classic_samples"].as_u64().unwrap() > 0, "the Prometheus text parser read nothing: {page}");
        let samples = page["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|sample| {
                let labels = serde_json::from_value(sample["labels"].clone()).unwrap();
                (sample["name"].as_str().unwrap().to_string(), labels, sample["value"].as_f64().unwrap())
            })
            .collect();
        Self { samples }
    }

    /// The value of the sample `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|(sample, have, _)| sample == name && labels.iter().all(|(key, value)| have.get(*key).map(String::as_str) == Some(value)))
            .map(|(_, _, value)| *value)
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or_else(|| panic!("no sample {name}{labels:?} in {:#?}", self.samples))
    }
}

fn probe(port: u16, path: &str) -> Value {
    run_python("ops_probe.py", &["get", &format!("http://127.0.0.1:{port}{path}")])
}

/// `host submit` without waiting: the task id.
fn submit(redis: &RedisServer, task: &str, args: &str, extra: &[&str]) -> String {
    let url = redis.url(0);
    let base = ["submit", task, args, "--broker", url.as_str()];
    host(&[&base[..], extra].concat()).ok().to_string()
}

/// `host result ID --wait`: the state it ended in.
fn final_state(redis: &RedisServer, id: &str) -> String {
    let url = redis.url(0);
    let run = host(&["result", id, "--wait", "--timeout", "30", "--broker", &url]);
    run.stdout.split_whitespace().next().unwrap_or_default().to_string()
}

#[test]
fn metrics_count_a_known_mix_of_jobs_exactly() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math", "faults"]);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _worker = Worker::start(
        plugins.path(),
        &redis.url(0),
        &["-n", "chard@metrics", "-c", "2", "--time-limit", "1", "--metrics", &listen],
    );
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(("SUCCESS", submit(&redis, "math.add", "[1, 2]", &[])));
    }
    for _ in 0..2 {
        ids.push(("FAILURE", submit(&redis, "faults.fail", r#"["declined"]"#, &[])));
    }
    ids.push(("SUCCESS", submit(&redis, "faults.flaky", "[1]", &[])));
    ids.push(("FAILURE", submit(&redis, "faults.spin", "[]", &[])));
    ids.push(("FAILURE", submit(&redis, "faults.hog", "[512]", &[])));
    ids.push(("FAILURE", submit(&redis, "no.such_task", "[]", &[])));
    ids.push(("REVOKED", submit(&redis, "math.mul", "[2, 2]", &["--expires", "0.001"])));
    for (expected, id) in &ids {
        assert_eq!(&final_state(&redis, id), expected, "task {id}");
    }
    // A result is stored before the completer counts it: wait for the last.
    let scrape = eventually(Duration::from_secs(10), "every job counted", || {
        let scrape = Scrape::take(port);
        (scrape.value("chard_jobs_finished_total", &[("task", "math.mul")]) == Some(1.0)
            && scrape.value("chard_jobs_finished_total", &[("task", "faults.flaky"), ("outcome", "success")]) == Some(1.0))
        .then_some(scrape)
    });
    let finished = |task: &str, outcome: &str| scrape.get("chard_jobs_finished_total", &[("task", task), ("outcome", outcome)]);
    assert_eq!(finished("math.add", "success"), 3.0);
    assert_eq!(finished("faults.fail", "failure"), 2.0);
    assert_eq!(finished("faults.flaky", "retry"), 1.0);
    assert_eq!(finished("faults.flaky", "success"), 1.0);
    assert_eq!(finished("faults.spin", "time_limit"), 1.0);
    assert_eq!(finished("faults.hog", "memory_limit"), 1.0);
    assert_eq!(finished("no.such_task", "unknown_task"), 1.0);
    assert_eq!(finished("math.mul", "revoked"), 1.0);
    let total: f64 = scrape.samples.iter().filter(|(name, _, _)| name == "chard_jobs_finished_total").map(|(_, _, value)| value).sum();
    assert_eq!(total, 11.0, "no other outcome was counted");
    assert_eq!(scrape.get("chard_job_duration_seconds_count", &[("task", "math.add")]), 3.0);
    assert_eq!(scrape.get("chard_queue_wait_seconds_count", &[("task", "math.add")]), 3.0);
    // Every plugin run made an instance: 3 add, 2 fail, 2 flaky, spin, hog.
    assert_eq!(scrape.get("chard_sandbox_instantiation_seconds_count", &[]), 9.0);
    let spin = scrape.get("chard_job_duration_seconds_sum", &[("task", "faults.spin")]);
    assert!((1.0..5.0).contains(&spin), "spin ran until its 1 s limit: {spin}");
    assert_eq!(scrape.get("chard_worker_info", &[("hostname", "chard@metrics"), ("version", env!("CARGO_PKG_VERSION"))]), 1.0);
    assert_eq!(scrape.get("chard_plugin_info", &[("plugin", "math")]), 1.0);
    assert_eq!(scrape.get("chard_plugin_info", &[("plugin", "faults")]), 1.0);
    assert_eq!(scrape.get("chard_prefetch_slots", &[]), 256.0);
    assert_eq!(scrape.get("chard_jobs_held", &[("state", "running")]), 0.0);
    assert_eq!(scrape.get("chard_redis_errors_total", &[]), 0.0);
    assert_eq!(scrape.value("chard_plugin_load_failures_total", &[]), None, "no plugin failed to load");
}

/// A write Redis refuses for good (a callback queue someone made a hash) is
/// counted in `chard_redis_errors_total`, as fetch errors are.
#[test]
fn completer_write_refusals_are_counted_as_redis_errors() {
    use chard::protocol::{OutgoingTask, Signature};
    use redis::Commands;
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math"]);
    let port = free_port();
    let _: () = redis.connection(0).hset("myhash", "field", "value").unwrap();
    let raw = |value: Value| serde_json::value::to_raw_value(&value).unwrap();
    let mut job = OutgoingTask::new("math.add", raw(json!([1, 2])), raw(json!({})), "test@ops".into());
    let mut callback = Signature::new("math.add", vec![json!(10)], Default::default());
    callback.options.insert("queue".into(), json!("myhash"));
    job.embed.callbacks = Some(vec![callback]);
    let _: () = redis.connection(0).lpush("celery", job.to_envelope()).unwrap();
    let _worker = Worker::start(plugins.path(), &redis.url(0), &["--metrics", &format!("127.0.0.1:{port}")]);
    assert_eq!(final_state(&redis, &job.id), "FAILURE");
    // The job is alone in its batch: the batch is refused once, then the
    // job's own message once more when the batch is written item by item.
    eventually(Duration::from_secs(10), "the refusals counted", || (Scrape::take(port).get("chard_redis_errors_total", &[]) == 2.0).then_some(()));
}

#[test]
fn plugin_reloads_and_failures_are_counted_by_plugin() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math"]);
    let port = free_port();
    let worker = Worker::start(plugins.path(), &redis.url(0), &["--metrics", &format!("127.0.0.1:{port}")]);
    std::fs::write(plugins.path().join("broken.wasm.tmp"), b"not wasm").unwrap();
    std::fs::rename(plugins.path().join("broken.wasm.tmp"), plugins.path().join("broken.wasm")).unwrap();
    worker.wait_for_log("plugin broken not loaded: ", Duration::from_secs(20));
    std::fs::copy(crate::util::plugin("faults"), plugins.path().join("faults.wasm.tmp")).unwrap();
    std::fs::rename(plugins.path().join("faults.wasm.tmp"), plugins.path().join("faults.wasm")).unwrap();
    worker.wait_for_log("plugin loaded (hot reload)", Duration::from_secs(30));
    let scrape = eventually(Duration::from_secs(10), "the reload counted", || {
        let scrape = Scrape::take(port);
        scrape.value("chard_plugin_reloads_total", &[("plugin", "faults")]).map(|_| scrape)
    });
    assert_eq!(scrape.get("chard_plugin_reloads_total", &[("plugin", "faults")]), 1.0, "{}", worker.log());
    assert_eq!(scrape.get("chard_plugin_load_failures_total", &[("plugin", "broken")]), 1.0);
    assert_eq!(scrape.value("chard_plugin_load_failures_total", &[("plugin", "faults")]), None);
    assert_eq!(scrape.get("chard_plugin_info", &[("plugin", "faults")]), 1.0);
}

#[test]
fn probes_and_gauges_follow_a_busy_worker_and_readyz_fails_at_once_on_sigterm() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math", "faults"]);
    let port = free_port();
    let mut worker = Worker::start(
        plugins.path(),
        &redis.url(0),
        &["-c", "1", "--prefetch", "1", "--drain-timeout", "30", "--metrics", &format!("127.0.0.1:{port}")],
    );
    let ready = eventually(Duration::from_secs(10), "ready", || {
        let ready = probe(port, "/readyz");
        (ready["status"] == 200).then_some(ready)
    });
    assert_eq!(ready["body"]["ready"], true, "{ready}");
    assert_eq!(ready["body"]["plugins"], 2, "{ready}");
    assert_eq!(ready["body"]["reasons"], json!([]), "{ready}");

    // Long enough to be still running when the probes after SIGTERM go
    // out, however slowly a loaded machine takes the scrapes before them.
    let sleeper = submit(&redis, "faults.sleep", "[20000]", &[]);
    let queued: Vec<String> = (0..3).map(|_| submit(&redis, "math.add", "[1, 1]", &[])).collect();
    // One slot, one thread: the sleeper runs, the three adds wait in Redis.
    let scrape = eventually(Duration::from_secs(10), "the sleeper running and the backlog sampled", || {
        let scrape = Scrape::take(port);
        (scrape.value("chard_jobs_held", &[("state", "running")]) == Some(1.0)
            && scrape.value("chard_queue_length", &[("queue", "celery")]) == Some(3.0))
        .then_some(scrape)
    });
    assert_eq!(scrape.get("chard_prefetch_slots_in_use", &[]), 1.0);
    assert_eq!(scrape.get("chard_prefetch_slots", &[]), 1.0);

    worker.signal("TERM");
    let draining = probe(port, "/readyz");
    assert_eq!(draining["status"], 503, "{draining}");
    assert_eq!(draining["body"]["shutting_down"], true, "{draining}");
    assert_eq!(draining["body"]["reasons"], json!(["shutting down: draining running jobs"]), "{draining}");
    let alive = probe(port, "/healthz");
    assert_eq!(alive["status"], 200, "{alive}");
    assert_eq!(worker.wait_exit(Duration::from_secs(30)), Some(0));
    assert_eq!(final_state(&redis, &sleeper), "SUCCESS");
    let mut connection = redis.connection(0);
    let left: i64 = redis::cmd("LLEN").arg("celery").query(&mut connection).unwrap();
    assert_eq!(left, 3, "the queued adds stay in the queue: {queued:?}");
}

#[test]
fn readyz_says_why_when_no_plugin_is_loaded() {
    let redis = RedisServer::start();
    let empty = tempfile::tempdir().unwrap();
    let port = free_port();
    // The listener from the config file's [metrics] table this time.
    let config = empty.path().join("chard.toml");
    std::fs::write(&config, format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n")).unwrap();
    let _worker = Worker::start(empty.path(), &redis.url(0), &["--config", config.to_str().unwrap()]);
    let not_ready = eventually(Duration::from_secs(10), "Redis seen", || {
        let reply = probe(port, "/readyz");
        reply["body"]["redis_last_seen_seconds"].is_number().then_some(reply)
    });
    assert_eq!(not_ready["status"], 503, "{not_ready}");
    assert_eq!(not_ready["body"]["reasons"], json!(["no plugins loaded: every job would fail as unknown"]), "{not_ready}");
}

#[test]
fn a_busy_metrics_port_is_an_error_at_start() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math"]);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let run = host(&["run", "--plugins", plugins.path().to_str().unwrap(), "--broker", &redis.url(0), "--metrics", &address]);
    assert!(run.error_line().contains(&format!("binding the metrics listener to {address}")), "{}", run.stderr);
}

fn host_with_broker(redis: &RedisServer, args: &[&str]) -> crate::util::Run {
    let url = redis.url(0);
    host(&[args, &["--broker", url.as_str()]].concat())
}

#[test]
fn inspect_and_control_answer_from_chard_and_celery_workers() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math"]);
    let port = free_port();
    let mut chard = Worker::start(
        plugins.path(),
        &redis.url(0),
        &["-n", "chard@ops", "-Q", "chard-only", "--metrics", &format!("127.0.0.1:{port}")],
    );
    let _celery = CeleryWorker::start(&redis.url(0), &redis.url(1));
    let nodes = eventually(Duration::from_secs(30), "both workers answer ping", || {
        let run = host_with_broker(&redis, &["inspect", "ping", "--json"]);
        let replies: Value = serde_json::from_str(run.stdout.trim()).ok()?;
        (replies.as_object()?.len() == 2).then_some(replies)
    });
    let celery_node = nodes.as_object().unwrap().keys().find(|node| *node != "chard@ops").unwrap().clone();
    assert_eq!(nodes["chard@ops"], json!({"ok": "pong"}));
    assert_eq!(nodes[&celery_node], json!({"ok": "pong"}));

    let ping = host_with_broker(&redis, &["inspect", "ping", "-d", "chard@ops"]);
    assert_eq!(ping.ok(), "->  chard@ops: OK\n        pong\n\n1 node online.");
    let registered = host_with_broker(&redis, &["inspect", "registered", "--json"]);
    let registered: Value = serde_json::from_str(registered.ok()).unwrap();
    assert!(registered["chard@ops"].as_array().unwrap().contains(&json!("math.add")), "{registered}");
    assert!(registered[&celery_node].as_array().unwrap().contains(&json!("math.add")), "{registered}");
    for method in ["stats", "active", "reserved", "scheduled", "revoked"] {
        let run = host_with_broker(&redis, &["inspect", method, "--json", "-d", &format!("chard@ops,{celery_node}")]);
        let replies: Value = serde_json::from_str(run.ok()).unwrap();
        assert_eq!(replies.as_object().unwrap().len(), 2, "{method}: {replies}");
    }
    let stats = host_with_broker(&redis, &["inspect", "stats", "--json", "-d", "chard@ops"]);
    let stats: Value = serde_json::from_str(stats.ok()).unwrap();
    assert_eq!(stats["chard@ops"]["sw_ident"], "chard");

    let limited = host_with_broker(&redis, &["control", "rate-limit", "math.add", "1/m", "--json"]);
    let limited: Value = serde_json::from_str(limited.ok()).unwrap();
    assert_eq!(limited["chard@ops"], json!({"ok": "new rate limit set successfully"}));
    assert_eq!(limited[&celery_node], json!({"ok": "new rate limit set successfully"}));
    let unknown = host_with_broker(&redis, &["control", "rate-limit", "no.such", "2/s", "--json", "-d", "chard@ops"]);
    assert_eq!(serde_json::from_str::<Value>(unknown.ok()).unwrap()["chard@ops"], json!({"error": "unknown task"}));
    let bad = host_with_broker(&redis, &["control", "rate-limit", "math.add", "2/d"]);
    assert!(bad.error_line().contains("the unit must be s, m or h"), "{}", bad.stderr);
    let events = host_with_broker(&redis, &["control", "enable-events", "-d", "chard@ops"]);
    assert_eq!(events.ok(), "->  chard@ops: OK\n        task events enabled\n\n1 node online.");

    // The limit set remotely holds: at 1/m the second add waits, counted as
    // held for a rate limit.
    let first = submit(&redis, "math.add", "[1, 0]", &["-Q", "chard-only"]);
    assert_eq!(final_state(&redis, &first), "SUCCESS");
    let _second = submit(&redis, "math.add", "[2, 0]", &["-Q", "chard-only"]);
    eventually(Duration::from_secs(10), "the second add held by the rate limit", || {
        let scrape = Scrape::take(port);
        (scrape.value("chard_jobs_held", &[("state", "rate_limit")]) == Some(1.0)).then_some(())
    });
    let silent = host_with_broker(&redis, &["inspect", "ping", "-d", "nobody@nowhere", "--timeout", "0.3"]);
    assert_eq!(silent.code, Some(1));
    assert!(silent.stderr.contains("No nodes replied within time constraint"), "{}", silent.stderr);

    // Celery's own CLI drives a Chard worker.
    let celery = |args: &[&str]| {
        let output = Command::new(python())
            .args(["-m", "celery", "-b", &redis.url(0)])
            .args(args)
            .output()
            .unwrap();
        (output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr))
    };
    let (code, text) = celery(&["control", "rate_limit", "math.add", "10/m", "-d", "chard@ops"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("chard@ops: OK") && text.contains("new rate limit set successfully"), "{text}");
    let (code, text) = celery(&["control", "shutdown", "-d", "chard@ops"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("chard@ops: OK"), "{text}");
    assert_eq!(chard.wait_exit(Duration::from_secs(30)), Some(0));
    assert!(chard.log().contains("shutdown requested by remote control"), "{}", chard.log());
}

#[test]
fn http_api_submits_reads_revokes_and_documents_itself() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math", "faults"]);
    let _worker = Worker::start(plugins.path(), &redis.url(0), &["-n", "chard@api"]);
    let token_dir = tempfile::tempdir().unwrap();
    let token = "s3cret-token-for-the-api-test";
    let token_file = token_dir.path().join("token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _api = Worker::spawn(
        &[
            "serve", "--listen", &listen, "--broker", &redis.url(0), "--auth-token-file", token_file.to_str().unwrap(),
            "--plugins", plugins.path().to_str().unwrap(),
        ],
        "HTTP API listening",
    );
    let seen = run_python("ops_probe.py", &["api", &format!("http://{listen}"), token, &redis.url(0)]);
    assert_eq!(seen["healthz_no_token"]["status"], 200, "{seen}");
    assert_eq!(seen["submit_no_token"]["status"], 401, "{seen}");
    assert_eq!(seen["submit_bad_token"]["status"], 401, "{seen}");
    let waited = &seen["submit_wait"];
    assert_eq!((waited["status"].clone(), waited["body"]["status"].clone(), waited["body"]["result"].clone()), (json!(200), json!("SUCCESS"), json!(5)), "{seen}");
    assert_eq!(seen["result"]["body"]["result"], 5, "{seen}");
    assert_eq!(seen["kwargs_wait"]["body"]["result"], 42, "{seen}");
    assert_eq!(seen["failure_wait"]["body"]["status"], "FAILURE", "{seen}");
    assert_eq!(seen["failure_wait"]["body"]["result"]["exc_message"], json!(["card declined"]), "{seen}");
    let fields = [
        ("args", "args"), ("kwargs", "kwargs"), ("priority", "options.priority"), ("countdown", "options.countdown"),
        ("unknown_option", "options.retries"), ("unknown_field", "argz"), ("not_json", "body"), ("wait", "wait"), ("name", "name"),
    ];
    for (case, field) in fields {
        let reply = &seen["bad"][case];
        assert_eq!(reply["status"], 422, "{case}: {reply}");
        assert_eq!(reply["body"]["field"], field, "{case}: {reply}");
        assert!(reply["body"]["error"].as_str().is_some_and(|error| !error.is_empty()), "{case}: {reply}");
    }
    assert_eq!(seen["parked_after_bad"], 0, "bad input reached Redis: {seen}");
    assert_eq!(seen["parked_submit"]["status"], 202, "{seen}");
    assert_eq!(seen["parked_after_good"], 1, "{seen}");
    assert_eq!(seen["pending"]["body"]["status"], "PENDING", "{seen}");
    assert_eq!(seen["revoke"]["status"], 200, "{seen}");
    assert_eq!(seen["revoke"]["body"]["terminate"], true, "{seen}");
    assert_eq!(seen["revoked_in_redis"], true, "{seen}");
    let tasks = seen["tasks"]["body"].as_array().unwrap();
    let add = tasks.iter().find(|task| task["name"] == "math.add").unwrap_or_else(|| panic!("{seen}"));
    assert_eq!(add["workers"], json!(["chard@api"]), "{seen}");
    assert!(add["plugin_version"].as_str().is_some_and(|version| version.len() >= 12), "{seen}");
    assert!(tasks.iter().any(|task| task["name"] == "faults.spin"), "{seen}");
    let workers = seen["workers"]["body"].as_array().unwrap();
    assert_eq!(workers.len(), 1, "{seen}");
    assert_eq!(workers[0]["hostname"], "chard@api", "{seen}");
    assert_eq!(workers[0]["stats"]["sw_ident"], "chard", "{seen}");
    assert_eq!(seen["openapi_valid"], true);
    assert_eq!(
        seen["openapi_paths"],
        json!(["/healthz", "/results/{id}", "/results/{id}/revoke", "/tasks", "/tasks/{name}", "/workers"]),
        "{seen}"
    );
}

#[test]
fn the_readmes_systemd_unit_passes_systemd_analyze_verify() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let start = readme.find("```ini\n# chard-worker.service\n").expect("the README has the systemd unit") + "```ini\n".len();
    let unit = &readme[start..start + readme[start..].find("```").unwrap()];
    assert!(unit.contains("ExecStart=/usr/local/bin/host run "), "{unit}");
    // verify checks that ExecStart's binary exists: point it at the one built.
    let unit = unit.replace("/usr/local/bin/host", crate::util::host_bin().to_str().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chard-worker.service");
    std::fs::write(&path, unit).unwrap();
    let output = Command::new("systemd-analyze").arg("verify").arg(&path).output().expect("systemd-analyze (Debian's systemd package)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // Unknown keys are only warned about: there must be no warning at all.
    assert!(!stderr.contains("chard-worker.service"), "{stderr}");
}
