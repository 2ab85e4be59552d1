//! The process-wide wasmtime `Engine`, its `Linker`, and the epoch ticker.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker, Resource};
use wasmtime::StoreContextMut;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings;
use super::cache::CompileCache;
use super::http::HttpClient;
use super::job::JobState;
use super::policy::Policy;

/// How often the engine's epoch advances: the granularity of time limits
/// and of cancellation.
pub const TICK: Duration = Duration::from_millis(10);

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Instances that may be alive at once (jobs running plus plugin loads);
    /// sizes the pooling allocator.
    pub max_instances: u32,
    /// Largest memory limit any job may be given, in bytes: the size of a
    /// pooled memory slot.
    pub max_memory_bytes: u64,
    /// Use the pooling allocator (falls back to on-demand if the pool cannot
    /// be reserved, e.g. under a tight `ulimit -v`).
    pub pooling: bool,
    /// Where compiled plugins are cached; `None` disables the cache.
    pub cache_dir: Option<std::path::PathBuf>,
    /// What plugins may be granted and their ceilings (checked at load).
    pub policy: Policy,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            max_instances: 16,
            max_memory_bytes: 1 << 30,
            pooling: true,
            cache_dir: default_cache_dir(),
            policy: Policy::default(),
        }
    }
}

/// The engine plus everything every job shares.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Arc<Linker<JobState>>,
    pub(crate) cache: Option<Arc<CompileCache>>,
    pub(crate) policy: Arc<Policy>,
    /// Outbound HTTP for every job: one connection pool per worker.
    pub(crate) http: HttpClient,
}

/// `$CHARD_CACHE_DIR`, else `$XDG_CACHE_HOME/chard`, else `~/.cache/chard`.
pub fn default_cache_dir() -> Option<std::path::PathBuf> {
    if let Some(dir) = std::env::var_os("CHARD_CACHE_DIR") {
        return (!dir.is_empty()).then(|| dir.into());
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| std::path::PathBuf::from(home).join(".cache")))
        .map(|base| base.join("chard"))
}

impl Runtime {
    pub fn new(options: &EngineOptions) -> anyhow::Result<Self> {
        let engine = if options.pooling {
            match Engine::new(&config(options, true)) {
                Ok(engine) => engine,
                Err(error) => {
                    tracing::warn!(%error, "pooling allocator unavailable, using on-demand allocation");
                    Engine::new(&config(options, false))?
                }
            }
        } else {
            Engine::new(&config(options, false))?
        };
        let mut linker = Linker::<JobState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        // Every plugin may import it; the `http` grant decides what a request reaches (see `http`).
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker)?;
        // Both worlds' imports: a plugin links against the one it was built for.
        bindings::v0_1::chard::task::host::add_to_linker::<JobState, HasSelf<JobState>>(&mut linker, |state| state)?;
        bindings::v0_2::chard::task::host::add_to_linker::<JobState, HasSelf<JobState>>(&mut linker, |state| state)?;
        bindings::v0_2::chard::task::progress::add_to_linker::<JobState, HasSelf<JobState>>(&mut linker, |state| state)?;
        bindings::v0_2::chard::task::canvas::add_to_linker::<JobState, HasSelf<JobState>>(&mut linker, |state| state)?;
        bindings::v0_2::chard::task::keyvalue::add_to_linker::<JobState, HasSelf<JobState>>(&mut linker, |state| state)?;
        gate_capabilities(&mut linker)?;
        spawn_ticker(&engine);
        let cache = options.cache_dir.as_ref().map(|dir| Arc::new(CompileCache::new(&engine, dir)));
        Ok(Self { engine, linker: Arc::new(linker), cache, policy: Arc::new(options.policy.clone()), http: HttpClient::new() })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The policy every plugin load is checked against.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

/// The `wasi` version wasmtime-wasi 48 defines; a guest built against an
/// older 0.2 release resolves to it by semver.
const WASI_VERSION: &str = "0.2.12";

/// Versions of our own WIT package a plugin may be built against
/// (`wit/v0.1/chard.wit`, `wit/chard.wit`).
const CHARD_VERSIONS: [&str; 2] = ["0.1.0", "0.2.0"];

/// Capabilities whose WASI definitions cannot say "denied", replaced in the
/// linker by definitions that check the job's grants first:
/// - The wall clock (WASI's cannot fail): traps with a message that says
///   what to grant. Our own `host.now-ms` is the wall clock too and traps
///   the same way. The monotonic clock (durations) stays open.
/// - Name lookups: WASI can allow or refuse all of them; a plugin may look
///   up only the hosts named in its `network` grant (and IP literals, which
///   need no lookup), so it cannot leak data through DNS queries for
///   names of its own making.
///
/// (Randomness is gated in `job::new_store`: see there why it is made
/// deterministic rather than refused.)
fn gate_capabilities(linker: &mut Linker<JobState>) -> wasmtime::Result<()> {
    use wasmtime_wasi::p2::bindings::clocks::wall_clock::Datetime;
    use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::{Host as _, ResolveAddressStream};
    use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode, Network};
    use wasmtime_wasi::sockets::WasiSocketsView as _;

