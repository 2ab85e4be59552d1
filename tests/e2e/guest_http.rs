//! Outbound HTTP (`wasi:http`) from the Rust, Python, JavaScript and C SDKs
//! (`rshttp`, `pyhttp`, `jshttp`, `chttp`) against a server on 127.0.0.1
//! the test starts: GET and POST JSON, an origin that is not granted, no
//! grant at all, redirects, a slow server against the time limit, a 100 MiB
//! response against the body limit, a granted name that resolves to
//! loopback (SSRF), and the added cost per job of one loopback GET.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::guest_io::scenario;
use crate::util::{free_port, host, plugin_folder, RedisServer, Worker};

const HTTP_PLUGINS: [&str; 4] = ["rshttp", "pyhttp", "jshttp", "chttp"];

/// How long `/slow` waits before it answers: far past the tests' time limit.
const SLOW: Duration = Duration::from_secs(20);

/// Bytes `/huge` sends: 100 MiB, without a `content-length`.
const HUGE: usize = 100 << 20;

/// A small HTTP/1.1 server with keep-alive: `GET /json`, `POST /echo`
/// (answers with what it received), `GET /slow` (answers after [`SLOW`]),
/// `GET /redirect?to=URL` (302 to URL), `GET /huge` ([`HUGE`] bytes, then
/// closes). Counts the requests it answered.
struct HttpServer {
    port: u16,
    requests: Arc<AtomicUsize>,
}

impl HttpServer {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let counter = counter.clone();
                std::thread::spawn(move || {
                    // One write per response, sent at once: Nagle's algorithm
                    // against the client's delayed ACK would add 40 ms.
                    stream.set_nodelay(true).unwrap();
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut stream = stream;
                    while serve(&mut reader, &mut stream).unwrap_or(false) {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        Self { port, requests }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Answers one request; `Some(true)` to keep the connection.
fn serve(reader: &mut BufReader<TcpStream>, stream: &mut TcpStream) -> Option<bool> {
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).ok()? == 0 {
        return None;
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut length = 0;
    let mut content_type = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "content-type" => content_type = value.trim().to_string(),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let (status, answer, location) = match (method.as_str(), path) {
        ("GET", "/json") => (200, json!({"hello": "world", "n": 42}), None),
        ("POST", "/echo") => (
            200,
            json!({"received": serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null), "content_type": content_type}),
            None,
        ),
        ("GET", "/slow") => {
            std::thread::sleep(SLOW);
            (200, json!({"slow": true}), None)
        }
        ("GET", "/redirect") => (302, json!({}), Some(query.strip_prefix("to=")?.to_string())),
        ("GET", "/huge") => {
            write!(stream, "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n").ok()?;
            let chunk = vec![b' '; 64 << 10];
            for _ in 0..HUGE / chunk.len() {
                stream.write_all(&chunk).ok()?;
            }
            return Some(false);
        }
        _ => (404, json!({"error": "not found"}), None),
    };
    let text = answer.to_string();
    let location = location.map(|url| format!("location: {url}\r\n")).unwrap_or_default();
    let response =
        format!("HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{location}\r\n{text}", text.len());
    stream.write_all(response.as_bytes()).ok()?;
    Some(true)
}

/// `guest_io::worker` after compiling the HTTP plugins into the test run's
/// compile cache once (a cold Python or JavaScript compile in several
/// workers at once can outlast a worker's start-up wait).
fn worker(redis: &RedisServer, names: &[&str], capabilities: &str, args: &[&str]) -> (tempfile::TempDir, Worker) {
    static WARM: std::sync::Once = std::sync::Once::new();
    WARM.call_once(|| {
        let folder = plugin_folder(&HTTP_PLUGINS);
        let run = host(&["tasks", "--plugins", folder.path().to_str().unwrap()]);
        run.ok();
    });
    crate::guest_io::worker(redis, names, capabilities, args)
}

/// The error message of an `http_get` outcome (empty if it succeeded).
fn error_text(outcome: &Value) -> String {
    outcome["error"]["args"][0].as_str().unwrap_or_default().to_string()
}

#[test]
fn http_get_post_and_a_denied_origin_from_every_guest_language() {
    let server = HttpServer::start();
    let denied = format!("http://127.0.0.1:{}", free_port());
    let redis = RedisServer::start();
    let (_plugins, _worker) = worker(&redis, &HTTP_PLUGINS, &format!("http = [\"{}\"]", server.base()), &[]);
    for plugin in HTTP_PLUGINS {
        let seen = scenario(&redis, "http", plugin, &[&server.base(), &denied]);
        assert_eq!(seen["get"], json!({"status": 200, "body": {"hello": "world", "n": 42}}), "{plugin}");
        assert_eq!(
            seen["post"],
            json!({"status": 200, "body": {"received": {"items": [1, 2.5, null], "name": "h\u{e9}"}, "content_type": "application/json"}}),
            "{plugin}"
        );
        let message = seen["denied"]["args"][0].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!("HTTP to {denied} is not granted to plugin {plugin}: add it to http in {plugin}.toml")),
            "{plugin}: {}",
            seen["denied"]
        );
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), 2 * HTTP_PLUGINS.len(), "no request reached a denied origin");
}

