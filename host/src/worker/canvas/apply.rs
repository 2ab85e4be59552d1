//! `apply_async` of each signature type, and the one place where a
//! signature's final options become a message (`Celery.send_task`).
//!
//! - A task merges the partial args and options (`_merge`) and is sent.
//! - A chain runs (`chain::run`).
//! - A group freezes its members under its id and applies each with the
//!   same args and options; when its members report to a chord, the
//!   chord's size (members counted as `_chord._descend` does) is recorded.
//! - A chord hands the caller's options to its body (all but `parent_id`:
//!   `chain`, `chord` and `group_id` travel on with the body, so a chain
//!   continues after the chord and a chord in a chord's header reports to
//!   the outer chord through its body), freezes the body, then applies its
//!   header as a group whose members carry the body in `chord`. An empty
//!   header sends the body at once with `[]`. When a header member's
//!   result is a group (a chain ending in a group, a chord of a group),
//!   the header's results are saved as the Redis backend's `apply_chord`
//!   saves them (`Effects::saved_headers`), for the join that completes
//!   the chord.

use serde_json::{Map, Value};

use super::chain;
use super::freeze::{freeze, freeze_group, Frame};
use super::node::{as_list, Kind, Node};
use super::typing::ArgumentError;
use super::{new_id, Context, Effects};
use crate::protocol::group_result::Restored;
use crate::protocol::OutgoingTask;

/// `signature.apply_async(args, **options)` for any type. A task whose
/// arguments do not bind stops it there (`typing`): what was applied
/// before stays in `fx`.
pub fn apply_async(node: Node, args: &[Value], options: Map<String, Value>, cx: &Context, fx: &mut Effects) -> Result<(), ArgumentError> {
    let options: Map<String, Value> = options.into_iter().filter(|(_, value)| !value.is_null()).collect();
    match node.kind {
        Kind::Task => {
            let (args, options) = node.merge(args, &options);
            send(&node.task, args, node.kwargs.clone(), &options, cx, fx)
        }
        Kind::Chain(_) => {
            let mut merged = node.options.clone();
            merged.extend(options);
            chain::run(node, args, merged, cx, fx)
        }
        Kind::Group(_) => apply_group(node, args, options, cx, fx),
        Kind::Chord { .. } => apply_chord(node, args, options, cx, fx),
    }
}

/// `group.apply_async`.
fn apply_group(group: Node, args: &[Value], options: Map<String, Value>, cx: &Context, fx: &mut Effects) -> Result<(), ArgumentError> {
    let Kind::Group(tasks) = &group.kind else { return Ok(()) };
    if tasks.is_empty() {
        return Ok(());
    }
    // `_freeze_gid`: the group's task_id is the members' group_id.
    let (_, mut options) = Node { args: Vec::new(), immutable: true, ..group.clone() }.merge(&[], &options);
    let group_id = options.remove("task_id").and_then(|id| id.as_str().map(str::to_string)).unwrap_or_else(new_id);
    options.insert("group_id".into(), group_id.clone().into());
    // Celery refuses links on a group; its members keep their own.
    options.remove("link");
    options.remove("link_error");
    options.remove("group_index");
    let chord = options.remove("chord").filter(|chord| !chord.is_null());
    let root_id = options.get("root_id").and_then(Value::as_str).map(str::to_string);
    let mut members = Vec::new();
    prepared(tasks.clone(), &group_id, root_id.as_deref(), &mut members);
    let mut size = 0;
    let count = members.len();
    // `add_to_parent`: the group is one child of the running task, its
    // members none of their own.
    let member_results: Vec<Value> = members.iter().map(|member| result_tuple(member.id().unwrap_or_default())).collect();
    let trail = fx.children.len();
    for (position, member) in members.into_iter().enumerate() {
        let member_chord = chord.clone().or_else(|| member.options.get("chord").cloned());
        size += descend(&member);
        if member_chord.is_some() && position + 1 == count {
            fx.chord_sizes.push((group_id.clone(), size));
        }
        let mut member_options = options.clone();
        if let Some(chord) = member_chord {
            member_options.insert("chord".into(), chord);
        }
        let applied = apply_async(member, args, member_options, cx, fx);
        if applied.is_err() {
            // The members sent so far stay sent; neither they nor the
            // group are recorded on the sender (Celery adds the group
            // after its loop).
            fx.children.truncate(trail);
            return applied;
        }
    }
    fx.children.truncate(trail);
    fx.children.push(serde_json::json!([[group_id, null], member_results]));
    Ok(())
}

/// `AsyncResult.as_tuple()` of a result with no parent recorded.
fn result_tuple(id: &str) -> Value {
    serde_json::json!([[id, null], null])
}

