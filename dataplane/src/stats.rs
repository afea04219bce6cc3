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
    }
}

/// One worker's counters. Share it as `Arc<WorkerStats>`: the worker (and its handler) add,
/// the control thread calls [`WorkerStats::snapshot`].
#[derive(Debug, Default)]
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

    /// One non-empty receive batch handled (`rx / batches` is the mean batch size).
    pub fn add_batch(&self) {
        self.batches.fetch_add(1, Ordering::Relaxed);
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
                stats.add_batch();
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
