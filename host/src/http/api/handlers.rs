//! The API's routes. Each handler checks its input completely before it
//! sends anything, and names the field at fault when it refuses.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Map, Value};

use super::{ApiError, ApiState};
use crate::control::client::{broadcast, Broadcast};

/// How long `GET /tasks` and `GET /workers` wait for workers' replies.
const PIDBOX_TIMEOUT: Duration = Duration::from_secs(1);

/// `POST /tasks/{name}` body; every field may be left out.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)] // parsed by hand (see `parse_submit`), declared for the document
pub(super) struct SubmitRequest {
    /// Positional arguments.
    #[schema(value_type = Option<Vec<Object>>)]
    args: Option<Vec<Value>>,
    /// Keyword arguments.
    #[schema(value_type = Option<Object>)]
    kwargs: Option<Map<String, Value>>,
    options: Option<SubmitOptions>,
}

/// Celery's sending options.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct SubmitOptions {
    /// Queue to send to (default: the routed queue, else `celery`).
    queue: Option<String>,
    /// 0-9, lower runs first (Celery's Redis transport).
    #[schema(minimum = 0, maximum = 9)]
    priority: Option<u8>,
    /// Seconds from now before it may run.
    #[schema(minimum = 0)]
    countdown: Option<f64>,
    /// Seconds from now after which it is not run (REVOKED `expired`).
    expires: Option<f64>,
}

/// A task's id and, once known, its state and result.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct TaskState {
    id: String,
    /// PENDING, STARTED, RETRY, SUCCESS, FAILURE or REVOKED.
    status: String,
    /// The return value (SUCCESS) or the exception (FAILURE, REVOKED).
    #[schema(value_type = Object)]
    result: Value,
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(super) struct WaitParams {
    /// Seconds to wait for the result (up to 300); without it the reply is the id alone.
    wait: Option<f64>,
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(super) struct RevokeParams {
    /// Also stop the task if it is running.
    terminate: Option<bool>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct Revoked {
    id: String,
    terminate: bool,
}

/// A task name and who serves it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct TaskEntry {
    name: String,
    /// Node names of live workers that registered it.
    workers: Vec<String>,
    /// The plugin version serving it in the API's plugin folder, if any.
    plugin_version: Option<String>,
}

/// A live worker and its `stats` reply.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct WorkerEntry {
    hostname: String,
    #[schema(value_type = Object)]
    stats: Value,
}

/// Send a task (a Celery message, as `host submit` sends it).
#[utoipa::path(
    post, path = "/tasks/{name}",
    params(("name" = String, Path, description = "Task name, e.g. math.add"), WaitParams),
    request_body(content = SubmitRequest, description = "Arguments and options", content_type = "application/json"),
    responses(
        (status = 202, description = "Sent; result not awaited or not ready in time", body = TaskState),
        (status = 200, description = "Finished within ?wait", body = TaskState),
        (status = 422, description = "Bad input; nothing was sent", body = ApiError),
    )
)]
pub(super) async fn submit(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let wait = parse_wait(&query, state.config.max_wait)?;
    if name.trim().is_empty() || name.len() > 200 || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ApiError::field("name", "the task name must be 1-200 characters without spaces, e.g. math.add"));
    }
    let (args, kwargs, options) = parse_submit(&body)?;
    let mut task = state.client.task(&name, args, kwargs).map_err(|error| ApiError::unavailable(&error))?;
    apply_options(&mut task, &options)?;
    let id = state.client.send(task).await.map_err(|error| ApiError::unavailable(&error))?;
    let Some(wait) = wait else {
        return Ok((StatusCode::ACCEPTED, Json(TaskState { id, status: "PENDING".into(), result: Value::Null })));
    };
    let finished = match state.client.wait(&id, wait).await {
        Ok(result) => result,
        Err(_) => state.client.get(&id).await.map_err(|error| ApiError::unavailable(&error))?,
    };
    let status = if finished.is_ready() { StatusCode::OK } else { StatusCode::ACCEPTED };
    Ok((status, Json(TaskState { id, status: finished.status, result: finished.value })))
}

