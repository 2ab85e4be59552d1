//! The kombu-compatible Redis broker.
//!
//! Layout is kombu's (`shared/celery-protocol.md` §4): queue lists with
//! priority buckets, and `unacked` (hash) + `unacked_index` (zset of lease
//! times) for messages being worked on. Unlike kombu, the move from a list
//! into `unacked` is one Lua script, so a crash between pop and record
//! cannot lose a message; and leases are renewed while a job is held, so
//! a long job or a far ETA is never handed to a second worker.
//!
//! Connections go through `ConnectionManager`, which reconnects on its own;
//! callers retry failed calls with backoff.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Script, Value};

use super::{Broker, BrokerError, Delivery};
use crate::protocol::queue_keys;

const UNACKED: &str = "unacked";
const UNACKED_INDEX: &str = "unacked_index";
const UNACKED_MUTEX: &str = "unacked_mutex";
/// Messages waiting for a far ETA (zset: tag -> due Unix ms), and their
/// envelopes and lists (hash), as Sidekiq's `schedule` and BullMQ's
/// `delayed` keep them.
const DELAYED: &str = "chard:delayed";
const DELAYED_MESSAGES: &str = "chard:delayed:messages";
/// Entries one restore sweep handles, to keep each script short.
const RESTORE_BATCH: usize = 1000;
/// How long a command may wait for its reply before the connection is
/// given up on.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Pushes `envelope` to `list` unless `marker` exists; sets the marker
/// (expiring after `ttl`) in the same atomic step. True if it pushed.
pub async fn publish_once(
    connection: &mut ConnectionManager,
    marker: &str,
    list: &str,
    envelope: &str,
    ttl: Duration,
) -> Result<bool, BrokerError> {
    static SCRIPT: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| Script::new(include_str!("publish_once.lua")));
    let pushed: i64 =
        SCRIPT.key(marker).key(list).arg(envelope).arg(ttl.as_secs().max(1)).invoke_async(connection).await?;
    Ok(pushed == 1)
}

#[derive(Clone)]
pub struct RedisBroker {
    client: redis::Client,
    connection: ConnectionManager,
    /// A connection of its own for the blocking wait (a blocking command
    /// would stall everything multiplexed on the shared one).
    waiter: std::sync::Arc<tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>>,
    fetch_keys: Vec<String>,
    /// The queue (routing key) of each list in `fetch_keys[2..]`.
    fetch_queues: Vec<String>,
    /// Delivery tags are `<worker id>.<fetch number>.<index>`: unique
    /// without a round trip, and short.
    tag_prefix: String,
    fetch_number: std::sync::Arc<std::sync::atomic::AtomicU64>,
    fetch_script: Script,
    publish_script: Script,
    delay_script: Script,
    undelay_script: Script,
    restore_script: Script,
    rate_script: Script,
}

impl RedisBroker {
    /// Connects (with retries handled by the manager) and consumes `queues`.
    pub async fn connect(client: redis::Client, queues: &[String]) -> Result<Self, BrokerError> {
        let connection = connect_manager(client.clone()).await?;
        let mut fetch_keys = vec![UNACKED.to_string(), UNACKED_INDEX.to_string()];
        fetch_keys.extend(queue_keys(queues));
        let fetch_queues: Vec<String> =
            crate::protocol::PRIORITY_STEPS.iter().flat_map(|_| queues.iter().cloned()).collect();
        let tag_prefix = uuid::Uuid::new_v4().simple().to_string()[..10].to_string();
        Ok(Self {
            client,
            connection,
            waiter: Default::default(),
            fetch_keys,
            fetch_queues,
            tag_prefix,
            fetch_number: Default::default(),
            fetch_script: Script::new(include_str!("fetch.lua")),
            publish_script: Script::new(include_str!("publish.lua")),
            delay_script: Script::new(include_str!("delay.lua")),
            undelay_script: Script::new(include_str!("undelay.lua")),
            restore_script: Script::new(include_str!("restore.lua")),
            rate_script: Script::new(include_str!("rate.lua")),
        })
    }

