//! A loaded plugin: its compiled component, pre-linked instance, and the
//! tasks it declared.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::Digest as _;
use wasmtime::component::Component;

use super::bindings::v0_2::chard::task::types;
use super::engine::Runtime;
use super::job::{self, Finished, JobRequest};
use super::manifest::{Grants, Manifest, ManifestError};
use super::names::{check_name, served_name};
use super::origin::origin_of;
use super::outcome::Outcome;
use super::policy::Refusal;
use super::signature::TaskSignature;
use super::wasm_kind::{self, WasmKind};
use super::world::WorldPre;

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: cannot read")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a WebAssembly file (it lacks the \\0asm header); rebuild the plugin or remove the file")]
    NotWasm { path: PathBuf },
    #[error("{path}: a core WebAssembly module, not a component; build it for wasm32-wasip2 (cargo build --target wasm32-wasip2) or wrap it with `wasm-tools component new`")]
    CoreModule { path: PathBuf },
    #[error("{path}: not a valid WebAssembly component: {reason}")]
    NotAComponent { path: PathBuf, reason: String },
    #[error("{path}: does not fit the chard:task world: {reason}")]
    Link { path: PathBuf, reason: String },
    #[error("{path}: listing its tasks failed: {reason}")]
    ListTasks { path: PathBuf, reason: String },
    #[error("{path}: plugin name {name:?} must be a non-empty file stem without dots")]
    BadName { path: PathBuf, name: String },
    #[error("{path}: tasks {first} and {second} would both be served as {name}; give one another name in the manifest ([tasks.<task>] name = ...)")]
    DuplicateName { path: PathBuf, name: String, first: String, second: String },
    #[error("{path}: plugin {plugin} would serve {name}, which plugin {other} ({other_path}) already serves; {plugin} is refused and {other} keeps serving (rename the task in {plugin}'s manifest: [tasks.<task>] name = ...)")]
    NameTaken { path: PathBuf, plugin: String, name: String, other: String, other_path: PathBuf },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{path}: refused by the worker's policy: {refusal}")]
    Policy { path: PathBuf, refusal: Refusal },
}

impl LoadError {
    /// The plugin the error is about: the file stem of its `.wasm` (a
    /// manifest `<name>.toml` has the same stem).
    pub fn plugin_name(&self) -> String {
        let path = match self {
            Self::Read { path, .. }
            | Self::NotWasm { path }
            | Self::CoreModule { path }
            | Self::NotAComponent { path, .. }
            | Self::Link { path, .. }
            | Self::ListTasks { path, .. }
            | Self::BadName { path, .. }
            | Self::DuplicateName { path, .. }
            | Self::NameTaken { path, .. }
            | Self::Policy { path, .. } => path,
            Self::Manifest(error) => &error.path,
        };
        path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default()
    }
}

/// Defaults a plugin declared for a task, in host types.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskDefaults {
    pub queue: Option<String>,
    pub time_limit: Option<Duration>,
    pub soft_time_limit: Option<Duration>,
    pub memory_limit_mb: Option<u32>,
    pub max_retries: Option<u32>,
    pub default_retry_delay: Option<Duration>,
    pub rate_limit: Option<String>,
    pub autoretry_for: Vec<String>,
    pub retry_backoff: Option<Duration>,
    pub retry_backoff_max: Option<Duration>,
    pub retry_jitter: bool,
}

impl TaskDefaults {
    /// The task's hard time limit, else the worker's. A task's
    /// `time_limit = 0` means no limit, as the worker's `--time-limit 0`
    /// does, rather than a limit that expires at once.
    pub fn time_limit_or(&self, worker: Option<Duration>) -> Option<Duration> {
        match self.time_limit {
            Some(limit) if limit.is_zero() => None,
            Some(limit) => Some(limit),
            None => worker,
        }
    }

    /// The task's soft time limit (0 means none).
    pub fn soft_time_limit(&self) -> Option<Duration> {
        self.soft_time_limit.filter(|limit| !limit.is_zero())
    }
}

