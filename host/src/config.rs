//! The one configuration type per command, built by `cli` from flags and
//! environment. Nothing below `cli` sees clap: tests and embedders build
//! these structs directly.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::protocol::Routes;

mod ops;
pub use ops::{HttpApiConfig, RemoteControlConfig, MetricsFileConfig};

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

/// `host new`: a plugin project.
#[derive(Debug, Clone)]
pub struct NewConfig {
    pub language: crate::scaffold::Language,
    pub name: String,
    /// The project folder (default: `./<name>`).
    pub dir: std::path::PathBuf,
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
    /// Largest message taken into the worker; a larger one stays in Redis
    /// until it is acked as a MessageTooLarge failure.
    pub max_message_bytes: usize,
    /// Bytes of messages held at once (besides `prefetch`'s count).
    pub prefetch_bytes: usize,
    /// Largest result stored; a larger one fails the job.
    pub max_result_bytes: usize,
    /// Jobs whose ETA is further off than this wait in Redis's delayed set
    /// instead of in worker memory.
    pub delay_beyond: Duration,
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
    pub rate_limits: HashMap<String, Duration>,
    /// Per-task rate limits shared by every worker on the broker.
    pub global_rate_limits: HashMap<String, Duration>,
    /// Queues for follow-up messages (callbacks, chain links) by task name.
    pub routes: Routes,
    /// Keep the plugin folder in sync with what `host deploy` published,
    /// accepting deploys this trust allows; `None`: no sync.
    pub sync: Option<crate::fleet::Trust>,
    /// What plugins may be granted, and ceilings on their limits.
    pub policy: crate::runtime::Policy,
    /// Send task events from the start (`-E`); remote control can still
    /// switch them (`enable_events`/`disable_events`). Worker events
    /// (online, heartbeat, offline) are always sent.
    pub task_events: bool,
    /// Where to serve `/metrics`, `/healthz` and `/readyz` (`--metrics`).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The job API served beside the worker (`--http`).
    pub http: Option<HttpApiConfig>,
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
            max_message_bytes: 16 << 20,
            prefetch_bytes: 256 << 20,
            max_result_bytes: 16 << 20,
            delay_beyond: Duration::from_secs(30),
            visibility_timeout: Duration::from_secs(3600),
            drain_timeout: Duration::from_secs(30),
            result_expires: Duration::from_secs(86400),
            poll_interval: Duration::from_millis(100),
            rate_limits: Default::default(),
            global_rate_limits: Default::default(),
            routes: Routes::default(),
            sync: None,
            policy: crate::runtime::Policy::for_worker(JobLimits::default().memory_limit_bytes),
            task_events: false,
            metrics_listen: None,
            http: None,
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
    pub send: SendConfig,
    pub task: String,
    pub args: String,
    pub kwargs: String,
    /// Steps (`TASK [ARGS] {KWARGS}`) to run with the result on success.
    pub links: Vec<String>,
    /// Steps to run with the task id on failure.
    pub link_errors: Vec<String>,
    pub priority: u8,
    pub countdown: Option<Duration>,
    pub expires: Option<Duration>,
}

/// How `host submit` and the canvas commands send, and whether they wait.
#[derive(Debug, Clone)]
pub struct SendConfig {
    pub client: ClientConfig,
    /// `None`: routed by task name, else `celery`.
    pub queue: Option<String>,
    pub routes: Routes,
    pub wait: bool,
    pub timeout: Duration,
}

impl SendConfig {
    /// The queue for `task`: the one given, else its route.
    pub fn queue_for(&self, task: &str) -> Option<String> {
        self.queue.clone().or_else(|| self.routes.queue_for(task).map(str::to_string))
    }
}

