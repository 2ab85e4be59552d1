//! `faults`: tasks that misbehave on purpose, one per way a job can end
//! badly. The worker's tests use them to prove each failure is contained and
//! reported as what it is.

use std::time::Duration;

use chard_sdk::{task, Context, TaskError};

/// Fail with `message`.
#[task]
fn fail(message: String) -> Result<(), TaskError> {
    Err(TaskError::failed(message))
}

/// Fail with an exception of the given (optionally module-qualified) type.
#[task]
fn raise_as(exception_type: String, message: String) -> Result<(), TaskError> {
    Err(TaskError::failed_as(exception_type, message))
}

/// Loop forever: only a time limit ends it.
#[task]
fn spin() -> u64 {
    let mut counter: u64 = 0;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
        if counter == u64::MAX {
            return counter;
        }
    }
}

/// Allocate and touch `mb` MiB; returns the number of MiB held.
#[task]
fn hog(mb: usize) -> usize {
    let mut blocks: Vec<Vec<u8>> = Vec::with_capacity(mb);
    for _ in 0..mb {
        blocks.push(vec![1u8; 1 << 20]);
    }
    std::hint::black_box(&blocks);
    blocks.len()
}

/// Ask for a retry (0.1 s countdown) until the job's retry count reaches
/// `n`, then return `n`.
#[task]
fn flaky(context: &Context, n: u32) -> Result<u32, TaskError> {
    if context.retries < n {
        return Err(TaskError::retry_in(Duration::from_millis(100))
            .with_reason(format!("attempt {} of {}", context.retries + 1, n + 1)));
    }
    Ok(n)
}

static mut CALLS: u64 = 0;

/// Increment a global and return it: always 1, because no state survives
/// from one job to the next.
#[task]
fn counter() -> u64 {
    // SAFETY: a component instance is single-threaded.
    unsafe {
        CALLS += 1;
        CALLS
    }
}

/// Host pages (4 KiB) of a zero-initialised static that `scatter` marks.
const SCATTER_PAGES: usize = 256;
const PAGE: usize = 4096;
static mut SCATTERED: [u8; SCATTER_PAGES * PAGE] = [0; SCATTER_PAGES * PAGE];

/// Mark every other page of a 1 MiB static and return how many of those
/// pages already held a mark: always 0, because each job gets memory reset
/// to the plugin's initial image. The 128 separate dirty runs are more than
/// wasmtime's reset reads back from one `PAGEMAP_SCAN` (32 in 48, 64 with
/// the vendored fix), so reusing a pool slot after this job exercises the
/// reset's handling of a fragmented dirty set (vendor/README.md).
#[task]
fn scatter() -> usize {
    let base = std::ptr::addr_of_mut!(SCATTERED).cast::<u8>();
    let mut marked_before = 0;
    for page in (0..SCATTER_PAGES).step_by(2) {
        // SAFETY: in bounds of the static; a component instance is single-threaded.
        unsafe {
            let byte = base.add(page * PAGE);
            if byte.read_volatile() != 0 {
                marked_before += 1;
            }
            byte.write_volatile(1);
        }
    }
    marked_before
}

/// Panic: the guest traps, which the worker reports as such.
#[task]
fn panic(message: String) -> u32 {
    panic!("{message}")
}

/// Sleep for `ms` milliseconds (busy, guests have no timers), then return it.
/// The monotonic clock needs no grant, unlike `chard_sdk::now_ms`.
#[task]
fn sleep(ms: u64) -> u64 {
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_millis(ms) {
        std::hint::spin_loop();
    }
    ms
}

/// Work until the soft time limit has passed, then return the milliseconds
/// that took: what a long task does to wind down.
#[task]
fn wind_down(context: &Context) -> u64 {
    let start = std::time::Instant::now();
    while !chard_sdk::soft_deadline_passed(context) {
        std::hint::spin_loop();
    }
    start.elapsed().as_millis() as u64
}

/// The worker's wall clock through `host.now-ms`, in Unix milliseconds (a
/// capability: `wall_clock = true`).
#[task]
fn now() -> u64 {
    chard_sdk::now_ms()
}

/// Return the job's context as the worker passed it.
#[task]
fn context(context: &Context) -> serde_json::Value {
    serde_json::json!({
        "task_id": context.task_id,
        "task_name": context.task_name,
        "root_id": context.root_id,
        "parent_id": context.parent_id,
        "group_id": context.group_id,
        "retries": context.retries,
        "priority": context.priority,
        "time_limit_ms": context.time_limit_ms,
        "hostname": context.hostname,
    })
}

/// Echo any JSON value back: round-trips strings, floats, lists, objects.
#[task]
fn echo(value: serde_json::Value) -> serde_json::Value {
    value
}

/// Try to read a file and an environment variable; reports what it saw.
#[task]
fn snoop(path: String, var: String) -> serde_json::Value {
    serde_json::json!({
        "file": std::fs::read_to_string(&path).map_err(|error| error.to_string()),
        "env": std::env::var(&var).map_err(|error| error.to_string()),
    })
}

/// Write `text` to `path`; returns the number of bytes written.
#[task]
fn write_file(path: String, text: String) -> Result<usize, TaskError> {
    std::fs::write(&path, &text).map_err(|error| TaskError::failed_as("OSError", format!("{path}: {error}")))?;
    Ok(text.len())
}

/// The wall clock, in Unix seconds (a capability: `wall_clock = true`).
#[task]
fn clock() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|elapsed| elapsed.as_secs()).unwrap_or(0)
}

/// Eight bytes from the secure random generator (a capability: `random = true`).
#[task]
fn entropy() -> Result<u64, TaskError> {
    getrandom::u64().map_err(|error| TaskError::failed(format!("no randomness: {error}")))
}

/// Connect to `address` (host:port), send `request`, return the first line
/// of the reply (a capability: `network = ["host:port"]`).
#[task]
fn connect(address: String, request: String) -> Result<String, TaskError> {
    use std::io::{BufRead, Write};
    let oserror = |error: std::io::Error| TaskError::failed_as("ConnectionError", format!("{address}: {error}"));
    let mut stream = std::net::TcpStream::connect(&address).map_err(oserror)?;
    stream.write_all(request.as_bytes()).map_err(oserror)?;
    let mut line = String::new();
    std::io::BufReader::new(stream).read_line(&mut line).map_err(oserror)?;
    Ok(line.trim_end().to_string())
}

chard_sdk::export_tasks!(
    fail, raise_as, spin, hog, flaky, counter, scatter, panic, sleep, now, wind_down, context, echo, snoop, write_file, clock, entropy, connect
);
