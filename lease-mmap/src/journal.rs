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
/// With durability `sync`, the file is zero-filled this far ahead of the entries, so that a
/// commit's fdatasync need not also commit a new file size (ext4: a jbd2 transaction) but
/// once every 256 KiB (512 entries). A bigger step makes that one commit slow enough to show
/// in the p99 (4 MiB: 2.4 → 5.5 ms at 50k DORA/s here).
const PREALLOCATE: u64 = 256 << 10;
/// No LSN reaches this (2^63: 292 years at a billion entries a second), so a header, an
/// entry or a manifest naming one is damaged, and LSN arithmetic never overflows
/// (`FORMAT.md` §5.3).
pub(crate) const LSN_LIMIT: u64 = 1 << 63;

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
    /// Its own recording; a recorder handed out ([`WorkerJournal::recorder`]) records instead.
    rec: JournalRecorder,
    /// The LSN the next committed group starts at.
    next_commit: u64,
    /// A committed group's buffer, recorded into again.
    spare: Vec<u8>,
    /// File offset the next commit writes at.
    end: u64,
    /// The file is zero-filled up to here ([`PREALLOCATE`]).
    allocated: u64,
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
    /// The entry's place in its commit's batch (0: the first).
    pub(crate) in_batch: u32,
}

impl Entry {
    /// The LSN of the first entry of the batch this entry was committed in.
    fn batch_first(&self) -> u64 {
        self.lsn.saturating_sub(u64::from(self.in_batch))
    }
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
    b[4..8].copy_from_slice(&e.in_batch.to_le_bytes());
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
        || disk::get64(b, 8) >= LSN_LIMIT
        || disk::get64(b, 32) > disk::MAX_VERSION
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
        in_batch: disk::get32(b, 4),
    })
}

/// Where a journal stops being readable although intact entries of later commits follow:
/// corruption, not a torn tail (`FORMAT.md` §5.3). Committed entries were lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// Byte offset of the first damaged entry, or 0 for a damaged header.
    pub offset: u64,
    /// The LSN the damaged entry should hold (`None`: the header is damaged).
    pub lsn: Option<u64>,
    /// Entry positions from the damage to the last intact entry that hold no intact entry.
    pub damaged: u64,
    /// Intact entries after the damage (their LSNs run up to `last_lsn`).
    pub intact_after: u64,
    /// The LSN of the last intact entry after the damage.
    pub last_lsn: u64,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.lsn {
            Some(lsn) => write!(f, "entry at byte {} (LSN {lsn}) is damaged", self.offset)?,
            None => write!(f, "the header (byte 0) is damaged")?,
        }
        write!(
            f,
            ", and {} intact entr{} of later commits follow{} it (up to LSN {}; {} damaged \
             entr{} in between): corruption inside the journal, not a torn tail",
            self.intact_after,
            if self.intact_after == 1 { "y" } else { "ies" },
            if self.intact_after == 1 { "s" } else { "" },
            self.last_lsn,
            self.damaged,
            if self.damaged == 1 { "y" } else { "ies" },
        )
    }
}

/// How a journal's bytes end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// Nothing follows the last good entry.
    Clean,
    /// Bytes follow the last good entry (from byte `at`) that hold nothing committed: the
    /// torn last batch of a crash, stale entries of an earlier life of the file, garbage.
    Torn { at: u64 },
    /// A damaged entry or header followed by intact entries of later commits.
    Damaged(Damage),
}

/// What reading a journal found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Scan {
    /// The highest LSN of an entry of this life of the file, or the header's base - 1
    /// (`None`: no valid header and no entry).
    pub(crate) last_lsn: Option<u64>,
    /// Good entries before the first bad byte.
    pub(crate) entries: u64,
    /// Intact entries after the first bad byte that were handed to `apply` too (only
    /// with `past_damage`).
    pub(crate) applied_after: u64,
    pub(crate) end: End,
}

