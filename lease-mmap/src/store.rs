//! A `data_dir`: every subnet's table, the workers' journals, checkpoints and recovery.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::journal::{self, Damage, End, JournalShared, TableKey};
use crate::map::{self, Mapping};
use crate::meta::{self, AddrRange, JournalMark, Manifest, TableDesc};
use crate::storage::{Backend, FileBackend};
use crate::sync::Ordering;
use crate::table::{Layout, SLOT_LEN};
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

/// Why a data directory could not be opened (or checkpointed, or closed).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Corrupt {
        path: std::path::PathBuf,
        reason: String,
    },
    /// The spec is invalid, or does not match the existing table file (resizing a table is
    /// not supported yet).
    #[error("{path}: {reason}")]
    Spec {
        path: std::path::PathBuf,
        reason: String,
    },
    /// A journal is damaged before its end: committed entries follow the damage, so cutting
    /// it there, as a torn tail is cut, would drop acknowledged leases. [`Store::repair`]
    /// sets the file aside and keeps every intact entry.
    #[error("{path}: {damage}; refusing to open rather than drop committed leases", path = path.display())]
    JournalDamaged { path: PathBuf, damage: Damage },
}

/// A damaged journal that [`Store::repair`] renamed out of the way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetAside {
    /// The journal.
    pub path: PathBuf,
    /// Where it is now (`<journal>.damaged-<unix seconds>`); never deleted.
    pub moved_to: PathBuf,
    /// Where it is damaged.
    pub damage: Damage,
    /// Intact entries read from it (before and after the damage).
    pub kept: u64,
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
    /// Damaged journals set aside by [`Store::repair`] (always empty from [`Store::open`]).
    pub set_aside: Vec<SetAside>,
}

/// The largest table: 2^24 addresses (a /8).
pub const MAX_RECORDS: u32 = 1 << 24;
const TABLE_MAGIC: &[u8; 8] = b"TDMLTBL1";
const TABLE_FORMAT: u32 = 1;
/// Bytes before the records: the fixed header sector, then the description archive.
const HEADER_LEN: u64 = 16384;
const DESC_AT: u64 = 1024;
const RELAY_MAGIC: &[u8; 8] = b"TDMRLY01";
const RELAY_FORMAT: u32 = 1;
/// Bytes before the first relay cell: the header sector, padded to a page.
const RELAY_HEADER_LEN: u64 = 4096;
const MANIFEST: &str = "MANIFEST";
const MANIFEST_MAGIC: &[u8; 8] = b"TDMMANI1";

