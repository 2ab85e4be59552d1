//! Plugin manifests: an optional `<plugin>.toml` beside `<plugin>.wasm`.
//!
//! The manifest is the operator's half of a plugin: its version label, task
//! defaults that override what the plugin itself declared, and the
//! capabilities it is granted. Everything is denied unless granted here.
//!
//! Decisions worth knowing:
//! - **Strict parsing.** Every table rejects unknown keys, and every error
//!   names the file, the line and the key, so a typo (`tme_limit`) is caught
//!   when the plugin loads instead of silently granting or limiting nothing.
//!   A task table naming a task the plugin does not have is an error too.
//! - **Grants are resolved once, at load.** Environment values are read from
//!   the worker's environment, host names in the network allowlist are
//!   resolved, and directories are checked to exist, when the plugin (or its
//!   manifest) is loaded, not per job. A changed value needs a reload, which
//!   touching the manifest triggers.
//! - **Durations are seconds**, as in Celery (`time_limit = 30`, `0.5`).
//! - **The worker's policy has the last word** (see `policy`): what the
//!   manifest asks for is checked against it before anything is resolved.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::origin::Origin;
use super::plugin::TaskDefaults;
use super::policy::Policy;

/// A manifest that could not be used, with where and why.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: {message}", path.display())]
pub struct ManifestError {
    pub path: PathBuf,
    pub line: usize,
    pub message: String,
}

/// A parsed, validated manifest.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    /// The operator's version label (`version = "1.4.0"`), shown beside the
    /// content hash.
    pub version: Option<String>,
    defaults: TaskOverrides,
    tasks: BTreeMap<String, TaskOverrides>,
    pub grants: Grants,
    /// What the `[capabilities]` table asked for, as written (directories
    /// made absolute): what the worker's policy is checked against.
    pub requested: Requested,
    /// Where it came from and its text, to point at lines in later checks.
    source: Option<(PathBuf, String)>,
}

impl Manifest {
    /// The text this manifest was parsed from (`None` without a file).
    pub fn text(&self) -> Option<&str> {
        self.source.as_ref().map(|(_, text)| text.as_str())
    }
}

/// What a plugin may reach beyond its own memory. `Default` grants nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grants {
    /// Environment variables passed in, with the values they had at load.
    pub env: Vec<(String, String)>,
    pub dirs: Vec<DirGrant>,
    /// Socket addresses the plugin may connect to (host names resolved).
    pub network: Vec<SocketAddr>,
    /// Host names the plugin may look up (`wasi:sockets/ip-name-lookup`):
    /// the hosts of its `network` entries, lowercase.
    pub lookup_names: Vec<String>,
    /// `wasi:clocks/wall-clock` (the monotonic clock is always there: it
    /// only measures durations).
    pub wall_clock: bool,
    /// `wasi:random/random`, the secure generator (the insecure seed that
    /// hash tables use is always there).
    pub random: bool,
    /// `chard:task/progress`: `update-state` (Celery's custom states).
    pub progress: bool,
    /// `chard:task/canvas`: sending and replacing tasks.
    pub send: bool,
    /// `chard:task/keyvalue`: the plugin's own key-value store.
    pub keyvalue: bool,
}

impl Grants {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Whether the plugin may look `name` up: a host of its `network`
    /// grant, or an IP literal (which needs no lookup).
    pub fn may_look_up(&self, name: &str) -> bool {
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        bare.parse::<std::net::IpAddr>().is_ok() || self.lookup_names.iter().any(|allowed| allowed.eq_ignore_ascii_case(bare))
    }