/// One task of a plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskInfo {
    /// The name the plugin declared: what its `run` is called with.
    pub name: String,
    /// The name jobs ask for (see `names`): `math.add`, or what the plugin or
    /// its manifest chose.
    pub served: String,
    /// Parameters in Python's notation (`x`, `y?`, `*args`, `**kwargs`).
    pub params: Vec<String>,
    /// How the task can be called, for Celery's argument check before a
    /// call to it is sent: `None` when its plugin does not say (a 0.1
    /// plugin, or `params` that break the notation).
    pub signature: Option<TaskSignature>,
    pub doc: Option<String>,
    pub defaults: TaskDefaults,
}

/// A compiled, linked plugin, ready to run jobs.
pub struct Plugin {
    name: Arc<str>,
    path: PathBuf,
    runtime: Runtime,
    pre: WorldPre,
    tasks: Vec<TaskInfo>,
    /// Short content hash of the `.wasm`, shown to say which version runs.
    version: String,
    /// Short content hash of the manifest, if there is one: with `version`,
    /// what tells a reload apart from a no-op.
    manifest_hash: Option<String>,
    /// The manifest's own version label, if it gave one.
    label: Option<String>,
    grants: Arc<Grants>,
}

impl Plugin {
    /// Compiles and links the component at `path`, applies the manifest
    /// beside it (`<name>.toml`, if any), then asks it for its tasks. The
    /// manifest and the tasks' limits must fit the runtime's policy for the
    /// plugin's origin (see `policy`).
    pub fn load(runtime: &Runtime, path: &Path) -> Result<Self, LoadError> {
        let manifest = Manifest::load_for(path, runtime.policy(), origin_of(path))?;
        let manifest_hash = manifest.text().map(|text| content_hash(text.as_bytes()));
        let mut plugin = Self::from_file(runtime, path, manifest)?;
        runtime
            .policy()
            .check_limits(&plugin.tasks)
            .map_err(|refusal| LoadError::Policy { path: path.to_path_buf(), refusal })?;
        plugin.manifest_hash = manifest_hash;
        Ok(plugin)
    }

    /// Loads a plugin from its bytes; `path` names it (its file stem is the
    /// plugin name) and `manifest` is applied.
    pub fn from_bytes(runtime: &Runtime, path: &Path, bytes: &[u8], manifest: Manifest) -> Result<Self, LoadError> {
        let digest: [u8; 32] = sha2::Sha256::digest(bytes).into();
        Self::build(runtime, path, &digest, bytes, || Ok(std::borrow::Cow::Borrowed(bytes)), manifest)
    }

