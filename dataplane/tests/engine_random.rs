//! Seeded randomized run: many clients doing random (and some wrong) DHCP operations on one
//! small pool, two workers, checking after every step that no address is ever ACKed to two
//! clients at overlapping times. Prints the seed on failure.

#[expect(dead_code, reason = "this binary uses a subset of the shared harness")]
mod engine_support;

use std::collections::HashMap;
use std::net::Ipv4Addr;

use dataplane::engine::{EngineWorker, ScopeConfig};
use dataplane::wire::dhcpv4::{FLAG_BROADCAST, MessageType};
use engine_support::*;
use lease_mmap::{BindingState, UnixTime};
use testkit::rng::Rng;

#[derive(Clone, Copy, Debug, Default)]
struct Client {
    offered: Option<Ipv4Addr>,
    bound: Option<Ipv4Addr>,
}

const CLIENTS: u8 = 12;
const STEPS: u32 = 600;
const SEEDS: u64 = 40;

fn small_pool() -> ScopeConfig {
    let mut s = ScopeConfig::new(ip("10.0.0.0"), 24);
    s.pools = vec![(ip("10.0.0.10"), ip("10.0.0.15"))];
    s.exclude = vec![(ip("10.0.0.12"), ip("10.0.0.12"))];
    s.lease_time = 120;
    s.decline_probation = 90;
    s
}

/// What a run exercised, so a vacuous run fails.
#[derive(Debug, Default)]
struct Stats {
    acks: u32,
    naks: u32,
    handovers: u32,
    unbinds: u32,
    exhausted: u32,
}

fn run_seed(seed: u64, stats: &mut Stats) {
    let mut rng = Rng::new(seed);
    let mut h = Harness::new(config(vec![small_pool()]));
    // A second worker, with its own allocation cursor, sharing the engine and tables.
    let mut other: EngineWorker = h.engine.worker(1, 2);
    let mut clients = [Client::default(); CLIENTS as usize];
    // addr -> (client, lease end) as promised by ACKs (and cut short by RELEASE/DECLINE).
    let mut promised: HashMap<Ipv4Addr, (u8, UnixTime)> = HashMap::new();
    let addr_in = |rng: &mut Rng| Ipv4Addr::new(10, 0, 0, 8 + rng.below(10) as u8);

    for step in 0..STEPS {
        let c = rng.below(u64::from(CLIENTS)) as u8;
        let m = mac(c + 1);
        let st = clients[usize::from(c)];
        let op = rng.below(10);
        let mut req = match op {
            0 | 1 => discover(m),
            2 | 3 => {
                let a = match st.offered {
                    Some(a) if !rng.chance(10) => a,
                    _ => addr_in(&mut rng),
                };
                let server = if rng.chance(15) {
                    ip("10.0.0.2")
                } else {
                    SERVER
                };
                select(m, server, a)
            }
            4 => init_reboot(
                m,
                st.bound
                    .filter(|_| !rng.chance(20))
                    .unwrap_or(addr_in(&mut rng)),
            ),
            5 | 6 => renew(
                m,
                st.bound
                    .filter(|_| !rng.chance(20))
                    .unwrap_or(addr_in(&mut rng)),
            ),
            7 => release(
                m,
                SERVER,
                st.bound
                    .filter(|_| !rng.chance(20))
                    .unwrap_or(addr_in(&mut rng)),
            ),
            8 => decline(
                m,
                SERVER,
                st.bound.or(st.offered).unwrap_or(addr_in(&mut rng)),
            ),
            _ => {
                h.advance(rng.below(60) as u32);
                continue;
            }
        };
        if rng.chance(30) {
            req.flags = FLAG_BROADCAST;
        }
        if rng.chance(20) {
            req.options.requested_ip = Some(addr_in(&mut rng));
        }
        if rng.chance(50) {
            std::mem::swap(&mut h.worker, &mut other);
        }
        let out = h.run(&req, &direct(SERVER, m));
        let now = h.now;
        let client = &mut clients[usize::from(c)];
        let ctx = || format!("seed {seed} step {step} client {c} op {op}: {out:?}");
        match out.kind {
            Kind::Offer => {
                let a = out.yiaddr();
                assert!(a != ip("10.0.0.12"), "excluded address offered: {}", ctx());
                assert!(out.commit.is_none(), "{}", ctx());
                client.offered = Some(a);
            }
            Kind::Ack => {
                let a = out.yiaddr();
                assert!(a != ip("10.0.0.12"), "excluded address ACKed: {}", ctx());
                let lease = out.lease();
                assert_eq!(lease.state, BindingState::Active, "{}", ctx());
                assert!(lease.ends > now, "{}", ctx());
                assert_eq!(
                    out.opts().lease_time,
                    Some(now.until(lease.ends)),
                    "{}",
                    ctx()
                );
                stats.acks += 1;
                if let Some(&(holder, ends)) = promised.get(&a) {
                    if holder != c {
                        stats.handovers += 1;
                    }
                    assert!(
                        holder == c || ends <= now,
                        "{a} ACKed to client {c} while client {holder} holds it until {ends:?}: {}",
                        ctx()
                    );
                }
                // The client's previous address, if different, is no longer its concern,
                // but the server's promise on it stands until it ends.
                promised.insert(a, (c, lease.ends));
                client.bound = Some(a);
                client.offered = None;
            }
            Kind::Nak => {
                stats.naks += 1;
                assert!(out.commit.is_none(), "{}", ctx());
                client.bound = None;
                client.offered = None;
            }
            Kind::Silent(_) => {
                if let Some(commit) = out.commit {
                    stats.unbinds += 1;
                    let a = h.engine.store().table(commit.table).addr(commit.slot);
                    match commit.lease.state {
                        BindingState::Released | BindingState::Abandoned => {}
                        s => panic!("unexpected silent commit {s:?}: {}", ctx()),
                    }
                    // Only the holder may end its own promise.
                    if let Some(&(holder, ends)) = promised.get(&a) {
                        assert!(
                            holder == c || ends <= now,
                            "{c} released {holder}'s {a}: {}",
                            ctx()
                        );
                        promised.insert(a, (holder, now));
                    }
                    client.bound = None;
                    client.offered = None;
                }
            }
            Kind::Drop(dataplane::engine::DropReason::PoolExhausted) => stats.exhausted += 1,
            Kind::Drop(_) => {}
            Kind::BootReply | Kind::OtherReply => panic!("unexpected reply: {}", ctx()),
        }
        // The table agrees with the promises: every live ACTIVE record is its holder's.
        let table = h.engine.store().table(lease_mmap::TableId(0));
        for (&a, &(holder, ends)) in &promised {
            if ends <= now {
                continue;
            }
            let slot = table.slot(a).expect("slot");
            let rec = table.read(slot).1;
            assert_eq!(
                rec.state,
                BindingState::Active,
                "{a} promised but {rec:?}: {}",
                ctx()
            );
            assert_eq!(
                rec.chaddr[5],
                holder + 1,
                "{a} promised to {holder} but {rec:?}: {}",
                ctx()
            );
        }
    }
}

