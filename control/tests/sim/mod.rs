//! Two failover sessions on a virtual clock and a virtual TCP network, in quinn-proto's
//! `tests/util.rs` shape: [`Pair`] holds the two sides' real [`Session`]s, `step` runs the
//! next due thing (a delivery, a dial, a timer), `drive_bounded` runs until a condition holds
//! and fails on livelock. The sessions do everything themselves (dialling, link choice,
//! timers, replication); the network only carries bytes and does what it is told to do to
//! them:
//!
//! * a **dial** reaches the peer after the link delay when the peer runs and the network is
//!   whole (the peer accepts it, from the dialler's address), and fails otherwise;
//! * **bytes** arrive in order after the link delay; during a **partition** they wait (TCP
//!   retransmits them once healed), unless an end gives the link up first;
//! * a **close** sends a FIN behind what was written; a **reset** loses what is in flight
//!   and tells both ends at once;
//! * **kill** drops a side's session (kill -9: the peer sees FINs on its links, unless
//!   partitioned); the test starts a new session for it from what it kept.
//!
//! `failover_fsm.rs` runs it over storage without tables; `failover_leases.rs` over real
//! lease tables with DHCP clients.
#![allow(dead_code, reason = "each test file uses part of the simulation")]

use std::borrow::BorrowMut;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use control::failover::fsm::{self, Fsm, PersistedState, StateKind};
use control::failover::msg::MessageType;
use control::failover::session::{Cause, Event, LinkId, Origin, Session};
use control::failover::storage::{RecordId, Records, Storage, StorageError};
use control::failover::{Instant, Now, UnixTime};
use lease_mmap::Lease;

/// The wall clock at virtual time 0.
pub const BASE_WALL: u32 = 1_700_000_000;
/// The two sides' addresses (each side's only peer is the other's).
pub const ADDRS: [Ipv4Addr; 2] = [Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 0, 0, 2)];

#[derive(Debug)]
enum Payload {
    Bytes(Vec<u8>),
    /// The sender closed the connection.
    Fin,
}

#[derive(Debug)]
struct InFlight {
    at: u64,
    to: usize,
    link: u64,
    payload: Payload,
}

/// One server: its session while it runs, and what the run observed of it.
pub struct Side<S> {
    pub session: Option<Session<S>>,
    /// Wall-clock offset of this side, seconds (clock skew).
    pub skew: i64,
    /// (time ms, from, to) of every state change.
    pub history: Vec<(u64, StateKind, StateKind)>,
    /// The machine's events, as the session passed them on.
    pub events: Vec<fsm::Event>,
    /// Why each link the session let go of was closed.
    pub closes: Vec<Cause>,
    /// The type of every message written.
    pub sent: Vec<MessageType>,
    /// Links open at this end.
    links: BTreeSet<u64>,
    /// When the pending dial completes or fails.
    dial_at: Option<u64>,
    /// Latest delivery time of anything this side sent, to keep its streams in order.
    last_at: u64,
}

impl<S> Side<S> {
    fn new() -> Self {
        Self {
            session: None,
            skew: 0,
            history: Vec::new(),
            events: Vec::new(),
            closes: Vec::new(),
            sent: Vec::new(),
            links: BTreeSet::new(),
            dial_at: None,
            last_at: 0,
        }
    }

    pub fn is_up(&self) -> bool {
        self.session.is_some()
    }
}

impl<S: Storage> Side<S> {
    pub fn session(&self) -> &Session<S> {
        self.session.as_ref().expect("side is running")
    }

    pub fn fsm(&self) -> &Fsm {
        self.session().fsm()
    }

    /// The link the session runs its machine on.
    pub fn link(&self) -> Option<LinkId> {
        self.session.as_ref().and_then(Session::link)
    }
}

/// Two sides and the network between them.
pub struct Pair<S> {
    /// Virtual time, milliseconds.
    pub now: u64,
    pub sides: [Side<S>; 2],
    queue: Vec<InFlight>,
    next_link: u64,
    pub partitioned: bool,
    pub delay_ms: u64,
    pub steps: u64,
    /// What happened, for a failing run's report; printed as it happens when `verbose`.
    pub log: Vec<String>,
    pub verbose: bool,
}

