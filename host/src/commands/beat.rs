//! `host beat`: sends periodic tasks from a schedule file (see `schedule`).

use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use crate::broker::redis::{connect_manager, publish_once};
use crate::client::{open, redact};
use crate::config::BeatConfig;
use crate::protocol::{queue_key_for, OutgoingTask};
use crate::schedule::{self, Entry, CATCH_UP};

/// How long a "sent" marker lives: longer than any beat would still try
/// to send that run.
const MARKER_TTL: Duration = Duration::from_secs(3600);

pub async fn run(config: BeatConfig) -> anyhow::Result<()> {
    let entries = schedule::load(&config.schedule)?;
    let client = open(&config.broker_url)?;
    crate::client::wait_until_reachable(&client).await;
    let mut connection =
        connect_manager(client).await.with_context(|| format!("connecting to broker {}", redact(&config.broker_url)))?;
    let origin = format!("chard-beat{}@{}", std::process::id(), crate::hostname());
    let now = Utc::now();
    let mut next: Vec<Option<DateTime<Utc>>> = entries.iter().map(|entry| first_due(entry, now)).collect();
    for (entry, due) in entries.iter().zip(&next) {
        tracing::info!(entry = entry.name, task = entry.task, next = due.map(schedule::describe).unwrap_or_default(), "periodic task");
    }
    tracing::info!(entries = entries.len(), broker = %redact(&config.broker_url), "beat ready");
    let shutdown = super::run::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let now = Utc::now();
        for (entry, due) in entries.iter().zip(next.iter_mut()) {
            while let Some(at) = due.filter(|at| *at <= now) {
                if now - at > catch_up() {
                    // Asleep or cut off for too long: skip to the latest run.
                    *due = first_due(entry, now);
                    continue;
                }
                match send(&mut connection, entry, at, &origin, &config).await {
                    Ok(true) => tracing::info!(entry = entry.name, task = entry.task, due = schedule::describe(at), id = entry.run_id(at), "sent"),
                    Ok(false) => tracing::debug!(entry = entry.name, due = schedule::describe(at), "already sent by another beat"),
                    Err(error) => {
                        tracing::warn!(entry = entry.name, %error, "cannot send; retrying");
                        break; // the same run again on the next pass
                    }
                }
                *due = entry.next_after(at);
            }
        }
        let wake = next.iter().flatten().min().map(|at| (*at - Utc::now()).to_std().unwrap_or_default());
        let nap = wake.unwrap_or(Duration::from_secs(60)).min(Duration::from_secs(1));
        tokio::select! {
            () = tokio::time::sleep(nap) => {}
            () = &mut shutdown => break,
        }
    }
    tracing::info!("beat stopped");
    Ok(())
}

fn catch_up() -> chrono::Duration {
    chrono::Duration::from_std(CATCH_UP).expect("CATCH_UP fits a chrono duration")
}

/// The run to aim for first: a recent one nobody may have sent, else the next.
fn first_due(entry: &Entry, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let recent = entry.last_at_or_before(now).filter(|at| now - *at <= catch_up());
    recent.or_else(|| entry.next_after(now))
}

async fn send(
    connection: &mut redis::aio::ConnectionManager,
    entry: &Entry,
    due: DateTime<Utc>,
    origin: &str,
    config: &BeatConfig,
) -> anyhow::Result<bool> {
    let mut task = OutgoingTask::new(
        &entry.task,
        serde_json::value::to_raw_value(&entry.args)?,
        serde_json::value::to_raw_value(&entry.kwargs)?,
        origin.to_string(),
    );
    task.id = entry.run_id(due);
    task.root_id = Some(task.id.clone());
    task.queue = entry
        .queue
        .clone()
        .or_else(|| config.routes.queue_for(&entry.task).map(str::to_string))
        .unwrap_or_else(|| "celery".to_string());
    task.priority = entry.priority;
    task.expires = entry.expires.map(|expires| {
        (due + chrono::Duration::from_std(expires).unwrap_or_default()).to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
    });
    let list = queue_key_for(&task.queue, task.priority);
    Ok(publish_once(connection, &entry.sent_key(due), &list, &task.to_envelope(), MARKER_TTL).await?)
}
