//! The management channel between tandem partners: one TCP service per server, beside the
//! failover link, on which each relationship's two servers compare their configuration (and,
//! later, apply changes on both sides).
//!
//! **Authentication.** Both ends prove they hold the relationship's shared secret (the
//! failover link's), over fresh nonces from both, so nothing can be replayed and neither end
//! takes an answer from a stranger:
//!
//! ```text
//! client → {"v":1,"relationship":NAME,"nonce":CN}
//! server → {"nonce":SN}                                   (or {"error":…} and close)
//! client → {"body":B,"mac":HMAC(secret, "client"|NAME|SN|CN|B)}
//! server → {"body":A,"mac":HMAC(secret, "server"|NAME|CN|SN|A)}   (or {"error":…})
//! ```
//!
//! One request per connection, JSON lines of at most [`MAX_LINE`] bytes, [`IO_TIMEOUT`] for
//! each step ([`ANSWER_TIMEOUT`] for the answer), at most [`MAX_CONNECTIONS`] served at
//! once. A request whose MAC fails is refused with `authentication failed`, logged (at most
//! one line per [`REFUSAL_LOG_EVERY`]) and counted; ISC dhcpd partners have no such channel.
//!
//! **The consistency check** (#10 item 4). Each side describes each relationship
//! ([`describe`]): its role and the settings the failover protocol does not carry, and per
//! member scope a digest of each key the partners must share (options, lease times, pools,
//! exclusions, reservations). Every [`CHECK_EVERY`], at start and after each reload, each
//! server sends its description ([`Op::Compare`]) and gets the partner's back; both record
//! the [`differences`], so one exchange updates both. A new difference is logged once as a
//! warning naming the scope and the keys, and counted; `status` and `failover show` show it.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::edit::ScopeDefinition;
use crate::config::{Config, FailoverConfig, PeerSoftware, Role, SubnetConfig};
use crate::daemon::Shutdown;
use crate::status::ConfigCheck;

/// The protocol's version, in the client's hello.
pub const VERSION: u32 = 1;
/// Each step's time limit (connect, each line each way).
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request's answer may take (a replication waits for the partner's reload).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest line taken.
pub const MAX_LINE: usize = 1 << 20;
/// Connections served at once; one more is closed at accept.
pub const MAX_CONNECTIONS: usize = 16;
/// How often each relationship's configuration is compared with the partner's.
pub const CHECK_EVERY: Duration = Duration::from_secs(30);
/// At most one log line per this for refused connections.
pub const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

type HmacSha256 = Hmac<Sha256>;

/// What one server says of one relationship, for the partner to compare with its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Description {
    /// The relationship.
    pub relationship: String,
    /// Its role here.
    pub role: Role,
    /// Settings the failover protocol does not show, by name, in the operator's units.
    pub settings: BTreeMap<String, String>,
    /// Per member scope (its prefix): per key, a digest of the key's definition.
    pub scopes: BTreeMap<String, BTreeMap<String, String>>,
    /// `tandem-VERSION`.
    pub software: String,
}

/// The scope keys compared, in the order they are named.
pub const SCOPE_KEYS: [&str; 5] = [
    "options",
    "lease_times",
    "pools",
    "exclusions",
    "reservations",
];

