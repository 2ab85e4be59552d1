//! REVOKED for revoked ids this worker does not hold, as Celery's worker
//! does on `revoke` (`worker/control.py` `_revoke`): a client waiting on a
//! task that was revoked before any worker received it gets
//! `TaskRevokedError` instead of waiting forever.
//!
//! Celery's rules: a task that already has a result keeps it, and one that
//! another worker has started (STARTED, or a custom state) is left to that
//! worker; only PENDING, RECEIVED, RETRY and REJECTED become REVOKED. Ids
//! this worker is running are skipped here: their own outcome is stored
//! when they stop. The check and the write are two round trips, as in
//! Celery.

use std::time::Duration;

use serde_json::Value;

use crate::backend::{ResultBackend, ResultWrite};
use crate::protocol::result::ResultValue;
use crate::protocol::{result_key, ExceptionInfo, ResultMeta, State};

/// States a revoke may overwrite.
const REVOCABLE: [&str; 4] = ["PENDING", "RECEIVED", "RETRY", "REJECTED"];

pub(super) async fn revoke_loop<R: ResultBackend>(backend: R, requests: flume::Receiver<Vec<String>>, ttl: Duration) {
    while let Ok(ids) = requests.recv_async().await {
        let mut writes = Vec::new();
        for id in ids {
            let state = match backend.get(&result_key(&id)).await {
                Ok(Some(document)) => serde_json::from_str::<Value>(&document)
                    .ok()
                    .and_then(|document| document["status"].as_str().map(str::to_string))
                    .unwrap_or_else(|| "PENDING".into()),
                Ok(None) => "PENDING".into(),
                Err(error) => {
                    tracing::warn!(%error, %id, "cannot read the state of a revoked task");
                    continue;
                }
            };
            if REVOCABLE.contains(&state.as_str()) {
                let result = ResultValue::Exception(ExceptionInfo::new("celery.exceptions", "TaskRevokedError", "revoked"));
                let meta = ResultMeta::new(&id, State::Revoked, result);
                writes.push(ResultWrite { key: result_key(&id), json: meta.to_json(), ttl });
            }
        }
        if let Err(error) = backend.store(&writes).await {
            tracing::warn!(%error, "cannot store REVOKED for revoked tasks");
        }
    }
}
