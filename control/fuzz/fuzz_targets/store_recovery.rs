//! Recovery of a lease store (`lease_mmap::Store::open`, `Store::repair`) from arbitrary
//! bytes in its files.
//!
//! Once per process, two real data directories are made and kept as bytes: one left as a
//! crash leaves it (leases in both journals, some with client ids long enough for overflow
//! blocks, the manifest not clean) and one closed cleanly. Each input then writes one of
//! them into a fresh directory with one file changed:
//!
//! * byte 0, bits 0-1: the file (worker journal, table, `MANIFEST`, control journal);
//!   bit 2: the rest replaces the file whole, else bytes 1-2 are an offset (little-endian)
//!   and the rest is written there; bit 3: the file's checksums are made right afterwards
//!   (FORMAT.md: journal header and entries, table header, description, record images and
//!   overflow blocks, manifest), so that the decoders behind them see the bytes; bit 4: the
//!   cleanly closed directory.
//!
//! Properties: `open` never panics and answers `Ok` or a typed error; a damaged journal is
//! repaired by `repair` (or a typed error), after which `open` succeeds; an opened store
//! reads every record, finds every bound client by its key, checkpoints and closes; and
//! opening what recovery left gives the same records (recovery is idempotent).
#![no_main]

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use lease_mmap::store::table_file_name;
use lease_mmap::{
    BindingState, ClientId, Durability, Lease, OpenError, Slot, Store, TableId, TableSpec, UnixTime,
};
use libfuzzer_sys::fuzz_target;

const JOURNAL_0: &str = "journal-00000.tdj";
const JOURNAL_1: &str = "journal-00001.tdj";

fn spec() -> TableSpec {
    TableSpec {
        network: Ipv4Addr::new(10, 77, 0, 0),
        prefix_len: 24,
        first: Ipv4Addr::new(10, 77, 0, 100),
        last: Ipv4Addr::new(10, 77, 0, 115),
        allocatable: vec![(Ipv4Addr::new(10, 77, 0, 100), Ipv4Addr::new(10, 77, 0, 113))],
    }
}

struct Fixture {
    /// Where each input's directory is made.
    work: PathBuf,
    /// (file name, bytes) of the crashed and of the closed directory.
    crashed: Vec<(String, Vec<u8>)>,
    closed: Vec<(String, Vec<u8>)>,
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let names = [
        table_file_name(&spec()),
        "MANIFEST".into(),
        JOURNAL_0.into(),
        JOURNAL_1.into(),
    ];
    names
        .into_iter()
        .filter_map(|n| std::fs::read(dir.join(&n)).ok().map(|b| (n, b)))
        .collect()
}

/// A lease of client `n`: ACTIVE, with a client id of `id_len` bytes.
fn lease(n: u8, id_len: usize) -> Lease {
    let mut chaddr = [0; 16];
    chaddr[..6].copy_from_slice(&[2, 0, 0, 0x77, 0, n]);
    let id: Vec<u8> = (0..id_len).map(|i| n ^ i as u8).collect();
    Lease {
        state: BindingState::Active,
        ends: UnixTime(0x6b02_6ef9 + 3600),
        tstp: UnixTime(0x6b02_6ef9 + 3900),
        cltt: UnixTime(0x6b02_6ef9),
        stos: UnixTime(0x6b02_6ef9),
        htype: 1,
        hlen: 6,
        chaddr,
        client_id: ClientId::new(&id).expect("id fits"),
        ..Lease::default()
    }
}

