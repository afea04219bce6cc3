//! Crashes: `kill -9` (drop everything, no checkpoint, no close), power loss through the
//! simulated journal backend (lost unsynced writes, torn tails), damaged records.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lease_mmap::storage::SimBackend;
use lease_mmap::{
    AllocCursor, Durability, Lease, OpenError, RecoveryReport, Slot, Store, TableId, UnixTime,
    WorkerJournal,
};

use crate::common::*;

const NOW: u32 = 1_700_000_000;
const NEVER: &dyn Fn(UnixTime, &Lease) -> bool = &lease_mmap::free_only;

fn table_path(dir: &Path) -> PathBuf {
    dir.join("10.1.0.0_20.tdt")
}

/// Allocate `n` leases for clients `base..base+n` in table 0, committing every 10.
fn allocate_committed(
    store: &Store,
    j: &mut WorkerJournal,
    base: u32,
    n: u32,
) -> Vec<(Slot, u64, Lease)> {
    let t = store.table(TableId(0));
    let mut cursor = AllocCursor::new(j.worker(), 1);
    let mut out = Vec::new();
    for i in base..base + n {
        let l = active(i, NOW);
        let (s, v) = t.allocate(&mut cursor, UnixTime(NOW), &l, NEVER).unwrap();
        j.record(t.id(), s, v, &l);
        out.push((s, v, l));
        if out.len() % 10 == 0 {
            j.commit().unwrap();
        }
    }
    j.commit().unwrap();
    out
}

fn assert_present(store: &Store, leases: &[(Slot, u64, Lease)]) {
    let t = store.table(TableId(0));
    for (s, v, l) in leases {
        assert_eq!(t.read(*s), (*v, *l), "slot {s:?}");
    }
}

#[test]
fn kill_9_then_reopen_keeps_every_committed_lease() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut j, _) = Store::open(dir.path(), &[big_spec()], 1, Durability::Sync).unwrap();
    let leases = allocate_committed(&store, &mut j[0], 0, 100);
    drop(j);
    drop(store); // no checkpoint, no close
    let (store, _j, report) = Store::open(dir.path(), &[big_spec()], 1, Durability::Sync).unwrap();
    assert!(!report.clean);
    assert_eq!(report.torn_tails, 0);
    assert_present(&store, &leases);
}

#[test]
fn table_never_written_back_is_rebuilt_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut j, _) = Store::open(dir.path(), &[big_spec()], 1, Durability::Sync).unwrap();
    let pristine = std::fs::read(table_path(dir.path())).unwrap();
    let leases = allocate_committed(&store, &mut j[0], 0, 100);
    drop((j, store));
    // Power loss before any writeback of the mapping: the file is as it was at open.
    std::fs::write(table_path(dir.path()), &pristine).unwrap();
    let (store, _j, report) = Store::open(dir.path(), &[big_spec()], 1, Durability::Sync).unwrap();
    assert_eq!(
        report,
        RecoveryReport {
            replayed: 100,
            torn_tails: 0,
            clean: false,
            ..Default::default()
        }
    );
    assert_present(&store, &leases);
    // The index was rebuilt too.
    let m = mac(42);
    let found = store
        .table(TableId(0))
        .find_client(&lease_mmap::ClientKey::HwAddr {
            htype: 1,
            chaddr: &m[..6],
        });
    assert_eq!(found.map(|f| f.0), Some(leases[42].0));
}

fn sim_open(
    dir: &Path,
    sim: &SimBackend,
    d: Durability,
) -> (Store, Vec<WorkerJournal>, RecoveryReport) {
    Store::open_with(dir, &[big_spec()], 1, d, Arc::new(sim.clone())).unwrap()
}

#[test]
fn lost_unsynced_writes_lose_only_what_was_never_committed() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimBackend::new();
    let (store, mut j, _) = sim_open(dir.path(), &sim, Durability::Sync);
    let pristine = std::fs::read(table_path(dir.path())).unwrap();
    let committed = allocate_committed(&store, &mut j[0], 0, 20);
    // Recorded but never committed: may vanish.
    let t = store.table(TableId(0));
    let l = active(500, NOW);
    let (s, v) = t
        .allocate(&mut AllocCursor::new(0, 1), UnixTime(NOW), &l, NEVER)
        .unwrap();
    j[0].record(t.id(), s, v, &l);
    drop((j, store));
    sim.power_loss(0);
    std::fs::write(table_path(dir.path()), &pristine).unwrap();
    let (store, _j, report) = sim_open(dir.path(), &sim, Durability::Sync);
    assert_eq!(report.replayed, 20);
    assert_present(&store, &committed);
    assert_eq!(store.table(TableId(0)).read(s), (0, free()));
}