impl<S: Storage> Default for Pair<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Storage> Pair<S> {
    /// Two sides, neither running: [`Pair::start`] each.
    pub fn new() -> Self {
        Self {
            now: 0,
            sides: [Side::new(), Side::new()],
            queue: Vec::new(),
            next_link: 1,
            partitioned: false,
            delay_ms: 10,
            steps: 0,
            log: Vec::new(),
            verbose: false,
        }
    }

    pub fn note(&mut self, s: String) {
        if self.verbose {
            eprintln!("[{:>9} ms] {s}", self.now);
        }
        self.log.push(format!("[{} ms] {s}", self.now));
    }

    /// Side `i`'s clock.
    pub fn now_for(&self, i: usize) -> Now {
        let secs = i64::try_from(self.now / 1000).expect("short run") + self.sides[i].skew;
        Now {
            instant: Instant::from_millis(self.now),
            wall: UnixTime(u32::try_from(i64::from(BASE_WALL) + secs).expect("wall clock")),
        }
    }

    /// Side `i`'s wall clock.
    pub fn wall(&self, i: usize) -> UnixTime {
        self.now_for(i).wall
    }

    /// Runs `session` as side `i` (which must be down).
    pub fn start(&mut self, i: usize, session: Session<S>) {
        assert!(self.sides[i].session.is_none(), "side {i} is running");
        self.sides[i].session = Some(session);
        self.drain(i);
    }

    /// kill -9 of side `i`: its session is dropped (and returned, for what its storage kept);
    /// the peer sees each of its links close, unless partitioned.
    pub fn kill(&mut self, i: usize) -> Option<Session<S>> {
        let links = std::mem::take(&mut self.sides[i].links);
        for link in links {
            self.enqueue(i, link, Payload::Fin);
        }
        self.sides[i].dial_at = None;
        self.sides[i].session.take()
    }

    /// Side `i`'s state, if it runs.
    pub fn state(&self, i: usize) -> Option<StateKind> {
        self.sides[i].session.as_ref().map(|s| s.fsm().kind())
    }

    pub fn visited(&self, i: usize, k: StateKind) -> bool {
        self.sides[i].history.iter().any(|(_, _, to)| *to == k)
    }

    /// Whether both sides run their machines on the same link.
    pub fn linked(&self) -> bool {
        let (a, b) = (self.sides[0].link(), self.sides[1].link());
        a.is_some() && a == b
    }

    /// Nothing in flight between the sides.
    pub fn quiet(&self) -> bool {
        self.queue.is_empty()
    }

    /// Calls `f` on side `i`'s session at its clock, then acts on what it asks for.
    pub fn with<R>(&mut self, i: usize, f: impl FnOnce(&mut Session<S>, Now) -> R) -> R {
        let now = self.now_for(i);
        let r = f(
            self.sides[i].session.as_mut().expect("side is running"),
            now,
        );
        self.drain(i);
        r
    }

    /// Acts on everything side `i`'s session asks for: writes, closes, dials; records its
    /// events.
    pub fn drain(&mut self, i: usize) {
        loop {
            let Some(s) = self.sides[i].session.as_mut() else {
                return;
            };
            let mut out = Vec::new();
            while let Some((link, t)) = s.poll_transmit() {
                out.push((link, t));
            }
            let mut events = Vec::new();
            while let Some(e) = s.poll_event() {
                events.push(e);
            }
            if out.is_empty() && events.is_empty() {
                return;
            }
            // Writes first: a close follows what was written before it.
            for (link, t) in out {
                self.sides[i].sent.push(t.msg_type);
                if self.sides[i].links.contains(&link.0) {
                    self.enqueue(i, link.0, Payload::Bytes(t.bytes));
                }
            }
            for e in events {
                self.on_event(i, e);
            }
        }
    }

