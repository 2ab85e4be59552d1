//! Facts about this process and machine that events and `stats` report,
//! read the way Python's `os`/`time`/`resource` modules would give them to
//! a Celery worker. Linux only (`/proc`); elsewhere the values are zeros.

use serde_json::{json, Value};

/// Current time as float Unix seconds, the events' `timestamp`.
pub fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Hours west of UTC, as Celery's `utcoffset()` (`time.timezone / 3600`,
/// or `time.altzone` during daylight saving time, which chrono's local
/// offset already is).
pub fn utcoffset() -> f64 {
    let east = chrono::Local::now().offset().local_minus_utc();
    f64::from(-east) / 3600.0
}

/// `os.getloadavg()` rounded to two decimals, as the worker's heartbeat has it.
pub fn loadavg() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut values = text.split_whitespace().map(|field| field.parse::<f64>().unwrap_or(0.0));
    let mut load = [0.0; 3];
    for slot in &mut load {
        *slot = (values.next().unwrap_or(0.0) * 100.0).round() / 100.0;
    }
    load
}

/// Python's `platform.system()`: `sw_sys` of worker events.
pub fn system_name() -> &'static str {
    match std::env::consts::OS {
        "linux" => "Linux",
        "macos" => "Darwin",
        "windows" => "Windows",
        "freebsd" => "FreeBSD",
        other => other,
    }
}

/// The part of `getrusage(RUSAGE_SELF)` that `stats` shows, from `/proc`.
pub fn rusage() -> Value {
    // /proc counts CPU time in USER_HZ ticks, which Linux fixes at 100.
    const TICKS_PER_SECOND: f64 = 100.0;
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let field = |index: usize| fields.get(index).and_then(|value| value.parse::<u64>().ok()).unwrap_or(0);
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let status_field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    json!({
        "utime": field(11) as f64 / TICKS_PER_SECOND,
        "stime": field(12) as f64 / TICKS_PER_SECOND,
        "maxrss": status_field("VmHWM"),
        "minflt": field(7),
        "majflt": field(9),
        "nvcsw": status_field("voluntary_ctxt_switches"),
        "nivcsw": status_field("nonvoluntary_ctxt_switches"),
    })
}

/// `stats.broker`, as kombu describes its connection (Flower's worker page
/// shows it and fails without it). The password is never included.
pub fn broker_description(info: &redis::ConnectionInfo) -> Value {
    let (hostname, port, ssl) = match &info.addr {
        redis::ConnectionAddr::Tcp(host, port) => (host.clone(), Some(*port), false),
        redis::ConnectionAddr::TcpTls { host, port, .. } => (host.clone(), Some(*port), true),
        redis::ConnectionAddr::Unix(path) => (path.display().to_string(), None, false),
    };
    json!({
        "hostname": hostname,
        "userid": info.redis.username,
        "virtual_host": info.redis.db.to_string(),
        "port": port,
        "ssl": ssl,
        "transport": if port.is_some() { "redis" } else { "redis+socket" },
        "transport_options": {},
        "alternates": [],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_facts_are_plausible() {
        assert!(now() > 1.7e9);
        assert!(utcoffset().abs() <= 14.0);
        assert!(loadavg().iter().all(|load| *load >= 0.0));
        let usage = rusage();
        assert!(usage["maxrss"].as_u64().unwrap() > 0, "{usage}");
        assert!(usage["utime"].as_f64().is_some(), "{usage}");
    }

    #[test]
    fn broker_description_has_no_password() {
        let client = redis::Client::open("redis://user:secret@10.0.0.5:6380/3").unwrap();
        let described = broker_description(client.get_connection_info());
        assert_eq!(described["hostname"], "10.0.0.5");
        assert_eq!(described["port"], 6380);
        assert_eq!(described["virtual_host"], "3");
        assert_eq!(described["userid"], "user");
        assert!(!described.to_string().contains("secret"));
    }
}