    /// One line for logs and listings: `env(API_TOKEN) dir(/data:ro) wall_clock`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if !self.env.is_empty() {
            parts.push(format!("env({})", self.env.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>().join(",")));
        }
        for dir in &self.dirs {
            let mode = if dir.mode == DirMode::ReadOnly { "ro" } else { "rw" };
            parts.push(format!("dir({}:{mode})", dir.guest));
        }
        if !self.network.is_empty() {
            parts.push(format!("network({})", self.network.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",")));
        }
        if self.wall_clock {
            parts.push("wall_clock".into());
        }
        for (granted, name) in [(self.random, "random"), (self.progress, "progress"), (self.send, "send"), (self.keyvalue, "keyvalue")] {
            if granted {
                parts.push(name.into());
            }
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(" ")
        }
    }
}

/// The `[capabilities]` table as written, before anything is resolved on
/// this machine; relative directories are made absolute (relative to the
/// manifest).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Requested {
    pub env: Vec<String>,
    pub dirs: Vec<DirGrant>,
    /// `host:port` entries as written.
    pub network: Vec<String>,
    pub wall_clock: bool,
    pub random: bool,
    pub progress: bool,
    pub send: bool,
    pub keyvalue: bool,
}

/// A host directory made visible to the plugin.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirGrant {
    pub host: PathBuf,
    pub guest: String,
    #[serde(default)]
    pub mode: DirMode,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum DirMode {
    #[default]
    #[serde(rename = "ro")]
    ReadOnly,
    #[serde(rename = "rw")]
    ReadWrite,
}

/// The file format, exactly: unknown keys anywhere are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: Option<String>,
    #[serde(default)]
    defaults: TaskOverrides,
    #[serde(default)]
    tasks: BTreeMap<String, TaskOverrides>,
    #[serde(default)]
    capabilities: CapabilitiesFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CapabilitiesFile {
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    dirs: Vec<DirGrant>,
    #[serde(default)]
    network: Vec<String>,
    #[serde(default)]
    wall_clock: bool,
    #[serde(default)]
    random: bool,
    #[serde(default)]
    progress: bool,
    #[serde(default)]
    send: bool,
    #[serde(default)]
    keyvalue: bool,
}

/// Per-task settings; each one set here wins over the plugin's own default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskOverrides {
    /// The name the task is served under (see `names`); only in `[tasks.*]`.
    name: Option<String>,
    queue: Option<String>,
    time_limit: Option<f64>,
    soft_time_limit: Option<f64>,
    memory_limit_mb: Option<u32>,
    max_retries: Option<u32>,
    default_retry_delay: Option<f64>,
    rate_limit: Option<String>,
    autoretry_for: Option<Vec<String>>,
    /// Celery accepts `true` (a 1 s factor) or a number of seconds.
    retry_backoff: Option<Backoff>,
    retry_backoff_max: Option<f64>,
    retry_jitter: Option<bool>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
enum Backoff {
    Enabled(bool),
    Seconds(f64),
}

impl Manifest {
    /// The manifest beside `wasm` (`math.wasm` → `math.toml`), if there is one.
    pub fn path_for(wasm: &Path) -> PathBuf {
        wasm.with_extension("toml")
    }

    /// Reads and validates the manifest beside `wasm`, checks what it asks
    /// for against `policy` for a plugin of `origin`, then resolves its
    /// grants; no file is an empty manifest (nothing granted, no overrides).
    pub fn load_for(wasm: &Path, policy: &Policy, origin: Origin) -> Result<Self, ManifestError> {
        let path = Self::path_for(wasm);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse_with(&path, &text, Some((policy, origin))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(error) => Err(ManifestError { path, line: 0, message: format!("cannot read: {error}") }),
        }
    }

