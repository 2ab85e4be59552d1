//! Binding Celery's `(args, kwargs)` to a task's parameters.
//!
//! The rules are Python's, because the caller is usually Python: positional
//! arguments fill parameters left to right, keyword arguments fill them by
//! name, a parameter may not get both, and unknown keywords are an error.
//! Errors are reported as `TypeError`, the exception a Python caller expects.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::TaskError;

/// Returns one JSON value per parameter, in order. `optional[i]` marks
/// parameters that may be left out (they become `null`).
pub fn bind_arguments(
    task: &str,
    params: &[&str],
    optional: &[bool],
    args: &str,
    kwargs: &str,
) -> Result<Vec<Value>, TaskError> {
    let type_error = |message: String| TaskError::failed_as("TypeError", message);
    let positional: Vec<Value> = if args.trim().is_empty() {
        Vec::new()
    } else {
        match serde_json::from_str(args) {
            Ok(Value::Array(values)) => values,
            Ok(other) => return Err(type_error(format!("{task}: args must be a JSON array, got {other}"))),
            Err(error) => return Err(type_error(format!("{task}: args are not valid JSON: {error}"))),
        }
    };
    let mut keywords: Map<String, Value> = if kwargs.trim().is_empty() {
        Map::new()
    } else {
        match serde_json::from_str(kwargs) {
            Ok(Value::Object(map)) => map,
            Ok(Value::Null) => Map::new(),
            Ok(other) => return Err(type_error(format!("{task}: kwargs must be a JSON object, got {other}"))),
            Err(error) => return Err(type_error(format!("{task}: kwargs are not valid JSON: {error}"))),
        }
    };
    if positional.len() > params.len() {
        return Err(type_error(format!(
            "{task}: expected {} argument{} ({}), got {}",
            params.len(),
            if params.len() == 1 { "" } else { "s" },
            params.join(", "),
            positional.len()
        )));
    }
    let mut bound = Vec::with_capacity(params.len());
    let mut positional = positional.into_iter();
    for (index, name) in params.iter().enumerate() {
        let by_position = positional.next();
        let by_name = keywords.remove(*name);
        let value = match (by_position, by_name) {
            (Some(_), Some(_)) => {
                return Err(type_error(format!("{task}: got multiple values for argument '{name}'")))
            }
            (Some(value), None) | (None, Some(value)) => value,
            (None, None) if optional.get(index).copied().unwrap_or(false) => Value::Null,
            (None, None) => {
                return Err(type_error(format!("{task}: missing required argument '{name}'")))
            }
        };
        bound.push(value);
    }
    if let Some(unexpected) = keywords.keys().next() {
        return Err(type_error(format!("{task}: got an unexpected keyword argument '{unexpected}'")));
    }
    Ok(bound)
}

/// Deserialises one bound argument into the parameter's type.
pub fn decode_argument<T: DeserializeOwned>(task: &str, name: &str, value: Value) -> Result<T, TaskError> {
    serde_json::from_value(value).map_err(|error| {
        TaskError::failed_as("TypeError", format!("{task}: argument '{name}': {error}"))
    })
}

/// Serialises a task's return value.
pub fn encode_result<T: Serialize>(task: &str, value: &T) -> Result<String, TaskError> {
    serde_json::to_string(value)
        .map_err(|error| TaskError::failed_as("TypeError", format!("{task}: result is not JSON: {error}")))
}
