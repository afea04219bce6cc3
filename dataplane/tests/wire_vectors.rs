//! Captured frames from real clients and servers (`tests/vectors/capture.sh`: kea-dhcp4,
//! udhcpc, dhcpcd, dhclient, perfdhcp as a relay): every one parses, its fields match
//! `dhcproto` (test oracle only), and emit∘parse gives the same message back.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use dataplane::wire::dhcpv4::{MessageType, OpCode, Packet, Repr};
use dataplane::wire::frame::{self, ReplyHeader};
use dataplane::wire::relay::RelayAgentInfo;
use dataplane::wire::{ethernet, ipv4, udp};

struct Vector {
    name: String,
    bytes: Vec<u8>,
}

fn vectors() -> Vec<Vector> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut out: Vec<Vector> = std::fs::read_dir(&dir)
        .expect("vectors dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "hex"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read vector");
            Vector {
                name: p.file_stem().expect("stem").to_string_lossy().into_owned(),
                bytes: hex(text.trim()),
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(
        out.len() >= 20,
        "only {} vectors: run tests/vectors/capture.sh",
        out.len()
    );
    out
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn kind_of(name: &str) -> &str {
    name.rsplit('_').next().expect("kind")
}

fn expected_type(kind: &str) -> MessageType {
    match kind {
        "discover" => MessageType::Discover,
        "offer" => MessageType::Offer,
        "request" => MessageType::Request,
        "decline" => MessageType::Decline,
        "ack" => MessageType::Ack,
        "nak" => MessageType::Nak,
        "release" => MessageType::Release,
        "inform" => MessageType::Inform,
        other => panic!("unknown vector kind {other}"),
    }
}

fn find<'v>(vs: &'v [Vector], prefix: &str, kind: &str) -> &'v Vector {
    vs.iter()
        .find(|v| v.name.starts_with(prefix) && kind_of(&v.name) == kind)
        .unwrap_or_else(|| panic!("no {prefix}*_{kind} vector"))
}

/// Parses a vector's DHCP payload with a fresh scratch and hands the repr to `f`.
fn with_repr<R>(v: &Vector, f: impl FnOnce(&frame::Frame<'_>, &Repr<'_>) -> R) -> R {
    let fr = frame::parse(&v.bytes).unwrap_or_else(|e| panic!("{}: frame {e:?}", v.name));
    let mut scratch = [0u8; 1024];
    let pkt = Packet::new_checked(fr.dhcp).unwrap_or_else(|e| panic!("{}: {e:?}", v.name));
    let repr = Repr::parse(&pkt, &mut scratch).unwrap_or_else(|e| panic!("{}: {e:?}", v.name));
    f(&fr, &repr)
}

#[test]
fn every_kind_is_covered() {
    let vs = vectors();
    for kind in [
        "discover", "offer", "request", "ack", "nak", "release", "decline", "inform",
    ] {
        assert!(
            vs.iter().any(|v| kind_of(&v.name) == kind),
            "no {kind} vector"
        );
    }
    assert!(
        vs.iter()
            .any(|v| v.name.starts_with("relay_") && kind_of(&v.name) == "discover")
    );
    assert!(
        vs.iter()
            .any(|v| v.name.starts_with("relay_") && kind_of(&v.name) == "request")
    );
}

