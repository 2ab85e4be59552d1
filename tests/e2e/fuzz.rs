//! Generated hostile messages against the real worker: thousands of
//! mutations of the envelopes a Celery 5.7 client sends (captured in
//! `tests/fixtures/celery-send-variants.json`), interleaved with valid jobs.
//!
//! What must hold: the worker never stops, every valid job succeeds with
//! its value, every message whose `id` is still a readable string gets a
//! result (FAILURE naming what was wrong, or whatever the job did), and
//! nothing stays leased in `unacked`.
//!
//! The generator is seeded (`CHARD_FUZZ_SEED`, printed) and its size is
//! `CHARD_FUZZ_COUNT` (10,000 by default, a few seconds); `make fuzz` runs
//! a longer one.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use chard::protocol::OutgoingTask;
use redis::Commands;
use serde_json::{json, Map, Value};

use crate::util::{eventually, host, plugin_folder, RedisServer, Worker};

const TEMPLATES: &str = include_str!("../fixtures/celery-send-variants.json");

/// Headers and properties a Celery client sets; the mutations pick among them.
const HEADERS: [&str; 18] = [
    "lang", "task", "shadow", "eta", "expires", "group", "group_index", "retries", "timelimit", "root_id",
    "parent_id", "argsrepr", "kwargsrepr", "origin", "ignore_result", "replaced_task_nesting", "stamped_headers", "stamps",
];
const PROPERTIES: [&str; 7] = ["correlation_id", "reply_to", "delivery_mode", "delivery_info", "priority", "body_encoding", "delivery_tag"];

