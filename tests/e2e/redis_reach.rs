//! Redis not there at start: one-shot commands fail at once with one line;
//! a worker waits for it, saying so, and starts when it comes.

use std::io::Read as _;
use std::time::Duration;

use crate::util::{free_port, host, host_bin, plugin_folder, RedisServer, Worker};

#[test]
fn one_shot_commands_fail_with_one_line() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}/0");
    let expected = format!("error: cannot reach Redis at 127.0.0.1:{port}: Connection refused (os error 111)");
    for args in [
        vec!["submit", "math.add", "[1, 2]", "--broker", &url],
        vec!["result", "0b6f1c1e-0000-4000-8000-000000000000", "--broker", &url],
        vec!["plugins", "list", "--broker", &url],
    ] {
        let run = host(&args);
        assert_eq!(run.code, Some(2), "{args:?}");
        assert_eq!(run.stderr.trim_end(), expected, "{args:?}: one line, the cause once");
    }
}

#[test]
fn a_worker_waits_for_redis_and_then_starts() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}/0");
    let plugins = plugin_folder(&["math"]);
    let worker = Worker::spawn(&["run", "--plugins", plugins.path().to_str().unwrap(), "--broker", &url], "(attempt 2)");
    assert!(
        worker.log().contains(&format!("waiting for Redis at 127.0.0.1:{port} (attempt 1): Connection refused (os error 111)")),
        "{}",
        worker.log()
    );
    let _redis = RedisServer::start_on(port);
    worker.wait_for_log("worker ready", Duration::from_secs(30));
    assert_eq!(host(&["submit", "math.add", "[20, 22]", "--broker", &url, "--wait"]).ok(), "42");
}

#[test]
fn logs_to_a_pipe_carry_no_colour() {
    let port = free_port();
    let plugins = plugin_folder(&["math"]);
    let mut child = std::process::Command::new(host_bin())
        .args(["run", "--plugins", plugins.path().to_str().unwrap(), "--broker", &format!("redis://127.0.0.1:{port}/0")])
        .env_remove("NO_COLOR")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut log = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&log).contains("waiting for Redis") {
        let read = stderr.read(&mut buffer).unwrap();
        assert!(read > 0, "host exited: {}", String::from_utf8_lossy(&log));
        log.extend_from_slice(&buffer[..read]);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let log = String::from_utf8_lossy(&log);
    assert!(log.contains(" WARN "), "{log}");
    assert!(!log.contains('\x1b'), "ANSI escape codes in a piped log: {log:?}");
}
