//! What happens after a task ends, as `celery/app/trace.py` and the result
//! backend (`backends/base.py`) do it: the signatures a finished task
//! carries are applied here, never published as they are.
//!
//! - Success: each `link` callback gets the result (several callbacks go
//!   out as one group, a group callback on its own), then the next chain
//!   step gets it with the rest of the chain.
//! - Failure: the errbacks go out as one group with the failed task's id;
//!   every later chain step fails with the same error, and a step that
//!   belongs to a chord reports that failure to it (or the chord would
//!   wait forever); a chord step's body fails too.
//! - Chord complete: the body is applied with the header's results
//!   (`body.delay(results)`); a failed member fails the body instead,
//!   calling its errbacks (each member's, for a group body).

use std::collections::VecDeque;

use serde_json::{Map, Value};

use super::apply::apply_async;
use super::freeze::{freeze_group, Frame};
use super::node::{as_list, Kind, Node};
use super::typing::ArgumentError;
use super::{Context, Effects};
use crate::protocol::{Embed, Signature};

/// The parent and root every follow-up of the running task gets.
fn lineage(parent_id: &str, root_id: &str) -> Map<String, Value> {
    Map::from_iter([("parent_id".to_string(), Value::from(parent_id)), ("root_id".to_string(), Value::from(root_id))])
}

fn nodes(signatures: &[Signature]) -> Vec<Node> {
    signatures.iter().filter_map(Node::from_signature).collect()
}

/// Runs `apply` into fresh effects, noting where a `TypeError` stopped it.
fn applying(apply: impl FnOnce(&mut Effects) -> Result<(), ArgumentError>) -> Effects {
    let mut fx = Effects::default();
    if let Err(error) = apply(&mut fx) {
        fx.raised = Some(error);
    }
    fx
}

/// Callbacks and the next chain step, after a success
/// (`_dispatch_callbacks_and_chain`).
pub fn on_success(embed: &Embed, result: &Value, cx: &Context) -> Effects {
    applying(|fx| dispatch(embed, result, cx, fx))
}

fn dispatch(embed: &Embed, result: &Value, cx: &Context, fx: &mut Effects) -> Result<(), ArgumentError> {
    let args = [result.clone()];
    let callbacks = nodes(embed.callbacks.as_deref().unwrap_or_default());
    if callbacks.len() > 1 {
        let (groups, tasks): (Vec<Node>, Vec<Node>) = callbacks.into_iter().partition(|node| matches!(node.kind, Kind::Group(_)));
        for group in groups {
            apply_async(group, &args, lineage(cx.task_id, cx.root_id), cx, fx)?;
        }
        if !tasks.is_empty() {
            apply_async(Node::group(tasks), &args, lineage(cx.task_id, cx.root_id), cx, fx)?;
        }
    } else if let Some(callback) = callbacks.into_iter().next() {
        apply_async(callback, &args, lineage(cx.task_id, cx.root_id), cx, fx)?;
    }
    if let Some((next, rest)) = embed.chain.as_deref().unwrap_or_default().split_last() {
        if let Some(next) = Node::from_signature(next) {
            let mut options = lineage(cx.task_id, cx.root_id);
            options.insert("chain".into(), serde_json::to_value(rest).expect("signatures serialise"));
            apply_async(next, &args, options, cx, fx)?;
        }
    }
    Ok(())
}

/// `_call_task_errbacks`: one group of errbacks, called with the failed
/// id; `root_id` is the failed request's (its own id for a chord body,
/// which fails through a request Celery makes up).
pub fn errbacks(errbacks: &[Signature], failed_id: &str, root_id: &str, cx: &Context) -> Effects {
    let errbacks = nodes(errbacks);
    applying(|fx| match errbacks.is_empty() {
        true => Ok(()),
        false => apply_async(Node::group(errbacks), &[Value::from(failed_id)], lineage(failed_id, root_id), cx, fx),
    })
}

/// A later chain step that fails with the task that failed before it.
#[derive(Debug)]
pub struct ChainFailure {
    pub task_id: String,
    /// The chord this step's result reports to: body, group id, index.
    pub chord: Option<(Signature, String, Option<u32>)>,
}

