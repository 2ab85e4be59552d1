//! The executor threads: each runs jobs to an outcome and hands the plan
//! for it to the completer.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::fetch::is_expired;
use super::job::{self, Job};
use super::plan::{self, Plan, PlanSettings};
use super::{builtins, current_registry, outbox, replace, Completion, Shared};
use crate::broker::Broker;
use crate::runtime::{Effects, JobRequest, Outcome};

pub(super) fn finish_without_running<B: Broker>(shared: &Arc<Shared<B>>, job: Job, make: impl FnOnce(&Job, &PlanSettings) -> Plan) {
    let plan = make(&job, &shared.settings);
    report_end(shared, &job, &plan, None, Duration::ZERO);
    let _ = shared.completions.send(Completion::Finished { job, plan });
}

/// Ends a job that was revoked or has expired (REVOKED, without running
/// it); gives back any other.
pub(super) fn unless_stale<B: Broker>(shared: &Arc<Shared<B>>, job: Job) -> Option<Job> {
    if shared.revoked.revokes(&job.message.id, &job.message.headers.extra) {
        finish_without_running(shared, job, plan::revoked);
        return None;
    }
    if is_expired(&job.message) {
        finish_without_running(shared, job, plan::expired);
        return None;
    }
    Some(job)
}

/// An executor thread: runs jobs until the channel closes. A job whose
/// handling panics (a bug, or a value from a message nothing bounded yet)
/// ends FAILURE as `WorkerPanic` and is acked; the thread goes on.
pub(super) fn execute_loop<B: Broker>(shared: &Arc<Shared<B>>, jobs: &flume::Receiver<Job>) {
    let _alive = AliveGuard(shared);
    while let Ok(job) = jobs.recv() {
        let (tag, id, task, holds_slot, bytes) =
            (job.tag.clone(), job.message.id.clone(), job.message.task.clone(), job.holds_slot, job.bytes);
        let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle(shared, job)));
        if let Err(panic) = handled {
            let text = super::fetch::panic_text(&*panic).to_string();
            tracing::error!(%id, %task, "handling the job panicked: {text}");
            shared.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
            let job = Job::stub(tag, id, task, holds_slot, bytes);
            let plan = plan::refused(&job, "WorkerPanic", &format!("the worker panicked handling this job: {text}"), &shared.settings);
            let _ = shared.completions.send(Completion::Finished { job, plan });
        }
    }
}

/// Counts an executor thread out when it ends, however it ends; the last
/// one out while the worker is not stopping wakes `run` to exit non-zero.
struct AliveGuard<'a, B>(&'a Shared<B>);

impl<B> Drop for AliveGuard<'_, B> {
    fn drop(&mut self) {
        if self.0.executors_alive.fetch_sub(1, Ordering::SeqCst) == 1 && !self.0.stopping.load(Ordering::SeqCst) {
            self.0.executors_gone.notify_one();
        }
    }
}

fn handle<B: Broker>(shared: &Arc<Shared<B>>, job: Job) {
    if shared.stopping.load(Ordering::SeqCst) {
        let _ = shared.completions.send(Completion::Requeue { job });
        return;
    }
    let Some(job) = unless_stale(shared, job) else { return };
    let completion = execute(shared, job);
    let _ = shared.completions.send(completion);
}

/// What runs a job: one of Celery's built-in tasks, or a plugin's task.
enum Work<'a> {
    Builtin(builtins::Builtin),
    Plugin(&'a Arc<crate::runtime::Plugin>, &'a crate::runtime::TaskInfo),
}