#[test]
fn http_is_denied_without_a_grant() {
    let server = HttpServer::start();
    let redis = RedisServer::start();
    let (_plugins, _worker) = worker(&redis, &HTTP_PLUGINS, "", &[]);
    let base = server.base();
    for plugin in HTTP_PLUGINS {
        let seen = scenario(&redis, "http", plugin, &[&base, &base]);
        let expected = format!("HTTP to {base} is not granted to plugin {plugin}: add it to http in {plugin}.toml");
        for case in ["get", "denied"] {
            let message = seen[case]["args"][0].as_str().unwrap_or_default();
            assert!(message.contains(&expected), "{plugin}: {seen}");
        }
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), 0, "nothing reached the server");
}

#[test]
fn redirects_are_followed_only_to_granted_origins() {
    let server = HttpServer::start();
    let denied = format!("http://127.0.0.1:{}", free_port());
    let redis = RedisServer::start();
    let (_plugins, _worker) = worker(&redis, &HTTP_PLUGINS, &format!("http = [\"{}\"]", server.base()), &[]);
    let to_granted = format!("{}/redirect?to={}/json", server.base(), server.base());
    let to_denied = format!("{}/redirect?to={denied}/json", server.base());
    for plugin in HTTP_PLUGINS {
        let seen = scenario(&redis, "http_get", plugin, &[&to_granted, &to_denied]);
        assert_eq!(seen[0], json!({"value": {"status": 200, "body": {"hello": "world", "n": 42}}}), "{plugin}");
        let message = error_text(&seen[1]);
        assert!(message.contains(&format!("HTTP to {denied} is not granted to plugin {plugin}")), "{plugin}: {}", seen[1]);
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), 3 * HTTP_PLUGINS.len(), "two redirects and one GET per plugin");
}

/// The guest is blocked in a host call when its time runs out, where epoch
/// interruption cannot reach it: the request itself must stop.
#[test]
fn a_slow_server_is_cut_off_at_the_time_limit() {
    let server = HttpServer::start();
    let redis = RedisServer::start();
    // A second table after [capabilities]: the manifest's task defaults.
    let manifest = format!("http = [\"{}\"]\n[defaults]\ntime_limit = 1", server.base());
    let (_plugins, _worker) = worker(&redis, &HTTP_PLUGINS, &manifest, &[]);
    let slow = format!("{}/slow", server.base());
    let fast = format!("{}/json", server.base());
    for plugin in HTTP_PLUGINS {
        let started = std::time::Instant::now();
        let seen = scenario(&redis, "http_get", plugin, &[&slow, &fast]);
        assert_eq!(seen[0]["error"]["type"], json!("TimeLimitExceeded"), "{plugin}: {}", seen[0]);
        assert!(started.elapsed() < SLOW, "{plugin}: the job waited for the server, not for its time limit");
        assert_eq!(seen[1], json!({"value": {"status": 200, "body": {"hello": "world", "n": 42}}}), "{plugin}: the worker goes on");
    }
}

