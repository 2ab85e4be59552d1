//! Command-line flags, turned into `config` values. The only module that
//! knows clap.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod ops;

use crate::protocol::Routes;
use crate::scaffold::Language;

use crate::config::{BeatConfig, CanvasConfig, CanvasKind, FileConfig, SendConfig, 
    CallConfig, ClientConfig, DeployConfig, GlobalConfig, KeygenConfig, NewConfig, PluginsListConfig, JobLimits, LogFormat, ResultConfig, RevokeConfig, SubmitConfig, TasksConfig,
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
    /// Send a chain: each step gets the previous step's result as its first argument.
    Chain(CanvasArgs),
    /// Send a group: the steps run in parallel; --wait prints the list of results.
    Group(CanvasArgs),
    /// Send a chord: a group, then --body with the list of the group's results.
    Chord(ChordArgs),
    /// Show a task's state and result.
    Result(ResultArgs),
    /// Revoke tasks on every worker (Chard and Celery): not started yet = skipped.
    Revoke(RevokeArgs),
    /// Send periodic tasks from a schedule file (interval and crontab); run two for high availability.
    Beat(BeatArgs),
    /// Publish a plugin to every worker started with --sync (no restart).
    Deploy(DeployArgs),
    /// Deployed plugins and the version each live worker runs.
    Plugins(PluginsArgs),
    /// Ask workers (Chard and Celery) what they hold: ping, stats, active, reserved, scheduled, registered, revoked.
    Inspect(ops::InspectArgs),
    /// Tell workers (Chard and Celery) to shut down, change a rate limit, or switch task events.
    Control(ops::ControlArgs),
    /// Serve the HTTP job API: submit tasks, read results, revoke, list tasks and workers.
    Serve(ops::ServeArgs),
    /// Make an Ed25519 key pair for signed deploys: BASE.key (secret, mode 0600) and BASE.pub.
    Keygen(KeygenArgs),
    /// Create a plugin project that builds with `make` into NAME.wasm.
    New(NewArgs),
    /// The guest SDK and WIT files this `host` carries.
    Sdk(SdkArgs),
}

#[derive(Debug, Args)]
struct KeygenArgs {
    /// Path without extension, e.g. `deploy` writes deploy.key and deploy.pub (never overwrites).
    #[arg(default_value = "chard-deploy")]
    base: PathBuf,
}

