//! Far-ETA jobs wait in Redis, not in the worker.
//!
//! A job whose ETA is further off than `--delay-beyond` would otherwise sit
//! in memory (with its lease renewed) until then: a million jobs an hour
//! ahead cost hundreds of MB on every worker that happened to fetch them.
//! Instead the delay loop moves them, in batches and atomically
//! (`delay.lua`), from `unacked` into a sorted set keyed by due time
//! (`chard:delayed`), as Sidekiq and BullMQ keep scheduled jobs; and every
//! worker's release loop pushes what is due back to its queue
//! (`undelay.lua`, one script per batch, so each message goes back once).
//! A message is always in exactly one place (its queue, `unacked`, or the
//! delayed set), so a worker dying at any point loses nothing.
//!
//! Due messages are released `RELEASE_AHEAD` early and then wait the last
//! moment in memory like any near ETA, so each runs within the release
//! period of its ETA. They go back to the queue with their ETA unchanged:
//! a Python Celery worker sharing the queue that takes one runs it at once,
//! since the ETA has come. What such a worker cannot do is release them,
//! so the last Chard worker to stop gracefully (no other one has reported
//! in `chard:workers` within `fleet::REPORT_STALE_AFTER`) hands every
//! parked job back to its queue, ETA unchanged, whatever its due time:
//! workers that remain then hold them until their ETA, as Celery does. A
//! Chard worker that dies instead leaves them parked until one starts.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::job::Job;
use super::persist::persist;
use super::Shared;
use crate::broker::Broker;
use crate::protocol::queue_key_for;

/// How early a due message goes back to its queue.
const RELEASE_AHEAD: Duration = Duration::from_secs(1);
/// How often each worker looks for due messages.
const RELEASE_PERIOD: Duration = Duration::from_millis(250);
/// Messages moved per script call.
const BATCH: usize = 1000;

/// Whether a job `eta_wait` from its ETA goes to the delayed set. Never
/// one that would be released again at once (within `RELEASE_AHEAD`).
pub(super) fn worth_delaying(config: &crate::config::WorkerConfig, eta_wait: Duration) -> bool {
    eta_wait > config.delay_beyond.max(RELEASE_AHEAD * 2)
}

/// Moves the jobs sent to `delays` into the delayed set, then forgets them.
pub(super) async fn delay_loop<B: Broker>(shared: Arc<Shared<B>>, delays: flume::Receiver<(Job, u64)>) {
    while let Ok(first) = delays.recv_async().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match delays.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let entries: Vec<(String, u64, String)> = batch
            .iter()
            .filter_map(|(job, due)| {
                let message = &job.message;
                let queue = Some(message.properties.delivery_info.routing_key.as_str()).filter(|key| !key.is_empty()).unwrap_or("celery");
                Some((job.tag.clone()?, *due, queue_key_for(queue, message.priority())))
            })
            .collect();
        match persist(shared.metrics.as_deref(), "move far-ETA jobs to the delayed set", || shared.broker.delay(&entries)).await {
            Ok(moved) => tracing::debug!(moved, "far-ETA jobs wait in the delayed set"),
            Err(error) => {
                // They stay leased; the sweep restores them once the lease
                // lapses, and they are delayed again then.
                tracing::error!(%error, count = entries.len(), "cannot move far-ETA jobs to the delayed set");
            }
        }
        let tags: Vec<String> = entries.into_iter().map(|(tag, _, _)| tag).collect();
        let mut held = shared.held.lock().unwrap();
        for tag in &tags {
            held.remove(tag);
        }
        drop(held);
        // Not this worker's any more: `inspect scheduled` and the
        // heartbeat's counts stop showing it.
        shared.events.jobs.forget(&tags);
        shared.slots.add_permits(batch.iter().filter(|(job, _)| job.holds_slot).count());
        shared.held_bytes.fetch_sub(batch.iter().map(|(job, _)| job.bytes).sum(), Ordering::SeqCst);
        shared.bytes_freed.notify_one();
    }
}

/// At a graceful shutdown, with no other Chard worker live on this Redis:
/// pushes every parked message back to its queue, due or not.
pub(super) async fn hand_back_if_last<B: Broker>(shared: &Shared<B>, connection: &mut redis::aio::ConnectionManager) {
    match crate::fleet::workers(connection).await {
        Ok(live) if live.is_empty() => {}
        Ok(_) => return,
        Err(error) => {
            tracing::warn!(%error, "cannot tell whether other Chard workers run: far-ETA jobs stay in the delayed set for the next one");
            return;
        }
    }
    let mut handed = 0;
    loop {
        match shared.broker.release_due(u64::MAX, BATCH).await {
            Ok(pushed) => {
                handed += pushed;
                if pushed < BATCH {
                    break;
                }
            }
            Err(error) => {
                tracing::error!(%error, handed, "cannot hand far-ETA jobs back to their queues: the rest wait in the delayed set for the next Chard worker");
                return;
            }
        }
    }
    if handed > 0 {
        tracing::info!(handed, "last Chard worker to stop: far-ETA jobs handed back to their queues, to wait for their ETA in the workers that remain");
    }
}

/// Pushes due delayed messages back to their queues, until shutdown.
pub(super) async fn release_loop<B: Broker>(shared: Arc<Shared<B>>, mut stop: watch::Receiver<bool>) {
    loop {
        let until = crate::runtime::unix_millis() + RELEASE_AHEAD.as_millis() as u64;
        let pause = match shared.broker.release_due(until, BATCH).await {
            Ok(pushed) if pushed >= BATCH => Duration::ZERO,
            Ok(_) => RELEASE_PERIOD,
            Err(error) => {
                tracing::debug!(%error, "cannot release due delayed jobs; will retry");
                RELEASE_PERIOD * 4
            }
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = stop.wait_for(|stopping| *stopping) => return,
        }
    }
}
