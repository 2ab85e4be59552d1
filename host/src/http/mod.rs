//! HTTP listeners: the operator's probes and metrics (`probes`) and the
//! job API (`api`). Built on axum, the one HTTP stack of the binary.
//!
//! Each listener is off unless its flag names an address, and every
//! example binds loopback: exposing one is the operator's choice. A
//! listener is a task beside the worker, on the same runtime, so
//! `/healthz` answering shows the event loop the worker uses is alive.

pub mod api;
pub mod probes;

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context as _;

/// Binds `address` and serves `router` until `shutdown` resolves.
/// Binding happens before this returns, so a busy port is an error at
/// start-up, not a log line later.
pub async fn bind(
    address: SocketAddr,
    what: &'static str,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(address).await.with_context(|| format!("binding the {what} listener to {address}"))?;
    let local = listener.local_addr().unwrap_or(address);
    tracing::info!(%local, "{what} listening");
    Ok(tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).with_graceful_shutdown(shutdown).await {
            tracing::error!(%error, "{what} listener stopped");
        }
    }))
}
