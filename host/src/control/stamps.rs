//! `revoke_by_stamped_headers`: revoking every job that carries a stamp.
//!
//! Celery 5.7 (`worker/control.py`, `worker/request.py`) lets a client stamp
//! a canvas (`stamped_headers` names the headers, `stamps` holds their
//! values) and later revoke everything stamped with a value:
//! `app.control.revoke_by_stamped_headers({"mon": "batch-7"})`. A worker
//! remembers the revoked values per header; a job whose stamp matches one is
//! discarded as REVOKED when it comes up to run (so a held job, waiting for
//! its ETA or a rate limit, is skipped too), and with `terminate` a running
//! one is stopped as `revoke(terminate=True)` stops it.
//!
//! Decisions worth knowing:
//! - **The match is Celery's.** A stamp that is a list matches when any of
//!   its values was revoked; a single value when it equals a revoked value.
//!   Revoking adds to the values already revoked for the header.
//! - **Kept in Redis as well** (`chard:revoked:stamps`, a zset of
//!   `[header, value]` scored by expiry, like revoked ids): a worker started
//!   later, and `host revoke --stamped`, see the same revokes. Celery keeps
//!   them in each worker's memory only.
//! - **Replies use Celery's words** (Python reprs of the headers), so a
//!   client reading them sees what a Python worker would say.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Map, Value};

use crate::protocol::repr::value_repr;

/// Where revoked stamps are kept, `[header, value]` JSON scored by expiry.
pub const REVOKED_STAMPS_KEY: &str = "chard:revoked:stamps";

/// Revoked stamp values, per header.
#[derive(Default)]
pub struct RevokedStamps {
    values: Mutex<HashMap<String, Vec<Value>>>,
}

impl RevokedStamps {
    /// Adds revoked values (`headers`: header -> value or list of values).
    pub fn insert(&self, headers: &Map<String, Value>) {
        let mut values = self.values.lock().unwrap();
        for (header, stamps) in headers {
            values.entry(header.clone()).or_default().extend(as_list(stamps));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.values.lock().unwrap().is_empty()
    }

    /// The first of `stamps` (a job's, see [`job_stamps`]) that was revoked,
    /// as `(header, value)`.
    pub fn matching(&self, stamps: &[(String, Value)]) -> Option<(String, Value)> {
        let values = self.values.lock().unwrap();
        if values.is_empty() {
            return None;
        }
        matching(&values, stamps)
    }
}

fn as_list(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    }
}

/// Celery's `Request.revoked`: the first stamp of the job whose value (or,
/// for a list, one of whose values) is among the revoked ones.
fn matching(revoked: &HashMap<String, Vec<Value>>, stamps: &[(String, Value)]) -> Option<(String, Value)> {
    for (header, stamp) in stamps {
        let Some(values) = revoked.get(header) else { continue };
        match stamp {
            Value::Null => continue,
            Value::Array(items) => {
                if let Some(item) = items.iter().find(|item| values.contains(item)) {
                    return Some((header.clone(), item.clone()));
                }
            }
            single if values.contains(single) => return Some((header.clone(), single.clone())),
            _ => {}
        }
    }
    None
}

/// A message's stamps: each header `stamped_headers` names, with its value
/// in `stamps` (Celery's `Request.stamps`). Empty for an unstamped message.
pub fn job_stamps(headers: &Map<String, Value>) -> Vec<(String, Value)> {
    let Some(Value::Array(names)) = headers.get("stamped_headers") else { return Vec::new() };
    let stamps = headers.get("stamps").and_then(Value::as_object);
    names
        .iter()
        .filter_map(Value::as_str)
        .map(|name| (name.to_string(), stamps.and_then(|stamps| stamps.get(name)).cloned().unwrap_or(Value::Null)))
        .collect()
}

/// The `headers` argument as a map: Celery takes a dict, or a list of
/// `"header=value"` strings (split at the first `=`).
pub fn parse_headers(arguments: &Value) -> Map<String, Value> {
    match arguments.get("headers") {
        Some(Value::Object(headers)) => headers.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|item| item.split_once('='))
            .map(|(header, value)| (header.to_string(), Value::String(value.to_string())))
            .collect(),
        _ => Map::new(),
    }
}

