//! Every public function of the store, table and journal, on a fresh directory.

use std::sync::Arc;

use lease_mmap::storage::SimBackend;
use lease_mmap::{
    AllocCursor, BindingState, ClientKey, CommitError, Durability, Lease, OpenError, Slot, Store,
    TableId, UnixTime, UpdateError,
};

use crate::common::*;

const NOW: u32 = 1_700_000_000;

fn open(
    dir: &std::path::Path,
) -> (
    Store,
    Vec<lease_mmap::WorkerJournal>,
    lease_mmap::RecoveryReport,
) {
    Store::open(dir, &[small_spec(), big_spec()], 2, Durability::Sync).unwrap()
}

#[test]
fn open_creates_tables_and_journals() {
    let dir = tempfile::tempdir().unwrap();
    let (store, journals, report) = open(dir.path());
    assert_eq!(
        report,
        lease_mmap::RecoveryReport {
            replayed: 0,
            torn_tails: 0,
            clean: false,
            ..Default::default()
        }
    );
    assert_eq!(journals.len(), 2);
    assert_eq!(journals[1].worker(), 1);
    assert_eq!(store.tables().len(), 2);
    let t = store.table(TableId(0));
    assert_eq!(t.id(), TableId(0));
    assert_eq!(t.first(), ip("10.0.0.10"));
    assert_eq!(t.last(), ip("10.0.0.200"));
    assert_eq!(t.len(), 191);
    assert!(!t.is_empty());
    assert_eq!(store.table(TableId(1)).len(), 4096);
    assert!(dir.path().join("10.0.0.0_24.tdt").exists());
    assert!(dir.path().join("journal-00001.tdj").exists());
    assert_eq!(
        store.table_by_network(ip("10.1.0.0"), 20).unwrap().id(),
        TableId(1)
    );
    assert!(store.table_by_network(ip("10.1.0.0"), 21).is_none());
    assert_eq!(
        store.table_for_addr(ip("10.0.0.199")).unwrap().id(),
        TableId(0)
    );
    assert!(store.table_for_addr(ip("10.0.0.201")).is_none());
    assert!(store.mapped_bytes() > 4096 * 256);
    assert_eq!(store.dir(), dir.path());
}

#[test]
fn slots_addresses_and_allocatable_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _j, _) = open(dir.path());
    let t = store.table(TableId(0));
    assert_eq!(t.slot(ip("10.0.0.10")), Some(Slot(0)));
    assert_eq!(t.slot(ip("10.0.0.200")), Some(Slot(190)));
    assert_eq!(t.slot(ip("10.0.0.9")), None);
    assert_eq!(t.slot(ip("10.0.0.201")), None);
    assert_eq!(t.slot(ip("0.0.0.0")), None);
    assert_eq!(t.addr(Slot(5)), ip("10.0.0.15"));
    let alloc = |a: &str| t.is_allocatable(t.slot(ip(a)).unwrap());
    assert!(!alloc("10.0.0.19"));
    assert!(alloc("10.0.0.20"));
    assert!(alloc("10.0.0.100"));
    assert!(!alloc("10.0.0.101"));
    assert!(!alloc("10.0.0.149"));
    assert!(alloc("10.0.0.150"));
    assert!(alloc("10.0.0.200"));
    assert!(!t.is_allocatable(Slot(10_000)));
}

