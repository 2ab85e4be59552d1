//! Remote control: Celery's pidbox broadcast (`celery inspect`, `celery
//! control`, `app.control.revoke`) and the revoked-id store.
//!
//! Requests arrive by pub/sub on `/<db>.celery.pidbox`, serviced by their own
//! task so a busy worker still answers within the client's 1 s window.
//! Replies are pushed to the client's reply queue, found through
//! `_kombu.binding.reply.celery.pidbox` (kombu's routing table).
//!
//! Revoked ids are kept in Redis too (`chard:revoked`, a zset scored by
//! expiry), not only in memory as Celery does: a worker started after the
//! revoke loads them and honours it.
//!
//! Replies carry the worker's Lamport clock (the one its events use), moved
//! past the clock of each request as kombu's pidbox does. The commands a
//! monitor polls (`stats`, `active`, `reserved`, `scheduled`, `query_task`,
//! `conf`) answer from what the worker really holds; `enable_events`,
//! `disable_events` and `heartbeat` drive its events (see `events`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::protocol::envelope;

pub mod client;
mod commands;
pub mod stamps;

/// Where revoked ids are kept, with their expiry as score.
pub const REVOKED_KEY: &str = "chard:revoked";
/// How long a revoke is remembered (Celery: 3 hours).
pub const REVOKE_TTL: Duration = Duration::from_secs(3 * 3600);

/// The pub/sub channel of the pidbox broadcast for a broker db.
pub fn pidbox_channel(db: i64) -> String {
    format!("/{db}.celery.pidbox")
}

/// Ids this worker must not run, and stamps whose jobs it must not run.
#[derive(Default)]
pub struct Revoked {
    ids: Mutex<HashSet<String>>,
    pub stamps: stamps::RevokedStamps,
}

impl Revoked {
    pub fn contains(&self, id: &str) -> bool {
        self.ids.lock().unwrap().contains(id)
    }

    /// Whether a job with this id and these message headers is revoked, by
    /// id or by one of its stamps.
    pub fn revokes(&self, id: &str, headers: &serde_json::Map<String, Value>) -> bool {
        self.contains(id) || (!self.stamps.is_empty() && self.stamps.matching(&stamps::job_stamps(headers)).is_some())
    }

    pub fn insert(&self, ids: impl IntoIterator<Item = String>) {
        let mut set = self.ids.lock().unwrap();
        set.extend(ids);
    }

    pub fn list(&self) -> Vec<String> {
        self.ids.lock().unwrap().iter().cloned().collect()
    }
}

fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Records revokes in Redis (shared by every worker, expiring after `REVOKE_TTL`).
pub async fn store_revoked(connection: &mut redis::aio::ConnectionManager, ids: &[String]) -> redis::RedisResult<()> {
    let expires = now() + REVOKE_TTL.as_secs_f64();
    let mut pipe = redis::pipe();
    pipe.cmd("ZREMRANGEBYSCORE").arg(REVOKED_KEY).arg("-inf").arg(now()).ignore();
    for id in ids {
        pipe.zadd(REVOKED_KEY, id, expires).ignore();
    }
    pipe.query_async(connection).await
}

/// Records revoked stamps in Redis, as [`store_revoked`] does ids.
pub async fn store_revoked_stamps(
    connection: &mut redis::aio::ConnectionManager,
    headers: &serde_json::Map<String, Value>,
) -> redis::RedisResult<()> {
    let expires = now() + REVOKE_TTL.as_secs_f64();
    let mut pipe = redis::pipe();
    pipe.cmd("ZREMRANGEBYSCORE").arg(stamps::REVOKED_STAMPS_KEY).arg("-inf").arg(now()).ignore();
    for member in stamps::members(headers) {
        pipe.zadd(stamps::REVOKED_STAMPS_KEY, member, expires).ignore();
    }
    pipe.query_async(connection).await
}

/// Loads the revoked stamps that have not expired.
pub async fn load_revoked_stamps(connection: &mut redis::aio::ConnectionManager) -> redis::RedisResult<serde_json::Map<String, Value>> {
    let members: Vec<String> =
        redis::cmd("ZRANGEBYSCORE").arg(stamps::REVOKED_STAMPS_KEY).arg(now()).arg("+inf").query_async(connection).await?;
    Ok(stamps::from_members(&members))
}

/// Loads the revokes that have not expired.
pub async fn load_revoked(connection: &mut redis::aio::ConnectionManager) -> redis::RedisResult<Vec<String>> {
    redis::cmd("ZRANGEBYSCORE").arg(REVOKED_KEY).arg(now()).arg("+inf").query_async(connection).await
}

/// A decoded control request.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub arguments: Value,
    pub destination: Option<Vec<String>>,
    pub reply_to: Option<(String, String)>,
    pub ticket: Option<String>,
    /// The sender's Lamport clock (`headers.clock`).
    pub clock: Option<u64>,
}

