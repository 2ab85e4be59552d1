//! Task messages (Celery protocol 2) inside kombu envelopes.
//!
//! An envelope is JSON whose `body` is base64 of the JSON array
//! `[args, kwargs, embed]`. Arguments stay raw JSON (`RawValue`) from the
//! wire to the guest: the worker never needs to look inside them.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::bounds::{truncate, MAX_ECHO, MAX_NAME};

/// Why a message could not be understood. Carries the task id when the
/// headers were readable, so a FAILURE can still be stored for it.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct MessageError {
    pub reason: String,
    pub task_id: Option<String>,
    pub task_name: Option<String>,
}

impl MessageError {
    /// `reason` is cut to [`MAX_ECHO`]: serde quotes the bad value, which
    /// may be megabytes long.
    pub fn new(reason: String, task_id: Option<String>, task_name: Option<String>) -> Self {
        let reason = truncate(&reason, MAX_ECHO).into_owned();
        Self { reason, task_id, task_name }
    }
}

/// The routing key, or a queue named anywhere in the canvas, that addresses
/// a reserved key (see [`super::is_reserved_queue`]).
fn reserved_queue<'a>(properties: &'a Properties, embed: &'a Embed) -> Option<&'a str> {
    let routing_key = properties.delivery_info.routing_key.as_str();
    if super::is_reserved_queue(routing_key) {
        return Some(routing_key);
    }
    let signatures = embed.callbacks.iter().flatten().chain(embed.errbacks.iter().flatten()).chain(embed.chain.iter().flatten());
    signatures
        .chain(embed.chord.iter())
        .find_map(|signature| super::recover::reserved_queue_in(&signature.options).or_else(|| super::recover::reserved_queue_in(&signature.kwargs)))
}

/// Headers of a task message; unknown ones are kept in `extra`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Headers {
    #[serde(default)]
    pub lang: Option<String>,
    #[serde(default)]
    pub task: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub shadow: Option<String>,
    #[serde(default)]
    pub eta: Option<String>,
    #[serde(default)]
    pub expires: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub group_index: Option<u32>,
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default)]
    pub timelimit: Option<(Option<f64>, Option<f64>)>,
    #[serde(default)]
    pub root_id: Option<String>,
    #[serde(default)]
    pub parent_id: Option<String>,
    #[serde(default)]
    pub argsrepr: Option<String>,
    #[serde(default)]
    pub kwargsrepr: Option<String>,
    #[serde(default)]
    pub origin: Option<String>,
    #[serde(default)]
    pub ignore_result: Option<bool>,
    #[serde(default)]
    pub replaced_task_nesting: Option<u32>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeliveryInfo {
    #[serde(default)]
    pub exchange: String,
    #[serde(default)]
    pub routing_key: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Properties {
    #[serde(default)]
    pub correlation_id: Option<String>,
    #[serde(default)]
    pub reply_to: Option<String>,
    #[serde(default)]
    pub delivery_tag: Option<String>,
    #[serde(default)]
    pub priority: Option<u8>,
    #[serde(default)]
    pub delivery_info: DeliveryInfo,
    #[serde(default)]
    pub body_encoding: Option<String>,
}

/// A canvas signature inside `embed` (`{"task", "args", "kwargs", "options", ...}`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Signature {
    pub task: String,
    #[serde(default)]
    pub args: Vec<Value>,
    #[serde(default)]
    pub kwargs: Map<String, Value>,
    #[serde(default)]
    pub options: Map<String, Value>,
    #[serde(default)]
    pub subtask_type: Option<String>,
    #[serde(default)]
    pub immutable: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Signature {
    /// `task.s(*args, **kwargs)`.
    pub fn new(task: &str, args: Vec<Value>, kwargs: Map<String, Value>) -> Self {
        Self {
            task: task.to_string(),
            args,
            kwargs,
            options: Map::new(),
            subtask_type: None,
            immutable: false,
            extra: Map::new(),
        }
    }
}

/// The third element of the body: callbacks, errbacks, chain, chord.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Embed {
    #[serde(default)]
    pub callbacks: Option<Vec<Signature>>,
    #[serde(default)]
    pub errbacks: Option<Vec<Signature>>,
    #[serde(default)]
    pub chain: Option<Vec<Signature>>,
    #[serde(default)]
    pub chord: Option<Signature>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    /// Borrowed from the message: base64 has nothing to unescape.
    #[serde(borrow)]
    body: std::borrow::Cow<'a, str>,
    #[serde(default, borrow, rename = "content-type")]
    content_type: Option<std::borrow::Cow<'a, str>>,
    /// Kept as sent: parsed into [`Headers`], and handed to the guest as is.
    #[serde(default, borrow)]
    headers: Option<&'a RawValue>,
    #[serde(default)]
    properties: Properties,
}