    /// Parses `text` (read from `path`, which error messages name) and
    /// resolves its grants on this machine.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ManifestError> {
        Self::parse_with(path, text, Some((&Policy::default(), Origin::Local)))
    }

    /// Checks everything that does not depend on the machine the plugin
    /// will run on (syntax, keys, values), without resolving grants: what
    /// `host deploy` can check before shipping a manifest to other hosts.
    pub fn parse_portable(path: &Path, text: &str) -> Result<Self, ManifestError> {
        Self::parse_with(path, text, None)
    }

    /// With `resolve`, the policy to check against before grants are
    /// resolved; without, grants are only checked for form.
    fn parse_with(path: &Path, text: &str, resolve: Option<(&Policy, Origin)>) -> Result<Self, ManifestError> {
        let file: File = parse_toml(path, text)?;
        let error = |needle: &str, message: String| ManifestError {
            path: path.to_path_buf(),
            line: line_of(text, needle),
            message,
        };
        let tables = std::iter::once(("defaults".to_string(), &file.defaults))
            .chain(file.tasks.iter().map(|(name, overrides)| (format!("tasks.{name}"), overrides)));
        for (table, overrides) in tables {
            let named = match (&overrides.name, table.as_str()) {
                (Some(_), "defaults") => Err(("name", "a served name belongs in a [tasks.<task>] table".to_string())),
                (Some(name), _) => super::names::check_name(name).map_err(|message| ("name", message)),
                (None, _) => Ok(()),
            };
            named.and_then(|()| overrides.validate()).map_err(|(key, message)| ManifestError {
                path: path.to_path_buf(),
                line: line_of_key(text, &table, key),
                message: format!("[{table}] {key}: {message}"),
            })?;
        }
        let requested = file.capabilities.requested(path);
        if let Some(allowance) = resolve.and_then(|(policy, origin)| policy.allowance(origin).map(|allowance| (allowance, origin))) {
            allowance.0.check(&requested, allowance.1).map_err(|refusal| ManifestError {
                path: path.to_path_buf(),
                // Every grant is in [capabilities]: look there first, so
                // `send` does not point at an earlier `[tasks.send]`.
                line: match line_of_key(text, "capabilities", &refusal.needle) {
                    0 => line_of(text, "[capabilities]"),
                    line => line,
                },
                message: refusal.message,
            })?;
        }
        let grants = resolve_grants(&file.capabilities, &requested, path, resolve.is_some())
            .map_err(|(needle, message)| error(&needle, message))?;
        Ok(Self {
            version: file.version,
            defaults: file.defaults,
            tasks: file.tasks,
            grants,
            requested,
            source: Some((path.to_path_buf(), text.to_string())),
        })
    }

    /// Checks that every `[tasks.NAME]` names a task the plugin has.
    pub fn check_tasks<'a>(&self, known: impl Iterator<Item = &'a str> + Clone) -> Result<(), ManifestError> {
        for name in self.tasks.keys() {
            if !known.clone().any(|task| task == name) {
                let (path, text) = self.source.clone().unwrap_or_default();
                let have: Vec<&str> = known.clone().collect();
                return Err(ManifestError {
                    path,
                    line: line_of(&text, &format!("[tasks.{name}]")),
                    message: format!("[tasks.{name}]: the plugin has no task {name:?} (it has {})", have.join(", ")),
                });
            }
        }
        Ok(())
    }

    /// The name `[tasks.<task>] name = ...` serves `task` under, if set.
    pub fn served_name(&self, task: &str) -> Option<&str> {
        self.tasks.get(task).and_then(|overrides| overrides.name.as_deref())
    }

    /// `declared` (the plugin's own defaults for `task`) with this
    /// manifest's `[defaults]` and then `[tasks.<task>]` applied over it.
    pub fn task_defaults(&self, task: &str, declared: TaskDefaults) -> TaskDefaults {
        let defaults = self.defaults.apply(declared);
        match self.tasks.get(task) {
            Some(overrides) => overrides.apply(defaults),
            None => defaults,
        }
    }
}

