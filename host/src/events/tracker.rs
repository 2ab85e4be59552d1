//! What the worker holds right now and what it has finished: the answers
//! to `inspect active`, `reserved`, `scheduled` and `query_task`, the
//! `total` of `stats`, and the `active`/`processed` of heartbeats.
//!
//! Entries are keyed by delivery tag, not task id: a retry republishes the
//! same id, and the new message can be fetched before the old one is acked.
//! A held job is *scheduled* while its ETA is ahead, *reserved* while it
//! waits for a thread, *active* once it started; the state is worked out
//! when asked, so the hot path only inserts, marks and removes.
//!
//! Cost per job: a copy of the few strings a reply shows and three short
//! critical sections (hold, start, and a batched removal by the completer).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::protocol::repr::{python_repr, REPR_LIMIT};
use crate::protocol::{parse_time, TaskMessage};

pub struct Tracker {
    hostname: Arc<str>,
    pid: u32,
    inner: Mutex<Inner>,
    processed: AtomicU64,
}

#[derive(Default)]
struct Inner {
    held: HashMap<String, Held>,
    /// Finished jobs by task name.
    totals: HashMap<String, u64>,
}

/// One held job, with what `Request.info()` shows of it.
struct Held {
    id: String,
    name: String,
    args: Box<RawValue>,
    kwargs: Box<RawValue>,
    argsrepr: Option<String>,
    kwargsrepr: Option<String>,
    exchange: String,
    routing_key: String,
    priority: u8,
    eta: Option<String>,
    /// Unix seconds when it started running.
    started: Option<f64>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum HeldState {
    Scheduled,
    Reserved,
    Active,
}

impl Held {
    fn state(&self, now: chrono::DateTime<chrono::Utc>) -> HeldState {
        if self.started.is_some() {
            HeldState::Active
        } else if self.eta.as_deref().and_then(parse_time).is_some_and(|eta| eta > now) {
            HeldState::Scheduled
        } else {
            HeldState::Reserved
        }
    }

    /// Celery's `Request.info(safe)`: with `safe`, args and kwargs are the
    /// repr strings; without, the values.
    fn info(&self, hostname: &str, pid: u32, safe: bool) -> Value {
        let (args, kwargs) = if safe {
            let shown = |given: &Option<String>, raw: &RawValue| given.clone().unwrap_or_else(|| python_repr(raw.get(), REPR_LIMIT));
            (Value::String(shown(&self.argsrepr, &self.args)), Value::String(shown(&self.kwargsrepr, &self.kwargs)))
        } else {
            let value = |raw: &RawValue| serde_json::from_str(raw.get()).unwrap_or(Value::Null);
            (value(&self.args), value(&self.kwargs))
        };
        json!({
            "id": self.id,
            "name": self.name,
            "args": args,
            "kwargs": kwargs,
            "type": self.name,
            "hostname": hostname,
            "time_start": self.started,
            // The message is acked only after the result is stored
            // (Celery's acks_late), so a held job is never acknowledged.
            "acknowledged": false,
            "delivery_info": {
                "exchange": self.exchange,
                "routing_key": self.routing_key,
                "priority": self.priority,
                "redelivered": false,
            },
            "worker_pid": self.started.map(|_| pid),
        })
    }
}

impl Tracker {
    pub fn new(hostname: Arc<str>) -> Self {
        Self { hostname, pid: std::process::id(), inner: Mutex::default(), processed: AtomicU64::new(0) }
    }

    /// A job the worker now holds (to run now or at its ETA).
    pub fn hold(&self, tag: &str, message: &TaskMessage) {
        let held = Held {
            id: message.id.clone(),
            name: message.task.clone(),
            args: message.args.clone(),
            kwargs: message.kwargs.clone(),
            argsrepr: message.headers.argsrepr.clone(),
            kwargsrepr: message.headers.kwargsrepr.clone(),
            exchange: message.properties.delivery_info.exchange.clone(),
            routing_key: message.properties.delivery_info.routing_key.clone(),
            priority: message.priority(),
            eta: message.headers.eta.clone(),
            started: None,
        };
        self.inner.lock().unwrap().held.insert(tag.to_string(), held);
    }

    /// The job started running.
    pub fn start(&self, tag: &str, at: f64) {
        if let Some(held) = self.inner.lock().unwrap().held.get_mut(tag) {
            held.started = Some(at);
        }
    }

    /// These jobs are done (result stored, message acked): count them.
    pub fn finished(&self, tags: &[String]) {
        if tags.is_empty() {
            return;
        }
        let mut inner = self.inner.lock().unwrap();
        let mut counted = 0;
        for tag in tags {
            if let Some(held) = inner.held.remove(tag) {
                counted += 1;
                match inner.totals.get_mut(&held.name) {
                    Some(total) => *total += 1,
                    None => {
                        inner.totals.insert(held.name, 1);
                    }
                }
            }
        }
        self.processed.fetch_add(counted, Ordering::Relaxed);
    }

