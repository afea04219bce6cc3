//! The expiry index of a table: which ACTIVE leases run out when, so that the failover
//! expiry sweep visits only the leases that ran out instead of walking every record
//! (`Table::track_expiry`, `Table::due`).
//!
//! Writers push `(ends, slot)` for every ACTIVE lease they write (lock-free, on the
//! writer's path); the one consumer drains them into a min-heap under a mutex and pops what
//! is due. Entries are never removed when a lease changes: a popped entry is checked against
//! the record as it is then (still ACTIVE, ended by now), and one made stale by a renewal
//! (a later `ends`, pushed again by that write) or a release is simply dropped. So the heap
//! holds one entry per ACTIVE write within a lease time: about two per client that renews at
//! T1. Clients that write far more often (a flood of renewals) would grow it without bound,
//! so `Table::due` starts it over from one walk of the table once it holds more than two
//! entries a record: memory stays under 16 bytes a record, and the walk's cost is spread
//! over the more than a table's worth of writes that made it necessary.
//!
//! Nothing is kept until a consumer asks for it ([`Expiry::start`]): a table no
//! relationship sweeps (a scope without failover) pays one relaxed load per write.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use crossbeam::queue::SegQueue;

/// `(ends, slot)`, the lease's end in Unix seconds first so the heap orders by it.
type Entry = (u32, u32);

#[derive(Debug, Default)]
pub(crate) struct Expiry {
    on: AtomicBool,
    incoming: SegQueue<Entry>,
    heap: Mutex<BinaryHeap<Reverse<Entry>>>,
}

impl Expiry {
    /// Starts keeping entries; `false` if already started.
    pub(crate) fn start(&self) -> bool {
        !self.on.swap(true, Ordering::AcqRel)
    }

    /// A writer wrote an ACTIVE lease of `slot` ending at `ends`.
    pub(crate) fn push(&self, ends: u32, slot: u32) {
        if self.on.load(Ordering::Relaxed) {
            self.incoming.push((ends, slot));
        }
    }

    /// Pops every entry due by `now` (`ends <= now`), in order of `ends`, and hands each
    /// distinct one to `f`; an entry for which `f` returns `false` (not settled: its write failed) is put
    /// back, to be offered again by the next call.
    pub(crate) fn pop_due(&self, now: u32, mut f: impl FnMut(u32) -> bool) {
        let mut heap = self.heap.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(e) = self.incoming.pop() {
            heap.push(Reverse(e));
        }
        let mut again = Vec::new();
        let mut last = None;
        while let Some(&Reverse((ends, slot))) = heap.peek() {
            if ends > now {
                break;
            }
            heap.pop();
            // The same entry twice (the start's walk and a writer both entered a write) is
            // offered once: equal entries leave the heap one after the other.
            if last == Some((ends, slot)) {
                continue;
            }
            last = Some((ends, slot));
            if !f(slot) {
                again.push(Reverse((ends, slot)));
            }
        }
        heap.extend(again);
    }

    /// Forgets every entry (the caller enters the live ones again by a walk).
    pub(crate) fn clear(&self) {
        let mut heap = self.heap.lock().unwrap_or_else(PoisonError::into_inner);
        while self.incoming.pop().is_some() {}
        heap.clear();
        heap.shrink_to_fit();
    }

    /// Entries held (queued and in the heap), for tests and the bench.
    pub(crate) fn len(&self) -> usize {
        let heap = self.heap.lock().unwrap_or_else(PoisonError::into_inner);
        heap.len() + self.incoming.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_kept_until_started() {
        let e = Expiry::default();
        e.push(10, 1);
        assert_eq!(e.len(), 0);
        assert!(e.start());
        assert!(!e.start());
        e.push(10, 1);
        assert_eq!(e.len(), 1);
    }

    #[test]
    fn pops_in_order_of_end_and_keeps_what_is_not_settled() {
        let e = Expiry::default();
        e.start();
        for (ends, slot) in [(30, 3), (10, 1), (20, 2), (40, 4), (10, 1)] {
            e.push(ends, slot);
        }
        let mut seen = Vec::new();
        e.pop_due(25, |slot| {
            seen.push(slot);
            slot != 2
        });
        assert_eq!(seen, [1, 2]);
        seen.clear();
        e.pop_due(35, |slot| {
            seen.push(slot);
            true
        });
        assert_eq!(seen, [2, 3], "the unsettled entry is offered again");
        assert_eq!(e.len(), 1);
    }
}
