//! Whole-frame parsing: never panics; a parsed DHCP frame re-emits through `emit_reply`.
#![no_main]

use dataplane::wire::dhcpv4::{Packet, Repr};
use dataplane::wire::frame::{self, ReplyHeader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(f) = frame::parse(data) else { return };
    let Ok(packet) = Packet::new_checked(f.dhcp) else {
        return;
    };
    let mut scratch = [0u8; 1024];
    let Ok(repr) = Repr::parse(&packet, &mut scratch) else {
        return;
    };
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
    let mut buf = [0u8; 4096];
    if let Ok(n) = frame::emit_reply(&hdr, &repr, &mut buf) {
        let back = frame::parse(&buf[..n]).expect("emitted frame parses");
        assert_eq!(
            (back.ip_src, back.udp_dst, back.vlan),
            (f.ip_src, f.udp_dst, f.vlan)
        );
    }
});
