//! The worker's side of fleet deploy (`host run --sync`): bring the plugin
//! folder in line with what was deployed, and keep it so.
//!
//! For each deployed name, in this order: the name must not belong to a
//! plugin a person installed (a `.wasm` or `.toml` of that name that fleet
//! sync did not write, see `runtime::origin`); the deployment must be signed
//! by a trusted key (unless the worker runs with `--sync-unsigned`); each
//! blob's bytes must match its hash. Only then is the name recorded as
//! deployed and its files written, manifest first, each under a temporary
//! name and renamed into place. Anything refused is logged once, in one
//! line, and the folder is left as it was, so the previous version keeps
//! serving.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;

use super::{blob_key, deployed, sha256_hex, sign, valid_name, Deployment, DEPLOY_CHANNEL, RESYNC_EVERY};
use crate::runtime::{DeployRecord, Written};

/// Which deployments a worker accepts.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Only those signed by one of these keys (`--trust-key`).
    Keys(Vec<ed25519_dalek::VerifyingKey>),
    /// Any, signed or not (`--sync-unsigned`): for development only.
    Unsigned,
}

/// Keeps one plugin folder in line with the deployed set.
pub struct Syncer {
    dir: PathBuf,
    trust: Trust,
    /// The last refusal logged per name, so a refusal is logged once rather
    /// than on every resync.
    refused: HashMap<String, String>,
}

impl Syncer {
    pub fn new(dir: PathBuf, trust: Trust) -> Self {
        Self { dir, trust, refused: HashMap::new() }
    }

    /// Brings the folder in line with the deployed set; returns the names
    /// it wrote. A plugin that cannot be verified or fetched is logged and
    /// left as it is.
    pub async fn sync_once(&mut self, connection: &mut impl redis::aio::ConnectionLike) -> anyhow::Result<Vec<String>> {
        let mut written = Vec::new();
        for (name, deployment) in deployed(connection).await? {
            match self.sync_plugin(connection, &name, &deployment).await {
                Ok(wrote) => {
                    self.refused.remove(&name);
                    if wrote {
                        written.push(name);
                    }
                }
                Err(error) => {
                    let message = format!("{error:#}");
                    if self.refused.get(&name) != Some(&message) {
                        tracing::error!(plugin = name, "deployed plugin refused, previous version keeps serving: {message}");
                        self.refused.insert(name, message);
                    }
                }
            }
        }
        Ok(written)
    }

    async fn sync_plugin(
        &self,
        connection: &mut impl redis::aio::ConnectionLike,
        name: &str,
        deployment: &Deployment,
    ) -> anyhow::Result<bool> {
        anyhow::ensure!(valid_name(name), "deployed name {name:?} is not a plugin name");
        let wasm_path = self.dir.join(format!("{name}.wasm"));
        let manifest_path = self.dir.join(format!("{name}.toml"));
        let mut record = DeployRecord::load(&self.dir)?;
        if !record.manages(name) {
            if let Some(local) = [&wasm_path, &manifest_path].into_iter().find(|path| path.exists()) {
                anyhow::bail!(
                    "{} was installed by hand, and a deploy never replaces it (remove it to let deploys manage {name})",
                    local.display()
                );
            }
        }
        let wasm_current = file_hash(&wasm_path).as_deref() == Some(deployment.wasm.as_str());
        let manifest_current = file_hash(&manifest_path) == deployment.manifest;
        if wasm_current && manifest_current && record.manages(name) {
            return Ok(false);
        }
        let signer = self.check_signature(name, deployment)?;
        // Fetch and verify everything before touching the folder.
        let wasm = if wasm_current { None } else { Some(fetch_blob(connection, &deployment.wasm).await?) };
        let manifest = match (&deployment.manifest, manifest_current) {
            (Some(hash), false) => Some(fetch_blob(connection, hash).await?),
            _ => None,
        };
        // Recorded before the files are written: see `runtime::origin`.
        record.plugins.insert(name.to_string(), Written { wasm: deployment.wasm.clone(), manifest: deployment.manifest.clone() });
        record.save(&self.dir)?;
        match manifest {
            Some(bytes) => write_atomically(&manifest_path, &bytes)?,
            None if deployment.manifest.is_none() && manifest_path.exists() => std::fs::remove_file(&manifest_path)?,
            None => {}
        }
        if let Some(bytes) = wasm {
            write_atomically(&wasm_path, &bytes)?;
        }
        tracing::info!(
            plugin = name,
            version = &deployment.wasm[..12],
            label = deployment.label.as_deref().unwrap_or("-"),
            signed_by = signer.as_deref().unwrap_or("unsigned"),
            "synced deployed plugin"
        );
        Ok(true)
    }

    /// The id of the trusted key that signed `deployment`, `None` when the
    /// worker accepts unsigned deploys; an error when it is not acceptable.
    fn check_signature(&self, name: &str, deployment: &Deployment) -> anyhow::Result<Option<String>> {
        let Trust::Keys(keys) = &self.trust else { return Ok(None) };
        let Some(signature) = &deployment.signature else {
            anyhow::bail!("the deploy is not signed (`host deploy --sign-key KEY`), and this worker accepts only signed deploys");
        };
        match sign::verify(keys, &deployment.statement(name), signature) {
            Some(id) => Ok(Some(id)),
            None => anyhow::bail!(
                "its signature (key {}) does not verify with any --trust-key of this worker",
                deployment.signed_by.as_deref().unwrap_or("unknown")
            ),
        }
    }
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

/// Keeps the folder in sync until the process ends: follows announcements,
/// and re-reads everything every [`RESYNC_EVERY`] and after a reconnect.
pub async fn follow(client: redis::Client, mut connection: redis::aio::ConnectionManager, mut syncer: Syncer) {
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
        resync(&mut syncer, &mut connection).await;
        let mut messages = pubsub.on_message();
        loop {
            tokio::select! {
                message = messages.next() => match message {
                    Some(_) => resync(&mut syncer, &mut connection).await,
                    None => break, // connection lost: subscribe again
                },
                _ = tokio::time::sleep(RESYNC_EVERY) => resync(&mut syncer, &mut connection).await,
            }
        }
        tracing::warn!("deploy sync: lost the subscription; reconnecting");
    }
}

async fn resync(syncer: &mut Syncer, connection: &mut redis::aio::ConnectionManager) {
    if let Err(error) = syncer.sync_once(connection).await {
        tracing::warn!("deploy sync failed: {error:#}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
