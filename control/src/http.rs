//! The daemon's HTTP server (`server.http`):
//! - `GET /`: the status page (relationships and their state timeline, pools, a lease search,
//!   counters; `control/assets/status/`, compiled in), live from
//! - `GET /api/v1/status` and `GET /api/v1/leases?ip=|mac=|client_id=|circuit_id=|remote_id=|hostname=|subnet=|state=|limit=|after=`:
//!   the admin API's `status` and `leases` answers as JSON (the same [`AdminResponse`]
//!   documents), and `GET /metrics` (Prometheus, [`crate::metrics`]): role `read-only`;
//! - `GET /api/v1/relationships` and `GET /api/v1/relationships/NAME`: every failover
//!   relationship, or one, with its settings, state and scopes (`failover list`, `failover
//!   show`): role `read-only`;
//! - `POST /api/v1/relationships/NAME/partner-down` (body `{"since": UNIX_SECONDS}`, optional),
//!   `POST /api/v1/relationships/NAME/resync`, `POST /api/v1/replicate` (body
//!   `{"relationship": NAME}` or `{"scope": PREFIX}`, optional) and `GET
//!   /api/v1/audit?limit=N`: role `dhcp-admin`, and every change is audited;
//! - `GET /healthz`: `ok`. `control/api/openapi.yaml` describes them.
//!
//! Authentication ([`crate::tokens`]): `Authorization: Bearer TOKEN`. A change always needs a
//! `dhcp-admin` token; a read needs a token unless [`Access::reads_need_token`] is off (the
//! default on a loopback listener). No token where one is needed: 401 and nothing done; a
//! token whose role does not allow it: 403, naming the role needed. The page and its assets
//! carry no data and are served to anyone (the page asks for a token when the API does).
//!
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

use crate::admin::{AdminBackend, Caller, Request as AdminRequest, Response as AdminResponse};
use crate::audit::AuditLog;
use crate::status::LeaseFilter;
use crate::tokens::{Role, Tokens};

/// The largest request body taken (a partner-down's is a few bytes).
pub const MAX_BODY: usize = 4096;

/// Who may do what on the HTTP server.
#[derive(Debug, Clone)]
pub struct Access {
    /// The API tokens.
    pub tokens: Arc<Tokens>,
    /// Whether reads (status, leases, metrics) need a token too; changes always do.
    pub reads_need_token: bool,
    /// Where changes are recorded (the admin socket's log: one file, one writer).
    pub audit: Arc<AuditLog>,
    /// HTTPS: the server's certificate and key ([`tls_config`]); `None`: plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// The TLS configuration of a certificate chain and its private key, both PEM files
/// (`http_tls_cert`, `http_tls_key`): TLS 1.2 and 1.3 (rustls' safe defaults), HTTP/1.1.
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<rustls::ServerConfig, HttpError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |path: &std::path::Path, reason: String| HttpError::Tls {
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| bad(cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(bad(cert, "no certificate in it".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad(cert, e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, key_der)
    .map_err(|e| bad(key, format!("does not go with {}: {e}", cert.display())))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

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
    #[error("http TLS: {}: {reason}", path.display())]
    Tls {
        path: std::path::PathBuf,
        reason: String,
    },
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
    pub fn start(
        addr: SocketAddr,
        backend: Arc<dyn AdminBackend>,
        access: Access,
    ) -> Result<Self, HttpError> {
        let listener =
            std::net::TcpListener::bind(addr).map_err(|source| HttpError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| HttpError::Bind { addr, source })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| HttpError::Bind { addr, source })?;
        let (stop, stopped) = watch::channel(false);
        let access_reads = access.reads_need_token;
        let scheme = if access.tls.is_some() {
            "https"
        } else {
            "http"
        };
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
                rt.block_on(serve(listener, backend, access, stopped));
            })
            .map_err(HttpError::Thread)?;
        tracing::info!(listen = %local, scheme, reads_need_token = access_reads, "http: serving the status page, the API and /metrics");
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
    access: Access,
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
        let access = access.clone();
        let tls = access.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let backend = Arc::clone(&backend);
                let access = access.clone();
                async move { Ok::<_, Infallible>(answer(req, peer, backend.as_ref(), &access).await) }
            });
            let builder = {
                let mut b = http1::Builder::new();
                b.timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT);
                b
            };
            // One connection, plain or TLS, until it ends or the server stops.
            macro_rules! serve {
                ($io:expr) => {{
                    let conn = builder.serve_connection(TokioIo::new($io), service);
                    tokio::select! {
                        r = conn => {
                            if let Err(e) = r {
                                tracing::debug!(%peer, error = %e, "http: connection ended");
                            }
                        }
                        _ = stopped.changed() => {}
                    }
                }};
            }
            match tls {
                None => serve!(stream),
                Some(acceptor) => {
                    // The handshake has the request head's time limit too.
                    let stream = tokio::select! {
                        r = tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)) => match r {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "http: TLS handshake failed");
                                return;
                            }
                            Err(_) => return,
                        },
                        _ = stopped.changed() => return,
                    };
                    serve!(stream);
                }
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

