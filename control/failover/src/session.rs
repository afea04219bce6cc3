//! One relationship's failover, sans IO and self-driving (quinn-proto's shape): the [`Fsm`],
//! the choice of TCP link, binding replication and pool balancing, behind `handle_*(now,
//! input)` calls and drained through `poll_*` calls. It never reads a clock or touches a
//! socket; its records and durable state are behind [`Storage`].
//!
//! A driver (the daemon's mio thread, or a simulation) does only this:
//! * **inputs:** a link that came up ([`Session::handle_link_up`], dialled or accepted, with
//!   the peer's address), bytes read from a link ([`Session::handle_bytes`]), a link that
//!   closed ([`Session::handle_link_closed`]), a dial that failed
//!   ([`Session::handle_dial_failed`]), records the workers changed
//!   ([`Session::handle_changed`], [`Session::handle_resync`]), the operator
//!   ([`Session::partner_down`], [`Session::shutdown`]) and the clock
//!   ([`Session::handle_timeout`] at [`Session::poll_timeout`]);
//! * **outputs:** bytes to write to a link ([`Session::poll_transmit`]) and [`Event`]s: dial
//!   the peer, close a link once what was written to it is flushed, a storage failure
//!   (stop), and the machine's own events for logs and status.
//!
//! The rules it keeps (ARCHITECTURE.md lists them with the module that enforces each):
//! * **one link** (ISC `failover.c:361-370`, reference §1.1): it dials whenever it has no link,
//!   [`RECONNECT_AFTER`] after a link drops or a dial fails; a connection from any address
//!   but the peer's is closed; when both sides' connects cross, the primary keeps the link
//!   it has, and a secondary whose link is not yet through CONNECT/CONNECTACK takes the
//!   primary's instead, so the two converge on one. A further link is refused: its CONNECT
//!   is answered with CONNECTACK reject 7 (duplicate connection) within [`REFUSE_WITHIN`],
//!   at most [`MAX_REFUSALS`] at a time, then it is closed;
//! * **a received BNDUPD** is checked as ISC checks it, judged against our record
//!   ([`super::judge::judge`]), installed by CAS and journaled; the BNDUPDs of one read
//!   share one group commit, and their BNDACKs leave only after it;
//! * **outbound**, each binding is read from its record when its BNDUPD is built (the latest
//!   state wins); one per BNDUPD toward ISC, as many as fit toward a tandem peer
//!   ([`Fsm::partner_batches`]); at most the peer's window of messages in flight; in NORMAL,
//!   or while answering an update request;
//! * **a BNDACK** writes `atsfp`/`tsfp` back; a refusal is counted; what the link loses is
//!   queued again, and on every connection every record the partner has not acknowledged;
//! * **the failover state** is stored before anything sent after it changed (not once
//!   SHUTDOWN starts: SHUTDOWN is not a state to resume).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::Ipv4Addr;
use std::time::Duration;

use lease_record::{BindingState, Lease, UnixTime};

use super::binding::{Binding, BindingError};
use super::fsm::{self, CloseReason, Fsm, LocalEventError, PersistedState, StateKind, Transmit};
use super::judge::{
    Bounds, Verdict, acknowledged, check_bounds, installed, judge, repaired, unacked,
};
use super::loglimit::LogLimit;
use super::msg::{BindingBatch, MessageType, Options, RejectReason, Repr, StreamDecoder};
use super::pool;
use super::storage::{RecordId, Storage, StorageError};
use super::{Instant, Now, Role};

/// Wait after a link drops or a dial fails before dialling again (`failover.c:361-370`).
pub const RECONNECT_AFTER: Duration = Duration::from_secs(5);
/// How long a refused second link may take to send its CONNECT (ISC's startup timer).
pub const REFUSE_WITHIN: Duration = Duration::from_secs(15);
/// Second links answered at once at most; more are closed without an answer.
pub const MAX_REFUSALS: usize = 4;
/// How often the bindings that ran out are moved to EXPIRED.
pub const EXPIRY_SWEEP: Duration = Duration::from_secs(5);

/// A TCP connection, named by the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u64);

/// Which side opened a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Our dial (after [`Event::Dial`]).
    Dialed,
    /// Accepted on our listening socket.
    Accepted,
}

/// Why the session wants a link closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The machine ended the link (a refused CONNECT, a timeout, a protocol error).
    Fsm(CloseReason),
    /// The bytes on it are not failover messages.
    BadFraming,
    /// From an address that is not the peer's.
    UnknownPeer,
    /// A second link, refused (answered with reject 7 when it sent CONNECT, or timed out).
    Duplicate,
    /// Our own link, replaced by the primary's crossing one.
    Replaced,
    /// Our dial completed after a link was already up.
    NotNeeded,
}

/// What the driver acts on or reports.
#[derive(Debug)]
pub enum Event {
    /// Open a TCP connection to the peer; answer with [`Session::handle_link_up`]
    /// ([`Origin::Dialed`]) or [`Session::handle_dial_failed`].
    Dial,
    /// Write what is queued for this link, then close it. The session has forgotten it.
    Close { link: LinkId, cause: Cause },
    /// A durable write failed: nothing more is acknowledged. Stop serving.
    Failed(StorageError),
    /// The machine's own events (state changes, connected, refused by the peer, ...), for
    /// logs and status. `CloseLink` and `Persist` are acted on inside and not passed on.
    Fsm(fsm::Event),
}

/// A session's settings.
#[derive(Clone, Debug)]
pub struct Config {
    pub fsm: fsm::Config,
    /// How free addresses are shared ([`pool::Share`]); load balancing also uses the HBA.
    pub share: pool::Share,
    /// The only address links are accepted from.
    pub peer: Ipv4Addr,
    /// The longest lease the partner may grant, seconds: a binding ending later than its
    /// CLTT plus this and MCLT is refused ([`super::judge::check_bounds`]).
    pub max_lease_time: u32,
}

