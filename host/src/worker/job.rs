//! A job as the worker holds it, and how its limits and context are derived
//! from the message, the task's defaults and the worker's configuration.

use std::sync::Arc;
use std::time::Duration;

use crate::config::JobLimits;
use crate::protocol::TaskMessage;
use crate::runtime::{job_context, Cancellation, JobContext, JobDeliveryInfo, TaskInfo};

/// One received message on its way through the worker.
pub struct Job {
    /// Delivery tag (lease); `None` if the message was never recorded.
    pub tag: Option<String>,
    pub message: TaskMessage,
    /// Whether this job holds a prefetch slot (ETA jobs give theirs back
    /// while they wait, as Celery's do).
    pub holds_slot: bool,
    pub cancellation: Cancellation,
}

/// Effective limits for one job: message header, then task default, then
/// worker default.
pub struct EffectiveLimits {
    pub time_limit: Option<Duration>,
    pub soft_time_limit: Option<Duration>,
    pub memory_limit_bytes: u64,
}

pub fn limits_for(message: &TaskMessage, task: &TaskInfo, worker: &JobLimits) -> EffectiveLimits {
    let seconds = |value: Option<f64>| value.filter(|s| s.is_finite() && *s > 0.0).map(Duration::from_secs_f64);
    let (hard, soft) = message.headers.timelimit.unwrap_or((None, None));
    EffectiveLimits {
        time_limit: seconds(hard).or(task.defaults.time_limit).or(worker.time_limit),
        soft_time_limit: seconds(soft).or(task.defaults.soft_time_limit),
        memory_limit_bytes: task
            .defaults
            .memory_limit_mb
            .map(|mb| u64::from(mb) << 20)
            .unwrap_or(worker.memory_limit_bytes),
    }
}

pub fn context_for(
    message: &TaskMessage,
    task: &TaskInfo,
    limits: &EffectiveLimits,
    hostname: &Arc<str>,
) -> JobContext {
    let mut context = job_context(&message.id, &message.task);
    let millis = |duration: Duration| duration.as_millis() as u64;
    context.root_id = Some(message.root_id().to_string());
    context.parent_id = message.headers.parent_id.clone();
    context.group_id = message.headers.group.clone();
    context.group_index = message.headers.group_index;
    context.retries = message.retries();
    context.max_retries = task.defaults.max_retries;
    context.eta = message.headers.eta.clone();
    context.expires = message.headers.expires.clone();
    context.priority = message.priority();
    context.time_limit_ms = limits.time_limit.map(millis);
    context.soft_time_limit_ms = limits.soft_time_limit.map(millis);
    context.soft_deadline_ms = limits.soft_time_limit.map(|soft| crate::runtime::unix_millis() + millis(soft));
    context.hostname = hostname.to_string();
    // Every header as sent, standard and custom (0.2; a 0.1 plugin gets
    // only the custom ones, see runtime/world.rs).
    context.headers = serde_json::to_string(&message.headers).unwrap_or_else(|_| "{}".into());
    let properties = &message.properties;
    context.correlation_id = properties.correlation_id.clone();
    context.reply_to = properties.reply_to.clone();
    let non_empty = |text: &str| (!text.is_empty()).then(|| text.to_string());
    context.delivery_info = JobDeliveryInfo {
        priority: properties.priority,
        routing_key: non_empty(&properties.delivery_info.routing_key),
        exchange: non_empty(&properties.delivery_info.exchange),
        // Set by the restore of an unacked message (broker/redis/restore.lua).
        redelivered: message.headers.extra.get("redelivered").and_then(serde_json::Value::as_bool).unwrap_or(false),
    };
    let (hard, soft) = message.headers.timelimit.unwrap_or((None, None));
    let requested = |seconds: Option<f64>| seconds.filter(|s| s.is_finite() && *s > 0.0).map(|s| (s * 1000.0).round() as u64);
    context.requested_time_limit_ms = requested(hard);
    context.requested_soft_time_limit_ms = requested(soft);
    context
}
