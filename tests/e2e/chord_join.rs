//! How a chord completes: the header size that comes after its members,
//! redelivered members, and a header holding a group result, which Celery
//! saves as a `GroupResult` and joins nested (`worker/chord.rs`,
//! `protocol/group_result.rs`). The expected values are a Python worker's
//! for the same canvases (`canvas_fuzz.py shapes` on both).

use std::time::Duration;

use chard::protocol::{OutgoingTask, Signature};
use redis::Commands;
use serde_json::{json, Value};

use crate::util::{eventually, plugin_folder, run_python, CeleryWorker, RedisServer, Worker};

fn ready(redis: &RedisServer, id: &str) -> Option<Value> {
    let doc: Option<String> = redis.connection(1).get(format!("celery-task-meta-{id}")).ok()?;
    doc.and_then(|doc| serde_json::from_str::<Value>(&doc).ok()).filter(|doc| doc["status"] != json!("STARTED"))
}

fn member(group_id: &str, index: u32, args: Value, body: &Signature) -> OutgoingTask {
    let raw = |value: Value| serde_json::value::to_raw_value(&value).unwrap();
    let mut task = OutgoingTask::new("canvas.add", raw(args), raw(json!({})), "client@test".into());
    task.group = Some(group_id.to_string());
    task.group_index = Some(index);
    task.embed.chord = Some(body.clone());
    task
}

fn push(redis: &RedisServer, task: &OutgoingTask) {
    let _: () = redis.connection(0).lpush("celery", task.to_envelope()).unwrap();
}

/// Seed 11 canvas 36 lost its body's result in one of two runs: Celery's
/// group records a chord's size only as it sends the header's last member,
/// so a fast worker had finished (and joined) every counting member before
/// the size was there, and the last member (an empty chord) counts for
/// nothing, so no join came after it. Here the members finish, then the
/// size is written, as that client did: the body still fires, once, with
/// both results. A member delivered twice counts once.
#[test]
fn a_chord_whose_size_is_recorded_after_its_members_finished_still_fires_once() {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["canvas"]);
    let worker = Worker::start(plugins.path(), &redis.url(0), &["--result-backend", &redis.url(1), "-c", "1"]);
    let group_id = uuid::Uuid::new_v4().to_string();
    let body_id = uuid::Uuid::new_v4().to_string();
    let mut body = Signature::new("canvas.tsum", vec![], Default::default());
    body.options.insert("task_id".into(), json!(body_id));
    let first = member(&group_id, 0, json!([1, 2]), &body);
    let second = member(&group_id, 1, json!([3, 4]), &body);
    push(&redis, &first);
    push(&redis, &first);
    push(&redis, &second);
    for id in [&first.id, &second.id] {
        eventually(Duration::from_secs(30), "a header member's result", || ready(&redis, id));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ready(&redis, &body_id), None, "no size yet: the chord cannot be complete");
    let _: () = redis.connection(1).set(format!("celery-taskset-meta-{group_id}.s"), 2).unwrap();
    let doc = eventually(Duration::from_secs(30), "the chord body's result", || ready(&redis, &body_id));
    assert_eq!((&doc["status"], &doc["result"]), (&json!("SUCCESS"), &json!(10)), "{doc}");
    // Once only, even with a member delivered again after it fired.
    push(&redis, &second);
    eventually(Duration::from_secs(10), "the queue drained", || (redis.connection(0).llen::<_, i64>("celery").unwrap() == 0).then_some(()));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(worker.log().matches("chord complete").count(), 1, "{}", worker.log());
    assert_eq!(worker.log().matches(&format!("id={body_id}")).count(), 0, "the body (tsum of two ints) succeeded quietly");
}

/// Runs one chord shape of `canvas_fuzz.py shapes` on a Chard worker.
fn shape(name: &str) -> Value {
    let redis = RedisServer::start();
    let plugins = plugin_folder(&["canvas"]);
    let _worker = Worker::start(plugins.path(), &redis.url(0), &["--result-backend", &redis.url(1), "-c", "2"]);
    run_python("canvas_fuzz.py", &["shapes", &redis.url(0), &redis.url(1), name])[name].clone()
}

/// A group in a header is not a group result: Celery flattens it into the
/// header (reversed, by `extendleft`), and the body gets flat results.
#[test]
fn a_group_in_a_chord_header_is_flattened_as_celery_flattens_it() {
    assert_eq!(shape("group_in_header"), json!([4, 2, 6]));
}

#[test]
fn a_chain_ending_in_a_group_in_a_chord_header_gives_the_body_a_nested_list() {
    assert_eq!(shape("chain_ending_in_group"), json!([14, [3, 4]]));
}

#[test]
fn a_chord_of_a_group_in_a_chord_header_gives_the_body_its_group_s_results() {
    assert_eq!(shape("chord_of_group_in_header"), json!([[[7], [7]]]));
}

/// Seed 11 canvas 58: a chord whose body is an empty group, in a header.
#[test]
fn an_empty_group_result_in_a_chord_header_is_an_empty_list() {
    assert_eq!(shape("empty_group_in_header"), json!([14, []]));
}

/// An empty group at the end of a chain is dropped (the chain's result is
/// its last task's): nothing nested.
#[test]
fn an_empty_group_ending_a_chain_in_a_chord_header_is_dropped() {
    assert_eq!(shape("empty_group_ending_a_chain"), json!([14, 1]));
}

/// A failure inside a nested group result fails the body with Celery's
/// `ChordError("Join error: <repr>")` (not `Dependency ... raised`).
#[test]
fn a_failing_member_of_a_nested_group_fails_the_body_with_a_join_error() {
    let expected = json!({"state": "FAILURE", "type": "ChordError", "args": ["Join error: ValueError('boom')"]});
    assert_eq!(shape("failing_nested_member"), expected);
}

/// The same for a group body: the join error has no cause, so each of
/// the body's tasks fails with that ChordError too.
#[test]
fn a_join_error_fails_each_task_of_a_group_body_with_the_chord_error() {
    let expected = json!({"state": "FAILURE", "type": "ChordError", "args": ["Join error: ValueError('boom')"]});
    assert_eq!(shape("failing_nested_member_group_body"), json!([expected, expected]));
}

/// A chord sent by a Chard worker (a chain step) is saved where Celery
/// saves it, so a Python worker completing it joins it nested; and one a
/// Python worker sends is joined nested by a Chard worker.
#[test]
fn a_group_result_header_is_shared_between_chard_and_python_workers_both_ways() {
    let plugins = plugin_folder(&["canvas"]);
    for (chard_queue, python_queue) in [("applier", "completer"), ("completer", "applier")] {
        let redis = RedisServer::start();
        let _chard = Worker::start(plugins.path(), &redis.url(0), &["--result-backend", &redis.url(1), "-c", "1", "-Q", chard_queue]);
        let _python = CeleryWorker::start_with(&redis.url(0), &redis.url(1), &["-Q", python_queue]);
        let seen = run_python("canvas_fuzz.py", &["mixed", &redis.url(0), &redis.url(1)]);
        let failing = json!({"state": "FAILURE", "type": "ChordError", "args": ["Join error: ValueError('boom')"]});
        assert_eq!(seen, json!({"nested": [14, [3, 4]], "failing": failing}), "Chard on {chard_queue}, Python on {python_queue}");
    }
}
