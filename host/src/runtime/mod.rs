//! The sandbox: wasmtime engine, plugin loading, limits, and running one job.
//!
//! This module knows nothing of Redis or Celery. It takes a task name, JSON
//! arguments and a request context, and gives back an [`Outcome`]: the one
//! value every other layer matches on.
//!
//! Decisions worth knowing:
//! - **One `Engine` per process, one `InstancePre` per plugin, one `Store` per
//!   job.** Instantiating from a pre-linked component into the pooling
//!   allocator costs microseconds, so every job gets a fresh instance and no
//!   state can leak from one job to the next.
//! - **Jobs run synchronously on the caller's thread.** The worker runs them on
//!   a pool of plain threads sized to its concurrency; no async machinery sits
//!   on the per-job path.
//! - **Time limits are preemptive, via epoch interruption.** One ticker thread
//!   bumps the engine's epoch every [`TICK`]; each job's epoch callback checks
//!   its own deadline and its cancellation flag, so an infinite loop is stopped
//!   within a tick of its limit without a thread or timer per job.
//! - **A task error is data, a trap is not.** `failed`/`retry` come back from
//!   the guest as values; a time limit, an exhausted memory limit, a trap or a
//!   cancellation are seen by the host and reported as distinct outcomes.

mod cache;
mod engine;
mod job;
mod manifest;
mod outcome;
mod plugin;
mod registry;
mod wasm_kind;
mod watch;

pub use engine::{default_cache_dir, EngineOptions, Runtime, TICK};
pub use job::unix_millis;
pub use job::{Cancellation, JobRequest};
pub use outcome::{Failure, Outcome, RetryRequest};
pub use manifest::{parse_toml, DirGrant, DirMode, Grants, Manifest, ManifestError};
pub use plugin::{LoadError, Plugin, TaskDefaults, TaskInfo};
pub use registry::{empty_folder_hint, Registry, ResolveError};
pub use watch::{watch, SharedRegistry, WatchHandle};

/// Bindings generated once from `wit/`, the contract every plugin targets.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "plugin",
    });
}

/// The request context a task sees (WIT `context`).
pub use bindings::chard::task::types::Context as JobContext;

/// A context with only the id and name set; callers fill in the rest.
pub fn job_context(task_id: &str, task_name: &str) -> JobContext {
    JobContext {
        task_id: task_id.to_string(),
        task_name: task_name.to_string(),
        root_id: Some(task_id.to_string()),
        parent_id: None,
        group_id: None,
        group_index: None,
        retries: 0,
        max_retries: None,
        eta: None,
        expires: None,
        priority: 0,
        time_limit_ms: None,
        soft_time_limit_ms: None,
        soft_deadline_ms: None,
        hostname: String::new(),
        headers: "{}".to_string(),
    }
}
