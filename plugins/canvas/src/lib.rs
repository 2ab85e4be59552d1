//! `canvas`: the tasks Celery's own canvas tests use (`add`, `identity`,
//! `tsum`, plus `fail`), with the same results and exception types as the
//! Python versions in `tests/python/canvas_tasks.py`, so the same random
//! canvas can run on a Python worker and on a Chard worker and be compared.

use chard_sdk::{task, TaskError};
use serde_json::Value;

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(number) if number.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Python's `x + y` for ints, strings and lists; a TypeError otherwise.
#[task]
fn add(x: Value, y: Value) -> Result<Value, TaskError> {
    match (&x, &y) {
        (Value::Number(a), Value::Number(b)) if a.is_i64() && b.is_i64() => Ok(Value::from(a.as_i64().unwrap_or(0).wrapping_add(b.as_i64().unwrap_or(0)))),
        (Value::String(a), Value::String(b)) => Ok(Value::String(format!("{a}{b}"))),
        (Value::Array(a), Value::Array(b)) => Ok(Value::Array(a.iter().chain(b).cloned().collect())),
        _ => Err(TaskError::failed_as(
            "TypeError",
            format!("unsupported operand type(s) for +: '{}' and '{}'", type_name(&x), type_name(&y)),
        )),
    }
}

/// Returns its argument.
#[task]
fn identity(x: Value) -> Value {
    x
}

/// Python's `sum(numbers)` over a list of ints; a TypeError otherwise.
#[task]
fn tsum(numbers: Value) -> Result<i64, TaskError> {
    let Value::Array(items) = &numbers else {
        return Err(TaskError::failed_as("TypeError", format!("'{}' object is not iterable", type_name(&numbers))));
    };
    let mut total: i64 = 0;
    for item in items {
        match item.as_i64() {
            Some(value) => total = total.wrapping_add(value),
            None => {
                return Err(TaskError::failed_as(
                    "TypeError",
                    format!("unsupported operand type(s) for +: 'int' and '{}'", type_name(item)),
                ))
            }
        }
    }
    Ok(total)
}

/// Always raises `ValueError("boom")`.
#[task]
fn fail(_x: Value) -> Result<Value, TaskError> {
    Err(TaskError::failed_as("ValueError", "boom"))
}

chard_sdk::export_tasks!(add, identity, tsum, fail);
