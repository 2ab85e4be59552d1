//! The completer: writes finished jobs in batches, in the order that keeps
//! at-least-once delivery: follow-ups, results, chord joins, then acks.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::plan;
use super::{Completion, Shared, COMPLETE_BATCH};
use crate::backend::{ResultBackend, ResultWrite};
use crate::broker::Broker;

/// Writes finished jobs in batches: follow-ups, then results, then acks.
pub(super) async fn complete_loop<B: Broker, R: ResultBackend>(shared: Arc<Shared<B>>, backend: R, completions: flume::Receiver<Completion>) {
    while let Ok(first) = completions.recv_async().await {
        let mut batch = vec![first];
        while batch.len() < COMPLETE_BATCH {
            match completions.try_recv() {
                Ok(completion) => batch.push(completion),
                Err(_) => break,
            }
        }
        let mut publish = Vec::new();
        let mut writes: Vec<ResultWrite> = Vec::new();
        let mut acks = Vec::new();
        let mut requeue = Vec::new();
        let mut chords = std::collections::VecDeque::new();
        let mut chord_sizes = Vec::new();
        let mut slots = 0;
        for completion in batch {
            match completion {
                Completion::Finished { job, plan } => {
                    publish.extend(plan.publish);
                    writes.extend(plan.writes);
                    chords.extend(plan.chords);
                    chord_sizes.extend(plan.chord_sizes);
                    acks.extend(job.tag);
                    slots += usize::from(job.holds_slot);
                }
                Completion::Requeue { job } => {
                    requeue.extend(job.tag);
                    slots += usize::from(job.holds_slot);
                }
            }
        }
        let finished = acks.len() as u64;
        let ttl = shared.settings.result_expires;
        persist("record chord sizes", || backend.set_chord_sizes(&chord_sizes, ttl)).await;
        persist("publish follow-up messages", || shared.broker.publish(&publish)).await;
        persist("store results", || backend.store(&writes)).await;
        // Firing a body can complete further chords (a failed body fails
        // the chain after it, whose steps may belong to an outer chord).
        while let Some(member) = chords.pop_front() {
            let entries = persist("join chord", || backend.chord_join(&member.part)).await;
            if !entries.is_empty() {
                let firing = plan::fire_chord(&member, &entries, &shared.settings);
                persist("record chord sizes", || backend.set_chord_sizes(&firing.chord_sizes, ttl)).await;
                persist("publish chord body", || shared.broker.publish(&firing.publish)).await;
                persist("store chord failure", || backend.store(&firing.writes)).await;
                persist("finish chord", || backend.chord_done(&member.part.group_id)).await;
                tracing::info!(group = %member.part.group_id, members = entries.len(), failed = !firing.writes.is_empty(), "chord complete");
                chords.extend(firing.chords);
            }
        }
        persist("ack messages", || shared.broker.ack(&acks)).await;
        persist("requeue messages", || async { shared.broker.requeue(&requeue).await.map(|_| ()) }).await;
        {
            let mut held = shared.held.lock().unwrap();
            for tag in acks.iter().chain(&requeue) {
                held.remove(tag);
            }
        }
        shared.events.jobs.finished(&acks);
        shared.events.jobs.forget(&requeue);
        shared.processed.fetch_add(finished, Ordering::Relaxed);
        shared.slots.add_permits(slots);
    }
}

/// Retries a Redis write until it succeeds: a result or an ack is never
/// dropped because Redis was briefly away.
async fn persist<T, F, Fut, E>(what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut failures = 0u32;
    loop {
        match attempt().await {
            Ok(value) => {
                if failures > 0 {
                    tracing::info!("{what}: succeeded after {failures} failed attempts");
                }
                return value;
            }
            Err(error) => {
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!(%error, attempt = failures, "cannot {what}; retrying");
                }
                tokio::time::sleep(Duration::from_millis(50u64 << failures.min(7)).min(Duration::from_secs(5))).await;
            }
        }
    }
}
