//! From an outcome to what must happen in Redis: the result document to
//! store, follow-up messages to publish (retries, callbacks, the next chain
//! link), all before the original message is acked.
//!
//! Each `Outcome` maps to exactly one Celery state; the match below is the
//! one place that mapping lives.

use std::time::Duration;

use serde_json::{json, Value};

use super::canvas::{self, ChainFailure, Context, Effects};
use super::job::Job;
use crate::backend::{ChordPart, ResultWrite};
use crate::events::Ending;
use crate::protocol::{queue_key_for, result_key, ExceptionInfo, OutgoingTask, ResultMeta, Signature, State, TaskMessage};
use crate::protocol::group_result;
use crate::protocol::repr::exception_repr;
use crate::protocol::result::ResultValue;
use crate::runtime::{Failure, Outcome, RetryRequest, TaskInfo};

/// Celery's default `max_retries`.
const DEFAULT_MAX_RETRIES: u32 = 3;
/// Celery's default `default_retry_delay`.
const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(180);
/// Celery's default `retry_backoff_max`.
const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(600);

pub struct PlanSettings {
    pub hostname: String,
    pub result_expires: Duration,
    /// Queues for follow-ups whose signature names none.
    pub routes: crate::protocol::Routes,
    /// Largest result (JSON bytes) stored; a larger one fails the job.
    pub max_result_bytes: usize,
    /// How the tasks this worker serves can be called (Celery's
    /// `Task.typing`), for every follow-up it sends.
    pub typing: std::sync::Arc<dyn canvas::Typing>,
}

/// A finished chord header member: its join record and the body to fire.
pub struct ChordMember {
    pub part: ChordPart,
    pub body: Signature,
    pub root_id: String,
    pub reply_to: Option<String>,
}

/// What to write and publish for one finished job.
#[derive(Default)]
pub struct Plan {
    pub writes: Vec<ResultWrite>,
    /// Chord header members that finished: the job itself, and chain
    /// steps failed with it that belong to a chord.
    pub chords: Vec<ChordMember>,
    pub publish: Vec<(String, String)>,
    /// Sizes of chords whose headers are among `publish`, recorded first.
    pub chord_sizes: Vec<(String, u64)>,
    /// Saved header results (`GroupResult`s) of those chords, written with
    /// the sizes.
    pub saved_headers: Vec<(String, String)>,
    /// Log line for anything that is not a plain success.
    pub note: Option<String>,
    /// The state the job ended in, for monitoring events (`None` only for a
    /// plan made without `finish`, which none is).
    pub ending: Option<Ending>,
}

pub fn plan(job: &Job, outcome: &Outcome, task: Option<&TaskInfo>, settings: &PlanSettings) -> Plan {
    after_run(job, outcome, task, Effects::default(), settings)
}