#[derive(Debug, Args)]
struct NewArgs {
    /// The plugin's language.
    #[arg(value_enum)]
    language: LanguageArg,
    /// Plugin name: lowercase letters, digits and _; names the .wasm and the tasks (NAME.add).
    name: String,
    /// Project folder to create (default: ./NAME).
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LanguageArg {
    Rust,
    Python,
    Js,
    C,
}

#[derive(Debug, Args)]
struct SdkArgs {
    #[command(subcommand)]
    command: SdkCommand,
}

#[derive(Debug, Subcommand)]
enum SdkCommand {
    /// Write the SDK of every language, the WIT and the toolchain installer into DIR.
    Export { dir: PathBuf },
}

#[derive(Debug, Args)]
struct BeatArgs {
    /// Schedule file with [entries.<name>] tables (see the README).
    #[arg(long, env = "CHARD_SCHEDULE", value_name = "FILE")]
    schedule: PathBuf,
    /// Broker URL.
    #[arg(long, env = "CHARD_BROKER_URL", default_value = "redis://127.0.0.1:6379/0")]
    broker: String,
    #[command(flatten)]
    routing: RoutingArgs,
}

#[derive(Debug, Args)]
struct DeployArgs {
    /// The plugin `.wasm` to publish.
    plugin: PathBuf,
    /// Manifest to publish with it (default: the `.toml` beside the plugin, if any).
    #[arg(long, conflicts_with = "no_manifest")]
    manifest: Option<PathBuf>,
    /// Publish without a manifest even if one is beside the plugin.
    #[arg(long)]
    no_manifest: bool,
    /// Plugin name (default: the file stem); tasks are served as <name>.<task> unless renamed (manifest `name =`, or a dotted task name).
    #[arg(long)]
    name: Option<String>,
    /// Sign the deploy with this secret key (from `host keygen`); workers with --trust-key accept only signed deploys.
    #[arg(long, env = "CHARD_SIGN_KEY", value_name = "KEY")]
    sign_key: Option<PathBuf>,
    /// Broker URL.
    #[arg(long, env = "CHARD_BROKER_URL", default_value = "redis://127.0.0.1:6379/0")]
    broker: String,
}

#[derive(Debug, Args)]
struct PluginsArgs {
    #[command(subcommand)]
    command: PluginsCommand,
}

#[derive(Debug, Subcommand)]
enum PluginsCommand {
    /// Deployed plugins, and which version each live worker runs.
    List {
        /// Broker URL.
        #[arg(long, env = "CHARD_BROKER_URL", default_value = "redis://127.0.0.1:6379/0")]
        broker: String,
    },
}

#[derive(Debug, Args)]
struct RevokeArgs {
    /// Task ids.
    #[arg(required_unless_present = "stamped")]
    task_ids: Vec<String>,
    /// Revoke every job whose stamped header HEADER has VALUE (Celery's revoke_by_stamped_headers); repeatable.
    #[arg(long, value_name = "HEADER=VALUE")]
    stamped: Vec<String>,
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
    /// Folder of plugin `.wasm` files; tasks are served as `<file stem>.<task>` unless renamed (manifest `name =`, or a dotted task name).
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
    #[command(flatten)]
    caps: CapArgs,
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
    /// Rate limit for a task shared by every worker on the broker (through Redis); repeatable: --global-rate-limit email.send=10/s
    #[arg(long, value_name = "TASK=RATE")]
    global_rate_limit: Vec<String>,
    #[command(flatten)]
    routing: RoutingArgs,
    /// Keep the plugin folder in sync with plugins published by `host deploy` (needs --trust-key or --sync-unsigned).
    #[arg(long)]
    sync: bool,
    /// Public key (file from `host keygen`, or its line) whose signed deploys --sync accepts; repeatable.
    #[arg(long, value_name = "PUB")]
    trust_key: Vec<String>,
    /// DEVELOPMENT ONLY: let --sync apply unsigned deploys, i.e. anyone who can write to Redis.
    #[arg(long, conflicts_with = "trust_key")]
    sync_unsigned: bool,
    /// Policy file: what plugin manifests may grant on this worker (or a [policy] table in --config).
    #[arg(long, env = "CHARD_POLICY", value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Send task events for Flower and `celery events` from the start (Celery's -E); monitors can also switch them on.
    #[arg(short = 'E', long = "events", visible_alias = "task-events")]
    task_events: bool,
    #[command(flatten)]
    ops: ops::RunOpsArgs,
}

/// Routing by task name, and the config file that can hold routes.
#[derive(Debug, Args)]
struct RoutingArgs {
    /// Config file with [routes], [rate_limits] and [global_rate_limits] tables.
    #[arg(long, env = "CHARD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Route tasks matching PATTERN (`*` globs) to QUEUE; repeatable: --route 'math.*=cpu'
    #[arg(long, value_name = "PATTERN=QUEUE")]
    route: Vec<String>,
}

impl SendArgs {
    fn into_config(self) -> anyhow::Result<SendConfig> {
        Ok(SendConfig {
            routes: self.routing.load()?.1,
            client: self.connection.into_config(),
            queue: self.queue,
            wait: self.wait,
            timeout: required_seconds("--timeout", self.timeout)?,
        })
    }
}

impl RoutingArgs {
    /// The config file (if any) with the --route flags applied over it.
    fn load(&self) -> anyhow::Result<(FileConfig, Routes)> {
        let file = match &self.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let mut routes = Routes::new(file.routes.clone());
        let mut flags = Vec::new();
        for entry in &self.route {
            let (pattern, queue) = entry
                .split_once('=')
                .filter(|(pattern, queue)| !pattern.trim().is_empty() && !queue.trim().is_empty())
                .ok_or_else(|| anyhow::anyhow!("--route takes PATTERN=QUEUE, e.g. 'math.*=cpu', got {entry:?}"))?;
            flags.push((pattern.trim().to_string(), queue.trim().to_string()));
        }
        routes.extend(flags);
        Ok((file, routes))
    }
}

/// `TASK=RATE` entries (flags) over `TASK = "RATE"` entries (config file).
fn rate_limits(
    flag: &str,
    file: &std::collections::BTreeMap<String, String>,
    entries: &[String],
) -> anyhow::Result<std::collections::HashMap<String, Duration>> {
    let mut limits = std::collections::HashMap::new();
    let pairs = file.iter().map(|(task, rate)| Ok((task.as_str(), rate.as_str()))).chain(entries.iter().map(|entry| {
        entry.split_once('=').ok_or_else(|| anyhow::anyhow!("{flag} takes TASK=RATE, e.g. math.add=10/s, got {entry:?}"))
    }));
    for pair in pairs {
        let (task, rate) = pair?;
        let interval = crate::protocol::parse_rate(rate).map_err(|error| anyhow::anyhow!("{flag} {task}: {error}"))?;
        limits.insert(task.trim().to_string(), interval);
    }
    Ok(limits)
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
    send: SendArgs,
    /// Priority 0-9 (lower runs first, as on Celery's Redis transport).
    #[arg(long, default_value_t = 0)]
    priority: u8,
    /// Run no earlier than this many seconds from now.
    #[arg(long, value_name = "SECONDS")]
    countdown: Option<f64>,
    /// Do not run if not started within this many seconds.
    #[arg(long, value_name = "SECONDS")]
    expires: Option<f64>,
    /// Run this step with the task's result when it succeeds (Celery's link); repeatable.
    #[arg(long, value_name = "STEP")]
    link: Vec<String>,
    /// Run this step with the task's id when it fails (Celery's link_error); repeatable.
    #[arg(long, value_name = "STEP")]
    link_error: Vec<String>,
}

/// Where and how `submit` and the canvas commands send, and whether they wait.
#[derive(Debug, Args)]
struct SendArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Queue to send to (default: the queue a --route or the config file gives the task, else `celery`).
    #[arg(short = 'Q', long)]
    queue: Option<String>,
    #[command(flatten)]
    routing: RoutingArgs,
    /// Wait for the result and print it (exit 1 if it failed).
    #[arg(long)]
    wait: bool,
    /// Seconds to wait with --wait.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    timeout: f64,
}

