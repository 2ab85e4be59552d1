//! The fetch side: take leased batches while prefetch slots are free, and
//! route each delivery: refuse it (malformed, revoked, expired), hold it
//! (ETA, rate limits) with its slot given back, or queue it for a thread.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::execute::finish_without_running;
use super::job::Job;
use super::{current_registry, parse_rate, plan, Completion, Shared, FETCH_BATCH};
use crate::broker::{Broker, Delivery};
use crate::protocol::{parse_time, TaskMessage};
use crate::runtime::{Cancellation, Outcome};

/// Takes batches of messages while there are free slots.
pub(super) async fn fetch_loop<B: Broker>(shared: Arc<Shared<B>>, jobs: flume::Sender<Job>, mut stop: watch::Receiver<bool>) {
    let mut failures = 0u32;
    loop {
        // Wait for one free slot, then take as many more as are free.
        let permit = tokio::select! {
            permit = shared.slots.acquire() => permit.expect("slots never close"),
            _ = stop.wait_for(|stopping| *stopping) => return,
        };
        permit.forget();
        let mut wanted = 1;
        while wanted < FETCH_BATCH {
            match shared.slots.try_acquire() {
                Ok(permit) => {
                    permit.forget();
                    wanted += 1;
                }
                Err(_) => break,
            }
        }
        let fetched = tokio::select! {
            fetched = shared.broker.fetch(wanted) => fetched,
            _ = stop.wait_for(|stopping| *stopping) => {
                shared.slots.add_permits(wanted);
                return;
            }
        };
        match fetched {
            Ok(deliveries) => {
                if let Some(metrics) = &shared.metrics {
                    metrics.health.redis_ok();
                    if failures > 0 {
                        metrics.redis_reconnected();
                    }
                }
                if failures > 0 {
                    tracing::info!("broker reachable again: consuming");
                    failures = 0;
                }
                shared.slots.add_permits(wanted - deliveries.len());
                if deliveries.is_empty() {
                    tokio::select! {
                        () = shared.broker.wait_for_work(shared.config.poll_interval) => {}
                        _ = stop.wait_for(|stopping| *stopping) => return,
                    }
                    continue;
                }
                for delivery in deliveries {
                    dispatch(&shared, delivery, &jobs, &stop);
                }
            }
            Err(error) => {
                if let Some(metrics) = &shared.metrics {
                    metrics.redis_error();
                }
                shared.slots.add_permits(wanted);
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!(%error, attempt = failures, "cannot fetch from broker; retrying");
                }
                let backoff = Duration::from_millis(50u64 << failures.min(7)).min(Duration::from_secs(5));
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stop.wait_for(|stopping| *stopping) => return,
                }
            }
        }
    }
}

/// Routes one delivery: refuse it, hold it for its ETA, or queue it to run.
fn dispatch<B: Broker>(shared: &Arc<Shared<B>>, delivery: Delivery, jobs: &flume::Sender<Job>, stop: &watch::Receiver<bool>) {
    if let Some(tag) = &delivery.tag {
        shared.held.lock().unwrap().insert(tag.clone());
    }
    let message = match TaskMessage::parse(&delivery.body) {
        Ok(message) => message,
        Err(error) => {
            let preview: String = String::from_utf8_lossy(&delivery.body[..delivery.body.len().min(80)]).into();
            tracing::warn!(id = error.task_id.as_deref().unwrap_or("?"), "malformed message dropped: {error}; starts {preview:?}");
            malformed(shared, delivery.tag, error);
            return;
        }
    };
    let job = Job { tag: delivery.tag, message, holds_slot: true, cancellation: Cancellation::default(), ready_since: Instant::now() };
    if shared.revoked.contains(&job.message.id) {
        finish_without_running(shared, job, |job, settings| plan::revoked(job, settings));
        return;
    }
    if is_expired(&job.message) {
        finish_without_running(shared, job, |job, settings| plan::expired(job, settings));
        return;
    }
    shared.events.received(job.tag.as_deref(), &job.message);
    let eta_wait = job
        .message
        .headers
        .eta
        .as_deref()
        .and_then(parse_time)
        .and_then(|eta| (eta - chrono::Utc::now()).to_std().ok())
        .unwrap_or_default();
    let rate_wait = rate_interval(shared, &job.message.task)
        .map(|interval| shared.rate_limits.reserve(&job.message.task, interval))
        .unwrap_or_default();
    let global_rate = shared.config.global_rate_limits.get(&job.message.task).copied();
    let wait = eta_wait.max(rate_wait);
    if wait.is_zero() && global_rate.is_none() {
        if let Err(flume::SendError(job)) = jobs.send(job) {
            let _ = shared.completions.send(Completion::Requeue { job });
        }
        return;
    }
    // Held in memory with its lease renewed; its slot goes back so a worker
    // full of ETA or rate-limited jobs still takes ready ones (as Celery).
    shared.slots.add_permits(1);
    let mut job = job;
    job.holds_slot = false;
    let counted = shared.metrics.as_ref().map(|metrics| super::observe::HeldGuard::new(metrics, eta_wait, rate_wait));
    let held = hold(shared.clone(), job, wait, global_rate, jobs.clone(), stop.clone());
    tokio::spawn(async move {
        held.await;
        drop(counted);
    });
}

