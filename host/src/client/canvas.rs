//! Canvas from the client side: chains, groups and chords, built as Celery's
//! own client builds them (`shared/celery-protocol.md` §6), so Chard and
//! Python Celery workers both run them.
//!
//! - A **chain** is its first step's message; the rest ride in
//!   `embed.chain`, reversed (next step last), each with its `task_id` fixed
//!   up front so the caller can wait on the last one.
//! - A **group** is one message per member, with `group` and `group_index`.
//! - A **chord** is a group whose members carry the body in `embed.chord`;
//!   the client first records the header size (`…​.s`) where the workers'
//!   atomic join expects it.

use anyhow::Context as _;
use serde_json::{Map, Value};

use super::Client;
use crate::protocol::{OutgoingTask, Signature};

/// Parses a step as the command line writes it: `math.add`, `math.add [2, 3]`,
/// `math.add {"x": 2}` or `math.add [2] {"y": 3}`.
pub fn parse_step(text: &str) -> anyhow::Result<Signature> {
    let text = text.trim();
    let (task, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    anyhow::ensure!(!task.is_empty(), "empty step: expected e.g. 'math.add [2, 3]'");
    let mut args = Vec::new();
    let mut kwargs = Map::new();
    let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
    for value in &mut stream {
        match value.with_context(|| format!("step {text:?}: arguments are not JSON"))? {
            Value::Array(values) if args.is_empty() && kwargs.is_empty() => args = values,
            Value::Object(map) if kwargs.is_empty() => kwargs = map,
            other => anyhow::bail!("step {text:?}: expected a JSON array of arguments, then an object of keyword arguments, got {other}"),
        }
    }
    Ok(Signature::new(task, args, kwargs))
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Client {
    /// The message for `signature` (its options: `task_id`, `queue`, `priority`).
    pub fn from_signature(&self, signature: &Signature) -> anyhow::Result<OutgoingTask> {
        let mut task = self.task(&signature.task, Value::Array(signature.args.clone()), Value::Object(signature.kwargs.clone()))?;
        let option = |key: &str| signature.options.get(key).filter(|value| !value.is_null());
        if let Some(id) = option("task_id").and_then(Value::as_str) {
            task.id = id.to_string();
            task.root_id = Some(task.id.clone());
        }
        if let Some(queue) = option("queue").and_then(Value::as_str) {
            task.queue = queue.to_string();
        }
        if let Some(priority) = option("priority").and_then(Value::as_u64) {
            task.priority = priority.min(9) as u8;
        }
        Ok(task)
    }

    /// `chain(first, second, ...)`: the first step's message, and every
    /// step's id in order (wait on the last for the chain's result).
    pub fn chain(&self, steps: Vec<Signature>) -> anyhow::Result<(OutgoingTask, Vec<String>)> {
        let mut steps = steps.into_iter();
        let first = steps.next().context("a chain needs at least one step")?;
        let mut task = self.from_signature(&first)?;
        let mut ids = vec![task.id.clone()];
        let mut rest: Vec<Signature> = steps
            .map(|mut step| {
                let id = new_id();
                ids.push(id.clone());
                step.options.insert("task_id".into(), Value::String(id));
                step
            })
            .collect();
        if !rest.is_empty() {
            rest.reverse();
            task.embed.chain = Some(rest);
        }
        Ok((task, ids))
    }

    /// `group(members)`: one message per member; returns the group id too.
    pub fn group(&self, members: Vec<Signature>) -> anyhow::Result<(String, Vec<OutgoingTask>)> {
        anyhow::ensure!(!members.is_empty(), "a group needs at least one member");
        let group_id = new_id();
        let tasks = members
            .iter()
            .enumerate()
            .map(|(index, member)| {
                let mut task = self.from_signature(member)?;
                task.group = Some(group_id.clone());
                task.group_index = Some(index as u32);
                Ok(task)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok((group_id, tasks))
    }

    /// `chord(header)(body)`: sends the header; the workers send the body
    /// with the list of header results once all are done. Returns the
    /// body's id.
    pub async fn send_chord(&self, header: Vec<Signature>, mut body: Signature) -> anyhow::Result<String> {
        let (group_id, mut members) = self.group(header)?;
        let body_id = body.options.get("task_id").and_then(Value::as_str).map(str::to_string).unwrap_or_else(new_id);
        body.options.insert("task_id".into(), Value::String(body_id.clone()));
        body.options.insert("group_id".into(), Value::String(group_id.clone()));
        for member in &mut members {
            member.embed.chord = Some(body.clone());
        }
        let taskset = format!("celery-taskset-meta-{group_id}");
        let mut pipe = redis::pipe();
        pipe.del(format!("{taskset}.c")).ignore();
        pipe.cmd("SET").arg(format!("{taskset}.s")).arg(members.len()).arg("EX").arg(86400).ignore();
        pipe.query_async::<()>(&mut self.backend.clone()).await.context("recording the chord size")?;
        self.send_all(members).await?;
        Ok(body_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn steps_parse_like_the_command_line_writes_them() {
        let step = parse_step("math.add [2, 3]").unwrap();
        assert_eq!((step.task.as_str(), step.args.clone()), ("math.add", vec![json!(2), json!(3)]));
        let step = parse_step("  math.add   [2] {\"y\": 3} ").unwrap();
        assert_eq!(step.args, vec![json!(2)]);
        assert_eq!(Value::Object(step.kwargs), json!({"y": 3}));
        assert!(parse_step("math.xsum").unwrap().args.is_empty());
        assert_eq!(Value::Object(parse_step("math.add {\"x\": 1}").unwrap().kwargs), json!({"x": 1}));
        assert!(parse_step("math.add [2").unwrap_err().to_string().contains("not JSON"));
        assert!(parse_step("math.add 5").unwrap_err().to_string().contains("expected a JSON array"));
        assert!(parse_step("").is_err());
    }
}
