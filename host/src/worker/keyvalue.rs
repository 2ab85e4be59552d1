//! The runtime's [`KeyValueStore`] over the result backend.
//!
//! Guest calls are synchronous and run on executor threads, which are not
//! tokio threads: each call blocks its thread on the backend's future with
//! the worker's runtime handle (one Redis round trip).

use std::time::Duration;

use crate::backend::{KeyValueCommand, KeyValueReply, ResultBackend};
use crate::runtime::KeyValueStore;

pub(super) struct BackendKeyValue<R> {
    pub backend: R,
    pub handle: tokio::runtime::Handle,
}

impl<R: ResultBackend> BackendKeyValue<R> {
    fn run(&self, plugin: &str, command: KeyValueCommand<'_>) -> Result<KeyValueReply, String> {
        self.handle.block_on(self.backend.keyvalue(plugin, command)).map_err(|error| format!("keyvalue: {error}"))
    }
}

fn unexpected(reply: KeyValueReply) -> String {
    format!("keyvalue: unexpected reply {reply:?}")
}

impl<R: ResultBackend> KeyValueStore for BackendKeyValue<R> {
    fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
        match self.run(plugin, KeyValueCommand::Get { key })? {
            KeyValueReply::Value(value) => Ok(value),
            other => Err(unexpected(other)),
        }
    }

    fn set(&self, plugin: &str, key: &str, value: &[u8], ttl: Option<Duration>, only_if_absent: bool) -> Result<bool, String> {
        match self.run(plugin, KeyValueCommand::Set { key, value, ttl, only_if_absent })? {
            KeyValueReply::Flag(set) => Ok(set),
            other => Err(unexpected(other)),
        }
    }

    fn delete(&self, plugin: &str, key: &str) -> Result<bool, String> {
        match self.run(plugin, KeyValueCommand::Delete { key })? {
            KeyValueReply::Flag(existed) => Ok(existed),
            other => Err(unexpected(other)),
        }
    }

    fn exists(&self, plugin: &str, key: &str) -> Result<bool, String> {
        match self.run(plugin, KeyValueCommand::Exists { key })? {
            KeyValueReply::Flag(exists) => Ok(exists),
            other => Err(unexpected(other)),
        }
    }

    fn incr(&self, plugin: &str, key: &str, delta: i64) -> Result<i64, String> {
        match self.run(plugin, KeyValueCommand::Incr { key, delta })? {
            KeyValueReply::Number(value) => Ok(value),
            other => Err(unexpected(other)),
        }
    }
}
