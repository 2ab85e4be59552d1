//! Celery monitoring events, so Flower and `celery events` can watch Chard
//! workers (wire format: `shared/celery-protocol.md` §8).
//!
//! - **Worker events** are always sent: `worker-online` at start,
//!   `worker-heartbeat` every 2 s and whenever a monitor broadcasts
//!   `heartbeat`, `worker-offline` after a graceful shutdown. The heartbeat
//!   comes from a timer on the async runtime, not from the executor threads,
//!   so a worker whose every thread is busy still heartbeats (Celery's solo
//!   pool does not, and Flower then shows it offline).
//! - **Task events** (`task-received`, `-started`, `-succeeded`, `-failed`,
//!   `-retried`, `-revoked`) are off until `host run -E` or the
//!   `enable_events` control command, which Flower broadcasts every 5 s.
//!
//! The worker runs tens of thousands of jobs a second, so a task event must
//! not cost a Redis round trip. Recording one is a clock tick, a copy of a
//! few strings and a push onto an in-memory buffer; the Python reprs are
//! rendered later. A publisher task drains the buffer every 100 ms (sooner
//! when it fills) and sends it as JSON lists under the routing key
//! `task.multi`, as the real worker does, several lists in one pipeline.
//! So a task's end event can reach Redis a few milliseconds before the
//! completer has stored its result; monitors show the event's own `result`.
//!
//! Monitoring never stops the work: a failed publish is logged once (and
//! again only after a success in between) and that flush is dropped; the
//! buffer is bounded and what overflows is counted and dropped.
//!
//! Choices where Celery gives no rule for a non-Python worker:
//! `sw_ident` is `chard` and `sw_ver` its version (Flower only displays
//! them); a task's `traceback` is the last line a Python traceback would
//! have (`ValueError: bad value 7`), since a WebAssembly task has no Python
//! frames; `task-revoked` after a terminate reports `signum` 15, the
//! SIGTERM Celery's revoke defaults to, although Chard interrupts the
//! sandbox rather than signalling a process. A task whose name no plugin
//! serves gets `task-received` then `task-failed` (`NotRegistered`); Celery
//! sends only the failure, but the name then shows in Flower.
//!
//! The Lamport clock lives here and is shared with remote-control replies.

mod publish;
pub mod system;
mod tracker;

pub use publish::Publisher;
pub use tracker::Tracker;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Serialize, Serializer};
use tokio::sync::Notify;

use crate::protocol::repr::{exception_repr, exception_str, python_repr, REPR_LIMIT};
use crate::protocol::{ExceptionInfo, State, TaskMessage};

/// The heartbeat interval, sent as every worker event's `freq`.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);
/// Task events buffered at most; past this they are dropped (and counted).
const MAX_BUFFERED: usize = 100_000;
/// A buffer this long is flushed without waiting for the timer.
const FLUSH_AT: usize = 2_000;
/// The signal number reported for a terminated task (SIGTERM).
const TERMINATE_SIGNUM: i32 = 15;

/// A Lamport clock, as Celery's `app.clock`.
#[derive(Default)]
pub struct Clock(AtomicU64);

