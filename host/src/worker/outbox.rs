//! What a task sends (`chard:task/canvas`), turned into messages.
//!
//! The runtime calls [`Sender::prepare`] while the guest runs; nothing is
//! published then. The prepared messages come back with the job's effects
//! and [`apply`] adds them to the job's plan, so the completer publishes
//! them in the same batch as the job's result and before its ack, and only
//! for a job that succeeded.
//!
//! Ids are not random: each is a UUIDv5 of the job's id, its attempt
//! (`retries`), the call's index and the message's place in the signature.
//! A job redelivered after a worker died sends its children again under the
//! same ids, so a duplicate is recognisable (and a chord's join, keyed by
//! id, counts it once).
//!
//! Shapes: a task, a chain of tasks, a group of tasks and a chord whose
//! header and body are tasks, as Celery's client sends them. A canvas nested
//! inside another (a group inside a chain, ...) is refused with a clear
//! error for now: nested canvas is applied by the worker's canvas module.

use serde_json::Value;

use super::plan::{from_signature, signature_args, Lineage, Plan, PlanSettings};
use crate::backend::ResultWrite;
use crate::protocol::{queue_key_for, OutgoingTask, Signature};
use crate::runtime::{JobContext, Prepared, TaskSender};

/// Namespace of the derived ids (a fixed random UUID).
const ID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6f1e_2b4c_9a3d_4e57_8c21_d0b9_5a7e_3f12);

/// What one `send` prepared, carried opaquely through the runtime.
pub(super) struct Payload {
    /// Result-backend writes that must land before the messages (a chord's
    /// header size).
    pub setup: Vec<ResultWrite>,
    pub publish: Vec<(String, String)>,
}

/// The worker's [`TaskSender`].
pub(super) struct Sender {
    pub settings: std::sync::Arc<PlanSettings>,
}

/// Hands out the ids of one `send`.
struct Ids {
    seed: String,
    count: u32,
}

impl Ids {
    fn new(parent: &JobContext, index: u32) -> Self {
        Self { seed: format!("{}:{}:{index}", parent.task_id, parent.retries), count: 0 }
    }

    fn next(&mut self) -> String {
        self.count += 1;
        uuid::Uuid::new_v5(&ID_NAMESPACE, format!("{}:{}", self.seed, self.count).as_bytes()).to_string()
    }
}

pub(super) fn parse(value: &Value) -> Result<Signature, String> {
    serde_json::from_value(value.clone()).map_err(|error| format!("not a Celery signature: {error}"))
}

/// `kwargs[name]` of a canvas signature, as a list of signatures (a group
/// dict stands for its tasks).
pub(super) fn members(signature: &Signature, name: &str) -> Result<Vec<Signature>, String> {
    let mut value = signature.kwargs.get(name).cloned().unwrap_or(Value::Null);
    if value.get("subtask_type").and_then(Value::as_str) == Some("group") {
        value = value["kwargs"]["tasks"].clone();
    }
    let Value::Array(items) = value else {
        return Err(format!("{}: kwargs.{name} must be a list of signatures", signature.task));
    };
    items.iter().map(parse).map(|member| member.and_then(plain)).collect()
}

/// Only plain task signatures inside a canvas (see the module doc).
fn plain(signature: Signature) -> Result<Signature, String> {
    match signature.subtask_type.as_deref() {
        None => Ok(signature),
        Some(kind) => Err(format!("a {kind} nested inside a canvas cannot be sent from a task yet")),
    }
}

fn set_id(signature: &mut Signature, id: &str) {
    signature.options.insert("task_id".into(), Value::String(id.to_string()));
}

fn push(task: &OutgoingTask, payload: &mut Payload) {
    payload.publish.push((queue_key_for(&task.queue, task.priority), task.to_envelope()));
}

