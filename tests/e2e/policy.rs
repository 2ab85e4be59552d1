//! The worker's policy: what manifests may grant (`--policy FILE` or a
//! `[policy]` table in `--config`), deployed plugins capped to nothing by
//! default, and ceilings on memory and time limits.

use std::time::Duration;

use serde_json::{json, Value};

use crate::fleet::{deploy_signed, keygen};
use crate::util::{eventually, host, plugin, plugin_folder, run_python, RedisServer, Worker};

fn submit(url: &str, task: &str, args: &Value) -> crate::util::Run {
    host(&["submit", task, &args.to_string(), "--broker", url, "--wait", "--timeout", "20"])
}

#[test]
fn a_deployed_manifest_gets_no_dirs_unless_the_policy_grants_them_and_a_refusal_keeps_the_previous_version() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let staging = tempfile::tempdir().unwrap();
    let (secret, public) = keygen(staging.path(), "ops");
    let dir = tempfile::tempdir().unwrap();
    let worker = Worker::start(dir.path(), &url, &["--sync", "--trust-key", &public, "-c", "1"]);
    let manifest = staging.path().join("faults.toml");
    let deploy = |text: &str| {
        std::fs::write(&manifest, text).unwrap();
        deploy_signed(&plugin("faults"), &secret, &url, &["--manifest", manifest.to_str().unwrap()]).ok().to_string()
    };

    deploy("version = \"1\"\n[capabilities]\nwall_clock = true\n");
    eventually(Duration::from_secs(30), "faults v1", || (submit(&url, "faults.clock", &json!([])).code == Some(0)).then_some(()));

    // The whole machine, read-write: what issue #11 showed Redis write access
    // could do. Signed or not, the worker's policy refuses it.
    deploy("version = \"2\"\n[capabilities]\nwall_clock = true\ndirs = [{ host = \"/\", guest = \"/h\", mode = \"rw\" }]\n");
    worker.wait_for_log("capabilities.dirs / (rw) is beyond the worker's policy for deployed plugins", Duration::from_secs(20));
    let refusal = worker.log().lines().find(|line| line.contains("beyond the worker's policy")).unwrap().to_string();
    assert!(refusal.contains("plugin faults not reloaded, previous version keeps serving") && refusal.contains("faults.toml:4:"), "{refusal}");
    let seen: Value = serde_json::from_str(submit(&url, "faults.snoop", &json!(["/h/etc/hostname", "HOME"])).ok()).unwrap();
    assert!(seen["file"]["Err"].as_str().unwrap().contains("No such file or directory"), "{seen}");
    assert_eq!(seen["env"], json!({"Err": "environment variable not found"}));
    assert!(submit(&url, "faults.clock", &json!([])).ok().parse::<u64>().unwrap() > 1_700_000_000, "v1 keeps serving");

    // Environment and network are refused the same way.
    deploy("version = \"3\"\n[capabilities]\nenv = [\"HOME\"]\n");
    worker.wait_for_log("capabilities.env \"HOME\" is beyond the worker's policy", Duration::from_secs(20));
    deploy(&format!("version = \"4\"\n[capabilities]\nnetwork = [\"127.0.0.1:{}\"]\n", redis.port));
    worker.wait_for_log(&format!("capabilities.network \"127.0.0.1:{}\" is beyond", redis.port), Duration::from_secs(20));
}