/// The plan for a job that ran and sent `sent` while it did: those
/// messages go out (and are listed as the result's children, before its
/// callbacks' messages) only if it succeeded.
pub fn after_run(job: &Job, outcome: &Outcome, task: Option<&TaskInfo>, sent: Effects, settings: &PlanSettings) -> Plan {
    let message = &job.message;
    let mut plan = Plan::default();
    let mut children = Vec::new();
    let (state, result): (State, ResultValue) = match outcome {
        Outcome::Succeeded { json } if json.len() > settings.max_result_bytes => {
            let reason = format!("result is {} bytes, over the {}-byte cap (--max-result-size)", json.len(), settings.max_result_bytes);
            return refused(job, "ResultTooLarge", &reason, settings);
        }
        Outcome::Succeeded { json } => {
            let value: Value = serde_json::from_str(json).unwrap_or(Value::Null);
            add_effects(&mut plan, sent, &mut children);
            let mut effects = canvas::on_success(&message.embed, &value, &context(message, settings));
            let raised = effects.raised.take();
            add_effects(&mut plan, effects, &mut children);
            let Some(error) = raised else {
                return finish(plan, message, State::Success, ResultValue::Value(value), children, settings);
            };
            // `app/trace.py`: the TypeError escapes the dispatch of the
            // callbacks and chain, and `on_error` fails the task with it;
            // what was sent before it stays sent.
            plan.note = Some(echo(&format!("succeeded, but a follow-up cannot take its arguments: TypeError: {error}")));
            (State::Failure, ResultValue::Exception(ExceptionInfo::new("builtins", "TypeError", error.0)))
        }
        Outcome::Failed(failure) => {
            if let Some(request) = autoretry(failure, task, message) {
                return retry(plan, message, &request, task, Some(failure), settings);
            }
            (State::Failure, ResultValue::Exception(exception_of(failure)))
        }
        Outcome::Retry(request) => return retry(plan, message, request, task, None, settings),
        Outcome::Refused { .. } => {
            // Celery's Reject without requeue: the message is acked and
            // dropped, and no state is stored (a requeue never gets here).
            plan.note = Some(outcome.describe());
            return plan;
        }
        Outcome::TimedOut { limit } => (
            State::Failure,
            ResultValue::Exception(ExceptionInfo::new("billiard.exceptions", "TimeLimitExceeded", json!(limit.as_secs_f64()))),
        ),
        Outcome::OutOfMemory { limit_bytes } => (
            State::Failure,
            ResultValue::Exception(ExceptionInfo::new(
                "builtins",
                "MemoryError",
                format!("memory limit of {} MiB exceeded", limit_bytes >> 20),
            )),
        ),
        Outcome::Trapped { message: trap } => {
            (State::Failure, ResultValue::Exception(ExceptionInfo::new("chard.exceptions", "WasmTrap", echo(trap))))
        }
        Outcome::Terminated => {
            (State::Revoked, ResultValue::Exception(ExceptionInfo::new("celery.exceptions", "TaskRevokedError", "terminated")))
        }
        Outcome::UnknownTask { name } => {
            (State::Failure, ResultValue::Exception(ExceptionInfo::new("celery.exceptions", "NotRegistered", name.clone())))
        }
        Outcome::Rejected { reason } => (
            State::Failure,
            ResultValue::Exception(ExceptionInfo::new("chard.exceptions", "MalformedMessage", echo(reason))),
        ),
    };
    let note = plan.note.get_or_insert_with(|| echo(&outcome.describe()));
    if state == State::Failure {
        let mut effects = canvas::errbacks(message.embed.errbacks.as_deref().unwrap_or_default(), &message.id, message.root_id(), &context(message, settings));
        if let Some(error) = effects.raised.take() {
            // Celery would raise out of its failure handling here; the
            // failure stands, the errbacks before this one are sent.
            *note = echo(&format!("{note}; an errback cannot take its arguments: TypeError: {error}"));
        }
        add_effects(&mut plan, effects, &mut children);
    }
    finish(plan, message, state, result, children, settings)
}

/// FAILURE raised by the worker itself (`chard.exceptions.<exc_type>`):
/// the job could not be run or its outcome could not be kept (a panic, a
/// message or result over its cap, a Redis key that refuses the write).
pub fn refused(job: &Job, exc_type: &str, reason: &str, settings: &PlanSettings) -> Plan {
    let reason = echo(reason);
    let plan = Plan { note: Some(format!("{exc_type}: {reason}")), ..Plan::default() };
    let result = ResultValue::Exception(ExceptionInfo::new("chard.exceptions", exc_type, reason));
    finish(plan, &job.message, State::Failure, result, Vec::new(), settings)
}

/// Text from a task or a sender, cut to what a result or a log line keeps.
fn echo(text: &str) -> String {
    crate::protocol::bounds::truncate(text, crate::protocol::bounds::MAX_ECHO).into_owned()
}

/// REVOKED because the message's `expires` passed before it ran.
pub fn expired(job: &Job, settings: &PlanSettings) -> Plan {
    let plan = Plan { note: Some("expired before it ran".into()), ..Plan::default() };
    let result = ResultValue::Exception(ExceptionInfo::new("celery.exceptions", "TaskRevokedError", "expired"));
    finish(plan, &job.message, State::Revoked, result, Vec::new(), settings)
}

/// REVOKED because the id was revoked before it ran.
pub fn revoked(job: &Job, settings: &PlanSettings) -> Plan {
    let plan = Plan { note: Some("revoked before it ran".into()), ..Plan::default() };
    let result = ResultValue::Exception(ExceptionInfo::new("celery.exceptions", "TaskRevokedError", "revoked"));
    finish(plan, &job.message, State::Revoked, result, Vec::new(), settings)
}