    /// Declares the queues the way kombu does, so publishers using the named
    /// `celery` exchange can route to them.
    pub async fn declare_queues(&self, queues: &[String]) -> Result<(), BrokerError> {
        let mut pipe = redis::pipe();
        for queue in queues {
            let member = format!("{queue}\x06\x16\x06\x16{queue}");
            pipe.sadd(format!("_kombu.binding.{queue}"), &member).ignore();
            pipe.sadd(format!("_kombu.binding_permanent.{queue}"), &member).ignore();
        }
        pipe.query_async::<()>(&mut self.connection.clone()).await?;
        Ok(())
    }

    pub fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }
}

/// Whether a Redis error is the command's fault rather than the
/// connection's: retrying the same command cannot succeed (`WRONGTYPE`, a
/// script error, a value the server refuses), so the caller must give up on
/// it instead of retrying forever. Connection trouble, a server loading its
/// data, a failover in progress or a full memory (`OOM`, which frees up) are
/// transient.
pub fn is_permanent(error: &redis::RedisError) -> bool {
    use redis::ErrorKind;
    if error.is_io_error() || error.is_connection_dropped() || error.is_timeout() || error.is_connection_refusal() {
        return false;
    }
    match error.kind() {
        ErrorKind::ResponseError | ErrorKind::ExecAbortError | ErrorKind::TypeError | ErrorKind::CrossSlot => true,
        ErrorKind::ExtensionError => !matches!(error.code(), Some("OOM" | "BUSY" | "NOREPLICAS" | "LOADING" | "MASTERDOWN")),
        _ => false,
    }
}

/// A connection manager that retries the first connection too.
pub async fn connect_manager(client: redis::Client) -> Result<ConnectionManager, redis::RedisError> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_number_of_retries(6)
        .set_max_delay(2000)
        .set_connection_timeout(Duration::from_secs(5))
        .set_response_timeout(RESPONSE_TIMEOUT);
    ConnectionManager::new_with_config(client, config).await
}

fn now_seconds() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// The lease time written to `unacked_index`: now in whole Unix seconds,
/// rounded up. Kombu writes a float, but Redis parses every ZADD score with
/// `strtod`, and a 17-digit fraction takes its slow path (a quarter of the
/// fetch script's cost). Rounding up makes a lease look younger by less than
/// a second, so it is restored that much later, never earlier.
fn lease_seconds() -> u64 {
    now_seconds().ceil() as u64
}

impl RedisBroker {
    /// One call of the fetch script for up to `max` messages leased at
    /// `lease` (Unix seconds), and the tag prefix of what it takes.
    fn fetch_invocation(&self, max: usize, budget_bytes: usize, max_message_bytes: usize, lease: u64) -> (redis::ScriptInvocation<'_>, String) {
        let mut invocation = self.fetch_script.prepare_invoke();
        for key in &self.fetch_keys {
            invocation.key(key);
        }
        let number = self.fetch_number.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let prefix = format!("{}.{number}.", self.tag_prefix);
        invocation.arg(max).arg(lease).arg(&prefix).arg(max_message_bytes).arg(budget_bytes);
        for queue in &self.fetch_queues {
            invocation.arg(queue);
        }
        (invocation, prefix)
    }
}

/// The deliveries in a fetch script's reply: the n-th message taken has tag
/// `prefix` n (see fetch.lua); an oversized one comes as its size, then its
/// excerpt.
fn deliveries(reply: Vec<Value>, prefix: &str) -> Result<Vec<Delivery>, BrokerError> {
    let mut deliveries = Vec::with_capacity(reply.len());
    let mut items = reply.into_iter();
    while let Some(item) = items.next() {
        let tag = format!("{prefix}{}", deliveries.len() + 1);
        let (body, oversize) = match item {
            Value::Int(size) => {
                let excerpt = items.next().ok_or_else(|| malformed_reply("an oversized message without its excerpt"))?;
                (bulk_bytes(excerpt)?, Some(size.max(1) as usize))
            }
            other => (bulk_bytes(other)?, None),
        };
        deliveries.push(Delivery { tag: Some(tag), body, oversize });
    }
    Ok(deliveries)
}