#[test]
fn a_policy_can_grant_deployed_plugins_a_directory_read_only() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let staging = tempfile::tempdir().unwrap();
    let (secret, public) = keygen(staging.path(), "ops");
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir(data.path().join("reports")).unwrap();
    std::fs::write(data.path().join("reports/today.txt"), "42 reports").unwrap();
    let policy = staging.path().join("policy.toml");
    std::fs::write(&policy, format!("[deployed]\ndirs = [{{ host = \"{}\", mode = \"ro\" }}]\n", data.path().display())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let worker = Worker::start(dir.path(), &url, &["--sync", "--trust-key", &public, "--policy", policy.to_str().unwrap()]);
    let manifest = staging.path().join("faults.toml");

    // Inside the allowed directory, read-only: granted.
    let reports = data.path().join("reports");
    std::fs::write(&manifest, format!("[capabilities]\ndirs = [{{ host = \"{}\", guest = \"/r\" }}]\n", reports.display())).unwrap();
    deploy_signed(&plugin("faults"), &secret, &url, &["--manifest", manifest.to_str().unwrap()]).ok();
    let seen: Value = eventually(Duration::from_secs(30), "faults with the reports dir", || {
        let run = submit(&url, "faults.snoop", &json!(["/r/today.txt", "HOME"]));
        (run.code == Some(0)).then(|| serde_json::from_str(&run.stdout).unwrap())
    });
    assert_eq!(seen["file"], json!({"Ok": "42 reports"}));

    // Read-write, or a path that climbs out with `..`: refused.
    std::fs::write(&manifest, format!("[capabilities]\ndirs = [{{ host = \"{}\", guest = \"/r\", mode = \"rw\" }}]\n", reports.display())).unwrap();
    deploy_signed(&plugin("faults"), &secret, &url, &["--manifest", manifest.to_str().unwrap()]).ok();
    worker.wait_for_log("(rw) is beyond the worker's policy for deployed plugins", Duration::from_secs(20));
    let climb = reports.join("../..");
    std::fs::write(&manifest, format!("[capabilities]\ndirs = [{{ host = \"{}\", guest = \"/r\" }}]\n", climb.display())).unwrap();
    deploy_signed(&plugin("faults"), &secret, &url, &["--manifest", manifest.to_str().unwrap()]).ok();
    worker.wait_for_log(&format!("capabilities.dirs {} (ro) is beyond", climb.display()), Duration::from_secs(20));
    let again: Value = serde_json::from_str(submit(&url, "faults.snoop", &json!(["/r/today.txt", "HOME"])).ok()).unwrap();
    assert_eq!(again, seen, "still the granted version");
}

#[test]
fn a_local_manifest_beyond_the_policy_and_limits_above_the_ceilings_are_refused() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let plugins = plugin_folder(&["faults", "math"]);
    let config = tempfile::tempdir().unwrap();
    let config_file = config.path().join("chard.toml");
    std::fs::write(&config_file, "[policy.local]\nenv = [\"APP_*\"]\n").unwrap();
    std::fs::write(plugins.path().join("faults.toml"), "[capabilities]\nenv = [\"APP_TOKEN\", \"HOME\"]\n").unwrap();
    std::fs::write(plugins.path().join("math.toml"), "[defaults]\nmemory_limit_mb = 512\n").unwrap();
    let worker = Worker::start(plugins.path(), &url, &["--config", config_file.to_str().unwrap()]);
    let log = worker.log();
    assert!(log.contains("faults.toml:2: capabilities.env \"HOME\" is beyond the worker's policy for local plugins"), "{log}");
    assert!(
        log.contains("math.wasm: refused by the worker's policy: task add asks for memory_limit 512 MiB, above the worker's ceiling of 128 MiB"),
        "{log}"
    );
    assert!(log.contains("tasks=0"), "neither plugin loaded: {log}");
    drop(worker);

    // The policy may raise the ceiling: then a 300 MiB allocation fits,
    // where the worker's 128 MiB default would have stopped it.
    std::fs::write(&config_file, "[policy]\nmax_memory_limit_mb = 512\n").unwrap();
    std::fs::write(plugins.path().join("faults.toml"), "[defaults]\nmemory_limit_mb = 512\n").unwrap();
    let _worker = Worker::start(plugins.path(), &url, &["--config", config_file.to_str().unwrap()]);
    assert_eq!(submit(&url, "faults.hog", &json!([300])).ok(), "300");
    assert_eq!(submit(&url, "math.add", &json!([2, 3])).ok(), "5");
}

