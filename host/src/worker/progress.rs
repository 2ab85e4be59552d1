//! Progress reports (`chard:task/progress`, Celery's `update_state`).
//!
//! A report is a write to the task's result key, like Celery's, but it
//! must not cost the job a Redis round trip nor flood Redis from a tight
//! loop. So the guest's call only records the latest report per job in a
//! board (no I/O); a flusher writes whatever is pending every 100 ms, in
//! one pipeline. Within one 100 ms window the last report wins.
//!
//! Never after the final state: when a job ends, the executor removes its
//! entry before the plan goes to the completer, and the write itself is a
//! Lua script that refuses to overwrite a ready state (SUCCESS, FAILURE,
//! REVOKED), which covers a flush already in flight.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::backend::{ResultBackend, ResultWrite};
use crate::protocol::result_key;
use crate::runtime::ProgressSink;

/// How often pending reports are written.
pub(super) const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// The latest unwritten report of each running job.
#[derive(Default)]
pub(super) struct ProgressBoard {
    pending: Mutex<HashMap<String, (String, Value)>>,
}

impl ProgressSink for ProgressBoard {
    fn update(&self, task_id: &str, state: &str, meta: Value) {
        self.pending.lock().unwrap().insert(task_id.to_string(), (state.to_string(), meta));
    }
}

impl ProgressBoard {
    /// The job ended: what it reported last is not written any more.
    pub(super) fn finish(&self, task_id: &str) {
        self.pending.lock().unwrap().remove(task_id);
    }

    fn take(&self) -> HashMap<String, (String, Value)> {
        std::mem::take(&mut *self.pending.lock().unwrap())
    }
}

/// Celery's document for `store_result(task_id, meta, state)`.
fn document(task_id: &str, state: &str, meta: Value) -> String {
    json!({
        "status": state, "result": meta, "traceback": null, "children": [],
        "date_done": null, "task_id": task_id,
    })
    .to_string()
}

/// Writes pending reports every [`FLUSH_EVERY`] until the worker stops.
pub(super) async fn flush_loop<R: ResultBackend>(board: Arc<ProgressBoard>, backend: R, result_expires: Duration) {
    let mut ticker = tokio::time::interval(FLUSH_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let pending = board.take();
        if pending.is_empty() {
            continue;
        }
        let writes: Vec<ResultWrite> = pending
            .into_iter()
            .map(|(id, (state, meta))| ResultWrite { key: result_key(&id), json: document(&id, &state, meta), ttl: result_expires })
            .collect();
        // Progress is advisory: a report that cannot be written is
        // superseded by the next one or by the final state.
        if let Err(error) = backend.store_progress(&writes).await {
            tracing::warn!(%error, reports = writes.len(), "cannot store progress reports; dropped");
        }
    }
}
