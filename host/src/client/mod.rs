//! A Rust client for Chard and Celery workers: send a task, wait for its
//! result. Messages and results are Celery's, so the same client talks to
//! a Python Celery worker.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use chard::client::Client;
//! let client = Client::connect("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/1").await?;
//! let id = client.send(client.task("math.add", serde_json::json!([2, 3]), serde_json::json!({}))?).await?;
//! let result = client.wait(&id, std::time::Duration::from_secs(10)).await?;
//! assert_eq!(result.value, serde_json::json!(5));
//! # Ok(()) }
//! ```

use std::time::Duration;

use anyhow::Context as _;
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use serde_json::Value;

use crate::protocol::{queue_key_for, result_key, OutgoingTask, Routes};

mod canvas;
mod reach;

pub use canvas::parse_step;
pub use reach::{connect_once, wait_until_reachable, Unreachable};

/// A connected client.
pub struct Client {
    broker: ConnectionManager,
    backend: ConnectionManager,
    backend_client: redis::Client,
    origin: String,
    routes: Routes,
}

/// A task's state as stored by the worker.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskResult {
    /// PENDING, STARTED, RETRY, SUCCESS, FAILURE or REVOKED.
    pub status: String,
    /// The return value (SUCCESS) or the exception document.
    pub value: Value,
    /// The whole stored document.
    pub document: Value,
}

impl TaskResult {
    pub fn is_ready(&self) -> bool {
        matches!(self.status.as_str(), "SUCCESS" | "FAILURE" | "REVOKED")
    }

    /// "task failed: ValueError: bad value" (or "task revoked: ..."): the
    /// words `host call` uses for a failed task too.
    pub fn failure_line(&self) -> String {
        let verb = if self.status == "REVOKED" { "revoked" } else { "failed" };
        format!("task {verb}: {}", self.error_line())
    }

    /// "ValueError: bad value" for a failure.
    pub fn error_line(&self) -> String {
        let exc_type = self.value.get("exc_type").and_then(Value::as_str).unwrap_or("Error");
        let message = match self.value.get("exc_message") {
            Some(Value::Array(parts)) if parts.len() == 1 => display(&parts[0]),
            Some(other) => display(other),
            None => self.value.to_string(),
        };
        format!("{exc_type}: {message}")
    }
}