#[test]
fn every_vector_parses_and_round_trips() {
    let mut identical = Vec::new();
    for v in vectors() {
        with_repr(&v, |fr, repr| {
            assert!([67, 68].contains(&fr.udp_dst), "{}", v.name);
            assert!(repr.is_dhcp, "{}", v.name);
            assert_eq!(
                repr.options.message_type,
                Some(expected_type(kind_of(&v.name))),
                "{}",
                v.name
            );
            let client_sent = matches!(
                repr.options.message_type,
                Some(
                    MessageType::Discover
                        | MessageType::Request
                        | MessageType::Decline
                        | MessageType::Release
                        | MessageType::Inform
                )
            );
            assert_eq!(
                repr.op,
                if client_sent {
                    OpCode::Request
                } else {
                    OpCode::Reply
                },
                "{}",
                v.name
            );
            assert_eq!((repr.htype, repr.hlen), (1, 6), "{}", v.name);
            if client_sent && fr.udp_src == 68 {
                assert_eq!(repr.chaddr[..6], fr.eth_src, "{}", v.name);
            }
            cross_check(&v.name, fr.dhcp, repr);

            // emit(parse(x)) parses back to parse(x); option 52 is never emitted.
            let n = repr.buffer_len();
            assert!(n >= 300);
            let mut out = vec![0u8; n];
            repr.emit(&mut Packet::new_unchecked(&mut out[..]))
                .expect("emit");
            let mut scratch = [0u8; 1024];
            let again = Repr::parse(&Packet::new_checked(&out[..]).expect("len"), &mut scratch)
                .expect("re-parse");
            let mut expect = *repr;
            expect.options.overload = None;
            assert_eq!(again, expect, "{}", v.name);
            if out[..] == fr.dhcp[..] {
                identical.push(v.name.clone());
            }
            // Semantically the same options: every known option of the capture, and no
            // other, with the same data (Kea sorts by code, we use our fixed order).
            assert_eq!(
                known_tlvs(&out[240..]),
                known_tlvs(&fr.dhcp[240..]),
                "{}",
                v.name
            );

            // The same message as a whole frame, with the captured addressing.
            let hdr = ReplyHeader {
                eth_src: fr.eth_src,
                eth_dst: fr.eth_dst,
                vlan: fr.vlan,
                ip_src: fr.ip_src,
                ip_dst: fr.ip_dst,
                udp_src: fr.udp_src,
                udp_dst: fr.udp_dst,
                ttl: 64,
            };
            let mut buf = [0u8; 1600];
            let len = frame::emit_reply(&hdr, repr, &mut buf).expect("emit_reply");
            assert_eq!(len, frame::reply_len(&hdr, repr));
            let back = frame::parse(&buf[..len]).expect("parse emitted frame");
            assert_eq!(
                (back.eth_src, back.eth_dst, back.vlan),
                (fr.eth_src, fr.eth_dst, fr.vlan)
            );
            assert_eq!((back.ip_src, back.ip_dst), (fr.ip_src, fr.ip_dst));
            assert_eq!((back.udp_src, back.udp_dst), (fr.udp_src, fr.udp_dst));
            assert_eq!(back.dhcp, &out[..], "{}", v.name);
            let ip = ipv4::Packet::new_checked(&buf[14..len]).expect("ip");
            assert!(ip.verify_checksum() && !ip.dont_frag());
            let u = udp::Packet::new_checked(ip.payload()).expect("udp");
            assert_ne!(u.checksum(), 0);
            assert!(u.verify_checksum(fr.ip_src, fr.ip_dst));
        });
    }
    eprintln!("byte-identical re-emits: {identical:?}");
    assert!(!identical.is_empty(), "no capture re-emits byte for byte");
}

/// The options `Options` keeps (52 aside), sorted, as (code, data).
fn known_tlvs(area: &[u8]) -> Vec<(u8, Vec<u8>)> {
    const KNOWN: [u8; 19] = [
        1, 3, 6, 12, 15, 28, 50, 51, 53, 54, 55, 56, 57, 58, 59, 60, 61, 82, 118,
    ];
    let mut v: Vec<(u8, Vec<u8>)> = dataplane::wire::options::OptionsIter::new(area)
        .map(|o| o.expect("valid option"))
        .filter(|o| KNOWN.contains(&o.kind))
        .map(|o| (o.kind, o.data.to_vec()))
        .collect();
    v.sort();
    v
}

