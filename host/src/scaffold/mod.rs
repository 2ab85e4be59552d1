//! `host new` and `host sdk export`: plugin projects that build outside a
//! Chard checkout.
//!
//! A user may have nothing but the `host` binary and a language toolchain,
//! so the SDK travels inside the binary (`build.rs` embeds `wit/`, `sdk/`
//! and the toolchain installer) and a new project gets its own copy in
//! `chard-sdk/`, laid out like the repository (`wit/`, `sdk/<language>/`,
//! `tools/`). That layout lets the repository's own build scripts run
//! unchanged from the copy: they find the WIT, the SDK and the toolchains
//! (`.venv-guest`, `sdk/js/node_modules`) relative to themselves, and the
//! project's `make toolchain` installs those with the same installer.
//!
//! Every language builds with the same command, `make`, which leaves
//! `<name>.wasm` in the project folder beside its manifest `<name>.toml`.
//!
//! Files of the SDK copy get a fixed old modification time (1980, as
//! reproducible archives do): the build scripts compare times to decide
//! whether a plugin is up to date and whether installed tools are stale,
//! and a copy written "now" would look newer than everything.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

/// The languages `host new` writes projects for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Rust,
    Python,
    Js,
    C,
}

impl Language {
    fn template_dir(self) -> &'static str {
        match self {
            Self::Rust => "rust",
            Self::Python => "python",
            Self::Js => "js",
            Self::C => "c",
        }
    }

    /// The parts of the SDK a project in this language builds with.
    fn sdk_parts(self) -> &'static [&'static str] {
        match self {
            // sdk/wit: the `http-client` world `chard_sdk::http` binds.
            Self::Rust => &["wit/", "sdk/Cargo.toml", "sdk/src/", "sdk/macros/", "sdk/wit/"],
            // sdk/wit: the guest world with wasi:http, for `--http` builds.
            Self::Python => &["wit/", "sdk/wit/", "sdk/python/", "tools/"],
            Self::Js => &["wit/", "sdk/js/", "tools/"],
            // jco, which turns the C core module into a component, is an npm
            // package pinned by sdk/js's lock file.
            Self::C => &["wit/", "sdk/wit/", "sdk/c/", "sdk/js/package.json", "sdk/js/package-lock.json", "tools/"],
        }
    }

    /// What `make toolchain` does, if the language needs it.
    fn toolchain_note(self) -> Option<&'static str> {
        match self {
            Self::Rust => None,
            Self::Python => Some("componentize-py from PyPI, into chard-sdk/.venv-guest"),
            Self::Js => Some("componentize-js from npm, into chard-sdk/sdk/js/node_modules"),
            Self::C => Some("clang-14 and wasi-libc with apt-get, and jco from npm"),
        }
    }
}

/// Why a project or an export could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("plugin name {0:?} must start with a lowercase letter and hold only a-z, 0-9 and _ (it names the .wasm, the tasks and, in Python, a module)")]
    BadName(String),
    #[error("{0} already exists and is not empty; choose another --dir or remove it")]
    NotEmpty(PathBuf),
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// Writes a new plugin project for `language` named `name` into `dir`.
pub fn new_project(language: Language, name: &str, dir: &Path) -> Result<(), ScaffoldError> {
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        return Err(ScaffoldError::BadName(name.to_string()));
    }
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(ScaffoldError::NotEmpty(dir.to_path_buf()));
    }
    let fill = |text: &str| text.replace("{{name}}", name).replace("{{workspace}}", &rust_workspace());
    for (path, text) in embedded::TEMPLATE_FILES {
        let target = match path.split_once('/') {
            Some(("common", "manifest.toml")) => PathBuf::from(format!("{name}.toml")),
            Some(("common", "gitignore")) => PathBuf::from(".gitignore"),
            Some((language_dir, rest)) if language_dir == language.template_dir() => {
                PathBuf::from(rest.replace("NAME", name))
            }
            _ => continue,
        };
        write(&dir.join(target), fill(text).as_bytes(), None)?;
    }
    if language == Language::Rust {
        write(&dir.join("Cargo.lock"), embedded::CARGO_LOCK.as_bytes(), None)?;
    }
    export_parts(&dir.join("chard-sdk"), language.sdk_parts())
}

/// Writes the whole SDK (every language, the WIT, the toolchain installer)
/// into `dir`, laid out like the repository.
pub fn export_sdk(dir: &Path) -> Result<usize, ScaffoldError> {
    export_parts(dir, &[""])?;
    Ok(embedded::SDK_FILES.len())
}

/// What to tell the user after `host new`.
pub fn next_steps(language: Language, name: &str, dir: &Path) -> String {
    let mut steps = vec![(format!("cd {}", dir.display()), String::new())];
    if let Some(note) = language.toolchain_note() {
        steps.push(("make toolchain".to_string(), format!("once: {note}")));
    }
    steps.push(("make".to_string(), format!("builds {name}.wasm")));
    steps.push((format!("host call {name}.wasm add '[2, 3]'"), "prints 5".to_string()));
    steps.push(("host run --plugins . --broker redis://127.0.0.1:6379/0".to_string(), format!("serves {name}.add, {name}.hello")));
    let width = steps.iter().map(|(command, _)| command.len()).max().unwrap_or(0);
    let mut text = format!("created {name}, a {} plugin, in {}\n\nnext:\n", language.template_dir(), dir.display());
    for (command, comment) in steps {
        if comment.is_empty() {
            text.push_str(&format!("  {command}\n"));
        } else {
            text.push_str(&format!("  {command:width$}  # {comment}\n"));
        }
    }
    text
}

fn export_parts(dir: &Path, parts: &[&str]) -> Result<(), ScaffoldError> {
    // 1980-01-01, as in reproducible archives (see the module doc).
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(315_532_800);
    for (path, bytes) in embedded::SDK_FILES {
        if parts.iter().any(|part| path.starts_with(part)) {
            write(&dir.join(path), bytes, Some(old))?;
        }
    }
    Ok(())
}

/// The root workspace's keys with the SDK paths pointing into `chard-sdk/`.
fn rust_workspace() -> String {
    embedded::WORKSPACE_SECTIONS.replace("path = \"", "path = \"chard-sdk/")
}

fn write(path: &Path, bytes: &[u8], modified: Option<SystemTime>) -> Result<(), ScaffoldError> {
    let error = |source| ScaffoldError::Write { path: path.to_path_buf(), source };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(error)?;
    }
    std::fs::write(path, bytes).map_err(error)?;
    let executable = path.extension().is_some_and(|ext| ext == "sh");
    if executable || modified.is_some() {
        let file = std::fs::File::options().write(true).open(path).map_err(error)?;
        if executable {
            use std::os::unix::fs::PermissionsExt as _;
            file.set_permissions(std::fs::Permissions::from_mode(0o755)).map_err(error)?;
        }
        if let Some(time) = modified {
            file.set_modified(time).map_err(error)?;
        }
    }
    Ok(())
}