/// The reply a Python worker gives: `headers {...} flagged as revoked, but
/// not terminated` without `terminate`; with it, the stamps of the jobs it
/// stopped (`terminated`, header -> values), or that none was.
pub fn reply(headers: &Map<String, Value>, terminate: bool, terminated: &[(String, Value)]) -> String {
    let headers_repr = value_repr(&Value::Object(headers.clone()));
    if !terminate {
        return format!("headers {headers_repr} flagged as revoked, but not terminated");
    }
    if terminated.is_empty() {
        return format!("headers {headers_repr} were not terminated");
    }
    // Celery prints its defaultdict(set) of what it stopped.
    let mut by_header: Vec<(String, Vec<String>)> = Vec::new();
    for (header, value) in terminated {
        let repr = value_repr(value);
        match by_header.iter_mut().find(|(name, _)| name == header) {
            Some((_, values)) if values.contains(&repr) => {}
            Some((_, values)) => values.push(repr),
            None => by_header.push((header.clone(), vec![repr])),
        }
    }
    let entries: Vec<String> = by_header
        .iter()
        .map(|(header, values)| format!("{}: {{{}}}", value_repr(&Value::String(header.clone())), values.join(", ")))
        .collect();
    format!("headers defaultdict(<class 'set'>, {{{}}}) revoked", entries.join(", "))
}

/// Stamps as stored in Redis: one `[header, value]` member per value.
pub fn members(headers: &Map<String, Value>) -> Vec<String> {
    headers
        .iter()
        .flat_map(|(header, stamps)| as_list(stamps).into_iter().map(move |value| Value::Array(vec![header.clone().into(), value]).to_string()))
        .collect()
}

/// The stored members back as a map (unreadable ones skipped).
pub fn from_members(members: &[String]) -> Map<String, Value> {
    let mut headers = Map::new();
    for member in members {
        if let Ok(Value::Array(pair)) = serde_json::from_str::<Value>(member) {
            if let [Value::String(header), value] = &pair[..] {
                let entry = headers.entry(header.clone()).or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(values) = entry {
                    values.push(value.clone());
                }
            }
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn revoked(headers: Value) -> RevokedStamps {
        let stamps = RevokedStamps::default();
        stamps.insert(headers.as_object().unwrap());
        stamps
    }

    #[test]
    fn a_stamp_matches_as_in_celery() {
        let stamps = revoked(json!({"mon": ["a", "b"], "tenant": "acme"}));
        let job = |headers: Value| job_stamps(headers.as_object().unwrap());
        let one = job(json!({"stamped_headers": ["mon"], "stamps": {"mon": "b"}}));
        assert_eq!(stamps.matching(&one), Some(("mon".into(), json!("b"))));
        let listed = job(json!({"stamped_headers": ["other", "mon"], "stamps": {"other": "a", "mon": ["z", "a"]}}));
        assert_eq!(stamps.matching(&listed), Some(("mon".into(), json!("a"))));
        assert_eq!(stamps.matching(&job(json!({"stamped_headers": ["mon"], "stamps": {"mon": "c"}}))), None);
        assert_eq!(stamps.matching(&job(json!({"stamped_headers": null, "stamps": {}}))), None);
        assert_eq!(stamps.matching(&job(json!({"stamps": {"mon": "a"}}))), None, "only stamped_headers count");
        stamps.insert(json!({"mon": "c"}).as_object().unwrap());
        assert!(stamps.matching(&job(json!({"stamped_headers": ["mon"], "stamps": {"mon": "c"}}))).is_some(), "revokes add up");
    }

    #[test]
    fn headers_come_as_a_dict_or_a_list_and_replies_read_as_celery_s() {
        assert_eq!(parse_headers(&json!({"headers": ["mon=a", "x=y=z"]})), *json!({"mon": "a", "x": "y=z"}).as_object().unwrap());
        let headers = parse_headers(&json!({"headers": {"mon": "a"}}));
        assert_eq!(reply(&headers, false, &[]), "headers {'mon': 'a'} flagged as revoked, but not terminated");
        assert_eq!(reply(&headers, true, &[]), "headers {'mon': 'a'} were not terminated");
        assert_eq!(
            reply(&headers, true, &[("mon".into(), json!("a")), ("mon".into(), json!("a"))]),
            "headers defaultdict(<class 'set'>, {'mon': {'a'}}) revoked"
        );
    }

    #[test]
    fn stored_members_read_back() {
        let headers = json!({"mon": ["a", 1], "tenant": "acme"});
        let members = members(headers.as_object().unwrap());
        assert_eq!(members, ["[\"mon\",\"a\"]", "[\"mon\",1]", "[\"tenant\",\"acme\"]"]);
        assert_eq!(Value::Object(from_members(&members)), json!({"mon": ["a", 1], "tenant": ["acme"]}));
    }
}
