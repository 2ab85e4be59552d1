//! Result documents stored at `celery-task-meta-<id>`.

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    Pending,
    Started,
    Retry,
    Failure,
    Success,
    Revoked,
}

impl State {
    pub fn is_ready(self) -> bool {
        matches!(self, State::Success | State::Failure | State::Revoked)
    }
}

/// Celery's serialised exception: `exc_message` is the args *list*.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExceptionInfo {
    pub exc_type: String,
    pub exc_message: Vec<Value>,
    pub exc_module: String,
}

impl ExceptionInfo {
    pub fn new(module: &str, exc_type: &str, message: impl Into<Value>) -> Self {
        Self { exc_type: exc_type.to_string(), exc_message: vec![message.into()], exc_module: module.to_string() }
    }
}

/// One result document.
#[derive(Debug, Serialize)]
pub struct ResultMeta<'a> {
    pub status: State,
    pub result: ResultValue,
    pub traceback: Option<String>,
    pub children: Vec<Value>,
    pub date_done: Option<String>,
    pub task_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<&'a str>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ResultValue {
    Exception(ExceptionInfo),
    Value(Value),
}

impl<'a> ResultMeta<'a> {
    pub fn new(task_id: &'a str, status: State, result: ResultValue) -> Self {
        Self {
            status,
            result,
            traceback: None,
            children: Vec::new(),
            date_done: status.is_ready().then(super::iso_now),
            task_id,
            group_id: None,
            parent_id: None,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("result serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_document_matches_celery() {
        let meta = ResultMeta::new("t1", State::Failure, ResultValue::Exception(ExceptionInfo::new("builtins", "ValueError", "bad value 7")));
        let value: Value = serde_json::from_str(&meta.to_json()).unwrap();
        assert_eq!(value["status"], "FAILURE");
        assert_eq!(value["result"], serde_json::json!({"exc_type": "ValueError", "exc_message": ["bad value 7"], "exc_module": "builtins"}));
        assert_eq!(value["children"], serde_json::json!([]));
        assert!(value["date_done"].is_string());
        assert!(value.get("group_id").is_none());
    }
}
