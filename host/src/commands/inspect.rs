//! `host inspect` and `host control`: one pidbox call (see
//! `control::client`), its replies printed the way `celery inspect` prints
//! them, so an operator reads Chard and Python workers alike.
//!
//! Exit code 0 when at least one node replied, 1 when none did within
//! `--timeout` (Celery's "No nodes replied within time constraint").

use anyhow::Context as _;
use serde_json::Value;

use crate::client::{open, redact};
use crate::config::RemoteControlConfig;
use crate::control::client::{broadcast, Broadcast};

pub async fn run(config: RemoteControlConfig) -> anyhow::Result<u8> {
    let client = open(&config.broker_url)?;
    let db = client.get_connection_info().redis.db;
    let request = Broadcast {
        method: config.method.clone(),
        arguments: config.arguments.clone(),
        destination: config.destination.clone(),
        reply: true,
        timeout: config.timeout,
    };
    let replies = broadcast(&client, db, &request)
        .await
        .with_context(|| format!("sending {} to workers on {}", config.method, redact(&config.broker_url)))?;
    if config.json {
        let object: serde_json::Map<String, Value> = replies.iter().cloned().collect();
        println!("{}", Value::Object(object));
    } else {
        for (node, reply) in &replies {
            print_reply(node, reply);
        }
    }
    if replies.is_empty() {
        eprintln!("error: No nodes replied within time constraint");
        return Ok(1);
    }
    if !config.json {
        let count = replies.len();
        println!("\n{count} {} online.", if count == 1 { "node" } else { "nodes" });
    }
    Ok(0)
}

/// `->  node: OK` and the reply indented below, as Celery's CLI shows it;
/// an `{"error": ...}` reply shows as `ERROR`.
fn print_reply(node: &str, reply: &Value) {
    let (status, shown) = match reply {
        Value::Object(map) if map.len() == 1 && map.contains_key("error") => ("ERROR", map["error"].clone()),
        Value::Object(map) if map.len() == 1 && map.contains_key("ok") => ("OK", map["ok"].clone()),
        other => ("OK", other.clone()),
    };
    println!("->  {node}: {status}");
    let text = match &shown {
        Value::String(text) => text.clone(),
        Value::Array(items) if items.is_empty() => "- empty -".to_string(),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => format!("* {text}"),
                other => format!("* {other}"),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    };
    for line in text.lines() {
        println!("        {line}");
    }
}
