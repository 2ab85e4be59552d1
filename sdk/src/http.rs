//! Outbound HTTP from a task, over the standard `wasi:http/outgoing-handler`.
//!
//! The worker does the connecting, TLS, pooling and time limits, and lets a
//! request through only to the origins granted under `http` in the plugin's
//! manifest; any other fails with the worker's message, which names the key
//! to add. Every failure (refused, timed out, body over the size limit) is a
//! [`TaskError`] of type `ConnectionError`, so `autoretry_for =
//! ["ConnectionError"]` retries it.
//!
//! ```text
//! use chard_sdk::{http, task, TaskError};
//!
//! #[task]
//! fn notify(url: String, event: String) -> Result<serde_json::Value, TaskError> {
//!     http::post_json(&url, &serde_json::json!({"event": event}))?.error_for_status()?.json()
//! }
//! ```
//!
//! Why a small client of our own rather than a crate: the calls block the
//! task (the only thing its instance runs), so no async runtime is needed,
//! and the bindings come from the same WIT files the worker implements
//! (`sdk/wit/deps`, wasmtime-wasi-http's). Crates that target wasi:http,
//! such as `wstd` or `waki`, work too: the worker provides the interface to
//! any component that imports it.
//!
//! Redirects are followed (up to [`MAX_REDIRECTS`]) as new requests, each
//! checked by the worker again: a redirect to an origin not granted fails.
//! The body is read whole into memory; the worker caps its size.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::TaskError;

#[allow(clippy::all, missing_docs)]
mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "chard:guest/http-client",
        generate_all,
    });
}

use bindings::wasi::http::outgoing_handler;
use bindings::wasi::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use bindings::wasi::io::streams::StreamError;

/// Redirects followed before a request fails.
pub const MAX_REDIRECTS: usize = 5;

/// The most `blocking-write-and-flush` takes in one call.
const WRITE_CHUNK: usize = 4096;
const READ_CHUNK: u64 = 65536;

/// A response: status, headers (names in lower case) and the whole body.
#[derive(Debug, Clone)]
pub struct Response {
    pub url: String,
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (any case), as text.
    pub fn header(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(key, _)| *key == name).map(|(_, value)| String::from_utf8_lossy(value).into_owned())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; a body that is not is a `ValueError`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, TaskError> {
        serde_json::from_slice(&self.body)
            .map_err(|error| TaskError::failed_as("ValueError", format!("the response from {} is not JSON: {error}", self.url)))
    }

    /// `self` if the status is below 400, else a `ConnectionError` naming it.
    pub fn error_for_status(self) -> Result<Self, TaskError> {
        if self.status < 400 {
            return Ok(self);
        }
        let text: String = self.text().chars().take(200).collect();
        Err(TaskError::failed_as("ConnectionError", format!("HTTP {} from {}: {text}", self.status, self.url)))
    }
}

pub fn get(url: &str) -> Result<Response, TaskError> {
    request("GET", url, &[], &[])
}

/// POSTs `payload` as JSON (`content-type: application/json`).
pub fn post_json(url: &str, payload: &impl Serialize) -> Result<Response, TaskError> {
    let body = serde_json::to_vec(payload).map_err(|error| TaskError::failed_as("ValueError", error.to_string()))?;
    request("POST", url, &[("content-type", "application/json")], &body)
}

/// Sends a request and follows redirects; a 303, or a 301/302 after a
/// method other than GET and HEAD, continues as a GET without a body.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Response, TaskError> {
    let (mut method, mut url, mut body) = (method.to_ascii_uppercase(), url.to_string(), body);
    for _ in 0..=MAX_REDIRECTS {
        let response = send(&method, &url, headers, body)?;
        let location = response.header("location");
        let Some(location) = location.filter(|_| matches!(response.status, 301 | 302 | 303 | 307 | 308)) else {
            return Ok(response);
        };
        let Some(next) = resolve(&url, &location) else {
            return Ok(response);
        };
        if response.status == 303 || (matches!(response.status, 301 | 302) && method != "GET" && method != "HEAD") {
            method = "GET".into();
            body = &[];
        }
        url = next;
    }
    Err(TaskError::failed_as("ConnectionError", format!("{method} {url}: more than {MAX_REDIRECTS} redirects")))
}

