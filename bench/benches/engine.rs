//! `Engine::decide` on a real lease-mmap store (a /16 scope, a pool of 65,521 addresses, in a
//! temporary directory under `TANDEM_BENCH_DIR` or `/var/tmp`), with a new client for every
//! request, so that DISCOVER → OFFER measures allocation (never the client's cached binding)
//! and REQUEST → ACK measures the confirmation of a fresh offer. Then the whole fast path per
//! request as `dataplane::server::DhcpHandler` runs it: `frame::parse` → `Repr::parse` →
//! `decide` → `frame::emit_reply`, without the journal (see the `journal` bench).
//!
//! The store fills up after 65,521 clients, so the requests go in rounds of at most
//! [`ROUND`] on a fresh store each; only the requests are timed (`iter_custom`).
//!
//! `cargo bench -p bench --bench engine` (add `-- --test` for a one-shot smoke run).

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dataplane::engine::{Decision, Engine, EngineWorker, SERVER_PORT};
use dataplane::wire::dhcpv4::{MessageType, Packet, Repr};
use dataplane::wire::frame::{self, ReplyHeader};
use lease_mmap::{Durability, UnixTime};

/// Clients per fresh store (the pool holds 65,521 addresses).
const ROUND: u64 = 60_000;
const NOW: UnixTime = UnixTime(1_700_000_000);

struct Round {
    _dir: tempfile::TempDir,
    engine: Arc<Engine>,
    worker: EngineWorker,
}

impl Round {
    fn new() -> Round {
        let (dir, engine, _journals) = bench::relayed_engine(Durability::Async);
        let worker = engine.worker(0, 1);
        Round {
            _dir: dir,
            engine,
            worker,
        }
    }

    /// DISCOVER → OFFER for client `n`; the offered address.
    fn offer(&mut self, n: u32) -> Ipv4Addr {
        let d = bench::request(n, None);
        match self
            .engine
            .decide(&mut self.worker, &d, &bench::relayed_ingress(), NOW)
        {
            Decision::Reply(r) => r.repr.yiaddr,
            other => panic!("client {n}: no offer: {other:?}"),
        }
    }
}

/// `n` requests in rounds; `prepare` builds a round's inputs (untimed), `run` handles them
/// (timed) and returns how many got the expected reply.
fn rounds<T>(
    n: u64,
    mut prepare: impl FnMut(&mut Round, u32, u32) -> Vec<T>,
    mut run: impl FnMut(&mut Round, &[T]) -> u64,
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = n;
    while left > 0 {
        let k = u32::try_from(left.min(ROUND)).expect("ROUND fits u32");
        let mut round = Round::new();
        let inputs = prepare(&mut round, 0, k);
        let t = Instant::now();
        let ok = run(&mut round, &inputs);
        total += t.elapsed();
        assert_eq!(ok, u64::from(k), "every request answered as expected");
        left -= u64::from(k);
    }
    total
}

fn is(d: &Decision<'_>, want: MessageType) -> bool {
    matches!(d, Decision::Reply(r) if r.repr.options.message_type == Some(want))
}

fn decide(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(1))
        .sample_size(20)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    g.bench_function("decide/discover_offer_new_client", |b| {
        b.iter_custom(|n| {
            rounds(
                n,
                |_, first, k| {
                    (first..first + k)
                        .map(|i| bench::request(i, None))
                        .collect()
                },
                |r, reqs| {
                    let ing = bench::relayed_ingress();
                    let mut ok = 0;
                    for q in reqs {
                        let d = r.engine.decide(&mut r.worker, black_box(q), &ing, NOW);
                        ok += u64::from(is(&d, MessageType::Offer));
                    }
                    ok
                },
            )
        })
    });
    g.bench_function("decide/request_ack_after_offer", |b| {
        b.iter_custom(|n| {
            rounds(
                n,
                |r, first, k| {
                    (first..first + k)
                        .map(|i| bench::request(i, Some(r.offer(i))))
                        .collect()
                },
                |r, reqs| {
                    let ing = bench::relayed_ingress();
                    let mut ok = 0;
                    for q in reqs {
                        let d = r.engine.decide(&mut r.worker, black_box(q), &ing, NOW);
                        ok += u64::from(is(&d, MessageType::Ack));
                    }
                    ok
                },
            )
        })
    });
    g.finish();
}

/// One received frame through the fast path, as `DhcpHandler::handle_frame` does it (minus
/// the interface lookup, the counters and the journal record). True if a reply was built.
fn fast_path(r: &mut Round, data: &[u8], out: &mut [u8]) -> bool {
    let Ok(f) = frame::parse(data) else {
        return false;
    };
    if f.udp_dst != SERVER_PORT {
        return false;
    }
    let mut scratch = [0u8; 1536];
    let Ok(packet) = Packet::new_checked(f.dhcp) else {
        return false;
    };
    let Ok(req) = Repr::parse(&packet, &mut scratch) else {
        return false;
    };
    let ingress = dataplane::engine::Ingress {
        if_addr: bench::SERVER,
        src_mac: f.eth_src,
        src_ip: f.ip_src,
    };
    match r.engine.decide(&mut r.worker, &req, &ingress, NOW) {
        Decision::Reply(reply) => {
            let hdr = ReplyHeader {
                eth_src: bench::SERVER_MAC,
                eth_dst: reply.dest.mac,
                vlan: f.vlan,
                ip_src: reply.server_ip,
                ip_dst: reply.dest.ip,
                udp_src: SERVER_PORT,
                udp_dst: reply.dest.port,
                ttl: 64,
            };
            black_box(&reply.commit);
            frame::emit_reply(&hdr, &reply.repr, out).is_ok()
        }
        Decision::Silent { .. } | Decision::Drop(_) => false,
    }
}

fn whole(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(1))
        .sample_size(20)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    let run = |r: &mut Round, frames: &[Vec<u8>]| {
        let mut out = [0u8; 1536];
        frames
            .iter()
            .map(|f| u64::from(fast_path(r, black_box(f), &mut out)))
            .sum()
    };
    g.bench_function("fast_path/discover_frame_to_offer_frame", |b| {
        b.iter_custom(|n| {
            rounds(
                n,
                |_, first, k| {
                    (first..first + k)
                        .map(|i| bench::relayed_frame(&bench::request(i, None)))
                        .collect()
                },
                run,
            )
        })
    });
    g.bench_function("fast_path/request_frame_to_ack_frame", |b| {
        b.iter_custom(|n| {
            rounds(
                n,
                |r, first, k| {
                    (first..first + k)
                        .map(|i| bench::relayed_frame(&bench::request(i, Some(r.offer(i)))))
                        .collect()
                },
                run,
            )
        })
    });
    g.finish();
}

criterion_group!(engine, decide, whole);
criterion_main!(engine);
