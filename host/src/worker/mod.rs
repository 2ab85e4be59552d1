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
//!   Lua script that moves them into `unacked` atomically. Once a fetch has
//!   emptied the queues it blocks in the broker's `wait_and_fetch` instead
//!   of polling: the wake-up and the take are one round trip, which is most
//!   of what an idle worker adds to a job's latency (bench/README.md §4).
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
mod canvas;
mod chord;
mod complete;
mod delayed;
mod execute;
mod fetch;
mod job;
mod keyvalue;
mod lease;
mod observe;
mod persist;
mod outbox;
mod plan;
mod progress;
mod rate;
mod replace;
mod report;
mod revoke;
mod typing;

pub use rate::parse_rate;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::{watch, Notify, Semaphore};

use crate::backend::ResultBackend;
use crate::broker::Broker;
use crate::config::WorkerConfig;
use crate::runtime::{Cancellation, EngineOptions, Registry, Runtime};
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
    settings: Arc<PlanSettings>,
    /// What jobs may use beyond computing (each behind a manifest grant).
    services: crate::runtime::Services,
    progress: Arc<progress::ProgressBoard>,
    hostname: Arc<str>,
    /// Prefetch slots.
    slots: Semaphore,
    /// Bytes of the messages held (see `--prefetch-size`), and a wake-up
    /// for the fetch loop when some are freed.
    held_bytes: AtomicUsize,
    bytes_freed: Notify,
    /// Executor threads still running, and a signal when the last one is
    /// gone: a worker without them must exit, not fetch and requeue forever.
    executors_alive: AtomicUsize,
    executors_gone: Notify,
    /// Tags of every message this worker holds.
    held: Mutex<HashSet<String>>,
    /// Chords (group ids) whose size a `chord` check is waiting for.
    chord_checks: Mutex<HashSet<String>>,
    /// Running jobs, by task id.
    running: Mutex<HashMap<String, RunningJob>>,
    /// Set once shutdown starts: no new job may start.
    stopping: AtomicBool,
    /// Set when the drain deadline passed: stopped jobs are requeued.
    forced: AtomicBool,
    processed: AtomicU64,
    completions: flume::Sender<Completion>,
    /// Far-ETA jobs on their way to the delayed set, with their due time.
    delays: flume::Sender<(Job, u64)>,
    revoked: crate::control::Revoked,
    /// Revoked ids nobody here is running, for `revoke::revoke_loop`.
    revokes: flume::Sender<Vec<String>>,
    rate_limits: rate::RateLimits,
    started: Instant,
    events: Arc<crate::events::Events>,
    /// Woken by the `shutdown` control command.
    remote_shutdown: tokio::sync::Notify,
    /// Prometheus metrics, with `--metrics` only.
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

/// A job being run: what stops it, and its stamps (for
/// `revoke_by_stamped_headers` with `terminate`).
struct RunningJob {
    cancellation: Cancellation,
    stamps: Vec<(String, serde_json::Value)>,
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
                if let Some(job) = running.get(id) {
                    tracing::info!(%id, "terminating revoked job");
                    job.cancellation.cancel();
                }
            }
        }
        tracing::info!(ids = ?ids, terminate, "revoked");
        let idle: Vec<String> = {
            let running = self.running.lock().unwrap();
            ids.iter().filter(|id| !running.contains_key(*id)).cloned().collect()
        };
        if !idle.is_empty() {
            let _ = self.revokes.send(idle);
        }
        self.revoked.insert(ids);
    }

    fn revoke_stamped(&self, headers: &serde_json::Map<String, serde_json::Value>, terminate: bool) -> Vec<(String, serde_json::Value)> {
        self.revoked.stamps.insert(headers);
        tracing::info!(headers = %serde_json::Value::Object(headers.clone()), terminate, "revoked by stamped headers");
        if !terminate {
            return Vec::new();
        }
        // Celery stops the running jobs that match this request's stamps.
        let request = crate::control::stamps::RevokedStamps::default();
        request.insert(headers);
        let mut terminated = Vec::new();
        for (id, job) in self.running.lock().unwrap().iter() {
            if let Some(stamp) = request.matching(&job.stamps) {
                tracing::info!(%id, "terminating a job revoked by its stamp");
                job.cancellation.cancel();
                terminated.push(stamp);
            }
        }
        terminated
    }

    fn revoked(&self) -> Vec<String> {
        self.revoked.list()
    }

    fn shutdown(&self) {
        self.remote_shutdown.notify_one();
    }

    fn set_rate_limit(&self, task: &str, interval: Option<Duration>) -> bool {
        if current_registry(self).resolve(task).is_none() {
            return false;
        }
        self.rate_limits.set_override(task, interval);
        true
    }
}