fn finish(
    mut plan: Plan,
    message: &TaskMessage,
    state: State,
    result: ResultValue,
    children: Vec<Value>,
    settings: &PlanSettings,
) -> Plan {
    let exception = match &result {
        ResultValue::Exception(exception) => Some(exception.clone()),
        ResultValue::Value(_) => None,
    };
    plan.ending = Some(Ending { state, exception });
    if let (Some(body), Some(group_id), true) = (&message.embed.chord, &message.headers.group, state != State::Retry) {
        // Celery's `on_chord_part_return`: only the step that carries the
        // chord (the last of a chain in a header) has it; it reports even
        // when its own result is not stored.
        let entry = json!([1, message.id, state, result]).to_string();
        plan.chords.push(ChordMember {
            part: ChordPart {
                group_id: group_id.clone(),
                task_id: message.id.clone(),
                group_index: message.headers.group_index.unwrap_or(u32::MAX),
                entry,
                ttl: settings.result_expires,
            },
            body: body.clone(),
            root_id: message.root_id().to_string(),
            reply_to: message.properties.reply_to.clone(),
        });
    }
    if state == State::Failure {
        // `_fail_chain`: a failed step stops its chain.
        if let ResultValue::Exception(exception) = &result {
            let chain = canvas::fail_chain(message.embed.chain.as_deref().unwrap_or_default());
            let reply_to = message.properties.reply_to.as_deref();
            fail_chain(&chain, exception, message.root_id(), reply_to, settings, &mut plan.writes, &mut plan.chords);
        }
    }
    if message.headers.ignore_result == Some(true) && state != State::Retry {
        return plan;
    }
    let mut meta = ResultMeta::new(&message.id, state, result);
    meta.children = children;
    meta.group_id = message.headers.group.as_deref();
    meta.parent_id = message.headers.parent_id.as_deref();
    plan.writes.push(ResultWrite { key: result_key(&message.id), json: meta.to_json(), ttl: settings.result_expires });
    plan
}

/// Celery's serialised exception for a task's failure: `exc_message` is
/// the exception's args.
fn exception_of(failure: &Failure) -> ExceptionInfo {
    let (module, exc_type) = failure.module_and_type();
    // Text a task echoes from its arguments is capped (see `echo`).
    let exc_message = failure
        .exc_message()
        .into_iter()
        .map(|arg| match arg {
            Value::String(text) => Value::String(echo(&text)),
            other => other,
        })
        .collect();
    ExceptionInfo { exc_type: exc_type.to_string(), exc_message, exc_module: module.to_string() }
}

/// A failure listed in the task's `autoretry_for` becomes a retry, with
/// Celery's exponential backoff when the task asked for it.
fn autoretry(failure: &Failure, task: Option<&TaskInfo>, message: &TaskMessage) -> Option<RetryRequest> {
    let task = task?;
    let (_, exc_type) = failure.module_and_type();
    let listed = task.defaults.autoretry_for.iter().any(|name| {
        name == &failure.exception_type || name == exc_type || name == "Exception"
    });
    if !listed {
        return None;
    }
    let countdown = task.defaults.retry_backoff.map(|base| {
        let max = task.defaults.retry_backoff_max.unwrap_or(DEFAULT_BACKOFF_MAX);
        let delay = base.saturating_mul(1u32 << message.retries().min(20)).min(max);
        if task.defaults.retry_jitter {
            // Celery's full jitter: uniform in [0, delay].
            delay.mul_f64(fastrand::f64())
        } else {
            delay
        }
    });
    Some(RetryRequest {
        countdown,
        reason: Some(format!("{}: {}", failure.exception_type, failure.message)),
        max_retries: None,
        exc: None,
        expires: None,
    })
}

