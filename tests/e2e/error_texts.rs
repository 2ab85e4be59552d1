//! The exact error line of each mistake a new user makes first: one line,
//! starting `error: `, saying what is wrong and what to do.

use crate::util::{host, plugin, RedisServer};

#[test]
fn junk_and_core_module_files_say_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"<html>not found</html>").unwrap();
    assert_eq!(
        host(&["call", junk.to_str().unwrap(), "add", "[1, 2]"]).error_line(),
        format!(
            "error: {}: not a WebAssembly file (it lacks the \\0asm header); rebuild the plugin or remove the file",
            junk.display()
        )
    );
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    assert_eq!(
        host(&["call", core.to_str().unwrap(), "add", "[1, 2]"]).error_line(),
        format!(
            "error: {}: a core WebAssembly module, not a component; build it for wasm32-wasip2 (cargo build --target wasm32-wasip2) or wrap it with `wasm-tools component new`",
            core.display()
        )
    );
}

#[test]
fn a_json_object_as_args_points_at_kwargs() {
    let math = plugin("math");
    let run = host(&["call", math.to_str().unwrap(), "add", r#"{"x": 1, "y": 2}"#]);
    assert_eq!(
        run.error_line(),
        r#"error: ARGS must be a JSON array, e.g. '[2, 3]'; keyword arguments go in --kwargs '{"x": 1, "y": 2}'"#
    );
    assert_eq!(run.code, Some(2));
}

#[test]
fn an_unexpected_kwarg_is_named() {
    for name in ["math", "pymath", "jsmath", "cmath"] {
        let wasm = plugin(name);
        let run = host(&["call", wasm.to_str().unwrap(), "add", "[1, 2]", "--kwargs", r#"{"z": 3}"#]);
        assert_eq!(run.error_line(), "error: task failed: TypeError: add: got an unexpected keyword argument 'z'", "{name}");
    }
}

#[test]
fn a_bad_cron_field_is_named_without_a_stray_caret() {
    let dir = tempfile::tempdir().unwrap();
    let schedule = dir.path().join("beat.toml");
    std::fs::write(&schedule, "[entries.report]\ntask = \"math.add\"\ncron = \"0 25 * * *\"\n").unwrap();
    let run = host(&["beat", "--schedule", schedule.to_str().unwrap(), "--broker", "redis://127.0.0.1:1/0"]);
    assert_eq!(
        run.stderr.trim_end(),
        format!("error: {}: [entries.report]: cron \"0 25 * * *\": hour field \"25\": 25 is out of range 0-23", schedule.display())
    );
}

#[test]
fn failed_tasks_read_the_same_from_call_and_submit() {
    let redis = RedisServer::start();
    let plugins = crate::util::plugin_folder(&["faults"]);
    let _worker = crate::util::Worker::start(plugins.path(), &redis.url(0), &[]);
    let args = r#"["ValueError", "bad value"]"#;
    let submitted = host(&["submit", "faults.raise_as", args, "--broker", &redis.url(0), "--wait", "--timeout", "30"]);
    let called = host(&["call", plugins.path().to_str().unwrap(), "faults.raise_as", args]);
    assert_eq!(submitted.error_line(), "error: task failed: ValueError: bad value");
    assert_eq!(called.error_line(), submitted.error_line());
}
