//! Several worker threads share one engine and one small pool of the real lease table, at a
//! fixed `now` (so nothing expires): whatever the interleaving, no address is ACKed to two
//! clients, and the table's ACTIVE records are exactly the ACKed bindings.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use dataplane::engine::{Decision, Engine, EngineConfig, Ingress, ScopeConfig};
use dataplane::wire::dhcpv4::{MessageType, Repr};
use lease_mmap::{BindingState, Durability, Store, TableId, UnixTime};

const THREADS: u16 = 4;
const CLIENTS_PER_THREAD: u16 = 40;
const ROUNDS: u32 = 6;

fn req(mt: MessageType, client: u16) -> Repr<'static> {
    let [hi, lo] = client.to_be_bytes();
    Repr::request([2, 0, 0, 0, hi, lo], u32::from(client), Some(mt))
}

#[test]
fn concurrent_workers_never_double_ack() {
    let mut s = ScopeConfig::new(Ipv4Addr::new(10, 0, 0, 0), 24);
    // 60 addresses for 160 clients.
    s.pools = vec![(Ipv4Addr::new(10, 0, 0, 10), Ipv4Addr::new(10, 0, 0, 69))];
    let cfg = EngineConfig {
        scopes: vec![s],
        ..EngineConfig::default()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _, _) =
        Store::open(dir.path(), &cfg.table_specs(), THREADS, Durability::Async).expect("store");
    let engine = Arc::new(Engine::new(cfg, Arc::new(store)).expect("engine"));
    let server = Ipv4Addr::new(10, 0, 0, 1);
    let now = UnixTime(1_700_000_000);

    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let engine = Arc::clone(&engine);
            std::thread::spawn(move || {
                let mut w = engine.worker(t, THREADS);
                let ing = Ingress {
                    if_addr: server,
                    src_mac: [2; 6],
                    src_ip: Ipv4Addr::UNSPECIFIED,
                };
                let mut acks: Vec<(Ipv4Addr, u16)> = Vec::new();
                let mut rng = u32::from(t) * 7919 + 1;
                for round in 0..ROUNDS {
                    for i in 0..CLIENTS_PER_THREAD {
                        let c = t * CLIENTS_PER_THREAD + i;
                        rng = rng.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        // Everyone asks for the same few addresses some of the time, so
                        // workers race on one slot.
                        let wanted = Ipv4Addr::new(10, 0, 0, 10 + (rng >> 16) as u8 % 8);
                        let mut d = req(MessageType::Discover, c);
                        if round % 2 == 0 {
                            d.options.requested_ip = Some(wanted);
                        }
                        let offered = match engine.decide(&mut w, &d, &ing, now) {
                            Decision::Reply(r) => r.repr.yiaddr,
                            _ => wanted,
                        };
                        // Sometimes select someone else's address on purpose.
                        let pick = if (rng >> 8) % 5 == 0 { wanted } else { offered };
                        let mut r = req(MessageType::Request, c);
                        r.options.server_id = Some(server);
                        r.options.requested_ip = Some(pick);
                        if let Decision::Reply(r) = engine.decide(&mut w, &r, &ing, now)
                            && r.repr.options.message_type == Some(MessageType::Ack)
                        {
                            assert!(r.commit.is_some());
                            acks.push((r.repr.yiaddr, c));
                        }
                    }
                }
                acks
            })
        })
        .collect();

    let mut holder: HashMap<Ipv4Addr, u16> = HashMap::new();
    let mut total = 0;
    for h in handles {
        for (addr, c) in h.join().expect("worker thread") {
            total += 1;
            let prev = *holder.entry(addr).or_insert(c);
            assert_eq!(prev, c, "{addr} ACKed to clients {prev} and {c}");
        }
    }
    assert_eq!(holder.len(), 60, "the pool should fill ({total} ACKs)");
    let table = engine.store().table(TableId(0));
    let mut active = 0;
    table.for_each(|slot, _, l| {
        if l.state == BindingState::Active {
            active += 1;
            let c = u16::from_be_bytes([l.chaddr[4], l.chaddr[5]]);
            assert_eq!(holder.get(&table.addr(slot)), Some(&c));
        }
    });
    assert_eq!(active, holder.len());
}
