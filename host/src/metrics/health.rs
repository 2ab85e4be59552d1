//! Liveness and readiness, as `/healthz` and `/readyz` report them.
//!
//! Liveness needs no state: if the HTTP handler runs, the async runtime
//! that also runs the fetch loop, the completer and remote control answers.
//! Readiness is three facts the worker keeps here, each with the reason a
//! supervisor shows when it is false:
//!
//! - plugins are loaded (at least one serves tasks; with none every job
//!   would fail `NotRegistered`);
//! - Redis answered within [`REDIS_WINDOW`] (the fetch loop and the
//!   queue-length timer mark every successful round trip, so an idle or a
//!   saturated worker is judged alike);
//! - the worker is not shutting down: set the moment SIGTERM arrives, before
//!   the drain starts, so a load balancer stops sending at once.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How recently Redis must have answered for the worker to be ready.
pub const REDIS_WINDOW: Duration = Duration::from_secs(10);

pub struct Health {
    since: Instant,
    /// Milliseconds after `since` of the last good Redis round trip, plus 1
    /// (0 = never).
    redis_ok_at: AtomicU64,
    plugins: AtomicUsize,
    stopping: AtomicBool,
}

impl Default for Health {
    fn default() -> Self {
        Self { since: Instant::now(), redis_ok_at: AtomicU64::new(0), plugins: AtomicUsize::new(0), stopping: AtomicBool::new(false) }
    }
}

/// The `/readyz` body.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub ready: bool,
    /// Why not, one sentence each; empty when ready.
    pub reasons: Vec<String>,
    pub plugins: usize,
    /// Seconds since Redis last answered; `null` if it never did.
    pub redis_last_seen_seconds: Option<f64>,
    pub shutting_down: bool,
}

impl Health {
    pub fn redis_ok(&self) {
        let millis = self.since.elapsed().as_millis() as u64 + 1;
        self.redis_ok_at.fetch_max(millis, Ordering::Relaxed);
    }

    pub fn set_plugins(&self, count: usize) {
        self.plugins.store(count, Ordering::Relaxed);
    }

    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    pub fn readiness(&self) -> Readiness {
        let plugins = self.plugins.load(Ordering::Relaxed);
        let shutting_down = self.stopping.load(Ordering::SeqCst);
        let redis_last_seen = match self.redis_ok_at.load(Ordering::Relaxed) {
            0 => None,
            at => Some(self.since.elapsed().saturating_sub(Duration::from_millis(at - 1))),
        };
        let mut reasons = Vec::new();
        if shutting_down {
            reasons.push("shutting down: draining running jobs".to_string());
        }
        if plugins == 0 {
            reasons.push("no plugins loaded: every job would fail as unknown".to_string());
        }
        match redis_last_seen {
            None => reasons.push("Redis has not answered yet".to_string()),
            Some(ago) if ago > REDIS_WINDOW => {
                reasons.push(format!("Redis has not answered for {:.0} s", ago.as_secs_f64()));
            }
            Some(_) => {}
        }
        Readiness {
            ready: reasons.is_empty(),
            reasons,
            plugins,
            redis_last_seen_seconds: redis_last_seen.map(|ago| (ago.as_secs_f64() * 1000.0).round() / 1000.0),
            shutting_down,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_with_plugins_redis_and_no_shutdown() {
        let health = Health::default();
        let first = health.readiness();
        assert!(!first.ready);
        assert_eq!(first.reasons.len(), 2, "{:?}", first.reasons);
        health.set_plugins(2);
        health.redis_ok();
        assert!(health.readiness().ready);
        health.set_stopping();
        let stopping = health.readiness();
        assert!(!stopping.ready);
        assert_eq!(stopping.reasons, ["shutting down: draining running jobs"]);
    }
}
