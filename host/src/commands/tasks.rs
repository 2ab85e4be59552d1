//! `host tasks`: what a plugin folder serves.
//!
//! Every plugin of the folder is loaded; one that fails does not hide the
//! others. The good ones are listed first (stdout), then each bad one with
//! its error (stderr), and the exit code is 1 when any failed: a deploy
//! script can run `host tasks` as its check.

use std::io::Write;

use anyhow::Context as _;

use crate::config::TasksConfig;
use crate::runtime::Registry;

/// Returns the exit code: 0 when every plugin loaded, 1 otherwise.
pub fn run(config: TasksConfig) -> anyhow::Result<u8> {
    let runtime = super::small_runtime(128 << 20)?;
    let (registry, errors) = if config.plugins.is_dir() {
        Registry::load_dir(&runtime, &config.plugins)
            .with_context(|| format!("reading plugin folder {}", config.plugins.display()))?
    } else {
        (super::load_plugins(&runtime, &config.plugins)?, Vec::new())
    };
    print_tasks(&registry)?;
    for error in &errors {
        eprintln!("error: plugin {} not loaded: {error}", error.plugin_name());
    }
    if registry.is_empty() && errors.is_empty() {
        anyhow::bail!(
            "no plugin in {}: {}",
            config.plugins.display(),
            crate::runtime::empty_folder_hint(&config.plugins)
        );
    }
    Ok(u8::from(!errors.is_empty()))
}

fn print_tasks(registry: &Registry) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for plugin in registry.plugins() {
        let label = plugin.label().map(|label| format!(" v{label}")).unwrap_or_default();
        for task in plugin.tasks() {
            let doc = task.doc.as_deref().map(|doc| format!("  {doc}")).unwrap_or_default();
            writeln!(
                out,
                "{}({})  [{}{label}]{}",
                task.served,
                task.params.join(", "),
                plugin.version(),
                doc
            )?;
        }
    }
    out.flush()
}
