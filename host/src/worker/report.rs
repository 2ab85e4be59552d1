//! The worker's entry in `chard:workers`: which plugin versions it serves,
//! so `host plugins list` can tell whether a deploy reached every worker.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::fleet::{self, RunningPlugin, WorkerReport};

use super::{current_registry, Shared};

/// Reports at once when the served versions change (a reload), and every
/// `fleet::REPORT_EVERY` regardless, until aborted.
pub(super) async fn report_loop<B>(shared: Arc<Shared<B>>, mut connection: redis::aio::ConnectionManager) {
    let mut failing = false;
    let mut last: Option<(BTreeMap<String, RunningPlugin>, std::time::Instant)> = None;
    loop {
        let report = snapshot(&shared);
        let due = last
            .as_ref()
            .is_none_or(|(plugins, at)| *plugins != report.plugins || at.elapsed() >= fleet::REPORT_EVERY);
        if due {
            match fleet::report(&mut connection, &report).await {
                Ok(()) => {
                    failing = false;
                    last = Some((report.plugins, std::time::Instant::now()));
                }
                Err(error) if !failing => {
                    tracing::warn!(%error, "cannot report this worker's plugin versions");
                    failing = true;
                }
                Err(_) => {}
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// Takes this worker's entry out (graceful shutdown).
pub(super) async fn withdraw(hostname: &str, connection: &mut redis::aio::ConnectionManager) {
    if let Err(error) = fleet::withdraw(connection, hostname).await {
        tracing::debug!(%error, "cannot withdraw this worker's report");
    }
}

fn snapshot<B>(shared: &Shared<B>) -> WorkerReport {
    let registry = current_registry(shared);
    let plugins: BTreeMap<String, RunningPlugin> = registry
        .plugins()
        .into_iter()
        .map(|plugin| {
            let running = RunningPlugin { version: plugin.version().to_string(), label: plugin.label().map(str::to_string) };
            (plugin.name().to_string(), running)
        })
        .collect();
    WorkerReport {
        hostname: shared.hostname.to_string(),
        pid: std::process::id(),
        seen: crate::runtime::unix_millis() as f64 / 1000.0,
        sync: shared.config.sync.is_some(),
        plugins,
    }
}
