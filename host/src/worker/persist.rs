//! Redis writes that must happen, and the ones that never can.
//!
//! A result or an ack must not be dropped because Redis was briefly away,
//! so a write whose error is about the connection (or a failover, a server
//! loading its data, a full memory) is retried with backoff until it
//! succeeds. But a write that Redis refuses as a command (`WRONGTYPE` on a
//! key someone made a hash, a script error) fails the same way every time:
//! retrying it forever stops every job behind it, on this worker and the
//! next. Such an error is returned instead, and a batch it spoiled is
//! written again item by item, so only the items Redis refuses, and the
//! jobs they belong to, are singled out; the rest of the batch is written.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use crate::backend::BackendError;
use crate::broker::BrokerError;
use crate::metrics::Metrics;

/// An error that knows whether retrying can help.
pub(super) trait WriteError: Display {
    fn is_permanent(&self) -> bool;
}

impl WriteError for BrokerError {
    fn is_permanent(&self) -> bool {
        BrokerError::is_permanent(self)
    }
}

impl WriteError for BackendError {
    fn is_permanent(&self) -> bool {
        BackendError::is_permanent(self)
    }
}

/// Retries `attempt` while it fails for a transient reason; returns the
/// first permanent error. Every failed attempt counts in
/// `chard_redis_errors_total` when `metrics` is given.
pub(super) async fn persist<T, F, Fut, E>(metrics: Option<&Metrics>, what: &str, mut attempt: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: WriteError,
{
    let mut failures = 0u32;
    loop {
        match attempt().await {
            Ok(value) => {
                if failures > 0 {
                    tracing::info!("{what}: succeeded after {failures} failed attempts");
                }
                return Ok(value);
            }
            Err(error) => {
                if let Some(metrics) = metrics {
                    metrics.redis_error();
                }
                if error.is_permanent() {
                    return Err(error);
                }
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!(%error, attempt = failures, "cannot {what}; retrying");
                }
                tokio::time::sleep(Duration::from_millis(50u64 << failures.min(7)).min(Duration::from_secs(5))).await;
            }
        }
    }
}

/// An item Redis refused for good.
pub(super) struct Refusal {
    /// Index of the job the item belongs to.
    pub job: usize,
    pub key: String,
    pub error: String,
}

/// Writes `items` in one call; if Redis refuses that call for good, writes
/// them one at a time and reports each item it refuses, with the job it
/// belongs to (`owners[i]` for `items[i]`). `write` must leave nothing half
/// written when it fails for good, or the retry would write it twice
/// (results are SETEX, idempotent; publishing is all-or-nothing).
pub(super) async fn write_isolating<'a, T, F, Fut, E>(
    metrics: Option<&Metrics>,
    what: &str,
    items: &'a [T],
    owners: &[usize],
    key: fn(&T) -> &str,
    write: F,
) -> Vec<Refusal>
where
    F: Fn(&'a [T]) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: WriteError,
{
    if items.is_empty() {
        return Vec::new();
    }
    let Err(error) = persist(metrics, what, || write(items)).await else { return Vec::new() };
    tracing::warn!(%error, items = items.len(), "cannot {what}: Redis refused the batch; writing it item by item");
    let mut refused = Vec::new();
    for (item, owner) in items.iter().zip(owners) {
        if let Err(error) = persist(metrics, what, || write(std::slice::from_ref(item))).await {
            refused.push(Refusal { job: *owner, key: key(item).to_string(), error: error.to_string() });
        }
    }
    refused
}
