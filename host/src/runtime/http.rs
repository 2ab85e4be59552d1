//! Outbound HTTP for plugins: `wasi:http/outgoing-handler`, behind the
//! `http` grant of the plugin's manifest.
//!
//! wasmtime-wasi-http implements the interface (request and response
//! resources, streams, the sync bindings); this module decides what a
//! request may reach and sends it, through [`WasiHttpHooks::send_request`].
//!
//! Decisions worth knowing:
//! - **Origins, not URLs.** A grant is `scheme://host[:port]`, with `*` only
//!   as the leftmost label (`https://*.example.org`); no port means the
//!   scheme's default. Anything else is refused before a byte is sent, with
//!   `HTTP to <origin> is not granted to plugin <p>: add it to http in
//!   <p>.toml`, handed to the guest as the `internal-error` payload of the
//!   WASI error code (the SDKs raise it as the exception text). No grant, no
//!   request. wasi:http does not follow redirects: an SDK that follows one
//!   sends a new request, which is checked again.
//! - **SSRF.** The host name is resolved per request, here, and the address
//!   checked is the address connected to (no second lookup by the client).
//!   A granted *name* that resolves to a loopback, private, link-local,
//!   shared or unspecified address is refused unless that address is itself
//!   granted as an IP-literal origin (same scheme and port): a grant of
//!   `https://api.example.com` cannot be turned into a request to
//!   `127.0.0.1` or the cloud metadata address by whoever controls its DNS.
//! - **One pooled client per worker.** hyper-util's legacy client keeps
//!   idle HTTP/1 connections per pool key. The key carries the checked
//!   address (hex, as the URI's user info, which never reaches the wire: the
//!   request line is origin-form and wasi-http sets `host`), so a connection
//!   is reused only for the same name *and* the same approved address, never
//!   across an answer that changed. TLS is rustls with the webpki roots, as
//!   wasmtime-wasi-http's own default sender does.
//! - **Limits.** Epoch interruption cannot stop a guest blocked in a host
//!   call, so every wait here is bounded by `min(http_timeout, the job's
//!   remaining time)`: connecting plus the response head, and each read of
//!   the body (which also stops at the job's deadline). A wait cut short by
//!   the deadline marks the job, which then ends as TimeLimitExceeded
//!   whatever the guest did with the error. The body is counted as it
//!   streams and fails past `http_max_body` (a `content-length` above it
//!   fails at once), so a huge response costs the worker no memory.
//! - **The worker's message reaches the job's failure.** The Rust, Python
//!   and C SDKs raise the `internal-error` text; componentize-js's `fetch`
//!   replaces it with "NetworkError when attempting to fetch resource". So
//!   the job keeps the last message it was given, and a failure whose text
//!   lacks it gets it appended (see `job::run`).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpHooks};

use super::manifest::Grants;

/// `http_timeout` when the manifest sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// `http_max_body` when the manifest sets none: 16 MiB.
pub const DEFAULT_MAX_BODY: u64 = 16 << 20;
/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(30);

/// A granted origin: `scheme://host[:port]`; `host` may start with `*.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpOrigin {
    pub https: bool,
    /// Lowercase, without brackets for IPv6.
    pub host: String,
    pub port: u16,
}

impl HttpOrigin {
    /// Parses a manifest entry; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (https, rest) = if let Some(rest) = text.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err("expected http://host or https://host, with an optional :port".into());
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err("an origin is scheme://host[:port], without a path, query or user".into());
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (address, after) = v6.split_once(']').ok_or("an IPv6 address needs its closing ]")?;
            address.parse::<std::net::Ipv6Addr>().map_err(|_| format!("{address:?} is not an IPv6 address"))?;
            (address, after.strip_prefix(':'))
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        let port = match port {
            Some(port) => port.parse::<u16>().ok().filter(|port| *port != 0).ok_or("the port must be a number from 1 to 65535")?,
            None => default_port(https),
        };
        let host = host.to_ascii_lowercase();
        let name = host.strip_prefix("*.").unwrap_or(&host);
        if host.parse::<IpAddr>().is_err() {
            let labels_ok = !name.is_empty()
                && name.split('.').all(|label| !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
            if !labels_ok {
                return Err(if name.contains('*') {
                    "`*` may only be the whole leftmost label (https://*.example.org)".into()
                } else {
                    format!("{host:?} is not a host name")
                });
            }
            if name.parse::<IpAddr>().is_ok() {
                return Err("`*.` cannot stand before an IP address".into());
            }
        }
        Ok(Self { https, host, port })
    }

