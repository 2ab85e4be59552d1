//! Command-line flags, turned into `config` values. The only module that
//! knows clap.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{CallConfig, GlobalConfig, JobLimits, LogFormat, TasksConfig};

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
    /// Task name: `add` or `math.add`.
    task: String,
    /// Positional arguments as a JSON array.
    #[arg(default_value = "[]")]
    args: String,
    /// Keyword arguments as a JSON object.
    #[arg(long, default_value = "{}")]
    kwargs: String,
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
            task: args.task,
            args: args.args,
            kwargs: args.kwargs,
            limits: limits(&args.limits)?,
        }),
        CommandArgs::Tasks(args) => Command::Tasks(TasksConfig { plugins: args.plugins }),
    };
    Ok((global, command))
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
