//! A saved `GroupResult` and Celery's `GroupResult.join_native` over it:
//! how the worker that completes a chord whose header holds a group result
//! turns the header into the body's argument.
//!
//! Celery's Redis `apply_chord` saves the header as a `GroupResult`
//! (`celery-taskset-meta-<group>`, `{"result": as_tuple()}`) when one of
//! its members' results is itself a group (a chain ending in a group, a
//! chord whose body is a group). The worker that completes such a chord
//! does not read the flat `.j` entries: it restores that structure and
//! joins it, so the body gets nested lists (`[14, []]`, `[[7, 8]]`). A
//! Chard worker must do the same (a Python worker may have applied the
//! chord, and a Python worker may complete one a Chard worker applied), so
//! this is the one place that reads and writes the tuple form:
//!
//! - `[[id, parent], null]` is an `AsyncResult`, `[[id, parent], [...]]` a
//!   `GroupResult` (`result_from_tuple`); anything else fails the restore
//!   as Python's tuple unpacking does (a `TypeError`).
//! - The join (`propagate=True`) reads nested groups first, in order, each
//!   member's `get()` raising its stored exception; then the plain results
//!   (Celery reads those from a `set`, in hash order; here in saved order,
//!   one of the orders Celery may use). The first failure read ends the
//!   join: the caller fails the body with `ChordError("Join error: ...")`,
//!   or with the member's own `ChordError` as Celery's `except ChordError`
//!   does.
//! - A member whose result is not stored yet makes the join wait (Celery
//!   polls for `result_chord_join_timeout`, 3 s, then raises
//!   `TimeoutError`): [`Joined::Waiting`] lists them.
//!
//! No I/O: the caller reads the saved document and the members' result
//! documents, and passes them in.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::result::ExceptionInfo;

/// A restored result: one task's, or a group's with its members'.
#[derive(Debug, Clone, PartialEq)]
pub enum Restored {
    Task(String),
    Group { id: String, results: Vec<Restored> },
}

/// `result_from_tuple`, or the `TypeError` Python's unpacking raises.
fn from_tuple(tuple: &Value) -> Result<Restored, ExceptionInfo> {
    let unpack = |what: &str| ExceptionInfo::new("builtins", "TypeError", format!("cannot unpack non-iterable {what} object"));
    let Some([head, nodes]) = tuple.as_array().map(Vec::as_slice).and_then(|items| <&[Value; 2]>::try_from(items).ok()) else {
        return Err(unpack(python_type(tuple)));
    };
    let id = match head {
        Value::Array(pair) => pair.first().cloned().unwrap_or(Value::Null),
        other => other.clone(),
    };
    let id = id.as_str().unwrap_or_default().to_string();
    match nodes {
        Value::Null => Ok(Restored::Task(id)),
        Value::Array(nodes) => Ok(Restored::Group { id, results: nodes.iter().map(from_tuple).collect::<Result<_, _>>()? }),
        other => Err(ExceptionInfo::new("builtins", "TypeError", format!("'{}' object is not iterable", python_type(other)))),
    }
}

fn python_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(number) if number.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

impl Restored {
    /// `AsyncResult.as_tuple()` / `GroupResult.as_tuple()`, parents left
    /// out (a join never reads them; Python restores `None` parents).
    pub fn to_tuple(&self) -> Value {
        match self {
            Restored::Task(id) => json!([[id, null], null]),
            Restored::Group { id, results } => json!([[id, null], results.iter().map(Restored::to_tuple).collect::<Vec<_>>()]),
        }
    }

    /// The document `apply_chord` saves for a header with these results
    /// (`None`: a chord without a body, whose `freeze()` is `None`).
    pub fn saved_header(group_id: &str, results: &[Option<Restored>]) -> String {
        let results: Vec<Value> = results.iter().map(|result| result.as_ref().map(Restored::to_tuple).unwrap_or(Value::Null)).collect();
        json!({"result": [[group_id, null], results]}).to_string()
    }