/// Counters of a session, for status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Bindings sent and not yet acknowledged.
    pub unacked: u64,
    /// Bindings sent in BNDUPDs.
    pub sent: u64,
    /// BNDUPD messages they went in.
    pub messages: u64,
    /// Bindings the partner refused.
    pub refused: u64,
    /// Bindings received in the partner's BNDUPDs.
    pub received: u64,
    /// How long BNDUPDs waited for their BNDACK.
    pub round_trip: RoundTrips,
}

/// The operator's resync of a relationship: every binding asked of the partner
/// (UPDREQALL), and how far its answer has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resync {
    /// When it was asked.
    pub asked: UnixTime,
    /// Bindings received in the partner's BNDUPDs since.
    pub received: u64,
    /// Where it is.
    pub progress: ResyncProgress,
}

/// Where a [`Resync`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResyncProgress {
    /// The partner is sending its bindings.
    Running,
    /// Its UPDDONE came at this time: every binding it has was received.
    Done(UnixTime),
    /// The link was lost at this time before the UPDDONE; ask again.
    Interrupted(UnixTime),
}

/// Buckets of [`RoundTrips`]: bucket `i < ROUND_TRIP_BUCKETS - 1` ends at `2^i` ms, the last
/// is unbounded.
pub const ROUND_TRIP_BUCKETS: usize = 16;

/// A histogram of BNDUPD → BNDACK round trips, in milliseconds (the session's clock).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoundTrips {
    /// Per bucket, not cumulative: bucket 0 counts round trips of at most 1 ms, bucket
    /// `i` those in `(2^(i-1), 2^i]` ms, the last every longer one.
    pub buckets: [u64; ROUND_TRIP_BUCKETS],
    /// Their sum, ms.
    pub sum_ms: u64,
}

impl RoundTrips {
    fn observe(&mut self, ms: u64) {
        let q = ms.saturating_sub(1);
        let i = (u64::BITS - q.leading_zeros()) as usize;
        self.buckets[i.min(ROUND_TRIP_BUCKETS - 1)] += 1;
        self.sum_ms = self.sum_ms.saturating_add(ms);
    }

    /// Round trips in all.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// A binding sent in a BNDUPD and not yet acknowledged.
#[derive(Clone, Copy, Debug)]
struct Flight {
    ip: Ipv4Addr,
    rec: RecordId,
    state: BindingState,
    tstp: UnixTime,
}

/// The answers owed for the BNDUPDs of one read: each update's xid and, per binding it
/// carried, the address and the reject (if refused).
type Acks = (u32, Vec<(Ipv4Addr, Option<BindingError>)>);

/// The records still to send, each once, in order.
#[derive(Debug, Default)]
struct SendQueue {
    set: HashSet<RecordId>,
    order: VecDeque<RecordId>,
}

impl SendQueue {
    fn push(&mut self, rec: RecordId) {
        if self.set.insert(rec) {
            self.order.push_back(rec);
        }
    }

    fn pop(&mut self) -> Option<RecordId> {
        let rec = self.order.pop_front()?;
        self.set.remove(&rec);
        Some(rec)
    }

    fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// A second link while one is established ([`Cause::Duplicate`]).
#[derive(Debug)]
struct Refusal {
    id: LinkId,
    decoder: StreamDecoder,
    until: Instant,
}

/// The link handed to the machine.
#[derive(Debug)]
struct Link {
    id: LinkId,
    decoder: StreamDecoder,
}

/// One relationship's failover protocol, link choice and binding replication (module docs).
pub struct Session<S> {
    name: String,
    peer: Ipv4Addr,
    max_lease_time: u32,
    fsm: Fsm,
    storage: S,

    link: Option<Link>,
    dialing: bool,
    next_dial: Instant,
    refusals: Vec<Refusal>,

    queue: SendQueue,
    /// BNDUPDs sent and not yet acknowledged, by xid: the bindings each carried.
    in_flight: HashMap<u32, Vec<Flight>>,
    /// When each BNDUPD in flight left, by xid.
    sent_at: HashMap<u32, Instant>,
    /// UPDDONE is due once everything queued is sent and acknowledged.
    done_pending: bool,
    /// BNDACKs owed for the BNDUPDs of the read being handled.
    acks: Vec<Acks>,
    counters: Counters,
    /// The operator's last resync ([`Session::resync`]).
    resync: Option<Resync>,
    pool: pool::Policy,
    balance: pool::Schedule,
    next_sweep: Instant,
    /// Leases that ran out whose move to EXPIRED failed: the next sweep tries them again
    /// (the tables offer a lease that ran out only once).
    expire_retry: Vec<RecordId>,

