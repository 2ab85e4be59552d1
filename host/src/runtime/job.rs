//! One job: a fresh `Store` and instance, limits, and the call itself.
//!
//! What a job may do beyond computing comes in as [`Services`] (supplied by
//! the worker, each behind a manifest grant) and goes out as [`Effects`]
//! (what it sent or asked to be replaced with), returned with its outcome.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::{v0_1, v0_2};
use super::canvas::{Prepared, TaskSender};
use super::http::JobHttp;
use super::keyvalue::KeyValueStore;
use super::manifest::{DirMode, Grants};
use super::outcome::Outcome;
use super::plugin::Plugin;
use super::progress::ProgressSink;

/// Guest stdout/stderr kept per job (then logged); writes past this fail.
const OUTPUT_CAPACITY: usize = 64 << 10;

/// Bytes of `host.log` lines one job may write; past it, one line says the
/// rest was dropped. A guest (or an argument it echoes) cannot flood the
/// worker's log.
const LOG_CAPACITY: usize = 64 << 10;

/// Longest single `host.log` line (message and fields) kept.
const LOG_LINE: usize = 4 << 10;

/// What `wasi:random/random` cycles through for a plugin without `random = true`.
const UNGRANTED_RANDOM: [u8; 16] = *b"chard:no-random!";

/// Set from outside to stop a running job at its next epoch tick.
#[derive(Debug, Clone, Default)]
pub struct Cancellation(Arc<AtomicBool>);

impl Cancellation {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Everything needed to run one task once.
pub struct JobRequest<'a> {
    /// Task name inside the plugin ("add").
    pub task: &'a str,
    /// Positional arguments, a JSON array.
    pub args: &'a str,
    /// Keyword arguments, a JSON object.
    pub kwargs: &'a str,
    pub context: super::JobContext,
    pub time_limit: Option<Duration>,
    pub memory_limit_bytes: u64,
    pub cancellation: Option<Cancellation>,
    pub services: Services,
}

/// What the worker lends a job; `None` where there is no Redis (`host
/// call`): the guest's call then fails with a clear error.
#[derive(Clone, Default)]
pub struct Services {
    pub progress: Option<Arc<dyn ProgressSink>>,
    pub sender: Option<Arc<dyn TaskSender>>,
    pub keyvalue: Option<Arc<dyn KeyValueStore>>,
}

/// What a job asked for besides its result; the worker acts on it only if
/// the job succeeded.
#[derive(Default)]
pub struct Effects {
    /// Prepared by `send`, in call order.
    pub sent: Vec<Prepared>,
    /// The signature given to `replace`.
    pub replacement: Option<serde_json::Value>,
}

/// A finished job: how it ended and what it asked for.
pub struct Finished {
    pub outcome: Outcome,
    pub effects: Effects,
    /// How long creating the instance took (`None` if it failed before
    /// that), for the worker's metrics.
    pub instantiation: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Interruption {
    TimeLimit,
    Cancelled,
}

/// Per-job host state: the WASI context (with the plugin's grants only),
/// limits, and what the host observed while the guest ran.
pub struct JobState {
    wasi: WasiCtx,
    pub(crate) grants: Arc<Grants>,
    table: ResourceTable,
    memory_limit_bytes: u64,
    memory_exceeded: bool,
    interrupted: Option<Interruption>,
    pub(crate) plugin: Arc<str>,
    pub(crate) task_id: String,
    task_name: String,
    /// `host.log` bytes this job wrote so far (see `LOG_CAPACITY`).
    logged_bytes: usize,
    pub(crate) services: Services,
    /// The running job's context (`None` while listing tasks).
    pub(crate) context: Option<Arc<super::JobContext>>,
    pub(crate) effects: Effects,
    /// `wasi:http` state and the hooks that check the `http` grant.
    http: JobHttp,
}

impl WasiView for JobState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl wasmtime_wasi_http::WasiHttpView for JobState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView { ctx: &mut self.http.ctx, table: &mut self.table, hooks: &mut self.http.hooks }
    }
}