/// `location` made absolute against `base` (absolute URLs and absolute paths).
fn resolve(base: &str, location: &str) -> Option<String> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return Some(location.to_string());
    }
    if !location.starts_with('/') || location.starts_with("//") {
        return None;
    }
    let (scheme, rest) = base.split_once("://")?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    Some(format!("{scheme}://{authority}{location}"))
}

fn connection_error(method: &str, url: &str, why: impl std::fmt::Display) -> TaskError {
    TaskError::failed_as("ConnectionError", format!("{method} {url}: {why}"))
}

/// An error code as text: the worker's own message when it gave one.
fn describe(code: &ErrorCode) -> String {
    match code {
        ErrorCode::InternalError(Some(message)) => message.clone(),
        other => format!("{other:?}"),
    }
}

/// One request, no redirects.
fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Response, TaskError> {
    let bad_url = || TaskError::failed_as("ValueError", format!("url must be an absolute http:// or https:// URL, got {url:?}"));
    let (scheme, rest) = url.split_once("://").ok_or_else(bad_url)?;
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        _ => return Err(bad_url()),
    };
    let rest = &rest[..rest.find('#').unwrap_or(rest.len())];
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.is_empty() {
        return Err(bad_url());
    }
    let path = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };

    let mut entries: Vec<(String, Vec<u8>)> =
        headers.iter().map(|(name, value)| (name.to_ascii_lowercase(), value.as_bytes().to_vec())).collect();
    if !body.is_empty() && !entries.iter().any(|(name, _)| name == "content-length") {
        // Without it the body goes out chunked, which some servers refuse.
        entries.push(("content-length".into(), body.len().to_string().into_bytes()));
    }
    let fields = Fields::from_list(&entries)
        .map_err(|error| TaskError::failed_as("ValueError", format!("{method} {url}: bad request header: {error:?}")))?;
    let request = OutgoingRequest::new(fields);
    let wasi_method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "OPTIONS" => Method::Options,
        "PATCH" => Method::Patch,
        other => Method::Other(other.to_string()),
    };
    let refused = |what: &str| TaskError::failed_as("ValueError", format!("{method} {url}: invalid {what}"));
    request.set_method(&wasi_method).map_err(|()| refused("method"))?;
    request.set_scheme(Some(&scheme)).map_err(|()| refused("scheme"))?;
    request.set_authority(Some(authority)).map_err(|()| refused("authority"))?;
    request.set_path_with_query(Some(&path)).map_err(|()| refused("path"))?;
    let outgoing_body = request.body().map_err(|()| connection_error(method, url, "no request body"))?;

    let future = outgoing_handler::handle(request, None).map_err(|code| connection_error(method, url, describe(&code)))?;
    {
        let stream = outgoing_body.write().map_err(|()| connection_error(method, url, "no request body stream"))?;
        for chunk in body.chunks(WRITE_CHUNK) {
            stream.blocking_write_and_flush(chunk).map_err(|error| connection_error(method, url, format!("writing the body: {error:?}")))?;
        }
    }
    OutgoingBody::finish(outgoing_body, None).map_err(|code| connection_error(method, url, describe(&code)))?;

    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(connection_error(method, url, describe(&code))),
        _ => return Err(connection_error(method, url, "no response")),
    };
    let status = response.status();
    let headers = response.headers().entries();
    let incoming = response.consume().map_err(|()| connection_error(method, url, "no response body"))?;
    let mut data = Vec::new();
    {
        let stream = incoming.stream().map_err(|()| connection_error(method, url, "no response body stream"))?;
        loop {
            match stream.blocking_read(READ_CHUNK) {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(error)) => {
                    let why = match bindings::wasi::http::types::http_error_code(&error) {
                        Some(code) => describe(&code),
                        None => error.to_debug_string(),
                    };
                    return Err(TaskError::failed_as("ConnectionError", format!("reading the body of {url} failed: {why}")));
                }
            }
        }
    }
    Ok(Response { url: url.to_string(), status, headers, body: data })
}

#[cfg(test)]
mod tests {
    use super::resolve;

    #[test]
    fn redirects_resolve_absolute_urls_and_paths() {
        assert_eq!(resolve("http://a:1/x?y", "/json").as_deref(), Some("http://a:1/json"));
        assert_eq!(resolve("http://a:1", "https://b/c").as_deref(), Some("https://b/c"));
        assert_eq!(resolve("http://a/x", "rel"), None);
        assert_eq!(resolve("http://a/x", "//b/c"), None);
    }
}
