//! Prometheus metrics and readiness of one worker process, for
//! `host run --metrics ADDR` (served by `http`).
//!
//! Decisions:
//!
//! - **The exposition is `prometheus-client`'s**, not written by hand: names
//!   get their `_total`/unit suffixes and the page its `# EOF` from the
//!   crate, so it parses with any Prometheus or OpenMetrics parser.
//! - **Naming**: the `chard_` prefix, seconds as the unit of every time,
//!   counters ending in `_total`. Labels are the task name (`math.add`), the
//!   outcome, the queue or the plugin: bounded by what the plugins serve,
//!   never a task id.
//! - **The job path pays an increment and two histogram observations**
//!   (a read lock on a label map and a few atomics), and only when
//!   `--metrics` is given: without it the worker holds no `Metrics` at all.
//!   Everything that can be read when Prometheus asks (prefetch slots in
//!   use, running jobs, loaded plugin versions) is sampled at scrape time by
//!   a [`Sampler`] the worker installs; queue lengths are sampled by a timer
//!   of the worker, since they cost a Redis round trip.
//! - **Queue wait** starts when the worker fetched the message, or at its
//!   ETA if that is later: Celery's messages carry no time they were sent
//!   (neither the headers nor kombu's envelope have one), so the time spent
//!   in the Redis list is not known to a worker; `chard_queue_length` shows
//!   a backlog instead.
//! - **Readiness** lives beside the metrics (`health`): both are what the
//!   worker tells the outside about itself, and one listener serves both.

mod health;

pub use health::{Health, Readiness};

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// How a job ended, as the `outcome` label says it.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum JobOutcome {
    success,
    failure,
    retry,
    revoked,
    time_limit,
    memory_limit,
    unknown_task,
    /// A malformed message (not a task at all).
    rejected,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    task: String,
    outcome: JobOutcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    task: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginVersionLabels {
    plugin: String,
    version: String,
    label: String,
}

/// Why a job is held without running.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum HeldState {
    running,
    eta,
    rate_limit,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HeldLabels {
    state: HeldState,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    version: String,
    hostname: String,
}

/// Fills the scrape-time gauges just before the page is written.
pub type Sampler = Box<dyn Fn(&Metrics) + Send + Sync>;

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// A worker's metrics registry and the handles the worker records into.
pub struct Metrics {
    registry: Registry,
    jobs_finished: Family<JobLabels, Counter>,
    job_duration: HistogramFamily<TaskLabels>,
    queue_wait: HistogramFamily<TaskLabels>,
    instantiation: Histogram,
    held: Family<HeldLabels, Gauge>,
    prefetch_in_use: Gauge,
    prefetch_limit: Gauge,
    queue_length: Family<QueueLabels, Gauge>,
    plugin_reloads: Family<PluginLabels, Counter>,
    plugin_load_failures: Family<PluginLabels, Counter>,
    plugin_info: Family<PluginVersionLabels, Gauge>,
    redis_errors: Counter,
    redis_reconnects: Counter,
    sampler: OnceLock<Sampler>,
    pub health: Health,
}

fn job_buckets() -> Histogram {
    // 50 µs to ~26 s: a Rust job takes tens of microseconds, a Python one a
    // millisecond, and a real task anything up to its time limit.
    Histogram::new(exponential_buckets(0.00005, 4.0, 10))
}

fn wait_buckets() -> Histogram {
    // 100 µs to ~7 min.
    Histogram::new(exponential_buckets(0.0001, 4.0, 12))
}

impl Metrics {
    /// A registry for worker `hostname`.
    pub fn new(hostname: &str) -> Arc<Self> {
        let mut registry = Registry::with_prefix("chard");
        let metrics = Self {
            jobs_finished: Family::default(),
            job_duration: Family::new_with_constructor(job_buckets),
            queue_wait: Family::new_with_constructor(wait_buckets),
            instantiation: Histogram::new(exponential_buckets(0.00001, 4.0, 10)),
            held: Family::default(),
            prefetch_in_use: Gauge::default(),
            prefetch_limit: Gauge::default(),
            queue_length: Family::default(),
            plugin_reloads: Family::default(),
            plugin_load_failures: Family::default(),
            plugin_info: Family::default(),
            redis_errors: Counter::default(),
            redis_reconnects: Counter::default(),
            sampler: OnceLock::new(),
            health: Health::default(),
            registry: Registry::default(),
        };
        registry.register(
            "worker",
            "This worker: Chard version and node name",
            Info::new(WorkerLabels { version: env!("CARGO_PKG_VERSION").into(), hostname: hostname.into() }),
        );
        registry.register("jobs_finished", "Jobs finished, by task and outcome", metrics.jobs_finished.clone());
        registry.register_with_unit(
            "job_duration",
            "Time a job ran in its sandbox, by task",
            Unit::Seconds,
            metrics.job_duration.clone(),
        );
        registry.register_with_unit(
            "queue_wait",
            "Time from fetch (or ETA, if later) until a job started, by task",
            Unit::Seconds,
            metrics.queue_wait.clone(),
        );
        registry.register_with_unit(
            "sandbox_instantiation",
            "Time to create a fresh sandbox instance for a job",
            Unit::Seconds,
            metrics.instantiation.clone(),
        );
        registry.register("jobs_held", "Jobs this worker holds, by state: running, waiting for an ETA, waiting for a rate limit", metrics.held.clone());
        registry.register("prefetch_slots_in_use", "Prefetch slots taken by held messages", metrics.prefetch_in_use.clone());
        registry.register("prefetch_slots", "Prefetch slots in all (--prefetch)", metrics.prefetch_limit.clone());
        registry.register("queue_length", "Messages waiting in each consumed queue (all priorities), sampled", metrics.queue_length.clone());
        registry.register("plugin_reloads", "Plugins loaded by hot reload, by plugin", metrics.plugin_reloads.clone());
        registry.register("plugin_load_failures", "Plugin loads that failed, by plugin", metrics.plugin_load_failures.clone());
        registry.register("plugin_info", "Loaded plugins (value 1): content version and manifest label", metrics.plugin_info.clone());
        registry.register("redis_errors", "Failed Redis operations of the job path (fetch, store, ack)", metrics.redis_errors.clone());
        registry.register("redis_reconnects", "Times the broker became reachable again after failures", metrics.redis_reconnects.clone());
        Arc::new(Self { registry, ..metrics })
    }

