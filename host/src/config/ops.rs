//! Configuration of the operator's tools: the worker's metrics and HTTP
//! listeners, `host serve`, `host inspect` and `host control`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::ClientConfig;

/// The `[metrics]` table of the config file.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsFileConfig {
    /// `host:port` for `/metrics`, `/healthz` and `/readyz`.
    pub listen: Option<SocketAddr>,
}

/// The job API (`host serve`, or `host run --http`).
#[derive(Debug, Clone)]
pub struct HttpApiConfig {
    pub listen: SocketAddr,
    pub client: ClientConfig,
    /// Bearer token every route but `/healthz` requires (read from a file).
    pub auth_token: Option<String>,
    /// Folder whose plugins `GET /tasks` lists beside the live workers'.
    pub plugins: Option<PathBuf>,
    /// Queues for tasks sent without one, by name.
    pub routes: crate::protocol::Routes,
    /// Longest `?wait=` accepted.
    pub max_wait: Duration,
}

/// `host inspect METHOD` and `host control COMMAND`: one pidbox call.
#[derive(Debug, Clone)]
pub struct RemoteControlConfig {
    pub broker_url: String,
    /// Celery's method name: `ping`, `stats`, `active`, ...
    pub method: String,
    pub arguments: serde_json::Value,
    /// Node names to ask; empty = every worker.
    pub destination: Vec<String>,
    /// How long to collect replies.
    pub timeout: Duration,
    /// Print the raw JSON replies instead of a summary.
    pub json: bool,
}