fn digest(text: &str) -> String {
    let d = Sha256::digest(text.as_bytes());
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn join<T: std::fmt::Display>(v: impl IntoIterator<Item = T>) -> String {
    v.into_iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// A canonical text of each of a scope's [`SCOPE_KEYS`] (order-free where the file's order
/// means nothing), digested.
fn scope_digests(s: &SubnetConfig) -> BTreeMap<String, String> {
    let ranges = |v: &[crate::config::AddrRange]| {
        let mut r: Vec<(u32, u32)> = v
            .iter()
            .map(|r| (u32::from(r.first), u32::from(r.last)))
            .collect();
        r.sort_unstable();
        join(r.iter().map(|(a, b)| format!("{a}-{b}")))
    };
    let mut reservations: Vec<String> = s
        .reservations
        .iter()
        .map(|r| {
            let key = match &r.key {
                crate::config::ReservationKey::Mac(m) => format!("mac:{}", hex(m)),
                crate::config::ReservationKey::ClientId(b) => format!("client_id:{}", hex(b)),
                crate::config::ReservationKey::CircuitId(b) => format!("circuit_id:{}", hex(b)),
                crate::config::ReservationKey::RemoteId(b) => format!("remote_id:{}", hex(b)),
            };
            format!(
                "{key}={}/{}",
                r.address,
                r.hostname.as_deref().unwrap_or("")
            )
        })
        .collect();
    reservations.sort_unstable();
    let texts = [
        format!(
            "router={};dns={};domain_name={}",
            join(&s.router),
            join(&s.dns),
            s.domain_name.as_deref().unwrap_or("")
        ),
        format!("lease={};t1={};t2={}", s.lease_time, s.t1(), s.t2()),
        ranges(&s.pools),
        ranges(&s.exclude),
        reservations.join(";"),
    ];
    SCOPE_KEYS
        .iter()
        .zip(texts)
        .map(|(k, t)| ((*k).to_owned(), digest(&t)))
        .collect()
}

fn hex(b: &[u8]) -> String {
    crate::config::format_hex(b, "")
}
/// This server's description of relationship `name` (`None`: no such relationship).
pub fn describe(config: &Config, name: &str) -> Option<Description> {
    let f = config.failover.iter().find(|f| f.name == name)?;
    let settings = BTreeMap::from([
        ("mode".to_owned(), f.mode.as_str().to_owned()),
        (
            "reserve_percent".to_owned(),
            match f.mode {
                crate::config::FailoverMode::HotStandby => f.reserve_percent.to_string(),
                crate::config::FailoverMode::LoadBalance => "-".to_owned(),
            },
        ),
        (
            "load_balance_max_seconds".to_owned(),
            f.load_balance_max_seconds.to_string(),
        ),
    ]);
    Some(Description {
        relationship: name.to_owned(),
        role: f.role,
        settings,
        scopes: config
            .subnets
            .iter()
            .filter(|s| s.failover.as_deref() == Some(name))
            .map(|s| (s.prefix.to_string(), scope_digests(s)))
            .collect(),
        software: format!("tandem-{}", env!("CARGO_PKG_VERSION")),
    })
}

/// How the partner's description differs from ours, one line each (empty: in step).
pub fn differences(ours: &Description, theirs: &Description) -> Vec<String> {
    let mut out = Vec::new();
    if ours.role == theirs.role {
        out.push(format!("role: both servers are {}", ours.role.as_str()));
    }
    for (k, v) in &ours.settings {
        if let Some(t) = theirs.settings.get(k)
            && t != v
        {
            out.push(format!("{k}: ours {v}, the partner's {t}"));
        }
    }
    for (prefix, keys) in &ours.scopes {
        match theirs.scopes.get(prefix) {
            None => out.push(format!(
                "scope {prefix}: in the relationship here, not on the partner"
            )),
            Some(t) => {
                let differ: Vec<&str> = SCOPE_KEYS
                    .iter()
                    .copied()
                    .filter(|k| keys.get(*k) != t.get(*k))
                    .collect();
                if !differ.is_empty() {
                    out.push(format!("scope {prefix}: {} differ", differ.join(", ")));
                }
            }
        }
    }
    for prefix in theirs.scopes.keys() {
        if !ours.scopes.contains_key(prefix) {
            out.push(format!(
                "scope {prefix}: in the relationship on the partner, not here"
            ));
        }
    }
    out
}

/// A request on the channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Op {
    /// Here is my description of the relationship; give me yours.
    Compare {
        /// The sender's.
        description: Description,
    },
    /// These scopes' definitions replace the receiver's (Micetro's and Windows' replicate
    /// scope): written into its configuration file and applied live, or refused whole.
    Replicate {
        /// The sender's definitions, each of a scope of the relationship.
        scopes: Vec<ScopeDefinition>,
    },
}

/// An answer on the channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "kebab-case")]
pub enum Answer {
    /// The answering server's description.
    Compared {
        /// The answerer's.
        description: Description,
    },
    /// The scopes were replicated: what the receiver's reload applied, one line each.
    Replicated {
        /// The changes (none: the definitions were already the same).
        changes: Vec<String>,
    },
    /// The request was authenticated but not carried out.
    Refused {
        /// Why.
        reason: String,
    },
}

/// Why a request on the channel failed.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// The partner could not be reached or stopped answering.
    #[error("the partner's management channel at {addr}: {source}")]
    Io {
        /// Where.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The partner refused, with its reason.
    #[error("refused by the partner: {0}")]
    Refused(String),
    /// The partner's answer was malformed or did not prove the secret.
    #[error("the partner's answer {0}")]
    BadAnswer(&'static str),
}

#[derive(Serialize, Deserialize)]
struct Hello {
    v: u32,
    relationship: String,
    nonce: String,
}

#[derive(Serialize, Deserialize, Default)]
struct Challenge {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize, Deserialize, Default)]
struct Signed {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn mac(secret: &[u8], who: &str, name: &str, first: &str, second: &str, body: &str) -> String {
    // An HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let Ok(mut m) = HmacSha256::new_from_slice(secret) else {
        return String::new();
    };
    for part in [who, name, first, second] {
        m.update(part.as_bytes());
        m.update(&[0]);
    }
    m.update(body.as_bytes());
    hex(&m.finalize().into_bytes())
}

fn mac_ok(expected: &str, got: Option<&str>) -> bool {
    // Compared in constant time: both are hex of 32 bytes.
    let Some(got) = got else { return false };
    expected.len() == got.len()
        && expected
            .bytes()
            .zip(got.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn nonce() -> io::Result<String> {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(hex(&b))
}

fn read_line(r: &mut BufReader<&TcpStream>) -> io::Result<String> {
    let mut line = String::new();
    let n = r.by_ref().take(MAX_LINE as u64 + 1).read_line(&mut line)?;
    if n == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
    }
    if n > MAX_LINE {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
    }
    Ok(line)
}

fn write_json(mut s: &TcpStream, v: &impl Serialize) -> io::Result<()> {
    let mut line = serde_json::to_vec(v).map_err(io::Error::other)?;
    line.push(b'\n');
    s.write_all(&line)
}

/// One request to the partner at `addr` for relationship `name`, both ends proving `secret`.
pub fn call(addr: SocketAddr, name: &str, secret: &[u8], op: &Op) -> Result<Answer, ManageError> {
    let io = |source| ManageError::Io { addr, source };
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(io)?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    let mut reader = BufReader::new(&stream);
    let cn = nonce().map_err(io)?;
    write_json(
        &stream,
        &Hello {
            v: VERSION,
            relationship: name.to_owned(),
            nonce: cn.clone(),
        },
    )
    .map_err(io)?;
    let challenge: Challenge = serde_json::from_str(&read_line(&mut reader).map_err(io)?)
        .map_err(|_| ManageError::BadAnswer("is not JSON"))?;
    if let Some(e) = challenge.error {
        return Err(ManageError::Refused(e));
    }
    let sn = challenge
        .nonce
        .ok_or(ManageError::BadAnswer("has no nonce"))?;
    let body = serde_json::to_string(op).map_err(|e| io(io::Error::other(e)))?;
    // The answer may wait for the partner to apply a change (a reload: a new engine, its
    // tables checked), which can take longer than a step.
    stream.set_read_timeout(Some(ANSWER_TIMEOUT)).map_err(io)?;
    write_json(
        &stream,
        &Signed {
            mac: Some(mac(secret, "client", name, &sn, &cn, &body)),
            body: Some(body),
            error: None,
        },
    )
    .map_err(io)?;
    let reply: Signed = serde_json::from_str(&read_line(&mut reader).map_err(io)?)
        .map_err(|_| ManageError::BadAnswer("is not JSON"))?;
    if let Some(e) = reply.error {
        return Err(ManageError::Refused(e));
    }
    let body = reply.body.ok_or(ManageError::BadAnswer("has no body"))?;
    if !mac_ok(
        &mac(secret, "server", name, &cn, &sn, &body),
        reply.mac.as_deref(),
    ) {
        return Err(ManageError::BadAnswer(
            "failed authentication (another shared secret?)",
        ));
    }
    serde_json::from_str(&body).map_err(|_| ManageError::BadAnswer("is not an answer"))
}

/// The last comparison of one relationship with the partner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Check {
    /// When, Unix seconds (0: never).
    pub at: u64,
    /// `None`: not compared (the partner unreachable, or refusing); else the differences.
    pub differences: Option<Vec<String>>,
    /// Why the last try failed.
    pub error: Option<String>,
    /// New differences found since start.
    pub mismatches: u64,
}

impl Check {
    /// In step, differing, or unknown.
    pub fn outcome(&self) -> ConfigCheck {
        match &self.differences {
            None => ConfigCheck::Unknown,
            Some(d) if d.is_empty() => ConfigCheck::InStep,
            Some(_) => ConfigCheck::Differs,
        }
    }
}

/// Where the comparisons are kept: written by the checker and the listener, read by the
/// status.
#[derive(Debug, Default)]
pub struct Checks {
    by_name: Mutex<BTreeMap<String, Check>>,
    /// Requests refused for a bad MAC or an unknown relationship since start.
    pub refused: AtomicU64,
    last_refusal_log: Mutex<Option<Instant>>,
}

impl Checks {
    /// The last comparison of relationship `name`.
    pub fn get(&self, name: &str) -> Option<Check> {
        self.lock().get(name).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Check>> {
        self.by_name.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, name: &str, found: Result<Vec<String>, String>) {
        let mut all = self.lock();
        let c = all.entry(name.to_owned()).or_default();
        c.at = crate::admin::unix_now();
        match found {
            Ok(d) => {
                if !d.is_empty() && c.differences.as_ref() != Some(&d) {
                    c.mismatches += 1;
                    tracing::warn!(relationship = %name, differences = %d.join("; "), "management: the partner's configuration differs");
                } else if d.is_empty() && c.differences.as_ref().is_some_and(|o| !o.is_empty()) {
                    tracing::info!(relationship = %name, "management: the partner's configuration is in step again");
                }
                c.differences = Some(d);
                c.error = None;
            }
            Err(e) => {
                if c.error.as_ref() != Some(&e) {
                    tracing::info!(relationship = %name, error = %e, "management: cannot compare with the partner");
                }
                c.differences = None;
                c.error = Some(e);
            }
        }
    }

    fn refused(&self, peer: SocketAddr, why: &str) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let mut last = self
            .last_refusal_log
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_none_or(|t| t.elapsed() >= REFUSAL_LOG_EVERY) {
            *last = Some(Instant::now());
            tracing::warn!(%peer, reason = why, refused = self.refused.load(Ordering::Relaxed), "management: request refused");
        }
    }
}

/// Where this server's configuration comes from: the one in force (a reload replaces it).
pub type ConfigSource = Arc<dyn Fn() -> Arc<Config> + Send + Sync>;

/// What puts a partner's scope definitions in force here: they are written into the
/// configuration file and applied live as a reload applies them, or refused whole with the
/// reason (the file as it was). Set by the daemon once its backend exists.
pub type Applier = Box<dyn Fn(&[ScopeDefinition]) -> Result<Vec<String>, String> + Send + Sync>;

/// What the channel's threads share: the configuration in force, the secrets, the
/// comparisons.
struct Ctx {
    config: ConfigSource,
    secrets: BTreeMap<String, Vec<u8>>,
    checks: Arc<Checks>,
    applier: std::sync::OnceLock<Applier>,
}

/// The running channel, as the admin backend holds it: the comparisons and the checker's
/// bell.
pub struct Manage {
    /// The comparisons.
    pub checks: Arc<Checks>,
    poke: crossbeam::channel::Sender<()>,
    ctx: Arc<Ctx>,
}

impl std::fmt::Debug for Manage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manage").finish_non_exhaustive()
    }
}

