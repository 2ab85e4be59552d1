//! The completer: writes finished jobs in batches, in the order that keeps
//! at-least-once delivery: follow-ups, results, chord joins (`chord`),
//! then acks.
//!
//! Each step goes through `persist`: transient Redis errors are retried
//! until Redis is back; a write Redis refuses for good fails only the job
//! it belongs to (FAILURE `RedisCommandError` naming the key), and the rest
//! of the batch is written and acked.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::job::Job;
use super::persist::{persist, write_isolating, Refusal};
use super::plan::{self, ChordMember, Plan};
use super::{chord, Completion, Shared, COMPLETE_BATCH};
use crate::backend::ResultBackend;
use crate::broker::Broker;

/// Writes finished jobs in batches: follow-ups, then results, then acks.
///
/// The batch vectors live across batches: a `(Job, Plan)` is about a
/// kilobyte, and growing fresh vectors to a batch of hundreds copied each
/// one several times (a quarter of the completer's cost per job).
pub(super) async fn complete_loop<B: Broker, R: ResultBackend>(shared: Arc<Shared<B>>, backend: R, completions: flume::Receiver<Completion>) {
    let mut finished: Vec<(Job, Plan)> = Vec::new();
    let mut requeued: Vec<Job> = Vec::new();
    while let Ok(first) = completions.recv_async().await {
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(completion) = next.take() {
            match completion {
                Completion::Finished { job, plan } => finished.push((job, plan)),
                Completion::Requeue { job } => requeued.push(job),
            }
            taken += 1;
            if taken < COMPLETE_BATCH {
                next = completions.try_recv().ok();
            }
        }
        write_outcomes(&shared, &backend, &mut finished).await;
        let jobs: Vec<&Job> = finished.iter().map(|(job, _)| job).chain(&requeued).collect();
        let acks: Vec<String> = finished.iter().filter_map(|(job, _)| job.tag.clone()).collect();
        let requeue: Vec<String> = requeued.iter().filter_map(|job| job.tag.clone()).collect();
        if let Err(error) = persist(shared.metrics.as_deref(), "ack messages", || shared.broker.ack(&acks)).await {
            tracing::error!(%error, count = acks.len(), "Redis refused the ack; the messages return after the visibility timeout");
        }
        if let Err(error) = persist(shared.metrics.as_deref(), "requeue messages", || async { shared.broker.requeue(&requeue).await.map(|_| ()) }).await {
            tracing::error!(%error, count = requeue.len(), "Redis refused the requeue; the messages return after the visibility timeout");
        }
        {
            let mut held = shared.held.lock().unwrap();
            for tag in acks.iter().chain(&requeue) {
                held.remove(tag);
            }
        }
        shared.events.jobs.finished(&acks);
        shared.events.jobs.forget(&requeue);
        shared.processed.fetch_add(acks.len() as u64, Ordering::Relaxed);
        shared.slots.add_permits(jobs.iter().filter(|job| job.holds_slot).count());
        shared.held_bytes.fetch_sub(jobs.iter().map(|job| job.bytes).sum(), Ordering::SeqCst);
        shared.bytes_freed.notify_one();
        finished.clear();
        requeued.clear();
    }
}

/// Publishes the follow-ups, stores the results and joins the chords of
/// `finished`. A job one of whose writes Redis refuses for good ends FAILURE
/// instead, naming the key.
async fn write_outcomes<B: Broker, R: ResultBackend>(shared: &Arc<Shared<B>>, backend: &R, finished: &mut [(Job, Plan)]) {
    // Chord sizes first: no member may finish before its chord is known.
    let sizes: Vec<(String, u64)> = finished.iter_mut().flat_map(|(_, plan)| std::mem::take(&mut plan.chord_sizes)).collect();
    if let Err(error) = persist(shared.metrics.as_deref(), "record chord sizes", || backend.set_chord_sizes(&sizes, shared.settings.result_expires)).await {
        tracing::error!(%error, "cannot record the sizes of the chords being started");
    }
    let saved: Vec<(String, String)> = finished.iter_mut().flat_map(|(_, plan)| std::mem::take(&mut plan.saved_headers)).collect();
    if let Err(error) = persist(shared.metrics.as_deref(), "save chord headers", || backend.save_group_results(&saved, shared.settings.result_expires)).await {
        tracing::error!(%error, "cannot save the header results of the chords being started");
    }

    let (messages, owners) = take_each(finished, |plan| std::mem::take(&mut plan.publish));
    let refused =
        write_isolating(shared.metrics.as_deref(), "publish follow-up messages", &messages, &owners, |(key, _)| key, |batch| shared.broker.publish(batch)).await;
    fail_refused(shared, finished, &refused);

    let (writes, owners) = take_each(finished, |plan| std::mem::take(&mut plan.writes));
    let refused = write_isolating(shared.metrics.as_deref(), "store results", &writes, &owners, |write| &write.key, |batch| backend.store(batch)).await;
    fail_refused(shared, finished, &refused);
    for refusal in &refused {
        // Store the FAILURE where the client waits (unless that key is the
        // one Redis refuses).
        let failure = std::mem::take(&mut finished[refusal.job].1.writes);
        if let Err(error) = persist(shared.metrics.as_deref(), "store a refused job's failure", || backend.store(&failure)).await {
            tracing::error!(%error, id = %finished[refusal.job].0.message.id, "cannot store the job's failure either");
        }
    }

    // Firing a body can complete further chords (a failed body fails the
    // chain after it, whose steps may belong to an outer chord).
    let members: Vec<(Option<usize>, ChordMember)> = finished
        .iter_mut()
        .enumerate()
        .flat_map(|(index, (_, plan))| std::mem::take(&mut plan.chords).into_iter().map(move |member| (Some(index), member)))
        .collect();
    for (index, reason) in chord::join_chords(shared, backend, members).await {
        let job = &finished[index].0;
        let failure = plan::refused(job, "RedisCommandError", &reason, &shared.settings);
        if let Err(error) = persist(shared.metrics.as_deref(), "store a refused job's failure", || backend.store(&failure.writes)).await {
            tracing::error!(%error, id = %job.message.id, "cannot store the job's failure either");
        }
    }
}

/// Every job's items (taken out of its plan), flattened, with the index of
/// the job each belongs to.
fn take_each<T>(finished: &mut [(Job, Plan)], take: impl Fn(&mut Plan) -> Vec<T>) -> (Vec<T>, Vec<usize>) {
    let mut items = Vec::new();
    let mut owners = Vec::new();
    for (index, (_, plan)) in finished.iter_mut().enumerate() {
        let taken = take(plan);
        owners.extend(std::iter::repeat_n(index, taken.len()));
        items.extend(taken);
    }
    (items, owners)
}

/// Replaces the plan of each job with a refused write by a FAILURE naming
/// the key Redis refused.
fn fail_refused<B>(shared: &Shared<B>, finished: &mut [(Job, Plan)], refused: &[Refusal]) {
    for refusal in refused {
        let (job, plan) = &mut finished[refusal.job];
        let reason = format!("Redis refused a write to key {:?}: {}", refusal.key, refusal.error);
        tracing::error!(id = %job.message.id, task = %job.message.task, "{reason}");
        *plan = plan::refused(job, "RedisCommandError", &reason, &shared.settings);
    }
}
