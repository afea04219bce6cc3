//! The DHCP server's batch handler: joins the wire formats, the engine and the journal.
//!
//! For each received frame: [`crate::wire::frame::parse`] → [`crate::wire::dhcpv4::Repr::parse`] →
//! the rate limits per relay, circuit-id and MAC ([`crate::limit`], drops `rate-*`) →
//! [`Engine::decide`] → the lease change (if any) is recorded in this worker's journal and
//! the reply frame is built. A reply that promises nothing durable (an OFFER, a NAK) goes
//! into the transmit batch and leaves as soon as the batch is handled. One that promises a
//! change (an ACK) is held with its group commit ([`crate::commit`]): after the batch, the
//! changes recorded so far are committed on the commit thread (one write and one
//! fdatasync for every batch since the last commit), and the held replies leave through
//! [`BatchHandler::durable`] once that is done, while the worker goes on with the next
//! batches. If a commit fails, the replies it held are discarded and the process is told
//! to stop (DESIGN.md §4: an fsync error is not retried; recovery replays the journal).
#![forbid(unsafe_code)]

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use std::io;
use std::os::fd::BorrowedFd;

use lease_mmap::{Slot, TableId, UnixTime, WorkerJournal};

use crate::commit::Committer;
use crate::engine::{
    Decision, DropReason as EngineDrop, Engine, EngineWorker, Ingress, SERVER_PORT,
};
use crate::limit::{self, Buckets, RateLimits};
use crate::stats::{DropReason, MESSAGE_KINDS, WorkerStats, message_slot};
use crate::sys;
use crate::wire::dhcpv4::{self, Repr};
use crate::wire::frame::{self, ReplyHeader};
use crate::wire::relay::RelayAgentInfo;
use crate::worker::{BatchHandler, DEFAULT_SLOT_LEN, RxBatch, TxBatch};

/// IPv4 TTL of replies.
const REPLY_TTL: u8 = 64;
/// Scratch for RFC 3396 / option-overload concatenation: never more than the message.
const SCRATCH_LEN: usize = 1536;
/// Replies one group commit holds at most. A group grows while the one before it syncs;
/// when the next batch might not fit, the worker waits for that sync first (at 1,024 ACKs
/// per ≈2 ms fdatasync, ≈500,000 ACKs a second: past what one core receives).
const HELD_SLOTS: usize = 1024;

/// An interface DHCP is served on, as the handler needs it to address replies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub ifindex: u32,
    pub mac: [u8; 6],
    /// Its first IPv4 address (selects the scope of directly attached clients; the server
    /// identifier when none is configured).
    pub addr: Option<Ipv4Addr>,
}

impl Interface {
    /// Looks `name` up in the calling thread's network namespace.
    pub fn lookup(name: &str) -> std::io::Result<Interface> {
        Ok(Interface {
            name: name.to_owned(),
            ifindex: sys::if_nametoindex(name)?,
            mac: sys::if_hwaddr(name)?,
            addr: sys::if_ipv4(name)?,
        })
    }
}

/// Where a worker hands the leasequeries it receives (RFC 4388 DHCPLEASEQUERY, message type
/// 10): the control plane answers them from the lease tables, off the fast path (a query by
/// remote-id walks whole tables). Called on the fast path: implementations copy the frame
/// into a bounded queue and never block.
pub trait QuerySink: Send {
    /// Take a copy of `frame`, received on interface `ifindex`; `false` when the queue is
    /// full (the worker drops the frame and counts [`DropReason::LeasequeryBacklog`]).
    fn forward(&mut self, frame: &[u8], ifindex: u32) -> bool;
}

/// Option 53's DHCPLEASEQUERY (RFC 4388 §6.1).
pub const DHCPLEASEQUERY: u8 = 10;

/// Where the wall clock comes from (tests pass a virtual one).
pub type Clock = fn() -> UnixTime;

/// Where a worker reports every record it changed, once the change is durable (after the
/// batch's group commit, before its replies leave): failover replication sends them to the
/// partner. Called on the fast path: implementations must not block or allocate.
pub trait ChangeSink: Send {
    /// Record `slot` of `table` changed in the batch just committed.
    fn changed(&mut self, table: TableId, slot: Slot);
    /// Every change of the batch was reported (a consumer may be woken once per batch).
    fn batch_done(&mut self) {}
}

