//! Helpers to run `host` as a user would.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The `host` binary cargo built for these tests.
pub fn host_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_host"))
}

/// `target/plugins`, where `make plugins` puts the example plugins.
pub fn plugins_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/plugins");
    assert!(
        dir.join("math.wasm").is_file() && dir.join("faults.wasm").is_file(),
        "example plugins missing in {}: run `make plugins` first",
        dir.display()
    );
    dir
}

pub fn plugin(name: &str) -> PathBuf {
    let path = plugins_dir().join(format!("{name}.wasm"));
    assert!(path.is_file(), "plugin {} missing: run `make plugins`", path.display());
    path
}

/// What a finished `host` run printed.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "host failed: {}", self.stderr);
        self.stdout.trim()
    }

    /// The error line of a failed run.
    pub fn error_line(&self) -> String {
        assert_ne!(self.code, Some(0), "host unexpectedly succeeded: {}", self.stdout);
        self.stderr.lines().rfind(|line| line.starts_with("error:")).unwrap_or_default().to_string()
    }
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Runs `host ARGS...` to completion.
pub fn host(args: &[&str]) -> Run {
    Command::new(host_bin()).args(args).env("NO_COLOR", "1").env("CHARD_CACHE_DIR", cache_dir()).output().expect("running host").into()
}

/// One compile cache for the whole test run: large plugins compile once.
pub fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-compile-cache")
}

/// A private `redis-server` on a free port, stopped on drop.
pub struct RedisServer {
    pub port: u16,
    child: Option<std::process::Child>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// Starts one on a given port (e.g. one a worker is already waiting for).
    pub fn start_on(port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Self { port, child: None, dir };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(mut connection) = redis::Client::open(self.url(0)).and_then(|c| c.get_connection()) {
                if redis::cmd("PING").query::<String>(&mut connection).is_ok() {
                    return;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not start", self.port);
    }

    /// Stops the server (all data is lost: it keeps nothing on disk).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops and starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn url(&self, db: u8) -> String {
        format!("redis://127.0.0.1:{}/{}", self.port, db)
    }

    pub fn connection(&self, db: u8) -> redis::Connection {
        redis::Client::open(self.url(db)).unwrap().get_connection().unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A folder with copies of the given example plugins.
pub fn plugin_folder(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in names {
        std::fs::copy(plugin(name), dir.path().join(format!("{name}.wasm"))).unwrap();
    }
    dir
}

/// A `host run` process; killed on drop, its log kept for assertions.
pub struct Worker {
    child: Option<std::process::Child>,
    log: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl Worker {
    /// Starts `host run --plugins DIR --broker URL ARGS...` and waits until
    /// it logs "worker ready".
    pub fn start(plugins: &std::path::Path, broker: &str, args: &[&str]) -> Self {
        let base = ["run", "--plugins", plugins.to_str().unwrap(), "--broker", broker];
        Self::spawn(&[&base[..], args].concat(), "worker ready")
    }

    /// Starts `host ARGS...` (any long-running command) and waits until it
    /// logs `ready`.
    pub fn spawn(args: &[&str], ready: &str) -> Self {
        let log_dir = tempfile::tempdir().unwrap();
        let log = log_dir.path().join("worker.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(host_bin())
            .args(args)
            .env("NO_COLOR", "1")
            .env("CHARD_CACHE_DIR", cache_dir())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("starting host");
        let worker = Self { child: Some(child), log, _log_dir: log_dir };
        worker.wait_for_log(ready, std::time::Duration::from_secs(60));
        worker
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn wait_for_log(&self, needle: &str, timeout: std::time::Duration) {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if self.log().contains(needle) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("worker did not log {needle:?} within {timeout:?}; log:\n{}", self.log());
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([&format!("-{signal}"), &self.pid().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, timeout: std::time::Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + timeout;
        let child = self.child.as_mut().unwrap();
        while std::time::Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status.code();
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("worker did not exit within {timeout:?}; log:\n{}", self.log());
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The venv Python with Celery (`make venv`), or `CHARD_PYTHON`.
pub fn python() -> PathBuf {
    let path = std::env::var_os("CHARD_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"));
    assert!(path.is_file(), "{} missing: run `make venv` (Python with celery[redis]==5.7.0)", path.display());
    path
}

pub fn python_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/python").join(name)
}

/// Runs a script from tests/python with the Celery venv; returns its stdout
/// parsed as JSON (the scripts print one JSON document).
pub fn run_python(script: &str, args: &[&str]) -> serde_json::Value {
    let output = Command::new(python()).arg(python_script(script)).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{script} failed:\nstdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{script} printed no JSON ({e}): {stdout}"))
}

/// Polls `check` until it returns Some, or panics after `timeout`.
pub fn eventually<T>(timeout: std::time::Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
}

/// A stock Python Celery worker running `tests/python/celery_worker_app.py`
/// (Python versions of the `math` tasks); killed on drop.
pub struct CeleryWorker(std::process::Child);

impl CeleryWorker {
    pub fn start(broker: &str, backend: &str) -> Self {
        Self::start_with(broker, backend, &[])
    }

    /// The same with extra `celery worker` flags (e.g. `-E`).
    pub fn start_with(broker: &str, backend: &str, flags: &[&str]) -> Self {
        let child = Command::new(python())
            .args(["-m", "celery", "-A", "celery_worker_app", "worker", "-P", "solo", "-c", "1", "--without-gossip", "--without-mingle", "-l", "warning"])
            .args(flags)
            .current_dir(python_script("celery_worker_app.py").parent().unwrap())
            .env("CHARD_TEST_BROKER", broker)
            .env("CHARD_TEST_BACKEND", backend)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting a Python Celery worker");
        Self(child)
    }
}

impl Drop for CeleryWorker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