fn retry(
    mut plan: Plan,
    message: &TaskMessage,
    request: &RetryRequest,
    task: Option<&TaskInfo>,
    failure: Option<&Failure>,
    settings: &PlanSettings,
) -> Plan {
    let max_retries = request
        .max_retries
        .or_else(|| task.and_then(|task| task.defaults.max_retries))
        .unwrap_or(DEFAULT_MAX_RETRIES);
    if message.retries() >= max_retries {
        // Out of retries: FAILURE with the original error, as Celery does.
        // Out of retries: the error that caused them, else the exception the
        // task named for this case (`retry(exc=...)`), else Celery's own.
        let result = match failure.or(request.exc.as_ref()) {
            Some(failure) => exception_of(failure),
            None => ExceptionInfo::new(
                "celery.exceptions",
                "MaxRetriesExceededError",
                format!(
                    "Can't retry {}[{}]: max retries ({max_retries}) exceeded{}",
                    message.task,
                    message.id,
                    request.reason.as_deref().map(|reason| format!(" ({})", echo(reason))).unwrap_or_default()
                ),
            ),
        };
        plan.note = Some(format!("retries exhausted after {} attempts", message.retries().saturating_add(1)));
        let effects = canvas::errbacks(message.embed.errbacks.as_deref().unwrap_or_default(), &message.id, message.root_id(), &context(message, settings));
        add_effects(&mut plan, effects, &mut Vec::new());
        return finish(plan, message, State::Failure, ResultValue::Exception(result), Vec::new(), settings);
    }
    // A plugin's countdown of 2^62 ms saturates at a century instead of
    // overflowing the clock.
    let countdown = crate::protocol::bounds::duration(
        request.countdown.or_else(|| task.and_then(|task| task.defaults.default_retry_delay)).unwrap_or(DEFAULT_RETRY_DELAY),
    );
    let eta = chrono::Utc::now() + chrono::Duration::from_std(countdown).unwrap_or_default();
    let mut copy = outgoing_copy(message, settings);
    copy.retries = message.retries().saturating_add(1);
    copy.eta = Some(eta.to_rfc3339_opts(chrono::SecondsFormat::Micros, false));
    copy.parent_id = Some(message.id.clone());
    copy.id = message.id.clone();
    if let Some(expires) = &request.expires {
        copy.expires = Some(expires.clone());
    }
    plan.publish.push((queue_key_for(&copy.queue, copy.priority), copy.to_envelope()));
    let reason = request.reason.as_deref().map(echo).unwrap_or_else(|| "retry requested".into());
    plan.note = Some(format!("retry {} of {max_retries} in {:.3}s: {reason}", copy.retries, countdown.as_secs_f64()));
    let result = ResultValue::Exception(ExceptionInfo::new("celery.exceptions", "Retry", format!("Retry in {:.3}s: {reason}", countdown.as_secs_f64())));
    let children = vec![json!([[message.id, null], null])];
    finish(plan, message, State::Retry, result, children, settings)
}

/// The same task again (for retries), keeping every header Celery keeps.
fn outgoing_copy(message: &TaskMessage, settings: &PlanSettings) -> OutgoingTask {
    let mut copy = OutgoingTask::new(&message.task, message.args.clone(), message.kwargs.clone(), settings.hostname.clone());
    copy.id = message.id.clone();
    copy.embed = message.embed.clone();
    copy.queue = routing_queue(message).to_string();
    copy.priority = message.priority();
    copy.expires = message.headers.expires.clone();
    copy.root_id = Some(message.root_id().to_string());
    copy.parent_id = message.headers.parent_id.clone();
    copy.group = message.headers.group.clone();
    copy.group_index = message.headers.group_index;
    copy.timelimit = message.headers.timelimit.unwrap_or((None, None));
    copy.reply_to = message.properties.reply_to.clone();
    copy.ignore_result = message.headers.ignore_result;
    copy.origin = message.headers.origin.clone().unwrap_or_else(|| settings.hostname.clone());
    // Custom headers (and stamps) travel with the retry, as in Celery;
    // `redelivered` described the delivery being retried, not the copy.
    copy.extra_headers = message.headers.extra.clone();
    copy.extra_headers.remove("redelivered");
    copy
}

fn routing_queue(message: &TaskMessage) -> &str {
    let key = &message.properties.delivery_info.routing_key;
    if key.is_empty() { "celery" } else { key }
}

/// The running task as the canvas sees it: the parent of what it sends.
fn context<'a>(message: &'a TaskMessage, settings: &'a PlanSettings) -> Context<'a> {
    Context {
        task_id: &message.id,
        root_id: message.root_id(),
        default_queue: routing_queue(message),
        hostname: &settings.hostname,
        routes: &settings.routes,
        reply_to: None,
        typing: settings.typing.as_ref(),
    }
}

fn add_effects(plan: &mut Plan, effects: Effects, children: &mut Vec<Value>) {
    children.extend(effects.children);
    for task in effects.messages {
        plan.publish.push((queue_key_for(&task.queue, task.priority), task.to_envelope()));
    }
    plan.chord_sizes.extend(effects.chord_sizes);
    plan.saved_headers.extend(effects.saved_headers);
}

/// What firing (or failing) a complete chord's body writes and sends.
#[derive(Default)]
pub struct ChordFiring {
    pub publish: Vec<(String, String)>,
    pub writes: Vec<ResultWrite>,
    pub chord_sizes: Vec<(String, u64)>,
    /// Header results of the chords the body starts, saved with the sizes.
    pub saved_headers: Vec<(String, String)>,
    /// Chords that later chain steps, failed with the body, report to.
    pub chords: Vec<ChordMember>,
}