    transmits: VecDeque<(LinkId, Transmit)>,
    events: VecDeque<Event>,
    /// SHUTDOWN has started: the state is no longer stored.
    stopping: bool,
    /// A commit or a state write failed: nothing more is acknowledged or sent.
    failed: bool,
    logs: Logs,
}

/// The budgets of the log lines a peer or a stranger can cause ([`LogLimit`]).
#[derive(Debug, Default)]
struct Logs {
    /// Connections refused: from a stranger, or a second one from the peer.
    links: LogLimit,
    /// Links lost, bad framing.
    drops: LogLimit,
    /// Bindings of a received BNDUPD refused or kept against, and our bindings the peer
    /// refused.
    bindings: LogLimit,
}

impl<S> std::fmt::Debug for Session<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("name", &self.name)
            .field("state", &self.fsm.kind())
            .field("link", &self.link.as_ref().map(|l| l.id))
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

impl<S: Storage> Session<S> {
    /// The session of one relationship, resumed from its stored state (`None`: a
    /// relationship never seen), with every record the partner has not acknowledged queued.
    /// The state it starts in is stored at once.
    pub fn new(
        config: Config,
        persisted: Option<PersistedState>,
        now: Now,
        storage: S,
    ) -> Result<Self, StorageError> {
        let role = config.fsm.role;
        let name = String::from_utf8_lossy(&config.fsm.name).into_owned();
        let fsm = Fsm::new(config.fsm, persisted, now);
        let mut s = Self {
            name,
            peer: config.peer,
            max_lease_time: config.max_lease_time,
            fsm,
            storage,
            link: None,
            dialing: false,
            next_dial: now.instant,
            refusals: Vec::new(),
            queue: SendQueue::default(),
            in_flight: HashMap::new(),
            sent_at: HashMap::new(),
            done_pending: false,
            acks: Vec::new(),
            counters: Counters::default(),
            resync: None,
            pool: pool::Policy::new(role, config.share),
            balance: pool::Schedule::default(),
            expire_retry: Vec::new(),
            next_sweep: now.instant,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stopping: false,
            failed: false,
            logs: Logs::default(),
        };
        s.storage.persist(&s.fsm.persisted())?;
        let n = s.enqueue_unacked(false);
        tracing::info!(relationship = %s.name, updates = n, "failover: unacknowledged bindings queued");
        Ok(s)
    }

    /// The state machine (state, partner, timers).
    pub fn fsm(&self) -> &Fsm {
        &self.fsm
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The link the machine runs on, if any.
    pub fn link(&self) -> Option<LinkId> {
        self.link.as_ref().map(|l| l.id)
    }

    pub fn counters(&self) -> Counters {
        Counters {
            unacked: self.in_flight.values().map(|f| f.len() as u64).sum(),
            ..self.counters
        }
    }

    // ---- outputs ----

    /// The next message to write, and the link to write it to.
    pub fn poll_transmit(&mut self) -> Option<(LinkId, Transmit)> {
        if self.failed {
            self.transmits.clear();
            return None;
        }
        self.transmits.pop_front()
    }

    /// The next event to act on or report.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] is next due: the machine's timers, the next dial,
    /// a refusal's window, pool balancing and the expiry sweep.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let dial = (self.link.is_none() && !self.dialing).then_some(self.next_dial);
        let refusals = self.refusals.iter().map(|r| r.until).min();
        [
            self.fsm.poll_timeout(),
            dial,
            refusals,
            self.balance.next(),
            Some(self.next_sweep),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ---- inputs ----

    /// Everything due at `now`: the machine's timers, a dial, refusals whose window ran
    /// out, pool balancing and the expiry sweep.
    pub fn handle_timeout(&mut self, now: Now) {
        if self.fsm.poll_timeout().is_some_and(|t| t <= now.instant) {
            self.fsm.handle_timeout(now);
        }
        if self.link.is_none() && !self.dialing && self.next_dial <= now.instant {
            self.dialing = true;
            self.next_dial = now.instant + RECONNECT_AFTER;
            self.events.push_back(Event::Dial);
        }
        let events = &mut self.events;
        self.refusals.retain(|r| {
            let open = now.instant < r.until;
            if !open {
                events.push_back(Event::Close {
                    link: r.id,
                    cause: Cause::Duplicate,
                });
            }
            open
        });
        if self.balance.is_due(now.instant) {
            self.rebalance(now);
        }
        if self.next_sweep <= now.instant {
            self.next_sweep = now.instant + EXPIRY_SWEEP;
            self.expire(now);
        }
        self.drive(now);
    }

    /// A TCP link came up: our dial, or a connection accepted from `from`.
    pub fn handle_link_up(&mut self, now: Now, link: LinkId, origin: Origin, from: Ipv4Addr) {
        match origin {
            Origin::Dialed => {
                self.dialing = false;
                if self.link.is_some() {
                    tracing::debug!(relationship = %self.name, "failover: outgoing link not needed, closed");
                    self.close(link, Cause::NotNeeded);
                    return;
                }
            }
            Origin::Accepted => {
                if from != self.peer {
                    if let Some(held) = self.logs.links.allow(now.instant) {
                        tracing::warn!(relationship = %self.name, %from, held_back = held, "failover: connection from an unknown address refused");
                    }
                    self.close(link, Cause::UnknownPeer);
                    return;
                }
                // A secondary whose own link has not been through CONNECT yet takes the
                // primary's: both sides then keep the primary's link.
                let replace = self.fsm.config().role == Role::Secondary && !self.fsm.is_connected();
                match self.link.take() {
                    None => {}
                    Some(old) if replace => {
                        tracing::debug!(relationship = %self.name, "failover: own link dropped for the primary's");
                        self.close(old.id, Cause::Replaced);
                    }
                    Some(old) => {
                        self.link = Some(old);
                        if let Some(held) = self.logs.links.allow(now.instant) {
                            tracing::info!(relationship = %self.name, %from, held_back = held, "failover: duplicate connection refused");
                        }
                        if self.refusals.len() < MAX_REFUSALS {
                            self.refusals.push(Refusal {
                                id: link,
                                decoder: StreamDecoder::new(),
                                until: now.instant + REFUSE_WITHIN,
                            });
                        } else {
                            self.close(link, Cause::Duplicate);
                        }
                        return;
                    }
                }
            }
        }
        tracing::info!(relationship = %self.name, peer = %self.peer, ?origin, "failover: peer link up");
        self.link = Some(Link {
            id: link,
            decoder: StreamDecoder::new(),
        });
        self.fsm.handle_connected(now);
        self.drive(now);
    }

    /// Our dial did not connect; the next one is [`RECONNECT_AFTER`] after it started.
    pub fn handle_dial_failed(&mut self, _now: Now) {
        self.dialing = false;
    }

    /// Bytes read from `link`. Every whole message is handled; the BNDUPDs among them are
    /// installed and made durable by one commit, and only then acknowledged.
    pub fn handle_bytes(&mut self, now: Now, link: LinkId, bytes: &[u8]) {
        if let Some(r) = self.refusals.iter_mut().find(|r| r.id == link) {
            r.decoder.feed(bytes);
            self.refuse(now, link);
            return;
        }
        let Some(l) = self.link.as_mut().filter(|l| l.id == link) else {
            return;
        };
        l.decoder.feed(bytes);
        // The decoder lends out each frame; it is put back unless the link went meanwhile.
        let mut decoder = std::mem::take(&mut l.decoder);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => self.on_frame(now, frame),
                Ok(None) => break,
                Err(e) => {
                    if let Some(held) = self.logs.drops.allow(now.instant) {
                        tracing::warn!(relationship = %self.name, error = %e, held_back = held, "failover: bad framing");
                    }
                    if self.link() == Some(link) {
                        self.lose_link(now, "bad framing");
                        self.close(link, Cause::BadFraming);
                    }
                    break;
                }
            }
            self.drive(now);
            if self.link() != Some(link) {
                break;
            }
        }
        if let Some(l) = self.link.as_mut().filter(|l| l.id == link) {
            l.decoder = decoder;
        }
        self.flush_acks(now);
        // Acknowledgements written back this read that the store journals (a record with
        // relay info, whose cell is durable only through an entry of its own version).
        if !self.failed {
            self.commit();
        }
        self.drive(now);
    }

