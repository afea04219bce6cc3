//! The failover driver: one control-plane thread on mio that runs every `[[failover]]`
//! relationship's [`Session`] over TCP. The session decides everything (which link to keep,
//! when to dial, what to send, what to store; `session`'s module docs hold the rules); the
//! driver only does its I/O:
//!
//! * it listens on `address:port` of each relationship and hands every accepted connection
//!   to the session with the peer's address ([`Session::handle_link_up`]); it dials when
//!   the session asks ([`Event::Dial`]), gives a dial up after [`DIAL_TIMEOUT`] (a peer
//!   whose packets are silently dropped would otherwise hold it in the kernel's SYN
//!   retries for two minutes, and the link would come back up to a minute after the path
//!   heals), and closes what it is told to ([`Event::Close`], after writing what is queued
//!   for that link);
//! * it reads each connection until it would block and hands the read to
//!   [`Session::handle_bytes`] in batches of at most [`READ_BATCH`] bytes (the BNDUPDs of one
//!   batch share one group commit), and writes what [`Session::poll_transmit`] returns; an
//!   end of stream or error is [`Session::handle_link_closed`];
//! * a peer that does not read what it is sent is disconnected once more than
//!   [`unsent_limit`] bytes wait for it (it would otherwise grow our memory without bound
//!   with BNDUPDs whose BNDACKs it never takes);
//! * it drains the workers' [`Outbox`] into [`Session::handle_changed`] (a queue that
//!   overflowed: [`Session::handle_resync`]);
//! * it sleeps until the earliest [`Session::poll_timeout`], then calls
//!   [`Session::handle_timeout`];
//! * after every turn it publishes each relationship's [`RelationshipView`] (the serving
//!   gate) and its [`RelationshipStatus`].
//!
//! Storage is [`Tables`]: the lease store, the control plane's journal (shared by every
//! relationship) and the state file in `data_dir`. A failed commit or state write
//! ([`Event::Failed`]) stops the daemon with status 1.
//!
//! Operators reach the thread through [`Driver`]: status snapshots, and `partner-down`
//! through a crossbeam channel and a mio [`Waker`], answered with the machine's own verdict.
//!
//! Shutdown: the thread's waker is registered with [`Shutdown`]; on request every session
//! goes to SHUTDOWN (told to the peer, draft §9.9), the links are flushed for at most a
//! second and closed. The state stored is the one before SHUTDOWN: SHUTDOWN is not a state
//! to resume, and the peer's reaction (PARTNER-DOWN) decides the way back at the next start
//! (NORMAL in STARTUP facing PARTNER-DOWN goes to RECOVER, ISC `failover.c:2126-2131`).

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant as StdInstant};

use crossbeam::channel::{self, Receiver, Sender};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use lease_mmap::{Store, TableId, WorkerJournal};

use super::fsm::{self, StateKind};
use super::gate::RelationshipView;
use super::replicate::{Outbox, Tables, Wake};
use super::session::{self, Event, LinkId, Origin, Session};
use super::storage::{RecordId, StorageError};
use super::{Instant, Now, Role, UnixTime, persist, pool};
use crate::admin::CommandError;
use crate::config::{self, Config, FailoverConfig, FailoverMode};
use crate::daemon::Shutdown;
use crate::status::{
    ConfigCheck, FailoverState, PartnerSettingsStatus, RelationshipStatus, ResyncStatus,
    StateChange,
};

/// How long shutdown waits for the last words to be written.
const FLUSH_ON_SHUTDOWN: Duration = Duration::from_secs(1);
/// How long an operator command waits for the driver's answer.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a dial may wait for the peer's answer before it is given up and retried after
/// the session's reconnect delay. A peer on a working path answers a SYN in milliseconds;
/// the kernel's own limit (SYN retries, backing off to 64 s) is for the open Internet.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes read from a link before they are handed to the session: a peer that keeps the
/// socket full cannot grow the read buffer past it.
pub const READ_BATCH: usize = 256 * 1024;

/// Bytes that may wait for a peer to read them before its link is dropped: room for a full
/// window of the largest messages (our window is at most our own `max_unacked_updates`,
/// and each BNDUPD answered costs a BNDACK of at most the same size), plus 4 MiB.
pub fn unsent_limit(f: &FailoverConfig) -> usize {
    let window = usize::try_from(f.max_unacked_updates).unwrap_or(usize::MAX);
    window
        .saturating_mul(2 * usize::from(super::msg::MAX_MESSAGE_LEN))
        .saturating_add(4 << 20)
}

/// Token 0 is the waker, `1 + i` relationship `i`'s listener; links count up from there.
const WAKER: Token = Token(0);