#[test]
fn no_address_is_acked_to_two_clients_at_once() {
    let mut stats = Stats::default();
    // `TANDEM_ENGINE_SEEDS=n` runs more seeds (e.g. a long soak); the floors below assume
    // at least the default.
    let seeds = std::env::var("TANDEM_ENGINE_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SEEDS)
        .max(SEEDS);
    for seed in 0..seeds {
        run_seed(seed, &mut stats);
    }
    eprintln!("{stats:?}");
    assert!(stats.acks > 1000, "{stats:?}");
    assert!(stats.naks > 100, "{stats:?}");
    assert!(stats.handovers > 100, "{stats:?}");
    assert!(stats.unbinds > 50, "{stats:?}");
    assert!(stats.exhausted > 10, "{stats:?}");
}

#[test]
fn requests_of_every_kind_never_panic() {
    // Garbage-ish requests over every message type code, hlen and flag combination.
    let mut h = Harness::new(config(vec![small_pool()]));
    let mut rng = Rng::from_state(7);
    for _ in 0..2000 {
        let mt = match rng.below(12) {
            0 => None,
            n => Some(MessageType::Other(n as u8)),
        };
        let mut r = request(mt, mac(rng.below(255) as u8));
        if let Some(MessageType::Other(n)) = mt {
            r.options.message_type = Some(match n {
                1 => MessageType::Discover,
                2 => MessageType::Offer,
                3 => MessageType::Request,
                4 => MessageType::Decline,
                5 => MessageType::Ack,
                6 => MessageType::Nak,
                7 => MessageType::Release,
                8 => MessageType::Inform,
                n => MessageType::Other(n),
            });
        }
        r.hlen = rng.below(20) as u8;
        r.htype = rng.below(3) as u8;
        r.ciaddr = if rng.chance(30) {
            Ipv4Addr::from(rng.next_u64() as u32)
        } else {
            r.ciaddr
        };
        r.giaddr = if rng.chance(20) {
            Ipv4Addr::from(rng.next_u64() as u32)
        } else {
            r.giaddr
        };
        r.options.server_id = rng
            .chance(30)
            .then(|| Ipv4Addr::from(rng.next_u64() as u32));
        r.options.requested_ip = rng.chance(50).then(|| addr(&mut rng));
        r.options.subnet_selection = rng.chance(5).then(|| addr(&mut rng));
        r.options.client_id = rng.chance(20).then_some(&[0u8, 1, 2][..]);
        r.options.relay_agent_info = rng.chance(10).then_some(&[1u8, 2, 3][..]);
        r.options.parameter_request_list = rng.chance(50).then_some(&[1u8, 3, 6, 15, 28][..]);
        let _ = h.run(
            &r,
            &direct(
                if rng.chance(90) {
                    SERVER
                } else {
                    addr(&mut rng)
                },
                mac(1),
            ),
        );
        h.advance(rng.below(5) as u32);
    }

    fn addr(rng: &mut Rng) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, rng.below(32) as u8)
    }
}
