//! Embeds what `host new` and `host sdk export` write: the WIT package, the
//! guest SDKs, the toolchain installer and the project templates.
//!
//! Walking the folders here (instead of listing files in the code) means a
//! change to `wit/` or `sdk/` reaches the next `host` build with no edit to
//! the scaffolding code: a user with only the binary always gets the SDK
//! this worker was built and tested with. Generated and installed things
//! (`node_modules`, `__pycache__`, test folders, dotfiles) stay out.
//!
//! The root `Cargo.toml`'s `[workspace.package]`, `[workspace.dependencies]`
//! and `[profile.plugin]` are embedded as text too: the SDK crates inherit
//! their versions and dependencies from a workspace, so a generated Rust
//! project declares the same workspace keys (with paths into its own copy
//! of the SDK), and builds its plugin with the same profile as Chard's own.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Folders and files carried as the SDK, relative to the repository root.
const SDK_ROOTS: [&str; 3] = ["wit", "sdk", "tools/install-guest-toolchains.sh"];
/// Names never embedded.
const SKIP: [&str; 5] = ["node_modules", "test", "tests", "__pycache__", "target"];

fn main() {
    let host_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = host_dir.parent().unwrap().to_path_buf();
    let mut sdk = Vec::new();
    for entry in SDK_ROOTS {
        collect(&root, &root.join(entry), &mut sdk);
    }
    let mut templates = Vec::new();
    collect(&host_dir.join("templates"), &host_dir.join("templates"), &mut templates);

    let mut out = String::new();
    out.push_str("/// SDK files: (path relative to the SDK root, contents).\npub static SDK_FILES: &[(&str, &[u8])] = &[\n");
    for (relative, absolute) in &sdk {
        writeln!(out, "    ({relative:?}, include_bytes!({absolute:?})),").unwrap();
    }
    out.push_str("];\n/// Project templates: (path under `templates/`, text).\npub static TEMPLATE_FILES: &[(&str, &str)] = &[\n");
    for (relative, absolute) in &templates {
        writeln!(out, "    ({relative:?}, include_str!({absolute:?})),").unwrap();
    }
    out.push_str("];\n");
    let cargo_toml = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let sections: String = ["[workspace.package]", "[workspace.dependencies]", "[profile.plugin]"]
        .iter()
        .map(|header| section(&cargo_toml, header))
        .collect::<Vec<_>>()
        .join("\n");
    writeln!(out, "/// The root workspace's package keys, dependencies and plugin profile.\npub const WORKSPACE_SECTIONS: &str = {sections:?};").unwrap();
    writeln!(out, "/// The root workspace's lock file: a new Rust project starts from the versions Chard was tested with.\npub const CARGO_LOCK: &str = include_str!({:?});", root.join("Cargo.lock").display().to_string()).unwrap();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(out_dir.join("embedded.rs"), out).unwrap();

    for watched in ["wit", "sdk/src", "sdk/macros", "sdk/python", "sdk/c", "sdk/Cargo.toml", "Cargo.toml", "Cargo.lock", "tools/install-guest-toolchains.sh"] {
        println!("cargo::rerun-if-changed={}", root.join(watched).display());
    }
    // `sdk/js` holds node_modules: watch its files one by one, not the folder.
    for (relative, absolute) in &sdk {
        if relative.starts_with("sdk/js/") {
            println!("cargo::rerun-if-changed={absolute}");
        }
    }
    println!("cargo::rerun-if-changed={}", host_dir.join("templates").display());
}

/// Every file under `path` (or `path` itself), as (relative to `base`, absolute).
fn collect(base: &Path, path: &Path, files: &mut Vec<(String, String)>) {
    let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
    if SKIP.contains(&name) || name.starts_with('.') || name.ends_with(".pyc") {
        return;
    }
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path).unwrap().map(|entry| entry.unwrap().path()).collect();
        entries.sort();
        for entry in entries {
            collect(base, &entry, files);
        }
    } else if path.is_file() {
        let relative = path.strip_prefix(base).unwrap().to_string_lossy().into_owned();
        files.push((relative, path.display().to_string()));
    }
}

/// The text of one `[header]` section of a TOML file, header included, up
/// to the next header.
fn section(text: &str, header: &str) -> String {
    let mut lines = text.lines().skip_while(|line| line.trim() != header);
    let Some(first) = lines.next() else { return String::new() };
    let body: Vec<&str> = lines.take_while(|line| !line.trim_start().starts_with('[')).collect();
    format!("{first}\n{}\n", body.join("\n").trim_end())
}
