//! `host serve`: the HTTP job API on its own, without a worker.

use crate::config::HttpApiConfig;

pub async fn run(config: HttpApiConfig) -> anyhow::Result<()> {
    let listen = config.listen;
    let router = crate::http::api::router(config).await?;
    let server = crate::http::bind(listen, "HTTP API", router, super::run::shutdown_signal()).await?;
    server.await?;
    Ok(())
}
