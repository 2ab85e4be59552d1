//! `rshttp`: outbound HTTP from a Rust task with `chard_sdk::http` (the same
//! tasks as `pyhttp`, `jshttp` and `chttp`); origins granted under `http`
//! in `rshttp.toml`.

use chard_sdk::{http, task, TaskError};
use serde_json::{json, Value};

#[task]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

/// GET `url` and return its status and JSON body.
#[task]
fn get_json(url: String) -> Result<Value, TaskError> {
    let response = http::get(&url)?;
    Ok(json!({"status": response.status, "body": response.json::<Value>()?}))
}

/// POST `payload` as JSON to `url`; return the status and JSON answer.
#[task]
fn post_json(url: String, payload: Value) -> Result<Value, TaskError> {
    let response = http::post_json(&url, &payload)?;
    Ok(json!({"status": response.status, "body": response.json::<Value>()?}))
}

chard_sdk::export_tasks!(add, get_json, post_json);
