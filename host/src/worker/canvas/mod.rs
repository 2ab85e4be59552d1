//! Celery's canvas as the worker applies it: signatures, chains, groups and
//! chords, from a signature and the parent's result to the messages to
//! publish and the chord sizes to record.
//!
//! A Python worker does not "publish a callback": it calls
//! `signature(cb).apply_async((retval,), ...)`, and when that signature is
//! a `celery.chain`, `celery.group` or `celery.chord` Celery's canvas code
//! (`celery/canvas.py`) decides which messages leave, with which ids,
//! `group`/`group_index`, `embed.chain` and `embed.chord`. A Chard worker
//! must send the same messages, or a chain after a chord never runs and a
//! chain inside a chord header never reports to its chord. So this module
//! ports that code path by path rather than inventing a model of its own:
//!
//! - [`node`]: a signature as a tree (`Node`), parsed from and written back
//!   to the JSON Celery sends (`Signature.from_dict` of each type, with the
//!   same quirks: a chain from JSON drops its own args, a group ignores
//!   them), plus Celery's `_merge`, `link`, `link_error`.
//! - [`freeze`]: `freeze()` of each type: ids, `group_id`, `group_index`
//!   and the `chord` option a chord header member carries.
//! - [`chain`]: `_chain.run` and `prepare_steps`: splicing nested chains,
//!   skipping empty groups, upgrading `group | task` to a chord.
//! - [`apply`]: `apply_async` of a task, a group and a chord, and turning
//!   the final options into a message (the only place options become
//!   headers and `embed`).
//! - [`worker`]: what `app/trace.py` and the result backend do after a task
//!   ends: callbacks, the next chain step, errbacks, failing the rest of a
//!   chain, firing or failing a chord body.
//!
//! - [`task`]: what a running task asks: `send` (a signature's
//!   `apply_async` from inside the task) and `replace` (`Task.replace`).
//! - [`typing`]: Celery's `Task.typing`, the argument check every task
//!   call passes before its message is made.
//!
//! Everything here is pure: the worker passes in who is running (the
//! parent of whatever is sent) and gets back [`Effects`] to write. Ids are
//! random (`uuid4`, as Celery's) unless the caller supplies them with
//! [`with_ids`]: what a task sends gets ids derived from the job, so a job
//! run again after a crash sends the same messages under the same ids.

mod apply;
mod chain;
mod freeze;
mod node;
mod task;
mod typing;
mod worker;


pub use task::{replace, send, Replaced};
pub use typing::{ArgumentError, Typing};
#[cfg(test)]
pub use typing::Unchecked;
pub use worker::{chord_body_failure, errbacks, fail_chain, fire_chord_body, on_success, ChainFailure};

use serde_json::Value;

use crate::protocol::{OutgoingTask, Routes};

/// The task whose worker applies a signature: Celery's
/// `current_worker_task`, which gives every message sent without an
/// explicit `parent_id`/`root_id` its lineage.
pub struct Context<'a> {
    pub task_id: &'a str,
    pub root_id: &'a str,
    /// Queue for a signature that names none and has no route.
    pub default_queue: &'a str,
    pub hostname: &'a str,
    pub routes: &'a Routes,
    /// The client's reply address, for messages whose signature has none.
    pub reply_to: Option<&'a str>,
    /// How the tasks this worker serves can be called.
    pub typing: &'a dyn Typing,
}

/// What applying signatures produced.
#[derive(Default, Debug)]
pub struct Effects {
    pub messages: Vec<OutgoingTask>,
    /// `(group_id, size)` of every chord whose header was sent: the
    /// backend's `set_chord_size`, to write before the header is published.
    pub chord_sizes: Vec<(String, u64)>,
    /// `(group_id, GroupResult document)` of every chord sent whose header
    /// holds a group result: Celery's Redis `apply_chord` saves it, and the
    /// worker that completes the chord joins it (`protocol::group_result`).
    /// Written with the sizes.
    pub saved_headers: Vec<(String, String)>,
    /// What Celery's `add_trail` records on the running task as it sends:
    /// each message's `AsyncResult.as_tuple()`, a group as one
    /// `GroupResult` tuple. Stored as the result's `children`.
    pub children: Vec<Value>,
    /// The `TypeError` of a call whose arguments did not bind ([`typing`]):
    /// applying stopped there, as Celery's stops where it raises. What is
    /// above was applied before it and stays; the caller decides what the
    /// error fails.
    pub raised: Option<ArgumentError>,
}

