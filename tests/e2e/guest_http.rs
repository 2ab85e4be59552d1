//! Outbound HTTP from the Python, JavaScript and C SDKs (`pyhttp`, `jshttp`,
//! `chttp`, built with wasi:http): GET and POST JSON to a server on
//! 127.0.0.1 the test starts, an origin that is not granted, no grant at
//! all, and the added cost per job of one loopback GET.
//!
//! NOT REGISTERED in `main.rs` yet: the worker does not provide
//! `wasi:http/outgoing-handler` (see `wit/chard.wit`), so these plugins do
//! not load. When it does, add `mod guest_http;` to `main.rs` and build the
//! plugins with `make http-plugins`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::guest_io::{scenario, worker};
use crate::util::{free_port, RedisServer};

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