    fn task_ids<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Restored::Task(id) => out.push(id),
            Restored::Group { results, .. } => results.iter().for_each(|result| result.task_ids(out)),
        }
    }
}

/// A saved header, restored: its members' results.
#[derive(Debug)]
pub struct SavedHeader {
    members: Result<Vec<Restored>, ExceptionInfo>,
}

impl SavedHeader {
    /// Parses the document saved at `celery-taskset-meta-<group>`.
    pub fn parse(document: &str) -> Self {
        let value: Value = serde_json::from_str(document).unwrap_or(Value::Null);
        let members = match from_tuple(&value["result"]) {
            Ok(Restored::Group { results, .. }) => Ok(results),
            Ok(Restored::Task(_)) => Err(ExceptionInfo::new("builtins", "AttributeError", "'AsyncResult' object has no attribute 'on_ready'")),
            Err(error) => Err(error),
        };
        Self { members }
    }

    /// Every task id whose result document the join reads.
    pub fn task_ids(&self) -> Vec<&str> {
        let mut ids = Vec::new();
        for member in self.members.iter().flatten() {
            member.task_ids(&mut ids);
        }
        ids
    }

    /// `join_native(propagate=True)` over the members' result documents
    /// (`metas`: task id -> document, as stored).
    pub fn join(&self, metas: &HashMap<String, Value>) -> Joined {
        let members = match &self.members {
            Ok(members) => members,
            Err(error) => return Joined::Raised(error.clone()),
        };
        let mut missing = Vec::new();
        let mut values = vec![Value::Null; members.len()];
        // Nested groups first, each member's get() in order.
        for (index, member) in members.iter().enumerate() {
            if let Restored::Group { results, .. } = member {
                match join_group(results, metas, &mut missing) {
                    Ok(value) => values[index] = value,
                    Err(raised) => return Joined::Raised(raised),
                }
            }
        }
        if !missing.is_empty() {
            return Joined::Waiting(missing);
        }
        for (index, member) in members.iter().enumerate() {
            if let Restored::Task(id) = member {
                match read(id, metas) {
                    Some(Ok(value)) => values[index] = value,
                    Some(Err(raised)) => return Joined::Raised(raised),
                    None => missing.push(id.clone()),
                }
            }
        }
        if missing.is_empty() {
            Joined::Values(values)
        } else {
            Joined::Waiting(missing)
        }
    }
}

/// `GroupResult.get()` of a nested group: every member's `get()`, in order.
fn join_group(results: &[Restored], metas: &HashMap<String, Value>, missing: &mut Vec<String>) -> Result<Value, ExceptionInfo> {
    let mut values = Vec::with_capacity(results.len());
    for result in results {
        match result {
            Restored::Group { results, .. } => values.push(join_group(results, metas, missing)?),
            Restored::Task(id) => match read(id, metas) {
                Some(Ok(value)) => values.push(value),
                Some(Err(raised)) => return Err(raised),
                None => {
                    missing.push(id.clone());
                    values.push(Value::Null);
                }
            },
        }
    }
    Ok(Value::Array(values))
}

/// One member's stored outcome: its value, the exception a `get()`
/// raises (FAILURE, REVOKED), or `None` while it is not ready.
fn read(id: &str, metas: &HashMap<String, Value>) -> Option<Result<Value, ExceptionInfo>> {
    let meta = metas.get(id)?;
    match meta["status"].as_str() {
        Some("SUCCESS") => Some(Ok(meta["result"].clone())),
        Some("FAILURE" | "REVOKED") => Some(Err(exception_of(&meta["result"]))),
        _ => None,
    }
}

