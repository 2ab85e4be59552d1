//! Which WIT world a plugin was built against, and running it with that
//! world's bindings.
//!
//! `chard:task` grows additively: 0.2 added fields to the context, to
//! failures and retries, a `reject` case and new imports. A component built
//! against 0.1 exports `chard:task/tasks@0.1.0` and imports
//! `chard:task/host@0.1.0`; the linker defines the imports of both worlds,
//! and `WorldPre::new` picks the bindings by the export the component has
//! (0.2 first). Everything past this file sees one world: the 0.2 types,
//! which are a superset. A 0.1 plugin gets the 0.1 subset of the context,
//! with `headers` holding only the headers without a field of their own,
//! as 0.1 promised.

use wasmtime::component::InstancePre;
use wasmtime::Store;

use super::bindings::{v0_1, v0_2};
use super::job::JobState;
use super::outcome::{Failure, Outcome, RetryRequest};
use super::plugin::TaskInfo;
use super::JobContext;

/// A pre-linked plugin, in the world it was built for.
pub(crate) enum WorldPre {
    V0_2(v0_2::PluginPre<JobState>),
    V0_1(v0_1::PluginPre<JobState>),
}

/// Headers 0.1's context reports in fields of their own (so not in its
/// `headers` JSON): the named fields of Celery's protocol 2 headers.
const STANDARD_HEADERS: [&str; 17] = [
    "lang", "task", "id", "shadow", "eta", "expires", "group", "group_index", "retries", "timelimit", "root_id",
    "parent_id", "argsrepr", "kwargsrepr", "origin", "ignore_result", "replaced_task_nesting",
];

impl WorldPre {
    /// The bindings for the `tasks` interface the component exports.
    pub(crate) fn new(instance_pre: InstancePre<JobState>) -> wasmtime::Result<Self> {
        match v0_2::PluginPre::new(instance_pre.clone()) {
            Ok(pre) => Ok(Self::V0_2(pre)),
            Err(newest) => v0_1::PluginPre::new(instance_pre).map(Self::V0_1).map_err(|_| newest),
        }
    }

    /// "0.2" or "0.1", for logs and `host tasks`.
    pub(crate) fn version(&self) -> &'static str {
        match self {
            Self::V0_2(_) => "0.2",
            Self::V0_1(_) => "0.1",
        }
    }

    pub(crate) fn list_tasks(&self, store: &mut Store<JobState>) -> wasmtime::Result<Vec<TaskInfo>> {
        Ok(match self {
            Self::V0_2(pre) => pre.instantiate(&mut *store)?.chard_task_tasks().call_list_tasks(store)?.into_iter().map(TaskInfo::from).collect(),
            Self::V0_1(pre) => {
                pre.instantiate(&mut *store)?.chard_task_tasks().call_list_tasks(store)?.into_iter().map(task_info_v0_1).collect()
            }
        })
    }

    /// Runs `name`; `Ok(Ok(json))` is a success, `Ok(Err(outcome))` a task
    /// error as an outcome, `Err` a trap.
    pub(crate) fn run(
        &self,
        store: &mut Store<JobState>,
        name: &str,
        args: &str,
        kwargs: &str,
        context: &JobContext,
        instantiation: &mut Option<std::time::Duration>,
    ) -> wasmtime::Result<Result<String, Outcome>> {
        let started = std::time::Instant::now();
        match self {
            Self::V0_2(pre) => {
                let instance = pre.instantiate(&mut *store)?;
                *instantiation = Some(started.elapsed());
                let result = instance.chard_task_tasks().call_run(store, name, args, kwargs, context)?;
                Ok(result.map_err(task_error_v0_2))
            }
            Self::V0_1(pre) => {
                let instance = pre.instantiate(&mut *store)?;
                *instantiation = Some(started.elapsed());
                let result = instance.chard_task_tasks().call_run(store, name, args, kwargs, &context_v0_1(context))?;
                Ok(result.map_err(task_error_v0_1))
            }
        }
    }
}