enum Command {
    PartnerDown {
        name: String,
        since: u64,
        reply: Sender<Result<u64, CommandError>>,
    },
    Resync {
        name: String,
        reply: Sender<Result<(), CommandError>>,
    },
}

struct Shared {
    commands: Sender<Command>,
    waker: Arc<Waker>,
    status: Mutex<Vec<RelationshipStatus>>,
    /// Turns of the driver's loop (at least one every [`MAX_SLEEP`]): the watchdog's heartbeat.
    turns: Arc<AtomicU64>,
}

/// The longest the driver sleeps without a timer or an event, so that its heartbeat moves.
pub const MAX_SLEEP: Duration = Duration::from_secs(1);

/// The admin side of the driver thread. Cheap to clone.
#[derive(Clone)]
pub struct Driver {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").finish_non_exhaustive()
    }
}

impl Driver {
    /// The driver loop's turn counter (the watchdog's heartbeat).
    pub fn turns(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.shared.turns)
    }

    /// Every relationship as of the driver's last turn, in config order.
    pub fn status(&self) -> Vec<RelationshipStatus> {
        self.shared
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The operator's partner-down for relationship `name`, last known up at `since` (Unix
    /// seconds): the time put in force (no earlier than the partner was last heard from), or
    /// why it could not be done.
    pub fn partner_down(&self, name: &str, since: u64) -> Result<u64, CommandError> {
        let (tx, rx) = channel::bounded(1);
        self.shared
            .commands
            .send(Command::PartnerDown {
                name: name.to_owned(),
                since,
                reply: tx,
            })
            .map_err(|_| CommandError::DriverStopped)?;
        self.shared.waker.wake().map_err(CommandError::Wake)?;
        rx.recv_timeout(COMMAND_TIMEOUT)
            .map_err(|_| CommandError::NoAnswer)?
    }

    /// The operator's resync of relationship `name`: every binding the partner has is asked
    /// for ([`Session::resync`]); the status follows its progress.
    pub fn resync(&self, name: &str) -> Result<(), CommandError> {
        let (tx, rx) = channel::bounded(1);
        self.shared
            .commands
            .send(Command::Resync {
                name: name.to_owned(),
                reply: tx,
            })
            .map_err(|_| CommandError::DriverStopped)?;
        self.shared.waker.wake().map_err(CommandError::Wake)?;
        rx.recv_timeout(COMMAND_TIMEOUT)
            .map_err(|_| CommandError::NoAnswer)?
    }
}

/// A started driver: the admin handle and the thread, joined after shutdown.
pub struct Running {
    pub driver: Driver,
    pub thread: std::thread::JoinHandle<()>,
    /// The workers' outbound queues: hand each worker its
    /// [`super::replicate::WorkerOutbox`].
    pub outbox: Arc<Outbox>,
}

/// What binding replication needs: the lease store, the control plane's own journal in it
/// (recovery replays it like a worker's), the number of workers (one outbound queue each)
/// and, by `TableId`, the relationship (index in config order) each table belongs to.
pub struct Replication {
    pub store: Arc<Store>,
    pub journal: WorkerJournal,
    pub workers: usize,
    pub table_rel: Vec<Option<usize>>,
}