/// Waits out `wait` (ETA, per-worker rate limit), then a slot of the
/// global rate limit if the task has one, then queues the job to run. On
/// shutdown the job goes back to its queue instead.
async fn hold<B: Broker>(
    shared: Arc<Shared<B>>,
    job: Job,
    wait: Duration,
    global_rate: Option<Duration>,
    jobs: flume::Sender<Job>,
    mut stop: watch::Receiver<bool>,
) {
    let waited = async {
        tokio::time::sleep(wait).await;
        if let Some(interval) = global_rate {
            // Reserved only once the ETA has come, so a far ETA does not
            // hold a slot of the shared limit.
            let mut failures = 0u32;
            let slot = loop {
                match shared.broker.reserve_rate(&job.message.task, interval).await {
                    Ok(slot) => break slot,
                    Err(error) => {
                        failures += 1;
                        if failures == 1 {
                            tracing::warn!(%error, task = %job.message.task, "cannot reserve a global rate-limit slot; retrying");
                        }
                        tokio::time::sleep(Duration::from_millis(100u64 << failures.min(5))).await;
                    }
                }
            };
            tokio::time::sleep(slot).await;
        }
    };
    let stopped = tokio::select! {
        () = waited => false,
        _ = stop.wait_for(|stopping| *stopping) => true,
    };
    let mut job = job;
    job.ready_since = Instant::now();
    if stopped {
        let _ = shared.completions.send(Completion::Requeue { job });
    } else if let Err(flume::SendError(job)) = jobs.send(job) {
        let _ = shared.completions.send(Completion::Requeue { job });
    }
}

/// The task's rate limit: the worker's `--rate-limit` first, then the
/// plugin's default for the task.
fn rate_interval<B>(shared: &Shared<B>, task: &str) -> Option<Duration> {
    if let Some(set_remotely) = shared.rate_limits.override_for(task) {
        return set_remotely;
    }
    if let Some(interval) = shared.config.rate_limits.get(task) {
        return Some(*interval);
    }
    let registry = current_registry(shared);
    let (_, info) = registry.resolve(task)?;
    info.defaults.rate_limit.as_deref().and_then(|rate| parse_rate(rate).ok())
}

pub(super) fn is_expired(message: &TaskMessage) -> bool {
    message.headers.expires.as_deref().and_then(parse_time).is_some_and(|expires| expires <= chrono::Utc::now())
}

fn malformed<B: Broker>(shared: &Arc<Shared<B>>, tag: Option<String>, error: crate::protocol::MessageError) {
    let task_id = error.task_id.clone().unwrap_or_default();
    let headers = crate::protocol::Headers { id: Some(task_id.clone()), task: error.task_name.clone(), ..Default::default() };
    let message = TaskMessage {
        id: task_id,
        task: error.task_name.clone().unwrap_or_default(),
        headers,
        properties: Default::default(),
        args: serde_json::value::RawValue::from_string("[]".into()).expect("literal"),
        kwargs: serde_json::value::RawValue::from_string("{}".into()).expect("literal"),
        embed: Default::default(),
    };
    let job = Job { tag, message, holds_slot: true, cancellation: Cancellation::default(), ready_since: Instant::now() };
    if let Some(metrics) = &shared.metrics {
        metrics.job_finished(error.task_name.as_deref().unwrap_or(""), crate::metrics::JobOutcome::rejected);
    }
    let has_id = error.task_id.is_some();
    let mut plan = plan::plan(&job, &Outcome::Rejected { reason: error.reason }, None, &shared.settings);
    if !has_id {
        plan.writes.clear(); // nowhere to store it
    }
    let _ = shared.completions.send(Completion::Finished { job, plan });
}