/// VmHWM (peak resident memory) of a process, in bytes.
fn peak_rss(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[test]
fn a_100_mib_response_stops_at_the_body_limit() {
    let server = HttpServer::start();
    let redis = RedisServer::start();
    let (_plugins, worker) = worker(&redis, &HTTP_PLUGINS, &format!("http = [\"{}\"]", server.base()), &[]);
    let huge = format!("{}/huge", server.base());
    let fast = format!("{}/json", server.base());
    // Warm: every plugin's first job (instances, pools) before the baseline.
    for plugin in HTTP_PLUGINS {
        scenario(&redis, "http_get", plugin, &[&fast]);
    }
    let before = peak_rss(worker.pid());
    for plugin in HTTP_PLUGINS {
        let seen = scenario(&redis, "http_get", plugin, &[&huge, &fast]);
        let message = error_text(&seen[0]);
        assert!(
            message.contains(&format!("the response from {} is over the 16777216 byte limit: raise http_max_body in {plugin}.toml", server.base())),
            "{plugin}: {}",
            seen[0]
        );
        assert_eq!(seen[1]["value"]["status"], json!(200), "{plugin}: the worker goes on");
    }
    // Printed, not asserted: the guests' own copies of the 16 MiB they were
    // given and the plugins' mapped code pages, four languages' worth, are
    // in it too. The next test asserts the worker's own part.
    let grown = peak_rss(worker.pid()).saturating_sub(before);
    eprintln!("16 MiB limit: worker peak RSS grew by {:.1} MiB over four 100 MiB responses", grown as f64 / (1 << 20) as f64);
}

/// The worker's own part: with a 1 MiB limit the guests hold almost
/// nothing, so the peak RSS gains what the worker itself keeps: 32 MiB
/// measured, where a worker that held a body would grow by 100 MiB.
#[test]
fn the_worker_does_not_buffer_a_response_past_the_body_limit() {
    let server = HttpServer::start();
    let redis = RedisServer::start();
    let plugins = ["rshttp", "chttp"];
    let grant = format!("http = [\"{}\"]\nhttp_max_body = 1048576", server.base());
    let (_plugins, worker) = worker(&redis, &plugins, &grant, &[]);
    let huge = format!("{}/huge", server.base());
    let fast = format!("{}/json", server.base());
    for plugin in plugins {
        scenario(&redis, "http_get", plugin, &[&fast]);
    }
    let before = peak_rss(worker.pid());
    for plugin in plugins {
        for _ in 0..2 {
            let seen = scenario(&redis, "http_get", plugin, &[&huge]);
            assert!(error_text(&seen[0]).contains("is over the 1048576 byte limit"), "{plugin}: {}", seen[0]);
        }
    }
    let grown = peak_rss(worker.pid()).saturating_sub(before);
    eprintln!("1 MiB limit: worker peak RSS grew by {:.1} MiB over four 100 MiB responses", grown as f64 / (1 << 20) as f64);
    assert!(grown < HUGE as u64 / 2, "the worker's peak RSS grew by {grown} bytes");
}

/// A granted *name* that resolves to loopback reaches it only when the
/// address is granted too.
#[test]
fn a_name_resolving_to_loopback_needs_the_address_granted() {
    let server = HttpServer::start();
    let by_name = format!("http://localhost:{}", server.port);
    let plugins = ["rshttp", "chttp"];
    let redis = RedisServer::start();
    let (_folder, _worker) = worker(&redis, &plugins, &format!("http = [\"{by_name}\"]"), &[]);
    for plugin in plugins {
        let seen = scenario(&redis, "http_get", plugin, &[&format!("{by_name}/json")]);
        let message = error_text(&seen[0]);
        assert!(
            message.contains(&format!("HTTP to {by_name} is refused: localhost resolves to "))
                && message.contains("an internal address; grant http://"),
            "{plugin}: {}",
            seen[0]
        );
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);
    drop(_worker);
    let redis = RedisServer::start();
    let (_folder, _worker) = worker(&redis, &plugins, &format!("http = [\"{by_name}\", \"{}\"]", server.base()), &[]);
    for plugin in plugins {
        let seen = scenario(&redis, "http_get", plugin, &[&format!("{by_name}/json")]);
        assert_eq!(seen[0], json!({"value": {"status": 200, "body": {"hello": "world", "n": 42}}}), "{plugin}");
    }
}

/// Not a timing assert: prints the added cost per job of one loopback GET,
/// per language (README, "Outbound HTTP").
#[test]
fn cost_of_one_loopback_get_per_job() {
    let server = HttpServer::start();
    let redis = RedisServer::start();
    let (_plugins, _worker) = worker(&redis, &HTTP_PLUGINS, &format!("http = [\"{}\"]", server.base()), &["-c", "1"]);
    for plugin in HTTP_PLUGINS {
        let seen = scenario(&redis, "cost", plugin, &[&server.base(), "300"]);
        let (add, get) = (seen["add"].as_f64().unwrap(), seen["get"].as_f64().unwrap());
        eprintln!("{plugin}: add {:.2} ms/job, add+GET {:.2} ms/job: a loopback GET adds {:.2} ms", add * 1e3, get * 1e3, (get - add) * 1e3);
        assert!(get > 0.0 && add > 0.0);
    }
}