/// Reads `storage` from `from` to its end in entry-sized pieces (the last may be short),
/// handing each with its byte offset to `f`.
fn for_each_piece(
    storage: &dyn JournalStorage,
    from: u64,
    len: u64,
    mut f: impl FnMut(u64, &[u8]),
) -> std::io::Result<()> {
    let mut buf = vec![0u8; ENTRY_LEN * 256];
    let mut off = from;
    while off < len {
        let got = storage.read_at(off, &mut buf)?;
        if got == 0 {
            break;
        }
        for piece in buf[..got].chunks(ENTRY_LEN) {
            f(off, piece);
            off += piece.len() as u64;
        }
    }
    Ok(())
}

/// The entry position of byte offset `off` (entries start after the header).
fn position(off: u64) -> u64 {
    (off - HEADER_LEN) / ENTRY_LEN as u64
}

/// Read a journal (`FORMAT.md` §5.3), handing each good entry to `apply`: every entry up to
/// the first bad one (bad magic or CRC, a lease that does not decode, or an LSN that is not
/// its position's), and, with `past_damage`, every intact entry of this life of the file
/// after it too (repair).
///
/// Past the first bad entry the rest of the file is read as well, to tell a torn tail from
/// corruption: an intact entry in its place whose batch began after the bad entry's LSN was
/// written by a later commit, and a commit starts only after the previous one's fdatasync.
/// So the bad entry had been durable, and something damaged it since. Anything else after
/// the bad entry belongs to the last, unfinished batch or to an earlier life of the file.
pub(crate) fn scan(
    storage: &dyn JournalStorage,
    past_damage: bool,
    mut apply: impl FnMut(&Entry),
) -> std::io::Result<Scan> {
    let len = storage.size()?;
    let mut h = [0u8; HEADER_LEN as usize];
    let n = storage.read_at(0, &mut h)?;
    let header_ok = n == h.len()
        && &h[0..8] == HEADER_MAGIC
        && crc32c::crc32c(&h[..508]) == disk::get32(&h, 508)
        && disk::get64(&h, 16) < LSN_LIMIT;
    if !header_ok {
        return scan_headerless(
            storage,
            len,
            h[..n].iter().all(|b| *b == 0),
            past_damage,
            apply,
        );
    }
    let base = disk::get64(&h, 16);
    let mut entries = 0;
    // Phase 1: the good prefix.
    let mut bad_at: Option<u64> = None;
    for_each_piece(storage, HEADER_LEN, len, |off, piece| {
        if bad_at.is_some() {
            return;
        }
        match decode_entry(piece) {
            Some(e) if e.lsn == base + position(off) => {
                apply(&e);
                entries += 1;
            }
            _ => bad_at = Some(off),
        }
    })?;
    let mut last_lsn = (base + entries).checked_sub(1);
    let Some(bad_at) = bad_at else {
        return Ok(Scan {
            last_lsn,
            entries,
            applied_after: 0,
            end: End::Clean,
        });
    };
    // Phase 2: what follows the first bad entry.
    let bad_lsn = base + position(bad_at);
    let (mut intact, mut later_commit, mut last_pos, mut applied_after) = (0u64, false, 0u64, 0u64);
    let mut zeros = true;
    for_each_piece(storage, bad_at, len, |off, piece| {
        zeros &= piece.iter().all(|b| *b == 0);
        if off == bad_at {
            return;
        }
        let pos = position(off);
        if let Some(e) = decode_entry(piece).filter(|e| e.lsn == base + pos) {
            intact += 1;
            last_pos = pos;
            later_commit |= e.batch_first() > bad_lsn;
            last_lsn = last_lsn.max(Some(e.lsn));
            if past_damage {
                apply(&e);
                applied_after += 1;
            }
        }
    })?;
    let end = if later_commit {
        End::Damaged(Damage {
            offset: bad_at,
            lsn: Some(bad_lsn),
            damaged: last_pos + 1 - position(bad_at) - intact,
            intact_after: intact,
            last_lsn: base + last_pos,
        })
    } else if zeros {
        // The zero-filled room ahead of the entries (`PREALLOCATE`): the file ends here.
        End::Clean
    } else {
        End::Torn { at: bad_at }
    };
    Ok(Scan {
        last_lsn,
        entries,
        applied_after,
        end,
    })
}

