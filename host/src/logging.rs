//! tracing-subscriber setup: text or JSON lines on stderr, level from `-v`
//! unless `RUST_LOG` says otherwise.
//!
//! Colour only when stderr is a terminal and `NO_COLOR` (no-color.org) is
//! unset or empty: logs written to a file, a pipe or journald stay plain
//! text, without ANSI escape codes.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::config::{GlobalConfig, LogFormat};

pub fn init(config: &GlobalConfig) {
    let default = match config.verbosity {
        0 => "info,wasmtime=warn,cranelift=warn",
        1 => "debug,wasmtime=info,cranelift=warn",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour_on_stderr());
    // `try_init`: a second call (tests embedding the library) is harmless.
    let _ = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// True when stderr is a terminal and the user did not ask for `NO_COLOR`.
pub fn colour_on_stderr() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    !no_color && std::io::stderr().is_terminal()
}