impl TaskOverrides {
    fn validate(&self) -> Result<(), (&'static str, String)> {
        let seconds = [
            ("time_limit", self.time_limit),
            ("soft_time_limit", self.soft_time_limit),
            ("default_retry_delay", self.default_retry_delay),
            ("retry_backoff_max", self.retry_backoff_max),
        ];
        for (key, value) in seconds {
            if value.is_some_and(|value| !(value >= 0.0 && value.is_finite())) {
                return Err((key, "must be a number of seconds, 0 or more".into()));
            }
        }
        if let Some(Backoff::Seconds(value)) = self.retry_backoff {
            if !(value >= 0.0 && value.is_finite()) {
                return Err(("retry_backoff", "must be true, false or a number of seconds".into()));
            }
        }
        if let Some(rate) = &self.rate_limit {
            crate::protocol::parse_rate(rate).map_err(|message| ("rate_limit", message))?;
        }
        if self.memory_limit_mb == Some(0) {
            return Err(("memory_limit_mb", "must be at least 1".into()));
        }
        Ok(())
    }

    fn apply(&self, mut defaults: TaskDefaults) -> TaskDefaults {
        // Validated finite and not negative; absurdly large values saturate.
        let duration = |value: f64| Duration::try_from_secs_f64(value).unwrap_or(Duration::MAX);
        let seconds = |value: Option<f64>| value.map(duration);
        defaults.queue = self.queue.clone().or(defaults.queue);
        defaults.time_limit = seconds(self.time_limit).or(defaults.time_limit);
        defaults.soft_time_limit = seconds(self.soft_time_limit).or(defaults.soft_time_limit);
        defaults.memory_limit_mb = self.memory_limit_mb.or(defaults.memory_limit_mb);
        defaults.max_retries = self.max_retries.or(defaults.max_retries);
        defaults.default_retry_delay = seconds(self.default_retry_delay).or(defaults.default_retry_delay);
        defaults.rate_limit = self.rate_limit.clone().or(defaults.rate_limit);
        if let Some(errors) = &self.autoretry_for {
            defaults.autoretry_for = errors.clone();
        }
        match self.retry_backoff {
            Some(Backoff::Enabled(true)) => defaults.retry_backoff = Some(Duration::from_secs(1)),
            Some(Backoff::Enabled(false)) => defaults.retry_backoff = None,
            Some(Backoff::Seconds(value)) => defaults.retry_backoff = Some(duration(value)),
            None => {}
        }
        defaults.retry_backoff_max = seconds(self.retry_backoff_max).or(defaults.retry_backoff_max);
        defaults.retry_jitter = self.retry_jitter.unwrap_or(defaults.retry_jitter);
        defaults
    }
}

impl CapabilitiesFile {
    fn requested(&self, manifest: &Path) -> Requested {
        let dirs = self
            .dirs
            .iter()
            .map(|dir| DirGrant {
                host: if dir.host.is_relative() { manifest.parent().unwrap_or(Path::new(".")).join(&dir.host) } else { dir.host.clone() },
                ..dir.clone()
            })
            .collect();
        Requested {
            env: self.env.clone(),
            dirs,
            network: self.network.clone(),
            wall_clock: self.wall_clock,
            random: self.random,
            progress: self.progress,
            send: self.send,
            keyvalue: self.keyvalue,
        }
    }
}

