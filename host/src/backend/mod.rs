//! Where results go: the `ResultBackend` trait and its Redis implementation
//! (`celery-task-meta-<id>` keys written with SETEX and PUBLISHed on the
//! channel of the same name, which is what a Celery client's `.get()`
//! listens on).

use std::future::Future;
use std::time::Duration;

use redis::aio::ConnectionManager;

mod keyvalue;

pub use keyvalue::{namespaced as keyvalue_key, KeyValueCommand, KeyValueReply};

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

impl BackendError {
    /// Whether retrying cannot help (see `broker::redis::is_permanent`).
    pub fn is_permanent(&self) -> bool {
        match self {
            BackendError::Redis(error) => crate::broker::redis::is_permanent(error),
        }
    }
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
    /// Stores progress documents (Celery's `update_state`), each only if
    /// its key does not hold a ready state already.
    fn store_progress(&self, writes: &[ResultWrite]) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Runs one command on `plugin`'s key-value store.
    fn keyvalue(&self, plugin: &str, command: KeyValueCommand<'_>) -> impl Future<Output = Result<KeyValueReply, BackendError>> + Send;
    /// Reads one result document.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<String>, BackendError>> + Send;
    /// Records a finished chord member (again, harmlessly, for a
    /// redelivery or a later check) and says where the chord stands.
    fn chord_join(&self, part: &ChordPart) -> impl Future<Output = Result<ChordJoin, BackendError>> + Send;
    /// Reads many result documents in one round trip (`None` where missing).
    fn get_many(&self, keys: &[String]) -> impl Future<Output = Result<Vec<Option<String>>, BackendError>> + Send;
    /// Saves the header results of chords the worker sends whose header
    /// holds a group result (`(group_id, GroupResult JSON)`), where Celery's
    /// `apply_chord` saves them, for the worker that completes the chord.
    fn save_group_results(&self, saved: &[(String, String)], ttl: Duration) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Records the header size of chords the worker sends (Celery's
    /// `set_chord_size`: a fresh run, so any old "done" marker goes).
    fn set_chord_sizes(&self, sizes: &[(String, u64)], ttl: Duration) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Marks the chord fired and drops its join state.
    fn chord_done(&self, group_id: &str) -> impl Future<Output = Result<(), BackendError>> + Send;
}

/// Where a chord stands after a member reported (`chord_join.lua`).
#[derive(Debug, Clone, PartialEq)]
pub enum ChordJoin {
    /// It fired already: the member is a redelivery.
    Done,
    /// No header size recorded yet. Celery's `group._apply_tasks` records
    /// it only as it sends the header's last member, so the members sent
    /// before can finish first; if none finishes after it (the last member
    /// adds nothing to the chord, an empty chord or group), nobody would
    /// ever complete the chord: the caller checks again later.
    SizeUnknown,
    /// Recorded; more members to come, or another worker completes it.
    Open,
    /// Complete, and this caller claimed it: every member's entry in
    /// `group_index` order, and the header's `GroupResult` when whoever
    /// applied the chord saved one (a member's result is a group).
    Complete { entries: Vec<String>, saved: Option<String> },
}

/// One finished member of a chord's header.
#[derive(Debug, Clone)]
pub struct ChordPart {
    pub group_id: String,
    pub task_id: String,
    pub group_index: u32,
    /// `[1, task_id, state, result]`, as Celery stores it.
    pub entry: String,
    pub ttl: Duration,
}

fn taskset_key(group_id: &str) -> String {
    format!("celery-taskset-meta-{group_id}")
}

#[derive(Clone)]
pub struct RedisBackend {
    connection: ConnectionManager,
    chord_join: redis::Script,
}

/// The guarded progress write (`store_progress`); sent with EVAL, as
/// progress writes are few (one per running job per 100 ms at most).
const PROGRESS_LUA: &str = include_str!("progress.lua");

impl RedisBackend {
    pub async fn connect(client: redis::Client) -> Result<Self, BackendError> {
        Ok(Self {
            connection: crate::broker::redis::connect_manager(client).await?,
            chord_join: redis::Script::new(include_str!("chord_join.lua")),
        })
    }
}

impl ResultBackend for RedisBackend {
    async fn store(&self, writes: &[ResultWrite]) -> Result<(), BackendError> {
        if writes.is_empty() {
            return Ok(());
        }
        // No `.ignore()`: redis-rs keeps ignored commands in a hash set, one
        // insert and one lookup per command, which cost a sixth of this
        // function; the replies (`OK`, a count) are read as `()` anyway,
        // and an error reply still fails the call.
        let mut pipe = redis::pipe();
        for write in writes {
            pipe.set_ex(&write.key, &write.json, write.ttl.as_secs().max(1));
            pipe.publish(&write.key, &write.json);
        }
        pipe.query_async::<()>(&mut self.connection.clone()).await?;
        Ok(())
    }

    async fn store_progress(&self, writes: &[ResultWrite]) -> Result<(), BackendError> {
        if writes.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for write in writes {
            pipe.cmd("EVAL").arg(PROGRESS_LUA).arg(1).arg(&write.key).arg(&write.json).arg(write.ttl.as_secs().max(1)).ignore();
        }
        pipe.query_async::<()>(&mut self.connection.clone()).await?;
        Ok(())
    }

    async fn keyvalue(&self, plugin: &str, command: KeyValueCommand<'_>) -> Result<KeyValueReply, BackendError> {
        keyvalue::execute(&mut self.connection.clone(), plugin, command).await
    }

    async fn get(&self, key: &str) -> Result<Option<String>, BackendError> {
        Ok(redis::cmd("GET").arg(key).query_async(&mut self.connection.clone()).await?)
    }

    async fn chord_join(&self, part: &ChordPart) -> Result<ChordJoin, BackendError> {
        let base = taskset_key(&part.group_id);
        let reply: Vec<String> = self
            .chord_join
            .key(format!("{base}.j"))
            .key(format!("{base}.d"))
            .key(format!("{base}.s"))
            .key(format!("{base}.t"))
            .key(format!("{base}.c"))
            .key(&base)
            .arg(format!("{}:{}", part.task_id, part.group_index))
            .arg(part.group_index)
            .arg(&part.entry)
            .arg(part.ttl.as_secs().max(1))
            .arg(uuid::Uuid::new_v4().to_string())
            .invoke_async(&mut self.connection.clone())
            .await?;
        let mut reply = reply.into_iter();
        Ok(match reply.next().as_deref() {
            Some("fire") => {
                let saved = reply.next().filter(|saved| !saved.is_empty());
                ChordJoin::Complete { entries: reply.collect(), saved }
            }
            Some("done") => ChordJoin::Done,
            Some("wait") => ChordJoin::SizeUnknown,
            _ => ChordJoin::Open,
        })
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, BackendError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        Ok(redis::cmd("MGET").arg(keys).query_async(&mut self.connection.clone()).await?)
    }

    async fn save_group_results(&self, saved: &[(String, String)], ttl: Duration) -> Result<(), BackendError> {
        if saved.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (group_id, json) in saved {
            pipe.set_ex(taskset_key(group_id), json, ttl.as_secs().max(1)).ignore();
        }
        pipe.query_async::<()>(&mut self.connection.clone()).await?;
        Ok(())
    }

    async fn set_chord_sizes(&self, sizes: &[(String, u64)], ttl: Duration) -> Result<(), BackendError> {
        if sizes.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (group_id, size) in sizes {
            let base = taskset_key(group_id);
            pipe.del(format!("{base}.c")).ignore();
            pipe.set_ex(format!("{base}.s"), size, ttl.as_secs().max(1)).ignore();
        }
        pipe.query_async::<()>(&mut self.connection.clone()).await?;
        Ok(())
    }

    async fn chord_done(&self, group_id: &str) -> Result<(), BackendError> {
        let base = taskset_key(group_id);
        redis::pipe()
            .del(&[format!("{base}.j"), format!("{base}.t"), format!("{base}.s"), format!("{base}.d")])
            .ignore()
            .set_ex(format!("{base}.c"), "done", 300)
            .ignore()
            .query_async::<()>(&mut self.connection.clone())
            .await?;
        Ok(())
    }
}
