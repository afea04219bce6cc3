//! Malformed and edge-case input: every case returns `Err` (or the documented value) and
//! none panics. Also the RFC 3396 / option overload reassembly.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use dataplane::wire::Error;
use dataplane::wire::dhcpv4::{self, MessageType, Options, Packet, Repr};
use dataplane::wire::frame::{self, ReplyHeader};
use dataplane::wire::{ethernet, ipv4};

/// A BOOTREQUEST with the cookie and `opts` as its options area.
fn dhcp(opts: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 240];
    b[0] = 1;
    b[1] = 1;
    b[2] = 6;
    b[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    b[28..34].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
    b[236..240].copy_from_slice(&dhcpv4::MAGIC_COOKIE.to_be_bytes());
    b.extend_from_slice(opts);
    b
}

fn parse(bytes: &[u8]) -> Result<Repr<'_>, Error> {
    // Leaks 1 KiB per call so the repr can outlive this helper; fine in a test.
    let scratch: &'static mut [u8] = Box::leak(vec![0u8; 1024].into_boxed_slice());
    Repr::parse(&Packet::new_checked(bytes)?, scratch)
}

fn header() -> ReplyHeader {
    ReplyHeader {
        eth_src: [2, 0, 0, 0, 0, 1],
        eth_dst: [2, 0, 0, 0, 0, 2],
        vlan: None,
        ip_src: Ipv4Addr::new(10, 0, 0, 1),
        ip_dst: Ipv4Addr::new(10, 0, 0, 2),
        udp_src: 67,
        udp_dst: 68,
        ttl: 64,
    }
}

fn good_frame(vlan: Option<u16>) -> Vec<u8> {
    let msg = dhcp(&[53, 1, 1, 255]);
    let repr = parse(&msg).unwrap();
    let mut buf = vec![0u8; 1500];
    let n = frame::emit_reply(&ReplyHeader { vlan, ..header() }, &repr, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn vectors() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hex"))
        .map(|p| {
            let t = std::fs::read_to_string(p).unwrap();
            let t = t.trim();
            (0..t.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&t[i..i + 2], 16).unwrap())
                .collect()
        })
        .collect()
}

#[test]
fn truncated_at_every_length() {
    let mut all = vectors();
    all.push(good_frame(None));
    all.push(good_frame(Some(7)));
    for v in all {
        let full = frame::parse(&v).expect("vector parses");
        // DHCP frames are longer than the Ethernet minimum: no trailer, the IPv4 datagram
        // ends with the frame, so every shorter cut breaks a length.
        for len in 0..v.len() {
            assert_eq!(frame::parse(&v[..len]), Err(Error), "frame cut at {len}");
        }
        let payload = full.dhcp;
        for len in 0..payload.len() {
            let r = parse(&payload[..len]);
            if len < dhcpv4::BOOTP_HEADER_LEN {
                assert_eq!(r, Err(Error), "dhcp cut at {len}");
            }
        }
    }
}

fn with_ip(mut f: Vec<u8>, edit: impl FnOnce(&mut ipv4::Packet<&mut [u8]>)) -> Vec<u8> {
    let mut p = ipv4::Packet::new_unchecked(&mut f[14..]);
    edit(&mut p);
    p.fill_checksum();
    f
}

