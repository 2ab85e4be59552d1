//! `host deploy` and `host plugins list`: fleet deploy through Redis (see
//! `fleet`).
//!
//! A deploy is checked here before anything reaches Redis: the component
//! must compile and link against our world, and its manifest must parse
//! and name only tasks the plugin has. Grants are not resolved here (a
//! directory or host name may exist only on the workers); each worker
//! resolves them when it loads the plugin, and keeps its previous version
//! if that fails.

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;

use crate::client::{open, redact};
use crate::config::{DeployConfig, PluginsListConfig};
use crate::fleet;
use crate::runtime::{Manifest, Plugin};

pub async fn deploy(config: DeployConfig) -> anyhow::Result<()> {
    let name = match &config.name {
        Some(name) => name.clone(),
        None => config.plugin.file_stem().and_then(|stem| stem.to_str()).unwrap_or_default().to_string(),
    };
    anyhow::ensure!(fleet::valid_name(&name), "plugin name {name:?} must be a file stem without dots or slashes");
    let wasm = std::fs::read(&config.plugin).with_context(|| format!("reading {}", config.plugin.display()))?;
    let manifest_path = match (&config.manifest, config.no_manifest) {
        (_, true) => None,
        (Some(path), false) => Some(path.clone()),
        (None, false) => Some(Manifest::path_for(&config.plugin)).filter(|path| path.is_file()),
    };
    let manifest_text = match &manifest_path {
        Some(path) => Some(std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?),
        None => None,
    };
    let label = check(&name, &wasm, manifest_path.as_deref().zip(manifest_text.as_deref()))?;

    let client = open(&config.broker_url)?;
    let mut connection = crate::client::connect_once(&client).await?;
    let (deployment, listeners) =
        fleet::deploy(&mut connection, &name, &wasm, manifest_text.as_deref().map(str::as_bytes), label).await?;
    println!(
        "deployed {name} {}{}{} to {}; {listeners} syncing worker(s) notified",
        &deployment.wasm[..12],
        deployment.label.as_deref().map(|label| format!(" v{label}")).unwrap_or_default(),
        if deployment.manifest.is_some() { " with manifest" } else { "" },
        redact(&config.broker_url),
    );
    Ok(())
}

/// Compiles the plugin and checks the manifest against it; returns the
/// manifest's version label.
fn check(name: &str, wasm: &[u8], manifest: Option<(&Path, &str)>) -> anyhow::Result<Option<String>> {
    let manifest = match manifest {
        Some((path, text)) => Manifest::parse_portable(path, text)?,
        None => Manifest::default(),
    };
    let label = manifest.version.clone();
    let runtime = super::small_runtime(128 << 20)?;
    let plugin = Plugin::from_bytes(&runtime, Path::new(&format!("{name}.wasm")), wasm, manifest)?;
    anyhow::ensure!(!plugin.tasks().is_empty(), "{name}.wasm exports no tasks");
    Ok(label)
}

pub async fn list(config: PluginsListConfig) -> anyhow::Result<()> {
    let client = open(&config.broker_url)?;
    let mut connection = crate::client::connect_once(&client).await?;
    let deployed = fleet::deployed(&mut connection).await?;
    let workers = fleet::workers(&mut connection).await?;
    let mut names: std::collections::BTreeSet<&String> = deployed.keys().collect();
    for worker in &workers {
        names.extend(worker.plugins.keys());
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<16} {:<22} {:<28} {:<22} STATUS", "PLUGIN", "DEPLOYED", "WORKER", "RUNNING")?;
    for name in names {
        let deployed_version = deployed.get(name).map(|d| version_text(&d.wasm[..12], d.label.as_deref()));
        let wanted = deployed.get(name).map(|d| &d.wasm[..12]);
        let mut any = false;
        for worker in &workers {
            let running = worker.plugins.get(name);
            if running.is_none() && wanted.is_none() {
                continue;
            }
            any = true;
            let status = match (wanted, running) {
                (Some(wanted), Some(running)) if running.version == wanted => "current",
                (Some(_), Some(_)) if worker.sync => "syncing",
                (Some(_), Some(_)) => "differs (worker not started with --sync)",
                (Some(_), None) if worker.sync => "syncing",
                (Some(_), None) => "missing (worker not started with --sync)",
                (None, Some(_)) => "local (not deployed)",
                (None, None) => unreachable!(),
            };
            let running_text = running.map(|r| version_text(&r.version, r.label.as_deref())).unwrap_or_else(|| "-".into());
            writeln!(
                out,
                "{:<16} {:<22} {:<28} {:<22} {status}",
                name,
                deployed_version.as_deref().unwrap_or("-"),
                worker.hostname,
                running_text
            )?;
        }
        if !any {
            writeln!(out, "{:<16} {:<22} {:<28} {:<22} no live worker", name, deployed_version.as_deref().unwrap_or("-"), "-", "-")?;
        }
    }
    Ok(())
}

fn version_text(hash: &str, label: Option<&str>) -> String {
    match label {
        Some(label) => format!("{hash} v{label}"),
        None => hash.to_string(),
    }
}
