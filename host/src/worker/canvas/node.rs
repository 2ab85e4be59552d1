//! A signature as a tree, read from and written back to Celery's JSON.
//!
//! Celery rebuilds every embedded signature with `Signature.from_dict`,
//! which picks the class from `subtask_type`; the quirks of each class's
//! `from_dict` are kept because they decide what a Python worker sends:
//! a chain keeps only its tasks and options (its own args and `immutable`
//! are dropped), a group's own args are never used, a chord keeps its
//! args. Any other `subtask_type` (`xmap`, `chunks`, ...) names a built-in
//! task and is sent like a plain task.

use serde_json::{json, Map, Value};

use crate::protocol::Signature;

#[derive(Debug, Clone)]
pub struct Node {
    pub task: String,
    pub args: Vec<Value>,
    /// A plain task's kwargs; a chord's `kwargs.kwargs`; empty otherwise.
    pub kwargs: Map<String, Value>,
    pub options: Map<String, Value>,
    pub immutable: bool,
    pub subtask_type: Option<String>,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub enum Kind {
    Task,
    Chain(Vec<Node>),
    Group(Vec<Node>),
    Chord {
        header: Vec<Node>,
        /// The header's own group options when it arrived as a group
        /// (after a freeze: its `task_id` is the chord's group id).
        header_options: Option<Map<String, Value>>,
        body: Option<Box<Node>>,
    },
}

impl Node {
    pub fn from_value(value: &Value) -> Option<Node> {
        let object = value.as_object()?;
        let task = object.get("task").and_then(Value::as_str).unwrap_or_default().to_string();
        let args = match object.get("args") {
            Some(Value::Array(args)) => args.clone(),
            _ => Vec::new(),
        };
        let kwargs = object.get("kwargs").and_then(Value::as_object).cloned().unwrap_or_default();
        let options = object.get("options").and_then(Value::as_object).cloned().unwrap_or_default();
        let immutable = object.get("immutable").and_then(Value::as_bool).unwrap_or(false);
        let subtask_type = object.get("subtask_type").and_then(Value::as_str).map(str::to_string);
        let members = |value: Option<&Value>| -> Vec<Node> {
            match value {
                Some(Value::Array(items)) => items.iter().filter_map(Node::from_value).collect(),
                _ => Vec::new(),
            }
        };
        let node = |kind, args, kwargs, immutable| Node { task: task.clone(), args, kwargs, options: options.clone(), immutable, subtask_type: subtask_type.clone(), kind };
        Some(match subtask_type.as_deref() {
            Some("chain") => node(Kind::Chain(members(kwargs.get("tasks"))), Vec::new(), Map::new(), false),
            Some("group") => node(Kind::Group(members(kwargs.get("tasks"))), args, Map::new(), immutable),
            Some("chord") => {
                // `_maybe_group`: a group or chain header gives its tasks.
                let (header, header_options) = match kwargs.get("header") {
                    Some(Value::Array(_)) => (members(kwargs.get("header")), None),
                    Some(header @ Value::Object(_)) => match Node::from_value(header) {
                        Some(Node { kind: Kind::Group(tasks), options, .. }) => (tasks, Some(options)),
                        Some(Node { kind: Kind::Chain(tasks), .. }) => (tasks, None),
                        Some(single) => (vec![single], None),
                        None => (Vec::new(), None),
                    },
                    _ => (Vec::new(), None),
                };
                let body = kwargs.get("body").and_then(Node::from_value).map(Box::new);
                let inner = kwargs.get("kwargs").and_then(Value::as_object).cloned().unwrap_or_default();
                node(Kind::Chord { header, header_options, body }, args, inner, immutable)
            }
            _ => node(Kind::Task, args, kwargs.clone(), immutable),
        })
    }

    pub fn from_signature(signature: &Signature) -> Option<Node> {
        Node::from_value(&serde_json::to_value(signature).ok()?)
    }

    pub fn to_value(&self) -> Value {
        let (task, kwargs, subtask_type) = match &self.kind {
            Kind::Task => (self.task.clone(), Value::Object(self.kwargs.clone()), self.subtask_type.clone().map(Value::String).unwrap_or(Value::Null)),
            Kind::Chain(tasks) => ("celery.chain".into(), json!({"tasks": values(tasks)}), "chain".into()),
            Kind::Group(tasks) => ("celery.group".into(), json!({"tasks": values(tasks)}), "group".into()),
            Kind::Chord { header, header_options, body } => {
                let header = match header_options {
                    Some(options) => Node { options: options.clone(), ..Node::group(header.clone()) }.to_value(),
                    None => Value::Array(values(header)),
                };
                let body = body.as_ref().map(|body| body.to_value()).unwrap_or(Value::Null);
                ("celery.chord".into(), json!({"kwargs": self.kwargs, "header": header, "body": body}), "chord".into())
            }
        };
        json!({
            "task": task,
            "args": self.args,
            "kwargs": kwargs,
            "options": self.options,
            "subtask_type": subtask_type,
            "immutable": self.immutable,
        })
    }