/// Every route, as `control/api/openapi.yaml` names them (`{name}`: a path parameter).
pub const ROUTES: [&str; 14] = [
    "/",
    "/status.css",
    "/status.js",
    "/healthz",
    "/api/v1/status",
    "/api/v1/leases",
    "/metrics",
    "/api/v1/audit",
    "/api/v1/relationships",
    "/api/v1/relationships/{name}",
    "/api/v1/relationships/{name}/partner-down",
    "/api/v1/relationships/{name}/resync",
    "/api/v1/replicate",
    "/api/v1/config/reload",
];

/// What a route needs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Anyone: carries no data.
    Nothing,
    /// A reader (a token of any role, unless reads are open).
    Read,
    /// A `dhcp-admin` token.
    Admin,
}

const NOT_FOUND: &str = "not found: this server has / (the status page), /api/v1/status, /api/v1/leases, \
/api/v1/audit, /api/v1/relationships, /api/v1/relationships/NAME, /api/v1/relationships/NAME/partner-down, /api/v1/relationships/NAME/resync, /api/v1/replicate, /api/v1/config/reload, /metrics and /healthz\n";

/// The answer to one request from `peer`.
async fn answer(
    req: Request<Incoming>,
    peer: SocketAddr,
    backend: &dyn AdminBackend,
    access: &Access,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let action = |suffix: &str| {
        path.strip_prefix("/api/v1/relationships/")
            .and_then(|rest| rest.strip_suffix(suffix))
            .filter(|name| !name.is_empty() && !name.contains('/'))
            .and_then(percent_decode)
    };
    let partner_down = action("/partner-down");
    let resync = action("/resync");
    let relationship = path
        .strip_prefix("/api/v1/relationships/")
        .filter(|name| !name.is_empty() && !name.contains('/'))
        .and_then(percent_decode);
    let (need, post) = match path.as_str() {
        "/" | "/status.css" | "/status.js" | "/healthz" => (Need::Nothing, false),
        "/api/v1/status" | "/api/v1/leases" | "/metrics" | "/api/v1/relationships" => {
            (Need::Read, false)
        }
        _ if relationship.is_some() => (Need::Read, false),
        "/api/v1/audit" => (Need::Admin, false),
        "/api/v1/config/reload" | "/api/v1/replicate" => (Need::Admin, true),
        _ if partner_down.is_some() || resync.is_some() => (Need::Admin, true),
        _ => return text(StatusCode::NOT_FOUND, NOT_FOUND),
    };
    let allowed = if post {
        req.method() == Method::POST
    } else {
        req.method() == Method::GET || req.method() == Method::HEAD
    };
    if !allowed {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            if post {
                "only POST\n"
            } else {
                "only GET and HEAD\n"
            },
        );
        r.headers_mut().insert(
            ALLOW,
            HeaderValue::from_static(if post { "POST" } else { "GET, HEAD" }),
        );
        return r;
    }
    let who = match authorize(&req, need, access, &path) {
        Ok(who) => who,
        Err(refusal) => {
            // A change refused to a known token is a fact the audit log keeps (who tried
            // what); an anonymous refusal is not, so that strangers cannot fill it.
            let change = match (&partner_down, &resync, path.as_str()) {
                (Some(name), _, _) => Some(AdminRequest::PartnerDown {
                    name: name.clone(),
                    since: None,
                }),
                (None, Some(name), _) => Some(AdminRequest::Resync { name: name.clone() }),
                (None, None, "/api/v1/config/reload") => Some(AdminRequest::Reload),
                (None, None, "/api/v1/replicate") => Some(AdminRequest::Replicate {
                    relationship: None,
                    scope: None,
                }),
                _ => None,
            };
            if let (Some(change), StatusCode::FORBIDDEN) = (change, refusal.status()) {
                let token = bearer(&req).and_then(|t| access.tokens.authenticate(t));
                let c = caller(token.as_ref().map(|(n, _)| n.as_str()), peer);
                access.audit.record(&crate::audit::AuditEntry {
                    time: crate::admin::unix_now(),
                    who: c.who,
                    from: c.from,
                    verb: change.verb().to_owned(),
                    request: serde_json::to_value(&change).unwrap_or_default(),
                    ok: false,
                    result: "forbidden: needs role dhcp-admin".to_owned(),
                });
            }
            return refusal;
        }
    };
    match path.as_str() {
        "/" => asset(StatusCode::OK, "text/html; charset=utf-8", PAGE),
        "/status.css" => asset(StatusCode::OK, "text/css; charset=utf-8", PAGE_CSS),
        "/status.js" => asset(StatusCode::OK, "text/javascript; charset=utf-8", PAGE_JS),
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/api/v1/status" => json(&crate::admin::handle_request(
            AdminRequest::Status,
            backend,
            None,
        )),
        "/api/v1/relationships" => json(&crate::admin::handle_request(
            AdminRequest::Relationships { name: None },
            backend,
            None,
        )),
        "/api/v1/leases" => json(&match lease_filter(req.uri().query().unwrap_or("")) {
            Ok(filter) => crate::admin::handle_request(AdminRequest::Leases(filter), backend, None),
            Err(e) => AdminResponse::error(e),
        }),
        "/api/v1/audit" => {
            let limit = match query_param(req.uri().query().unwrap_or(""), "limit") {
                None => None,
                Some(v) => match v.parse() {
                    Ok(n) => Some(n),
                    Err(_) => {
                        return json(&AdminResponse::error(format!("limit={v:?} is not a count")));
                    }
                },
            };
            let caller = caller(who.as_deref(), peer);
            json(&crate::admin::handle_request(
                AdminRequest::Audit { limit },
                backend,
                Some((&caller, access.audit.as_ref())),
            ))
        }
        "/api/v1/replicate" => {
            let caller = caller(who.as_deref(), peer);
            match replicate_request(req).await {
                Ok(r) => json(&crate::admin::handle_request(
                    r,
                    backend,
                    Some((&caller, access.audit.as_ref())),
                )),
                Err(e) => json(&AdminResponse::error(e)),
            }
        }
        "/api/v1/config/reload" => {
            let caller = caller(who.as_deref(), peer);
            json(&crate::admin::handle_request(
                AdminRequest::Reload,
                backend,
                Some((&caller, access.audit.as_ref())),
            ))
        }
        "/metrics" => {
            let body = crate::metrics::render(&backend.status());
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
            );
            r
        }
        _ if relationship.is_some() => {
            let answer = crate::admin::handle_request(
                AdminRequest::Relationships { name: relationship },
                backend,
                None,
            );
            let mut r = json(&answer);
            if !answer.ok {
                *r.status_mut() = StatusCode::NOT_FOUND;
            }
            r
        }
        _ if resync.is_some() => {
            let caller = caller(who.as_deref(), peer);
            json(&crate::admin::handle_request(
                AdminRequest::Resync {
                    name: resync.unwrap_or_default(),
                },
                backend,
                Some((&caller, access.audit.as_ref())),
            ))
        }
        _ => {
            let Some(name) = partner_down else {
                return text(StatusCode::NOT_FOUND, NOT_FOUND);
            };
            let since = match partner_down_since(req).await {
                Ok(s) => s,
                Err(e) => return json(&AdminResponse::error(e)),
            };
            let caller = caller(who.as_deref(), peer);
            json(&crate::admin::handle_request(
                AdminRequest::PartnerDown { name, since },
                backend,
                Some((&caller, access.audit.as_ref())),
            ))
        }
    }
}

