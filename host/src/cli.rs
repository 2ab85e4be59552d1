//! Command-line flags, turned into `config` values. The only module that
//! knows clap.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{
    CallConfig, ClientConfig, GlobalConfig, JobLimits, LogFormat, ResultConfig, RevokeConfig, SubmitConfig, TasksConfig,
    WorkerConfig,
};

#[derive(Debug, Parser)]
#[command(name = "host", version, about = "Chard: run WebAssembly tasks from a Celery-compatible Redis queue")]
struct Cli {
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormatArg::Text, env = "CHARD_LOG_FORMAT")]
    log_format: LogFormatArg,
    #[command(subcommand)]
    command: CommandArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum CommandArgs {
    /// Run one task once in a sandbox and print its JSON result.
    Call(CallArgs),
    /// List the tasks a plugin folder serves, with their parameters.
    Tasks(TasksArgs),
    /// Run a worker: take jobs from Redis (Celery's protocol), run them, store results.
    Run(RunArgs),
    /// Send a task to the queue; prints its id (or, with --wait, its result).
    Submit(SubmitArgs),
    /// Show a task's state and result.
    Result(ResultArgs),
    /// Revoke tasks on every worker (Chard and Celery): not started yet = skipped.
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
struct RevokeArgs {
    /// Task ids.
    #[arg(required = true)]
    task_ids: Vec<String>,
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Also stop the tasks if they are running.
    #[arg(long)]
    terminate: bool,
}

#[derive(Debug, Args)]
struct ConnectionArgs {
    /// Broker URL: redis://[user:password@]host:port/db, rediss:// (TLS), redis+socket:///path.
    #[arg(long, env = "CHARD_BROKER_URL", default_value = "redis://127.0.0.1:6379/0")]
    broker: String,
    /// Result backend URL (default: the broker).
    #[arg(long, env = "CHARD_RESULT_BACKEND")]
    result_backend: Option<String>,
}

impl ConnectionArgs {
    fn into_config(self) -> ClientConfig {
        let result_backend_url = self.result_backend.unwrap_or_else(|| self.broker.clone());
        ClientConfig { broker_url: self.broker, result_backend_url }
    }
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Folder of plugin `.wasm` files; tasks are served as `<file stem>.<task>`.
    #[arg(long, env = "CHARD_PLUGINS")]
    plugins: PathBuf,
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Queues to consume, comma-separated.
    #[arg(short = 'Q', long = "queues", value_delimiter = ',', default_value = "celery")]
    queues: Vec<String>,
    /// Jobs run at once (default: number of cores).
    #[arg(short = 'c', long)]
    concurrency: Option<usize>,
    /// Messages held at once, running or waiting (default: max(256, 32 x concurrency)); lower it to share a short queue more evenly between workers.
    #[arg(long)]
    prefetch: Option<usize>,
    /// Node name (default: chard@<host name>).
    #[arg(short = 'n', long)]
    hostname: Option<String>,
    #[command(flatten)]
    limits: LimitArgs,
    /// Seconds a message may stay leased without renewal before it is redelivered.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600.0)]
    visibility_timeout: f64,
    /// Seconds running jobs get to finish on shutdown before being stopped and requeued.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    drain_timeout: f64,
    /// Seconds result keys are kept.
    #[arg(long, value_name = "SECONDS", default_value_t = 86400.0)]
    result_expires: f64,
    /// Per-worker rate limit for a task, Celery syntax; repeatable: --rate-limit math.add=10/s
    #[arg(long, value_name = "TASK=RATE")]
    rate_limit: Vec<String>,
    /// Send task events for Flower and `celery events` from the start (Celery's -E); monitors can also switch them on.
    #[arg(short = 'E', long = "events", visible_alias = "task-events")]
    task_events: bool,
}

/// A task and its arguments, as `call` and `submit` take them.
#[derive(Debug, Args)]
struct TaskArgs {
    /// Task name, e.g. `math.add` (`call` also takes a bare `add`).
    task: String,
    /// Positional arguments as a JSON array.
    #[arg(default_value = "[]")]
    args: String,
    /// Keyword arguments as a JSON object.
    #[arg(long, default_value = "{}")]
    kwargs: String,
}

#[derive(Debug, Args)]
struct SubmitArgs {
    #[command(flatten)]
    call: TaskArgs,
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Queue to send to.
    #[arg(short = 'Q', long, default_value = "celery")]
    queue: String,
    /// Priority 0-9 (lower runs first, as on Celery's Redis transport).
    #[arg(long, default_value_t = 0)]
    priority: u8,
    /// Run no earlier than this many seconds from now.
    #[arg(long, value_name = "SECONDS")]
    countdown: Option<f64>,
    /// Do not run if not started within this many seconds.
    #[arg(long, value_name = "SECONDS")]
    expires: Option<f64>,
    /// Wait for the result and print it (exit 1 if the task failed).
    #[arg(long)]
    wait: bool,
    /// Seconds to wait with --wait.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    timeout: f64,
}

#[derive(Debug, Args)]
struct ResultArgs {
    task_id: String,
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Wait until the task is finished.
    #[arg(long)]
    wait: bool,
    /// Seconds to wait with --wait.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    timeout: f64,
}

#[derive(Debug, Args)]
struct LimitArgs {
    /// Hard time limit per job in seconds (0 = none).
    #[arg(long, value_name = "SECONDS", default_value_t = 300.0, allow_negative_numbers = true)]
    time_limit: f64,
    /// Memory limit per job in MiB.
    #[arg(long, value_name = "MB", default_value_t = 128)]
    memory_limit: u64,
}

#[derive(Debug, Args)]
struct CallArgs {
    /// A plugin `.wasm` file, or a folder of them.
    plugin: PathBuf,
    #[command(flatten)]
    call: TaskArgs,
    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(Debug, Args)]
struct TasksArgs {
    /// Folder of plugin `.wasm` files (or one file).
    #[arg(long, env = "CHARD_PLUGINS", default_value = "plugins")]
    plugins: PathBuf,
}

/// What to run, with its configuration.
#[derive(Debug)]
pub enum Command {
    Call(CallConfig),
    Tasks(TasksConfig),
    Run(WorkerConfig),
    Submit(SubmitConfig),
    Result(ResultConfig),
    Revoke(RevokeConfig),
}

/// Parses the process arguments (exits with clap's message on bad flags).
pub fn parse() -> anyhow::Result<(GlobalConfig, Command)> {
    let cli = Cli::parse();
    let global = GlobalConfig {
        verbosity: cli.verbose,
        log_format: match cli.log_format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        },
    };
    let command = match cli.command {
        CommandArgs::Call(args) => Command::Call(CallConfig {
            plugins: args.plugin,
            task: args.call.task,
            args: args.call.args,
            kwargs: args.call.kwargs,
            limits: limits(&args.limits)?,
        }),
        CommandArgs::Tasks(args) => Command::Tasks(TasksConfig { plugins: args.plugins }),
        CommandArgs::Run(args) => Command::Run(worker_config(args)?),
        CommandArgs::Submit(args) => {
            anyhow::ensure!(args.priority <= 9, "--priority must be 0-9, got {}", args.priority);
            Command::Submit(SubmitConfig {
                client: args.connection.into_config(),
                task: args.call.task,
                args: args.call.args,
                kwargs: args.call.kwargs,
                queue: args.queue,
                priority: args.priority,
                countdown: args.countdown.map(|s| seconds("--countdown", s)).transpose()?.flatten(),
                expires: args.expires.map(|s| seconds("--expires", s)).transpose()?.flatten(),
                wait: args.wait,
                timeout: required_seconds("--timeout", args.timeout)?,
            })
        }
        CommandArgs::Revoke(args) => Command::Revoke(RevokeConfig {
            client: args.connection.into_config(),
            task_ids: args.task_ids,
            terminate: args.terminate,
        }),
        CommandArgs::Result(args) => Command::Result(ResultConfig {
            client: args.connection.into_config(),
            task_id: args.task_id,
            wait: args.wait,
            timeout: required_seconds("--timeout", args.timeout)?,
        }),
    };
    Ok((global, command))
}

