//! The daemon's HTTP server (`server.http`), read-only:
//! - `GET /metrics`: Prometheus metrics ([`crate::metrics`]);
//! - `GET /`: the status page (relationships and their state timeline, pools, a lease search,
//!   counters; `control/assets/status/`, compiled in), live from
//! - `GET /api/v1/status` and `GET /api/v1/leases?ip=|mac=|client_id=|subnet=|state=|limit=|after=`:
//!   the admin API's `status` and `leases` answers as JSON (the same [`Response`] documents);
//! - `GET /healthz`: `ok`.
//!
//! The verbs that change state stay on the admin socket until the HTTP API has authentication
//! (DESIGN.md §7).
//!
//! hyper on a current-thread tokio runtime in a thread of its own: the HTTP server never
//! touches the workers' cores or the failover driver's loop. It reads the daemon only
//! through [`AdminBackend::status`], the same snapshot `tandemctl status` sees. Connection
//! limits as the admin API's: at most [`MAX_CONNECTIONS`] at once (a new one past that is
//! closed at once), and a connection that has not sent a whole request head within
//! [`HEADER_TIMEOUT`] is closed, so idle or slow clients cannot hold the server.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{Semaphore, watch};

use crate::admin::{AdminBackend, Request as AdminRequest, Response as AdminResponse};
use crate::status::LeaseFilter;

const PAGE: &str = include_str!("../assets/status/index.html");
const PAGE_CSS: &str = include_str!("../assets/status/status.css");
const PAGE_JS: &str = include_str!("../assets/status/status.js");

/// Where the page may load from: only this server, nothing inline, no other origin.
const CSP: &str = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'";

/// Connections served at once; one more is closed as soon as it is accepted.
pub const MAX_CONNECTIONS: usize = 64;

/// A connection must send a whole request head within this long (and again for each request
/// on a kept-alive connection), else it is closed.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the HTTP server could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("http {addr}: cannot listen: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("http: cannot start its thread: {0}")]
    Thread(io::Error),
}

/// The running server; [`HttpServer::stop`] (or drop) ends it.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Listens on `addr` (bound before this returns, so a taken port is an error at start)
    /// and serves from a thread of its own.
    pub fn start(addr: SocketAddr, backend: Arc<dyn AdminBackend>) -> Result<Self, HttpError> {
        let listener =
            std::net::TcpListener::bind(addr).map_err(|source| HttpError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| HttpError::Bind { addr, source })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| HttpError::Bind { addr, source })?;
        let (stop, stopped) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("http".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .enable_time()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "http: cannot start the runtime; no metrics");
                        return;
                    }
                };
                rt.block_on(serve(listener, backend, stopped));
            })
            .map_err(HttpError::Thread)?;
        tracing::info!(listen = %local, "http: serving /metrics");
        Ok(HttpServer {
            addr: local,
            stop,
            thread: Some(thread),
        })
    }

    /// The address it listens on (the port the kernel chose, for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops listening, ends every connection, and joins the thread.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = self.stop.send(true);
            if thread.join().is_err() {
                tracing::error!("the http thread panicked");
            }
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

async fn serve(
    listener: std::net::TcpListener,
    backend: Arc<dyn AdminBackend>,
    mut stopped: watch::Receiver<bool>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "http: cannot register the listener; no metrics");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut refused = 0u64;
    loop {
        let (stream, peer) = tokio::select! {
            _ = stopped.changed() => return,
            r = listener.accept() => match r {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: back off rather than spin.
                    tracing::warn!(error = %e, "http: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(%peer, refused, limit = MAX_CONNECTIONS, "http: connection refused: too many open");
            }
            drop(stream);
            continue;
        };
        let backend = Arc::clone(&backend);
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let backend = Arc::clone(&backend);
                async move { Ok::<_, Infallible>(answer(&req, backend.as_ref())) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "http: connection ended");
                    }
                }
                _ = stopped.changed() => {}
            }
            drop(slot);
        });
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    asset(status, "text/plain; charset=utf-8", body)
}

fn asset(
    status: StatusCode,
    content_type: &'static str,
    body: &'static str,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    r
}

fn json(answer: &AdminResponse) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(answer).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
    let mut r = Response::new(Full::new(Bytes::from(body)));
    if !answer.ok {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    r
}

