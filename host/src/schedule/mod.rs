//! Periodic tasks (Celery's beat): interval and crontab entries, with time
//! zones, sent exactly once per due time however many beats run.
//!
//! Decisions worth knowing:
//! - **Due times are a pure function of the entry and the clock.** An
//!   interval entry is due at every multiple of its interval since the Unix
//!   epoch (`every = 60` fires at :00 of each minute); a crontab entry at
//!   each match in its time zone. So every beat process computes the same
//!   due times without sharing any state.
//! - **Exactly once without a leader.** Each send is one Lua script that
//!   sets `chard:beat:sent:<entry>:<due>` with NX and pushes the message
//!   only if it set it; the message id is derived from the same pair. Run
//!   two beats for high availability: both try, one sends. Celery beat
//!   run twice sends everything twice.
//! - **No backlog.** A beat that starts (or wakes from a long pause) sends
//!   the most recent due time if it is at most [`CATCH_UP`] old and nobody
//!   sent it, and not the runs it missed before that, as Celery beat does.

mod cron_fields;

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

/// How late a due time may still be sent.
pub const CATCH_UP: Duration = Duration::from_secs(60);

/// The schedule file: `[entries.<name>]` tables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    entries: BTreeMap<String, EntryFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFile {
    task: String,
    #[serde(default)]
    args: Vec<Value>,
    #[serde(default)]
    kwargs: Map<String, Value>,
    /// Seconds between runs.
    every: Option<f64>,
    /// Crontab: 5 fields (minute hour day month weekday, as Celery and Unix
    /// cron) or 6 with seconds first.
    cron: Option<String>,
    timezone: Option<String>,
    queue: Option<String>,
    priority: Option<u8>,
    /// Seconds after its due time that a run is no longer wanted.
    expires: Option<f64>,
}

/// When an entry is due.
#[derive(Debug, Clone)]
pub enum When {
    Every(Duration),
    Cron { schedule: Box<cron::Schedule>, timezone: chrono_tz::Tz },
}

/// One periodic task.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub task: String,
    pub args: Vec<Value>,
    pub kwargs: Map<String, Value>,
    pub when: When,
    pub queue: Option<String>,
    pub priority: u8,
    pub expires: Option<Duration>,
}

impl Entry {
    /// The first due time strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.when {
            When::Every(every) => {
                let step = every.as_micros() as i64;
                let now = after.timestamp_micros();
                let next = (now.div_euclid(step) + 1) * step;
                DateTime::from_timestamp_micros(next)
            }
            When::Cron { schedule, timezone } => {
                schedule.after(&after.with_timezone(timezone)).next().map(|due| due.with_timezone(&Utc))
            }
        }
    }

    /// The latest due time at or before `at`.
    pub fn last_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.when {
            When::Every(every) => {
                let step = every.as_micros() as i64;
                DateTime::from_timestamp_micros(at.timestamp_micros().div_euclid(step) * step)
            }
            // cron has no reverse iterator: look forward from CATCH_UP ago.
            When::Cron { .. } => {
                let from = at - chrono::Duration::from_std(CATCH_UP).ok()? - chrono::Duration::seconds(1);
                let mut last = None;
                let mut cursor = from;
                while let Some(due) = self.next_after(cursor).filter(|due| *due <= at) {
                    last = Some(due);
                    cursor = due;
                }
                last
            }
        }
    }

    /// The message id for the run due at `due`: the same in every beat.
    pub fn run_id(&self, due: DateTime<Utc>) -> String {
        let name = format!("chard-beat:{}:{}", self.name, due.timestamp_micros());
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes()).to_string()
    }

    /// The key that marks the run due at `due` as sent.
    pub fn sent_key(&self, due: DateTime<Utc>) -> String {
        format!("chard:beat:sent:{}:{}", self.name, due.timestamp_micros())
    }
}

/// Reads a schedule file; errors name the file, line and key.
pub fn load(path: &Path) -> anyhow::Result<Vec<Entry>> {
    let text = std::fs::read_to_string(path).map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
    parse(path, &text)
}

