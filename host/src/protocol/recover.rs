//! What to say about a message that does not parse, and whose it is.
//!
//! The strict parse (serde straight into typed headers) is the fast path
//! and stays so: valid messages never come here. When it fails, this module
//! reads the envelope again as a plain JSON tree, for two things:
//!
//! - the `id` and `task` headers, when they are strings of sane length, so
//!   a FAILURE can still be stored where the client's `.get()` waits
//!   (a priority of -1 or `retries: "abc"` must not leave it waiting
//!   forever);
//! - the field that was wrong, found by deserialising each header and
//!   property on its own, so the FAILURE says `properties field
//!   `priority`` rather than serde's position in a line of JSON.
//!
//! Both passes cost a second parse of the message, paid only by bad ones.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::bounds::MAX_NAME;
use super::message::{Headers, MessageError, Properties};

/// The error for an envelope the strict parse refused with `error`.
pub(super) fn diagnose(envelope: &[u8], error: &serde_json::Error) -> MessageError {
    let Ok(Value::Object(envelope)) = serde_json::from_slice::<Value>(envelope) else {
        return MessageError::new(format!("envelope is not a kombu JSON message: {error}"), None, None);
    };
    let headers = envelope.get("headers").and_then(Value::as_object);
    let id = headers.and_then(|headers| name(headers, "id"));
    let task = headers.and_then(|headers| name(headers, "task"));
    let reason = bad_field(&envelope).unwrap_or_else(|| format!("envelope is not a kombu JSON message: {error}"));
    MessageError::new(reason, id, task)
}

/// The `id` and `task` headers read from a fragment of an envelope (the
/// first and last bytes of a message too large to take whole). A kombu
/// envelope keeps its headers after the base64 body, which holds no quote,
/// so the first `"id": "..."` in the fragment is the header's.
pub fn ids_in_excerpt(excerpt: &[u8]) -> (Option<String>, Option<String>) {
    let text = String::from_utf8_lossy(excerpt);
    (string_field(&text, "id"), string_field(&text, "task"))
}

fn string_field(text: &str, key: &str) -> Option<String> {
    let needle = format!("\"{key}\"");
    let mut rest = text;
    while let Some(at) = rest.find(&needle) {
        rest = &rest[at + needle.len()..];
        let Some(value) = rest.trim_start().strip_prefix(':').map(str::trim_start) else { continue };
        let Some(value) = value.strip_prefix('"') else { continue };
        let end = value.find(['"', '\\'])?;
        return (end <= MAX_NAME && value[end..].starts_with('"')).then(|| value[..end].to_string());
    }
    None
}

/// A header that is a string no longer than [`MAX_NAME`].
pub(super) fn name(headers: &Map<String, Value>, key: &str) -> Option<String> {
    headers.get(key)?.as_str().filter(|text| text.len() <= MAX_NAME).map(str::to_string)
}

/// The first field whose value the typed envelope cannot take, described.
fn bad_field(envelope: &Map<String, Value>) -> Option<String> {
    match envelope.get("body") {
        Some(Value::String(_)) => {}
        Some(other) => return Some(format!("envelope field `body` must be a base64 string, not {}", kind(other))),
        None => return Some("envelope has no `body`".into()),
    }
    if let Some(content_type) = envelope.get("content-type").filter(|value| !value.is_null() && !value.is_string()) {
        return Some(format!("envelope field `content-type` must be a string, not {}", kind(content_type)));
    }
    let sections: [(&str, fn(&str, &Value) -> Result<(), serde_json::Error>); 2] =
        [("headers", check_field::<Headers>), ("properties", check_field::<Properties>)];
    for (section, check) in sections {
        match envelope.get(section) {
            None => {}
            Some(Value::Object(fields)) => {
                for (key, value) in fields {
                    if let Err(error) = check(key, value) {
                        return Some(format!("{section} field `{key}`: {error}"));
                    }
                }
            }
            Some(other) => return Some(format!("envelope field `{section}` must be an object, not {}", kind(other))),
        }
    }
    None
}