/// A journal without a valid header. A crash while the journal was started over (truncate,
/// then header and first batch in one write) leaves at most a zero header and entries of
/// that one batch: that holds nothing committed. A header that is not all zero, or intact
/// entries of more than one commit, mean the header was once durable and was damaged.
fn scan_headerless(
    storage: &dyn JournalStorage,
    len: u64,
    zero_header: bool,
    past_damage: bool,
    mut apply: impl FnMut(&Entry),
) -> std::io::Result<Scan> {
    // The entries that agree with the first intact one on where LSNs start.
    let mut base: Option<u64> = None;
    let mut batches: Option<(u64, bool)> = None; // (first batch seen, another seen)
    let (mut intact, mut last_pos, mut last_lsn) = (0u64, 0u64, None);
    let mut applied_after = 0;
    for_each_piece(storage, HEADER_LEN, len, |off, piece| {
        let pos = position(off);
        let Some(e) = decode_entry(piece) else { return };
        let b = *base.get_or_insert(e.lsn.wrapping_sub(pos));
        if e.lsn != b.wrapping_add(pos) {
            return;
        }
        intact += 1;
        last_pos = pos;
        last_lsn = last_lsn.max(Some(e.lsn));
        match &mut batches {
            None => batches = Some((e.batch_first(), false)),
            Some((first, other)) => *other |= e.batch_first() != *first,
        }
        if past_damage {
            apply(&e);
            applied_after += 1;
        }
    })?;
    let damaged = intact > 0 && (!zero_header || batches.is_some_and(|(_, other)| other));
    let end = if damaged {
        End::Damaged(Damage {
            offset: 0,
            lsn: None,
            damaged: 1 + last_pos + 1 - intact,
            intact_after: intact,
            last_lsn: last_lsn.unwrap_or(0),
        })
    } else if len > 0 {
        End::Torn { at: 0 }
    } else {
        End::Clean
    };
    Ok(Scan {
        last_lsn,
        entries: 0,
        applied_after,
        end,
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
            rec: JournalRecorder {
                tables,
                buf: Vec::new(),
                next_lsn,
            },
            next_commit: next_lsn,
            spare: Vec::new(),
            end: HEADER_LEN,
            allocated: 0,
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
        self.rec.record(table, slot, version, lease);
    }

    /// A recorder that buffers this journal's next entries on another thread than the one
    /// that commits them ([`JournalRecorder`]): from now on entries are recorded there and
    /// committed here with [`WorkerJournal::commit_group`]. Entries buffered here and not
    /// committed yet go with it.
    pub fn recorder(&mut self) -> JournalRecorder {
        let idle = JournalRecorder {
            tables: Arc::clone(&self.rec.tables),
            buf: Vec::new(),
            next_lsn: self.rec.next_lsn,
        };
        std::mem::replace(&mut self.rec, idle)
    }

    /// Takes recording back from `recorder` (the inverse of [`WorkerJournal::recorder`]):
    /// what it buffered and no group took is buffered here again, for
    /// [`WorkerJournal::commit`].
    ///
    /// # Panics
    /// If `recorder` is not this journal's, or a group it gave was not committed here.
    pub fn resume(&mut self, recorder: JournalRecorder) {
        assert!(
            self.rec.pending() == 0
                && self.next_commit + recorder.pending() as u64 == recorder.next_lsn,
            "a recorder resumed by a journal it does not continue"
        );
        self.rec = recorder;
    }
    /// Whether an earlier write or fdatasync failed (every commit now fails).
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Entries buffered since the last commit.
    pub fn pending(&self) -> usize {
        self.rec.pending()
    }

    /// Write every buffered entry and make it durable with one fdatasync (group commit).
    /// Replies that promise these bindings may leave only after this returns `Ok`.
    pub fn commit(&mut self) -> Result<(), CommitError> {
        let group = self.rec.take(std::mem::take(&mut self.spare));
        let res = self.commit_group(&group);
        self.spare = group.into_buffer();
        res
    }

    /// Commit `group`, the next entries of a [`JournalRecorder`] of this journal, like
    /// [`WorkerJournal::commit`]: one write and one fdatasync.
    ///
    /// # Errors
    /// As [`WorkerJournal::commit`]; and [`CommitError::Write`] if `group` is not the
    /// entries that follow the last committed ones (a group lost or committed twice).
    pub fn commit_group(&mut self, group: &JournalGroup) -> Result<(), CommitError> {
        if group.first_lsn != self.next_commit || self.rec.pending() != 0 {
            self.poisoned = true;
            return Err(CommitError::Write(std::io::Error::other(format!(
                "journal group starts at LSN {}, the journal at {}",
                group.first_lsn, self.next_commit
            ))));
        }
        self.next_commit += group.entries() as u64;
        self.write_group(&group.buf, group.first_lsn)
    }

    /// Write the encoded entries `buf` (LSNs from `first_lsn`) at the end of the file, or
    /// start the file over with them, and fdatasync.
    fn write_group(&mut self, buf: &[u8], first_lsn: u64) -> Result<(), CommitError> {
        if self.poisoned {
            return Err(CommitError::Poisoned);
        }
        if buf.is_empty() {
            return Ok(());
        }
        let last_lsn = first_lsn + (buf.len() / ENTRY_LEN) as u64 - 1;
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
                all.extend_from_slice(buf);
                self.storage.write_at(0, &all).map_err(CommitError::Write)?;
            } else {
                let end = self.end + buf.len() as u64;
                if self.durability == Durability::Sync && end > self.allocated {
                    let to = end.div_ceil(PREALLOCATE) * PREALLOCATE;
                    match self.storage.preallocate(to) {
                        Ok(()) => {}
                        // No room to fill ahead: the entries may still fit where the file
                        // already has blocks; append them (and try again a step later).
                        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) => {
                        }
                        Err(e) => return Err(CommitError::Write(e)),
                    }
                    self.allocated = to;
                }
                self.storage
                    .write_at(self.end, buf)
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
            self.allocated = 0;
        }
        self.end += buf.len() as u64;
        self.shared.committed.store(last_lsn, Ordering::Release);
        Ok(())
    }
}

