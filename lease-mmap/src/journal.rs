//! Per-worker write-ahead journal with group commit.

use crate::{Lease, Slot, TableId};

/// Why a group commit failed. Not retried: the caller stops answering and exits, and
/// recovery replays the journal (an fsync error may have dropped dirty pages).
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("journal write failed: {0}")]
    Write(#[source] std::io::Error),
    #[error("journal fdatasync failed: {0}")]
    Sync(#[source] std::io::Error),
}

/// One worker's journal. Owned by that worker's thread (`Send`, not shared).
#[derive(Debug)]
pub struct WorkerJournal {
    _private: (),
}

impl WorkerJournal {
    /// Buffer the change of `slot` in `table` to `lease` at record version `version`.
    pub fn record(&mut self, table: TableId, slot: Slot, version: u64, lease: &Lease) {
        let _ = (table, slot, version, lease);
        todo!()
    }

    /// Entries buffered since the last commit.
    pub fn pending(&self) -> usize {
        todo!()
    }

    /// Write every buffered entry and make it durable with one fdatasync (group commit).
    /// Replies that promise these bindings may leave only after this returns `Ok`.
    pub fn commit(&mut self) -> Result<(), CommitError> {
        todo!()
    }
}
