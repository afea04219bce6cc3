//! The failover driver: one control-plane thread on mio that runs every `[[failover]]`
//! relationship's [`Fsm`] over its TCP peer link.
//!
//! Per relationship, as ISC dhcpd does (`reference/failover-protocol.md` §1.1):
//! * it listens on `address:port` and accepts only connections from `peer_address`;
//! * it connects to `peer_address:peer_port` whenever it has no link, and again 5 s after a
//!   link drops or a connect fails;
//! * at most one link is handed to the machine. When both sides' connects cross, the primary
//!   keeps the link it has and refuses the other; a secondary whose link is not yet through
//!   CONNECT/CONNECTACK takes the primary's incoming link instead of its own, so the two
//!   converge on one link. A link that arrives while one is established is refused (closed),
//!   as ISC refuses a duplicate.
//!
//! Bytes are cut into messages with [`StreamDecoder`] and fed to [`Fsm::handle_frame`]; what
//! [`Fsm::poll_transmit`] returns is written; [`Fsm::poll_timeout`] sets the poll timeout;
//! [`Fsm::poll_event`]s are logged (state changes at info) and acted on: every
//! [`Event::Persist`] is stored ([`super::persist`]) before anything polled after it is
//! written. After every turn the relationship's [`RelationshipView`] (the serving gate) and
//! its [`RelationshipStatus`] are published.
//!
//! Operators reach the thread through [`Driver`]: status snapshots, and `partner-down`
//! through a crossbeam channel and a mio [`Waker`], answered with the machine's own verdict.
//!
//! Shutdown: the thread's waker is registered with [`Shutdown`]; on request every machine
//! goes to SHUTDOWN (told to the peer, draft §9.9), the links are flushed for at most a
//! second and closed. The state stored is the one before SHUTDOWN: SHUTDOWN is not a state
//! to resume, and the peer's reaction (PARTNER-DOWN) decides the way back at the next start
//! (NORMAL in STARTUP facing PARTNER-DOWN goes to RECOVER, ISC `failover.c:2126-2131`).
//!
//! Binding replication ([`start_replicating`], what the daemon runs; [`super::replicate`]
//! holds the rules and the queues):
//! * **Received BNDUPDs** are checked as ISC checks them ([`super::binding::Binding::from_options`]), located in
//!   the relationship's tables (an address in none of them: reject 1, "IP address not in
//!   pool"), judged against our record ([`super::replicate::judge`]: dueling updates, then
//!   ISC's NORMAL or conflict-state transition checks; refusals use the draft's reasons),
//!   written by CAS and journaled in the control plane's own journal of the [`Store`]. All
//!   the BNDUPDs of one read from the socket share one group commit (one fdatasync), and
//!   their BNDACKs are sent only after it; a failed commit sends none and stops the daemon.
//! * **Outbound:** the workers report every change they commit through a bounded lock-free
//!   queue each ([`super::replicate::WorkerOutbox`], waking this thread at most once per
//!   turn); a full queue raises a per-table flag answered by a scan for `tstp > atsfp`. The
//!   addresses wait, each once, in the relationship's send queue; the record is read when
//!   its BNDUPD is built (the latest state wins). Toward ISC one binding per BNDUPD; toward
//!   a tandem peer (its vendor class, [`Fsm::partner_batches`]) as many as fit in one
//!   2048-byte message ([`super::msg::BindingBatch`]), answered by one BNDACK naming each.
//!   At most the peer's max-unacked-bndupd messages are in flight, only in NORMAL or while
//!   answering an update request. Everything queued in one turn leaves in one write.
//! * **BNDACK:** accepted, `atsfp` and `tsfp` of the record become the potential expiry we
//!   sent (CAS; not journaled: losing it only means sending again); refused, it is logged
//!   with the reason and counted.
//! * **Nothing lost across a link drop:** at start and on every (re)connection every record
//!   with `tstp > atsfp` is queued again, as are the updates that were in flight. The
//!   peer's UPDREQ is answered with those, its UPDREQALL with every binding not FREE, then
//!   UPDDONE once all are acknowledged.
//! * **Pool balancing** ([`super::pool`]), in NORMAL only: on entering it, on the peer's
//!   POOLREQ (answered with the count moved) and on ISC's schedule, each relationship's
//!   tables are counted and the addresses to give away (FREE → BACKUP from the primary,
//!   surplus BACKUP → FREE from the secondary) are written with
//!   [`Replicator::write_record`], committed once for the run, and queued as BNDUPDs. A
//!   side short by more than twice the misbalance threshold sends POOLREQ.
//!
//! Without replication ([`start`]), BNDUPDs are refused (reject 6), an update request is
//! answered from the [`BindingSource`], and pools are not balanced (POOLREQ answers 0).

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant as StdInstant};

