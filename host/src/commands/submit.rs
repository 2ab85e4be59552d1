//! `host submit` and `host result`: the command-line client.

use anyhow::Context as _;

use crate::client::{Client, TaskResult};
use crate::config::{ResultConfig, RevokeConfig, SubmitConfig};

/// Returns the process exit code: 0, or 1 when a waited-for task failed.
pub async fn submit(config: SubmitConfig) -> anyhow::Result<u8> {
    let (args, kwargs) = super::parse_task_arguments(&config.args, &config.kwargs)?;
    let client = Client::connect(&config.client.broker_url, &config.client.result_backend_url).await?;
    let mut task = client.task(&config.task, args, kwargs)?;
    task.queue = config.queue;
    task.priority = config.priority;
    let now = chrono::Utc::now();
    let iso = |offset: std::time::Duration| {
        (now + chrono::Duration::from_std(offset).unwrap_or_default()).to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
    };
    task.eta = config.countdown.map(iso);
    task.expires = config.expires.map(iso);
    if !config.wait {
        println!("{}", client.send(task).await?);
        return Ok(0);
    }
    let result = client.send_and_wait(task, config.timeout).await?;
    Ok(print_result(&result, false))
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
            eprintln!("error: task {}: {}", result.status.to_lowercase(), result.error_line());
            return 1;
        }
        other => println!("{other}{}", if result.value.is_null() { String::new() } else { format!(" {}", result.value) }),
    }
    0
}

pub async fn revoke(config: RevokeConfig) -> anyhow::Result<u8> {
    let client = crate::client::open(&config.client.broker_url)?;
    let db = client.get_connection_info().redis.db;
    let mut connection = crate::broker::redis::connect_manager(client).await.context("connecting to the broker")?;
    crate::control::broadcast_revoke(&mut connection, db, &config.task_ids, config.terminate)
        .await
        .context("sending the revoke")?;
    println!("revoked {}", config.task_ids.join(" "));
    Ok(0)
}
