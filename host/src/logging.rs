//! tracing-subscriber setup: text or JSON lines on stderr, level from `-v`
//! unless `RUST_LOG` says otherwise.

use tracing_subscriber::EnvFilter;

use crate::config::{GlobalConfig, LogFormat};

pub fn init(config: &GlobalConfig) {
    let default = match config.verbosity {
        0 => "info,wasmtime=warn,cranelift=warn",
        1 => "debug,wasmtime=info,cranelift=warn",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // `try_init`: a second call (tests embedding the library) is harmless.
    let _ = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
