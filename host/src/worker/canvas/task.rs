//! What a running task asks of the canvas: `signature.apply_async()` from
//! inside the task (`send`), and `self.replace(sig)` (`replace`).
//!
//! Both go through the same `apply_async` as callbacks and chain steps, so a
//! task can send or become any shape Celery's client can: a chain holding a
//! group, a chord whose body is a chain, a chord in a chord's header.
//!
//! [`replace`] is Celery 5.7's `Task.replace` line by line: a group becomes
//! a chord with `celery.accumulate(index=0)` as its body (so the group's
//! list of results lands under the replaced id), the request's callbacks
//! and errbacks are linked on, the signature is frozen with the replaced
//! task's id and given its chord, group, group index and root, and the rest
//! of the request's chain is appended with `|`. The `|` kept here is
//! Celery's too, quirks included: extending a chain builds a new chain
//! from its tasks, dropping the options `set` put on it.

use serde_json::{Map, Value};

use super::apply::apply_async;
use super::freeze::{freeze, Frame};
use super::node::{Kind, Node};
use super::{Context, Effects};
use crate::protocol::Signature;

/// `signature.apply_async()` from inside the running task `cx.task_id`:
/// the id of the result it returns (a chain's last task, a group's id, a
/// chord's body) and what to publish.
pub fn send(signature: &Value, cx: &Context) -> Result<(String, Effects), String> {
    let mut node = parse(signature)?;
    if matches!(&node.kind, Kind::Chain(tasks) if tasks.is_empty()) {
        return Err("cannot send an empty chain".into());
    }
    // Freezing first fixes every id (from the caller's id source) and
    // names the result; `apply_async` keeps ids already set.
    let id = freeze(&mut node, &Frame::default());
    let mut fx = Effects::default();
    // Raised inside the task, as in Celery; nothing of this call is sent.
    apply_async(node, &[], Map::new(), cx, &mut fx).map_err(|error| format!("TypeError: {error}"))?;
    Ok((id, fx))
}

/// The request of the task being replaced, as `Task.replace` reads it.
pub struct Replaced<'a> {
    pub id: &'a str,
    pub root_id: &'a str,
    pub callbacks: &'a [Signature],
    pub errbacks: &'a [Signature],
    /// The rest of its chain, next step last (as in `embed.chain`).
    pub chain: &'a [Signature],
    pub chord: Option<&'a Signature>,
    pub group: Option<&'a str>,
    pub group_index: Option<u32>,
    pub replaced_task_nesting: u64,
}

/// `Task.replace(sig)` followed by `sig.delay()`. A replacement whose
/// first task cannot bind its arguments comes back with `raised` set.
pub fn replace(signature: &Value, request: &Replaced, cx: &Context) -> Result<Effects, String> {
    let mut sig = parse(signature)?;
    if sig.options.contains_key("chord") {
        return Err("a signature replacing a task must not be part of a chord (Celery: ImproperlyConfigured)".into());
    }
    if matches!(&sig.kind, Kind::Chain(tasks) if tasks.is_empty()) {
        return Err("cannot replace with an empty chain (Celery: ImproperlyConfigured)".into());
    }
    if matches!(sig.kind, Kind::Group(_)) {
        let accumulate = Node { kwargs: Map::from_iter([("index".to_string(), Value::from(0))]), ..Node::task("celery.accumulate") };
        sig = sig.or(accumulate);
    }
    for callback in request.callbacks {
        sig.link(to_value(callback));
    }
    for errback in request.errbacks {
        sig.link_error(&to_value(errback));
    }
    if let (Kind::Chain(tasks), Some(links)) = (&mut sig.kind, sig.options.get("link")) {
        if let Some(last) = tasks.last_mut() {
            last.extend_option("link", links);
        }
    }
    freeze(&mut sig, &Frame { id: Some(request.id), ..Frame::default() });
    let nesting = Value::from(request.replaced_task_nesting + 1);
    sig.set("chord", request.chord.map(to_value));
    sig.set("group_id", request.group.map(Value::from));
    sig.set("group_index", request.group_index.map(Value::from));
    sig.set("root_id", Some(Value::from(request.root_id)));
    sig.set("replaced_task_nesting", Some(nesting.clone()));
    if let Kind::Chain(tasks) = &mut sig.kind {
        tasks.iter_mut().for_each(|task| task.set("replaced_task_nesting", Some(nesting.clone())));
    }
    for step in request.chain.iter().rev() {
        let mut step = parse(&to_value(step))?;
        step.set("replaced_task_nesting", Some(nesting.clone()));
        sig = sig.or(step);
    }
    let mut fx = Effects::default();
    if let Err(error) = apply_async(sig, &[], Map::new(), cx, &mut fx) {
        fx.raised = Some(error);
    }
    Ok(fx)
}

fn parse(value: &Value) -> Result<Node, String> {
    if !value.get("task").is_some_and(Value::is_string) {
        return Err("not a Celery signature: expected a dict with a \"task\" name".into());
    }
    Node::from_value(value).ok_or_else(|| "not a Celery signature".to_string())
}

fn to_value(signature: &Signature) -> Value {
    serde_json::to_value(signature).unwrap_or(Value::Null)
}
