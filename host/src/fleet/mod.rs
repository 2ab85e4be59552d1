//! Fleet deploy: ship a plugin to every worker through Redis, no restart.
//!
//! `host deploy` stores the `.wasm` (and its manifest) in Redis under its
//! SHA-256, records `name → {wasm, manifest}` in one hash, and announces the
//! name on a pub/sub channel. A worker started with `--sync` brings its
//! plugin folder in line with that hash: at start, on every announcement,
//! and every [`RESYNC_EVERY`] in case it missed one (a Redis restart, a
//! network cut). It verifies each blob's hash before writing it, writes the
//! manifest before the `.wasm`, and writes each file under a temporary name
//! then renames it into place, so the folder watcher (`runtime::watch`)
//! only ever sees whole files and reloads the plugin as usual.
//!
//! Decisions worth knowing:
//! - **Content addressing.** Blobs never change once written, so a worker
//!   that reads the hash and then the blob can never mix versions, and a
//!   rollback is a deploy of the previous file: its blob is still there.
//! - **Redis is the source of truth for deployed plugins, the folder for
//!   the rest.** Sync only touches names that were deployed; a plugin that
//!   was dropped into one worker's folder by hand stays as it is.
//! - **Signed, and capped by the worker.** A worker applies a deployment
//!   only if a key it trusts signed it (`sign`), never over a plugin a
//!   person installed (`runtime::origin`), and the worker's policy caps what
//!   a deployed manifest may grant (`runtime::policy`).
//! - **Who runs what** is reported by every worker (not only `--sync` ones)
//!   in `chard:workers`, refreshed every [`REPORT_EVERY`]; `host plugins
//!   list` compares it with what was deployed.

pub mod sign;
mod sync;

pub use sync::{follow, write_atomically, Syncer, Trust};

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::Digest;

/// `name → Deployment` (JSON) for every deployed plugin.
pub const DEPLOYED_KEY: &str = "chard:plugins";
/// Where a deploy is announced (payload: the plugin name).
pub const DEPLOY_CHANNEL: &str = "chard:plugins:deployed";
/// `hostname → WorkerReport` (JSON) for every worker.
pub const WORKERS_KEY: &str = "chard:workers";
/// How often a worker re-reads the deployed set even without an announcement.
pub const RESYNC_EVERY: Duration = Duration::from_secs(30);
/// How often a worker refreshes its report.
pub const REPORT_EVERY: Duration = Duration::from_secs(5);
/// A report older than this is from a worker that is gone.
pub const REPORT_STALE_AFTER: Duration = Duration::from_secs(20);

fn blob_key(sha256: &str) -> String {
    format!("chard:plugin:blob:{sha256}")
}

/// Full SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// What `host deploy` recorded for a plugin name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// SHA-256 of the `.wasm`.
    pub wasm: String,
    /// SHA-256 of the manifest, if one was deployed with it.
    pub manifest: Option<String>,
    /// The manifest's `version` label, if any.
    pub label: Option<String>,
    pub size: u64,
    /// ISO-8601 time of the deploy.
    pub deployed_at: String,
    /// Ed25519 signature (base64) of [`sign::statement`] for this deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Id of the key that signed it ([`sign::key_id`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
}

impl Deployment {
    /// The statement a signature of this deployment of `name` covers.
    pub fn statement(&self, name: &str) -> String {
        sign::statement(name, self.label.as_deref(), &self.wasm, self.manifest.as_deref())
    }
}

/// One plugin as a worker serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningPlugin {
    /// Short content hash (`Plugin::version`): the first 12 hex digits of the
    /// `.wasm`'s SHA-256.
    pub version: String,
    pub label: Option<String>,
}

/// What a worker reports about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerReport {
    pub hostname: String,
    pub pid: u32,
    /// Unix seconds of the report.
    pub seen: f64,
    pub sync: bool,
    pub plugins: BTreeMap<String, RunningPlugin>,
}