/// How a handler sheds load when the datapath is backlogged (DESIGN.md §2 "Overload").
///
/// A receive batch of at least [`OverloadPolicy::backlog`] frames means frames are waiting
/// in the kernel faster than the worker serves them. Such a batch is served in two passes:
/// first everything that is not a DHCPDISCOVER (REQUESTs of renewing and selecting clients:
/// each one completes a lease), then the DISCOVERs in arrival order, of which
/// * one superseded by a later DISCOVER from the same `chaddr` in the same batch is dropped
///   as [`DropReason::Stale`] (the client has retransmitted; the later copy is answered),
///   as is one whose `secs` is at least [`OverloadPolicy::stale_secs`] when that is set;
/// * beyond [`OverloadPolicy::discover_budget`] answered, the rest are dropped as
///   [`DropReason::Shed`], before the engine spends an allocation and an offer hold on them.
///
/// Below the backlog mark every frame is served in arrival order, as without a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverloadPolicy {
    /// A batch of at least this many frames is a backlog; 0: the transmit batch's capacity
    /// (the datapath's batch size: a full batch).
    pub backlog: usize,
    /// DISCOVERs answered per backlogged batch; 0: half the backlog mark.
    pub discover_budget: usize,
    /// Under backlog, a DISCOVER whose client has been trying for at least this many seconds
    /// (`secs`) is dropped as stale; 0: `secs` is not looked at (the default: a patient client
    /// would otherwise never be served under sustained overload).
    pub stale_secs: u16,
}

impl OverloadPolicy {
    /// A full batch is a backlog; half of it may be DISCOVERs; `secs` is not looked at.
    pub const DEFAULT: OverloadPolicy = OverloadPolicy {
        backlog: 0,
        discover_budget: 0,
        stale_secs: 0,
    };
    /// Never sheds: every frame in arrival order.
    pub const OFF: OverloadPolicy = OverloadPolicy {
        backlog: usize::MAX,
        discover_budget: usize::MAX,
        stale_secs: 0,
    };
}

impl Default for OverloadPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A DHCPDISCOVER of a backlogged batch, waiting for the second pass.
#[derive(Clone, Copy, Debug)]
struct PendingDiscover {
    /// Index in the batch.
    index: usize,
    /// `hlen` and `chaddr`: who sent it.
    client: (u8, [u8; 16]),
    secs: u16,
}

/// `Some` for a frame carrying a DHCPDISCOVER (message type in the options field), with who
/// sent it; `None` for anything else, malformed frames included (the first pass deals with
/// them). Cheap: no option concatenation.
fn discover_of(data: &[u8], index: usize) -> Option<PendingDiscover> {
    let f = frame::parse(data).ok()?;
    let p = dhcpv4::Packet::new_checked(f.dhcp).ok()?;
    if !p.is_dhcp() {
        return None;
    }
    let mt = crate::wire::options::OptionsIter::new(p.options())
        .map_while(Result::ok)
        .find(|o| o.kind == 53)?;
    (mt.data == [1]).then(|| PendingDiscover {
        index,
        client: (p.hlen().min(16), p.chaddr()),
        secs: p.secs(),
    })
}

/// What a live configuration change replaces in every worker: the engine (scopes, options,
/// lease times, pools, exclusions, reservations, relays) and the workers' request limits.
#[derive(Debug)]
pub struct Serving {
    pub engine: Arc<Engine>,
    pub limits: RateLimits,
}

/// The configuration the workers serve from, replaceable while they run. A worker looks at
/// the generation once per batch (one atomic load) and takes the new [`Serving`] when it
/// moved, so every batch is decided wholly by one configuration, old or new; the lock is
/// taken only on a change.
#[derive(Debug)]
pub struct Live {
    current: Mutex<Arc<Serving>>,
    generation: AtomicU64,
}

impl Live {
    pub fn new(serving: Serving) -> Arc<Self> {
        Arc::new(Live {
            current: Mutex::new(Arc::new(serving)),
            generation: AtomicU64::new(0),
        })
    }

    /// Bumped by every [`Live::replace`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The configuration in force and its generation.
    pub fn load(&self) -> (u64, Arc<Serving>) {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        (
            self.generation.load(Ordering::Acquire),
            Arc::clone(&current),
        )
    }

    /// Put `serving` in force: each worker takes it before its next batch. Returns the new
    /// generation.
    pub fn replace(&self, serving: Serving) -> u64 {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        *current = Arc::new(serving);
        self.generation.fetch_add(1, Ordering::AcqRel) + 1
    }
}

