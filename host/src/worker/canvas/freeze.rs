//! `freeze()` of each signature type: fix the ids before anything is sent,
//! so a chain's later steps, a chord's body and its header members can
//! name each other.
//!
//! Celery's rules, kept as they are because a Python worker applies them to
//! the same signatures: a task id, once set, never changes; `group_id` is
//! only filled in when missing; `chord` and `group_index` are overwritten.
//! A group's members are frozen with the group id passed in (not the
//! group's own), and nested groups are flattened with `extendleft`, which
//! reverses them.

use std::collections::VecDeque;

use serde_json::{Map, Value};

use super::chain::prepare_steps;
use super::new_id;
use super::node::{Kind, Node};

/// Where a frozen signature sits in its workflow.
#[derive(Default, Clone)]
pub struct Frame<'a> {
    pub id: Option<&'a str>,
    pub group_id: Option<&'a str>,
    /// The chord body this signature's result reports to.
    pub chord: Option<&'a Node>,
    pub root_id: Option<&'a str>,
    pub parent_id: Option<&'a str>,
    pub group_index: Option<u64>,
}

/// Freezes `node` in place; returns the id its result will have.
pub fn freeze(node: &mut Node, frame: &Frame) -> String {
    match &mut node.kind {
        Kind::Task => freeze_task(node, frame),
        Kind::Chain(tasks) => {
            let tasks = std::mem::take(tasks);
            let args = node.args.clone();
            let (mut frozen, ids) = prepare_steps(&args, tasks, frame, None, false);
            frozen.reverse();
            node.kind = Kind::Chain(frozen);
            let id = ids.first().cloned().or(frame.id.map(str::to_string)).unwrap_or_else(new_id);
            node.options.insert("task_id".into(), id.clone().into());
            id
        }
        Kind::Group(_) => freeze_group(node, frame).0,
        Kind::Chord { header, header_options, body } => {
            let mut group = Node { options: header_options.take().unwrap_or_default(), ..Node::group(std::mem::take(header)) };
            let header_frame = Frame { parent_id: frame.parent_id, root_id: frame.root_id, chord: body.as_deref(), ..Frame::default() };
            let (group_id, _) = freeze_group(&mut group, &header_frame);
            let Kind::Group(members) = group.kind else { unreachable!("built as a group") };
            *header = members;
            *header_options = Some(group.options);
            let body_id = body.as_mut().map(|body| {
                let body_frame = Frame { id: frame.id, root_id: frame.root_id, chord: frame.chord, group_id: frame.group_id, group_index: frame.group_index, parent_id: None };
                freeze(body, &body_frame)
            });
            node.options.insert("task_id".into(), group_id.clone().into());
            body_id.unwrap_or(group_id)
        }
    }
}

fn freeze_task(node: &mut Node, frame: &Frame) -> String {
    let options = &mut node.options;
    let id = match options.get("task_id").and_then(Value::as_str) {
        Some(id) => id.to_string(),
        None => {
            let id = frame.id.map(str::to_string).unwrap_or_else(new_id);
            options.insert("task_id".into(), id.clone().into());
            id
        }
    };
    set(options, "root_id", frame.root_id);
    set(options, "parent_id", frame.parent_id);
    if let Some(group_id) = frame.group_id {
        if !options.contains_key("group_id") {
            options.insert("group_id".into(), group_id.into());
        }
    }
    if let Some(chord) = frame.chord {
        options.insert("chord".into(), chord.to_value());
    }
    if let Some(index) = frame.group_index {
        options.insert("group_index".into(), index.into());
    }
    id
}

/// `group._freeze_group_tasks`: returns the group's id and its members'
/// result ids.
pub fn freeze_group(node: &mut Node, frame: &Frame) -> (String, Vec<String>) {
    let options = &mut node.options;
    let group_id = match options.get("task_id").and_then(Value::as_str) {
        Some(id) => id.to_string(),
        None => {
            let id = new_id();
            options.insert("task_id".into(), id.clone().into());
            id
        }
    };
    set(options, "group_id", frame.group_id);
    if let Some(chord) = frame.chord {
        options.insert("chord".into(), chord.to_value());
    }
    if let Some(index) = frame.group_index {
        options.insert("group_index".into(), index.into());
    }
    let root_id = set_default(options, "root_id", frame.root_id);
    let parent_id = set_default(options, "parent_id", frame.parent_id);
    let Kind::Group(tasks) = &mut node.kind else { return (group_id, Vec::new()) };
    let mut stack: VecDeque<Node> = std::mem::take(tasks).into();
    let mut index = 0;
    let mut results = Vec::new();
    while let Some(mut task) = stack.pop_front() {
        match task.kind {
            Kind::Group(inner) => inner.into_iter().for_each(|member| stack.push_front(member)),
            Kind::Chain(ref steps) if steps.is_empty() => {}
            _ => {
                let member = Frame { id: None, group_id: frame.group_id, chord: frame.chord, root_id: root_id.as_deref(), parent_id: parent_id.as_deref(), group_index: Some(index) };
                results.push(freeze(&mut task, &member));
                tasks.push(task);
                index += 1;
            }
        }
    }
    (group_id, results)
}

fn set(options: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(value) = value {
        options.insert(key.into(), value.into());
    }
}

/// `dict.setdefault`, ignoring a missing default.
fn set_default(options: &mut Map<String, Value>, key: &str, value: Option<&str>) -> Option<String> {
    match options.get(key).and_then(Value::as_str) {
        Some(existing) => Some(existing.to_string()),
        None => {
            set(options, key, value);
            value.map(str::to_string)
        }
    }
}
