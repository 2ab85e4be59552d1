//! `host new` for every language, as a user outside the repository would:
//! create the project in a temporary folder, `make`, `host call` the result.
//!
//! The guest toolchains are the ones `make toolchains` installed for this
//! checkout, linked where the project's `make toolchain` would install them,
//! so the test downloads nothing. The Rust project builds from scratch (its
//! own target folder, the versions of its copied Cargo.lock), once.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::host;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap()
}

/// `host new LANGUAGE demo` in a fresh temporary folder; returns the folder
/// (kept alive) and the project path.
fn new_project(language: &str) -> (tempfile::TempDir, PathBuf) {
    let outside = tempfile::tempdir().unwrap();
    let project = outside.path().join("demo");
    let run = host(&["new", language, "demo", "--dir", project.to_str().unwrap()]);
    assert!(run.ok().starts_with(&format!("created demo, a {language} plugin, in {}", project.display())), "{}", run.stdout);
    assert!(run.stdout.contains("make "), "says what to do next: {}", run.stdout);
    assert!(project.join("demo.toml").is_file() && project.join("Makefile").is_file());
    (outside, project)
}

/// Links an installed toolchain of this checkout into the project's SDK copy.
fn link_toolchain(project: &Path, installed: &str, at: &str) {
    let source = repo().join(installed);
    assert!(source.exists(), "{} missing: run `make toolchains`", source.display());
    std::os::unix::fs::symlink(source, project.join("chard-sdk").join(at)).unwrap();
}

/// `make` in the project, with no trace of this repository's cargo settings.
fn make(project: &Path) {
    let output = Command::new("make")
        .current_dir(project)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_BUILD_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .output()
        .expect("running make");
    assert!(
        output.status.success(),
        "make failed in {}:\n{}\n{}",
        project.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The built plugin answers both template tasks.
fn call_both_tasks(project: &Path) {
    let wasm = project.join("demo.wasm");
    assert!(wasm.is_file(), "make left no demo.wasm in {}", project.display());
    assert_eq!(host(&["call", wasm.to_str().unwrap(), "add", "[2, 3]"]).ok(), "5");
    assert_eq!(host(&["call", wasm.to_str().unwrap(), "demo.hello", r#"["Ada"]"#]).ok(), r#""Hello, Ada!""#);
    let tasks = host(&["tasks", "--plugins", project.to_str().unwrap()]);
    assert!(tasks.ok().contains("demo.add(x, y)"), "{}", tasks.stdout);
}

#[test]
fn rust_project_builds_outside_the_repository() {
    let (_outside, project) = new_project("rust");
    make(&project);
    call_both_tasks(&project);
}

#[test]
fn python_project_builds_outside_the_repository() {
    let (_outside, project) = new_project("python");
    link_toolchain(&project, ".venv-guest", ".venv-guest");
    make(&project);
    call_both_tasks(&project);
}

#[test]
fn js_project_builds_outside_the_repository() {
    let (_outside, project) = new_project("js");
    link_toolchain(&project, "sdk/js/node_modules", "sdk/js/node_modules");
    make(&project);
    call_both_tasks(&project);
}

#[test]
fn c_project_builds_outside_the_repository() {
    let (_outside, project) = new_project("c");
    std::fs::create_dir_all(project.join("chard-sdk/sdk/js")).unwrap();
    link_toolchain(&project, "sdk/js/node_modules", "sdk/js/node_modules");
    make(&project);
    call_both_tasks(&project);
}

#[test]
fn a_missing_toolchain_says_what_to_run() {
    let (_outside, project) = new_project("python");
    let output = Command::new("make").current_dir(&project).output().unwrap();
    assert!(!output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).lines().next().unwrap_or_default(),
        "error: componentize-py is missing; install it with: make toolchain"
    );
}

#[test]
fn names_and_folders_are_checked() {
    assert_eq!(
        host(&["new", "rust", "My-Plugin"]).error_line(),
        "error: plugin name \"My-Plugin\" must start with a lowercase letter and hold only a-z, 0-9 and _ (it names the .wasm, the tasks and, in Python, a module)"
    );
    let taken = tempfile::tempdir().unwrap();
    std::fs::write(taken.path().join("notes.txt"), "mine").unwrap();
    assert_eq!(
        host(&["new", "js", "demo", "--dir", taken.path().to_str().unwrap()]).error_line(),
        format!("error: {} already exists and is not empty; choose another --dir or remove it", taken.path().display())
    );
}

#[test]
fn sdk_export_writes_every_language_and_the_installer() {
    let dir = tempfile::tempdir().unwrap();
    let run = host(&["sdk", "export", dir.path().to_str().unwrap()]);
    assert!(run.ok().starts_with("wrote the Chard SDK ("), "{}", run.stdout);
    let repo_wit = std::fs::read_to_string(repo().join("wit/chard.wit")).unwrap();
    assert_eq!(std::fs::read_to_string(dir.path().join("wit/chard.wit")).unwrap(), repo_wit, "the WIT this host was built with");
    for file in ["sdk/src/lib.rs", "sdk/python/chard/__init__.py", "sdk/js/chard.js", "sdk/c/chard.h", "sdk/c/generated/plugin.c"] {
        assert!(dir.path().join(file).is_file(), "{file}");
    }
    use std::os::unix::fs::PermissionsExt as _;
    for script in ["tools/install-guest-toolchains.sh", "sdk/python/build-plugin.sh", "sdk/js/build-plugin.sh", "sdk/c/build-plugin.sh"] {
        let mode = std::fs::metadata(dir.path().join(script)).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "{script} is executable");
    }
    assert!(!dir.path().join("sdk/js/node_modules").exists() && !dir.path().join("sdk/python/tests").exists());
}