#[test]
fn a_policy_file_is_parsed_strictly() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "max_time_limit = 60\n[deployed]\nnetwrok = [\"a:1\"]\n").unwrap();
    let run = host(&["run", "--plugins", dir.path().to_str().unwrap(), "--policy", policy.to_str().unwrap()]);
    assert!(run.error_line().contains("policy.toml:3: unknown field `netwrok`"), "{}", run.stderr);
    std::fs::write(&policy, "[local]\ndirs = [{ host = \"relative\" }]\n").unwrap();
    let run = host(&["run", "--plugins", dir.path().to_str().unwrap(), "--policy", policy.to_str().unwrap()]);
    assert!(run.error_line().contains("policy.toml:2: dirs: relative must be an absolute path"), "{}", run.stderr);
}

#[test]
fn the_time_ceiling_also_holds_for_limits_a_celery_client_asks_for() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["faults"]);
    let policy = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(policy.path(), "max_time_limit = 60\n").unwrap();
    let _worker = Worker::start(plugins.path(), &redis.url(0), &["--result-backend", &redis.url(1), "--policy", policy.path().to_str().unwrap()]);
    let seen = run_python("celery_client.py", &["time_ceiling", &redis.url(0), &redis.url(1)]);
    assert_eq!(seen["longer"]["time_limit_ms"], json!(60_000), "held to the ceiling: {seen}");
    assert_eq!(seen["shorter"]["time_limit_ms"], json!(7_000), "below it, the message's own: {seen}");
}

/// Sending tasks and the key-value store reach no further than Redis, but
/// a deployed plugin still gets neither unless the policy says so: sending
/// is a way to reach plugins granted more, and keys outlive the job.
#[test]
fn a_deployed_plugin_sends_tasks_or_keeps_keys_only_if_the_policy_allows_it() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let staging = tempfile::tempdir().unwrap();
    let (secret, public) = keygen(staging.path(), "ops");
    let manifest = staging.path().join("io.toml");
    let deploy = |text: &str| {
        std::fs::write(&manifest, text).unwrap();
        deploy_signed(&plugin("io"), &secret, &url, &["--manifest", manifest.to_str().unwrap()]).ok().to_string()
    };
    let dir = tempfile::tempdir().unwrap();
    let worker = Worker::start(dir.path(), &url, &["--sync", "--trust-key", &public, "-c", "1"]);
    deploy("version = \"1\"\n[capabilities]\nprogress = true\nkeyvalue = true\n");
    worker.wait_for_log("io.toml:4: capabilities.keyvalue is beyond the worker's policy for deployed plugins", Duration::from_secs(20));
    deploy("version = \"2\"\n[capabilities]\nsend = true\n");
    worker.wait_for_log("io.toml:3: capabilities.send is beyond the worker's policy for deployed plugins", Duration::from_secs(20));
    drop(worker);

    // Allowed by the policy: the plugin loads and its key-value store works.
    deploy("version = \"3\"\n[capabilities]\nprogress = true\nsend = true\nkeyvalue = true\n");
    let policy = staging.path().join("policy.toml");
    std::fs::write(&policy, "[deployed]\nsend = true\nkeyvalue = true\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let worker = Worker::start(dir.path(), &url, &["--sync", "--trust-key", &public, "--policy", policy.to_str().unwrap(), "-c", "1"]);
    let tour: Value = eventually(Duration::from_secs(30), "io v3 with its key-value store", || {
        let run = submit(&url, "io.kv_tour", &json!(["k"]));
        (run.code == Some(0)).then(|| serde_json::from_str(&run.stdout).unwrap())
    });
    assert_eq!(tour, json!({"before": false, "read": {"n": 1}, "counter": 5, "deleted": true, "after": null}), "{}", worker.log());
}
