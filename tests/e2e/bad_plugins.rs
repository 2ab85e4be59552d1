//! A broken plugin in the folder: reported once (again only when the file
//! changes), never hiding the good ones, and listed by `host tasks`.

use std::time::Duration;

use crate::util::{host, plugin, plugin_folder, RedisServer, Worker};

/// Not WebAssembly at all, and a core module (the 8-byte header is enough).
const JUNK: &[u8] = b"this is not a plugin\n";
const CORE_MODULE: &[u8] = b"\0asm\x01\0\0\0";

fn junk_error(path: &std::path::Path) -> String {
    format!("{}: not a WebAssembly file (it lacks the \\0asm header); rebuild the plugin or remove the file", path.display())
}

#[test]
fn a_bad_file_is_logged_once_until_it_changes() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math"]);
    let worker = Worker::start(plugins.path(), &redis.url(0), &[]);
    let junk = plugins.path().join("junk.wasm");
    std::fs::write(&junk, JUNK).unwrap();
    let first = format!("plugin junk not loaded: {}", junk_error(&junk));
    worker.wait_for_log(&first, Duration::from_secs(20));

    // Later events (a good plugin arriving) do not bring the old error back.
    std::fs::copy(plugin("math"), plugins.path().join("second.wasm")).unwrap();
    worker.wait_for_log("plugin=\"second\"", Duration::from_secs(20));
    std::fs::copy(plugin("math"), plugins.path().join("third.wasm")).unwrap();
    worker.wait_for_log("plugin=\"third\"", Duration::from_secs(20));
    assert_eq!(worker.log().matches("plugin junk not loaded").count(), 1, "{}", worker.log());

    // A change is reported again, with its own reason.
    std::fs::write(&junk, CORE_MODULE).unwrap();
    worker.wait_for_log("plugin junk not loaded: ", Duration::from_secs(20));
    worker.wait_for_log("a core WebAssembly module, not a component", Duration::from_secs(20));
    assert_eq!(worker.log().matches("plugin junk not loaded").count(), 2, "{}", worker.log());

    // A plugin that did load keeps serving when its new version is bad.
    std::fs::write(plugins.path().join("math.wasm"), JUNK).unwrap();
    worker.wait_for_log("plugin math not reloaded, previous version keeps serving: ", Duration::from_secs(20));
    let log = worker.log();
    assert!(log.contains(&format!("previous version keeps serving: {}", junk_error(&plugins.path().join("math.wasm")))), "{log}");
    assert!(!log.contains("plugin junk not reloaded"), "a plugin that never loaded has no previous version: {log}");
}

#[test]
fn tasks_lists_the_good_plugins_then_the_bad_ones() {
    let plugins = plugin_folder(&["math"]);
    let junk = plugins.path().join("junk.wasm");
    std::fs::write(&junk, JUNK).unwrap();
    std::fs::write(plugins.path().join("core.wasm"), CORE_MODULE).unwrap();
    let run = host(&["tasks", "--plugins", plugins.path().to_str().unwrap()]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stdout.starts_with("math.add(x, y)  ["), "{}", run.stdout);
    assert!(run.stdout.contains("math.mul(x, y)"), "{}", run.stdout);
    let core = plugins.path().join("core.wasm");
    let errors: Vec<&str> = run.stderr.lines().filter(|line| line.starts_with("error:")).collect();
    assert_eq!(
        errors,
        [
            format!(
                "error: plugin core not loaded: {}: a core WebAssembly module, not a component; build it for wasm32-wasip2 (cargo build --target wasm32-wasip2) or wrap it with `wasm-tools component new`",
                core.display()
            ),
            format!("error: plugin junk not loaded: {}", junk_error(&junk)),
        ]
    );
}

#[test]
fn a_worker_on_the_source_folder_points_at_the_built_plugins() {
    let redis = RedisServer::start();
    let checkout = tempfile::tempdir().unwrap();
    let sources = checkout.path().join("plugins");
    std::fs::create_dir_all(sources.join("math")).unwrap();
    std::fs::write(sources.join("math/Cargo.toml"), "[package]\nname = \"math\"\n").unwrap();
    std::fs::create_dir_all(checkout.path().join("target/plugins")).unwrap();
    let worker = Worker::start(&sources, &redis.url(0), &[]);
    let expected = format!(
        "no plugin loaded from {}: it holds plugin sources, not built plugins; the built ones are in {}/target/plugins; until one is there, every job fails as an unknown task (the folder is watched)",
        sources.display(),
        checkout.path().display()
    );
    assert!(worker.log().contains(&expected), "{}", worker.log());
}
