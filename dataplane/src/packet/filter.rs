//! The classic BPF socket filter: only IPv4 UDP to port 67 reaches the packet socket.
//!
//! The kernel runs it on every frame of the interface before it is queued, so everything
//! else (ARP, TCP, ICMP, other UDP ports, IPv6) costs one short program run and never a
//! wakeup. It sees the frame from the Ethernet header on:
//! - untagged, or with the 802.1Q tag already taken out by the kernel or the NIC (the tag
//!   then travels in `PACKET_AUXDATA`): IPv4 at offset 14;
//! - with one 802.1Q tag still in the frame (e.g. the inner tag of QinQ, or drivers that
//!   don't strip): IPv4 at offset 18.
//!
//! It also refuses frames not addressed to this host (`PACKET_OTHERHOST`, seen when the
//! interface is promiscuous) and our own transmissions (`PACKET_OUTGOING`, also switched off
//! with `PACKET_IGNORE_OUTGOING`, which older kernels lack), and non-first IPv4 fragments,
//! which carry no UDP header.

use crate::sys::SockFilter;

const ETH_P_IP: u32 = 0x0800;
const ETH_P_8021Q: u32 = 0x8100;
const IPPROTO_UDP: u32 = 17;
const DHCP_PORT: u32 = ebpf::DHCP_SERVER_PORT as u32;
/// The 13-bit fragment offset of IPv4 flags/fragment (RFC 791 §3.1).
const FRAG_OFFSET_MASK: u32 = 0x1fff;
/// `PACKET_HOST` = 0, `PACKET_BROADCAST` = 1, `PACKET_MULTICAST` = 2 pass; `PACKET_OTHERHOST`
/// (3), `PACKET_OUTGOING` (4) and the rest don't.
const FIRST_REFUSED_PKTTYPE: u32 = 3;
/// Accept: keep the whole frame (the kernel caps it at the frame's length).
const ACCEPT_LEN: u32 = 0x0004_0000;

// Classic BPF opcodes (linux/filter.h, linux/bpf_common.h).
const LD_W_ABS: u16 = 0x20;
const LD_H_ABS: u16 = 0x28;
const LD_B_ABS: u16 = 0x30;
const LD_H_IND: u16 = 0x48;
const LDX_B_MSH: u16 = 0xb1;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;
/// `SKF_AD_OFF + SKF_AD_PKTTYPE`: the ancillary load of `skb->pkt_type`.
const AD_PKTTYPE: u32 = (libc::SKF_AD_OFF + libc::SKF_AD_PKTTYPE) as u32;

