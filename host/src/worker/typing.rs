//! The worker's side of Celery's `Task.typing`: calls to the tasks its
//! plugins serve are checked against each task's signature before they are
//! sent (`canvas::Typing`; the check itself is `runtime::TaskSignature`).
//!
//! The registry is read at each check, so a hot reload that changes a
//! task's parameters changes what its callers may send at once. A name no
//! plugin serves (a task of a Python worker, a builtin) is not checked, as
//! a Python worker does not check tasks it has not registered.

use serde_json::{Map, Value};

use super::canvas::Typing;
use crate::runtime::SharedRegistry;

/// The tasks served now.
pub(super) struct Served(pub SharedRegistry);

impl Typing for Served {
    fn check(&self, task: &str, args: &[Value], kwargs: &Map<String, Value>) -> Result<(), String> {
        let registry = self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let Some((_, info)) = registry.resolve(task) else { return Ok(()) };
        let Some(signature) = &info.signature else { return Ok(()) };
        // Python names the function in its message: the declared name's
        // last part ("add" for "add" and for "billing.tasks.add").
        let function = info.name.rsplit('.').next().unwrap_or(&info.name);
        signature.bind(function, args, kwargs)
    }
}
