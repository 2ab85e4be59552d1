//! Reaching Redis at start: fail fast for a one-shot command, wait for a
//! long-running one.
//!
//! The connection manager retries with backoff (right for a worker that
//! loses Redis mid-run), which made a command against a Redis that is not
//! there print nothing for 17 s and then give the cause twice (the Redis
//! error repeats its I/O error as its source). So before any real work:
//!
//! - one-shot commands (`submit`, `result`, `deploy`, ...) try once with a
//!   short timeout and fail with one line: where, and the operating system's
//!   reason;
//! - long-running ones (`host run`, `host beat`) log "waiting for Redis at
//!   ... (attempt n)" every few seconds and keep trying: under a supervisor
//!   (systemd, compose, Kubernetes) Redis may well start second, and a
//!   worker that exits would only be restarted into the same race.

use std::time::Duration;

use redis::aio::MultiplexedConnection;

/// How long a one-shot command waits for a connection (and for its PING).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between two attempts of a long-running command.
const RETRY_EVERY: Duration = Duration::from_secs(3);

/// Redis did not answer.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach Redis at {url}: {cause}")]
pub struct Unreachable {
    /// `host:port` or a socket path (never the password).
    pub url: String,
    /// The Redis error's own text (not chained: it would repeat itself).
    pub cause: String,
}

/// One attempt: connect with a short timeout and PING.
pub async fn connect_once(client: &redis::Client) -> Result<MultiplexedConnection, Unreachable> {
    let unreachable = |cause: String| Unreachable { url: address(client), cause };
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(CONNECT_TIMEOUT)
        .set_response_timeout(CONNECT_TIMEOUT);
    let attempt = async {
        let mut connection = client.get_multiplexed_async_connection_with_config(&config).await?;
        redis::cmd("PING").query_async::<()>(&mut connection).await?;
        Ok::<_, redis::RedisError>(connection)
    };
    match tokio::time::timeout(CONNECT_TIMEOUT + Duration::from_millis(500), attempt).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) => Err(unreachable(error.to_string())),
        Err(_) => Err(unreachable(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()))),
    }
}

/// Keeps trying until Redis answers, logging each failed attempt.
pub async fn wait_until_reachable(client: &redis::Client) {
    let mut attempt = 1u64;
    loop {
        match connect_once(client).await {
            Ok(_) if attempt == 1 => return,
            Ok(_) => {
                tracing::info!(url = %address(client), "Redis is reachable");
                return;
            }
            Err(error) => tracing::warn!("waiting for Redis at {} (attempt {attempt}): {}", error.url, error.cause),
        }
        attempt += 1;
        tokio::time::sleep(RETRY_EVERY).await;
    }
}

/// Where a client connects: `host:port`, or a socket path.
fn address(client: &redis::Client) -> String {
    client.get_connection_info().addr.to_string()
}
