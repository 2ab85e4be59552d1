//! `{{name}}`: a Chard plugin. Every `#[task]` function is a task, served as
//! `{{name}}.<function>`. Arguments arrive as JSON and are decoded into the
//! parameter types with serde; the return value goes back as JSON. Return a
//! `Result<T, chard_sdk::TaskError>` to fail a task with an error a Celery
//! client re-raises.

use chard_sdk::task;

/// Add two integers.
#[task]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

/// Greet someone by name.
#[task]
fn hello(name: String) -> String {
    format!("Hello, {name}!")
}

chard_sdk::export_tasks!(add, hello);

#[cfg(test)]
mod tests {
    // Tasks are plain functions: test them as such (`make test`).
    #[test]
    fn tasks_compute_their_results() {
        assert_eq!(super::add(2, 3), 5);
        assert_eq!(super::hello("Ada".to_string()), "Hello, Ada!");
    }
}
