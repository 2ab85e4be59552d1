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
//! Everything here is pure: the worker passes in who is running (the
//! parent of whatever is sent) and gets back [`Effects`] to write.

mod apply;
mod chain;
mod freeze;
mod node;
mod worker;


pub use worker::{chord_body_failure, errbacks, fail_chain, fire_chord_body, on_success, ChainFailure};

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
}

/// What applying signatures produced.
#[derive(Default, Debug)]
pub struct Effects {
    pub messages: Vec<OutgoingTask>,
    /// `(group_id, size)` of every chord whose header was sent: the
    /// backend's `set_chord_size`, to write before the header is published.
    pub chord_sizes: Vec<(String, u64)>,
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
