//! Per-worker counters: written by one worker, read lock-free by the control thread.
//!
//! Each [`WorkerStats`] sits on cache lines of its own (aligned to 128 bytes: x86's adjacent
//! line prefetcher pairs 64-byte lines, as crossbeam's `CachePadded` notes), so workers never
//! contend on each other's counters, and a reader only ever costs the writer a line transfer.
//! Counters are `Relaxed` atomics: each is a monotonic count on its own, and a
//! [`StatsSnapshot`] is a set of independent reads, not a consistent cut (`rx` may be read
//! before the drops of the same batch are added).
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use crate::engine::{DropReason as EngineDrop, SilentReason};
use crate::reasons::reasons;
use crate::wire::dhcpv4::MessageType;

/// Counter slots for the engine's drop reasons ([`EngineDrop::index`]).
const ENGINE_SLOTS: usize = 32;
/// Counter slots for the engine's no-reply outcomes ([`SilentReason::index`]).
const SILENT_SLOTS: usize = 12;
const _: () = assert!(EngineDrop::ALL.len() <= ENGINE_SLOTS);
const _: () = assert!(SilentReason::ALL.len() <= SILENT_SLOTS);

reasons! {
    /// Why the datapath dropped a frame, one counter each; `tandemctl status` shows every one
    /// by name. The DHCP engine's drops have counters of their own ([`EngineDrop`],
    /// [`WorkerStats::add_engine_drop`]).
    #[derive(PartialOrd, Ord)]
    #[repr(u8)]
    DropReason {
        /// The frame did not fit the receive buffer (longer than the slot).
        Truncated => "truncated",
        /// The kernel dropped it before we read it: the socket's receive queue was full
        /// (`PACKET_STATISTICS` `tp_drops`).
        RxQueueFull => "rx-queue-full",
        /// Ethernet/IPv4/UDP did not parse, or the IPv4 header checksum was wrong.
        Malformed => "malformed",
        /// The BOOTP/DHCP message did not parse (RFC 2131/2132 rules, `wire::dhcpv4`).
        MalformedDhcp => "malformed-dhcp",
        /// Well formed, but not ours to answer (another server's id, not a BOOTREQUEST, ...).
        NotForUs => "not-for-us",
        /// Shed under overload (DISCOVERs first).
        Shed => "shed",
        /// Too old to be worth answering (client `secs`, queue age).
        Stale => "stale",
        /// The lease change could not be made durable, so no ACK was sent.
        Durability => "durability",
        /// The handler produced more replies than the batch's transmit slots.
        TxFull => "tx-full",
        /// Anything else.
        Other => "other",
        /// The kernel dropped it on the way into an AF_XDP socket: no free frame on the fill
        /// ring, or an invalid descriptor (`XDP_STATISTICS` `rx_dropped` + `rx_invalid_descs`).
        XskRxDropped => "xsk-rx-dropped",
        /// The kernel dropped it because the AF_XDP socket's rx ring was full
        /// (`XDP_STATISTICS` `rx_ring_full`).
        XskRxRingFull => "xsk-rx-ring-full",
        /// Over the per-client-MAC rate limit (`server.mac_rate`).
        RateMac => "rate-mac",
        /// Over the per-circuit-id rate limit (`server.circuit_rate`).
        RateCircuit => "rate-circuit",
        /// Over the per-relay rate limit (`server.relay_rate`).
        RateRelay => "rate-relay",
        /// A leasequery the control plane's responder could not take (its queue was full,
        /// or leasequery is not served).
        LeasequeryBacklog => "leasequery-backlog",
    }
}

/// The DHCP message kinds counted on receive and on send, by slot: a BOOTP request (no
/// option 53), the eight RFC 2131 types, and any other type.
pub const MESSAGE_KINDS: [&str; 10] = [
    "bootp", "discover", "offer", "request", "decline", "ack", "nak", "release", "inform", "other",
];

/// The [`MESSAGE_KINDS`] slot of a message of type `t` (`None`: BOOTP).
pub fn message_slot(t: Option<MessageType>) -> usize {
    match t.map(u8::from) {
        None => 0,
        Some(n @ 1..=8) => usize::from(n),
        Some(_) => 9,
    }
}

