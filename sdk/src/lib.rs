//! Write Chard tasks in Rust.
//!
//! A task is a plain function. `#[task]` writes the glue that binds Celery's
//! positional and keyword arguments to the function's parameters (with serde)
//! and turns the return value into JSON; `export_tasks!` exports the listed
//! tasks as a WebAssembly component that any Chard worker can load:
//!
//! ```text
//! use chard_sdk::{task, TaskError};
//!
//! #[task]
//! fn add(x: i64, y: i64) -> i64 { x + y }
//!
//! #[task(time_limit = 5, max_retries = 3)]
//! fn charge(card: String, cents: u64) -> Result<String, TaskError> {
//!     if cents == 0 { return Err(TaskError::failed_as("ValueError", "nothing to charge")); }
//!     Ok(format!("charged {cents} to {card}"))
//! }
//!
//! chard_sdk::export_tasks!(add, charge);
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2 --release`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is the plugin.
//!
//! A task that wants to know about its job (task id, retry count, soft
//! deadline, headers, delivery info) takes a `&Context` parameter anywhere in
//! its signature; it is filled by the worker, not from the message's
//! arguments. `Args` and `Kwargs` parameters take Python's `*args` and
//! `**kwargs`; a `Maybe<T>` parameter tells a missing argument from `null`.
//!
//! What a task can do besides computing, each only when the plugin's
//! manifest grants it: report progress ([`update_state`], `progress = true`),
//! send and replace tasks ([`canvas`], `send = true`), keep state across jobs
//! ([`keyvalue`], `keyvalue = true`), call HTTP APIs ([`http`], origins
//! listed under `http`).
//!
//! This SDK targets the `chard:task@0.2.0` world (`wit/chard.wit`); workers
//! keep running plugins built with the 0.1 SDK.

extern crate self as chard_sdk;

pub use chard_sdk_macros::{export_tasks, task};

mod args;
pub mod canvas;
mod error;
pub mod http;
pub mod keyvalue;
mod log;
mod progress;

pub use args::{Args, Kwargs, Maybe};
pub use error::TaskError;
pub use log::{log, Level};
pub use progress::update_state;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin",
        default_bindings_module: "chard_sdk::bindings",
        runtime_path: "chard_sdk::__private::wit_bindgen::rt",
    });
}

/// What the worker tells a task about the job it runs (Celery's request).
pub type Context = bindings::chard::task::types::Context;

/// Where the message came from (`context.delivery_info`).
pub type DeliveryInfo = bindings::chard::task::types::DeliveryInfo;

/// Defaults a task declares with `#[task(...)]`.
pub type TaskDefaults = bindings::chard::task::types::TaskDefaults;

/// Wall-clock time as Unix milliseconds, as the worker sees it. The wall
/// clock is a capability: without `wall_clock = true` in the plugin's
/// manifest the job traps. Use `std::time::Instant` to measure durations.
pub fn now_ms() -> u64 {
    bindings::chard::task::host::now_ms()
}

/// When this job started, on the monotonic clock (every job runs in a fresh
/// instance, so this static is per job).
static JOB_STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// True once the job's soft time limit has passed: a long task should check
/// this and return early (the hard limit stops it regardless). Measured on
/// the monotonic clock, so it needs no wall-clock grant.
pub fn soft_deadline_passed(context: &Context) -> bool {
    let elapsed = JOB_STARTED.get().map(|started| started.elapsed().as_millis() as u64).unwrap_or(0);
    context.soft_time_limit_ms.is_some_and(|limit| elapsed >= limit)
}

/// Items the macros expand to. Not a public API.
#[doc(hidden)]
pub mod __private {
    /// Called by the generated `run` before the task: starts the job's clock.
    pub fn job_started() {
        let _ = super::JOB_STARTED.set(std::time::Instant::now());
    }
    pub use crate::args::{bind_arguments, decode_argument, decode_maybe, encode_result, Shape};
    pub use crate::bindings::chard::task::types::{
        TaskDefaults, TaskError as WitTaskError, TaskInfo,
    };
    pub use crate::bindings::exports::chard::task::tasks::Guest;
    pub use serde_json;
    pub use wit_bindgen;

    /// Implemented by `#[task]` for a hidden type per task.
    pub trait Task {
        const NAME: &'static str;
        fn info() -> TaskInfo;
        fn call(
            args: &str,
            kwargs: &str,
            context: &crate::Context,
        ) -> Result<String, WitTaskError>;
    }

    /// The answer for a task name the plugin does not export.
    pub fn unknown_task(name: &str) -> WitTaskError {
        crate::TaskError::failed_as("NotRegistered", name.to_string()).into()
    }
}