/// How a complete chord's header results were read.
pub enum HeaderResults<'a> {
    /// The flat entries of `<group>.j`, in `group_index` order (Celery's
    /// path for a header of plain results).
    Entries(&'a [String]),
    /// The saved `GroupResult`, joined (`protocol::group_result`): the
    /// body's argument, or the exception the join raised.
    Joined(Result<Vec<Value>, ExceptionInfo>),
}

/// The chord is complete: apply its body with every header result, or,
/// if a member failed, fail the body with Celery's ChordError.
pub fn fire_chord(member: &ChordMember, header: HeaderResults, settings: &PlanSettings) -> ChordFiring {
    let results = match header {
        HeaderResults::Entries(entries) => {
            let mut results = Vec::with_capacity(entries.len());
            for entry in entries {
                let parsed: Value = serde_json::from_str(entry).unwrap_or(Value::Null);
                let (id, state, result) = (&parsed[1], parsed[2].as_str().unwrap_or(""), &parsed[3]);
                if state == "FAILURE" || state == "REVOKED" {
                    // `_unpack_chord_result`: a ChordError caused by the member's error.
                    let original = group_result::exception_of(result);
                    let text = format!("Dependency {} raised {}", id.as_str().unwrap_or("?"), exception_repr(&original));
                    let exception = ExceptionInfo::new("celery.exceptions", "ChordError", text);
                    return fail_chord_body(member, &exception, &original, settings);
                }
                results.push(result.clone());
            }
            results
        }
        HeaderResults::Joined(Ok(results)) => results,
        HeaderResults::Joined(Err(raised)) => {
            // `on_chord_part_return`: a ChordError a member stored is
            // re-raised as it is; anything else the join raised becomes
            // `ChordError('Join error: <repr>')`. Neither has a cause, so a
            // group body's tasks fail with that ChordError too.
            let exception = if raised.exc_type == "ChordError" {
                raised
            } else {
                ExceptionInfo::new("celery.exceptions", "ChordError", format!("Join error: {}", exception_repr(&raised)))
            };
            return fail_chord_body(member, &exception, &exception, settings);
        }
    };
    let cx = chord_context(member, settings);
    let mut firing = ChordFiring::default();
    let mut effects = canvas::fire_chord_body(&member.body, results, &cx);
    if let Some(error) = effects.raised.take() {
        // The Redis backend's `on_chord_part_return`: `callback.delay`
        // raised, so `chord_error_from_stack` fails the body with
        // `ChordError('Callback error: <repr>')`; what went out before the
        // call that raised stays sent.
        let raised = ExceptionInfo::new("builtins", "TypeError", error.0);
        let exception = ExceptionInfo::new("celery.exceptions", "ChordError", format!("Callback error: {}", exception_repr(&raised)));
        firing = fail_chord_body(member, &exception, &exception, settings);
    }
    firing.chord_sizes.extend(effects.chord_sizes);
    firing.saved_headers.extend(effects.saved_headers);
    for mut task in effects.messages {
        if task.reply_to.is_none() {
            task.reply_to = member.reply_to.clone();
        }
        firing.publish.push((queue_key_for(&task.queue, task.priority), task.to_envelope()));
    }
    firing
}

/// A header member's result cannot be joined (Redis refused the join for
/// good), so the chord could never complete: end it as Celery's
/// `on_chord_part_return` does when the join raises, with
/// `ChordError('Join error: ...')` on the body and its errbacks sent.
pub fn chord_join_failed(member: &ChordMember, error: &str, settings: &PlanSettings) -> ChordFiring {
    let exception = ExceptionInfo::new("celery.exceptions", "ChordError", format!("Join error: {error}"));
    fail_chord_body(member, &exception, &exception, settings)
}

