//! What a task does beyond computing, from the Python, JavaScript and C SDKs:
//! outbound HTTP, progress, sending and replacing tasks, key-value and
//! exception arguments. The same tasks live in `pyio`, `jsio` and `cio`
//! (HTTP in `pyhttp`, `jshttp` and `chttp`, built with wasi:http); a stock
//! Celery client drives them through one worker, against an HTTP server on
//! 127.0.0.1 that the test starts.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::util::{free_port, host, plugin_folder, run_python, RedisServer, Worker};

const PLUGINS: [&str; 3] = ["pyio", "jsio", "cio"];
const HTTP_PLUGINS: [&str; 3] = ["pyhttp", "jshttp", "chttp"];

/// A small HTTP/1.1 server: `GET /json`, `POST /echo` (answers with what it
/// received), `GET /slow` (answers after 150 ms). One request per
/// connection (`connection: close`); counts the requests it served.
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
                    if serve(stream).is_some() {
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

fn serve(stream: TcpStream) -> Option<()> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
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
    let (status, answer) = match (method.as_str(), path.as_str()) {
        ("GET", "/json") => (200, json!({"hello": "world", "n": 42})),
        ("POST", "/echo") => (
            200,
            json!({"received": serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null), "content_type": content_type}),
        ),
        ("GET", "/slow") => {
            std::thread::sleep(Duration::from_millis(150));
            (200, json!({"slow": true}))
        }
        _ => (404, json!({"error": "not found"})),
    };
    let text = answer.to_string();
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    )
    .ok()?;
    Some(())
}

/// Compiles the six plugins into the test run's compile cache once, before
/// any worker here starts: a cold compile of two Python and two JavaScript
/// components by several workers at once can outlast a worker's start-up
/// wait on a busy 2-core machine.
fn warm_compile_cache() {
    static WARM: std::sync::Once = std::sync::Once::new();
    WARM.call_once(|| {
        let all: Vec<&str> = PLUGINS.iter().chain(HTTP_PLUGINS.iter()).copied().collect();
        let folder = plugin_folder(&all);
        host(&["tasks", folder.path().to_str().unwrap()]);
    });
}

/// A worker serving `names`, each granted `capabilities` (TOML lines under
/// `[capabilities]`); `args` are more worker flags.
fn worker(redis: &RedisServer, names: &[&str], capabilities: &str, args: &[&str]) -> (tempfile::TempDir, Worker) {
    warm_compile_cache();
    let plugins = plugin_folder(names);
    for plugin in names {
        std::fs::write(plugins.path().join(format!("{plugin}.toml")), format!("[capabilities]\n{capabilities}\n")).unwrap();
    }
    let backend = redis.url(1);
    let worker = Worker::start(plugins.path(), &redis.url(0), &[&["--result-backend", backend.as_str()][..], args].concat());
    (plugins, worker)
}

fn scenario(redis: &RedisServer, name: &str, plugin: &str, args: &[&str]) -> Value {
    let broker = redis.url(0);
    let backend = redis.url(1);
    run_python("guest_io.py", &[&[name, broker.as_str(), backend.as_str(), plugin][..], args].concat())
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
            message.contains(&format!("HTTP to {denied} is not granted to plugin {plugin}")) && message.contains(&format!("{plugin}.toml")),
            "{plugin}: {}",
            seen["denied"]
        );
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), 2 * HTTP_PLUGINS.len(), "no request reached a denied origin");
}

#[test]
fn progress_is_polled_from_the_celery_client() {
    let redis = RedisServer::start();
    let (_plugins, _worker) = worker(&redis, &PLUGINS, "progress = true", &[]);
    for plugin in PLUGINS {
        let seen = scenario(&redis, "progress", plugin, &[]);
        let steps = seen["seen"].as_array().unwrap();
        assert!(!steps.is_empty(), "{plugin}: the client saw no PROGRESS state: {seen}");
        for step in steps {
            assert_eq!(step["total"], json!(5), "{plugin}: {seen}");
            assert!((1..=5).contains(&step["done"].as_i64().unwrap()), "{plugin}: {seen}");
        }
        // The final result replaces the progress.
        assert_eq!(seen["final"], json!({"done": 5}), "{plugin}");
        assert_eq!(seen["final_state"], json!("SUCCESS"), "{plugin}");
    }
}

#[test]
fn tasks_send_and_replace_tasks() {
    let redis = RedisServer::start();
    let (_plugins, _worker) = worker(&redis, &PLUGINS, "send = true", &[]);
    for plugin in PLUGINS {
        let seen = scenario(&redis, "canvas", plugin, &[]);
        assert_eq!(seen["children"], json!([0, 2, 4, 6, 8]), "{plugin}: {seen}");
        let ids: Vec<&str> = seen["ids"].as_array().unwrap().iter().map(|id| id.as_str().unwrap()).collect();
        assert_eq!(ids.iter().collect::<std::collections::HashSet<_>>().len(), 5, "{plugin}: distinct ids");
        assert_eq!(seen["replace_chain"], json!(16), "{plugin}: (5 + 1) + 10");
        assert_eq!(seen["replace_group"], json!([0, 2, 4]), "{plugin}");
    }
}