/// The exception a stored failure rebuilds to.
pub fn exception_of(result: &Value) -> ExceptionInfo {
    ExceptionInfo {
        exc_type: result["exc_type"].as_str().unwrap_or("Exception").to_string(),
        exc_message: match &result["exc_message"] {
            Value::Array(parts) => parts.clone(),
            other => vec![other.clone()],
        },
        exc_module: result["exc_module"].as_str().unwrap_or("builtins").to_string(),
    }
}

/// What a join gives.
#[derive(Debug, PartialEq)]
pub enum Joined {
    /// The body's argument: one value per header member, groups as lists.
    Values(Vec<Value>),
    /// The first exception the join read (or the restore's own error).
    Raised(ExceptionInfo),
    /// These members' results are not stored yet.
    Waiting(Vec<String>),
}

/// Celery's `TimeoutError` when the members are still not ready after
/// `result_chord_join_timeout` (3 s by default).
pub fn join_timeout(seconds: f64) -> ExceptionInfo {
    ExceptionInfo::new("celery.exceptions", "TimeoutError", format!("Operation timed out ({seconds:?})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metas(entries: &[(&str, Value)]) -> HashMap<String, Value> {
        entries.iter().map(|(id, meta)| (id.to_string(), meta.clone())).collect()
    }

    fn ok(value: Value) -> Value {
        json!({"status": "SUCCESS", "result": value})
    }

    fn failed(exc_type: &str, text: &str) -> Value {
        json!({"status": "FAILURE", "result": {"exc_type": exc_type, "exc_message": [text], "exc_module": "builtins"}})
    }

    /// The document a Python client saved for seed 11 canvas 58's header:
    /// a task and a chord whose body is an empty group.
    const SAVED: &str = r#"{"result": [["g", null], [[["a", null], null], [["b", [["p", null], null]], [[["c", null], null], [["d", null], null]]], [["e", null], []]]]}"#;

    #[test]
    fn a_saved_header_joins_nested_in_member_order() {
        let header = SavedHeader::parse(SAVED);
        assert_eq!(header.task_ids(), ["a", "c", "d"]);
        let joined = header.join(&metas(&[("a", ok(json!(14))), ("c", ok(json!(7))), ("d", ok(json!(8)))]));
        assert_eq!(joined, Joined::Values(vec![json!(14), json!([7, 8]), json!([])]));
    }

    #[test]
    fn a_failure_in_a_nested_group_is_read_before_the_plain_results() {
        let header = SavedHeader::parse(SAVED);
        let joined = header.join(&metas(&[("a", failed("KeyError", "x")), ("c", ok(json!(7))), ("d", failed("ValueError", "boom"))]));
        assert_eq!(joined, Joined::Raised(ExceptionInfo::new("builtins", "ValueError", "boom")));
    }

    #[test]
    fn a_member_not_stored_yet_makes_the_join_wait() {
        let header = SavedHeader::parse(SAVED);
        let started = json!({"status": "STARTED", "result": null});
        assert_eq!(header.join(&metas(&[("a", started), ("c", ok(json!(7))), ("d", ok(json!(8)))])), Joined::Waiting(vec!["a".into()]));
    }

    #[test]
    fn a_member_saved_as_none_fails_the_restore_as_python_does() {
        let header = SavedHeader::parse(r#"{"result": [["g", null], [[["a", null], null], null]]}"#);
        let expected = ExceptionInfo::new("builtins", "TypeError", "cannot unpack non-iterable NoneType object");
        assert_eq!(header.join(&HashMap::new()), Joined::Raised(expected));
    }

    #[test]
    fn the_saved_document_round_trips() {
        let results = vec![Some(Restored::Task("a".into())), Some(Restored::Group { id: "x".into(), results: vec![Restored::Task("b".into())] })];
        let saved = Restored::saved_header("g", &results);
        assert_eq!(saved, r#"{"result":[["g",null],[[["a",null],null],[["x",null],[[["b",null],null]]]]]}"#);
        assert_eq!(SavedHeader::parse(&saved).task_ids(), ["a", "b"]);
    }
}