/// One worker's DHCP handler.
pub struct DhcpHandler {
    engine: Arc<Engine>,
    /// Where a live configuration change comes from, and the generation last taken.
    live: Option<(Arc<Live>, u64)>,
    worker: EngineWorker,
    commits: Committer,
    interfaces: Arc<[Interface]>,
    stats: Arc<WorkerStats>,
    /// Set when a group commit failed: the daemon stops and exits non-zero.
    fatal: Arc<AtomicBool>,
    clock: Clock,
    /// Failover's outbound queue, if any: told of each change once it is durable.
    sink: Option<Box<dyn ChangeSink>>,
    /// Where leasequeries go; without one they are dropped (`leasequery-backlog`).
    queries: Option<Box<dyn QuerySink>>,
    /// The replies held for the group being recorded, for the group in flight, and for the
    /// finished group the worker sends next. Three `Held`s in all: while no group is in
    /// flight, the spare waits in `free` (exactly one of `flight` and `free` is set).
    held: Held,
    flight: Option<Held>,
    out: Held,
    free: Option<Held>,
    /// Reused for every frame: `Repr::parse` writes each concatenation before reading it,
    /// so the buffer need not be cleared (no 1.5 KiB memset per packet).
    scratch: [u8; SCRATCH_LEN],
    overload: OverloadPolicy,
    /// The DISCOVERs of a backlogged batch (allocated once, batch-sized).
    pending: Vec<PendingDiscover>,
    /// Rate limits per MAC, circuit-id and relay ([`crate::limit`]).
    limits: Limiter,
    /// The batch's replies that promise nothing, by [`message_slot`], counted as sent
    /// after the batch.
    sent: [u64; MESSAGE_KINDS.len()],
}

/// The replies of one group commit, held until its entries are durable, and what the
/// failover sink and the counters learn of it then.
#[derive(Debug)]
struct Held {
    tx: TxBatch,
    /// The group's changes, for the failover sink.
    changes: Vec<(TableId, Slot)>,
    /// Its replies by [`message_slot`].
    sent: [u64; MESSAGE_KINDS.len()],
}

impl Held {
    fn new() -> Self {
        Held {
            tx: TxBatch::new(HELD_SLOTS, DEFAULT_SLOT_LEN),
            changes: Vec::new(),
            sent: [0; MESSAGE_KINDS.len()],
        }
    }

    /// Forgets everything it held.
    fn clear(&mut self) {
        self.tx.clear();
        self.changes.clear();
        self.sent = [0; MESSAGE_KINDS.len()];
    }
}
/// A worker's buckets, one table per class.
#[derive(Debug)]
struct Limiter {
    limits: RateLimits,
    mac: Buckets,
    circuit: Buckets,
    relay: Buckets,
}

impl Limiter {
    fn new(l: RateLimits) -> Self {
        Limiter {
            limits: l,
            mac: Buckets::new(l.mac),
            circuit: Buckets::new(l.circuit),
            relay: Buckets::new(l.relay),
        }
    }

    /// `None` when `req` is within every limit (taking a token of each), else the first
    /// limit it is over. The relay's first: a flood through one relay is stopped there
    /// whatever MACs it carries.
    fn check(&mut self, req: &Repr<'_>, ingress: &Ingress, now: UnixTime) -> Option<DropReason> {
        if let Some(relay) = limit::relay_key(req, ingress) {
            if !self.relay.allow(relay, now) {
                return Some(DropReason::RateRelay);
            }
            let circuit = req
                .options
                .relay_agent_info
                .and_then(|ri| RelayAgentInfo::parse(ri).ok())
                .and_then(|ri| ri.circuit_id);
            if let Some(c) = circuit
                && !self
                    .circuit
                    .allow(limit::hash(&[&ingress.src_ip.octets(), c]), now)
            {
                return Some(DropReason::RateCircuit);
            }
        }
        if !self.mac.allow(limit::mac_key(req), now) {
            return Some(DropReason::RateMac);
        }
        None
    }
}

impl std::fmt::Debug for DhcpHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DhcpHandler").finish_non_exhaustive()
    }
}

