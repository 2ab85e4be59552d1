//! The `host` binary: parse flags, build the config, run the command, and
//! turn any error into one line on stderr and a non-zero exit code.

use std::process::ExitCode;

// The worker allocates many small, short-lived buffers per job (messages,
// JSON, wasmtime stores); mimalloc cut the host's CPU per job noticeably
// against glibc malloc in the drain benchmark.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use chard::cli::{self, Command};
use chard::runtime::Outcome;

fn main() -> ExitCode {
    let (global, command) = match cli::parse() {
        Ok(parsed) => parsed,
        Err(error) => return fail(&error, 2),
    };
    chard::logging::init(&global);
    let result = match command {
        Command::Call(config) => chard::commands::call::run(config).map(|outcome| match outcome {
            Outcome::Succeeded { json } => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            other => {
                eprintln!("error: {}", other.describe());
                ExitCode::from(1)
            }
        }),
        Command::Tasks(config) => chard::commands::tasks::run(config).map(ExitCode::from),
        Command::Run(config) => tokio_runtime().block_on(chard::commands::run::run(config)).map(|()| ExitCode::SUCCESS),
        Command::Submit(config) => tokio_runtime().block_on(chard::commands::submit::submit(config)).map(ExitCode::from),
        Command::Revoke(config) => tokio_runtime().block_on(chard::commands::submit::revoke(config)).map(ExitCode::from),
        Command::Canvas(config) => tokio_runtime().block_on(chard::commands::submit::canvas(config)).map(ExitCode::from),
        Command::Beat(config) => tokio_runtime().block_on(chard::commands::beat::run(config)).map(|()| ExitCode::SUCCESS),
        Command::Deploy(config) => tokio_runtime().block_on(chard::commands::deploy::deploy(config)).map(|()| ExitCode::SUCCESS),
        Command::PluginsList(config) => {
            tokio_runtime().block_on(chard::commands::deploy::list(config)).map(|()| ExitCode::SUCCESS)
        }
        Command::New(config) => chard::commands::new::new(config).map(|()| ExitCode::SUCCESS),
        Command::SdkExport(dir) => chard::commands::new::export_sdk(&dir).map(|()| ExitCode::SUCCESS),
        Command::Result(config) => tokio_runtime().block_on(chard::commands::submit::result(config)).map(ExitCode::from),
    };
    result.unwrap_or_else(|error| fail(&error, 2))
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building the tokio runtime")
}

fn fail(error: &anyhow::Error, code: u8) -> ExitCode {
    // `{:#}` keeps the context chain on one line: "loading x.wasm: not a component: ...".
    eprintln!("error: {error:#}");
    ExitCode::from(code)
}