#[test]
fn async_commits_do_not_survive_power_loss() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimBackend::new();
    let (store, mut j, _) = sim_open(dir.path(), &sim, Durability::Async);
    let pristine = std::fs::read(table_path(dir.path())).unwrap();
    allocate_committed(&store, &mut j[0], 0, 20);
    drop((j, store));
    sim.power_loss(0);
    std::fs::write(table_path(dir.path()), &pristine).unwrap();
    let (store, _j, report) = sim_open(dir.path(), &sim, Durability::Sync);
    assert_eq!(
        report,
        RecoveryReport {
            replayed: 0,
            torn_tails: 0,
            clean: false,
            ..Default::default()
        }
    );
    assert_eq!(store.table(TableId(0)).counts()[0], 4096);
}

#[test]
fn torn_tail_is_cut_at_the_first_bad_entry() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimBackend::new();
    let (store, mut j, _) = sim_open(dir.path(), &sim, Durability::Async);
    let pristine = std::fs::read(table_path(dir.path())).unwrap();
    let leases = allocate_committed(&store, &mut j[0], 0, 3);
    drop((j, store));
    // Entry 1 and 100 bytes of entry 2 reached the disk.
    sim.power_loss(512 + 100);
    std::fs::write(table_path(dir.path()), &pristine).unwrap();
    let (store, _j, report) = sim_open(dir.path(), &sim, Durability::Sync);
    assert_eq!(
        report,
        RecoveryReport {
            replayed: 1,
            torn_tails: 1,
            clean: false,
            ..Default::default()
        }
    );
    assert_present(&store, &leases[..1]);
    assert_eq!(store.table(TableId(0)).read(leases[1].0).0, 0);
}

#[test]
fn stale_entry_with_an_old_lsn_ends_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimBackend::new();
    let (store, mut j, _) = sim_open(dir.path(), &sim, Durability::Sync);
    let pristine = std::fs::read(table_path(dir.path())).unwrap();
    let leases = allocate_committed(&store, &mut j[0], 0, 2);
    drop((j, store));
    // A valid entry from an earlier life of the file (LSN 1 again) after LSN 2: not ours.
    let mut f = sim.file(dir.path(), 0).unwrap().live;
    let first = f[512..1024].to_vec();
    f.extend_from_slice(&first);
    sim.set_file(dir.path(), 0, f);
    std::fs::write(table_path(dir.path()), &pristine).unwrap();
    let (store, _j, report) = sim_open(dir.path(), &sim, Durability::Sync);
    assert_eq!(
        report,
        RecoveryReport {
            replayed: 2,
            torn_tails: 1,
            clean: false,
            ..Default::default()
        }
    );
    assert_present(&store, &leases);
}

#[test]
fn journal_starts_over_after_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut j, _) = Store::open(dir.path(), &[big_spec()], 1, Durability::Sync).unwrap();
    j[0].set_reset_threshold(4096);
    let mut leases = allocate_committed(&store, &mut j[0], 0, 10);
    assert_eq!(j[0].file_len(), 512 + 10 * 512);
    store.checkpoint().unwrap();
    let after_checkpoint = std::fs::read(table_path(dir.path())).unwrap();
    leases.extend(allocate_committed(&store, &mut j[0], 10, 1));
    assert_eq!(j[0].file_len(), 1024, "reset to header + the new batch");
    drop((j, store));
    // Power loss right after the checkpoint's msync: the table is as it was then.
    std::fs::write(table_path(dir.path()), &after_checkpoint).unwrap();
    let (store, _j, report) = Store::open(dir.path(), &[big_spec()], 1, Durability::Sync).unwrap();
    assert_eq!(report.replayed, 1);
    assert_present(&store, &leases);
}