/// A task's state and result (PENDING when nothing is stored).
#[utoipa::path(
    get, path = "/results/{id}",
    params(("id" = String, Path, description = "Task id"), WaitParams),
    responses((status = 200, body = TaskState), (status = 422, body = ApiError))
)]
pub(super) async fn result(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<TaskState>, ApiError> {
    let wait = parse_wait(&query, state.config.max_wait)?;
    check_id(&id)?;
    let mut found = state.client.get(&id).await.map_err(|error| ApiError::unavailable(&error))?;
    if let (Some(wait), false) = (wait, found.is_ready()) {
        if let Ok(finished) = state.client.wait(&id, wait).await {
            found = finished;
        }
    }
    Ok(Json(TaskState { id, status: found.status, result: found.value }))
}

/// Revoke a task on every worker, Chard and Celery (`host revoke`).
#[utoipa::path(
    post, path = "/results/{id}/revoke",
    params(("id" = String, Path, description = "Task id"), RevokeParams),
    responses((status = 200, body = Revoked), (status = 422, body = ApiError))
)]
pub(super) async fn revoke(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Revoked>, ApiError> {
    check_id(&id)?;
    let terminate = match query.get("terminate").map(String::as_str) {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") | Some("") => true,
        Some(other) => return Err(ApiError::field("terminate", format!("terminate must be true or false, got {other:?}"))),
    };
    let mut connection = crate::broker::redis::connect_manager(state.broker.clone())
        .await
        .map_err(|error| ApiError::unavailable(&error.into()))?;
    crate::control::broadcast_revoke(&mut connection, state.db, std::slice::from_ref(&id), terminate)
        .await
        .map_err(|error| ApiError::unavailable(&error.into()))?;
    Ok(Json(Revoked { id, terminate }))
}

/// Registered tasks: live workers' `registered` replies and the plugin folder.
#[utoipa::path(get, path = "/tasks", responses((status = 200, body = Vec<TaskEntry>)))]
pub(super) async fn tasks(State(state): State<Arc<ApiState>>) -> Result<Json<Vec<TaskEntry>>, ApiError> {
    let replies = ask(&state, "registered", json!({"taskinfoitems": []})).await?;
    let mut entries: BTreeMap<String, BTreeSet<String>> =
        state.plugin_tasks.keys().map(|name| (name.clone(), BTreeSet::new())).collect();
    for (worker, reply) in replies {
        for name in reply.as_array().into_iter().flatten().filter_map(Value::as_str) {
            // Celery lists `name [rate_limit=...]` when asked for details; the name is the first word.
            let name = name.split_whitespace().next().unwrap_or(name);
            entries.entry(name.to_string()).or_default().insert(worker.clone());
        }
    }
    Ok(Json(
        entries
            .into_iter()
            .map(|(name, workers)| TaskEntry {
                plugin_version: state.plugin_tasks.get(&name).cloned(),
                name,
                workers: workers.into_iter().collect(),
            })
            .collect(),
    ))
}

/// Live workers (those answering within 1 s) with their `stats`.
#[utoipa::path(get, path = "/workers", responses((status = 200, body = Vec<WorkerEntry>)))]
pub(super) async fn workers(State(state): State<Arc<ApiState>>) -> Result<Json<Vec<WorkerEntry>>, ApiError> {
    let mut replies = ask(&state, "stats", json!({})).await?;
    replies.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Json(replies.into_iter().map(|(hostname, stats)| WorkerEntry { hostname, stats }).collect()))
}

/// Liveness of the API process (no token needed).
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "Alive", body = Object)))]
pub(super) async fn healthz() -> Json<Value> {
    crate::http::probes::healthz().await
}

async fn ask(state: &ApiState, method: &str, arguments: Value) -> Result<Vec<(String, Value)>, ApiError> {
    let request = Broadcast { method: method.into(), arguments, destination: Vec::new(), reply: true, timeout: PIDBOX_TIMEOUT };
    broadcast(&state.broker, state.db, &request).await.map_err(|error| ApiError::unavailable(&error.into()))
}