impl DhcpHandler {
    /// `worker` is this worker's engine state ([`Engine::worker`]); `journal` is committed
    /// on a commit thread of its own, started here.
    ///
    /// # Errors
    /// If the commit thread or its eventfd cannot be created.
    pub fn new(
        engine: Arc<Engine>,
        worker: EngineWorker,
        journal: WorkerJournal,
        interfaces: Arc<[Interface]>,
        stats: Arc<WorkerStats>,
        fatal: Arc<AtomicBool>,
        clock: Clock,
    ) -> io::Result<Self> {
        Ok(DhcpHandler {
            engine,
            live: None,
            worker,
            commits: Committer::new(journal)?,
            interfaces,
            stats,
            fatal,
            clock,
            sink: None,
            queries: None,
            held: Held::new(),
            flight: None,
            out: Held::new(),
            free: Some(Held::new()),
            scratch: [0; SCRATCH_LEN],
            overload: OverloadPolicy::DEFAULT,
            pending: Vec::with_capacity(sys::MAX_BATCH),
            limits: Limiter::new(RateLimits::OFF),
            sent: [0; MESSAGE_KINDS.len()],
        })
    }

    /// Applies `limits` ([`RateLimits::OFF`] unless set; `tandemd` sets its config's).
    pub fn with_rate_limits(mut self, limits: RateLimits) -> Self {
        self.limits = Limiter::new(limits);
        self
    }

    /// Serves from `live` from now on: its configuration in force replaces the engine and
    /// rate limits given so far, and each later change is taken before the next batch.
    pub fn with_live(mut self, live: Arc<Live>) -> Self {
        let (generation, serving) = live.load();
        self.adopt(&serving);
        self.live = Some((live, generation));
        self
    }

    /// Take the live configuration if it changed since the last batch.
    fn follow_live(&mut self) {
        let Some((live, seen)) = &mut self.live else {
            return;
        };
        if live.generation() == *seen {
            return;
        }
        let (generation, serving) = live.load();
        *seen = generation;
        self.adopt(&serving);
    }

    fn adopt(&mut self, serving: &Serving) {
        self.engine = Arc::clone(&serving.engine);
        self.worker.retune(&self.engine);
        if self.limits.limits != serving.limits {
            self.limits = Limiter::new(serving.limits);
        }
    }

    /// Reports every committed change to `sink` (failover replication).
    pub fn with_change_sink(mut self, sink: Box<dyn ChangeSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Hands every leasequery to `sink` (the control plane's responder).
    pub fn with_query_sink(mut self, sink: Box<dyn QuerySink>) -> Self {
        self.queries = Some(sink);
        self
    }

    /// Buffers the journal entry of `c` into the next group (and remembers the change for
    /// the sink).
    fn record(
        commits: &mut Committer,
        changes: Option<&mut Vec<(TableId, Slot)>>,
        c: &crate::engine::Commit,
    ) {
        commits.record(c.table, c.slot, c.version, &c.lease);
        if let Some(changes) = changes {
            changes.push((c.table, c.slot));
        }
    }

    /// Replaces the overload policy ([`OverloadPolicy::DEFAULT`] unless set).
    pub fn with_overload(mut self, policy: OverloadPolicy) -> Self {
        self.overload = policy;
        self
    }

    /// Serves a backlogged batch: non-DISCOVERs first, then the DISCOVERs that are neither
    /// stale nor over the budget ([`OverloadPolicy`]).
    fn handle_backlog(
        &mut self,
        rx: &RxBatch<'_>,
        backlog: usize,
        now: UnixTime,
        tx: &mut TxBatch,
    ) {
        self.pending.clear();
        for (i, f) in rx.iter().enumerate() {
            let Some(f) = f else { continue };
            match discover_of(f.data, i) {
                Some(d) => self.pending.push(d),
                None => {
                    self.handle_frame(f.data, f.meta.ifindex, now, tx);
                }
            }
        }
        let budget = match self.overload.discover_budget {
            0 => (backlog / 2).max(1),
            n => n,
        };
        let stale_secs = self.overload.stale_secs;
        let mut answered = 0usize;
        let pending = std::mem::take(&mut self.pending);
        for (j, d) in pending.iter().enumerate() {
            let superseded = pending[j + 1..]
                .iter()
                .any(|later| later.client == d.client);
            // A DISCOVER dropped here was read all the same (`handle_frame` counts the rest).
            let discover = message_slot(Some(dhcpv4::MessageType::Discover));
            if superseded || (stale_secs != 0 && d.secs >= stale_secs) {
                self.stats.add_received(discover, 1);
                self.stats.add_drop(DropReason::Stale);
                continue;
            }
            if answered >= budget {
                self.stats.add_received(discover, 1);
                self.stats.add_drop(DropReason::Shed);
                continue;
            }
            // Only a DISCOVER that reaches the engine spends the budget: one dropped by a
            // rate limit costs next to nothing, and a flood from one MAC, circuit or relay
            // must not use up the budget of everyone else's.
            if let Some(f) = rx.get(d.index)
                && self.handle_frame(f.data, f.meta.ifindex, now, tx)
            {
                answered += 1;
            }
        }
        self.pending = pending;
    }

    /// Give back the journal (at shutdown, to commit what is pending), once the group in
    /// flight is done. `None` if the commit thread panicked.
    pub fn into_journal(self) -> Option<WorkerJournal> {
        self.commits.into_journal()
    }

    fn interface(&self, ifindex: u32) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.ifindex == ifindex)
    }