/// `group._prepared`: nested groups flattened (each numbered from 0, as
/// in Celery), empty chains dropped, members frozen into the group.
fn prepared(tasks: Vec<Node>, group_id: &str, root_id: Option<&str>, out: &mut Vec<Node>) {
    for (index, mut task) in tasks.into_iter().enumerate() {
        match task.kind {
            Kind::Group(inner) => prepared(inner, group_id, root_id, out),
            Kind::Chain(ref steps) if steps.is_empty() => {}
            _ => {
                freeze(&mut task, &Frame { group_id: Some(group_id), root_id, group_index: Some(index as u64), ..Frame::default() });
                out.push(task);
            }
        }
    }
}

/// `_chord._descend`: how many results a signature adds to a chord.
pub fn descend(node: &Node) -> u64 {
    match &node.kind {
        Kind::Task => 1,
        Kind::Group(tasks) => tasks.iter().map(descend).sum(),
        Kind::Chain(tasks) => tasks.iter().rev().map(descend).find(|size| *size > 0).unwrap_or(0),
        Kind::Chord { body, .. } => body.as_deref().map(descend).unwrap_or(0),
    }
}

/// `_chord.apply_async` followed by `_chord.run`.
fn apply_chord(chord: Node, args: &[Value], mut options: Map<String, Value>, cx: &Context, fx: &mut Effects) -> Result<(), ArgumentError> {
    let Kind::Chord { header, header_options, body } = chord.kind else { return Ok(()) };
    let Some(body) = body else { return Ok(()) };
    let partial_args: Vec<Value> = if args.is_empty() || chord.immutable { chord.args.clone() } else { args.iter().chain(&chord.args).cloned().collect() };
    let mut header_delay = Map::new();
    for key in ["countdown", "eta"] {
        if let Some(value) = options.remove(key) {
            header_delay.insert(key.into(), value);
        }
    }
    let callbacks: Map<String, Value> = ["link", "link_error"].iter().filter_map(|key| options.remove(*key).map(|value| (key.to_string(), value))).collect();
    let mut body = body.clone_with(&[], &body_options(&options));
    let header_task_id = chord.options.get("task_id").cloned().unwrap_or_else(|| new_id().into());
    let mut header = Node { options: header_options.unwrap_or_else(|| Map::from_iter([("task_id".to_string(), header_task_id)])), ..Node::group(header) };

    let mut options: Map<String, Value> = chord.options.clone().into_iter().chain(options).chain(callbacks).collect();
    for key in ["countdown", "eta"] {
        if let Some(value) = options.remove(key) {
            header_delay.entry(key).or_insert(value);
        }
    }
    let body_id = options.remove("task_id").and_then(|id| id.as_str().map(str::to_string));

    // `_chord.run`
    let group_id = header.option_str("task_id").map(str::to_string).unwrap_or_else(new_id);
    let root_id = body.option_str("root_id").map(str::to_string);
    if !options.is_empty() {
        add_body_callbacks(&mut body, &mut options);
        body.options.extend(body_options(&options));
    }
    freeze(&mut body, &Frame { id: Some(body_id.as_deref().unwrap_or(&new_id())), group_id: Some(&group_id), root_id: root_id.as_deref(), ..Frame::default() });
    for key in ["chain", "chord", "task_id"] {
        options.remove(key);
    }
    header.options.insert("task_id".into(), group_id.clone().into());
    let _ = freeze_group(&mut header, &Frame { group_id: Some(&group_id), chord: Some(&body), root_id: root_id.as_deref(), ..Frame::default() });
    if matches!(&header.kind, Kind::Group(tasks) if !tasks.is_empty()) {
        // Redis `apply_chord`: a header holding a group result is saved.
        if let Kind::Group(members) = &header.kind {
            let results: Vec<Option<Restored>> = members.iter().map(frozen_result).collect();
            if results.iter().any(|result| matches!(result, Some(Restored::Group { .. }))) {
                fx.saved_headers.push((group_id.clone(), Restored::saved_header(&group_id, &results)));
            }
        }
        options.extend(header_delay);
        options.insert("task_id".into(), group_id.into());
        apply_group(header, &partial_args, options, cx, fx)
    } else {
        apply_async(body, &[Value::Array(Vec::new())], Map::new(), cx, fx)
    }
}