/// Whether `T` accepts an object holding only `key: value`.
fn check_field<T: DeserializeOwned>(key: &str, value: &Value) -> Result<(), serde_json::Error> {
    let single = Map::from_iter([(key.to_string(), value.clone())]);
    serde_json::from_value::<T>(Value::Object(single)).map(drop)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The first `queue` or `routing_key` inside `map` (at any depth: nested
/// canvas keeps signatures inside options and kwargs) that names a reserved
/// key.
pub(super) fn reserved_queue_in(map: &Map<String, Value>) -> Option<&str> {
    for (key, value) in map {
        match value {
            Value::String(name) if (key == "queue" || key == "routing_key") && super::is_reserved_queue(name) => {
                return Some(name);
            }
            Value::Object(inner) => {
                if let Some(name) = reserved_queue_in(inner) {
                    return Some(name);
                }
            }
            Value::Array(items) => {
                for item in items {
                    if let Some(name) = item.as_object().and_then(reserved_queue_in) {
                        return Some(name);
                    }
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use crate::protocol::TaskMessage;

    const BODY: &str = "W1syLCAzXSwge30sIHt9XQ=="; // [[2, 3], {}, {}]

    fn envelope(headers: &str, properties: &str) -> String {
        format!(r#"{{"body": "{BODY}", "content-type": "application/json", "headers": {{"id": "t1", "task": "math.add"{headers}}}, "properties": {{"body_encoding": "base64"{properties}}}}}"#)
    }

    #[test]
    fn a_wrong_typed_field_keeps_the_id_and_is_named() {
        let cases = [
            (envelope("", r#", "priority": -1"#), "properties field `priority`"),
            (envelope(r#", "retries": "abc""#, ""), "headers field `retries`"),
            (envelope(r#", "eta": 12"#, ""), "headers field `eta`"),
            (envelope(r#", "root_id": 5"#, ""), "headers field `root_id`"),
            (envelope(r#", "group_index": "x""#, ""), "headers field `group_index`"),
            (envelope(r#", "timelimit": "soon""#, ""), "headers field `timelimit`"),
            (envelope("", r#", "delivery_info": {"routing_key": 7}"#), "properties field `delivery_info`"),
        ];
        for (text, field) in cases {
            let error = TaskMessage::parse(text.as_bytes()).unwrap_err();
            assert_eq!(error.task_id.as_deref(), Some("t1"), "{text}");
            assert_eq!(error.task_name.as_deref(), Some("math.add"));
            assert!(error.reason.starts_with(field), "{} for {text}", error.reason);
        }
    }

    #[test]
    fn a_huge_bad_value_is_not_echoed_whole() {
        let huge = "9".repeat(1 << 20);
        let text = envelope(&format!(r#", "retries": "{huge}""#), "");
        let error = TaskMessage::parse(text.as_bytes()).unwrap_err();
        assert!(error.reason.len() < 5000, "{}", error.reason.len());
    }

    #[test]
    fn ids_are_read_from_the_ends_of_an_oversized_envelope() {
        let text = envelope("", "");
        assert_eq!(super::ids_in_excerpt(text.as_bytes()), (Some("t1".into()), Some("math.add".into())));
        assert_eq!(super::ids_in_excerpt(br#"{"correlation_id": "x", "root_id": "y"}"#), (None, None));
    }

    #[test]
    fn reserved_queues_are_refused_with_the_id() {
        let text = envelope("", r#", "delivery_info": {"exchange": "", "routing_key": "unacked"}"#);
        let error = TaskMessage::parse(text.as_bytes()).unwrap_err();
        assert_eq!(error.task_id.as_deref(), Some("t1"));
        assert!(error.reason.contains("unacked"), "{}", error.reason);
    }
}
