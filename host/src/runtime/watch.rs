//! Hot reload: watch the plugin folder and swap plugins in without a restart.
//!
//! A changed `.wasm` is compiled on this watcher's thread, off the job path,
//! and swapped into the shared registry only once it loaded: a plugin that
//! fails to compile or link is logged and the previous version keeps serving.
//! Jobs hold an `Arc` of the plugin they started with, so they finish on that
//! version; jobs that look up their task after the swap get the new one.
//!
//! Partial writes: events are debounced, and a file is loaded only once its
//! size and modification time have stopped changing. Writing the new file
//! under another name (e.g. `math.wasm.tmp`) and renaming it into place is
//! the safest way to deploy, and is what `host` itself does.
//!
//! A plugin's manifest (`<name>.toml`) is part of it: writing, changing or
//! removing the manifest reloads the plugin with it, and a manifest that
//! does not validate is refused like a broken `.wasm`.
//!
//! A bad file is reported once: the watcher remembers the size and
//! modification time of each file that failed (the `.wasm` and its manifest)
//! and stays quiet until one of them changes. Only events that change a file
//! count: loading a plugin opens and reads it, and inotify reports those
//! reads too, which once made a broken plugin reload and log its error about
//! once a second, forever. The message says what happens next: a plugin that
//! never loaded is "not loaded"; one that did keeps serving its previous
//! version.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use super::engine::Runtime;
use super::plugin::Plugin;
use super::registry::Registry;

/// How long the folder must be quiet before changes are applied.
const DEBOUNCE: Duration = Duration::from_millis(150);

/// The live registry, swapped as a whole on every change.
pub type SharedRegistry = Arc<RwLock<Arc<Registry>>>;

/// Told of every hot-reload attempt: the plugin's name and whether it
/// loaded (the worker counts these for its metrics).
pub type ReloadHook = Arc<dyn Fn(&str, bool) + Send + Sync>;

/// Keeps the watcher alive; dropping it stops watching.
pub struct WatchHandle {
    _watcher: notify::RecommendedWatcher,
}

/// Starts watching `dir`; changes are applied to `registry`.
pub fn watch(runtime: Runtime, dir: &Path, registry: SharedRegistry, on_reload: Option<ReloadHook>) -> notify::Result<WatchHandle> {
    let (events_tx, events_rx) = std::sync::mpsc::channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Reading a plugin to load it raises access events on it: taken for
        // changes, a plugin that fails to load would be retried forever.
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        for path in event.paths {
            let _ = events_tx.send(path);
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    std::thread::Builder::new()
        .name("chard-watch".into())
        .spawn(move || apply_changes(&runtime, &events_rx, &registry, on_reload.as_ref()))
        .expect("spawning the plugin watcher thread");
    Ok(WatchHandle { _watcher: watcher })
}

/// Size and modification time of a plugin file and of its manifest.
type Stamp = (Option<(u64, std::time::SystemTime)>, Option<(u64, std::time::SystemTime)>);

fn stamp(path: &Path) -> Stamp {
    let one = |path: &Path| std::fs::metadata(path).ok().and_then(|m| Some((m.len(), m.modified().ok()?)));
    (one(path), one(&path.with_extension("toml")))
}

fn apply_changes(
    runtime: &Runtime,
    events: &std::sync::mpsc::Receiver<PathBuf>,
    registry: &SharedRegistry,
    on_reload: Option<&ReloadHook>,
) {
    // Files that failed to load, with the stamp they had: not retried (nor
    // logged again) until it changes.
    let mut failed: HashMap<PathBuf, Stamp> = HashMap::new();
    while let Ok(first) = events.recv() {
        let mut changed = BTreeSet::from([first]);
        while let Ok(path) = events.recv_timeout(DEBOUNCE) {
            changed.insert(path);
        }
        // A manifest change reloads its plugin: both map to `<name>.wasm`.
        let plugins: BTreeSet<PathBuf> = changed
            .into_iter()
            .filter(|path| path.extension().is_some_and(|ext| ext == "wasm" || ext == "toml"))
            .map(|path| path.with_extension("wasm"))
            .collect();
        for path in plugins {
            let before = stamp(&path);
            if failed.get(&path) == Some(&before) {
                continue;
            }
            let loaded = apply_change(runtime, registry, &path);
            match loaded {
                Some(false) => failed.insert(path.clone(), before),
                _ => failed.remove(&path),
            };
            if let Some(loaded) = loaded {
                if let (Some(hook), Some(name)) = (on_reload, path.file_stem().and_then(|stem| stem.to_str())) {
                    hook(name, loaded);
                }
            }
        }
    }
}

/// Applies one plugin's change; `Some(loaded)` when a load was attempted.
fn apply_change(runtime: &Runtime, registry: &SharedRegistry, path: &Path) -> Option<bool> {
    let name = path.file_stem().and_then(|stem| stem.to_str()).map(str::to_string)?;
    if !path.is_file() {
        let mut next = (**registry.read().unwrap()).clone();
        if next.remove(&name).is_some() {
            *registry.write().unwrap() = Arc::new(next);
            tracing::warn!(plugin = name, "plugin removed: its tasks are unknown for new jobs");
        }
        return None;
    }
    let manifest = path.with_extension("toml");
    if !wait_until_stable(path) || (manifest.exists() && !wait_until_stable(&manifest)) {
        tracing::warn!(file = %path.display(), "plugin file kept changing; will load it on its next change");
        return None;
    }
    match Plugin::load(runtime, path) {
        Ok(plugin) => {
            let current = registry.read().unwrap().get(&name).map(|plugin| plugin.fingerprint());
            if current.as_deref() == Some(&plugin.fingerprint()) {
                return None;
            }
            let (version, tasks) = (plugin.fingerprint(), plugin.tasks().len());
            let mut next = (**registry.read().unwrap()).clone();
            if let Err(error) = next.insert(plugin) {
                report_failure(registry, &name, &error);
                return Some(false);
            }
            *registry.write().unwrap() = Arc::new(next);
            tracing::info!(plugin = name, version, previous = current.as_deref().unwrap_or("none"), tasks, "plugin loaded (hot reload)");
            Some(true)
        }
        Err(error) => {
            report_failure(registry, &name, &error);
            Some(false)
        }
    }
}

fn report_failure(registry: &SharedRegistry, name: &str, error: &super::plugin::LoadError) {
    if registry.read().unwrap().get(name).is_some() {
        tracing::error!("plugin {name} not reloaded, previous version keeps serving: {error}");
    } else {
        tracing::error!("plugin {name} not loaded: {error}");
    }
}

/// True once the file's size and mtime held still for a moment.
fn wait_until_stable(path: &Path) -> bool {
    let stamp = |path: &Path| std::fs::metadata(path).ok().map(|m| (m.len(), m.modified().ok()));
    let mut last = stamp(path);
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(60));
        let now = stamp(path);
        if now.is_some() && now == last {
            return true;
        }
        last = now;
    }
    false
}
