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

/// `host run`: the worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub plugins: PathBuf,
    pub broker_url: String,
    pub result_backend_url: String,
    pub queues: Vec<String>,
    /// Jobs run at once (executor threads).
    pub concurrency: usize,
    /// Messages held at once (running + waiting to run), ETA jobs excepted.
    pub prefetch: usize,
    /// Node name, `chard@<host>` by default.
    pub hostname: String,
    pub limits: JobLimits,
    /// A lease older than this is taken as abandoned and restored.
    pub visibility_timeout: Duration,
    /// On shutdown, how long running jobs may take before they are stopped
    /// and requeued.
    pub drain_timeout: Duration,
    /// TTL of result keys.
    pub result_expires: Duration,
    /// Longest wait for new work on an idle worker before polling every list.
    pub poll_interval: Duration,
    /// Per-task rate limits (interval between jobs), overriding the plugins'.
    pub rate_limits: std::collections::HashMap<String, Duration>,
    /// Send task events from the start (`-E`); remote control can still
    /// switch them (`enable_events`/`disable_events`). Worker events
    /// (online, heartbeat, offline) are always sent.
    pub task_events: bool,
}

impl WorkerConfig {
    pub fn new(plugins: PathBuf, broker_url: &str) -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Self {
            plugins,
            broker_url: broker_url.to_string(),
            result_backend_url: broker_url.to_string(),
            queues: vec!["celery".to_string()],
            concurrency: cores,
            prefetch: 256.max(cores * 32),
            hostname: format!("chard@{}", crate::hostname()),
            limits: JobLimits::default(),
            visibility_timeout: Duration::from_secs(3600),
            drain_timeout: Duration::from_secs(30),
            result_expires: Duration::from_secs(86400),
            poll_interval: Duration::from_millis(100),
            rate_limits: Default::default(),
            task_events: false,
        }
    }
}

/// Where a client talks to: `host submit`, `host result`.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub broker_url: String,
    pub result_backend_url: String,
}

/// `host submit`.
#[derive(Debug, Clone)]
pub struct SubmitConfig {
    pub client: ClientConfig,
    pub task: String,
    pub args: String,
    pub kwargs: String,
    pub queue: String,
    pub priority: u8,
    pub countdown: Option<Duration>,
    pub expires: Option<Duration>,
    pub wait: bool,
    pub timeout: Duration,
}

/// `host result`.
#[derive(Debug, Clone)]
pub struct ResultConfig {
    pub client: ClientConfig,
    pub task_id: String,
    pub wait: bool,
    pub timeout: Duration,
}

/// `host revoke`.
#[derive(Debug, Clone)]
pub struct RevokeConfig {
    pub client: ClientConfig,
    pub task_ids: Vec<String>,
    pub terminate: bool,
}
