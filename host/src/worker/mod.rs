//! The worker: the only place that sees both a runtime and a broker.
//!
//! Shape, for throughput and for never losing a job:
//!
//! ```text
//!  fetch loop ──(batch, leased)──▶ executor threads (-c N) ──▶ completer
//!      │  ETA jobs wait on timers,                              │ publish follow-ups,
//!      │  giving their prefetch slot back                       │ store results (pipelined),
//!      └──────────────── slots returned after ack ◀─────────────┘ then ack (pipelined)
//! ```
//!
//! - The fetch loop takes up to `prefetch` messages per round trip with one
//!   Lua script that moves them into `unacked` atomically. When the queues
//!   are empty it blocks on the broker's `wait_for_work` instead of polling.
//! - Jobs run on plain threads (wasm is synchronous, CPU-bound work); the
//!   async side only does I/O.
//! - The completer drains whatever has finished and writes it in three
//!   pipelined steps: follow-up messages, results, acks. An ack always comes
//!   after the result is stored (Celery's `acks_late`), so a crash in between
//!   redelivers the job rather than losing it. Failed writes are retried
//!   with backoff until Redis is back; nothing is dropped.
//! - A lease keeper renews the lease of every held message (running, queued
//!   for a thread, or waiting for its ETA), and a sweeper restores leases
//!   that nobody renewed for `visibility_timeout`: those of a dead worker.
//! - Shutdown is a future passed in: stop fetching, hand back jobs that
//!   have not started, let running ones finish until `drain_timeout`, then
//!   stop them and hand them back too.
//! - Monitoring (`events`) is told of each job at four points: received
//!   (dispatch), started and ended (executor), and acked or requeued
//!   (completer). Each is an in-memory record; events reach Redis from the
//!   events publisher, never from the job path.

mod builtins;
mod job;
mod plan;
mod rate;
mod report;

pub use rate::parse_rate;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::{watch, Semaphore};

use crate::backend::{ResultBackend, ResultWrite};
use crate::broker::{Broker, Delivery};
use crate::config::WorkerConfig;
use crate::protocol::{parse_time, TaskMessage};
use crate::runtime::{Cancellation, EngineOptions, JobRequest, Outcome, Registry, Runtime};
use job::Job;
use plan::{Plan, PlanSettings};

/// Most messages taken in one fetch round trip.
const FETCH_BATCH: usize = 256;
/// Most completions written in one round trip.
const COMPLETE_BATCH: usize = 512;

/// What became of a job.
enum Completion {
    /// It ran (or was refused); store what the plan says, then ack.
    Finished { job: Job, plan: Plan },
    /// It did not finish here (shutdown): give it back to the queue.
    Requeue { job: Job },
}

/// State shared by the worker's parts.
struct Shared<B> {
    config: WorkerConfig,
    broker: B,
    /// Swapped whole by the plugin watcher (hot reload).
    registry: crate::runtime::SharedRegistry,
    settings: PlanSettings,
    hostname: Arc<str>,
    /// Prefetch slots.
    slots: Semaphore,
    /// Tags of every message this worker holds.
    held: Mutex<HashSet<String>>,
    /// Cancellation handles of running jobs, by task id.
    running: Mutex<HashMap<String, Cancellation>>,
    /// Set once shutdown starts: no new job may start.
    stopping: AtomicBool,
    /// Set when the drain deadline passed: stopped jobs are requeued.
    forced: AtomicBool,
    processed: AtomicU64,
    completions: flume::Sender<Completion>,
    revoked: crate::control::Revoked,
    rate_limits: rate::RateLimits,
    started: Instant,
    events: Arc<crate::events::Events>,
}

impl<B: Broker> crate::control::Node for Shared<B> {
    fn hostname(&self) -> &str {
        &self.hostname
    }

    fn registered(&self) -> Vec<String> {
        current_registry(self).task_names()
    }

    fn queues(&self) -> Vec<String> {
        self.config.queues.clone()
    }