fn failure_v0_2(failure: v0_2::chard::task::types::Failure) -> Failure {
    // Args that are not a JSON array are kept as the one argument.
    let args = failure.args_json.map(|text| match serde_json::from_str(&text) {
        Ok(serde_json::Value::Array(args)) => args,
        Ok(other) => vec![other],
        Err(_) => vec![serde_json::Value::String(text)],
    });
    Failure {
        exception_type: failure.exception_type.unwrap_or_else(|| "Exception".to_string()),
        message: failure.message,
        args,
    }
}

fn task_error_v0_2(error: v0_2::chard::task::types::TaskError) -> Outcome {
    use v0_2::chard::task::types::TaskError;
    match error {
        TaskError::Failed(failure) => Outcome::Failed(failure_v0_2(failure)),
        TaskError::Retry(retry) => Outcome::Retry(RetryRequest {
            countdown: retry.countdown_ms.map(std::time::Duration::from_millis),
            reason: retry.reason,
            max_retries: retry.max_retries,
            exc: retry.exc.map(failure_v0_2),
            expires: retry.expires,
        }),
        TaskError::Reject(reject) => Outcome::Refused { requeue: reject.requeue, reason: reject.reason },
    }
}

fn task_error_v0_1(error: v0_1::chard::task::types::TaskError) -> Outcome {
    use v0_1::chard::task::types::TaskError;
    match error {
        TaskError::Failed(failure) => Outcome::Failed(Failure::new(
            failure.exception_type.unwrap_or_else(|| "Exception".to_string()),
            failure.message,
        )),
        TaskError::Retry(retry) => Outcome::Retry(RetryRequest {
            countdown: retry.countdown_ms.map(std::time::Duration::from_millis),
            reason: retry.reason,
            max_retries: retry.max_retries,
            exc: None,
            expires: None,
        }),
    }
}

/// A 0.1 plugin's `params` are names only (0.1 had no notation for
/// optional or variadic parameters), so its tasks are not checked.
fn task_info_v0_1(info: v0_1::chard::task::types::TaskInfo) -> TaskInfo {
    let defaults = info.defaults;
    let info = TaskInfo::from(v0_2::chard::task::types::TaskInfo {
        name: info.name,
        params: info.params,
        doc: info.doc,
        defaults: v0_2::chard::task::types::TaskDefaults {
            queue: defaults.queue,
            time_limit_ms: defaults.time_limit_ms,
            soft_time_limit_ms: defaults.soft_time_limit_ms,
            memory_limit_mb: defaults.memory_limit_mb,
            max_retries: defaults.max_retries,
            default_retry_delay_ms: defaults.default_retry_delay_ms,
            rate_limit: defaults.rate_limit,
            autoretry_for: defaults.autoretry_for,
            retry_backoff_ms: defaults.retry_backoff_ms,
            retry_backoff_max_ms: defaults.retry_backoff_max_ms,
            retry_jitter: defaults.retry_jitter,
        },
    });
    TaskInfo { signature: None, ..info }
}

fn context_v0_1(context: &JobContext) -> v0_1::chard::task::types::Context {
    let headers = match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&context.headers) {
        Ok(mut headers) => {
            headers.retain(|key, _| !STANDARD_HEADERS.contains(&key.as_str()));
            serde_json::Value::Object(headers).to_string()
        }
        Err(_) => "{}".to_string(),
    };
    v0_1::chard::task::types::Context {
        task_id: context.task_id.clone(),
        task_name: context.task_name.clone(),
        root_id: context.root_id.clone(),
        parent_id: context.parent_id.clone(),
        group_id: context.group_id.clone(),
        group_index: context.group_index,
        retries: context.retries,
        max_retries: context.max_retries,
        eta: context.eta.clone(),
        expires: context.expires.clone(),
        priority: context.priority,
        time_limit_ms: context.time_limit_ms,
        soft_time_limit_ms: context.soft_time_limit_ms,
        soft_deadline_ms: context.soft_deadline_ms,
        hostname: context.hostname.clone(),
        headers,
    }
}
