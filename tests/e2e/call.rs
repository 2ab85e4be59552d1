//! `host call` and `host tasks` on the example plugins: every way a job can end.

use serde_json::{json, Value};

use crate::util::{host, plugin, plugins_dir};

fn call(task: &str, args: &str) -> crate::util::Run {
    host(&["call", plugins_dir().to_str().unwrap(), task, args])
}

fn call_json(task: &str, args: &str) -> Value {
    serde_json::from_str(call(task, args).ok()).expect("result is JSON")
}

#[test]
fn add_by_file_and_by_qualified_name() {
    let math = plugin("math");
    assert_eq!(host(&["call", math.to_str().unwrap(), "add", "[2, 3]"]).ok(), "5");
    assert_eq!(call_json("math.add", "[40, 2]"), json!(42));
    assert_eq!(call_json("math.mul", "[6, 7]"), json!(42));
}

#[test]
fn kwargs_bind_by_parameter_name() {
    let run = host(&["call", plugins_dir().to_str().unwrap(), "math.add", "[1]", "--kwargs", r#"{"y": 10}"#]);
    assert_eq!(run.ok(), "11");
    let run = host(&["call", plugins_dir().to_str().unwrap(), "math.add", "--kwargs", r#"{"y": 2, "x": 5}"#]);
    assert_eq!(run.ok(), "7");
}

#[test]
fn values_round_trip() {
    assert_eq!(call_json("math.xsum", "[[1.5, 2.25, -0.75]]"), json!(3.0));
    for value in [
        json!("héllo wörld ✓"),
        json!(3.25),
        json!([1, "two", [3.5], null, true]),
        json!({"nested": {"list": [1, 2], "float": 0.1}, "empty": {}}),
    ] {
        let args = json!([value]).to_string();
        assert_eq!(call_json("faults.echo", &args), value);
    }
}

#[test]
fn argument_errors_are_type_errors_with_the_signature() {
    assert_eq!(
        call("math.add", "[1, 2, 3]").error_line(),
        "error: task failed: TypeError: add: expected 2 arguments (x, y), got 3"
    );
    assert_eq!(call("math.add", "[1]").error_line(), "error: task failed: TypeError: add: missing required argument 'y'");
    assert!(call("math.add", r#"["one", 2]"#).error_line().contains("TypeError: add: argument 'x': invalid type"));
    let run = host(&["call", plugins_dir().to_str().unwrap(), "math.add", "[1, 2]", "--kwargs", r#"{"z": 3}"#]);
    assert!(run.error_line().contains("unexpected keyword argument 'z'"), "{}", run.stderr);
}

#[test]
fn task_failure_names_the_message_and_type() {
    let run = call("faults.fail", r#"["card declined"]"#);
    assert_eq!(run.code, Some(1));
    assert_eq!(run.error_line(), "error: task failed: Exception: card declined");
    let run = call("faults.raise_as", r#"["billing.errors.CardDeclined", "no funds"]"#);
    assert_eq!(run.error_line(), "error: task failed: billing.errors.CardDeclined: no funds");
}

#[test]
fn infinite_loop_is_stopped_at_the_time_limit() {
    let run = host(&["call", plugins_dir().to_str().unwrap(), "faults.spin", "--time-limit", "0.5"]);
    assert_eq!(run.code, Some(1));
    assert_eq!(run.error_line(), "error: time limit exceeded (0.500s)");
}

#[test]
fn memory_limit_is_enforced_and_configurable() {
    let run = call("faults.hog", "[512]");
    assert_eq!(run.error_line(), "error: memory limit exceeded (128 MiB)");
    assert_eq!(call_json("faults.hog", "[16]"), json!(16));
    let run = host(&["call", plugins_dir().to_str().unwrap(), "faults.hog", "[200]", "--memory-limit", "300"]);
    assert_eq!(run.ok(), "200");
}

#[test]
fn a_panic_is_a_trap_with_the_panic_message() {
    let line = call("faults.panic", r#"["the sky fell"]"#).error_line();
    assert!(line.starts_with("error: task trapped: "), "{line}");
    assert!(line.ends_with("the sky fell"), "{line}");
}

#[test]
fn no_state_survives_between_jobs() {
    for _ in 0..3 {
        assert_eq!(call_json("faults.counter", "[]"), json!(1));
    }
}

#[test]
fn retry_request_is_reported() {
    assert_eq!(call("faults.flaky", "[2]").error_line(), "error: task asked for a retry in 0.100s: attempt 1 of 3");
    assert_eq!(call_json("faults.flaky", "[0]"), json!(0));
}

#[test]
fn sandbox_grants_nothing_by_default() {
    let seen = call_json("faults.snoop", r#"["/etc/hostname", "HOME"]"#);
    assert!(seen["file"]["Err"].is_string(), "file read must fail: {seen}");
    assert_eq!(seen["env"]["Err"], json!("environment variable not found"));
}

#[test]
fn bad_input_gets_one_clear_line() {
    assert_eq!(call("math.nope", "[]").code, Some(2));
    assert!(call("math.nope", "[]").error_line().starts_with("error: unknown task: math.nope"));
    assert!(call("math.add", "[1,").error_line().starts_with("error: ARGS is not valid JSON"));
    assert!(call("math.add", r#"{"x": 1}"#).error_line().starts_with("error: ARGS must be a JSON array"));
    let dir = tempfile::tempdir().unwrap();
    let not_wasm = dir.path().join("bogus.wasm");
    std::fs::write(&not_wasm, b"hello").unwrap();
    let line = host(&["call", not_wasm.to_str().unwrap(), "add", "[]"]).error_line();
    assert!(line.contains("not a WebAssembly file"), "{line}");
    let line = host(&["call", "/no/such/plugin.wasm", "add", "[]"]).error_line();
    assert!(line.contains("cannot read"), "{line}");
    let run = host(&["call", plugins_dir().to_str().unwrap(), "math.add", "--time-limit", "-1"]);
    assert!(run.error_line().contains("--time-limit must be a non-negative"), "{}", run.stderr);
}

#[test]
fn tasks_lists_qualified_names_with_parameters() {
    let listing = host(&["tasks", "--plugins", plugins_dir().to_str().unwrap()]).ok().to_string();
    assert!(listing.lines().any(|line| line.starts_with("math.add(x, y)  [")), "{listing}");
    assert!(listing.lines().any(|line| line.starts_with("math.xsum(numbers)  [")), "{listing}");
    assert!(listing.lines().any(|line| line.starts_with("faults.flaky(n)  [")), "{listing}");
}

#[test]
fn compile_cache_is_used_and_a_corrupt_entry_is_rebuilt() {
    let cache = tempfile::tempdir().unwrap();
    let math = plugin("math");
    let call = || {
        let output = std::process::Command::new(crate::util::host_bin())
            .args(["call", math.to_str().unwrap(), "add", "[2, 3]", "-v"])
            .env("NO_COLOR", "1")
            .env("CHARD_CACHE_DIR", cache.path())
            .output()
            .unwrap();
        crate::util::Run::from(output)
    };
    let first = call();
    assert_eq!(first.ok(), "5");
    assert!(first.stderr.contains("compiling math.wasm (first load; later starts use the cache)…"), "{}", first.stderr);
    assert!(first.stderr.contains("compiled math.wasm in "), "{}", first.stderr);
    assert!(!call().stderr.contains("compiling"), "a cached plugin is not compiled again");
    let entries: Vec<_> = std::fs::read_dir(cache.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(entries.len(), 1, "one cache entry per plugin");
    let second = call();
    assert_eq!(second.ok(), "5");
    assert!(second.stderr.contains("loaded from cache"), "{}", second.stderr);
    let mut bytes = std::fs::read(&entries[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&entries[0], bytes).unwrap();
    let third = call();
    assert_eq!(third.ok(), "5");
    assert!(third.stderr.contains("corrupt; recompiling"), "{}", third.stderr);
    assert!(call().stderr.contains("loaded from cache"));
}
