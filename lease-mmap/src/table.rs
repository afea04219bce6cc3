//! One subnet's lease table: a memory-mapped file of fixed-size records indexed by
//! `address - first address`, and a client index in the same mapping.
//!
//! Concurrency: a record changes only through a CAS on its version/state word; readers take
//! seqlock snapshots; free addresses are handed out through per-worker [`AllocCursor`] ranges
//! with stealing, so two workers never claim one address (the CAS decides any race).
#![forbid(unsafe_code)]

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::{Arc, PoisonError, RwLock};

use crate::expiry::Expiry;
use crate::map::Mapping;
use crate::record::disk::{
    self, IMAGE_WORDS, INLINE_ID, OverflowRef, RELAY_CELL_LEN, RELAY_CELL_WORDS,
};
use crate::record::key_hash;
use crate::seqlock::SlotRef;
use crate::store::TableSpec;
use crate::sync::{Ordering, Word};
use crate::{ClientId, ClientKey, Hostname, Lease, RelayInfo, Slot, TableId, UnixTime};

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
    /// Every overflow block for client ids longer than 64 bytes is in use.
    #[error("no room left for long client identifiers")]
    ClientIdAreaFull,
    /// Writing a long client id's overflow block back (msync) failed with this errno.
    #[error("writing back a long client identifier failed (os error {0})")]
    WriteBack(i32),
    /// [`Table::update_capped`]: the table already holds its limit of ABANDONED records.
    #[error("the table already holds {0} abandoned addresses")]
    AbandonedCap(u32),
}

/// Bytes per slot: version word (8) and two record images (124 each). Two slots per 512-byte
/// sector, never straddling one.
pub(crate) const SLOT_LEN: usize = 256;
/// Bytes per slot in the relay file: one relay cell per image half (`FORMAT.md` §3.5).
pub(crate) const RELAY_SLOT_LEN: usize = 2 * RELAY_CELL_LEN;
const IMAGE_A: usize = 8;
const IMAGE_B: usize = 8 + disk::IMAGE_LEN;
/// Bytes per overflow block (one sector): owner word (8) and 126 cells.
pub(crate) const BLOCK_LEN: usize = 512;
const BLOCK_CELLS: usize = (BLOCK_LEN - 8) / 4;
/// The client index's probe window.
const MAX_PROBE: u32 = 64;
/// Slots per allocation chunk; chunk `c` belongs to worker `c % workers`.
const CHUNK: u32 = 256;

/// Where the parts of a table live inside its mapping (`FORMAT.md` §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) records: u32,
    pub(crate) index_cap: u32,
    pub(crate) blocks: u32,
    pub(crate) index_off: usize,
    pub(crate) overflow_off: usize,
    pub(crate) map_len: usize,
}

const PAGE: usize = 4096;

fn round_up(x: usize) -> usize {
    x.div_ceil(PAGE) * PAGE
}

impl Layout {
    pub(crate) fn for_records(records: u32) -> Self {
        let n = records as usize;
        let index_cap = (records.saturating_mul(2)).next_power_of_two().max(64);
        let blocks = (records / 16).max(16);
        let index_off = round_up(n * SLOT_LEN);
        let overflow_off = round_up(index_off + index_cap as usize * 8);
        let map_len = round_up(overflow_off + blocks as usize * BLOCK_LEN);
        Self {
            records,
            index_cap,
            blocks,
            index_off,
            overflow_off,
            map_len,
        }
    }
}

/// The [`Table::allocate`] predicate of a server without a failover partner: only FREE
/// records are taken.
pub fn free_only(_: UnixTime, l: &Lease) -> bool {
    l.state == crate::BindingState::Free
}

/// A worker's position in the free-address ranges of every table.
///
/// Worker `w` of `n` owns the chunks of 256 slots whose number is `w` modulo `n` and
/// scans them first; when they hold nothing it steals from the others.
#[derive(Debug)]
pub struct AllocCursor {
    worker: u16,
    workers: u16,
    tables: Vec<TablePos>,
}

#[derive(Clone, Copy, Debug, Default)]
struct TablePos {
    own: u32,
    steal: u32,
}

impl Default for AllocCursor {
    fn default() -> Self {
        Self::new(0, 1)
    }
}

impl AllocCursor {
    /// The cursor of worker `worker` of `workers` (clamped to a valid pair).
    pub fn new(worker: u16, workers: u16) -> Self {
        let workers = workers.max(1);
        Self {
            worker: worker % workers,
            workers,
            tables: Vec::new(),
        }
    }

    /// This cursor's worker and the number of workers.
    pub fn worker(&self) -> (u16, u16) {
        (self.worker, self.workers)
    }

    fn pos(&mut self, t: TableId) -> &mut TablePos {
        let i = usize::from(t.0);
        if self.tables.len() <= i {
            self.tables.resize(i + 1, TablePos::default());
        }
        &mut self.tables[i]
    }
}

