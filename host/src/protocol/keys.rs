//! Redis key names: queue lists with kombu's priority buckets, result keys.

/// kombu's priority steps on Redis: a message with priority p goes to the
/// bucket of the largest step <= p (after clamping to 0..=9).
pub const PRIORITY_STEPS: [u8; 4] = [0, 3, 6, 9];

/// kombu's separator between a queue name and its priority bucket.
const PRIORITY_SEPARATOR: &str = "\x06\x16";

pub fn priority_bucket(priority: u8) -> u8 {
    let priority = priority.min(9);
    PRIORITY_STEPS.iter().rev().copied().find(|step| *step <= priority).unwrap_or(0)
}

/// The list a message with `priority` for `queue` lives in.
pub fn queue_key_for(queue: &str, priority: u8) -> String {
    match priority_bucket(priority) {
        0 => queue.to_string(),
        bucket => format!("{queue}{PRIORITY_SEPARATOR}{bucket}"),
    }
}

/// Every list to pop, in the order kombu's BRPOP uses: grouped by priority
/// step (lower first), every queue inside each step.
pub fn queue_keys(queues: &[String]) -> Vec<String> {
    PRIORITY_STEPS
        .iter()
        .flat_map(|step| queues.iter().map(move |queue| queue_key_for(queue, *step)))
        .collect()
}

pub fn result_key(task_id: &str) -> String {
    format!("celery-task-meta-{task_id}")
}

/// Whether a queue name taken from a message (a routing key, a callback's
/// `queue` option) would address a key kombu or Chard keeps for itself.
/// Publishing there would corrupt bookkeeping (`unacked` is a hash: an LPUSH
/// fails with WRONGTYPE on every retry) or plant a message where a result,
/// a binding or a deploy record lives, so such names are refused.
pub fn is_reserved_queue(name: &str) -> bool {
    const EXACT: [&str; 3] = ["unacked", "unacked_index", "unacked_mutex"];
    const PREFIXES: [&str; 4] = ["_kombu.", "celery-task-meta-", "celery-taskset-meta-", "chard:"];
    EXACT.contains(&name) || PREFIXES.iter().any(|prefix| name.starts_with(prefix)) || name.contains(PRIORITY_SEPARATOR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_keys_match_kombu() {
        assert_eq!(queue_key_for("celery", 0), "celery");
        assert_eq!(queue_key_for("celery", 2), "celery");
        assert_eq!(queue_key_for("celery", 3), "celery\x06\x163");
        assert_eq!(queue_key_for("celery", 8), "celery\x06\x166");
        assert_eq!(queue_key_for("celery", 255), "celery\x06\x169");
        let keys = queue_keys(&["celery".into(), "other".into()]);
        assert_eq!(keys[..4], ["celery", "other", "celery\x06\x163", "other\x06\x163"]);
        assert_eq!(keys.len(), 8);
    }

    #[test]
    fn bookkeeping_keys_are_not_queues() {
        for name in ["unacked", "unacked_index", "unacked_mutex", "_kombu.binding.celery", "celery-task-meta-x", "chard:plugins", "a\x06\x163"] {
            assert!(is_reserved_queue(name), "{name:?}");
        }
        for name in ["celery", "other", "unacked2", "chardonnay", "chard.high", "celery-task"] {
            assert!(!is_reserved_queue(name), "{name:?}");
        }
    }
}
