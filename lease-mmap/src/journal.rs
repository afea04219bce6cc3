//! Per-worker write-ahead journal with group commit (`FORMAT.md` §5).
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use crate::record::disk::{self, LEASE_LEN};
use crate::storage::JournalStorage;
use crate::sync::Ordering;
use crate::{Durability, Lease, Slot, TableId};

/// Why a group commit failed. Not retried: the caller stops answering and exits, and
/// recovery replays the journal (an fsync error may have dropped dirty pages).
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("journal write failed: {0}")]
    Write(#[source] std::io::Error),
    #[error("journal fdatasync failed: {0}")]
    Sync(#[source] std::io::Error),
    /// An earlier write or fdatasync failed; this journal accepts nothing more.
    #[error("journal refuses commits after an earlier write or fdatasync failure")]
    Poisoned,
}

pub(crate) const HEADER_LEN: u64 = 512;
pub(crate) const ENTRY_LEN: usize = 512;
const HEADER_MAGIC: &[u8; 8] = b"TDMJRNL1";
const ENTRY_MAGIC: &[u8; 4] = b"TJE1";
const FORMAT: u32 = 1;
/// A journal whose entries are all checkpointed is started over once it is this long.
const DEFAULT_RESET_AT: u64 = 64 << 20;

/// What a table is called inside journal entries: its network and prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TableKey {
    pub(crate) network: u32,
    pub(crate) prefix_len: u8,
}

/// Shared between a worker's journal and the store's checkpointer.
#[derive(Debug, Default)]
pub(crate) struct JournalShared {
    /// LSN of the last committed entry (0: none yet).
    pub(crate) committed: AtomicU64,
    /// LSN up to which the tables are known to hold every entry (manifest on disk).
    pub(crate) checkpointed: AtomicU64,
}

/// One worker's journal. Owned by that worker's thread (`Send`, not shared).
#[derive(Debug)]
pub struct WorkerJournal {
    worker: u16,
    storage: Box<dyn JournalStorage>,
    durability: Durability,
    tables: Arc<[TableKey]>,
    buf: Vec<u8>,
    next_lsn: u64,
    /// File offset the next commit writes at.
    end: u64,
    poisoned: bool,
    reset_at: u64,
    shared: Arc<JournalShared>,
}

/// A decoded journal entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) lsn: u64,
    pub(crate) table: TableKey,
    pub(crate) slot: u32,
    pub(crate) version: u64,
    pub(crate) lease: Lease,
}

fn header(worker: u16, base_lsn: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[0..8].copy_from_slice(HEADER_MAGIC);
    h[8..12].copy_from_slice(&FORMAT.to_le_bytes());
    h[12..14].copy_from_slice(&worker.to_le_bytes());
    h[16..24].copy_from_slice(&base_lsn.to_le_bytes());
    let crc = crc32c::crc32c(&h[..508]);
    h[508..].copy_from_slice(&crc.to_le_bytes());
    h
}

pub(crate) fn encode_entry(e: &Entry, out: &mut [u8]) {
    let b = &mut out[..ENTRY_LEN];
    b.fill(0);
    b[0..4].copy_from_slice(ENTRY_MAGIC);
    b[8..16].copy_from_slice(&e.lsn.to_le_bytes());
    b[16..20].copy_from_slice(&e.table.network.to_le_bytes());
    b[20] = e.table.prefix_len;
    b[24..28].copy_from_slice(&e.slot.to_le_bytes());
    b[32..40].copy_from_slice(&e.version.to_le_bytes());
    disk::encode_lease(&e.lease, &mut b[40..40 + LEASE_LEN]);
    let crc = crc32c::crc32c(&b[..508]);
    b[508..].copy_from_slice(&crc.to_le_bytes());
}

fn decode_entry(b: &[u8]) -> Option<Entry> {
    if b.len() != ENTRY_LEN
        || &b[0..4] != ENTRY_MAGIC
        || crc32c::crc32c(&b[..508]) != disk::get32(b, 508)
    {
        return None;
    }
    Some(Entry {
        lsn: disk::get64(b, 8),
        table: TableKey {
            network: disk::get32(b, 16),
            prefix_len: b[20],
        },
        slot: disk::get32(b, 24),
        version: disk::get64(b, 32),
        lease: disk::decode_lease(&b[40..40 + LEASE_LEN])?,
    })
}

