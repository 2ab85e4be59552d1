//! `io`: one task per thing a task can do beyond computing, each behind a
//! grant in `io.toml` (progress, send, keyvalue). The worker's tests run
//! them with and without the grants, and from the Celery client.

use std::time::Duration;

use chard_sdk::canvas::{self, signature};
use chard_sdk::{keyvalue, task, Args, Context, Kwargs, Maybe, TaskError};
use serde_json::{json, Value};

/// Report `steps` PROGRESS states `pause_ms` apart, then return "done".
#[task]
fn progress(steps: u32, pause_ms: u64) -> Result<String, TaskError> {
    for step in 1..=steps {
        chard_sdk::update_state("PROGRESS", &json!({"current": step, "total": steps}))?;
        // The monotonic clock: durations need no wall-clock grant.
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(pause_ms) {
            std::hint::spin_loop();
        }
    }
    Ok("done".into())
}

/// Send `math.add(i, i)` for i in 0..n; returns the children's ids.
#[task]
fn fan_out(n: u32) -> Result<Vec<String>, TaskError> {
    (0..n).map(|i| signature("math.add", json!([i, i])).send()).collect()
}

/// Send `math.add(1, 1)`, then fail: nothing may be sent.
#[task]
fn send_then_fail() -> Result<(), TaskError> {
    let id = signature("math.add", json!([1, 1])).send()?;
    Err(TaskError::failed_as("RuntimeError", format!("failed after sending {id}")))
}

/// Send any signature dict (task, chain, group, chord); returns its id.
#[task]
fn send(signature: Value) -> Result<String, TaskError> {
    canvas::send_json(&signature.to_string())
}

/// Be replaced by `signature` (Celery's `self.replace`).
#[task]
fn replace_with(signature: Value) -> Result<(), TaskError> {
    canvas::replace_json(&signature.to_string())
}

/// Process `order` once across redeliveries and workers: the first call
/// records it and counts it, later ones skip it.
#[task]
fn once(order: String) -> Result<String, TaskError> {
    if !keyvalue::set_if_absent(&format!("seen:{order}"), b"1", Some(Duration::from_secs(3600)))? {
        return Ok("skipped".into());
    }
    keyvalue::incr("processed", 1)?;
    Ok("processed".into())
}

/// Every key-value operation once; returns what each gave.
#[task]
fn kv_tour(key: String) -> Result<Value, TaskError> {
    let before = keyvalue::exists(&key)?;
    keyvalue::set_json(&key, &json!({"n": 1}), None)?;
    let read: Option<Value> = keyvalue::get_json(&key)?;
    let counter = keyvalue::incr(&format!("{key}:count"), 5)?;
    let deleted = keyvalue::delete(&key)?;
    let after = keyvalue::get(&key)?;
    Ok(json!({"before": before, "read": read, "counter": counter, "deleted": deleted, "after": after}))
}

/// The request as the task sees it.
#[task]
fn request(context: &Context) -> Value {
    let headers: Value = serde_json::from_str(&context.headers).unwrap_or(Value::Null);
    json!({
        "correlation_id": context.correlation_id,
        "reply_to": context.reply_to,
        "priority": context.delivery_info.priority,
        "routing_key": context.delivery_info.routing_key,
        "exchange": context.delivery_info.exchange,
        "redelivered": context.delivery_info.redelivered,
        "headers": headers,
        "requested_time_limit_ms": context.requested_time_limit_ms,
        "requested_soft_time_limit_ms": context.requested_soft_time_limit_ms,
        "time_limit_ms": context.time_limit_ms,
    })
}

/// `raise ExpectedException(*args)`.
#[task]
fn raise_with(exception_type: String, args: Vec<Value>) -> Result<(), TaskError> {
    let message = args.first().map(|first| first.as_str().map(str::to_string).unwrap_or_else(|| first.to_string())).unwrap_or_default();
    Err(TaskError::failed_as(exception_type, message).with_args(Value::Array(args)))
}

/// Ask for a retry with no retry left: the job fails with `exc`.
#[task]
fn retry_exc(context: &Context) -> Result<(), TaskError> {
    Err(TaskError::retry()
        .with_max_retries(context.retries)
        .with_exc(TaskError::failed_as("ConnectionError", "service down").with_args(json!(["service down", 503]))))
}

/// Retry once with an `expires` already past: the retried message ends
/// REVOKED without running.
#[task]
fn retry_expired(context: &Context) -> Result<u32, TaskError> {
    if context.retries == 0 {
        return Err(TaskError::retry_in(Duration::from_millis(10)).with_expires("2000-01-01T00:00:00+00:00"));
    }
    Ok(context.retries)
}

/// Reject the message: with `requeue`, the first delivery goes back to the
/// queue and the next returns how many times it ran (counted in the
/// key-value store); without, the message is dropped.
#[task]
fn reject(key: String, requeue: bool) -> Result<i64, TaskError> {
    let runs = keyvalue::incr(&key, 1)?;
    if runs == 1 || !requeue {
        return Err(TaskError::reject(requeue).with_reason("not now"));
    }
    Ok(runs)
}

/// `def rest(first, *args, second=_missing, **kwargs)`.
#[task]
fn rest(first: Value, second: Maybe<i64>, args: Args, kwargs: Kwargs) -> Value {
    let second = match second {
        Maybe::Missing => json!("missing"),
        Maybe::Null => json!("null"),
        Maybe::Value(value) => json!(value),
    };
    json!({"first": first, "second": second, "args": *args, "kwargs": *kwargs})
}

/// A task served under a name Celery users have.
#[task(name = "myproject.billing.tasks.charge")]
fn charge(cents: u64) -> String {
    format!("charged {cents}")
}

chard_sdk::export_tasks!(
    progress, fan_out, send_then_fail, send, replace_with, once, kv_tour, request, raise_with, retry_exc,
    retry_expired, reject, rest, charge
);