#[derive(Debug, Args)]
struct CanvasArgs {
    /// Steps, each 'TASK', 'TASK [ARGS]' or 'TASK [ARGS] {KWARGS}', e.g. 'math.add [2, 2]' 'math.mul [10]'.
    #[arg(required = true, value_name = "STEP")]
    steps: Vec<String>,
    #[command(flatten)]
    send: SendArgs,
}

#[derive(Debug, Args)]
struct ChordArgs {
    /// The step that gets the list of results, e.g. 'math.xsum'.
    #[arg(long, value_name = "STEP")]
    body: String,
    #[command(flatten)]
    canvas: CanvasArgs,
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

/// Caps that keep a worker's memory bounded whatever it is sent.
#[derive(Debug, Args)]
struct CapArgs {
    /// Largest message accepted, in MiB; a larger one fails as MessageTooLarge without being read into the worker.
    #[arg(long, value_name = "MB", default_value_t = 16)]
    max_message_size: u64,
    /// MiB of messages held at once (running, waiting for a thread or for a near ETA), on top of --prefetch's count.
    #[arg(long, value_name = "MB", default_value_t = 256)]
    prefetch_size: u64,
    /// Largest result stored, in MiB of JSON; a larger one fails the job as ResultTooLarge.
    #[arg(long, value_name = "MB", default_value_t = 16)]
    max_result_size: u64,
    /// Jobs whose ETA is more than SECONDS away wait in Redis (chard:delayed), not in worker memory.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    delay_beyond: f64,
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
    Canvas(CanvasConfig),
    Beat(BeatConfig),
    Deploy(DeployConfig),
    PluginsList(PluginsListConfig),
    Keygen(KeygenConfig),
    New(NewConfig),
    SdkExport(PathBuf),
    RemoteControl(crate::config::RemoteControlConfig),
    Serve(crate::config::HttpApiConfig),
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
                send: args.send.into_config()?,
                task: args.call.task,
                args: args.call.args,
                kwargs: args.call.kwargs,
                links: args.link,
                link_errors: args.link_error,
                priority: args.priority,
                countdown: args.countdown.map(|s| seconds("--countdown", s)).transpose()?.flatten(),
                expires: args.expires.map(|s| seconds("--expires", s)).transpose()?.flatten(),
            })
        }
        CommandArgs::Revoke(args) => {
            let stamped = args
                .stamped
                .iter()
                .map(|pair| match pair.split_once('=') {
                    Some((header, value)) if !header.is_empty() => Ok((header.to_string(), value.to_string())),
                    _ => anyhow::bail!("--stamped takes HEADER=VALUE, e.g. --stamped mon=batch-7, got {pair:?}"),
                })
                .collect::<anyhow::Result<_>>()?;
            Command::Revoke(RevokeConfig {
                client: args.connection.into_config(),
                task_ids: args.task_ids,
                stamped,
                terminate: args.terminate,
            })
        }
        CommandArgs::Chain(args) => Command::Canvas(canvas_config(CanvasKind::Chain, args)?),
        CommandArgs::Group(args) => Command::Canvas(canvas_config(CanvasKind::Group, args)?),
        CommandArgs::Chord(args) => Command::Canvas(canvas_config(CanvasKind::Chord { body: args.body }, args.canvas)?),
        CommandArgs::Beat(args) => {
            Command::Beat(BeatConfig { broker_url: args.broker, schedule: args.schedule, routes: args.routing.load()?.1 })
        }
        CommandArgs::Deploy(args) => Command::Deploy(DeployConfig {
            broker_url: args.broker,
            plugin: args.plugin,
            manifest: args.manifest,
            no_manifest: args.no_manifest,
            name: args.name,
            sign_key: args.sign_key,
        }),
        CommandArgs::Keygen(args) => Command::Keygen(KeygenConfig { base: args.base }),
        CommandArgs::Plugins(PluginsArgs { command: PluginsCommand::List { broker } }) => {
            Command::PluginsList(PluginsListConfig { broker_url: broker })
        }
        CommandArgs::New(args) => Command::New(NewConfig {
            language: match args.language {
                LanguageArg::Rust => Language::Rust,
                LanguageArg::Python => Language::Python,
                LanguageArg::Js => Language::Js,
                LanguageArg::C => Language::C,
            },
            dir: args.dir.unwrap_or_else(|| PathBuf::from(&args.name)),
            name: args.name,
        }),
        CommandArgs::Sdk(SdkArgs { command: SdkCommand::Export { dir } }) => Command::SdkExport(dir),
        CommandArgs::Inspect(args) => Command::RemoteControl(ops::inspect_config(args)?),
        CommandArgs::Control(args) => Command::RemoteControl(ops::control_config(args)?),
        CommandArgs::Serve(args) => Command::Serve(args.into_config()?),
        CommandArgs::Result(args) => Command::Result(ResultConfig {
            client: args.connection.into_config(),
            task_id: args.task_id,
            wait: args.wait,
            timeout: required_seconds("--timeout", args.timeout)?,
        }),
    };
    Ok((global, command))
}

