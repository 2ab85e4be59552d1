//! Progress reports for clients that poll a running task (Celery's
//! `self.update_state`). Needs `progress = true` under `[capabilities]`.

use serde::Serialize;

use crate::TaskError;

/// Stores `{"status": state, "result": meta}` under this task's result key,
/// so a Python client sees `AsyncResult(id).state == state` and
/// `.info == meta` while the job runs. Writes are coalesced by the worker
/// (at most one per 100 ms per job, the last one wins).
///
/// ```text
/// chard_sdk::update_state("PROGRESS", &json!({"current": i, "total": 10}))?;
/// ```
pub fn update_state(state: &str, meta: &impl Serialize) -> Result<(), TaskError> {
    let meta = serde_json::to_string(meta)?;
    crate::bindings::chard::task::progress::update_state(state, &meta).map_err(TaskError::failed)
}