const fn op(code: u16, k: u32) -> SockFilter {
    SockFilter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

/// The instruction indexes the jumps below are computed from.
const L_IP14: u8 = 7;
const L_IP18: u8 = 14;
const L_ACCEPT: u8 = 21;
const L_DROP: u8 = 22;

/// Relative jump from instruction `from` to `to` (cBPF jumps count from the next one).
const fn to(from: u8, target: u8) -> u8 {
    target - from - 1
}

/// The program, as the kernel takes it. Jumps are relative; the labels above name the
/// targets and a unit test checks each one lands on the instruction it means.
pub const DHCP_SERVER: [SockFilter; 23] = [
    /* 0 */ op(LD_W_ABS, AD_PKTTYPE),
    /* 1 */ jump(JGE_K, FIRST_REFUSED_PKTTYPE, to(1, L_DROP), 0),
    /* 2 */ op(LD_H_ABS, 12),
    /* 3 */ jump(JEQ_K, ETH_P_IP, to(3, L_IP14), 0),
    /* 4 */ jump(JEQ_K, ETH_P_8021Q, 0, to(4, L_DROP)),
    /* 5 */ op(LD_H_ABS, 16),
    /* 6 */ jump(JEQ_K, ETH_P_IP, to(6, L_IP18), to(6, L_DROP)),
    // IPv4 at 14.
    /* 7 */ op(LD_B_ABS, 14 + 9),
    /* 8 */ jump(JEQ_K, IPPROTO_UDP, 0, to(8, L_DROP)),
    /* 9 */ op(LD_H_ABS, 14 + 6),
    /* 10 */ jump(JSET_K, FRAG_OFFSET_MASK, to(10, L_DROP), 0),
    /* 11 */ op(LDX_B_MSH, 14),
    /* 12 */ op(LD_H_IND, 14 + 2),
    /* 13 */ jump(JEQ_K, DHCP_PORT, to(13, L_ACCEPT), to(13, L_DROP)),
    // IPv4 at 18, after an in-band 802.1Q tag.
    /* 14 */ op(LD_B_ABS, 18 + 9),
    /* 15 */ jump(JEQ_K, IPPROTO_UDP, 0, to(15, L_DROP)),
    /* 16 */ op(LD_H_ABS, 18 + 6),
    /* 17 */ jump(JSET_K, FRAG_OFFSET_MASK, to(17, L_DROP), 0),
    /* 18 */ op(LDX_B_MSH, 18),
    /* 19 */ op(LD_H_IND, 18 + 2),
    /* 20 */ jump(JEQ_K, DHCP_PORT, to(20, L_ACCEPT), to(20, L_DROP)),
    /* 21 */ op(RET_K, ACCEPT_LEN),
    /* 22 */ op(RET_K, 0),
];

/// Accepts nothing: for sockets that must exist but never queue data ([`super::PortGuard`]).
pub const DROP_ALL: [SockFilter; 1] = [op(RET_K, 0)];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixDatagram;
    use std::time::Duration;

    fn fields(f: &SockFilter) -> (u16, u8, u8, u32) {
        (f.code, f.jt, f.jf, f.k)
    }

    #[test]
    fn labels_land_where_they_say() {
        let at = |l: u8| fields(&DHCP_SERVER[usize::from(l)]);
        assert_eq!(at(L_IP14), fields(&op(LD_B_ABS, 23)));
        assert_eq!(at(L_IP18), fields(&op(LD_B_ABS, 27)));
        assert_eq!(at(L_ACCEPT), fields(&op(RET_K, ACCEPT_LEN)));
        assert_eq!(at(L_DROP), fields(&op(RET_K, 0)));
        // Every jump stays inside the program.
        for (i, insn) in DHCP_SERVER.iter().enumerate() {
            if insn.code & 0x07 == 0x05 {
                assert!(
                    i + 1 + usize::from(insn.jt) < DHCP_SERVER.len(),
                    "jt of {i}"
                );
                assert!(
                    i + 1 + usize::from(insn.jf) < DHCP_SERVER.len(),
                    "jf of {i}"
                );
            }
        }
    }

    /// An Ethernet frame: `tags` 802.1Q tags, then IPv4 with `proto`, `frag` and a UDP (or
    /// other) header whose destination port is `dport`, and `ihl` 32-bit words of IP header.
    fn frame(tags: &[u16], ethertype: u16, proto: u8, frag: u16, ihl: u8, dport: u16) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
        for tci in tags {
            f.extend_from_slice(&0x8100u16.to_be_bytes());
            f.extend_from_slice(&tci.to_be_bytes());
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        let ip_start = f.len();
        f.push(0x40 | ihl);
        f.extend_from_slice(&[0; 5]);
        f.extend_from_slice(&frag.to_be_bytes());
        f.push(64);
        f.push(proto);
        f.extend_from_slice(&[0; 10]);
        f.resize(ip_start + usize::from(ihl) * 4, 0);
        f.extend_from_slice(&68u16.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&[0, 8, 0, 0]);
        f.extend_from_slice(&[0; 32]);
        f
    }

    /// Runs the program in the kernel: attached to one end of a datagram socketpair, it sees
    /// each datagram as the packet socket would see a frame (pkt_type is PACKET_HOST there).
    fn kernel_accepts(program: &[SockFilter], frame: &[u8]) -> bool {
        let (a, b) = UnixDatagram::pair().expect("socketpair");
        sys::attach_filter(b.as_fd(), program).expect("attach");
        a.send(frame).expect("send");
        sys::poll_one(b.as_fd(), sys::Ready::Readable, Duration::from_millis(20)).expect("poll")
    }

    #[test]
    fn accepts_dhcp_server_traffic_untagged_and_tagged() {
        assert!(kernel_accepts(
            &DHCP_SERVER,
            &frame(&[], 0x0800, 17, 0, 5, 67)
        ));
        assert!(kernel_accepts(
            &DHCP_SERVER,
            &frame(&[100], 0x0800, 17, 0, 5, 67)
        ));
        // IP options move the UDP header; the port is still found.
        assert!(kernel_accepts(
            &DHCP_SERVER,
            &frame(&[], 0x0800, 17, 0, 7, 67)
        ));
        assert!(kernel_accepts(
            &DHCP_SERVER,
            &frame(&[7], 0x0800, 17, 0, 15, 67)
        ));
        // First fragment (MF set, offset 0) still has the UDP header.
        assert!(kernel_accepts(
            &DHCP_SERVER,
            &frame(&[], 0x0800, 17, 0x2000, 5, 67)
        ));
    }

    #[test]
    fn refuses_everything_else() {
        let refused = [
            frame(&[], 0x0800, 17, 0, 5, 68),
            frame(&[], 0x0800, 17, 0, 5, 6767),
            frame(&[], 0x0800, 6, 0, 5, 67),
            frame(&[], 0x0800, 1, 0, 5, 67),
            frame(&[], 0x0806, 17, 0, 5, 67),
            frame(&[], 0x86dd, 17, 0, 5, 67),
            frame(&[100], 0x0806, 17, 0, 5, 67),
            frame(&[100], 0x0800, 17, 0, 5, 547),
            // Two in-band tags: not a layout the program knows.
            frame(&[100, 200], 0x0800, 17, 0, 5, 67),
            // A later fragment: its first bytes are payload, not a UDP header.
            frame(&[], 0x0800, 17, 0x0010, 5, 67),
        ];
        for (i, f) in refused.iter().enumerate() {
            assert!(!kernel_accepts(&DHCP_SERVER, f), "frame {i} passed");
        }
        // Truncated frames: every load past the end makes the kernel drop.
        let full = frame(&[], 0x0800, 17, 0, 5, 67);
        for cut in [0, 10, 13, 20, 35, 37] {
            assert!(
                !kernel_accepts(&DHCP_SERVER, &full[..cut]),
                "cut at {cut} passed"
            );
        }
        assert!(!kernel_accepts(&DROP_ALL, &full));
    }
}
