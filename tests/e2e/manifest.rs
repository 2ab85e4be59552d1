//! Plugin manifests: capabilities denied by default and granted by
//! `<plugin>.toml`, task defaults from the manifest, and strict validation.

use std::time::Duration;

use serde_json::{json, Value};

use crate::util::{host, plugin_folder, RedisServer, Worker};

/// `host call DIR/faults.wasm TASK ARGS` with `MY_TOKEN` in the worker's
/// environment.
fn call(dir: &std::path::Path, task: &str, args: &Value) -> crate::util::Run {
    let output = std::process::Command::new(crate::util::host_bin())
        .args(["call", dir.join("faults.wasm").to_str().unwrap(), task, &args.to_string()])
        .env("NO_COLOR", "1")
        .env("CHARD_CACHE_DIR", crate::util::cache_dir())
        .env("MY_TOKEN", "t0ken")
        .output()
        .unwrap();
    output.into()
}

fn snoop(dir: &std::path::Path) -> Value {
    serde_json::from_str(call(dir, "snoop", &json!(["/data/hello.txt", "MY_TOKEN"])).ok()).unwrap()
}

#[test]
fn capabilities_are_denied_without_a_manifest_and_granted_by_one() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["faults"]);
    let dir = plugins.path();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("hello.txt"), "hello from the host").unwrap();
    let redis_address = format!("127.0.0.1:{}", redis.port);

    // Nothing granted: every reach outside fails inside the task, clearly.
    let seen = snoop(dir);
    assert_eq!(seen["env"], json!({"Err": "environment variable not found"}));
    assert!(seen["file"]["Err"].as_str().unwrap().contains("No such file or directory"), "{seen}");
    let connect = call(dir, "connect", &json!([redis_address, "PING\r\n"]));
    assert!(connect.error_line().contains("ConnectionError") && connect.error_line().contains("Permission denied"), "{}", connect.stderr);
    assert_eq!(
        call(dir, "clock", &json!([])).error_line(),
        "error: task trapped: the wall clock is not granted to plugin faults: add `wall_clock = true` under [capabilities] in faults.toml"
    );
    // Randomness without the grant is a fixed sequence: the same every job.
    let first = call(dir, "entropy", &json!([])).ok().to_string();
    assert_eq!(call(dir, "entropy", &json!([])).ok(), first);

    std::fs::write(
        dir.join("faults.toml"),
        format!(
            r#"version = "2.0.0"

[capabilities]
env = ["MY_TOKEN"]
dirs = [{{ host = "{data}", guest = "/data", mode = "ro" }}]
network = ["{redis_address}"]
wall_clock = true
random = true
"#,
            data = data.path().display()
        ),
    )
    .unwrap();
    let seen = snoop(dir);
    assert_eq!(seen, json!({"env": {"Ok": "t0ken"}, "file": {"Ok": "hello from the host"}}));
    assert_eq!(call(dir, "connect", &json!([redis_address, "PING\r\n"])).ok(), "\"+PONG\"");
    let other = format!("127.0.0.1:{}", crate::util::free_port());
    assert!(call(dir, "connect", &json!([other, "x"])).error_line().contains("Permission denied"), "only the allowlist");
    let now: u64 = call(dir, "clock", &json!([])).ok().parse().unwrap();
    let host_now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(now.abs_diff(host_now) < 60, "guest clock {now}, host {host_now}");
    assert_ne!(call(dir, "entropy", &json!([])).ok(), call(dir, "entropy", &json!([])).ok());
    // Read-only means read-only.
    let write = call(dir, "write_file", &json!(["/data/new.txt", "x"]));
    assert!(write.error_line().contains("OSError: /data/new.txt"), "{}", write.stderr);
    assert!(!data.path().join("new.txt").exists());
}

#[test]
fn a_read_write_dir_can_be_written() {
    let plugins = plugin_folder(&["faults"]);
    let data = tempfile::tempdir().unwrap();
    std::fs::write(
        plugins.path().join("faults.toml"),
        format!("[capabilities]\ndirs = [{{ host = \"{}\", guest = \"/out\", mode = \"rw\" }}]\n", data.path().display()),
    )
    .unwrap();
    assert_eq!(call(plugins.path(), "write_file", &json!(["/out/report.txt", "done"])).ok(), "4");
    assert_eq!(std::fs::read_to_string(data.path().join("report.txt")).unwrap(), "done");
}

#[test]
fn a_manifest_with_a_typo_is_rejected_with_file_line_and_key() {
    let plugins = plugin_folder(&["faults"]);
    std::fs::write(plugins.path().join("faults.toml"), "version = \"1\"\n\n[tasks.spin]\ntme_limit = 1\n").unwrap();
    let run = call(plugins.path(), "spin", &json!([]));
    let line = run.error_line();
    assert!(line.contains("faults.toml:4: unknown field `tme_limit`, expected one of"), "{line}");

    std::fs::write(plugins.path().join("faults.toml"), "[tasks.spn]\ntime_limit = 1\n").unwrap();
    let line = call(plugins.path(), "spin", &json!([])).error_line();
    assert!(line.contains("faults.toml:1: [tasks.spn]: the plugin has no task \"spn\""), "{line}");

    std::fs::write(plugins.path().join("faults.toml"), "[capabilities]\nwallclock = true\n").unwrap();
    let line = call(plugins.path(), "clock", &json!([])).error_line();
    assert!(line.contains("faults.toml:2: unknown field `wallclock`"), "{line}");
}