/// What reading a journal found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Scan {
    /// LSN of the last good entry, or the header's base - 1 (`None`: no valid header).
    pub(crate) last_lsn: Option<u64>,
    /// Bytes followed the last good entry (a torn or garbage tail).
    pub(crate) torn: bool,
    pub(crate) entries: u64,
}

/// Read a journal up to the first torn entry (bad magic or CRC, or an LSN that is not the
/// previous one plus one), handing each good entry to `apply`.
pub(crate) fn scan(
    storage: &dyn JournalStorage,
    mut apply: impl FnMut(&Entry),
) -> std::io::Result<Scan> {
    let len = storage.size()?;
    let mut h = [0u8; HEADER_LEN as usize];
    let n = storage.read_at(0, &mut h)?;
    if n < h.len() || &h[0..8] != HEADER_MAGIC || crc32c::crc32c(&h[..508]) != disk::get32(&h, 508)
    {
        return Ok(Scan {
            last_lsn: None,
            torn: len > 0,
            entries: 0,
        });
    }
    let base = disk::get64(&h, 16);
    let mut expect = base;
    let mut off = HEADER_LEN;
    let mut entries = 0;
    let mut buf = vec![0u8; ENTRY_LEN * 256];
    'outer: while off < len {
        let got = storage.read_at(off, &mut buf)?;
        if got == 0 {
            break;
        }
        for chunk in buf[..got].chunks(ENTRY_LEN) {
            match decode_entry(chunk) {
                Some(e) if e.lsn == expect => {
                    apply(&e);
                    expect += 1;
                    entries += 1;
                    off += ENTRY_LEN as u64;
                }
                _ => break 'outer,
            }
        }
    }
    Ok(Scan {
        last_lsn: Some(expect - 1),
        torn: off < len,
        entries,
    })
}

impl WorkerJournal {
    /// Start `worker`'s journal over (empty, first LSN `next_lsn`) and make that durable.
    pub(crate) fn create(
        worker: u16,
        mut storage: Box<dyn JournalStorage>,
        durability: Durability,
        tables: Arc<[TableKey]>,
        next_lsn: u64,
        shared: Arc<JournalShared>,
    ) -> std::io::Result<Self> {
        storage.set_len(0)?;
        storage.write_at(0, &header(worker, next_lsn))?;
        storage.sync_data()?;
        shared.committed.store(next_lsn - 1, Ordering::Release);
        shared.checkpointed.store(next_lsn - 1, Ordering::Release);
        Ok(Self {
            worker,
            storage,
            durability,
            tables,
            buf: Vec::new(),
            next_lsn,
            end: HEADER_LEN,
            poisoned: false,
            reset_at: DEFAULT_RESET_AT,
            shared,
        })
    }

    /// The worker this journal belongs to.
    pub fn worker(&self) -> u16 {
        self.worker
    }

    /// Start the file over once it is `bytes` long and everything in it is checkpointed
    /// (default 64 MiB).
    pub fn set_reset_threshold(&mut self, bytes: u64) {
        self.reset_at = bytes;
    }

    /// Bytes the journal file holds now (header and committed entries).
    pub fn file_len(&self) -> u64 {
        self.end
    }

    /// Buffer the change of `slot` in `table` to `lease` at record version `version`.
    ///
    /// # Panics
    /// If `table` is not a table of the store this journal came from.
    pub fn record(&mut self, table: TableId, slot: Slot, version: u64, lease: &Lease) {
        let key = *self
            .tables
            .get(usize::from(table.0))
            .expect("TableId of another store");
        let at = self.buf.len();
        self.buf.resize(at + ENTRY_LEN, 0);
        let e = Entry {
            lsn: self.next_lsn,
            table: key,
            slot: slot.0,
            version,
            lease: *lease,
        };
        encode_entry(&e, &mut self.buf[at..]);
        self.next_lsn += 1;
    }

    /// Whether an earlier write or fdatasync failed (every commit now fails).
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Entries buffered since the last commit.
    pub fn pending(&self) -> usize {
        self.buf.len() / ENTRY_LEN
    }

