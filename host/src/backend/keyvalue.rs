//! The plugins' key-value store, in the result backend's Redis.
//!
//! Keys are `chard:kv:<plugin>:<key>`: the plugin name comes from the
//! worker, never from the guest, so a plugin reaches only its own keys.
//! Every command is one Redis command, so each is atomic on its own
//! (`SET NX` for set-if-absent, `INCRBY` for counters).

use std::time::Duration;

use redis::aio::ConnectionManager;

use super::BackendError;

/// One key-value command for `plugin`'s store.
#[derive(Debug, Clone)]
pub enum KeyValueCommand<'a> {
    Get { key: &'a str },
    Set { key: &'a str, value: &'a [u8], ttl: Option<Duration>, only_if_absent: bool },
    Delete { key: &'a str },
    Exists { key: &'a str },
    Incr { key: &'a str, delta: i64 },
}

/// The answer to a [`KeyValueCommand`], by command.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyValueReply {
    Value(Option<Vec<u8>>),
    Flag(bool),
    Number(i64),
}

/// The Redis key of `key` in `plugin`'s store.
pub fn namespaced(plugin: &str, key: &str) -> String {
    format!("chard:kv:{plugin}:{key}")
}

pub(super) async fn execute(
    connection: &mut ConnectionManager,
    plugin: &str,
    command: KeyValueCommand<'_>,
) -> Result<KeyValueReply, BackendError> {
    Ok(match command {
        KeyValueCommand::Get { key } => {
            KeyValueReply::Value(redis::cmd("GET").arg(namespaced(plugin, key)).query_async(connection).await?)
        }
        KeyValueCommand::Set { key, value, ttl, only_if_absent } => {
            let mut cmd = redis::cmd("SET");
            cmd.arg(namespaced(plugin, key)).arg(value);
            if let Some(ttl) = ttl {
                cmd.arg("PX").arg(ttl.as_millis().max(1) as u64);
            }
            if only_if_absent {
                cmd.arg("NX");
            }
            let reply: Option<String> = cmd.query_async(connection).await?;
            KeyValueReply::Flag(reply.is_some())
        }
        KeyValueCommand::Delete { key } => {
            let removed: i64 = redis::cmd("DEL").arg(namespaced(plugin, key)).query_async(connection).await?;
            KeyValueReply::Flag(removed > 0)
        }
        KeyValueCommand::Exists { key } => {
            let count: i64 = redis::cmd("EXISTS").arg(namespaced(plugin, key)).query_async(connection).await?;
            KeyValueReply::Flag(count > 0)
        }
        KeyValueCommand::Incr { key, delta } => {
            KeyValueReply::Number(redis::cmd("INCRBY").arg(namespaced(plugin, key)).arg(delta).query_async(connection).await?)
        }
    })
}