/// Runs a worker until `shutdown` resolves, then drains and returns.
pub async fn run<B: Broker, R: ResultBackend>(
    config: WorkerConfig,
    broker: B,
    backend: R,
    control: Option<crate::control::ControlLink>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let runtime = Runtime::new(&EngineOptions {
        max_instances: (config.concurrency + 4) as u32,
        // A pooled memory slot must hold the largest limit the policy allows.
        max_memory_bytes: config.limits.memory_limit_bytes.max(config.policy.max_memory_bytes.unwrap_or(0)).max(1 << 30),
        policy: config.policy.clone(),
        ..EngineOptions::default()
    })?;
    let (registry, errors) = Registry::load_dir(&runtime, &config.plugins)
        .with_context(|| format!("reading plugin folder {}", config.plugins.display()))?;
    for error in errors {
        if let Some(metrics) = &metrics {
            metrics.plugin_load_failed(&error.plugin_name());
        }
        tracing::error!("plugin {} not loaded: {error}", error.plugin_name());
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
        tracing::warn!(
            "no plugin loaded from {}: {}; until one is there, every job fails as an unknown task (the folder is watched)",
            config.plugins.display(),
            crate::runtime::empty_folder_hint(&config.plugins)
        );
    }

    let (completions_tx, completions_rx) = flume::unbounded();
    let (revokes_tx, revokes_rx) = flume::unbounded();
    let (delays_tx, delays_rx) = flume::unbounded();
    let (jobs_tx, jobs_rx) = flume::unbounded::<Job>();
    let hostname: Arc<str> = config.hostname.clone().into();
    let events = Arc::new(crate::events::Events::new(&config.hostname, config.task_events));
    let registry: crate::runtime::SharedRegistry = Arc::new(std::sync::RwLock::new(Arc::new(registry)));
    let settings = Arc::new(PlanSettings {
        hostname: config.hostname.clone(),
        result_expires: config.result_expires,
        routes: config.routes.clone(),
        max_result_bytes: config.max_result_bytes,
        typing: Arc::new(typing::Served(registry.clone())),
    });
    let progress = Arc::new(progress::ProgressBoard::default());
    let services = crate::runtime::Services {
        progress: Some(progress.clone()),
        sender: Some(Arc::new(outbox::Sender { settings: settings.clone() })),
        keyvalue: Some(Arc::new(keyvalue::BackendKeyValue { backend: backend.clone(), handle: tokio::runtime::Handle::current() })),
    };
    let flusher = tokio::spawn(progress::flush_loop(progress.clone(), backend.clone(), config.result_expires));
    let shared = Arc::new(Shared {
        settings,
        services,
        progress,
        slots: Semaphore::new(config.prefetch),
        held_bytes: AtomicUsize::new(0),
        bytes_freed: Notify::new(),
        executors_alive: AtomicUsize::new(config.concurrency),
        executors_gone: Notify::new(),
        config,
        broker,
        registry,
        hostname,
        held: Mutex::new(HashSet::new()),
        chord_checks: Mutex::new(HashSet::new()),
        running: Mutex::new(HashMap::new()),
        stopping: AtomicBool::new(false),
        forced: AtomicBool::new(false),
        processed: AtomicU64::new(0),
        completions: completions_tx,
        delays: delays_tx,
        revoked: crate::control::Revoked::default(),
        revokes: revokes_tx,
        rate_limits: rate::RateLimits::default(),
        started: Instant::now(),
        events,
        remote_shutdown: tokio::sync::Notify::new(),
        metrics,
    });
    let queue_sampler = match (&shared.metrics, &control) {
        (Some(metrics), Some(link)) => {
            observe::install_sampler(&shared, metrics);
            Some(tokio::spawn(observe::sample_queues(shared.config.queues.clone(), metrics.clone(), link.connection.clone())))
        }
        (Some(metrics), None) => {
            observe::install_sampler(&shared, metrics);
            None
        }
        _ => None,
    };
    let mut report_connection = control.as_ref().map(|link| link.connection.clone());
    let publisher = control.as_ref().map(|link| crate::events::Publisher::start(shared.events.clone(), link.connection.clone(), link.db));
    let control_task = match control {
        Some(mut link) => {
            match crate::control::load_revoked(&mut link.connection).await {
                Ok(ids) => shared.revoked.insert(ids),
                Err(error) => tracing::warn!(%error, "cannot load revoked ids"),
            }
            match crate::control::load_revoked_stamps(&mut link.connection).await {
                Ok(headers) => shared.revoked.stamps.insert(&headers),
                Err(error) => tracing::warn!(%error, "cannot load revoked stamps"),
            }
            Some(tokio::spawn(crate::control::serve(link.client, link.connection, link.db, shared.clone())))
        }
        None => None,
    };
    let reporter = report_connection.clone().map(|connection| tokio::spawn(report::report_loop(shared.clone(), connection)));

    let executors: Vec<_> = (0..shared.config.concurrency)
        .map(|index| {
            let shared = shared.clone();
            let jobs = jobs_rx.clone();
            std::thread::Builder::new()
                .name(format!("chard-exec-{index}"))
                .spawn(move || execute::execute_loop(&shared, &jobs))
                .expect("spawning an executor thread")
        })
        .collect();
    drop(jobs_rx);

    let on_reload = shared.metrics.clone().map(|metrics| -> crate::runtime::ReloadHook {
        Arc::new(move |plugin: &str, loaded: bool| match loaded {
            true => metrics.plugin_reloaded(plugin),
            false => metrics.plugin_load_failed(plugin),
        })
    });
    let _watcher = match crate::runtime::watch(runtime.clone(), &shared.config.plugins, shared.registry.clone(), on_reload) {
        Ok(handle) => Some(handle),
        Err(error) => {
            tracing::warn!(%error, "cannot watch the plugin folder: hot reload is off");
            None
        }
    };
    // Ready only once hot reload is watching: a plugin written after this
    // line is picked up.
    tracing::info!(
        hostname = %shared.hostname,
        queues = ?shared.config.queues,
        concurrency = shared.config.concurrency,
        prefetch = shared.config.prefetch,
        tasks = current_registry(&shared).task_names().len(),
        "worker ready"
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let fetcher = tokio::spawn(fetch::fetch_loop(shared.clone(), jobs_tx, stop_rx.clone()));
    let revoker = tokio::spawn(revoke::revoke_loop(backend.clone(), revokes_rx, shared.settings.result_expires));
    let completer = tokio::spawn(complete::complete_loop(shared.clone(), backend, completions_rx));
    let keeper = tokio::spawn(lease::lease_loop(shared.clone()));
    let delayer = tokio::spawn(delayed::delay_loop(shared.clone(), delays_rx));
    let releaser = tokio::spawn(delayed::release_loop(shared.clone(), stop_rx.clone()));
    let sweeper = tokio::spawn(lease::sweep_loop(shared.clone(), stop_rx.clone()));

    let executors_died = tokio::select! {
        () = shutdown => false,
        () = shared.remote_shutdown.notified() => {
            tracing::info!("shutdown requested by remote control");
            false
        }
        () = shared.executors_gone.notified() => true,
    };
    if executors_died {
        tracing::error!("every job thread died (see the panics above): stopping the worker");
    }
    tracing::info!(drain_timeout = ?shared.config.drain_timeout, "shutting down: no new jobs; finishing running ones");
    shared.stopping.store(true, Ordering::SeqCst);
    if let Some(metrics) = &shared.metrics {
        metrics.health.set_stopping();
    }
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
        for running in shared.running.lock().unwrap().values() {
            running.cancellation.cancel();
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
    revoker.abort();
    sweeper.abort();
    delayer.abort();
    releaser.abort();
    flusher.abort();
    if let Some(task) = queue_sampler {
        task.abort();
    }
    if let Some(task) = control_task {
        task.abort();
    }
    if let Some(task) = reporter {
        task.abort();
    }
    if let Some(connection) = report_connection.as_mut() {
        report::withdraw(&shared.hostname, connection).await;
        // Withdrawn first: of workers stopping together, the last to look
        // finds none left and hands the jobs back.
        delayed::hand_back_if_last(&shared, connection).await;
    }
    completer.abort();
    for executor in executors {
        let _ = executor.join();
    }
    tracing::info!(processed = shared.processed.load(Ordering::Relaxed), "worker stopped");
    anyhow::ensure!(!executors_died, "every job thread died; the worker stopped instead of requeueing jobs it cannot run");
    Ok(())
}

fn current_registry<B>(shared: &Shared<B>) -> Arc<Registry> {
    shared.registry.read().unwrap().clone()
}

fn held_count<B>(shared: &Shared<B>) -> usize {
    shared.held.lock().unwrap().len()
}
