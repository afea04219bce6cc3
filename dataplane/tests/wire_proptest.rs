//! Property tests: emit∘parse is the identity for every Repr, and no parser panics on
//! arbitrary bytes.

use std::net::Ipv4Addr;

use dataplane::wire::dhcpv4::{self, MessageType, OpCode, Options, Packet, Repr};
use dataplane::wire::frame::{self, ReplyHeader};
use dataplane::wire::options::{OptionWriter, OptionsIter};
use dataplane::wire::relay::{RelayAgentInfo, SubOptions};
use dataplane::wire::{ethernet, ipv4, udp};
use proptest::prelude::*;

fn addr() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

/// Owned values behind a `Repr`, so proptest can generate them.
#[derive(Clone, Debug)]
struct Owned {
    op: OpCode,
    fixed: (u8, u8, u8, u32, u16, u16),
    addrs: [Ipv4Addr; 4],
    chaddr: [u8; 16],
    sname: Vec<u8>,
    file: Vec<u8>,
    is_dhcp: bool,
    msg_type: Option<u8>,
    ips: [Option<Ipv4Addr>; 6],
    times: [Option<u32>; 3],
    max_size: Option<u16>,
    lists: [Option<Vec<u8>>; 2],
    blobs: [Option<Vec<u8>>; 7],
}

fn opt_bytes(min: usize, max: usize) -> BoxedStrategy<Option<Vec<u8>>> {
    proptest::option::of(proptest::collection::vec(any::<u8>(), min..max)).boxed()
}

fn owned() -> impl Strategy<Value = Owned> {
    let non_nul = |max| proptest::collection::vec(1u8..=255, 0..=max);
    let addr_list = proptest::option::of(
        proptest::collection::vec(any::<[u8; 4]>(), 0..80).prop_map(|v| v.concat()),
    );
    (
        (
            prop_oneof![Just(OpCode::Request), Just(OpCode::Reply)],
            (
                any::<u8>(),
                0u8..=16,
                any::<u8>(),
                any::<u32>(),
                any::<u16>(),
                any::<u16>(),
            ),
            [addr(), addr(), addr(), addr()],
            any::<[u8; 16]>(),
            non_nul(64),
            non_nul(128),
            any::<bool>(),
        ),
        (
            proptest::option::of(any::<u8>()),
            [
                proptest::option::of(addr()),
                proptest::option::of(addr()),
                proptest::option::of(addr()),
                proptest::option::of(addr()),
                proptest::option::of(addr()),
                proptest::option::of(addr()),
            ],
            [
                proptest::option::of(any::<u32>()),
                proptest::option::of(any::<u32>()),
                proptest::option::of(any::<u32>()),
            ],
            proptest::option::of(576u16..),
            [addr_list.clone(), addr_list],
            // hostname and domain name up to 600 bytes: split per RFC 3396.
            [
                opt_bytes(0, 600),
                opt_bytes(0, 600),
                opt_bytes(0, 40),
                opt_bytes(0, 300),
                opt_bytes(0, 40),
                opt_bytes(2, 300),
                opt_bytes(0, 300),
            ],
        ),
    )
        .prop_map(|(a, b)| Owned {
            op: a.0,
            fixed: a.1,
            addrs: a.2,
            chaddr: a.3,
            sname: a.4,
            file: a.5,
            is_dhcp: a.6,
            msg_type: b.0,
            ips: b.1,
            times: b.2,
            max_size: b.3,
            lists: b.4,
            blobs: b.5,
        })
}