#[test]
fn allocatable_ranges_change_live_and_a_caller_may_bring_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _j, _) = open(dir.path());
    let t = store.table(TableId(0));
    let alloc = |a: &str| t.is_allocatable(t.slot(ip(a)).unwrap());
    // Outside the table, reversed, overlapping or unsorted: refused, nothing changes.
    for bad in [
        vec![(ip("10.0.0.5"), ip("10.0.0.20"))],
        vec![(ip("10.0.0.30"), ip("10.0.0.20"))],
        vec![
            (ip("10.0.0.10"), ip("10.0.0.30")),
            (ip("10.0.0.30"), ip("10.0.0.40")),
        ],
        vec![
            (ip("10.0.0.50"), ip("10.0.0.60")),
            (ip("10.0.0.10"), ip("10.0.0.20")),
        ],
    ] {
        assert!(t.slot_ranges(&bad).is_none(), "{bad:?}");
        assert!(t.set_allocatable(&bad).is_err(), "{bad:?}");
    }
    assert!(alloc("10.0.0.20") && !alloc("10.0.0.19"));
    // An exclusion lifted and another added, live.
    t.set_allocatable(&[
        (ip("10.0.0.10"), ip("10.0.0.15")),
        (ip("10.0.0.101"), ip("10.0.0.200")),
    ])
    .unwrap();
    assert!(alloc("10.0.0.10") && alloc("10.0.0.15") && !alloc("10.0.0.16"));
    assert!(!alloc("10.0.0.100") && alloc("10.0.0.101") && alloc("10.0.0.200"));
    // `allocate` follows the table's ranges; `allocate_within` the caller's.
    let free_only = lease_mmap::free_only;
    let mut cursor = AllocCursor::new(0, 1);
    let (slot, _) = t
        .allocate(&mut cursor, UnixTime(NOW), &active(0, NOW), &free_only)
        .unwrap();
    assert_eq!(t.addr(slot), ip("10.0.0.10"));
    let own = t
        .slot_ranges(&[(ip("10.0.0.150"), ip("10.0.0.150"))])
        .unwrap();
    let mut cursor = AllocCursor::new(0, 1);
    let (slot, _) = t
        .allocate_within(
            &own,
            &mut cursor,
            UnixTime(NOW),
            &active(1, NOW),
            &free_only,
        )
        .unwrap();
    assert_eq!(t.addr(slot), ip("10.0.0.150"));
    assert!(
        t.allocate_within(
            &own,
            &mut cursor,
            UnixTime(NOW),
            &active(2, NOW),
            &free_only
        )
        .is_none(),
        "the caller's one address is taken"
    );
}

#[test]
fn read_update_and_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _j, _) = open(dir.path());
    let t = store.table(TableId(0));
    assert_eq!(t.read(Slot(3)), (0, free()));
    let l = active(1, NOW);
    assert_eq!(t.update(Slot(3), 0, &l), Ok(1));
    assert_eq!(t.read(Slot(3)), (1, l));
    // A stale version loses.
    assert_eq!(
        t.update(Slot(3), 0, &free()),
        Err(UpdateError::Conflict { current: 1 })
    );
    let l2 = lease_mmap::Lease {
        ends: UnixTime(NOW + 7200),
        ..l
    };
    assert_eq!(t.update(Slot(3), 1, &l2), Ok(2));
    assert_eq!(t.update(Slot(3), 2, &l), Ok(3));
    assert_eq!(t.read(Slot(3)), (3, l));
    assert_eq!(
        t.update(Slot(191), 0, &l),
        Err(UpdateError::NoSuchSlot(191))
    );
    let mut states = [0u64; 8];
    states[0] = 190;
    states[1] = 1;
    assert_eq!(t.counts(), states);
    let mut seen = 0;
    t.for_each(|s, v, lease| {
        if s == Slot(3) {
            assert_eq!((v, *lease), (3, l));
        }
        seen += 1;
    });
    assert_eq!(seen, 191);
}

