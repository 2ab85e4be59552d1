//! Sending and replacing tasks from inside a task (Celery's `sig.delay()`
//! and `self.replace(sig)`). Needs `send = true` under `[capabilities]`.
//!
//! A [`Signature`] is Celery's signature dict, built with the same names as
//! in Python, so what a Rust task sends is exactly what a Python task would:
//!
//! ```text
//! use chard_sdk::canvas::{signature, group, chord};
//! let id = signature("math.add", json!([2, 2])).chain(signature("math.mul", json!([10]))).send()?;
//! let id = chord([signature("math.add", json!([1, 1])), signature("math.add", json!([2, 2]))],
//!                signature("math.xsum", json!([]))).send()?;
//! ```
//!
//! Nothing is published while the task runs: what it sent goes out with its
//! result, only if it succeeds (see `wit/chard.wit`, interface `canvas`).

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::TaskError;

/// A Celery signature dict: a task, chain, group or chord.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Signature(Value);

/// `task.s(*args)`: `args` is a JSON array (any other value is one argument).
pub fn signature(task: &str, args: Value) -> Signature {
    let args = match args {
        Value::Array(_) => args,
        Value::Null => json!([]),
        other => json!([other]),
    };
    Signature(json!({
        "task": task, "args": args, "kwargs": {}, "options": {},
        "subtask_type": null, "immutable": false,
    }))
}

/// `group(sigs)`: the members run in parallel.
pub fn group(members: impl IntoIterator<Item = Signature>) -> Signature {
    let tasks: Vec<Value> = members.into_iter().map(|member| member.0).collect();
    Signature(json!({
        "task": "celery.group", "args": [], "kwargs": {"tasks": tasks}, "options": {},
        "subtask_type": "group", "immutable": false,
    }))
}

/// `chord(header, body)`: `body` gets the list of the header's results.
pub fn chord(header: impl IntoIterator<Item = Signature>, body: Signature) -> Signature {
    let header: Vec<Value> = header.into_iter().map(|member| member.0).collect();
    Signature(json!({
        "task": "celery.chord", "args": [],
        "kwargs": {"header": header, "body": body.0, "kwargs": {}}, "options": {},
        "subtask_type": "chord", "immutable": false,
    }))
}

impl Signature {
    /// `sig | next`: a chain; `next` gets this one's result as its first
    /// argument (unless immutable).
    pub fn chain(self, next: Signature) -> Signature {
        let mut tasks = self.chain_steps();
        tasks.extend(next.chain_steps());
        Signature(json!({
            "task": "celery.chain", "args": [], "kwargs": {"tasks": tasks}, "options": {},
            "subtask_type": "chain", "immutable": false,
        }))
    }

    fn chain_steps(self) -> Vec<Value> {
        if self.0["subtask_type"] == "chain" && self.0["options"].as_object().is_none_or(Map::is_empty) {
            if let Value::Array(tasks) = self.0["kwargs"]["tasks"].clone() {
                return tasks;
            }
        }
        vec![self.0]
    }

    /// Keyword arguments (a JSON object).
    pub fn kwargs(mut self, kwargs: Value) -> Self {
        self.0["kwargs"] = kwargs;
        self
    }

    /// `.si(...)`: ignore the parent's result.
    pub fn immutable(mut self) -> Self {
        self.0["immutable"] = Value::Bool(true);
        self
    }

    /// An option of `apply_async`: "queue", "countdown", "priority",
    /// "link", "link_error", ...
    pub fn set(mut self, option: &str, value: impl Serialize) -> Self {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        if let Some(options) = self.0["options"].as_object_mut() {
            options.insert(option.to_string(), value);
        }
        self
    }

    /// `.link(callback)`.
    pub fn link(self, callback: Signature) -> Self {
        self.push_option("link", callback)
    }

    /// `.link_error(errback)`.
    pub fn link_error(self, errback: Signature) -> Self {
        self.push_option("link_error", errback)
    }

    fn push_option(mut self, option: &str, signature: Signature) -> Self {
        if let Some(options) = self.0["options"].as_object_mut() {
            let list = options.entry(option).or_insert_with(|| json!([]));
            if let Value::Array(items) = list {
                items.push(signature.0);
            }
        }
        self
    }

    /// The dict as JSON text.
    pub fn to_json(&self) -> String {
        self.0.to_string()
    }

    /// The dict as a JSON value.
    pub fn as_value(&self) -> &Value {
        &self.0
    }

    /// `sig.apply_async()`: returns the id to wait on (a chain's last task,
    /// a group's id, a chord's body).
    pub fn send(&self) -> Result<String, TaskError> {
        send_json(&self.to_json())
    }

    /// `self.replace(sig)`: this task ends and `self` takes its place under
    /// the same id. Return from the task after calling it; the value it
    /// returns is ignored.
    pub fn replace(&self) -> Result<(), TaskError> {
        replace_json(&self.to_json())
    }
}

/// Sends a signature given as JSON text (e.g. one received as an argument).
pub fn send_json(signature: &str) -> Result<String, TaskError> {
    crate::bindings::chard::task::canvas::send(signature).map_err(TaskError::failed)
}

/// Replaces this task with a signature given as JSON text (see
/// [`Signature::replace`]).
pub fn replace_json(signature: &str) -> Result<(), TaskError> {
    crate::bindings::chard::task::canvas::replace(signature).map_err(TaskError::failed)
}
