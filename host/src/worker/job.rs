//! A job as the worker holds it, and how its limits and context are derived
//! from the message, the task's defaults and the worker's configuration.

use std::sync::Arc;
use std::time::Duration;

use crate::config::JobLimits;
use crate::protocol::TaskMessage;
use crate::runtime::{job_context, Cancellation, JobContext, TaskInfo};

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

impl EffectiveLimits {
    /// The hard limit held to the worker policy's `max_time_limit`, whatever
    /// the message asked for (a message with no limit, or a longer one, gets
    /// the ceiling): a client cannot buy a job more time than the worker
    /// allows any plugin to declare.
    pub fn capped(mut self, max_time_limit: Option<Duration>) -> Self {
        if let Some(ceiling) = max_time_limit {
            self.time_limit = Some(self.time_limit.map_or(ceiling, |limit| limit.min(ceiling)));
            self.soft_time_limit = self.soft_time_limit.map(|soft| soft.min(ceiling));
        }
        self
    }
}

pub fn context_for(message: &TaskMessage, task: &TaskInfo, limits: &EffectiveLimits, hostname: &Arc<str>) -> JobContext {
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
    // Only headers without a field of their own: the rest is in the context.
    context.headers = serde_json::to_string(&message.headers.extra).unwrap_or_else(|_| "{}".into());
    context
}