    fn wildcard_suffix(&self) -> Option<&str> {
        self.host.strip_prefix('*').filter(|suffix| suffix.starts_with('.'))
    }

    /// Whether this grant covers `origin` (itself possibly a pattern, as a
    /// manifest writes it: the policy check).
    pub fn covers(&self, origin: &HttpOrigin) -> bool {
        if self.https != origin.https || self.port != origin.port {
            return false;
        }
        match self.wildcard_suffix() {
            Some(suffix) => origin.host.len() > suffix.len() && origin.host.ends_with(suffix),
            None => self.host == origin.host,
        }
    }

    fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

impl std::fmt::Display for HttpOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == default_port(self.https) {
            write!(f, "{scheme}://{host}")
        } else {
            write!(f, "{scheme}://{host}:{}", self.port)
        }
    }
}

fn default_port(https: bool) -> u16 {
    if https {
        443
    } else {
        80
    }
}

/// Addresses a granted *name* may not resolve to unless granted as literals.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space (RFC 6598)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_internal(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00 // unique local
                    || (first & 0xffc0) == 0xfe80 // link-local
            }
        },
    }
}

/// The worker's HTTP client: one connection pool for every job.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<Connector, WasiBody>,
}

impl HttpClient {
    pub fn new() -> Self {
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.into() };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = Connector { tls: tokio_rustls::TlsConnector::from(Arc::new(tls)) };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(connector);
        Self { client }
    }
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

/// A job's wasi-http state: the context and the hooks that check and send.
pub(crate) struct JobHttp {
    pub(crate) ctx: WasiHttpCtx,
    pub(crate) hooks: Hooks,
}

impl JobHttp {
    pub(crate) fn new(client: HttpClient, plugin: Arc<str>, grants: Arc<Grants>) -> Self {
        let hooks = Hooks {
            client,
            plugin,
            grants,
            deadline: None,
            deadline_cut: Arc::new(AtomicBool::new(false)),
            last_error: LastError::default(),
        };
        Self { ctx: WasiHttpCtx::new(), hooks }
    }

    /// Bounds every request of the job by `deadline`.
    pub(crate) fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.hooks.deadline = deadline;
    }

    /// Whether a request was cut short by the job's deadline.
    pub(crate) fn hit_deadline(&self) -> bool {
        self.hooks.deadline_cut.load(Ordering::SeqCst)
    }

    /// The last message the worker gave a request of this job, if any.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.hooks.last_error.0.lock().ok()?.clone()
    }
}

/// The last worker message of a job's requests (see the module doc).
#[derive(Clone, Default)]
struct LastError(Arc<Mutex<Option<String>>>);

impl LastError {
    /// Keeps the message of `error` if it is one of ours, and returns it.
    fn note(&self, error: HttpError) -> HttpError {
        if let HttpError::InternalError(Some(message)) = &error {
            if let Ok(mut last) = self.0.lock() {
                *last = Some(message.clone());
            }
        }
        error
    }
}