    fn stats(&self) -> serde_json::Value {
        let pid = std::process::id();
        let broker = crate::client::open(&self.config.broker_url)
            .map(|client| crate::events::system::broker_description(client.get_connection_info()))
            .unwrap_or_default();
        let hard_limit = self.config.limits.time_limit.map(|limit| limit.as_secs_f64()).unwrap_or(0.0);
        serde_json::json!({
            "total": self.events.jobs.totals(),
            "pid": pid,
            "clock": self.events.clock().value().to_string(),
            "uptime": self.started.elapsed().as_secs(),
            // Jobs run on threads of this one process.
            "pool": {
                "implementation": "chard", "max-concurrency": self.config.concurrency, "processes": [pid],
                "max-tasks-per-child": "N/A", "put-guarded-by-semaphore": false, "timeouts": [0, hard_limit],
            },
            "broker": broker,
            "prefetch_count": self.config.prefetch,
            "rusage": crate::events::system::rusage(),
            "processed": self.processed.load(Ordering::Relaxed),
            "sw_ident": "chard",
            "sw_ver": env!("CARGO_PKG_VERSION"),
        })
    }

    fn conf(&self) -> serde_json::Value {
        let config = &self.config;
        serde_json::json!({
            "broker_url": crate::client::redact(&config.broker_url),
            "result_backend": crate::client::redact(&config.result_backend_url),
            "task_serializer": "json",
            "result_serializer": "json",
            "accept_content": ["json"],
            "worker_concurrency": config.concurrency,
            "worker_send_task_events": self.events.task_events(),
            "task_time_limit": config.limits.time_limit.map(|limit| limit.as_secs_f64()),
            "result_expires": config.result_expires.as_secs_f64(),
            "broker_transport_options": {"visibility_timeout": config.visibility_timeout.as_secs_f64()},
        })
    }

    fn events(&self) -> &crate::events::Events {
        &self.events
    }

    fn revoke(&self, ids: Vec<String>, terminate: bool) {
        if terminate {
            let running = self.running.lock().unwrap();
            for id in &ids {
                if let Some(cancellation) = running.get(id) {
                    tracing::info!(%id, "terminating revoked job");
                    cancellation.cancel();
                }
            }
        }
        tracing::info!(ids = ?ids, terminate, "revoked");
        self.revoked.insert(ids);
    }

    fn revoked(&self) -> Vec<String> {
        self.revoked.list()
    }
}