    fn on_event(&mut self, i: usize, e: Event) {
        match e {
            Event::Dial => {
                self.sides[i].dial_at = Some(self.now + self.delay_ms);
            }
            Event::Close { link, cause } => {
                self.sides[i].closes.push(cause);
                if self.sides[i].links.remove(&link.0) {
                    self.enqueue(i, link.0, Payload::Fin);
                }
            }
            Event::Failed(e) => panic!("side {i}: storage failed: {e}"),
            Event::Fsm(e) => {
                if let fsm::Event::StateChanged { from, to, .. } = &e {
                    self.sides[i].history.push((self.now, *from, *to));
                    self.note(format!("{}: {} -> {}", name(i), from.name(), to.name()));
                }
                self.sides[i].events.push(e);
            }
        }
    }

    fn enqueue(&mut self, from: usize, link: u64, payload: Payload) {
        let at = (self.now + self.delay_ms).max(self.sides[from].last_at);
        self.sides[from].last_at = at;
        self.queue.push(InFlight {
            at,
            to: 1 - from,
            link,
            payload,
        });
    }

    /// When the next thing is due: a delivery, a dial, a session's timer.
    pub fn next_time(&self) -> Option<u64> {
        let q = self
            .queue
            .iter()
            .filter(|_| !self.partitioned)
            .map(|m| m.at)
            .min();
        let sides = self.sides.iter().filter_map(|s| {
            let timer = s.session.as_ref()?.poll_timeout().map(Instant::as_millis);
            [timer, s.dial_at].into_iter().flatten().min()
        });
        q.into_iter().chain(sides).min()
    }

    /// Runs everything due at the next instant. Returns false if nothing is scheduled.
    pub fn step(&mut self) -> bool {
        let Some(t) = self.next_time() else {
            return false;
        };
        self.now = self.now.max(t);
        self.steps += 1;
        let now = self.now;
        let (mut due, rest): (Vec<_>, Vec<_>) = self
            .queue
            .drain(..)
            .partition(|m| m.at <= now && !self.partitioned);
        self.queue = rest;
        due.sort_by_key(|m| m.at);
        for m in due {
            self.deliver(m);
        }
        for i in 0..2 {
            if self.sides[i].dial_at.is_some_and(|t| t <= now) {
                self.sides[i].dial_at = None;
                self.complete_dial(i);
            }
        }
        for i in 0..2 {
            let due = self.sides[i]
                .session
                .as_ref()
                .and_then(Session::poll_timeout)
                .is_some_and(|t| t.as_millis() <= now);
            if due {
                self.with(i, |s, now| s.handle_timeout(now));
            }
        }
        true
    }

    fn deliver(&mut self, m: InFlight) {
        let side = &mut self.sides[m.to];
        if side.session.is_none() || !side.links.contains(&m.link) {
            return;
        }
        let link = LinkId(m.link);
        match m.payload {
            Payload::Fin => {
                side.links.remove(&m.link);
                self.with(m.to, |s, now| {
                    s.handle_link_closed(now, link, "closed by peer")
                });
            }
            Payload::Bytes(b) => self.with(m.to, |s, now| s.handle_bytes(now, link, &b)),
        }
    }

    /// Side `i`'s dial: accepted by the peer when it runs and the network is whole.
    fn complete_dial(&mut self, i: usize) {
        let j = 1 - i;
        if self.sides[i].session.is_none() {
            return;
        }
        if self.partitioned || self.sides[j].session.is_none() {
            self.with(i, |s, now| s.handle_dial_failed(now));
            return;
        }
        let link = self.next_link;
        self.next_link += 1;
        self.sides[i].links.insert(link);
        self.sides[j].links.insert(link);
        self.with(j, |s, now| {
            s.handle_link_up(now, LinkId(link), Origin::Accepted, ADDRS[i])
        });
        self.with(i, |s, now| {
            s.handle_link_up(now, LinkId(link), Origin::Dialed, ADDRS[j])
        });
    }

