//! Task names Celery users have: dotless names and module paths, set in a
//! manifest or by the plugin, one plugin per name.

use std::time::Duration;

use serde_json::json;

use crate::util::{eventually, host, plugin, plugin_folder, run_python, RedisServer, Worker};

const RENAME_ADD: &str = "[tasks.add]\nname = \"auto_retry_class_task\"\n";

#[test]
fn celery_calls_a_dotless_name_and_a_module_path() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math", "faults", "io"]);
    std::fs::write(plugins.path().join("math.toml"), RENAME_ADD).unwrap();
    let _worker = Worker::start(plugins.path(), &redis.url(0), &["--result-backend", &redis.url(1), "-n", "w1@names"]);
    let seen = run_python("celery_client.py", &["names", &redis.url(0), &redis.url(1)]);
    assert_eq!(seen["dotless"], json!(5), "math.add renamed by math.toml");
    assert_eq!(seen["module_path"], json!("charged 250"), "io's #[task(name = \"myproject.billing.tasks.charge\")]");
    assert_eq!(seen["renamed_away"], json!({"type": "NotRegistered", "module": "celery.exceptions", "args": ["math.add"]}));
    assert_eq!(seen["kept"], json!(42));
    let registered = seen["registered"].as_array().unwrap();
    for name in ["auto_retry_class_task", "myproject.billing.tasks.charge", "math.mul", "faults.fail"] {
        assert!(registered.contains(&json!(name)), "{name} not in {registered:?}");
    }
    assert!(!registered.contains(&json!("math.add")) && !registered.contains(&json!("io.charge")), "{registered:?}");
}

#[test]
fn host_tasks_and_host_call_use_the_served_names() {
    let plugins = plugin_folder(&["math", "faults", "io"]);
    std::fs::write(plugins.path().join("math.toml"), RENAME_ADD).unwrap();
    let folder = plugins.path().to_str().unwrap();
    let listing = host(&["tasks", "--plugins", folder]).ok().to_string();
    assert!(listing.lines().any(|line| line.starts_with("auto_retry_class_task(x, y)  [")), "{listing}");
    assert!(listing.lines().any(|line| line.starts_with("myproject.billing.tasks.charge(cents)  [")), "{listing}");
    assert!(!listing.lines().any(|line| line.starts_with("math.add(")), "{listing}");
    assert_eq!(host(&["call", folder, "auto_retry_class_task", "[2, 3]"]).ok(), "5");
    assert_eq!(host(&["call", folder, "myproject.billing.tasks.charge", "[1]"]).ok(), "\"charged 1\"");
}

#[test]
fn a_name_two_plugins_serve_refuses_the_later_plugin() {
    let plugins = plugin_folder(&["math"]);
    std::fs::copy(plugin("math"), plugins.path().join("numbers.wasm")).unwrap();
    std::fs::write(plugins.path().join("numbers.toml"), "[tasks.mul]\nname = \"math.add\"\n").unwrap();
    let run = host(&["tasks", "--plugins", plugins.path().to_str().unwrap()]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stdout.starts_with("math.add(x, y)  ["), "math keeps serving: {}", run.stdout);
    assert!(!run.stdout.lines().any(|line| line.starts_with("numbers.")), "numbers is refused whole: {}", run.stdout);
    let (math, numbers) = (plugins.path().join("math.wasm"), plugins.path().join("numbers.wasm"));
    let errors: Vec<&str> = run.stderr.lines().filter(|line| line.starts_with("error:")).collect();
    assert_eq!(
        errors,
        [format!(
            "error: plugin numbers not loaded: {}: plugin numbers would serve math.add, which plugin math ({}) already serves; numbers is refused and math keeps serving (rename the task in numbers's manifest: [tasks.<task>] name = ...)",
            numbers.display(),
            math.display()
        )]
    );
}

#[test]
fn hot_reload_serves_a_new_name_and_refuses_a_taken_one() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math"]);
    let worker = Worker::start(plugins.path(), &redis.url(0), &["-n", "w1@reload"]);
    let registered = || host(&["inspect", "registered", "--broker", &redis.url(0)]).ok().to_string();
    std::fs::write(plugins.path().join("math.toml"), RENAME_ADD).unwrap();
    eventually(Duration::from_secs(30), "the renamed task to be registered", || {
        registered().contains("auto_retry_class_task").then_some(())
    });
    assert!(!registered().contains("math.add"), "{}", registered());
    // A second plugin that would take the new name is refused; math keeps it.
    std::fs::write(plugins.path().join("numbers.toml"), "[tasks.add]\nname = \"auto_retry_class_task\"\n").unwrap();
    std::fs::copy(plugin("math"), plugins.path().join("numbers.wasm.tmp")).unwrap();
    std::fs::rename(plugins.path().join("numbers.wasm.tmp"), plugins.path().join("numbers.wasm")).unwrap();
    worker.wait_for_log("plugin numbers not loaded: ", Duration::from_secs(30));
    assert!(worker.log().contains("which plugin math ("), "{}", worker.log());
    assert_eq!(host(&["submit", "auto_retry_class_task", "[20, 22]", "--broker", &redis.url(0), "--wait"]).ok(), "42");
}
