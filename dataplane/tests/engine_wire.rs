//! Bytes in, bytes out: requests encoded by an independent DHCP library (dhcproto), parsed
//! by `wire::dhcpv4`, decided by the engine, emitted by `wire::dhcpv4` and decoded again by
//! dhcproto, as a client would see them.

use std::net::Ipv4Addr;
use std::sync::Arc;

use dataplane::engine::{Decision, Engine, EngineConfig, Ingress, ScopeConfig};
use dataplane::wire::dhcpv4::{Packet, Repr};
use dhcproto::v4::{self, DhcpOption, Message, OptionCode};
use dhcproto::{Decodable, Encodable};
use lease_mmap::{Durability, Store, UnixTime};

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x42];

fn engine(dir: &tempfile::TempDir) -> Engine {
    let mut s = ScopeConfig::new(Ipv4Addr::new(10, 0, 0, 0), 24);
    s.pools = vec![(Ipv4Addr::new(10, 0, 0, 100), Ipv4Addr::new(10, 0, 0, 110))];
    s.router = vec![SERVER];
    s.dns = vec![Ipv4Addr::new(9, 9, 9, 9), Ipv4Addr::new(1, 1, 1, 1)];
    s.domain_name = Some("lan.example".into());
    let cfg = EngineConfig {
        scopes: vec![s],
        ..EngineConfig::default()
    };
    let (store, _, _) =
        Store::open(dir.path(), &cfg.table_specs(), 1, Durability::Async).expect("store");
    Engine::new(cfg, Arc::new(store)).expect("engine")
}

fn client_msg(mt: v4::MessageType, extra: &[DhcpOption]) -> Vec<u8> {
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(0xdead_beef, z, z, z, z, &MAC);
    m.opts_mut().insert(DhcpOption::MessageType(mt));
    m.opts_mut()
        .insert(DhcpOption::ClientIdentifier(vec![1, 2, 0, 0, 0, 0, 0x42]));
    m.opts_mut().insert(DhcpOption::ParameterRequestList(vec![
        OptionCode::SubnetMask,
        OptionCode::Router,
        OptionCode::DomainNameServer,
        OptionCode::DomainName,
    ]));
    for o in extra {
        m.opts_mut().insert(o.clone());
    }
    m.to_vec().expect("encode")
}

/// Parse `bytes`, decide, emit the reply; decode it with dhcproto.
fn exchange(
    e: &Engine,
    w: &mut dataplane::engine::EngineWorker,
    bytes: &[u8],
    now: UnixTime,
) -> Message {
    let packet = Packet::new_checked(bytes).expect("packet");
    let mut scratch = [0u8; 1024];
    let req = Repr::parse(&packet, &mut scratch).expect("parse");
    let ing = Ingress {
        if_addr: SERVER,
        src_mac: MAC,
        src_ip: Ipv4Addr::UNSPECIFIED,
    };
    let Decision::Reply(reply) = e.decide(w, &req, &ing, now) else {
        panic!("no reply");
    };
    let mut out = vec![0u8; reply.repr.buffer_len()];
    reply
        .repr
        .emit(&mut Packet::new_unchecked(&mut out[..]))
        .expect("emit");
    Message::from_bytes(&out).expect("dhcproto decodes our reply")
}

#[test]
fn dora_on_the_wire() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = engine(&dir);
    let mut w = e.worker(0, 1);
    let now = UnixTime(1_700_000_000);

    let offer = exchange(&e, &mut w, &client_msg(v4::MessageType::Discover, &[]), now);
    assert_eq!(offer.opcode(), v4::Opcode::BootReply);
    assert_eq!(offer.xid(), 0xdead_beef);
    assert_eq!(offer.opts().msg_type(), Some(v4::MessageType::Offer));
    let yiaddr = offer.yiaddr();
    assert!((Ipv4Addr::new(10, 0, 0, 100)..=Ipv4Addr::new(10, 0, 0, 110)).contains(&yiaddr));
    assert_eq!(offer.chaddr(), &MAC);
    let o = offer.opts();
    assert_eq!(
        o.get(OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(SERVER))
    );
    assert_eq!(
        o.get(OptionCode::AddressLeaseTime),
        Some(&DhcpOption::AddressLeaseTime(3600))
    );
    assert_eq!(o.get(OptionCode::Renewal), Some(&DhcpOption::Renewal(1800)));
    assert_eq!(
        o.get(OptionCode::Rebinding),
        Some(&DhcpOption::Rebinding(3150))
    );
    assert_eq!(
        o.get(OptionCode::SubnetMask),
        Some(&DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)))
    );
    assert_eq!(
        o.get(OptionCode::Router),
        Some(&DhcpOption::Router(vec![SERVER]))
    );
    assert_eq!(
        o.get(OptionCode::DomainNameServer),
        Some(&DhcpOption::DomainNameServer(vec![
            Ipv4Addr::new(9, 9, 9, 9),
            Ipv4Addr::new(1, 1, 1, 1)
        ]))
    );
    assert_eq!(
        o.get(OptionCode::DomainName),
        Some(&DhcpOption::DomainName("lan.example".into()))
    );
    assert_eq!(
        o.get(OptionCode::ClientIdentifier),
        Some(&DhcpOption::ClientIdentifier(vec![1, 2, 0, 0, 0, 0, 0x42]))
    );

    let req = client_msg(
        v4::MessageType::Request,
        &[
            DhcpOption::ServerIdentifier(SERVER),
            DhcpOption::RequestedIpAddress(yiaddr),
        ],
    );
    let ack = exchange(&e, &mut w, &req, now.saturating_add(1));
    assert_eq!(ack.opts().msg_type(), Some(v4::MessageType::Ack));
    assert_eq!(ack.yiaddr(), yiaddr);

    // Another client asking for that address is NAKed, and the NAK decodes too.
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(7, z, z, z, z, &[2, 0, 0, 0, 0, 0x43]);
    m.opts_mut()
        .insert(DhcpOption::MessageType(v4::MessageType::Request));
    m.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
    m.opts_mut().insert(DhcpOption::RequestedIpAddress(yiaddr));
    let nak = exchange(
        &e,
        &mut w,
        &m.to_vec().expect("encode"),
        now.saturating_add(2),
    );
    assert_eq!(nak.opts().msg_type(), Some(v4::MessageType::Nak));
    assert_eq!(nak.yiaddr(), z);
    assert!(nak.opts().get(OptionCode::AddressLeaseTime).is_none());
}
