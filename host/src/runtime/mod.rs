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
mod canvas;
mod engine;
mod http;
mod job;
mod keyvalue;
mod manifest;
mod names;
mod origin;
mod outcome;
mod plugin;
mod progress;
mod policy;
mod registry;
mod signature;
mod wasm_kind;
mod watch;
mod world;

pub use canvas::{Prepared, TaskSender};
pub use engine::{default_cache_dir, EngineOptions, Runtime, TICK};
pub use job::unix_millis;
pub use job::{Cancellation, Effects, Finished, JobRequest, Services};
pub use http::{HttpClient, HttpOrigin};
pub use keyvalue::KeyValueStore;
pub use outcome::{Failure, Outcome, RetryRequest};
pub use manifest::{parse_toml, DirGrant, DirMode, Grants, Manifest, ManifestError, Requested};
pub use origin::{origin_of, DeployRecord, Origin, Written, RECORD_FILE};
pub use policy::{AllowedDir, Allowance, Policy, PolicyFile, Refusal};
pub use plugin::{LoadError, Plugin, TaskDefaults, TaskInfo};
pub use progress::ProgressSink;
pub use registry::{empty_folder_hint, Registry, ResolveError};
pub use signature::TaskSignature;
pub use watch::{watch, ReloadHook, SharedRegistry, WatchHandle};

/// Bindings generated once per world, the contracts plugins target. A
/// component is run with the bindings of the `tasks` interface it exports
/// (see `world`).
pub mod bindings {
    /// `chard:task@0.2.0` (`wit/chard.wit`): what the SDKs build today.
    /// Imports are trappable: a capability the manifest does not grant
    /// ends the job with a message, not an error value the guest could
    /// swallow.
    pub mod v0_2 {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "plugin",
            imports: { default: trappable },
        });
    }

    /// `chard:task@0.1.0` (`wit/v0.1`), frozen: plugins built before 0.2.
    pub mod v0_1 {
        wasmtime::component::bindgen!({
            path: "../wit/v0.1",
            world: "plugin",
        });
    }
}

/// The request context a task sees (WIT `context`, 0.2: the superset;
/// a 0.1 plugin gets its subset).
pub use bindings::v0_2::chard::task::types::Context as JobContext;
pub use bindings::v0_2::chard::task::types::DeliveryInfo as JobDeliveryInfo;

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
        correlation_id: None,
        reply_to: None,
        delivery_info: JobDeliveryInfo { priority: None, routing_key: None, exchange: None, redelivered: false },
        requested_time_limit_ms: None,
        requested_soft_time_limit_ms: None,
    }
}
