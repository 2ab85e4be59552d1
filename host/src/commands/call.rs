//! `host call`: run one task once and print its JSON result.

use crate::config::CallConfig;
use crate::runtime::{JobRequest, Outcome};

/// Runs the task; `Ok(outcome)` for any outcome the task reached, `Err` for
/// input the command could not use.
pub fn run(config: CallConfig) -> anyhow::Result<Outcome> {
    super::parse_task_arguments(&config.args, &config.kwargs)?;

    let runtime = super::small_runtime(config.limits.memory_limit_bytes)?;
    let registry = super::load_plugins_for(&runtime, &config.plugins, Some(&config.task))?;
    let (plugin, task) = match registry.resolve_loose(&config.task) {
        Ok(found) => found,
        Err(error) => {
            let known = registry.task_names().join(", ");
            anyhow::bail!("{error} (known: {known})");
        }
    };
    let limits = config.limits;
    let time_limit = task.defaults.time_limit_or(limits.time_limit);
    let memory_limit_bytes =
        task.defaults.memory_limit_mb.map(|mb| u64::from(mb) << 20).unwrap_or(limits.memory_limit_bytes);
    let task_id = uuid::Uuid::new_v4().to_string();
    let mut context = crate::runtime::job_context(&task_id, &task.served);
    context.time_limit_ms = time_limit.map(|limit| limit.as_millis() as u64);
    context.hostname = format!("call@{}", crate::hostname());
    Ok(plugin.run(JobRequest {
        task: &task.name,
        args: &config.args,
        kwargs: &config.kwargs,
        context,
        time_limit,
        memory_limit_bytes,
        cancellation: None,
        services: Default::default(),
    }))
}
