//! Where results go: the `ResultBackend` trait and its Redis implementation
//! (`celery-task-meta-<id>` keys written with SETEX and PUBLISHed on the
//! channel of the same name, which is what a Celery client's `.get()`
//! listens on).

use std::future::Future;
use std::time::Duration;

use redis::aio::ConnectionManager;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// One result write: key, JSON document, TTL.
#[derive(Debug, Clone)]
pub struct ResultWrite {
    pub key: String,
    pub json: String,
    pub ttl: Duration,
}

pub trait ResultBackend: Clone + Send + Sync + 'static {
    /// Stores and announces every write, in one round trip.
    fn store(&self, writes: &[ResultWrite]) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Reads one result document.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<String>, BackendError>> + Send;
}

#[derive(Clone)]
pub struct RedisBackend {
    connection: ConnectionManager,
}

impl RedisBackend {
    pub async fn connect(client: redis::Client) -> Result<Self, BackendError> {
        Ok(Self { connection: crate::broker::redis::connect_manager(client).await? })
    }
}

impl ResultBackend for RedisBackend {
    async fn store(&self, writes: &[ResultWrite]) -> Result<(), BackendError> {
        if writes.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for write in writes {
            pipe.set_ex(&write.key, &write.json, write.ttl.as_secs().max(1)).ignore();
            pipe.publish(&write.key, &write.json).ignore();
        }
        pipe.query_async::<()>(&mut self.connection.clone()).await?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<String>, BackendError> {
        Ok(redis::cmd("GET").arg(key).query_async(&mut self.connection.clone()).await?)
    }
}