pub fn parse(path: &Path, text: &str) -> anyhow::Result<Vec<Entry>> {
    let file: File = crate::runtime::parse_toml(path, text)?;
    let default_zone = parse_zone(file.timezone.as_deref().unwrap_or("UTC"))
        .map_err(|error| anyhow::anyhow!("{}: timezone: {error}", path.display()))?;
    let mut entries = Vec::new();
    for (name, entry) in file.entries {
        let bad = |message: String| anyhow::anyhow!("{}: [entries.{name}]: {message}", path.display());
        let when = match (&entry.every, &entry.cron) {
            (Some(every), None) if *every >= 0.001 && every.is_finite() => When::Every(Duration::from_secs_f64(*every)),
            (Some(every), None) => return Err(bad(format!("every = {every}: must be a positive number of seconds"))),
            (None, Some(expression)) => {
                cron_fields::check(expression).map_err(|problem| bad(format!("cron {expression:?}: {problem}")))?;
                // The crate's own text points into the rewritten expression:
                // only its first line, without the caret.
                let schedule = cron::Schedule::from_str(&to_cron(expression)).map_err(|error| {
                    let first = error.to_string().lines().next().unwrap_or_default().trim().to_string();
                    bad(format!("cron {expression:?}: not a valid expression ({first})"))
                })?;
                let timezone = match &entry.timezone {
                    Some(zone) => parse_zone(zone).map_err(bad)?,
                    None => default_zone,
                };
                When::Cron { schedule: Box::new(schedule), timezone }
            }
            _ => return Err(bad("give exactly one of `every` (seconds) or `cron`".into())),
        };
        if entry.every.is_some() && entry.timezone.is_some() {
            return Err(bad("`timezone` applies to `cron` entries only".into()));
        }
        if entry.priority.is_some_and(|priority| priority > 9) {
            return Err(bad("priority must be 0-9".into()));
        }
        entries.push(Entry {
            name,
            task: entry.task,
            args: entry.args,
            kwargs: entry.kwargs,
            when,
            queue: entry.queue,
            priority: entry.priority.unwrap_or(0),
            expires: entry.expires.filter(|seconds| *seconds > 0.0).map(Duration::from_secs_f64),
        });
    }
    anyhow::ensure!(!entries.is_empty(), "{}: no [entries.<name>] tables", path.display());
    Ok(entries)
}

fn parse_zone(name: &str) -> Result<chrono_tz::Tz, String> {
    name.parse().map_err(|_| format!("unknown time zone {name:?} (use IANA names like \"Europe/Paris\")"))
}

/// Celery's and Unix cron's 5 fields (minute hour day month weekday, Sunday
/// = 0 or 7) in the `cron` crate's form (seconds first, weekdays by name).
/// Six or seven fields are taken as the crate's own syntax.
fn to_cron(expression: &str) -> String {
    let fields: Vec<&str> = expression.split_whitespace().collect();
    if fields.len() != 5 {
        return expression.to_string();
    }
    format!("0 {} {} {} {} {}", fields[0], fields[1], fields[2], fields[3], weekday_names(fields[4]))
}

/// Replaces weekday numbers (not step sizes after `/`) by names.
fn weekday_names(field: &str) -> String {
    const NAMES: [&str; 8] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let mut out = String::new();
    let mut number = String::new();
    let mut after_slash = false;
    let flush = |number: &mut String, out: &mut String, after_slash: bool| {
        if number.is_empty() {
            return;
        }
        match number.parse::<usize>().ok().filter(|n| *n < NAMES.len() && !after_slash) {
            Some(day) => out.push_str(NAMES[day]),
            None => out.push_str(number),
        }
        number.clear();
    };
    for character in field.chars() {
        if character.is_ascii_digit() {
            number.push(character);
        } else {
            flush(&mut number, &mut out, after_slash);
            after_slash = character == '/';
            out.push(character);
        }
    }
    flush(&mut number, &mut out, after_slash);
    out
}

