//! What a task sends (`chard:task/canvas`), turned into messages.
//!
//! The runtime calls [`Sender::prepare`] while the guest runs; nothing is
//! published then. The prepared messages come back with the job's effects
//! and [`collect`] gathers them for the job's plan, so the completer
//! publishes them in the same batch as the job's result and before its
//! ack, and only for a job that succeeded.
//!
//! Any signature Celery's client can send, a task can send: it is applied
//! by the worker's canvas module (`canvas::send`), exactly as a callback
//! or chain step would be, so nested chains, groups and chords behave as
//! on a Python worker.
//!
//! Ids are not random: each is a UUIDv5 of the job's id, its attempt
//! (`retries`), the call's index and the id's place in the signature. A job
//! redelivered after a worker died sends its children again under the same
//! ids, so a duplicate is recognisable (and a chord's join, keyed by id,
//! counts it once).

use serde_json::Value;

use super::canvas::{self, Context};
use super::plan::PlanSettings;
use crate::runtime::{JobContext, Prepared, TaskSender};

/// Namespace of the derived ids (a fixed random UUID).
const ID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6f1e_2b4c_9a3d_4e57_8c21_d0b9_5a7e_3f12);

/// The worker's [`TaskSender`].
pub(super) struct Sender {
    pub settings: std::sync::Arc<PlanSettings>,
}

impl TaskSender for Sender {
    fn prepare(&self, parent: &JobContext, index: u32, signature: &Value) -> Result<Prepared, String> {
        let queue = parent.delivery_info.routing_key.as_deref().filter(|key| !key.is_empty()).unwrap_or("celery");
        let cx = Context {
            task_id: &parent.task_id,
            root_id: parent.root_id.as_deref().unwrap_or(&parent.task_id),
            default_queue: queue,
            hostname: &self.settings.hostname,
            routes: &self.settings.routes,
            reply_to: None,
            typing: self.settings.typing.as_ref(),
        };
        // The ids of one `send`: `<job id>:<retries>:<call index>:<n>`, hashed.
        let ids = canvas::derived_ids(ID_NAMESPACE, format!("{}:{}:{index}", parent.task_id, parent.retries));
        let (id, effects) = canvas::with_ids(ids, || canvas::send(signature, &cx))?;
        Ok(Prepared { id, payload: Box::new(effects) })
    }
}

/// Everything a job sent while it ran, in the order it sent it.
pub(super) fn collect(prepared: Vec<Prepared>) -> canvas::Effects {
    let mut sent = canvas::Effects::default();
    for effects in prepared.into_iter().filter_map(|prepared| prepared.payload.downcast::<canvas::Effects>().ok()) {
        sent.messages.extend(effects.messages);
        sent.chord_sizes.extend(effects.chord_sizes);
        sent.saved_headers.extend(effects.saved_headers);
        sent.children.extend(effects.children);
    }
    sent
}