/// Runs a worker until `shutdown` resolves, then drains and returns.
pub async fn run<B: Broker, R: ResultBackend>(
    config: WorkerConfig,
    broker: B,
    backend: R,
    control: Option<crate::control::ControlLink>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let runtime = Runtime::new(&EngineOptions {
        max_instances: (config.concurrency + 4) as u32,
        max_memory_bytes: config.limits.memory_limit_bytes.max(1 << 30),
        ..EngineOptions::default()
    })?;
    let (registry, errors) = Registry::load_dir(&runtime, &config.plugins)
        .with_context(|| format!("reading plugin folder {}", config.plugins.display()))?;
    for error in errors {
        tracing::error!("plugin not loaded: {error:#}");
    }
    for plugin in registry.plugins() {
        tracing::info!(
            plugin = plugin.name(),
            version = plugin.fingerprint(),
            label = plugin.label().unwrap_or("-"),
            tasks = plugin.tasks().len(),
            grants = plugin.grants().summary(),
            "plugin loaded"
        );
    }
    if registry.is_empty() {
        tracing::warn!(dir = %config.plugins.display(), "no plugins loaded: every job will fail as unknown");
    }

    let (completions_tx, completions_rx) = flume::unbounded();
    let (jobs_tx, jobs_rx) = flume::unbounded::<Job>();
    let hostname: Arc<str> = config.hostname.clone().into();
    let events = Arc::new(crate::events::Events::new(&config.hostname, config.task_events));
    let shared = Arc::new(Shared {
        settings: PlanSettings {
            hostname: config.hostname.clone(),
            result_expires: config.result_expires,
            routes: config.routes.clone(),
        },
        slots: Semaphore::new(config.prefetch),
        config,
        broker,
        registry: Arc::new(std::sync::RwLock::new(Arc::new(registry))),
        hostname,
        held: Mutex::new(HashSet::new()),
        running: Mutex::new(HashMap::new()),
        stopping: AtomicBool::new(false),
        forced: AtomicBool::new(false),
        processed: AtomicU64::new(0),
        completions: completions_tx,
        revoked: crate::control::Revoked::default(),
        rate_limits: rate::RateLimits::default(),
        started: Instant::now(),
        events,
    });
    let mut report_connection = control.as_ref().map(|link| link.connection.clone());
    let publisher = control.as_ref().map(|link| crate::events::Publisher::start(shared.events.clone(), link.connection.clone(), link.db));
    let control_task = match control {
        Some(mut link) => {
            match crate::control::load_revoked(&mut link.connection).await {
                Ok(ids) => shared.revoked.insert(ids),
                Err(error) => tracing::warn!(%error, "cannot load revoked ids"),
            }
            Some(tokio::spawn(crate::control::serve(link.client, link.connection, link.db, shared.clone())))
        }
        None => None,
    };
    let reporter = report_connection.clone().map(|connection| tokio::spawn(report::report_loop(shared.clone(), connection)));
    tracing::info!(
        hostname = %shared.hostname,
        queues = ?shared.config.queues,
        concurrency = shared.config.concurrency,
        prefetch = shared.config.prefetch,
        tasks = current_registry(&shared).task_names().len(),
        "worker ready"
    );

    let executors: Vec<_> = (0..shared.config.concurrency)
        .map(|index| {
            let shared = shared.clone();
            let jobs = jobs_rx.clone();
            std::thread::Builder::new()
                .name(format!("chard-exec-{index}"))
                .spawn(move || execute_loop(&shared, &jobs))
                .expect("spawning an executor thread")
        })
        .collect();
    drop(jobs_rx);

    let _watcher = match crate::runtime::watch(runtime.clone(), &shared.config.plugins, shared.registry.clone()) {
        Ok(handle) => Some(handle),
        Err(error) => {
            tracing::warn!(%error, "cannot watch the plugin folder: hot reload is off");
            None
        }
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let fetcher = tokio::spawn(fetch_loop(shared.clone(), jobs_tx, stop_rx.clone()));
    let completer = tokio::spawn(complete_loop(shared.clone(), backend, completions_rx));
    let keeper = tokio::spawn(lease_loop(shared.clone()));
    let sweeper = tokio::spawn(sweep_loop(shared.clone(), stop_rx.clone()));

    shutdown.await;
    tracing::info!(drain_timeout = ?shared.config.drain_timeout, "shutting down: no new jobs; finishing running ones");
    shared.stopping.store(true, Ordering::SeqCst);
    let _ = stop_tx.send(true);
    // The fetcher owns the job channel's sender: once it returns, executors
    // exit after the jobs already queued (which they hand back).
    let _ = fetcher.await;

    let deadline = Instant::now() + shared.config.drain_timeout;
    while held_count(&shared) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if held_count(&shared) > 0 {
        tracing::warn!(jobs = held_count(&shared), "drain timeout passed: stopping running jobs and requeueing them");
        shared.forced.store(true, Ordering::SeqCst);
        for cancellation in shared.running.lock().unwrap().values() {
            cancellation.cancel();
        }
        let grace = Instant::now() + Duration::from_secs(2);
        while held_count(&shared) > 0 && Instant::now() < grace {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Anything still held (a completer that could not reach Redis) goes
    // back directly; if even that fails, the leases expire and the sweep of
    // any worker restores them.
    let leftover: Vec<String> = shared.held.lock().unwrap().iter().cloned().collect();
    if !leftover.is_empty() {
        match shared.broker.requeue(&leftover).await {
            Ok(count) => tracing::info!(count, "requeued unfinished messages"),
            Err(error) => tracing::error!(%error, "could not requeue unfinished messages; they return after the visibility timeout"),
        }
    }
    if let Some(publisher) = publisher {
        publisher.stop().await;
    }
    keeper.abort();
    sweeper.abort();
    if let Some(task) = control_task {
        task.abort();
    }
    if let Some(task) = reporter {
        task.abort();
    }
    if let Some(connection) = report_connection.as_mut() {
        report::withdraw(&shared.hostname, connection).await;
    }
    completer.abort();
    for executor in executors {
        let _ = executor.join();
    }
    tracing::info!(processed = shared.processed.load(Ordering::Relaxed), "worker stopped");
    Ok(())
}

fn current_registry<B>(shared: &Shared<B>) -> Arc<Registry> {
    shared.registry.read().unwrap().clone()
}

fn held_count<B>(shared: &Shared<B>) -> usize {
    shared.held.lock().unwrap().len()
}

/// Takes batches of messages while there are free slots.
async fn fetch_loop<B: Broker>(shared: Arc<Shared<B>>, jobs: flume::Sender<Job>, mut stop: watch::Receiver<bool>) {
    let mut failures = 0u32;
    loop {
        // Wait for one free slot, then take as many more as are free.
        let permit = tokio::select! {
            permit = shared.slots.acquire() => permit.expect("slots never close"),
            _ = stop.wait_for(|stopping| *stopping) => return,
        };
        permit.forget();
        let mut wanted = 1;
        while wanted < FETCH_BATCH {
            match shared.slots.try_acquire() {
                Ok(permit) => {
                    permit.forget();
                    wanted += 1;
                }
                Err(_) => break,
            }
        }
        let fetched = tokio::select! {
            fetched = shared.broker.fetch(wanted) => fetched,
            _ = stop.wait_for(|stopping| *stopping) => {
                shared.slots.add_permits(wanted);
                return;
            }
        };
        match fetched {
            Ok(deliveries) => {
                if failures > 0 {
                    tracing::info!("broker reachable again: consuming");
                    failures = 0;
                }
                shared.slots.add_permits(wanted - deliveries.len());
                if deliveries.is_empty() {
                    tokio::select! {
                        () = shared.broker.wait_for_work(shared.config.poll_interval) => {}
                        _ = stop.wait_for(|stopping| *stopping) => return,
                    }
                    continue;
                }
                for delivery in deliveries {
                    dispatch(&shared, delivery, &jobs, &stop);
                }
            }
            Err(error) => {
                shared.slots.add_permits(wanted);
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!(%error, attempt = failures, "cannot fetch from broker; retrying");
                }
                let backoff = Duration::from_millis(50u64 << failures.min(7)).min(Duration::from_secs(5));
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stop.wait_for(|stopping| *stopping) => return,
                }
            }
        }
    }
}

/// Routes one delivery: refuse it, hold it for its ETA, or queue it to run.
fn dispatch<B: Broker>(shared: &Arc<Shared<B>>, delivery: Delivery, jobs: &flume::Sender<Job>, stop: &watch::Receiver<bool>) {
    if let Some(tag) = &delivery.tag {
        shared.held.lock().unwrap().insert(tag.clone());
    }
    let message = match TaskMessage::parse(&delivery.body) {
        Ok(message) => message,
        Err(error) => {
            let preview: String = String::from_utf8_lossy(&delivery.body[..delivery.body.len().min(80)]).into();
            tracing::warn!(id = error.task_id.as_deref().unwrap_or("?"), "malformed message dropped: {error}; starts {preview:?}");
            malformed(shared, delivery.tag, error);
            return;
        }
    };
    let job = Job { tag: delivery.tag, message, holds_slot: true, cancellation: Cancellation::default() };
    if shared.revoked.contains(&job.message.id) {
        finish_without_running(shared, job, |job, settings| plan::revoked(job, settings));
        return;
    }
    if is_expired(&job.message) {
        finish_without_running(shared, job, |job, settings| plan::expired(job, settings));
        return;
    }
    shared.events.received(job.tag.as_deref(), &job.message);
    let eta_wait = job
        .message
        .headers
        .eta
        .as_deref()
        .and_then(parse_time)
        .and_then(|eta| (eta - chrono::Utc::now()).to_std().ok())
        .unwrap_or_default();
    let rate_wait = rate_interval(shared, &job.message.task)
        .map(|interval| shared.rate_limits.reserve(&job.message.task, interval))
        .unwrap_or_default();
    let global_rate = shared.config.global_rate_limits.get(&job.message.task).copied();
    let wait = eta_wait.max(rate_wait);
    if wait.is_zero() && global_rate.is_none() {
        if let Err(flume::SendError(job)) = jobs.send(job) {
            let _ = shared.completions.send(Completion::Requeue { job });
        }
        return;
    }
    // Held in memory with its lease renewed; its slot goes back so a worker
    // full of ETA or rate-limited jobs still takes ready ones (as Celery).
    shared.slots.add_permits(1);
    let mut job = job;
    job.holds_slot = false;
    tokio::spawn(hold(shared.clone(), job, wait, global_rate, jobs.clone(), stop.clone()));
}

/// Waits out `wait` (ETA, per-worker rate limit), then a slot of the
/// global rate limit if the task has one, then queues the job to run. On
/// shutdown the job goes back to its queue instead.
async fn hold<B: Broker>(
    shared: Arc<Shared<B>>,
    job: Job,
    wait: Duration,
    global_rate: Option<Duration>,
    jobs: flume::Sender<Job>,
    mut stop: watch::Receiver<bool>,
) {
    let waited = async {
        tokio::time::sleep(wait).await;
        if let Some(interval) = global_rate {
            // Reserved only once the ETA has come, so a far ETA does not
            // hold a slot of the shared limit.
            let mut failures = 0u32;
            let slot = loop {
                match shared.broker.reserve_rate(&job.message.task, interval).await {
                    Ok(slot) => break slot,
                    Err(error) => {
                        failures += 1;
                        if failures == 1 {
                            tracing::warn!(%error, task = %job.message.task, "cannot reserve a global rate-limit slot; retrying");
                        }
                        tokio::time::sleep(Duration::from_millis(100u64 << failures.min(5))).await;
                    }
                }
            };
            tokio::time::sleep(slot).await;
        }
    };
    let stopped = tokio::select! {
        () = waited => false,
        _ = stop.wait_for(|stopping| *stopping) => true,
    };
    if stopped {
        let _ = shared.completions.send(Completion::Requeue { job });
    } else if let Err(flume::SendError(job)) = jobs.send(job) {
        let _ = shared.completions.send(Completion::Requeue { job });
    }
}

/// The task's rate limit: the worker's `--rate-limit` first, then the
/// plugin's default for the task.
fn rate_interval<B>(shared: &Shared<B>, task: &str) -> Option<Duration> {
    if let Some(interval) = shared.config.rate_limits.get(task) {
        return Some(*interval);
    }
    let registry = current_registry(shared);
    let (_, info) = registry.resolve(task)?;
    info.defaults.rate_limit.as_deref().and_then(|rate| parse_rate(rate).ok())
}

fn is_expired(message: &TaskMessage) -> bool {
    message.headers.expires.as_deref().and_then(parse_time).is_some_and(|expires| expires <= chrono::Utc::now())
}

fn malformed<B: Broker>(shared: &Arc<Shared<B>>, tag: Option<String>, error: crate::protocol::MessageError) {
    let task_id = error.task_id.clone().unwrap_or_default();
    let headers = crate::protocol::Headers { id: Some(task_id.clone()), task: error.task_name.clone(), ..Default::default() };
    let message = TaskMessage {
        id: task_id,
        task: error.task_name.clone().unwrap_or_default(),
        headers,
        properties: Default::default(),
        args: serde_json::value::RawValue::from_string("[]".into()).expect("literal"),
        kwargs: serde_json::value::RawValue::from_string("{}".into()).expect("literal"),
        embed: Default::default(),
    };
    let job = Job { tag, message, holds_slot: true, cancellation: Cancellation::default() };
    let has_id = error.task_id.is_some();
    let mut plan = plan::plan(&job, &Outcome::Rejected { reason: error.reason }, None, &shared.settings);
    if !has_id {
        plan.writes.clear(); // nowhere to store it
    }
    let _ = shared.completions.send(Completion::Finished { job, plan });
}

fn finish_without_running<B: Broker>(shared: &Arc<Shared<B>>, job: Job, make: impl FnOnce(&Job, &PlanSettings) -> Plan) {
    let plan = make(&job, &shared.settings);
    report_end(shared, &job, &plan, None, Duration::ZERO);
    let _ = shared.completions.send(Completion::Finished { job, plan });
}

/// An executor thread: runs jobs until the channel closes.
fn execute_loop<B: Broker>(shared: &Arc<Shared<B>>, jobs: &flume::Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        if shared.stopping.load(Ordering::SeqCst) {
            let _ = shared.completions.send(Completion::Requeue { job });
            continue;
        }
        if shared.revoked.contains(&job.message.id) {
            finish_without_running(shared, job, |job, settings| plan::revoked(job, settings));
            continue;
        }
        if is_expired(&job.message) {
            finish_without_running(shared, job, |job, settings| plan::expired(job, settings));
            continue;
        }
        let completion = execute(shared, job);
        let _ = shared.completions.send(completion);
    }
}