    /// Loads the plugin file at `path`. The file is read in pieces into one
    /// small buffer to hash it (the compile cache's key); it is read whole
    /// only if it must be compiled. A 20 MiB `.wasm` read into a fresh
    /// buffer costs more CPU (the kernel zeroing its pages) than hashing it.
    fn from_file(runtime: &Runtime, path: &Path, manifest: Manifest) -> Result<Self, LoadError> {
        use std::io::Read as _;
        let read_error = |source| LoadError::Read { path: path.to_path_buf(), source };
        let mut file = std::fs::File::open(path).map_err(read_error)?;
        let mut hasher = sha2::Sha256::new();
        let mut header = Vec::with_capacity(8);
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let read = file.read(&mut buffer).map_err(read_error)?;
            if read == 0 {
                break;
            }
            if header.len() < 8 {
                let wanted = (8 - header.len()).min(read);
                header.extend_from_slice(&buffer[..wanted]);
            }
            hasher.update(&buffer[..read]);
        }
        let digest: [u8; 32] = hasher.finalize().into();
        let whole = || {
            let bytes = std::fs::read(path)?;
            // Written to while we read it (a `cp` over it): the next change
            // event loads it again; never cache code under another file's key.
            if sha2::Sha256::digest(&bytes).as_slice() != digest {
                return Err(std::io::Error::other("the file changed while it was being loaded"));
            }
            Ok(std::borrow::Cow::Owned(bytes))
        };
        Self::build(runtime, path, &digest, &header, whole, manifest)
    }

    /// `header` is at least the first 8 bytes of the `.wasm`, `digest` its
    /// SHA-256; `whole` reads all of it, which is needed only to compile.
    fn build<'a>(
        runtime: &Runtime,
        path: &Path,
        digest: &[u8; 32],
        header: &[u8],
        whole: impl FnOnce() -> std::io::Result<std::borrow::Cow<'a, [u8]>>,
        manifest: Manifest,
    ) -> Result<Self, LoadError> {
        let name = path.file_stem().and_then(|stem| stem.to_str()).unwrap_or_default().to_string();
        if name.is_empty() || name.contains('.') {
            return Err(LoadError::BadName { path: path.to_path_buf(), name });
        }
        match wasm_kind::kind(header) {
            WasmKind::NotWasm => return Err(LoadError::NotWasm { path: path.to_path_buf() }),
            WasmKind::CoreModule => return Err(LoadError::CoreModule { path: path.to_path_buf() }),
            WasmKind::Component => {}
        }
        // Compiling a Python or JavaScript plugin takes from seconds to
        // minutes: say so before, and how long it took after.
        let file = path.file_name().map(|file| file.to_string_lossy().into_owned()).unwrap_or_default();
        let compile = || {
            let why = match runtime.cache {
                Some(_) => "first load; later starts use the cache",
                None => "the compile cache is off",
            };
            let bytes = whole().map_err(|error| wasmtime::Error::msg(format!("cannot read it: {error}")))?;
            tracing::info!("compiling {file} ({why})…");
            let started = std::time::Instant::now();
            let component = Component::new(runtime.engine(), &bytes)?;
            tracing::info!("compiled {file} in {:.1}s", started.elapsed().as_secs_f64());
            Ok(component)
        };
        let compiled = match &runtime.cache {
            Some(cache) => cache.load_or_compile(digest, compile),
            None => compile(),
        };
        let component = compiled.map_err(|error| LoadError::NotAComponent {
            path: path.to_path_buf(),
            reason: one_line(&error),
        })?;
        let instance_pre = runtime.linker.instantiate_pre(&component).map_err(|error| LoadError::Link {
            path: path.to_path_buf(),
            reason: one_line(&error),
        })?;
        let pre = WorldPre::new(instance_pre)
            .map_err(|error| LoadError::Link { path: path.to_path_buf(), reason: one_line(&error) })?;
        let mut plugin = Self {
            name: name.into(),
            path: path.to_path_buf(),
            runtime: runtime.clone(),
            pre,
            tasks: Vec::new(),
            version: short_hex(digest),
            manifest_hash: None,
            label: manifest.version.clone(),
            grants: Arc::new(manifest.grants.clone()),
        };
        let declared = plugin.list_tasks().map_err(|reason| LoadError::ListTasks { path: path.to_path_buf(), reason })?;
        manifest.check_tasks(declared.iter().map(|task| task.name.as_str()))?;
        plugin.tasks = declared
            .into_iter()
            .map(|task| TaskInfo {
                defaults: manifest.task_defaults(&task.name, task.defaults.clone()),
                served: served_name(&plugin.name, &task.name, manifest.served_name(&task.name)),
                ..task
            })
            .collect();
        for task in plugin.tasks.iter().filter(|task| task.signature.is_none() && plugin.pre.version() != "0.1") {
            if let Err(reason) = TaskSignature::parse(&task.params) {
                tracing::warn!(plugin = %plugin.name, task = %task.name, "its params {:?} do not read as a signature ({reason}): calls to it are sent unchecked", task.params);
            }
        }
        for (index, task) in plugin.tasks.iter().enumerate() {
            if let Some(earlier) = plugin.tasks[..index].iter().find(|earlier| earlier.served == task.served) {
                return Err(LoadError::DuplicateName {
                    path: path.to_path_buf(),
                    name: task.served.clone(),
                    first: earlier.name.clone(),
                    second: task.name.clone(),
                });
            }
            check_name(&task.served).map_err(|reason| LoadError::ListTasks { path: path.to_path_buf(), reason })?;
        }
        Ok(plugin)
    }

    fn list_tasks(&self) -> Result<Vec<TaskInfo>, String> {
        let (mut store, _stdout, stderr) = job::new_store(self, 64 << 20, String::new(), "list-tasks".into());
        store.set_epoch_deadline(500); // a plugin that hangs while listing is broken
        self.pre.list_tasks(&mut store).map_err(|error| {
            let output = stderr.contents();
            let detail = String::from_utf8_lossy(&output);
            format!("{} {}", error.root_cause(), detail.trim())
        })
    }

    /// Runs one job in a fresh instance; what it sent is dropped (see
    /// [`Plugin::run_job`]).
    pub fn run(&self, request: JobRequest<'_>) -> Outcome {
        job::run(self, request).outcome
    }

    /// Runs one job in a fresh instance: its outcome, its effects, and how
    /// long creating the instance took.
    pub fn run_job(&self, request: JobRequest<'_>) -> Finished {
        job::run(self, request)
    }

    /// The `chard:task` world the plugin was built against: "0.2" or "0.1".
    pub fn world(&self) -> &'static str {
        self.pre.version()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn name_arc(&self) -> Arc<str> {
        self.name.clone()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// The content hash plus the manifest's, e.g. `3fa2c1d9e0b1+7a0c55e1d2f3`:
    /// changes whenever anything that defines the plugin changes.
    pub fn fingerprint(&self) -> String {
        match &self.manifest_hash {
            Some(manifest) => format!("{}+{manifest}", self.version),
            None => self.version.clone(),
        }
    }

    /// The manifest's `version` label, if it gave one.
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    /// What the manifest granted (nothing without one).
    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    pub(crate) fn grants_arc(&self) -> Arc<Grants> {
        self.grants.clone()
    }

    pub fn tasks(&self) -> &[TaskInfo] {
        &self.tasks
    }

    /// The task the plugin declared as `name`.
    pub fn task(&self, name: &str) -> Option<&TaskInfo> {
        self.tasks.iter().find(|task| task.name == name)
    }

    /// The task served as `served`.
    pub fn served_task(&self, served: &str) -> Option<&TaskInfo> {
        self.tasks.iter().find(|task| task.served == served)
    }

    pub(crate) fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    pub(crate) fn pre(&self) -> &WorldPre {
        &self.pre
    }
}

