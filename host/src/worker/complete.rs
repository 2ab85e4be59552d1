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
        let mut setup: Vec<ResultWrite> = Vec::new();
        let mut publish = Vec::new();
        let mut writes: Vec<ResultWrite> = Vec::new();
        let mut acks = Vec::new();
        let mut requeue = Vec::new();
        let mut chords = Vec::new();
        let mut slots = 0;
        for completion in batch {
            match completion {
                Completion::Finished { job, plan } => {
                    setup.extend(plan.setup);
                    publish.extend(plan.publish);
                    writes.extend(plan.writes);
                    chords.extend(plan.chord);
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
        persist("store what follow-ups need", || backend.store(&setup)).await;
        persist("publish follow-up messages", || shared.broker.publish(&publish)).await;
        persist("store results", || backend.store(&writes)).await;
        for member in &chords {
            let entries = persist("join chord", || backend.chord_join(&member.part)).await;
            if !entries.is_empty() {
                let (body, failure) = plan::fire_chord(member, &entries, &shared.settings);
                persist("publish chord body", || shared.broker.publish(&body)).await;
                persist("store chord failure", || backend.store(&failure)).await;
                persist("finish chord", || backend.chord_done(&member.part.group_id)).await;
                tracing::info!(group = %member.part.group_id, members = entries.len(), failed = !failure.is_empty(), "chord complete");
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