    linker.allow_shadowing(true);
    let mut clock = linker.instance(&format!("wasi:clocks/wall-clock@{WASI_VERSION}"))?;
    clock.func_wrap("now", |store: StoreContextMut<'_, JobState>, (): ()| {
        let state = store.data();
        if !state.grants.wall_clock {
            return Err(state.denied("the wall clock", "wall_clock"));
        }
        Ok((Datetime::try_from(std::time::SystemTime::now())?,))
    })?;
    clock.func_wrap("resolution", |_store: StoreContextMut<'_, JobState>, (): ()| {
        Ok((Datetime { seconds: 0, nanoseconds: 1 },))
    })?;
    for version in CHARD_VERSIONS {
        let mut host = linker.instance(&format!("chard:task/host@{version}"))?;
        host.func_wrap("now-ms", |store: StoreContextMut<'_, JobState>, (): ()| {
            let state = store.data();
            if !state.grants.wall_clock {
                return Err(state.denied("the wall clock", "wall_clock"));
            }
            Ok((super::job::unix_millis(),))
        })?;
    }
    let mut lookup = linker.instance(&format!("wasi:sockets/ip-name-lookup@{WASI_VERSION}"))?;
    lookup.func_wrap(
        "resolve-addresses",
        |mut store: StoreContextMut<'_, JobState>, (network, name): (Resource<Network>, String)| {
            let state = store.data_mut();
            if !state.grants.may_look_up(&name) {
                tracing::debug!(name, "name lookup outside the network grant refused");
                return Ok((Err(ErrorCode::PermanentResolverFailure),));
            }
            let result: Result<Resource<ResolveAddressStream>, ErrorCode> =
                match state.sockets().resolve_addresses(network, name) {
                    Ok(stream) => Ok(stream),
                    Err(error) => Err(error.downcast()?),
                };
            Ok((result,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

fn config(options: &EngineOptions, pooling: bool) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // Tasks are plain synchronous exports: skipping the component-model
    // concurrency machinery roughly halves the cost of a fresh store.
    config.concurrency_support(false);
    if pooling {
        let instances = options.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(instances)
            // Guest toolchains split a component into several core modules:
            // a Rust guest has a handful, componentize-py several dozen.
            .max_core_instances_per_component(64)
            .total_core_instances(instances * 64)
            .max_memories_per_component(8)
            .total_memories(instances * 8)
            .max_tables_per_component(32)
            .total_tables(instances * 32)
            .max_memory_size(options.max_memory_bytes as usize)
            .max_component_instance_size(4 << 20)
            .max_core_instance_size(8 << 20)
            // Keep pages a job dirtied resident and reset them with memcpy
            // instead of handing them back to the kernel: the next job then
            // takes no copy-on-write fault on them. With `pagemap_scan` this
            // bounds how many dirty pages are kept, not a prefix. A Python or
            // JS job dirties well under 2 MiB (0 faults per job at 2 MiB with
            // the vendored wasmtime, whose scan no longer stops at 32 runs of
            // dirty pages: vendor/README.md). Every page kept is reset by a
            // copy after every job, so more is not free.
            .linear_memory_keep_resident(2 << 20)
            .table_keep_resident(64 << 10)
            .decommit_batch_size(instances.max(1) as usize)
            // Find the pages a job dirtied (Linux 6.7+) instead of resetting
            // a whole resident prefix: without it a Python job cost ~25% more.
            .pagemap_scan(Enabled::Auto);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// Advances the epoch every [`TICK`] for as long as the engine lives.
fn spawn_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("chard-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(TICK);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => return,
            }
        })
        .expect("spawning the epoch ticker thread");
}
