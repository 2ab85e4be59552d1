//! The control commands that change a running worker rather than report
//! on it: `shutdown` and `rate_limit`, with Celery's replies so `celery
//! control` prints the same lines for Chard and Python workers.
//!
//! One difference: a Python worker raises `WorkerShutdown` before it can
//! reply, so `celery control shutdown` waits out its timeout and reports
//! that no node replied; a Chard worker replies first, then drains.

use serde_json::{json, Value};

use super::Node;

pub(super) fn shutdown<N: Node>(node: &N) -> Value {
    tracing::warn!("Got shutdown from remote");
    node.shutdown();
    json!({"ok": "shutting down"})
}

/// `{"task_name": ..., "rate_limit": "10/s" | 10 | 0 | null}`; an empty or
/// zero rate lifts the limit, as in Celery.
pub(super) fn rate_limit<N: Node>(node: &N, arguments: &Value) -> Value {
    let Some(task) = arguments.get("task_name").and_then(Value::as_str) else {
        return json!({"error": "rate_limit needs task_name"});
    };
    let text = match arguments.get("rate_limit") {
        Some(Value::String(text)) => text.trim().to_string(),
        Some(Value::Number(number)) => number.to_string(),
        _ => String::new(),
    };
    let lifted = text.is_empty() || text.parse::<f64>().is_ok_and(|count| count == 0.0);
    let interval = match lifted {
        true => None,
        false => match crate::protocol::parse_rate(&text) {
            Ok(interval) => Some(interval),
            Err(error) => return json!({"error": format!("Invalid rate limit string: {error}")}),
        },
    };
    if !node.set_rate_limit(task, interval) {
        tracing::error!(task, "Rate limit attempt for unknown task");
        return json!({"error": "unknown task"});
    }
    match interval {
        None => {
            tracing::info!(task, "Rate limits disabled for tasks of this type");
            json!({"ok": "rate limit disabled successfully"})
        }
        Some(_) => {
            tracing::info!(task, rate = text, "New rate limit for tasks of this type");
            json!({"ok": "new rate limit set successfully"})
        }
    }
}