fn canvas_config(kind: CanvasKind, args: CanvasArgs) -> anyhow::Result<CanvasConfig> {
    Ok(CanvasConfig { send: args.send.into_config()?, kind, steps: args.steps })
}

fn worker_config(args: RunArgs) -> anyhow::Result<WorkerConfig> {
    let sync = sync_trust(&args)?;
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
    config.max_message_bytes = megabytes("--max-message-size", args.caps.max_message_size)? as usize;
    config.prefetch_bytes = megabytes("--prefetch-size", args.caps.prefetch_size)? as usize;
    config.max_result_bytes = megabytes("--max-result-size", args.caps.max_result_size)? as usize;
    anyhow::ensure!(
        config.prefetch_bytes >= config.max_message_bytes,
        "--prefetch-size must be at least --max-message-size, or a message of the largest size could never be taken"
    );
    config.delay_beyond = seconds("--delay-beyond", args.caps.delay_beyond)?.unwrap_or_default();
    config.visibility_timeout = required_seconds("--visibility-timeout", args.visibility_timeout)?;
    config.drain_timeout = seconds("--drain-timeout", args.drain_timeout)?.unwrap_or_default();
    config.result_expires = required_seconds("--result-expires", args.result_expires)?;
    config.sync = sync;
    let (mut file, routes) = args.routing.load()?;
    config.policy = match (&args.policy, file.policy(config.limits.memory_limit_bytes)?) {
        (Some(_), Some(_)) => anyhow::bail!("--policy and a [policy] table in --config: give the policy in one place"),
        (Some(path), None) => crate::runtime::Policy::load(path, config.limits.memory_limit_bytes)?,
        (None, Some(policy)) => policy,
        (None, None) => crate::runtime::Policy::for_worker(config.limits.memory_limit_bytes),
    };
    config.routes = routes;
    config.rate_limits = rate_limits("--rate-limit", &file.rate_limits, &args.rate_limit)?;
    config.global_rate_limits = rate_limits("--global-rate-limit", &file.global_rate_limits, &args.global_rate_limit)?;
    config.task_events = args.task_events;
    args.ops.apply(&file, &mut config)?;
    Ok(config)
}

/// What `--sync` accepts: deploys signed by a `--trust-key`, or (for
/// development) anything with `--sync-unsigned`.
fn sync_trust(args: &RunArgs) -> anyhow::Result<Option<crate::fleet::Trust>> {
    if !args.sync {
        anyhow::ensure!(args.trust_key.is_empty() && !args.sync_unsigned, "--trust-key and --sync-unsigned only apply with --sync");
        return Ok(None);
    }
    if args.sync_unsigned {
        return Ok(Some(crate::fleet::Trust::Unsigned));
    }
    anyhow::ensure!(
        !args.trust_key.is_empty(),
        "--sync needs --trust-key PUB (the public key of whoever signs deploys, from `host keygen`), or --sync-unsigned for development"
    );
    let keys = args.trust_key.iter().map(|key| crate::fleet::sign::read_public(key)).collect::<Result<Vec<_>, _>>()?;
    Ok(Some(crate::fleet::Trust::Keys(keys)))
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
    Ok((value > 0.0).then(|| Duration::try_from_secs_f64(value).unwrap_or(Duration::MAX)))
}

fn megabytes(flag: &str, value: u64) -> anyhow::Result<u64> {
    anyhow::ensure!((1..=65536).contains(&value), "{flag} must be between 1 and 65536 MiB, got {value}");
    Ok(value << 20)
}