/// A task message as received.
#[derive(Debug)]
pub struct TaskMessage {
    pub id: String,
    pub task: String,
    pub headers: Headers,
    /// The headers object exactly as sent (`{}` when there was none): what
    /// the guest's context carries, without serialising `headers` again.
    pub raw_headers: Box<RawValue>,
    pub properties: Properties,
    pub args: Box<RawValue>,
    pub kwargs: Box<RawValue>,
    pub embed: Embed,
}

impl TaskMessage {
    /// Parses an envelope as pushed by a Celery client (or by us). A
    /// message that does not parse is described by `recover`, keeping its
    /// id where one can be read.
    pub fn parse(envelope: &[u8]) -> Result<Self, MessageError> {
        let bad = |reason: String, headers: Option<&Headers>| {
            MessageError::new(reason, headers.and_then(|h| h.id.clone()), headers.and_then(|h| h.task.clone()))
        };
        // One UTF-8 check of the whole envelope, then `from_str`: parsing
        // from bytes checks every string and key on its own (~50 per
        // message), which cost a fifth of the parse.
        let text = std::str::from_utf8(envelope).map_err(|utf8| match serde_json::from_slice::<Value>(envelope) {
            Err(error) => super::recover::diagnose(envelope, &error),
            Ok(_) => MessageError::new(format!("envelope is not UTF-8: {utf8}"), None, None),
        })?;
        let diagnose = |error: serde_json::Error| super::recover::diagnose(envelope, &error);
        let envelope: Envelope = serde_json::from_str(text).map_err(diagnose)?;
        let (mut headers, raw_headers): (Headers, _) = match envelope.headers.filter(|raw| raw.get() != "null") {
            Some(raw) => (serde_json::from_str(raw.get()).map_err(diagnose)?, raw.to_owned()),
            None => (Headers::default(), RawValue::from_string("{}".into()).expect("literal")),
        };
        for field in ["id", "task"] {
            let value = if field == "id" { &mut headers.id } else { &mut headers.task };
            if value.as_ref().is_some_and(|text| text.len() > MAX_NAME) {
                // Too long to be a key or a name: not recoverable.
                *value = None;
                return Err(bad(format!("headers field `{field}` is longer than {MAX_NAME} bytes"), Some(&headers)));
            }
        }
        let (Some(id), Some(task)) = (headers.id.clone(), headers.task.clone()) else {
            return Err(bad("message has no `id` or `task` header (only Celery protocol 2 is supported)".into(), Some(&headers)));
        };
        if let Some(content_type) = &envelope.content_type {
            if content_type.as_ref() != "application/json" {
                return Err(bad(format!("unsupported content-type {content_type:?}: use the json serializer"), Some(&headers)));
            }
        }
        let body = match envelope.properties.body_encoding.as_deref() {
            Some("base64") | None => base64::engine::general_purpose::STANDARD
                .decode(envelope.body.as_bytes())
                .map_err(|error| bad(format!("body is not valid base64: {error}"), Some(&headers)))?,
            Some(other) => return Err(bad(format!("unsupported body_encoding {other:?}"), Some(&headers))),
        };
        let (args, kwargs, embed): (Box<RawValue>, Box<RawValue>, Option<Embed>) = serde_json::from_slice(&body)
            .map_err(|error| bad(format!("body is not [args, kwargs, embed]: {error}"), Some(&headers)))?;
        if !args.get().trim_start().starts_with('[') {
            return Err(bad("args is not a JSON array".into(), Some(&headers)));
        }
        if !kwargs.get().trim_start().starts_with('{') {
            return Err(bad("kwargs is not a JSON object".into(), Some(&headers)));
        }
        let embed = embed.unwrap_or_default();
        if let Some(queue) = reserved_queue(&envelope.properties, &embed) {
            return Err(bad(format!("queue {queue:?} names a key kombu or Chard keeps for itself: refused"), Some(&headers)));
        }
        Ok(Self { id, task, headers, raw_headers, properties: envelope.properties, args, kwargs, embed })
    }