use crossbeam::channel::{self, Receiver, Sender};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use lease_mmap::{Store, WorkerJournal};

use super::fsm::{self, Event, Fsm, StateKind};
use super::gate::RelationshipView;
use super::hash::Hba;
use super::msg::{MessageType, Repr, StreamDecoder};
use super::replicate::{Outbox, Replicator};
use super::session::Session;
use super::{Instant, Now, Role, UnixTime, persist};
use crate::admin::PartnerDownError;
use crate::config::{self, Config, FailoverConfig, FailoverMode};
use crate::daemon::Shutdown;
use crate::status::{FailoverState, RelationshipStatus};

/// Wait after a link drops or a connect fails before dialling again (`failover.c:361-370`).
pub const RECONNECT_AFTER: Duration = Duration::from_secs(5);
/// How long shutdown waits for the last words to be written.
const FLUSH_ON_SHUTDOWN: Duration = Duration::from_secs(1);
/// How long an operator command waits for the driver's answer.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

const WAKER: Token = Token(0);
/// How long a refused second link may take to send its CONNECT (ISC's startup timer).
const REFUSE_WITHIN: Duration = Duration::from_secs(15);
/// Second links answered at once at most; more are closed without an answer.
const MAX_REFUSALS: usize = 4;
/// How often refused links are looked at (they are not registered with the poll).
const REFUSAL_TICK: Duration = Duration::from_millis(100);
const PER_REL: usize = 3;

pub use super::session::BindingSource;

enum Command {
    PartnerDown {
        name: String,
        since: u64,
        reply: Sender<Result<(), PartnerDownError>>,
    },
}

struct Shared {
    commands: Sender<Command>,
    waker: Arc<Waker>,
    status: Mutex<Vec<RelationshipStatus>>,
}

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
    /// Every relationship as of the driver's last turn, in config order.
    pub fn status(&self) -> Vec<RelationshipStatus> {
        self.shared
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The operator's partner-down for relationship `name`, last known up at `since` (Unix
    /// seconds): the machine's answer, or why it could not be asked.
    pub fn partner_down(&self, name: &str, since: u64) -> Result<(), PartnerDownError> {
        let (tx, rx) = channel::bounded(1);
        self.shared
            .commands
            .send(Command::PartnerDown {
                name: name.to_owned(),
                since,
                reply: tx,
            })
            .map_err(|_| PartnerDownError::DriverStopped)?;
        self.shared.waker.wake().map_err(PartnerDownError::Wake)?;
        rx.recv_timeout(COMMAND_TIMEOUT)
            .map_err(|_| PartnerDownError::NoAnswer)?
    }
}

/// A started driver: the admin handle and the thread, joined after shutdown.
pub struct Running {
    pub driver: Driver,
    pub thread: std::thread::JoinHandle<()>,
    /// The workers' outbound queues, when started by [`start_replicating`]: hand each worker
    /// its [`super::replicate::WorkerOutbox`].
    pub outbox: Option<Arc<Outbox>>,
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
    #[error("failover relationship {name:?}")]
    Invalid {
        name: String,
        #[source]
        source: fsm::ConfigError,
    },
}

/// Why the driver did not start ([`start`], [`start_replicating`]). The text names the
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
    c.hba = match f.mode {
        FailoverMode::LoadBalance => Hba::split(f.split),
        // The primary is the active server (ISC `split 256`).
        FailoverMode::HotStandby => Hba::ALL,
    };
    c.max_response_delay = f.max_response_delay;
    c.max_unacked_updates = f.max_unacked_updates;
    c.auto_partner_down = (f.auto_partner_down > 0).then_some(f.auto_partner_down);
    if let Some(path) = &f.shared_secret_file {
        c.shared_secret = Some(read_secret(path)?);
    }
    c.validate().map_err(|source| FsmConfigError::Invalid {
        name: f.name.clone(),
        source,
    })?;
    Ok(c)
}