/// Encode the change of `slot` in `table` into `buf` as the entry with LSN `*next_lsn`
/// (its place in the group is its place in `buf`), and count the LSN.
///
/// # Panics
/// If `table` is not one of `tables`.
fn encode_record(
    tables: &[TableKey],
    buf: &mut Vec<u8>,
    next_lsn: &mut u64,
    table: TableId,
    slot: Slot,
    version: u64,
    lease: &Lease,
) {
    let key = *tables
        .get(usize::from(table.0))
        .expect("TableId of another store");
    let at = buf.len();
    buf.resize(at + ENTRY_LEN, 0);
    let e = Entry {
        lsn: *next_lsn,
        table: key,
        slot: slot.0,
        version,
        lease: *lease,
        in_batch: u32::try_from(at / ENTRY_LEN).unwrap_or(u32::MAX),
    };
    encode_entry(&e, &mut buf[at..]);
    *next_lsn += 1;
}

/// The recording half of a [`WorkerJournal`] ([`WorkerJournal::recorder`]): buffers entries
/// with their LSNs while the journal, on another thread, commits the previous group. So a
/// worker decides the next batch while the last one's fdatasync runs, and LSNs and the
/// one-commit-at-a-time order of the file stay as they were.
#[derive(Debug)]
pub struct JournalRecorder {
    tables: Arc<[TableKey]>,
    buf: Vec<u8>,
    next_lsn: u64,
}

impl JournalRecorder {
    /// Buffer a change, as [`WorkerJournal::record`].
    ///
    /// # Panics
    /// If `table` is not a table of the store the journal came from.
    pub fn record(&mut self, table: TableId, slot: Slot, version: u64, lease: &Lease) {
        encode_record(
            &self.tables,
            &mut self.buf,
            &mut self.next_lsn,
            table,
            slot,
            version,
            lease,
        );
    }

    /// Entries buffered since the last [`JournalRecorder::take`].
    pub fn pending(&self) -> usize {
        self.buf.len() / ENTRY_LEN
    }

    /// The buffered entries as one group to commit, in LSN order after the group taken
    /// before. Recording goes on into `spare` (cleared; a group's buffer back from
    /// [`JournalGroup::into_buffer`], so that nothing is allocated once warm).
    pub fn take(&mut self, mut spare: Vec<u8>) -> JournalGroup {
        spare.clear();
        let buf = std::mem::replace(&mut self.buf, spare);
        JournalGroup {
            first_lsn: self.next_lsn - (buf.len() / ENTRY_LEN) as u64,
            buf,
        }
    }
}