/// Buckets of a [`Histogram`]: `BUCKETS - 1` bounded ones and the last, unbounded.
pub const BUCKETS: usize = 16;

/// A histogram of integer observations, lock-free: bucket `i < BUCKETS - 1` counts the
/// values in `(base·2^(i-1), base·2^i]` (bucket 0: `[0, base]`), the last bucket the rest.
/// One writer (a worker) and any number of readers; like the counters, a snapshot is a set
/// of independent reads.
#[derive(Debug)]
pub struct Histogram {
    base: u64,
    buckets: [AtomicU64; BUCKETS],
    sum: AtomicU64,
}

impl Histogram {
    /// An empty histogram whose first bucket ends at `base` (at least 1).
    pub const fn new(base: u64) -> Self {
        Self {
            base: if base == 0 { 1 } else { base },
            buckets: [const { AtomicU64::new(0) }; BUCKETS],
            sum: AtomicU64::new(0),
        }
    }

    /// Counts one observation of `v`.
    pub fn observe(&self, v: u64) {
        // `q` is 0 for v ≤ base, 1 for v ≤ 2·base, 2..=3 for v ≤ 4·base, ...: the bucket is
        // its bit length.
        let q = v.saturating_sub(1) / self.base;
        let i = (u64::BITS - q.leading_zeros()) as usize;
        self.buckets[i.min(BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(v, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            base: self.base,
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            sum: self.sum.load(Ordering::Relaxed),
        }
    }
}

/// A copy of a [`Histogram`]'s counts (or the sum of several with the same base: `+`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// The first bucket's upper bound; bucket `i` ends at `base·2^i`.
    pub base: u64,
    /// Per bucket (not cumulative); the last is unbounded.
    pub buckets: [u64; BUCKETS],
    /// The sum of every observation.
    pub sum: u64,
}

impl HistogramSnapshot {
    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.buckets.iter().fold(0, |a, &b| a.saturating_add(b))
    }

    /// The upper bound of every bounded bucket, in order.
    pub fn bounds(&self) -> impl Iterator<Item = u64> + '_ {
        (0..BUCKETS - 1).map(|i| self.base.saturating_mul(1 << i))
    }
}

impl std::ops::Add for HistogramSnapshot {
    type Output = HistogramSnapshot;

    fn add(self, o: HistogramSnapshot) -> HistogramSnapshot {
        HistogramSnapshot {
            base: self.base.max(o.base),
            buckets: std::array::from_fn(|i| self.buckets[i].saturating_add(o.buckets[i])),
            sum: self.sum.saturating_add(o.sum),
        }
    }
}

/// The first bucket of [`WorkerStats`]' commit latency histogram: 16 µs (in ns).
pub const COMMIT_NS_BASE: u64 = 16_000;

/// One worker's counters. Share it as `Arc<WorkerStats>`: the worker (and its handler) add,
/// the control thread calls [`WorkerStats::snapshot`].
#[derive(Debug)]
#[repr(C, align(128))]
pub struct WorkerStats {
    rx: AtomicU64,
    tx: AtomicU64,
    tx_errors: AtomicU64,
    batches: AtomicU64,
    /// Frames received here and handed to a sibling worker (software dispatch): counted in
    /// this worker's `rx` and again in the sibling's.
    dispatched: AtomicU64,
    dropped: [AtomicU64; DropReason::COUNT],
    /// Requests the engine dropped, by [`EngineDrop::index`].
    engine_dropped: [AtomicU64; ENGINE_SLOTS],
    /// Valid requests that got no reply, by [`SilentReason::index`].
    silent: [AtomicU64; SILENT_SLOTS],
    /// Requests served with their option 82 / option 118 ignored: not from a trusted relay.
    untrusted_relay_options: AtomicU64,
    /// Well-formed DHCP/BOOTP requests read, by [`message_slot`].
    received: [AtomicU64; MESSAGE_KINDS.len()],
    /// Replies sent (durable where they promise), by [`message_slot`].
    sent: [AtomicU64; MESSAGE_KINDS.len()],
    /// Nanoseconds spent handling batches and sending their replies.
    busy_ns: AtomicU64,
    /// Frames per received batch.
    batch_frames: Histogram,
    /// Journal group commits: how long each took (write + fdatasync), in ns.
    commit_ns: Histogram,
    /// Journal group commits: entries made durable by each.
    commit_entries: Histogram,
    /// Turns of the worker loop: it moves at least every poll timeout while the worker lives
    /// (the daemon's watchdog reads it).
    loops: AtomicU64,
}

