//! `TaskError`: the two ways a task can end without a value.
//!
//! It is a thin wrapper over the WIT `task-error` variant, so what the author
//! builds is exactly what the worker receives. Any `std::error::Error` converts
//! into a failure, so `?` works on I/O, parse and serde errors.

use std::time::Duration;

use crate::bindings::chard::task::types::{Failure, RetryRequest, TaskError as WitTaskError};

/// Ends a task as FAILURE (`failed`) or asks the worker to run it again later
/// (`retry`).
#[derive(Debug, Clone)]
pub struct TaskError(WitTaskError);

impl TaskError {
    /// The task failed with `message`; a Python client re-raises it as
    /// `Exception(message)`.
    pub fn failed(message: impl Into<String>) -> Self {
        Self(WitTaskError::Failed(Failure { message: message.into(), exception_type: None }))
    }

    /// The task failed with an exception of a given type, optionally
    /// qualified with its module: `"ValueError"`, `"billing.errors.CardDeclined"`.
    pub fn failed_as(exception_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self(WitTaskError::Failed(Failure {
            message: message.into(),
            exception_type: Some(exception_type.into()),
        }))
    }

    /// Run the task again after the task's default retry delay.
    pub fn retry() -> Self {
        Self(WitTaskError::Retry(RetryRequest { countdown_ms: None, reason: None, max_retries: None }))
    }

    /// Run the task again after `countdown`.
    pub fn retry_in(countdown: Duration) -> Self {
        Self::retry().with_countdown(countdown)
    }

    /// For a retry: set the delay before the next attempt.
    pub fn with_countdown(mut self, countdown: Duration) -> Self {
        if let WitTaskError::Retry(request) = &mut self.0 {
            request.countdown_ms = Some(countdown.as_millis().try_into().unwrap_or(u64::MAX));
        }
        self
    }

    /// For a retry: record why (shown as the RETRY state's exception).
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        if let WitTaskError::Retry(request) = &mut self.0 {
            request.reason = Some(reason.into());
        }
        self
    }

    /// For a retry: override the task's retry budget.
    pub fn with_max_retries(mut self, max_retries: u32) -> Self {
        if let WitTaskError::Retry(request) = &mut self.0 {
            request.max_retries = Some(max_retries);
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
