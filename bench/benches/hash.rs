//! The RFC 3074 load-balancing hash (`control::failover::hash`): the Pearson hash of a
//! client's key, and the bucket choice (option 61 when present, else `chaddr`) that failover
//! load balancing runs once per request.
//!
//! `cargo bench -p bench --bench hash` (add `-- --test` for a one-shot smoke run).

use std::hint::black_box;
use std::time::Duration;

use control::failover::hash::{client_bucket, pearson};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn hash(c: &mut Criterion) {
    let mut g = c.benchmark_group("hash");
    g.measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    let mac = [0x02, 0x0c, 0x01, 0x02, 0x03, 0x04];
    let client_id = [0x01, 0x02, 0x0c, 0x01, 0x02, 0x03, 0x04];
    let long: Vec<u8> = (0..=254u8).collect();
    for (name, key) in [
        ("pearson/mac_6", &mac[..]),
        ("pearson/client_id_7", &client_id[..]),
        ("pearson/key_255", &long[..]),
    ] {
        g.throughput(Throughput::Bytes(key.len() as u64));
        g.bench_function(name, |b| b.iter(|| pearson(black_box(key))));
    }
    g.throughput(Throughput::Elements(1));
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&mac);
    g.bench_function("client_bucket/chaddr", |b| {
        b.iter(|| client_bucket(black_box(None), black_box(&chaddr), 6))
    });
    g.bench_function("client_bucket/client_id", |b| {
        b.iter(|| client_bucket(black_box(Some(&client_id[..])), black_box(&chaddr), 6))
    });
    g.finish();
}

criterion_group!(benches, hash);
criterion_main!(benches);