/// Why a `[[failover]]` section does not make the machine's settings ([`fsm_config`]). The
/// text names the step; the cause is the [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
pub enum FsmConfigError {
    #[error("reading shared_secret_file {}", path.display())]
    Secret {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading /dev/urandom")]
    Random(#[source] io::Error),
    #[error("failover relationship {name:?}")]
    Invalid {
        name: String,
        #[source]
        source: fsm::ConfigError,
    },
}

/// Why the driver did not start ([`start`]). The text names the
/// step; the cause is the [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("failover: mio poll")]
    Poll(#[source] io::Error),
    #[error("failover: waker")]
    Waker(#[source] io::Error),
    #[error(transparent)]
    Config(#[from] FsmConfigError),
    #[error(transparent)]
    Persist(#[from] persist::PersistError),
    #[error("failover {name:?}: storing the state")]
    Store {
        name: String,
        #[source]
        source: StorageError,
    },
    #[error("failover {name:?}: listening on {addr}")]
    Listen {
        name: String,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("failover: register listener")]
    Register(#[source] io::Error),
    #[error("failover: spawning the driver thread")]
    Spawn(#[source] io::Error),
}

/// The machine's settings from a `[[failover]]` section (the shared secret file is read
/// here).
pub fn fsm_config(f: &FailoverConfig) -> Result<fsm::Config, FsmConfigError> {
    let role = match f.role {
        config::Role::Primary => Role::Primary,
        config::Role::Secondary => Role::Secondary,
    };
    let mut c = fsm::Config::new(&f.name, role);
    c.mclt = f.mclt;
    c.mclt_configured = f.mclt_set;
    // In hot standby the primary is the active server (ISC `split 256`).
    c.hba = super::consistency::configured_hba(f);
    c.max_response_delay = f.max_response_delay;
    c.max_unacked_updates = f.max_unacked_updates;
    c.auto_partner_down = (f.auto_partner_down > 0).then_some(f.auto_partner_down);
    if let Some(path) = &f.shared_secret_file {
        c.shared_secret = Some(read_secret(path)?);
        c.nonce_seed = random_seed()?;
    }
    c.validate().map_err(|source| FsmConfigError::Invalid {
        name: f.name.clone(),
        source,
    })?;
    Ok(c)
}

/// 32 bytes from the kernel's random source, for the links' nonces.
fn random_seed() -> Result<[u8; 32], FsmConfigError> {
    let mut seed = [0; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .map_err(FsmConfigError::Random)?;
    Ok(seed)
}

/// A shared secret file's bytes, without a trailing newline.
pub fn read_secret(path: &Path) -> Result<Vec<u8>, FsmConfigError> {
    let mut s = std::fs::read(path).map_err(|source| FsmConfigError::Secret {
        path: path.to_owned(),
        source,
    })?;
    while s.last().is_some_and(|b| matches!(b, b'\n' | b'\r')) {
        s.pop();
    }
    Ok(s)
}

fn failover_state(s: StateKind) -> FailoverState {
    match s {
        StateKind::Startup => FailoverState::Startup,
        StateKind::Normal => FailoverState::Normal,
        StateKind::CommunicationsInterrupted => FailoverState::CommunicationsInterrupted,
        StateKind::PartnerDown => FailoverState::PartnerDown,
        StateKind::PotentialConflict => FailoverState::PotentialConflict,
        StateKind::ResolutionInterrupted => FailoverState::ResolutionInterrupted,
        StateKind::ConflictDone => FailoverState::ConflictDone,
        StateKind::Recover => FailoverState::Recover,
        StateKind::RecoverWait => FailoverState::RecoverWait,
        StateKind::RecoverDone => FailoverState::RecoverDone,
        StateKind::Paused => FailoverState::Paused,
        StateKind::Shutdown => FailoverState::Shutdown,
    }
}

/// A TCP connection of a relationship: dialling, or handed to its session.
struct Conn {
    rel: usize,
    stream: TcpStream,
    /// Bytes polled from the session, not yet written.
    out: Vec<u8>,
    /// Our dial, not yet through.
    connecting: bool,
    /// When the connection was dialled or accepted.
    since: StdInstant,
}

struct Rel {
    cfg: FailoverConfig,
    /// The relationship's protocol, link choice and replication ([`Session`]).
    session: Session<Tables>,
    view: Arc<RelationshipView>,
    listener: TcpListener,
    /// Dials given up since the link was last up (the first is logged at info).
    dials_timed_out: u64,
    /// The link as last published: up or not, and since when (Unix seconds; 0: since start).
    link: (bool, u64),
    /// The last [`HISTORY`] state changes, ours and the partner's, oldest first.
    history: VecDeque<StateChange>,
    /// The partner's settings compared with ours.
    check: SettingsCheck,
}

/// The last comparison of the partner's settings with ours
/// ([`super::consistency::differences`]), redone when it shows them again.
#[derive(Default)]
struct SettingsCheck {
    /// When the settings compared were received (`None`: never).
    at: Option<UnixTime>,
    /// `None`: nothing comparable; `Some(empty)`: in step.
    differences: Option<Vec<String>>,
    /// New differences found since start.
    mismatches: u64,
}

impl SettingsCheck {
    /// Compares what the partner showed last, if it is new; a new difference is logged once.
    fn update(&mut self, cfg: &FailoverConfig, shown: Option<&fsm::PartnerSettings>) {
        let Some(p) = shown else { return };
        if self.at == Some(p.at) {
            return;
        }
        self.at = Some(p.at);
        let found = super::consistency::differences(cfg, p);
        if let Some(d) = found.as_ref().filter(|d| !d.is_empty())
            && self.differences.as_ref() != Some(d)
        {
            self.mismatches += 1;
            tracing::warn!(relationship = %cfg.name, differences = %d.join("; "), "failover: the partner is configured otherwise (the primary's MCLT and split are in force)");
        }
        self.differences = found;
    }

    fn status(&self) -> ConfigCheck {
        match &self.differences {
            None => ConfigCheck::Unknown,
            Some(d) if d.is_empty() => ConfigCheck::InStep,
            Some(_) => ConfigCheck::Differs,
        }
    }
}

/// State changes kept per relationship for the status page's timeline.
pub const HISTORY: usize = 64;

struct Loop {
    poll: Poll,
    rels: Vec<Rel>,
    conns: HashMap<LinkId, Conn>,
    next_link: u64,
    origin: StdInstant,
    commands: Receiver<Command>,
    shared: Arc<Shared>,
    outbox: Arc<Outbox>,
    /// By `TableId`: the relationship (index in config order) the table belongs to.
    table_rel: Vec<Option<usize>>,
    shutdown: Shutdown,
    /// Read buffer, reused.
    inbuf: Vec<u8>,
}

/// The session's settings from a `[[failover]]` section of `config` (the shared secret file
/// is read here).
pub fn session_config(
    config: &Config,
    f: &FailoverConfig,
) -> Result<session::Config, FsmConfigError> {
    let longest_lease = config
        .subnets
        .iter()
        .filter(|s| s.failover.as_deref() == Some(&f.name[..]))
        .map(|s| s.lease_time)
        .max()
        .unwrap_or(0);
    Ok(session::Config {
        fsm: fsm_config(f)?,
        share: match f.mode {
            FailoverMode::LoadBalance => pool::Share::Half,
            FailoverMode::HotStandby => pool::Share::reserve(f.reserve_percent),
        },
        peer: f.peer_address,
        max_lease_time: f.max_lease_time.unwrap_or(longest_lease),
    })
}

/// Starts the driver thread for every relationship of `config`, publishing into `views`
/// (one per `[[failover]]`, from [`super::gate::Gate::new`]). Loads each relationship's
/// stored state (a corrupt file is an error), binds the listeners (an address that cannot
/// be bound is an error) and registers with `shutdown`.
pub fn start(
    config: &Config,
    views: Vec<Arc<RelationshipView>>,
    replication: Replication,
    shutdown: &Shutdown,
) -> Result<Running, StartError> {
    let poll = Poll::new().map_err(StartError::Poll)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(StartError::Waker)?);
    let origin = StdInstant::now();
    let now = Now {
        instant: Instant::ZERO,
        wall: UnixTime::now(),
    };
    let data_dir = config.server.data_dir.clone();
    let journal = Arc::new(Mutex::new(replication.journal));
    let mut rels = Vec::with_capacity(config.failover.len());
    for (i, (f, view)) in config.failover.iter().zip(views).enumerate() {
        let sc = session_config(config, f)?;
        let stored = persist::load(&data_dir, &f.name)?;
        match &stored {
            Some(s) => tracing::info!(
                relationship = %f.name,
                state = s.my_state.name(),
                since = s.my_stos.0,
                "failover: stored state loaded"
            ),
            None => {
                tracing::info!(relationship = %f.name, "failover: new relationship, starting in recover")
            }
        }
        let ids = (0..replication.table_rel.len())
            .filter(|&t| replication.table_rel[t] == Some(i))
            .map(|t| TableId(u16::try_from(t).unwrap_or(u16::MAX)))
            .collect();
        let tables = Tables::new(
            Arc::clone(&replication.store),
            Arc::clone(&journal),
            ids,
            data_dir.clone(),
            &f.name,
        );
        let session =
            Session::new(sc, stored, now, tables).map_err(|source| StartError::Store {
                name: f.name.clone(),
                source,
            })?;
        let addr = SocketAddr::new(IpAddr::V4(f.address), f.port);
        let mut listener = TcpListener::bind(addr).map_err(|source| StartError::Listen {
            name: f.name.clone(),
            addr,
            source,
        })?;
        poll.registry()
            .register(&mut listener, Token(1 + i), Interest::READABLE)
            .map_err(StartError::Register)?;
        tracing::info!(relationship = %f.name, listen = %addr, peer = %SocketAddr::new(IpAddr::V4(f.peer_address), f.peer_port), role = f.role.as_str(), "failover: relationship configured");
        view.publish(session.fsm());
        rels.push(Rel {
            cfg: f.clone(),
            session,
            view,
            listener,
            dials_timed_out: 0,
            link: (false, 0),
            history: VecDeque::with_capacity(HISTORY),
            check: SettingsCheck::default(),
        });
    }
    let replicated = replication.table_rel.iter().map(Option::is_some).collect();
    let wake: Wake = {
        let waker = Arc::clone(&waker);
        Arc::new(move || {
            if let Err(e) = waker.wake() {
                tracing::warn!(error = %e, "failover: cannot wake the driver");
            }
        })
    };
    let outbox = Arc::new(Outbox::new(replication.workers, replicated, wake));
    let (tx, rx) = channel::unbounded();
    let shared = Arc::new(Shared {
        commands: tx,
        waker: Arc::clone(&waker),
        status: Mutex::new(Vec::new()),
        turns: Arc::new(AtomicU64::new(0)),
    });
    let next_link = 1 + rels.len() as u64;
    let mut lp = Loop {
        poll,
        rels,
        conns: HashMap::new(),
        next_link,
        origin,
        commands: rx,
        shared: Arc::clone(&shared),
        outbox: Arc::clone(&outbox),
        table_rel: replication.table_rel,
        shutdown: shutdown.clone(),
        inbuf: Vec::new(),
    };
    lp.publish_status();
    shutdown.register_waker(waker);
    let thread = std::thread::Builder::new()
        .name("failover".into())
        .spawn(move || lp.run())
        .map_err(StartError::Spawn)?;
    Ok(Running {
        driver: Driver { shared },
        thread,
        outbox,
    })
}

impl Loop {
    fn now(&self) -> Now {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        Now {
            instant: Instant::from_millis(ms),
            wall: UnixTime::now(),
        }
    }

    fn run(mut self) {
        let mut events = Events::with_capacity(64);
        loop {
            if self.shutdown.is_requested() {
                self.stop();
                return;
            }
            self.shared.turns.fetch_add(1, Ordering::Relaxed);
            let timeout = self
                .rels
                .iter()
                .filter_map(|r| r.session.poll_timeout())
                .map(|t| self.origin + Duration::from_millis(t.as_millis()))
                .chain(
                    self.conns
                        .values()
                        .filter(|c| c.connecting)
                        .map(|c| c.since + DIAL_TIMEOUT),
                )
                .min()
                .map_or(MAX_SLEEP, |at| {
                    at.saturating_duration_since(StdInstant::now())
                        .clamp(Duration::from_millis(1), MAX_SLEEP)
                });
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != io::ErrorKind::Interrupted
            {
                tracing::error!(error = %e, "failover: poll failed; driver stops");
                return;
            }
            for ev in events.iter() {
                match ev.token().0 {
                    0 => {}
                    t if t <= self.rels.len() => self.accept(t - 1),
                    t => self.on_conn(LinkId(t as u64)),
                }
            }
            self.give_up_dials();
            self.drain_outbox();
            while let Ok(cmd) = self.commands.try_recv() {
                self.command(cmd);
            }
            for i in 0..self.rels.len() {
                let now = self.now();
                self.rels[i].session.handle_timeout(now);
                self.process(i);
            }
            self.publish_status();
        }
    }

    /// Hands what the workers committed to the sessions of their relationships.
    fn drain_outbox(&mut self) {
        let mut changed: Vec<Vec<RecordId>> = vec![Vec::new(); self.rels.len()];
        let mut resync = Vec::new();
        let table_rel = &self.table_rel;
        self.outbox.drain(
            |t, s| {
                if let Some(Some(r)) = table_rel.get(usize::from(t.0))
                    && let Some(c) = changed.get_mut(*r)
                {
                    c.push((t, s));
                }
            },
            |t| resync.push(t),
        );
        let now = self.now();
        for (i, recs) in changed.iter().enumerate() {
            if !recs.is_empty() {
                self.rels[i].session.handle_changed(now, recs);
            }
        }
        for t in resync {
            if let Some(Some(i)) = self.table_rel.get(usize::from(t.0)).copied() {
                tracing::info!(
                    table = t.0,
                    "failover: a worker queue overflowed; scanning the table"
                );
                self.rels[i].session.handle_resync(now, t);
            }
        }
    }

    fn register(&mut self, rel: usize, mut stream: TcpStream, connecting: bool) -> Option<LinkId> {
        let id = LinkId(self.next_link);
        self.next_link += 1;
        let token = Token(usize::try_from(id.0).unwrap_or(usize::MAX));
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            tracing::warn!(relationship = %self.rels[rel].cfg.name, error = %e, "failover: register link");
            return None;
        }
        let _ = stream.set_nodelay(true);
        self.conns.insert(
            id,
            Conn {
                rel,
                stream,
                out: Vec::new(),
                connecting,
                since: StdInstant::now(),
            },
        );
        Some(id)
    }

    fn drop_conn(&mut self, id: LinkId) -> Option<Conn> {
        let mut c = self.conns.remove(&id)?;
        let _ = self.poll.registry().deregister(&mut c.stream);
        Some(c)
    }

    fn dial(&mut self, i: usize) {
        let now = self.now();
        let rel = &self.rels[i];
        let peer = SocketAddr::new(IpAddr::V4(rel.cfg.peer_address), rel.cfg.peer_port);
        match TcpStream::connect(peer) {
            Ok(s) => {
                tracing::debug!(relationship = %rel.cfg.name, %peer, "failover: connecting");
                if self.register(i, s, true).is_none() {
                    self.rels[i].session.handle_dial_failed(now);
                }
            }
            Err(e) => {
                tracing::debug!(relationship = %rel.cfg.name, %peer, error = %e, "failover: connect failed");
                self.rels[i].session.handle_dial_failed(now);
            }
        }
    }

    /// Dials that waited [`DIAL_TIMEOUT`] without an answer: closed, and failed to their
    /// session (which dials again after its reconnect delay).
    fn give_up_dials(&mut self) {
        let late: Vec<LinkId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.connecting && c.since.elapsed() >= DIAL_TIMEOUT)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            let Some(c) = self.drop_conn(id) else {
                continue;
            };
            let i = c.rel;
            let rel = &mut self.rels[i];
            rel.dials_timed_out += 1;
            if rel.dials_timed_out == 1 {
                tracing::info!(relationship = %rel.cfg.name, peer = %rel.cfg.peer_address,
                    timeout_s = DIAL_TIMEOUT.as_secs(),
                    retry_every_s = (DIAL_TIMEOUT + session::RECONNECT_AFTER).as_secs(),
                    "failover: connect timed out (no answer from the peer); retrying");
            } else {
                tracing::debug!(relationship = %rel.cfg.name, timed_out = rel.dials_timed_out, "failover: connect timed out");
            }
            let now = self.now();
            self.rels[i].session.handle_dial_failed(now);
            self.process(i);
        }
    }

    fn accept(&mut self, i: usize) {
        loop {
            let (s, peer) = match self.rels[i].listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(relationship = %self.rels[i].cfg.name, error = %e, "failover: accept");
                    return;
                }
            };
            let from = v4(peer.ip());
            if let Some(id) = self.register(i, s, false) {
                let now = self.now();
                self.link_up(i, now, id, Origin::Accepted, from);
            }
        }
    }

    /// A link to relationship `i`'s peer is up (accepted, or a dial answered): the session
    /// takes it, and dial time-outs are counted afresh.
    fn link_up(&mut self, i: usize, now: Now, id: LinkId, origin: Origin, from: Ipv4Addr) {
        self.rels[i].dials_timed_out = 0;
        self.rels[i].session.handle_link_up(now, id, origin, from);
        self.process(i);
    }

    /// Readiness on a connection: a dial that finished, or bytes to read and room to write.
    fn on_conn(&mut self, id: LinkId) {
        let now = self.now();
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let i = c.rel;
        if c.connecting {
            let failed = match c.stream.take_error() {
                Ok(Some(e)) | Err(e) => Some(e),
                Ok(None) => None,
            };
            match (failed, c.stream.peer_addr()) {
                (None, Ok(peer)) => {
                    c.connecting = false;
                    self.link_up(i, now, id, Origin::Dialed, v4(peer.ip()));
                    // Bytes may have come with the same (edge-triggered) wake-up: read on.
                }
                // Still connecting (a spurious wake-up).
                (None, Err(e)) if e.kind() == io::ErrorKind::NotConnected => return,
                (Some(e), _) | (None, Err(e)) => {
                    tracing::debug!(relationship = %self.rels[i].cfg.name, error = %e, "failover: connect failed; retry in 5 s");
                    self.drop_conn(id);
                    self.rels[i].session.handle_dial_failed(now);
                    self.process(i);
                    return;
                }
            }
        }
        // The session may have closed the link meanwhile (not needed).
        if !self.conns.contains_key(&id) {
            return;
        }
        let mut buf = [0u8; 8192];
        let mut closed: Option<String> = None;
        // Edge-triggered: read until the socket would block, handing the session a batch
        // at a time (one commit per batch).
        loop {
            self.inbuf.clear();
            let mut drained = false;
            while self.inbuf.len() < READ_BATCH {
                let Some(c) = self.conns.get_mut(&id) else {
                    // The session let the link go while handling the last batch.
                    return self.process(i);
                };
                match c.stream.read(&mut buf) {
                    Ok(0) => {
                        closed = Some("closed by the peer".into());
                        break;
                    }
                    Ok(n) => self.inbuf.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        drained = true;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        closed = Some(e.to_string());
                        break;
                    }
                }
            }
            if !self.inbuf.is_empty() {
                let bytes = std::mem::take(&mut self.inbuf);
                self.rels[i].session.handle_bytes(now, id, &bytes);
                self.inbuf = bytes;
                // Answers go out (or the link is dropped for not reading them) before the
                // next batch is read.
                self.process(i);
            }
            if drained || closed.is_some() {
                break;
            }
        }
        if let Some(why) = closed {
            self.drop_conn(id);
            self.rels[i].session.handle_link_closed(now, id, &why);
        }
        self.process(i);
    }

    /// Carries out what session `i` asks: transmits into the links' buffers, dials, closes;
    /// then writes, and publishes the serving gate.
    fn process(&mut self, i: usize) {
        loop {
            let mut moved = false;
            while let Some((link, t)) = self.rels[i].session.poll_transmit() {
                moved = true;
                tracing::trace!(relationship = %self.rels[i].cfg.name, msg = t.msg_type.name(), "failover: send");
                if let Some(c) = self.conns.get_mut(&link) {
                    c.out.extend_from_slice(&t.bytes);
                }
            }
            while let Some(e) = self.rels[i].session.poll_event() {
                moved = true;
                self.event(i, e);
            }
            let now = self.now();
            let ids: Vec<LinkId> = self
                .conns
                .iter()
                .filter(|(_, c)| c.rel == i && !c.out.is_empty())
                .map(|(id, _)| *id)
                .collect();
            let limit = unsent_limit(&self.rels[i].cfg);
            for id in ids {
                let Some(c) = self.conns.get_mut(&id) else {
                    continue;
                };
                let why = match flush(c) {
                    Err(e) => e.to_string(),
                    Ok(()) if c.out.len() > limit => {
                        tracing::warn!(relationship = %self.rels[i].cfg.name, unsent = c.out.len(),
                            "failover: the peer does not read what it is sent; link dropped");
                        format!("the peer left {} bytes unread", c.out.len())
                    }
                    Ok(()) => continue,
                };
                moved = true;
                self.drop_conn(id);
                self.rels[i].session.handle_link_closed(now, id, &why);
            }
            if !moved {
                break;
            }
        }
        let rel = &self.rels[i];
        rel.view.publish(rel.session.fsm());
    }

    fn event(&mut self, i: usize, e: Event) {
        let name = &self.rels[i].cfg.name;
        match e {
            Event::Dial => self.dial(i),
            Event::Close { link, cause } => {
                tracing::debug!(relationship = %name, link = link.0, ?cause, "failover: link closed");
                if let Some(mut c) = self.drop_conn(link) {
                    let _ = flush(&mut c);
                    let _ = c.stream.shutdown(std::net::Shutdown::Both);
                }
            }
            Event::Failed(_) => {
                // Logged by the session: nothing more is acknowledged, and the daemon stops
                // with status 1, without a checkpoint (as after a worker's failed commit).
                self.shutdown.fail();
            }
            Event::Fsm(e) => {
                let change = match &e {
                    fsm::Event::StateChanged { from, to, at } => Some(StateChange {
                        at: u64::from(at.0),
                        partner: false,
                        from: failover_state(*from),
                        to: failover_state(*to),
                    }),
                    fsm::Event::PartnerStateChanged { from, to, .. } => Some(StateChange {
                        at: u64::from(UnixTime::now().0),
                        partner: true,
                        from: from.map_or(FailoverState::Unknown, failover_state),
                        to: failover_state(*to),
                    }),
                    _ => None,
                };
                log_event(name, e);
                // (A partner's STATE that repeats its state, with the startup flag changed,
                // is not a change of state.)
                if let Some(c) = change.filter(|c| c.from != c.to) {
                    let h = &mut self.rels[i].history;
                    if h.len() == HISTORY {
                        h.pop_front();
                    }
                    h.push_back(c);
                }
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::PartnerDown { name, since, reply } => {
                let answer = match self.rels.iter().position(|r| r.cfg.name == name) {
                    None => Err(CommandError::NoSuchRelationship(name.clone())),
                    Some(i) => {
                        let now = self.now();
                        let since = UnixTime(u32::try_from(since).unwrap_or(u32::MAX));
                        let r = self.rels[i].session.partner_down(now, since);
                        self.process(i);
                        match r {
                            Ok(in_force) => {
                                tracing::info!(relationship = %name, asked = since.0, since = in_force.0, "failover: partner down (operator)");
                                Ok(u64::from(in_force.0))
                            }
                            Err(e) => Err(e.into()),
                        }
                    }
                };
                let _ = reply.send(answer);
            }
            Command::Resync { name, reply } => {
                let answer = match self.rels.iter().position(|r| r.cfg.name == name) {
                    None => Err(CommandError::NoSuchRelationship(name.clone())),
                    Some(i) => {
                        let now = self.now();
                        let r = self.rels[i].session.resync(now);
                        self.process(i);
                        r.map_err(CommandError::from)
                    }
                };
                let _ = reply.send(answer);
            }
        }
    }

    fn publish_status(&mut self) {
        let wall = UnixTime::now();
        for r in &mut self.rels {
            let up = r.session.fsm().is_connected();
            if up != r.link.0 {
                r.link = (up, u64::from(wall.0));
            }
            r.check.update(&r.cfg, r.session.fsm().partner_settings());
        }
        let v: Vec<RelationshipStatus> = self
            .rels
            .iter()
            .map(|r| {
                let fsm = r.session.fsm();
                let c = r.session.counters();
                RelationshipStatus {
                    name: r.cfg.name.clone(),
                    role: r.cfg.role,
                    mode: r.cfg.mode,
                    state: failover_state(fsm.kind()),
                    partner_state: fsm
                        .partner_state()
                        .map_or(FailoverState::Unknown, failover_state),
                    state_since: u64::from(fsm.stos().0),
                    unacked_updates: c.unacked,
                    updates_sent: c.sent,
                    update_messages: c.messages,
                    updates_refused: c.refused,
                    updates_received: c.received,
                    resync: r.session.resync_progress().map(|p| ResyncStatus {
                        asked: u64::from(p.asked.0),
                        bindings: p.received,
                        progress: match p.progress {
                            session::ResyncProgress::Running => "running",
                            session::ResyncProgress::Done(_) => "done",
                            session::ResyncProgress::Interrupted(_) => "interrupted",
                        }
                        .to_owned(),
                        ended: match p.progress {
                            session::ResyncProgress::Running => None,
                            session::ResyncProgress::Done(t)
                            | session::ResyncProgress::Interrupted(t) => Some(u64::from(t.0)),
                        },
                    }),
                    link_up: r.link.0,
                    link_since: r.link.1,
                    last_heard: u64::from(fsm.last_heard().0),
                    bndupd_rtt_ms: c.round_trip.into(),
                    history: r.history.iter().copied().collect(),
                    mclt: fsm.mclt(),
                    primary_buckets: fsm.hba().primary_buckets(),
                    partner_settings: fsm.partner_settings().map(|p| PartnerSettingsStatus {
                        at: u64::from(p.at.0),
                        mclt: p.mclt,
                        primary_buckets: p.hba.map(|h| h.primary_buckets()),
                        max_unacked_updates: p.max_unacked,
                        max_response_delay: p.receive_timer,
                        software: p.vendor_class.clone(),
                    }),
                    config_check: r.check.status(),
                    config_differences: r.check.differences.clone().unwrap_or_default(),
                    config_mismatches: r.check.mismatches,
                    scopes_check: ConfigCheck::Unknown,
                    scope_differences: Vec::new(),
                    scopes_checked: 0,
                    scopes_check_error: None,
                    scope_mismatches: 0,
                }
            })
            .collect();
        *self
            .shared
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = v;
    }

    /// Orderly stop: SHUTDOWN to every peer, flush, close.
    fn stop(&mut self) {
        let now = self.now();
        for i in 0..self.rels.len() {
            self.rels[i].session.shutdown(now);
            self.process(i);
        }
        let until = StdInstant::now() + FLUSH_ON_SHUTDOWN;
        while StdInstant::now() < until
            && self
                .conns
                .values_mut()
                .any(|c| !c.out.is_empty() && flush(c).is_ok() && !c.out.is_empty())
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        for (_, c) in self.conns.drain() {
            let _ = c.stream.shutdown(std::net::Shutdown::Both);
        }
        self.publish_status();
        tracing::info!("failover: driver stopped");
    }
}

/// The machine's events, in the log (state changes at info).
/// A peer's IPv4 address (links are IPv4; anything else matches no peer).
fn v4(ip: IpAddr) -> Ipv4Addr {
    match ip {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    }
}

fn log_event(name: &str, e: fsm::Event) {
    match e {
        fsm::Event::StateChanged { from, to, at } => {
            tracing::info!(relationship = %name, from = from.name(), to = to.name(), at = at.0, "failover: state changed");
        }
        fsm::Event::PartnerStateChanged { from, to, startup } => {
            tracing::info!(relationship = %name, from = from.map_or("unknown", |s| s.name()), to = to.name(), startup, "failover: partner state changed");
        }
        fsm::Event::Connected => {
            tracing::info!(relationship = %name, "failover: connected (CONNECT/CONNECTACK done)");
        }
        fsm::Event::RejectedByPeer { reason, message } => {
            tracing::warn!(relationship = %name, ?reason, message = message.as_deref().unwrap_or(""), "failover: refused by the peer");
        }
        fsm::Event::PoolResponse { addresses } => {
            tracing::info!(relationship = %name, addresses, "failover: the partner rebalanced");
        }
        fsm::Event::UpdateRequest { .. } | fsm::Event::PoolRequest { .. } => {}
        other => tracing::debug!(relationship = %name, event = ?other, "failover: event"),
    }
}

/// Writes as much of `c.out` as the socket takes.
fn flush(c: &mut Conn) -> io::Result<()> {
    while !c.out.is_empty() {
        match c.stream.write(&c.out) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                c.out.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