/// Every table of a data directory. `Sync`: shared by the workers and control.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    tables: Vec<Table>,
    journals: Vec<Arc<JournalShared>>,
    checkpoint_lock: Mutex<()>,
    _lock: File,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> OpenError + '_ {
    move |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> OpenError {
    OpenError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn spec_err(path: &Path, reason: impl Into<String>) -> OpenError {
    OpenError::Spec {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The file name of a subnet's table: `10.0.0.0_24.tdt`.
pub fn table_file_name(spec: &TableSpec) -> String {
    format!("{}_{}.tdt", spec.network, spec.prefix_len)
}

/// The file name of a subnet's relay info (`FORMAT.md` §3.5): `10.0.0.0_24.tdr`.
pub fn relay_file_name(spec: &TableSpec) -> String {
    format!("{}_{}.tdr", spec.network, spec.prefix_len)
}

/// Relay file header: magic, format, records, zero, CRC32C of bytes 0..124 at 124.
fn encode_relay_header(records: u32) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[0..8].copy_from_slice(RELAY_MAGIC);
    h[8..12].copy_from_slice(&RELAY_FORMAT.to_le_bytes());
    h[12..16].copy_from_slice(&records.to_le_bytes());
    let crc = crc32c::crc32c(&h[..124]);
    h[124..128].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Create file `name` in `dir` whole, or not at all: built under `name.tmp` (preallocated to
/// `len` bytes, then `write` fills in its header), synced, renamed, the directory synced. A
/// crash leaves no file, or a complete one.
fn create_durably(
    dir: &Path,
    name: &str,
    len: u64,
    write: impl FnOnce(&File, &Path) -> Result<(), OpenError>,
) -> Result<(), OpenError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(crate::FILE_MODE)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    map::preallocate(&f, len).map_err(io_err(&tmp))?;
    write(&f, &tmp)?;
    f.sync_all().map_err(io_err(&tmp))?;
    let path = dir.join(name);
    std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(dir)
}

/// Create a table's relay file anew, every cell empty.
fn create_relay_file(dir: &Path, spec: &TableSpec, records: u32) -> Result<(), OpenError> {
    let len = RELAY_HEADER_LEN + relay_map_len(records) as u64;
    create_durably(dir, &relay_file_name(spec), len, |f, tmp| {
        f.write_all_at(&encode_relay_header(records), 0)
            .map_err(io_err(tmp))
    })
}

fn relay_map_len(records: u32) -> usize {
    (records as usize * crate::table::RELAY_SLOT_LEN).div_ceil(4096) * 4096
}

/// Open a table's relay file, creating it when missing (a table created by this open has a
/// new one already: cells of an earlier table's life must never describe the new one's
/// records). A relay file that is not one (bad magic, checksum, format or size) is started
/// over with a warning: relay info helps leasequery answer, and no binding depends on it.
fn open_relay_file(dir: &Path, spec: &TableSpec, records: u32) -> Result<Mapping, OpenError> {
    let path = dir.join(relay_file_name(spec));
    let len = relay_map_len(records);
    let usable = |f: &File| -> bool {
        let mut h = [0u8; 512];
        f.read_exact_at(&mut h, 0).is_ok()
            && h == encode_relay_header(records)
            && f.metadata()
                .is_ok_and(|m| m.len() >= RELAY_HEADER_LEN + len as u64)
    };
    if !path.exists() {
        create_relay_file(dir, spec, records)?;
    } else {
        let f = File::open(&path).map_err(io_err(&path))?;
        if !usable(&f) {
            tracing::warn!(file = %path.display(),
                "relay info file unreadable; starting it over (leases keep their bindings, not their option 82)");
            create_relay_file(dir, spec, records)?;
        }
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    Mapping::new(&file, RELAY_HEADER_LEN, len).map_err(io_err(&path))
}

fn desc_of(spec: &TableSpec) -> TableDesc {
    TableDesc {
        network: u32::from(spec.network),
        prefix_len: spec.prefix_len,
        first: u32::from(spec.first),
        last: u32::from(spec.last),
        allocatable: spec
            .allocatable
            .iter()
            .map(|(a, b)| AddrRange {
                first: u32::from(*a),
                last: u32::from(*b),
            })
            .collect(),
    }
}

fn check_spec(spec: &TableSpec, path: &Path) -> Result<u32, OpenError> {
    let (first, last) = (u32::from(spec.first), u32::from(spec.last));
    if spec.prefix_len > 32 {
        return Err(spec_err(
            path,
            format!("prefix length {} is over 32", spec.prefix_len),
        ));
    }
    if first > last {
        return Err(spec_err(
            path,
            format!("first address {} is after last {}", spec.first, spec.last),
        ));
    }
    let n = u64::from(last - first) + 1;
    let records = u32::try_from(n)
        .ok()
        .filter(|n| *n <= MAX_RECORDS)
        .ok_or_else(|| {
            spec_err(
                path,
                format!("{n} addresses; a table holds at most {MAX_RECORDS}"),
            )
        })?;
    let mut prev: Option<u32> = None;
    for (a, b) in &spec.allocatable {
        let (a, b) = (u32::from(*a), u32::from(*b));
        if a > b || a < first || b > last || prev.is_some_and(|p| a <= p) {
            return Err(spec_err(
                path,
                format!(
                    "allocatable range {}-{} is reversed, outside {}-{}, unsorted or overlapping",
                    Ipv4Addr::from(a),
                    Ipv4Addr::from(b),
                    spec.first,
                    spec.last
                ),
            ));
        }
        prev = Some(b);
    }
    Ok(records)
}

fn encode_header(spec: &TableSpec, l: &Layout) -> [u8; 512] {
    let mut h = [0u8; 512];
    let put = |h: &mut [u8; 512], at: usize, b: &[u8]| h[at..at + b.len()].copy_from_slice(b);
    put(&mut h, 0, TABLE_MAGIC);
    put(&mut h, 8, &TABLE_FORMAT.to_le_bytes());
    put(&mut h, 12, &(HEADER_LEN as u32).to_le_bytes());
    put(&mut h, 16, &u32::from(spec.network).to_le_bytes());
    h[20] = spec.prefix_len;
    put(&mut h, 24, &u32::from(spec.first).to_le_bytes());
    put(&mut h, 28, &u32::from(spec.last).to_le_bytes());
    put(&mut h, 32, &l.records.to_le_bytes());
    put(&mut h, 36, &(SLOT_LEN as u32).to_le_bytes());
    put(&mut h, 40, &l.index_cap.to_le_bytes());
    put(&mut h, 44, &l.blocks.to_le_bytes());
    put(&mut h, 48, &HEADER_LEN.to_le_bytes());
    put(&mut h, 56, &(HEADER_LEN + l.index_off as u64).to_le_bytes());
    put(
        &mut h,
        64,
        &(HEADER_LEN + l.overflow_off as u64).to_le_bytes(),
    );
    put(&mut h, 72, &(HEADER_LEN + l.map_len as u64).to_le_bytes());
    let crc = crc32c::crc32c(&h[..124]);
    put(&mut h, 124, &crc.to_le_bytes());
    h
}

fn get32(h: &[u8], at: usize) -> u32 {
    crate::record::disk::get32(h, at)
}

/// Whether the table file's header has room for `spec`'s description (its allocatable ranges:
/// every exclusion or reservation inside a pool adds one). A live configuration change must
/// check it: the next open writes the description.
pub fn description_fits(spec: &TableSpec) -> bool {
    let len = meta::to_bytes_desc(&desc_of(spec)).len() as u64;
    len > 0 && len <= HEADER_LEN - DESC_AT
}

/// Description block: length u32, CRC32C u32 at 512; the archive at 1024.
fn write_desc(file: &File, path: &Path, spec: &TableSpec) -> Result<(), OpenError> {
    let bytes = meta::to_bytes_desc(&desc_of(spec));
    if !description_fits(spec) {
        return Err(spec_err(
            path,
            "too many allocatable ranges for the table header",
        ));
    }
    let mut lenbuf = [0u8; 8];
    lenbuf[..4].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
    lenbuf[4..].copy_from_slice(&crc32c::crc32c(&bytes).to_le_bytes());
    file.write_all_at(&bytes, DESC_AT).map_err(io_err(path))?;
    file.write_all_at(&lenbuf, 512).map_err(io_err(path))?;
    Ok(())
}

fn read_desc(file: &File) -> Result<TableDesc, meta::MetaError> {
    let mut lenbuf = [0u8; 8];
    file.read_exact_at(&mut lenbuf, 512)?;
    let len = u64::from(get32(&lenbuf, 0));
    if len == 0 || len > HEADER_LEN - DESC_AT {
        return Err(meta::MetaError::Length(len));
    }
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, DESC_AT)?;
    if crc32c::crc32c(&bytes) != get32(&lenbuf, 4) {
        return Err(meta::MetaError::Checksum);
    }
    meta::desc_from_bytes(&bytes)
}

fn sync_dir(dir: &Path) -> Result<(), OpenError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Create `dir` (and its missing parents) so that it survives a crash: each new directory's
/// entry is made durable by an fsync of its parent.
fn create_dir_durably(dir: &Path) -> Result<(), OpenError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_durably(parent)?;
    }
    match std::fs::DirBuilder::new().mode(crate::DIR_MODE).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(io_err(dir)(e)),
    }
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

/// Open or create one table file and check it against `spec`; slots not yet recovered.
fn open_table_file(dir: &Path, id: TableId, spec: &TableSpec) -> Result<Table, OpenError> {
    let path = dir.join(table_file_name(spec));
    let records = check_spec(spec, &path)?;
    let layout = Layout::for_records(records);
    let file_len = HEADER_LEN + layout.map_len as u64;
    let fresh = !path.exists();
    if fresh {
        // The relay file first: a crash before the table is in place leaves no table, and
        // the next open starts the relay file over again, so a new table never finds the
        // cells of an old one beside it.
        create_relay_file(dir, spec, records)?;
        // A crash leaves either no table or a complete empty one.
        create_durably(dir, &table_file_name(spec), file_len, |f, tmp| {
            f.write_all_at(&encode_header(spec, &layout), 0)
                .map_err(io_err(tmp))?;
            write_desc(f, tmp, spec)
        })?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    let mut h = [0u8; 512];
    file.read_exact_at(&mut h, 0).map_err(io_err(&path))?;
    if &h[0..8] != TABLE_MAGIC {
        return Err(corrupt(&path, "not a tandem lease table (bad magic)"));
    }
    if crc32c::crc32c(&h[..124]) != get32(&h, 124) {
        return Err(corrupt(&path, "table header checksum mismatch"));
    }
    let format = get32(&h, 8);
    if format != TABLE_FORMAT {
        return Err(corrupt(
            &path,
            format!("table format {format}; this build reads {TABLE_FORMAT}"),
        ));
    }
    let (net, plen, first, last) = (
        Ipv4Addr::from(get32(&h, 16)),
        h[20],
        Ipv4Addr::from(get32(&h, 24)),
        Ipv4Addr::from(get32(&h, 28)),
    );
    if (net, plen, first, last) != (spec.network, spec.prefix_len, spec.first, spec.last) {
        return Err(spec_err(
            &path,
            format!(
                "the table covers {first}-{last} of {net}/{plen}, but the config now says {}-{} of {}/{}; \
                 resizing a table is not supported yet (move the file away to start this subnet empty)",
                spec.first, spec.last, spec.network, spec.prefix_len
            ),
        ));
    }
    if encode_header(spec, &layout) != h {
        return Err(corrupt(
            &path,
            "table header describes a layout this build does not use",
        ));
    }
    let actual = file.metadata().map_err(io_err(&path))?.len();
    if actual < file_len {
        return Err(corrupt(
            &path,
            format!("file is {actual} bytes, its header needs {file_len}"),
        ));
    }
    // The description: the spec is authoritative for the allocatable ranges (exclusions may
    // change between runs); a missing or damaged description is rewritten.
    let want = desc_of(spec);
    match read_desc(&file) {
        Ok(d) if d == want => {}
        Ok(_) => {
            tracing::info!(table = %path.display(), "allocatable ranges changed; rewriting the description");
            write_desc(&file, &path, spec)?;
            file.sync_data().map_err(io_err(&path))?;
        }
        Err(why) => {
            tracing::warn!(table = %path.display(), %why, "table description unreadable; rewriting it");
            write_desc(&file, &path, spec)?;
            file.sync_data().map_err(io_err(&path))?;
        }
    }
    let map = Mapping::new(&file, HEADER_LEN, layout.map_len).map_err(io_err(&path))?;
    let relay = open_relay_file(dir, spec, records)?;
    Ok(Table::new(id, spec.clone(), path, layout, map, relay))
}

fn read_manifest(dir: &Path) -> Option<Manifest> {
    let path = dir.join(MANIFEST);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "manifest unreadable; recovering from journals alone");
            return None;
        }
    };
    let ok = bytes.len() >= 16 && &bytes[0..8] == MANIFEST_MAGIC && {
        let len = get32(&bytes, 8) as usize;
        bytes.len() == 16 + len && crc32c::crc32c(&bytes[16..]) == get32(&bytes, 12)
    };
    let m = if ok {
        meta::manifest_from_bytes(&bytes[16..])
            .ok()
            .filter(|m| m.journals.iter().all(|j| j.lsn < journal::LSN_LIMIT))
    } else {
        None
    };
    if m.is_none() {
        tracing::warn!(path = %path.display(), "manifest damaged; recovering from journals alone");
    }
    m
}

