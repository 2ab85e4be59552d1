//! Celery's built-in tasks, which clients send by name and the worker runs
//! itself: `celery.map`, `celery.starmap`, `celery.chunks` and
//! `celery.accumulate` (Celery's `app/builtins.py`).
//!
//! - `map` and `starmap` run the named task once per item, each in a fresh
//!   sandbox like any job, inside this one job, and return the list of
//!   results. The first failure fails the whole job with that error, as the
//!   exception would in Celery.
//! - `chunks` splits its items into `starmap` jobs of `n` items, sent as a
//!   group, and returns that group as Celery's result tuple.
//! - `accumulate` returns its arguments (or the one at `index`).
//!
//! `celery.chord_unlock` is not here on purpose: Celery only sends it for
//! result backends without an atomic chord join, and the Redis backend (the
//! only one Chard stores results in) has one. Such a message ends FAILURE
//! `NotRegistered`, like any unknown task.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::job::{context_for, limits_for, Job};
use super::{current_registry, Shared};
use crate::protocol::{queue_key_for, OutgoingTask, Signature};
use crate::runtime::{Failure, JobRequest, Outcome};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Builtin {
    Map,
    Starmap,
    Chunks,
    Accumulate,
}

impl Builtin {
    /// The Python function's name and parameters (`app/builtins.py`), for
    /// the argument check a Python worker makes before sending a call to
    /// one (`Task.typing`; `accumulate` is bound, so `self` is not one).
    pub(super) fn signature(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Self::Map => ("xmap", &["task", "it"]),
            Self::Starmap => ("xstarmap", &["task", "it"]),
            Self::Chunks => ("chunks", &["task", "it", "n"]),
            Self::Accumulate => ("accumulate", &["*args", "**kwargs"]),
        }
    }

    pub(super) fn lookup(name: &str) -> Option<Self> {
        match name {
            "celery.map" => Some(Self::Map),
            "celery.starmap" => Some(Self::Starmap),
            "celery.chunks" => Some(Self::Chunks),
            "celery.accumulate" => Some(Self::Accumulate),
            _ => None,
        }
    }
}

/// Runs a built-in; returns its outcome and any messages it sends.
pub(super) fn run<B>(shared: &Arc<Shared<B>>, job: &Job, builtin: Builtin) -> (Outcome, Vec<(String, String)>) {
    let args: Vec<Value> = serde_json::from_str(job.message.args.get()).unwrap_or_default();
    let kwargs: Map<String, Value> = serde_json::from_str(job.message.kwargs.get()).unwrap_or_default();
    // Celery's signatures pass these by keyword; accept them by position too.
    let param = |name: &str, index: usize| kwargs.get(name).or_else(|| args.get(index)).cloned();
    let result = match builtin {
        Builtin::Accumulate => Ok(match kwargs.get("index").and_then(Value::as_u64) {
            Some(index) => (args.get(index as usize).cloned().unwrap_or(Value::Null), Vec::new()),
            None => (Value::Array(args.clone()), Vec::new()),
        }),
        Builtin::Map | Builtin::Starmap => parse_task_and_items(param("task", 0), param("it", 1))
            .and_then(|(task, items)| map(shared, job, &task, items, builtin == Builtin::Starmap).map(|value| (value, Vec::new()))),
        Builtin::Chunks => parse_task_and_items(param("task", 0), param("it", 1)).and_then(|(task, items)| {
            let size = param("n", 2).and_then(|n| n.as_u64()).filter(|n| *n > 0).ok_or_else(|| bad("chunks: `n` must be a positive integer"))?;
            Ok(chunks(shared, job, &task, items, size as usize))
        }),
    };
    match result {
        Ok((value, publish)) => (Outcome::Succeeded { json: value.to_string() }, publish),
        Err(outcome) => (outcome, Vec::new()),
    }
}

fn bad(message: &str) -> Outcome {
    Outcome::Failed(Failure::new("TypeError", message))
}

fn parse_task_and_items(task: Option<Value>, items: Option<Value>) -> Result<(Signature, Vec<Value>), Outcome> {
    let task: Signature = task
        .and_then(|task| serde_json::from_value(task).ok())
        .ok_or_else(|| bad("`task` must be a task signature"))?;
    match items {
        Some(Value::Array(items)) => Ok((task, items)),
        _ => Err(bad("`it` must be a list")),
    }
}

/// Runs `task` once per item (`starmap`: the item is the argument list).
fn map<B>(shared: &Arc<Shared<B>>, job: &Job, task: &Signature, items: Vec<Value>, star: bool) -> Result<Value, Outcome> {
    let registry = current_registry(shared);
    let (plugin, info) =
        registry.resolve(&task.task).ok_or_else(|| Outcome::UnknownTask { name: task.task.clone() })?;
    let limits = limits_for(&job.message, info, &shared.config.limits);
    let kwargs = Value::Object(task.kwargs.clone()).to_string();
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        let args = match item {
            Value::Array(values) if star => Value::Array(values),
            _ if star => return Err(bad("starmap: every item must be a list of arguments")),
            other => Value::Array(vec![other]),
        };
        let mut context = context_for(&job.message, info, &limits, &shared.hostname);
        context.task_name = task.task.clone();
        let outcome = plugin.run(JobRequest {
            task: &info.name,
            args: &args.to_string(),
            kwargs: &kwargs,
            context,
            time_limit: limits.time_limit,
            memory_limit_bytes: limits.memory_limit_bytes,
            cancellation: Some(job.cancellation.clone()),
            services: Default::default(),
        });
        match outcome {
            Outcome::Succeeded { json } => results.push(serde_json::from_str(&json).unwrap_or(Value::Null)),
            other => return Err(other),
        }
    }
    Ok(Value::Array(results))
}

/// Sends one `celery.starmap` job per `size` items, as a group.
fn chunks<B>(shared: &Arc<Shared<B>>, job: &Job, task: &Signature, items: Vec<Value>, size: usize) -> (Value, Vec<(String, String)>) {
    let message = &job.message;
    let group_id = uuid::Uuid::new_v4().to_string();
    let mut publish = Vec::new();
    let mut members = Vec::new();
    for (index, part) in items.chunks(size).enumerate() {
        let kwargs = json!({"task": task, "it": part});
        let mut child = OutgoingTask::new(
            "celery.starmap",
            serde_json::value::to_raw_value(&json!([])).expect("JSON"),
            serde_json::value::to_raw_value(&kwargs).expect("JSON"),
            shared.hostname.to_string(),
        );
        child.root_id = Some(message.root_id().to_string());
        child.parent_id = Some(message.id.clone());
        child.group = Some(group_id.clone());
        child.group_index = Some(index as u32);
        child.queue = shared
            .settings
            .routes
            .queue_for("celery.starmap")
            .unwrap_or(match message.properties.delivery_info.routing_key.as_str() {
                "" => "celery",
                queue => queue,
            })
            .to_string();
        members.push(json!([[child.id, null], null]));
        publish.push((queue_key_for(&child.queue, child.priority), child.to_envelope()));
    }
    (json!([[group_id, null], members]), publish)
}