/// The entries of one group commit, taken from a [`JournalRecorder`].
#[derive(Debug)]
pub struct JournalGroup {
    first_lsn: u64,
    buf: Vec<u8>,
}

impl JournalGroup {
    /// How many entries it holds.
    pub fn entries(&self) -> usize {
        self.buf.len() / ENTRY_LEN
    }

    /// Its buffer, for [`JournalRecorder::take`] to record into again.
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
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

    /// Commits `batches` (sizes) of entries for slots 0, 1, 2, ... and returns the file.
    fn committed(sim: &SimBackend, batches: &[u32]) -> Vec<u8> {
        let mut j = journal(sim);
        let mut slot = 0;
        for n in batches {
            for _ in 0..*n {
                j.record(TableId(0), Slot(slot), 1, &Lease::default());
                slot += 1;
            }
            j.commit().unwrap();
        }
        sim.file(Path::new("/j"), 3).unwrap().live
    }

    #[test]
    fn groups_of_a_recorder_commit_as_the_journal_would() {
        // The same entries committed in the same groups, once by the journal itself and
        // once recorded elsewhere (one pending entry handed over with the recorder), give
        // the same bytes; and recording goes back to the journal after.
        let direct = committed(&SimBackend::new(), &[3, 2]);
        let sim = SimBackend::new();
        let mut j = journal(&sim);
        j.record(TableId(0), Slot(0), 1, &Lease::default());
        let mut rec = j.recorder();
        assert_eq!(rec.pending(), 1);
        for slot in 1..3 {
            rec.record(TableId(0), Slot(slot), 1, &Lease::default());
        }
        let first = rec.take(Vec::new());
        assert_eq!((first.entries(), rec.pending()), (3, 0));
        for slot in 3..5 {
            rec.record(TableId(0), Slot(slot), 1, &Lease::default());
        }
        j.commit_group(&first).unwrap();
        let second = rec.take(first.into_buffer());
        j.commit_group(&second).unwrap();
        assert_eq!(sim.file(Path::new("/j"), 3).unwrap().live, direct);
        // A group out of order is refused, and the journal takes no more.
        rec.record(TableId(0), Slot(5), 1, &Lease::default());
        let third = rec.take(second.into_buffer());
        rec.record(TableId(0), Slot(6), 1, &Lease::default());
        let fourth = rec.take(Vec::new());
        assert!(matches!(
            j.commit_group(&fourth),
            Err(CommitError::Write(_))
        ));
        assert!(j.is_poisoned());
        assert!(matches!(j.commit_group(&third), Err(CommitError::Poisoned)));
    }

    #[test]
    fn a_file_journal_is_zero_filled_ahead_and_its_zero_tail_reads_as_a_clean_end() {
        use crate::storage::FileBackend;
        let dir = tempfile::tempdir().unwrap();
        let tables: Arc<[TableKey]> = vec![TableKey {
            network: 0x0a00_0000,
            prefix_len: 8,
        }]
        .into();
        let storage = FileBackend.open_journal(dir.path(), 1).unwrap();
        let mut j =
            WorkerJournal::create(1, storage, Durability::Sync, tables, 1, Arc::default()).unwrap();
        let file = dir.path().join(crate::storage::journal_name(1));
        let len = || std::fs::metadata(&file).unwrap().len();
        j.record(TableId(0), Slot(0), 1, &Lease::default());
        j.commit().unwrap();
        assert_eq!(len(), PREALLOCATE, "zero-filled ahead");
        // Many steps on, the file ends at the first step boundary past the entries.
        let per_batch = 1000;
        for b in 0..9u32 {
            for k in 0..per_batch {
                j.record(
                    TableId(0),
                    Slot(1 + b * per_batch + k),
                    1,
                    &Lease::default(),
                );
            }
            j.commit().unwrap();
        }
        let used = HEADER_LEN + 9001 * ENTRY_LEN as u64;
        assert_eq!(len(), used.div_ceil(PREALLOCATE) * PREALLOCATE);
        assert!(len() > used);
        let storage = FileBackend.open_journal(dir.path(), 1).unwrap();
        let mut n = 0;
        let s = scan(storage.as_ref(), false, |_| n += 1).unwrap();
        assert_eq!((s.entries, n, s.end), (9001, 9001, End::Clean));
        // A torn write in the zero-filled room is still a torn tail.
        let mut storage = FileBackend.open_journal(dir.path(), 1).unwrap();
        storage
            .write_at(HEADER_LEN + 9001 * ENTRY_LEN as u64, &[0xab; 100])
            .unwrap();
        let s = scan(storage.as_ref(), false, |_| {}).unwrap();
        assert_eq!(
            s.end,
            End::Torn {
                at: HEADER_LEN + 9001 * ENTRY_LEN as u64
            }
        );
    }