/// `_fail_chain`: the steps (and chord-step bodies) that fail with the error.
pub fn fail_chain(chain: &[Signature]) -> Vec<ChainFailure> {
    let mut pending: VecDeque<Value> = chain.iter().filter_map(|step| serde_json::to_value(step).ok()).collect();
    let mut failures = Vec::new();
    while let Some(step) = pending.pop_front() {
        let options = step.get("options").and_then(Value::as_object).cloned().unwrap_or_default();
        let task_id = options.get("task_id").and_then(Value::as_str).map(str::to_string);
        let chord = options.get("chord").filter(|chord| !chord.is_null()).and_then(|chord| serde_json::from_value(chord.clone()).ok());
        if let Some(task_id) = task_id {
            let group_id = options.get("group_id").and_then(Value::as_str).map(str::to_string);
            let group_index = options.get("group_index").and_then(Value::as_u64).map(|index| index as u32);
            failures.push(ChainFailure { task_id, chord: chord.zip(group_id).map(|(body, group_id)| (body, group_id, group_index)) });
        }
        if step.get("subtask_type").and_then(Value::as_str) == Some("chord") {
            if let Some(body) = step.pointer("/kwargs/body").filter(|body| !body.is_null()) {
                pending.push_back(body.clone());
            }
        }
    }
    failures
}

/// The chord is complete: `body.delay(results)`.
pub fn fire_chord_body(body: &Signature, results: Vec<Value>, cx: &Context) -> Effects {
    applying(|fx| match Node::from_signature(body) {
        Some(body) => apply_async(body, &[Value::Array(results)], Map::new(), cx, fx),
        None => Ok(()),
    })
}

/// How a chord body fails.
pub struct BodyFailure {
    /// Ids that fail with the `ChordError`.
    pub chord_error: Vec<String>,
    /// Ids that fail with the header member's own exception: the tasks of
    /// a group body (`_handle_group_chord_error`) and the group itself.
    pub original_error: Vec<String>,
    pub effects: Effects,
    /// The chain after the body, failed with the `ChordError`.
    pub chain: Vec<ChainFailure>,
}

/// `chord_error_from_stack`: what fails, and the errbacks to send.
/// Celery's `_result_errbacks` (`backends/base.py`): the errbacks linked to
/// the result of a group body's member. A chord's result is its body's, so
/// the chord's own errbacks and its body's count (nested chords followed to
/// the innermost body); a group adds its members'; a chain and a task give
/// only their own.
fn result_errbacks(member: &Node) -> Vec<Value> {
    let mut errbacks = Vec::new();
    let mut node = member;
    while let Kind::Chord { body: Some(body), .. } = &node.kind {
        errbacks.extend(as_list(node.options.get("link_error")));
        node = body;
    }
    errbacks.extend(as_list(node.options.get("link_error")));
    if let Kind::Group(members) = &node.kind {
        for member in members {
            errbacks.extend(result_errbacks(member));
        }
    }
    errbacks
}

pub fn chord_body_failure(body: &Signature, cx: &Context) -> BodyFailure {
    let mut failure = BodyFailure { chord_error: Vec::new(), original_error: Vec::new(), effects: Effects::default(), chain: Vec::new() };
    let Some(mut body) = Node::from_signature(body) else { return failure };
    let chain: Vec<Signature> = body.options.get("chain").and_then(|chain| serde_json::from_value(chain.clone()).ok()).unwrap_or_default();
    failure.chain = fail_chain(&chain);
    if matches!(body.kind, Kind::Group(_)) {
        let group_errbacks = as_list(body.options.get("link_error"));
        let (group_id, ids) = freeze_group(&mut body, &Frame::default());
        if let Kind::Group(members) = &body.kind {
            for (member, id) in members.iter().zip(&ids) {
                let mut calls = Vec::new();
                for errback in result_errbacks(member).into_iter().chain(group_errbacks.iter().cloned()) {
                    if !calls.contains(&errback) {
                        calls.push(errback);
                    }
                }
                let calls: Vec<Signature> = calls.into_iter().filter_map(|value| serde_json::from_value(value).ok()).collect();
                let sent = errbacks(&calls, id, id, cx);
                failure.effects.messages.extend(sent.messages);
                failure.effects.chord_sizes.extend(sent.chord_sizes);
                failure.effects.saved_headers.extend(sent.saved_headers);
                failure.effects.raised = failure.effects.raised.take().or(sent.raised);
                failure.original_error.push(id.clone());
            }
        }
        failure.original_error.push(group_id);
    } else {
        let id = body.id().map(str::to_string).unwrap_or_else(super::new_id);
        let calls: Vec<Signature> = as_list(body.options.get("link_error")).into_iter().filter_map(|value| serde_json::from_value(value).ok()).collect();
        failure.effects = errbacks(&calls, &id, &id, cx);
        failure.chord_error.push(id);
    }
    failure
}