    /// These jobs went back to their queue without running here.
    pub fn forget(&self, tags: &[String]) {
        if tags.is_empty() {
            return;
        }
        let mut inner = self.inner.lock().unwrap();
        for tag in tags {
            inner.held.remove(tag);
        }
    }

    /// Jobs running now (heartbeat `active`).
    pub fn active_count(&self) -> usize {
        self.inner.lock().unwrap().held.values().filter(|held| held.started.is_some()).count()
    }

    /// Jobs finished since start (heartbeat `processed`).
    pub fn processed(&self) -> u64 {
        self.processed.load(Ordering::Relaxed)
    }

    /// `stats.total`: finished jobs by task name.
    pub fn totals(&self) -> Value {
        let inner = self.inner.lock().unwrap();
        inner.totals.iter().map(|(name, count)| (name.clone(), json!(count))).collect::<serde_json::Map<_, _>>().into()
    }

    /// `inspect active`.
    pub fn active(&self, safe: bool) -> Value {
        self.list(HeldState::Active, |held| held.info(&self.hostname, self.pid, safe))
    }

    /// `inspect reserved`.
    pub fn reserved(&self) -> Value {
        self.list(HeldState::Reserved, |held| held.info(&self.hostname, self.pid, false))
    }

    /// `inspect scheduled`: `{eta, priority, request}` per ETA job.
    pub fn scheduled(&self) -> Value {
        self.list(HeldState::Scheduled, |held| {
            json!({"eta": held.eta, "priority": held.priority, "request": held.info(&self.hostname, self.pid, false)})
        })
    }

    /// `inspect query_task`: `{id: [state, info]}` for the ids held here.
    pub fn query(&self, ids: &[String]) -> Value {
        let now = chrono::Utc::now();
        let inner = self.inner.lock().unwrap();
        let mut found = serde_json::Map::new();
        for held in inner.held.values().filter(|held| ids.contains(&held.id)) {
            let state = match held.state(now) {
                HeldState::Active => "active",
                HeldState::Reserved => "reserved",
                HeldState::Scheduled => "scheduled",
            };
            found.insert(held.id.clone(), json!([state, held.info(&self.hostname, self.pid, false)]));
        }
        found.into()
    }

    fn list(&self, state: HeldState, render: impl Fn(&Held) -> Value) -> Value {
        let now = chrono::Utc::now();
        let inner = self.inner.lock().unwrap();
        let mut held: Vec<&Held> = inner.held.values().filter(|held| held.state(now) == state).collect();
        held.sort_by(|a, b| a.started.partial_cmp(&b.started).unwrap_or(std::cmp::Ordering::Equal).then(a.eta.cmp(&b.eta)));
        Value::Array(held.into_iter().map(render).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::OutgoingTask;

    fn message(task: &str, args: &str, eta: Option<String>) -> TaskMessage {
        let raw = |text: &str| RawValue::from_string(text.to_string()).unwrap();
        let mut outgoing = OutgoingTask::new(task, raw(args), raw("{}"), "test@here".into());
        outgoing.eta = eta;
        TaskMessage::parse(outgoing.to_envelope().as_bytes()).unwrap()
    }

    #[test]
    fn jobs_move_from_reserved_and_scheduled_to_active_to_totals() {
        let tracker = Tracker::new("w@test".into());
        let later = (chrono::Utc::now() + chrono::Duration::seconds(60)).to_rfc3339();
        let now_job = message("math.add", "[2, 3]", None);
        let eta_job = message("math.mul", "[4, 5]", Some(later.clone()));
        tracker.hold("t1", &now_job);
        tracker.hold("t2", &eta_job);

        assert_eq!(tracker.reserved()[0]["id"], json!(now_job.id));
        assert_eq!(tracker.reserved()[0]["args"], json!([2, 3]));
        assert_eq!(tracker.scheduled()[0]["eta"], json!(later));
        assert_eq!(tracker.scheduled()[0]["request"]["name"], json!("math.mul"));
        assert_eq!(tracker.active(true), json!([]));

        tracker.start("t1", 1700000000.5);
        let active = tracker.active(true);
        assert_eq!(active[0]["time_start"], json!(1700000000.5));
        assert_eq!(active[0]["worker_pid"], json!(std::process::id()));
        assert_eq!(active[0]["hostname"], json!("w@test"));
        assert!(active[0]["args"].is_string(), "safe mode shows repr strings: {active}");
        assert_eq!(tracker.active_count(), 1);
        assert_eq!(tracker.query(std::slice::from_ref(&now_job.id))[&now_job.id][0], json!("active"));

        tracker.finished(&["t1".to_string()]);
        tracker.forget(&["t2".to_string()]);
        assert_eq!(tracker.totals(), json!({"math.add": 1}));
        assert_eq!(tracker.processed(), 1);
        assert_eq!(tracker.active_count(), 0);
        assert_eq!(tracker.scheduled(), json!([]));
    }
}
