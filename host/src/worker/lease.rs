//! Leases: renew those of every held message, and restore those nobody
//! renewed for `visibility_timeout` (a dead or stalled worker's).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Shared;
use crate::broker::Broker;

/// Renews the leases of held messages well before they could expire.
pub(super) async fn lease_loop<B: Broker>(shared: Arc<Shared<B>>) {
    let period = (shared.config.visibility_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(60));
    loop {
        tokio::time::sleep(period).await;
        let tags: Vec<String> = shared.held.lock().unwrap().iter().cloned().collect();
        for chunk in tags.chunks(1000) {
            if let Err(error) = shared.broker.extend_leases(chunk).await {
                tracing::warn!(%error, "cannot renew leases; retrying");
                break;
            }
        }
    }
}

/// Restores messages whose lease expired: what a dead worker held.
pub(super) async fn sweep_loop<B: Broker>(shared: Arc<Shared<B>>, mut stop: watch::Receiver<bool>) {
    let period = (shared.config.visibility_timeout / 2).clamp(Duration::from_millis(500), Duration::from_secs(60));
    loop {
        match shared.broker.restore_expired(shared.config.visibility_timeout).await {
            Ok(0) => {}
            Ok(count) => tracing::warn!(count, "restored messages whose lease expired (a worker died or stalled)"),
            Err(error) => tracing::debug!(%error, "restore sweep failed; will retry"),
        }
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            _ = stop.wait_for(|stopping| *stopping) => return,
        }
    }
}