    #[test]
    fn a_recorder_resumed_gives_its_pending_entries_back() {
        let sim = SimBackend::new();
        let mut j = journal(&sim);
        let mut rec = j.recorder();
        rec.record(TableId(0), Slot(0), 1, &Lease::default());
        let g = rec.take(Vec::new());
        j.commit_group(&g).unwrap();
        rec.record(TableId(0), Slot(1), 1, &Lease::default());
        j.resume(rec);
        assert_eq!(j.pending(), 1);
        j.commit().unwrap();
        let storage = sim.open_journal(Path::new("/j"), 3).unwrap();
        let mut lsns = Vec::new();
        scan(storage.as_ref(), false, |e| lsns.push(e.lsn)).unwrap();
        assert_eq!(lsns, [7, 8]);
    }

    fn scan_bytes(sim: &SimBackend, bytes: Vec<u8>, past_damage: bool) -> (Scan, Vec<u64>) {
        sim.set_file(Path::new("/j"), 3, bytes);
        let storage = sim.open_journal(Path::new("/j"), 3).unwrap();
        let mut seen = Vec::new();
        let s = scan(storage.as_ref(), past_damage, |e| seen.push(e.lsn)).unwrap();
        (s, seen)
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
        let scan = scan(storage.as_ref(), false, |e| {
            seen.push((e.lsn, e.slot, e.version, e.in_batch))
        })
        .unwrap();
        assert_eq!(
            scan,
            Scan {
                last_lsn: Some(11),
                entries: 5,
                applied_after: 0,
                end: End::Clean,
            }
        );
        assert_eq!(
            seen,
            (0..5)
                .map(|i| (7 + u64::from(i), i, u64::from(i) + 1, i))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn garbage_and_headerless_files_hold_nothing() {
        let sim = SimBackend::new();
        let (s, seen) = scan_bytes(&sim, vec![0xab; 4000], false);
        assert_eq!(
            (s.last_lsn, s.entries, s.end, seen.len()),
            (None, 0, End::Torn { at: 0 }, 0)
        );
        let (s, _) = scan_bytes(&sim, Vec::new(), false);
        assert_eq!((s.last_lsn, s.end), (None, End::Clean));
    }

    #[test]
    fn a_flipped_bit_before_a_later_commit_is_corruption() {
        let sim = SimBackend::new();
        // Two commits: LSNs 7, 8, 9, then 10, 11.
        let mut f = committed(&sim, &[3, 2]);
        f[512 * 2 + 100] ^= 4; // inside entry 1 (LSN 8), acknowledged long ago
        let (s, seen) = scan_bytes(&sim, f.clone(), false);
        assert_eq!(seen, [7], "nothing past the damage is applied");
        let damage = Damage {
            offset: 1024,
            lsn: Some(8),
            damaged: 1,
            intact_after: 3,
            last_lsn: 11,
        };
        assert_eq!(s.end, End::Damaged(damage.clone()));
        assert_eq!(s.last_lsn, Some(11));
        let text = damage.to_string();
        assert!(
            text.contains("byte 1024") && text.contains("LSN 8") && text.contains("3 intact"),
            "{text}"
        );
        // Repair reads every intact entry.
        let (s, seen) = scan_bytes(&sim, f, true);
        assert_eq!(seen, [7, 9, 10, 11]);
        assert_eq!((s.entries, s.applied_after), (1, 3));
    }

    #[test]
    fn damage_inside_the_last_batch_is_a_torn_tail() {
        let sim = SimBackend::new();
        // One commit of 3 after one of 2: LSNs 7, 8, then 9, 10, 11.
        let good = committed(&sim, &[2, 3]);
        // A flipped bit, or a sector of the batch that never reached the disk (power loss
        // keeps any subset of an unsynced batch's sectors).
        for hole in [false, true] {
            let mut f = good.clone();
            let e = 512 + 512 * 3; // entry 3 (LSN 10), of the last batch
            if hole {
                f[e..e + 512].fill(0);
            } else {
                f[e + 40] ^= 1;
            }
            let (s, seen) = scan_bytes(&sim, f, false);
            assert_eq!(seen, [7, 8, 9]);
            assert_eq!(s.end, End::Torn { at: e as u64 }, "hole: {hole}");
            assert_eq!(s.last_lsn, Some(11));
        }
        // A partial last entry is torn too.
        let (s, _) = scan_bytes(&sim, good[..good.len() - 100].to_vec(), false);
        assert_eq!(s.end, End::Torn { at: 512 + 512 * 4 });
    }

    #[test]
    fn a_damaged_header_with_committed_entries_is_corruption() {
        let sim = SimBackend::new();
        let good = committed(&sim, &[2, 1]);
        let mut f = good.clone();
        f[20] ^= 0x10; // the base LSN
        let (s, seen) = scan_bytes(&sim, f, false);
        assert!(seen.is_empty());
        assert_eq!(
            s.end,
            End::Damaged(Damage {
                offset: 0,
                lsn: None,
                damaged: 1,
                intact_after: 3,
                last_lsn: 9,
            })
        );
        // A header that never reached the disk (a crash while starting the file over) in
        // front of one batch holds nothing committed.
        let mut f = committed(&SimBackend::new(), &[3]);
        f[..512].fill(0);
        let (s, seen) = scan_bytes(&sim, f, false);
        assert_eq!((s.end, seen.len()), (End::Torn { at: 0 }, 0));
        // The same zero header in front of two commits was damaged.
        let mut f = good;
        f[..512].fill(0);
        let (s, _) = scan_bytes(&sim, f, false);
        assert!(matches!(s.end, End::Damaged(_)), "{s:?}");
    }

    /// Puts a right CRC-32C of bytes 0..508 of each 512-byte piece at 508, as a writer would.
    fn seal(f: &mut [u8]) {
        for piece in f.chunks_mut(512) {
            let crc = crc32c::crc32c(&piece[..508]);
            piece[508..].copy_from_slice(&crc.to_le_bytes());
        }
    }

    /// Found by the `store_recovery` fuzz target: a header whose checksum holds but whose
    /// base LSN is u64::MAX overflowed `base + position` (a panic with overflow checks, LSNs
    /// wrapped to 0 without). It is a damaged header, like any other.
    #[test]
    fn a_header_lsn_past_the_limit_is_a_damaged_header_not_an_overflow() {
        let sim = SimBackend::new();
        let mut f = committed(&sim, &[2, 1]);
        f[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        seal(&mut f[..512]);
        let (s, seen) = scan_bytes(&sim, f, false);
        assert!(seen.is_empty());
        assert!(
            matches!(s.end, End::Damaged(Damage { lsn: None, .. })),
            "{s:?}"
        );
        assert_eq!(s.last_lsn, Some(9));
    }

    /// Entries whose checksums hold but whose LSNs run up to u64::MAX (behind a header lost
    /// in a crash) are bad entries: a scan never reports an LSN that overflows when the
    /// store continues the journal after it (`last + 1`).
    #[test]
    fn entry_lsns_past_the_limit_are_bad_entries() {
        let sim = SimBackend::new();
        let mut f = committed(&sim, &[3]);
        f[..512].fill(0);
        for (k, lsn) in [u64::MAX - 2, u64::MAX - 1, u64::MAX]
            .into_iter()
            .enumerate()
        {
            let at = 512 + 512 * k;
            f[at + 8..at + 16].copy_from_slice(&lsn.to_le_bytes());
        }
        seal(&mut f[512..]);
        let (s, seen) = scan_bytes(&sim, f, false);
        assert!(seen.is_empty());
        assert_eq!((s.end, s.last_lsn), (End::Torn { at: 0 }, None));
    }
}
