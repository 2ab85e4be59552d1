//! Where jobs come from: the `Broker` trait and its Redis implementation.
//!
//! A broker hands out messages under a lease and takes them back by ack.
//! It knows messages (bytes with a delivery tag), not tasks or WASM. The
//! worker is generic over it, so an embedded broker can stand in later.

pub mod redis;

use std::future::Future;
use std::time::Duration;

/// One message taken from a queue. `tag` is `None` for a message that was
/// not a readable envelope: it was not recorded and needs no ack.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub tag: Option<String>,
    pub body: Vec<u8>,
    /// Set when the message was larger than the fetch's `max_message_bytes`:
    /// its size. `body` then holds only its first and last few KiB (where
    /// the headers are), and the message itself stays in the broker.
    pub oversize: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// A publish named a key that holds something other than a list;
    /// nothing of that publish was pushed.
    #[error("key {key:?} holds a value that is not a queue list")]
    NotAList { key: String },
}

impl BrokerError {
    /// Whether retrying cannot help (see `redis::is_permanent`).
    pub fn is_permanent(&self) -> bool {
        match self {
            BrokerError::Redis(error) => redis::is_permanent(error),
            BrokerError::NotAList { .. } => true,
        }
    }
}

/// Something that delivers work with at-least-once semantics.
pub trait Broker: Clone + Send + Sync + 'static {
    /// Takes up to `max` messages, each leased until acked or requeued,
    /// stopping once their bytes reach `budget_bytes` (at least one is
    /// taken). A message over `max_message_bytes` is leased but not read.
    fn fetch(
        &self,
        max: usize,
        budget_bytes: usize,
        max_message_bytes: usize,
    ) -> impl Future<Output = Result<Vec<Delivery>, BrokerError>> + Send;
    /// Done with these messages: forget them.
    fn ack(&self, tags: &[String]) -> impl Future<Output = Result<(), BrokerError>> + Send;
    /// Still working on these: renew their leases.
    fn extend_leases(&self, tags: &[String]) -> impl Future<Output = Result<(), BrokerError>> + Send;
    /// Give these back to their queues (shutdown).
    fn requeue(&self, tags: &[String]) -> impl Future<Output = Result<usize, BrokerError>> + Send;
    /// Put back messages whose lease is older than `visibility_timeout`.
    fn restore_expired(&self, visibility_timeout: Duration) -> impl Future<Output = Result<usize, BrokerError>> + Send;
    /// Waits (up to `timeout`) until work may be available, then takes as
    /// [`fetch`](Broker::fetch) does: lets an idle worker sleep instead of
    /// polling. A call must not be dropped once started: what it takes is
    /// leased from the moment the wait ends.
    fn wait_and_fetch(
        &self,
        timeout: Duration,
        max: usize,
        budget_bytes: usize,
        max_message_bytes: usize,
    ) -> impl Future<Output = Result<Vec<Delivery>, BrokerError>> + Send;
    /// Push envelopes to lists: `(list key, envelope)`, all or none
    /// (`NotAList` names the first key that is not a list).
    fn publish(&self, messages: &[(String, String)]) -> impl Future<Output = Result<(), BrokerError>> + Send;
    /// Moves leased messages out of the lease bookkeeping into the delayed
    /// set until their due time: `(tag, due time in Unix ms, list to push
    /// it to then)`. Returns how many were still leased and moved.
    fn delay(&self, entries: &[(String, u64, String)]) -> impl Future<Output = Result<usize, BrokerError>> + Send;
    /// Pushes delayed messages due by `until_ms` (Unix ms) back to their
    /// lists, at most `max`; returns how many.
    fn release_due(&self, until_ms: u64, max: usize) -> impl Future<Output = Result<usize, BrokerError>> + Send;
    /// Reserves the next slot of a rate limit shared by every worker of this
    /// broker (one job per `interval` for `key`); returns how long to wait
    /// before running the job.
    fn reserve_rate(&self, key: &str, interval: Duration) -> impl Future<Output = Result<Duration, BrokerError>> + Send;
}