pub fn parse_request(payload: &[u8]) -> Option<Request> {
    let envelope: Value = serde_json::from_slice(payload).ok()?;
    let body = base64::engine::general_purpose::STANDARD.decode(envelope.get("body")?.as_str()?).ok()?;
    let body: Value = serde_json::from_slice(&body).ok()?;
    let reply_to = body.get("reply_to").and_then(|reply| {
        Some((reply.get("exchange")?.as_str()?.to_string(), reply.get("routing_key")?.as_str()?.to_string()))
    });
    Some(Request {
        method: body.get("method")?.as_str()?.to_string(),
        arguments: body.get("arguments").cloned().unwrap_or(Value::Null),
        destination: body.get("destination").and_then(|d| serde_json::from_value(d.clone()).ok()),
        reply_to,
        ticket: body.get("ticket").and_then(Value::as_str).map(str::to_string),
        clock: envelope.get("headers").and_then(|headers| headers.get("clock")).and_then(Value::as_u64),
    })
}

/// What the worker exposes to control commands.
pub trait Node: Send + Sync + 'static {
    fn hostname(&self) -> &str;
    fn registered(&self) -> Vec<String>;
    fn queues(&self) -> Vec<String>;
    fn stats(&self) -> Value;
    /// `conf`: the worker's settings, under Celery's names where they have one.
    fn conf(&self) -> Value;
    /// Revoke ids; `terminate` also stops them if running. Returns the ids.
    fn revoke(&self, ids: Vec<String>, terminate: bool);
    /// Revoke jobs by stamp (`revoke_by_stamped_headers`); `terminate` also
    /// stops running jobs whose stamps match. Returns the stamps of the
    /// jobs stopped.
    fn revoke_stamped(&self, headers: &serde_json::Map<String, Value>, terminate: bool) -> Vec<(String, Value)>;
    fn revoked(&self) -> Vec<String>;
    /// The worker's monitoring: clock, task-event switch, held jobs.
    fn events(&self) -> &crate::events::Events;
    /// `shutdown`: start a graceful shutdown, as SIGTERM does.
    fn shutdown(&self);
    /// `rate_limit`: replace the task's per-worker limit (`None` lifts it).
    /// False if no plugin serves the task.
    fn set_rate_limit(&self, task: &str, interval: Option<Duration>) -> bool;
}

/// Serves control requests until the connection cannot be re-established
/// (it retries with backoff meanwhile).
pub async fn serve<N: Node>(client: redis::Client, mut connection: redis::aio::ConnectionManager, db: i64, node: Arc<N>) {
    let channel = pidbox_channel(db);
    let mut failures = 0u32;
    loop {
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        }
        .await;
        let mut pubsub = match subscribed {
            Ok(pubsub) => {
                failures = 0;
                pubsub
            }
            Err(error) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(%error, "cannot subscribe to remote control; retrying");
                }
                tokio::time::sleep(Duration::from_millis(100u64 << failures.min(6))).await;
                continue;
            }
        };
        let mut messages = pubsub.on_message();
        while let Some(message) = messages.next().await {
            let Some(request) = parse_request(message.get_payload_bytes()) else {
                tracing::debug!("ignored an unreadable control message");
                continue;
            };
            if let Some(destination) = &request.destination {
                if !destination.iter().any(|name| name == node.hostname()) {
                    continue;
                }
            }
            if let Some(clock) = request.clock {
                node.events().clock().adjust(clock);
            }
            let result = handle(&*node, &request);
            if request.method == "revoke" {
                // Celery keeps revokes in memory only; keeping them in Redis
                // lets a worker that starts later honour them too.
                let ids = revoke_ids(&request.arguments);
                if let Err(error) = store_revoked(&mut connection, &ids).await {
                    tracing::warn!(%error, "cannot record revoked ids in Redis");
                }
            }
            if request.method == "revoke_by_stamped_headers" {
                let headers = stamps::parse_headers(&request.arguments);
                if let Err(error) = store_revoked_stamps(&mut connection, &headers).await {
                    tracing::warn!(%error, "cannot record revoked stamps in Redis");
                }
            }
            if let (Some((exchange, routing_key)), Some(ticket)) = (&request.reply_to, &request.ticket) {
                if let Err(error) = reply(&mut connection, &*node, exchange, routing_key, ticket, result).await {
                    tracing::warn!(%error, method = request.method, "cannot send control reply");
                }
            }
        }
        tracing::warn!("remote control subscription lost; resubscribing");
    }
}

