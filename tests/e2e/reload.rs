//! Hot reload: plugins swapped under a running worker.

use std::path::{Path, PathBuf};
use std::time::Duration;

use redis::Commands;
use serde_json::{json, Value};

use chard::protocol::OutgoingTask;

use crate::util::{eventually, host, plugin, plugin_folder, RedisServer, Worker};

fn plus1000() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-plugins/math_plus1000.wasm");
    assert!(path.is_file(), "{} missing: run `make plugins`", path.display());
    path
}

/// Replaces `dir/name` the safe way: write a temporary file, rename it in.
fn deploy(source: &Path, dir: &Path, name: &str) {
    let temporary = dir.join(format!("{name}.tmp"));
    std::fs::copy(source, &temporary).unwrap();
    std::fs::rename(&temporary, dir.join(name)).unwrap();
}

fn add_message(x: i64) -> OutgoingTask {
    let args = serde_json::value::to_raw_value(&json!([x, 1])).unwrap();
    let kwargs = serde_json::value::to_raw_value(&json!({})).unwrap();
    OutgoingTask::new("math.add", args, kwargs, "test@reload".into())
}

#[test]
fn swapping_a_plugin_under_load_loses_nothing() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math"]);
    let worker = Worker::start(plugins.path(), &redis.url(0), &[]);
    let mut connection = redis.connection(0);
    let mut sent: Vec<(String, i64, bool)> = Vec::new(); // id, x, sent after the swap was live
    let mut swapped = false;
    let mut live = false;
    for batch in 0..50 {
        let mut pipe = redis::pipe();
        for i in 0..100 {
            let x = batch * 100 + i;
            let message = add_message(x);
            sent.push((message.id.clone(), x, live));
            pipe.lpush("celery", message.to_envelope()).ignore();
        }
        pipe.query::<()>(&mut connection).unwrap();
        if batch == 20 && !swapped {
            deploy(&plus1000(), plugins.path(), "math.wasm");
            swapped = true;
        }
        if swapped && !live && worker.log().contains("plugin loaded (hot reload)") {
            live = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(live, "the new version never went live:\n{}", worker.log());
    let (mut old, mut new) = (0, 0);
    for (id, x, after_swap) in &sent {
        let doc: Value = eventually(Duration::from_secs(60), "result", || {
            let text: Option<String> = connection.get(format!("celery-task-meta-{id}")).unwrap();
            text.map(|t| serde_json::from_str::<Value>(&t).unwrap())
        });
        assert_eq!(doc["status"], json!("SUCCESS"), "{doc}");
        let value = doc["result"].as_i64().unwrap();
        if value == x + 1 {
            assert!(!after_swap, "job {x} sent after the swap ran the old version");
            old += 1;
        } else {
            assert_eq!(value, x + 1 + 1000, "job {x}: a result from neither version");
            new += 1;
        }
    }
    assert_eq!(old + new, 5000);
    assert!(old > 0 && new > 0, "old {old}, new {new}");
}

#[test]
fn a_broken_plugin_keeps_the_old_version_and_removal_unregisters() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math"]);
    let worker = Worker::start(plugins.path(), &redis.url(0), &[]);
    let url = redis.url(0);
    let add = || host(&["submit", "math.add", "[2, 3]", "--broker", &url, "--wait", "--timeout", "20"]);
    assert_eq!(add().ok(), "5");

    let broken = plugins.path().join("math.wasm.tmp");
    std::fs::write(&broken, b"\0asm garbage").unwrap();
    std::fs::rename(&broken, plugins.path().join("math.wasm")).unwrap();
    worker.wait_for_log("plugin math not reloaded", Duration::from_secs(20));
    assert_eq!(add().ok(), "5", "the previous version keeps serving");

    deploy(&plugin("math"), plugins.path(), "math.wasm");
    std::fs::remove_file(plugins.path().join("math.wasm")).unwrap();
    worker.wait_for_log("plugin removed", Duration::from_secs(20));
    let run = add();
    assert!(run.error_line().contains("NotRegistered: math.add"), "{}", run.stderr);

    deploy(&plus1000(), plugins.path(), "math.wasm");
    worker.wait_for_log("plugin loaded (hot reload)", Duration::from_secs(20));
    assert_eq!(add().ok(), "1005");
}