#[test]
fn a_task_that_sends_then_fails_sends_nothing() {
    let redis = RedisServer::start();
    // One job at a time, in queue order: a child sent by the failed task
    // would run before the sentinel the client sends next.
    let (_plugins, _worker) = worker(&redis, &PLUGINS, "send = true", &["-c", "1"]);
    let mut stored = 0;
    for plugin in PLUGINS {
        let seen = scenario(&redis, "send_then_fail", plugin, &[]);
        assert_eq!(seen["error"]["type"], json!("ValueError"), "{plugin}: {seen}");
        assert_eq!(seen["error"]["args"], json!(["failed after sending"]), "{plugin}: {seen}");
        assert_eq!(seen["sentinel"], json!(42), "{plugin}");
        stored += 2; // the failure and the sentinel, nothing else
        assert_eq!(seen["results"], json!(stored), "{plugin}: a result more means the failed task's child ran");
    }
}

#[test]
fn a_key_value_marker_makes_a_task_run_once() {
    let redis = RedisServer::start();
    let (_plugins, _worker) = worker(&redis, &PLUGINS, "keyvalue = true", &[]);
    for plugin in PLUGINS {
        let seen = scenario(&redis, "once", plugin, &["order-7"]);
        assert_eq!(seen[0], json!({"order": "order-7", "ran": true, "runs": 1}), "{plugin}");
        assert_eq!(seen[1], json!({"order": "order-7", "ran": false, "runs": 1}), "{plugin}");
    }
    // Each plugin has its own store.
    let mut store = redis.connection(1);
    let keys: Vec<String> = redis::cmd("KEYS").arg("chard:kv:*:runs").query(&mut store).unwrap();
    assert_eq!(keys.len(), PLUGINS.len(), "{keys:?}");
}

#[test]
fn exception_args_retry_exc_and_reject_from_every_guest_language() {
    let redis = RedisServer::start();
    let (_plugins, _worker) = worker(&redis, &PLUGINS, "", &[]);
    for plugin in PLUGINS {
        let seen = scenario(&redis, "errors", plugin, &[]);
        assert_eq!(seen["args"]["type"], json!("ExpectedException"), "{plugin}: {seen}");
        assert_eq!(seen["args"]["args"], json!(["card declined", 42]), "{plugin}: {seen}");
        // A retry's `exc` is what the job fails with once no retry is left.
        assert_eq!(seen["retry_exc"]["type"], json!("ExpectedException"), "{plugin}: {seen}");
        assert_eq!(seen["retry_exc"]["args"], json!(["upstream down", 503]), "{plugin}: {seen}");
        // Rejected without requeue: dropped, nothing stored (the worker went on).
        assert_eq!(seen["sentinel"], json!(3), "{plugin}");
        assert_eq!(seen["rejected_state"], json!("PENDING"), "{plugin}: {seen}");
    }
}

#[test]
fn every_capability_is_denied_without_its_grant() {
    let redis = RedisServer::start();
    let (_plugins, _worker) = worker(&redis, &PLUGINS, "", &[]);
    for plugin in PLUGINS {
        let seen = scenario(&redis, "denied", plugin, &[]);
        for key in ["progress", "send", "keyvalue"] {
            let message = seen[key]["args"][0].as_str().unwrap_or_default();
            assert!(message.contains(&format!("`{key} = true`")) && message.contains(&format!("{plugin}.toml")), "{plugin}, {key}: {}", seen[key]);
        }
    }
}

#[test]
fn http_is_denied_without_a_grant() {
    let server = HttpServer::start();
    let redis = RedisServer::start();
    let (_plugins, _worker) = worker(&redis, &HTTP_PLUGINS, "", &[]);
    for plugin in HTTP_PLUGINS {
        let seen = scenario(&redis, "http", plugin, &[&server.base(), &server.base()]);
        for case in ["get", "denied"] {
            let message = seen[case]["args"][0].as_str().unwrap_or_default();
            assert!(message.contains("is not granted") && message.contains(&format!("{plugin}.toml")), "{plugin}: {seen}");
        }
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), 0, "nothing reached the server");
}

/// Not a timing assert: prints the added cost per job of one loopback GET,
/// per language (README, "Writing tasks").
#[test]
fn cost_of_one_loopback_get_per_job() {
    let server = HttpServer::start();
    let redis = RedisServer::start();
    let (_plugins, _worker) = worker(&redis, &HTTP_PLUGINS, &format!("http = [\"{}\"]", server.base()), &[]);
    for plugin in HTTP_PLUGINS {
        let seen = scenario(&redis, "cost", plugin, &[&server.base(), "30"]);
        let (add, get) = (seen["add"].as_f64().unwrap(), seen["get"].as_f64().unwrap());
        eprintln!("{plugin}: add {:.2} ms/job, add+GET {:.2} ms/job: a loopback GET adds {:.2} ms", add * 1e3, get * 1e3, (get - add) * 1e3);
        assert!(get > 0.0 && add > 0.0);
    }
}