/// A mapped lease table. `Sync`: shared by every worker.
#[derive(Debug)]
pub struct Table {
    id: TableId,
    spec: TableSpec,
    path: PathBuf,
    first: u32,
    layout: Layout,
    /// Allocatable slot ranges, inclusive, sorted: the table's own view, for the control
    /// plane. A live configuration change replaces it ([`Table::set_allocatable`]); the
    /// engine decides from the ranges of its own configuration snapshot
    /// ([`Table::allocate_within`]), so that no request sees half of a change.
    alloc: RwLock<Arc<[(u32, u32)]>>,
    map: Mapping,
    /// The relay file's cells: the relay info of version `v` of slot `s` in cell `v % 2` of
    /// `s`, written under the slot's claim before the image that refers to it is published.
    relay: Mapping,
    /// Where the next overflow block search starts.
    block_hint: AtomicU32,
    /// msyncs of the mapping started / completed (serialised by the store): an overflow
    /// block released while `started` was r may be reused once `completed > r`.
    flushes_started: AtomicU32,
    flushes_completed: AtomicU32,
    /// Records in state ABANDONED: kept by every write under the slot's claim (so each
    /// change of state is counted once), rebuilt from the records on open.
    abandoned: AtomicU32,
    /// Which ACTIVE leases end when, once [`Table::track_expiry`] started it.
    expiry: Expiry,
}

type Ref<'a> = SlotRef<'a, AtomicU64, AtomicU32>;

/// Whether `slot` lies in one of `ranges` (inclusive, sorted, disjoint).
pub fn in_ranges(ranges: &[(u32, u32)], slot: Slot) -> bool {
    let i = ranges.partition_point(|(_, last)| *last < slot.0);
    ranges.get(i).is_some_and(|(first, _)| *first <= slot.0)
}

impl Table {
    pub(crate) fn new(
        id: TableId,
        spec: TableSpec,
        path: PathBuf,
        layout: Layout,
        map: Mapping,
        relay: Mapping,
    ) -> Self {
        let first = u32::from(spec.first);
        let alloc = RwLock::new(
            spec.allocatable
                .iter()
                .map(|(a, b)| (u32::from(*a) - first, u32::from(*b) - first))
                .collect(),
        );
        Self {
            id,
            spec,
            path,
            first,
            layout,
            alloc,
            map,
            relay,
            block_hint: AtomicU32::new(0),
            flushes_started: AtomicU32::new(0),
            flushes_completed: AtomicU32::new(0),
            abandoned: AtomicU32::new(0),
            expiry: Expiry::default(),
        }
    }

    pub fn id(&self) -> TableId {
        self.id
    }

    /// The spec the table was opened with (its allocatable ranges may since have been
    /// replaced: [`Table::set_allocatable`]).
    pub fn spec(&self) -> &TableSpec {
        &self.spec
    }