    /// Handles one frame: drop it (counted), or record its lease change and queue its reply.
    /// Whether it reached the engine (was neither malformed, nor not for us, nor over a rate
    /// limit).
    fn handle_frame(&mut self, data: &[u8], ifindex: u32, now: UnixTime, tx: &mut TxBatch) -> bool {
        let Ok(f) = frame::parse(data) else {
            self.stats.add_drop(DropReason::Malformed);
            return false;
        };
        if f.udp_dst != SERVER_PORT {
            self.stats.add_drop(DropReason::NotForUs);
            return false;
        }
        let Some(iface) = self.interface(ifindex) else {
            self.stats.add_drop(DropReason::NotForUs);
            return false;
        };
        let (if_mac, if_addr) = (iface.mac, iface.addr.unwrap_or(Ipv4Addr::UNSPECIFIED));
        let Ok(packet) = dhcpv4::Packet::new_checked(f.dhcp) else {
            self.stats.add_drop(DropReason::MalformedDhcp);
            return false;
        };
        let Ok(req) = Repr::parse(&packet, &mut self.scratch) else {
            self.stats.add_drop(DropReason::MalformedDhcp);
            return false;
        };
        let kind = message_slot(req.options.message_type.filter(|_| req.is_dhcp));
        self.stats.add_received(kind, 1);
        let ingress = Ingress {
            if_addr,
            src_mac: f.eth_src,
            src_ip: f.ip_src,
        };
        if let Some(reason) = self.limits.check(&req, &ingress, now) {
            self.stats.add_drop(reason);
            return false;
        }
        if req.is_dhcp
            && req.options.message_type == Some(dhcpv4::MessageType::Other(DHCPLEASEQUERY))
        {
            if !self
                .queries
                .as_mut()
                .is_some_and(|q| q.forward(data, ifindex))
            {
                self.stats.add_drop(DropReason::LeasequeryBacklog);
            }
            return false;
        }
        if (req.options.relay_agent_info.is_some() || req.options.subnet_selection.is_some())
            && !self.engine.trusts_relay(&req, &ingress)
        {
            self.stats.add_untrusted_relay_options();
        }
        match self.engine.decide(&mut self.worker, &req, &ingress, now) {
            Decision::Reply(reply) => {
                if let Some(c) = &reply.commit {
                    let changes = self.sink.is_some().then_some(&mut self.held.changes);
                    Self::record(&mut self.commits, changes, c);
                }
                let hdr = ReplyHeader {
                    eth_src: if_mac,
                    eth_dst: reply.dest.mac,
                    vlan: f.vlan,
                    ip_src: reply.server_ip,
                    ip_dst: reply.dest.ip,
                    udp_src: SERVER_PORT,
                    udp_dst: reply.dest.port,
                    ttl: REPLY_TTL,
                };
                // A reply that promises a change waits for its group commit.
                let (tx, sent) = if reply.commit.is_some() {
                    (&mut self.held.tx, &mut self.held.sent)
                } else {
                    (tx, &mut self.sent)
                };
                match tx.push_with(|buf| frame::emit_reply(&hdr, &reply.repr, buf).ok()) {
                    Ok(true) => {
                        let kind = reply
                            .repr
                            .options
                            .message_type
                            .filter(|_| reply.repr.is_dhcp);
                        sent[message_slot(kind)] += 1;
                    }
                    Ok(false) => self.stats.add_drop(DropReason::Other),
                    Err(_) => self.stats.add_drop(DropReason::TxFull),
                }
            }
            Decision::Silent { reason, commit } => {
                if let Some(c) = &commit {
                    let changes = self.sink.is_some().then_some(&mut self.held.changes);
                    Self::record(&mut self.commits, changes, c);
                }
                self.stats.add_silent(reason);
            }
            Decision::Drop(reason) => {
                self.stats.add_engine_drop(reason);
                if reason == EngineDrop::Storage {
                    tracing::error!("lease table write-back failed: stopping");
                    self.fatal.store(true, Ordering::Relaxed);
                }
            }
        }
        true
    }
}