/// Writes leases through both journals, in several commits; returns what to drop or close.
fn populate(dir: &Path) -> (Store, Vec<lease_mmap::WorkerJournal>) {
    let (store, mut journals, _) =
        Store::open(dir, &[spec()], 2, Durability::Sync).expect("open the template store");
    let t = store.table(TableId(0));
    let writes: [(usize, u32, u8, usize); 7] = [
        (0, 0, 1, 7),
        (0, 1, 2, 0),
        (0, 2, 3, 200), // overflow block
        (1, 3, 4, 7),
        (0, 0, 1, 7),   // a renewal: version 2
        (1, 14, 5, 90), // reserved address, overflow block
        (0, 5, 6, 0),
    ];
    for (i, &(j, slot, n, id_len)) in writes.iter().enumerate() {
        let (v, _) = t.read(Slot(slot));
        let l = lease(n, id_len);
        let v = t.update(Slot(slot), v, &l).expect("template write");
        journals[j].record(TableId(0), Slot(slot), v, &l);
        if i % 2 == 1 {
            for j in &mut journals {
                j.commit().expect("template commit");
            }
        }
    }
    for j in &mut journals {
        j.commit().expect("template commit");
    }
    (store, journals)
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let root = control_fuzz::scratch_dir("recovery");
        let crashed_dir = root.join("crashed");
        let closed_dir = root.join("closed");
        let (store, journals) = populate(&crashed_dir);
        drop((store, journals)); // kill -9: nothing closed
        let crashed = files(&crashed_dir);
        let (store, journals) = populate(&closed_dir);
        store.close(journals).expect("close the template store");
        let closed = files(&closed_dir);
        let work = root.join("work");
        std::fs::create_dir_all(&work).expect("work dir");
        if let Some(seeds) = control_fuzz::seed_dir() {
            write_seeds(&seeds, &crashed, &closed);
        }
        Fixture {
            work,
            crashed,
            closed,
        }
    })
}

/// Each file of both directories whole (bit 2), and unchanged through the patch path with
/// the checksums made right (bit 3).
fn write_seeds(dir: &Path, crashed: &[(String, Vec<u8>)], closed: &[(String, Vec<u8>)]) {
    for (which, files, bit) in [("crashed", crashed, 0u8), ("closed", closed, 16)] {
        for (name, bytes) in files {
            let file = match name.as_str() {
                JOURNAL_0 => 0u8,
                "MANIFEST" => 2,
                JOURNAL_1 => 3,
                _ => 1,
            };
            let mut whole = vec![bit | 4 | file];
            whole.extend_from_slice(bytes);
            std::fs::write(dir.join(format!("{which}-{name}")), whole).expect("seed");
            let head = &bytes[..bytes.len().min(600)];
            let mut patch = vec![bit | 8 | file, 0, 0];
            patch.extend_from_slice(head);
            std::fs::write(dir.join(format!("{which}-{name}-patch")), patch).expect("seed");
        }
    }
}

fn put_crc(b: &mut [u8], covered: std::ops::Range<usize>, at: usize) {
    if b.len() >= at + 4 && covered.end <= b.len() {
        let crc = crc32c::crc32c(&b[covered]);
        b[at..at + 4].copy_from_slice(&crc.to_le_bytes());
    }
}

fn get_u64(b: &[u8], at: usize) -> Option<usize> {
    let x: [u8; 8] = b.get(at..at + 8)?.try_into().ok()?;
    usize::try_from(u64::from_le_bytes(x)).ok()
}