impl Owned {
    fn repr(&self) -> Repr<'_> {
        let b = |i: usize| self.blobs[i].as_deref();
        let options = if self.is_dhcp {
            Options {
                message_type: self.msg_type.map(MessageType::from),
                subnet_mask: self.ips[0],
                router: self.lists[0].as_deref(),
                dns: self.lists[1].as_deref(),
                hostname: b(0),
                domain_name: b(1),
                broadcast_addr: self.ips[1],
                requested_ip: self.ips[2],
                lease_time: self.times[0],
                overload: None,
                server_id: self.ips[3],
                parameter_request_list: b(2),
                message: b(3),
                max_message_size: self.max_size,
                renewal_time: self.times[1],
                rebinding_time: self.times[2],
                vendor_class: b(4),
                client_id: b(5),
                relay_agent_info: b(6),
                subnet_selection: self.ips[4].or(self.ips[5]),
            }
        } else {
            Options::default()
        };
        let (htype, hlen, hops, xid, secs, flags) = self.fixed;
        Repr {
            op: self.op,
            htype,
            hlen,
            hops,
            xid,
            secs,
            flags,
            ciaddr: self.addrs[0],
            yiaddr: self.addrs[1],
            siaddr: self.addrs[2],
            giaddr: self.addrs[3],
            chaddr: self.chaddr,
            sname: &self.sname,
            file: &self.file,
            is_dhcp: self.is_dhcp,
            options,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn ethernet_round_trip(src: [u8; 6], dst: [u8; 6], vlan: Option<u16>,
                           ethertype in any::<u16>().prop_filter("not a TPID", |t| *t != 0x8100)) {
        let repr = ethernet::Repr { src_addr: src, dst_addr: dst, vlan, ethertype };
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut ethernet::Packet::new_unchecked(&mut buf[..])).unwrap();
        let p = ethernet::Packet::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(ethernet::Repr::parse(&p).unwrap(), repr);
        prop_assert_eq!(p.header_len(), buf.len());
    }

    #[test]
    fn ipv4_round_trip(src in addr(), dst in addr(), protocol: u8, ttl: u8,
                       payload in proptest::collection::vec(any::<u8>(), 0..600)) {
        let repr = ipv4::Repr { src_addr: src, dst_addr: dst, protocol, payload_len: payload.len(), ttl };
        let mut buf = vec![0u8; 20 + payload.len()];
        buf[20..].copy_from_slice(&payload);
        repr.emit(&mut ipv4::Packet::new_unchecked(&mut buf[..])).unwrap();
        let p = ipv4::Packet::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(ipv4::Repr::parse(&p).unwrap(), repr);
        prop_assert_eq!(p.payload(), &payload[..]);
    }

    #[test]
    fn udp_round_trip(src in addr(), dst in addr(), sport: u16, dport: u16,
                      payload in proptest::collection::vec(any::<u8>(), 0..600)) {
        let repr = udp::Repr { src_port: sport, dst_port: dport, payload_len: payload.len() };
        let mut buf = vec![0u8; 8 + payload.len()];
        buf[8..].copy_from_slice(&payload);
        repr.emit(&mut udp::Packet::new_unchecked(&mut buf[..]), src, dst).unwrap();
        let p = udp::Packet::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(udp::Repr::parse(&p).unwrap(), repr);
        prop_assert!(p.verify_checksum(src, dst));
        prop_assert_ne!(p.checksum(), 0);
    }

    #[test]
    fn dhcpv4_round_trip(o in owned()) {
        let repr = o.repr();
        let n = repr.buffer_len();
        prop_assert!(n >= dhcpv4::MIN_MESSAGE_LEN);
        let mut buf = vec![0u8; n];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
        // Too short a buffer is an error, not a panic.
        prop_assert!(repr.emit(&mut Packet::new_unchecked(&mut buf.clone()[..n - 1])).is_err());
        let mut scratch = [0u8; 4096];
        let parsed = Repr::parse(&Packet::new_checked(&buf[..]).unwrap(), &mut scratch).unwrap();
        prop_assert_eq!(parsed, repr);
        // Emitting the parsed repr gives the same bytes.
        let mut again = vec![0u8; parsed.buffer_len()];
        parsed.emit(&mut Packet::new_unchecked(&mut again[..])).unwrap();
        prop_assert_eq!(again, buf);
    }