    pub fn priority(&self) -> u8 {
        self.properties.priority.unwrap_or(0)
    }

    pub fn retries(&self) -> u32 {
        self.headers.retries.unwrap_or(0)
    }

    pub fn root_id(&self) -> &str {
        self.headers.root_id.as_deref().unwrap_or(&self.id)
    }
}

/// A task message to publish: from a client, or a retry/callback from a worker.
#[derive(Debug, Clone)]
pub struct OutgoingTask {
    pub id: String,
    pub task: String,
    pub args: Box<RawValue>,
    pub kwargs: Box<RawValue>,
    pub embed: Embed,
    pub queue: String,
    pub priority: u8,
    pub eta: Option<String>,
    pub expires: Option<String>,
    pub retries: u32,
    pub root_id: Option<String>,
    pub parent_id: Option<String>,
    pub group: Option<String>,
    pub group_index: Option<u32>,
    pub timelimit: (Option<f64>, Option<f64>),
    pub origin: String,
    pub reply_to: Option<String>,
    pub ignore_result: Option<bool>,
    /// Extra headers carried over (custom ones from the original message).
    pub extra_headers: Map<String, Value>,
}

impl OutgoingTask {
    pub fn new(task: &str, args: Box<RawValue>, kwargs: Box<RawValue>, origin: String) -> Self {
        let id = uuid::Uuid::new_v4().to_string();
        Self {
            root_id: Some(id.clone()),
            id,
            task: task.to_string(),
            args,
            kwargs,
            embed: Embed::default(),
            queue: "celery".to_string(),
            priority: 0,
            eta: None,
            expires: None,
            retries: 0,
            parent_id: None,
            group: None,
            group_index: None,
            timelimit: (None, None),
            origin,
            reply_to: None,
            ignore_result: None,
            extra_headers: Map::new(),
        }
    }