#[test]
fn find_client_by_mac_and_client_id() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _j, _) = open(dir.path());
    let t = store.table(TableId(0));
    let by_mac = active(7, NOW);
    t.update(Slot(10), 0, &by_mac).unwrap();
    let mac7 = mac(7);
    let key = ClientKey::HwAddr {
        htype: 1,
        chaddr: &mac7[..6],
    };
    assert_eq!(t.find_client(&key), Some((Slot(10), 1, by_mac)));
    assert_eq!(
        t.find_client(&ClientKey::HwAddr {
            htype: 6,
            chaddr: &mac7[..6]
        }),
        None
    );

    let with_id = active_with_id(8, 20, NOW);
    t.update(Slot(11), 0, &with_id).unwrap();
    let id = with_id.client_id;
    assert_eq!(
        t.find_client(&ClientKey::ClientId(id.as_bytes())),
        Some((Slot(11), 1, with_id))
    );
    // With a client id the MAC does not identify the client (RFC 2131 §4.2).
    let mac8 = mac(8);
    assert_eq!(
        t.find_client(&ClientKey::HwAddr {
            htype: 1,
            chaddr: &mac8[..6]
        }),
        None
    );

    // Released → FREE: no longer found; the slot rebound to another client answers for it.
    t.update(Slot(10), 1, &free()).unwrap();
    assert_eq!(t.find_client(&key), None);
    let other = active(9, NOW);
    t.update(Slot(10), 2, &other).unwrap();
    assert_eq!(t.find_client(&key), None);
    let mac9 = mac(9);
    assert_eq!(
        t.find_client(&ClientKey::HwAddr {
            htype: 1,
            chaddr: &mac9[..6]
        })
        .map(|f| f.0),
        Some(Slot(10))
    );
    // The most recent of two bindings wins.
    let older = lease_mmap::Lease {
        cltt: UnixTime(NOW - 100),
        ..active(9, NOW)
    };
    t.update(Slot(12), 0, &older).unwrap();
    assert_eq!(
        t.find_client(&ClientKey::HwAddr {
            htype: 1,
            chaddr: &mac9[..6]
        })
        .map(|f| f.0),
        Some(Slot(10))
    );
}

#[test]
fn index_survives_heavy_churn() {
    // Rebinding slots to new clients over and over must not fill the index: stale entries
    // are reclaimed.
    let dir = tempfile::tempdir().unwrap();
    let (store, _j, _) = open(dir.path());
    let t = store.table(TableId(0));
    let mut versions = vec![0u64; 191];
    for round in 0..40u32 {
        for s in 0..191u32 {
            let l = active(round * 1000 + s, NOW);
            versions[s as usize] = t.update(Slot(s), versions[s as usize], &l).unwrap();
        }
    }
    for s in 0..191u32 {
        let m = mac(39 * 1000 + s);
        assert_eq!(
            t.find_client(&ClientKey::HwAddr {
                htype: 1,
                chaddr: &m[..6]
            })
            .map(|f| f.0),
            Some(Slot(s))
        );
    }
}

#[test]
fn long_client_ids_use_overflow_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _j, _) = open(dir.path());
    let t = store.table(TableId(0));
    // 191 records → 16 overflow blocks.
    for i in 0..16u32 {
        let l = active_with_id(i, 200 + i as usize % 50, NOW);
        assert_eq!(t.update(Slot(i), 0, &l), Ok(1));
        assert_eq!(t.read(Slot(i)), (1, l));
        assert_eq!(
            t.find_client(&ClientKey::ClientId(l.client_id.as_bytes()))
                .map(|f| f.0),
            Some(Slot(i))
        );
    }
    let l = active_with_id(99, 255, NOW);
    assert_eq!(
        t.update(Slot(50), 0, &l),
        Err(UpdateError::ClientIdAreaFull)
    );
    assert_eq!(
        t.read(Slot(50)),
        (0, free()),
        "a refused update changes nothing"
    );
    // Slot 0 released: its block is only in the old half, and the disk may still need it
    // until a msync that started after the release completes.
    t.update(Slot(0), 1, &free()).unwrap();
    assert_eq!(
        t.update(Slot(50), 0, &l),
        Err(UpdateError::ClientIdAreaFull)
    );
    t.update(Slot(0), 2, &active(0, NOW)).unwrap();
    assert_eq!(
        t.update(Slot(50), 0, &l),
        Err(UpdateError::ClientIdAreaFull)
    );
    store.checkpoint().unwrap();
    assert_eq!(t.update(Slot(50), 0, &l), Ok(1));
    assert_eq!(t.read(Slot(50)), (1, l));
    assert_eq!(
        t.update(Slot(52), 0, &l),
        Err(UpdateError::ClientIdAreaFull)
    );
    // Short ids stay inline and need no block.
    assert_eq!(t.update(Slot(51), 0, &active_with_id(51, 64, NOW)), Ok(1));
}

