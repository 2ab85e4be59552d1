//! A task's call signature, as its plugin declares it in `task-info.params`,
//! and Celery's argument check against it (`Task.typing`).
//!
//! Celery checks every call before it publishes it: `Task.apply_async`
//! calls a function with the task's signature and an empty body
//! (`head_from_fun`), so a call that cannot bind raises Python's
//! `TypeError` in the sender, and nothing is sent. A Python worker does
//! this for every callback, chain step and chord body it publishes to a
//! task it has registered; a Chard worker does the same for the tasks it
//! serves, with this module standing in for Python's binding.
//!
//! The notation is Python's own, one entry per parameter in order:
//! `name` (required), `name?` (may be left out: a Python default, a Rust
//! `Option`), `*name` (collects extra positional arguments), `**name`
//! (collects extra keyword arguments), and a bare `*` before keyword-only
//! parameters when there is no `*name`. Entries after `*name` or `*` are
//! keyword-only. Python's positional-only marker has no entry: Celery's
//! check (`inspect.getfullargspec`) treats those parameters as ordinary
//! ones too.
//!
//! The messages are CPython 3.11's for the same call, so a `ChordError`
//! that quotes one reads as on a Python worker.

use serde_json::{Map, Value};

/// One named parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Param {
    name: String,
    optional: bool,
}

/// How a task can be called.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskSignature {
    /// Parameters that take a positional or a keyword argument, in order.
    positional: Vec<Param>,
    /// `*args`: extra positional arguments are accepted.
    varargs: bool,
    /// Parameters that take only a keyword argument.
    keyword_only: Vec<Param>,
    /// `**kwargs`: extra keyword arguments are accepted.
    varkw: bool,
}

impl TaskSignature {
    /// Reads the notation above; a list that does not follow it (a name
    /// twice, `**name` before another entry, an empty or odd name) is
    /// refused with the reason, and the task is not checked.
    pub fn parse(params: &[String]) -> Result<Self, String> {
        let mut signature = Self::default();
        let mut keyword_only = false;
        let mut names: Vec<&str> = Vec::new();
        for (index, entry) in params.iter().enumerate() {
            if signature.varkw {
                return Err(format!("{entry:?} comes after **{}", names.last().copied().unwrap_or("kwargs")));
            }
            let (stars, rest) = match entry.strip_prefix("**") {
                Some(rest) => (2, rest),
                None => entry.strip_prefix('*').map_or((0, entry.as_str()), |rest| (1, rest)),
            };
            let (name, optional) = match rest.strip_suffix('?') {
                Some(name) if stars == 0 => (name, true),
                _ => (rest, false),
            };
            if stars == 1 {
                if keyword_only {
                    return Err(format!("{entry:?}: a second `*` entry"));
                }
                keyword_only = true;
                signature.varargs = !name.is_empty();
                if name.is_empty() {
                    // A bare `*` must introduce a keyword-only parameter.
                    if params.get(index + 1).is_none_or(|next| next.starts_with("**")) {
                        return Err("a bare `*` must be followed by a keyword-only parameter".into());
                    }
                    continue;
                }
            }
            if name.is_empty() || name.chars().any(|c| c.is_whitespace() || "*?,=()".contains(c)) {
                return Err(format!("{entry:?} is not a parameter name"));
            }
            if names.contains(&name) {
                return Err(format!("parameter {name:?} is named twice"));
            }
            names.push(name);
            let param = Param { name: name.to_string(), optional };
            match stars {
                2 => signature.varkw = true,
                1 => {}
                _ if keyword_only => signature.keyword_only.push(param),
                _ => signature.positional.push(param),
            }
        }
        Ok(signature)
    }

    /// Whether `function(*args, **kwargs)` binds; the `TypeError` message
    /// Python gives if it does not. Checked in CPython's order: keyword
    /// arguments, then the positional count, then what is missing.
    pub fn bind(&self, function: &str, args: &[Value], kwargs: &Map<String, Value>) -> Result<(), String> {
        let given_positionally = args.len().min(self.positional.len());
        for key in kwargs.keys() {
            match self.positional.iter().position(|param| &param.name == key) {
                Some(index) if index < given_positionally => {
                    return Err(format!("{function}() got multiple values for argument '{key}'"));
                }
                Some(_) => {}
                None if self.varkw || self.keyword_only.iter().any(|param| &param.name == key) => {}
                None => return Err(format!("{function}() got an unexpected keyword argument '{key}'")),
            }
        }
        if args.len() > self.positional.len() && !self.varargs {
            let total = self.positional.len();
            let required = self.positional.iter().filter(|param| !param.optional).count();
            let takes = if required == total { total.to_string() } else { format!("from {required} to {total}") };
            let plural = if takes == "1" { "argument" } else { "arguments" };
            let keywords = self.keyword_only.iter().filter(|param| kwargs.contains_key(&param.name)).count();
            let given = match (args.len(), keywords) {
                (1, 0) => "1 was".to_string(),
                (count, 0) => format!("{count} were"),
                (count, keywords) => format!(
                    "{count} positional argument{} (and {keywords} keyword-only argument{}) were",
                    if count == 1 { "" } else { "s" },
                    if keywords == 1 { "" } else { "s" }
                ),
            };
            return Err(format!("{function}() takes {takes} positional {plural} but {given} given"));
        }
        let missing: Vec<&str> = self.positional[given_positionally..]
            .iter()
            .filter(|param| !param.optional && !kwargs.contains_key(&param.name))
            .map(|param| param.name.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(missing_message(function, "positional", &missing));
        }
        let missing: Vec<&str> =
            self.keyword_only.iter().filter(|param| !param.optional && !kwargs.contains_key(&param.name)).map(|param| param.name.as_str()).collect();
        if !missing.is_empty() {
            return Err(missing_message(function, "keyword-only", &missing));
        }
        Ok(())
    }
}

