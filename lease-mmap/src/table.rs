//! One subnet's lease table: a memory-mapped file of fixed-size records indexed by
//! `address - first address`, and a client index in the same mapping.
//!
//! Concurrency: a record changes only through a CAS on its version/state word; readers take
//! seqlock snapshots; free addresses are handed out through per-worker [`AllocCursor`] ranges
//! with stealing, so two workers never claim one address (the CAS decides any race).

use std::net::Ipv4Addr;

use crate::{ClientKey, Lease, UnixTime};

/// Index of a table within its [`crate::Store`] (the order of the specs given to `open`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId(pub u16);

/// Index of a record within its table: `address - first address`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot(pub u32);

/// Why a CAS update did not apply.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UpdateError {
    /// Someone changed the record since `expected` was read; `current` is its version now.
    #[error("record changed concurrently (now at version {current})")]
    Conflict { current: u64 },
    #[error("slot {0} is outside the table")]
    NoSuchSlot(u32),
    #[error("client index is full")]
    IndexFull,
}

/// A worker's position in the free-address ranges of every table.
#[derive(Debug, Default)]
pub struct AllocCursor {
    _private: (),
}

/// A mapped lease table. `Sync`: shared by every worker.
#[derive(Debug)]
pub struct Table {
    _private: (),
}

impl Table {
    pub fn id(&self) -> TableId {
        todo!()
    }

    /// First address covered (slot 0).
    pub fn first(&self) -> Ipv4Addr {
        todo!()
    }

    /// Number of records (addresses) in the table.
    pub fn len(&self) -> u32 {
        todo!()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The slot of `addr`, if the table covers it.
    pub fn slot(&self, addr: Ipv4Addr) -> Option<Slot> {
        let _ = addr;
        todo!()
    }

    /// The address of `slot`.
    pub fn addr(&self, slot: Slot) -> Ipv4Addr {
        let _ = slot;
        todo!()
    }

    /// Whether `slot` may be handed out dynamically (inside a pool, not excluded).
    pub fn is_allocatable(&self, slot: Slot) -> bool {
        let _ = slot;
        todo!()
    }

    /// A consistent snapshot of `slot` and the version it was read at.
    pub fn read(&self, slot: Slot) -> (u64, Lease) {
        let _ = slot;
        todo!()
    }

    /// The record most recently bound to `key` (any state but FREE/BACKUP), with its version.
    pub fn find_client(&self, key: &ClientKey<'_>) -> Option<(Slot, u64, Lease)> {
        let _ = key;
        todo!()
    }

    /// Replace `slot`'s lease with `new` if its version is still `expected`; returns the new
    /// version. Keeps the client index in step.
    pub fn update(&self, slot: Slot, expected: u64, new: &Lease) -> Result<u64, UpdateError> {
        let _ = (slot, expected, new);
        todo!()
    }

    /// Claim an allocatable address for `new` (which carries the client and state to write):
    /// the first slot in this worker's ranges whose current lease is FREE or for which
    /// `reusable(now, current)` holds, claimed by CAS. `None` when the table has nothing left.
    pub fn allocate(
        &self,
        cursor: &mut AllocCursor,
        now: UnixTime,
        new: &Lease,
        reusable: &dyn Fn(UnixTime, &Lease) -> bool,
    ) -> Option<(Slot, u64)> {
        let _ = (cursor, now, new, reusable);
        todo!()
    }

    /// Number of records in each [`crate::BindingState`], indexed by its `u8` value.
    pub fn counts(&self) -> [u64; 8] {
        todo!()
    }
}
