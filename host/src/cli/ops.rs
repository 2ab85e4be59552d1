//! Flags of the operator's commands: `host run --metrics/--http`,
//! `host serve`, `host inspect` and `host control`. Kept beside `cli.rs`
//! rather than in it, one file per group of commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use super::{required_seconds, ConnectionArgs, RoutingArgs};
use crate::config::{FileConfig, HttpApiConfig, RemoteControlConfig, WorkerConfig};

/// `host run` flags for metrics and the embedded HTTP API.
#[derive(Debug, Args)]
pub(super) struct RunOpsArgs {
    /// Serve Prometheus `/metrics`, `/healthz` and `/readyz` on this address, e.g. 127.0.0.1:9808 (also `[metrics] listen` in the config file).
    #[arg(long, value_name = "ADDR", env = "CHARD_METRICS")]
    metrics: Option<SocketAddr>,
    /// Also serve the job API (as `host serve`) on this address, e.g. 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// With --http: file holding the bearer token every route but /healthz requires.
    #[arg(long, value_name = "FILE", requires = "http")]
    auth_token_file: Option<PathBuf>,
}

impl RunOpsArgs {
    /// Applies these flags (and the file's `[metrics]`) to a worker's config.
    pub(super) fn apply(self, file: &FileConfig, config: &mut WorkerConfig) -> anyhow::Result<()> {
        config.metrics_listen = self.metrics.or(file.metrics.listen);
        if let Some(listen) = self.http {
            config.http = Some(HttpApiConfig {
                listen,
                client: crate::config::ClientConfig {
                    broker_url: config.broker_url.clone(),
                    result_backend_url: config.result_backend_url.clone(),
                },
                auth_token: read_token(self.auth_token_file.as_deref())?,
                plugins: Some(config.plugins.clone()),
                routes: config.routes.clone(),
                max_wait: MAX_WAIT,
            });
        }
        Ok(())
    }
}

/// Longest `?wait=` the API accepts.
const MAX_WAIT: Duration = Duration::from_secs(300);

#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    /// Address to listen on; loopback unless you mean otherwise.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    connection: ConnectionArgs,
    /// File holding the bearer token every route but /healthz requires.
    #[arg(long, value_name = "FILE")]
    auth_token_file: Option<PathBuf>,
    /// Plugin folder whose tasks `GET /tasks` lists beside the live workers'.
    #[arg(long, env = "CHARD_PLUGINS")]
    plugins: Option<PathBuf>,
    #[command(flatten)]
    routing: RoutingArgs,
}

impl ServeArgs {
    pub(super) fn into_config(self) -> anyhow::Result<HttpApiConfig> {
        Ok(HttpApiConfig {
            listen: self.listen,
            routes: self.routing.load()?.1,
            client: self.connection.into_config(),
            auth_token: read_token(self.auth_token_file.as_deref())?,
            plugins: self.plugins,
            max_wait: MAX_WAIT,
        })
    }
}

fn read_token(path: Option<&std::path::Path>) -> anyhow::Result<Option<String>> {
    let Some(path) = path else { return Ok(None) };
    let text = std::fs::read_to_string(path).map_err(|error| anyhow::anyhow!("--auth-token-file {}: {error}", path.display()))?;
    let token = text.trim().to_string();
    anyhow::ensure!(token.len() >= 16, "--auth-token-file {}: the token must be at least 16 characters", path.display());
    Ok(Some(token))
}

/// Flags every pidbox command shares.
#[derive(Debug, Args)]
pub(super) struct PidboxArgs {
    /// Broker URL.
    #[arg(long, env = "CHARD_BROKER_URL", default_value = "redis://127.0.0.1:6379/0", global = true)]
    broker: String,
    /// Ask only this node (repeatable, or comma-separated), e.g. chard@web-1.
    #[arg(short = 'd', long, value_delimiter = ',', global = true)]
    destination: Vec<String>,
    /// Seconds to wait for replies.
    #[arg(short = 't', long, default_value_t = 1.0, global = true)]
    timeout: f64,
    /// Print the replies as one JSON object {node: reply}.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Args)]
pub(super) struct InspectArgs {
    #[arg(value_enum)]
    method: InspectMethod,
    #[command(flatten)]
    pidbox: PidboxArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum InspectMethod {
    Ping,
    Stats,
    Active,
    Reserved,
    Scheduled,
    Registered,
    Revoked,
    Conf,
    ActiveQueues,
}

#[derive(Debug, Args)]
pub(super) struct ControlArgs {
    #[command(subcommand)]
    command: ControlCommand,
    #[command(flatten)]
    pidbox: PidboxArgs,
}

#[derive(Debug, Subcommand)]
enum ControlCommand {
    /// Graceful shutdown of the workers (as SIGTERM).
    Shutdown,
    /// Set a task's per-worker rate limit, Celery syntax (10/s, 100/m; 0 lifts it).
    RateLimit { task: String, rate: String },
    /// Switch task events on (what Flower does).
    EnableEvents,
    /// Switch task events off.
    DisableEvents,
}

pub(super) fn inspect_config(args: InspectArgs) -> anyhow::Result<RemoteControlConfig> {
    let (method, arguments) = match args.method {
        InspectMethod::Ping => ("ping", json!({})),
        InspectMethod::Stats => ("stats", json!({})),
        InspectMethod::Active => ("active", json!({"safe": null})),
        InspectMethod::Reserved => ("reserved", json!({})),
        InspectMethod::Scheduled => ("scheduled", json!({})),
        InspectMethod::Registered => ("registered", json!({"taskinfoitems": []})),
        InspectMethod::Revoked => ("revoked", json!({})),
        InspectMethod::Conf => ("conf", json!({"with_defaults": false})),
        InspectMethod::ActiveQueues => ("active_queues", json!({})),
    };
    args.pidbox.into_config(method, arguments)
}

pub(super) fn control_config(args: ControlArgs) -> anyhow::Result<RemoteControlConfig> {
    let (method, arguments) = match args.command {
        ControlCommand::Shutdown => ("shutdown", json!({})),
        ControlCommand::RateLimit { task, rate } => {
            let lifting = rate.trim().parse::<f64>().is_ok_and(|count| count == 0.0);
            if !lifting {
                crate::protocol::parse_rate(&rate).map_err(|error| anyhow::anyhow!("rate-limit: {error}"))?;
            }
            ("rate_limit", json!({"task_name": task, "rate_limit": rate}))
        }
        ControlCommand::EnableEvents => ("enable_events", json!({})),
        ControlCommand::DisableEvents => ("disable_events", json!({})),
    };
    args.pidbox.into_config(method, arguments)
}

impl PidboxArgs {
    fn into_config(self, method: &str, arguments: serde_json::Value) -> anyhow::Result<RemoteControlConfig> {
        Ok(RemoteControlConfig {
            broker_url: self.broker,
            method: method.to_string(),
            arguments,
            destination: self.destination.into_iter().map(|node| node.trim().to_string()).filter(|node| !node.is_empty()).collect(),
            timeout: required_seconds("--timeout", self.timeout)?,
            json: self.json,
        })
    }
}
