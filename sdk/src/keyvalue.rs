//! A small key-value store per plugin, kept by the worker in its result
//! backend's Redis (`chard:kv:<plugin>:<key>`). Needs `keyvalue = true`
//! under `[capabilities]`. Values are bytes; `get_json`/`set_json` encode
//! them with serde.
//!
//! The typical use is an idempotency marker that survives redelivery and
//! works across workers:
//!
//! ```text
//! if !keyvalue::set_if_absent(&format!("charged:{order}"), b"1", Some(Duration::from_secs(86400)))? {
//!     return Ok("already charged".into());
//! }
//! ```

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::bindings::chard::task::keyvalue as wit;
use crate::TaskError;

fn millis(ttl: Option<Duration>) -> Option<u64> {
    ttl.map(|ttl| ttl.as_millis().try_into().unwrap_or(u64::MAX))
}

pub fn get(key: &str) -> Result<Option<Vec<u8>>, TaskError> {
    wit::get(key).map_err(TaskError::failed)
}

/// Stores `value`; with a `ttl`, the key expires after it.
pub fn set(key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), TaskError> {
    wit::set(key, value, millis(ttl)).map_err(TaskError::failed)
}

/// Stores `value` only if `key` does not exist; true if it stored it.
pub fn set_if_absent(key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool, TaskError> {
    wit::set_if_absent(key, value, millis(ttl)).map_err(TaskError::failed)
}

/// Removes `key`; true if it existed.
pub fn delete(key: &str) -> Result<bool, TaskError> {
    wit::delete(key).map_err(TaskError::failed)
}

pub fn exists(key: &str) -> Result<bool, TaskError> {
    wit::exists(key).map_err(TaskError::failed)
}

/// Adds `delta` to the integer at `key` (0 if absent); returns the new value.
pub fn incr(key: &str, delta: i64) -> Result<i64, TaskError> {
    wit::incr(key, delta).map_err(TaskError::failed)
}

/// `get` and decode JSON.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>, TaskError> {
    match get(key)? {
        Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
        None => Ok(None),
    }
}

/// Encode as JSON and `set`.
pub fn set_json<T: Serialize>(key: &str, value: &T, ttl: Option<Duration>) -> Result<(), TaskError> {
    set(key, &serde_json::to_vec(value)?, ttl)
}
