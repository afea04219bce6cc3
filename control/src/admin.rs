//! The admin API: line-delimited JSON over a Unix socket (`DATA_DIR/tandemd.sock`, mode 0600) and,
//! optionally, TCP (`server.admin`), served by one mio event-loop thread.
//!
//! A request is one JSON object on one line, `{"verb":"status"}`; the answer is one JSON object on one
//! line, `{"ok":true,"status":{…}}` or `{"ok":false,"error":"…"}`. Requests longer than
//! [`MAX_REQUEST`] bytes are refused and the connection closed; malformed requests get an error answer.
//! The data comes from an [`AdminBackend`], the seam through which the rest of the daemon is reached.
//! Idle clients cannot lock the operator out: each listener has its own [`Limits`], a full one
//! makes room by closing its longest-idle connection, and idle connections are closed.
//!
//! **Architecture Invariant**: nothing a client sends can panic or block the loop: requests are
//! bounded, sockets are non-blocking, and a panicking backend call becomes an error answer.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Token, Waker};
use serde::{Deserialize, Serialize};

use crate::audit::{AuditEntry, AuditLog};
use crate::config;
use crate::status::{LeaseFilter, LeaseInfo, RelationshipDetail, Status};

/// The admin socket's file name inside `data_dir`.
pub const SOCKET_NAME: &str = "tandemd.sock";
/// The longest request line accepted, in bytes.
pub const MAX_REQUEST: usize = 64 * 1024;
/// The most leases one `leases` answer carries.
pub const MAX_LEASES: u32 = 100_000;
/// Connections served at once on each listener (the Unix socket and TCP have a budget each,
/// so that nothing on the network can take the local root's way in).
pub const MAX_CONNECTIONS: usize = 64;
/// A connection that sends nothing and has nothing to receive for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Answers queued for a client beyond this are not added to until it reads.
const OUT_HIGH_WATER: usize = 1 << 20;

/// What the admin server needs from the rest of the daemon. Called on the admin thread; keep calls short.
pub trait AdminBackend: Send + Sync {
    /// The status document.
    fn status(&self) -> Status;
    /// Leases matching `filter` (at most `filter.limit`, which the server has capped).
    fn leases(&self, filter: &LeaseFilter) -> Vec<LeaseInfo>;
    /// Declares the partner of relationship `name` down, last known up at `since` (Unix seconds),
    /// and returns the time put in force: never earlier than the partner was last heard from.
    /// The error is shown to the operator as it displays (`no such relationship "x"`).
    fn partner_down(&self, name: &str, since: u64) -> Result<u64, CommandError>;
    /// Replicates scope definitions to the tandem partner(s): one scope, every scope of a
    /// relationship, or (both `None`) every scope of every tandem relationship; returns what
    /// the partners applied, one line each.
    fn replicate(
        &self,
        _relationship: Option<&str>,
        _scope: Option<&str>,
    ) -> Result<Vec<String>, String> {
        Err("replicate needs the running daemon".into())
    }
    /// Asks the partner of relationship `name` for every binding it has (UPDREQALL);
    /// `failover show` follows the progress. The error is shown as it displays.
    fn resync(&self, name: &str) -> Result<(), CommandError> {
        Err(CommandError::NotRunning(name.to_owned()))
    }
    /// Re-reads the configuration file and applies what changed without a restart
    /// ([`crate::reload`]); returns the changes, one line each (none: the file is the
    /// configuration in force). The error, shown to the operator as it is, says why nothing
    /// was applied.
    fn reload(&self) -> Result<Vec<String>, String> {
        Err("reload needs the running daemon (this server only reports its configuration)".into())
    }
    /// Every failover relationship in configuration order: its settings, its state (when
    /// failover runs) and its scopes' leases ([`crate::status::relationship_details`]). A
    /// backend without a configuration knows none.
    fn relationships(&self) -> Vec<RelationshipDetail> {
        Vec::new()
    }
}

/// Why an operator's command to a relationship (`partner-down`, `resync`) was not carried
/// out; the text is the admin answer's `error`.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The config has no relationship of that name.
    #[error("no such relationship {0:?}")]
    NoSuchRelationship(String),
    /// The relationship is configured but the failover driver is not running.
    #[error("failover not active: relationship {0:?} is configured but failover is not running")]
    NotRunning(String),
    /// The state machine refused it in its current state.
    #[error(transparent)]
    Refused(#[from] crate::failover::fsm::LocalEventError),
    /// The failover driver thread has stopped.
    #[error("failover driver stopped")]
    DriverStopped,
    /// The failover driver could not be woken.
    #[error("cannot wake the failover driver: {0}")]
    Wake(io::Error),
    /// The failover driver did not answer in time.
    #[error("failover driver did not answer")]
    NoAnswer,
}

