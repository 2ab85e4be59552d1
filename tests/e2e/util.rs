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
        self.stderr.lines().filter(|line| line.starts_with("error:")).last().unwrap_or_default().to_string()
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
    Command::new(host_bin()).args(args).env("NO_COLOR", "1").output().expect("running host").into()
}
