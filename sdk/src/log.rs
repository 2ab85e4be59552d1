//! Logging through the worker: lines end up in the worker's own log output,
//! tagged with the plugin, task name and task id.

pub use crate::bindings::chard::task::host::Level;

/// Log `message` with `fields` (key/value pairs) at `level`.
pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(String, String)> =
        fields.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect();
    crate::bindings::chard::task::host::log(level, message, &fields);
}
