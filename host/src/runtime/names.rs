//! The names tasks are served under.
//!
//! Celery users call tasks by the names their Python code gave them: module
//! paths (`myproject.billing.tasks.charge`) or a bare `name=` without a dot
//! (`auto_retry_class_task`). A Chard plugin is a file, so the default stays
//! `<plugin>.<task>` (`math.wasm` serves `math.add`), and two ways override it:
//!
//! - **The plugin declares a dotted name** (`#[task(name = "a.b.c")]` in Rust,
//!   the same option in the other SDKs): served as it is, as the WIT's
//!   `task-info.name` says. A dotless declared name keeps the plugin prefix,
//!   so existing plugins keep their names.
//! - **The manifest names it** (`[tasks.charge] name = "charge_card"`): served
//!   exactly as written, dot or not. The operator has the last word, as for
//!   every other task setting; this is also the route for every language.
//!
//! The worker calls the plugin's `run` with the declared name, never the
//! served one: renaming a task in the manifest needs no rebuild.
//!
//! Served names are unique across a worker's plugins. The registry refuses a
//! plugin that would serve a name another plugin already serves (the one
//! loaded first keeps it), because a Celery message names only the task, and
//! two plugins answering one name would run whichever happened to win.

/// The name `declared` (as the plugin listed it) is served under in
/// `plugin`, given the manifest's `name` for it, if any.
pub fn served_name(plugin: &str, declared: &str, manifest_name: Option<&str>) -> String {
    match manifest_name {
        Some(name) => name.to_string(),
        None if declared.contains('.') => declared.to_string(),
        None => format!("{plugin}.{declared}"),
    }
}

/// Why a name cannot be served: empty, or with whitespace or control
/// characters (Celery would accept them, but no `host` command line or log
/// line could show them unambiguously).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a task name cannot be empty".into());
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("task name {name:?} has whitespace or control characters"));
    }
    if name.starts_with('.') || name.ends_with('.') {
        return Err(format!("task name {name:?} cannot start or end with a dot"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_wins_then_a_dotted_declared_name_then_the_plugin_prefix() {
        assert_eq!(served_name("math", "add", None), "math.add");
        assert_eq!(served_name("billing", "myproject.billing.tasks.charge", None), "myproject.billing.tasks.charge");
        assert_eq!(served_name("math", "add", Some("auto_retry_class_task")), "auto_retry_class_task");
        assert_eq!(served_name("math", "a.b", Some("c.d")), "c.d");
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(check_name("auto_retry_class_task").is_ok());
        assert!(check_name("myproject.billing.tasks.charge").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("two words").is_err());
        assert!(check_name(".add").is_err());
    }
}
