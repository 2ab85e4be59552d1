//! Celery's wire formats on the kombu Redis transport, as plain types.
//!
//! No I/O here: parsing an envelope someone pushed, building one to push,
//! naming keys, and rendering result documents. Everything follows
//! `shared/celery-protocol.md` (captures of Celery 5.7), and the tests at the
//! bottom of each file pin the exact bytes that matter to a Python peer.

pub mod bounds;
mod keys;
mod message;
mod rate;
mod recover;
mod routes;
pub mod repr;
pub mod group_result;
pub mod result;

pub use keys::{is_reserved_queue, priority_bucket, queue_keys, queue_key_for, result_key, PRIORITY_STEPS};
pub use rate::parse_rate;
pub use routes::Routes;
pub use recover::ids_in_excerpt;
pub use message::{Embed, Headers, MessageError, OutgoingTask, Signature, TaskMessage};
pub use result::{ExceptionInfo, ResultMeta, State};

/// Current time as ISO-8601 with offset, the way Celery writes it.
pub fn iso_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
}

/// Parses an ISO-8601 time with an offset; a naive time is taken as UTC
/// (lenient, as Celery clients with `enable_utc` send offsets anyway).
pub fn parse_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|naive| naive.and_utc())
}

/// A kombu envelope around a JSON body, as control requests, control
/// replies and events travel (`delivery_mode` 1: kombu's transient, which
/// is what the captures show for replies and events).
pub fn envelope(body: &impl serde::Serialize, headers: serde_json::Value, exchange: &str, routing_key: &str) -> String {
    use base64::Engine as _;
    let body = serde_json::to_vec(body).expect("a JSON body serialises");
    serde_json::json!({
        "body": base64::engine::general_purpose::STANDARD.encode(body),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            "delivery_mode": 1,
            "delivery_info": {"exchange": exchange, "routing_key": routing_key},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": uuid::Uuid::new_v4().to_string(),
        },
    })
    .to_string()
}