/// A bulk string of a script reply, as bytes, without a copy.
fn bulk_bytes(value: Value) -> Result<Vec<u8>, BrokerError> {
    match value {
        Value::BulkString(bytes) => Ok(bytes),
        other => Err(malformed_reply(&format!("a message that is not a string: {other:?}"))),
    }
}

fn malformed_reply(what: &str) -> BrokerError {
    redis::RedisError::from((redis::ErrorKind::TypeError, "unexpected fetch script reply", what.to_string())).into()
}

impl Broker for RedisBroker {
    async fn fetch(&self, max: usize, budget_bytes: usize, max_message_bytes: usize) -> Result<Vec<Delivery>, BrokerError> {
        let (invocation, prefix) = self.fetch_invocation(max, budget_bytes, max_message_bytes, lease_seconds());
        let reply: Vec<Value> = invocation.invoke_async(&mut self.connection.clone()).await?;
        deliveries(reply, &prefix)
    }

    async fn ack(&self, tags: &[String]) -> Result<(), BrokerError> {
        if tags.is_empty() {
            return Ok(());
        }
        redis::pipe()
            .atomic()
            .zrem(UNACKED_INDEX, tags)
            .ignore()
            .hdel(UNACKED, tags)
            .ignore()
            .query_async::<()>(&mut self.connection.clone())
            .await?;
        Ok(())
    }

    async fn extend_leases(&self, tags: &[String]) -> Result<(), BrokerError> {
        if tags.is_empty() {
            return Ok(());
        }
        let now = lease_seconds();
        let mut command = redis::cmd("ZADD");
        command.arg(UNACKED_INDEX).arg("XX");
        for tag in tags {
            command.arg(now).arg(tag);
        }
        command.query_async::<()>(&mut self.connection.clone()).await?;
        Ok(())
    }

    async fn requeue(&self, tags: &[String]) -> Result<usize, BrokerError> {
        if tags.is_empty() {
            return Ok(0);
        }
        let mut invocation = self.restore_script.prepare_invoke();
        invocation.key(UNACKED).key(UNACKED_INDEX).key(UNACKED_MUTEX).arg("tags");
        for tag in tags {
            invocation.arg(tag);
        }
        let restored: i64 = invocation.invoke_async(&mut self.connection.clone()).await?;
        Ok(restored.max(0) as usize)
    }

    async fn restore_expired(&self, visibility_timeout: Duration) -> Result<usize, BrokerError> {
        let cutoff = now_seconds() - visibility_timeout.as_secs_f64();
        let restored: i64 = self
            .restore_script
            .key(UNACKED)
            .key(UNACKED_INDEX)
            .key(UNACKED_MUTEX)
            .arg("expired")
            .arg(cutoff)
            .arg(RESTORE_BATCH)
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(restored.max(0) as usize)
    }

