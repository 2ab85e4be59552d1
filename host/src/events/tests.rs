//! The event bodies against the captures of Celery 5.7 in
//! `shared/celery-protocol.md` §8: same fields, same order, same types.

use serde_json::{json, Value};

use super::*;
use crate::protocol::OutgoingTask;

fn message(args: &str, argsrepr: Option<&str>) -> TaskMessage {
    let raw = |text: &str| serde_json::value::RawValue::from_string(text.to_string()).unwrap();
    let outgoing = OutgoingTask::new("math.add", raw(args), raw("{}"), "client@here".into());
    let mut envelope: Value = serde_json::from_str(&outgoing.to_envelope()).unwrap();
    match argsrepr {
        Some(text) => envelope["headers"]["argsrepr"] = json!(text),
        None => {
            envelope["headers"].as_object_mut().unwrap().remove("argsrepr");
        }
    }
    TaskMessage::parse(envelope.to_string().as_bytes()).unwrap()
}

/// The buffered events as they go on the wire, with their keys in order.
fn flushed(events: &Events) -> Vec<(Vec<String>, Value)> {
    events
        .take_buffered()
        .iter()
        .map(|event| {
            let text = serde_json::to_string(&event.body(events, 0.0)).unwrap();
            let keys = key_order(&text);
            (keys, serde_json::from_str(&text).unwrap())
        })
        .collect()
}

/// Top-level keys in the order they appear in a JSON object's text.
fn key_order(text: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut deserializer = serde_json::Deserializer::from_str(text);
    struct Keys<'a>(&'a mut Vec<String>);
    impl<'de> serde::de::Visitor<'de> for Keys<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some((key, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                self.0.push(key);
            }
            Ok(())
        }
    }
    serde::Deserializer::deserialize_map(&mut deserializer, Keys(&mut keys)).unwrap();
    keys
}

fn strings(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|key| key.to_string()).collect()
}

#[test]
fn task_events_match_the_capture() {
    let events = Events::new("w1@proto", true);
    let message = message("[2, 3]", Some("[2, 3]"));
    events.received(Some("tag1"), &message);
    events.started(Some("tag1"), &message.id);
    let success = Ending { state: State::Success, exception: None };
    events.ended(&message.id, &success, Some("5"), Duration::from_micros(2132));
    let flushed = flushed(&events);
    assert_eq!(flushed.len(), 3);

    let (keys, received) = &flushed[0];
    assert_eq!(
        keys,
        &strings(&[
            "hostname", "utcoffset", "pid", "clock", "uuid", "name", "args", "kwargs", "root_id", "parent_id", "retries", "eta",
            "expires", "timestamp", "type"
        ])
    );
    assert_eq!(received["type"], "task-received");
    assert_eq!(received["hostname"], "w1@proto");
    assert_eq!(received["utcoffset"], json!(0.0));
    assert_eq!(received["pid"], json!(std::process::id()));
    assert_eq!(received["name"], "math.add");
    assert_eq!(received["args"], "[2, 3]");
    assert_eq!(received["kwargs"], "{}");
    assert_eq!(received["root_id"], json!(message.id));
    assert_eq!(received["parent_id"], Value::Null);
    assert_eq!(received["retries"], 0);
    assert!(received["timestamp"].as_f64().unwrap() > 1.7e9);

    let (keys, started) = &flushed[1];
    assert_eq!(keys, &strings(&["hostname", "utcoffset", "pid", "clock", "uuid", "timestamp", "type"]));
    assert_eq!(started["type"], "task-started");

    let (keys, succeeded) = &flushed[2];
    assert_eq!(keys, &strings(&["hostname", "utcoffset", "pid", "clock", "uuid", "result", "runtime", "timestamp", "type"]));
    assert_eq!(succeeded["result"], "5");
    assert_eq!(succeeded["runtime"], json!(0.002132));
    let clocks: Vec<u64> = flushed.iter().map(|(_, event)| event["clock"].as_u64().unwrap()).collect();
    assert!(clocks.windows(2).all(|pair| pair[0] < pair[1]), "{clocks:?}");
}