impl Clock {
    /// Ticks for an event or message sent; returns the new value.
    pub fn forward(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Moves past a clock value seen on a received message.
    pub fn adjust(&self, seen: u64) -> u64 {
        self.0.fetch_max(seen, Ordering::SeqCst);
        self.forward()
    }

    pub fn value(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// How a job ended, as the worker's plan decided it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ending {
    pub state: State,
    /// The stored exception, for every state but SUCCESS.
    pub exception: Option<ExceptionInfo>,
}

/// A worker's monitoring: its clock, the task-event switch, the buffer of
/// task events waiting for the publisher, and what it holds.
pub struct Events {
    hostname: Arc<str>,
    pid: u32,
    clock: Clock,
    task_events: AtomicBool,
    buffer: Mutex<Vec<Stamped>>,
    dropped: AtomicU64,
    flush_now: Notify,
    heartbeat_now: Notify,
    pub jobs: Tracker,
}

impl Events {
    pub fn new(hostname: &str, task_events: bool) -> Self {
        let hostname: Arc<str> = hostname.into();
        Self {
            jobs: Tracker::new(hostname.clone()),
            hostname,
            pid: std::process::id(),
            clock: Clock::default(),
            task_events: AtomicBool::new(task_events),
            buffer: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
            flush_now: Notify::new(),
            heartbeat_now: Notify::new(),
        }
    }

    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn task_events(&self) -> bool {
        self.task_events.load(Ordering::Relaxed)
    }

    /// Turns task events on or off; returns false if they already were.
    pub fn set_task_events(&self, enabled: bool) -> bool {
        let changed = self.task_events.swap(enabled, Ordering::SeqCst) != enabled;
        if changed {
            tracing::info!(enabled, "task events {} by remote control", if enabled { "enabled" } else { "disabled" });
        }
        changed
    }

    /// Asks the publisher for a heartbeat now (a monitor just connected).
    pub fn request_heartbeat(&self) {
        self.heartbeat_now.notify_one();
    }

    /// The worker took this message and will run it, now or at its ETA.
    pub fn received(&self, tag: Option<&str>, message: &TaskMessage) {
        if let Some(tag) = tag {
            self.jobs.hold(tag, message);
        }
        if !self.task_events() {
            return;
        }
        let shown = |given: &Option<String>, raw: &serde_json::value::RawValue| match given {
            Some(text) => Shown::Text(text.clone()),
            None => Shown::Json(raw.get().to_string()),
        };
        self.push(
            "task-received",
            Fields::Received {
                uuid: message.id.clone(),
                name: message.task.clone(),
                args: shown(&message.headers.argsrepr, &message.args),
                kwargs: shown(&message.headers.kwargsrepr, &message.kwargs),
                root_id: message.root_id().to_string(),
                parent_id: message.headers.parent_id.clone(),
                retries: message.retries(),
                eta: message.headers.eta.clone(),
                expires: message.headers.expires.clone(),
            },
        );
    }

    /// The job starts running on an executor thread.
    pub fn started(&self, tag: Option<&str>, id: &str) {
        if let Some(tag) = tag {
            self.jobs.start(tag, system::now());
        }
        if self.task_events() {
            self.push("task-started", Fields::Started { uuid: id.to_string() });
        }
    }

    /// The job ended; `result_json` is the return value of a success.
    pub fn ended(&self, id: &str, ending: &Ending, result_json: Option<&str>, runtime: Duration) {
        if !self.task_events() {
            return;
        }
        let uuid = id.to_string();
        let exception = || ending.exception.as_ref().map(exception_repr).unwrap_or_else(|| "Exception()".into());
        let traceback = || ending.exception.as_ref().map(traceback_line).unwrap_or_default();
        let (kind, fields) = match ending.state {
            State::Success => (
                "task-succeeded",
                Fields::Succeeded {
                    uuid,
                    result: Shown::Json(result_json.unwrap_or("null").to_string()),
                    runtime: runtime.as_secs_f64(),
                },
            ),
            State::Failure => ("task-failed", Fields::Failed { uuid, exception: exception(), traceback: traceback() }),
            State::Retry => ("task-retried", Fields::Failed { uuid, exception: exception(), traceback: traceback() }),
            State::Revoked => {
                let reason = ending.exception.as_ref().map(exception_str).unwrap_or_default();
                let terminated = reason == "terminated";
                let signum = terminated.then_some(TERMINATE_SIGNUM);
                ("task-revoked", Fields::Revoked { uuid, terminated, signum, expired: reason == "expired" })
            }
            State::Pending | State::Started => return,
        };
        self.push(kind, fields);
    }

    fn push(&self, kind: &'static str, fields: Fields) {
        let clock = self.clock.forward();
        let timestamp = system::now();
        let mut buffer = self.buffer.lock().unwrap();
        if buffer.len() >= MAX_BUFFERED {
            drop(buffer);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        buffer.push(Stamped { clock, timestamp, kind, fields });
        if buffer.len() == FLUSH_AT {
            self.flush_now.notify_one();
        }
    }

    /// Takes every buffered task event, for the publisher.
    fn take_buffered(&self) -> Vec<Stamped> {
        std::mem::take(&mut *self.buffer.lock().unwrap())
    }

    /// A worker event's body (`worker-online`, `-heartbeat`, `-offline`).
    fn worker_body(&self, kind: &'static str) -> Body<'_, WorkerFields> {
        Body {
            hostname: &self.hostname,
            utcoffset: system::utcoffset(),
            pid: self.pid,
            clock: self.clock.forward(),
            fields: WorkerFields {
                freq: HEARTBEAT_INTERVAL.as_secs_f64(),
                active: self.jobs.active_count(),
                processed: self.jobs.processed(),
                loadavg: system::loadavg(),
                sw_ident: "chard",
                sw_ver: env!("CARGO_PKG_VERSION"),
                sw_sys: system::system_name(),
            },
            timestamp: system::now(),
            kind,
        }
    }
}

/// What a Python traceback would end with: `ValueError: bad value 7`.
fn traceback_line(exception: &ExceptionInfo) -> String {
    let name = match exception.exc_module.as_str() {
        "builtins" | "" => exception.exc_type.clone(),
        module => format!("{module}.{}", exception.exc_type),
    };
    match exception_str(exception) {
        text if text.is_empty() => name,
        text => format!("{name}: {text}"),
    }
}

/// An event body: the fields every event has, in the order Celery writes
/// them, around the type's own fields.
#[derive(Serialize)]
struct Body<'a, F: Serialize> {
    hostname: &'a str,
    utcoffset: f64,
    pid: u32,
    clock: u64,
    #[serde(flatten)]
    fields: F,
    timestamp: f64,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct WorkerFields {
    freq: f64,
    active: usize,
    processed: u64,
    loadavg: [f64; 3],
    sw_ident: &'static str,
    sw_ver: &'static str,
    sw_sys: &'static str,
}

/// A buffered task event.
struct Stamped {
    clock: u64,
    timestamp: f64,
    kind: &'static str,
    fields: Fields,
}

impl Stamped {
    fn body<'a>(&'a self, events: &'a Events, utcoffset: f64) -> Body<'a, &'a Fields> {
        Body {
            hostname: &events.hostname,
            utcoffset,
            pid: events.pid,
            clock: self.clock,
            fields: &self.fields,
            timestamp: self.timestamp,
            kind: self.kind,
        }
    }
}

/// Each task event type's own fields, named and ordered as on the wire.
#[derive(Serialize)]
#[serde(untagged)]
enum Fields {
    Received {
        uuid: String,
        name: String,
        args: Shown,
        kwargs: Shown,
        root_id: String,
        parent_id: Option<String>,
        retries: u32,
        eta: Option<String>,
        expires: Option<String>,
    },
    Started {
        uuid: String,
    },
    Succeeded {
        uuid: String,
        result: Shown,
        runtime: f64,
    },
    /// `task-failed` and `task-retried`.
    Failed {
        uuid: String,
        exception: String,
        traceback: String,
    },
    Revoked {
        uuid: String,
        terminated: bool,
        signum: Option<i32>,
        expired: bool,
    },
}

/// A repr string: given by the message (`argsrepr`), or rendered from JSON
/// when the event is serialised, off the job path.
enum Shown {
    Text(String),
    Json(String),
}

impl Serialize for Shown {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Shown::Text(text) => serializer.serialize_str(text),
            Shown::Json(json) => serializer.serialize_str(&python_repr(json, REPR_LIMIT)),
        }
    }
}

#[cfg(test)]
mod tests;
