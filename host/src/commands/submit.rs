//! `host submit` and `host result`: the command-line client.

use anyhow::Context as _;

use crate::client::{parse_step, Client, TaskResult};
use crate::config::{CanvasConfig, CanvasKind, ResultConfig, RevokeConfig, SendConfig, SubmitConfig};
use crate::protocol::Signature;

/// Returns the process exit code: 0, or 1 when a waited-for task failed.
pub async fn submit(config: SubmitConfig) -> anyhow::Result<u8> {
    let (args, kwargs) = super::parse_task_arguments(&config.args, &config.kwargs)?;
    let send = &config.send;
    let client = connect(send).await?;
    let mut task = client.task(&config.task, args, kwargs)?;
    if let Some(queue) = &send.queue {
        task.queue = queue.clone();
    }
    let steps = |texts: &[String]| texts.iter().map(|text| parse_step(text)).collect::<anyhow::Result<Vec<_>>>();
    let links = steps(&config.links)?;
    let link_errors = steps(&config.link_errors)?;
    if !links.is_empty() {
        task.embed.callbacks = Some(links);
    }
    if !link_errors.is_empty() {
        task.embed.errbacks = Some(link_errors);
    }
    task.priority = config.priority;
    let now = chrono::Utc::now();
    let iso = |offset: std::time::Duration| {
        (now + chrono::Duration::from_std(offset).unwrap_or_default()).to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
    };
    task.eta = config.countdown.map(iso);
    task.expires = config.expires.map(iso);
    if !send.wait {
        println!("{}", client.send(task).await?);
        return Ok(0);
    }
    let result = client.send_and_wait(task, send.timeout).await?;
    Ok(print_result(&result, false))
}

/// `host chain`, `host group`, `host chord`: without --wait prints the id to
/// wait on (a group: one id per member); with it, the result.
pub async fn canvas(config: CanvasConfig) -> anyhow::Result<u8> {
    let send = &config.send;
    let client = connect(send).await?;
    let mut steps = config.steps.iter().map(|text| parse_step(text)).collect::<anyhow::Result<Vec<Signature>>>()?;
    for step in &mut steps {
        // Later steps are published by workers: they carry their queue.
        if let Some(queue) = send.queue_for(&step.task) {
            step.options.entry("queue").or_insert(serde_json::Value::String(queue));
        }
    }
    let wait_for: Vec<String> = match &config.kind {
        CanvasKind::Chain => {
            let (first, ids) = client.chain(steps)?;
            client.send(first).await?;
            vec![ids.last().cloned().unwrap_or_default()]
        }
        CanvasKind::Group => {
            let (_, members) = client.group(steps)?;
            let ids = members.iter().map(|member| member.id.clone()).collect();
            client.send_all(members).await?;
            ids
        }
        CanvasKind::Chord { body } => {
            let mut body = parse_step(body)?;
            if let Some(queue) = send.queue_for(&body.task) {
                body.options.insert("queue".into(), serde_json::Value::String(queue));
            }
            vec![client.send_chord(steps, body).await?]
        }
    };
    if !send.wait {
        for id in &wait_for {
            println!("{id}");
        }
        return Ok(0);
    }
    let deadline = tokio::time::Instant::now() + send.timeout;
    let mut results = Vec::new();
    for id in &wait_for {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        results.push(client.wait(id, left).await?);
    }
    if config.kind != CanvasKind::Group {
        return Ok(print_result(&results[0], false));
    }
    let mut code = 0;
    for failed in results.iter().filter(|result| result.status != "SUCCESS") {
        eprintln!("error: {}", failed.failure_line());
        code = 1;
    }
    println!("{}", serde_json::Value::Array(results.into_iter().map(|result| result.value).collect()));
    Ok(code)
}

async fn connect(send: &SendConfig) -> anyhow::Result<Client> {
    Ok(Client::connect(&send.client.broker_url, &send.client.result_backend_url).await?.with_routes(send.routes.clone()))
}

pub async fn result(config: ResultConfig) -> anyhow::Result<u8> {
    let client = Client::connect(&config.client.broker_url, &config.client.result_backend_url).await?;
    let result = if config.wait { client.wait(&config.task_id, config.timeout).await? } else { client.get(&config.task_id).await? };
    Ok(print_result(&result, true))
}

/// SUCCESS prints the value; FAILURE/REVOKED print one error line. With
/// `with_state`, the state comes first (`SUCCESS 5`).
fn print_result(result: &TaskResult, with_state: bool) -> u8 {
    match result.status.as_str() {
        "SUCCESS" if with_state => println!("SUCCESS {}", result.value),
        "SUCCESS" => println!("{}", result.value),
        "FAILURE" | "REVOKED" => {
            if with_state {
                println!("{} {}", result.status, result.value);
            }
            eprintln!("error: {}", result.failure_line());
            return 1;
        }
        other => println!("{other}{}", if result.value.is_null() { String::new() } else { format!(" {}", result.value) }),
    }
    0
}

pub async fn revoke(config: RevokeConfig) -> anyhow::Result<u8> {
    let client = crate::client::open(&config.client.broker_url)?;
    crate::client::connect_once(&client).await?;
    let db = client.get_connection_info().redis.db;
    let mut connection = crate::broker::redis::connect_manager(client).await.context("connecting to the broker")?;
    if !config.task_ids.is_empty() {
        crate::control::broadcast_revoke(&mut connection, db, &config.task_ids, config.terminate)
            .await
            .context("sending the revoke")?;
        println!("revoked {}", config.task_ids.join(" "));
    }
    if !config.stamped.is_empty() {
        let mut headers = serde_json::Map::new();
        for (header, value) in &config.stamped {
            let values = headers.entry(header.clone()).or_insert_with(|| serde_json::Value::Array(Vec::new()));
            if let serde_json::Value::Array(values) = values {
                values.push(value.clone().into());
            }
        }
        crate::control::broadcast_revoke_stamped(&mut connection, db, &headers, config.terminate)
            .await
            .context("sending the revoke by stamped headers")?;
        let pairs: Vec<String> = config.stamped.iter().map(|(header, value)| format!("{header}={value}")).collect();
        println!("revoked every job stamped {}", pairs.join(" "));
    }
    Ok(0)
}