/// What runs a job: one of Celery's built-in tasks, or a plugin's task.
enum Work<'a> {
    Builtin(builtins::Builtin),
    Plugin(&'a Arc<crate::runtime::Plugin>, &'a crate::runtime::TaskInfo),
}

fn execute<B: Broker>(shared: &Arc<Shared<B>>, job: Job) -> Completion {
    let message = &job.message;
    // The job keeps this snapshot: a hot reload during the run does not
    // change the plugin it runs on.
    let registry = current_registry(shared);
    let work = match (builtins::Builtin::lookup(&message.task), registry.resolve(&message.task)) {
        (Some(builtin), _) => Work::Builtin(builtin),
        (None, Some((plugin, task))) => Work::Plugin(plugin, task),
        (None, None) => {
            let outcome = Outcome::UnknownTask { name: message.task.clone() };
        tracing::warn!(id = %message.id, "{}", outcome.describe());
        let plan = plan::plan(&job, &outcome, None, &shared.settings);
            report_end(shared, &job, &plan, None, Duration::ZERO);
            return Completion::Finished { job, plan };
        }
    };
    shared.events.started(job.tag.as_deref(), &message.id);
    shared.running.lock().unwrap().insert(message.id.clone(), job.cancellation.clone());
    let started = Instant::now();
    let (outcome, publish, task) = match work {
        Work::Builtin(builtin) => {
            let (outcome, publish) = builtins::run(shared, &job, builtin);
            (outcome, publish, None)
        }
        Work::Plugin(plugin, task) => {
            let limits = job::limits_for(message, task, &shared.config.limits);
            let outcome = plugin.run(JobRequest {
                task: &task.name,
                args: message.args.get(),
                kwargs: message.kwargs.get(),
                context: job::context_for(message, task, &limits, &shared.hostname),
                time_limit: limits.time_limit,
                memory_limit_bytes: limits.memory_limit_bytes,
                cancellation: Some(job.cancellation.clone()),
            });
            (outcome, Vec::new(), Some(task))
        }
    };
    shared.running.lock().unwrap().remove(&message.id);
    if outcome == Outcome::Terminated && shared.forced.load(Ordering::SeqCst) {
        return Completion::Requeue { job };
    }
    let runtime = started.elapsed();
    let mut plan = plan::plan(&job, &outcome, task, &shared.settings);
    plan.publish.extend(publish);
    report_end(shared, &job, &plan, Some(&outcome), runtime);
    if let Some(note) = &plan.note {
        tracing::info!(id = %message.id, task = %message.task, elapsed_ms = runtime.as_millis() as u64, "{note}");
    } else {
        tracing::debug!(id = %message.id, task = %message.task, elapsed_us = runtime.as_micros() as u64, "succeeded");
    }
    Completion::Finished { job, plan }
}