/// The routes, all read-only.
const ROUTES: &[&str] = &[
    "/",
    "/status.css",
    "/status.js",
    "/api/v1/status",
    "/api/v1/leases",
    "/metrics",
    "/healthz",
];

/// The answer to one request.
fn answer(req: &Request<Incoming>, backend: &dyn AdminBackend) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if !ROUTES.contains(&path) {
        return text(
            StatusCode::NOT_FOUND,
            "not found: this server has / (the status page), /api/v1/status, /api/v1/leases, /metrics and /healthz\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match path {
        "/" => asset(StatusCode::OK, "text/html; charset=utf-8", PAGE),
        "/status.css" => asset(StatusCode::OK, "text/css; charset=utf-8", PAGE_CSS),
        "/status.js" => asset(StatusCode::OK, "text/javascript; charset=utf-8", PAGE_JS),
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/api/v1/status" => json(&crate::admin::handle_request(
            AdminRequest::Status,
            backend,
            None,
        )),
        "/api/v1/leases" => json(&match lease_filter(req.uri().query().unwrap_or("")) {
            Ok(filter) => crate::admin::handle_request(AdminRequest::Leases(filter), backend, None),
            Err(e) => AdminResponse::error(e),
        }),
        _ => {
            let body = crate::metrics::render(&backend.status());
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
            );
            r
        }
    }
}

/// `/api/v1/leases`' query string as the admin API's filter; the error names the parameter.
fn lease_filter(query: &str) -> Result<LeaseFilter, String> {
    let mut f = LeaseFilter::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(raw).ok_or_else(|| format!("{key}: bad percent-encoding"))?;
        let bad = |what: &str| format!("{key}={value:?} is not {what}");
        match key {
            "ip" => f.address = Some(value.parse().map_err(|_| bad("an IPv4 address"))?),
            "after" => f.after = Some(value.parse().map_err(|_| bad("an IPv4 address"))?),
            "mac" => f.mac = Some(value),
            "client_id" => f.client_id = Some(value),
            "subnet" => f.subnet = Some(value),
            "limit" => f.limit = Some(value.parse().map_err(|_| bad("a count"))?),
            "state" => f.state = Some(
                serde_json::from_value(serde_json::Value::String(value.clone())).map_err(|_| {
                    bad("a lease state (active, free, backup, expired, released, abandoned, reset)")
                })?,
            ),
            other => {
                return Err(format!(
                    "unknown parameter {other:?} (known: ip, mac, client_id, subnet, state, limit, after)"
                ));
            }
        }
    }
    Ok(f)
}

/// `%XX` and `+` decoded; `None` for a malformed escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hi = (bytes.next()? as char).to_digit(16)?;
                let lo = (bytes.next()? as char).to_digit(16)?;
                out.push(u8::try_from(hi * 16 + lo).ok()?);
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_queries_parse_into_the_admin_filter() {
        let f = lease_filter("ip=10.0.0.5&limit=10").unwrap();
        assert_eq!(f.address, Some("10.0.0.5".parse().unwrap()));
        assert_eq!(f.limit, Some(10));
        let f =
            lease_filter("mac=02%3A00%3A00%3A00%3A00%3A01&state=backup&after=10.0.0.9").unwrap();
        assert_eq!(f.mac.as_deref(), Some("02:00:00:00:00:01"));
        assert_eq!(f.state, Some(crate::status::LeaseState::Backup));
        assert_eq!(f.after, Some("10.0.0.9".parse().unwrap()));
        assert_eq!(lease_filter("").unwrap(), LeaseFilter::default());
        assert!(
            lease_filter("ip=nope")
                .unwrap_err()
                .contains("ip=\"nope\" is not an IPv4 address")
        );
        assert!(
            lease_filter("state=bound")
                .unwrap_err()
                .contains("not a lease state")
        );
        assert!(
            lease_filter("colour=red")
                .unwrap_err()
                .contains("unknown parameter \"colour\"")
        );
        assert!(
            lease_filter("mac=%zz")
                .unwrap_err()
                .contains("bad percent-encoding")
        );
        assert_eq!(percent_decode("a+b%2Fc"), Some("a b/c".into()));
        assert_eq!(percent_decode("%ff"), None);
    }
}