#[test]
fn fewer_workers_after_restart_still_replays_every_journal() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut j, _) = Store::open(dir.path(), &[big_spec()], 2, Durability::Sync).unwrap();
    let pristine = std::fs::read(table_path(dir.path())).unwrap();
    let leases = allocate_committed(&store, &mut j[1], 0, 15);
    drop((j, store));
    std::fs::write(table_path(dir.path()), &pristine).unwrap();
    let (store, j, report) = Store::open(dir.path(), &[big_spec()], 1, Durability::Sync).unwrap();
    assert_eq!((report.replayed, j.len()), (15, 1));
    assert_present(&store, &leases);
    assert!(!dir.path().join("journal-00001.tdj").exists());
}

fn slot_at(slot: u32, image: u64) -> u64 {
    RECORDS_AT + u64::from(slot) * SLOT_LEN + image
}

#[test]
fn a_torn_newest_image_falls_back_to_the_other_copy() {
    let dir = tempfile::tempdir().unwrap();
    let (store, j, _) = Store::open(dir.path(), &[big_spec()], 1, Durability::Sync).unwrap();
    let t = store.table(TableId(0));
    let (l1, l2) = (active(1, NOW), active(2, NOW));
    t.update(Slot(5), 0, &l1).unwrap(); // v1 → image B
    t.update(Slot(5), 1, &l2).unwrap(); // v2 → image A
    store.close(j).unwrap();
    scribble(&table_path(dir.path()), slot_at(5, IMAGE_A) + 30, 8, 0x5a);
    let (store, j, _) = Store::open(dir.path(), &[big_spec()], 1, Durability::Sync).unwrap();
    assert_eq!(store.table(TableId(0)).read(Slot(5)), (1, l1));
    // The next update writes the damaged half (image A, v2 again) and all is well.
    assert_eq!(store.table(TableId(0)).update(Slot(5), 1, &l2), Ok(2));
    store.close(j).unwrap();
    // Damage to the older copy does not matter at all.
    scribble(&table_path(dir.path()), slot_at(5, IMAGE_B) + 30, 8, 0x5a);
    let (store, _j, _) = Store::open(dir.path(), &[big_spec()], 1, Durability::Sync).unwrap();
    assert_eq!(store.table(TableId(0)).read(Slot(5)), (2, l2));
}

#[test]
fn both_images_damaged_recovers_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut j, _) = Store::open(dir.path(), &[big_spec()], 1, Durability::Sync).unwrap();
    let leases = allocate_committed(&store, &mut j[0], 0, 2);
    let s = leases[0].0.0;
    drop((j, store));
    scribble(&table_path(dir.path()), slot_at(s, 0), 256, 0x77);
    let (store, _j, report) = Store::open(dir.path(), &[big_spec()], 1, Durability::Sync).unwrap();
    assert!(report.replayed >= 1);
    assert_present(&store, &leases);
}

#[test]
fn both_images_damaged_and_no_journal_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut j, _) = Store::open(dir.path(), &[big_spec()], 1, Durability::Sync).unwrap();
    let leases = allocate_committed(&store, &mut j[0], 0, 2);
    store.close(j).unwrap(); // checkpointed: the journal is started over on the next open
    let (store, j, _) = Store::open(dir.path(), &[big_spec()], 1, Durability::Sync).unwrap();
    store.close(j).unwrap();
    let s = leases[1].0.0;
    scribble(&table_path(dir.path()), slot_at(s, 0), 256, 0x77);
    let err = Store::open(dir.path(), &[big_spec()], 1, Durability::Sync).unwrap_err();
    assert!(matches!(err, OpenError::Corrupt { .. }), "{err:?}");
    let msg = err.to_string();
    let addr = std::net::Ipv4Addr::from(u32::from(ip("10.1.0.0")) + s).to_string();
    assert!(
        msg.contains(&addr) && msg.contains("10.1.0.0_20.tdt"),
        "{msg}"
    );
}

/// Flips one bit inside entry `k` of worker 0's journal.
fn flip_entry(dir: &Path, k: u64) {
    use std::os::unix::fs::FileExt;
    let path = dir.join("journal-00000.tdj");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let at = 512 + 512 * k + 60;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x08], at).unwrap();
}