/// Tells the monitoring how a job ended (a no-op while task events are off).
fn report_end<B>(shared: &Shared<B>, job: &Job, plan: &Plan, outcome: Option<&Outcome>, runtime: Duration) {
    if let Some(ending) = &plan.ending {
        let result = match outcome {
            Some(Outcome::Succeeded { json }) => Some(json.as_str()),
            _ => None,
        };
        shared.events.ended(&job.message.id, ending, result, runtime);
    }
}

/// Writes finished jobs in batches: follow-ups, then results, then acks.
async fn complete_loop<B: Broker, R: ResultBackend>(shared: Arc<Shared<B>>, backend: R, completions: flume::Receiver<Completion>) {
    while let Ok(first) = completions.recv_async().await {
        let mut batch = vec![first];
        while batch.len() < COMPLETE_BATCH {
            match completions.try_recv() {
                Ok(completion) => batch.push(completion),
                Err(_) => break,
            }
        }
        let mut publish = Vec::new();
        let mut writes: Vec<ResultWrite> = Vec::new();
        let mut acks = Vec::new();
        let mut requeue = Vec::new();
        let mut chords = Vec::new();
        let mut slots = 0;
        for completion in batch {
            match completion {
                Completion::Finished { job, plan } => {
                    publish.extend(plan.publish);
                    writes.extend(plan.writes);
                    chords.extend(plan.chord);
                    acks.extend(job.tag);
                    slots += usize::from(job.holds_slot);
                }
                Completion::Requeue { job } => {
                    requeue.extend(job.tag);
                    slots += usize::from(job.holds_slot);
                }
            }
        }
        let finished = acks.len() as u64;
        persist("publish follow-up messages", || shared.broker.publish(&publish)).await;
        persist("store results", || backend.store(&writes)).await;
        for member in &chords {
            let entries = persist("join chord", || backend.chord_join(&member.part)).await;
            if !entries.is_empty() {
                let (body, failure) = plan::fire_chord(member, &entries, &shared.settings);
                persist("publish chord body", || shared.broker.publish(&body)).await;
                persist("store chord failure", || backend.store(&failure)).await;
                persist("finish chord", || backend.chord_done(&member.part.group_id)).await;
                tracing::info!(group = %member.part.group_id, members = entries.len(), failed = !failure.is_empty(), "chord complete");
            }
        }
        persist("ack messages", || shared.broker.ack(&acks)).await;
        persist("requeue messages", || async { shared.broker.requeue(&requeue).await.map(|_| ()) }).await;
        {
            let mut held = shared.held.lock().unwrap();
            for tag in acks.iter().chain(&requeue) {
                held.remove(tag);
            }
        }
        shared.events.jobs.finished(&acks);
        shared.events.jobs.forget(&requeue);
        shared.processed.fetch_add(finished, Ordering::Relaxed);
        shared.slots.add_permits(slots);
    }
}