    /// `link` is gone (end of stream, read or write error).
    pub fn handle_link_closed(&mut self, now: Now, link: LinkId, why: &str) {
        self.refusals.retain(|r| r.id != link);
        if self.link() == Some(link) {
            self.lose_link(now, why);
            self.drive(now);
        }
    }

    /// Records the workers changed (and committed): sent to the partner.
    pub fn handle_changed(&mut self, now: Now, recs: &[RecordId]) {
        for &rec in recs {
            self.queue.push(rec);
        }
        self.drive(now);
    }

    /// A worker's change queue overflowed: every record of `table` the partner has not
    /// acknowledged is sent.
    pub fn handle_resync(&mut self, now: Now, table: lease_record::TableId) {
        let queue = &mut self.queue;
        self.storage.tables(&mut |t| {
            if t.id() == table {
                t.for_each(&mut |slot, l| {
                    if unacked(l) {
                        queue.push((table, slot));
                    }
                });
            }
        });
        self.drive(now);
    }

    /// The operator's resync: every binding the partner has is asked for and installed as
    /// any BNDUPD is ([`Fsm::request_all_updates`]); [`Session::resync_progress`] follows it.
    pub fn resync(&mut self, now: Now) -> Result<(), LocalEventError> {
        self.fsm.request_all_updates(now)?;
        tracing::info!(relationship = %self.name, "failover: resync asked (UPDREQALL)");
        self.resync = Some(Resync {
            asked: now.wall,
            received: 0,
            progress: ResyncProgress::Running,
        });
        self.drive(now);
        Ok(())
    }

    /// The last resync asked since start, and how far it has come.
    pub fn resync_progress(&self) -> Option<Resync> {
        self.resync
    }

    /// The operator's partner-down, the partner last known up at `since`; the time put in
    /// force ([`Fsm::partner_down`]).
    pub fn partner_down(&mut self, now: Now, since: UnixTime) -> Result<UnixTime, LocalEventError> {
        let r = self.fsm.partner_down(now, since);
        self.drive(now);
        r
    }

    /// Orderly stop: SHUTDOWN, told to the peer (draft §9.9). The state stored stays the one
    /// before it.
    pub fn shutdown(&mut self, now: Now) {
        // The last time of operation is now (draft §9.3.2 step 5), stored with the state.
        self.fsm.record_operation(now);
        self.drive(now);
        self.stopping = true;
        self.fsm.shutdown(now);
        self.drive(now);
        if self.storage.pending()
            && let Err(e) = self.storage.commit()
        {
            tracing::error!(relationship = %self.name, error = %e, "failover: final journal commit failed");
        }
    }

    /// An operation on the machine itself (PAUSED, a message of the caller's own), after
    /// which the session acts on what follows as after any input.
    pub fn operate<R>(&mut self, now: Now, f: impl FnOnce(&mut Fsm, Now) -> R) -> R {
        let r = f(&mut self.fsm, now);
        self.drive(now);
        r
    }

    // ---- inside ----

    /// Acts on the machine's events and sends what replication has, until nothing moves;
    /// the machine's messages go to the current link.
    fn drive(&mut self, now: Now) {
        loop {
            let mut moved = false;
            while let Some(e) = self.fsm.poll_event() {
                moved = true;
                self.on_fsm_event(now, e);
            }
            self.pump(now);
            while let Some(t) = self.fsm.poll_transmit() {
                moved = true;
                if let Some(l) = &self.link {
                    self.transmits.push_back((l.id, t));
                }
            }
            if !moved {
                break;
            }
        }
    }

    fn close(&mut self, link: LinkId, cause: Cause) {
        self.events.push_back(Event::Close { link, cause });
    }

    /// A durable write (`what`) failed: nothing more is acknowledged or sent (what the
    /// machine queued after it would announce what is not stored), and the daemon stops.
    fn fail(&mut self, what: &str, e: StorageError) {
        tracing::error!(relationship = %self.name, error = %e, "failover: {what} failed; nothing more is acknowledged or sent; stopping");
        self.failed = true;
        self.transmits.clear();
        self.events.push_back(Event::Failed(e));
    }

    fn commit(&mut self) -> bool {
        if !self.storage.pending() {
            return true;
        }
        match self.storage.commit() {
            Ok(()) => true,
            Err(e) => {
                self.fail("journal commit", e);
                false
            }
        }
    }