fn display(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

impl Client {
    pub async fn connect(broker_url: &str, result_backend_url: &str) -> anyhow::Result<Self> {
        let broker_client = open(broker_url)?;
        let backend_client = open(result_backend_url)?;
        // Fail within seconds when Redis is not there, not after the
        // connection manager's retries.
        connect_once(&broker_client).await?;
        if result_backend_url != broker_url {
            connect_once(&backend_client).await?;
        }
        let broker = crate::broker::redis::connect_manager(broker_client)
            .await
            .with_context(|| format!("connecting to broker {}", redact(broker_url)))?;
        let backend = crate::broker::redis::connect_manager(backend_client.clone())
            .await
            .with_context(|| format!("connecting to result backend {}", redact(result_backend_url)))?;
        let origin = format!("chard-client{}@{}", std::process::id(), crate::hostname());
        Ok(Self { broker, backend, backend_client, origin, routes: Routes::default() })
    }

    /// Routes tasks by name (`"math.*" = "cpu"`) when no queue is given.
    pub fn with_routes(mut self, routes: Routes) -> Self {
        self.routes = routes;
        self
    }

    /// A task message with defaults (the routed queue, else `celery`;
    /// priority 0); adjust its fields, then `send` it.
    pub fn task(&self, name: &str, args: Value, kwargs: Value) -> anyhow::Result<OutgoingTask> {
        anyhow::ensure!(args.is_array(), "args must be a JSON array");
        anyhow::ensure!(kwargs.is_object(), "kwargs must be a JSON object");
        let mut task = OutgoingTask::new(
            name,
            serde_json::value::to_raw_value(&args)?,
            serde_json::value::to_raw_value(&kwargs)?,
            self.origin.clone(),
        );
        if let Some(queue) = self.routes.queue_for(name) {
            task.queue = queue.to_string();
        }
        Ok(task)
    }

    /// Publishes the task; returns its id.
    pub async fn send(&self, task: OutgoingTask) -> anyhow::Result<String> {
        let id = task.id.clone();
        self.send_all(vec![task]).await?;
        Ok(id)
    }

    /// Publishes several tasks in one round trip (a group's members).
    pub async fn send_all(&self, tasks: Vec<OutgoingTask>) -> anyhow::Result<()> {
        let mut pipe = redis::pipe();
        for task in &tasks {
            pipe.lpush(queue_key_for(&task.queue, task.priority), task.to_envelope()).ignore();
        }
        pipe.query_async::<()>(&mut self.broker.clone()).await.context("publishing the task")?;
        Ok(())
    }

    /// Publishes the task and waits for its result (subscribing first, so
    /// the result cannot slip by).
    pub async fn send_and_wait(&self, task: OutgoingTask, timeout: Duration) -> anyhow::Result<TaskResult> {
        let id = task.id.clone();
        let mut pubsub = self.subscribe(&id).await?;
        self.send(task).await?;
        self.wait_on(&id, &mut pubsub, timeout).await
    }

    /// The stored state, PENDING if there is none.
    pub async fn get(&self, id: &str) -> anyhow::Result<TaskResult> {
        let stored: Option<String> =
            redis::cmd("GET").arg(result_key(id)).query_async(&mut self.backend.clone()).await.context("reading the result")?;
        match stored {
            Some(text) => parse_result(&text),
            None => Ok(TaskResult { status: "PENDING".into(), value: Value::Null, document: Value::Null }),
        }
    }

    /// Waits until the task is SUCCESS, FAILURE or REVOKED.
    pub async fn wait(&self, id: &str, timeout: Duration) -> anyhow::Result<TaskResult> {
        let mut pubsub = self.subscribe(id).await?;
        self.wait_on(id, &mut pubsub, timeout).await
    }

    async fn subscribe(&self, id: &str) -> anyhow::Result<redis::aio::PubSub> {
        let mut pubsub = self.backend_client.get_async_pubsub().await.context("subscribing for the result")?;
        pubsub.subscribe(result_key(id)).await.context("subscribing for the result")?;
        Ok(pubsub)
    }

    async fn wait_on(&self, id: &str, pubsub: &mut redis::aio::PubSub, timeout: Duration) -> anyhow::Result<TaskResult> {
        let current = self.get(id).await?;
        if current.is_ready() {
            return Ok(current);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut messages = pubsub.on_message();
        loop {
            let next = tokio::time::timeout_at(deadline, messages.next()).await;
            match next {
                Err(_) => anyhow::bail!("timed out after {:.1}s waiting for task {id}", timeout.as_secs_f64()),
                Ok(None) => anyhow::bail!("result connection closed while waiting for task {id}"),
                Ok(Some(message)) => {
                    let payload: String = message.get_payload().context("reading a result message")?;
                    let result = parse_result(&payload)?;
                    if result.is_ready() {
                        return Ok(result);
                    }
                }
            }
        }
    }
}

fn parse_result(text: &str) -> anyhow::Result<TaskResult> {
    let document: Value = serde_json::from_str(text).context("stored result is not JSON")?;
    let status = document.get("status").and_then(Value::as_str).unwrap_or("PENDING").to_string();
    let value = document.get("result").cloned().unwrap_or(Value::Null);
    Ok(TaskResult { status, value, document })
}

/// Opens a Redis URL, accepting kombu's `redis+socket://` spelling too.
pub fn open(url: &str) -> anyhow::Result<redis::Client> {
    let normalized = match url.strip_prefix("redis+socket://") {
        Some(rest) => format!("redis+unix://{rest}"),
        None => url.to_string(),
    };
    redis::Client::open(normalized.as_str()).with_context(|| format!("invalid Redis URL {}", redact(url)))
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://***@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_string(),
    }
}