fn handle<N: Node>(node: &N, request: &Request) -> Value {
    let arguments = &request.arguments;
    match request.method.as_str() {
        "ping" => json!({"ok": "pong"}),
        "revoke" => {
            let ids = revoke_ids(arguments);
            let terminate = arguments.get("terminate").and_then(Value::as_bool).unwrap_or(false);
            let listed = ids.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(", ");
            node.revoke(ids, terminate);
            json!({"ok": format!("tasks {{{listed}}} flagged as revoked")})
        }
        "revoke_by_stamped_headers" => {
            let headers = stamps::parse_headers(arguments);
            let terminate = arguments.get("terminate").and_then(Value::as_bool).unwrap_or(false);
            let terminated = node.revoke_stamped(&headers, terminate);
            json!({"ok": stamps::reply(&headers, terminate, &terminated)})
        }
        "registered" => json!(node.registered()),
        "revoked" => json!(node.revoked()),
        "stats" => node.stats(),
        "conf" => node.conf(),
        "clock" => json!({"clock": node.events().clock().value()}),
        // kombu's `Queue.as_dict(recurse=True)`, every key of the capture:
        // Flower's worker page reads `alias` and others and fails without them.
        "active_queues" => json!(node
            .queues()
            .iter()
            .map(|queue| json!({
                "name": queue,
                "exchange": {
                    "name": queue, "type": "direct", "arguments": null, "durable": true, "passive": false,
                    "auto_delete": false, "delivery_mode": null, "no_declare": false,
                },
                "routing_key": queue, "queue_arguments": null, "binding_arguments": null, "consumer_arguments": null,
                "durable": true, "exclusive": false, "auto_delete": false, "no_ack": false, "alias": null,
                "bindings": [], "no_declare": null, "expires": null, "message_ttl": null, "max_length": null,
                "max_length_bytes": null, "max_priority": null,
            }))
            .collect::<Vec<_>>()),
        "active" => node.events().jobs.active(arguments.get("safe").and_then(Value::as_bool).unwrap_or(false)),
        "reserved" => node.events().jobs.reserved(),
        "scheduled" => node.events().jobs.scheduled(),
        "query_task" => {
            let ids: Vec<String> = match arguments.get("ids") {
                Some(Value::String(id)) => vec![id.clone()],
                Some(ids) => serde_json::from_value(ids.clone()).unwrap_or_default(),
                None => Vec::new(),
            };
            node.events().jobs.query(&ids)
        }
        // The real worker's words, so a monitor sees the same answers.
        "enable_events" => match node.events().set_task_events(true) {
            true => json!({"ok": "task events enabled"}),
            false => json!({"ok": "task events already enabled"}),
        },
        "disable_events" => match node.events().set_task_events(false) {
            true => json!({"ok": "task events disabled"}),
            false => json!({"ok": "task events already disabled"}),
        },
        "heartbeat" => {
            node.events().request_heartbeat();
            Value::Null
        }
        "hello" => json!({"ok": "ok"}),
        "shutdown" => commands::shutdown(node),
        "rate_limit" => commands::rate_limit(node, arguments),
        other => json!({"error": format!("KeyError('{other}')")}),
    }
}

fn revoke_ids(arguments: &Value) -> Vec<String> {
    match arguments.get("task_id") {
        Some(Value::String(id)) => vec![id.clone()],
        Some(Value::Array(ids)) => ids.iter().filter_map(|id| id.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    }
}

/// What the worker needs to serve remote control: a broker connection.
pub struct ControlLink {
    pub client: redis::Client,
    pub connection: redis::aio::ConnectionManager,
    pub db: i64,
}

async fn reply<N: Node>(
    connection: &mut redis::aio::ConnectionManager,
    node: &N,
    exchange: &str,
    routing_key: &str,
    ticket: &str,
    result: Value,
) -> redis::RedisResult<()> {
    let members: Vec<String> = redis::cmd("SMEMBERS").arg(format!("_kombu.binding.{exchange}")).query_async(connection).await?;
    let body = json!({ node.hostname(): result });
    let clock = node.events().clock().forward();
    let message = envelope(&body, json!({"ticket": ticket, "clock": clock}), exchange, routing_key);
    for member in members {
        let mut parts = member.split("\x06\x16");
        if parts.next() == Some(routing_key) {
            if let Some(queue) = parts.nth(1) {
                redis::cmd("LPUSH").arg(queue).arg(&message).query_async::<()>(connection).await?;
            }
        }
    }
    Ok(())
}

/// Sends a `revoke_by_stamped_headers` broadcast (a cast), as
/// `app.control.revoke_by_stamped_headers` does.
pub async fn broadcast_revoke_stamped(
    connection: &mut redis::aio::ConnectionManager,
    db: i64,
    headers: &serde_json::Map<String, Value>,
    terminate: bool,
) -> redis::RedisResult<()> {
    store_revoked_stamps(connection, headers).await?;
    let body = json!({
        "method": "revoke_by_stamped_headers",
        "arguments": {"headers": headers, "terminate": terminate, "signal": "SIGTERM"},
        "destination": null, "pattern": null, "matcher": null,
    });
    let message = envelope(&body, json!({"clock": 1}), "celery.pidbox", "");
    redis::cmd("PUBLISH").arg(pidbox_channel(db)).arg(message).query_async(connection).await
}

/// Sends a revoke broadcast (a cast: no reply), as `app.control.revoke` does.
pub async fn broadcast_revoke(
    connection: &mut redis::aio::ConnectionManager,
    db: i64,
    ids: &[String],
    terminate: bool,
) -> redis::RedisResult<()> {
    store_revoked(connection, ids).await?;
    let body = json!({
        "method": "revoke",
        "arguments": {"task_id": ids, "terminate": terminate, "signal": "SIGTERM"},
        "destination": null, "pattern": null, "matcher": null,
    });
    let message = envelope(&body, json!({"clock": 1}), "celery.pidbox", "");
    redis::cmd("PUBLISH").arg(pidbox_channel(db)).arg(message).query_async(connection).await
}
