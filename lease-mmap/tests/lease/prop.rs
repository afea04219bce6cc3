//! Random operation sequences and crash points: every committed lease survives.

use std::collections::HashMap;
use std::sync::Arc;

use lease_mmap::storage::SimBackend;
use lease_mmap::{
    AllocCursor, BindingState, Durability, Lease, Slot, Store, TableId, UnixTime, UpdateError,
};
use proptest::prelude::*;

use crate::common::*;

#[derive(Clone, Debug)]
enum Op {
    Bind(u8),
    Renew(u8),
    Release(u8),
    Commit,
    Checkpoint,
    /// Every later fdatasync fails with EIO.
    FailSync,
}

#[derive(Clone, Debug)]
enum Crash {
    /// `kill -9`: the page cache keeps the mapped tables and every written journal byte.
    Kill,
    /// Power loss: journals keep what was synced, tables what the last checkpoint msync'ed.
    PowerLoss,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..40).prop_map(Op::Bind),
        3 => (0u8..40).prop_map(Op::Renew),
        2 => (0u8..40).prop_map(Op::Release),
        4 => Just(Op::Commit),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::FailSync),
    ]
}

fn crash() -> impl Strategy<Value = Crash> {
    prop_oneof![Just(Crash::Kill), Just(Crash::PowerLoss)]
}

const NOW: u32 = 1_700_000_000;

fn run(ops: &[Op], crash: &Crash) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let table_file = dir.path().join("10.0.0.0_24.tdt");
    let sim = SimBackend::new();
    let open = || {
        Store::open_with(
            dir.path(),
            &[small_spec()],
            1,
            Durability::Sync,
            Arc::new(sim.clone()),
        )
        .unwrap()
    };
    let (store, mut journals, _) = open();
    let mut j = journals.pop().unwrap();
    j.set_reset_threshold(2048);
    let t = store.table(TableId(0));
    let mut snapshot = std::fs::read(&table_file).unwrap();
    let mut cursor = AllocCursor::new(0, 1);
    let mut pending: Vec<(Slot, u64, Lease)> = Vec::new();
    let mut committed: HashMap<Slot, (u64, Lease)> = HashMap::new();
    let mut bound: HashMap<u8, Slot> = HashMap::new();
    let free_only = lease_mmap::free_only;
    for (n, op) in ops.iter().enumerate() {
        let n = n as u32;
        match op {
            Op::Bind(c) if !bound.contains_key(c) => {
                // Every fourth client has a long client id (overflow blocks, 16 of them).
                let l = if c % 4 == 0 {
                    active_with_id(u32::from(*c), 100, NOW + n)
                } else {
                    active(u32::from(*c), NOW + n)
                };
                let Some((s, v)) = t.allocate(&mut cursor, UnixTime(NOW), &l, &free_only) else {
                    continue; // out of overflow blocks until the next checkpoint
                };
                j.record(t.id(), s, v, &l);
                pending.push((s, v, l));
                bound.insert(*c, s);
            }
            Op::Renew(c) | Op::Release(c) if bound.contains_key(c) => {
                let s = bound[c];
                let (v, cur) = t.read(s);
                let release = matches!(op, Op::Release(_));
                let l = if release {
                    Lease {
                        state: BindingState::Free,
                        ..Lease::default()
                    }
                } else {
                    Lease {
                        ends: UnixTime(cur.ends.0 + 60),
                        cltt: UnixTime(NOW + n),
                        ..cur
                    }
                };
                let nv = match t.update(s, v, &l) {
                    Ok(nv) => nv,
                    Err(UpdateError::ClientIdAreaFull) => continue,
                    Err(e) => panic!("{e}"),
                };
                if release {
                    bound.remove(c);
                }
                j.record(t.id(), s, nv, &l);
                pending.push((s, nv, l));
            }
            Op::Commit => match j.commit() {
                Ok(()) => {
                    for (s, v, l) in pending.drain(..) {
                        committed.insert(s, (v, l));
                    }
                }
                Err(_) => pending.clear(),
            },
            Op::Checkpoint => {
                store.checkpoint().unwrap();
                snapshot = std::fs::read(&table_file).unwrap();
            }
            Op::FailSync => sim.fail_sync_after(0),
            _ => {}
        }
    }
    drop((j, store));
    sim.heal();
    if let Crash::PowerLoss = crash {
        sim.power_loss(0);
        std::fs::write(&table_file, &snapshot).unwrap();
    }
    let (store, mut journals, _) = open();
    let t = store.table(TableId(0));
    for (s, (cv, cl)) in &committed {
        let (v, l) = t.read(*s);
        prop_assert!(v >= *cv, "slot {s:?} went back from version {cv} to {v}");
        if v == *cv {
            prop_assert_eq!(&l, cl, "slot {:?} at version {}", s, v);
        }
    }
    // The recovered store keeps working.
    let l = active(999, NOW);
    let (s, v) = t
        .allocate(&mut AllocCursor::new(0, 1), UnixTime(NOW), &l, &free_only)
        .unwrap();
    journals[0].record(t.id(), s, v, &l);
    journals[0].commit().unwrap();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_committed_lease_survives_a_crash(ops in prop::collection::vec(op(), 1..80), crash in crash()) {
        run(&ops, &crash)?;
    }
}