#[derive(Clone)]
pub(crate) struct Hooks {
    client: HttpClient,
    plugin: Arc<str>,
    grants: Arc<Grants>,
    deadline: Option<Instant>,
    deadline_cut: Arc<AtomicBool>,
    last_error: LastError,
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendFuture = Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send>;

impl WasiHttpHooks for Hooks {
    fn send_request(&mut self, request: http::Request<WasiBody>, options: Option<RequestOptions>, _fut: IoFuture) -> SendFuture {
        let send = Outgoing { hooks: self.clone(), options: options.unwrap_or_default() };
        let last_error = self.last_error.clone();
        Box::new(async move {
            let response = send.send(request).await.map_err(|error| {
                tracing::debug!(%error, "outbound HTTP request failed");
                last_error.note(error)
            })?;
            Ok((response, Box::new(async { Ok(()) }) as IoFuture))
        })
    }
}

/// One request on its way, with everything it needs off the job's thread.
struct Outgoing {
    hooks: Hooks,
    options: RequestOptions,
}

fn fail(message: String) -> HttpError {
    HttpError::InternalError(Some(message))
}

impl Outgoing {
    async fn send(self, mut request: http::Request<WasiBody>) -> Result<http::Response<WasiBody>, HttpError> {
        let origin = origin_of(request.uri()).ok_or(HttpError::HttpRequestUriInvalid)?;
        let plugin = &self.hooks.plugin;
        if !self.hooks.grants.http.iter().any(|grant| grant.covers(&origin)) {
            return Err(fail(format!("HTTP to {origin} is not granted to plugin {plugin}: add it to http in {plugin}.toml")));
        }
        let timeout = self.hooks.grants.http_timeout.unwrap_or(DEFAULT_TIMEOUT);
        let head_limit = [self.options.connect_timeout.zip(self.options.first_byte_timeout).map(|(a, b)| a + b)]
            .into_iter()
            .flatten()
            .fold(timeout, Duration::min);
        let (head_limit, by_deadline) = self.bound(head_limit);
        let started = tokio::time::Instant::now();
        let address = tokio::time::timeout(head_limit, self.address(&origin))
            .await
            .map_err(|_| self.timed_out(&origin, by_deadline))??;
        // The checked address rides in the pool key; see the module doc.
        let authority = format!("{}@{}", hex_ip(address.ip()), request.uri().authority().map(|a| a.as_str()).unwrap_or_default());
        let mut parts = request.uri().clone().into_parts();
        parts.authority = Some(authority.parse().map_err(|_| HttpError::HttpRequestUriInvalid)?);
        *request.uri_mut() = http::Uri::from_parts(parts).map_err(|_| HttpError::HttpRequestUriInvalid)?;
        let remaining = head_limit.saturating_sub(started.elapsed());
        let response = match tokio::time::timeout(remaining, self.hooks.client.client.request(request)).await {
            Err(_) => return Err(self.timed_out(&origin, by_deadline)),
            Ok(Err(error)) => return Err(client_error(&origin, address, &error)),
            Ok(Ok(response)) => response,
        };
        let max_body = self.hooks.grants.http_max_body.unwrap_or(DEFAULT_MAX_BODY);
        let too_big = || fail(format!("the response from {origin} is over the {max_body} byte limit: raise http_max_body in {plugin}.toml"));
        let announced = response.headers().get(http::header::CONTENT_LENGTH).and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        if announced.is_some_and(|length| length > max_body) {
            return Err(too_big());
        }
        let between = self.options.between_bytes_timeout.map_or(timeout, |guest| guest.min(timeout)).max(Duration::from_nanos(1));
        let deadline = self.hooks.deadline.map(|deadline| Box::pin(tokio::time::sleep_until(deadline.into())));
        Ok(response.map(|incoming| {
            LimitedBody {
                incoming,
                read: 0,
                max_body,
                too_big: Some(too_big()),
                between,
                idle: Box::pin(tokio::time::sleep(between)),
                deadline,
                deadline_cut: self.hooks.deadline_cut.clone(),
                last_error: self.hooks.last_error.clone(),
                origin: origin.to_string(),
            }
            .boxed_unsync()
        }))
    }

