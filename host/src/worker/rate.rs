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

/// Parses "10/s", "100/m", "1000/h" or "5" into the interval between jobs.
pub fn parse_rate(text: &str) -> Result<Duration, String> {
    let (count, unit) = match text.trim().split_once('/') {
        Some((count, unit)) => (count.trim(), unit.trim()),
        None => (text.trim(), "s"),
    };
    let count: f64 = count.parse().map_err(|_| format!("bad rate limit {text:?}: expected e.g. \"10/s\""))?;
    let period = match unit {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("bad rate limit {text:?}: the unit must be s, m or h")),
    };
    if !(count > 0.0 && count.is_finite()) {
        return Err(format!("bad rate limit {text:?}: the count must be positive"));
    }
    Ok(Duration::from_secs_f64(period / count))
}

#[derive(Default)]
pub struct RateLimits {
    next_free: Mutex<HashMap<String, Instant>>,
}

impl RateLimits {
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
    fn parses_celery_rates() {
        assert_eq!(parse_rate("10/s").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_rate("120/m").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_rate("2").unwrap(), Duration::from_millis(500));
        assert!(parse_rate("10/d").is_err());
        assert!(parse_rate("0/s").is_err());
    }

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