/// Found by the `store_recovery` fuzz target: on open, the overflow block owners were rebuilt
/// from every image without checking it, so a slot's stale old image naming a block another
/// (lower) slot now uses took the block over as "released", and the next long client id
/// overwrote the other slot's: its binding was lost (ABANDONED, then FREE after a restart).
/// Only an image whose block holds that very image's client id claims the block.
#[test]
fn a_stale_image_does_not_take_over_a_block_in_use_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let long = |i: u32| active_with_id(i, 200, NOW);
    {
        let (store, j, _) = open(dir.path());
        let t = store.table(TableId(0));
        // Every block (16) in use by slots 110..126.
        for s in 110..126 {
            assert_eq!(t.update(Slot(s), 0, &long(s)), Ok(1));
        }
        // Slot 110 moves to an inline id: its old image still names its block.
        t.update(Slot(110), 1, &active(110, NOW)).unwrap();
        store.checkpoint().unwrap();
        // That block goes to slot 5, the only one free.
        assert_eq!(t.update(Slot(5), 0, &long(5)), Ok(1));
        store.close(j).unwrap();
    }
    let (store, j, _) = open(dir.path());
    let t = store.table(TableId(0));
    assert_eq!(t.read(Slot(5)), (1, long(5)));
    // No block is free: slot 110's old image must not have handed slot 5's over.
    assert_eq!(
        t.update(Slot(110), 2, &long(110)),
        Err(UpdateError::ClientIdAreaFull)
    );
    assert_eq!(t.read(Slot(5)), (1, long(5)));
    store.close(j).unwrap();
    let (store, _j, _) = open(dir.path());
    assert_eq!(store.table(TableId(0)).read(Slot(5)), (1, long(5)));
}

/// Found by the `store_recovery` fuzz target: an image whose CRC holds with a version past
/// what a slot's version word holds (`version << 1`) won recovery as the newest, its version
/// shifted out to 0, and the slot's lease was lost after a restart. Such an image is invalid.
#[test]
fn an_image_version_past_the_version_word_is_invalid() {
    use lease_mmap::record::disk;
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let lease = active(3, NOW);
    {
        let (store, j, _) = open(dir.path());
        assert_eq!(store.table(TableId(0)).update(Slot(3), 0, &lease), Ok(1));
        store.close(j).unwrap();
    }
    // Slot 3's other half (A, even versions): a FREE image of version 2^63.
    let img = disk::to_bytes(&disk::encode_image(1 << 63, &free(), None));
    let path = dir
        .path()
        .join(lease_mmap::store::table_file_name(&small_spec()));
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&img, RECORDS_AT + 3 * SLOT_LEN + IMAGE_A)
        .unwrap();
    drop(f);
    for _ in 0..2 {
        let (store, j, _) = open(dir.path());
        assert_eq!(store.table(TableId(0)).read(Slot(3)), (1, lease));
        store.close(j).unwrap();
    }
}