impl ResourceLimiter for JobState {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired as u64 > self.memory_limit_bytes {
            self.memory_exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

impl JobState {
    /// A guest's log line (0 = trace ... 4 = error).
    fn log_line(&mut self, level: u8, message: &str, fields: &[(String, String)]) {
        let fields = fields.iter().map(|(key, value)| format!(" {key}={value}")).collect::<String>();
        let size = message.len() + fields.len();
        self.logged_bytes = self.logged_bytes.saturating_add(size);
        let (plugin, task, id) = (&*self.plugin, &self.task_name, &self.task_id);
        if self.logged_bytes > LOG_CAPACITY {
            if self.logged_bytes - size <= LOG_CAPACITY {
                tracing::warn!(plugin, task, id, "log output over {LOG_CAPACITY} bytes for this job: the rest is dropped");
            }
            return;
        }
        let mut line = format!("{message}{fields}");
        if line.len() > LOG_LINE {
            let mut end = LOG_LINE;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
            line.push_str("… (truncated)");
        }
        match level {
            0 => tracing::trace!(plugin, task, id, "{line}"),
            1 => tracing::debug!(plugin, task, id, "{line}"),
            2 => tracing::info!(plugin, task, id, "{line}"),
            3 => tracing::warn!(plugin, task, id, "{line}"),
            _ => tracing::error!(plugin, task, id, "{line}"),
        }
    }
}

impl v0_2::chard::task::host::Host for JobState {
    fn log(&mut self, level: v0_2::chard::task::host::Level, message: String, fields: Vec<(String, String)>) -> wasmtime::Result<()> {
        self.log_line(level as u8, &message, &fields);
        Ok(())
    }

    fn now_ms(&mut self) -> wasmtime::Result<u64> {
        Ok(unix_millis())
    }
}

impl v0_1::chard::task::host::Host for JobState {
    fn log(&mut self, level: v0_1::chard::task::host::Level, message: String, fields: Vec<(String, String)>) {
        self.log_line(level as u8, &message, &fields);
    }

    /// Never called: `engine::gate_capabilities` replaces it with one that
    /// checks the wall-clock grant (this signature cannot trap).
    fn now_ms(&mut self) -> u64 {
        unix_millis()
    }
}

impl v0_2::chard::task::types::Host for JobState {}
impl v0_1::chard::task::types::Host for JobState {}

impl JobState {
    /// The trap a guest gets for using a capability it was not granted.
    pub(crate) fn denied(&self, what: &str, key: &str) -> wasmtime::Error {
        wasmtime::format_err!(
            "{what} is not granted to plugin {plugin}: add `{key} = true` under [capabilities] in {plugin}.toml",
            plugin = self.plugin
        )
    }
}

/// Wall-clock time as Unix milliseconds.
pub fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}

/// A fresh store for `plugin`: captured stdio, and only what its manifest
/// granted.
pub(crate) fn new_store(
    plugin: &Plugin,
    memory_limit_bytes: u64,
    task_id: String,
    task_name: String,
) -> (Store<JobState>, MemoryOutputPipe, MemoryOutputPipe) {
    let stdout = MemoryOutputPipe::new(OUTPUT_CAPACITY);
    let stderr = MemoryOutputPipe::new(OUTPUT_CAPACITY);
    let mut builder = WasiCtxBuilder::new();
    builder.stdout(stdout.clone()).stderr(stderr.clone());
    let grants = plugin.grants_arc();
    if !grants.random {
        // Without the grant the "secure" generator is a fixed sequence, the
        // same in every job: tasks are reproducible and cannot mint secrets.
        // It is not refused outright because componentize-py's runtime draws
        // random bytes on every fresh instance, before any task code runs.
        builder.secure_random(wasmtime_wasi::random::Deterministic::new(UNGRANTED_RANDOM.to_vec()));
    }
    if !grants.is_empty() {
        grant(&mut builder, &grants, plugin.name());
    }
    let http = JobHttp::new(plugin.runtime().http.clone(), plugin.name_arc(), grants.clone());
    let state = JobState {
        wasi: builder.build(),
        grants,
        table: ResourceTable::new(),
        memory_limit_bytes,
        memory_exceeded: false,
        interrupted: None,
        plugin: plugin.name_arc(),
        task_id,
        task_name,
        logged_bytes: 0,
        services: Services::default(),
        context: None,
        effects: Effects::default(),
        http,
    };
    let mut store = Store::new(plugin.runtime().engine(), state);
    store.limiter(|state| state);
    (store, stdout, stderr)
}

/// Applies `grants` to a job's WASI context. Clocks and randomness are not
/// here: the engine's linker checks those per call (see `engine`).
fn grant(builder: &mut WasiCtxBuilder, grants: &Grants, plugin: &str) {
    builder.envs(&grants.env);
    for dir in &grants.dirs {
        let perms = match dir.mode {
            DirMode::ReadOnly => wasmtime_wasi::FsPerms::ReadOnly,
            DirMode::ReadWrite => wasmtime_wasi::FsPerms::ReadWrite,
        };
        if let Err(error) = builder.preopened_dir(&dir.host, &dir.guest, perms) {
            // Checked at load; it can still vanish later. The job then runs
            // without it and sees a clear "not found" from the guest's side.
            tracing::warn!(plugin, dir = %dir.host.display(), %error, "granted directory cannot be opened");
        }
    }
    if !grants.network.is_empty() {
        let allowed: Arc<[std::net::SocketAddr]> = grants.network.clone().into();
        builder.allow_tcp(true).allow_udp(true).allow_ip_name_lookup(true).socket_addr_check(move |address, usage| {
            use wasmtime_wasi::sockets::SocketAddrUse;
            let permitted = match usage {
                // A client's implicit bind to an ephemeral local port.
                SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => address.ip().is_unspecified() && address.port() == 0,
                SocketAddrUse::TcpConnect | SocketAddrUse::UdpSend | SocketAddrUse::UdpReceive => {
                    allowed.contains(&address)
                }
                // Tasks are clients: no listening sockets.
                SocketAddrUse::TcpListen | SocketAddrUse::TcpAccept => false,
            };
            Box::pin(async move { permitted })
        });
    }
}

/// Runs `request` in a fresh instance of `plugin`.
pub(crate) fn run(plugin: &Plugin, request: JobRequest<'_>) -> Finished {
    let (mut store, stdout, stderr) = new_store(
        plugin,
        request.memory_limit_bytes,
        request.context.task_id.clone(),
        request.context.task_name.clone(),
    );
    let context = Arc::new(request.context);
    store.data_mut().services = request.services;
    store.data_mut().context = Some(context.clone());
    // A limit too far to be an instant is no limit.
    let deadline = request.time_limit.and_then(|limit| Instant::now().checked_add(limit));
    store.data_mut().http.set_deadline(deadline);
    let cancellation = request.cancellation.clone();
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |mut store| {
        let state = store.data_mut();
        if cancellation.as_ref().is_some_and(Cancellation::is_cancelled) {
            state.interrupted = Some(Interruption::Cancelled);
            return Err(wasmtime::format_err!("job cancelled"));
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            state.interrupted = Some(Interruption::TimeLimit);
            return Err(wasmtime::format_err!("time limit exceeded"));
        }
        Ok(UpdateDeadline::Continue(1))
    });