    /// `limit`, or the job's remaining time if that is shorter (then `true`).
    fn bound(&self, limit: Duration) -> (Duration, bool) {
        match self.hooks.deadline.map(|deadline| deadline.saturating_duration_since(Instant::now())) {
            Some(remaining) if remaining <= limit => (remaining, true),
            _ => (limit, false),
        }
    }

    fn timed_out(&self, origin: &HttpOrigin, by_deadline: bool) -> HttpError {
        if by_deadline {
            self.hooks.deadline_cut.store(true, Ordering::SeqCst);
            return fail(format!("HTTP to {origin} stopped at the job's time limit"));
        }
        let timeout = self.hooks.grants.http_timeout.unwrap_or(DEFAULT_TIMEOUT);
        fail(format!("HTTP to {origin} timed out after {} s (http_timeout in {}.toml)", timeout.as_secs_f64(), self.hooks.plugin))
    }

    /// The address to connect to: the literal, or the first answer of a
    /// fresh lookup that the SSRF rule lets through.
    async fn address(&self, origin: &HttpOrigin) -> Result<SocketAddr, HttpError> {
        if let Some(ip) = origin.ip() {
            return Ok(SocketAddr::new(ip, origin.port));
        }
        let answers: Vec<SocketAddr> = tokio::net::lookup_host((origin.host.as_str(), origin.port))
            .await
            .map_err(|error| HttpError::DnsError { rcode: Some(error.to_string()), info_code: None })?
            .collect();
        let granted_literal = |ip: IpAddr| {
            self.hooks.grants.http.iter().any(|grant| grant.ip() == Some(ip) && grant.https == origin.https && grant.port == origin.port)
        };
        if let Some(address) = answers.iter().find(|address| !is_internal(address.ip()) || granted_literal(address.ip())) {
            return Ok(*address);
        }
        match answers.first() {
            Some(address) => {
                let literal = HttpOrigin { https: origin.https, host: address.ip().to_string(), port: origin.port };
                Err(fail(format!(
                    "HTTP to {origin} is refused: {} resolves to {}, an internal address; grant {literal} in http in {}.toml to allow it",
                    origin.host,
                    address.ip(),
                    self.hooks.plugin
                )))
            }
            None => Err(HttpError::DnsError { rcode: Some("no address".into()), info_code: None }),
        }
    }
}

/// The origin a request goes to, as grants are written.
fn origin_of(uri: &http::Uri) -> Option<HttpOrigin> {
    let https = match uri.scheme_str()? {
        "https" => true,
        "http" => false,
        _ => return None,
    };
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase();
    Some(HttpOrigin { https, host, port: uri.port_u16().unwrap_or(default_port(https)) })
}

fn hex_ip(ip: IpAddr) -> String {
    let octets = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    octets.iter().map(|octet| format!("{octet:02x}")).collect()
}

fn unhex_ip(text: &str) -> Option<IpAddr> {
    let octets: Vec<u8> = (0..text.len()).step_by(2).map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok()).collect::<Option<_>>()?;
    match octets.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(octets).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(octets).ok()?)),
        _ => None,
    }
}

fn client_error(origin: &HttpOrigin, address: SocketAddr, error: &hyper_util::client::legacy::Error) -> HttpError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return HttpError::ConnectionRefused;
            }
            return fail(format!("HTTP to {origin} ({address}) failed: {io}"));
        }
        source = cause.source();
    }
    fail(format!("HTTP to {origin} ({address}) failed: {error}"))
}

/// A response body that fails past `max_body`, when a read waits longer
/// than `between`, or at the job's deadline.
struct LimitedBody {
    incoming: Incoming,
    read: u64,
    max_body: u64,
    too_big: Option<HttpError>,
    between: Duration,
    idle: Pin<Box<tokio::time::Sleep>>,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    deadline_cut: Arc<AtomicBool>,
    last_error: LastError,
    origin: String,
}