/// The result a frozen signature's `freeze()` returns, as a tuple-able
/// structure: a task's own, a chain's last step's, a group's members', a
/// chord's body's (`None` for a chord without a body, as in Celery).
fn frozen_result(node: &Node) -> Option<Restored> {
    match &node.kind {
        Kind::Task => Some(Restored::Task(node.id().unwrap_or_default().to_string())),
        Kind::Chain(steps) => steps.last().and_then(frozen_result),
        Kind::Group(members) => Some(Restored::Group {
            id: node.id().unwrap_or_default().to_string(),
            results: members.iter().filter_map(frozen_result).collect(),
        }),
        Kind::Chord { body, .. } => body.as_deref().and_then(frozen_result),
    }
}

/// `_chord._body_options`: the header task that fires the body is its parent.
fn body_options(options: &Map<String, Value>) -> Map<String, Value> {
    options.iter().filter(|(key, _)| *key != "parent_id").map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// `_chord._add_body_callbacks`: a chord's `link` and `link_error` are its body's.
fn add_body_callbacks(body: &mut Node, options: &mut Map<String, Value>) {
    for callback in as_list(options.remove("link").as_ref()) {
        if body.is_empty_group() {
            body.append_option("link", callback);
        } else {
            body.link(callback);
        }
    }
    for errback in as_list(options.remove("link_error").as_ref()) {
        match body.kind {
            Kind::Group(_) => body.link_error(&errback),
            _ => body.append_option("link_error", errback),
        }
    }
}

/// `Task.apply_async` with a signature's final options: the argument
/// check (`typing`), then the message (`Celery.send_task`).
fn send(name: &str, args: Vec<Value>, kwargs: Map<String, Value>, options: &Map<String, Value>, cx: &Context, fx: &mut Effects) -> Result<(), ArgumentError> {
    cx.typing.check(name, &args, &kwargs).map_err(ArgumentError)?;
    let raw = |value: Value| serde_json::value::to_raw_value(&value).expect("JSON value");
    let mut task = OutgoingTask::new(name, raw(Value::Array(args)), raw(Value::Object(kwargs)), cx.hostname.to_string());
    let text = |key: &str| options.get(key).and_then(Value::as_str).map(str::to_string);
    let number = |key: &str| options.get(key).and_then(Value::as_f64);
    if let Some(id) = text("task_id") {
        task.id = id;
    }
    task.root_id = Some(text("root_id").unwrap_or_else(|| cx.root_id.to_string()));
    task.parent_id = Some(text("parent_id").unwrap_or_else(|| cx.task_id.to_string()));
    task.group = text("group_id");
    task.group_index = options.get("group_index").and_then(Value::as_u64).map(|index| index as u32);
    task.reply_to = text("reply_to").or(cx.reply_to.map(str::to_string));
    task.queue = text("queue").or_else(|| cx.routes.queue_for(name).map(str::to_string)).unwrap_or_else(|| cx.default_queue.to_string());
    task.priority = options.get("priority").and_then(Value::as_u64).map(|p| p.min(255) as u8).unwrap_or(0);
    let now = chrono::Utc::now();
    let at = |seconds: f64| (now + chrono::Duration::milliseconds((seconds * 1000.0) as i64)).to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
    task.eta = number("countdown").map(at).or_else(|| text("eta"));
    task.expires = number("expires").map(at).or_else(|| text("expires"));
    task.timelimit = (number("time_limit"), number("soft_time_limit"));
    task.ignore_result = options.get("ignore_result").and_then(Value::as_bool);
    task.embed.callbacks = signatures(options.get("link"));
    task.embed.errbacks = signatures(options.get("link_error"));
    task.embed.chain = options.get("chain").and_then(|chain| serde_json::from_value(chain.clone()).ok());
    task.embed.chord = options.get("chord").and_then(|chord| serde_json::from_value(chord.clone()).ok());
    if let Some(nesting) = options.get("replaced_task_nesting").filter(|value| value.is_u64()) {
        task.extra_headers.insert("replaced_task_nesting".into(), nesting.clone());
    }
    if let Some(Value::Array(names)) = options.get("stamped_headers") {
        let stamps: Map<String, Value> = names.iter().filter_map(Value::as_str).filter_map(|name| options.get(name).map(|value| (name.to_string(), value.clone()))).collect();
        task.extra_headers.insert("stamped_headers".into(), Value::Array(names.clone()));
        task.extra_headers.insert("stamps".into(), Value::Object(stamps));
    }
    fx.children.push(result_tuple(&task.id));
    fx.messages.push(task);
    Ok(())
}

fn signatures(value: Option<&Value>) -> Option<Vec<crate::protocol::Signature>> {
    let list = as_list(value);
    if list.is_empty() {
        return None;
    }
    Some(list.into_iter().filter_map(|value| serde_json::from_value(value).ok()).collect())
}
