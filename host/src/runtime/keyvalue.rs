//! `chard:task/keyvalue`: a small key-value store per plugin.
//!
//! The store lives in the result backend's Redis, which the runtime does not
//! know: the worker supplies a [`KeyValueStore`]. The runtime checks the
//! grant and the sizes and passes the plugin's name, so a plugin can only
//! ever reach its own keys (the store namespaces them by plugin).
//!
//! Why not `wasi:keyvalue`: that proposal is still a draft whose buckets are
//! resources opened by name, and it has neither TTLs nor set-if-absent, the
//! two things a background job needs most (expiring idempotency markers).
//! Five plain functions over one implicit bucket say the same with less.

use std::time::Duration;

use super::bindings::v0_2::chard::task::keyvalue::Host;
use super::job::JobState;

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1 << 20;

/// The per-plugin store; supplied by the worker. Calls block the job's
/// thread until the store answered (one Redis round trip).
pub trait KeyValueStore: Send + Sync {
    fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, String>;
    /// Sets `key`; with `only_if_absent`, only if it does not exist. Returns
    /// whether it was set.
    fn set(&self, plugin: &str, key: &str, value: &[u8], ttl: Option<Duration>, only_if_absent: bool) -> Result<bool, String>;
    fn delete(&self, plugin: &str, key: &str) -> Result<bool, String>;
    fn exists(&self, plugin: &str, key: &str) -> Result<bool, String>;
    fn incr(&self, plugin: &str, key: &str, delta: i64) -> Result<i64, String>;
}

impl JobState {
    /// The store, after the grant and key checks.
    fn keyvalue(&self, key: &str) -> wasmtime::Result<Result<&dyn KeyValueStore, String>> {
        if !self.grants.keyvalue {
            return Err(self.denied("the key-value store", "keyvalue"));
        }
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Ok(Err(format!("keyvalue: a key is 1 to {MAX_KEY_BYTES} bytes, got {}", key.len())));
        }
        Ok(self.services.keyvalue.as_deref().ok_or_else(|| "keyvalue: no store here (no result backend)".to_string()))
    }
}

fn ttl(ttl_ms: Option<u64>) -> Option<Duration> {
    ttl_ms.map(Duration::from_millis)
}

impl Host for JobState {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, String>> {
        Ok(self.keyvalue(&key)?.and_then(|store| store.get(&self.plugin, &key)))
    }

    fn set(&mut self, key: String, value: Vec<u8>, ttl_ms: Option<u64>) -> wasmtime::Result<Result<(), String>> {
        if value.len() > MAX_VALUE_BYTES {
            return Ok(Err(format!("keyvalue: a value is at most {MAX_VALUE_BYTES} bytes, got {}", value.len())));
        }
        Ok(self.keyvalue(&key)?.and_then(|store| store.set(&self.plugin, &key, &value, ttl(ttl_ms), false).map(|_| ())))
    }

    fn set_if_absent(&mut self, key: String, value: Vec<u8>, ttl_ms: Option<u64>) -> wasmtime::Result<Result<bool, String>> {
        if value.len() > MAX_VALUE_BYTES {
            return Ok(Err(format!("keyvalue: a value is at most {MAX_VALUE_BYTES} bytes, got {}", value.len())));
        }
        Ok(self.keyvalue(&key)?.and_then(|store| store.set(&self.plugin, &key, &value, ttl(ttl_ms), true)))
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<Result<bool, String>> {
        Ok(self.keyvalue(&key)?.and_then(|store| store.delete(&self.plugin, &key)))
    }

    fn exists(&mut self, key: String) -> wasmtime::Result<Result<bool, String>> {
        Ok(self.keyvalue(&key)?.and_then(|store| store.exists(&self.plugin, &key)))
    }

    fn incr(&mut self, key: String, delta: i64) -> wasmtime::Result<Result<i64, String>> {
        Ok(self.keyvalue(&key)?.and_then(|store| store.incr(&self.plugin, &key, delta)))
    }
}