    /// `BLMOVE q q RIGHT RIGHT` with the fetch script pipelined behind it on
    /// the waiter's connection. The BLMOVE blocks until the first queue list
    /// has a message, then moves its tail to its own tail, which leaves the
    /// list as it was: it takes nothing. Redis runs the script queued behind
    /// it the moment it unblocks, so the wake-up and the take cost one round
    /// trip instead of two; the take is the same atomic script as `fetch`, so
    /// a message is in its list or in `unacked` at every instant. Other lists
    /// (priority buckets, further queues) are taken by the same script, but
    /// only wake the wait at `timeout`.
    ///
    /// The script runs up to `timeout` after it is sent, so its lease time is
    /// dated at the latest moment it can run: a lease then looks younger by
    /// at most `timeout`, and is restored that much later, never earlier.
    async fn wait_and_fetch(
        &self,
        timeout: Duration,
        max: usize,
        budget_bytes: usize,
        max_message_bytes: usize,
    ) -> Result<Vec<Delivery>, BrokerError> {
        let mut waiter = self.waiter.lock().await;
        if waiter.is_none() {
            // Past the block, as long as the shared connection waits for a
            // reply: a reply given up on could be a take, leased to nobody
            // until the visibility timeout.
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Duration::from_secs(2))
                .set_response_timeout(timeout + RESPONSE_TIMEOUT);
            *waiter = Some(self.client.get_multiplexed_async_connection_with_config(&config).await?);
        }
        let connection = waiter.as_mut().expect("connected above");
        let lease = lease_seconds() + timeout.as_secs_f64().ceil() as u64;
        let (invocation, prefix) = self.fetch_invocation(max, budget_bytes, max_message_bytes, lease);
        let first_queue = &self.fetch_keys[2];
        let mut pipe = redis::pipe();
        pipe.cmd("BLMOVE").arg(first_queue).arg(first_queue).arg("RIGHT").arg("RIGHT").arg(timeout.as_secs_f64());
        pipe.invoke_script(&invocation);
        // Each reply on its own: an error of the BLMOVE must not hide what
        // the script took.
        let mut replies = match redis::aio::ConnectionLike::req_packed_commands(connection, &pipe, 0, 2).await {
            Ok(replies) if replies.len() == 2 => replies.into_iter(),
            Ok(_) => return Err(malformed_reply("not two replies to BLMOVE and the fetch script")),
            Err(error) => {
                *waiter = None;
                return Err(error.into());
            }
        };
        let (woken, taken) = (replies.next().expect("two replies"), replies.next().expect("two replies"));
        match taken.extract_error().and_then(redis::from_owned_redis_value::<Vec<Value>>) {
            Ok(reply) if reply.is_empty() => woken.extract_error().map(|_| Vec::new()).map_err(Into::into),
            Ok(reply) => deliveries(reply, &prefix),
            Err(error) if error.kind() == redis::ErrorKind::NoScriptError => {
                // A restarted or flushed server: nothing was taken. Load the
                // script; the next call takes what woke this one.
                invocation.load_async(connection).await?;
                Ok(Vec::new())
            }
            Err(error) => Err(error.into()),
        }
    }

    async fn publish(&self, messages: &[(String, String)]) -> Result<(), BrokerError> {
        if messages.is_empty() {
            return Ok(());
        }
        let mut invocation = self.publish_script.prepare_invoke();
        for (key, envelope) in messages {
            invocation.key(key).arg(envelope);
        }
        let refused: usize = invocation.invoke_async(&mut self.connection.clone()).await?;
        match refused.checked_sub(1).and_then(|index| messages.get(index)) {
            Some((key, _)) => Err(BrokerError::NotAList { key: key.clone() }),
            None => Ok(()),
        }
    }

    async fn delay(&self, entries: &[(String, u64, String)]) -> Result<usize, BrokerError> {
        if entries.is_empty() {
            return Ok(0);
        }
        let mut invocation = self.delay_script.prepare_invoke();
        invocation.key(UNACKED).key(UNACKED_INDEX).key(DELAYED).key(DELAYED_MESSAGES);
        for (tag, due, list) in entries {
            invocation.arg(tag).arg(due).arg(list);
        }
        let moved: usize = invocation.invoke_async(&mut self.connection.clone()).await?;
        Ok(moved)
    }

    async fn release_due(&self, until_ms: u64, max: usize) -> Result<usize, BrokerError> {
        let pushed: usize = self
            .undelay_script
            .key(DELAYED)
            .key(DELAYED_MESSAGES)
            .arg(until_ms)
            .arg(max)
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(pushed)
    }

    async fn reserve_rate(&self, key: &str, interval: Duration) -> Result<Duration, BrokerError> {
        let micros: i64 = self
            .rate_script
            .key(format!("chard:rate:{key}"))
            .arg(interval.as_micros() as u64)
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(Duration::from_micros(micros.max(0) as u64))
    }
}