/// `host chain`, `host group`, `host chord`.
#[derive(Debug, Clone)]
pub struct CanvasConfig {
    pub send: SendConfig,
    pub kind: CanvasKind,
    /// Steps as the command line writes them: `TASK [ARGS] {KWARGS}`.
    pub steps: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CanvasKind {
    Chain,
    Group,
    Chord { body: String },
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
    /// `--stamped HEADER=VALUE`: revoke every job stamped so
    /// (`revoke_by_stamped_headers`), in the order given.
    pub stamped: Vec<(String, String)>,
    pub terminate: bool,
}

/// `host deploy`.
#[derive(Debug, Clone)]
pub struct DeployConfig {
    pub broker_url: String,
    pub plugin: PathBuf,
    /// The manifest to ship with it; default: the `.toml` beside the plugin.
    pub manifest: Option<PathBuf>,
    /// Deploy without a manifest even if one is beside the plugin.
    pub no_manifest: bool,
    /// The plugin name; default: the file stem.
    pub name: Option<String>,
    /// Secret key file to sign the deploy with (`host keygen`).
    pub sign_key: Option<PathBuf>,
}

/// `host keygen`: where to write the key pair (`<base>.key`, `<base>.pub`).
#[derive(Debug, Clone)]
pub struct KeygenConfig {
    pub base: PathBuf,
}

/// `host plugins list`.
#[derive(Debug, Clone)]
pub struct PluginsListConfig {
    pub broker_url: String,
}

/// The optional config file (`--config FILE` or `CHARD_CONFIG`), for the
/// settings that are tables rather than single flags. Flags given as well
/// add to it and win on conflicts.
///
/// ```toml
/// [routes]                 # task name (glob) -> queue
/// "math.*" = "cpu"
///
/// [rate_limits]            # per worker, Celery syntax
/// "math.add" = "100/s"
///
/// [global_rate_limits]     # shared by every worker through Redis
/// "email.send" = "10/s"
///
/// [policy]                 # what plugins may be granted (see runtime::policy)
/// max_memory_limit_mb = 256
/// ```
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub routes: BTreeMap<String, String>,
    #[serde(default)]
    pub rate_limits: BTreeMap<String, String>,
    #[serde(default)]
    pub global_rate_limits: BTreeMap<String, String>,
    #[serde(default)]
    pub metrics: MetricsFileConfig,
    policy: Option<crate::runtime::PolicyFile>,
    /// Where the file was read from, and its text: to point at lines.
    #[serde(skip)]
    source: Option<(PathBuf, String)>,
}

impl FileConfig {
    /// Reads and checks the file; every error names the file and line.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
        let file: Self = crate::runtime::parse_toml(path, &text)?;
        for (table, rates) in [("rate_limits", &file.rate_limits), ("global_rate_limits", &file.global_rate_limits)] {
            for (task, rate) in rates {
                crate::protocol::parse_rate(rate).map_err(|error| anyhow::anyhow!("{}: [{table}] {task:?}: {error}", path.display()))?;
            }
        }
        for (pattern, queue) in &file.routes {
            anyhow::ensure!(!queue.trim().is_empty(), "{}: [routes] {pattern:?}: the queue name is empty", path.display());
        }
        let mut file = file;
        file.source = Some((path.to_path_buf(), text));
        Ok(file)
    }

    /// The `[policy]` table, checked, if the file has one; the worker's
    /// memory limit is its memory ceiling unless it sets one.
    pub fn policy(&mut self, worker_memory_bytes: u64) -> anyhow::Result<Option<crate::runtime::Policy>> {
        let (Some(file), Some((path, text))) = (self.policy.take(), &self.source) else { return Ok(None) };
        Ok(Some(crate::runtime::Policy::from_file(file, path, text, worker_memory_bytes)?))
    }
}

/// `host beat`.
#[derive(Debug, Clone)]
pub struct BeatConfig {
    pub broker_url: String,
    /// The schedule file (`[entries.<name>]` tables).
    pub schedule: PathBuf,
    /// Queues for entries that name none.
    pub routes: Routes,
}
