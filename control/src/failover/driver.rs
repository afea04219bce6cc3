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
//! * **Received BNDUPDs** are checked as ISC checks them ([`Binding::from_repr`]), located in
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

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant as StdInstant};

use anyhow::Context;
use crossbeam::channel::{self, Receiver, Sender};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use lease_mmap::{BindingState, Lease, Slot, Store, TableId, WorkerJournal};

use super::binding::{Binding, BindingError};
use super::fsm::{self, Event, Fsm, StateKind};
use super::gate::RelationshipView;
use super::hash::Hba;
use super::msg::{BindingBatch, MessageType, Options, RejectReason, Repr, StreamDecoder};
use super::pool;
use super::replicate::{Outbox, Replicator, Verdict, judge};
use super::{Instant, Now, Role, UnixTime, persist};
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

/// The bindings of a relationship (by name) an update request is answered with: address and
/// record of every lease that is not FREE (or an OFFERED hold).
pub type BindingSource = Arc<dyn Fn(&str) -> Vec<(Ipv4Addr, lease_mmap::Lease)> + Send + Sync>;

enum Command {
    PartnerDown {
        name: String,
        since: u64,
        reply: Sender<Result<(), String>>,
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
    pub fn partner_down(&self, name: &str, since: u64) -> Result<(), String> {
        let (tx, rx) = channel::bounded(1);
        self.shared
            .commands
            .send(Command::PartnerDown {
                name: name.to_owned(),
                since,
                reply: tx,
            })
            .map_err(|_| "failover driver stopped".to_owned())?;
        self.shared
            .waker
            .wake()
            .map_err(|e| format!("cannot wake the failover driver: {e}"))?;
        rx.recv_timeout(COMMAND_TIMEOUT)
            .map_err(|_| "failover driver did not answer".to_owned())?
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

/// The machine's settings from a `[[failover]]` section (the shared secret file is read
/// here).
pub fn fsm_config(f: &FailoverConfig) -> anyhow::Result<fsm::Config> {
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
    c.validate()
        .with_context(|| format!("failover relationship {:?}", f.name))?;
    Ok(c)
}

fn read_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    let mut s = std::fs::read(path)
        .with_context(|| format!("reading shared_secret_file {}", path.display()))?;
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

/// The BNDUPD answers of one read batch: each update's xid and, per binding it carried,
/// the address and the reject (if refused).
type Acks = (u32, Vec<(Ipv4Addr, Option<BindingError>)>);

/// A binding sent in a BNDUPD and not yet acknowledged.
#[derive(Clone, Copy, Debug)]
struct Flight {
    ip: Ipv4Addr,
    /// The record it came from (`None`: a snapshot, without replication).
    slot: Option<(TableId, Slot)>,
    state: BindingState,
    tstp: UnixTime,
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
    fsm: Fsm,
    view: Arc<RelationshipView>,
    listener: TcpListener,
    link: Option<Link>,
    dialing: Option<TcpStream>,
    next_dial: StdInstant,
    /// Bindings still to send for the peer's update request, without replication (with it,
    /// the [`Replicator`]'s send queue holds addresses instead).
    to_send: VecDeque<Binding>,
    /// BNDUPDs sent and not yet acknowledged, by xid: the bindings each carried (one
    /// toward ISC, up to a message's worth toward a tandem peer).
    in_flight: HashMap<u32, Vec<Flight>>,
    /// UPDDONE is due once everything queued is sent and acknowledged.
    done_pending: bool,
    /// Bindings the partner refused in its BNDACKs.
    rejected: u64,
    /// Bindings sent in BNDUPDs, and the messages they went in.
    sent: u64,
    sent_messages: u64,
    /// Pool balancing ([`pool`]): this relationship's share rule and its next run.
    pool: pool::Policy,
    balance: pool::Schedule,
}

impl Rel {
    /// The link is gone: an update run starts over on the next request; what was in flight
    /// goes back to the send queue.
    fn reset_updates(&mut self, repl: Option<&mut Replicator>) {
        self.to_send.clear();
        if let Some(repl) = repl {
            for f in self.in_flight.values().flatten() {
                if let Some((t, s)) = f.slot {
                    repl.enqueue_update(t, s);
                }
            }
        }
        self.in_flight.clear();
        self.done_pending = false;
    }

    /// Sends queued BNDUPDs within the peer's window (in NORMAL, or while answering an update
    /// request); UPDDONE when all are acknowledged. Each binding is read from its record
    /// now, so the latest state is what leaves. Toward ISC one binding per BNDUPD (it
    /// cannot parse more); toward a tandem peer ([`Fsm::partner_batches`]) as many as fit
    /// in one message ([`BindingBatch`]). The messages of one turn leave in one write.
    fn pump_updates(&mut self, i: usize, mut repl: Option<&mut Replicator>, now: Now) {
        if !self.fsm.is_connected() {
            return;
        }
        let sending = self.fsm.kind() == StateKind::Normal || self.done_pending;
        let window = usize::try_from(self.fsm.partner_max_unacked()).unwrap_or(usize::MAX);
        let per_message = if self.fsm.partner_batches() {
            usize::MAX
        } else {
            1
        };
        let mut batch = BindingBatch::new(MessageType::BndUpd);
        // A binding that did not fit in the last message opens the next one.
        let mut carry: Option<(Binding, Option<(TableId, Slot)>)> = None;
        while sending && self.in_flight.len() < window {
            let mut flights = Vec::new();
            while flights.len() < per_message {
                let next = match carry.take() {
                    Some(c) => Some(c),
                    None => next_binding(&mut self.to_send, repl.as_deref_mut(), i),
                };
                let Some((b, slot)) = next else {
                    break;
                };
                if batch.push(&b.to_repr().options) {
                    flights.push(Flight {
                        ip: b.ip,
                        slot,
                        state: b.status.to_lease(),
                        tstp: b.potential_expiry,
                    });
                } else if flights.is_empty() {
                    // Cannot happen for a valid record (a binding is at most ~330 bytes).
                    tracing::warn!(relationship = %self.cfg.name, ip = %b.ip, "failover: binding too long for a BNDUPD; not sent");
                } else {
                    carry = Some((b, slot));
                    break;
                }
            }
            if flights.is_empty() {
                break;
            }
            match self.fsm.send(now, &batch.repr(now.wall, 0), None) {
                Some(xid) => {
                    self.sent += flights.len() as u64;
                    self.sent_messages += 1;
                    self.in_flight.insert(xid, flights);
                    batch.clear();
                }
                None => {
                    // Not connected any more: the run is over.
                    if let Some(repl) = repl.as_deref_mut() {
                        let lost = flights
                            .iter()
                            .map(|f| f.slot)
                            .chain([carry.and_then(|c| c.1)]);
                        for (t, s) in lost.flatten() {
                            repl.enqueue_update(t, s);
                        }
                    }
                    self.reset_updates(repl);
                    return;
                }
            }
        }
        match carry {
            Some((_, Some((t, s)))) => {
                if let Some(repl) = repl.as_deref_mut() {
                    repl.enqueue_update(t, s);
                }
            }
            Some((b, None)) => self.to_send.push_front(b),
            None => {}
        }
        let queued = repl.and_then(|r| r.queue(i)).is_some_and(|q| !q.is_empty());
        if self.done_pending && self.to_send.is_empty() && !queued && self.in_flight.is_empty() {
            self.done_pending = false;
            tracing::info!(relationship = %self.cfg.name, "failover: update request answered, update done");
            self.fsm.update_done(now);
        }
    }

    fn tokens(i: usize) -> (Token, Token, Token) {
        let base = 1 + i * PER_REL;
        (Token(base), Token(base + 1), Token(base + 2))
    }
}

/// The next binding to send: from the snapshot of an update request (without replication),
/// else from the relationship's send queue, read from its record now.
fn next_binding(
    to_send: &mut VecDeque<Binding>,
    repl: Option<&mut Replicator>,
    i: usize,
) -> Option<(Binding, Option<(TableId, Slot)>)> {
    if let Some(b) = to_send.pop_front() {
        return Some((b, None));
    }
    let repl = repl?;
    loop {
        let (t, s) = repl.queue(i)?.pop()?;
        let Some((ip, _, l)) = repl.read(t, s) else {
            continue;
        };
        if let Some(b) = Binding::from_lease(ip, &l, 0) {
            return Some((b, Some((t, s))));
        }
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
) -> anyhow::Result<Running> {
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
) -> anyhow::Result<Running> {
    start_inner(config, views, bindings, Some(replication), shutdown)
}

fn start_inner(
    config: &Config,
    views: Vec<Arc<RelationshipView>>,
    bindings: BindingSource,
    replication: Option<Replication>,
    shutdown: &Shutdown,
) -> anyhow::Result<Running> {
    let poll = Poll::new().context("failover: mio poll")?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER).context("failover: waker")?);
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
        let mut listener = TcpListener::bind(addr)
            .with_context(|| format!("failover {:?}: listening on {addr}", f.name))?;
        let (lt, _, _) = Rel::tokens(i);
        poll.registry()
            .register(&mut listener, lt, Interest::READABLE)
            .context("failover: register listener")?;
        tracing::info!(relationship = %f.name, listen = %addr, peer = %SocketAddr::new(IpAddr::V4(f.peer_address), f.peer_port), role = f.role.as_str(), "failover: relationship configured");
        view.publish(&fsm);
        rels.push(Rel {
            cfg: f.clone(),
            fsm,
            view,
            listener,
            link: None,
            dialing: None,
            next_dial: origin,
            to_send: VecDeque::new(),
            in_flight: HashMap::new(),
            done_pending: false,
            rejected: 0,
            sent: 0,
            sent_messages: 0,
            pool: pool::Policy::new(
                match f.role {
                    config::Role::Primary => Role::Primary,
                    config::Role::Secondary => Role::Secondary,
                },
                pool::Share::new(f.mode, f.reserve_percent),
            ),
            balance: pool::Schedule::default(),
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
        .context("failover: spawning the driver thread")?;
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
                let fsm = r.fsm.poll_timeout().map(|t| self.std_at(t));
                let balance = r
                    .balance
                    .next()
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
                    r.out = rel.fsm.duplicate_connectack(now, &m);
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
        if rel.fsm.poll_timeout().is_some_and(|t| t <= now.instant) {
            rel.fsm.handle_timeout(now);
        }
        if rel.link.is_none() && rel.dialing.is_none() && StdInstant::now() >= rel.next_dial {
            self.dial(i);
        }
        if self.rels[i].balance.is_due(now.wall) {
            self.rebalance(i);
        }
        self.process(i);
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
                Some(_) => rel.cfg.role == config::Role::Secondary && !rel.fsm.is_connected(),
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
        rel.fsm.handle_connected(now);
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

    /// Feeds every whole frame to the machine. The BNDUPDs among them are applied and
    /// group-committed together; their BNDACKs leave only after that commit.
    fn frames(&mut self, i: usize) {
        let mut acks: Vec<Acks> = Vec::new();
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
            let Some(m) = rel.fsm.handle_frame(now, &frame) else {
                // Refused; the machine closes the link (Event::CloseLink).
                self.process(i);
                continue;
            };
            if m.msg_type == MessageType::BndAck {
                self.on_bndack(i, &m);
            }
            if m.msg_type == MessageType::BndUpd {
                let mut answers = Vec::new();
                for o in m.bindings() {
                    if let Some(ip) = o.assigned_ip {
                        answers.push((ip, self.on_bndupd(i, &o, now.wall)));
                    }
                }
                if !answers.is_empty() {
                    acks.push((m.xid, answers));
                }
            }
            self.process(i);
        }
        self.send_acks(i, acks);
    }

    /// A BNDACK: the update it answers is no longer in flight. Each binding it names
    /// (one from ISC, the whole batch from tandem) is settled: accepted, its potential expiry
    /// is written back into the record (`atsfp`, `tsfp`); refused, it is logged and counted
    /// (the record stays unacknowledged and is sent again after a reconnect). A binding of
    /// the update that the BNDACK does not name is queued again.
    fn on_bndack(&mut self, i: usize, m: &Repr<'_>) {
        let rel = &mut self.rels[i];
        let Some(flights) = rel.in_flight.remove(&m.xid) else {
            tracing::debug!(relationship = %rel.cfg.name, xid = m.xid, "failover: BNDACK for no update in flight");
            return;
        };
        let answers: Vec<Options<'_>> = m.bindings().collect();
        for f in flights {
            let answer = match answers.iter().find(|o| o.assigned_ip == Some(f.ip)) {
                Some(o) => Some(o),
                // A BNDACK without an address answers a single update.
                None if answers.is_empty() => Some(&m.options),
                None => None,
            };
            let Some(o) = answer else {
                tracing::debug!(relationship = %rel.cfg.name, ip = %f.ip, xid = m.xid, "failover: BNDACK does not name this binding; sending it again");
                if let (Some((t, s)), Some(repl)) = (f.slot, self.repl.as_mut()) {
                    repl.enqueue_update(t, s);
                }
                continue;
            };
            if let Some(r) = o.reject_reason {
                rel.rejected += 1;
                let msg = o.message.map(String::from_utf8_lossy);
                tracing::warn!(relationship = %rel.cfg.name, ip = %f.ip, reason = ?r,
                    message = msg.as_deref().unwrap_or(""), rejected = rel.rejected,
                    "failover: binding update refused by the partner");
                continue;
            }
            if let (Some((t, s)), Some(repl)) = (f.slot, self.repl.as_ref())
                && let Err(e) = repl.acknowledge(t, s, f.state, f.tstp)
            {
                tracing::warn!(relationship = %rel.cfg.name, ip = %f.ip, error = %e, "failover: acknowledgement not written back");
            }
        }
    }

    /// A BNDUPD: checked (ISC's rules), judged against our record, installed by CAS and
    /// journaled (committed by [`Loop::send_acks`]). Returns the BNDACK's reject, if any.
    fn on_bndupd(&mut self, i: usize, o: &Options<'_>, now: UnixTime) -> Option<BindingError> {
        let rel = &mut self.rels[i];
        let b = match Binding::from_options(o) {
            Ok(b) => b,
            Err(e) => {
                tracing::info!(relationship = %rel.cfg.name, ip = ?o.assigned_ip, error = %e, "failover: BNDUPD refused");
                return Some(e);
            }
        };
        let Some(repl) = self.repl.as_mut() else {
            tracing::debug!(relationship = %rel.cfg.name, ip = %b.ip, "failover: BNDUPD refused (not stored)");
            return Some(BindingError {
                reason: RejectReason::Unknown,
                message: "binding updates are not stored by this server",
            });
        };
        let Some((t, s)) = repl.locate(i, b.ip) else {
            tracing::info!(relationship = %rel.cfg.name, ip = %b.ip, "failover: BNDUPD for an address in none of our pools refused");
            return Some(BindingError {
                reason: RejectReason::IllegalIpAddress,
                message: "IP address not in pool",
            });
        };
        let us = match rel.cfg.role {
            config::Role::Primary => Role::Primary,
            config::Role::Secondary => Role::Secondary,
        };
        let state = rel.fsm.kind();
        let ours_in_flight = rel.in_flight.values().flatten().any(|f| f.ip == b.ip);
        match repl.install(t, s, &b, |cur| {
            judge(us, state, cur, ours_in_flight, &b, now)
        }) {
            Ok(Verdict::Apply) => {
                // The partner's update beat ours: ours is dropped (ISC `failover.c:5212-5231`).
                for flights in rel.in_flight.values_mut() {
                    flights.retain(|f| f.ip != b.ip);
                }
                tracing::debug!(relationship = %rel.cfg.name, ip = %b.ip, status = ?b.status, "failover: binding update applied");
                None
            }
            Ok(Verdict::KeepOurs) => {
                tracing::info!(relationship = %rel.cfg.name, ip = %b.ip, status = ?b.status, "failover: our binding wins; sending it");
                repl.enqueue_update(t, s);
                None
            }
            Ok(Verdict::Reject(e)) => {
                tracing::info!(relationship = %rel.cfg.name, ip = %b.ip, status = ?b.status, reason = ?e.reason, "failover: binding update refused");
                Some(e)
            }
            Err(e) => {
                tracing::warn!(relationship = %rel.cfg.name, ip = %b.ip, error = %e, "failover: binding update not stored");
                Some(BindingError {
                    reason: RejectReason::Unknown,
                    message: "binding not stored",
                })
            }
        }
    }

    /// Makes the applied updates durable (one fdatasync for the whole read batch), then
    /// acknowledges them, each BNDUPD with one BNDACK that names its bindings (a batch is
    /// answered with a batch). A failed commit sends no BNDACK and stops the daemon.
    fn send_acks(&mut self, i: usize, acks: Vec<Acks>) {
        if acks.is_empty() {
            return;
        }
        if let Some(repl) = self.repl.as_mut()
            && repl.pending() > 0
            && let Err(e) = repl.commit()
        {
            tracing::error!(error = %e, "failover: journal commit failed; no acknowledgement sent; stopping");
            self.shutdown.request();
            return;
        }
        let now = self.now();
        let rel = &mut self.rels[i];
        let mut batch = BindingBatch::new(MessageType::BndAck);
        for (xid, answers) in acks {
            for (ip, reject) in answers {
                let ack = Binding::ack(ip, reject.as_ref());
                if !batch.push(&ack.options) {
                    // Answers are shorter than the updates they answer; should a batch
                    // still overflow, the rest follows under the same xid.
                    let _ = rel.fsm.send(now, &batch.repr(now.wall, xid), Some(xid));
                    batch.clear();
                    batch.push(&ack.options);
                }
            }
            let _ = rel.fsm.send(now, &batch.repr(now.wall, xid), Some(xid));
            batch.clear();
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
            rel.fsm.handle_disconnected(now);
        }
        rel.reset_updates(self.repl.as_mut());
    }

    /// Drains the machine's events and transmits, stores and publishes.
    fn process(&mut self, i: usize) {
        loop {
            let mut any = false;
            while let Some(e) = self.rels[i].fsm.poll_event() {
                any = true;
                self.event(i, e);
            }
            let now = self.now();
            let rel = &mut self.rels[i];
            rel.pump_updates(i, self.repl.as_mut(), now);
            while let Some(t) = rel.fsm.poll_transmit() {
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
        rel.view.publish(&rel.fsm);
    }

    fn event(&mut self, i: usize, e: Event) {
        let now = self.now();
        let name = self.rels[i].cfg.name.clone();
        match e {
            Event::StateChanged { from, to, at } => {
                tracing::info!(relationship = %name, from = from.name(), to = to.name(), at = at.0, "failover: state changed");
                // Pools are balanced in NORMAL only, at once on entering it (`failover.c:1903`).
                let balance = &mut self.rels[i].balance;
                if to == StateKind::Normal {
                    balance.run_now(now.wall);
                } else {
                    balance.cancel();
                }
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
                // Every update the partner has not acknowledged is sent again (ISC's rule).
                if let Some(repl) = self.repl.as_mut() {
                    let n = repl.enqueue_unacked(i, false);
                    tracing::info!(relationship = %name, updates = n, "failover: unacknowledged bindings queued");
                }
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
                rel.reset_updates(self.repl.as_mut());
            }
            Event::RejectedByPeer { reason, message } => {
                tracing::warn!(relationship = %name, ?reason, message = message.as_deref().unwrap_or(""), "failover: refused by the peer");
            }
            Event::UpdateRequest { all } => {
                let rel = &mut self.rels[i];
                let n = match self.repl.as_mut() {
                    // UPDREQ: every record not acknowledged; UPDREQALL: every binding.
                    Some(repl) => repl.enqueue_unacked(i, all),
                    None => {
                        rel.to_send = (self.bindings)(&name)
                            .into_iter()
                            .filter_map(|(ip, l)| Binding::from_lease(ip, &l, 0))
                            .collect();
                        rel.to_send.len()
                    }
                };
                tracing::info!(relationship = %name, all, bindings = n, "failover: update request");
                rel.done_pending = true;
                rel.pump_updates(i, self.repl.as_mut(), now);
            }
            Event::PoolRequest { xid } => {
                let moved = self.rebalance(i);
                tracing::info!(relationship = %name, moved, "failover: pool request answered");
                let moved = u32::try_from(moved).unwrap_or(u32::MAX);
                self.rels[i].fsm.send_pool_response(now, xid, moved);
            }
            Event::PoolResponse { addresses } => {
                tracing::info!(relationship = %name, addresses, "failover: the partner rebalanced");
            }
            other => tracing::debug!(relationship = %name, event = ?other, "failover: event"),
        }
    }

    /// One pool balancing run over relationship `i`'s tables ([`pool`]): the addresses
    /// given away are written and journaled, made durable, and queued as BNDUPDs; POOLREQ
    /// if this side is short. Returns how many moved. Runs only in NORMAL and with binding
    /// replication (a move the partner never hears of would strand the address).
    fn rebalance(&mut self, i: usize) -> u64 {
        let now = self.now();
        let rel = &mut self.rels[i];
        let Some(repl) = self.repl.as_mut() else {
            rel.balance.cancel();
            return 0;
        };
        if rel.fsm.kind() != StateKind::Normal {
            rel.balance.cancel();
            return 0;
        }
        let policy = rel.pool;
        let hba = rel.fsm.hba();
        let hba = (rel.cfg.mode == FailoverMode::LoadBalance).then_some(&hba);
        let store = Arc::clone(repl.store());
        let mut total = pool::Outcome::default();
        let mut failed = None;
        for table in store.tables() {
            if repl.rel_of(table.id()) != Some(i) {
                continue;
            }
            let id = table.id();
            let own = policy.own_state();
            let mut give = |slot: Slot, _version: u64, _new: &Lease| {
                let r = repl.write_record(id, slot, now.wall, |cur| {
                    (cur.state == own && table.is_allocatable(slot))
                        .then(|| pool::moved(cur, policy.peer_state(), now.wall))
                });
                match r {
                    Ok(written) => written.is_some(),
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                }
            };
            let out = pool::rebalance_table(&policy, hba, table, now.wall, &mut give);
            tracing::info!(relationship = %rel.cfg.name, table = id.0, free = out.counts.free, backup = out.counts.backup, moved = out.moved, panic = out.panic, "failover: pool balanced");
            total.moved += out.moved;
            total.panic |= out.panic;
            for (t, o) in [
                (&mut total.oldest_free, out.oldest_free),
                (&mut total.oldest_backup, out.oldest_backup),
            ] {
                if let Some(o) = o
                    && t.is_none_or(|t| o < t)
                {
                    *t = Some(o);
                }
            }
        }
        if let Some(e) = failed {
            tracing::warn!(relationship = %rel.cfg.name, error = %e, "failover: pool balancing could not move an address");
        }
        if repl.pending() > 0
            && let Err(e) = repl.commit()
        {
            tracing::error!(error = %e, "failover: journal commit failed during pool balancing; stopping");
            self.shutdown.request();
            return 0;
        }
        rel.balance.ran(&policy, &total, now.wall);
        if total.panic {
            tracing::info!(relationship = %rel.cfg.name, "failover: short of addresses: asking the partner to rebalance (POOLREQ)");
            let _ = rel
                .fsm
                .send(now, &Repr::new(MessageType::PoolReq, now.wall, 0), None);
        }
        total.moved
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::PartnerDown { name, since, reply } => {
                let answer = match self.rels.iter().position(|r| r.cfg.name == name) {
                    None => Err(format!("no such relationship {name:?}")),
                    Some(i) => {
                        let now = self.now();
                        let since = UnixTime(u32::try_from(since).unwrap_or(u32::MAX));
                        let r = self.rels[i].fsm.partner_down(now, since);
                        self.process(i);
                        match r {
                            Ok(()) => {
                                tracing::info!(relationship = %name, since = since.0, "failover: partner down (operator)");
                                Ok(())
                            }
                            Err(e) => Err(e.to_string()),
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
            .map(|r| RelationshipStatus {
                name: r.cfg.name.clone(),
                role: r.cfg.role,
                mode: r.cfg.mode,
                state: failover_state(r.fsm.kind()),
                partner_state: r
                    .fsm
                    .partner_state()
                    .map_or(FailoverState::Unknown, failover_state),
                state_since: u64::from(r.fsm.stos().0),
                unacked_updates: r.in_flight.values().map(|f| f.len() as u64).sum(),
                updates_sent: r.sent,
                update_messages: r.sent_messages,
                updates_refused: r.rejected,
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
            self.rels[i].fsm.shutdown(now);
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
