//! Bounds on values that come from a message or a plugin.
//!
//! Anything a sender or a guest controls (time limits, countdowns, sizes,
//! text that ends up in a result or a log line) passes through here before
//! the worker does arithmetic or I/O with it. The rule is: a value that is
//! merely too large is saturated (a time limit of 1e300 seconds means "no
//! practical limit", not a crash); a value that cannot mean anything is
//! refused by the parser with a FAILURE naming the field.

use std::borrow::Cow;
use std::time::Duration;

/// The longest duration taken from a message or a plugin: 100 years. Longer
/// values are saturated to it, so adding one to "now" never overflows a
/// clock type (std's `Instant`, chrono's `DateTime`).
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Longest text echoed into a result or a log line from something a sender
/// or a guest wrote (an exception message, a parse error quoting a value).
pub const MAX_ECHO: usize = 4096;

/// Longest `id` or `task` header accepted. A longer id is not "recoverable":
/// no result is stored under a multi-megabyte key.
pub const MAX_NAME: usize = 1024;

/// Seconds from a message (`timelimit`) as a duration: `None` for zero,
/// negative or non-finite values (Celery's "no limit"), saturated at
/// [`MAX_DURATION`].
pub fn seconds(value: f64) -> Option<Duration> {
    if !(value.is_finite() && value > 0.0) {
        return None;
    }
    Some(Duration::try_from_secs_f64(value).unwrap_or(MAX_DURATION).min(MAX_DURATION))
}

/// Saturates a duration at [`MAX_DURATION`].
pub fn duration(value: Duration) -> Duration {
    value.min(MAX_DURATION)
}

/// `text` cut to at most `max` bytes (on a character boundary), saying how
/// much was cut.
pub fn truncate(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}… ({} more bytes)", &text[..end], text.len() - end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_seconds_saturate_instead_of_panicking() {
        assert_eq!(seconds(1e300), Some(MAX_DURATION));
        assert_eq!(seconds(f64::MAX), Some(MAX_DURATION));
        assert_eq!(seconds(f64::INFINITY), None);
        assert_eq!(seconds(f64::NAN), None);
        assert_eq!(seconds(-1.0), None);
        assert_eq!(seconds(0.0), None);
        assert_eq!(seconds(1.5), Some(Duration::from_millis(1500)));
        assert!(std::time::Instant::now().checked_add(MAX_DURATION).is_some());
        assert!(chrono::Utc::now().checked_add_signed(chrono::Duration::from_std(MAX_DURATION).unwrap()).is_some());
    }

    #[test]
    fn truncation_keeps_characters_whole_and_says_how_much_went() {
        assert_eq!(truncate("short", 10), "short");
        let cut = truncate("ééééé", 3);
        assert_eq!(cut, "é… (8 more bytes)");
        let long = "x".repeat(20 << 20);
        assert!(truncate(&long, MAX_ECHO).len() < MAX_ECHO + 40);
    }
}