fn read_secret(path: &Path) -> Result<Vec<u8>, FsmConfigError> {
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

struct Link {
    stream: TcpStream,
    decoder: StreamDecoder,
    out: Vec<u8>,
    peer: SocketAddr,
}

/// A second link that arrived while one is established: its CONNECT is answered with
/// CONNECTACK reject 7 (duplicate connection), then it is closed.
struct Refusal {
    rel: usize,
    stream: TcpStream,
    decoder: StreamDecoder,
    out: Vec<u8>,
    until: StdInstant,
    answered: bool,
}

struct Rel {
    cfg: FailoverConfig,
    /// The relationship's protocol and replication ([`Session`]).
    session: Session,
    view: Arc<RelationshipView>,
    listener: TcpListener,
    link: Option<Link>,
    dialing: Option<TcpStream>,
    next_dial: StdInstant,
}

impl Rel {
    fn tokens(i: usize) -> (Token, Token, Token) {
        let base = 1 + i * PER_REL;
        (Token(base), Token(base + 1), Token(base + 2))
    }
}

struct Loop {
    poll: Poll,
    rels: Vec<Rel>,
    origin: StdInstant,
    data_dir: PathBuf,
    commands: Receiver<Command>,
    shared: Arc<Shared>,
    bindings: BindingSource,
    /// Binding replication ([`start_replicating`]); `None`: BNDUPDs are refused.
    repl: Option<Replicator>,
    refusals: Vec<Refusal>,
    shutdown: Shutdown,
    stopping: bool,
}

/// Starts the driver thread for every relationship of `config`, publishing into `views`
/// (one per `[[failover]]`, from [`super::gate::Gate::new`]). Loads each relationship's
/// stored state (a corrupt file is an error), binds the listeners (an address that cannot
/// be bound is an error) and registers with `shutdown`.
pub fn start(
    config: &Config,
    views: Vec<Arc<RelationshipView>>,
    bindings: BindingSource,
    shutdown: &Shutdown,
) -> Result<Running, StartError> {
    start_inner(config, views, bindings, None, shutdown)
}

/// [`start`] with binding replication: received BNDUPDs are applied to the lease tables and
/// journaled before their BNDACK, the workers' changes (through [`Running::outbox`]) and
/// every unacknowledged record are sent to the partner, and BNDACKs are written back.
pub fn start_replicating(
    config: &Config,
    views: Vec<Arc<RelationshipView>>,
    bindings: BindingSource,
    replication: Replication,
    shutdown: &Shutdown,
) -> Result<Running, StartError> {
    start_inner(config, views, bindings, Some(replication), shutdown)
}

fn start_inner(
    config: &Config,
    views: Vec<Arc<RelationshipView>>,
    bindings: BindingSource,
    replication: Option<Replication>,
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
    let mut rels = Vec::with_capacity(config.failover.len());
    for (i, (f, view)) in config.failover.iter().zip(views).enumerate() {
        let fc = fsm_config(f)?;
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
        let fsm = Fsm::new(fc, stored, now);
        persist::store(&data_dir, &f.name, &fsm.persisted())?;
        let addr = SocketAddr::new(IpAddr::V4(f.address), f.port);
        let mut listener = TcpListener::bind(addr).map_err(|source| StartError::Listen {
            name: f.name.clone(),
            addr,
            source,
        })?;
        let (lt, _, _) = Rel::tokens(i);
        poll.registry()
            .register(&mut listener, lt, Interest::READABLE)
            .map_err(StartError::Register)?;
        tracing::info!(relationship = %f.name, listen = %addr, peer = %SocketAddr::new(IpAddr::V4(f.peer_address), f.peer_port), role = f.role.as_str(), "failover: relationship configured");
        view.publish(&fsm);
        rels.push(Rel {
            cfg: f.clone(),
            session: Session::new(i, f, fsm),
            view,
            listener,
            link: None,
            dialing: None,
            next_dial: origin,
        });
    }
    let (repl, outbox) = match replication {
        None => (None, None),
        Some(r) => {
            let replicated = r.table_rel.iter().map(Option::is_some).collect();
            let outbox = Arc::new(Outbox::new(r.workers, replicated, Arc::clone(&waker)));
            let mut repl = Replicator::new(
                r.store,
                r.journal,
                Arc::clone(&outbox),
                r.table_rel,
                rels.len(),
            );
            // What the partner has not acknowledged before we stopped is sent again.
            for (i, rel) in rels.iter().enumerate() {
                let n = repl.enqueue_unacked(i, false);
                tracing::info!(relationship = %rel.cfg.name, updates = n, "failover: unacknowledged bindings queued");
            }
            (Some(repl), Some(outbox))
        }
    };
    let (tx, rx) = channel::unbounded();
    let shared = Arc::new(Shared {
        commands: tx,
        waker: Arc::clone(&waker),
        status: Mutex::new(Vec::new()),
    });
    let lp = Loop {
        poll,
        rels,
        origin,
        data_dir,
        commands: rx,
        shared: Arc::clone(&shared),
        bindings,
        repl,
        refusals: Vec::new(),
        shutdown: shutdown.clone(),
        stopping: false,
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

    fn std_at(&self, t: Instant) -> StdInstant {
        self.origin + Duration::from_millis(t.as_millis())
    }

    fn run(mut self) {
        let mut events = Events::with_capacity(64);
        loop {
            if self.shutdown.is_requested() {
                self.stop();
                return;
            }
            let timeout = self.next_deadline().map(|d| {
                d.saturating_duration_since(StdInstant::now())
                    .max(Duration::from_millis(1))
            });
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != io::ErrorKind::Interrupted
            {
                tracing::error!(error = %e, "failover: poll failed; driver stops");
                return;
            }
            for ev in events.iter() {
                let t = ev.token().0;
                if t == 0 {
                    continue;
                }
                let i = (t - 1) / PER_REL;
                match (t - 1) % PER_REL {
                    0 => self.accept(i),
                    1 => self.on_link(i),
                    _ => self.on_dial(i),
                }
            }
            if let Some(repl) = self.repl.as_mut() {
                repl.drain_outbox();
            }
            while let Ok(cmd) = self.commands.try_recv() {
                self.command(cmd);
            }
            self.refuse_duplicates();
            for i in 0..self.rels.len() {
                self.tick(i);
            }
            self.publish_status();
        }
    }

    /// The earliest machine timer, pending dial or pool balancing run.
    fn next_deadline(&self) -> Option<StdInstant> {
        let wall = UnixTime::now();
        self.rels
            .iter()
            .flat_map(|r| {
                let dial = (r.link.is_none() && r.dialing.is_none()).then_some(r.next_dial);
                let (fsm, balance) = r.session.poll_timeout(self.repl.is_some());
                let fsm = fsm.map(|t| self.std_at(t));
                let balance = balance
                    .map(|t| StdInstant::now() + Duration::from_secs(u64::from(wall.until(t))));
                [dial, fsm, balance]
            })
            .flatten()
            .chain((!self.refusals.is_empty()).then(|| StdInstant::now() + REFUSAL_TICK))
            .min()
    }

    /// Reads the refused links; answers a CONNECT with CONNECTACK reject 7 and closes the
    /// link once that is written, or after [`REFUSE_WITHIN`].
    fn refuse_duplicates(&mut self) {
        let now = self.now();
        let mut refusals = std::mem::take(&mut self.refusals);
        refusals.retain_mut(|r| {
            let mut buf = [0u8; 2048];
            let mut open = true;
            loop {
                match r.stream.read(&mut buf) {
                    Ok(0) => {
                        open = false;
                        break;
                    }
                    Ok(n) => r.decoder.feed(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        open = false;
                        break;
                    }
                }
            }
            while !r.answered
                && let Ok(Some(frame)) = r.decoder.next_frame()
            {
                if let Ok(m) = Repr::parse_bytes(frame)
                    && m.msg_type == MessageType::Connect
                    && let Some(rel) = self.rels.get_mut(r.rel)
                {
                    tracing::info!(relationship = %rel.cfg.name, "failover: CONNECT on a second link refused (duplicate connection)");
                    r.out = rel.session.fsm_mut().duplicate_connectack(now, &m);
                    r.answered = true;
                }
            }
            while !r.out.is_empty() {
                match r.stream.write(&r.out) {
                    Ok(0) => {
                        open = false;
                        break;
                    }
                    Ok(n) => {
                        r.out.drain(..n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        open = false;
                        break;
                    }
                }
            }
            let done = r.answered && r.out.is_empty();
            open && !done && StdInstant::now() < r.until
        });
        self.refusals = refusals;
    }

    /// Timers and dialling for relationship `i`, then its outputs.
    fn tick(&mut self, i: usize) {
        let now = self.now();
        let rel = &mut self.rels[i];
        if let Err(e) = rel.session.tick(now, self.repl.as_mut()) {
            self.fatal(&e);
        }
        let rel = &mut self.rels[i];
        if rel.link.is_none() && rel.dialing.is_none() && StdInstant::now() >= rel.next_dial {
            self.dial(i);
        }
        self.process(i);
    }

    /// A journal commit failed: nothing more is acknowledged, and the daemon stops.
    fn fatal(&mut self, e: &lease_mmap::CommitError) {
        tracing::error!(error = %e, "failover: journal commit failed; no acknowledgement sent; stopping");
        self.shutdown.request();
    }

    fn dial(&mut self, i: usize) {
        let rel = &mut self.rels[i];
        let peer = SocketAddr::new(IpAddr::V4(rel.cfg.peer_address), rel.cfg.peer_port);
        rel.next_dial = StdInstant::now() + RECONNECT_AFTER;
        match TcpStream::connect(peer) {
            Ok(mut s) => {
                let (_, _, dt) = Rel::tokens(i);
                match self.poll.registry().register(
                    &mut s,
                    dt,
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    Ok(()) => {
                        tracing::debug!(relationship = %rel.cfg.name, %peer, "failover: connecting");
                        rel.dialing = Some(s);
                    }
                    Err(e) => {
                        tracing::warn!(relationship = %rel.cfg.name, error = %e, "failover: register")
                    }
                }
            }
            Err(e) => {
                tracing::debug!(relationship = %rel.cfg.name, %peer, error = %e, "failover: connect failed")
            }
        }
    }

    fn on_dial(&mut self, i: usize) {
        let Some(mut s) = self.rels[i].dialing.take() else {
            return;
        };
        let failed = match s.take_error() {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) => None,
        };
        if let Some(e) = failed {
            let _ = self.poll.registry().deregister(&mut s);
            tracing::debug!(relationship = %self.rels[i].cfg.name, error = %e, "failover: connect failed; retry in 5 s");
            return;
        }
        match s.peer_addr() {
            Ok(peer) => {
                let _ = self.poll.registry().deregister(&mut s);
                if self.rels[i].link.is_some() {
                    tracing::debug!(relationship = %self.rels[i].cfg.name, "failover: outgoing link not needed, closed");
                    return;
                }
                self.adopt(i, s, peer, true);
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                // Still connecting (a spurious wake-up).
                self.rels[i].dialing = Some(s);
            }
            Err(e) => {
                let _ = self.poll.registry().deregister(&mut s);
                tracing::debug!(relationship = %self.rels[i].cfg.name, error = %e, "failover: connect failed; retry in 5 s");
            }
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
            let rel = &self.rels[i];
            if peer.ip() != IpAddr::V4(rel.cfg.peer_address) {
                tracing::warn!(relationship = %rel.cfg.name, from = %peer, "failover: connection from an unknown address refused");
                continue;
            }
            let replace = match &rel.link {
                None => true,
                // A secondary whose own link has not been through CONNECT yet takes the
                // primary's: both sides then keep the primary's link.
                Some(_) => {
                    rel.cfg.role == config::Role::Secondary && !rel.session.fsm().is_connected()
                }
            };
            if !replace {
                tracing::info!(relationship = %rel.cfg.name, from = %peer, "failover: duplicate connection refused");
                if self.refusals.len() < MAX_REFUSALS {
                    self.refusals.push(Refusal {
                        rel: i,
                        stream: s,
                        decoder: StreamDecoder::new(),
                        out: Vec::new(),
                        until: StdInstant::now() + REFUSE_WITHIN,
                        answered: false,
                    });
                }
                continue;
            }
            if let Some(mut old) = self.rels[i].link.take() {
                let _ = self.poll.registry().deregister(&mut old.stream);
                tracing::debug!(relationship = %self.rels[i].cfg.name, "failover: own link dropped for the primary's");
            }
            self.adopt(i, s, peer, false);
        }
    }

    /// Hands a TCP link to the machine.
    fn adopt(&mut self, i: usize, mut stream: TcpStream, peer: SocketAddr, outgoing: bool) {
        let (_, lt, _) = Rel::tokens(i);
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut stream, lt, Interest::READABLE | Interest::WRITABLE)
        {
            tracing::warn!(relationship = %self.rels[i].cfg.name, error = %e, "failover: register link");
            return;
        }
        let _ = stream.set_nodelay(true);
        tracing::info!(relationship = %self.rels[i].cfg.name, %peer, outgoing, "failover: peer link up");
        let now = self.now();
        let rel = &mut self.rels[i];
        rel.link = Some(Link {
            stream,
            decoder: StreamDecoder::new(),
            out: Vec::new(),
            peer,
        });
        rel.session.fsm_mut().handle_connected(now);
        self.process(i);
    }

    fn on_link(&mut self, i: usize) {
        let mut buf = [0u8; 8192];
        let mut closed: Option<String> = None;
        {
            let Some(link) = self.rels[i].link.as_mut() else {
                return;
            };
            loop {
                match link.stream.read(&mut buf) {
                    Ok(0) => {
                        closed = Some("closed by the peer".into());
                        break;
                    }
                    Ok(n) => link.decoder.feed(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        closed = Some(e.to_string());
                        break;
                    }
                }
            }
        }
        self.frames(i);
        if let Some(why) = closed {
            self.link_lost(i, &why);
        }
        if let Some(link) = self.rels[i].link.as_mut()
            && let Err(e) = flush(link)
        {
            self.link_lost(i, &e.to_string());
        }
        self.process(i);
    }

    /// Feeds every whole frame to the session. The BNDUPDs among them are applied and
    /// group-committed together; their BNDACKs leave only after that commit.
    fn frames(&mut self, i: usize) {
        loop {
            let now = self.now();
            let rel = &mut self.rels[i];
            let Some(link) = rel.link.as_mut() else {
                break;
            };
            let frame = match link.decoder.next_frame() {
                Ok(Some(f)) => f.to_vec(),
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(relationship = %rel.cfg.name, error = %e, "failover: bad framing");
                    self.link_lost(i, "bad framing");
                    break;
                }
            };
            rel.session.on_frame(now, &frame, self.repl.as_mut());
            self.process(i);
        }
        let now = self.now();
        if let Err(e) = self.rels[i].session.flush_acks(now, self.repl.as_mut()) {
            self.fatal(&e);
            return;
        }
        self.process(i);
    }

    /// The TCP link is gone (read error, EOF, write error).
    fn link_lost(&mut self, i: usize, why: &str) {
        let now = self.now();
        let rel = &mut self.rels[i];
        if let Some(mut link) = rel.link.take() {
            let _ = self.poll.registry().deregister(&mut link.stream);
            tracing::info!(relationship = %rel.cfg.name, peer = %link.peer, reason = why, "failover: peer link lost");
            rel.next_dial = StdInstant::now() + RECONNECT_AFTER;
            rel.session.link_lost(now, self.repl.as_mut());
        }
    }

    /// Drains the session's events and transmits, stores and publishes.
    fn process(&mut self, i: usize) {
        loop {
            let mut any = false;
            while let Some(e) = self.rels[i].session.poll_event() {
                any = true;
                self.event(i, e);
            }
            let now = self.now();
            let rel = &mut self.rels[i];
            rel.session.pump(now, self.repl.as_mut());
            while let Some(t) = rel.session.poll_transmit() {
                any = true;
                tracing::trace!(relationship = %rel.cfg.name, msg = t.msg_type.name(), "failover: send");
                if let Some(link) = rel.link.as_mut() {
                    link.out.extend_from_slice(&t.bytes);
                }
            }
            if let Some(link) = rel.link.as_mut()
                && let Err(e) = flush(link)
            {
                self.link_lost(i, &e.to_string());
                any = true;
            }
            if !any {
                break;
            }
        }
        let rel = &self.rels[i];
        rel.view.publish(rel.session.fsm());
    }

    fn event(&mut self, i: usize, e: Event) {
        let now = self.now();
        let name = self.rels[i].cfg.name.clone();
        if let Err(err) = self.rels[i]
            .session
            .on_event(now, &e, self.repl.as_mut(), &self.bindings)
        {
            self.fatal(&err);
        }
        match e {
            Event::StateChanged { from, to, at } => {
                tracing::info!(relationship = %name, from = from.name(), to = to.name(), at = at.0, "failover: state changed");
            }
            Event::PartnerStateChanged { from, to, startup } => {
                tracing::info!(relationship = %name, from = from.map_or("unknown", |s| s.name()), to = to.name(), startup, "failover: partner state changed");
            }
            Event::Persist(p) => {
                if self.stopping {
                    return;
                }
                if let Err(e) = persist::store(&self.data_dir, &name, &p) {
                    tracing::error!(relationship = %name, error = %e, "failover: storing the state failed");
                }
            }
            Event::Connected => {
                tracing::info!(relationship = %name, "failover: connected (CONNECT/CONNECTACK done)");
            }
            Event::CloseLink { reason, last_words } => {
                let rel = &mut self.rels[i];
                if let Some(mut link) = rel.link.take() {
                    for t in last_words {
                        link.out.extend_from_slice(&t.bytes);
                    }
                    let _ = flush(&mut link);
                    let _ = self.poll.registry().deregister(&mut link.stream);
                    tracing::info!(relationship = %name, ?reason, "failover: link closed by us");
                }
                rel.next_dial = StdInstant::now() + RECONNECT_AFTER;
            }
            Event::RejectedByPeer { reason, message } => {
                tracing::warn!(relationship = %name, ?reason, message = message.as_deref().unwrap_or(""), "failover: refused by the peer");
            }
            Event::UpdateRequest { .. } | Event::PoolRequest { .. } => {}
            Event::PoolResponse { addresses } => {
                tracing::info!(relationship = %name, addresses, "failover: the partner rebalanced");
            }
            other => tracing::debug!(relationship = %name, event = ?other, "failover: event"),
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::PartnerDown { name, since, reply } => {
                let answer = match self.rels.iter().position(|r| r.cfg.name == name) {
                    None => Err(PartnerDownError::NoSuchRelationship(name.clone())),
                    Some(i) => {
                        let now = self.now();
                        let since = UnixTime(u32::try_from(since).unwrap_or(u32::MAX));
                        let r = self.rels[i].session.fsm_mut().partner_down(now, since);
                        self.process(i);
                        match r {
                            Ok(()) => {
                                tracing::info!(relationship = %name, since = since.0, "failover: partner down (operator)");
                                Ok(())
                            }
                            Err(e) => Err(e.into()),
                        }
                    }
                };
                let _ = reply.send(answer);
            }
        }
    }

    fn publish_status(&self) {
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
        self.stopping = true;
        let now = self.now();
        for i in 0..self.rels.len() {
            self.rels[i].session.fsm_mut().shutdown(now);
            self.process(i);
        }
        let until = StdInstant::now() + FLUSH_ON_SHUTDOWN;
        let mut pending: Vec<usize> = (0..self.rels.len())
            .filter(|&i| {
                self.rels[i]
                    .link
                    .as_ref()
                    .is_some_and(|l| !l.out.is_empty())
            })
            .collect();
        while !pending.is_empty() && StdInstant::now() < until {
            pending.retain(|&i| {
                let Some(link) = self.rels[i].link.as_mut() else {
                    return false;
                };
                flush(link).is_ok() && !link.out.is_empty()
            });
            std::thread::sleep(Duration::from_millis(10));
        }
        for r in &mut self.rels {
            if let Some(link) = r.link.take() {
                let _ = link.stream.shutdown(std::net::Shutdown::Both);
            }
        }
        if let Some(repl) = self.repl.as_mut()
            && let Err(e) = repl.commit()
        {
            tracing::error!(error = %e, "failover: final journal commit failed");
        }
        self.publish_status();
        tracing::info!("failover: driver stopped");
    }
}

/// Writes as much of `link.out` as the socket takes.
fn flush(link: &mut Link) -> io::Result<()> {
    while !link.out.is_empty() {
        match link.stream.write(&link.out) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                link.out.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