fn execute<B: Broker>(shared: &Arc<Shared<B>>, job: Job) -> Completion {
    let message = &job.message;
    // The job keeps this snapshot: a hot reload during the run does not
    // change the plugin it runs on.
    let registry = current_registry(shared);
    let work = match (builtins::Builtin::lookup(&message.task), registry.resolve(&message.task)) {
        (Some(builtin), _) => Work::Builtin(builtin),
        (None, Some((plugin, task))) => Work::Plugin(plugin, task),
        (None, None) => {
            let outcome = Outcome::UnknownTask { name: message.task.clone() };
        tracing::warn!(id = %message.id, "{}", outcome.describe());
        let plan = plan::plan(&job, &outcome, None, &shared.settings);
            report_end(shared, &job, &plan, Some(&outcome), Duration::ZERO);
            return Completion::Finished { job, plan };
        }
    };
    shared.events.started(job.tag.as_deref(), &message.id);
    let running = super::RunningJob {
        cancellation: job.cancellation.clone(),
        stamps: crate::control::stamps::job_stamps(&message.headers.extra),
    };
    shared.running.lock().unwrap().insert(message.id.clone(), running);
    let started = Instant::now();
    let mut instantiation = None;
    let (outcome, publish, task, effects) = match work {
        Work::Builtin(builtin) => {
            let (outcome, publish) = builtins::run(shared, &job, builtin);
            (outcome, publish, None, Effects::default())
        }
        Work::Plugin(plugin, task) => {
            let limits = job::limits_for(message, task, &shared.config.limits).capped(shared.config.policy.max_time_limit);
            let finished = plugin.run_job(JobRequest {
                task: &task.name,
                args: message.args.get(),
                kwargs: message.kwargs.get(),
                context: job::context_for(message, task, &limits, &shared.hostname),
                time_limit: limits.time_limit,
                memory_limit_bytes: limits.memory_limit_bytes,
                cancellation: Some(job.cancellation.clone()),
                services: shared.services.clone(),
            });
            instantiation = finished.instantiation;
            // Before the plan reaches the completer: no progress report is
            // written after this job's final state.
            shared.progress.finish(&message.id);
            (finished.outcome, Vec::new(), Some(task), finished.effects)
        }
    };
    shared.running.lock().unwrap().remove(&message.id);
    if outcome == Outcome::Terminated && shared.forced.load(Ordering::SeqCst) {
        return Completion::Requeue { job };
    }
    if let Outcome::Refused { requeue: true, reason } = &outcome {
        tracing::info!(id = %message.id, task = %message.task, reason = reason.as_deref().unwrap_or(""), "task rejected its message: requeued");
        return Completion::Requeue { job };
    }
    let runtime = started.elapsed();
    if let Some(metrics) = &shared.metrics {
        metrics.job_ran(&message.task, runtime, started.saturating_duration_since(job.ready_since));
        if let Some(took) = instantiation {
            metrics.instantiated(took);
        }
    }
    let sent = outbox::collect(effects.sent);
    let mut plan = match (&outcome, effects.replacement) {
        // Celery's `self.replace(sig)`: the signature takes the job's place.
        (Outcome::Succeeded { .. }, Some(signature)) => replace::plan(&job, &signature, &shared.settings)
            .unwrap_or_else(|failure| plan::plan(&job, &Outcome::Failed(failure), task, &shared.settings)),
        _ => plan::after_run(&job, &outcome, task, sent, &shared.settings),
    };
    plan.publish.extend(publish);
    report_end(shared, &job, &plan, Some(&outcome), runtime);
    if let Some(note) = &plan.note {
        tracing::info!(id = %message.id, task = %message.task, elapsed_ms = runtime.as_millis() as u64, "{note}");
    } else {
        tracing::debug!(id = %message.id, task = %message.task, elapsed_us = runtime.as_micros() as u64, "succeeded");
    }
    Completion::Finished { job, plan }
}

/// Tells the monitoring how a job ended (a no-op while task events are off).
fn report_end<B>(shared: &Shared<B>, job: &Job, plan: &Plan, outcome: Option<&Outcome>, runtime: Duration) {
    if let Some(metrics) = &shared.metrics {
        metrics.job_finished(&job.message.task, super::observe::outcome_label(plan, outcome));
    }
    if let Some(ending) = &plan.ending {
        let result = match outcome {
            Some(Outcome::Succeeded { json }) => Some(json.as_str()),
            _ => None,
        };
        shared.events.ended(&job.message.id, ending, result, runtime);
    }
}