#[test]
fn allocate_takes_only_free_allocatable_slots() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _j, _) = open(dir.path());
    let t = store.table(TableId(0));
    let mut cursor = AllocCursor::new(0, 1);
    let free_only = lease_mmap::free_only;
    // The caller decides for FREE records too: a failover secondary may not take the
    // primary's FREE addresses, and a predicate that refuses everything gets nothing.
    let refuse = |_: UnixTime, _: &lease_mmap::Lease| false;
    assert_eq!(
        t.allocate(&mut cursor, UnixTime(NOW), &active(0, NOW), &refuse),
        None
    );
    let mut got = std::collections::BTreeSet::new();
    for i in 0..(81 + 51) {
        let (s, v) = t
            .allocate(&mut cursor, UnixTime(NOW), &active(i, NOW), &free_only)
            .expect("room left");
        assert_eq!(v, 1);
        assert!(t.is_allocatable(s), "{s:?}");
        assert!(got.insert(s));
    }
    assert_eq!(
        t.allocate(&mut cursor, UnixTime(NOW), &active(999, NOW), &free_only),
        None
    );
    assert_eq!(t.counts()[BindingState::Active as usize], 132);
    // Expired leases become reusable through the caller's predicate.
    let (v, mut l) = t.read(Slot(10));
    l.state = BindingState::Expired;
    t.update(Slot(10), v, &l).unwrap();
    let expired = |_: UnixTime, l: &lease_mmap::Lease| {
        matches!(l.state, BindingState::Expired | BindingState::Free)
    };
    let got = t.allocate(&mut cursor, UnixTime(NOW), &active(1000, NOW), &expired);
    assert_eq!(got, Some((Slot(10), 3)));
    assert_eq!(t.read(Slot(10)).1, active(1000, NOW));
    // A cursor of another worker steals when its own chunk (there is only one) is empty.
    let mut other = AllocCursor::new(1, 2);
    t.update(Slot(20), 1, &free()).unwrap();
    assert_eq!(
        t.allocate(&mut other, UnixTime(NOW), &active(1001, NOW), &free_only),
        Some((Slot(20), 3))
    );
    assert_eq!(AllocCursor::default().worker(), (0, 1));
}

#[test]
fn journal_record_pending_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut journals, _) = open(dir.path());
    let t = store.table(TableId(0));
    let j = &mut journals[0];
    assert_eq!(j.pending(), 0);
    j.commit().unwrap(); // empty commit: nothing to do
    let l = active(1, NOW);
    let v = t.update(Slot(1), 0, &l).unwrap();
    j.record(t.id(), Slot(1), v, &l);
    j.record(t.id(), Slot(1), v, &l);
    assert_eq!(j.pending(), 2);
    let before = j.file_len();
    j.commit().unwrap();
    assert_eq!(j.pending(), 0);
    assert_eq!(j.file_len(), before + 2 * 512);
}

#[test]
fn sync_failure_poisons_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimBackend::new();
    let (store, mut journals, _) = Store::open_with(
        dir.path(),
        &[small_spec()],
        1,
        Durability::Sync,
        Arc::new(sim.clone()),
    )
    .unwrap();
    let t = store.table(TableId(0));
    let l = active(1, NOW);
    let v = t.update(Slot(1), 0, &l).unwrap();
    journals[0].record(t.id(), Slot(1), v, &l);
    journals[0].commit().unwrap();
    assert!(!journals[0].is_poisoned());
    sim.fail_sync_after(0);
    journals[0].record(t.id(), Slot(2), 1, &l);
    assert!(matches!(journals[0].commit(), Err(CommitError::Sync(_))));
    assert!(journals[0].is_poisoned());
    sim.heal();
    // No retry after fsyncgate, even once the disk "recovers".
    journals[0].record(t.id(), Slot(3), 1, &l);
    assert!(matches!(journals[0].commit(), Err(CommitError::Poisoned)));
}

#[test]
fn write_failure_poisons_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimBackend::new();
    let (store, mut journals, _) = Store::open_with(
        dir.path(),
        &[small_spec()],
        1,
        Durability::Sync,
        Arc::new(sim.clone()),
    )
    .unwrap();
    let t = store.table(TableId(0));
    sim.fail_write_after(0);
    journals[0].record(t.id(), Slot(2), 1, &active(1, NOW));
    assert!(matches!(journals[0].commit(), Err(CommitError::Write(_))));
    assert!(matches!(journals[0].commit(), Err(CommitError::Poisoned)));
}

