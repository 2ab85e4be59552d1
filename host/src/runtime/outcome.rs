//! How a job ended. One enum, matched exhaustively by the worker, each
//! variant mapping to one Celery state.

use std::time::Duration;

/// The end of one job.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The task returned; `json` is its result as JSON text.
    Succeeded { json: String },
    /// The task reported a failure (an exception, in Celery's terms).
    Failed(Failure),
    /// The task asked to be run again later.
    Retry(RetryRequest),
    /// The task refused its message (Celery's `Reject`): back to the queue
    /// with `requeue`, else acked and dropped.
    Refused { requeue: bool, reason: Option<String> },
    /// The hard time limit passed and the guest was stopped.
    TimedOut { limit: Duration },
    /// The guest tried to grow its memory past the limit and then trapped.
    OutOfMemory { limit_bytes: u64 },
    /// The guest trapped (a panic, `unreachable`, a stack overflow...).
    Trapped { message: String },
    /// The job was interrupted from outside (a revoke with terminate).
    Terminated,
    /// No plugin provides this task.
    UnknownTask { name: String },
    /// The job could not be started (bad arguments encoding, instantiation
    /// failure); nothing of the task ran.
    Rejected { reason: String },
}

/// A failure reported by the task itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// Exception type, optionally module-qualified ("billing.errors.CardDeclined").
    pub exception_type: String,
    pub message: String,
    /// The exception's args as a JSON array (Celery's `exc_message`), when
    /// the task gave them; else `[message]`.
    pub args: Option<Vec<serde_json::Value>>,
}

/// A retry requested by the task itself.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryRequest {
    pub countdown: Option<Duration>,
    pub reason: Option<String>,
    pub max_retries: Option<u32>,
    /// What the job fails with once no retry is left (Celery's `retry(exc=)`).
    pub exc: Option<Failure>,
    /// ISO-8601 expiry of the retried message (Celery's `retry(expires=)`).
    pub expires: Option<String>,
}

impl Failure {
    /// A failure without explicit args.
    pub fn new(exception_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self { exception_type: exception_type.into(), message: message.into(), args: None }
    }

    /// Celery's `exc_message`: the args, else `[message]`.
    pub fn exc_message(&self) -> Vec<serde_json::Value> {
        self.args.clone().unwrap_or_else(|| vec![serde_json::Value::String(self.message.clone())])
    }

    /// Splits a qualified type into Celery's `(exc_module, exc_type)`; an
    /// unqualified one is a Python builtin.
    pub fn module_and_type(&self) -> (&str, &str) {
        match self.exception_type.rsplit_once('.') {
            Some((module, name)) if !module.is_empty() && !name.is_empty() => (module, name),
            _ => ("builtins", self.exception_type.as_str()),
        }
    }
}

impl Outcome {
    /// One line for logs and for `host call`'s stderr.
    pub fn describe(&self) -> String {
        match self {
            Outcome::Succeeded { json } => format!("succeeded: {json}"),
            Outcome::Failed(failure) => format!("task failed: {}: {}", failure.exception_type, failure.message),
            Outcome::Retry(request) => format!(
                "task asked for a retry{}{}",
                request.countdown.map(|c| format!(" in {:.3}s", c.as_secs_f64())).unwrap_or_default(),
                request.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
            ),
            Outcome::Refused { requeue, reason } => format!(
                "task rejected its message ({}){}",
                if *requeue { "requeued" } else { "dropped" },
                reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
            ),
            Outcome::TimedOut { limit } => format!("time limit exceeded ({:.3}s)", limit.as_secs_f64()),
            Outcome::OutOfMemory { limit_bytes } => {
                format!("memory limit exceeded ({} MiB)", limit_bytes / (1024 * 1024))
            }
            Outcome::Trapped { message } => format!("task trapped: {message}"),
            Outcome::Terminated => "task terminated".to_string(),
            Outcome::UnknownTask { name } => format!("unknown task: {name}"),
            Outcome::Rejected { reason } => format!("job rejected: {reason}"),
        }
    }
}
