//! Binding Celery's `(args, kwargs)` to a task's parameters.
//!
//! The rules are Python's, because the caller is usually Python: positional
//! arguments fill parameters left to right, keyword arguments fill them by
//! name, a parameter may not get both, and unknown keywords are an error.
//! A task that takes [`Args`] (`*args`) receives the positional arguments
//! left over, one that takes [`Kwargs`] (`**kwargs`) the unknown keywords.
//! Errors are reported as `TypeError`, the exception a Python caller expects.
//!
//! A parameter that was not given at all stays `None` here, so that
//! [`Maybe`] can tell "missing" from "null"; `Option<T>` treats both alike.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::TaskError;

/// `*args`: the positional arguments no named parameter took.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args(pub Vec<Value>);

/// `**kwargs`: the keyword arguments no named parameter took.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Kwargs(pub Map<String, Value>);

impl std::ops::Deref for Args {
    type Target = Vec<Value>;
    fn deref(&self) -> &Vec<Value> {
        &self.0
    }
}

impl std::ops::Deref for Kwargs {
    type Target = Map<String, Value>;
    fn deref(&self) -> &Map<String, Value> {
        &self.0
    }
}

/// A parameter that may be left out, told apart from an explicit `null`
/// (Python's `def f(x=_missing)`). `Option<T>` cannot: serde reads both as
/// `None`.
#[derive(Debug, Clone, PartialEq)]
pub enum Maybe<T> {
    /// The caller did not pass it.
    Missing,
    /// The caller passed `None`/`null`.
    Null,
    Value(T),
}

/// What `bind_arguments` produced.
pub struct Bound {
    /// One entry per named parameter, in order; `None` when not given.
    pub values: Vec<Option<Value>>,
    pub rest_args: Vec<Value>,
    pub rest_kwargs: Map<String, Value>,
}

/// Which parameters a task has, as the macro saw them.
pub struct Shape<'a> {
    pub params: &'a [&'a str],
    /// Parameters that may be left out (`Option`, `Maybe`).
    pub optional: &'a [bool],
    pub takes_args: bool,
    pub takes_kwargs: bool,
}

pub fn bind_arguments(task: &str, shape: &Shape<'_>, args: &str, kwargs: &str) -> Result<Bound, TaskError> {
    let type_error = |message: String| TaskError::failed_as("TypeError", message);
    let params = shape.params;
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
    if positional.len() > params.len() && !shape.takes_args {
        return Err(type_error(format!(
            "{task}: expected {} argument{} ({}), got {}",
            params.len(),
            if params.len() == 1 { "" } else { "s" },
            params.join(", "),
            positional.len()
        )));
    }
    let mut values = Vec::with_capacity(params.len());
    let mut positional = positional.into_iter();
    for (index, name) in params.iter().enumerate() {
        let by_position = positional.next();
        let by_name = keywords.remove(*name);
        let value = match (by_position, by_name) {
            (Some(_), Some(_)) => {
                return Err(type_error(format!("{task}: got multiple values for argument '{name}'")))
            }
            (Some(value), None) | (None, Some(value)) => Some(value),
            (None, None) if shape.optional.get(index).copied().unwrap_or(false) => None,
            (None, None) => {
                return Err(type_error(format!("{task}: missing required argument '{name}'")))
            }
        };
        values.push(value);
    }
    if !shape.takes_kwargs {
        if let Some(unexpected) = keywords.keys().next() {
            return Err(type_error(format!("{task}: got an unexpected keyword argument '{unexpected}'")));
        }
    }
    Ok(Bound { values, rest_args: positional.collect(), rest_kwargs: keywords })
}

/// Deserialises one bound argument into the parameter's type (a missing
/// one as `null`).
pub fn decode_argument<T: DeserializeOwned>(task: &str, name: &str, value: Option<Value>) -> Result<T, TaskError> {
    serde_json::from_value(value.unwrap_or(Value::Null)).map_err(|error| {
        TaskError::failed_as("TypeError", format!("{task}: argument '{name}': {error}"))
    })
}

/// Deserialises a [`Maybe`] parameter.
pub fn decode_maybe<T: DeserializeOwned>(task: &str, name: &str, value: Option<Value>) -> Result<Maybe<T>, TaskError> {
    match value {
        None => Ok(Maybe::Missing),
        Some(Value::Null) => Ok(Maybe::Null),
        Some(value) => decode_argument(task, name, Some(value)).map(Maybe::Value),
    }
}

/// Serialises a task's return value.
pub fn encode_result<T: Serialize>(task: &str, value: &T) -> Result<String, TaskError> {
    serde_json::to_string(value)
        .map_err(|error| TaskError::failed_as("TypeError", format!("{task}: result is not JSON: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape<'a>(params: &'a [&'a str], optional: &'a [bool], takes_args: bool, takes_kwargs: bool) -> Shape<'a> {
        Shape { params, optional, takes_args, takes_kwargs }
    }

    #[test]
    fn leftovers_go_to_args_and_kwargs() {
        let bound = bind_arguments("t", &shape(&["x"], &[false], true, true), "[1, 2, 3]", r#"{"k": null}"#).unwrap();
        assert_eq!(bound.values, vec![Some(Value::from(1))]);
        assert_eq!(bound.rest_args, vec![Value::from(2), Value::from(3)]);
        assert_eq!(bound.rest_kwargs.get("k"), Some(&Value::Null));
    }

    #[test]
    fn missing_is_not_null() {
        let shape = shape(&["a", "b"], &[true, true], false, false);
        let bound = bind_arguments("t", &shape, "[]", r#"{"b": null}"#).unwrap();
        assert_eq!(decode_maybe::<i64>("t", "a", bound.values[0].clone()).unwrap(), Maybe::Missing);
        assert_eq!(decode_maybe::<i64>("t", "b", bound.values[1].clone()).unwrap(), Maybe::Null);
    }

    #[test]
    fn without_kwargs_an_unknown_keyword_is_a_type_error() {
        let error = bind_arguments("t", &shape(&["x"], &[false], false, false), "[1]", r#"{"y": 2}"#).err().unwrap();
        assert!(format!("{error:?}").contains("unexpected keyword argument 'y'"));
    }
}
