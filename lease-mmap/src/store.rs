//! A `data_dir`: every subnet's table, the workers' journals, checkpoints and recovery.

use std::net::Ipv4Addr;
use std::path::Path;

use crate::{Table, TableId, WorkerJournal};

/// One subnet's table, as the config describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSpec {
    /// The subnet (network address and prefix length) the table belongs to.
    pub network: Ipv4Addr,
    pub prefix_len: u8,
    /// Addresses the table covers, inclusive (normally the subnet's pools' span).
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
    /// Inclusive ranges that may be handed out dynamically (pools minus exclusions and
    /// reserved addresses), sorted, non-overlapping, inside `first..=last`.
    pub allocatable: Vec<(Ipv4Addr, Ipv4Addr)>,
}

/// When a DHCPACK may leave relative to its journal entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Group commit (write + fdatasync) before replies leave. The default.
    #[default]
    Sync,
    /// Write to the page cache only: survives a process crash, not a power loss.
    Async,
}

/// Why a data directory could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{path}: {source}")]
    Io { path: std::path::PathBuf, source: std::io::Error },
    #[error("{path}: {reason}")]
    Corrupt { path: std::path::PathBuf, reason: String },
}

/// What recovery found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Journal entries applied to tables.
    pub replayed: u64,
    /// Journals whose tail was torn (cut at the first bad entry).
    pub torn_tails: u32,
    /// Whether the previous run shut down cleanly.
    pub clean: bool,
}

/// Every table of a data directory. `Sync`: shared by the workers and control.
#[derive(Debug)]
pub struct Store {
    _private: (),
}

impl Store {
    /// Open (creating if needed) the tables for `specs` under `dir` and recover them:
    /// replay every journal past the checkpoint, stopping at the first torn entry.
    /// Returns the store and one journal per worker (`workers` of them).
    pub fn open(
        dir: &Path,
        specs: &[TableSpec],
        workers: u16,
        durability: Durability,
    ) -> Result<(Store, Vec<WorkerJournal>, RecoveryReport), OpenError> {
        let _ = (dir, specs, workers, durability);
        todo!()
    }

    pub fn table(&self, id: TableId) -> &Table {
        let _ = id;
        todo!()
    }

    pub fn tables(&self) -> &[Table] {
        todo!()
    }

    /// Write the tables back (msync), then let the journals drop what the tables now hold.
    pub fn checkpoint(&self) -> Result<(), OpenError> {
        todo!()
    }
}