/// One request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "kebab-case")]
pub enum Request {
    /// `{"verb":"status"}`.
    Status,
    /// `{"verb":"leases","subnet":"10.0.0.0/16","state":"active","limit":100}`, all but `verb` optional.
    Leases(LeaseFilter),
    /// `{"verb":"partner-down","name":"edge-pair","since":1763784000}`; `since` defaults to now.
    PartnerDown {
        /// The relationship.
        name: String,
        /// When the partner was last known up, Unix seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<u64>,
    },
    /// `{"verb":"audit","limit":50}`: the last changes asked of the daemon (default 100).
    Audit {
        /// How many entries, newest last.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
    },
    /// `{"verb":"reload"}`: re-read the configuration file and apply what changed, live.
    Reload,
    /// `{"verb":"replicate","scope":"10.0.0.0/24"}`, `{"verb":"replicate","relationship":
    /// "edge-pair"}` or `{"verb":"replicate"}` (every tandem relationship): the scopes'
    /// definitions (options, lease times, pools, exclusions, reservations) replace the
    /// partner's, which applies them live.
    Replicate {
        /// Every scope of this relationship.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        relationship: Option<String>,
        /// Only this scope.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
    },
    /// `{"verb":"resync","name":"edge-pair"}`: ask the partner for every binding it has
    /// (UPDREQALL); `relationships` shows the progress.
    Resync {
        /// The relationship.
        name: String,
    },
    /// `{"verb":"relationships","name":"edge-pair"}`: every failover relationship (`failover
    /// list`), or the one named (`failover show`), with its settings, state and scopes.
    Relationships {
        /// Only this relationship.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
}

/// Every verb's name, as sent.
pub const VERBS: [&str; 8] = [
    "status",
    "leases",
    "partner-down",
    "audit",
    "reload",
    "relationships",
    "resync",
    "replicate",
];

impl Request {
    /// The verb's name, as sent.
    pub fn verb(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Leases(_) => "leases",
            Request::PartnerDown { .. } => "partner-down",
            Request::Audit { .. } => "audit",
            Request::Reload => "reload",
            Request::Relationships { .. } => "relationships",
            Request::Resync { .. } => "resync",
            Request::Replicate { .. } => "replicate",
        }
    }

    /// Whether the request changes something (and so goes to the audit log).
    fn is_change(&self) -> bool {
        match self {
            Request::Status
            | Request::Leases(_)
            | Request::Audit { .. }
            | Request::Relationships { .. } => false,
            Request::PartnerDown { .. }
            | Request::Reload
            | Request::Resync { .. }
            | Request::Replicate { .. } => true,
        }
    }
}

/// Who sent a request, as the audit log names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `uid 0 (pid 1234)` on the Unix socket; `anonymous` on TCP.
    pub who: String,
    /// `unix`, or `tcp ADDRESS:PORT`.
    pub from: String,
}

/// One answer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request succeeded.
    pub ok: bool,
    /// Why it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The answer to `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// The answer to `leases`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leases: Option<Vec<LeaseInfo>>,
    /// When a `leases` answer was cut at its limit: the cursor (`after`) of the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<Ipv4Addr>,
    /// A human sentence for verbs that only act (`partner-down`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The answer to `audit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<Vec<AuditEntry>>,
    /// The answer to `reload`: what was applied, one line per subnet or section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<String>>,
    /// The answer to `relationships`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relationships: Option<Vec<RelationshipDetail>>,
}

impl Response {
    /// A failure answer.
    pub fn error(message: impl Into<String>) -> Self {
        Response {
            ok: false,
            error: Some(message.into()),
            ..Response::default()
        }
    }
}

/// Answers one request line. Never panics, whatever the line or the backend does.
pub fn handle_line(line: &[u8], backend: &dyn AdminBackend) -> Response {
    handle(line, backend, None)
}

/// [`handle_line`] for `caller`: a change is recorded in `audit`, which `audit` reads.
pub fn handle_line_audited(
    line: &[u8],
    backend: &dyn AdminBackend,
    caller: &Caller,
    audit: &AuditLog,
) -> Response {
    handle(line, backend, Some((caller, audit)))
}

/// The default number of entries an `audit` answer carries.
pub const DEFAULT_AUDIT_ENTRIES: usize = 100;

fn handle(
    line: &[u8],
    backend: &dyn AdminBackend,
    audit: Option<(&Caller, &AuditLog)>,
) -> Response {
    let request: Request = match serde_json::from_slice(line) {
        Ok(r) => r,
        Err(e) => {
            let verb = serde_json::from_slice::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("verb").and_then(|v| v.as_str()).map(str::to_owned));
            return Response::error(match verb {
                Some(v) if !VERBS.contains(&v.as_str()) => {
                    format!("unknown verb {v:?} (known: {})", VERBS.join(", "))
                }
                _ => format!("malformed request: {e}"),
            });
        }
    };
    handle_request(request, backend, audit)
}