#[test]
fn a_bit_flip_inside_the_journal_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut j, _) = Store::open(dir.path(), &[big_spec()], 1, Durability::Sync).unwrap();
    let pristine = std::fs::read(table_path(dir.path())).unwrap();
    // Three commits of 10: LSNs 1-10, 11-20, 21-30.
    allocate_committed(&store, &mut j[0], 0, 30);
    drop((j, store));
    std::fs::write(table_path(dir.path()), &pristine).unwrap();
    flip_entry(dir.path(), 4); // LSN 5, in the first commit
    let err = Store::open(dir.path(), &[big_spec()], 1, Durability::Sync).unwrap_err();
    let OpenError::JournalDamaged { path, damage } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(path, &dir.path().join("journal-00000.tdj"));
    assert_eq!(
        *damage,
        lease_mmap::Damage {
            offset: 512 + 512 * 4,
            lsn: Some(5),
            damaged: 1,
            intact_after: 25,
            last_lsn: 30,
        }
    );
    let msg = err.to_string();
    for want in [
        "journal-00000.tdj",
        "byte 2560",
        "LSN 5",
        "25 intact",
        "not a torn tail",
    ] {
        assert!(msg.contains(want), "{want:?} missing from: {msg}");
    }
    // Refusing changed nothing: the same damage is found again.
    assert!(matches!(
        Store::open(dir.path(), &[big_spec()], 1, Durability::Sync),
        Err(OpenError::JournalDamaged { .. })
    ));
}

#[test]
fn repair_sets_the_damaged_journal_aside_and_keeps_every_intact_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut j, _) = Store::open(dir.path(), &[big_spec()], 2, Durability::Sync).unwrap();
    let pristine = std::fs::read(table_path(dir.path())).unwrap();
    let leases = allocate_committed(&store, &mut j[0], 0, 30);
    drop((j, store));
    std::fs::write(table_path(dir.path()), &pristine).unwrap();
    let damaged_bytes = {
        flip_entry(dir.path(), 4);
        std::fs::read(dir.path().join("journal-00000.tdj")).unwrap()
    };
    let report = Store::repair(dir.path(), &[big_spec()]).unwrap();
    assert_eq!(report.replayed, 29);
    assert_eq!(report.set_aside.len(), 1, "{report:?}");
    let aside = &report.set_aside[0];
    assert_eq!(aside.path, dir.path().join("journal-00000.tdj"));
    assert_eq!((aside.kept, aside.damage.offset), (29, 2560));
    let name = aside.moved_to.file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with("journal-00000.tdj.damaged-"), "{name}");
    // Set aside, never deleted: the damaged bytes are all there.
    assert_eq!(std::fs::read(&aside.moved_to).unwrap(), damaged_bytes);
    // The next open starts from the repaired tables: every entry but the damaged one,
    // with both workers' journals fresh.
    let (store, j, report) = Store::open(dir.path(), &[big_spec()], 2, Durability::Sync).unwrap();
    assert!(report.clean && report.set_aside.is_empty(), "{report:?}");
    assert_eq!(j.len(), 2);
    let kept: Vec<_> = leases
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 4)
        .map(|(_, l)| *l)
        .collect();
    assert_present(&store, &kept);
    assert_eq!(store.table(TableId(0)).read(leases[4].0).0, 0);
}

#[test]
fn journals_created_at_open_survive_a_power_loss() {
    // A created file is in its directory durably only after an fsync of the directory;
    // the simulated backend forgets files created since then at power loss.
    let dir = tempfile::tempdir().unwrap();
    let sim = SimBackend::new();
    let (store, mut j, _) = sim_open(dir.path(), &sim, Durability::Sync);
    let pristine = std::fs::read(table_path(dir.path())).unwrap();
    let committed = allocate_committed(&store, &mut j[0], 0, 5);
    drop((j, store));
    sim.power_loss(0);
    std::fs::write(table_path(dir.path()), &pristine).unwrap();
    let (store, _j, report) = sim_open(dir.path(), &sim, Durability::Sync);
    assert_eq!(report.replayed, 5);
    assert_present(&store, &committed);
}

fn relay_path(dir: &Path) -> PathBuf {
    dir.join("10.1.0.0_20.tdr")
}

/// Relay info `i`: circuit-id "port-i", remote-id 6 bytes.
fn relay(i: u32) -> lease_mmap::RelayInfo {
    let mut opt = vec![1, 0];
    opt.extend(format!("port-{i}").bytes());
    opt[1] = (opt.len() - 2) as u8;
    opt.extend([2, 6, 0, 0x5e, 0, 0, (i >> 8) as u8, i as u8]);
    lease_mmap::RelayInfo::new(&opt).unwrap()
}

