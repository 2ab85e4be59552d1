//! `chard:task/progress`: Celery's `self.update_state(state, meta)`.
//!
//! The runtime only checks the grant and the input; storing is the worker's
//! ([`ProgressSink`]), because it needs the result backend and knows
//! Celery's result format. The sink must not block on Redis: the call runs
//! on the job's thread, inside the guest. The worker's sink coalesces (the
//! last report per job within 100 ms wins) and drops what is pending when
//! the job ends, so a progress report never lands after the final state.

use super::bindings::v0_2::chard::task::progress::Host;
use super::job::JobState;

/// Celery's ready states: a report in one of them would look like the end
/// of the job while it still runs.
const READY_STATES: [&str; 3] = ["SUCCESS", "FAILURE", "REVOKED"];

/// Where progress reports go; supplied by the worker.
pub trait ProgressSink: Send + Sync {
    /// Records `{"status": state, "result": meta}` for `task_id`. Must not
    /// block.
    fn update(&self, task_id: &str, state: &str, meta: serde_json::Value);
}

impl Host for JobState {
    fn update_state(&mut self, state: String, meta_json: String) -> wasmtime::Result<Result<(), String>> {
        if !self.grants.progress {
            return Err(self.denied("progress (update-state)", "progress"));
        }
        if state.is_empty() || READY_STATES.contains(&state.as_str()) {
            return Ok(Err(format!("update-state: {state:?} is not a progress state (use e.g. \"PROGRESS\"; the job's own end sets SUCCESS or FAILURE)")));
        }
        let meta = match serde_json::from_str(&meta_json) {
            Ok(meta) => meta,
            Err(error) => return Ok(Err(format!("update-state: meta is not JSON: {error}"))),
        };
        match &self.services.progress {
            Some(sink) => {
                sink.update(&self.task_id, &state, meta);
                Ok(Ok(()))
            }
            None => Ok(Err("update-state: progress is not available here (no result backend)".into())),
        }
    }
}
