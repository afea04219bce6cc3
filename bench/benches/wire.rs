//! The wire formats on captured frames (`dataplane/tests/vectors/`): `frame::parse` and
//! `dhcpv4::Repr::parse` of real DISCOVERs and REQUESTs (udhcpc's direct ones, perfdhcp's
//! relayed ones with option 82), and `Repr::emit` / `frame::emit_reply` of Kea's ACKs.
//!
//! `cargo bench -p bench --bench wire` (add `-- --test` for a one-shot smoke run).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dataplane::wire::dhcpv4::{Packet, Repr};
use dataplane::wire::frame::{self, ReplyHeader};

const REQUESTS: &[&str] = &[
    "udhcpc_01_discover",
    "udhcpc_03_request",
    "relay_01_discover",
    "relay_03_request",
];
const ACKS: &[&str] = &["udhcpc_04_ack", "relay_04_ack"];

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for &name in REQUESTS {
        let bytes = bench::vector(name);
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("frame_parse/{name}"), |b| {
            b.iter(|| frame::parse(black_box(&bytes)).expect("frame"))
        });
        let dhcp = frame::parse(&bytes).expect("frame").dhcp.to_vec();
        g.bench_function(format!("repr_parse/{name}"), |b| {
            let mut scratch = [0u8; 1536];
            b.iter(|| {
                let p = Packet::new_checked(black_box(&dhcp[..])).expect("packet");
                black_box(Repr::parse(&p, &mut scratch).expect("repr").xid)
            })
        });
        // Both, as the worker does it per received frame.
        g.bench_function(format!("frame_and_repr_parse/{name}"), |b| {
            let mut scratch = [0u8; 1536];
            b.iter(|| {
                let f = frame::parse(black_box(&bytes)).expect("frame");
                let p = Packet::new_checked(f.dhcp).expect("packet");
                black_box(Repr::parse(&p, &mut scratch).expect("repr").xid)
            })
        });
    }
    g.finish();
}

fn emit(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for &name in ACKS {
        let bytes = bench::vector(name);
        let f = frame::parse(&bytes).expect("frame");
        let p = Packet::new_checked(f.dhcp).expect("packet");
        let mut scratch = [0u8; 1536];
        let ack = Repr::parse(&p, &mut scratch).expect("repr");
        let hdr = ReplyHeader {
            eth_src: f.eth_src,
            eth_dst: f.eth_dst,
            vlan: f.vlan,
            ip_src: f.ip_src,
            ip_dst: f.ip_dst,
            udp_src: f.udp_src,
            udp_dst: f.udp_dst,
            ttl: 64,
        };
        let mut out = vec![0u8; 1536];
        // What is emitted parses back to the same message.
        let n = frame::emit_reply(&hdr, &ack, &mut out).expect("emit");
        let back = frame::parse(&out[..n]).expect("emitted frame");
        let mut scratch2 = [0u8; 1536];
        let again = Repr::parse(
            &Packet::new_checked(back.dhcp).expect("packet"),
            &mut scratch2,
        )
        .expect("emitted repr");
        assert_eq!(again, ack, "{name}");
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("repr_emit/{name}"), |b| {
            let len = ack.buffer_len();
            b.iter(|| {
                black_box(&ack)
                    .emit(&mut Packet::new_unchecked(&mut out[..len]))
                    .expect("emit");
            })
        });
        g.bench_function(format!("frame_emit_reply/{name}"), |b| {
            b.iter(|| frame::emit_reply(black_box(&hdr), black_box(&ack), &mut out).expect("emit"))
        });
    }
    g.finish();
}

criterion_group!(wire, parse, emit);
criterion_main!(wire);