/// A due time, for logs.
pub fn describe(due: DateTime<Utc>) -> String {
    due.to_rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(text: &str) -> Vec<Entry> {
        parse(Path::new("beat.toml"), text).unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn intervals_are_aligned_to_the_epoch() {
        let entry = &entries("[entries.tick]\ntask = \"math.add\"\nargs = [1, 2]\nevery = 60\n")[0];
        assert_eq!(entry.next_after(at("2026-11-25T10:00:30Z")), Some(at("2026-11-25T10:01:00Z")));
        assert_eq!(entry.next_after(at("2026-11-25T10:01:00Z")), Some(at("2026-11-25T10:02:00Z")));
        assert_eq!(entry.last_at_or_before(at("2026-11-25T10:01:59Z")), Some(at("2026-11-25T10:01:00Z")));
        assert_eq!(entry.run_id(at("2026-11-25T10:01:00Z")), entry.run_id(at("2026-11-25T10:01:00Z")));
        assert_ne!(entry.run_id(at("2026-11-25T10:01:00Z")), entry.run_id(at("2026-11-25T10:02:00Z")));
    }

    #[test]
    fn crontab_follows_its_time_zone_across_dst() {
        let text = "[entries.report]\ntask = \"reports.daily\"\ncron = \"30 9 * * 1-5\"\ntimezone = \"America/New_York\"\n";
        let entry = &entries(text)[0];
        // Wednesday 2026-11-25 (EST, UTC-5): 09:30 there is 14:30 UTC.
        assert_eq!(entry.next_after(at("2026-11-25T12:00:00Z")), Some(at("2026-11-25T14:30:00Z")));
        // Friday's run, then Monday's: the weekend is skipped.
        assert_eq!(entry.next_after(at("2026-11-27T15:00:00Z")), Some(at("2026-11-30T14:30:00Z")));
        // Summer (EDT, UTC-4).
        assert_eq!(entry.next_after(at("2026-07-01T00:00:00Z")), Some(at("2026-07-01T13:30:00Z")));
        assert_eq!(entry.last_at_or_before(at("2026-11-25T14:30:10Z")), Some(at("2026-11-25T14:30:00Z")));
    }

    #[test]
    fn celery_weekday_numbers_and_steps() {
        assert_eq!(to_cron("*/15 * * * 0"), "0 */15 * * * Sun");
        assert_eq!(to_cron("0 8 * * 1-5"), "0 0 8 * * Mon-Fri");
        assert_eq!(to_cron("0 8 * * */2"), "0 0 8 * * */2");
        assert_eq!(to_cron("0 0 8 * * 7"), "0 0 8 * * 7", "six fields are the crate's own syntax");
        let entry = &entries("[entries.sunday]\ntask = \"t.t\"\ncron = \"0 0 * * 7\"\n")[0];
        assert_eq!(entry.next_after(at("2026-11-25T00:00:00Z")), Some(at("2026-11-29T00:00:00Z")), "7 is Sunday");
    }

    #[test]
    fn bad_entries_are_named() {
        let error = |text: &str| parse(Path::new("beat.toml"), text).unwrap_err().to_string();
        assert!(error("[entries.a]\ntask = \"t\"\n").contains("[entries.a]: give exactly one of"));
        assert!(error("[entries.a]\ntask = \"t\"\nevery = 1\ncron = \"* * * * *\"\n").contains("exactly one"));
        assert!(error("[entries.a]\ntask = \"t\"\ncron = \"61 * * * *\"\n").contains("cron \"61 * * * *\""));
        assert!(error("[entries.a]\ntask = \"t\"\ncron = \"* * * * *\"\ntimezone = \"Mars/Olympus\"\n").contains("unknown time zone"));
        assert!(error("[entries.a]\ntask = \"t\"\nevry = 5\n").starts_with("beat.toml:3: unknown field `evry`"));
        assert!(error("").contains("no [entries.<name>] tables"));
    }
}