#[test]
fn manifest_task_defaults_apply_and_a_bad_manifest_keeps_the_previous_version() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["faults"]);
    let manifest = plugins.path().join("faults.toml");
    std::fs::write(&manifest, "version = \"1.0.0\"\n\n[tasks.spin]\ntime_limit = 0.5\n").unwrap();
    let worker = Worker::start(plugins.path(), &redis.url(0), &[]);
    assert!(worker.log().contains("label=\"1.0.0\""), "{}", worker.log());
    let url = redis.url(0);
    let submit = |task: &str, args: &str| host(&["submit", task, args, "--broker", &url, "--wait", "--timeout", "20"]);

    let spin = submit("faults.spin", "[]");
    assert!(spin.error_line().contains("TimeLimitExceeded"), "the manifest's time limit applies: {}", spin.stderr);

    // A manifest edit is a reload; a broken one is refused and 1.0.0 keeps serving.
    let temporary = plugins.path().join("faults.toml.tmp");
    std::fs::write(&temporary, "version = \"1.0.1\"\n[capabilities]\nenv = \"MY_TOKEN\"\n").unwrap();
    std::fs::rename(&temporary, &manifest).unwrap();
    worker.wait_for_log("plugin faults not reloaded", Duration::from_secs(20));
    assert!(worker.log().contains("faults.toml:3: invalid type: string \"MY_TOKEN\", expected a sequence"), "{}", worker.log());
    assert!(submit("faults.spin", "[]").error_line().contains("TimeLimitExceeded"));

    // A good one goes live: the wall clock is granted and spin has no limit
    // from the manifest any more.
    std::fs::write(&temporary, "version = \"1.1.0\"\n[capabilities]\nwall_clock = true\n").unwrap();
    std::fs::rename(&temporary, &manifest).unwrap();
    worker.wait_for_log("plugin loaded (hot reload)", Duration::from_secs(20));
    assert!(submit("faults.clock", "[]").ok().parse::<u64>().unwrap() > 1_700_000_000);
}

#[test]
fn host_now_ms_is_the_wall_clock_and_needs_its_grant() {
    let plugins = plugin_folder(&["faults"]);
    let dir = plugins.path();
    assert_eq!(
        call(dir, "now", &json!([])).error_line(),
        "error: task trapped: the wall clock is not granted to plugin faults: add `wall_clock = true` under [capabilities] in faults.toml",
        "the same trap as the WASI wall clock"
    );
    // The monotonic clock needs no grant: `sleep` measures with it.
    assert_eq!(call(dir, "sleep", &json!([20])).ok(), "20");
    std::fs::write(dir.join("faults.toml"), "[capabilities]\nwall_clock = true\n").unwrap();
    let now: u64 = call(dir, "now", &json!([])).ok().parse().unwrap();
    let host_now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(now.abs_diff(host_now) < 60_000, "guest {now}, host {host_now}");
}

#[test]
fn name_lookups_are_allowed_only_for_hosts_in_the_network_grant() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["faults"]);
    let dir = plugins.path();
    let by_name = format!("localhost:{}", redis.port);

    // The grant names the address, not the name: the lookup of `localhost`
    // is refused, so no DNS query leaves the sandbox.
    std::fs::write(dir.join("faults.toml"), format!("[capabilities]\nnetwork = [\"127.0.0.1:{}\"]\n", redis.port)).unwrap();
    assert_eq!(call(dir, "connect", &json!([format!("127.0.0.1:{}", redis.port), "PING\r\n"])).ok(), "\"+PONG\"");
    let refused = call(dir, "connect", &json!([by_name, "PING\r\n"]));
    assert!(refused.error_line().contains("ConnectionError: localhost:"), "{}", refused.stderr);
    let other = call(dir, "connect", &json!(["example.invalid:80", "x"]));
    assert!(other.error_line().contains("ConnectionError: example.invalid:80"), "{}", other.stderr);

    // Named in the grant: looked up, and its addresses allowed.
    std::fs::write(dir.join("faults.toml"), format!("[capabilities]\nnetwork = [\"{by_name}\"]\n")).unwrap();
    assert_eq!(call(dir, "connect", &json!([by_name, "PING\r\n"])).ok(), "\"+PONG\"");
}

#[test]
fn the_soft_deadline_needs_no_wall_clock_grant() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["faults"]);
    std::fs::write(plugins.path().join("faults.toml"), "[tasks.wind_down]\nsoft_time_limit = 0.2\ntime_limit = 30\n").unwrap();
    let _worker = Worker::start(plugins.path(), &redis.url(0), &[]);
    let run = host(&["submit", "faults.wind_down", "[]", "--broker", &redis.url(0), "--wait", "--timeout", "20"]);
    let elapsed: u64 = run.ok().parse().unwrap();
    // Without the grant, the old wall-clock check trapped; now the task runs
    // until its soft limit (less the moment between the job's start and the
    // task's own first clock reading) and returns.
    assert!(elapsed >= 190, "wound down at the soft limit, not before: {elapsed} ms");
}