/// Like `allocate_committed`, with relay info on every lease.
fn allocate_relayed(store: &Store, j: &mut WorkerJournal, n: u32) -> Vec<(Slot, u64, Lease)> {
    let t = store.table(TableId(0));
    let mut cursor = AllocCursor::new(j.worker(), 1);
    let mut out = Vec::new();
    for i in 0..n {
        let l = Lease {
            relay: relay(i),
            hostname: lease_mmap::Hostname::keep(format!("host-{i}").as_bytes(), &relay(i)),
            ..active(i, NOW)
        };
        let (s, v) = t.allocate(&mut cursor, UnixTime(NOW), &l, NEVER).unwrap();
        assert_eq!(t.read(s), (v, l));
        j.record(t.id(), s, v, &l);
        out.push((s, v, l));
    }
    j.commit().unwrap();
    out
}

#[test]
fn relay_info_survives_kill_9_and_a_power_loss_of_either_file() {
    for lost in ["none", "table", "relay", "both"] {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut j, _) =
            Store::open(dir.path(), &[big_spec()], 1, Durability::Sync).unwrap();
        let pristine_table = std::fs::read(table_path(dir.path())).unwrap();
        let pristine_relay = std::fs::read(relay_path(dir.path())).unwrap();
        let leases = allocate_relayed(&store, &mut j[0], 50);
        drop((j, store)); // kill -9: no checkpoint
        // A power loss before writeback loses whichever mapping it names.
        if matches!(lost, "table" | "both") {
            std::fs::write(table_path(dir.path()), &pristine_table).unwrap();
        }
        if matches!(lost, "relay" | "both") {
            std::fs::write(relay_path(dir.path()), &pristine_relay).unwrap();
        }
        let (store, _j, _) = Store::open(dir.path(), &[big_spec()], 1, Durability::Sync).unwrap();
        assert_present(&store, &leases);
        let l = store.table(TableId(0)).read(leases[7].0).1;
        assert_eq!(l.relay.circuit_id(), Some(&b"port-7"[..]), "lost {lost}");
        assert_eq!(l.hostname.as_bytes(), b"host-7", "lost {lost}");
    }
}

#[test]
fn a_missing_or_damaged_relay_file_is_rebuilt_from_the_journal_and_costs_no_binding() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut j, _) = Store::open(dir.path(), &[big_spec()], 1, Durability::Sync).unwrap();
    let leases = allocate_relayed(&store, &mut j[0], 20);
    store.close(j).unwrap(); // the journal still holds the entries (it is short)
    for damage in ["remove", "scribble"] {
        if damage == "remove" {
            std::fs::remove_file(relay_path(dir.path())).unwrap();
        } else {
            scribble(&relay_path(dir.path()), 0, 8, 0xee);
        }
        let (store, j, _) = Store::open(dir.path(), &[big_spec()], 1, Durability::Sync).unwrap();
        let t = store.table(TableId(0));
        for (s, v, l) in &leases {
            let (v2, l2) = t.read(*s);
            assert_eq!((v2, l2.state, l2.chaddr), (*v, l.state, l.chaddr));
            // The first reopen started the journal over: the second has nothing to
            // restore from, and loses the relay info but not the binding.
            let want = if damage == "remove" {
                l.relay
            } else {
                Default::default()
            };
            assert_eq!(l2.relay, want, "{damage}");
        }
        store.close(j).unwrap();
    }
}

#[test]
fn a_table_created_anew_never_inherits_an_old_relay_file() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut j, _) = Store::open(dir.path(), &[big_spec()], 1, Durability::Sync).unwrap();
    let leases = allocate_relayed(&store, &mut j[0], 5);
    store.close(j).unwrap();
    // The operator starts the subnet empty: table and journals go, the relay file stays.
    std::fs::remove_file(table_path(dir.path())).unwrap();
    std::fs::remove_file(dir.path().join("journal-00000.tdj")).unwrap();
    let (store, mut j, _) = Store::open(dir.path(), &[big_spec()], 1, Durability::Sync).unwrap();
    let t = store.table(TableId(0));
    // The same versions are written again, without relay info this time.
    for (s, v, _) in &leases {
        assert_eq!(t.read(*s).0, 0);
        let l = active(s.0 + 100, NOW);
        assert_eq!(t.update(*s, 0, &l), Ok(*v));
        assert_eq!(
            t.read(*s),
            (*v, l),
            "an old relay cell of version {v} showed through"
        );
    }
    j[0].commit().unwrap();
}