    #[test]
    fn frame_round_trip(o in owned(), eth_src: [u8; 6], eth_dst: [u8; 6], vlan: Option<u16>,
                        ip_src in addr(), ip_dst in addr(), udp_src: u16, udp_dst: u16, ttl: u8) {
        let repr = o.repr();
        let hdr = ReplyHeader { eth_src, eth_dst, vlan, ip_src, ip_dst, udp_src, udp_dst, ttl };
        let mut buf = vec![0u8; 9000];
        let len = frame::emit_reply(&hdr, &repr, &mut buf).unwrap();
        prop_assert_eq!(len, frame::reply_len(&hdr, &repr));
        prop_assert!(frame::emit_reply(&hdr, &repr, &mut buf.clone()[..len - 1]).is_err());
        let f = frame::parse(&buf[..len]).unwrap();
        prop_assert_eq!((f.eth_src, f.eth_dst, f.vlan), (eth_src, eth_dst, vlan));
        prop_assert_eq!((f.ip_src, f.ip_dst, f.udp_src, f.udp_dst), (ip_src, ip_dst, udp_src, udp_dst));
        let mut scratch = [0u8; 4096];
        prop_assert_eq!(Repr::parse(&Packet::new_checked(f.dhcp).unwrap(), &mut scratch).unwrap(), repr);
        let ip_start = if vlan.is_some() { 18 } else { 14 };
        let ip = ipv4::Packet::new_checked(&buf[ip_start..len]).unwrap();
        prop_assert!(ip.verify_checksum());
        prop_assert!(udp::Packet::new_checked(ip.payload()).unwrap().verify_checksum(ip_src, ip_dst));
    }

    #[test]
    fn option_writer_round_trip(opts in proptest::collection::vec((1u8..=254, proptest::collection::vec(any::<u8>(), 0..300)), 0..6),
                                cap in 0usize..2000) {
        let mut buf = vec![0u8; cap];
        let mut w = OptionWriter::new(&mut buf);
        let mut written = Vec::new();
        for (k, d) in &opts {
            if w.emit(*k, d).is_ok() {
                written.push((*k, d.clone()));
            }
        }
        match w.finish() {
            Ok(n) => {
                // Re-assemble: consecutive instances of the same code, as written.
                let mut got: Vec<(u8, Vec<u8>)> = Vec::new();
                for o in OptionsIter::new(&buf[..n]) {
                    let o = o.unwrap();
                    got.push((o.kind, o.data.to_vec()));
                }
                let flat: Vec<(u8, Vec<u8>)> = written.iter().flat_map(|(k, d)| {
                    if d.is_empty() { vec![(*k, Vec::new())] } else { d.chunks(255).map(|c| (*k, c.to_vec())).collect() }
                }).collect();
                prop_assert_eq!(got, flat);
                prop_assert_eq!(buf[n - 1], 255);
            }
            Err(_) => prop_assert_eq!(cap, 0),
        }
    }

    #[test]
    fn parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..1600)) {
        let _ = frame::parse(&data);
        let mut scratch = [0u8; 256];
        if let Ok(p) = Packet::new_checked(&data[..]) {
            let _ = Repr::parse(&p, &mut scratch);
        }
        let _ = OptionsIter::new(&data).count();
        let _ = SubOptions::new(&data).count();
        let _ = RelayAgentInfo::parse(&data);
        if let Ok(p) = ipv4::Packet::new_checked(&data[..]) {
            let _ = ipv4::Repr::parse(&p);
        }
    }

    /// A DHCP packet whose options area is random bytes never panics the parser.
    #[test]
    fn random_options_never_panic(opts in proptest::collection::vec(any::<u8>(), 0..600), overload in 0u8..4) {
        let mut buf = vec![0u8; 240];
        buf[0] = 1;
        buf[2] = 6;
        buf[236..240].copy_from_slice(&dhcpv4::MAGIC_COOKIE.to_be_bytes());
        buf.extend_from_slice(&[52, 1, overload]);
        buf.extend_from_slice(&opts);
        // Random bytes in file and sname too.
        for (i, b) in opts.iter().take(192).enumerate() {
            buf[44 + i] = *b;
        }
        let mut scratch = [0u8; 1024];
        let _ = Repr::parse(&Packet::new_checked(&buf[..]).unwrap(), &mut scratch);
    }
}