    /// The machine's link is gone: it hears of it, and what was in flight is queued again.
    fn lose_link(&mut self, now: Now, why: &str) {
        if self.forget_link(now).is_some() {
            if let Some(held) = self.logs.drops.allow(now.instant) {
                tracing::info!(relationship = %self.name, peer = %self.peer, reason = why, held_back = held, "failover: peer link lost");
            }
            self.fsm.handle_disconnected(now);
        }
    }

    /// Lets the machine's link go (closed by either end): the next dial is
    /// [`RECONNECT_AFTER`] away, and what was in flight is queued again.
    fn forget_link(&mut self, now: Now) -> Option<Link> {
        self.next_dial = now.instant + RECONNECT_AFTER;
        if let Some(r) = self
            .resync
            .as_mut()
            .filter(|r| r.progress == ResyncProgress::Running)
        {
            r.progress = ResyncProgress::Interrupted(now.wall);
            tracing::warn!(relationship = %self.name, received = r.received, "failover: resync interrupted by the link's loss; ask again once it is up");
        }
        self.reset_updates();
        self.link.take()
    }

    /// Answers a refused link's CONNECT with CONNECTACK reject 7, then closes it.
    fn refuse(&mut self, now: Now, link: LinkId) {
        let Some(i) = self.refusals.iter().position(|r| r.id == link) else {
            return;
        };
        let mut answer = None;
        let mut bad = false;
        loop {
            match self.refusals[i].decoder.next_frame() {
                Ok(Some(frame)) => {
                    if let Ok(m) = Repr::parse_bytes(frame)
                        && m.msg_type == MessageType::Connect
                    {
                        if let Some(held) = self.logs.links.allow(now.instant) {
                            tracing::info!(relationship = %self.name, held_back = held, "failover: CONNECT on a second link refused (duplicate connection)");
                        }
                        answer = Some(self.fsm.duplicate_connectack(now, &m));
                        break;
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    bad = true;
                    break;
                }
            }
        }
        let answered = answer.is_some();
        if let Some(bytes) = answer {
            self.transmits.push_back((
                link,
                Transmit {
                    msg_type: MessageType::ConnectAck,
                    bytes,
                },
            ));
        }
        if answered || bad {
            self.refusals.remove(i);
            self.close(link, Cause::Duplicate);
        }
    }

    fn on_fsm_event(&mut self, now: Now, e: fsm::Event) {
        use fsm::Event as E;
        match &e {
            E::StateChanged { to, .. } => {
                // Pools are balanced in NORMAL only, at once on entering it (`failover.c:1903`).
                if *to == StateKind::Normal {
                    self.balance.run_now(now.instant);
                } else {
                    self.balance.cancel();
                }
            }
            E::Connected => {
                // Every update the partner has not acknowledged is sent again (ISC's rule).
                let n = self.enqueue_unacked(false);
                tracing::info!(relationship = %self.name, updates = n, "failover: unacknowledged bindings queued");
            }
            E::CloseLink { reason, last_words } => {
                if let Some(l) = self.forget_link(now) {
                    for t in last_words {
                        self.transmits.push_back((l.id, t.clone()));
                    }
                    tracing::info!(relationship = %self.name, ?reason, "failover: link closed by us");
                    self.close(l.id, Cause::Fsm(*reason));
                }
                return;
            }
            E::Persist(p) => {
                // State before action: a state that could not be stored is fatal, like a
                // failed commit (ARCHITECTURE.md rule 14).
                if !self.stopping
                    && !self.failed
                    && let Err(e) = self.storage.persist(p)
                {
                    self.fail("storing the failover state", e);
                }
                return;
            }
            E::UpdateRequest { all } => {
                // UPDREQ: every record not acknowledged; UPDREQALL: every binding.
                let n = self.enqueue_unacked(*all);
                tracing::info!(relationship = %self.name, all, bindings = n, "failover: update request");
                self.done_pending = true;
            }
            E::UpdatesReceived => {
                if let Some(r) = self
                    .resync
                    .as_mut()
                    .filter(|r| r.progress == ResyncProgress::Running)
                {
                    r.progress = ResyncProgress::Done(now.wall);
                    tracing::info!(relationship = %self.name, bindings = r.received, "failover: resync done (UPDDONE)");
                }
            }
            E::PoolRequest { xid } => {
                let moved = self.rebalance(now);
                tracing::info!(relationship = %self.name, moved, "failover: pool request answered");
                let moved = u32::try_from(moved).unwrap_or(u32::MAX);
                self.fsm.send_pool_response(now, *xid, moved);
            }
            _ => {}
        }
        self.events.push_back(Event::Fsm(e));
    }

    /// Queues every record the partner has not acknowledged (`tstp > atsfp`), or with `all`
    /// every record but FREE and OFFERED (UPDREQALL). Returns how many.
    fn enqueue_unacked(&mut self, all: bool) -> usize {
        let mut n = 0;
        let queue = &mut self.queue;
        self.storage.tables(&mut |t| {
            let id = t.id();
            t.for_each(&mut |slot, l| {
                let want = if all {
                    !matches!(l.state, BindingState::Free | BindingState::Offered)
                } else {
                    unacked(l)
                };
                if want {
                    queue.push((id, slot));
                    n += 1;
                }
            });
        });
        n
    }

    /// The link is gone: an update run starts over on the next request; what was in flight
    /// goes back to the send queue.
    fn reset_updates(&mut self) {
        for f in self.in_flight.values().flatten() {
            self.queue.push(f.rec);
        }
        self.in_flight.clear();
        self.sent_at.clear();
        self.done_pending = false;
    }

    /// Changes a record from the control plane and journals it (durable after the next
    /// commit), queued to be sent. A change of state is marked unacknowledged (`atsfp`
    /// cleared, `tstp` at least `now`), as the engine marks its own.
    fn write(
        &mut self,
        rec: RecordId,
        now: UnixTime,
        change: &mut dyn FnMut(&Lease) -> Option<Lease>,
    ) -> Result<Option<Lease>, StorageError> {
        let written = self.storage.update(rec, true, &mut |cur| {
            let mut new = change(cur)?;
            if new.state != cur.state {
                new.atsfp = UnixTime(0);
                new.tstp = new.tstp.max(now);
            }
            Some(new)
        })?;
        if written.is_some() {
            self.queue.push(rec);
        }
        Ok(written)
    }

    /// One whole message from the link. BNDUPDs are installed (their answers wait for the
    /// read's commit); BNDACKs settle what they answer.
    fn on_frame(&mut self, now: Now, frame: &[u8]) {
        let Some(m) = self.fsm.handle_frame(now, frame) else {
            // Refused; the machine closes the link (CloseLink).
            return;
        };
        match m.msg_type {
            MessageType::BndAck => self.on_bndack(now, &m),
            MessageType::BndUpd => {
                let mut answers = Vec::new();
                for o in m.bindings() {
                    if let Some(ip) = o.assigned_ip {
                        answers.push((ip, self.on_bndupd(&o, now)));
                    }
                }
                let n = answers.len() as u64;
                self.counters.received += n;
                if let Some(r) = self
                    .resync
                    .as_mut()
                    .filter(|r| r.progress == ResyncProgress::Running)
                {
                    r.received += n;
                }
                if !answers.is_empty() {
                    self.acks.push((m.xid, answers));
                }
            }
            _ => {}
        }
    }

    /// Makes the updates installed by this read durable (one commit), then acknowledges
    /// them: each BNDUPD with one BNDACK naming its bindings. A failed commit sends none.
    fn flush_acks(&mut self, now: Now) {
        if self.acks.is_empty() {
            return;
        }
        let acks = std::mem::take(&mut self.acks);
        if self.failed || !self.commit() {
            return;
        }
        let mut batch = BindingBatch::new(MessageType::BndAck);
        for (xid, answers) in acks {
            for (ip, reject) in answers {
                let ack = Binding::ack(ip, reject.as_ref());
                if !batch.push(&ack.options) {
                    // Answers are shorter than the updates they answer; should a batch
                    // still overflow, the rest follows under the same xid.
                    let _ = self.fsm.send(now, &batch.repr(now.wall, xid), Some(xid));
                    batch.clear();
                    batch.push(&ack.options);
                }
            }
            let _ = self.fsm.send(now, &batch.repr(now.wall, xid), Some(xid));
            batch.clear();
        }
    }

    /// Sends queued BNDUPDs within the peer's window (in NORMAL, or while answering an update
    /// request); UPDDONE when all are acknowledged. Each binding is read from its record
    /// now, so the latest state is what leaves. Toward ISC one binding per BNDUPD (it
    /// cannot parse more); toward a tandem peer ([`Fsm::partner_batches`]) as many as fit
    /// in one message ([`BindingBatch`]).
    fn pump(&mut self, now: Now) {
        if self.failed || !self.fsm.is_connected() {
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
        let mut carry: Option<Next> = None;
        while sending && self.in_flight.len() < window {
            let mut flights = Vec::new();
            while flights.len() < per_message {
                let Some((b, rec, tstp)) = carry.take().or_else(|| self.next_binding()) else {
                    break;
                };
                if batch.push(&b.to_repr().options) {
                    flights.push(Flight {
                        ip: b.ip,
                        rec,
                        state: b.status.to_lease(),
                        tstp,
                    });
                } else if flights.is_empty() {
                    // Cannot happen for a valid record (a binding is at most ~450 bytes).
                    tracing::warn!(relationship = %self.name, ip = %b.ip, "failover: binding too long for a BNDUPD; not sent");
                } else {
                    carry = Some((b, rec, tstp));
                    break;
                }
            }
            if flights.is_empty() {
                break;
            }
            match self.fsm.send(now, &batch.repr(now.wall, 0), None) {
                Some(xid) => {
                    self.counters.sent += flights.len() as u64;
                    self.counters.messages += 1;
                    self.in_flight.insert(xid, flights);
                    self.sent_at.insert(xid, now.instant);
                    batch.clear();
                }
                None => {
                    // Not connected any more: the run is over.
                    for f in &flights {
                        self.queue.push(f.rec);
                    }
                    if let Some((_, rec, _)) = carry {
                        self.queue.push(rec);
                    }
                    self.reset_updates();
                    return;
                }
            }
        }
        if let Some((_, rec, _)) = carry {
            self.queue.push(rec);
        }
        if self.done_pending && self.queue.is_empty() && self.in_flight.is_empty() {
            self.done_pending = false;
            tracing::info!(relationship = %self.name, "failover: update request answered, update done");
            self.fsm.update_done(now);
        }
    }

    /// The next binding to send, read from its record now, with the record's `tstp` the
    /// acknowledgement is matched against (0: the partner's own binding echoed).
    fn next_binding(&mut self) -> Option<Next> {
        loop {
            let rec = self.queue.pop()?;
            let Some((ip, l)) = self.storage.read(rec) else {
                continue;
            };
            if let Some(mut b) = Binding::from_lease(ip, &l, 0) {
                // A binding the partner sent us (`tstp` 0 once installed) goes back, on an
                // update request or as the winner of a conflict, with the partner's own
                // potential expiry: a 0 there would erase what the partner knows of it.
                b.potential_expiry = b.potential_expiry.max(l.tsfp);
                return Some((b, rec, l.tstp));
            }
        }
    }

    /// A BNDACK: the update it answers is no longer in flight. Each binding it names
    /// (one from ISC, the whole batch from tandem) is settled: accepted, its potential expiry
    /// is written back into the record (`atsfp`, `tsfp`); refused, it is logged and counted
    /// (the record stays unacknowledged and is sent again after a reconnect). A binding of
    /// the update that the BNDACK does not name is queued again.
    fn on_bndack(&mut self, now: Now, m: &Repr<'_>) {
        let Some(flights) = self.in_flight.remove(&m.xid) else {
            tracing::debug!(relationship = %self.name, xid = m.xid, "failover: BNDACK for no update in flight");
            return;
        };
        if let Some(sent) = self.sent_at.remove(&m.xid) {
            let rtt = now.instant.saturating_duration_since(sent);
            self.counters
                .round_trip
                .observe(u64::try_from(rtt.as_millis()).unwrap_or(u64::MAX));
        }
        let answers: Vec<Options<'_>> = m.bindings().collect();
        for f in flights {
            let answer = match answers.iter().find(|o| o.assigned_ip == Some(f.ip)) {
                Some(o) => Some(o),
                // A BNDACK without an address answers a single update.
                None if answers.is_empty() => Some(&m.options),
                None => None,
            };
            let Some(o) = answer else {
                tracing::debug!(relationship = %self.name, ip = %f.ip, xid = m.xid, "failover: BNDACK does not name this binding; sending it again");
                self.queue.push(f.rec);
                continue;
            };
            if let Some(r) = o.reject_reason {
                self.counters.refused += 1;
                let msg = o.message.map(String::from_utf8_lossy);
                if let Some(held) = self.logs.bindings.allow(now.instant) {
                    tracing::warn!(relationship = %self.name, ip = %f.ip, reason = ?r,
                        message = msg.as_deref().unwrap_or(""), refused = self.counters.refused,
                        held_back = held, "failover: binding update refused by the partner");
                }
                continue;
            }
            if f.tstp != UnixTime(0)
                && let Err(e) = self
                    .storage
                    .update(f.rec, false, &mut |cur| acknowledged(cur, f.state, f.tstp))
            {
                tracing::warn!(relationship = %self.name, ip = %f.ip, error = %e, "failover: acknowledgement not written back");
            }
        }
    }

    /// One binding of a BNDUPD: checked (ISC's rules), judged against our record, installed
    /// by CAS and journaled (committed by the read's commit). Returns the BNDACK's reject,
    /// if any.
    fn on_bndupd(&mut self, o: &Options<'_>, at: Now) -> Option<BindingError> {
        let now = at.wall;
        let b = match Binding::from_options(o) {
            Ok(b) => b,
            Err(e) => {
                if let Some(held) = self.logs.bindings.allow(at.instant) {
                    tracing::info!(relationship = %self.name, ip = ?o.assigned_ip, error = %e, held_back = held, "failover: BNDUPD refused");
                }
                return Some(e);
            }
        };
        let Some(rec) = self.storage.locate(b.ip) else {
            if let Some(held) = self.logs.bindings.allow(at.instant) {
                tracing::info!(relationship = %self.name, ip = %b.ip, held_back = held, "failover: BNDUPD for an address in none of our pools refused");
            }
            return Some(BindingError {
                reason: RejectReason::IllegalIpAddress,
                message: "IP address not in pool",
            });
        };
        let bounds = Bounds {
            now,
            max_clock_skew: self.fsm.config().max_clock_skew,
            max_lease_time: self.max_lease_time,
            mclt: self.fsm.mclt(),
        };
        if let Err(e) = check_bounds(&b, !self.storage.is_allocatable(rec), &bounds) {
            if let Some(held) = self.logs.bindings.allow(at.instant) {
                tracing::info!(relationship = %self.name, ip = %b.ip, status = ?b.status, error = %e, held_back = held, "failover: BNDUPD out of bounds refused");
            }
            return Some(e);
        }
        let us = self.pool.role;
        let state = self.fsm.kind();
        let ours_in_flight = self.in_flight.values().flatten().any(|f| f.ip == b.ip);
        let mut verdict = Verdict::Apply;
        let r = self.storage.update(rec, true, &mut |cur| {
            verdict = judge(us, state, cur, ours_in_flight, &b, now);
            match verdict {
                Verdict::Apply => Some(installed(cur, &b)),
                Verdict::Repair => Some(repaired(cur, &b, &bounds)),
                _ => None,
            }
        });
        if let Err(e) = r {
            tracing::warn!(relationship = %self.name, ip = %b.ip, error = %e, "failover: binding update not stored");
            return Some(BindingError {
                reason: RejectReason::Unknown,
                message: "binding not stored",
            });
        }
        match verdict {
            Verdict::Apply => {
                // The partner's update beat ours: ours is dropped (ISC `failover.c:5212-5231`).
                self.drop_in_flight(b.ip);
                tracing::debug!(relationship = %self.name, ip = %b.ip, status = ?b.status, "failover: binding update applied");
                None
            }
            Verdict::Repair => {
                self.drop_in_flight(b.ip);
                if let Some(held) = self.logs.bindings.allow(at.instant) {
                    tracing::warn!(relationship = %self.name, ip = %b.ip, cltt = b.cltt.0, ends = b.ends.0, held_back = held,
                        "failover: the partner's renewal came back with our older lease end; kept for the longest it can have granted and sent back");
                }
                self.queue.push(rec);
                None
            }
            Verdict::KeepOurs => {
                if let Some(held) = self.logs.bindings.allow(at.instant) {
                    tracing::info!(relationship = %self.name, ip = %b.ip, status = ?b.status, held_back = held, "failover: our binding wins; sending it");
                }
                self.queue.push(rec);
                None
            }
            Verdict::Outdated => {
                if let Some(held) = self.logs.bindings.allow(at.instant) {
                    tracing::info!(relationship = %self.name, ip = %b.ip, status = ?b.status, held_back = held, "failover: binding update older than our binding refused; sending ours");
                }
                self.queue.push(rec);
                Some(BindingError {
                    reason: RejectReason::LessCriticalBindingInformation,
                    message: "our binding of this address is newer",
                })
            }
            Verdict::Reject(e) => {
                if let Some(held) = self.logs.bindings.allow(at.instant) {
                    tracing::info!(relationship = %self.name, ip = %b.ip, status = ?b.status, reason = ?e.reason, held_back = held, "failover: binding update refused");
                }
                Some(e)
            }
        }
    }

    /// Forgets our updates of `ip` in flight: the partner's binding of it was installed, so
    /// their BNDACKs settle nothing.
    fn drop_in_flight(&mut self, ip: Ipv4Addr) {
        for flights in self.in_flight.values_mut() {
            flights.retain(|f| f.ip != ip);
        }
    }

    /// Moves every binding of our pool whose lease ran out to EXPIRED, journaled, made
    /// durable and sent to the partner (ISC's pool timer does the same). Only once the
    /// partner acknowledges EXPIRED does the address go to a client again
    /// (the daemon's gate): until then the partner may still renew it. Returns how many moved.
    fn expire(&mut self, now: Now) -> u64 {
        let ran_out = |l: &Lease| {
            l.state == BindingState::Active
                && l.owner == lease_record::Owner::Us
                && l.ends <= now.wall
        };
        // The tables offer each lease that ran out once (their expiry index): one whose
        // write fails is kept here and tried again by the next sweep.
        let mut due = std::mem::take(&mut self.expire_retry);
        self.storage.tables(&mut |t| {
            let id = t.id();
            t.due(now.wall, &mut |slot, l| {
                if ran_out(l) {
                    due.push((id, slot));
                }
            });
        });
        let mut moved = 0;
        for rec in due {
            let r = self.write(rec, now.wall, &mut |cur| {
                ran_out(cur).then_some(Lease {
                    state: BindingState::Expired,
                    stos: now.wall,
                    ..*cur
                })
            });
            match r {
                Ok(Some(_)) => moved += 1,
                Ok(None) => {}
                Err(e) => {
                    self.expire_retry.push(rec);
                    tracing::warn!(relationship = %self.name, error = %e, "failover: an expired binding could not be moved to EXPIRED");
                }
            }
        }
        self.commit();
        if moved > 0 {
            tracing::debug!(relationship = %self.name, moved, "failover: bindings expired");
        }
        moved
    }

    /// One pool balancing run over the relationship's tables ([`pool`]): the addresses
    /// given away are written and journaled, made durable, and queued as BNDUPDs; POOLREQ
    /// if this side is short. Returns how many moved. Runs only in NORMAL (a move the
    /// partner never hears of would strand the address).
    fn rebalance(&mut self, now: Now) -> u64 {
        if self.fsm.kind() != StateKind::Normal {
            self.balance.cancel();
            return 0;
        }
        let policy = self.pool;
        let hba = self.fsm.hba();
        let hba = (policy.share == pool::Share::Half).then_some(&hba);
        let mut plans = Vec::new();
        self.storage.tables(&mut |t| {
            plans.push((t.id(), pool::plan_table(&policy, hba, t)));
        });
        let mut total = pool::Outcome::default();
        let mut failed = None;
        for (id, (mut out, chosen)) in plans {
            let (own, peer) = (policy.own_state(), policy.peer_state());
            for slot in chosen {
                match self.write((id, slot), now.wall, &mut |cur| {
                    (cur.state == own).then(|| pool::moved(cur, peer, now.wall))
                }) {
                    Ok(Some(_)) => out.moved += 1,
                    Ok(None) => {}
                    Err(e) => failed = Some(e),
                }
            }
            tracing::info!(relationship = %self.name, table = id.0, free = out.counts.free, backup = out.counts.backup, moved = out.moved, panic = out.panic, "failover: pool balanced");
            total.add(&out);
        }
        if let Some(e) = failed {
            tracing::warn!(relationship = %self.name, error = %e, "failover: pool balancing could not move an address");
        }
        if !self.commit() {
            return 0;
        }
        self.balance.ran(&policy, &total, now);
        if total.panic {
            tracing::info!(relationship = %self.name, "failover: short of addresses: asking the partner to rebalance (POOLREQ)");
            let _ = self
                .fsm
                .send(now, &Repr::new(MessageType::PoolReq, now.wall, 0), None);
        }
        total.moved
    }
}

/// A binding to send, the record it came from, and the `tstp` its acknowledgement matches.
type Next = (Binding, RecordId, UnixTime);

#[cfg(test)]
mod tests {
    use super::*;
    use lease_record::{Slot, TableId};

    #[test]
    fn send_queue_keeps_each_address_once_in_order() {
        let r = |s| (TableId(0), Slot(s));
        let mut q = SendQueue::default();
        q.push(r(3));
        q.push(r(1));
        q.push(r(3));
        assert_eq!(q.order.len(), 2);
        assert_eq!(q.pop(), Some(r(3)));
        q.push(r(3));
        assert_eq!(q.pop(), Some(r(1)));
        assert_eq!(q.pop(), Some(r(3)));
        assert!(q.is_empty());
    }

    #[test]
    fn round_trips_fall_in_power_of_two_millisecond_buckets() {
        let mut h = RoundTrips::default();
        for ms in [0, 1, 2, 3, 4, 5, 1 << 14, (1 << 14) + 1, u64::MAX] {
            h.observe(ms);
        }
        assert_eq!(&h.buckets[..4], &[2, 1, 2, 1]);
        assert_eq!(h.buckets[ROUND_TRIP_BUCKETS - 2], 1);
        assert_eq!(h.buckets[ROUND_TRIP_BUCKETS - 1], 2);
        assert_eq!(h.count(), 9);
        assert_eq!(h.sum_ms, u64::MAX, "the sum saturates");
    }
}