fn parse_wait(query: &HashMap<String, String>, max: Duration) -> Result<Option<Duration>, ApiError> {
    let Some(text) = query.get("wait") else { return Ok(None) };
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds > 0.0 && seconds <= max.as_secs_f64() => {
            Ok(Some(Duration::from_secs_f64(seconds)))
        }
        _ => Err(ApiError::field("wait", format!("wait must be a number of seconds above 0 and at most {}, got {text:?}", max.as_secs()))),
    }
}

fn check_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > 255 || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ApiError::field("id", "a task id is 1-255 characters without spaces"));
    }
    Ok(())
}

/// The body as `(args, kwargs, options)`, each checked; an empty body is
/// a call without arguments.
fn parse_submit(body: &[u8]) -> Result<(Value, Value, Map<String, Value>), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((json!([]), json!({}), Map::new()));
    }
    let value: Value = serde_json::from_slice(body).map_err(|error| ApiError::field("body", format!("the body is not JSON: {error}")))?;
    let Value::Object(mut fields) = value else {
        return Err(ApiError::field("body", "the body must be a JSON object: {\"args\": [...], \"kwargs\": {...}, \"options\": {...}}"));
    };
    if let Some(unknown) = fields.keys().find(|key| !["args", "kwargs", "options"].contains(&key.as_str())) {
        return Err(ApiError::field(unknown, format!("unknown field {unknown:?}: expected args, kwargs or options")));
    }
    let args = match fields.remove("args") {
        None | Some(Value::Null) => json!([]),
        Some(args @ Value::Array(_)) => args,
        Some(_) => return Err(ApiError::field("args", "args must be a JSON array, e.g. [2, 3]")),
    };
    let kwargs = match fields.remove("kwargs") {
        None | Some(Value::Null) => json!({}),
        Some(kwargs @ Value::Object(_)) => kwargs,
        Some(_) => return Err(ApiError::field("kwargs", "kwargs must be a JSON object, e.g. {\"x\": 1}")),
    };
    let options = match fields.remove("options") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(options)) => options,
        Some(_) => return Err(ApiError::field("options", "options must be a JSON object")),
    };
    Ok((args, kwargs, options))
}

fn apply_options(task: &mut crate::protocol::OutgoingTask, options: &Map<String, Value>) -> Result<(), ApiError> {
    let seconds = |field: &str, value: &Value, allow_zero: bool| -> Result<Duration, ApiError> {
        match value.as_f64() {
            Some(s) if s.is_finite() && (s > 0.0 || (allow_zero && s == 0.0)) && s < 1e9 => Ok(Duration::from_secs_f64(s)),
            _ => Err(ApiError::field(&format!("options.{field}"), format!("options.{field} must be a positive number of seconds"))),
        }
    };
    let now = chrono::Utc::now();
    let iso = |offset: Duration| (now + chrono::Duration::from_std(offset).unwrap_or_default()).to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
    for (key, value) in options {
        match key.as_str() {
            "queue" => match value.as_str().map(str::trim) {
                Some(queue) if !queue.is_empty() && !queue.contains(['"', '\\']) => task.queue = queue.to_string(),
                _ => return Err(ApiError::field("options.queue", "options.queue must be a queue name")),
            },
            "priority" => match value.as_u64() {
                Some(priority) if priority <= 9 => task.priority = priority as u8,
                _ => return Err(ApiError::field("options.priority", "options.priority must be an integer 0-9")),
            },
            "countdown" => task.eta = Some(iso(seconds("countdown", value, true)?)),
            "expires" => task.expires = Some(iso(seconds("expires", value, false)?)),
            other => {
                return Err(ApiError::field(
                    &format!("options.{other}"),
                    format!("unknown option {other:?}: expected queue, priority, countdown or expires"),
                ))
            }
        }
    }
    Ok(())
}