    /// Steps until `t` (ms), failing on livelock: more than `max_steps` steps.
    pub fn run_until(&mut self, t: u64, max_steps: u64) {
        let start = self.steps;
        while self.next_time().is_some_and(|n| n <= t) {
            self.step();
            assert!(
                self.steps - start <= max_steps,
                "livelock: over {max_steps} steps before t={t}"
            );
        }
        self.now = self.now.max(t);
    }

    /// Runs `secs` simulated seconds.
    pub fn run_for(&mut self, secs: u64) {
        // CONTACT every ~6.7 s per side, dials, sweeps and traffic: a generous bound per
        // simulated second.
        let t = self.now + secs * 1000;
        self.run_until(t, 200 + secs * 50);
    }

    /// Runs until `done` holds, at most `secs` simulated seconds; false if it never did.
    pub fn drive_bounded(&mut self, secs: u64, done: impl Fn(&Self) -> bool) -> bool {
        drive_bounded(self, secs, done)
    }

    /// Nothing gets through until [`Pair::heal`]: held bytes wait, dials fail.
    pub fn partition(&mut self) {
        self.note("link partitioned".into());
        self.partitioned = true;
    }

    pub fn heal(&mut self) {
        if self.partitioned {
            self.note("link healed".into());
            self.partitioned = false;
            // Held segments go out now, still in order.
            let earliest = self.now + self.delay_ms;
            for m in &mut self.queue {
                m.at = m.at.max(earliest);
            }
            for s in &mut self.sides {
                s.last_at = s.last_at.max(earliest);
            }
        }
    }

    /// TCP reset of every link: what is in flight is lost, both ends told.
    pub fn reset_link(&mut self) {
        self.note("link reset".into());
        self.queue.clear();
        for i in 0..2 {
            let links = std::mem::take(&mut self.sides[i].links);
            if self.sides[i].session.is_some() {
                for link in links {
                    self.with(i, |s, now| {
                        s.handle_link_closed(now, LinkId(link), "connection reset")
                    });
                }
            }
        }
    }
}

/// [`Pair::drive_bounded`] for a test's own world around a pair (`done` sees the world).
pub fn drive_bounded<P, S>(p: &mut P, secs: u64, done: impl Fn(&P) -> bool) -> bool
where
    P: BorrowMut<Pair<S>>,
    S: Storage,
{
    let end = p.borrow().now + secs * 1000;
    let start = p.borrow().steps;
    while !done(p) {
        let pair = p.borrow_mut();
        if pair.next_time().is_none_or(|n| n > end) {
            return false;
        }
        pair.step();
        assert!(
            pair.steps - start <= 200 + secs * 50,
            "livelock after {} steps",
            pair.steps - start
        );
    }
    true
}

pub fn name(i: usize) -> &'static str {
    ["A", "B"][i]
}

/// Storage without tables: the failover state is kept in memory (a restart takes it from
/// the killed session's storage).
#[derive(Debug, Default)]
pub struct NoTables {
    pub persisted: Option<PersistedState>,
    /// How often the session looked up an address (a received binding).
    pub lookups: std::cell::Cell<u32>,
}

impl Storage for NoTables {
    fn tables(&self, _: &mut dyn FnMut(&dyn Records)) {}
    fn locate(&self, _: Ipv4Addr) -> Option<RecordId> {
        self.lookups.set(self.lookups.get() + 1);
        None
    }
    fn read(&self, _: RecordId) -> Option<(Ipv4Addr, Lease)> {
        None
    }
    fn update(
        &mut self,
        _: RecordId,
        _: bool,
        _: &mut dyn FnMut(&Lease) -> Option<Lease>,
    ) -> Result<Option<Lease>, StorageError> {
        Ok(None)
    }
    fn pending(&self) -> bool {
        false
    }
    fn commit(&mut self) -> Result<(), StorageError> {
        Ok(())
    }
    fn persist(&mut self, state: &PersistedState) -> Result<(), StorageError> {
        self.persisted = Some(*state);
        Ok(())
    }
}