/// The tandem relationships of `config` (ISC partners have no channel).
fn tandem(config: &Config) -> impl Iterator<Item = &FailoverConfig> {
    config
        .failover
        .iter()
        .filter(|f| f.peer_software == PeerSoftware::Tandem)
}

impl Manage {
    /// Listens on each tandem relationship's `address`:`manage_port` and starts comparing
    /// with each partner. `secrets` are the relationships' shared secrets, by name (read at
    /// start, as the failover link's).
    /// The listeners' threads stop by themselves within 100 ms of the shutdown request; the
    /// caller joins them.
    pub fn start(
        config: ConfigSource,
        secrets: BTreeMap<String, Vec<u8>>,
        shutdown: &Shutdown,
    ) -> io::Result<(Self, Vec<JoinHandle<()>>)> {
        let checks = Arc::new(Checks::default());
        let ctx = Arc::new(Ctx {
            config,
            secrets,
            checks: Arc::clone(&checks),
            applier: std::sync::OnceLock::new(),
        });
        let mut threads = Vec::new();
        let first = (ctx.config)();
        let mut addrs: Vec<SocketAddr> = tandem(&first)
            .map(|f| SocketAddr::new(IpAddr::V4(f.address), f.manage_port))
            .collect();
        addrs.sort_unstable();
        addrs.dedup();
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new().name(name.into()).spawn(f)
        };
        for addr in addrs {
            let listener = TcpListener::bind(addr)
                .map_err(|e| io::Error::new(e.kind(), format!("management channel {addr}: {e}")))?;
            listener.set_nonblocking(true)?;
            tracing::info!(listen = %addr, "management channel listening");
            let (ctx, shutdown) = (Arc::clone(&ctx), shutdown.clone());
            threads.push(spawn(
                "manage-listen",
                Box::new(move || listen(&listener, addr, &ctx, &shutdown)),
            )?);
        }
        // The checker is not joined: a comparison in flight may wait out its time limits,
        // and it holds nothing a shutdown must close (it stops at its next turn).
        let (poke, poked) = crossbeam::channel::bounded(1);
        let shutdown = shutdown.clone();
        let checker = Arc::clone(&ctx);
        spawn(
            "manage-check",
            Box::new(move || check_loop(&checker, &poked, &shutdown)),
        )?;
        Ok((Manage { checks, poke, ctx }, threads))
    }

    /// Compares again now (after a reload).
    pub fn recheck(&self) {
        let _ = self.poke.try_send(());
    }

    /// How a partner's replicated scopes are put in force here (once).
    pub fn set_applier(&self, applier: Applier) {
        let _ = self.ctx.applier.set(applier);
    }

    /// Replicates to the partner of relationship `name` the definitions of `scopes` (all of
    /// the relationship's when empty) as configured here: the partner's replace them, and
    /// its reload applies them live. Returns what the partner applied.
    pub fn replicate(&self, name: &str, scopes: &[String]) -> Result<Vec<String>, String> {
        let config = (self.ctx.config)();
        let f = config
            .failover
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| format!("no such relationship {name:?}"))?;
        if f.peer_software == PeerSoftware::IscDhcpd {
            return Err(format!(
                "relationship {name:?} pairs with ISC dhcpd: its configuration is not tandem's \
                 to write (edit dhcpd.conf; the MCLT and split are still compared)"
            ));
        }
        let members: Vec<&SubnetConfig> = config
            .subnets
            .iter()
            .filter(|s| s.failover.as_deref() == Some(name))
            .collect();
        let mut defs = Vec::new();
        if scopes.is_empty() {
            defs.extend(members.iter().map(|s| ScopeDefinition::of(s)));
        }
        for p in scopes {
            let wanted = crate::config::parse_prefix(p).map_err(|e| format!("scope {p:?}: {e}"))?;
            let s = members
                .iter()
                .find(|s| s.prefix == wanted)
                .ok_or_else(|| format!("scope {p} is not in relationship {name:?} here"))?;
            defs.push(ScopeDefinition::of(s));
        }
        if defs.is_empty() {
            return Err(format!("relationship {name:?} has no scopes to replicate"));
        }
        let secret = self
            .ctx
            .secrets
            .get(name)
            .ok_or_else(|| format!("relationship {name:?} has no shared secret"))?;
        let addr = SocketAddr::new(IpAddr::V4(f.peer_address), f.peer_manage_port);
        let answer = call(addr, name, secret, &Op::Replicate { scopes: defs });
        self.recheck();
        match answer {
            Ok(Answer::Replicated { changes }) => Ok(changes),
            Ok(Answer::Refused { reason }) => Err(format!("the partner refused: {reason}")),
            Ok(Answer::Compared { .. }) => Err("the partner answered another question".into()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// One comparison of `f` with its partner; both ends record it.
fn compare(config: &Config, f: &FailoverConfig, secret: &[u8], checks: &Checks) {
    let Some(ours) = describe(config, &f.name) else {
        return;
    };
    let addr = SocketAddr::new(IpAddr::V4(f.peer_address), f.peer_manage_port);
    let found = match call(
        addr,
        &f.name,
        secret,
        &Op::Compare {
            description: ours.clone(),
        },
    ) {
        Ok(Answer::Compared { description }) => Ok(differences(&ours, &description)),
        Ok(Answer::Refused { reason }) => Err(format!("refused by the partner: {reason}")),
        Ok(Answer::Replicated { .. }) => Err("the partner answered another question".into()),
        Err(e) => Err(e.to_string()),
    };
    checks.record(&f.name, found);
}

fn check_loop(ctx: &Ctx, poked: &crossbeam::channel::Receiver<()>, shutdown: &Shutdown) {
    let mut next = Instant::now();
    let mut due = true;
    while !shutdown.is_requested() {
        if due || Instant::now() >= next {
            let c = (ctx.config)();
            for f in tandem(&c) {
                if shutdown.is_requested() {
                    return;
                }
                if let Some(secret) = ctx.secrets.get(&f.name) {
                    compare(&c, f, secret, &ctx.checks);
                }
            }
            next = Instant::now() + CHECK_EVERY;
        }
        due = poked.recv_timeout(Duration::from_millis(200)).is_ok();
    }
}

fn listen(listener: &TcpListener, addr: SocketAddr, ctx: &Arc<Ctx>, shutdown: &Shutdown) {
    let active = Arc::new(AtomicUsize::new(0));
    while !shutdown.is_requested() {
        match listener.accept() {
            Ok((stream, peer)) => {
                if active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                    ctx.checks.refused(peer, "too many connections");
                    continue;
                }
                active.fetch_add(1, Ordering::Relaxed);
                let (ctx, done) = (Arc::clone(ctx), Arc::clone(&active));
                let spawned = std::thread::Builder::new()
                    .name("manage-conn".into())
                    .spawn(move || {
                        serve(&stream, peer, addr, &ctx);
                        done.fetch_sub(1, Ordering::Relaxed);
                    });
                if spawned.is_err() {
                    active.fetch_sub(1, Ordering::Relaxed);
                    tracing::warn!("management channel: cannot start a connection's thread");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => {
                tracing::warn!(error = %e, "management channel: accept failed");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// The partner's scope definitions, put in force here: only scopes of the relationship
/// here, all or none.
fn replicated(ctx: &Ctx, config: &Config, name: &str, scopes: &[ScopeDefinition]) -> Answer {
    let refuse = |reason: String| {
        tracing::warn!(relationship = %name, %reason, "management: replication refused");
        Answer::Refused { reason }
    };
    for d in scopes {
        let member = crate::config::parse_prefix(&d.prefix)
            .ok()
            .is_some_and(|p| {
                config
                    .subnets
                    .iter()
                    .any(|s| s.prefix == p && s.failover.as_deref() == Some(name))
            });
        if !member {
            return refuse(format!(
                "scope {} is not in relationship {name:?} here (add it to the relationship first)",
                d.prefix
            ));
        }
    }
    let Some(apply) = ctx.applier.get() else {
        return refuse("this server is not ready to apply changes".into());
    };
    match apply(scopes) {
        Ok(changes) => {
            tracing::info!(relationship = %name, scopes = scopes.len(), changes = changes.len(), "management: the partner's scope definitions applied");
            Answer::Replicated { changes }
        }
        Err(e) => refuse(e),
    }
}

/// One connection: the handshake, one request, one answer.
fn serve(stream: &TcpStream, peer: SocketAddr, local: SocketAddr, ctx: &Ctx) {
    let checks = &ctx.checks;
    if stream.set_nonblocking(false).is_err()
        || stream.set_read_timeout(Some(IO_TIMEOUT)).is_err()
        || stream.set_write_timeout(Some(IO_TIMEOUT)).is_err()
    {
        return;
    }
    let mut reader = BufReader::new(stream);
    let refuse = |why: &str, answer: &dyn Fn(String) -> io::Result<()>| {
        checks.refused(peer, why);
        let _ = answer(why.to_owned());
    };
    let Ok(line) = read_line(&mut reader) else {
        return;
    };
    let challenge_error = |e: String| {
        write_json(
            stream,
            &Challenge {
                nonce: None,
                error: Some(e),
            },
        )
    };
    let Ok(hello) = serde_json::from_str::<Hello>(&line) else {
        return refuse("malformed hello", &challenge_error);
    };
    if hello.v != VERSION {
        return refuse(
            &format!(
                "protocol version {} not spoken (this is {VERSION})",
                hello.v
            ),
            &challenge_error,
        );
    }
    let c = (ctx.config)();
    let known = tandem(&c).any(|f| {
        f.name == hello.relationship
            && SocketAddr::new(IpAddr::V4(f.address), f.manage_port) == local
    });
    let Some(secret) = ctx.secrets.get(&hello.relationship).filter(|_| known) else {
        return refuse(
            &format!("no tandem relationship {:?} here", hello.relationship),
            &challenge_error,
        );
    };
    let Ok(sn) = nonce() else { return };
    if write_json(
        stream,
        &Challenge {
            nonce: Some(sn.clone()),
            error: None,
        },
    )
    .is_err()
    {
        return;
    }
    let Ok(line) = read_line(&mut reader) else {
        return;
    };
    let signed_error = |e: String| {
        write_json(
            stream,
            &Signed {
                error: Some(e),
                ..Signed::default()
            },
        )
    };
    let Ok(req) = serde_json::from_str::<Signed>(&line) else {
        return refuse("malformed request", &signed_error);
    };
    let body = req.body.unwrap_or_default();
    let name = &hello.relationship;
    if !mac_ok(
        &mac(secret, "client", name, &sn, &hello.nonce, &body),
        req.mac.as_deref(),
    ) {
        return refuse("authentication failed", &signed_error);
    }
    let answer = match serde_json::from_str::<Op>(&body) {
        Err(e) => Answer::Refused {
            reason: format!("not a request: {e}"),
        },
        Ok(Op::Replicate { scopes }) => replicated(ctx, &c, name, &scopes),
        Ok(Op::Compare { description }) => match describe(&c, name) {
            None => Answer::Refused {
                reason: format!("no relationship {name:?} here"),
            },
            Some(ours) => {
                checks.record(name, Ok(differences(&ours, &description)));
                Answer::Compared { description: ours }
            }
        },
    };
    let Ok(body) = serde_json::to_string(&answer) else {
        return;
    };
    let _ = write_json(
        stream,
        &Signed {
            mac: Some(mac(secret, "server", name, &hello.nonce, &sn, &body)),
            body: Some(body),
            error: None,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[server]
interfaces = ["eth0"]

[[subnet]]
prefix = "10.0.0.0/24"
pools = ["10.0.0.10-10.0.0.99"]
router = ["10.0.0.1"]
failover = "edge"

[[subnet.reservation]]
mac = "02:00:00:00:00:01"
address = "10.0.0.5"

[[failover]]
name = "edge"
role = "primary"
address = "192.0.2.1"
peer_address = "192.0.2.2"
mclt = "30m"
shared_secret_file = "/s"
"#;

    fn described(text: &str) -> Description {
        let c = crate::config::parse(text).expect("valid");
        describe(&c, "edge").expect("edge")
    }

    #[test]
    fn alike_scopes_are_in_step_and_each_differing_key_is_named() {
        let ours = described(CONFIG);
        let mut theirs = described(&CONFIG.replace("primary", "secondary"));
        assert_eq!(differences(&ours, &theirs), Vec::<String>::new());
        // The default T1 written out is the same definition.
        let t1 = described(&CONFIG.replace("primary", "secondary").replace(
            "router = [\"10.0.0.1\"]",
            "router = [\"10.0.0.1\"]\nrenewal_time = \"30m\"",
        ));
        assert_eq!(differences(&ours, &t1), Vec::<String>::new());

        theirs = described(
            &CONFIG
                .replace("primary", "secondary")
                .replace("10.0.0.5", "10.0.0.6")
                .replace("10.0.0.1\"]", "10.0.0.254\"]"),
        );
        assert_eq!(
            differences(&ours, &theirs),
            ["scope 10.0.0.0/24: options, reservations differ"]
        );
        let both_primary = described(CONFIG);
        assert_eq!(
            differences(&ours, &both_primary),
            ["role: both servers are primary"]
        );
        let mut other = described(&CONFIG.replace("primary", "secondary"));
        other.scopes.clear();
        assert_eq!(
            differences(&ours, &other),
            ["scope 10.0.0.0/24: in the relationship here, not on the partner"]
        );
    }

    #[test]
    fn macs_bind_the_secret_the_nonces_and_the_body() {
        let m = mac(b"k", "client", "edge", "s", "c", "{}");
        assert!(mac_ok(&m, Some(&m)));
        assert!(!mac_ok(
            &m,
            Some(&mac(b"other", "client", "edge", "s", "c", "{}"))
        ));
        assert!(!mac_ok(
            &m,
            Some(&mac(b"k", "server", "edge", "s", "c", "{}"))
        ));
        assert!(!mac_ok(
            &m,
            Some(&mac(b"k", "client", "edge", "s2", "c", "{}"))
        ));
        assert!(!mac_ok(
            &m,
            Some(&mac(b"k", "client", "edge", "s", "c", "{ }"))
        ));
        assert!(!mac_ok(&m, None));
    }
}