/// Answers one parsed request (the admin socket's, or the HTTP API's); a change is recorded in
/// `audit` when one is given. Never panics, whatever the backend does.
pub fn handle_request(
    request: Request,
    backend: &dyn AdminBackend,
    audit: Option<(&Caller, &AuditLog)>,
) -> Response {
    let change = request.is_change().then(|| request.clone());
    let answer = catch_unwind(AssertUnwindSafe(|| match request {
        Request::Status => Response {
            ok: true,
            status: Some(backend.status()),
            ..Response::default()
        },
        Request::Leases(mut filter) => {
            if let Some(m) = filter
                .mac
                .as_deref()
                .filter(|m| config::parse_mac(m).is_none())
            {
                return Response::error(format!(
                    "leases: mac {m:?} is not a hardware address (02:00:00:00:00:01)"
                ));
            }
            if let Some(c) = filter
                .client_id
                .as_deref()
                .filter(|c| config::parse_hex(c).is_none_or(|b| b.is_empty()))
            {
                return Response::error(format!(
                    "leases: client_id {c:?} is not hex bytes (01:02:00:00:00:00:01)"
                ));
            }
            // One more than asked, to know whether the answer was cut (and at least one, so
            // that a cut answer has a last address to be the cursor).
            let limit = filter.limit.unwrap_or(MAX_LEASES).clamp(1, MAX_LEASES);
            filter.limit = Some(limit.saturating_add(1));
            let mut leases = backend.leases(&filter);
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            let next = (leases.len() > limit)
                .then(|| {
                    leases.truncate(limit);
                    leases.last().map(|l| l.address)
                })
                .flatten();
            Response {
                ok: true,
                leases: Some(leases),
                next,
                ..Response::default()
            }
        }
        Request::PartnerDown { name, since } => {
            let since = since.unwrap_or_else(unix_now);
            match backend.partner_down(&name, since) {
                Ok(in_force) => Response {
                    ok: true,
                    message: Some(partner_down_message(&name, since, in_force)),
                    ..Response::default()
                },
                Err(e) => Response::error(e.to_string()),
            }
        }
        Request::Audit { limit } => match audit {
            Some((_, log)) => match log.recent(limit.unwrap_or(DEFAULT_AUDIT_ENTRIES)) {
                Ok(entries) => Response {
                    ok: true,
                    audit: Some(entries),
                    ..Response::default()
                },
                Err(e) => Response::error(format!("cannot read {}: {e}", log.path().display())),
            },
            None => Response::error("no audit log here"),
        },
        Request::Reload => match backend.reload() {
            Ok(changes) => Response {
                ok: true,
                message: Some(reload_message(&changes)),
                changes: Some(changes),
                ..Response::default()
            },
            Err(e) => Response::error(e),
        },
        Request::Replicate {
            relationship,
            scope,
        } => match backend.replicate(relationship.as_deref(), scope.as_deref()) {
            Ok(changes) => Response {
                ok: true,
                message: Some(format!(
                    "replicated: {} change{} applied by the partner",
                    changes.len(),
                    if changes.len() == 1 { "" } else { "s" }
                )),
                changes: Some(changes),
                ..Response::default()
            },
            Err(e) => Response::error(e),
        },
        Request::Resync { name } => match backend.resync(&name) {
            Ok(()) => Response {
                ok: true,
                message: Some(format!(
                    "resync of {name} asked: the partner sends every binding it has, then \
                     UPDDONE (`tandemctl failover show {name}` follows it)"
                )),
                ..Response::default()
            },
            Err(e) => Response::error(e.to_string()),
        },
        Request::Relationships { name } => {
            let mut all = backend.relationships();
            if let Some(name) = name {
                all.retain(|r| r.name == name);
                if all.is_empty() {
                    return Response::error(format!("no such relationship {name:?}"));
                }
            }
            Response {
                ok: true,
                relationships: Some(all),
                ..Response::default()
            }
        }
    }));
    let answer = answer
        .unwrap_or_else(|_| Response::error("internal error while answering (see tandemd's log)"));
    if let (Some(request), Some((caller, log))) = (change, audit) {
        log.record(&AuditEntry {
            time: unix_now(),
            who: caller.who.clone(),
            from: caller.from.clone(),
            verb: request.verb().to_owned(),
            request: serde_json::to_value(&request).unwrap_or_default(),
            ok: answer.ok,
            result: answer
                .message
                .clone()
                .or_else(|| answer.error.clone())
                .unwrap_or_default(),
        });
    }
    answer
}

/// What `reload` tells the operator.
fn reload_message(changes: &[String]) -> String {
    match changes.len() {
        0 => "configuration unchanged: nothing to apply".to_owned(),
        n => format!(
            "configuration reloaded, {n} change{} applied: {}",
            if n == 1 { "" } else { "s" },
            changes.join("; ")
        ),
    }
}