/// Turns the `[capabilities]` table into grants; errors carry a needle to
/// find their line by. Without `resolve`, only checks what it can without
/// looking at this machine, and grants nothing.
fn resolve_grants(
    capabilities: &CapabilitiesFile,
    requested: &Requested,
    manifest: &Path,
    resolve: bool,
) -> Result<Grants, (String, String)> {
    let bad = |entry: &String, why: String| (entry.clone(), format!("capabilities.network: {entry:?}: {why}"));
    if !resolve {
        for entry in &capabilities.network {
            host_and_port(entry).map_err(|why| bad(entry, why))?;
        }
        return Ok(Grants::default());
    }
    let mut env = Vec::new();
    for name in &capabilities.env {
        match std::env::var(name) {
            Ok(value) => env.push((name.clone(), value)),
            Err(_) => tracing::warn!(manifest = %manifest.display(), var = name, "granted environment variable is not set in the worker's environment"),
        }
    }
    let mut dirs = Vec::new();
    for (dir, written) in requested.dirs.iter().zip(&capabilities.dirs) {
        let needle = written.host.display().to_string();
        let host = dir.host.clone();
        if !host.is_dir() {
            return Err((needle, format!("capabilities.dirs: {} is not a directory", host.display())));
        }
        if dir.guest.is_empty() {
            return Err((needle, "capabilities.dirs: `guest` must name the path the plugin sees, e.g. \"/data\"".into()));
        }
        dirs.push(DirGrant { host, guest: dir.guest.clone(), mode: dir.mode });
    }
    let mut network = Vec::new();
    let mut lookup_names = Vec::new();
    for entry in &capabilities.network {
        let (host, port) = host_and_port(entry).map_err(|why| bad(entry, why))?;
        lookup_names.push(host.to_ascii_lowercase());
        let addresses = (host, port).to_socket_addrs().map_err(|error| bad(entry, format!("cannot resolve: {error}")))?;
        network.extend(addresses);
    }
    Ok(Grants {
        env,
        dirs,
        network,
        lookup_names,
        wall_clock: capabilities.wall_clock,
        random: capabilities.random,
        progress: capabilities.progress,
        send: capabilities.send,
        keyvalue: capabilities.keyvalue,
    })
}

/// `host:port` or `[v6]:port`, split.
fn host_and_port(entry: &str) -> Result<(&str, u16), String> {
    let (host, port) = entry.rsplit_once(':').ok_or("expected host:port")?;
    let port = port.parse().map_err(|_| "the port must be a number".to_string())?;
    Ok((host.trim_start_matches('[').trim_end_matches(']'), port))
}

/// Deserialises TOML `text` (read from `path`); an error names the file and
/// line. Shared with the worker's config file.
pub fn parse_toml<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, ManifestError> {
    toml::from_str(text).map_err(|error| {
        let line = error.span().map(|span| line_at(text, span.start)).unwrap_or(0);
        ManifestError { path: path.to_path_buf(), line, message: error.message().trim().to_string() }
    })
}