impl DhcpHandler {
    /// The batch's replies, counted by type now that nothing stops them leaving.
    fn count_sent(&mut self) {
        for (slot, n) in self.sent.iter_mut().enumerate() {
            if *n > 0 {
                self.stats.add_sent(slot, std::mem::take(n));
            }
        }
    }
}

impl DhcpHandler {
    /// Hands what was recorded since the last commit to the commit thread, with the replies
    /// it holds, unless a commit is in flight: whether it did.
    fn start_commit(&mut self) -> bool {
        if self.fatal.load(Ordering::Relaxed) || !self.commits.start() {
            return false;
        }
        let next = self.free.take().unwrap_or_else(Held::new);
        self.flight = Some(std::mem::replace(&mut self.held, next));
        true
    }

    /// Takes the outcome of the commit in flight once it is done (`wait`: blocks until it
    /// is): its replies become the ones to send, the failover sink learns its changes, and
    /// the next group starts. A failed commit discards every held reply and stops the
    /// daemon. Call only when the last replies to send were sent.
    fn harvest(&mut self, wait: bool) {
        let Some(f) = self.commits.finished(wait) else {
            return;
        };
        let mut done = self.flight.take().unwrap_or_else(Held::new);
        self.stats.add_commit(f.entries as u64, f.nanos);
        match f.result {
            Ok(()) => {
                for (slot, n) in done.sent.iter().enumerate() {
                    if *n > 0 {
                        self.stats.add_sent(slot, *n);
                    }
                }
                if let Some(sink) = self.sink.as_mut()
                    && !done.changes.is_empty()
                {
                    for &(table, slot) in &done.changes {
                        sink.changed(table, slot);
                    }
                    sink.batch_done();
                }
                done.changes.clear();
                done.sent = [0; MESSAGE_KINDS.len()];
            }
            Err(e) => {
                tracing::error!(error = %e, "journal commit failed: no reply waiting for it is sent; stopping");
                for held in [&mut done, &mut self.held] {
                    self.stats
                        .add_drops(DropReason::Durability, held.tx.len() as u64);
                    held.clear();
                }
                self.fatal.store(true, Ordering::Relaxed);
            }
        }
        let mut sent = std::mem::replace(&mut self.out, done);
        sent.clear();
        self.free = Some(sent);
        self.start_commit();
    }
}

impl BatchHandler for DhcpHandler {
    fn handle(&mut self, rx: &RxBatch<'_>, tx: &mut TxBatch) {
        if self.fatal.load(Ordering::Relaxed) {
            // A commit failed: answer nothing more; the daemon is on its way out.
            self.stats
                .add_drops(DropReason::Durability, rx.len() as u64);
            return;
        }
        self.follow_live();
        let now = (self.clock)();
        let backlog = match self.overload.backlog {
            0 => tx.capacity(),
            n => n,
        };
        if self.held.tx.remaining() < rx.len() && self.out.tx.is_empty() {
            // This batch's ACKs might not fit beside those waiting for the next commit:
            // wait for the one in flight, which starts the next.
            self.harvest(true);
        }
        if rx.len() >= backlog {
            self.handle_backlog(rx, backlog, now, tx);
        } else {
            for f in rx.frames() {
                self.handle_frame(f.data, f.meta.ifindex, now, tx);
            }
        }
        self.count_sent();
        self.start_commit();
    }

    fn durable(&mut self, wait: bool) -> Option<&mut TxBatch> {
        if self.out.tx.is_empty() {
            self.harvest(false);
            while wait && self.out.tx.is_empty() {
                if self.commits.in_flight() {
                    self.harvest(true);
                } else if !self.start_commit() {
                    break;
                }
            }
        }
        (!self.out.tx.is_empty()).then_some(&mut self.out.tx)
    }

    fn wake_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.commits.wake_fd())
    }
}