/// What the test expects of one pushed message.
enum Expect {
    /// A valid job: SUCCESS with this value.
    Value(Value),
    /// A mutated message with a readable id: some result.
    AnyResult,
    /// Nothing can name it (no readable id): only that it is acked.
    Nothing,
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

#[test]
fn thousands_of_mutated_celery_messages_never_stop_the_worker() {
    let seed = env_number("CHARD_FUZZ_SEED", 11);
    let count = env_number("CHARD_FUZZ_COUNT", 10_000) as usize;
    eprintln!("fuzz: CHARD_FUZZ_SEED={seed} CHARD_FUZZ_COUNT={count}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let templates = templates();

    let redis = RedisServer::start();
    let plugins = plugin_folder(&["math"]);
    let worker = Worker::start(plugins.path(), &redis.url(0), &["-c", "2"]);

    let mut expected: HashMap<String, Expect> = HashMap::new();
    let mut pipe = redis::pipe();
    let mut connection = redis.connection(0);
    for index in 0..count {
        if index % 10 == 0 {
            let raw = |value: Value| serde_json::value::to_raw_value(&value).unwrap();
            let job = OutgoingTask::new("math.add", raw(json!([index, 1])), raw(json!({})), "fuzz@test".into());
            pipe.lpush("celery", job.to_envelope()).ignore();
            expected.insert(job.id.clone(), Expect::Value(json!(index + 1)));
        }
        let id = format!("fz-{seed}-{index}");
        let template = &templates[rng.usize(..templates.len())];
        let (bytes, expect) = mutant(&mut rng, template, &id);
        pipe.lpush("celery", bytes).ignore();
        expected.entry(id).or_insert(expect);
        if index % 500 == 499 {
            let _: () = pipe.query(&mut connection).unwrap();
            pipe = redis::pipe();
        }
    }
    let _: () = pipe.query(&mut connection).unwrap();

    let waited: Vec<&String> = expected.iter().filter(|(_, expect)| !matches!(expect, Expect::Nothing)).map(|(id, _)| id).collect();
    eprintln!("fuzz: {} messages pushed, {} expect a result", expected.len(), waited.len());
    let mut missing = waited.clone();
    eventually(Duration::from_secs(60 + count as u64 / 100), "a result for every message with an id", || {
        let keys: Vec<String> = missing.iter().map(|id| format!("celery-task-meta-{id}")).collect();
        let mut still = Vec::new();
        for (chunk_ids, chunk_keys) in missing.chunks(1000).zip(keys.chunks(1000)) {
            let docs: Vec<Option<String>> = redis::cmd("MGET").arg(chunk_keys).query(&mut connection).unwrap();
            for (id, doc) in chunk_ids.iter().zip(docs) {
                let done = doc.is_some_and(|text| !text.contains("\"status\": \"STARTED\"") && !text.contains("\"status\":\"STARTED\""));
                if !done {
                    still.push(*id);
                } else if let Some(Expect::Value(value)) = expected.get(*id) {
                    let doc: Value = serde_json::from_str(&redis.connection(0).get::<_, String>(format!("celery-task-meta-{id}")).unwrap()).unwrap();
                    assert_eq!((&doc["status"], &doc["result"]), (&json!("SUCCESS"), value), "valid job {id}: {doc}");
                }
            }
        }
        missing = still;
        if missing.is_empty() {
            Some(())
        } else {
            None
        }
    });
    eprintln!("fuzz: outcomes {:?}", tally(&mut connection, &waited));
    eventually(Duration::from_secs(30), "nothing left in unacked", || {
        (connection.hlen::<_, i64>("unacked").unwrap() == 0).then_some(())
    });
    let url = redis.url(0);
    assert_eq!(host(&["submit", "math.add", "[20, 22]", "--broker", &url, "--wait"]).ok(), "42", "{}", tail(&worker.log()));
    assert!(!worker.log().contains("panicked"), "{}", tail(&worker.log()));
}

/// How many results ended in each state and exception type.
fn tally(connection: &mut redis::Connection, ids: &[&String]) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for chunk in ids.chunks(1000) {
        let keys: Vec<String> = chunk.iter().map(|id| format!("celery-task-meta-{id}")).collect();
        let docs: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(connection).unwrap();
        for doc in docs.into_iter().flatten() {
            let doc: Value = serde_json::from_str(&doc).unwrap();
            let kind = format!("{} {}", doc["status"].as_str().unwrap_or("?"), doc["result"]["exc_type"].as_str().unwrap_or(""));
            *counts.entry(kind).or_insert(0) += 1;
        }
    }
    counts
}

fn tail(log: &str) -> String {
    log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// The captured envelopes, with ETAs removed (a job waiting for a
/// countdown has no result yet, for good reason).
fn templates() -> Vec<Value> {
    let variants: Vec<Value> = serde_json::from_str(TEMPLATES).unwrap();
    variants
        .iter()
        .flat_map(|variant| variant["messages"].as_array().unwrap().iter().map(|message| message["raw"].clone()))
        .map(|mut envelope| {
            envelope["headers"]["eta"] = Value::Null;
            envelope
        })
        .collect()
}

/// A mutated copy of `template` under `id`, as bytes, and what to expect.
fn mutant(rng: &mut fastrand::Rng, template: &Value, id: &str) -> (Vec<u8>, Expect) {
    let mut envelope = template.clone();
    envelope["headers"]["id"] = json!(id);
    envelope["headers"]["root_id"] = json!(id);
    envelope["properties"]["correlation_id"] = json!(id);
    for _ in 0..rng.usize(1..=3) {
        mutate(rng, &mut envelope);
    }
    // `ignore_result: true` is a valid request for no result: not this test's point.
    if let Some(ignore_result) = envelope.get_mut("headers").and_then(|headers| headers.get_mut("ignore_result")) {
        if *ignore_result == json!(true) {
            *ignore_result = Value::Null;
        }
    }
    let readable_id = envelope.get("headers").and_then(|headers| headers.get("id")) == Some(&json!(id));
    let mut expect = if readable_id { Expect::AnyResult } else { Expect::Nothing };
    let mut bytes = serde_json::to_vec(&envelope).unwrap();
    match rng.u8(..100) {
        // Cut short: not JSON any more.
        0..=1 => {
            bytes.truncate(rng.usize(..bytes.len()));
            expect = Expect::Nothing;
        }
        // Bytes flipped anywhere: may or may not still parse.
        2..=3 => {
            for _ in 0..rng.usize(1..8) {
                let at = rng.usize(..bytes.len());
                bytes[at] = rng.u8(..);
            }
            expect = Expect::Nothing;
        }
        _ => {}
    }
    (bytes, expect)
}

fn mutate(rng: &mut fastrand::Rng, envelope: &mut Value) {
    match rng.u8(..12) {
        0..=3 => {
            let key = HEADERS[rng.usize(..HEADERS.len())];
            set_or_remove(rng, &mut envelope["headers"], key);
        }
        4..=5 => {
            let key = PROPERTIES[rng.usize(..PROPERTIES.len())];
            set_or_remove(rng, &mut envelope["properties"], key);
        }
        6 => {
            let key = ["routing_key", "exchange"][rng.usize(..2)];
            if let Some(delivery_info) = envelope.get_mut("properties").and_then(|properties| properties.get_mut("delivery_info")) {
                set_or_remove(rng, delivery_info, key);
            }
        }
        7 => {
            let key = ["body", "content-type", "content-encoding", "headers", "properties"][rng.usize(..5)];
            set_or_remove(rng, envelope, key);
        }
        8..=10 => mutate_body(rng, envelope),
        _ => {
            // The id itself: gone or not a string.
            if let Some(headers) = envelope.get_mut("headers").and_then(Value::as_object_mut) {
                if rng.bool() {
                    headers.insert("id".into(), random_value(rng));
                } else {
                    headers.remove("id");
                }
            }
        }
    }
}

fn set_or_remove(rng: &mut fastrand::Rng, object: &mut Value, key: &str) {
    let Some(object) = object.as_object_mut() else { return };
    if rng.u8(..5) == 0 {
        object.remove(key);
    } else {
        object.insert(key.to_string(), random_value(rng));
    }
}

/// Decodes `[args, kwargs, embed]`, breaks one part, encodes it again.
fn mutate_body(rng: &mut fastrand::Rng, envelope: &mut Value) {
    let Some(body) = envelope.get("body").and_then(Value::as_str) else { return };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(body) else { return };
    let Ok(mut parts) = serde_json::from_slice::<Value>(&decoded) else { return };
    match rng.u8(..6) {
        part @ 0..=2 => {
            if let Some(slot) = parts.get_mut(part as usize) {
                *slot = random_value(rng);
            }
        }
        3 => {
            let key = ["callbacks", "errbacks", "chain", "chord"][rng.usize(..4)];
            if let Some(embed) = parts.get_mut(2) {
                set_or_remove(rng, embed, key);
            }
        }
        4 => {
            if let Some(args) = parts.get_mut(0).and_then(Value::as_array_mut) {
                args.push(random_value(rng));
            }
        }
        _ => {
            let text = serde_json::to_string(&parts).unwrap();
            let cut = rng.usize(..text.len());
            envelope["body"] = json!(base64::engine::general_purpose::STANDARD.encode(&text.as_bytes()[..cut]));
            return;
        }
    }
    envelope["body"] = json!(base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&parts).unwrap()));
}

/// A value of any JSON type, favouring the edges: negative, zero, huge,
/// non-integral numbers, empty and long strings, wrong shapes.
fn random_value(rng: &mut fastrand::Rng) -> Value {
    match rng.u8(..20) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(false),
        3 => json!(-1),
        4 => json!(0),
        5 => json!(255),
        6 => json!(4_294_967_296u64),
        7 => json!(u64::MAX),
        8 => json!(i64::MIN),
        9 => json!(1e300),
        10 => json!(-0.5),
        11 => json!("abc"),
        12 => json!(""),
        13 => json!("1e300"),
        14 => json!("x".repeat(rng.usize(1000..70_000))),
        15 => json!([]),
        16 => json!([1e300, null]),
        17 => json!([null, null, null]),
        18 => json!({}),
        _ => Value::Object(Map::from_iter([("task".to_string(), random_value_shallow(rng))])),
    }
}

fn random_value_shallow(rng: &mut fastrand::Rng) -> Value {
    [json!(1), json!("unacked"), json!(null), json!(["a"])][rng.usize(..4)].clone()
}