#[test]
fn close_then_open_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut journals, _) = open(dir.path());
    let t = store.table(TableId(1));
    let l = active(5, NOW);
    let v = t.update(Slot(77), 0, &l).unwrap();
    journals[1].record(t.id(), Slot(77), v, &l);
    store.close(journals).unwrap();
    let (store, _j, report) = open(dir.path());
    assert!(report.clean);
    assert_eq!(report.replayed, 0, "a clean close checkpointed everything");
    assert_eq!(store.table(TableId(1)).read(Slot(77)), (1, l));
    drop(store);
    let (_s, _j, report) = open(dir.path());
    assert!(!report.clean, "not closed this time");
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, _j, _) = open(dir.path());
    match Store::open(dir.path(), &[small_spec()], 1, Durability::Sync) {
        Err(OpenError::Io { path, source }) => {
            assert!(path.ends_with("LOCK"));
            assert_eq!(source.kind(), std::io::ErrorKind::WouldBlock);
        }
        other => panic!("expected a lock error, got {other:?}"),
    }
}

#[test]
fn changed_spec_is_refused_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let mut changed = small_spec();
    changed.last = ip("10.0.0.220");
    changed.allocatable = vec![(ip("10.0.0.20"), ip("10.0.0.220"))];
    let err = Store::open(dir.path(), &[changed], 1, Durability::Sync).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, OpenError::Spec { .. }), "{err:?}");
    assert!(
        msg.contains("10.0.0.0_24.tdt") && msg.contains("resizing"),
        "{msg}"
    );
    // Changed exclusions are fine: the spec is authoritative for the allocatable ranges.
    let mut fewer = small_spec();
    fewer.allocatable = vec![(ip("10.0.0.30"), ip("10.0.0.40"))];
    let (store, _j, _) = Store::open(dir.path(), &[fewer], 1, Durability::Sync).unwrap();
    assert!(!store.table(TableId(0)).is_allocatable(Slot(10)));
    assert!(store.table(TableId(0)).is_allocatable(Slot(20)));
}

#[test]
fn invalid_specs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut bad = small_spec();
    bad.allocatable = vec![
        (ip("10.0.0.50"), ip("10.0.0.60")),
        (ip("10.0.0.55"), ip("10.0.0.70")),
    ];
    assert!(matches!(
        Store::open(dir.path(), &[bad], 1, Durability::Sync),
        Err(OpenError::Spec { .. })
    ));
    let mut bad = small_spec();
    bad.first = ip("10.0.1.0");
    assert!(matches!(
        Store::open(dir.path(), &[bad], 1, Durability::Sync),
        Err(OpenError::Spec { .. })
    ));
    let mut bad = small_spec();
    bad.allocatable = vec![(ip("10.0.0.5"), ip("10.0.0.60"))];
    assert!(matches!(
        Store::open(dir.path(), &[bad], 1, Durability::Sync),
        Err(OpenError::Spec { .. })
    ));
    let huge = lease_mmap::TableSpec {
        network: ip("0.0.0.0"),
        prefix_len: 0,
        first: ip("0.0.0.0"),
        last: ip("255.255.255.255"),
        allocatable: vec![],
    };
    assert!(matches!(
        Store::open(dir.path(), &[huge], 1, Durability::Sync),
        Err(OpenError::Spec { .. })
    ));
    assert!(matches!(
        Store::open(
            dir.path(),
            &[small_spec(), small_spec()],
            1,
            Durability::Sync
        ),
        Err(OpenError::Spec { .. })
    ));
}

#[test]
fn damaged_header_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    scribble(&dir.path().join("10.0.0.0_24.tdt"), 40, 4, 0xee);
    let err = Store::open(dir.path(), &[small_spec()], 1, Durability::Sync).unwrap_err();
    assert!(matches!(err, OpenError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("checksum"), "{err}");
}

