//! `WorkerJournal`: record a batch of lease changes and group-commit it (one write, and with
//! `Durability::Sync` one fdatasync), for batches of 1, 16 and 64 entries. The journal lives
//! under `TANDEM_BENCH_DIR` (default `/var/tmp`, a disk: fdatasync costs what it costs there).
//! The store is checkpointed every [`CHECKPOINT_EVERY`] commits, untimed, so that the
//! journal file starts over instead of growing through the run.
//!
//! `cargo bench -p bench --bench journal` (add `-- --test` for a one-shot smoke run).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lease_mmap::{BindingState, Durability, Lease, Slot, Store, TableId, TableSpec, UnixTime};

const CHECKPOINT_EVERY: u64 = 256;

fn spec() -> TableSpec {
    TableSpec {
        network: Ipv4Addr::new(192, 168, 0, 0),
        prefix_len: 24,
        first: Ipv4Addr::new(192, 168, 0, 0),
        last: Ipv4Addr::new(192, 168, 0, 255),
        allocatable: vec![(
            Ipv4Addr::new(192, 168, 0, 1),
            Ipv4Addr::new(192, 168, 0, 254),
        )],
    }
}

fn lease(i: u32) -> Lease {
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&bench::client_mac(i));
    Lease {
        state: BindingState::Active,
        ends: UnixTime(1_700_003_600),
        cltt: UnixTime(1_700_000_000),
        htype: 1,
        hlen: 6,
        chaddr,
        ..Lease::default()
    }
}

fn journal(c: &mut Criterion) {
    let mut g = c.benchmark_group("journal");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for (mode, durability) in [("async", Durability::Async), ("sync", Durability::Sync)] {
        let dir = tempfile::tempdir_in(bench::bench_dir()).expect("tempdir");
        let (store, mut journals, _) =
            Store::open(dir.path(), &[spec()], 1, durability).expect("store");
        let mut j = journals.pop().expect("one journal");
        j.set_reset_threshold(1 << 20);
        let t = store.table(TableId(0));
        let mut version = 1u64;
        for batch in [1u32, 16, 64] {
            g.throughput(Throughput::Elements(u64::from(batch)));
            g.bench_function(
                BenchmarkId::new(format!("record_commit_{mode}"), batch),
                |b| {
                    b.iter_custom(|n| {
                        let mut total = Duration::ZERO;
                        for k in 0..n {
                            let start = Instant::now();
                            for i in 0..batch {
                                let slot = (version as u32 + i) % t.len();
                                j.record(t.id(), Slot(slot), version, &lease(i));
                                version += 1;
                            }
                            j.commit().expect("commit");
                            total += start.elapsed();
                            if (k + 1) % CHECKPOINT_EVERY == 0 {
                                store.checkpoint().expect("checkpoint");
                            }
                        }
                        total
                    })
                },
            );
        }
        store.close(vec![j]).expect("close");
    }
    g.finish();
}

criterion_group!(benches, journal);
criterion_main!(benches);
