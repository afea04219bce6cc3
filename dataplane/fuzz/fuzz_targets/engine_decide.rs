//! `Engine::decide` on arbitrary requests against a small lease table, through the path a
//! worker takes (`server::DhcpHandler`): `frame::parse`, the UDP port check,
//! `dhcpv4::Packet::new_checked`, `Repr::parse`, `Engine::decide`, `frame::emit_reply`.
//!
//! The store (one directly attached scope of 16 addresses with a reservation and an
//! exclusion, and a relayed one) is opened once per process on /dev/shm; each input starts
//! from FREE records (reset by CAS) with a fresh allocation cursor.
//!
//! Input: byte 0 picks the receiving interface's address (bit 0: the LAN's, else none);
//! then frames, each `[seconds to wait first][length: u16 little-endian][Ethernet frame]`.
//!
//! Properties: nothing panics; a change the engine reports is the record in the table (it
//! was written by CAS before the reply); a reply's address is in a scope; a DHCPACK's
//! record is bound no longer than the scope's lease time from now; OFFERs and NAKs commit
//! nothing.
#![no_main]

use std::net::Ipv4Addr;
use std::sync::{Arc, OnceLock};

use dataplane::engine::{
    Decision, Engine, EngineConfig, Ingress, Reservation, ReservationKey, SERVER_PORT, ScopeConfig,
};
use dataplane::wire::dhcpv4::{MessageType, Packet, Repr};
use dataplane::wire::frame::{self, ReplyHeader};
use lease_mmap::{BindingState, Durability, Lease, Slot, Store, TableId, UnixTime};
use libfuzzer_sys::fuzz_target;

const T0: u32 = 1_790_000_000;
const LAN: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const LEASE: u32 = 600;

fn config() -> EngineConfig {
    let mut lan = ScopeConfig::new(Ipv4Addr::new(10, 77, 0, 0), 24);
    lan.pools = vec![(Ipv4Addr::new(10, 77, 0, 100), Ipv4Addr::new(10, 77, 0, 115))];
    lan.exclude = vec![(Ipv4Addr::new(10, 77, 0, 110), Ipv4Addr::new(10, 77, 0, 111))];
    lan.router = vec![LAN];
    lan.dns = vec![Ipv4Addr::new(10, 77, 0, 53)];
    lan.domain_name = Some("example.net".into());
    lan.lease_time = LEASE;
    lan.reservations = vec![Reservation {
        key: ReservationKey::Mac([2, 0, 0, 0x77, 0, 9]),
        address: Ipv4Addr::new(10, 77, 0, 9),
    }];
    let mut remote = ScopeConfig::new(Ipv4Addr::new(10, 78, 0, 0), 24);
    remote.pools = vec![(Ipv4Addr::new(10, 78, 0, 10), Ipv4Addr::new(10, 78, 0, 17))];
    remote.lease_time = LEASE;
    EngineConfig {
        scopes: vec![lan, remote],
        ..EngineConfig::default()
    }
}

fn engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| {
        let dir = std::path::Path::new("/dev/shm")
            .join(format!("tandem-fuzz-engine-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = config();
        let (store, _journals, _) =
            Store::open(&dir, &config.table_specs(), 1, Durability::Async).expect("open the store");
        // The mappings stay; the files go (nothing here is journaled or checkpointed).
        let _ = std::fs::remove_dir_all(&dir);
        Engine::new(config, Arc::new(store)).expect("engine")
    })
}

fn reset(e: &Engine) {
    for t in e.store().tables() {
        for s in 0..t.len() {
            let (v, l) = t.read(Slot(s));
            if l != Lease::default() {
                t.update(Slot(s), v, &Lease::default())
                    .expect("reset a record");
            }
        }
    }
}

fn record(e: &Engine, table: TableId, slot: Slot) -> (u64, Lease) {
    e.store().table(table).read(slot)
}

fuzz_target!(|data: &[u8]| {
    let Some((&setup, mut rest)) = data.split_first() else {
        return;
    };
    let e = engine();
    reset(e);
    let mut w = e.worker(0, 1);
    let if_addr = if setup & 1 != 0 {
        LAN
    } else {
        Ipv4Addr::UNSPECIFIED
    };
    let mut now = UnixTime(T0);
    let mut scratch = [0u8; 1500];
    let mut out = [0u8; 2048];
    while let [wait, lo, hi, more @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(more.len());
        let (bytes, next) = more.split_at(len);
        rest = next;
        now = now.saturating_add(u32::from(*wait));
        let Ok(f) = frame::parse(bytes) else { continue };
        if f.udp_dst != SERVER_PORT {
            continue;
        }
        let Ok(packet) = Packet::new_checked(f.dhcp) else {
            continue;
        };
        let Ok(req) = Repr::parse(&packet, &mut scratch) else {
            continue;
        };
        let ingress = Ingress {
            if_addr,
            src_mac: f.eth_src,
            src_ip: f.ip_src,
        };
        match e.decide(&mut w, &req, &ingress, now) {
            Decision::Reply(reply) => {
                let kind = reply.repr.options.message_type;
                if let Some(c) = &reply.commit {
                    assert_eq!(
                        record(e, c.table, c.slot),
                        (c.version, c.lease),
                        "commit is the record"
                    );
                    assert!(!matches!(kind, Some(MessageType::Offer | MessageType::Nak)));
                    if kind == Some(MessageType::Ack) && c.lease.ends != UnixTime(u32::MAX) {
                        assert!(
                            u64::from(c.lease.ends.0) <= u64::from(now.0) + u64::from(LEASE),
                            "lease longer than the scope's"
                        );
                    }
                }
                if !reply.repr.yiaddr.is_unspecified() {
                    assert!(
                        e.scope_of(reply.repr.yiaddr).is_some(),
                        "address outside every scope"
                    );
                }
                let hdr = ReplyHeader {
                    eth_src: [2, 0, 0, 0, 0, 1],
                    eth_dst: reply.dest.mac,
                    vlan: f.vlan,
                    ip_src: reply.server_ip,
                    ip_dst: reply.dest.ip,
                    udp_src: SERVER_PORT,
                    udp_dst: reply.dest.port,
                    ttl: 64,
                };
                if let Ok(n) = frame::emit_reply(&hdr, &reply.repr, &mut out) {
                    frame::parse(&out[..n]).expect("a reply frame parses");
                }
            }
            Decision::Silent {
                commit: Some(c), ..
            } => {
                assert_eq!(
                    record(e, c.table, c.slot),
                    (c.version, c.lease),
                    "commit is the record"
                );
            }
            Decision::Silent { commit: None, .. } | Decision::Drop(_) => {}
        }
        // DECLINEs never abandon past a scope's cap, and the table's count is its records'.
        for t in e.store().tables() {
            let cfg = e.scope_config(t.id()).expect("a scope per table");
            assert!(t.abandoned() <= cfg.max_abandoned(t.spec()), "abandoned past the cap");
            assert_eq!(
                u64::from(t.abandoned()),
                t.counts()[BindingState::Abandoned as usize],
                "abandoned count"
            );
        }
    }
});