#[test]
fn churn_of_released_clients_keeps_the_index_usable() {
    // Thousands of clients come and go through a 191-record table (index of 512 cells):
    // stale entries are reclaimed, inserts never fail, lookups stay correct.
    let dir = tempfile::tempdir().unwrap();
    let (store, _j, _) = open(dir.path());
    let t = store.table(TableId(0));
    let mut cursor = AllocCursor::new(0, 1);
    let free_only = lease_mmap::free_only;
    for i in 0..20_000u32 {
        let (s, v) = t
            .allocate(&mut cursor, UnixTime(NOW), &active(i, NOW), &free_only)
            .expect("index full?");
        t.update(s, v, &free()).unwrap();
    }
    let mut bound = Vec::new();
    for i in 0..132u32 {
        let c = 100_000 + i;
        bound.push((
            c,
            t.allocate(&mut cursor, UnixTime(NOW), &active(c, NOW), &free_only)
                .unwrap()
                .0,
        ));
    }
    for (c, s) in bound {
        let m = mac(c);
        assert_eq!(
            t.find_client(&ClientKey::HwAddr {
                htype: 1,
                chaddr: &m[..6]
            })
            .map(|f| f.0),
            Some(s)
        );
    }
    let m = mac(5);
    assert_eq!(
        t.find_client(&ClientKey::HwAddr {
            htype: 1,
            chaddr: &m[..6]
        }),
        None
    );
}

#[test]
fn abandoned_count_follows_updates_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let abandoned = |ends: u32| lease_mmap::Lease {
        state: BindingState::Abandoned,
        ends: UnixTime(ends),
        ..free()
    };
    {
        let (store, mut journals, _) = open(dir.path());
        let t = store.table(TableId(0));
        assert_eq!(t.abandoned(), 0);
        // Every way in and out: update, a second abandonment of the same record, update
        // back to FREE, allocate over an ABANDONED record.
        let v3 = t.update(Slot(3), 0, &abandoned(NOW)).unwrap();
        let v4 = t.update(Slot(4), 0, &abandoned(NOW)).unwrap();
        assert_eq!(t.abandoned(), 2);
        let v3 = t.update(Slot(3), v3, &abandoned(NOW + 60)).unwrap();
        assert_eq!(
            t.abandoned(),
            2,
            "abandoning an ABANDONED record again is no new one"
        );
        t.update(Slot(3), v3, &free()).unwrap();
        assert_eq!(t.abandoned(), 1);
        let only_abandoned =
            |_: UnixTime, l: &lease_mmap::Lease| l.state == BindingState::Abandoned;
        t.update(Slot(20), 0, &abandoned(NOW)).unwrap();
        assert_eq!(t.abandoned(), 2);
        let (s, _) = t
            .allocate(
                &mut AllocCursor::new(0, 1),
                UnixTime(NOW),
                &active(1, NOW),
                &only_abandoned,
            )
            .unwrap();
        assert_eq!(s, Slot(20), "slot 4 is not allocatable");
        assert_eq!(t.abandoned(), 1);

        // The cap: refused with nothing written, and only for a record that would become
        // ABANDONED.
        assert_eq!(
            t.update_capped(Slot(5), 0, &abandoned(NOW), 1),
            Err(UpdateError::AbandonedCap(1))
        );
        assert_eq!(t.read(Slot(5)), (0, free()));
        assert_eq!(t.abandoned(), 1);
        let v4 = t
            .update_capped(Slot(4), v4, &abandoned(NOW + 5), 1)
            .unwrap();
        t.update_capped(Slot(6), 0, &active(6, NOW), 0).unwrap();
        assert_eq!(t.update_capped(Slot(5), 0, &abandoned(NOW), 2), Ok(1));
        assert_eq!(t.abandoned(), 2);
        assert_eq!(t.counts()[BindingState::Abandoned as usize], 2);

        // One more, only in the journal when the process dies (no checkpoint, no close).
        let v7 = t.update(Slot(7), 0, &abandoned(NOW)).unwrap();
        journals[0].record(t.id(), Slot(7), v7, &abandoned(NOW));
        journals[0].record(t.id(), Slot(4), v4, &abandoned(NOW + 5));
        journals[0].commit().unwrap();
        assert_eq!(t.abandoned(), 3);
        assert_eq!(store.table(TableId(1)).abandoned(), 0);
    }
    // Reopen: the table file holds what the mapping held (the kernel's page cache), and
    // recovery replays the journal; the count comes from the records either way.
    let (store, journals, _) = open(dir.path());
    let t = store.table(TableId(0));
    assert_eq!(t.abandoned(), 3);
    assert_eq!(t.counts()[BindingState::Abandoned as usize], 3);
    let (v, _) = t.read(Slot(7));
    t.update(Slot(7), v, &free()).unwrap();
    assert_eq!(t.abandoned(), 2);
    store.close(journals).unwrap();
    let (store, _j, report) = open(dir.path());
    assert!(report.clean);
    assert_eq!(store.table(TableId(0)).abandoned(), 2);
}