thread_local! {
    /// Where [`new_id`] takes ids from while [`with_ids`] runs.
    static IDS: std::cell::RefCell<Option<Box<dyn FnMut() -> String>>> = const { std::cell::RefCell::new(None) };
}

fn new_id() -> String {
    IDS.with(|ids| ids.borrow_mut().as_mut().map(|next| next())).unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Ids that are the same each time for the same `seed`: UUIDv5s of
/// `<seed>:1`, `<seed>:2`, ... in `namespace`, for [`with_ids`].
pub fn derived_ids(namespace: uuid::Uuid, seed: String) -> impl FnMut() -> String + 'static {
    let mut count = 0u32;
    move || {
        count += 1;
        uuid::Uuid::new_v5(&namespace, format!("{seed}:{count}").as_bytes()).to_string()
    }
}

/// Runs `apply` with every id the canvas makes up taken from `ids`
/// (instead of random ones). The canvas code is synchronous and runs on
/// the caller's thread, so a thread-local source reaches all of it without
/// threading a generator through every port of Celery's functions.
pub fn with_ids<T>(ids: impl FnMut() -> String + 'static, apply: impl FnOnce() -> T) -> T {
    struct Restore(Option<Box<dyn FnMut() -> String>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            IDS.with(|ids| *ids.borrow_mut() = previous);
        }
    }
    let _restore = Restore(IDS.with(|cell| cell.replace(Some(Box::new(ids)))));
    apply()
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::protocol::{Embed, Signature};

    fn task(name: &str, id: &str) -> Value {
        json!({"task": name, "args": [], "kwargs": {}, "options": {"task_id": id}, "subtask_type": null, "immutable": false})
    }

    fn run(embed: Embed) -> Effects {
        let routes = Routes::default();
        let cx = Context { task_id: "parent", root_id: "root", default_queue: "celery", hostname: "w@test", routes: &routes, reply_to: None, typing: &Unchecked };
        on_success(&embed, &json!(5), &cx)
    }

    #[test]
    fn a_chord_step_carries_the_rest_of_the_chain_on_its_body() {
        let chord = json!({"task": "celery.chord", "args": [], "kwargs": {"kwargs": {}, "header": [task("t.a", "h1"), task("t.a", "h2")], "body": task("t.b", "body")},
                           "options": {}, "subtask_type": "chord", "immutable": false});
        let chain: Vec<Signature> = serde_json::from_value(json!([task("t.c", "after"), chord])).unwrap();
        let effects = run(Embed { chain: Some(chain), ..Embed::default() });
        assert_eq!(effects.messages.len(), 2, "the two header tasks");
        let group = effects.messages[0].group.clone().expect("a header task is in the chord's group");
        assert_eq!(effects.chord_sizes, vec![(group.clone(), 2)]);
        for (index, message) in effects.messages.iter().enumerate() {
            assert_eq!(message.args.get(), "[5]");
            assert_eq!(message.group_index, Some(index as u32));
            assert_eq!((message.parent_id.as_deref(), message.root_id.as_deref()), (Some("parent"), Some("root")));
            let body = message.embed.chord.as_ref().expect("the body rides on each header task");
            assert_eq!(body.options["task_id"], json!("body"));
            assert_eq!(body.options["group_id"], json!(group));
            assert_eq!(body.options["chain"][0]["options"]["task_id"], json!("after"));
        }
    }

    #[test]
    fn a_chord_whose_header_holds_a_group_result_saves_the_header_as_celery_s_apply_chord_does() {
        let group = json!({"task": "celery.group", "args": [], "kwargs": {"tasks": [task("t.a", "g1"), task("t.a", "g2")]},
                           "options": {"task_id": "inner"}, "subtask_type": "group", "immutable": false});
        let ends_in_group = json!({"task": "celery.chain", "args": [], "kwargs": {"tasks": [task("t.b", "first"), group]},
                                   "options": {}, "subtask_type": "chain", "immutable": false});
        let chord = json!({"task": "celery.chord", "args": [], "kwargs": {"kwargs": {}, "header": [task("t.a", "plain"), ends_in_group], "body": task("t.c", "body")},
                           "options": {}, "subtask_type": "chord", "immutable": false});
        let callbacks: Vec<Signature> = serde_json::from_value(json!([chord])).unwrap();
        let effects = run(Embed { callbacks: Some(callbacks), ..Embed::default() });
        let (group_id, size) = effects.chord_sizes[0].clone();
        assert_eq!(size, 3);
        let saved: Value = serde_json::from_str(&effects.saved_headers[0].1).unwrap();
        assert_eq!(effects.saved_headers[0].0, group_id);
        assert_eq!(saved, json!({"result": [[group_id, null], [[["plain", null], null], [["inner", null], [[["g1", null], null], [["g2", null], null]]]]]}));
    }

    #[test]
    fn a_chord_of_plain_results_saves_nothing() {
        let chord = json!({"task": "celery.chord", "args": [], "kwargs": {"kwargs": {}, "header": [task("t.a", "h1"), task("t.a", "h2")], "body": task("t.c", "body")},
                           "options": {}, "subtask_type": "chord", "immutable": false});
        let callbacks: Vec<Signature> = serde_json::from_value(json!([chord])).unwrap();
        let effects = run(Embed { callbacks: Some(callbacks), ..Embed::default() });
        assert_eq!(effects.chord_sizes.len(), 1);
        assert!(effects.saved_headers.is_empty());
    }

    /// Takes exactly two positional arguments, as `def two(x, y)`.
    struct Strict;

    impl Typing for Strict {
        fn check(&self, task: &str, args: &[Value], _: &serde_json::Map<String, Value>) -> Result<(), String> {
            match (task, args.len()) {
                ("t.two", 2) | ("t.a" | "t.b" | "t.c", _) => Ok(()),
                (_, 1) => Err("two() takes 2 positional arguments but 1 was given".into()),
                (_, given) => Err(format!("two() takes 2 positional arguments but {given} were given")),
            }
        }
    }

    #[test]
    fn a_call_that_cannot_bind_stops_the_applying_where_it_is_as_celery_s_type_error_does() {
        let group = json!({"task": "celery.group", "args": [], "kwargs": {"tasks": [task("t.a", "m1"), task("t.two", "m2"), task("t.a", "m3")]},
                           "options": {}, "subtask_type": "group", "immutable": false});
        let callbacks: Vec<Signature> = serde_json::from_value(json!([group])).unwrap();
        let routes = Routes::default();
        let cx = Context { task_id: "parent", root_id: "root", default_queue: "celery", hostname: "w@test", routes: &routes, reply_to: None, typing: &Strict };
        let embed = Embed { callbacks: Some(callbacks), ..Embed::default() };
        let effects = on_success(&embed, &json!(5), &cx);
        let ids: Vec<&str> = effects.messages.iter().map(|message| message.id.as_str()).collect();
        assert_eq!(ids, ["m1"], "the member before the one that raised is sent, none after");
        assert_eq!(effects.raised, Some(ArgumentError("two() takes 2 positional arguments but 1 was given".into())));
        assert!(effects.children.is_empty(), "Celery records the group on the sender only after its loop");

        // The same member with both arguments binds, and everything is sent.
        let group = json!({"task": "celery.group", "args": [], "kwargs": {"tasks": [task("t.a", "m1"), {"task": "t.two", "args": [1], "kwargs": {}, "options": {"task_id": "m2"}, "subtask_type": null, "immutable": false}]},
                           "options": {}, "subtask_type": "group", "immutable": false});
        let embed = Embed { callbacks: Some(serde_json::from_value(json!([group])).unwrap()), ..Embed::default() };
        let effects = on_success(&embed, &json!(5), &cx);
        assert_eq!(effects.messages.len(), 2);
        assert_eq!(effects.raised, None);
    }

    #[test]
    fn a_group_callback_followed_by_nothing_sends_each_member_with_the_result() {
        let group = json!({"task": "celery.group", "args": [], "kwargs": {"tasks": [task("t.a", "m1"), {"task": "celery.group", "args": [], "kwargs": {"tasks": []}, "options": {}, "subtask_type": "group", "immutable": false}, task("t.a", "m2")]},
                           "options": {}, "subtask_type": "group", "immutable": false});
        let callbacks: Vec<Signature> = serde_json::from_value(json!([group])).unwrap();
        let effects = run(Embed { callbacks: Some(callbacks), ..Embed::default() });
        let ids: Vec<&str> = effects.messages.iter().map(|message| message.id.as_str()).collect();
        assert_eq!(ids, ["m1", "m2"], "the empty nested group sends nothing");
        assert_eq!(effects.messages[1].group_index, Some(2), "indices count the members as written, as Celery's _prepared");
        assert!(effects.chord_sizes.is_empty());
    }
}
