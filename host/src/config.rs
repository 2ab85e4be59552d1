//! The one configuration type per command, built by `cli` from flags and
//! environment. Nothing below `cli` sees clap: tests and embedders build
//! these structs directly.

use std::path::PathBuf;
use std::time::Duration;

/// Logging output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Settings every command shares.
#[derive(Debug, Clone, Default)]
pub struct GlobalConfig {
    /// 0 = info, 1 = debug, 2+ = trace.
    pub verbosity: u8,
    pub log_format: LogFormat,
}

/// Limits applied to a job unless the task or the message says otherwise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JobLimits {
    /// `None` means no time limit.
    pub time_limit: Option<Duration>,
    pub memory_limit_bytes: u64,
}

impl Default for JobLimits {
    fn default() -> Self {
        Self { time_limit: Some(Duration::from_secs(300)), memory_limit_bytes: 128 << 20 }
    }
}

/// `host call`: run one task once, locally.
#[derive(Debug, Clone)]
pub struct CallConfig {
    /// A `.wasm` file or a directory of them.
    pub plugins: PathBuf,
    pub task: String,
    /// JSON array text.
    pub args: String,
    /// JSON object text.
    pub kwargs: String,
    pub limits: JobLimits,
}

/// `host tasks`: list what a plugin folder serves.
#[derive(Debug, Clone)]
pub struct TasksConfig {
    pub plugins: PathBuf,
}
