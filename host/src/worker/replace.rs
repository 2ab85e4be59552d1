//! Celery's `self.replace(sig)` (`chard:task/canvas.replace`).
//!
//! As Celery 5.7's `Task.replace` does (celery/app/task.py): the
//! replacement is frozen with the replaced task's id, so
//! `AsyncResult(original).get()` returns the replacement's result; it
//! inherits the task's callbacks and errbacks, its chord and group
//! membership, its root, and the rest of its chain, which continues after
//! it. A group is first turned into a chord whose body is
//! `celery.accumulate(index=0)`, so the group's list of results lands under
//! the original id. The replaced job itself stores no state (Celery raises
//! `Ignore` for it) and its own return value is dropped.
//!
//! What can replace a task here: a task, a chain of tasks, a group of tasks
//! (the rest of a chain after it may be one step), and a chord of tasks. A
//! canvas nested deeper is refused with a clear FAILURE until the worker's
//! nested canvas handles it.

use serde_json::{json, Map, Value};

use super::job::Job;
use super::outbox::{members, parse};
use super::plan::{from_signature, signature_args, Lineage, Plan, PlanSettings};
use crate::backend::ResultWrite;
use crate::protocol::{queue_key_for, OutgoingTask, Signature, TaskMessage};

/// Namespace of the ids the replacement's extra steps get.
const ID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x0b7c_52d1_64e8_4f0a_93b6_2e4d_8a1f_c739);

fn derived_id(message: &TaskMessage, n: usize) -> String {
    uuid::Uuid::new_v5(&ID_NAMESPACE, format!("{}:{}:replace:{n}", message.id, message.retries()).as_bytes()).to_string()
}

fn push_option(signature: &mut Signature, option: &str, items: &[Signature]) {
    if items.is_empty() {
        return;
    }
    let list = signature.options.entry(option).or_insert_with(|| json!([]));
    if !list.is_array() {
        *list = Value::Array(vec![list.take()]);
    }
    if let Value::Array(list) = list {
        list.extend(items.iter().filter_map(|item| serde_json::to_value(item).ok()));
    }
}

/// The step whose result is the replacement's: it takes the original id,
/// callbacks, errbacks and group membership.
fn make_final(signature: &mut Signature, message: &TaskMessage) {
    signature.options.insert("task_id".into(), Value::String(message.id.clone()));
    push_option(signature, "link", message.embed.callbacks.as_deref().unwrap_or_default());
    push_option(signature, "link_error", message.embed.errbacks.as_deref().unwrap_or_default());
    if let Some(group) = &message.headers.group {
        signature.options.insert("group_id".into(), Value::String(group.clone()));
    }
    if let Some(index) = message.headers.group_index {
        signature.options.insert("group_index".into(), Value::from(index));
    }
}

fn publish(task: &OutgoingTask, plan: &mut Plan) {
    plan.publish.push((queue_key_for(&task.queue, task.priority), task.to_envelope()));
}

/// The plan for a job that asked to be replaced by `signature`.
pub(super) fn plan(job: &Job, signature: &Value, settings: &PlanSettings) -> Result<Plan, String> {
    let message = &job.message;
    let signature = parse(signature)?;
    if signature.options.contains_key("chord") {
        return Err("a replacement signature cannot carry a chord option (Celery: ImproperlyConfigured)".into());
    }
    let queue = message.properties.delivery_info.routing_key.as_str();
    let lineage = Lineage {
        root_id: message.root_id(),
        parent_id: &message.id,
        default_queue: if queue.is_empty() { "celery" } else { queue },
    };
    let mut plan = Plan { note: Some(format!("replaced by {}", signature.task)), ..Plan::default() };
    let inherited_chain = message.embed.chain.clone().unwrap_or_default();
    let message_for = |signature: &Signature| from_signature(signature, signature_args(signature, None), &lineage, settings);
    match signature.subtask_type.as_deref() {
        None => {
            let mut only = signature;
            make_final(&mut only, message);
            let mut task = message_for(&only);
            task.embed.chain = (!inherited_chain.is_empty()).then_some(inherited_chain);
            task.embed.chord = message.embed.chord.clone();
            publish(&task, &mut plan);
        }
        Some("chain") => {
            let mut steps = members(&signature, "tasks")?;
            if steps.is_empty() {
                return Err("cannot replace with an empty chain (Celery: ImproperlyConfigured)".into());
            }
            let last = steps.len() - 1;
            for (n, step) in steps.iter_mut().enumerate() {
                if n == last {
                    make_final(step, message);
                } else {
                    step.options.insert("task_id".into(), Value::String(derived_id(message, n)));
                }
            }
            let first = steps.remove(0);
            let mut task = message_for(&first);
            // The chain is stored reversed (next step last): the original
            // chain's rest runs after the replacement's own steps.
            steps.reverse();
            let mut chain = inherited_chain;
            chain.extend(steps);
            task.embed.chain = (!chain.is_empty()).then_some(chain);
            task.embed.chord = message.embed.chord.clone();
            publish(&task, &mut plan);
        }
        Some(kind @ ("group" | "chord")) => {
            let (header, mut body) = if kind == "group" {
                // Celery: `sig |= celery.accumulate.s(index=0)`.
                let mut kwargs = Map::new();
                kwargs.insert("index".into(), Value::from(0));
                (members(&signature, "tasks")?, Signature::new("celery.accumulate", Vec::new(), kwargs))
            } else {
                let body = parse(signature.kwargs.get("body").unwrap_or(&Value::Null))?;
                if body.subtask_type.is_some() {
                    return Err("a chord body that is itself a canvas is not supported in a replacement yet".into());
                }
                (members(&signature, "header")?, body)
            };
            if header.is_empty() {
                return Err(format!("cannot replace with an empty {kind}"));
            }
            make_final(&mut body, message);
            if message.embed.chord.is_some() {
                return Err(format!("a chord member cannot be replaced with a {kind} yet"));
            }
            // The rest of the chain: its next step follows the body as a
            // callback (carrying its frozen id); a longer rest needs the
            // nested canvas and is refused.
            match inherited_chain.as_slice() {
                [] => {}
                [next] => push_option(&mut body, "link", std::slice::from_ref(next)),
                _ => return Err(format!("replacing a step with a {kind} is supported with at most one chain step after it")),
            }
            let group_id = derived_id(message, header.len() + 1);
            body.options.insert("group_id".into(), Value::String(group_id.clone()));
            plan.setup.push(ResultWrite {
                key: format!("celery-taskset-meta-{group_id}.s"),
                json: header.len().to_string(),
                ttl: settings.result_expires,
            });
            for (index, member) in header.iter().enumerate() {
                let mut member = member.clone();
                member.options.insert("task_id".into(), Value::String(derived_id(message, index)));
                let mut task = message_for(&member);
                task.group = Some(group_id.clone());
                task.group_index = Some(index as u32);
                task.embed.chord = Some(body.clone());
                publish(&task, &mut plan);
            }
        }
        Some(other) => return Err(format!("unknown signature type {other:?}")),
    }
    Ok(plan)
}