/// What `partner-down` tells the operator: the time the MCLT wait runs from, and why it is
/// not the one asked for when it is not.
fn partner_down_message(name: &str, asked: u64, in_force: u64) -> String {
    let at = crate::time::format_rfc3339(in_force);
    let asked_at = crate::time::format_rfc3339(asked);
    if in_force > asked {
        format!(
            "relationship {name:?}: partner declared down, last known up at {at}, not {asked_at}: \
             it was heard from after that, and the MCLT is waited out from then"
        )
    } else if in_force < asked {
        format!(
            "relationship {name:?}: partner declared down, last known up at {at}, not {asked_at}, \
             which is in the future"
        )
    } else {
        format!("relationship {name:?}: partner declared down, last known up at {at}")
    }
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Why the admin server could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Another process answers on the socket.
    #[error("{}: another tandemd is already serving this data_dir", path.display())]
    AlreadyRunning {
        /// The socket.
        path: PathBuf,
    },
    /// Something other than a socket is in the way.
    #[error("{}: exists and is not a socket", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// Binding or setting up the Unix socket failed.
    #[error("admin socket {}: {source}", path.display())]
    Unix {
        /// The socket.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Binding the TCP listener failed.
    #[error("admin address {addr}: {source}")]
    Tcp {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: io::Error,
    },
    /// Setting up the event loop failed.
    #[error("admin event loop: {0}")]
    Poll(#[source] io::Error),
}

/// The running admin server; stops (and removes its socket) on [`AdminServer::stop`] or drop.
pub struct AdminServer {
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
    socket: PathBuf,
    tcp: Option<SocketAddr>,
    audit: Arc<AuditLog>,
}

impl std::fmt::Debug for AdminServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminServer")
            .field("socket", &self.socket)
            .field("tcp", &self.tcp)
            .finish_non_exhaustive()
    }
}

const WAKER: Token = Token(0);
const UNIX_LISTENER: Token = Token(1);
const TCP_LISTENER: Token = Token(2);
const FIRST_CONN: usize = 3;

/// How many connections each listener serves and how long an idle one is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections at once per listener. When a listener is full, a new connection takes
    /// the place of its longest-idle one, so idle clients cannot lock the operator out; when
    /// none is idle, the new one is refused.
    pub connections_per_listener: usize,
    /// A connection on which nothing moved for this long is closed.
    pub idle_timeout: Duration,
    /// A connection half through a request or an answer that has not moved for this long
    /// may give its place to a new one, as an idle one may.
    pub stalled: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections_per_listener: MAX_CONNECTIONS,
            idle_timeout: IDLE_TIMEOUT,
            stalled: Duration::from_secs(1),
        }
    }
}

impl AdminServer {
    /// Binds `socket` (mode 0600; a stale socket left by a dead daemon is replaced) and, if given,
    /// `tcp`, and starts serving on a thread named `admin`, with the default [`Limits`].
    pub fn start(
        socket: &Path,
        tcp: Option<SocketAddr>,
        backend: Arc<dyn AdminBackend>,
    ) -> Result<Self, AdminError> {
        Self::start_with(socket, tcp, backend, Limits::default())
    }

    /// [`AdminServer::start`] with other limits.
    pub fn start_with(
        socket: &Path,
        tcp: Option<SocketAddr>,
        backend: Arc<dyn AdminBackend>,
        limits: Limits,
    ) -> Result<Self, AdminError> {
        let unix_err = |source| AdminError::Unix {
            path: socket.to_owned(),
            source,
        };
        match std::fs::symlink_metadata(socket) {
            Ok(meta) if meta.file_type().is_socket() => {
                if std::os::unix::net::UnixStream::connect(socket).is_ok() {
                    return Err(AdminError::AlreadyRunning {
                        path: socket.to_owned(),
                    });
                }
                std::fs::remove_file(socket).map_err(unix_err)?;
            }
            Ok(_) => {
                return Err(AdminError::NotASocket {
                    path: socket.to_owned(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(unix_err(e)),
        }
        let mut unix = UnixListener::bind(socket).map_err(unix_err)?;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
            .map_err(unix_err)?;
        let mut tcp_listener = match tcp {
            Some(addr) => {
                Some(TcpListener::bind(addr).map_err(|source| AdminError::Tcp { addr, source })?)
            }
            None => None,
        };
        let tcp_addr = match &tcp_listener {
            Some(l) => Some(l.local_addr().map_err(AdminError::Poll)?),
            None => None,
        };
        let poll = Poll::new().map_err(AdminError::Poll)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(AdminError::Poll)?);
        poll.registry()
            .register(&mut unix, UNIX_LISTENER, Interest::READABLE)
            .map_err(AdminError::Poll)?;
        if let Some(l) = &mut tcp_listener {
            poll.registry()
                .register(l, TCP_LISTENER, Interest::READABLE)
                .map_err(AdminError::Poll)?;
        }
        let audit = Arc::new(AuditLog::new(socket.parent().unwrap_or(Path::new("."))));
        let mut event_loop = EventLoop {
            poll,
            unix,
            tcp: tcp_listener,
            conns: HashMap::new(),
            next_token: FIRST_CONN,
            backend,
            limits,
            audit: Arc::clone(&audit),
        };
        let thread = std::thread::Builder::new()
            .name("admin".into())
            .spawn(move || event_loop.run())
            .map_err(AdminError::Poll)?;
        tracing::info!(socket = %socket.display(), tcp = ?tcp_addr, "admin API listening");
        Ok(AdminServer {
            waker,
            thread: Some(thread),
            socket: socket.to_owned(),
            tcp: tcp_addr,
            audit,
        })
    }

    /// The audit log it writes (`data_dir/audit.log`): other front ends (HTTP) record their
    /// changes in the same one, through the same writer.
    pub fn audit_log(&self) -> Arc<AuditLog> {
        Arc::clone(&self.audit)
    }

    /// The Unix socket's path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The TCP address actually bound (useful with port 0).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp
    }

    /// Stops the loop, joins the thread, removes the socket.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        if let Some(thread) = self.thread.take() {
            if let Err(e) = self.waker.wake() {
                tracing::warn!(error = %e, "cannot wake the admin thread");
            }
            if thread.join().is_err() {
                tracing::error!("the admin thread panicked");
            }
            let _ = std::fs::remove_file(&self.socket);
        }
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Stream::Unix(s) => s,
            Stream::Tcp(s) => s,
        }
    }
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }
}