fn worker_config(args: RunArgs) -> anyhow::Result<WorkerConfig> {
    let connection = args.connection.into_config();
    let mut config = WorkerConfig::new(args.plugins, &connection.broker_url);
    config.result_backend_url = connection.result_backend_url;
    anyhow::ensure!(
        args.queues.iter().all(|q| !q.trim().is_empty() && !q.contains(['"', '\\'])),
        "-Q needs queue names without quotes or backslashes, e.g. -Q celery,cpu"
    );
    config.queues = args.queues.iter().map(|q| q.trim().to_string()).collect();
    if let Some(concurrency) = args.concurrency {
        anyhow::ensure!((1..=1024).contains(&concurrency), "-c must be between 1 and 1024, got {concurrency}");
        config.concurrency = concurrency;
        config.prefetch = 256.max(concurrency * 32);
    }
    if let Some(prefetch) = args.prefetch {
        anyhow::ensure!(prefetch >= 1, "--prefetch must be at least 1");
        config.prefetch = prefetch;
    }
    if let Some(hostname) = args.hostname {
        config.hostname = hostname;
    }
    config.limits = limits(&args.limits)?;
    config.visibility_timeout = required_seconds("--visibility-timeout", args.visibility_timeout)?;
    config.drain_timeout = seconds("--drain-timeout", args.drain_timeout)?.unwrap_or_default();
    config.result_expires = required_seconds("--result-expires", args.result_expires)?;
    config.task_events = args.task_events;
    for entry in &args.rate_limit {
        let (task, rate) = entry
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--rate-limit takes TASK=RATE, e.g. math.add=10/s, got {entry:?}"))?;
        let interval = crate::worker::parse_rate(rate).map_err(|error| anyhow::anyhow!("--rate-limit {task}: {error}"))?;
        config.rate_limits.insert(task.trim().to_string(), interval);
    }
    Ok(config)
}

fn required_seconds(flag: &str, value: f64) -> anyhow::Result<Duration> {
    seconds(flag, value)?.ok_or_else(|| anyhow::anyhow!("{flag} must be greater than 0"))
}

fn limits(args: &LimitArgs) -> anyhow::Result<JobLimits> {
    Ok(JobLimits {
        time_limit: seconds("--time-limit", args.time_limit)?,
        memory_limit_bytes: megabytes("--memory-limit", args.memory_limit)?,
    })
}

/// Seconds to a duration; 0 means "no limit".
fn seconds(flag: &str, value: f64) -> anyhow::Result<Option<Duration>> {
    anyhow::ensure!(value.is_finite() && value >= 0.0, "{flag} must be a non-negative number of seconds, got {value}");
    Ok((value > 0.0).then(|| Duration::from_secs_f64(value)))
}

fn megabytes(flag: &str, value: u64) -> anyhow::Result<u64> {
    anyhow::ensure!((1..=65536).contains(&value), "{flag} must be between 1 and 65536 MiB, got {value}");
    Ok(value << 20)
}