impl Sender {
    fn message(&self, signature: &Signature, lineage: &Lineage<'_>, id: String) -> OutgoingTask {
        let mut signature = signature.clone();
        if !signature.options.get("task_id").is_some_and(Value::is_string) {
            set_id(&mut signature, &id);
        }
        from_signature(&signature, signature_args(&signature, None), lineage, &self.settings)
    }

    fn build(&self, signature: &Signature, lineage: &Lineage<'_>, ids: &mut Ids) -> Result<(String, Payload), String> {
        let mut payload = Payload { setup: Vec::new(), publish: Vec::new() };
        let id = match signature.subtask_type.as_deref() {
            None => {
                let task = self.message(signature, lineage, ids.next());
                push(&task, &mut payload);
                task.id
            }
            Some("chain") => {
                let mut steps = members(signature, "tasks")?;
                if steps.is_empty() {
                    return Err("cannot send an empty chain".into());
                }
                for step in &mut steps {
                    if !step.options.get("task_id").is_some_and(Value::is_string) {
                        set_id(step, &ids.next());
                    }
                }
                let last = steps.last().and_then(|step| step.options["task_id"].as_str()).unwrap_or_default().to_string();
                let first = steps.remove(0);
                let mut task = self.message(&first, lineage, ids.next());
                if !steps.is_empty() {
                    steps.reverse();
                    task.embed.chain = Some(steps);
                }
                push(&task, &mut payload);
                last
            }
            Some("group") => {
                let group_id = ids.next();
                for (index, member) in members(signature, "tasks")?.iter().enumerate() {
                    let mut task = self.message(member, lineage, ids.next());
                    task.group = Some(group_id.clone());
                    task.group_index = Some(index as u32);
                    push(&task, &mut payload);
                }
                group_id
            }
            Some("chord") => {
                let header = members(signature, "header")?;
                let mut body = plain(parse(signature.kwargs.get("body").unwrap_or(&Value::Null))?)?;
                if header.is_empty() {
                    return Err("a chord from a task needs at least one header member".into());
                }
                let group_id = ids.next();
                let body_id = body.options.get("task_id").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| ids.next());
                set_id(&mut body, &body_id);
                body.options.insert("group_id".into(), Value::String(group_id.clone()));
                // The header size, where the atomic join expects it (as the
                // client writes it; see client/canvas.rs).
                payload.setup.push(ResultWrite {
                    key: format!("celery-taskset-meta-{group_id}.s"),
                    json: header.len().to_string(),
                    ttl: self.settings.result_expires,
                });
                for (index, member) in header.iter().enumerate() {
                    let mut task = self.message(member, lineage, ids.next());
                    task.group = Some(group_id.clone());
                    task.group_index = Some(index as u32);
                    task.embed.chord = Some(body.clone());
                    push(&task, &mut payload);
                }
                body_id
            }
            Some(other) => return Err(format!("unknown signature type {other:?}: expected a task, chain, group or chord")),
        };
        Ok((id, payload))
    }
}

impl TaskSender for Sender {
    fn prepare(&self, parent: &JobContext, index: u32, signature: &Value) -> Result<Prepared, String> {
        let signature = parse(signature)?;
        let queue = parent.delivery_info.routing_key.as_deref().filter(|key| !key.is_empty()).unwrap_or("celery");
        let lineage = Lineage {
            root_id: parent.root_id.as_deref().unwrap_or(&parent.task_id),
            parent_id: &parent.task_id,
            default_queue: queue,
        };
        let mut ids = Ids::new(parent, index);
        let (id, payload) = self.build(&signature, &lineage, &mut ids)?;
        Ok(Prepared { id, payload: Box::new(payload) })
    }
}

/// Adds what a succeeded job sent to its plan: setup writes and messages
/// for the completer.
pub(super) fn apply(plan: &mut Plan, sent: Vec<Prepared>) {
    for prepared in sent {
        if let Ok(payload) = prepared.payload.downcast::<Payload>() {
            plan.setup.extend(payload.setup);
            plan.publish.extend(payload.publish);
        }
    }
}
