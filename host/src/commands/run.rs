//! `host run`: the worker, with signal handling.
//!
//! First SIGTERM/SIGINT: graceful shutdown (stop fetching, drain, requeue
//! what did not finish). Second: exit at once; held messages stay in
//! `unacked` and are restored after the visibility timeout.

use anyhow::Context as _;

use crate::backend::RedisBackend;
use crate::broker::redis::RedisBroker;
use crate::client::{open, redact};
use crate::config::WorkerConfig;

pub async fn run(config: WorkerConfig) -> anyhow::Result<()> {
    anyhow::ensure!(config.plugins.is_dir(), "plugin folder {} does not exist", config.plugins.display());
    let broker_client = open(&config.broker_url)?;
    let backend_client = open(&config.result_backend_url)?;
    crate::client::wait_until_reachable(&broker_client).await;
    if config.result_backend_url != config.broker_url {
        crate::client::wait_until_reachable(&backend_client).await;
    }
    let db = broker_client.get_connection_info().redis.db;
    let control = crate::control::ControlLink {
        client: broker_client.clone(),
        connection: crate::broker::redis::connect_manager(broker_client.clone())
            .await
            .with_context(|| format!("connecting to broker {}", redact(&config.broker_url)))?,
        db,
    };
    if config.sync {
        // Before the first load, so the worker starts on the deployed versions.
        let mut connection = control.connection.clone();
        match crate::fleet::sync_once(&mut connection, &config.plugins).await {
            Ok(names) if !names.is_empty() => tracing::info!(plugins = ?names, "synced deployed plugins"),
            Ok(_) => {}
            Err(error) => tracing::warn!("deploy sync failed: {error:#}"),
        }
        tokio::spawn(crate::fleet::follow(broker_client.clone(), control.connection.clone(), config.plugins.clone()));
    }
    let broker = RedisBroker::connect(broker_client, &config.queues)
        .await
        .with_context(|| format!("connecting to broker {}", redact(&config.broker_url)))?;
    let backend = RedisBackend::connect(backend_client)
        .await
        .with_context(|| format!("connecting to result backend {}", redact(&config.result_backend_url)))?;
    if let Err(error) = broker.declare_queues(&config.queues).await {
        tracing::warn!(%error, "could not declare queue bindings");
    }
    crate::worker::run(config, broker, backend, Some(control), shutdown_signal()).await
}

/// Resolves on the first SIGTERM or SIGINT; a second one exits the process.
pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut interrupt = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::warn!("second signal: exiting now; held messages return after the visibility timeout");
        std::process::exit(130);
    });
}
