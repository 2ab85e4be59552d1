//! One job: a fresh `Store` and instance, limits, and the call itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::chard::task::host::{self, Level};
use super::bindings::chard::task::types::TaskError;
use super::manifest::{DirMode, Grants};
use super::outcome::{Failure, Outcome, RetryRequest};
use super::plugin::Plugin;

/// Guest stdout/stderr kept per job (then logged); writes past this fail.
const OUTPUT_CAPACITY: usize = 64 << 10;

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
    plugin: Arc<str>,
    task_id: String,
    task_name: String,
}

impl WasiView for JobState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
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

impl host::Host for JobState {
    fn log(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
        let fields = fields.iter().map(|(key, value)| format!(" {key}={value}")).collect::<String>();
        let (plugin, task, id) = (&*self.plugin, &self.task_name, &self.task_id);
        match level {
            Level::Trace => tracing::trace!(plugin, task, id, "{message}{fields}"),
            Level::Debug => tracing::debug!(plugin, task, id, "{message}{fields}"),
            Level::Info => tracing::info!(plugin, task, id, "{message}{fields}"),
            Level::Warn => tracing::warn!(plugin, task, id, "{message}{fields}"),
            Level::Error => tracing::error!(plugin, task, id, "{message}{fields}"),
        }
    }

    /// Never called: `engine::gate_capabilities` replaces it with one that
    /// checks the wall-clock grant (this signature cannot trap).
    fn now_ms(&mut self) -> u64 {
        unix_millis()
    }
}

impl super::bindings::chard::task::types::Host for JobState {}

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
pub(crate) fn run(plugin: &Plugin, request: JobRequest<'_>) -> Outcome {
    let (mut store, stdout, stderr) = new_store(
        plugin,
        request.memory_limit_bytes,
        request.context.task_id.clone(),
        request.context.task_name.clone(),
    );
    let deadline = request.time_limit.map(|limit| Instant::now() + limit);
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

    let result = plugin
        .pre()
        .instantiate(&mut store)
        .and_then(|instance| {
            instance.chard_task_tasks().call_run(
                &mut store,
                request.task,
                request.args,
                request.kwargs,
                &request.context,
            )
        });
    let state = store.data();
    log_output(&state.plugin, &state.task_id, "stdout", &stdout);
    log_output(&state.plugin, &state.task_id, "stderr", &stderr);
    match result {
        Ok(Ok(json)) => Outcome::Succeeded { json },
        Ok(Err(TaskError::Failed(failure))) => Outcome::Failed(Failure {
            exception_type: failure.exception_type.unwrap_or_else(|| "Exception".to_string()),
            message: failure.message,
        }),
        Ok(Err(TaskError::Retry(retry))) => Outcome::Retry(RetryRequest {
            countdown: retry.countdown_ms.map(Duration::from_millis),
            reason: retry.reason,
            max_retries: retry.max_retries,
        }),
        Err(error) => match state.interrupted {
            Some(Interruption::TimeLimit) => Outcome::TimedOut { limit: request.time_limit.unwrap_or_default() },
            Some(Interruption::Cancelled) => Outcome::Terminated,
            None if state.memory_exceeded => Outcome::OutOfMemory { limit_bytes: state.memory_limit_bytes },
            None => Outcome::Trapped { message: trap_message(&error, &stderr) },
        },
    }
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
