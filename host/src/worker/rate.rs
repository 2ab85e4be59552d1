//! Per-worker rate limits per task type, in Celery's syntax ("10/s",
//! "100/m", "1000/h", or a bare number meaning per second).
//!
//! A limited job that comes too early is not refused: it is held, with its
//! lease renewed like an ETA job, until its slot comes (GCRA: each task type
//! has a "next free" instant that every admitted job pushes back by one
//! interval). Nothing is lost or run twice.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use crate::protocol::parse_rate;

#[derive(Default)]
pub struct RateLimits {
    next_free: Mutex<HashMap<String, Instant>>,
    /// Set by the `rate_limit` control command; wins over flags and
    /// plugins. `None` lifts the task's limit.
    overrides: std::sync::RwLock<HashMap<String, Option<Duration>>>,
}

impl RateLimits {
    pub fn set_override(&self, task: &str, interval: Option<Duration>) {
        self.overrides.write().unwrap().insert(task.to_string(), interval);
        self.next_free.lock().unwrap().remove(task);
    }

    /// `Some(limit)` when remote control set the task's limit.
    pub fn override_for(&self, task: &str) -> Option<Option<Duration>> {
        self.overrides.read().unwrap().get(task).copied()
    }

    /// Reserves the next slot for `task` at `interval`; returns how long to
    /// wait before running it (zero when it may run now).
    pub fn reserve(&self, task: &str, interval: Duration) -> Duration {
        let now = Instant::now();
        let mut next_free = self.next_free.lock().unwrap();
        let slot = next_free.get(task).copied().filter(|next| *next > now).unwrap_or(now);
        next_free.insert(task.to_string(), slot + interval);
        slot - now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces_jobs_by_the_interval() {
        let limits = RateLimits::default();
        let interval = Duration::from_millis(100);
        assert_eq!(limits.reserve("a", interval), Duration::ZERO);
        let second = limits.reserve("a", interval);
        assert!(second > Duration::from_millis(90) && second <= interval, "{second:?}");
        assert_eq!(limits.reserve("b", interval), Duration::ZERO, "limits are per task");
    }
}