impl From<types::TaskInfo> for TaskInfo {
    fn from(info: types::TaskInfo) -> Self {
        let millis = |value: Option<u64>| value.map(Duration::from_millis);
        let defaults = info.defaults;
        Self {
            served: info.name.clone(),
            name: info.name,
            signature: TaskSignature::parse(&info.params).ok(),
            params: info.params,
            doc: info.doc,
            defaults: TaskDefaults {
                queue: defaults.queue,
                time_limit: millis(defaults.time_limit_ms),
                soft_time_limit: millis(defaults.soft_time_limit_ms),
                memory_limit_mb: defaults.memory_limit_mb,
                max_retries: defaults.max_retries,
                default_retry_delay: millis(defaults.default_retry_delay_ms),
                rate_limit: defaults.rate_limit,
                autoretry_for: defaults.autoretry_for,
                retry_backoff: millis(defaults.retry_backoff_ms),
                retry_backoff_max: millis(defaults.retry_backoff_max_ms),
                retry_jitter: defaults.retry_jitter,
            },
        }
    }
}

/// The whole error chain on one line: a log line or an `error:` line must
/// not end mid-sentence where wasmtime's text wraps.
fn one_line(error: &wasmtime::Error) -> String {
    format!("{error:#}").split_whitespace().collect::<Vec<_>>().join(" ")
}

/// SHA-256 of the bytes, first 12 hex digits: enough to tell versions apart
/// in logs and listings.
fn content_hash(bytes: &[u8]) -> String {
    short_hex(&sha2::Sha256::digest(bytes).into())
}

/// The first 12 hex digits of a SHA-256.
fn short_hex(digest: &[u8; 32]) -> String {
    digest.iter().take(6).map(|byte| format!("{byte:02x}")).collect()
}
