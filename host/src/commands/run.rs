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

pub async fn run(mut config: WorkerConfig) -> anyhow::Result<()> {
    anyhow::ensure!(config.plugins.is_dir(), "plugin folder {} does not exist", config.plugins.display());
    // Every connection below goes through a relay that follows failovers.
    config.broker_url = crate::client::sentinel::follow(&config.broker_url).await?;
    config.result_backend_url = crate::client::sentinel::follow(&config.result_backend_url).await?;
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
    if let Some(trust) = &config.sync {
        if matches!(trust, crate::fleet::Trust::Unsigned) {
            tracing::warn!(
                "--sync-unsigned: this worker applies UNSIGNED deploys: anyone who can write to the broker's Redis \
                 can change the code it runs. For development only; use --trust-key in production."
            );
        }
        // Before the first load, so the worker starts on the deployed versions.
        let mut syncer = crate::fleet::Syncer::new(config.plugins.clone(), trust.clone());
        let mut connection = control.connection.clone();
        match syncer.sync_once(&mut connection).await {
            Ok(names) if !names.is_empty() => tracing::info!(plugins = ?names, "synced deployed plugins"),
            Ok(_) => {}
            Err(error) => tracing::warn!("deploy sync failed: {error:#}"),
        }
        tokio::spawn(crate::fleet::follow(broker_client.clone(), control.connection.clone(), syncer));
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
    let metrics = config.metrics_listen.map(|_| crate::metrics::Metrics::new(&config.hostname));
    // Readiness turns false the moment the signal arrives, before the drain.
    let signalled = {
        let metrics = metrics.clone();
        async move {
            shutdown_signal().await;
            if let Some(metrics) = metrics {
                metrics.health.set_stopping();
            }
        }
    };
    let (stop_listeners, listeners_stopped) = tokio::sync::watch::channel(false);
    let mut listeners = Vec::new();
    if let (Some(address), Some(metrics)) = (config.metrics_listen, &metrics) {
        let router = crate::http::probes::router(metrics.clone());
        listeners.push(crate::http::bind(address, "metrics", router, stopped(listeners_stopped.clone())).await?);
    }
    if let Some(api) = config.http.clone() {
        let router = crate::http::api::router(api.clone()).await?;
        listeners.push(crate::http::bind(api.listen, "HTTP API", router, stopped(listeners_stopped.clone())).await?);
    }
    let result = crate::worker::run(config, broker, backend, Some(control), metrics, signalled).await;
    let _ = stop_listeners.send(true);
    for listener in listeners {
        let _ = listener.await;
    }
    result
}

/// Resolves once `stop` turns true: the listeners stay up through the drain
/// (so `/readyz` can say why it is not ready) and stop with the worker.
async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
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
