//! `host tasks`: what a plugin folder serves.

use std::io::Write;

use crate::config::TasksConfig;

pub fn run(config: TasksConfig) -> anyhow::Result<()> {
    let runtime = super::small_runtime(128 << 20)?;
    let registry = super::load_plugins(&runtime, &config.plugins)?;
    let mut out = std::io::stdout().lock();
    for plugin in registry.plugins() {
        let label = plugin.label().map(|label| format!(" v{label}")).unwrap_or_default();
        for task in plugin.tasks() {
            let doc = task.doc.as_deref().map(|doc| format!("  {doc}")).unwrap_or_default();
            writeln!(
                out,
                "{}.{}({})  [{}{label}]{}",
                plugin.name(),
                task.name,
                task.params.join(", "),
                plugin.version(),
                doc
            )?;
        }
    }
    Ok(())
}