    /// Write every buffered entry and make it durable with one fdatasync (group commit).
    /// Replies that promise these bindings may leave only after this returns `Ok`.
    pub fn commit(&mut self) -> Result<(), CommitError> {
        if self.poisoned {
            return Err(CommitError::Poisoned);
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        let first_lsn = self.next_lsn - self.pending() as u64;
        let committed = self.shared.committed.load(Ordering::Acquire);
        let checkpointed = self.shared.checkpointed.load(Ordering::Acquire);
        let reset = self.end >= self.reset_at && checkpointed >= committed;
        let res = (|| {
            if reset {
                // Everything in the file is in the (msync'ed) tables: start it over with
                // this batch. A crash before the sync leaves an empty or headerless file,
                // which holds nothing that is not checkpointed and nothing acknowledged.
                self.storage.set_len(0).map_err(CommitError::Write)?;
                let mut all = header(self.worker, first_lsn).to_vec();
                all.extend_from_slice(&self.buf);
                self.storage.write_at(0, &all).map_err(CommitError::Write)?;
            } else {
                self.storage
                    .write_at(self.end, &self.buf)
                    .map_err(CommitError::Write)?;
            }
            if self.durability == Durability::Sync {
                self.storage.sync_data().map_err(CommitError::Sync)?;
            }
            Ok(())
        })();
        if let Err(e) = res {
            // fsyncgate: no retry. The caller stops answering; recovery reads the journal.
            self.poisoned = true;
            tracing::error!(worker = self.worker, error = %e, "journal commit failed; refusing further commits");
            return Err(e);
        }
        if reset {
            self.end = HEADER_LEN;
        }
        self.end += self.buf.len() as u64;
        self.buf.clear();
        self.shared
            .committed
            .store(self.next_lsn - 1, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Backend, SimBackend};
    use std::path::Path;

    fn journal(sim: &SimBackend) -> WorkerJournal {
        let storage = sim.open_journal(Path::new("/j"), 3).unwrap();
        let tables: Arc<[TableKey]> = vec![TableKey {
            network: 0x0a00_0000,
            prefix_len: 8,
        }]
        .into();
        WorkerJournal::create(3, storage, Durability::Sync, tables, 7, Arc::default()).unwrap()
    }

    #[test]
    fn entries_scan_back_in_order() {
        let sim = SimBackend::new();
        let mut j = journal(&sim);
        for i in 0..5u32 {
            j.record(TableId(0), Slot(i), u64::from(i) + 1, &Lease::default());
        }
        j.commit().unwrap();
        let storage = sim.open_journal(Path::new("/j"), 3).unwrap();
        let mut seen = Vec::new();
        let scan = scan(storage.as_ref(), |e| seen.push((e.lsn, e.slot, e.version))).unwrap();
        assert_eq!(
            scan,
            Scan {
                last_lsn: Some(11),
                torn: false,
                entries: 5
            }
        );
        assert_eq!(
            seen,
            (0..5)
                .map(|i| (7 + u64::from(i), i, u64::from(i) + 1))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn garbage_and_headerless_files_hold_nothing() {
        let sim = SimBackend::new();
        sim.set_file(Path::new("/g"), 0, vec![0xab; 4000]);
        let storage = sim.open_journal(Path::new("/g"), 0).unwrap();
        let s = scan(storage.as_ref(), |_| panic!("no entries")).unwrap();
        assert_eq!(
            s,
            Scan {
                last_lsn: None,
                torn: true,
                entries: 0
            }
        );
        sim.set_file(Path::new("/g"), 0, Vec::new());
        let s = scan(storage.as_ref(), |_| panic!("no entries")).unwrap();
        assert_eq!(
            s,
            Scan {
                last_lsn: None,
                torn: false,
                entries: 0
            }
        );
    }

    #[test]
    fn a_flipped_bit_ends_the_journal() {
        let sim = SimBackend::new();
        let mut j = journal(&sim);
        for i in 0..3u32 {
            j.record(TableId(0), Slot(i), 1, &Lease::default());
        }
        j.commit().unwrap();
        let mut f = sim.file(Path::new("/j"), 3).unwrap().live;
        f[512 * 2 + 100] ^= 4; // inside entry 2
        sim.set_file(Path::new("/j"), 3, f);
        let storage = sim.open_journal(Path::new("/j"), 3).unwrap();
        let s = scan(storage.as_ref(), |_| {}).unwrap();
        assert_eq!(
            s,
            Scan {
                last_lsn: Some(7),
                torn: true,
                entries: 1
            }
        );
    }
}