fn write_manifest(dir: &Path, m: &Manifest) -> Result<(), OpenError> {
    let archive = meta::to_bytes_manifest(m);
    let mut bytes = Vec::with_capacity(16 + archive.len());
    bytes.extend_from_slice(MANIFEST_MAGIC);
    bytes.extend_from_slice(&(archive.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(&archive).to_le_bytes());
    bytes.extend_from_slice(&archive);
    let tmp = dir.join("MANIFEST.tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(crate::FILE_MODE)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.write_all(&bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, dir.join(MANIFEST)).map_err(io_err(dir))?;
    sync_dir(dir)
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
        Self::open_with(dir, specs, workers, durability, Arc::new(FileBackend))
    }

    /// [`Store::open`] with the journals on `backend` (tests inject faults through it).
    pub fn open_with(
        dir: &Path,
        specs: &[TableSpec],
        workers: u16,
        durability: Durability,
        backend: Arc<dyn Backend>,
    ) -> Result<(Store, Vec<WorkerJournal>, RecoveryReport), OpenError> {
        Self::open_inner(dir, specs, Some(workers), durability, backend, false)
    }

    /// Recover a data directory whose journals [`Store::open`] refuses
    /// ([`OpenError::JournalDamaged`]): each damaged journal is renamed
    /// `<journal>.damaged-<unix seconds>` (never deleted), every intact entry in it is
    /// replayed (those after the damage too), and the store is checkpointed and closed clean.
    /// Journals are kept for every worker that has one. The report lists what was set aside;
    /// the next [`Store::open`] starts from the repaired tables.
    pub fn repair(dir: &Path, specs: &[TableSpec]) -> Result<RecoveryReport, OpenError> {
        Self::repair_with(dir, specs, Arc::new(FileBackend))
    }

    /// [`Store::repair`] with the journals on `backend`.
    pub fn repair_with(
        dir: &Path,
        specs: &[TableSpec],
        backend: Arc<dyn Backend>,
    ) -> Result<RecoveryReport, OpenError> {
        let (store, journals, report) =
            Self::open_inner(dir, specs, None, Durability::Sync, backend, true)?;
        store.close(journals)?;
        Ok(report)
    }

    /// `workers: None` keeps one journal per worker that has one; `repair` sets damaged
    /// journals aside instead of refusing them.
    fn open_inner(
        dir: &Path,
        specs: &[TableSpec],
        workers: Option<u16>,
        durability: Durability,
        backend: Arc<dyn Backend>,
        repair: bool,
    ) -> Result<(Store, Vec<WorkerJournal>, RecoveryReport), OpenError> {
        create_dir_durably(dir)?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(crate::FILE_MODE)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        lock.try_lock().map_err(|e| OpenError::Io {
            path: lock_path.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                format!("data directory is in use by another process ({e})"),
            ),
        })?;
        if specs.len() > usize::from(u16::MAX) {
            return Err(spec_err(dir, "too many tables"));
        }
        let mut by_key: HashMap<TableKey, usize> = HashMap::new();
        let mut tables = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let key = TableKey {
                network: u32::from(spec.network),
                prefix_len: spec.prefix_len,
            };
            if by_key.insert(key, i).is_some() {
                return Err(spec_err(
                    &dir.join(table_file_name(spec)),
                    "two tables for the same subnet",
                ));
            }
            tables.push(open_table_file(dir, TableId(i as u16), spec)?);
        }

        // 1. Pick each slot's newest valid image; remember slots with none.
        let mut broken: Vec<std::collections::HashSet<u32>> = Vec::with_capacity(tables.len());
        for t in &tables {
            broken.push((0..t.len()).filter(|s| !t.recover_slot(*s)).collect());
            t.rebuild_block_owners();
            // Put the disk where memory is before replay overwrites anything: released
            // overflow blocks become reusable, and a crash during recovery finds the same
            // state again.
            t.flush().map_err(io_err(t.path()))?;
        }

        // 2. Replay every journal, applying entries newer than the table's record.
        let manifest = read_manifest(dir);
        let mut report = RecoveryReport {
            clean: manifest.as_ref().is_some_and(|m| m.clean),
            ..Default::default()
        };
        let mut next_lsn: HashMap<u16, u64> = HashMap::new();
        if let Some(m) = &manifest {
            for j in &m.journals {
                next_lsn.insert(j.worker, j.lsn + 1);
            }
        }
        let existing = backend.journals(dir).map_err(io_err(dir))?;
        let mut unknown = 0u64;
        let mut damaged = Vec::new();
        for &w in &existing {
            let jpath = dir.join(crate::storage::journal_name(w));
            let storage = backend.open_journal(dir, w).map_err(io_err(&jpath))?;
            let mut failure: Option<OpenError> = None;
            let scan = journal::scan(storage.as_ref(), repair, |e| {
                if failure.is_some() {
                    return;
                }
                let Some(&ti) = by_key.get(&e.table) else {
                    unknown += 1;
                    return;
                };
                let t = &tables[ti];
                if e.slot >= t.len() {
                    failure = Some(corrupt(
                        &jpath,
                        format!(
                            "entry {} names slot {} of a {}-record table",
                            e.lsn,
                            e.slot,
                            t.len()
                        ),
                    ));
                    return;
                }
                let (cur, _) = t.slot_ref(e.slot).version();
                if e.version == cur && !broken[ti].contains(&e.slot) {
                    // The record made it to the table; its relay cell may not have.
                    t.restore_relay(e.slot, e.version, &e.lease);
                } else if e.version > cur || broken[ti].contains(&e.slot) {
                    match t.install(e.slot, e.version, &e.lease) {
                        Ok(()) => {
                            broken[ti].remove(&e.slot);
                            report.replayed += 1;
                        }
                        Err(err) => {
                            failure = Some(corrupt(
                                t.path(),
                                format!("replaying entry {}: {err}", e.lsn),
                            ))
                        }
                    }
                }
            })
            .map_err(io_err(&jpath))?;
            if let Some(f) = failure {
                return Err(f);
            }
            match scan.end {
                End::Clean => {}
                End::Torn { at } => {
                    report.torn_tails += 1;
                    tracing::warn!(journal = %jpath.display(), entries = scan.entries, at,
                        "torn journal tail cut off (the last batch of a crash, never acknowledged)");
                }
                End::Damaged(damage) if repair => {
                    // Renamed once the tables hold what was read from it (step 3).
                    damaged.push((w, jpath, damage, scan.entries + scan.applied_after));
                }
                End::Damaged(damage) => {
                    return Err(OpenError::JournalDamaged {
                        path: jpath,
                        damage,
                    });
                }
            }
            if let Some(last) = scan.last_lsn {
                let n = next_lsn.entry(w).or_insert(1);
                *n = (*n).max(last + 1);
            }
        }
        if unknown > 0 {
            tracing::warn!(
                entries = unknown,
                "journal entries for subnets no longer configured were dropped"
            );
        }
        for (t, b) in tables.iter().zip(&broken) {
            if !b.is_empty() {
                let mut addrs: Vec<u32> = b.iter().copied().collect();
                addrs.sort_unstable();
                let list: Vec<String> = addrs
                    .iter()
                    .take(8)
                    .map(|s| t.addr(crate::Slot(*s)).to_string())
                    .collect();
                return Err(corrupt(
                    t.path(),
                    format!(
                        "{} record(s) damaged in both copies and in no journal (first: {}); refusing to \
                         open rather than forget a binding: restore the file from a backup, or move it away \
                         to start this subnet empty",
                        addrs.len(),
                        list.join(", ")
                    ),
                ));
            }
        }

        // 3. Rebuild the client index, make the tables durable, then the manifest, then
        //    start the journals over.
        for t in &tables {
            t.rebuild_block_owners();
            t.rebuild_index()
                .map_err(|e| corrupt(t.path(), format!("rebuilding the client index: {e}")))?;
            t.flush().map_err(io_err(t.path()))?;
        }
        // Repair: the tables now hold every intact entry of a damaged journal durably, so
        // the journal can go out of the way (renamed, never deleted) before a new one
        // takes its name.
        for (w, path, damage, kept) in damaged {
            let suffix = format!("damaged-{}", crate::UnixTime::now().0);
            let moved_to = backend.set_aside(dir, w, &suffix).map_err(io_err(&path))?;
            tracing::warn!(journal = %path.display(), moved_to = %moved_to.display(), %damage,
                kept, "damaged journal set aside");
            report.set_aside.push(SetAside {
                path,
                moved_to,
                damage,
                kept,
            });
        }
        let workers = workers
            .unwrap_or_else(|| existing.last().map_or(1, |w| w.saturating_add(1)))
            .max(1);
        let mut marks: Vec<JournalMark> = (0..workers)
            .map(|w| JournalMark {
                worker: w,
                lsn: next_lsn.get(&w).copied().unwrap_or(1) - 1,
            })
            .collect();
        marks.sort_by_key(|m| m.worker);
        write_manifest(
            dir,
            &Manifest {
                format: 1,
                clean: false,
                journals: marks.clone(),
            },
        )?;
        let keys: Arc<[TableKey]> = specs
            .iter()
            .map(|s| TableKey {
                network: u32::from(s.network),
                prefix_len: s.prefix_len,
            })
            .collect();
        let mut journals = Vec::with_capacity(usize::from(workers));
        let mut shared = Vec::with_capacity(usize::from(workers));
        for m in &marks {
            let jpath = dir.join(crate::storage::journal_name(m.worker));
            let storage = backend
                .open_journal(dir, m.worker)
                .map_err(io_err(&jpath))?;
            let sh = Arc::new(JournalShared::default());
            journals.push(
                WorkerJournal::create(
                    m.worker,
                    storage,
                    durability,
                    Arc::clone(&keys),
                    m.lsn + 1,
                    Arc::clone(&sh),
                )
                .map_err(io_err(&jpath))?,
            );
            shared.push(sh);
        }
        for &w in existing.iter().filter(|w| **w >= workers) {
            backend.remove_journal(dir, w).map_err(io_err(dir))?;
        }
        // The journals just created (and those removed) must be in the directory before
        // anything committed to them is acknowledged.
        backend.sync_dir(dir).map_err(io_err(dir))?;
        tracing::info!(dir = %dir.display(), tables = tables.len(), replayed = report.replayed,
            torn = report.torn_tails, clean = report.clean, "lease store open");
        let store = Store {
            dir: dir.to_path_buf(),
            tables,
            journals: shared,
            checkpoint_lock: Mutex::new(()),
            _lock: lock,
        };
        Ok((store, journals, report))
    }

    /// # Panics
    /// If `id` is not a table of this store.
    pub fn table(&self, id: TableId) -> &Table {
        &self.tables[usize::from(id.0)]
    }

    pub fn tables(&self) -> &[Table] {
        &self.tables
    }

    /// The table of the subnet `network/prefix_len`.
    pub fn table_by_network(&self, network: Ipv4Addr, prefix_len: u8) -> Option<&Table> {
        self.tables
            .iter()
            .find(|t| t.spec().network == network && t.spec().prefix_len == prefix_len)
    }

    /// The table covering `addr`.
    pub fn table_for_addr(&self, addr: Ipv4Addr) -> Option<&Table> {
        self.tables.iter().find(|t| t.slot(addr).is_some())
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Write the tables back (msync), then let the journals drop what the tables now hold.
    pub fn checkpoint(&self) -> Result<(), OpenError> {
        self.checkpoint_as(false)
    }

    fn checkpoint_as(&self, clean: bool) -> Result<(), OpenError> {
        let _g = self
            .checkpoint_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Everything committed up to `cut` was applied to the tables before it was
        // recorded, so the msync below writes it (FORMAT.md §7).
        let cut: Vec<u64> = self
            .journals
            .iter()
            .map(|j| j.committed.load(Ordering::Acquire))
            .collect();
        for t in &self.tables {
            t.flush().map_err(io_err(t.path()))?;
        }
        let journals = cut
            .iter()
            .enumerate()
            .map(|(w, lsn)| JournalMark {
                worker: w as u16,
                lsn: *lsn,
            })
            .collect();
        write_manifest(
            &self.dir,
            &Manifest {
                format: 1,
                clean,
                journals,
            },
        )?;
        for (j, lsn) in self.journals.iter().zip(cut) {
            j.checkpointed.store(lsn, Ordering::Release);
        }
        Ok(())
    }

    /// Commit what the journals still hold, checkpoint, and mark the directory clean.
    pub fn close(self, journals: Vec<WorkerJournal>) -> Result<(), OpenError> {
        for mut j in journals {
            let w = j.worker();
            j.commit().map_err(|e| OpenError::Io {
                path: self.dir.join(crate::storage::journal_name(w)),
                source: std::io::Error::other(e),
            })?;
        }
        self.checkpoint_as(true)
    }

    /// Bytes mapped for all tables (status).
    pub fn mapped_bytes(&self) -> u64 {
        self.tables.iter().map(|t| t.map_len() as u64).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Lease, Slot};

    fn spec() -> TableSpec {
        TableSpec {
            network: Ipv4Addr::new(10, 0, 0, 0),
            prefix_len: 24,
            first: Ipv4Addr::new(10, 0, 0, 1),
            last: Ipv4Addr::new(10, 0, 0, 8),
            allocatable: vec![(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 8))],
        }
    }

    /// Found by the `store_recovery` fuzz target: a manifest whose checksum holds but that
    /// names LSN u64::MAX overflowed `lsn + 1` on open. It is a damaged manifest: recovery
    /// goes by the journals alone, which still hold what was committed.
    #[test]
    fn a_manifest_lsn_past_the_limit_is_a_damaged_manifest_not_an_overflow() {
        let dir = tempfile::tempdir().unwrap();
        let lease = Lease {
            state: crate::BindingState::Active,
            hlen: 6,
            ..Lease::default()
        };
        {
            let (store, mut journals, _) =
                Store::open(dir.path(), &[spec()], 1, Durability::Sync).unwrap();
            let t = store.table(TableId(0));
            let v = t.update(Slot(2), 0, &lease).unwrap();
            journals[0].record(TableId(0), Slot(2), v, &lease);
            journals[0].commit().unwrap();
            // Crash: no checkpoint; a manifest past the limit.
        }
        write_manifest(
            dir.path(),
            &Manifest {
                format: 1,
                clean: false,
                journals: vec![JournalMark {
                    worker: 0,
                    lsn: u64::MAX,
                }],
            },
        )
        .unwrap();
        let (store, mut journals, report) =
            Store::open(dir.path(), &[spec()], 1, Durability::Sync).unwrap();
        assert!(!report.clean);
        assert_eq!(store.table(TableId(0)).read(Slot(2)).1, lease);
        // The journal goes on with LSNs that still fit.
        journals[0].record(TableId(0), Slot(3), 1, &lease);
        journals[0].commit().unwrap();
        store.close(journals).unwrap();
        Store::open(dir.path(), &[spec()], 1, Durability::Sync).unwrap();
    }
}
