//! Many workers allocating from one table at once.

use std::collections::{HashMap, HashSet};

use lease_mmap::{AllocCursor, ClientKey, Durability, Slot, Store, TableId, UnixTime};

use crate::common::*;

#[test]
fn four_workers_exhaust_a_table_without_double_allocation() {
    const WORKERS: u16 = 4;
    let dir = tempfile::tempdir().unwrap();
    let (store, journals, _) =
        Store::open(dir.path(), &[big_spec()], WORKERS, Durability::Async).unwrap();
    let t = store.table(TableId(0));
    let results: Vec<Vec<(u32, Slot, u64)>> = std::thread::scope(|sc| {
        let handles: Vec<_> = journals
            .into_iter()
            .map(|mut j| {
                let t = &t;
                sc.spawn(move || {
                    let w = j.worker();
                    let mut cursor = AllocCursor::new(w, WORKERS);
                    let free_only = lease_mmap::free_only;
                    let mut got = Vec::new();
                    // Distinct clients per worker: w, w + 4, w + 8, ...
                    let mut client = u32::from(w);
                    while let Some((s, v)) =
                        t.allocate(&mut cursor, UnixTime(1), &active(client, 1), &free_only)
                    {
                        j.record(t.id(), s, v, &active(client, 1));
                        if j.pending() >= 32 {
                            j.commit().unwrap();
                        }
                        got.push((client, s, v));
                        client += u32::from(WORKERS);
                    }
                    j.commit().unwrap();
                    got
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all: Vec<_> = results.into_iter().flatten().collect();
    assert_eq!(all.len(), 4095, "every allocatable address handed out");
    let mut slots = HashSet::new();
    let mut clients = HashMap::new();
    for (c, s, v) in &all {
        assert!(slots.insert(*s), "slot {s:?} claimed twice");
        assert!(
            clients.insert(*c, *s).is_none(),
            "client {c} got two addresses"
        );
        assert_eq!(*v, 1);
        assert_eq!(
            t.read(*s).1,
            active(*c, 1),
            "slot {s:?} holds its winner's lease"
        );
    }
    assert!(
        !slots.contains(&Slot(0)),
        "the network address is not allocatable"
    );
    for (c, s) in clients.iter().take(200) {
        let m = mac(*c);
        assert_eq!(
            t.find_client(&ClientKey::HwAddr {
                htype: 1,
                chaddr: &m[..6]
            })
            .map(|f| f.0),
            Some(*s)
        );
    }
}

#[test]
fn racing_updates_of_one_slot_have_one_winner_per_version() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _j, _) = Store::open(dir.path(), &[small_spec()], 1, Durability::Async).unwrap();
    let t = store.table(TableId(0));
    let wins: Vec<u64> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4u32)
            .map(|w| {
                sc.spawn(move || {
                    let mut wins = 0;
                    for i in 0..2000u32 {
                        let (v, _) = t.read(Slot(7));
                        if t.update(Slot(7), v, &active(w * 10_000 + i, 1)).is_ok() {
                            wins += 1;
                        }
                        // Readers never see a mix of two clients' fields. A CAS lost to a
                        // writer that has claimed version 0 but not yet published it leaves
                        // the initial FREE record in view, which is no mix.
                        let (seen, l) = t.read(Slot(7));
                        if seen == 0 {
                            assert_eq!(l, free());
                            continue;
                        }
                        assert_eq!(
                            l.chaddr,
                            mac(u32::from_be_bytes([
                                l.chaddr[2],
                                l.chaddr[3],
                                l.chaddr[4],
                                l.chaddr[5]
                            ]))
                        );
                        assert_eq!(l.ends.0, l.cltt.0 + 3600);
                    }
                    wins
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let total: u64 = wins.iter().sum();
    assert_eq!(
        t.read(Slot(7)).0,
        total,
        "every successful CAS advanced the version by one"
    );
}
