//! The worker's policy: what any plugin's manifest may grant on this machine.
//!
//! A manifest says what a plugin wants; the policy says what this worker
//! allows. A plugin whose manifest or declared limits go beyond the policy
//! is refused at load, like a manifest with a typo, so a running worker
//! keeps the previous version (see `watch`).
//!
//! Decisions worth knowing:
//! - **Two allowances, by origin.** A plugin a person put into the folder
//!   (`local`) and one written there by fleet sync (`deployed`, see
//!   `origin`) are capped separately. Without a policy, local plugins may be
//!   granted anything (the operator wrote their manifests on this machine,
//!   as before), while deployed plugins get no environment, directories,
//!   network or HTTP origins at all: Redis write access must not be a way
//!   onto the machine.
//!   Nor may they send tasks (a way to reach plugins granted more) or keep
//!   a key-value store (data that outlives the job) unless the policy says
//!   so; progress updates only touch the job's own state, like its result.
//! - **Ceilings on limits.** No task may ask for more memory than
//!   `max_memory_limit_mb` (by default the worker's `--memory-limit`) or a
//!   longer time limit than `max_time_limit` (no ceiling by default). A task
//!   that asks for "no time limit" exceeds any ceiling.
//! - **Checked as written, before anything is resolved.** Grants are
//!   compared with the policy before the manifest's host names are looked
//!   up or its environment read, so a refused manifest costs nothing.
//!   Directories are compared after resolving symlinks and `..`, so a grant
//!   cannot climb out of an allowed directory.
//! - **One check per grant kind, all in [`Allowance::check`].** A new kind
//!   of grant is one field in [`Allowance`] and one block there.
//! - **Strict, like manifests.** Unknown keys are errors naming file and line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::http::HttpOrigin;
use super::manifest::{line_of, parse_toml, DirMode, ManifestError, Requested};
use super::origin::Origin;
use super::plugin::TaskInfo;

/// The policy in force on a worker. `Default` is the policy of a worker
/// given none: local plugins unrestricted, deployed ones capped to nothing
/// but the clock, randomness and progress, no ceilings on limits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    /// Largest memory limit a task may declare, in bytes.
    pub max_memory_bytes: Option<u64>,
    /// Longest time limit a task may declare.
    pub max_time_limit: Option<Duration>,
    /// What a hand-installed plugin may be granted; `None`: anything.
    pub local: Option<Allowance>,
    /// What a plugin written by fleet sync may be granted.
    pub deployed: Allowance,
}

/// What a manifest may grant. `Default`: no environment, no directories, no
/// network, no sending tasks, no key-value store; the wall clock, real
/// randomness and progress updates are allowed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allowance {
    /// Environment variable names; a trailing `*` matches a prefix (`APP_*`).
    #[serde(default)]
    pub env: Vec<String>,
    /// Host directories a grant may name, or a directory inside them.
    #[serde(default)]
    pub dirs: Vec<AllowedDir>,
    /// `host:port` destinations as manifests write them; `host:*` allows
    /// any port of that host.
    #[serde(default)]
    pub network: Vec<String>,
    /// HTTP origins as manifests write them (`https://*.example.org` allows
    /// any subdomain, and grants of narrower patterns).
    #[serde(default)]
    pub http: Vec<String>,
    #[serde(default = "yes")]
    pub wall_clock: bool,
    #[serde(default = "yes")]
    pub random: bool,
    /// `update-state` on the plugin's own jobs: no more than a result does.
    #[serde(default = "yes")]
    pub progress: bool,
    /// Sending and replacing tasks: work for every task on the queues,
    /// including plugins granted more than this one.
    #[serde(default)]
    pub send: bool,
    /// The plugin's own key-value store: data that outlives the job.
    #[serde(default)]
    pub keyvalue: bool,
}

impl Default for Allowance {
    fn default() -> Self {
        Self {
            env: Vec::new(),
            dirs: Vec::new(),
            network: Vec::new(),
            http: Vec::new(),
            wall_clock: true,
            random: true,
            progress: true,
            send: false,
            keyvalue: false,
        }
    }
}

fn yes() -> bool {
    true
}

/// A host directory grants may name, and the most they may do there.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowedDir {
    pub host: PathBuf,
    /// `ro` (default): grants of it must be read-only; `rw`: either.
    #[serde(default)]
    pub mode: DirMode,
}

/// The policy as a file writes it: `--policy FILE` at the top level, or a
/// `[policy]` table of the worker's config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    max_memory_limit_mb: Option<u64>,
    max_time_limit: Option<f64>,
    local: Option<Allowance>,
    deployed: Option<Allowance>,
}

/// Why a plugin was refused; the caller adds which plugin.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub message: String,
    /// Text to find the offending line of a manifest by.
    pub needle: String,
}

