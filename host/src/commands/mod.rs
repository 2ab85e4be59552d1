//! One module per subcommand: each takes its `config` value and does the
//! work. Errors are returned with context; `main` prints them as one line.

pub mod beat;
pub mod call;
pub mod deploy;
pub mod new;
pub mod inspect;
pub mod run;
pub mod serve;
pub mod submit;
pub mod tasks;

use std::path::Path;

use anyhow::Context as _;

use crate::runtime::{EngineOptions, Registry, Runtime};

/// Parses the ARGS and --kwargs flags: a JSON array and a JSON object.
pub(crate) fn parse_task_arguments(args: &str, kwargs: &str) -> anyhow::Result<(serde_json::Value, serde_json::Value)> {
    let args_value: serde_json::Value =
        serde_json::from_str(args).with_context(|| format!("ARGS is not valid JSON: {args}"))?;
    if args_value.is_object() {
        anyhow::bail!("ARGS must be a JSON array, e.g. '[2, 3]'; keyword arguments go in --kwargs '{args}'");
    }
    anyhow::ensure!(args_value.is_array(), "ARGS must be a JSON array, e.g. '[2, 3]', got {args}");
    let kwargs_value: serde_json::Value =
        serde_json::from_str(kwargs).with_context(|| format!("--kwargs is not valid JSON: {kwargs}"))?;
    anyhow::ensure!(kwargs_value.is_object(), "--kwargs must be a JSON object, e.g. '{{\"x\": 1}}', got {kwargs}");
    Ok((args_value, kwargs_value))
}

/// Loads a plugin file, or every plugin of a folder; any load error is fatal
/// here (these are one-shot commands, unlike the worker).
pub(crate) fn load_plugins(runtime: &Runtime, path: &Path) -> anyhow::Result<Registry> {
    load_plugins_for(runtime, path, None)
}

/// Like [`load_plugins`], but for a qualified task name (`math.add`) in a
/// folder only that plugin is compiled when it serves the name: compiling a
/// large component takes seconds, and a one-shot call needs just one. A name
/// the plugin does not serve (one renamed by a manifest) loads the folder.
pub(crate) fn load_plugins_for(runtime: &Runtime, path: &Path, task: Option<&str>) -> anyhow::Result<Registry> {
    let single = task
        .and_then(|task| task.split_once('.').map(|(plugin, _)| (task, plugin)))
        .map(|(task, plugin)| (task, path.join(format!("{plugin}.wasm"))))
        .filter(|(_, file)| path.is_dir() && file.is_file());
    if let Some((task, file)) = single {
        let registry = load_plugins_for(runtime, &file, None)?;
        if registry.resolve(task).is_some() {
            return Ok(registry);
        }
    }
    if path.is_dir() {
        let (registry, errors) =
            Registry::load_dir(runtime, path).with_context(|| format!("reading plugin folder {}", path.display()))?;
        if let Some(error) = errors.into_iter().next() {
            return Err(error.into());
        }
        anyhow::ensure!(!registry.is_empty(), "no plugins (*.wasm) in {}", path.display());
        Ok(registry)
    } else {
        let plugin = crate::runtime::Plugin::load(runtime, path)?;
        let mut registry = Registry::default();
        registry.insert(plugin)?;
        Ok(registry)
    }
}

/// An engine sized for a one-shot command.
pub(crate) fn small_runtime(max_memory_bytes: u64) -> anyhow::Result<Runtime> {
    Runtime::new(&EngineOptions {
        max_instances: 4,
        max_memory_bytes: max_memory_bytes.max(1 << 30),
        ..EngineOptions::default()
    })
}
