//! Celery's `self.replace(sig)` (`chard:task/canvas.replace`).
//!
//! The signature takes the job's place as Celery 5.7's `Task.replace` puts
//! it (ported in `canvas::replace`): frozen with the job's id, so
//! `AsyncResult(original).get()` returns the replacement's result; with the
//! job's callbacks, errbacks, chord and group membership and root; and
//! with the rest of the job's chain after it. Any shape Celery accepts can
//! replace a task, nested canvases included. The replaced job itself
//! stores no state (Celery raises `Ignore` for it) and its own return
//! value is dropped.
//!
//! Ids the replacement needs are derived from the job's id and attempt, so
//! a job redelivered after a crash replaces itself with the same messages.

use serde_json::Value;

use super::canvas::{self, Context, Replaced};
use super::job::Job;
use super::plan::{Plan, PlanSettings};
use crate::protocol::queue_key_for;
use crate::runtime::Failure;

/// Namespace of the ids the replacement's extra steps get.
const ID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x0b7c_52d1_64e8_4f0a_93b6_2e4d_8a1f_c739);

/// The plan for a job that asked to be replaced by `signature`, or the
/// failure `self.replace(sig)` raises in Celery: `ValueError` for a
/// signature that cannot replace a task, `TypeError` when its first task
/// cannot take its arguments.
pub(super) fn plan(job: &Job, signature: &Value, settings: &PlanSettings) -> Result<Plan, Failure> {
    let message = &job.message;
    let embed = &message.embed;
    let queue = message.properties.delivery_info.routing_key.as_str();
    let cx = Context {
        task_id: &message.id,
        root_id: message.root_id(),
        default_queue: if queue.is_empty() { "celery" } else { queue },
        hostname: &settings.hostname,
        routes: &settings.routes,
        reply_to: message.properties.reply_to.as_deref(),
        typing: settings.typing.as_ref(),
    };
    let request = Replaced {
        id: &message.id,
        root_id: message.root_id(),
        callbacks: embed.callbacks.as_deref().unwrap_or_default(),
        errbacks: embed.errbacks.as_deref().unwrap_or_default(),
        chain: embed.chain.as_deref().unwrap_or_default(),
        chord: embed.chord.as_ref(),
        group: message.headers.group.as_deref(),
        group_index: message.headers.group_index,
        replaced_task_nesting: message.headers.replaced_task_nesting.unwrap_or(0).into(),
    };
    let ids = canvas::derived_ids(ID_NAMESPACE, format!("{}:{}:replace", message.id, message.retries()));
    let effects = canvas::with_ids(ids, || canvas::replace(signature, &request, &cx))
        .map_err(|error| Failure::new("ValueError", format!("replace: {error}")))?;
    if let Some(error) = effects.raised {
        return Err(Failure::new("TypeError", error.0));
    }
    let mut plan = Plan { note: Some(format!("replaced by {}", signature["task"].as_str().unwrap_or("a signature"))), ..Plan::default() };
    for task in effects.messages {
        plan.publish.push((queue_key_for(&task.queue, task.priority), task.to_envelope()));
    }
    plan.chord_sizes = effects.chord_sizes;
    plan.saved_headers = effects.saved_headers;
    Ok(plan)
}