    let mut instantiation = None;
    let result = plugin.pre().run(&mut store, request.task, request.args, request.kwargs, &context, &mut instantiation);
    let state = store.data_mut();
    log_output(&state.plugin, &state.task_id, "stdout", &stdout);
    log_output(&state.plugin, &state.task_id, "stderr", &stderr);
    let effects = std::mem::take(&mut state.effects);
    let outcome = match result {
        // A request cut short at the deadline: the guest saw an error and
        // may have gone on, but the job had run out of time (the epoch
        // check could not stop it inside the host call).
        _ if state.http.hit_deadline() => Outcome::TimedOut { limit: request.time_limit.unwrap_or_default() },
        Ok(Ok(json)) => Outcome::Succeeded { json },
        Ok(Err(Outcome::Failed(mut failure))) => {
            // A guest that replaced the worker's HTTP message with its own
            // (componentize-js's fetch does) still reports why.
            if let Some(message) = state.http.last_error().filter(|message| !failure.message.contains(message.as_str())) {
                let enriched = format!("{} ({message})", failure.message);
                // Exception args that are just the message follow it.
                if let Some(first) = failure.args.as_mut().and_then(|args| args.first_mut()) {
                    if first.as_str() == Some(failure.message.as_str()) {
                        *first = serde_json::Value::String(enriched.clone());
                    }
                }
                failure.message = enriched;
            }
            Outcome::Failed(failure)
        }
        Ok(Err(outcome)) => outcome,
        Err(error) => match state.interrupted {
            Some(Interruption::TimeLimit) => Outcome::TimedOut { limit: request.time_limit.unwrap_or_default() },
            Some(Interruption::Cancelled) => Outcome::Terminated,
            None if state.memory_exceeded => Outcome::OutOfMemory { limit_bytes: state.memory_limit_bytes },
            None => Outcome::Trapped { message: trap_message(&error, &stderr) },
        },
    };
    Finished { outcome, effects, instantiation }
}

/// The trap itself, plus the guest's last line on stderr: for a Rust panic
/// that is the panic message, which says far more than "unreachable".
fn trap_message(error: &wasmtime::Error, stderr: &MemoryOutputPipe) -> String {
    // A host function's error (e.g. a capability not granted) comes wrapped
    // in the wasm backtrace; its root cause is the message worth showing.
    let trap = match error.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => error.root_cause().to_string(),
    };
    let output = stderr.contents();
    let text = String::from_utf8_lossy(&output);
    let last_line = text
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty() && !line.starts_with("note: run with `RUST_BACKTRACE"));
    match last_line {
        Some(line) => format!("{trap}: {}", line.trim()),
        None => trap,
    }
}

fn log_output(plugin: &str, task_id: &str, stream: &str, pipe: &MemoryOutputPipe) {
    let output = pipe.contents();
    if !output.is_empty() {
        let text = String::from_utf8_lossy(&output);
        tracing::info!(plugin, id = task_id, stream, "{}", text.trim_end());
    }
}