impl Default for WorkerStats {
    fn default() -> Self {
        Self {
            rx: AtomicU64::new(0),
            tx: AtomicU64::new(0),
            tx_errors: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            dispatched: AtomicU64::new(0),
            dropped: Default::default(),
            engine_dropped: Default::default(),
            silent: Default::default(),
            untrusted_relay_options: AtomicU64::new(0),
            received: Default::default(),
            sent: Default::default(),
            busy_ns: AtomicU64::new(0),
            batch_frames: Histogram::new(1),
            commit_ns: Histogram::new(COMMIT_NS_BASE),
            commit_entries: Histogram::new(1),
            loops: AtomicU64::new(0),
        }
    }
}

impl WorkerStats {
    pub fn new() -> Self {
        Self::default()
    }

    /// `n` frames handed to the handler.
    pub fn add_rx(&self, n: u64) {
        self.rx.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` frames the kernel accepted for transmission.
    pub fn add_tx(&self, n: u64) {
        self.tx.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` frames the handler built that could not be sent.
    pub fn add_tx_errors(&self, n: u64) {
        self.tx_errors.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` received frames handed on to a sibling worker (software dispatch).
    pub fn add_dispatched(&self, n: u64) {
        self.dispatched.fetch_add(n, Ordering::Relaxed);
    }

    /// One more turn of the worker loop.
    pub fn beat(&self) {
        self.loops.fetch_add(1, Ordering::Relaxed);
    }

    /// Turns of the worker loop so far.
    pub fn loops(&self) -> u64 {
        self.loops.load(Ordering::Relaxed)
    }

    /// One non-empty receive batch of `frames` frames handled.
    pub fn add_batch(&self, frames: u64) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.batch_frames.observe(frames);
    }

    /// `ns` nanoseconds spent on a batch (handling it and sending its replies).
    pub fn add_busy(&self, ns: u64) {
        self.busy_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// `n` well-formed requests of [`message_slot`] `slot` read.
    pub fn add_received(&self, slot: usize, n: u64) {
        if let Some(c) = self.received.get(slot) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// `n` replies of [`message_slot`] `slot` on their way out.
    pub fn add_sent(&self, slot: usize, n: u64) {
        if let Some(c) = self.sent.get(slot) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// One journal group commit of `entries` entries that took `ns` nanoseconds.
    pub fn add_commit(&self, entries: u64, ns: u64) {
        self.commit_entries.observe(entries);
        self.commit_ns.observe(ns);
    }

    /// One frame dropped for `reason`.
    pub fn add_drop(&self, reason: DropReason) {
        self.add_drops(reason, 1);
    }

    /// `n` frames dropped for `reason`.
    pub fn add_drops(&self, reason: DropReason, n: u64) {
        self.dropped[reason.index()].fetch_add(n, Ordering::Relaxed);
    }

    /// One frame dropped for the reason with index `i` (see [`DropReason::index`]); an index
    /// out of range counts as [`DropReason::Other`].
    pub fn add_drop_index(&self, i: usize) {
        self.add_drop(DropReason::from_index(i).unwrap_or(DropReason::Other));
    }

    /// One request the engine dropped for `reason`.
    pub fn add_engine_drop(&self, reason: EngineDrop) {
        if let Some(c) = self.engine_dropped.get(reason.index()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One valid request answered by silence, for `reason`.
    pub fn add_silent(&self, reason: SilentReason) {
        if let Some(c) = self.silent.get(reason.index()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One request whose option 82 or 118 was ignored (not from a trusted relay); it is
    /// still answered, sent, dropped or silent, and counted as such.
    pub fn add_untrusted_relay_options(&self) {
        self.untrusted_relay_options.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now, as plain numbers.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            rx: self.rx.load(Ordering::Relaxed),
            tx: self.tx.load(Ordering::Relaxed),
            tx_errors: self.tx_errors.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            dispatched: self.dispatched.load(Ordering::Relaxed),
            dropped: std::array::from_fn(|i| self.dropped[i].load(Ordering::Relaxed)),
            engine_dropped: std::array::from_fn(|i| self.engine_dropped[i].load(Ordering::Relaxed)),
            silent: std::array::from_fn(|i| self.silent[i].load(Ordering::Relaxed)),
            untrusted_relay_options: self.untrusted_relay_options.load(Ordering::Relaxed),
            received: std::array::from_fn(|i| self.received[i].load(Ordering::Relaxed)),
            sent: std::array::from_fn(|i| self.sent[i].load(Ordering::Relaxed)),
            busy_ns: self.busy_ns.load(Ordering::Relaxed),
            batch_frames: self.batch_frames.snapshot(),
            commit_ns: self.commit_ns.snapshot(),
            commit_entries: self.commit_entries.snapshot(),
        }
    }
}

/// A copy of one worker's counters (or the sum of several: `+`, `Sum`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub rx: u64,
    pub tx: u64,
    pub tx_errors: u64,
    pub batches: u64,
    /// Frames handed to a sibling worker (also in the sibling's `rx`).
    pub dispatched: u64,
    /// Indexed by [`DropReason::index`].
    pub dropped: [u64; DropReason::COUNT],
    /// Indexed by [`EngineDrop::index`].
    pub engine_dropped: [u64; ENGINE_SLOTS],
    /// Indexed by [`SilentReason::index`].
    pub silent: [u64; SILENT_SLOTS],
    /// Requests whose option 82 / 118 was ignored (not in the counter balance: each is
    /// also sent, dropped or silent).
    pub untrusted_relay_options: u64,
    /// Well-formed requests read, by [`message_slot`] (names: [`MESSAGE_KINDS`]).
    pub received: [u64; MESSAGE_KINDS.len()],
    /// Replies sent, by [`message_slot`].
    pub sent: [u64; MESSAGE_KINDS.len()],
    /// Nanoseconds spent handling batches and sending their replies.
    pub busy_ns: u64,
    /// Frames per received batch.
    pub batch_frames: HistogramSnapshot,
    /// Journal group commit latency, ns.
    pub commit_ns: HistogramSnapshot,
    /// Entries per journal group commit.
    pub commit_entries: HistogramSnapshot,
}

impl StatsSnapshot {
    /// Frames dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()]
    }

    /// Frames dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().fold(0, |a, &b| a.saturating_add(b))
    }

    /// Requests the engine dropped for `reason`.
    pub fn engine_dropped(&self, reason: EngineDrop) -> u64 {
        self.engine_dropped
            .get(reason.index())
            .copied()
            .unwrap_or(0)
    }

    /// `(name, count)` for every reason, the datapath's then the engine's, in index order.
    pub fn drops_by_name(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        let datapath = DropReason::ALL.iter().map(|r| (r.name(), self.dropped(*r)));
        let engine = EngineDrop::ALL
            .iter()
            .map(|r| (r.name(), self.engine_dropped(*r)));
        datapath.chain(engine)
    }

    /// `(name, count)` for every no-reply outcome, in index order.
    pub fn silent_by_name(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        SilentReason::ALL
            .iter()
            .map(|r| (r.name(), self.silent.get(r.index()).copied().unwrap_or(0)))
    }
}

impl std::ops::Add for StatsSnapshot {
    type Output = StatsSnapshot;

    fn add(self, o: StatsSnapshot) -> StatsSnapshot {
        StatsSnapshot {
            rx: self.rx.saturating_add(o.rx),
            tx: self.tx.saturating_add(o.tx),
            tx_errors: self.tx_errors.saturating_add(o.tx_errors),
            batches: self.batches.saturating_add(o.batches),
            dispatched: self.dispatched.saturating_add(o.dispatched),
            dropped: std::array::from_fn(|i| self.dropped[i].saturating_add(o.dropped[i])),
            engine_dropped: std::array::from_fn(|i| {
                self.engine_dropped[i].saturating_add(o.engine_dropped[i])
            }),
            silent: std::array::from_fn(|i| self.silent[i].saturating_add(o.silent[i])),
            untrusted_relay_options: self
                .untrusted_relay_options
                .saturating_add(o.untrusted_relay_options),
            received: std::array::from_fn(|i| self.received[i].saturating_add(o.received[i])),
            sent: std::array::from_fn(|i| self.sent[i].saturating_add(o.sent[i])),
            busy_ns: self.busy_ns.saturating_add(o.busy_ns),
            batch_frames: self.batch_frames + o.batch_frames,
            commit_ns: self.commit_ns + o.commit_ns,
            commit_entries: self.commit_entries + o.commit_entries,
        }
    }
}

impl std::iter::Sum for StatsSnapshot {
    fn sum<I: Iterator<Item = StatsSnapshot>>(iter: I) -> StatsSnapshot {
        iter.fold(StatsSnapshot::default(), |a, b| a + b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn reasons_index_and_name_round_trip() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert_eq!(DropReason::from_index(i), Some(*r));
        }
        assert_eq!(DropReason::from_index(DropReason::COUNT), None);
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }

    #[test]
    fn histogram_buckets_are_powers_of_two_of_the_base() {
        let h = Histogram::new(10);
        let values = [0, 10, 11, 20, 21, 40, 41, 10 << 14, (10 << 14) + 1, 1 << 40];
        for v in values {
            h.observe(v);
        }
        let s = h.snapshot();
        let bounds: Vec<u64> = s.bounds().collect();
        assert_eq!(bounds.len(), BUCKETS - 1);
        assert_eq!(&bounds[..4], &[10, 20, 40, 80]);
        // 0 and 10 ≤ 10; 11, 20 ≤ 20; 21, 40 ≤ 40; 41 ≤ 80; 10·2^14 in the last bounded;
        // the rest unbounded.
        assert_eq!(&s.buckets[..4], &[2, 2, 2, 1]);
        assert_eq!(s.buckets[BUCKETS - 2], 1);
        assert_eq!(s.buckets[BUCKETS - 1], 2);
        assert_eq!(s.count(), 10);
        assert_eq!(s.sum, values.iter().sum::<u64>());
    }

    #[test]
    fn message_slots_name_every_kind() {
        assert_eq!(MESSAGE_KINDS[message_slot(None)], "bootp");
        assert_eq!(
            MESSAGE_KINDS[message_slot(Some(MessageType::Discover))],
            "discover"
        );
        assert_eq!(
            MESSAGE_KINDS[message_slot(Some(MessageType::Inform))],
            "inform"
        );
        assert_eq!(
            MESSAGE_KINDS[message_slot(Some(MessageType::Other(42)))],
            "other"
        );
    }

    #[test]
    fn stats_own_their_cache_lines() {
        assert_eq!(std::mem::align_of::<WorkerStats>(), 128);
        assert_eq!(std::mem::size_of::<WorkerStats>() % 128, 0);
    }

    #[test]
    fn counts_from_a_worker_are_seen_by_a_reader() {
        let stats = Arc::new(WorkerStats::new());
        let writer = {
            let stats = Arc::clone(&stats);
            std::thread::spawn(move || {
                for _ in 0..1000 {
                    stats.add_rx(2);
                    stats.add_tx(1);
                    stats.add_drop(DropReason::Malformed);
                }
                stats.add_drop_index(DropReason::Shed.index());
                stats.add_drop_index(999);
                stats.add_tx_errors(3);
                stats.add_batch(5);
            })
        };
        writer.join().expect("writer");
        let s = stats.snapshot();
        assert_eq!((s.rx, s.tx, s.tx_errors, s.batches), (2000, 1000, 3, 1));
        assert_eq!(s.dropped(DropReason::Malformed), 1000);
        assert_eq!(s.dropped(DropReason::Shed), 1);
        assert_eq!(s.dropped(DropReason::Other), 1);
        assert_eq!(s.dropped_total(), 1002);
        let total: StatsSnapshot = [s, s].into_iter().sum();
        assert_eq!(total.rx, 4000);
        assert_eq!(
            total.drops_by_name().find(|(n, _)| *n == "malformed"),
            Some(("malformed", 2000))
        );
    }
}
