//! The worker's side of `metrics`: what each job-path hook records, the
//! scrape-time sampler, and the queue-length timer.
//!
//! The hooks in the loops are one line each (`if let Some(metrics) = ...`)
//! so that, without `--metrics`, a job costs nothing more than a branch.
//! What can be read when Prometheus asks (slots in use, running jobs,
//! loaded plugins) is read then, through a weak reference to the worker so
//! the registry does not keep a stopped worker alive. Queue lengths cost a
//! Redis round trip, so a timer of their own reads them every
//! [`QUEUE_SAMPLE_EVERY`], never the job path; each good round trip also
//! tells readiness that Redis answers.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::plan::Plan;
use super::{current_registry, Shared};
use crate::metrics::{HeldState, JobOutcome, Metrics};
use crate::protocol::{queue_key_for, State, PRIORITY_STEPS};
use crate::runtime::Outcome;

/// How often queue lengths are read from Redis.
pub(super) const QUEUE_SAMPLE_EVERY: Duration = Duration::from_secs(2);

/// The `outcome` label of a finished job: the state the plan stores, told
/// apart by what stopped the sandbox where Celery has one FAILURE for all.
pub(super) fn outcome_label(plan: &Plan, outcome: Option<&Outcome>) -> JobOutcome {
    match plan.ending.as_ref().map(|ending| ending.state) {
        Some(State::Success) => JobOutcome::success,
        Some(State::Retry) => JobOutcome::retry,
        Some(State::Revoked) => JobOutcome::revoked,
        _ => match outcome {
            Some(Outcome::TimedOut { .. }) => JobOutcome::time_limit,
            Some(Outcome::OutOfMemory { .. }) => JobOutcome::memory_limit,
            Some(Outcome::UnknownTask { .. }) => JobOutcome::unknown_task,
            Some(Outcome::Rejected { .. }) => JobOutcome::rejected,
            _ => JobOutcome::failure,
        },
    }
}

/// Counts a job as held for an ETA or a rate limit until dropped.
pub(super) struct HeldGuard {
    metrics: Arc<Metrics>,
    state: HeldState,
}

impl HeldGuard {
    pub(super) fn new(metrics: &Arc<Metrics>, eta_wait: Duration, rate_wait: Duration) -> Self {
        let state = if eta_wait >= rate_wait && !eta_wait.is_zero() { HeldState::eta } else { HeldState::rate_limit };
        metrics.held(state, 1);
        Self { metrics: metrics.clone(), state }
    }
}

impl Drop for HeldGuard {
    fn drop(&mut self) {
        self.metrics.held(self.state, -1);
    }
}

/// Installs the scrape-time sampler for `shared`.
pub(super) fn install_sampler<B: Send + Sync + 'static>(shared: &Arc<Shared<B>>, metrics: &Metrics) {
    let worker: Weak<Shared<B>> = Arc::downgrade(shared);
    metrics.set_sampler(Box::new(move |metrics| {
        let Some(shared) = worker.upgrade() else { return };
        let prefetch = shared.config.prefetch;
        let free = shared.slots.available_permits();
        metrics.set_prefetch(prefetch.saturating_sub(free) as i64, prefetch as i64);
        metrics.set_held(HeldState::running, shared.running.lock().unwrap().len() as i64);
        let registry = current_registry(&shared);
        let plugins = registry.plugins();
        metrics.health.set_plugins(plugins.len());
        metrics.set_plugins(plugins.iter().map(|plugin| {
            (plugin.name().to_string(), plugin.fingerprint(), plugin.label().unwrap_or_default().to_string())
        }));
        if shared.stopping.load(Ordering::SeqCst) {
            metrics.health.set_stopping();
        }
    }));
}

/// Reads the length of every consumed queue (all priority buckets) every
/// [`QUEUE_SAMPLE_EVERY`], until aborted.
pub(super) async fn sample_queues(queues: Vec<String>, metrics: Arc<Metrics>, mut connection: redis::aio::ConnectionManager) {
    loop {
        let mut pipe = redis::pipe();
        for queue in &queues {
            for step in PRIORITY_STEPS {
                pipe.llen(queue_key_for(queue, step));
            }
        }
        match pipe.query_async::<Vec<i64>>(&mut connection).await {
            Ok(lengths) => {
                metrics.health.redis_ok();
                for (queue, buckets) in queues.iter().zip(lengths.chunks(PRIORITY_STEPS.len())) {
                    metrics.set_queue_length(queue, buckets.iter().sum());
                }
            }
            Err(error) => {
                metrics.redis_error();
                tracing::debug!(%error, "cannot read queue lengths");
            }
        }
        tokio::time::sleep(QUEUE_SAMPLE_EVERY).await;
    }
}