impl Body for LimitedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        if this.too_big.is_none() {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.read += data.len() as u64;
                    if this.read > this.max_body {
                        return Poll::Ready(this.too_big.take().map(|error| Err(this.last_error.note(error))));
                    }
                }
                let next = tokio::time::Instant::now() + this.between;
                this.idle.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                let error = fail(format!("reading the response from {} failed: {error}", this.origin));
                Poll::Ready(Some(Err(this.last_error.note(error))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if this.deadline.as_mut().is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready()) {
                    this.deadline_cut.store(true, Ordering::SeqCst);
                    this.too_big = None;
                    let error = fail(format!("HTTP to {} stopped at the job's time limit", this.origin));
                    return Poll::Ready(Some(Err(this.last_error.note(error))));
                }
                if this.idle.as_mut().poll(cx).is_ready() {
                    this.too_big = None;
                    let error = fail(format!("reading the response from {} timed out", this.origin));
                    return Poll::Ready(Some(Err(this.last_error.note(error))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

/// Connects to the address carried in the URI's user info (see the module
/// doc), with TLS for `https` (the server name is the URI's host).
#[derive(Clone)]
struct Connector {
    tls: tokio_rustls::TlsConnector,
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<TokioIo<Stream>>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move {
            let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("no checked address in {uri}"));
            let authority = uri.authority().ok_or_else(invalid)?.as_str();
            let (hex, _) = authority.split_once('@').ok_or_else(invalid)?;
            let ip = unhex_ip(hex).ok_or_else(invalid)?;
            let https = uri.scheme_str() == Some("https");
            let port = uri.port_u16().unwrap_or(default_port(https));
            let tcp = tokio::net::TcpStream::connect(SocketAddr::new(ip, port)).await?;
            tcp.set_nodelay(true)?;
            if !https {
                return Ok(TokioIo::new(Stream::Plain(tcp)));
            }
            let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error))?;
            Ok(TokioIo::new(Stream::Tls(Box::new(tls.connect(name, tcp).await?))))
        })
    }
}

enum Stream {
    Plain(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write(cx, data),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(text: &str) -> HttpOrigin {
        HttpOrigin::parse(text).unwrap()
    }

    #[test]
    fn origins_parse_and_print_as_written() {
        assert_eq!(origin("https://API.example.com"), HttpOrigin { https: true, host: "api.example.com".into(), port: 443 });
        assert_eq!(origin("http://127.0.0.1:8080").to_string(), "http://127.0.0.1:8080");
        assert_eq!(origin("http://[::1]:80/").to_string(), "http://[::1]");
        assert_eq!(origin("https://*.example.org").host, "*.example.org");
        for bad in ["ftp://x", "api.example.com", "https://a.com/path", "https://a.*.com", "https://*", "http://x:0", "http://x:http", "https://*.10.0.0.1"] {
            assert!(HttpOrigin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_grant_covers_its_origin_and_a_wildcard_only_subdomains() {
        let wildcard = origin("https://*.example.org");
        assert!(wildcard.covers(&origin("https://a.example.org")));
        assert!(wildcard.covers(&origin("https://a.b.example.org")));
        assert!(wildcard.covers(&origin("https://*.b.example.org")), "a narrower pattern (the policy check)");
        assert!(!wildcard.covers(&origin("https://example.org")));
        assert!(!wildcard.covers(&origin("https://badexample.org")));
        assert!(!wildcard.covers(&origin("http://a.example.org")), "another scheme");
        assert!(!wildcard.covers(&origin("https://a.example.org:8443")), "another port");
        assert!(origin("https://api.example.com").covers(&origin("https://api.example.com:443")));
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for internal in ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "0.0.0.0", "100.64.0.1", "::1", "fd00::1", "fe80::1", "::ffff:127.0.0.1"] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in ["93.184.216.34", "2606:2800:220:1::1", "8.8.8.8"] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn the_checked_address_round_trips_through_the_pool_key() {
        for ip in ["127.0.0.1", "2001:db8::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(unhex_ip(&hex_ip(ip)), Some(ip));
        }
    }
}