impl Stream {
    fn is_tcp(&self) -> bool {
        matches!(self, Stream::Tcp(_))
    }
}

struct Conn {
    stream: Stream,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    /// The peer sent EOF (or a request too large): close once `outbuf` is flushed.
    closing: bool,
    /// When bytes last moved either way.
    active: Instant,
    /// Who is on the other end, for the audit log.
    caller: Caller,
}

impl Conn {
    /// Whether the connection may give its place to a new one: the client is only holding
    /// it open (nothing half-read, nothing unsent), or it has stalled mid-request.
    fn may_make_room(&self, now: Instant, stalled: Duration) -> bool {
        (self.inbuf.is_empty() && self.outbuf.is_empty() && !self.closing)
            || now.duration_since(self.active) >= stalled
    }
}

struct EventLoop {
    poll: Poll,
    unix: UnixListener,
    tcp: Option<TcpListener>,
    conns: HashMap<Token, Conn>,
    next_token: usize,
    backend: Arc<dyn AdminBackend>,
    limits: Limits,
    /// Beside the socket, in `data_dir`.
    audit: Arc<AuditLog>,
}

impl EventLoop {
    fn run(&mut self) {
        let mut events = Events::with_capacity(128);
        loop {
            let timeout = self.close_idle();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!(error = %e, "admin poll failed; admin API stopped");
                return;
            }
            for event in &events {
                match event.token() {
                    WAKER => return,
                    UNIX_LISTENER => self.accept_unix(),
                    TCP_LISTENER => self.accept_tcp(),
                    token => self.drive(token),
                }
            }
        }
    }

    fn accept_unix(&mut self) {
        loop {
            match self.unix.accept() {
                Ok((s, _)) => {
                    use std::os::fd::AsFd;
                    let who = match dataplane::sys::peer_cred(s.as_fd()) {
                        Ok((pid, uid, _)) => format!("uid {uid} (pid {pid})"),
                        Err(_) => "unknown".to_owned(),
                    };
                    let caller = Caller {
                        who,
                        from: "unix".to_owned(),
                    };
                    self.add(Stream::Unix(s), caller);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    return;
                }
            }
        }
    }

    fn accept_tcp(&mut self) {
        let Some(listener) = &self.tcp else { return };
        let mut accepted = Vec::new();
        loop {
            match listener.accept() {
                Ok((s, peer)) => accepted.push((s, peer)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    break;
                }
            }
        }
        for (s, peer) in accepted {
            let caller = Caller {
                who: "anonymous".to_owned(),
                from: format!("tcp {peer}"),
            };
            self.add(Stream::Tcp(s), caller);
        }
    }

    /// Closes the connections on which nothing moved for the idle limit (one holding a
    /// half-sent request too); returns how long until the next one is due.
    fn close_idle(&mut self) -> Option<Duration> {
        let now = Instant::now();
        let limit = self.limits.idle_timeout;
        let expired: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| now.duration_since(c.active) >= limit)
            .map(|(t, _)| *t)
            .collect();
        for token in expired {
            self.close(token, "idle for too long");
        }
        self.conns
            .values()
            .map(|c| (c.active + limit).saturating_duration_since(now))
            .min()
    }

    /// Tells the client why (best effort: one line, no waiting) and drops the connection.
    fn close(&mut self, token: Token, why: &str) {
        if let Some(mut conn) = self.conns.remove(&token) {
            let mut line = Vec::new();
            push(
                &mut line,
                &Response::error(format!("admin connection closed: {why}")),
            );
            let _ = conn.stream.write(&line);
            let _ = self.poll.registry().deregister(conn.stream.source());
        }
    }

    fn add(&mut self, mut stream: Stream, caller: Caller) {
        let tcp = stream.is_tcp();
        let mut same: Vec<(&Token, &Conn)> = self
            .conns
            .iter()
            .filter(|(_, c)| c.stream.is_tcp() == tcp)
            .collect();
        if same.len() >= self.limits.connections_per_listener {
            let now = Instant::now();
            same.retain(|(_, c)| c.may_make_room(now, self.limits.stalled));
            match same.iter().min_by_key(|(_, c)| c.active).map(|(t, _)| **t) {
                Some(longest_idle) => {
                    tracing::warn!(
                        listener = if tcp { "tcp" } else { "unix" },
                        "admin API: connections at the limit, closing the longest idle"
                    );
                    self.close(
                        longest_idle,
                        "too many admin connections, this one idle longest",
                    );
                }
                None => {
                    tracing::warn!("admin API: too many connections, refusing one");
                    let mut line = Vec::new();
                    push(&mut line, &Response::error("too many admin connections"));
                    let _ = stream.write(&line);
                    return;
                }
            }
        }
        let token = Token(self.next_token);
        self.next_token = self.next_token.wrapping_add(1).max(FIRST_CONN);
        if let Err(e) = self.poll.registry().register(
            stream.source(),
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            tracing::warn!(error = %e, "admin API: cannot register a connection");
            return;
        }
        self.conns.insert(
            token,
            Conn {
                stream,
                inbuf: Vec::new(),
                outbuf: Vec::new(),
                closing: false,
                active: Instant::now(),
                caller,
            },
        );
        self.drive(token);
    }

    /// Reads, answers and writes as far as the socket allows; drops the connection when done.
    fn drive(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        let keep = drive_conn(conn, &*self.backend, &self.audit);
        if !keep && let Some(mut conn) = self.conns.remove(&token) {
            let _ = self.poll.registry().deregister(conn.stream.source());
        }
    }
}