    /// `signature(name)`: a plain task with no arguments or options.
    pub fn task(name: &str) -> Node {
        Node { task: name.into(), args: Vec::new(), kwargs: Map::new(), options: Map::new(), immutable: false, subtask_type: None, kind: Kind::Task }
    }

    fn chain(tasks: Vec<Node>) -> Node {
        Node { task: "celery.chain".into(), subtask_type: Some("chain".into()), kind: Kind::Chain(tasks), ..Node::task("") }
    }

    /// `Signature.set(key=value)`; `None` clears the option, as setting it
    /// to `None` does in Celery.
    pub fn set(&mut self, key: &str, value: Option<Value>) {
        match value {
            Some(value) => self.options.insert(key.into(), value),
            None => self.options.remove(key),
        };
    }

    /// `_chain.unchain_tasks`: the chain's tasks, its links moved to the
    /// last one and its errbacks to each.
    pub fn unchain_tasks(&self) -> Vec<Node> {
        let Kind::Chain(tasks) = &self.kind else { return vec![self.clone()] };
        let mut tasks = tasks.clone();
        if let Some(last) = tasks.last_mut() {
            for link in as_list(self.options.get("link")) {
                last.link(link);
            }
        }
        for errback in as_list(self.options.get("link_error")) {
            tasks.iter_mut().for_each(|task| task.link_error(&errback));
        }
        tasks
    }

    /// `self | other` of each type (Celery 5.7's `__or__` methods): a group
    /// followed by anything is a chord; a chord followed by a task (or a
    /// chord, or a group of one) extends its body; a chain ending in a group
    /// or chord upgrades or extends that step, and is otherwise rebuilt from
    /// its tasks plus the other's (its own options dropped, as Celery
    /// does); anything else makes a chain of the two.
    pub fn or(self, other: Node) -> Node {
        match (&self.kind, &other.kind) {
            (Kind::Group(_), _) => {
                let Kind::Group(tasks) = self.kind else { unreachable!("matched a group") };
                let chord = Kind::Chord { header: tasks, header_options: None, body: Some(Box::new(other)) };
                Node { task: "celery.chord".into(), subtask_type: Some("chord".into()), kind: chord, ..Node::task("") }
            }
            (Kind::Chord { .. }, Kind::Task | Kind::Chord { .. }) => self.or_body(other),
            (Kind::Chord { .. }, Kind::Group(tasks)) if tasks.len() == 1 => self.or_body(other.unroll_group()),
            (Kind::Chain(_), Kind::Group(tasks)) if tasks.len() == 1 => self.or(other.unroll_group()),
            (Kind::Chain(_), Kind::Group(_)) => {
                let mut tasks = self.unchain_tasks();
                match tasks.last_mut() {
                    None => return other,
                    Some(last @ Node { kind: Kind::Chord { .. }, .. }) => {
                        let chord = std::mem::replace(last, Node::task(""));
                        *last = chord.or_body(other);
                    }
                    Some(_) => tasks.push(other),
                }
                Node::chain(tasks)
            }
            (Kind::Chain(_), Kind::Chain(_)) => other.unchain_tasks().into_iter().fold(self, Node::or),
            (Kind::Chain(tasks), _) if matches!(tasks.last(), Some(Node { kind: Kind::Group(_), .. })) => {
                let mut chain = self;
                let Kind::Chain(tasks) = &mut chain.kind else { unreachable!("matched a chain") };
                let group = tasks.pop().expect("ends in a group");
                let chord = group.or(other);
                match tasks.last_mut() {
                    Some(previous @ Node { kind: Kind::Chord { .. }, .. }) => {
                        let earlier = std::mem::replace(previous, Node::task(""));
                        *previous = earlier.or_body(chord);
                    }
                    _ => tasks.push(chord),
                }
                chain
            }
            (Kind::Chain(tasks), Kind::Task) if matches!(tasks.last(), Some(Node { kind: Kind::Chord { .. }, .. })) => {
                let mut chain = self;
                let Kind::Chain(tasks) = &mut chain.kind else { unreachable!("matched a chain") };
                let chord = tasks.pop().expect("ends in a chord");
                tasks.push(chord.or_body(other));
                chain
            }
            (Kind::Chain(_), _) => {
                let mut tasks = self.unchain_tasks();
                tasks.push(other);
                Node::chain(tasks)
            }
            (_, Kind::Chain(_)) => {
                let mut tasks = vec![self];
                tasks.extend(other.unchain_tasks());
                Node::chain(tasks)
            }
            _ => Node::chain(vec![self, other.unroll_group()]),
        }
    }