impl Refusal {
    fn new(message: String, needle: String) -> Self {
        Self { message, needle }
    }
}

impl Policy {
    /// Reads a `--policy` file; `worker_memory_bytes` is the ceiling unless
    /// the file sets its own.
    pub fn load(path: &Path, worker_memory_bytes: u64) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| ManifestError { path: path.to_path_buf(), line: 0, message: format!("cannot read: {error}") })?;
        let file: PolicyFile = parse_toml(path, &text)?;
        Self::from_file(file, path, &text, worker_memory_bytes)
    }

    /// Checks a parsed policy (from `path`, whose `text` errors point into).
    pub fn from_file(file: PolicyFile, path: &Path, text: &str, worker_memory_bytes: u64) -> Result<Self, ManifestError> {
        let error = |needle: &str, message: String| ManifestError { path: path.to_path_buf(), line: line_of(text, needle), message };
        if file.max_memory_limit_mb == Some(0) || file.max_memory_limit_mb.is_some_and(|mb| mb > 65536) {
            return Err(error("max_memory_limit_mb", "max_memory_limit_mb: must be between 1 and 65536 MiB".into()));
        }
        if file.max_time_limit.is_some_and(|seconds| !(seconds > 0.0 && seconds.is_finite())) {
            return Err(error("max_time_limit", "max_time_limit: must be a number of seconds above 0".into()));
        }
        for allowance in file.local.iter().chain(&file.deployed) {
            for dir in &allowance.dirs {
                if !dir.host.is_absolute() {
                    return Err(error(&dir.host.display().to_string(), format!("dirs: {} must be an absolute path", dir.host.display())));
                }
            }
            for entry in &allowance.network {
                if !entry.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && (port == "*" || port.parse::<u16>().is_ok())) {
                    return Err(error(entry, format!("network: {entry:?}: expected host:port or host:*")));
                }
            }
            for entry in &allowance.http {
                HttpOrigin::parse(entry).map_err(|why| error(entry, format!("http: {entry:?}: {why}")))?;
            }
        }
        Ok(Self {
            max_memory_bytes: Some(file.max_memory_limit_mb.map(|mb| mb << 20).unwrap_or(worker_memory_bytes)),
            max_time_limit: file.max_time_limit.map(Duration::from_secs_f64),
            local: file.local,
            deployed: file.deployed.unwrap_or_default(),
        })
    }

    /// The policy of a worker without a policy file: only the memory ceiling.
    pub fn for_worker(worker_memory_bytes: u64) -> Self {
        Self { max_memory_bytes: Some(worker_memory_bytes), ..Self::default() }
    }

    /// What a plugin of `origin` may be granted; `None`: anything.
    pub fn allowance(&self, origin: Origin) -> Option<&Allowance> {
        match origin {
            Origin::Local => self.local.as_ref(),
            Origin::Deployed => Some(&self.deployed),
        }
    }

    /// Checks every task's declared limits against the ceilings.
    pub fn check_limits(&self, tasks: &[TaskInfo]) -> Result<(), Refusal> {
        for task in tasks {
            if let (Some(ceiling), Some(mb)) = (self.max_memory_bytes, task.defaults.memory_limit_mb) {
                if u64::from(mb) << 20 > ceiling {
                    return Err(Refusal::new(
                        format!(
                            "task {} asks for memory_limit {mb} MiB, above the worker's ceiling of {} MiB (max_memory_limit_mb in the policy)",
                            task.name,
                            ceiling >> 20
                        ),
                        "memory_limit_mb".into(),
                    ));
                }
            }
            if let (Some(ceiling), Some(limit)) = (self.max_time_limit, task.defaults.time_limit) {
                if limit.is_zero() || limit > ceiling {
                    let asked = if limit.is_zero() { "no time limit".to_string() } else { format!("time_limit {} s", limit.as_secs_f64()) };
                    return Err(Refusal::new(
                        format!(
                            "task {} asks for {asked}, above the worker's ceiling of {} s (max_time_limit in the policy)",
                            task.name,
                            ceiling.as_secs_f64()
                        ),
                        "time_limit".into(),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Allowance {
    /// Checks what a manifest asks for (`requested`, with directories
    /// already made absolute) against this allowance; `origin` only words
    /// the refusal.
    pub fn check(&self, requested: &Requested, origin: Origin) -> Result<(), Refusal> {
        let refuse = |what: String, needle: String| {
            Err(Refusal::new(format!("{what} is beyond the worker's policy for {origin} plugins"), needle))
        };
        for name in &requested.env {
            if !self.env.iter().any(|allowed| name_matches(allowed, name)) {
                return refuse(format!("capabilities.env {name:?}"), format!("{name:?}"));
            }
        }
        for dir in &requested.dirs {
            let host = canonical(&dir.host);
            let permitted = self.dirs.iter().any(|allowed| {
                host.starts_with(canonical(&allowed.host)) && (dir.mode == DirMode::ReadOnly || allowed.mode == DirMode::ReadWrite)
            });
            if !permitted {
                let mode = if dir.mode == DirMode::ReadOnly { "ro" } else { "rw" };
                let needle = dir.host.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_else(|| "\"/\"".into());
                return refuse(format!("capabilities.dirs {} ({mode})", dir.host.display()), needle);
            }
        }
        for entry in &requested.network {
            if !self.network.iter().any(|allowed| destination_matches(allowed, entry)) {
                return refuse(format!("capabilities.network {entry:?}"), format!("{entry:?}"));
            }
        }
        for entry in &requested.http {
            // Unparsable entries are the manifest check's to report.
            let Ok(origin) = HttpOrigin::parse(entry) else { continue };
            let allowed = self.http.iter().filter_map(|allowed| HttpOrigin::parse(allowed).ok()).any(|allowed| allowed.covers(&origin));
            if !allowed {
                return refuse(format!("capabilities.http {entry:?}"), format!("{entry:?}"));
            }
        }
        if requested.wall_clock && !self.wall_clock {
            return refuse("capabilities.wall_clock".into(), "wall_clock".into());
        }
        if requested.random && !self.random {
            return refuse("capabilities.random".into(), "random".into());
        }
        if requested.progress && !self.progress {
            return refuse("capabilities.progress".into(), "progress".into());
        }
        if requested.send && !self.send {
            return refuse("capabilities.send".into(), "send".into());
        }
        if requested.keyvalue && !self.keyvalue {
            return refuse("capabilities.keyvalue".into(), "keyvalue".into());
        }
        Ok(())
    }
}

/// `APP_*` matches `APP_TOKEN`; anything else matches itself.
fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// `host:port` or `host:*` against a manifest's `host:port`; host names
/// compare without case.
fn destination_matches(pattern: &str, entry: &str) -> bool {
    let (Some((allowed_host, allowed_port)), Some((host, port))) = (pattern.rsplit_once(':'), entry.rsplit_once(':')) else {
        return false;
    };
    allowed_host.eq_ignore_ascii_case(host) && (allowed_port == "*" || allowed_port == port)
}

/// The path with symlinks and `..` resolved; as given if it does not exist
/// (then it can only match a policy entry spelled the same way, and the
/// manifest check refuses a missing directory anyway).
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::DirGrant;

    fn policy(text: &str) -> Result<Policy, ManifestError> {
        let path = Path::new("policy.toml");
        Policy::from_file(parse_toml(path, text)?, path, text, 128 << 20)
    }

    fn dir(host: &Path, mode: DirMode) -> DirGrant {
        DirGrant { host: host.to_path_buf(), guest: "/d".into(), mode }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named_with_their_line() {
        let error = policy("max_memory_limit_mb = 256\n[local]\nnetwrok = []\n").unwrap_err();
        assert_eq!(error.line, 3, "{error}");
        assert!(error.to_string().starts_with("policy.toml:3: unknown field `netwrok`"), "{error}");
        let error = policy("[deployed]\ndirs = [{ host = \"srv\" }]\n").unwrap_err();
        assert_eq!((error.line, error.message.as_str()), (2, "dirs: srv must be an absolute path"));
        let error = policy("max_time_limit = -1\n").unwrap_err();
        assert_eq!(error.line, 1);
    }

    #[test]
    fn without_a_policy_deployed_plugins_get_no_env_dirs_or_network() {
        let policy = Policy::default();
        assert!(policy.allowance(Origin::Local).is_none(), "local plugins: anything");
        let deployed = policy.allowance(Origin::Deployed).unwrap();
        let asks = |requested: Requested| deployed.check(&requested, Origin::Deployed).map_err(|refusal| refusal.message);
        assert_eq!(asks(Requested { wall_clock: true, random: true, ..Default::default() }), Ok(()));
        assert_eq!(
            asks(Requested { dirs: vec![dir(Path::new("/"), DirMode::ReadWrite)], ..Default::default() }),
            Err("capabilities.dirs / (rw) is beyond the worker's policy for deployed plugins".to_string())
        );
        assert!(asks(Requested { env: vec!["HOME".into()], ..Default::default() }).is_err());
        assert!(asks(Requested { network: vec!["127.0.0.1:6379".into()], ..Default::default() }).is_err());
        assert_eq!(asks(Requested { progress: true, ..Default::default() }), Ok(()));
        assert_eq!(
            asks(Requested { keyvalue: true, ..Default::default() }),
            Err("capabilities.keyvalue is beyond the worker's policy for deployed plugins".to_string())
        );
        assert_eq!(
            asks(Requested { send: true, ..Default::default() }),
            Err("capabilities.send is beyond the worker's policy for deployed plugins".to_string())
        );
        assert_eq!(
            asks(Requested { http: vec!["https://api.example.com".into()], ..Default::default() }),
            Err("capabilities.http \"https://api.example.com\" is beyond the worker's policy for deployed plugins".to_string())
        );
    }

    #[test]
    fn http_grants_must_be_covered_by_the_policy() {
        let deployed = policy("[deployed]\nhttp = [\"https://*.example.org\", \"http://127.0.0.1:8080\"]\n").unwrap().deployed;
        let check = |origin: &str| deployed.check(&Requested { http: vec![origin.into()], ..Default::default() }, Origin::Deployed).is_ok();
        assert!(check("https://api.example.org"));
        assert!(check("https://*.eu.example.org"));
        assert!(check("http://127.0.0.1:8080"));
        assert!(!check("https://example.org"));
        assert!(!check("http://api.example.org"));
        assert!(!check("http://127.0.0.1:8081"));
        let error = policy("[local]\nhttp = [\"ftp://x\"]\n").unwrap_err();
        assert_eq!(error.line, 2, "{error}");
    }

    #[test]
    fn a_table_allows_send_keyvalue_or_progress_only_as_it_says() {
        let local = policy("[local]\nsend = true\nprogress = false\n").unwrap().local.unwrap();
        let check = |requested: Requested| local.check(&requested, Origin::Local).map_err(|refusal| refusal.needle);
        assert_eq!(check(Requested { send: true, ..Default::default() }), Ok(()));
        assert_eq!(check(Requested { keyvalue: true, ..Default::default() }), Err("keyvalue".to_string()));
        assert_eq!(check(Requested { progress: true, ..Default::default() }), Err("progress".to_string()));
    }

    #[test]
    fn grants_must_fit_inside_what_the_policy_allows() {
        let root = tempfile::tempdir().unwrap();
        let reports = root.path().join("reports");
        std::fs::create_dir_all(reports.join("2026")).unwrap();
        let text = format!(
            "[local]\nenv = [\"APP_*\", \"REGION\"]\nnetwork = [\"api.example.com:443\", \"db:*\"]\nwall_clock = false\n\
             dirs = [{{ host = \"{}\", mode = \"ro\" }}]\n",
            reports.display()
        );
        let local = policy(&text).unwrap().local.unwrap();
        let check = |requested: Requested| local.check(&requested, Origin::Local).is_ok();
        assert!(check(Requested { env: vec!["APP_TOKEN".into(), "REGION".into()], ..Default::default() }));
        assert!(!check(Requested { env: vec!["REGION2".into()], ..Default::default() }));
        assert!(check(Requested { network: vec!["API.example.com:443".into(), "db:5432".into()], ..Default::default() }));
        assert!(!check(Requested { network: vec!["api.example.com:80".into()], ..Default::default() }));
        assert!(check(Requested { dirs: vec![dir(&reports.join("2026"), DirMode::ReadOnly)], ..Default::default() }));
        assert!(!check(Requested { dirs: vec![dir(&reports, DirMode::ReadWrite)], ..Default::default() }), "ro only");
        assert!(!check(Requested { dirs: vec![dir(&reports.join("../.."), DirMode::ReadOnly)], ..Default::default() }));
        assert!(!check(Requested { wall_clock: true, ..Default::default() }));
    }

    #[test]
    fn limits_above_the_ceilings_are_refused() {
        let policy = policy("max_time_limit = 60\n").unwrap();
        assert_eq!(policy.max_memory_bytes, Some(128 << 20), "the worker's memory limit by default");
        let task = |memory: Option<u32>, time: Option<f64>| TaskInfo {
            name: "add".into(),
            served: "math.add".into(),
            params: vec![],
            signature: None,
            doc: None,
            defaults: crate::runtime::TaskDefaults {
                memory_limit_mb: memory,
                time_limit: time.map(Duration::from_secs_f64),
                ..Default::default()
            },
        };
        assert!(policy.check_limits(&[task(Some(128), Some(60.0))]).is_ok());
        let error = policy.check_limits(&[task(Some(512), None)]).unwrap_err();
        assert!(error.message.starts_with("task add asks for memory_limit 512 MiB, above the worker's ceiling of 128 MiB"), "{error}");
        assert!(policy.check_limits(&[task(None, Some(61.0))]).is_err());
        assert!(policy.check_limits(&[task(None, Some(0.0))]).unwrap_err().message.contains("no time limit"));
    }
}