/// The audit log's caller: the token's name, over HTTP from `peer`.
fn caller(token: Option<&str>, peer: SocketAddr) -> Caller {
    Caller {
        who: token.map_or_else(|| "anonymous".to_owned(), |t| format!("token {t}")),
        from: format!("http {peer}"),
    }
}

/// The token's name when one was given and is needed or offered; the 401 or 403 otherwise.
fn authorize(
    req: &Request<Incoming>,
    need: Need,
    access: &Access,
    path: &str,
) -> Result<Option<String>, Response<Full<Bytes>>> {
    if need == Need::Nothing {
        return Ok(None);
    }
    let Some(token) = bearer(req) else {
        if need == Need::Read && !access.reads_need_token {
            return Ok(None);
        }
        return Err(unauthorized(
            "a token is needed: Authorization: Bearer TOKEN (tandemctl token add NAME --role ROLE)",
        ));
    };
    let Some((name, role)) = access.tokens.authenticate(token) else {
        return Err(unauthorized(
            "the token is not valid (removed, or never made here)",
        ));
    };
    let needed = if need == Need::Admin {
        Role::DhcpAdmin
    } else {
        Role::ReadOnly
    };
    if !role.allows(needed) {
        let mut r = json(&AdminResponse::error(format!(
            "forbidden: {path} needs role {}; token {name:?} has role {}",
            needed.as_str(),
            role.as_str()
        )));
        *r.status_mut() = StatusCode::FORBIDDEN;
        return Err(r);
    }
    Ok(Some(name))
}

