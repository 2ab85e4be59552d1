//! The set of loaded plugins and task-name resolution.
//!
//! Tasks are served under the names `names` gives them (`<plugin>.<task>`
//! unless the plugin or its manifest chose another), each by one plugin: a
//! plugin that would take a name another one serves is refused. A bare task
//! name, as the plugin declared it, resolves too when exactly one plugin has
//! it, which keeps `host call math.wasm add` short.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::engine::Runtime;
use super::plugin::{LoadError, Plugin, TaskInfo};

/// Why a task name did not resolve.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ResolveError {
    #[error("unknown task: {0}")]
    Unknown(String),
    #[error("task name {name} is ambiguous: provided by {candidates}")]
    Ambiguous { name: String, candidates: String },
}

/// Why a folder gave no plugin, when its content says more than "empty": a
/// folder of plugin sources (a Chard checkout's `plugins/`, whose built
/// plugins are in `target/plugins`), or `.wasm` files that all failed.
pub fn empty_folder_hint(dir: &Path) -> String {
    let entries: Vec<_> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|entry| entry.ok().map(|entry| entry.path())).collect())
        .unwrap_or_default();
    if entries.iter().any(|path| path.extension().is_some_and(|ext| ext == "wasm")) {
        return "none of its .wasm files loaded (see the errors above)".to_string();
    }
    let is_source = |path: &std::path::PathBuf| {
        ["Cargo.toml", "build.sh", "Makefile"].iter().any(|file| path.join(file).is_file())
    };
    if entries.iter().any(is_source) {
        let built = dir.parent().unwrap_or(Path::new("")).join("target/plugins");
        return match built.is_dir() {
            true => format!("it holds plugin sources, not built plugins; the built ones are in {}", built.display()),
            false => "it holds plugin sources, not built plugins; build them first (`make plugins` writes target/plugins)".to_string(),
        };
    }
    "it has no .wasm files; add one (build it with `make` in a `host new` project) or publish one with `host deploy`".to_string()
}

/// Loaded plugins, by name.
#[derive(Default, Clone)]
pub struct Registry {
    plugins: HashMap<String, Arc<Plugin>>,
    /// Served task name -> the plugin serving it.
    served: HashMap<String, String>,
}

impl Registry {
    /// Loads every `*.wasm` in `dir`. Plugins that fail to load are returned
    /// beside the registry, so the caller decides whether that is fatal.
    pub fn load_dir(runtime: &Runtime, dir: &Path) -> std::io::Result<(Self, Vec<LoadError>)> {
        let mut registry = Self::default();
        let mut errors = Vec::new();
        let mut paths: Vec<_> = std::fs::read_dir(dir)?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "wasm") && path.is_file())
            .collect();
        paths.sort();
        for path in paths {
            match Plugin::load(runtime, &path).and_then(|plugin| registry.insert(plugin)) {
                Ok(_) => {}
                Err(error) => errors.push(error),
            }
        }
        Ok((registry, errors))
    }

    /// Adds `plugin`, or replaces the plugin of the same name (a reload);
    /// refused when it would serve a name another plugin serves.
    pub fn insert(&mut self, plugin: Plugin) -> Result<Option<Arc<Plugin>>, LoadError> {
        for task in plugin.tasks() {
            let Some(other) = self.served.get(&task.served).filter(|other| *other != plugin.name()) else { continue };
            return Err(LoadError::NameTaken {
                path: plugin.path().to_path_buf(),
                plugin: plugin.name().to_string(),
                name: task.served.clone(),
                other: other.clone(),
                other_path: self.plugins[other].path().to_path_buf(),
            });
        }
        let previous = self.remove(plugin.name());
        for task in plugin.tasks() {
            self.served.insert(task.served.clone(), plugin.name().to_string());
        }
        self.plugins.insert(plugin.name().to_string(), Arc::new(plugin));
        Ok(previous)
    }

    pub fn remove(&mut self, name: &str) -> Option<Arc<Plugin>> {
        let plugin = self.plugins.remove(name)?;
        for task in plugin.tasks() {
            self.served.remove(&task.served);
        }
        Some(plugin)
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Plugin>> {
        self.plugins.get(name)
    }

    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    /// Plugins sorted by name.
    pub fn plugins(&self) -> Vec<&Arc<Plugin>> {
        let mut plugins: Vec<_> = self.plugins.values().collect();
        plugins.sort_by(|a, b| a.name().cmp(b.name()));
        plugins
    }

    /// Every served task name, sorted: `math.add`, `math.mul`...
    pub fn task_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.served.keys().cloned().collect();
        names.sort();
        names
    }

    /// Resolves a served name exactly (the worker's path: Celery names).
    pub fn resolve(&self, served: &str) -> Option<(&Arc<Plugin>, &TaskInfo)> {
        let plugin = self.plugins.get(self.served.get(served)?)?;
        let task = plugin.served_task(served)?;
        Some((plugin, task))
    }

    /// Resolves a served name, or a declared task name that only one plugin has.
    pub fn resolve_loose(&self, name: &str) -> Result<(&Arc<Plugin>, &TaskInfo), ResolveError> {
        if let Some(found) = self.resolve(name) {
            return Ok(found);
        }
        let mut matches: Vec<_> = self
            .plugins
            .values()
            .filter_map(|plugin| plugin.task(name).map(|task| (plugin, task)))
            .collect();
        match matches.len() {
            0 => Err(ResolveError::Unknown(name.to_string())),
            1 => Ok(matches.remove(0)),
            _ => {
                let mut candidates: Vec<_> =
                    matches.iter().map(|(_, task)| task.served.clone()).collect();
                candidates.sort();
                Err(ResolveError::Ambiguous { name: name.to_string(), candidates: candidates.join(", ") })
            }
        }
    }
}