/// Returns whether the connection stays open.
fn drive_conn(conn: &mut Conn, backend: &dyn AdminBackend, audit: &AuditLog) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        // Answer complete lines while the client keeps up.
        while conn.outbuf.len() < OUT_HIGH_WATER
            && let Some(pos) = conn.inbuf.iter().position(|&b| b == b'\n')
        {
            let line: Vec<u8> = conn.inbuf.drain(..=pos).collect();
            answer(&line[..pos], backend, &conn.caller, audit, &mut conn.outbuf);
        }
        if conn.closing && !conn.inbuf.is_empty() && conn.outbuf.len() < OUT_HIGH_WATER {
            // A last request without its newline.
            let line = std::mem::take(&mut conn.inbuf);
            answer(&line, backend, &conn.caller, audit, &mut conn.outbuf);
        }
        // Flush what is queued.
        while !conn.outbuf.is_empty() {
            match conn.stream.write(&conn.outbuf) {
                Ok(0) => return false,
                Ok(n) => {
                    conn.outbuf.drain(..n);
                    conn.active = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        if conn.closing {
            match (conn.outbuf.is_empty(), conn.inbuf.is_empty()) {
                // Everything answered and sent.
                (true, true) => return false,
                // More requests to answer.
                (true, false) => continue,
                // Wait for WRITABLE.
                (false, _) => return true,
            }
        }
        if conn.outbuf.len() >= OUT_HIGH_WATER {
            // Wait for WRITABLE before reading more.
            return true;
        }
        // Read until the socket is drained.
        let mut progressed = false;
        loop {
            match conn.stream.read(&mut buf) {
                Ok(0) => {
                    conn.closing = true;
                    progressed = true;
                    break;
                }
                Ok(n) => {
                    conn.inbuf.extend_from_slice(&buf[..n]);
                    conn.active = Instant::now();
                    progressed = true;
                    if conn.inbuf.contains(&b'\n') {
                        break;
                    }
                    if conn.inbuf.len() > MAX_REQUEST {
                        push(
                            &mut conn.outbuf,
                            &Response::error(format!(
                                "request too large (limit {MAX_REQUEST} bytes)"
                            )),
                        );
                        conn.inbuf.clear();
                        conn.closing = true;
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        if !progressed && !conn.inbuf.contains(&b'\n') {
            return true;
        }
    }
}

fn answer(
    line: &[u8],
    backend: &dyn AdminBackend,
    caller: &Caller,
    audit: &AuditLog,
    out: &mut Vec<u8>,
) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    if line.len() > MAX_REQUEST {
        push(
            out,
            &Response::error(format!("request too large (limit {MAX_REQUEST} bytes)")),
        );
        return;
    }
    push(out, &handle_line_audited(line, backend, caller, audit));
}

fn push(out: &mut Vec<u8>, response: &Response) {
    match serde_json::to_writer(&mut *out, response) {
        Ok(()) => out.push(b'\n'),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode an admin answer");
            out.extend_from_slice(
                b"{\"ok\":false,\"error\":\"internal error: cannot encode the answer\"}\n",
            );
        }
    }
}

/// Where a client finds the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The Unix socket, `DATA_DIR/tandemd.sock`.
    Unix(PathBuf),
    /// `server.admin`, `HOST:PORT`.
    Tcp(String),
    /// The HTTP API of `server.http`, `HOST:PORT`, with a bearer token if one was given.
    Http {
        /// `HOST:PORT`.
        addr: String,
        /// The token, sent as `Authorization: Bearer`.
        token: Option<String>,
        /// HTTPS, trusting the certificates of this PEM file (`TANDEM_CA_FILE`), or the
        /// system's (`/etc/ssl/certs/ca-certificates.crt`) when `None`.
        tls: Option<Option<PathBuf>>,
    },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Unix(p) => write!(f, "{}", p.display()),
            Target::Tcp(a) => f.write_str(a),
            Target::Http {
                addr, tls: None, ..
            } => write!(f, "http://{addr}"),
            Target::Http { addr, .. } => write!(f, "https://{addr}"),
        }
    }
}

