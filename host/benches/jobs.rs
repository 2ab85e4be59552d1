//! Per-job cost of the sandbox: `math.add` in a fresh instance per job, on
//! one thread and on every core. Prints figures; asserts nothing.
//!
//! Besides wall-clock time per job it prints the thread's CPU time and minor
//! page faults per job (Linux, from `/proc/thread-self`): on a machine shared
//! with other work the CPU time moves far less than the wall clock, and the
//! faults count the snapshot pages a job copies on write, a large part of a
//! Python or JavaScript job's cost and the reason it scales badly across
//! threads (each copy flushes the TLB of every core running the process).
//!
//! The last column is the all-cores scaling factor: the rate of every thread
//! together divided by (threads × the one-thread rate). 1.0 means a second
//! core doubles throughput; the target is ≥ 0.85 for every plugin.
//! Like the wall clock it needs an otherwise idle machine to mean anything.
//!
//! Run with `make bench` (needs `make plugins`). `CHARD_BENCH_PLUGINS=a,b`
//! picks the plugins; `CHARD_BENCH_COPIES=1` gives each thread of the
//! all-cores phase its own copy of the plugin, to see what sharing one
//! costs (bench/README.md).

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
    println!(
        "{:<8} {:>10} {:>14} {:>10} {:>11} {:>16} {:>8} {:>8}",
        "plugin", "load (ms)", "1 thread (µs)", "cpu (µs)", "faults/job", "all cores (j/s)", "threads", "scaling"
    );
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
        let (cpu, faults) = match single.usage {
            Some(usage) => (format!("{:.1}", usage.cpu.as_secs_f64() * 1e6), format!("{:.0}", usage.faults)),
            None => ("-".into(), "-".into()),
        };
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        // CHARD_BENCH_COPIES=1: each thread runs its own copy of the plugin
        // (loaded again, so nothing of the component is shared between the
        // threads but the engine): what sharing one costs.
        let copies = std::env::var_os("CHARD_BENCH_COPIES").is_some();
        let rate = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let (runtime, plugin, path) = (&runtime, &plugin, &path);
                    scope.spawn(move || match copies {
                        true => jobs_in(&Plugin::load(runtime, path).expect("plugin loads"), budget),
                        false => jobs_in(plugin, budget),
                    })
                })
                .collect();
            handles.into_iter().map(|handle| handle.join().unwrap()).sum::<u64>() as f64 / budget.as_secs_f64()
        });
        let scaling = rate * single.wall.as_secs_f64() / threads as f64;
        println!(
            "{name:<8} {:>10.1} {:>14.1} {cpu:>10} {faults:>11} {rate:>16.0} {threads:>8} {scaling:>8.2}",
            load.as_secs_f64() * 1e3,
            single.wall.as_secs_f64() * 1e6,
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
        services: Default::default(),
    });
    assert!(matches!(&outcome, Outcome::Succeeded { json } if json == "5"), "{outcome:?}");
}

/// Cost of one job on this thread.
struct PerJob {
    wall: Duration,
    usage: Option<Usage>,
}

/// This thread's CPU time and minor page faults (per job, once divided).
#[derive(Clone, Copy)]
struct Usage {
    cpu: Duration,
    faults: f64,
}

fn per_job(plugin: &Plugin, budget: Duration) -> PerJob {
    for _ in 0..100 {
        run_once(plugin);
    }
    let before = thread_usage();
    let started = Instant::now();
    let jobs = jobs_in(plugin, budget);
    let wall = started.elapsed() / jobs as u32;
    let usage = before.zip(thread_usage()).map(|(before, after)| Usage {
        cpu: (after.cpu - before.cpu) / jobs as u32,
        faults: (after.faults - before.faults) / jobs as f64,
    });
    PerJob { wall, usage }
}

/// CPU time from `/proc/thread-self/schedstat` (nanoseconds on a CPU) and
/// minor faults from `/proc/thread-self/stat` (its 10th field); `None` where
/// there is no such file.
fn thread_usage() -> Option<Usage> {
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let cpu = Duration::from_nanos(schedstat.split_whitespace().next()?.parse().ok()?);
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the parenthesised command name start at field 3.
    let faults = stat.rsplit_once(')')?.1.split_whitespace().nth(10 - 3)?.parse().ok()?;
    Some(Usage { cpu, faults })
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