/// The token of an `Authorization: Bearer TOKEN` header.
fn bearer(req: &Request<Incoming>) -> Option<&str> {
    req.headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

fn unauthorized(why: &str) -> Response<Full<Bytes>> {
    let mut r = json(&AdminResponse::error(format!("unauthorized: {why}")));
    *r.status_mut() = StatusCode::UNAUTHORIZED;
    r.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"tandem\""),
    );
    r
}

/// A partner-down's optional body: `{"since": UNIX_SECONDS}` (empty: now).
async fn partner_down_since(req: Request<Incoming>) -> Result<Option<u64>, String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        since: Option<u64>,
    }
    json_body::<Body>(req, "{\"since\": UNIX_SECONDS}")
        .await
        .map(|b| b.and_then(|b| b.since))
}

/// A request's optional JSON body (`None`: empty), at most [`MAX_BODY`] bytes; the error
/// names the `shape` expected.
async fn json_body<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
    shape: &str,
) -> Result<Option<T>, String> {
    use http_body_util::BodyExt;
    let body = http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("cannot read the body: {e}"))?
        .to_bytes();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice::<T>(&body)
        .map(Some)
        .map_err(|e| format!("the body is not {shape}: {e}"))
}

/// A replication's body: `{"relationship": NAME}`, `{"scope": PREFIX}`, or neither (every
/// tandem relationship).
async fn replicate_request(req: Request<Incoming>) -> Result<AdminRequest, String> {
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Body {
        relationship: Option<String>,
        scope: Option<String>,
    }
    let b = json_body::<Body>(req, "{\"relationship\": NAME, \"scope\": PREFIX}")
        .await?
        .unwrap_or_default();
    Ok(AdminRequest::Replicate {
        relationship: b.relationship,
        scope: b.scope,
    })
}

/// The value of `key` in a query string, percent-decoded.
fn query_param(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| percent_decode(v))
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
            "circuit_id" => f.circuit_id = Some(value),
            "remote_id" => f.remote_id = Some(value),
            "hostname" => f.hostname = Some(value),
            "subnet" => f.subnet = Some(value),
            "limit" => f.limit = Some(value.parse().map_err(|_| bad("a count"))?),
            "state" => f.state = Some(
                serde_json::from_value(serde_json::Value::String(value.clone())).map_err(|_| {
                    bad("a lease state (active, free, backup, expired, released, abandoned, reset)")
                })?,
            ),
            other => {
                return Err(format!(
                    "unknown parameter {other:?} (known: ip, mac, client_id, circuit_id, remote_id, hostname, subnet, state, limit, after)"
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
