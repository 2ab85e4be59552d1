//! `chard:task/canvas`: sending and replacing tasks from inside a task.
//!
//! An outbox, not a side channel: `send` only prepares messages, which
//! ride back to the worker with the job's [`Effects`](super::Effects). The
//! worker publishes them with the job's result, before its ack, and only if
//! the job succeeded; a failed, retried or crashed attempt sends nothing.
//!
//! Turning a Celery signature dict into messages is Celery knowledge, so
//! the worker supplies it ([`TaskSender`]); the runtime numbers the calls
//! (the index feeds the ids, so a redelivered job sends the same ids) and
//! keeps what was prepared. `replace` keeps the signature as it is: what
//! the replacement inherits (the job's id, callbacks, chain, chord) comes
//! from the message, which only the worker has.

use std::any::Any;

use serde_json::Value;

use super::bindings::v0_2::chard::task::canvas::Host;
use super::job::JobState;
use super::JobContext;

/// Most sends one job may make.
pub const MAX_SENDS: u32 = 10_000;

/// Messages prepared for one `send`, opaque to the runtime.
pub struct Prepared {
    /// What the guest gets back: the id to wait on.
    pub id: String,
    pub payload: Box<dyn Any + Send>,
}

/// Prepares the messages for a signature; supplied by the worker.
pub trait TaskSender: Send + Sync {
    /// `index` counts this job's sends from 0.
    fn prepare(&self, parent: &JobContext, index: u32, signature: &Value) -> Result<Prepared, String>;
}

/// A signature dict must at least be an object naming a task.
fn parse_signature(text: &str) -> Result<Value, String> {
    let value: Value = serde_json::from_str(text).map_err(|error| format!("signature is not JSON: {error}"))?;
    match value.get("task") {
        Some(Value::String(task)) if !task.is_empty() => Ok(value),
        _ => Err("a signature is a JSON object with a \"task\" name (Celery's signature dict)".into()),
    }
}

impl Host for JobState {
    fn send(&mut self, signature_json: String) -> wasmtime::Result<Result<String, String>> {
        if !self.grants.send {
            return Err(self.denied("sending tasks", "send"));
        }
        let signature = match parse_signature(&signature_json) {
            Ok(signature) => signature,
            Err(error) => return Ok(Err(error)),
        };
        let index = self.effects.sent.len() as u32;
        if index >= MAX_SENDS {
            return Ok(Err(format!("send: at most {MAX_SENDS} sends per job")));
        }
        let (Some(sender), Some(context)) = (&self.services.sender, &self.context) else {
            return Ok(Err("send: no queue to send to here".into()));
        };
        Ok(sender.prepare(context, index, &signature).map(|prepared| {
            let id = prepared.id.clone();
            self.effects.sent.push(prepared);
            id
        }))
    }

    fn replace(&mut self, signature_json: String) -> wasmtime::Result<Result<(), String>> {
        if !self.grants.send {
            return Err(self.denied("replacing the task", "send"));
        }
        if self.effects.replacement.is_some() {
            return Ok(Err("replace: this job already asked to be replaced".into()));
        }
        Ok(parse_signature(&signature_json).map(|signature| self.effects.replacement = Some(signature)))
    }
}