#[test]
fn reprs_are_rendered_when_the_message_has_none() {
    let events = Events::new("w1@proto", true);
    events.received(None, &message(r#"["héllo", true, null, {"k": 1.5}]"#, None));
    let id = "t-1";
    events.ended(id, &Ending { state: State::Success, exception: None }, Some(r#"{"s": "x", "n": [1, 2]}"#), Duration::ZERO);
    let flushed = flushed(&events);
    assert_eq!(flushed[0].1["args"], "['héllo', True, None, {'k': 1.5}]");
    assert_eq!(flushed[1].1["result"], "{'s': 'x', 'n': [1, 2]}");
}

#[test]
fn failures_retries_and_revokes() {
    let events = Events::new("w1@proto", true);
    let failed = Ending { state: State::Failure, exception: Some(ExceptionInfo::new("builtins", "ValueError", "bad value 7")) };
    let custom = Ending { state: State::Failure, exception: Some(ExceptionInfo::new("billing.errors", "CardDeclined", "no funds")) };
    let retry = Ending { state: State::Retry, exception: Some(ExceptionInfo::new("celery.exceptions", "Retry", "Retry in 1.000s: flaky")) };
    let revoked = |reason: &str| Ending {
        state: State::Revoked,
        exception: Some(ExceptionInfo::new("celery.exceptions", "TaskRevokedError", reason)),
    };
    for ending in [failed, custom, retry, revoked("expired"), revoked("terminated"), revoked("revoked")] {
        events.ended("t-1", &ending, None, Duration::ZERO);
    }
    let flushed = flushed(&events);
    let (keys, failed) = &flushed[0];
    assert_eq!(keys, &strings(&["hostname", "utcoffset", "pid", "clock", "uuid", "exception", "traceback", "timestamp", "type"]));
    assert_eq!(failed["type"], "task-failed");
    assert_eq!(failed["exception"], "ValueError('bad value 7')");
    assert_eq!(failed["traceback"], "ValueError: bad value 7");
    assert_eq!(flushed[1].1["exception"], "CardDeclined('no funds')");
    assert_eq!(flushed[1].1["traceback"], "billing.errors.CardDeclined: no funds");
    assert_eq!(flushed[2].1["type"], "task-retried");
    assert_eq!(flushed[2].1["exception"], "Retry('Retry in 1.000s: flaky')");

    let (keys, expired) = &flushed[3];
    assert_eq!(keys, &strings(&["hostname", "utcoffset", "pid", "clock", "uuid", "terminated", "signum", "expired", "timestamp", "type"]));
    assert_eq!((expired["terminated"].clone(), expired["signum"].clone(), expired["expired"].clone()), (json!(false), Value::Null, json!(true)));
    let terminated = &flushed[4].1;
    assert_eq!((terminated["terminated"].clone(), terminated["signum"].clone(), terminated["expired"].clone()), (json!(true), json!(15), json!(false)));
    let revoked = &flushed[5].1;
    assert_eq!((revoked["terminated"].clone(), revoked["expired"].clone()), (json!(false), json!(false)));
}

#[test]
fn task_events_are_off_until_enabled_but_jobs_are_tracked() {
    let events = Events::new("w1@proto", false);
    let message = message("[1, 1]", Some("[1, 1]"));
    events.received(Some("tag1"), &message);
    events.started(Some("tag1"), &message.id);
    assert!(events.take_buffered().is_empty());
    assert_eq!(events.jobs.active_count(), 1);
    assert!(events.set_task_events(true));
    assert!(!events.set_task_events(true), "already enabled");
    events.ended(&message.id, &Ending { state: State::Success, exception: None }, Some("2"), Duration::ZERO);
    assert_eq!(events.take_buffered().len(), 1);
    assert!(events.set_task_events(false));
    assert!(!events.set_task_events(false), "already disabled");
}

#[test]
fn worker_events_match_the_capture() {
    let events = Events::new("w1@proto", false);
    let text = serde_json::to_string(&events.worker_body("worker-heartbeat")).unwrap();
    assert_eq!(
        key_order(&text),
        strings(&[
            "hostname", "utcoffset", "pid", "clock", "freq", "active", "processed", "loadavg", "sw_ident", "sw_ver", "sw_sys",
            "timestamp", "type"
        ])
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["freq"], json!(2.0));
    assert_eq!(body["type"], "worker-heartbeat");
    assert_eq!(body["sw_ident"], "chard");
    assert_eq!(body["loadavg"].as_array().unwrap().len(), 3);
}

#[test]
fn the_clock_is_lamport() {
    let clock = Clock::default();
    assert_eq!(clock.forward(), 1);
    assert_eq!(clock.adjust(10), 11);
    assert_eq!(clock.adjust(3), 12);
    assert_eq!(clock.value(), 12);
}
