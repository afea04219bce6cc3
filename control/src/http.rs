//! The daemon's HTTP server (`server.http`): Prometheus metrics at `GET /metrics`, and a
//! liveness answer at `GET /healthz`. The admin API and the status page are to ride on it
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

use crate::admin::AdminBackend;

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
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The answer to one request.
fn answer(req: &Request<Incoming>, backend: &dyn AdminBackend) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if !matches!(path, "/metrics" | "/healthz") {
        return text(
            StatusCode::NOT_FOUND,
            "not found: this server has /metrics and /healthz\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    if path == "/healthz" {
        return text(StatusCode::OK, "ok\n");
    }
    let body = crate::metrics::render(&backend.status());
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    r
}
