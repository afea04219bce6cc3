//! tandem's benchmarks. Micro-benchmarks live in `benches/` (criterion); run them with
//! `cargo bench -p bench` (`-- --test` runs each once, as CI does). The DORA/s load
//! measurement against Kea and ISC dhcpd is `load/packet-vs-kea.sh`; results in `README.md`.
//!
//! This library holds what the benches share: the captured frames of
//! `dataplane/tests/vectors/`, a relayed scope like perfdhcp's and the requests of many
//! distinct clients, built as whole frames.
#![forbid(unsafe_code)]

pub mod loadgen;
pub mod xsk;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dataplane::engine::{Engine, EngineConfig, Ingress, SERVER_PORT, ScopeConfig};
use dataplane::wire::dhcpv4::{MessageType, Repr};
use dataplane::wire::frame::{self, ReplyHeader};
use lease_mmap::{Durability, Store, WorkerJournal};

/// The server's address (and option 54) in [`relayed_engine`]'s scope.
pub const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The relay's address (giaddr), as perfdhcp acts as a relay agent.
pub const GIADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// The server's MAC.
pub const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0x77, 0, 0x01];
/// The relay's MAC.
pub const RELAY_MAC: [u8; 6] = [0x02, 0, 0, 0x77, 0, 0x02];
/// First and last address of [`relayed_engine`]'s pool: 65,521 addresses.
pub const POOL: (Ipv4Addr, Ipv4Addr) = (
    Ipv4Addr::new(10, 77, 0, 10),
    Ipv4Addr::new(10, 77, 255, 250),
);

/// What a client asks for, as the Parameter Request List of perfdhcp's requests.
const PRL: &[u8] = &[1, 3, 6, 15, 28];

/// A comma-separated list of CPU numbers (`--cpus 0,1`).
pub fn cpu_list(s: &str) -> Result<Vec<usize>, std::num::ParseIntError> {
    s.split(',').map(|c| c.trim().parse::<usize>()).collect()
}

/// `dataplane/tests/vectors/`.
pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dataplane/tests/vectors")
}

