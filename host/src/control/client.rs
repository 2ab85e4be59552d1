//! The client side of the pidbox: what `celery inspect` and `celery
//! control` do, for `host inspect`, `host control` and the HTTP API.
//!
//! The steps are kombu 5.7's, from the captures (`shared/celery-protocol.md`
//! §9), because Python workers answer only a client that follows them:
//!
//! 1. bind a private reply queue in `_kombu.binding.reply.celery.pidbox`
//!    (and push the set's deadline, as kombu's script does, so a kombu
//!    sweep does not delete the binding while we wait);
//! 2. publish the request on `/<db>.celery.pidbox`, with a ticket;
//! 3. `BRPOP` the reply queue (all four priority lists) until the timeout,
//!    keeping replies that carry our ticket; with named destinations, stop
//!    once each has answered;
//! 4. unbind and delete the reply lists.
//!
//! A cast (`reply = false`: `shutdown`, `enable_events` as Celery sends
//! them) is only step 2.

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use super::pidbox_channel;
use crate::protocol::{envelope, queue_key_for, PRIORITY_STEPS};

const REPLY_EXCHANGE: &str = "reply.celery.pidbox";
const BINDING_KEY: &str = "_kombu.binding.reply.celery.pidbox";
const BINDING_DEADLINES: &str = "_kombu.binding_deadlines";

/// One remote-control request.
#[derive(Debug, Clone)]
pub struct Broadcast {
    pub method: String,
    pub arguments: Value,
    /// Node names; empty means every worker.
    pub destination: Vec<String>,
    /// Wait for replies (a call) or not (a cast).
    pub reply: bool,
    pub timeout: Duration,
}

/// Sends `request` and returns the replies as `(node name, result)`, in
/// the order they arrived.
pub async fn broadcast(client: &redis::Client, db: i64, request: &Broadcast) -> redis::RedisResult<Vec<(String, Value)>> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Duration::from_secs(5))
        .set_response_timeout(Duration::from_secs(5));
    let mut connection = client.get_multiplexed_async_connection_with_config(&config).await?;
    let oid = uuid::Uuid::new_v4().to_string();
    let ticket = uuid::Uuid::new_v4().to_string();
    let reply_queue = format!("{oid}.{REPLY_EXCHANGE}");
    let binding = format!("{oid}\x06\x16\x06\x16{reply_queue}");
    let destination = match request.destination.is_empty() {
        true => Value::Null,
        false => json!(request.destination),
    };
    let mut body = json!({
        "method": request.method, "arguments": request.arguments,
        "destination": destination, "pattern": null, "matcher": null,
    });
    let expires = crate::events::system::now() + request.timeout.as_secs_f64();
    if !request.reply {
        let message = envelope(&body, json!({"clock": 1, "expires": expires}), "celery.pidbox", "");
        redis::cmd("PUBLISH").arg(pidbox_channel(db)).arg(message).query_async::<()>(&mut connection).await?;
        return Ok(Vec::new());
    }
    body["ticket"] = json!(ticket);
    body["reply_to"] = json!({"exchange": REPLY_EXCHANGE, "routing_key": oid});
    let deadline_ms = (crate::events::system::now() * 1000.0) as u64 + 3_600_000;
    redis::pipe()
        .sadd(BINDING_KEY, &binding)
        .ignore()
        .cmd("ZADD")
        .arg(BINDING_DEADLINES)
        .arg("GT")
        .arg(deadline_ms)
        .arg(REPLY_EXCHANGE)
        .ignore()
        .query_async::<()>(&mut connection)
        .await?;
    let message = envelope(&body, json!({"clock": 1, "expires": expires}), "celery.pidbox", "");
    let collected = async {
        redis::cmd("PUBLISH").arg(pidbox_channel(db)).arg(message).query_async::<()>(&mut connection).await?;
        collect(client, &reply_queue, &ticket, request).await
    }
    .await;
    let lists: Vec<String> = PRIORITY_STEPS.iter().map(|step| queue_key_for(&reply_queue, *step)).collect();
    let _: redis::RedisResult<()> = redis::pipe()
        .srem(BINDING_KEY, &binding)
        .ignore()
        .srem("_kombu.binding_permanent.reply.celery.pidbox", &binding)
        .ignore()
        .del(&lists)
        .ignore()
        .query_async(&mut connection)
        .await;
    collected
}

/// Pops replies until the timeout, or until every named destination answered.
async fn collect(client: &redis::Client, reply_queue: &str, ticket: &str, request: &Broadcast) -> redis::RedisResult<Vec<(String, Value)>> {
    let lists: Vec<String> = PRIORITY_STEPS.iter().map(|step| queue_key_for(reply_queue, *step)).collect();
    // BRPOP blocks its connection: it gets one of its own, with a response
    // timeout longer than the pop's.
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Duration::from_secs(5))
        .set_response_timeout(request.timeout + Duration::from_secs(5));
    let mut blocking = client.get_multiplexed_async_connection_with_config(&config).await?;
    let deadline = Instant::now() + request.timeout;
    let mut replies = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || (!request.destination.is_empty() && replies.len() >= request.destination.len()) {
            return Ok(replies);
        }
        let popped: Option<(String, String)> =
            redis::cmd("BRPOP").arg(&lists).arg(left.as_secs_f64().max(0.01)).query_async(&mut blocking).await?;
        let Some((_, raw)) = popped else { continue };
        if let Some(reply) = parse_reply(&raw, ticket) {
            replies.extend(reply);
        }
    }
}

/// A reply envelope's `{node: result}` entries, if it answers `ticket`.
fn parse_reply(raw: &str, ticket: &str) -> Option<Vec<(String, Value)>> {
    let envelope: Value = serde_json::from_str(raw).ok()?;
    if envelope.pointer("/headers/ticket").and_then(Value::as_str) != Some(ticket) {
        return None;
    }
    let body = base64::engine::general_purpose::STANDARD.decode(envelope.get("body")?.as_str()?).ok()?;
    match serde_json::from_slice::<Value>(&body).ok()? {
        Value::Object(entries) => Some(entries.into_iter().collect()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_matched_by_ticket() {
        let body = base64::engine::general_purpose::STANDARD.encode(br#"{"w1@proto": {"ok": "pong"}}"#);
        let raw = json!({"body": body, "headers": {"ticket": "t1", "clock": 4}}).to_string();
        assert_eq!(parse_reply(&raw, "t1"), Some(vec![("w1@proto".to_string(), json!({"ok": "pong"}))]));
        assert_eq!(parse_reply(&raw, "t2"), None);
    }
}