/// Stores `wasm` (and `manifest`) under their hashes, records them as the
/// deployed version of `name` (signed with `key`, if given), and announces
/// it. Returns the deployment and how many workers heard the announcement.
pub async fn deploy(
    connection: &mut impl redis::aio::ConnectionLike,
    name: &str,
    wasm: &[u8],
    manifest: Option<&[u8]>,
    label: Option<String>,
    key: Option<&ed25519_dalek::SigningKey>,
) -> redis::RedisResult<(Deployment, usize)> {
    let mut deployment = Deployment {
        wasm: sha256_hex(wasm),
        manifest: manifest.map(sha256_hex),
        label,
        size: wasm.len() as u64,
        deployed_at: crate::protocol::iso_now(),
        signature: None,
        signed_by: None,
    };
    if let Some(key) = key {
        let (signature, id) = sign::sign(key, &deployment.statement(name));
        deployment.signature = Some(signature);
        deployment.signed_by = Some(id);
    }
    let mut pipe = redis::pipe();
    pipe.atomic();
    pipe.cmd("SET").arg(blob_key(&deployment.wasm)).arg(wasm).arg("NX").ignore();
    if let (Some(bytes), Some(hash)) = (manifest, &deployment.manifest) {
        pipe.cmd("SET").arg(blob_key(hash)).arg(bytes).arg("NX").ignore();
    }
    let record = serde_json::to_string(&deployment).expect("a deployment serialises");
    pipe.hset(DEPLOYED_KEY, name, record).ignore();
    pipe.publish(DEPLOY_CHANNEL, name);
    let (listeners,): (usize,) = pipe.query_async(connection).await?;
    Ok((deployment, listeners))
}

/// Every deployed plugin, by name.
pub async fn deployed(connection: &mut impl redis::aio::ConnectionLike) -> anyhow::Result<BTreeMap<String, Deployment>> {
    let raw: BTreeMap<String, String> = redis::cmd("HGETALL").arg(DEPLOYED_KEY).query_async(connection).await?;
    let mut deployed = BTreeMap::new();
    for (name, text) in raw {
        match serde_json::from_str(&text) {
            Ok(deployment) => {
                deployed.insert(name, deployment);
            }
            Err(error) => tracing::warn!(plugin = name, %error, "ignoring an unreadable deployment record"),
        }
    }
    Ok(deployed)
}

/// A plugin name: a file stem without dots or path separators.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['.', '/', '\\']) && !name.starts_with('-')
}

/// Records `report` in [`WORKERS_KEY`].
pub async fn report(connection: &mut impl redis::aio::ConnectionLike, report: &WorkerReport) -> redis::RedisResult<()> {
    let text = serde_json::to_string(report).expect("a report serialises");
    redis::cmd("HSET").arg(WORKERS_KEY).arg(&report.hostname).arg(text).query_async(connection).await
}

/// Removes a worker's report (graceful shutdown).
pub async fn withdraw(connection: &mut impl redis::aio::ConnectionLike, hostname: &str) -> redis::RedisResult<()> {
    redis::cmd("HDEL").arg(WORKERS_KEY).arg(hostname).query_async(connection).await
}

/// Live workers' reports, by hostname; stale ones are dropped from Redis.
pub async fn workers(connection: &mut impl redis::aio::ConnectionLike) -> anyhow::Result<Vec<WorkerReport>> {
    let raw: BTreeMap<String, String> = redis::cmd("HGETALL").arg(WORKERS_KEY).query_async(connection).await?;
    let now = crate::runtime::unix_millis() as f64 / 1000.0;
    let mut live = Vec::new();
    for (hostname, text) in raw {
        match serde_json::from_str::<WorkerReport>(&text) {
            Ok(report) if now - report.seen < REPORT_STALE_AFTER.as_secs_f64() => live.push(report),
            _ => {
                let _: () = redis::cmd("HDEL").arg(WORKERS_KEY).arg(&hostname).query_async(connection).await?;
            }
        }
    }
    Ok(live)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_file_stems() {
        assert!(valid_name("math"));
        assert!(valid_name("py_math-2"));
        for bad in ["", "a.b", "../x", "a/b", "-rf"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