/// One captured frame, `name` without `.hex` (e.g. `relay_01_discover`).
///
/// # Panics
/// If the file is missing or is not hex: the benches cannot run without it.
pub fn vector(name: &str) -> Vec<u8> {
    let path = vectors_dir().join(format!("{name}.hex"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    decode_hex(text.trim()).unwrap_or_else(|| panic!("{}: not hex", path.display()))
}

/// Lowercase or uppercase hex, no separators; `None` on anything else.
pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let digits = s.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    digits
        .chunks_exact(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

/// Where the benches put their stores: `TANDEM_BENCH_DIR`, else `/var/tmp` (a disk, so that
/// fdatasync costs what it costs; `/tmp` may be tmpfs).
pub fn bench_dir() -> PathBuf {
    std::env::var_os("TANDEM_BENCH_DIR").map_or_else(|| PathBuf::from("/var/tmp"), PathBuf::from)
}

/// The engine configuration: one /16 scope holding the relay's address, pool [`POOL`].
pub fn relayed_config() -> EngineConfig {
    let mut s = ScopeConfig::new(Ipv4Addr::new(10, 77, 0, 0), 16);
    s.pools = vec![POOL];
    s.router = vec![SERVER];
    s.dns = vec![Ipv4Addr::new(10, 77, 0, 53)];
    s.domain_name = Some("bench.example".into());
    EngineConfig {
        server_id: Some(SERVER),
        scopes: vec![s],
        ..EngineConfig::default()
    }
}

/// A fresh lease store in a temporary directory under [`bench_dir`] and the engine on it
/// ([`relayed_config`], one worker). The directory goes when the first element drops.
///
/// # Panics
/// If the store cannot be created.
pub fn relayed_engine(
    durability: Durability,
) -> (tempfile::TempDir, Arc<Engine>, Vec<WorkerJournal>) {
    let dir = tempfile::tempdir_in(bench_dir()).expect("tempdir");
    let cfg = relayed_config();
    let (store, journals, _) =
        Store::open(dir.path(), &cfg.table_specs(), 1, durability).expect("store");
    let engine = Engine::new(cfg, Arc::new(store)).expect("engine");
    (dir, Arc::new(engine), journals)
}

/// How relayed requests arrive: from the relay, on the server's interface.
pub const fn relayed_ingress() -> Ingress {
    Ingress {
        if_addr: SERVER,
        src_mac: RELAY_MAC,
        src_ip: GIADDR,
    }
}

/// The MAC address of client number `n` (distinct for every `n`).
pub const fn client_mac(n: u32) -> [u8; 6] {
    let b = n.to_be_bytes();
    [0x02, 0x0c, b[0], b[1], b[2], b[3]]
}

/// A relayed request of client `n`, as perfdhcp sends it: DISCOVER, or (with `offered`)
/// the SELECTING REQUEST for that address with option 54.
pub fn request(n: u32, offered: Option<Ipv4Addr>) -> Repr<'static> {
    let mut r = Repr::request(client_mac(n), n, Some(MessageType::Discover));
    r.hops = 1;
    r.giaddr = GIADDR;
    r.options.parameter_request_list = Some(PRL);
    if let Some(addr) = offered {
        r.options.message_type = Some(MessageType::Request);
        r.options.requested_ip = Some(addr);
        r.options.server_id = Some(SERVER);
    }
    r
}

/// `req` as the whole frame the relay sends: Ethernet / IPv4 / UDP 67 → 67 / DHCP.
///
/// # Panics
/// If the message cannot be emitted (it always can: it is ours).
pub fn relayed_frame(req: &Repr<'_>) -> Vec<u8> {
    let hdr = ReplyHeader {
        eth_src: RELAY_MAC,
        eth_dst: SERVER_MAC,
        vlan: None,
        ip_src: GIADDR,
        ip_dst: SERVER,
        udp_src: SERVER_PORT,
        udp_dst: SERVER_PORT,
        ttl: 64,
    };
    let mut buf = vec![0; frame::reply_len(&hdr, req)];
    let n = frame::emit_reply(&hdr, req, &mut buf).expect("emit the request frame");
    buf.truncate(n);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::engine::Decision;
    use dataplane::wire::dhcpv4::{OpCode, Packet};
    use lease_mmap::UnixTime;

    #[test]
    fn hex_decodes_and_rejects() {
        assert_eq!(decode_hex("00ff7A"), Some(vec![0, 0xff, 0x7a]));
        assert_eq!(decode_hex("0"), None);
        assert_eq!(decode_hex("zz"), None);
    }

    #[test]
    fn every_captured_request_parses() {
        for name in [
            "udhcpc_01_discover",
            "relay_01_discover",
            "relay_03_request",
        ] {
            let bytes = vector(name);
            let f = frame::parse(&bytes).expect("frame");
            let p = Packet::new_checked(f.dhcp).expect("packet");
            let mut scratch = [0; 1536];
            let r = Repr::parse(&p, &mut scratch).expect("repr");
            assert_eq!(r.op, OpCode::Request, "{name}");
        }
    }

    #[test]
    fn generated_frames_get_offers_and_acks_of_distinct_addresses() {
        let (_dir, engine, _) = relayed_engine(Durability::Async);
        let mut w = engine.worker(0, 1);
        let now = UnixTime(1_700_000_000);
        let mut seen = std::collections::HashSet::new();
        for n in 0..100 {
            let bytes = relayed_frame(&request(n, None));
            let f = frame::parse(&bytes).expect("frame");
            assert_eq!((f.ip_src, f.udp_dst), (GIADDR, SERVER_PORT));
            let p = Packet::new_checked(f.dhcp).expect("packet");
            let mut scratch = [0; 1536];
            let d = Repr::parse(&p, &mut scratch).expect("repr");
            let Decision::Reply(offer) = engine.decide(&mut w, &d, &relayed_ingress(), now) else {
                panic!("no offer for client {n}");
            };
            let addr = offer.repr.yiaddr;
            assert!(seen.insert(addr), "{addr} offered twice");
            let r = request(n, Some(addr));
            let Decision::Reply(ack) = engine.decide(&mut w, &r, &relayed_ingress(), now) else {
                panic!("no ack for client {n}");
            };
            assert_eq!(ack.repr.options.message_type, Some(MessageType::Ack));
            assert_eq!(ack.repr.yiaddr, addr);
        }
    }
}