    /// Installs what fills the scrape-time gauges (once; later calls are ignored).
    pub fn set_sampler(&self, sampler: Sampler) {
        let _ = self.sampler.set(sampler);
    }

    pub fn job_finished(&self, task: &str, outcome: JobOutcome) {
        self.jobs_finished.get_or_create(&JobLabels { task: task.to_string(), outcome }).inc();
    }

    pub fn job_ran(&self, task: &str, runtime: Duration, queue_wait: Duration) {
        let labels = TaskLabels { task: task.to_string() };
        self.job_duration.get_or_create(&labels).observe(runtime.as_secs_f64());
        self.queue_wait.get_or_create(&labels).observe(queue_wait.as_secs_f64());
    }

    pub fn instantiated(&self, took: Duration) {
        self.instantiation.observe(took.as_secs_f64());
    }

    /// A job starts (`+1`) or stops (`-1`) waiting in `state`.
    pub fn held(&self, state: HeldState, delta: i64) {
        self.held.get_or_create(&HeldLabels { state }).inc_by(delta);
    }

    pub fn set_held(&self, state: HeldState, count: i64) {
        self.held.get_or_create(&HeldLabels { state }).set(count);
    }

    pub fn set_prefetch(&self, in_use: i64, limit: i64) {
        self.prefetch_in_use.set(in_use);
        self.prefetch_limit.set(limit);
    }

    pub fn set_queue_length(&self, queue: &str, length: i64) {
        self.queue_length.get_or_create(&QueueLabels { queue: queue.to_string() }).set(length);
    }

    pub fn plugin_reloaded(&self, plugin: &str) {
        self.plugin_reloads.get_or_create(&PluginLabels { plugin: plugin.to_string() }).inc();
    }

    pub fn plugin_load_failed(&self, plugin: &str) {
        self.plugin_load_failures.get_or_create(&PluginLabels { plugin: plugin.to_string() }).inc();
    }

    /// Replaces the loaded-plugins info: `(name, version, label)`.
    pub fn set_plugins(&self, plugins: impl IntoIterator<Item = (String, String, String)>) {
        self.plugin_info.clear();
        for (plugin, version, label) in plugins {
            self.plugin_info.get_or_create(&PluginVersionLabels { plugin, version, label }).set(1);
        }
    }

    pub fn redis_error(&self) {
        self.redis_errors.inc();
    }

    pub fn redis_reconnected(&self) {
        self.redis_reconnects.inc();
    }

    /// Runs the sampler: the gauges and readiness facts read at scrape time.
    pub fn sample(&self) {
        if let Some(sampler) = self.sampler.get() {
            sampler(self);
        }
    }

    /// The page Prometheus scrapes (OpenMetrics text, which Prometheus reads).
    pub fn render(&self) -> String {
        self.sample();
        let mut page = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut page, &self.registry);
        page
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        let metrics = Metrics::new("chard@test");
        metrics.job_finished("math.add", JobOutcome::success);
        metrics.job_finished("math.add", JobOutcome::success);
        metrics.job_finished("math.div", JobOutcome::time_limit);
        metrics.job_ran("math.add", Duration::from_millis(2), Duration::from_millis(1));
        metrics.set_plugins([("math".into(), "1371bd401eae".into(), "v1.4.0".into())]);
        let page = metrics.render();
        assert!(page.contains(r#"chard_jobs_finished_total{task="math.add",outcome="success"} 2"#), "{page}");
        assert!(page.contains(r#"chard_jobs_finished_total{task="math.div",outcome="time_limit"} 1"#), "{page}");
        assert!(page.contains(r#"chard_job_duration_seconds_count{task="math.add"} 1"#), "{page}");
        assert!(page.contains(r#"chard_worker_info{version=""#), "{page}");
        assert!(page.contains(r#"chard_plugin_info{plugin="math",version="1371bd401eae",label="v1.4.0"} 1"#), "{page}");
        assert!(page.ends_with("# EOF\n"), "{page}");
    }
}
