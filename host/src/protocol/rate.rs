//! Celery's rate-limit syntax: "10/s", "100/m", "1000/h", or a bare number
//! meaning per second.

use std::time::Duration;

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
}
