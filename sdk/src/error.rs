//! `TaskError`: the ways a task can end without a value.
//!
//! It is a thin wrapper over the WIT `task-error` variant, so what the author
//! builds is exactly what the worker receives. Any `std::error::Error` converts
//! into a failure, so `?` works on I/O, parse and serde errors.
//!
//! Builders map one to one onto Celery's: `failed_as(type, msg)` is `raise
//! Type(msg)`, `.with_args(json!(["msg", 42]))` is `raise Type("msg", 42)`
//! (Celery stores `exc.args` as `exc_message`), `retry()` is `self.retry()`,
//! `.with_exc(...)` is `retry(exc=...)`, `reject(requeue)` is `raise
//! Reject(requeue=...)`.

use std::time::Duration;

use serde_json::Value;

use crate::bindings::chard::task::types::{Failure, RejectRequest, RetryRequest, TaskError as WitTaskError};

/// Ends a task as FAILURE (`failed`), asks the worker to run it again later
/// (`retry`), or refuses the message (`reject`).
#[derive(Debug, Clone)]
pub struct TaskError(WitTaskError);

impl TaskError {
    /// The task failed with `message`; a Python client re-raises it as
    /// `Exception(message)`.
    pub fn failed(message: impl Into<String>) -> Self {
        Self(WitTaskError::Failed(Failure { message: message.into(), exception_type: None, args_json: None }))
    }

    /// The task failed with an exception of a given type, optionally
    /// qualified with its module: `"ValueError"`, `"billing.errors.CardDeclined"`.
    pub fn failed_as(exception_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self(WitTaskError::Failed(Failure {
            message: message.into(),
            exception_type: Some(exception_type.into()),
            args_json: None,
        }))
    }

    /// For a failure (or a retry's `exc`): the exception's arguments, a JSON
    /// array, as a Python client sees them in `exc.args`. A value that is
    /// not an array is wrapped in one.
    pub fn with_args(mut self, args: Value) -> Self {
        let args = match args {
            Value::Array(_) => args,
            other => Value::Array(vec![other]),
        };
        let failure = match &mut self.0 {
            WitTaskError::Failed(failure) => Some(failure),
            WitTaskError::Retry(RetryRequest { exc: Some(failure), .. }) => Some(failure),
            _ => None,
        };
        if let Some(failure) = failure {
            failure.args_json = Some(args.to_string());
        }
        self
    }

    /// Run the task again after the task's default retry delay.
    pub fn retry() -> Self {
        Self(WitTaskError::Retry(RetryRequest {
            countdown_ms: None,
            reason: None,
            max_retries: None,
            exc: None,
            expires: None,
        }))
    }

    /// Run the task again after `countdown`.
    pub fn retry_in(countdown: Duration) -> Self {
        Self::retry().with_countdown(countdown)
    }

    /// Refuse the message (Celery's `Reject`): `requeue = true` puts it back
    /// on its queue, `false` acks and drops it.
    pub fn reject(requeue: bool) -> Self {
        Self(WitTaskError::Reject(RejectRequest { requeue, reason: None }))
    }

    fn retry_request(&mut self) -> Option<&mut RetryRequest> {
        match &mut self.0 {
            WitTaskError::Retry(request) => Some(request),
            _ => None,
        }
    }

    /// For a retry: set the delay before the next attempt.
    pub fn with_countdown(mut self, countdown: Duration) -> Self {
        if let Some(request) = self.retry_request() {
            request.countdown_ms = Some(countdown.as_millis().try_into().unwrap_or(u64::MAX));
        }
        self
    }

    /// For a retry or a reject: record why (a retry shows it as the RETRY
    /// state's exception).
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        match &mut self.0 {
            WitTaskError::Retry(request) => request.reason = Some(reason.into()),
            WitTaskError::Reject(request) => request.reason = Some(reason.into()),
            WitTaskError::Failed(_) => {}
        }
        self
    }

    /// For a retry: override the task's retry budget.
    pub fn with_max_retries(mut self, max_retries: u32) -> Self {
        if let Some(request) = self.retry_request() {
            request.max_retries = Some(max_retries);
        }
        self
    }

    /// For a retry: the failure the job ends with when no retry is left
    /// (Celery's `self.retry(exc=...)`), e.g.
    /// `TaskError::retry().with_exc(TaskError::failed_as("IOError", "down"))`.
    pub fn with_exc(mut self, exc: TaskError) -> Self {
        if let (Some(request), WitTaskError::Failed(failure)) = (self.retry_request(), exc.0) {
            request.exc = Some(failure);
        }
        self
    }

    /// For a retry: the retried message expires (ends REVOKED unrun) at
    /// this ISO-8601 time (Celery's `self.retry(expires=...)`).
    pub fn with_expires(mut self, expires: impl Into<String>) -> Self {
        if let Some(request) = self.retry_request() {
            request.expires = Some(expires.into());
        }
        self
    }
}

impl<E: std::error::Error> From<E> for TaskError {
    fn from(error: E) -> Self {
        Self::failed(error.to_string())
    }
}

impl From<TaskError> for WitTaskError {
    fn from(error: TaskError) -> Self {
        error.0
    }
}
