//! What the failover core needs of the lease tables and of durable storage, as two small
//! traits: the daemon implements them over the memory-mapped store and its journal
//! (`control::failover::replicate`), the simulations over the same store on `/dev/shm`.
//!
//! Durability is explicit: [`Storage::update`] with `journal` makes a write part of the
//! next [`Storage::commit`] (one group commit, one fdatasync); the core calls `commit`
//! before anything that promises the write to the partner (a BNDACK, a BNDUPD of a moved
//! address) and stops acknowledging when it fails.

use std::net::Ipv4Addr;

use lease_record::{BindingState, Lease, Slot, TableId, UnixTime};

use crate::fsm::PersistedState;

/// One record of the relationship's tables.
pub type RecordId = (TableId, Slot);

/// A storage failure, with its cause. The core stops acknowledging after a failed commit.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct StorageError(Box<dyn std::error::Error + Send + Sync>);

impl StorageError {
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(e))
    }
}

/// One lease table as the core reads it (pool balancing, the expiry sweep, update requests).
/// Records change under a walk (workers allocate concurrently): a write goes through
/// [`Storage::update`], which checks the record again.
pub trait Records {
    fn id(&self) -> TableId;
    /// Records in the table (slots `0..slots()`).
    fn slots(&self) -> u32;
    /// Whether the slot is in a pool (not excluded, not reserved).
    fn is_allocatable(&self, slot: Slot) -> bool;
    fn read(&self, slot: Slot) -> Lease;
    fn for_each(&self, f: &mut dyn FnMut(Slot, &Lease));
    /// Every lease that is ACTIVE and ended by `now`, as a walk would find them. The
    /// daemon's tables answer from their expiry index without walking
    /// (`lease_mmap::Table::due`: each such lease is offered once, and again after a later
    /// ACTIVE write); this default walks.
    fn due(&self, now: UnixTime, f: &mut dyn FnMut(Slot, &Lease)) {
        self.for_each(&mut |slot, l| {
            if l.state == BindingState::Active && l.ends <= now {
                f(slot, l);
            }
        });
    }
}

/// One relationship's records and its durable state.
pub trait Storage {
    /// Visits each of the relationship's tables.
    fn tables(&self, f: &mut dyn FnMut(&dyn Records));
    /// The record of `ip` among the relationship's tables.
    fn locate(&self, ip: Ipv4Addr) -> Option<RecordId>;
    /// A record's address and lease.
    fn read(&self, rec: RecordId) -> Option<(Ipv4Addr, Lease)>;
    /// Whether a record is in a pool (not excluded, not reserved).
    fn is_allocatable(&self, rec: RecordId) -> bool {
        let mut yes = false;
        self.tables(&mut |t| {
            if t.id() == rec.0 {
                yes = t.is_allocatable(rec.1);
            }
        });
        yes
    }
    /// Changes a record against concurrent writers (compare-and-swap, retried): `change`
    /// gets the current record and returns the new one, or `None` to leave it. With
    /// `journal` the write is durable after the next [`Storage::commit`]; without, a crash
    /// may lose it (only acknowledgements are written so; a store may journal them anyway,
    /// as `control`'s does for records with relay info). Returns the record written.
    fn update(
        &mut self,
        rec: RecordId,
        journal: bool,
        change: &mut dyn FnMut(&Lease) -> Option<Lease>,
    ) -> Result<Option<Lease>, StorageError>;
    /// Whether journaled writes wait for [`Storage::commit`].
    fn pending(&self) -> bool;
    /// Makes every journaled write durable (group commit).
    fn commit(&mut self) -> Result<(), StorageError>;
    /// Stores the relationship's failover state, durably, before anything sent after it.
    fn persist(&mut self, state: &PersistedState) -> Result<(), StorageError>;
}