    /// The table's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// First address covered (slot 0).
    pub fn first(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.first)
    }

    /// Last address covered.
    pub fn last(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.first + (self.layout.records - 1))
    }

    /// Number of records (addresses) in the table.
    pub fn len(&self) -> u32 {
        self.layout.records
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The slot of `addr`, if the table covers it.
    pub fn slot(&self, addr: Ipv4Addr) -> Option<Slot> {
        let off = u32::from(addr).checked_sub(self.first)?;
        (off < self.len()).then_some(Slot(off))
    }

    /// The address of `slot`.
    ///
    /// # Panics
    /// If `slot` is outside the table.
    pub fn addr(&self, slot: Slot) -> Ipv4Addr {
        assert!(
            slot.0 < self.len(),
            "slot {} outside a table of {}",
            slot.0,
            self.len()
        );
        Ipv4Addr::from(self.first + slot.0)
    }

    /// Whether `slot` may be handed out dynamically (inside a pool, not excluded).
    pub fn is_allocatable(&self, slot: Slot) -> bool {
        // Under the read lock, without cloning the `Arc`: the failover scans ask per slot.
        in_ranges(
            &self.alloc.read().unwrap_or_else(PoisonError::into_inner),
            slot,
        )
    }

    /// The allocatable slot ranges now in force (inclusive, sorted).
    pub fn allocatable(&self) -> Arc<[(u32, u32)]> {
        Arc::clone(&self.alloc.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// `ranges` of addresses (inclusive, sorted, disjoint, inside the table) as slot
    /// ranges, the form [`Table::allocate_within`] takes; `None` if one is outside the
    /// table, reversed, unsorted or overlapping.
    pub fn slot_ranges(&self, ranges: &[(Ipv4Addr, Ipv4Addr)]) -> Option<Vec<(u32, u32)>> {
        let mut out: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
        for &(a, b) in ranges {
            let (a, b) = (self.slot(a)?.0, self.slot(b)?.0);
            if a > b || out.last().is_some_and(|&(_, prev)| prev >= a) {
                return None;
            }
            out.push((a, b));
        }
        Some(out)
    }

    /// Replace the allocatable ranges (a live configuration change: pools or exclusions
    /// moved inside the table's span). Records are untouched: a bound lease outside the new
    /// ranges stays until it ends and is not handed out again. The file's description keeps
    /// the old ranges until the next open, where the configuration is authoritative.
    pub fn set_allocatable(&self, ranges: &[(Ipv4Addr, Ipv4Addr)]) -> Result<(), String> {
        let slots = self.slot_ranges(ranges).ok_or_else(|| {
            format!(
                "allocatable ranges must be sorted, disjoint and inside {}-{}",
                self.first(),
                self.last()
            )
        })?;
        *self.alloc.write().unwrap_or_else(PoisonError::into_inner) = slots.into();
        Ok(())
    }

    pub(crate) fn slot_ref(&self, slot: u32) -> Ref<'_> {
        let base = slot as usize * SLOT_LEN;
        SlotRef {
            word: &self.map.words(base, 1)[0],
            images: [
                self.map.cells(base + IMAGE_A, IMAGE_WORDS),
                self.map.cells(base + IMAGE_B, IMAGE_WORDS),
            ],
        }
    }

    fn block_owner(&self, block: u32) -> &AtomicU64 {
        &self
            .map
            .words(self.layout.overflow_off + block as usize * BLOCK_LEN, 1)[0]
    }

    fn block_cells(&self, block: u32) -> &[AtomicU32] {
        self.map.cells(
            self.layout.overflow_off + block as usize * BLOCK_LEN + 8,
            BLOCK_CELLS,
        )
    }

    /// Read the client id of `r` from its overflow block, checking the block belongs to
    /// (`slot`, `version`) and its CRCs; `None` if anything disagrees.
    fn read_block(&self, slot: u32, version: u64, r: OverflowRef, len: u8) -> Option<ClientId> {
        if r.block >= self.layout.blocks {
            return None;
        }
        let mut b = [0u8; BLOCK_CELLS * 4];
        for (i, c) in self.block_cells(r.block).iter().enumerate() {
            b[4 * i..4 * i + 4].copy_from_slice(&c.load(Ordering::Acquire).to_le_bytes());
        }
        let crc_at = BLOCK_CELLS * 4 - 4;
        let ok = crc32c::crc32c(&b[..crc_at]) == disk::get32(&b, crc_at)
            && disk::get64(&b, 0) == version
            && disk::get32(&b, 8) == slot
            && b[12] == len;
        let id = ClientId::new(&b[13..13 + usize::from(len)])?;
        (ok && crc32c::crc32c(id.as_bytes()) == r.crc).then_some(id)
    }

    fn write_block(&self, block: u32, slot: u32, version: u64, id: &ClientId) {
        let mut b = [0u8; BLOCK_CELLS * 4];
        b[0..8].copy_from_slice(&version.to_le_bytes());
        b[8..12].copy_from_slice(&slot.to_le_bytes());
        b[12] = id.as_bytes().len() as u8;
        b[13..13 + id.as_bytes().len()].copy_from_slice(id.as_bytes());
        let crc_at = BLOCK_CELLS * 4 - 4;
        let crc = crc32c::crc32c(&b[..crc_at]);
        b[crc_at..].copy_from_slice(&crc.to_le_bytes());
        for (i, c) in self.block_cells(block).iter().enumerate() {
            c.store(disk::get32(&b, 4 * i), Ordering::Release);
        }
    }

    fn relay_cell(&self, slot: u32, version: u64) -> &[AtomicU32] {
        let at = slot as usize * RELAY_SLOT_LEN + (version & 1) as usize * RELAY_CELL_LEN;
        self.relay.cells(at, RELAY_CELL_WORDS)
    }

    /// The relay info and host name of `slot` at `version`, if its cell holds them. A cell
    /// that does not (a crash before it reached the disk, and no journal entry left to
    /// restore it from) loses them, never the binding.
    fn read_relay(&self, slot: u32, version: u64, len: [u8; 2]) -> (RelayInfo, Hostname) {
        let mut w = [0u32; RELAY_CELL_WORDS];
        for (o, c) in w.iter_mut().zip(self.relay_cell(slot, version)) {
            *o = c.load(Ordering::Acquire);
        }
        disk::decode_relay_cell(&w, version, len).unwrap_or_default()
    }

    fn write_relay(&self, slot: u32, version: u64, l: &Lease) {
        let w = disk::encode_relay_cell(version, &l.relay, &l.hostname);
        for (c, x) in self.relay_cell(slot, version).iter().zip(w) {
            c.store(x, Ordering::Release);
        }
    }

    /// Recovery only: rewrite the relay cell of `slot`'s current `version` from a journal
    /// entry of that same version (`l`), when the cell did not reach the disk.
    pub(crate) fn restore_relay(&self, slot: u32, version: u64, l: &Lease) {
        let (_, now) = self.read(Slot(slot));
        if (l.relay.is_empty() && l.hostname.is_empty())
            || (now.relay, now.hostname) == (l.relay, l.hostname)
        {
            return;
        }
        self.write_relay(slot, version, l);
    }

    /// Decode image words of `slot` into a lease, resolving an overflow client id and the
    /// relay info.
    fn resolve(&self, slot: u32, words: &[u32]) -> Option<(u64, Lease)> {
        let img = disk::decode_image(words)?;
        let mut lease = img.lease;
        if let Some((r, len)) = img.overflow {
            lease.client_id = self.read_block(slot, img.version, r, len)?;
        }
        if img.extra_len != [0, 0] {
            (lease.relay, lease.hostname) = self.read_relay(slot, img.version, img.extra_len);
        }
        Some((img.version, lease))
    }

    /// A consistent snapshot of `slot` and the version it was read at.
    ///
    /// # Panics
    /// If `slot` is outside the table.
    pub fn read(&self, slot: Slot) -> (u64, Lease) {
        assert!(
            slot.0 < self.len(),
            "slot {} outside a table of {}",
            slot.0,
            self.len()
        );
        let mut w = [0u32; IMAGE_WORDS];
        let (v, lease) = self
            .slot_ref(slot.0)
            .read(&mut w, |w| self.resolve(slot.0, w));
        // Every current image was verified when the table was opened and every later one
        // was written by `update`, so `None` means the file was changed behind our back.
        // Report such a record as ABANDONED: never allocated, never renewed, visible.
        let lease = lease.map(|(_, l)| l).unwrap_or_else(|| {
            tracing::error!(table = %self.path.display(), slot = slot.0, "record unreadable");
            Lease {
                state: crate::BindingState::Abandoned,
                ..Lease::default()
            }
        });
        (v, lease)
    }

    /// Starts the table's expiry index, for [`Table::due`]: from now on every ACTIVE lease
    /// written is entered, and this call enters the ACTIVE leases there are (one walk of
    /// the table, the only one). Idempotent. A table nobody sweeps never starts it, and so
    /// keeps nothing.
    pub fn track_expiry(&self) {
        if !self.expiry.start() {
            return;
        }
        // Started before the walk: a lease written meanwhile is entered by its writer (an
        // entry twice is harmless: it is offered once).
        self.enter_active();
    }

    /// Enters every ACTIVE lease in the expiry index (one walk).
    fn enter_active(&self) {
        self.for_each(|slot, _, l| {
            if l.state == crate::BindingState::Active {
                self.expiry.push(l.ends.0, slot.0);
            }
        });
    }

    /// Calls `f` with every lease that is ACTIVE and ended by `now` (`ends <= now`), each
    /// once, in order of `ends`, without walking the table ([`Table::track_expiry`] must
    /// have started the index; before, nothing is due). `f` returns whether it settled the
    /// lease (moved it out of ACTIVE, or decided to leave it): an unsettled one (a failed
    /// write) is offered again by the next call. A lease renewed or released since its entry
    /// was made is not offered.
    pub fn due(&self, now: UnixTime, mut f: impl FnMut(Slot, u64, &Lease) -> bool) {
        if self.expiry.len() > 2 * self.len() as usize + 4096 {
            // Mostly stale entries of leases rewritten again and again: start over.
            self.expiry.clear();
            self.enter_active();
        }
        self.expiry.pop_due(now.0, |slot| {
            let (v, l) = self.read(Slot(slot));
            if l.state != crate::BindingState::Active || l.ends > now {
                return true;
            }
            f(Slot(slot), v, &l)
        });
    }

    /// Entries the expiry index holds (bench and tests).
    #[doc(hidden)]
    pub fn expiry_entries(&self) -> usize {
        self.expiry.len()
    }

    /// Calls `f` with every slot's snapshot, in slot order (status and lease listings).
    pub fn for_each(&self, mut f: impl FnMut(Slot, u64, &Lease)) {
        for s in 0..self.len() {
            let (v, l) = self.read(Slot(s));
            f(Slot(s), v, &l);
        }
    }

    /// The record most recently bound to `key` (any state but FREE/BACKUP), with its version.
    pub fn find_client(&self, key: &ClientKey<'_>) -> Option<(Slot, u64, Lease)> {
        let tag = key_hash(key);
        let mask = self.layout.index_cap - 1;
        let entries = self
            .map
            .words(self.layout.index_off, self.layout.index_cap as usize);
        let mut pos = tag & mask;
        let mut best: Option<(Slot, u64, Lease)> = None;
        for _ in 0..self.probe_limit() {
            let e = entries[pos as usize].load(Ordering::Acquire);
            if e == 0 {
                break;
            }
            if (e >> 32) as u32 == tag {
                let s = (e as u32).wrapping_sub(1);
                if s < self.len() {
                    let (v, l) = self.read(Slot(s));
                    if l.state.is_bound()
                        && l.is_for(key)
                        && best
                            .as_ref()
                            .is_none_or(|(_, _, b)| (l.cltt, l.stos) > (b.cltt, b.stos))
                    {
                        best = Some((Slot(s), v, l));
                    }
                }
            }
            pos = (pos + 1) & mask;
        }
        best
    }

    /// Replace `slot`'s lease with `new` if its version is still `expected`; returns the new
    /// version. Keeps the client index and the ABANDONED count in step.
    pub fn update(&self, slot: Slot, expected: u64, new: &Lease) -> Result<u64, UpdateError> {
        self.update_capped(slot, expected, new, u32::MAX)
    }

    /// [`Table::update`], except that a change that makes the record ABANDONED is refused
    /// with [`UpdateError::AbandonedCap`] while the table holds `max_abandoned` such records
    /// already. The count is taken by CAS before the record is written, so concurrent
    /// writers never pass the cap together.
    pub fn update_capped(
        &self,
        slot: Slot,
        expected: u64,
        new: &Lease,
        max_abandoned: u32,
    ) -> Result<u64, UpdateError> {
        if slot.0 >= self.len() {
            return Err(UpdateError::NoSuchSlot(slot.0));
        }
        let r = self.slot_ref(slot.0);
        r.claim(expected)
            .map_err(|current| UpdateError::Conflict { current })?;
        match self.write_counted(&r, slot.0, expected, expected + 1, new, true, max_abandoned) {
            Ok(()) => Ok(expected + 1),
            Err(e) => {
                r.release(expected);
                Err(e)
            }
        }
    }

    /// The number of records in state ABANDONED, without a scan.
    pub fn abandoned(&self) -> u32 {
        self.abandoned.load(Ordering::Relaxed)
    }

    /// [`Table::write_claimed`], keeping the ABANDONED count: a record that becomes
    /// ABANDONED takes a place in it first (refused at `max_abandoned`), given back if the
    /// write fails; one that stops being ABANDONED gives its place back once written.
    #[expect(
        clippy::too_many_arguments,
        reason = "write_claimed's arguments and the cap"
    )]
    fn write_counted(
        &self,
        r: &Ref<'_>,
        slot: u32,
        version: u64,
        new_version: u64,
        new: &Lease,
        index: bool,
        max_abandoned: u32,
    ) -> Result<(), UpdateError> {
        use crate::BindingState::Abandoned;
        // The state the record has now: the image of `version`, under our claim.
        let mut head = [0u32; 3];
        r.load_image(version, true, &mut head);
        let was = disk::image_state(&head) == Some(Abandoned);
        let becomes = new.state == Abandoned;
        let count = &self.abandoned;
        if becomes
            && !was
            && let Err(n) = count.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max_abandoned).then_some(n + 1)
            })
        {
            return Err(UpdateError::AbandonedCap(n));
        }
        let res = self.write_claimed(r, slot, version, new_version, new, index);
        if res.is_ok() && new.state == crate::BindingState::Active {
            self.expiry.push(new.ends.0, slot);
        }
        if (res.is_err() && becomes && !was) || (res.is_ok() && was && !becomes) {
            // Never below zero, even if a damaged image seen during recovery said ABANDONED
            // (open rebuilds the count afterwards anyway).
            let _ = count.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        }
        res
    }

    /// With the claim on `slot` held at `version`: index `new`, store its long client id,
    /// write image `new_version` and publish it. On error nothing visible changed and the
    /// caller releases the claim.
    fn write_claimed(
        &self,
        r: &Ref<'_>,
        slot: u32,
        version: u64,
        new_version: u64,
        new: &Lease,
        index: bool,
    ) -> Result<(), UpdateError> {
        // The image that stays (the current one, unless recovery overwrites it in place).
        let keep_current = (version & 1) != (new_version & 1);
        let mut kept = [0u32; IMAGE_WORDS];
        r.load_image(version, keep_current, &mut kept);
        let keep_block = disk::image_block(&kept);

        // The long client id first: if the index then refuses, the block is owned by this
        // slot but referenced by none of its images, which makes it reclaimable.
        let overflow = if new.client_id.as_bytes().len() > INLINE_ID {
            let b = self.block_alloc(slot, keep_block)?;
            self.write_block(b, slot, new_version, &new.client_id);
            // The block must be on disk before any image referring to it can be: one msync
            // of one page, paid only by clients with ids over 64 bytes (FORMAT.md §3.4).
            if index {
                let off = self.layout.overflow_off + b as usize * BLOCK_LEN;
                self.map
                    .flush_range(off, BLOCK_LEN)
                    .map_err(|e| UpdateError::WriteBack(e.raw_os_error().unwrap_or(0)))?;
            }
            Some(b)
        } else {
            None
        };
        if let Some(key) = new.client_key().filter(|_| index && new.state.is_bound()) {
            self.index_insert(slot, key_hash(&key))?;
        }
        if !new.relay.is_empty() || !new.hostname.is_empty() {
            // Cell `new_version % 2`: readers of the current version read the other one.
            self.write_relay(slot, new_version, new);
        }
        r.publish(new_version, &disk::encode_image(new_version, new, overflow));
        // The block the previous version used is now only in the old half: released, and
        // reusable once a msync that starts from now on has completed.
        if let Some(x) =
            keep_block.filter(|x| keep_current && Some(*x) != overflow && *x < self.layout.blocks)
        {
            let owner = self.block_owner(x);
            let in_use = u64::from(slot + 1);
            let released =
                in_use | u64::from(self.flushes_started.load(Ordering::SeqCst) + 1) << 32;
            let _ = owner.compare_exchange(in_use, released, Ordering::AcqRel, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Recovery only (single-threaded): install `lease` at `version` over whatever is there.
    pub(crate) fn install(
        &self,
        slot: u32,
        version: u64,
        lease: &Lease,
    ) -> Result<(), UpdateError> {
        let r = self.slot_ref(slot);
        let (cur, _) = r.version();
        r.claim(cur)
            .map_err(|current| UpdateError::Conflict { current })?;
        let res = self.write_counted(&r, slot, cur, version, lease, false, u32::MAX);
        if res.is_err() {
            r.release(cur);
        }
        res
    }

    /// Install `slot → tag` in the client index unless present, reclaiming a stale entry
    /// on the way. The caller holds the claim on `slot`.
    fn index_insert(&self, slot: u32, tag: u32) -> Result<(), UpdateError> {
        let entry = u64::from(tag) << 32 | u64::from(slot + 1);
        let mask = self.layout.index_cap - 1;
        let entries = self
            .map
            .words(self.layout.index_off, self.layout.index_cap as usize);
        let home = tag & mask;
        let limit = self.probe_limit();
        // Already there? Entries are never emptied, so none lies beyond an empty one.
        for i in 0..limit {
            match Word::load(&entries[((home + i) & mask) as usize], Ordering::Acquire) {
                0 => break,
                e if e == entry => return Ok(()),
                _ => {}
            }
        }
        // Install in the first empty or stale entry of the window.
        let mut i = 0;
        while i < limit {
            let cell = &entries[((home + i) & mask) as usize];
            let e = Word::load(cell, Ordering::Acquire);
            if e == entry {
                return Ok(());
            }
            if e == 0 {
                match cell.compare_exchange(0, entry, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => return Ok(()),
                    Err(_) => continue, // look at this cell again
                }
            }
            if self.try_reclaim_entry(cell, e, slot, entry) {
                return Ok(());
            }
            i += 1;
        }
        Err(UpdateError::IndexFull)
    }

    /// Entries of a key lie within this many cells of its home position, so a lookup never
    /// walks further, however many stale entries churn leaves behind (`FORMAT.md` §3.3).
    fn probe_limit(&self) -> u32 {
        MAX_PROBE.min(self.layout.index_cap)
    }

    /// Replace index entry `e` in `cell` by `entry` if `e` no longer describes its record.
    /// Holds the claim of `e`'s slot across the check and the CAS, so the record cannot
    /// become bound to `e`'s key in between (`FORMAT.md` §3.3).
    fn try_reclaim_entry(&self, cell: &AtomicU64, e: u64, me: u32, entry: u64) -> bool {
        let s = (e as u32).wrapping_sub(1);
        let tag = (e >> 32) as u32;
        let swap = || {
            cell.compare_exchange(e, entry, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        };
        if s >= self.len() {
            return swap();
        }
        if s == me {
            // Our own slot: `e` names its previous client (same tag and slot would have
            // matched `entry`), which this update replaces.
            return swap();
        }
        let r = self.slot_ref(s);
        let Some(v) = r.try_lock() else { return false };
        let mut w = [0u32; IMAGE_WORDS];
        r.load_image(v, true, &mut w);
        let live = self.resolve(s, &w).is_some_and(|(_, l)| {
            l.state.is_bound() && l.client_key().is_some_and(|k| key_hash(&k) == tag)
        });
        let done = !live && swap();
        r.release(v);
        done
    }

    /// Find an overflow block for `slot` (whose kept image uses `keep`): free, or owned by a
    /// slot none of whose images refers to it.
    fn block_alloc(&self, slot: u32, keep: Option<u32>) -> Result<u32, UpdateError> {
        let n = self.layout.blocks;
        let start = self.block_hint.load(Ordering::Relaxed) % n;
        for i in 0..n {
            let b = (start + i) % n;
            if Some(b) == keep {
                continue;
            }
            let owner = self.block_owner(b);
            let o = Word::load(owner, Ordering::Acquire);
            let claimed = if o == 0 {
                owner
                    .compare_exchange(0, u64::from(slot + 1), Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            } else {
                self.try_reclaim_block(owner, o, b, slot)
            };
            if claimed {
                self.block_hint.store(b + 1, Ordering::Relaxed);
                return Ok(b);
            }
        }
        Err(UpdateError::ClientIdAreaFull)
    }

    /// Owner word: `slot + 1`, and in the high half 0 while an image may still need the
    /// block on disk, else `r + 1` where `r` counted the msyncs started when it was released.
    fn try_reclaim_block(&self, owner: &AtomicU64, o: u64, b: u32, me: u32) -> bool {
        let s = (o as u32).wrapping_sub(1);
        let swap = || {
            owner
                .compare_exchange(o, u64::from(me + 1), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        };
        if s >= self.len() {
            return swap();
        }
        let released = (o >> 32) as u32;
        if released != 0 {
            // Released: no memory image of its slot needs it; the disk may, until a msync
            // that started after the release has completed.
            return self.flushes_completed.load(Ordering::SeqCst) > released - 1 && swap();
        }
        // In use: reclaimable only if neither image of its slot refers to it (a claim whose
        // update was refused). Our own slot's claim we already hold.
        let r = self.slot_ref(s);
        let locked = if s == me { None } else { Some(r.try_lock()) };
        let v = match locked {
            None => r.version().0,
            Some(Some(v)) => v,
            Some(None) => return false,
        };
        let mut w = [0u32; IMAGE_WORDS];
        let mut used = false;
        for current in [true, false] {
            r.load_image(v, current, &mut w);
            used |= disk::image_block(&w) == Some(b);
        }
        let done = !used && swap();
        if locked.is_some() {
            r.release(v);
        }
        done
    }

    /// Claim an allocatable address for `new` (which carries the client and state to write):
    /// the first slot in this worker's ranges for which `reusable(now, current)` holds,
    /// claimed by CAS. `None` when the table has nothing left.
    ///
    /// `reusable` decides for every record, FREE ones included: with a failover partner a
    /// FREE address belongs to the primary and a BACKUP one to the secondary, and only the
    /// caller knows which it may take ([`free_only`] is the rule without a partner).
    pub fn allocate(
        &self,
        cursor: &mut AllocCursor,
        now: UnixTime,
        new: &Lease,
        reusable: &dyn Fn(UnixTime, &Lease) -> bool,
    ) -> Option<(Slot, u64)> {
        self.allocate_within(&self.allocatable(), cursor, now, new, reusable)
    }

    /// [`Table::allocate`] from the slot ranges `alloc` (the caller's configuration
    /// snapshot, [`Table::slot_ranges`]) rather than the table's own.
    pub fn allocate_within(
        &self,
        alloc: &[(u32, u32)],
        cursor: &mut AllocCursor,
        now: UnixTime,
        new: &Lease,
        reusable: &dyn Fn(UnixTime, &Lease) -> bool,
    ) -> Option<(Slot, u64)> {
        if alloc.is_empty() {
            return None;
        }
        let (worker, workers) = (u32::from(cursor.worker), u32::from(cursor.workers));
        let chunks = self.len().div_ceil(CHUNK);
        // Own chunks: worker, worker + workers, ...; ordinal k ↦ slot.
        let own_chunks = chunks.saturating_sub(worker).div_ceil(workers);
        let own_total = own_chunks * CHUNK;
        let pos = cursor.pos(self.id);
        let try_slot = |s: u32| -> Result<Option<(Slot, u64)>, ()> {
            if s >= self.len() || !in_ranges(alloc, Slot(s)) {
                return Ok(None);
            }
            let (v, cur) = self.read(Slot(s));
            if !reusable(now, &cur) {
                return Ok(None);
            }
            match self.update(Slot(s), v, new) {
                Ok(nv) => Ok(Some((Slot(s), nv))),
                Err(UpdateError::Conflict { .. }) => Ok(None),
                Err(_) => Err(()),
            }
        };
        for i in 0..own_total {
            let k = (pos.own + i) % own_total;
            let s = (worker + (k / CHUNK) * workers) * CHUNK + k % CHUNK;
            match try_slot(s) {
                Ok(Some(found)) => {
                    pos.own = k + 1;
                    return Some(found);
                }
                Ok(None) => {}
                Err(()) => return None,
            }
        }
        // Steal: every other worker's chunks, from where this worker last found one.
        let total = chunks * CHUNK;
        for i in 0..total {
            let s = (pos.steal + i) % total;
            if (s / CHUNK) % workers == worker {
                continue;
            }
            match try_slot(s) {
                Ok(Some(found)) => {
                    pos.steal = s + 1;
                    return Some(found);
                }
                Ok(None) => {}
                Err(()) => return None,
            }
        }
        None
    }

    /// Number of records in each [`crate::BindingState`], indexed by its `u8` value.
    pub fn counts(&self) -> [u64; 8] {
        let mut c = [0u64; 8];
        self.for_each(|_, _, l| c[usize::from(l.state as u8)] += 1);
        c
    }

    /// Write the mapping back (msync).
    /// Callers serialise flushes (the store's checkpoint lock, or open).
    pub(crate) fn flush(&self) -> std::io::Result<()> {
        let k = self.flushes_started.fetch_add(1, Ordering::SeqCst);
        self.relay.flush()?;
        self.map.flush()?;
        self.flushes_completed.fetch_max(k + 1, Ordering::SeqCst);
        Ok(())
    }

    pub(crate) fn map_len(&self) -> usize {
        self.map.len() + self.relay.len()
    }

    /// Open-time check of one slot: pick the newest valid image, clear a stale WRITING bit.
    /// Returns `false` if neither image is usable (the caller looks in the journals).
    pub(crate) fn recover_slot(&self, slot: u32) -> bool {
        let r = self.slot_ref(slot);
        let mut best: Option<u64> = None;
        let mut w = [0u32; IMAGE_WORDS];
        for img in r.images {
            for (o, c) in w.iter_mut().zip(img.iter()) {
                *o = c.load(Ordering::Relaxed);
            }
            if let Some((v, _)) = self.resolve(slot, &w) {
                // An image lives in the half its version's parity names; anything else is
                // not one we wrote.
                let right_half =
                    std::ptr::eq(img.as_ptr(), r.images[usize::from(v & 1 == 1)].as_ptr());
                if right_half && best.is_none_or(|b| v > b) {
                    best = Some(v);
                }
            }
        }
        // Store only what changes: an untouched page stays clean and msync skips it.
        let want = best.map_or(0, |v| v << 1);
        if Word::load(r.word, Ordering::Relaxed) != want {
            Word::store(r.word, want, Ordering::Relaxed);
        }
        best.is_some()
    }

    /// Open-time: rebuild the overflow owners from every image that refers to a block and
    /// is valid with it: the block holds that image's slot, version and client id. A stale
    /// image (or garbage) naming a block that another slot took since claims nothing, else
    /// it would mark that slot's block released and the next long id would overwrite it.
    pub(crate) fn rebuild_block_owners(&self) {
        let mut owners = vec![0u64; self.layout.blocks as usize];
        let mut w = [0u32; IMAGE_WORDS];
        for s in 0..self.len() {
            let r = self.slot_ref(s);
            let (v, _) = r.version();
            // Old half first, so the current image's claim (in use) wins.
            for current in [false, true] {
                r.load_image(v, current, &mut w);
                if let Some(b) = disk::image_block(&w).filter(|b| *b < self.layout.blocks)
                    && self.resolve(s, &w).is_some()
                {
                    // Released "before msync 0": reusable after open's msync.
                    owners[b as usize] = u64::from(s + 1) | u64::from(!current) << 32;
                }
            }
        }
        for (b, o) in (0..self.layout.blocks).zip(owners) {
            let owner = self.block_owner(b);
            if Word::load(owner, Ordering::Relaxed) != o {
                Word::store(owner, o, Ordering::Relaxed);
            }
        }
    }

    /// Open-time: rebuild the client index and the ABANDONED count from the records (one
    /// pass). Returns bound records indexed. The new index is built on the heap and only
    /// cells that differ are stored, so an unchanged index leaves its pages clean.
    pub(crate) fn rebuild_index(&self) -> Result<u64, UpdateError> {
        let cap = self.layout.index_cap;
        let mask = cap - 1;
        let mut fresh = vec![0u64; cap as usize];
        let mut n = 0;
        let mut abandoned = 0u32;
        for s in 0..self.len() {
            let (_, l) = self.read(Slot(s));
            abandoned += u32::from(l.state == crate::BindingState::Abandoned);
            let Some(key) = l.client_key().filter(|_| l.state.is_bound()) else {
                continue;
            };
            let tag = key_hash(&key);
            let home = tag & mask;
            let free = (0..self.probe_limit())
                .map(|i| ((home + i) & mask) as usize)
                .find(|&i| fresh[i] == 0)
                .ok_or(UpdateError::IndexFull)?;
            fresh[free] = u64::from(tag) << 32 | u64::from(s + 1);
            n += 1;
        }
        let entries = self.map.words(self.layout.index_off, cap as usize);
        for (e, want) in entries.iter().zip(fresh) {
            if Word::load(e, Ordering::Relaxed) != want {
                Word::store(e, want, Ordering::Relaxed);
            }
        }
        self.abandoned.store(abandoned, Ordering::Relaxed);
        Ok(n)
    }
}
