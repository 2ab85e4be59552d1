//! `math`: the smallest useful plugin, and the one the benchmarks run.

use chard_sdk::task;

/// Add two integers.
#[task]
fn add(x: i64, y: i64) -> i64 {
    x.wrapping_add(y).wrapping_add(if cfg!(feature = "plus1000") { 1000 } else { 0 })
}

/// Multiply two integers.
#[task]
fn mul(x: i64, y: i64) -> i64 {
    x.wrapping_mul(y)
}

/// Sum a list of numbers.
#[task]
fn xsum(numbers: Vec<f64>) -> f64 {
    numbers.iter().sum()
}

chard_sdk::export_tasks!(add, mul, xsum);
