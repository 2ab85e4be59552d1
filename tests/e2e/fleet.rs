//! Fleet deploy: `host deploy` to workers started with `--sync`, on one
//! private Redis.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use redis::Commands;

use crate::util::{eventually, host, plugin, RedisServer, Worker};

fn plus1000() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-plugins/math_plus1000.wasm")
}

fn add(url: &str) -> String {
    host(&["submit", "math.add", "[2, 3]", "--broker", url, "--wait", "--timeout", "20"]).ok().to_string()
}

/// `host plugins list` rows for `plugin`: (worker, running, status).
fn listing(url: &str, plugin: &str) -> Vec<(String, String, String)> {
    let out = host(&["plugins", "list", "--broker", url]).ok().to_string();
    out.lines()
        .skip(1)
        .filter(|line| line.split_whitespace().next() == Some(plugin))
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields[2].to_string(), fields[3].to_string(), fields[4..].join(" "))
        })
        .collect()
}

fn short_hash(path: &std::path::Path) -> String {
    chard::fleet::sha256_hex(&std::fs::read(path).unwrap())[..12].to_string()
}

#[test]
fn deploy_reaches_every_syncing_worker_without_a_restart() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let worker_a = Worker::start(dir_a.path(), &url, &["--sync", "-n", "a@fleet", "-c", "1"]);
    let worker_b = Worker::start(dir_b.path(), &url, &["--sync", "-n", "b@fleet", "-c", "1"]);

    let deployed = host(&["deploy", plugin("math").to_str().unwrap(), "--broker", &url]);
    assert!(deployed.ok().starts_with(&format!("deployed math {}", short_hash(&plugin("math")))), "{}", deployed.stdout);
    assert!(deployed.ok().ends_with("2 syncing worker(s) notified"), "{}", deployed.stdout);
    eventually(Duration::from_secs(30), "both workers on math", || {
        let rows = listing(&url, "math");
        (rows.len() == 2 && rows.iter().all(|(_, _, status)| status == "current")).then_some(())
    });
    assert_eq!(std::fs::read(dir_a.path().join("math.wasm")).unwrap(), std::fs::read(plugin("math")).unwrap());
    for _ in 0..6 {
        assert_eq!(add(&url), "5");
    }

    // A new version: time from deploy to the first job that runs it.
    let started = Instant::now();
    host(&["deploy", plus1000().to_str().unwrap(), "--name", "math", "--broker", &url]).ok();
    eventually(Duration::from_secs(30), "the new version", || (add(&url) == "1005").then_some(()));
    eprintln!("figure: deploy to first job on the new version: {:.2} s", started.elapsed().as_secs_f64());
    let new_version = short_hash(&plus1000());
    eventually(Duration::from_secs(30), "both workers on the new version", || {
        let rows = listing(&url, "math");
        rows.iter().all(|(_, running, status)| *running == new_version && status == "current").then_some(())
    });
    for _ in 0..6 {
        assert_eq!(add(&url), "1005", "every worker serves the new version");
    }
    assert!(worker_a.log().contains("synced deployed plugin") && worker_b.log().contains("synced deployed plugin"));

    // Rollback is a deploy of the previous file; a worker started later
    // comes up on whatever is deployed.
    host(&["deploy", plugin("math").to_str().unwrap(), "--broker", &url]).ok();
    eventually(Duration::from_secs(30), "the rollback", || {
        let rows = listing(&url, "math");
        rows.iter().all(|(_, running, _)| *running == short_hash(&plugin("math"))).then_some(())
    });
    let dir_c = tempfile::tempdir().unwrap();
    let worker_c = Worker::start(dir_c.path(), &url, &["--sync", "-n", "c@fleet", "-c", "1"]);
    assert!(worker_c.log().contains("tasks=3"), "started on the deployed plugin: {}", worker_c.log());
    assert_eq!(add(&url), "5");
}

#[test]
fn deploy_ships_the_manifest_and_refuses_broken_plugins() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let dir = tempfile::tempdir().unwrap();
    let worker = Worker::start(dir.path(), &url, &["--sync"]);

    // A manifest from elsewhere, named explicitly.
    let staging = tempfile::tempdir().unwrap();
    let manifest = staging.path().join("faults-prod.toml");
    std::fs::write(&manifest, "version = \"3.1.0\"\n[capabilities]\nwall_clock = true\n").unwrap();
    let run = host(&["deploy", plugin("faults").to_str().unwrap(), "--manifest", manifest.to_str().unwrap(), "--broker", &url]);
    assert!(run.ok().contains(" v3.1.0 with manifest"), "{}", run.stdout);
    let clock = eventually(Duration::from_secs(30), "faults with its manifest", || {
        let run = host(&["submit", "faults.clock", "[]", "--broker", &url, "--wait", "--timeout", "5"]);
        (run.code == Some(0)).then(|| run.stdout.trim().parse::<u64>().unwrap())
    });
    assert!(clock > 1_700_000_000);
    assert_eq!(std::fs::read_to_string(dir.path().join("faults.toml")).unwrap(), std::fs::read_to_string(&manifest).unwrap());

    // Refused before anything reaches Redis: not a component, a manifest typo.
    let garbage = staging.path().join("faults.wasm");
    std::fs::write(&garbage, b"\0asm\x01\0\0\0").unwrap();
    let run = host(&["deploy", garbage.to_str().unwrap(), "--no-manifest", "--broker", &url]);
    assert!(run.error_line().contains("a core WebAssembly module, not a component"), "{}", run.stderr);
    std::fs::write(&manifest, "[tasks.clock]\ntimelimit = 1\n").unwrap();
    let run = host(&["deploy", plugin("faults").to_str().unwrap(), "--manifest", manifest.to_str().unwrap(), "--broker", &url]);
    assert!(run.error_line().contains("faults-prod.toml:2: unknown field `timelimit`"), "{}", run.stderr);
    let mut connection = redis.connection(0);
    let record: String = connection.hget("chard:plugins", "faults").unwrap();
    assert!(record.contains("\"label\":\"3.1.0\""), "the good deploy stands: {record}");

    // A blob whose bytes do not match its hash is refused by the worker,
    // which keeps serving what it has.
    let fake = "0".repeat(64);
    let _: () = connection.set(format!("chard:plugin:blob:{fake}"), b"tampered".as_slice()).unwrap();
    let tampered = record.replacen(&record[9..73], &fake, 1);
    assert!(tampered.starts_with("{\"wasm\":\"0000"), "{tampered}");
    let _: () = connection.hset("chard:plugins", "faults", &tampered).unwrap();
    let _: () = connection.publish("chard:plugins:deployed", "faults").unwrap();
    worker.wait_for_log("refusing it", Duration::from_secs(20));
    let run = host(&["submit", "faults.echo", "[7]", "--broker", &url, "--wait", "--timeout", "10"]);
    assert_eq!(run.ok(), "7");
}