/// Makes the checksums of `file` right (lease-mmap/FORMAT.md §2-§6).
fn fix_checksums(name: &str, b: &mut [u8]) {
    if name.starts_with("journal-") {
        // Header and entries: CRC-32C of bytes 0..508 at 508, every 512 bytes.
        for chunk in b.chunks_mut(512) {
            put_crc(chunk, 0..508, 508);
        }
    } else if name == "MANIFEST" {
        if b.len() >= 16 {
            let len = u32::try_from(b.len() - 16).unwrap_or(u32::MAX);
            b[8..12].copy_from_slice(&len.to_le_bytes());
            put_crc(b, 16..b.len(), 12);
        }
    } else {
        put_crc(b, 0..124, 124);
        if let Some(x) = b.get(512..516) {
            let len = u32::from_le_bytes(x.try_into().expect("4 bytes")) as usize;
            put_crc(b, 1024..1024 + len.min(15360), 516);
        }
        let n = b
            .get(32..36)
            .map_or(0, |x| u32::from_le_bytes(x.try_into().expect("4 bytes")));
        let records = get_u64(b, 48).unwrap_or(0);
        for s in 0..(n as usize).min(4096) {
            for half in [8, 132] {
                let Some(at) = records.checked_add(256 * s + half) else {
                    break;
                };
                if let Some(img) = b.get_mut(at..at.saturating_add(124))
                    && img.iter().any(|&x| x != 0)
                {
                    put_crc(img, 0..120, 120);
                }
            }
        }
        if let (Some(off), Some(blocks)) = (get_u64(b, 64), b.get(44..48)) {
            let blocks = u32::from_le_bytes(blocks.try_into().expect("4 bytes")) as usize;
            for k in 0..blocks.min(4096) {
                let Some(at) = off.checked_add(512 * k) else {
                    break;
                };
                if let Some(blk) = b.get_mut(at..at.saturating_add(512))
                    && blk[8..].iter().any(|&x| x != 0)
                {
                    put_crc(blk, 8..508, 508);
                }
            }
        }
    }
}

/// Every record, and where each bound client is found by its key.
fn snapshot(store: &Store) -> Vec<Lease> {
    let t = store.table(TableId(0));
    let mut leases = Vec::new();
    t.for_each(|slot, _, l| {
        if l.state.is_bound()
            && let Some(key) = l.client_key()
        {
            assert!(
                t.find_client(&key).is_some(),
                "bound client of slot {} not found",
                slot.0
            );
        }
        leases.push(*l);
    });
    assert_eq!(leases.len(), 16);
    leases
}

fn open(dir: &Path) -> Result<(Store, Vec<lease_mmap::WorkerJournal>), OpenError> {
    Store::open(dir, &[spec()], 2, Durability::Async).map(|(s, j, _)| (s, j))
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let template = if mode & 16 != 0 {
        &f.closed
    } else {
        &f.crashed
    };
    let want = match mode & 3 {
        0 => JOURNAL_0.to_owned(),
        1 => table_file_name(&spec()),
        2 => "MANIFEST".to_owned(),
        _ => JOURNAL_1.to_owned(),
    };
    control_fuzz::clear_dir(&f.work);
    let mut found = false;
    for (name, bytes) in template {
        let mut b = bytes.clone();
        if *name == want {
            found = true;
            if mode & 4 != 0 {
                b = rest.to_vec();
            } else if let [lo, hi, patch @ ..] = rest {
                let at = usize::from(u16::from_le_bytes([*lo, *hi]));
                if b.len() < at + patch.len() {
                    b.resize(at + patch.len(), 0);
                }
                b[at..at + patch.len()].copy_from_slice(patch);
            }
            if mode & 8 != 0 {
                fix_checksums(name, &mut b);
            }
        }
        std::fs::write(f.work.join(name), &b).expect("write a store file");
    }
    if !found && mode & 4 != 0 {
        std::fs::write(f.work.join(&want), rest).expect("write a store file");
    }

    let opened = match open(&f.work) {
        Ok(s) => s,
        Err(OpenError::JournalDamaged { .. }) => {
            match Store::repair(&f.work, &[spec()]) {
                Ok(report) => assert!(!report.set_aside.is_empty(), "repair set nothing aside"),
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    return;
                }
            }
            open(&f.work).expect("a repaired store opens")
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let (store, journals) = opened;
    let before = snapshot(&store);
    store.checkpoint().expect("checkpoint");
    store.close(journals).expect("close");
    let (store, journals) = open(&f.work).expect("what recovery left opens again");
    assert_eq!(
        snapshot(&store),
        before,
        "a second recovery changed records"
    );
    drop((store, journals));
});