    /// A chord's `sig.body = sig.body | other`.
    fn or_body(mut self, other: Node) -> Node {
        if let Kind::Chord { body: Some(body), .. } = &mut self.kind {
            let current = std::mem::replace(body.as_mut(), Node::task(""));
            **body = current.or(other);
        }
        self
    }

    /// `group(tasks)`, as the worker builds one for callbacks and errbacks.
    pub fn group(tasks: Vec<Node>) -> Node {
        Node { task: "celery.group".into(), args: Vec::new(), kwargs: Map::new(), options: Map::new(), immutable: false, subtask_type: Some("group".into()), kind: Kind::Group(tasks) }
    }

    pub fn id(&self) -> Option<&str> {
        self.options.get("task_id").and_then(Value::as_str)
    }

    pub fn option_str(&self, key: &str) -> Option<&str> {
        self.options.get(key).and_then(Value::as_str)
    }

    pub fn is_empty_group(&self) -> bool {
        matches!(&self.kind, Kind::Group(tasks) if tasks.is_empty())
    }

    /// `maybe_unroll_group`: a group of one is that one.
    pub fn unroll_group(self) -> Node {
        match self.kind {
            Kind::Group(mut tasks) if tasks.len() == 1 => tasks.remove(0),
            _ => self,
        }
    }

    /// `Signature._merge`: partial args go first unless immutable; new
    /// options win, except `group_id` and stamped headers already set.
    pub fn merge(&self, args: &[Value], options: &Map<String, Value>) -> (Vec<Value>, Map<String, Value>) {
        let mut merged = self.options.clone();
        let stamped: Vec<String> = match self.options.get("stamped_headers") {
            Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            _ => Vec::new(),
        };
        for (key, value) in options {
            let fixed = key == "group_id" || key == "stamped_headers" || stamped.contains(key);
            if !(fixed && self.options.contains_key(key)) {
                merged.insert(key.clone(), value.clone());
            }
        }
        let args = if self.immutable || args.is_empty() { self.args.clone() } else { args.iter().chain(&self.args).cloned().collect() };
        (args, merged)
    }

    /// `Signature.clone(args, **options)`.
    pub fn clone_with(&self, args: &[Value], options: &Map<String, Value>) -> Node {
        let (args, options) = self.merge(args, options);
        Node { args, options, ..self.clone() }
    }

    /// `append_to_list_option`: add once, turning a single value into a list.
    pub fn append_option(&mut self, key: &str, value: Value) {
        let items = list_option(&mut self.options, key);
        if !items.contains(&value) {
            items.push(value);
        }
    }

    /// `extend_list_option`.
    pub fn extend_option(&mut self, key: &str, value: &Value) {
        let items = list_option(&mut self.options, key);
        match value {
            Value::Array(values) => items.extend(values.iter().cloned()),
            Value::Null => {}
            other => items.push(other.clone()),
        }
    }

    /// `link()` of each type.
    pub fn link(&mut self, callback: Value) {
        match &mut self.kind {
            Kind::Group(tasks) if !tasks.is_empty() => {
                let mut callback = callback;
                callback["immutable"] = Value::Bool(true);
                tasks[0].link(callback);
            }
            Kind::Chord { body: Some(body), .. } => body.link(callback),
            _ => self.append_option("link", callback),
        }
    }

    /// `link_error()` of each type (`task_allow_error_cb_on_chord_header`
    /// off, Celery's default: a chord's errback goes to its body, and to
    /// chords nested in its header).
    pub fn link_error(&mut self, errback: &Value) {
        match &mut self.kind {
            Kind::Group(tasks) => tasks.iter_mut().for_each(|task| task.link_error(errback)),
            Kind::Chord { header, body, .. } => {
                for task in header.iter_mut().filter(|task| matches!(task.kind, Kind::Chord { .. })) {
                    task.link_error(errback);
                }
                if let Some(body) = body {
                    body.link_error(errback);
                }
            }
            _ => self.append_option("link_error", errback.clone()),
        }
    }
}

fn list_option<'a>(options: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    let entry = options.entry(key.to_string()).or_insert_with(|| Value::Array(Vec::new()));
    if !entry.is_array() {
        let single = entry.take();
        *entry = Value::Array(if single.is_null() { Vec::new() } else { vec![single] });
    }
    entry.as_array_mut().expect("made a list above")
}

fn values(nodes: &[Node]) -> Vec<Value> {
    nodes.iter().map(Node::to_value).collect()
}

/// `maybe_list`: a single value or a list, as a list.
pub fn as_list(value: Option<&Value>) -> Vec<Value> {
    match value {
        Some(Value::Array(items)) => items.clone(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![other.clone()],
    }
}
