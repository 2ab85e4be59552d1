//! The worker's side of Celery's `Task.typing`: calls to the tasks its
//! plugins serve are checked against each task's signature before they are
//! sent (`canvas::Typing`; the check itself is `runtime::TaskSignature`).
//!
//! The registry is read at each check, so a hot reload that changes a
//! task's parameters changes what its callers may send at once. Celery's
//! built-ins (`celery.map`, ...) are checked against their Python
//! signatures, as every Python worker registers them. A name no plugin
//! serves (a task of a Python worker) is not checked, as a Python worker
//! does not check tasks it has not registered.

use serde_json::{Map, Value};

use super::builtins::Builtin;
use super::canvas::Typing;
use crate::runtime::{SharedRegistry, TaskSignature};

/// The tasks served now.
pub(super) struct Served(pub SharedRegistry);

impl Typing for Served {
    fn check(&self, task: &str, args: &[Value], kwargs: &Map<String, Value>) -> Result<(), String> {
        if let Some(builtin) = Builtin::lookup(task) {
            let (function, params) = builtin.signature();
            let params: Vec<String> = params.iter().map(|param| param.to_string()).collect();
            let signature = TaskSignature::parse(&params).expect("the built-ins' parameters are well formed");
            return signature.bind(function, args, kwargs);
        }
        let registry = self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let Some((_, info)) = registry.resolve(task) else { return Ok(()) };
        let Some(signature) = &info.signature else { return Ok(()) };
        // Python names the function in its message: the declared name's
        // last part ("add" for "add" and for "billing.tasks.add").
        let function = info.name.rsplit('.').next().unwrap_or(&info.name);
        signature.bind(function, args, kwargs)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, RwLock};

    use serde_json::json;

    use super::*;
    use crate::runtime::Registry;

    fn check(task: &str, args: Value, kwargs: Value) -> Result<(), String> {
        let served = Served(Arc::new(RwLock::new(Arc::new(Registry::default()))));
        served.check(task, args.as_array().unwrap(), kwargs.as_object().unwrap())
    }

    #[test]
    fn celery_s_built_ins_are_checked_as_a_python_worker_checks_them() {
        assert_eq!(check("celery.map", json!([{"task": "t"}, [1]]), json!({})), Ok(()));
        assert_eq!(check("celery.chunks", json!([]), json!({"task": {}, "it": [], "n": 2})), Ok(()));
        assert_eq!(check("celery.chunks", json!([{}, []]), json!({})), Err("chunks() missing 1 required positional argument: 'n'".into()));
        assert_eq!(check("celery.starmap", json!([1, 2, 3]), json!({})), Err("xstarmap() takes 2 positional arguments but 3 were given".into()));
        assert_eq!(check("celery.accumulate", json!([1, 2, 3]), json!({"index": 0})), Ok(()));
        // No plugin serves it: not checked, as a Python worker does not
        // check a task it has not registered.
        assert_eq!(check("billing.charge", json!([1, 2, 3]), json!({"z": 1})), Ok(()));
    }
}