    /// The kombu envelope, exactly as a Celery 5.7 client writes it.
    pub fn to_envelope(&self) -> String {
        let body = serde_json::to_vec(&(&self.args, &self.kwargs, &self.embed)).expect("body serialises");
        let mut headers = self.extra_headers.clone();
        let mut put = |key: &str, value: Value| {
            headers.insert(key.to_string(), value);
        };
        put("lang", "py".into());
        put("task", self.task.clone().into());
        put("id", self.id.clone().into());
        put("shadow", Value::Null);
        put("eta", self.eta.clone().into());
        put("expires", self.expires.clone().into());
        put("group", self.group.clone().into());
        put("group_index", self.group_index.into());
        put("retries", self.retries.into());
        put("timelimit", serde_json::json!([self.timelimit.0, self.timelimit.1]));
        put("root_id", self.root_id.clone().unwrap_or_else(|| self.id.clone()).into());
        put("parent_id", self.parent_id.clone().into());
        // Display strings, as Python's repr (a Celery client's saferepr).
        put("argsrepr", super::repr::python_repr(self.args.get(), super::repr::REPR_LIMIT).into());
        put("kwargsrepr", super::repr::python_repr(self.kwargs.get(), super::repr::REPR_LIMIT).into());
        put("origin", self.origin.clone().into());
        put("ignore_result", self.ignore_result.into());
        // Extra headers with a default of their own: how deep in
        // `Task.replace` calls this message is, and stamps.
        headers.entry("replaced_task_nesting").or_insert(Value::from(0));
        headers.entry("stamped_headers").or_insert(Value::Null);
        headers.entry("stamps").or_insert_with(|| serde_json::json!({}));
        serde_json::json!({
            "body": base64::engine::general_purpose::STANDARD.encode(body),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": headers,
            "properties": {
                "correlation_id": self.id,
                "reply_to": self.reply_to,
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": self.queue},
                "priority": self.priority,
                "body_encoding": "base64",
                "delivery_tag": uuid::Uuid::new_v4().to_string(),
            },
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The envelope from the protocol notes' `send_task("math.add", [2, 3])` capture.
    const CAPTURED: &str = r#"{"body": "W1syLCAzXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwgImNob3JkIjogbnVsbH1d", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "math.add", "id": "e2f91c54", "shadow": null, "eta": null, "expires": null, "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "e2f91c54", "parent_id": null, "argsrepr": "[2, 3]", "kwargsrepr": "{}", "origin": "gen3432@vm", "ignore_result": null, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "e2f91c54", "reply_to": "162374f7", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "4d427416"}}"#;

    #[test]
    fn parses_a_captured_celery_message() {
        let message = TaskMessage::parse(CAPTURED.as_bytes()).unwrap();
        assert_eq!(message.task, "math.add");
        assert_eq!(message.id, "e2f91c54");
        assert_eq!(message.args.get(), "[2, 3]");
        assert_eq!(message.kwargs.get(), "{}");
        assert_eq!(message.properties.delivery_tag.as_deref(), Some("4d427416"));
        assert_eq!(message.headers.extra.get("stamps"), Some(&serde_json::json!({})));
    }

    #[test]
    fn the_headers_are_kept_as_sent_for_the_guest() {
        let message = TaskMessage::parse(CAPTURED.as_bytes()).unwrap();
        let raw = message.raw_headers.get();
        assert!(raw.starts_with(r#"{"lang": "py", "task": "math.add", "id": "e2f91c54""#), "{raw}");
        assert!(raw.ends_with(r#""stamped_headers": null, "stamps": {}}"#), "{raw}");
        let without = TaskMessage::parse(br#"{"body": "W1tdLCB7fSwgbnVsbF0=", "headers": null}"#).unwrap_err();
        assert!(without.reason.contains("no `id`"), "{}", without.reason);
    }

    #[test]
    fn an_envelope_that_is_not_utf8_says_so() {
        let mut bytes = CAPTURED.as_bytes().to_vec();
        let at = CAPTURED.find("gen3432").unwrap();
        bytes[at] = 0xff;
        let error = TaskMessage::parse(&bytes).unwrap_err();
        assert!(error.reason.contains("not a kombu JSON message"), "{}", error.reason);
    }

    #[test]
    fn our_envelope_parses_back() {
        let args = serde_json::value::to_raw_value(&serde_json::json!([1, 2])).unwrap();
        let kwargs = serde_json::value::to_raw_value(&serde_json::json!({"z": 3})).unwrap();
        let mut task = OutgoingTask::new("math.add", args, kwargs, "me@here".into());
        task.priority = 6;
        task.queue = "cpu".into();
        let message = TaskMessage::parse(task.to_envelope().as_bytes()).unwrap();
        assert_eq!(message.id, task.id);
        assert_eq!(message.args.get(), "[1,2]");
        assert_eq!(message.kwargs.get(), r#"{"z":3}"#);
        assert_eq!(message.priority(), 6);
        assert_eq!(message.properties.delivery_info.routing_key, "cpu");
    }

    #[test]
    fn argsrepr_is_what_a_python_client_would_show() {
        let args = serde_json::value::to_raw_value(&serde_json::json!(["héllo", true, null])).unwrap();
        let kwargs = serde_json::value::to_raw_value(&serde_json::json!({"z": 1.5})).unwrap();
        let task = OutgoingTask::new("faults.echo", args, kwargs, "me@here".into());
        let message = TaskMessage::parse(task.to_envelope().as_bytes()).unwrap();
        assert_eq!(message.headers.argsrepr.as_deref(), Some("['héllo', True, None]"));
        assert_eq!(message.headers.kwargsrepr.as_deref(), Some("{'z': 1.5}"));
    }

    #[test]
    fn malformed_messages_say_why_and_keep_the_id() {
        assert!(TaskMessage::parse(b"not json").unwrap_err().task_id.is_none());
        let error = TaskMessage::parse(br#"{"body": "!!!", "headers": {"id": "x1", "task": "math.add"}}"#).unwrap_err();
        assert_eq!(error.task_id.as_deref(), Some("x1"));
        assert!(error.reason.contains("base64"), "{}", error.reason);
        let error = TaskMessage::parse(br#"{"body": "", "headers": {"task": "math.add"}}"#).unwrap_err();
        assert!(error.reason.contains("no `id`"), "{}", error.reason);
    }
}