/// The expiry index: once started, a table offers exactly its ACTIVE leases that ended, each
/// once, in order of their end, without a walk; a renewed or released lease is not offered;
/// leases written before it started are found by its one walk; an unsettled one comes back.
#[test]
fn the_expiry_index_offers_each_lease_that_ran_out_once() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _j, _) = open(dir.path());
    let t = store.table_by_network(ip("10.1.0.0"), 20).unwrap();
    let write = |slot: u32, l: &Lease| {
        let (v, _) = t.read(Slot(slot));
        t.update(Slot(slot), v, l).unwrap();
    };
    let ending = |i: u32, ends: u32| Lease {
        ends: UnixTime(ends),
        ..active(i, NOW)
    };
    let due = |now: u32, settle: bool| {
        let mut seen = Vec::new();
        t.due(UnixTime(now), |slot, _, l| {
            assert_eq!(l.state, BindingState::Active);
            assert!(l.ends.0 <= now);
            seen.push(slot.0);
            settle
        });
        seen
    };
    // Before the index starts nothing is kept or offered.
    write(1, &ending(1, NOW + 10));
    assert_eq!(due(NOW + 100, true), Vec::<u32>::new());
    assert_eq!(t.expiry_entries(), 0);
    // Starting it walks once: slot 1 is entered.
    t.track_expiry();
    write(2, &ending(2, NOW + 30));
    write(3, &ending(3, NOW + 20));
    write(4, &ending(4, NOW + 40));
    // Slot 4 renewed: its first entry is stale. Slot 2 released.
    write(4, &ending(4, NOW + 90));
    write(
        2,
        &Lease {
            state: BindingState::Released,
            ..ending(2, NOW + 30)
        },
    );
    assert_eq!(due(NOW + 5, true), Vec::<u32>::new(), "nothing ended yet");
    // A consumer that cannot settle slot 3 sees it again next time.
    assert_eq!(due(NOW + 50, false), [1, 3]);
    assert_eq!(due(NOW + 50, true), [1, 3]);
    assert_eq!(due(NOW + 50, true), Vec::<u32>::new(), "each once");
    assert_eq!(due(NOW + 100, true), [4]);
    // A lease left ACTIVE after it was offered is offered again only after another write.
    write(1, &ending(1, NOW + 200));
    assert_eq!(due(NOW + 300, true), [1]);
    assert_eq!(t.expiry_entries(), 0);
}

/// A lease rewritten far more often than a table's worth of records does not grow the
/// expiry index without bound: the next sweep starts it over, and still finds what ran out.
#[test]
fn the_expiry_index_stays_bounded_under_a_flood_of_rewrites() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _j, _) = open(dir.path());
    let t = store.table_by_network(ip("10.0.0.0"), 24).unwrap();
    t.track_expiry();
    let mut l = active(1, NOW);
    for k in 0..20_000u32 {
        l.ends = UnixTime(NOW + 100 + k);
        let (v, _) = t.read(Slot(3));
        t.update(Slot(3), v, &l).unwrap();
    }
    let (v, _) = t.read(Slot(4));
    t.update(Slot(4), v, &active(2, NOW - 7200)).unwrap();
    assert!(t.expiry_entries() > 20_000);
    let mut seen = Vec::new();
    t.due(UnixTime(NOW), |slot, _, _| {
        seen.push(slot.0);
        true
    });
    assert_eq!(seen, [4]);
    assert!(t.expiry_entries() <= 2, "{}", t.expiry_entries());
}