/// Retries a Redis write until it succeeds: a result or an ack is never
/// dropped because Redis was briefly away.
async fn persist<T, F, Fut, E>(what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut failures = 0u32;
    loop {
        match attempt().await {
            Ok(value) => {
                if failures > 0 {
                    tracing::info!("{what}: succeeded after {failures} failed attempts");
                }
                return value;
            }
            Err(error) => {
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!(%error, attempt = failures, "cannot {what}; retrying");
                }
                tokio::time::sleep(Duration::from_millis(50u64 << failures.min(7)).min(Duration::from_secs(5))).await;
            }
        }
    }
}

/// Renews the leases of held messages well before they could expire.
async fn lease_loop<B: Broker>(shared: Arc<Shared<B>>) {
    let period = (shared.config.visibility_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(60));
    loop {
        tokio::time::sleep(period).await;
        let tags: Vec<String> = shared.held.lock().unwrap().iter().cloned().collect();
        for chunk in tags.chunks(1000) {
            if let Err(error) = shared.broker.extend_leases(chunk).await {
                tracing::warn!(%error, "cannot renew leases; retrying");
                break;
            }
        }
    }
}

/// Restores messages whose lease expired: what a dead worker held.
async fn sweep_loop<B: Broker>(shared: Arc<Shared<B>>, mut stop: watch::Receiver<bool>) {
    let period = (shared.config.visibility_timeout / 2).clamp(Duration::from_millis(500), Duration::from_secs(60));
    loop {
        match shared.broker.restore_expired(shared.config.visibility_timeout).await {
            Ok(0) => {}
            Ok(count) => tracing::warn!(count, "restored messages whose lease expired (a worker died or stalled)"),
            Err(error) => tracing::debug!(%error, "restore sweep failed; will retry"),
        }
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            _ = stop.wait_for(|stopping| *stopping) => return,
        }
    }
}
