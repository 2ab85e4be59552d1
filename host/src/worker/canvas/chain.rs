//! `_chain.run` and `_chain.prepare_steps`: a chain is sent as its first
//! task, with the rest in that message's `embed.chain`, next step last.
//!
//! On the way the steps are normalised exactly as Celery does: nested
//! chains are spliced in, a group of one is that task, empty groups are
//! skipped (unless nothing else is left), a group followed by a step
//! becomes a chord with that step as its body, and a chord whose body is a
//! chain led by a task keeps only that task as body, the rest following as
//! chain steps. The last step gets the chain's `task_id`, `group_id`,
//! `group_index` and `chord`, so a chain inside a chord header reports to
//! the chord once, from its end.

use std::collections::VecDeque;

use serde_json::{Map, Value};

use super::apply::apply_async;
use super::freeze::{freeze, Frame};
use super::node::{as_list, Kind, Node};
use super::typing::ArgumentError;
use super::{Context, Effects};

/// Options `_chain.run` takes for itself rather than passing to its first task.
const RUN_OPTIONS: [&str; 8] = ["chord", "group_id", "group_index", "link", "link_error", "parent_id", "root_id", "task_id"];

/// `_chain.run(args, **options)`; `options` are the chain's own merged
/// with the caller's.
pub fn run(chain: Node, args: &[Value], mut options: Map<String, Value>, cx: &Context, fx: &mut Effects) -> Result<(), ArgumentError> {
    let Kind::Chain(steps) = chain.kind else { return Ok(()) };
    let args: Vec<Value> = if args.is_empty() || chain.immutable { chain.args.clone() } else { args.iter().chain(&chain.args).cloned().collect() };
    let mut own = Map::new();
    for key in RUN_OPTIONS {
        if let Some(value) = options.remove(key).filter(|value| !value.is_null()) {
            own.insert(key.into(), value);
        }
    }
    let text = |key: &str| own.get(key).and_then(Value::as_str);
    let chord = own.get("chord").and_then(Node::from_value);
    let frame = Frame {
        id: text("task_id"),
        group_id: text("group_id"),
        chord: chord.as_ref(),
        root_id: text("root_id"),
        parent_id: text("parent_id"),
        group_index: own.get("group_index").and_then(Value::as_u64),
    };
    let (mut tasks, ids) = prepare_steps(&args, steps, &frame, own.get("link_error"), true);
    if ids.is_empty() {
        return Ok(());
    }
    if let Some(link) = own.get("link") {
        tasks[0].extend_option("link", link);
    }
    let first = tasks.pop().expect("one task per id");
    let rest: Vec<Value> = tasks.iter().map(Node::to_value).collect();
    let chain = match options.get("chain") {
        Some(Value::Array(outer)) => outer.iter().cloned().chain(rest).collect(),
        _ => rest,
    };
    options.insert("chain".into(), Value::Array(chain));
    apply_async(first, &[], options, cx, fx)
}

/// Returns the prepared steps last-first (the order of `embed.chain`) and
/// their result ids in the same order. `clone` is false when freezing:
/// then chords keep their chain bodies and args go to the first step even
/// when it is immutable, as in Celery.
pub fn prepare_steps(args: &[Value], tasks: Vec<Node>, frame: &Frame, link_error: Option<&Value>, clone: bool) -> (Vec<Node>, Vec<String>) {
    let mut steps: VecDeque<Node> = tasks.into();
    // Normalise the head so the first real task receives the partial args.
    let mut stripped = None;
    while let Some(head) = steps.pop_front() {
        match head.kind {
            Kind::Chain(inner) => {
                inner.into_iter().rev().for_each(|task| steps.push_front(task));
                continue;
            }
            Kind::Group(_) => {
                let head = head.unroll_group();
                if !steps.is_empty() && head.is_empty_group() {
                    stripped = Some(head);
                    continue;
                }
                steps.push_front(head);
            }
            _ => steps.push_front(head),
        }
        break;
    }
    if let (Some(group), true) = (stripped, steps.is_empty()) {
        steps.push_back(group);
    }

    let mut prepared: Vec<Node> = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    // The previous (later) step's result id, when it is a single task's.
    let mut previous_task_id: Option<String> = None;
    let mut count = 0;
    while let Some(mut task) = steps.pop_back() {
        let (is_first, is_last) = (steps.is_empty(), count == 0);
        if matches!(task.kind, Kind::Group(_)) {
            task = task.unroll_group();
            if task.is_empty_group() && (!steps.is_empty() || !prepared.is_empty()) {
                continue;
            }
        }
        if clone {
            if let Kind::Chord { body: Some(body), .. } = &task.kind {
                if matches!(&body.kind, Kind::Chain(tasks) if tasks.first().is_some_and(|first| !matches!(first.kind, Kind::Group(_)))) {
                    steps.extend(unroll_body(task));
                    continue;
                }
            }
        }
        if is_first {
            if clone {
                task = task.clone_with(args, &Map::new());
            } else {
                task.args = args.iter().chain(&task.args).cloned().collect();
            }
        }
        if let Kind::Chain(inner) = task.kind {
            steps.extend(inner);
            continue;
        }
        if matches!(task.kind, Kind::Group(_)) && !prepared.is_empty() {
            // group(...) | step  ->  chord(group, step)
            let body = prepared.pop().expect("checked above");
            ids.pop();
            let mut options = Map::new();
            if let Some(id) = &previous_task_id {
                options.insert("task_id".into(), id.clone().into());
            }
            if let Some(root_id) = frame.root_id {
                options.insert("root_id".into(), root_id.into());
            }
            let Kind::Group(header) = task.kind else { unreachable!("matched above") };
            task = Node {
                task: "celery.chord".into(),
                args: Vec::new(),
                kwargs: Map::new(),
                options,
                immutable: false,
                subtask_type: Some("chord".into()),
                kind: Kind::Chord { header, header_options: None, body: Some(Box::new(body)) },
            };
        }
        let id = if is_last {
            freeze(&mut task, frame)
        } else {
            freeze(&mut task, &Frame { root_id: frame.root_id, ..Frame::default() })
        };
        count += 1;
        for errback in as_list(link_error) {
            task.link_error(&errback);
        }
        previous_task_id = matches!(task.kind, Kind::Task).then(|| id.clone());
        prepared.push(task);
        ids.push(id);
    }
    (prepared, ids)
}

/// `_chord._unroll_body`: `chord(header, chain(a, b, c))` becomes
/// `chord(header, a), b, c`, returned in chain order.
fn unroll_body(mut chord: Node) -> Vec<Node> {
    let Kind::Chord { body: Some(body), .. } = &mut chord.kind else { return vec![chord] };
    let body = std::mem::replace(body.as_mut(), Node::group(Vec::new()));
    let Kind::Chain(_) = &body.kind else { return vec![chord] };
    let tasks = body.unchain_tasks();
    let first_options: Map<String, Value> = body.options.iter().filter(|(key, _)| !RUN_OPTIONS.contains(&key.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut rest = tasks.into_iter();
    let first = rest.next().expect("a chain led by a task").clone_with(&[], &first_options);
    if let Kind::Chord { body, .. } = &mut chord.kind {
        *body = Some(Box::new(first));
    }
    std::iter::once(chord).chain(rest).collect()
}
