//! The executor threads: each runs jobs to an outcome and hands the plan
//! for it to the completer.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::fetch::is_expired;
use super::job::{self, Job};
use super::plan::{self, Plan, PlanSettings};
use super::{builtins, current_registry, Completion, Shared};
use crate::broker::Broker;
use crate::runtime::{JobRequest, Outcome};

pub(super) fn finish_without_running<B: Broker>(shared: &Arc<Shared<B>>, job: Job, make: impl FnOnce(&Job, &PlanSettings) -> Plan) {
    let plan = make(&job, &shared.settings);
    report_end(shared, &job, &plan, None, Duration::ZERO);
    let _ = shared.completions.send(Completion::Finished { job, plan });
}

/// An executor thread: runs jobs until the channel closes.
pub(super) fn execute_loop<B: Broker>(shared: &Arc<Shared<B>>, jobs: &flume::Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        if shared.stopping.load(Ordering::SeqCst) {
            let _ = shared.completions.send(Completion::Requeue { job });
            continue;
        }
        if shared.revoked.contains(&job.message.id) {
            finish_without_running(shared, job, |job, settings| plan::revoked(job, settings));
            continue;
        }
        if is_expired(&job.message) {
            finish_without_running(shared, job, |job, settings| plan::expired(job, settings));
            continue;
        }
        let completion = execute(shared, job);
        let _ = shared.completions.send(completion);
    }
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
            report_end(shared, &job, &plan, None, Duration::ZERO);
            return Completion::Finished { job, plan };
        }
    };
    shared.events.started(job.tag.as_deref(), &message.id);
    shared.running.lock().unwrap().insert(message.id.clone(), job.cancellation.clone());
    let started = Instant::now();
    let (outcome, publish, task) = match work {
        Work::Builtin(builtin) => {
            let (outcome, publish) = builtins::run(shared, &job, builtin);
            (outcome, publish, None)
        }
        Work::Plugin(plugin, task) => {
            let limits = job::limits_for(message, task, &shared.config.limits);
            let outcome = plugin.run(JobRequest {
                task: &task.name,
                args: message.args.get(),
                kwargs: message.kwargs.get(),
                context: job::context_for(message, task, &limits, &shared.hostname),
                time_limit: limits.time_limit,
                memory_limit_bytes: limits.memory_limit_bytes,
                cancellation: Some(job.cancellation.clone()),
            });
            (outcome, Vec::new(), Some(task))
        }
    };
    shared.running.lock().unwrap().remove(&message.id);
    if outcome == Outcome::Terminated && shared.forced.load(Ordering::SeqCst) {
        return Completion::Requeue { job };
    }
    let runtime = started.elapsed();
    let mut plan = plan::plan(&job, &outcome, task, &shared.settings);
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
    if let Some(ending) = &plan.ending {
        let result = match outcome {
            Some(Outcome::Succeeded { json }) => Some(json.as_str()),
            _ => None,
        };
        shared.events.ended(&job.message.id, ending, result, runtime);
    }
}