/// Why a client request failed (the daemon's own `ok:false` answers are not errors here).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers at the target.
    #[error("cannot reach tandemd at {target}: {reason} (is tandemd running?)")]
    Unreachable {
        /// Where we looked.
        target: Target,
        /// `connection refused`, `no such file or directory`, ...
        reason: String,
    },
    /// The connection broke or the answer was not understood.
    #[error("talking to tandemd at {target}: {reason}")]
    Protocol {
        /// Where.
        target: Target,
        /// What went wrong.
        reason: String,
    },
}

/// Sends one request and reads its answer (blocking, 30 s timeout).
pub fn request(target: &Target, request: &Request) -> Result<Response, ClientError> {
    let timeout = Some(Duration::from_secs(30));
    let unreachable = |e: io::Error| ClientError::Unreachable {
        target: target.clone(),
        reason: io_reason(&e),
    };
    let protocol = |reason: String| ClientError::Protocol {
        target: target.clone(),
        reason,
    };
    if let Target::Http { addr, token, tls } = target {
        return http_request(addr, token.as_deref(), tls.as_ref(), request, timeout).map_err(
            |(reached, e)| {
                if reached {
                    protocol(e)
                } else {
                    ClientError::Unreachable {
                        target: target.clone(),
                        reason: e,
                    }
                }
            },
        );
    }
    let mut line = serde_json::to_vec(request).map_err(|e| protocol(e.to_string()))?;
    line.push(b'\n');
    let mut answer = String::new();
    match target {
        Target::Http { .. } => unreachable!("answered above"),
        Target::Unix(path) => {
            let s = std::os::unix::net::UnixStream::connect(path).map_err(unreachable)?;
            s.set_read_timeout(timeout)
                .map_err(|e| protocol(io_reason(&e)))?;
            s.set_write_timeout(timeout)
                .map_err(|e| protocol(io_reason(&e)))?;
            (&s).write_all(&line).map_err(|e| protocol(io_reason(&e)))?;
            BufReader::new(&s)
                .read_line(&mut answer)
                .map_err(|e| protocol(io_reason(&e)))?;
        }
        Target::Tcp(addr) => {
            let s = std::net::TcpStream::connect(addr.as_str()).map_err(unreachable)?;
            s.set_read_timeout(timeout)
                .map_err(|e| protocol(io_reason(&e)))?;
            s.set_write_timeout(timeout)
                .map_err(|e| protocol(io_reason(&e)))?;
            (&s).write_all(&line).map_err(|e| protocol(io_reason(&e)))?;
            BufReader::new(&s)
                .read_line(&mut answer)
                .map_err(|e| protocol(io_reason(&e)))?;
        }
    }
    if answer.is_empty() {
        return Err(protocol(
            "the daemon closed the connection without answering".into(),
        ));
    }
    serde_json::from_str(&answer).map_err(|e| protocol(format!("unreadable answer: {e}")))
}

