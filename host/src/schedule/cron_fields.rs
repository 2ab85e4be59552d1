//! Checks a five-field crontab expression field by field, for errors that
//! name the field and the value.
//!
//! The `cron` crate parses its own six-field form (seconds first), so a
//! five-field expression is rewritten before it gets there, and the crate's
//! parser error then points a caret into text the user never wrote, with
//! words from its parser's internals. Checking the five fields here first
//! gives one plain sentence ("minute 61 is out of range 0-59") about the
//! expression as written; the crate still does the real parsing.

/// Name, range and accepted names of each of the five fields.
const FIELDS: [(&str, u32, u32, &[&str]); 5] = [
    ("minute", 0, 59, &[]),
    ("hour", 0, 23, &[]),
    ("day of month", 1, 31, &[]),
    ("month", 1, 12, &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]),
    ("day of week", 0, 7, &["sun", "mon", "tue", "wed", "thu", "fri", "sat"]),
];

/// `Ok` when every field of a five-field expression is well formed; other
/// field counts are left to the crate (its own syntax).
pub fn check(expression: &str) -> Result<(), String> {
    let fields: Vec<&str> = expression.split_whitespace().collect();
    if !(5..=7).contains(&fields.len()) {
        return Err(format!(
            "expected 5 fields (minute hour day-of-month month day-of-week), got {}",
            fields.len()
        ));
    }
    if fields.len() != 5 {
        return Ok(());
    }
    for (text, (name, low, high, names)) in fields.iter().zip(FIELDS) {
        check_field(text, low, high, names).map_err(|problem| format!("{name} field {text:?}: {problem}"))?;
    }
    Ok(())
}

/// One field: a comma-separated list of `*`, `N`, `N-M`, each optionally
/// followed by `/STEP`.
fn check_field(field: &str, low: u32, high: u32, names: &[&str]) -> Result<(), String> {
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        if let Some(step) = step {
            match step.parse::<u32>() {
                Ok(step) if step >= 1 => {}
                _ => return Err(format!("step {step:?} must be a whole number of at least 1")),
            }
        }
        if range == "*" {
            continue;
        }
        let (start, end) = range.split_once('-').unwrap_or((range, range));
        let start = value(start, low, high, names)?;
        let end = value(end, low, high, names)?;
        if start > end {
            return Err(format!("range {range} runs backwards"));
        }
    }
    Ok(())
}

fn value(text: &str, low: u32, high: u32, names: &[&str]) -> Result<u32, String> {
    if let Some(index) = names.iter().position(|name| name.eq_ignore_ascii_case(text)) {
        return Ok(index as u32 + low);
    }
    match text.parse::<u32>() {
        Ok(number) if (low..=high).contains(&number) => Ok(number),
        Ok(number) => Err(format!("{number} is out of range {low}-{high}")),
        Err(_) if text.is_empty() => Err("a value is missing".to_string()),
        Err(_) => Err(format!("{text:?} is not a number{}", if names.is_empty() { "" } else { " or a name" })),
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn errors_name_the_field_and_the_value() {
        assert_eq!(check("61 * * * *").unwrap_err(), "minute field \"61\": 61 is out of range 0-59");
        assert_eq!(check("0 8 * * 1-9").unwrap_err(), "day of week field \"1-9\": 9 is out of range 0-7");
        assert_eq!(check("0 8 * foo *").unwrap_err(), "month field \"foo\": \"foo\" is not a number or a name");
        assert_eq!(check("*/0 * * * *").unwrap_err(), "minute field \"*/0\": step \"0\" must be a whole number of at least 1");
        assert_eq!(check("0 8 * *").unwrap_err(), "expected 5 fields (minute hour day-of-month month day-of-week), got 4");
        assert_eq!(check("5-1 * * * *").unwrap_err(), "minute field \"5-1\": range 5-1 runs backwards");
    }

    #[test]
    fn good_expressions_pass() {
        for expression in ["* * * * *", "*/15 0-6,22 1 jan-mar MON-fri", "0 0 * * 7", "0 0 8 * * Mon-Fri"] {
            assert_eq!(check(expression), Ok(()), "{expression}");
        }
    }
}
