//! Celery's `Task.typing`: a call is checked against the task's signature
//! before it is sent.
//!
//! `Task.apply_async` binds the arguments to the task function's signature
//! first (`check_arguments`, from `head_from_fun`) and raises Python's
//! `TypeError` when they do not fit; nothing is published for that call,
//! and the `TypeError` propagates out of whatever was applying it. A
//! Python worker checks only tasks it has registered (for any other name
//! `Signature.apply_async` falls back to `send_task`, unchecked); a Chard
//! worker checks the tasks its plugins serve ([`Typing`], from each task's
//! `params`: `runtime::TaskSignature`).
//!
//! Where the `TypeError` ends up is Celery's too, and decided by the
//! callers (`worker::plan`): a callback or the next chain step of a task
//! that succeeded fails that task with it (`app/trace.py`: the error
//! escapes the dispatch and `on_error` stores it), a chord body that
//! cannot bind fails with `ChordError("Callback error: TypeError(...)")`
//! (the Redis backend's `on_chord_part_return`), a task's own `send` or
//! `replace` raises it inside the task. Messages applied before the
//! failing call stay sent, as they are already on the broker in Celery.

use serde_json::{Map, Value};

/// How the tasks this worker serves can be called.
pub trait Typing: Send + Sync {
    /// `Err` with Python's `TypeError` message when `task(*args,
    /// **kwargs)` cannot bind; `Ok` when it can, and for a task this
    /// worker does not serve or cannot check.
    fn check(&self, task: &str, args: &[Value], kwargs: &Map<String, Value>) -> Result<(), String>;
}

/// Checks nothing (for tests of everything else).
#[cfg(test)]
pub struct Unchecked;

#[cfg(test)]
impl Typing for Unchecked {
    fn check(&self, _: &str, _: &[Value], _: &Map<String, Value>) -> Result<(), String> {
        Ok(())
    }
}

/// The `TypeError` that stopped an `apply_async`: Python's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgumentError(pub String);

impl std::fmt::Display for ArgumentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
