//! Chard: a Celery-compatible job worker whose tasks are WebAssembly
//! components.
//!
//! Layers, each depending only on those below it:
//! `cli` → `config` → `commands` → `worker` → (`runtime`, `broker`, `backend`) → `protocol`.
//! `runtime` knows nothing of Redis or Celery; `protocol` does no I/O.

pub mod backend;
pub mod broker;
pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod control;
pub mod fleet;
pub mod events;
pub mod logging;
pub mod protocol;
pub mod runtime;
pub mod scaffold;
pub mod schedule;
pub mod worker;

/// This machine's host name, for node names like `chard@host1`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}
