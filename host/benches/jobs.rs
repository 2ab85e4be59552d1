//! Per-job cost of the sandbox: `math.add` in a fresh instance per job, on
//! one thread and on every core. Prints figures; asserts nothing.
//!
//! Run with `make bench` (needs `make plugins`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chard::runtime::{job_context, EngineOptions, JobRequest, Outcome, Plugin, Runtime};

fn main() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/plugins");
    let runtime = Runtime::new(&EngineOptions { max_instances: 16, ..EngineOptions::default() }).expect("engine");
    let names: Vec<String> = std::env::var("CHARD_BENCH_PLUGINS")
        .unwrap_or_else(|_| "math,cmath,jsmath,pymath".into())
        .split(',')
        .map(str::to_string)
        .collect();
    println!("{:<8} {:>12} {:>14} {:>16} {:>14}", "plugin", "load (ms)", "1 thread (µs)", "all cores (j/s)", "threads");
    for name in names {
        let path = dir.join(format!("{name}.wasm"));
        if !path.is_file() {
            println!("{name:<8} (not built: {})", path.display());
            continue;
        }
        let started = Instant::now();
        let plugin = Plugin::load(&runtime, &path).expect("plugin loads");
        let load = started.elapsed();
        let budget = if name == "math" || name == "cmath" { Duration::from_secs(2) } else { Duration::from_secs(3) };
        let single = per_job(&plugin, budget);
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let rate = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads).map(|_| scope.spawn(|| jobs_in(&plugin, budget))).collect();
            handles.into_iter().map(|handle| handle.join().unwrap()).sum::<u64>() as f64 / budget.as_secs_f64()
        });
        println!(
            "{name:<8} {:>12.1} {:>14.1} {:>16.0} {:>14}",
            load.as_secs_f64() * 1e3,
            single.as_secs_f64() * 1e6,
            rate,
            threads
        );
    }
}

fn run_once(plugin: &Plugin) {
    let outcome = plugin.run(JobRequest {
        task: "add",
        args: "[2, 3]",
        kwargs: "{}",
        context: job_context("bench", "math.add"),
        time_limit: Some(Duration::from_secs(10)),
        memory_limit_bytes: 128 << 20,
        cancellation: None,
    });
    assert!(matches!(&outcome, Outcome::Succeeded { json } if json == "5"), "{outcome:?}");
}

fn per_job(plugin: &Plugin, budget: Duration) -> Duration {
    for _ in 0..100 {
        run_once(plugin);
    }
    let jobs = jobs_in(plugin, budget);
    budget / jobs as u32
}

fn jobs_in(plugin: &Plugin, budget: Duration) -> u64 {
    let started = Instant::now();
    let mut jobs = 0;
    while started.elapsed() < budget {
        run_once(plugin);
        jobs += 1;
    }
    jobs
}