/// 1-based line of byte offset `at`.
fn line_at(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

/// 1-based line of `key` inside `[table]` (or its first occurrence).
fn line_of_key(text: &str, table: &str, key: &str) -> usize {
    let start = text.find(&format!("[{table}]")).unwrap_or(0);
    text[start..].find(key).map(|at| line_at(text, start + at)).unwrap_or_else(|| line_of(text, key))
}

/// 1-based line of the first occurrence of `needle` (0 if absent).
pub(super) fn line_of(text: &str, needle: &str) -> usize {
    text.find(needle).map(|at| line_at(text, at)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(Path::new("plugins/math.toml"), text)
    }

    #[test]
    fn a_grant_beyond_the_policy_is_named_at_its_line_in_capabilities() {
        let text = "[tasks.send]\nqueue = \"io\"\n\n[capabilities]\nsend = true\n";
        let error = Manifest::parse_with(Path::new("plugins/io.toml"), text, Some((&Policy::default(), Origin::Deployed))).unwrap_err();
        assert_eq!(error.to_string(), "plugins/io.toml:5: capabilities.send is beyond the worker's policy for deployed plugins");
    }

    #[test]
    fn an_unknown_key_is_named_with_file_and_line() {
        let error = parse("version = \"1\"\n\n[tasks.add]\ntme_limit = 3\n").unwrap_err();
        assert_eq!(error.line, 4);
        let text = error.to_string();
        assert!(text.starts_with("plugins/math.toml:4: unknown field `tme_limit`"), "{text}");
    }

    #[test]
    fn an_unknown_capability_is_rejected() {
        let error = parse("[capabilities]\nnetwrok = [\"a:1\"]\n").unwrap_err();
        assert_eq!(error.line, 2);
        assert!(error.message.contains("netwrok"), "{error}");
    }

    #[test]
    fn bad_values_are_named() {
        let error = parse("[tasks.add]\nrate_limit = \"10/d\"\n").unwrap_err();
        assert_eq!(error.line, 2);
        assert!(error.message.contains("[tasks.add] rate_limit"), "{error}");
        let error = parse("[capabilities]\nnetwork = [\"localhost\"]\n").unwrap_err();
        assert!(error.message.contains("expected host:port"), "{error}");
        let error = parse("[capabilities]\ndirs = [{ host = \"/no/such/dir\", guest = \"/d\" }]\n").unwrap_err();
        assert!(error.message.contains("/no/such/dir is not a directory"), "{error}");
        let error = parse("[capabilities]\ndirs = [{ host = \"/tmp\", guest = \"/d\", mode = \"rwx\" }]\n").unwrap_err();
        assert!(error.message.contains("rwx"), "{error}");
    }

    #[test]
    fn overrides_apply_over_declared_defaults() {
        let manifest = parse(
            "[defaults]\ntime_limit = 10\nmax_retries = 2\n\n[tasks.add]\ntime_limit = 0.5\nqueue = \"cpu\"\nretry_backoff = true\n",
        )
        .unwrap();
        let declared = TaskDefaults { rate_limit: Some("5/s".into()), max_retries: Some(9), ..Default::default() };
        let add = manifest.task_defaults("add", declared.clone());
        assert_eq!(add.time_limit, Some(Duration::from_millis(500)));
        assert_eq!(add.queue.as_deref(), Some("cpu"));
        assert_eq!(add.max_retries, Some(2));
        assert_eq!(add.rate_limit.as_deref(), Some("5/s"), "unset keys keep the plugin's value");
        assert_eq!(add.retry_backoff, Some(Duration::from_secs(1)));
        let mul = manifest.task_defaults("mul", declared);
        assert_eq!(mul.time_limit, Some(Duration::from_secs(10)));
        assert_eq!(mul.queue, None);
    }

    #[test]
    fn a_task_table_can_rename_the_task() {
        let manifest = parse("[tasks.add]\nname = \"auto_retry_class_task\"\n").unwrap();
        assert_eq!(manifest.served_name("add"), Some("auto_retry_class_task"));
        assert_eq!(manifest.served_name("mul"), None);
        let error = parse("[defaults]\nname = \"x\"\n").unwrap_err();
        assert_eq!(error.to_string(), "plugins/math.toml:2: [defaults] name: a served name belongs in a [tasks.<task>] table");
        let error = parse("[tasks.add]\nname = \"two words\"\n").unwrap_err();
        assert_eq!(error.line, 2);
        assert!(error.message.contains("whitespace"), "{error}");
    }

    #[test]
    fn task_tables_must_name_real_tasks() {
        let manifest = parse("[tasks.ad]\nqueue = \"cpu\"\n").unwrap();
        let error = manifest.check_tasks(["add", "mul"].into_iter()).unwrap_err();
        assert_eq!(error.line, 1);
        assert!(error.message.contains("no task \"ad\" (it has add, mul)"), "{error}");
    }

    #[test]
    fn grants_resolve_and_default_to_nothing() {
        assert!(parse("").unwrap().grants.is_empty());
        std::env::set_var("CHARD_MANIFEST_TEST_VAR", "yes");
        let manifest = parse(
            "[capabilities]\nenv = [\"CHARD_MANIFEST_TEST_VAR\", \"CHARD_MANIFEST_UNSET\"]\nnetwork = [\"127.0.0.1:6379\"]\nwall_clock = true\n",
        )
        .unwrap();
        assert_eq!(manifest.grants.env, vec![("CHARD_MANIFEST_TEST_VAR".to_string(), "yes".to_string())]);
        assert_eq!(manifest.grants.network, vec!["127.0.0.1:6379".parse().unwrap()]);
        assert!(manifest.grants.wall_clock && !manifest.grants.random);
    }
}
