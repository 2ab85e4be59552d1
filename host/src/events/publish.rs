//! The publisher: one task on the async runtime that sends worker events
//! on a timer and flushes the buffered task events, so nothing on the job
//! path ever waits for Redis.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::{system, Events, HEARTBEAT_INTERVAL};
use crate::protocol::envelope;

/// How often buffered task events go out.
const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// Task events in one `task.multi` message.
const MULTI_MAX: usize = 1000;
/// A publish that takes longer is given up (and logged like a failure).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stopping worker waits for its last events to go out.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The running publisher of one worker.
pub struct Publisher {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Publisher {
    /// Sends `worker-online`, then heartbeats and task events on `/<db>.celeryev/…`.
    pub fn start(events: Arc<Events>, connection: ConnectionManager, db: i64) -> Self {
        let (stop, stopped) = oneshot::channel();
        let sink = Sink { connection, channel_prefix: format!("/{db}.celeryev/"), failing: false, warned_overflow: false };
        Self { stop, task: tokio::spawn(run(events, sink, stopped)) }
    }

    /// Flushes the buffered task events and sends `worker-offline`; gives
    /// up after a few seconds if Redis does not answer.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(STOP_TIMEOUT, &mut task).await.is_err() {
            task.abort();
            tracing::warn!("could not send the last monitoring events (worker-offline) in time");
        }
    }
}

async fn run(events: Arc<Events>, mut sink: Sink, mut stopped: oneshot::Receiver<()>) {
    sink.worker_event(&events, "worker-online").await;
    let mut heartbeat = tokio::time::interval_at(Instant::now() + HEARTBEAT_INTERVAL, HEARTBEAT_INTERVAL);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut flush = tokio::time::interval(FLUSH_INTERVAL);
    flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            _ = heartbeat.tick() => sink.worker_event(&events, "worker-heartbeat").await,
            () = events.heartbeat_now.notified() => {
                sink.worker_event(&events, "worker-heartbeat").await;
                heartbeat.reset();
            }
            _ = flush.tick() => sink.flush(&events).await,
            () = events.flush_now.notified() => sink.flush(&events).await,
        }
    }
    sink.flush(&events).await;
    sink.worker_event(&events, "worker-offline").await;
}

/// Where events go, and whether the last attempt failed (to log once).
struct Sink {
    connection: ConnectionManager,
    channel_prefix: String,
    failing: bool,
    warned_overflow: bool,
}

impl Sink {
    async fn worker_event(&mut self, events: &Events, kind: &'static str) {
        let routing_key = kind.replace('-', ".");
        let message = envelope(&events.worker_body(kind), json!({"hostname": events.hostname()}), "celeryev", &routing_key);
        let mut pipe = redis::pipe();
        pipe.cmd("PUBLISH").arg(format!("{}{routing_key}", self.channel_prefix)).arg(message).ignore();
        self.send(pipe, kind).await;
    }

    async fn flush(&mut self, events: &Events) {
        let dropped = events.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 && !self.warned_overflow {
            tracing::warn!(dropped, "task events dropped: more were waiting than Redis took (logged once)");
            self.warned_overflow = true;
        }
        let batch = events.take_buffered();
        if batch.is_empty() {
            return;
        }
        let utcoffset = system::utcoffset();
        let channel = format!("{}task.multi", self.channel_prefix);
        let mut pipe = redis::pipe();
        for chunk in batch.chunks(MULTI_MAX) {
            let bodies: Vec<_> = chunk.iter().map(|event| event.body(events, utcoffset)).collect();
            let message = envelope(&bodies, json!({"hostname": events.hostname()}), "celeryev", "task.multi");
            pipe.cmd("PUBLISH").arg(&channel).arg(message).ignore();
        }
        self.send(pipe, "task events").await;
    }

    async fn send(&mut self, pipe: redis::Pipeline, what: &str) {
        let error = match tokio::time::timeout(PUBLISH_TIMEOUT, pipe.query_async::<()>(&mut self.connection)).await {
            Ok(Ok(())) => {
                if self.failing {
                    tracing::info!("monitoring events are published again");
                    self.failing = false;
                }
                return;
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no answer within {PUBLISH_TIMEOUT:?}"),
        };
        if self.failing {
            tracing::debug!(%error, what, "cannot publish monitoring events");
        } else {
            tracing::warn!(%error, what, "cannot publish monitoring events; dropping them until Redis answers (jobs are not affected)");
            self.failing = true;
        }
    }
}