/// Field-by-field comparison with `dhcproto`'s decoding of the same bytes.
fn cross_check(name: &str, bytes: &[u8], repr: &Repr<'_>) {
    use dhcproto::v4::{Message, OptionCode};
    use dhcproto::{Decodable, Decoder, Encodable, Encoder};

    let m = Message::decode(&mut Decoder::new(bytes)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(m.xid(), repr.xid, "{name}");
    assert_eq!(m.secs(), repr.secs, "{name}");
    assert_eq!(m.hops(), repr.hops, "{name}");
    assert_eq!(m.flags().broadcast(), repr.flags & 0x8000 != 0, "{name}");
    assert_eq!(m.ciaddr(), repr.ciaddr, "{name}");
    assert_eq!(m.yiaddr(), repr.yiaddr, "{name}");
    assert_eq!(m.siaddr(), repr.siaddr, "{name}");
    assert_eq!(m.giaddr(), repr.giaddr, "{name}");
    assert_eq!(m.chaddr(), &repr.chaddr[..usize::from(repr.hlen)], "{name}");
    assert_eq!(
        m.opts().msg_type().map(u8::from),
        repr.options.message_type.map(u8::from),
        "{name}"
    );
    let o = &repr.options;
    let ip = |a: Option<Ipv4Addr>| a.map(|a| a.octets().to_vec());
    let be32 = |v: Option<u32>| v.map(|v| v.to_be_bytes().to_vec());
    let ours: [(u8, Option<Vec<u8>>); 16] = [
        (1, ip(o.subnet_mask)),
        (3, o.router.map(<[u8]>::to_vec)),
        (6, o.dns.map(<[u8]>::to_vec)),
        (12, o.hostname.map(<[u8]>::to_vec)),
        (15, o.domain_name.map(<[u8]>::to_vec)),
        (28, ip(o.broadcast_addr)),
        (50, ip(o.requested_ip)),
        (51, be32(o.lease_time)),
        (54, ip(o.server_id)),
        (55, o.parameter_request_list.map(<[u8]>::to_vec)),
        (56, o.message.map(<[u8]>::to_vec)),
        (57, o.max_message_size.map(|v| v.to_be_bytes().to_vec())),
        (58, be32(o.renewal_time)),
        (59, be32(o.rebinding_time)),
        (60, o.vendor_class.map(<[u8]>::to_vec)),
        (61, o.client_id.map(<[u8]>::to_vec)),
    ];
    for (code, value) in ours {
        let theirs = m.opts().get(OptionCode::from(code));
        match (value, theirs) {
            (None, None) => {}
            (Some(v), Some(t)) => {
                let mut enc = Vec::new();
                t.encode(&mut Encoder::new(&mut enc)).expect("encode");
                assert_eq!(enc[0], code, "{name} option {code}");
                assert_eq!(&enc[2..], &v[..], "{name} option {code}");
            }
            (v, t) => panic!("{name} option {code}: ours {v:?}, dhcproto {t:?}"),
        }
    }
    assert_eq!(
        repr.options.relay_agent_info.is_some(),
        m.opts().get(OptionCode::RelayAgentInformation).is_some(),
        "{name}"
    );
}

#[test]
fn kea_ack_fields() {
    let vs = vectors();
    with_repr(find(&vs, "udhcpc_", "ack"), |fr, r| {
        assert_eq!(fr.ip_src, Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!((fr.udp_src, fr.udp_dst), (67, 68));
        assert_eq!(fr.vlan, None);
        assert_eq!(r.op, OpCode::Reply);
        assert_eq!(r.chaddr[..6], [2, 0, 0, 0x77, 0, 2]);
        assert_eq!(r.yiaddr.octets()[..3], [10, 77, 0]);
        assert!((100..=150).contains(&r.yiaddr.octets()[3]));
        let o = &r.options;
        assert_eq!(o.server_id, Some(Ipv4Addr::new(10, 77, 0, 1)));
        assert_eq!(o.lease_time, Some(600));
        assert_eq!(o.renewal_time, Some(300));
        assert_eq!(o.rebinding_time, Some(525));
        assert_eq!(o.subnet_mask, Some(Ipv4Addr::new(255, 255, 255, 0)));
        assert_eq!(o.router, Some(&[10, 77, 0, 1][..]));
        assert_eq!(o.dns, Some(&[10, 77, 0, 1, 10, 77, 0, 53][..]));
        assert_eq!(o.domain_name, Some(&b"tandem.test"[..]));
    });
}

#[test]
fn client_messages() {
    let vs = vectors();
    with_repr(find(&vs, "udhcpc_", "discover"), |fr, r| {
        assert_eq!(fr.ip_src, Ipv4Addr::UNSPECIFIED);
        assert_eq!(fr.ip_dst, Ipv4Addr::BROADCAST);
        assert_eq!(fr.eth_dst, ethernet::BROADCAST);
        assert_eq!((fr.udp_src, fr.udp_dst), (68, 67));
        assert_eq!(r.options.hostname, Some(&b"tdm-client"[..]));
        assert!(
            r.options
                .parameter_request_list
                .is_some_and(|p| p.contains(&1))
        );
    });
    with_repr(find(&vs, "udhcpc_", "request"), |_, r| {
        assert_eq!(r.options.server_id, Some(Ipv4Addr::new(10, 77, 0, 1)));
        assert!(r.options.requested_ip.is_some());
    });
    with_repr(find(&vs, "", "release"), |fr, r| {
        assert_ne!(r.ciaddr, Ipv4Addr::UNSPECIFIED);
        assert_eq!(fr.ip_dst, Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(r.options.server_id, Some(Ipv4Addr::new(10, 77, 0, 1)));
    });
    with_repr(find(&vs, "decline_", "decline"), |_, r| {
        assert_eq!(r.options.requested_ip, Some(Ipv4Addr::new(10, 77, 0, 150)));
        assert_eq!(r.options.server_id, Some(Ipv4Addr::new(10, 77, 0, 1)));
    });
    with_repr(find(&vs, "inform_", "inform"), |_, r| {
        assert_eq!(r.ciaddr, Ipv4Addr::new(10, 77, 0, 60));
    });
    with_repr(find(&vs, "nak_", "nak"), |_, r| {
        assert_eq!(r.yiaddr, Ipv4Addr::UNSPECIFIED);
        assert_eq!(r.options.server_id, Some(Ipv4Addr::new(10, 77, 0, 1)));
    });
    with_repr(find(&vs, "nak_", "request"), |_, r| {
        // dhclient's INIT-REBOOT for the remembered foreign lease.
        assert_eq!(r.options.requested_ip, Some(Ipv4Addr::new(10, 99, 0, 5)));
    });
}

#[test]
fn relayed_messages() {
    let vs = vectors();
    for kind in ["discover", "request"] {
        with_repr(find(&vs, "relay_", kind), |fr, r| {
            assert_eq!((fr.udp_src, fr.udp_dst), (67, 67));
            assert_eq!(fr.ip_dst, Ipv4Addr::new(10, 77, 0, 1));
            assert_eq!(r.giaddr, Ipv4Addr::new(10, 77, 0, 2));
            let info = r.relay_agent_info().expect("option 82").expect("valid 82");
            assert_eq!(info.circuit_id, Some(&b"eth0/1"[..]));
            assert_eq!(info.remote_id, Some(&[2, 0, 0, 0x77, 0, 2][..]));
        });
    }
    with_repr(find(&vs, "relay_", "offer"), |fr, r| {
        assert_eq!(fr.ip_dst, Ipv4Addr::new(10, 77, 0, 2));
        assert_eq!(fr.udp_dst, 67);
        assert_eq!(r.giaddr, Ipv4Addr::new(10, 77, 0, 2));
        // RFC 3046 §2.2: echoed unchanged.
        let info = RelayAgentInfo::parse(r.options.relay_agent_info.expect("82 echoed"))
            .expect("valid 82");
        assert_eq!(info.circuit_id, Some(&b"eth0/1"[..]));
    });
}
