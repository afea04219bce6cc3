//! Memory-mapped DHCPv4 lease tables.
//!
//! One table file per subnet holds a fixed-size [`record`] per address, indexed by
//! `address - first address`, and a client index in the same mapping. Every change a
//! DHCPACK promises is appended to a per-worker [`journal`] that is fdatasync'ed once per
//! group of batches (group commit; a [`JournalRecorder`] records the next group while the
//! journal commits one) before the ACK leaves; the mapped table is a checkpoint written back
//! in the background, and recovery replays the journals past it. `FORMAT.md` specifies the
//! bytes and the crash argument.
//!
//! API contract used by `dataplane` (the engine and the workers):
//! [`Store`] opens every table of a `data_dir` and recovers them; [`Table`] offers seqlock
//! reads, CAS updates and lock-free allocation; [`WorkerJournal`] is owned by one worker and
//! group-commits its batch.
//!
//! `unsafe` lives only in the private `map` module (the file mapping); every other module
//! is `#![forbid(unsafe_code)]`.

mod expiry;
pub mod journal;
mod map;
mod meta;
mod seqlock;
pub mod storage;
pub mod store;
mod sync;
pub mod table;

pub use journal::{CommitError, Damage, JournalGroup, JournalRecorder, WorkerJournal};

/// The mode of every file the store creates: the lease tables say who had which address,
/// so only the daemon's user reads them.
pub const FILE_MODE: u32 = 0o600;

/// The mode of every directory the store creates.
pub const DIR_MODE: u32 = 0o750;
/// The lease record and its on-disk encoding ([`lease_record`]).
pub use lease_record as record;
pub use lease_record::{
    BindingState, ClientId, ClientKey, Hostname, Lease, MAX_HOSTNAME, MAX_RELAY_INFO, Owner,
    RelayInfo, Slot, TableId, UnixTime,
};
pub use store::{Durability, OpenError, RecoveryReport, SetAside, Store, TableSpec};
pub use table::{AllocCursor, Table, UpdateError, free_only};