/// `chord_error_from_stack`: the body fails with `exception` (the tasks of
/// a group body with `original`), its errbacks are sent and the chain
/// after it fails too.
fn fail_chord_body(member: &ChordMember, exception: &ExceptionInfo, original: &ExceptionInfo, settings: &PlanSettings) -> ChordFiring {
    let mut firing = ChordFiring::default();
    let cx = chord_context(member, settings);
    let mut failure = canvas::chord_body_failure(&member.body, &cx);
    if let Some(error) = failure.effects.raised.take() {
        tracing::warn!(group = %member.part.group_id, "a chord body's errback cannot take its arguments, not sent: TypeError: {error}");
    }
    let failed = failure.chord_error.iter().map(|id| (id, exception)).chain(failure.original_error.iter().map(|id| (id, original)));
    for (id, exception) in failed {
        let meta = ResultMeta::new(id, State::Failure, ResultValue::Exception(exception.clone()));
        firing.writes.push(ResultWrite { key: result_key(id), json: meta.to_json(), ttl: settings.result_expires });
    }
    fail_chain(&failure.chain, exception, &member.root_id, member.reply_to.as_deref(), settings, &mut firing.writes, &mut firing.chords);
    firing.chord_sizes.extend(failure.effects.chord_sizes);
    firing.saved_headers.extend(failure.effects.saved_headers);
    firing.publish.extend(failure.effects.messages.iter().map(|task| (queue_key_for(&task.queue, task.priority), task.to_envelope())));
    firing
}

fn chord_context<'a>(member: &'a ChordMember, settings: &'a PlanSettings) -> Context<'a> {
    Context {
        task_id: &member.part.task_id,
        root_id: &member.root_id,
        default_queue: "celery",
        hostname: &settings.hostname,
        routes: &settings.routes,
        reply_to: None,
        typing: settings.typing.as_ref(),
    }
}

/// Later chain steps fail with the same error, so a client waiting on the
/// last one gets it; a step that belongs to a chord reports the failure.
fn fail_chain(
    chain: &[ChainFailure],
    exception: &ExceptionInfo,
    root_id: &str,
    reply_to: Option<&str>,
    settings: &PlanSettings,
    writes: &mut Vec<ResultWrite>,
    chords: &mut Vec<ChordMember>,
) {
    for step in chain {
        let result = ResultValue::Exception(exception.clone());
        let mut meta = ResultMeta::new(&step.task_id, State::Failure, result);
        meta.group_id = step.chord.as_ref().map(|(_, group_id, _)| group_id.as_str());
        writes.push(ResultWrite { key: result_key(&step.task_id), json: meta.to_json(), ttl: settings.result_expires });
        if let Some((body, group_id, group_index)) = &step.chord {
            let entry = json!([1, step.task_id, State::Failure, exception]).to_string();
            chords.push(ChordMember {
                part: ChordPart {
                    group_id: group_id.clone(),
                    task_id: step.task_id.clone(),
                    group_index: group_index.unwrap_or(u32::MAX),
                    entry,
                    ttl: settings.result_expires,
                },
                body: body.clone(),
                root_id: root_id.to_string(),
                reply_to: reply_to.map(str::to_string),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Routes;
    use crate::runtime::Cancellation;

    fn settings() -> PlanSettings {
        PlanSettings {
            hostname: "w@test".into(),
            result_expires: Duration::from_secs(60),
            routes: Routes::default(),
            max_result_bytes: 1 << 20,
            typing: std::sync::Arc::new(canvas::Unchecked),
        }
    }

    fn job_with_headers(extra: Value) -> Job {
        let args = serde_json::value::to_raw_value(&json!([1])).unwrap();
        let kwargs = serde_json::value::to_raw_value(&json!({})).unwrap();
        let mut task = OutgoingTask::new("faults.flaky", args, kwargs, "client@test".into());
        task.extra_headers = extra.as_object().unwrap().clone();
        let message = TaskMessage::parse(task.to_envelope().as_bytes()).unwrap();
        Job { tag: None, message, holds_slot: false, bytes: 0, cancellation: Cancellation::default(), ready_since: std::time::Instant::now() }
    }

    fn published_headers(plan: &Plan) -> Value {
        let envelope: Value = serde_json::from_str(&plan.publish[0].1).unwrap();
        envelope["headers"].clone()
    }

    #[test]
    fn a_retry_keeps_custom_headers_and_stamps() {
        let job = job_with_headers(json!({"tenant": "acme", "stamped_headers": ["mon"], "stamps": {"mon": "x"}, "redelivered": true}));
        let retry = Outcome::Retry(RetryRequest { countdown: Some(Duration::from_millis(10)), reason: None, max_retries: None, exc: None, expires: None });
        let plan = plan(&job, &retry, None, &settings());
        let headers = published_headers(&plan);
        assert_eq!(headers["tenant"], json!("acme"));
        assert_eq!(headers["stamped_headers"], json!(["mon"]));
        assert_eq!(headers["stamps"], json!({"mon": "x"}));
        assert_eq!(headers["retries"], json!(1));
        assert!(headers.get("redelivered").is_none(), "{headers}");
    }
}