#[test]
fn bad_ipv4() {
    let f = good_frame(None);
    assert!(frame::parse(&f).is_ok());
    // IHL 4 (< 20 bytes).
    assert_eq!(
        frame::parse(&with_ip(f.clone(), |p| p.set_version_and_header_len(4, 16))),
        Err(Error)
    );
    // IHL 15: the header runs into the UDP header, whose bytes then fail the checksum or the
    // UDP length check; either way an error.
    let mut g = f.clone();
    g[14] = 0x4f;
    assert_eq!(frame::parse(&g), Err(Error));
    // Total length past the buffer, and below the header length.
    let total = u16::try_from(f.len() - 14).unwrap();
    assert_eq!(
        frame::parse(&with_ip(f.clone(), |p| p.set_total_len(total + 1))),
        Err(Error)
    );
    assert_eq!(
        frame::parse(&with_ip(f.clone(), |p| p.set_total_len(19))),
        Err(Error)
    );
    // Version 6 in an IPv4 EtherType.
    assert_eq!(
        frame::parse(&with_ip(f.clone(), |p| p.set_version_and_header_len(6, 20))),
        Err(Error)
    );
    // Bad header checksum.
    let mut g = f.clone();
    g[14 + 10] ^= 0xff;
    assert_eq!(frame::parse(&g), Err(Error));
    // Fragments: MF, then an offset.
    assert_eq!(
        frame::parse(&with_ip(f.clone(), |p| p.set_flags_and_offset(0x2000))),
        Err(Error)
    );
    assert_eq!(
        frame::parse(&with_ip(f.clone(), |p| p.set_flags_and_offset(0x0010))),
        Err(Error)
    );
    // DF alone is fine.
    assert!(frame::parse(&with_ip(f.clone(), |p| p.set_flags_and_offset(0x4000))).is_ok());
    // Not UDP.
    assert_eq!(
        frame::parse(&with_ip(f.clone(), |p| p.set_protocol(6))),
        Err(Error)
    );
    // Not IPv4.
    let mut g = f.clone();
    g[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    assert_eq!(frame::parse(&g), Err(Error));
}

#[test]
fn udp_length_checked_checksum_not() {
    let f = good_frame(None);
    let udp = 14 + 20;
    let mut g = f.clone();
    let len = u16::from_be_bytes([g[udp + 4], g[udp + 5]]);
    g[udp + 4..udp + 6].copy_from_slice(&(len + 1).to_be_bytes());
    assert_eq!(frame::parse(&g), Err(Error));
    g[udp + 4..udp + 6].copy_from_slice(&7u16.to_be_bytes());
    assert_eq!(frame::parse(&g), Err(Error));
    // A partial (wrong) checksum as a veth hands it over: still accepted.
    let mut g = f.clone();
    g[udp + 6..udp + 8].copy_from_slice(&[0x12, 0x34]);
    assert!(frame::parse(&g).is_ok());
    // Ethernet padding after the IPv4 datagram is ignored.
    let mut g = f.clone();
    g.extend_from_slice(&[0; 8]);
    assert_eq!(
        frame::parse(&g).unwrap().dhcp.len(),
        frame::parse(&f).unwrap().dhcp.len()
    );
}

#[test]
fn vlan_tagged() {
    let f = good_frame(Some(0x0064));
    assert_eq!(&f[12..16], &[0x81, 0x00, 0x00, 0x64]);
    let p = frame::parse(&f).unwrap();
    assert_eq!(p.vlan, Some(0x64));
    assert_eq!(
        ethernet::Packet::new_checked(&f[..]).unwrap().ethertype(),
        ethernet::ETHERTYPE_IPV4
    );
    // Cut inside the tag.
    assert_eq!(frame::parse(&f[..16]), Err(Error));
}

#[test]
fn bad_dhcp_headers() {
    let mut m = dhcp(&[53, 1, 1, 255]);
    m[2] = 17;
    assert_eq!(parse(&m), Err(Error), "hlen > 16");
    m[2] = 16;
    assert!(parse(&m).is_ok());
    m[0] = 3;
    assert_eq!(parse(&m), Err(Error), "op 3");
}

#[test]
fn bad_options() {
    let cases: &[(&str, &[u8])] = &[
        ("61 longer than the rest", &[53, 1, 1, 61, 7, 1, 2, 0, 0]),
        ("61 too short", &[61, 1, 1, 255]),
        ("53 of length 2", &[53, 2, 1, 1, 255]),
        ("53 of length 0", &[53, 0, 255]),
        ("TLV past the end", &[53, 1, 1, 12, 40, b'a']),
        ("code without length", &[53, 1, 1, 12]),
        ("54 of length 3", &[54, 3, 1, 2, 3, 255]),
        ("51 of length 5", &[51, 5, 0, 0, 0, 0, 1, 255]),
        ("57 of length 1", &[57, 1, 9, 255]),
        ("57 below 576", &[57, 2, 0x02, 0x3f, 255]),
        ("router of 5 bytes", &[3, 5, 1, 2, 3, 4, 5, 255]),
        ("dns of 2 bytes", &[6, 2, 1, 2, 255]),
        ("1 of length 6", &[1, 6, 255, 255, 255, 0, 0, 0, 255]),
        ("118 of length 2", &[118, 2, 10, 0, 255]),
        ("overload 4", &[52, 1, 4, 255]),
        ("overload of length 2", &[52, 2, 1, 1, 255]),
        (
            "53 split into two instances (RFC 3396 joins them: length 2)",
            &[53, 1, 1, 53, 1, 3, 255],
        ),
    ];
    for (what, opts) in cases {
        assert_eq!(parse(&dhcp(opts)), Err(Error), "{what}");
    }
    // Valid edges: 57 = 576, no END but a clean end, bytes after END ignored.
    assert_eq!(
        parse(&dhcp(&[57, 2, 0x02, 0x40]))
            .unwrap()
            .options
            .max_message_size,
        Some(576)
    );
    let m = dhcp(&[53, 1, 3, 0, 0, 255, 12, 99]);
    let r = parse(&m).unwrap();
    assert_eq!(r.options.message_type, Some(MessageType::Request));
    assert_eq!(r.options.hostname, None);
    assert_eq!(parse(&dhcp(&[])).unwrap().options, Options::default());
}

#[test]
fn plain_bootp() {
    let mut m = dhcp(&[53, 1, 1, 255]);
    m[236] = 0;
    m[44..48].copy_from_slice(b"boot");
    m[108..111].copy_from_slice(b"pxe");
    let r = parse(&m).unwrap();
    assert!(!r.is_dhcp);
    assert_eq!(r.options, Options::default());
    assert_eq!((r.sname, r.file), (&b"boot"[..], &b"pxe"[..]));
    // 236 bytes: BOOTP without room for a cookie.
    assert!(!parse(&m[..236]).unwrap().is_dhcp);
    // Emitting plain BOOTP pads to 300 without a cookie.
    let mut out = [0u8; 300];
    assert_eq!(r.buffer_len(), 300);
    r.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
    assert_eq!(&out[236..240], &[0; 4]);
}

#[test]
fn rfc3396_split_and_overload() {
    // Host name "abcdefgh" in three instances: options ("abc"), file ("def"), sname ("gh"),
    // with overload 3 (both fields). RFC 3396 §5 order: options, file, sname.
    let mut m = dhcp(&[53, 1, 1, 52, 1, 3, 12, 3, b'a', b'b', b'c', 255]);
    m[108..114].copy_from_slice(&[12, 3, b'd', b'e', b'f', 255]);
    m[44..49].copy_from_slice(&[12, 2, b'g', b'h', 255]);
    let mut scratch = [0u8; 64];
    let r = Repr::parse(&Packet::new_checked(&m[..]).unwrap(), &mut scratch).unwrap();
    assert_eq!(r.options.hostname, Some(&b"abcdefgh"[..]));
    assert_eq!(r.options.overload, Some(3));
    assert_eq!((r.sname, r.file), (&[][..], &[][..]));
    // The scratch is too small for the concatenation: an error, not a panic.
    let mut tiny = [0u8; 7];
    assert_eq!(
        Repr::parse(&Packet::new_checked(&m[..]).unwrap(), &mut tiny),
        Err(Error)
    );
    // Overload 1 only: sname is a name again, the "gh" instance is not read.
    m[245] = 1;
    m[44..49].copy_from_slice(b"srv\0\0");
    let r = parse(&m).unwrap();
    assert_eq!(r.options.hostname, Some(&b"abcdef"[..]));
    assert_eq!(r.sname, b"srv");
    // A truncated TLV inside `file` is an error.
    m[108..114].copy_from_slice(&[12, 200, b'd', b'e', b'f', 255]);
    assert_eq!(parse(&m), Err(Error));
}

#[test]
fn long_option_emitted_split() {
    let name = [b'x'; 600];
    let msg = dhcp(&[53, 1, 2, 255]);
    let mut repr = parse(&msg).unwrap();
    repr.options.hostname = Some(&name);
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
    // 53, then 12 as 255 + 255 + 90.
    assert_eq!(&out[240..243], &[53, 1, 2]);
    assert_eq!(&out[243..245], &[12, 255]);
    assert_eq!(&out[243 + 257..243 + 259], &[12, 255]);
    assert_eq!(&out[243 + 514..243 + 516], &[12, 90]);
    assert_eq!(out[243 + 516 + 90], 255);
    assert_eq!(parse(&out).unwrap().options.hostname, Some(&name[..]));
}

#[test]
fn emit_order_and_padding() {
    let msg = dhcp(&[255]);
    let mut r = parse(&msg).unwrap();
    r.options = Options {
        relay_agent_info: Some(&[1, 1, 9]),
        client_id: Some(&[1, 2, 0, 0, 0, 0, 9]),
        message_type: Some(MessageType::Ack),
        server_id: Some(Ipv4Addr::new(10, 0, 0, 1)),
        lease_time: Some(60),
        ..Options::default()
    };
    let mut out = vec![0u8; r.buffer_len()];
    assert_eq!(out.len(), 300);
    r.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
    let codes: Vec<u8> = dataplane::wire::options::OptionsIter::new(&out[240..])
        .map(|o| o.unwrap().kind)
        .collect();
    assert_eq!(codes, [53, 54, 51, 61, 82]);
    let end = 240 + 3 + 6 + 6 + 9 + 5;
    assert_eq!(out[end], 255);
    assert!(out[end + 1..].iter().all(|&b| b == 0));
    // sname longer than 64 bytes cannot be emitted.
    r.sname = &[b'a'; 65];
    assert_eq!(r.emit(&mut Packet::new_unchecked(&mut out[..])), Err(Error));
}