/// CPython's `missing_arguments`: "f() missing 2 required positional
/// arguments: 'x' and 'y'".
fn missing_message(function: &str, kind: &str, names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("'{name}'")).collect();
    let list = match quoted.as_slice() {
        [one] => one.clone(),
        [first, second] => format!("{first} and {second}"),
        [init @ .., last] => format!("{}, and {last}", init.join(", ")),
        [] => String::new(),
    };
    let plural = if names.len() == 1 { "argument" } else { "arguments" };
    format!("{function}() missing {} required {kind} {plural}: {list}", names.len())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn signature(params: &[&str]) -> TaskSignature {
        TaskSignature::parse(&params.iter().map(|p| p.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn bind(params: &[&str], args: Value, kwargs: Value) -> Result<(), String> {
        signature(params).bind("add", args.as_array().unwrap(), kwargs.as_object().unwrap())
    }

    /// Each message below is what CPython 3.11 says for the same call of
    /// `def add(<params>): pass`.
    #[test]
    fn binds_as_python_does_with_python_s_messages() {
        let xy = ["x", "y"];
        assert_eq!(bind(&xy, json!([1, 2]), json!({})), Ok(()));
        assert_eq!(bind(&xy, json!([1]), json!({"y": 2})), Ok(()));
        assert_eq!(bind(&xy, json!([1]), json!({})), Err("add() missing 1 required positional argument: 'y'".into()));
        assert_eq!(bind(&xy, json!([]), json!({})), Err("add() missing 2 required positional arguments: 'x' and 'y'".into()));
        assert_eq!(
            bind(&["x", "y", "z"], json!([]), json!({})),
            Err("add() missing 3 required positional arguments: 'x', 'y', and 'z'".into())
        );
        assert_eq!(bind(&xy, json!([1, 2, 3]), json!({})), Err("add() takes 2 positional arguments but 3 were given".into()));
        assert_eq!(bind(&["x"], json!([1, 2]), json!({})), Err("add() takes 1 positional argument but 2 were given".into()));
        assert_eq!(bind(&[], json!([1]), json!({})), Err("add() takes 0 positional arguments but 1 was given".into()));
        assert_eq!(bind(&["x", "y?"], json!([1, 2, 3]), json!({})), Err("add() takes from 1 to 2 positional arguments but 3 were given".into()));
        assert_eq!(bind(&xy, json!([1, 2]), json!({"z": 3})), Err("add() got an unexpected keyword argument 'z'".into()));
        assert_eq!(bind(&xy, json!([1, 2]), json!({"x": 3})), Err("add() got multiple values for argument 'x'".into()));
        // Keywords are checked before the count, as CPython does.
        assert_eq!(bind(&xy, json!([1, 2, 3]), json!({"z": 3})), Err("add() got an unexpected keyword argument 'z'".into()));
    }

    #[test]
    fn optional_variadic_and_keyword_only_parameters() {
        assert_eq!(bind(&["x", "y?"], json!([1]), json!({})), Ok(()));
        assert_eq!(bind(&["x", "*rest"], json!([1, 2, 3, 4]), json!({})), Ok(()));
        assert_eq!(bind(&["x", "**options"], json!([1]), json!({"anything": 1})), Ok(()));
        assert_eq!(bind(&["x", "**options"], json!([1]), json!({"x": 1})), Err("add() got multiple values for argument 'x'".into()));
        let keyword_only = ["x", "*", "scale", "round?"];
        assert_eq!(bind(&keyword_only, json!([1]), json!({"scale": 2})), Ok(()));
        assert_eq!(bind(&keyword_only, json!([1]), json!({})), Err("add() missing 1 required keyword-only argument: 'scale'".into()));
        assert_eq!(
            bind(&keyword_only, json!([1, 2]), json!({"scale": 2})),
            Err("add() takes 1 positional argument but 2 positional arguments (and 1 keyword-only argument) were given".into())
        );
        assert_eq!(bind(&keyword_only, json!([1, 2]), json!({})), Err("add() takes 1 positional argument but 2 were given".into()));
        assert_eq!(bind(&["*args", "key"], json!([1, 2]), json!({})), Err("add() missing 1 required keyword-only argument: 'key'".into()));
        assert_eq!(bind(&["*args", "**kwargs"], json!([1, 2]), json!({"a": 1})), Ok(()));
    }

    #[test]
    fn a_list_that_breaks_the_notation_is_refused() {
        let parse = |params: &[&str]| TaskSignature::parse(&params.iter().map(|p| p.to_string()).collect::<Vec<_>>());
        assert!(parse(&["x", "x"]).is_err());
        assert!(parse(&["**kw", "x"]).is_err());
        assert!(parse(&["*a", "*b"]).is_err());
        assert!(parse(&["*"]).is_err());
        assert!(parse(&["x", ""]).is_err());
        assert!(parse(&["x y"]).is_err());
        assert!(parse(&["**kw?"]).is_err(), "only a named parameter can be optional");
        assert_eq!(parse(&[]), Ok(TaskSignature::default()));
    }
}