/// One request through the HTTP API (HTTP/1.1, one connection per request): the route of
/// `request`, and its answer document (also for 400, 401 and 403, which carry the reason).
/// The error says whether the server was reached.
fn http_request(
    addr: &str,
    token: Option<&str>,
    tls: Option<&Option<PathBuf>>,
    request: &Request,
    timeout: Option<Duration>,
) -> Result<Response, (bool, String)> {
    use std::io::Read;
    let q = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z'
                | b'a'..=b'z'
                | b'0'..=b'9'
                | b'-'
                | b'.'
                | b'_'
                | b'~'
                | b':'
                | b'/' => char::from(b).to_string(),
                b => format!("%{b:02X}"),
            })
            .collect()
    };
    let (method, path, body) = match request {
        Request::Status => ("GET", "/api/v1/status".to_owned(), String::new()),
        Request::Leases(f) => {
            let mut params = Vec::new();
            let mut add = |k: &str, v: Option<String>| {
                if let Some(v) = v {
                    params.push(format!("{k}={}", q(&v)));
                }
            };
            add("ip", f.address.map(|a| a.to_string()));
            add("mac", f.mac.clone());
            add("client_id", f.client_id.clone());
            add("subnet", f.subnet.clone());
            add("state", f.state.map(|s| s.as_str().to_owned()));
            add("limit", f.limit.map(|l| l.to_string()));
            add("after", f.after.map(|a| a.to_string()));
            (
                "GET",
                format!("/api/v1/leases?{}", params.join("&")),
                String::new(),
            )
        }
        Request::PartnerDown { name, since } => (
            "POST",
            format!("/api/v1/relationships/{}/partner-down", q(name)),
            since.map_or_else(String::new, |s| format!("{{\"since\":{s}}}")),
        ),
        Request::Audit { limit } => (
            "GET",
            match limit {
                Some(n) => format!("/api/v1/audit?limit={n}"),
                None => "/api/v1/audit".to_owned(),
            },
            String::new(),
        ),
        Request::Reload => ("POST", "/api/v1/config/reload".to_owned(), String::new()),
        Request::Replicate {
            relationship,
            scope,
        } => (
            "POST",
            "/api/v1/replicate".to_owned(),
            serde_json::json!({"relationship": relationship, "scope": scope}).to_string(),
        ),
        Request::Resync { name } => (
            "POST",
            format!("/api/v1/relationships/{}/resync", q(name)),
            String::new(),
        ),
        Request::Relationships { name } => (
            "GET",
            match name {
                Some(n) => format!("/api/v1/relationships/{}", q(n)),
                None => "/api/v1/relationships".to_owned(),
            },
            String::new(),
        ),
    };
    let auth = token.map_or_else(String::new, |t| {
        format!("Authorization: Bearer {}\r\n", t.trim())
    });
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let s = std::net::TcpStream::connect(addr).map_err(|e| (false, io_reason(&e)))?;
    let reached = |e: io::Error| (true, io_reason(&e));
    s.set_read_timeout(timeout).map_err(reached)?;
    s.set_write_timeout(timeout).map_err(reached)?;
    let mut raw = Vec::new();
    match tls {
        None => {
            let mut s = s;
            s.write_all(head.as_bytes()).map_err(reached)?;
            s.read_to_end(&mut raw).map_err(reached)?;
        }
        Some(ca) => {
            let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let conn = tls_client(ca.as_deref(), host).map_err(|e| (true, e))?;
            let mut s = rustls::StreamOwned::new(conn, s);
            s.write_all(head.as_bytes()).map_err(reached)?;
            match s.read_to_end(&mut raw) {
                Ok(_) => {}
                // The server closed without close_notify after a complete answer.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
                Err(e) => return Err(reached(e)),
            }
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or((true, "not an HTTP answer".to_owned()))?;
    let status = head.split(' ').nth(1).unwrap_or("?");
    serde_json::from_str(body).map_err(|e| {
        (
            true,
            format!(
                "HTTP {status}, and the body is not an answer ({e}): {}",
                body.trim()
            ),
        )
    })
}

/// A TLS client for `host`, trusting the PEM certificates of `ca` (else the system's).
fn tls_client(ca: Option<&Path>, host: &str) -> Result<rustls::ClientConnection, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let ca = ca.unwrap_or(Path::new("/etc/ssl/certs/ca-certificates.crt"));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))? {
        let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from(host.to_owned()).map_err(|e| format!("{host}: {e}"))?;
    rustls::ClientConnection::new(std::sync::Arc::new(config), name).map_err(|e| e.to_string())
}

/// `connection refused` rather than `Connection refused (os error 111)`.
fn io_reason(e: &io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_owned();
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{LeaseFilter, LeaseInfo, Status};

    struct Empty;

    impl AdminBackend for Empty {
        fn status(&self) -> Status {
            Status {
                version: "t".into(),
                uptime: 0,
                datapath: "auto".into(),
                relationships: Vec::new(),
                workers: Vec::new(),
                leases: Default::default(),
                scope_failover: Default::default(),
                xdp: Vec::new(),
                leasequery: Default::default(),
            }
        }
        fn leases(&self, _: &LeaseFilter) -> Vec<LeaseInfo> {
            Vec::new()
        }
        fn partner_down(&self, name: &str, _: u64) -> Result<u64, CommandError> {
            Err(CommandError::NoSuchRelationship(name.to_owned()))
        }
    }

    #[test]
    fn garbage_gets_an_error_answer() {
        for line in [
            &b""[..],
            b"\xff\xfe\x00",
            b"{",
            b"null",
            b"{\"verb\":5}",
            b"{\"verb\":\"leases\",\"limit\":-1}",
            b"{\"verb\":\"leases\",\"state\":\"bound\"}",
            b"{\"verb\":\"partner-down\",\"name\":\"x\",\"since\":\"now\"}",
            b"{\"verb\":\"partner-down\",\"name\":\"x\"}",
            b"{\"nested\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
        ] {
            let r = handle_line(line, &Empty);
            assert!(!r.ok, "{:?}", String::from_utf8_lossy(line));
            assert!(r.error.is_some());
        }
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(
            !handle_line(deep.as_bytes(), &Empty).ok,
            "serde_json's recursion limit holds"
        );
        assert!(handle_line(b"{\"verb\":\"status\"}", &Empty).ok);
        assert!(handle_line(b"{\"verb\":\"leases\",\"subnet\":\"10.0.0.0/8\"}", &Empty).ok);
    }
}
