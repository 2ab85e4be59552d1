//! The fetch side: take leased batches while prefetch slots are free, and
//! route each delivery: refuse it (malformed, revoked, expired), hold it
//! (ETA, rate limits) with its slot given back, or queue it for a thread.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::execute::unless_stale;
use super::job::Job;
use super::{current_registry, parse_rate, plan, Completion, Shared, FETCH_BATCH};
use crate::broker::{Broker, Delivery};
use crate::protocol::{parse_time, TaskMessage};
use crate::runtime::{Cancellation, Outcome};

/// How long past `poll_interval` a stopping worker waits for a wait that
/// was under way to end.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Takes batches of messages while there are free slots.
pub(super) async fn fetch_loop<B: Broker>(shared: Arc<Shared<B>>, jobs: flume::Sender<Job>, mut stop: watch::Receiver<bool>) {
    let mut failures = 0u32;
    // Whether the last fetch left every queue list empty: then the next one
    // waits for work first, and the wait and the take are one round trip.
    let mut drained = false;
    loop {
        if *stop.borrow() {
            return;
        }
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
        // Then for room under the byte cap: what is held is freed as jobs
        // are acked or requeued.
        let budget = loop {
            let held = shared.held_bytes.load(Ordering::SeqCst);
            if held < shared.config.prefetch_bytes {
                break shared.config.prefetch_bytes - held;
            }
            tokio::select! {
                () = shared.bytes_freed.notified() => {}
                _ = stop.wait_for(|stopping| *stopping) => {
                    shared.slots.add_permits(wanted);
                    return;
                }
            }
        };
        let fetched = if drained {
            let wait = shared.broker.wait_and_fetch(shared.config.poll_interval, wanted, budget, shared.config.max_message_bytes);
            tokio::pin!(wait);
            let ended = tokio::select! {
                fetched = &mut wait => Some(fetched),
                _ = stop.wait_for(|stopping| *stopping) => None,
            };
            match ended {
                Some(fetched) => fetched,
                // A wait that has ended has taken and leased what it
                // returns: let it end (within `poll_interval` while Redis
                // answers) and dispatch that, for the executors to hand
                // back, rather than leave it leased to nobody.
                None => match tokio::time::timeout(shared.config.poll_interval + STOP_GRACE, &mut wait).await {
                    Ok(fetched) => fetched,
                    Err(_) => {
                        shared.slots.add_permits(wanted);
                        return;
                    }
                },
            }
        } else {
            tokio::select! {
                fetched = shared.broker.fetch(wanted, budget, shared.config.max_message_bytes) => fetched,
                _ = stop.wait_for(|stopping| *stopping) => {
                    shared.slots.add_permits(wanted);
                    return;
                }
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
                let bytes: usize = deliveries.iter().map(|delivery| delivery.body.len()).sum();
                // Fewer than asked for and under the byte budget: the script
                // found every list empty.
                drained = deliveries.len() < wanted && bytes < budget;
                if deliveries.is_empty() {
                    continue;
                }
                shared.held_bytes.fetch_add(bytes, Ordering::SeqCst);
                for delivery in deliveries {
                    dispatch_guarded(&shared, delivery, &jobs, &stop);
                }
            }
            Err(error) => {
                drained = false;
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

/// [`dispatch`], with a panic turned into an ack (and a log line) instead
/// of the end of the fetch loop: no message can stop the worker fetching.
fn dispatch_guarded<B: Broker>(shared: &Arc<Shared<B>>, delivery: Delivery, jobs: &flume::Sender<Job>, stop: &watch::Receiver<bool>) {
    let (tag, bytes) = (delivery.tag.clone(), delivery.body.len());
    let dispatched = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(shared, delivery, jobs, stop)));
    if let Err(panic) = dispatched {
        tracing::error!(tag = tag.as_deref().unwrap_or("-"), "receiving a message panicked ({}): acked without a result", panic_text(&*panic));
        let job = Job::stub(tag, String::new(), String::new(), true, bytes);
        let _ = shared.completions.send(Completion::Finished { job, plan: plan::Plan::default() });
    }
}

/// The message of a caught panic.
pub(super) fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic.downcast_ref::<&str>().copied().or_else(|| panic.downcast_ref::<String>().map(String::as_str)).unwrap_or("no message")
}

/// Routes one delivery: refuse it, hold it for its ETA, or queue it to run.
fn dispatch<B: Broker>(shared: &Arc<Shared<B>>, delivery: Delivery, jobs: &flume::Sender<Job>, stop: &watch::Receiver<bool>) {
    if let Some(tag) = &delivery.tag {
        shared.held.lock().unwrap().insert(tag.clone());
    }
    let bytes = delivery.body.len();
    if let Some(size) = delivery.oversize {
        too_large(shared, delivery, size);
        return;
    }
    let message = match TaskMessage::parse(&delivery.body) {
        Ok(message) => message,
        Err(error) => {
            let preview: String = String::from_utf8_lossy(&delivery.body[..delivery.body.len().min(80)]).into();
            tracing::warn!(id = error.task_id.as_deref().unwrap_or("?"), "malformed message dropped: {error}; starts {preview:?}");
            malformed(shared, delivery.tag, error, bytes);
            return;
        }
    };
    let job = Job { tag: delivery.tag, message, holds_slot: true, bytes, cancellation: Cancellation::default(), ready_since: Instant::now() };
    let Some(job) = unless_stale(shared, job) else { return };
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
    if super::delayed::worth_delaying(&shared.config, eta_wait) && job.tag.is_some() {
        // Far off: wait in Redis, not here (see `delayed`). It keeps its
        // prefetch slot until it is moved, so a flood of far ETAs is taken
        // no faster than it can be moved out.
        let due = crate::runtime::unix_millis().saturating_add(eta_wait.as_millis() as u64);
        let _ = shared.delays.send((job, due));
        return;
    }
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

fn malformed<B: Broker>(shared: &Arc<Shared<B>>, tag: Option<String>, error: crate::protocol::MessageError, bytes: usize) {
    if let Some(metrics) = &shared.metrics {
        metrics.job_finished(error.task_name.as_deref().unwrap_or(""), crate::metrics::JobOutcome::rejected);
    }
    let has_id = error.task_id.is_some();
    let job = Job::stub(tag, error.task_id.unwrap_or_default(), error.task_name.unwrap_or_default(), true, bytes);
    let mut plan = plan::plan(&job, &Outcome::Rejected { reason: error.reason }, None, &shared.settings);
    if !has_id {
        plan.writes.clear(); // nowhere to store it
    }
    let _ = shared.completions.send(Completion::Finished { job, plan });
}

/// A message over `--max-message-size`: its body stayed in Redis; the ends
/// that were read name the job, which fails as MessageTooLarge. The ack
/// drops the message.
fn too_large<B: Broker>(shared: &Arc<Shared<B>>, delivery: Delivery, size: usize) {
    let (id, task) = crate::protocol::ids_in_excerpt(&delivery.body);
    let limit = shared.config.max_message_bytes;
    tracing::warn!(id = id.as_deref().unwrap_or("?"), size, limit, "message over --max-message-size dropped");
    let has_id = id.is_some();
    let job = Job::stub(delivery.tag, id.unwrap_or_default(), task.unwrap_or_default(), true, delivery.body.len());
    let reason = format!("message is {size} bytes, over the {limit}-byte cap (--max-message-size)");
    let mut plan = plan::refused(&job, "MessageTooLarge", &reason, &shared.settings);
    if !has_id {
        plan.writes.clear();
    }
    let _ = shared.completions.send(Completion::Finished { job, plan });
}
