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
//! - **Who runs what** is reported by every worker (not only `--sync` ones)
//!   in `chard:workers`, refreshed every [`REPORT_EVERY`]; `host plugins
//!   list` compares it with what was deployed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
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
/// deployed version of `name`, and announces it. Returns the deployment
/// and how many workers heard the announcement.
pub async fn deploy(
    connection: &mut impl redis::aio::ConnectionLike,
    name: &str,
    wasm: &[u8],
    manifest: Option<&[u8]>,
    label: Option<String>,
) -> redis::RedisResult<(Deployment, usize)> {
    let deployment = Deployment {
        wasm: sha256_hex(wasm),
        manifest: manifest.map(sha256_hex),
        label,
        size: wasm.len() as u64,
        deployed_at: crate::protocol::iso_now(),
    };
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

/// Brings `dir` in line with the deployed set; returns the names it wrote.
/// A plugin that cannot be fetched or verified is logged and left as it is.
pub async fn sync_once(connection: &mut impl redis::aio::ConnectionLike, dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut written = Vec::new();
    for (name, deployment) in deployed(connection).await? {
        match sync_plugin(connection, dir, &name, &deployment).await {
            Ok(true) => written.push(name),
            Ok(false) => {}
            Err(error) => tracing::error!(plugin = name, "deployed plugin not synced: {error:#}"),
        }
    }
    Ok(written)
}

async fn sync_plugin(
    connection: &mut impl redis::aio::ConnectionLike,
    dir: &Path,
    name: &str,
    deployment: &Deployment,
) -> anyhow::Result<bool> {
    anyhow::ensure!(valid_name(name), "deployed name {name:?} is not a plugin name");
    let wasm_path = dir.join(format!("{name}.wasm"));
    let manifest_path = dir.join(format!("{name}.toml"));
    let wasm_current = file_hash(&wasm_path).as_deref() == Some(deployment.wasm.as_str());
    let manifest_current = file_hash(&manifest_path) == deployment.manifest;
    if wasm_current && manifest_current {
        return Ok(false);
    }
    // Fetch and verify everything before touching the folder.
    let wasm = if wasm_current { None } else { Some(fetch_blob(connection, &deployment.wasm).await?) };
    let manifest = match (&deployment.manifest, manifest_current) {
        (Some(hash), false) => Some(fetch_blob(connection, hash).await?),
        _ => None,
    };
    match manifest {
        Some(bytes) => write_atomically(&manifest_path, &bytes)?,
        None if deployment.manifest.is_none() && manifest_path.exists() => std::fs::remove_file(&manifest_path)?,
        None => {}
    }
    if let Some(bytes) = wasm {
        write_atomically(&wasm_path, &bytes)?;
    }
    tracing::info!(plugin = name, version = &deployment.wasm[..12], label = deployment.label.as_deref().unwrap_or("-"), "synced deployed plugin");
    Ok(true)
}

async fn fetch_blob(connection: &mut impl redis::aio::ConnectionLike, hash: &str) -> anyhow::Result<Vec<u8>> {
    let bytes: Option<Vec<u8>> = redis::cmd("GET").arg(blob_key(hash)).query_async(connection).await?;
    let bytes = bytes.ok_or_else(|| anyhow::anyhow!("blob {hash} is missing from Redis"))?;
    let actual = sha256_hex(&bytes);
    anyhow::ensure!(actual == hash, "blob {hash} has hash {actual}: refusing it");
    Ok(bytes)
}

fn file_hash(path: &Path) -> Option<String> {
    std::fs::read(path).ok().map(|bytes| sha256_hex(&bytes))
}

/// Writes `bytes` to a hidden temporary file beside `path`, syncs it, and
/// renames it over `path`: readers see the old file or the new, never half.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let file_name = path.file_name().and_then(|name| name.to_str()).unwrap_or("plugin");
    let temporary: PathBuf = path.with_file_name(format!(".{file_name}.{}.partial", std::process::id()));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)
}

/// A plugin name: a file stem without dots or path separators.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['.', '/', '\\']) && !name.starts_with('-')
}

/// Keeps `dir` in sync until the process ends: follows announcements, and
/// re-reads everything every [`RESYNC_EVERY`] and after a reconnect.
pub async fn follow(client: redis::Client, mut connection: redis::aio::ConnectionManager, dir: PathBuf) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let mut pubsub = match client.get_async_pubsub().await {
            Ok(pubsub) => pubsub,
            Err(error) => {
                tracing::warn!(%error, "deploy sync: cannot subscribe; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if let Err(error) = pubsub.subscribe(DEPLOY_CHANNEL).await {
            tracing::warn!(%error, "deploy sync: cannot subscribe; retrying");
            tokio::time::sleep(backoff).await;
            continue;
        }
        backoff = Duration::from_millis(200);
        // Anything deployed while we were not listening.
        resync(&mut connection, &dir).await;
        let mut messages = pubsub.on_message();
        loop {
            tokio::select! {
                message = messages.next() => match message {
                    Some(_) => resync(&mut connection, &dir).await,
                    None => break, // connection lost: subscribe again
                },
                _ = tokio::time::sleep(RESYNC_EVERY) => resync(&mut connection, &dir).await,
            }
        }
        tracing::warn!("deploy sync: lost the subscription; reconnecting");
    }
}

async fn resync(connection: &mut redis::aio::ConnectionManager, dir: &Path) {
    if let Err(error) = sync_once(connection, dir).await {
        tracing::warn!("deploy sync failed: {error:#}");
    }
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

    #[test]
    fn atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("math.wasm");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(file_hash(&path).unwrap(), sha256_hex(b"two"));
    }
}
