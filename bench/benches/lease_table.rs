//! lease-mmap on a 1,000,000-record table: open, read, allocate, find a client, journal
//! group commits (fdatasync per batch, and async), and the failover expiry sweep (a walk
//! against the expiry index).
//!
//! `cargo bench -p bench --bench lease_table` (add `-- --test` for a one-shot smoke run).

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use lease_mmap::{
    AllocCursor, BindingState, ClientKey, Durability, Lease, Slot, Store, TableId, TableSpec,
    UnixTime,
};

const RECORDS: u32 = 1_000_000;

fn spec() -> TableSpec {
    let first = Ipv4Addr::new(10, 0, 0, 0);
    let last = Ipv4Addr::from(u32::from(first) + RECORDS - 1);
    TableSpec {
        network: first,
        prefix_len: 12,
        first,
        last,
        allocatable: vec![(Ipv4Addr::new(10, 0, 0, 1), last)],
    }
}

fn lease(i: u32) -> Lease {
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&[
        0x02,
        0,
        (i >> 24) as u8,
        (i >> 16) as u8,
        (i >> 8) as u8,
        i as u8,
    ]);
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

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(
        std::env::var_os("TANDEM_BENCH_DIR").unwrap_or_else(|| "/var/tmp".into()),
    )
    .expect("tempdir");
    let t0 = Instant::now();
    let (store, journals, _) =
        Store::open(dir.path(), &[spec()], 1, Durability::Sync).expect("create");
    eprintln!(
        "lease_table: created a {RECORDS}-record table in {:?}",
        t0.elapsed()
    );
    drop((store, journals));

    let mut g = c.benchmark_group("lease_table");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("open_existing_1m", |b| {
        b.iter(|| {
            let opened = Store::open(dir.path(), &[spec()], 1, Durability::Sync).expect("open");
            black_box(&opened.0);
        })
    });
    g.finish();

    let (store, journals, _) =
        Store::open(dir.path(), &[spec()], 1, Durability::Sync).expect("open");
    let t = store.table(TableId(0));
    let mut g = c.benchmark_group("lease_table");
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("read", |b| {
        let mut s = 0u32;
        b.iter(|| {
            s = (s + 7919) % RECORDS;
            black_box(t.read(Slot(s)))
        })
    });
    let mut cursor = AllocCursor::new(0, 1);
    let free_only = lease_mmap::free_only;
    let mut client = 0u32;
    g.bench_function("allocate_and_release", |b| {
        b.iter(|| {
            client = client.wrapping_add(1);
            let (s, v) = t
                .allocate(
                    &mut cursor,
                    UnixTime(1_700_000_000),
                    &lease(client),
                    &free_only,
                )
                .expect("room");
            t.update(s, v, &Lease::default()).expect("release");
        })
    });
    // A bound population for lookups.
    let mut bound = Vec::new();
    for i in 0..10_000u32 {
        let (s, _) = t
            .allocate(
                &mut cursor,
                UnixTime(1_700_000_000),
                &lease(1 << 30 | i),
                &free_only,
            )
            .expect("room");
        bound.push((i, s));
    }
    g.bench_function("find_client", |b| {
        let mut k = 0usize;
        b.iter(|| {
            k = (k + 1) % bound.len();
            let l = lease(1 << 30 | bound[k].0);
            let key = ClientKey::HwAddr {
                htype: 1,
                chaddr: &l.chaddr[..6],
            };
            black_box(t.find_client(&key))
        })
    });
    for (name, durability) in [
        ("journal_commit64_fdatasync", Durability::Sync),
        ("journal_commit64_async", Durability::Async),
    ] {
        let d2 = tempfile::tempdir_in(dir.path()).expect("tempdir");
        let small = TableSpec {
            network: Ipv4Addr::new(192, 168, 0, 0),
            prefix_len: 16,
            first: Ipv4Addr::new(192, 168, 0, 0),
            last: Ipv4Addr::new(192, 168, 255, 255),
            allocatable: vec![(
                Ipv4Addr::new(192, 168, 0, 1),
                Ipv4Addr::new(192, 168, 255, 254),
            )],
        };
        let (s2, mut j2, _) = Store::open(d2.path(), &[small], 1, durability).expect("open");
        let t2 = s2.table(TableId(0));
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || (),
                |()| {
                    for i in 0..64u32 {
                        let (v, _) = t2.read(Slot(i));
                        let nv = t2.update(Slot(i), v, &lease(i)).expect("update");
                        j2[0].record(t2.id(), Slot(i), nv, &lease(i));
                    }
                    j2[0].commit().expect("commit");
                },
                BatchSize::SmallInput,
            )
        });
        drop((j2, s2));
    }
    g.finish();

    // Every address bound: open has to rebuild a full client index.
    let mut client = 2u32 << 29;
    while t
        .allocate(
            &mut cursor,
            UnixTime(1_700_000_000),
            &lease(client),
            &free_only,
        )
        .is_some()
    {
        client += 1;
    }
    // The failover expiry sweep with every address bound and 1,000 leases ended: by a walk
    // of the table (before the expiry index) and from the index (`Table::due`).
    let now = UnixTime(1_700_000_000);
    let end_some = || {
        for i in 0..1_000u32 {
            let slot = Slot(1 + i * 997);
            let (v, l) = t.read(slot);
            let ended = Lease {
                ends: UnixTime(now.0 - 1),
                ..l
            };
            t.update(slot, v, &ended).expect("update");
        }
    };
    let ran_out = |l: &Lease| l.state == BindingState::Active && l.ends <= now;
    end_some();
    let mut g = c.benchmark_group("lease_table");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("expiry_sweep_walk_1m", |b| {
        b.iter(|| {
            let mut due = 0u32;
            t.for_each(|_, _, l| due += u32::from(ran_out(l)));
            assert_eq!(due, 1_000);
        })
    });
    // What the index costs a writer: one ACTIVE rewrite, before and after it starts.
    let rewrite = |b: &mut criterion::Bencher<'_>| {
        b.iter(|| {
            let (v, l) = t.read(Slot(5));
            t.update(Slot(5), v, &l).expect("update")
        })
    };
    g.bench_function("update_active_untracked", rewrite);
    t.track_expiry();
    g.bench_function("update_active_tracked", rewrite);
    eprintln!(
        "lease_table: expiry index of {RECORDS} bound records: {} entries",
        t.expiry_entries()
    );
    g.bench_function("expiry_sweep_index_1m", |b| {
        b.iter_batched(
            end_some,
            |()| {
                let mut due = 0u32;
                t.due(now, |_, _, l| {
                    due += u32::from(ran_out(l));
                    true
                });
                assert_eq!(due, 1_000);
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();

    store.close(journals).expect("close");
    let mut g = c.benchmark_group("lease_table");
    g.sample_size(10).measurement_time(Duration::from_secs(15));
    g.bench_function("open_existing_1m_all_bound", |b| {
        b.iter(|| {
            let opened = Store::open(dir.path(), &[spec()], 1, Durability::Sync).expect("open");
            black_box(&opened.0);
        })
    });
    g.finish();
}

criterion_group!(lease_table, benches);
criterion_main!(lease_table);
