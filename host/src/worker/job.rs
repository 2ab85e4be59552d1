//! A job as the worker holds it, and how its limits and context are derived
//! from the message, the task's defaults and the worker's configuration.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::JobLimits;
use crate::protocol::{bounds, TaskMessage};
use crate::runtime::{job_context, Cancellation, JobContext, JobDeliveryInfo, TaskInfo};

/// One received message on its way through the worker.
pub struct Job {
    /// Delivery tag (lease); `None` if the message was never recorded.
    pub tag: Option<String>,
    pub message: TaskMessage,
    /// Whether this job holds a prefetch slot (ETA jobs give theirs back
    /// while they wait, as Celery's do).
    pub holds_slot: bool,
    /// Bytes of the message, counted against `--prefetch-size` until the
    /// job is acked or requeued.
    pub bytes: usize,
    pub cancellation: Cancellation,
    /// Since when it could run: its fetch, or the end of its ETA or
    /// rate-limit wait. Its queue wait ends when it starts.
    pub ready_since: Instant,
}

/// Effective limits for one job: message header, then task default, then
/// worker default.
pub struct EffectiveLimits {
    pub time_limit: Option<Duration>,
    pub soft_time_limit: Option<Duration>,
    pub memory_limit_bytes: u64,
}

/// Every duration is saturated at `bounds::MAX_DURATION`: a message's
/// `time_limit=1e300` means no practical limit, never a panic.
pub fn limits_for(message: &TaskMessage, task: &TaskInfo, worker: &JobLimits) -> EffectiveLimits {
    let seconds = |value: Option<f64>| value.and_then(bounds::seconds);
    let (hard, soft) = message.headers.timelimit.unwrap_or((None, None));
    EffectiveLimits {
        time_limit: seconds(hard).or_else(|| task.defaults.time_limit_or(worker.time_limit)).map(bounds::duration),
        soft_time_limit: seconds(soft).or_else(|| task.defaults.soft_time_limit()).map(bounds::duration),
        memory_limit_bytes: task
            .defaults
            .memory_limit_mb
            .map(|mb| u64::from(mb) << 20)
            .unwrap_or(worker.memory_limit_bytes),
    }
}

impl Job {
    /// A job for a message known only by its tag, id and task name (one
    /// that did not parse, or whose handling panicked): enough to store a
    /// FAILURE under its id and ack it.
    pub fn stub(tag: Option<String>, id: String, task: String, holds_slot: bool, bytes: usize) -> Self {
        let headers = crate::protocol::Headers { id: Some(id.clone()), task: Some(task.clone()), ..Default::default() };
        let raw_headers = serde_json::value::to_raw_value(&headers).expect("headers serialise");
        let message = TaskMessage {
            id,
            task,
            headers,
            raw_headers,
            properties: Default::default(),
            args: serde_json::value::RawValue::from_string("[]".into()).expect("literal"),
            kwargs: serde_json::value::RawValue::from_string("{}".into()).expect("literal"),
            embed: Default::default(),
        };
        Self { tag, message, holds_slot, bytes, cancellation: Cancellation::default(), ready_since: Instant::now() }
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
    context.soft_deadline_ms = limits.soft_time_limit.map(|soft| crate::runtime::unix_millis().saturating_add(millis(soft)));
    context.hostname = hostname.to_string();
    // Every header as sent, standard and custom (0.2; a 0.1 plugin gets
    // only the custom ones, see runtime/world.rs): the sender's own text,
    // which cost a sixth of the job's own parse to serialise again.
    context.headers = message.raw_headers.get().to_string();
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
