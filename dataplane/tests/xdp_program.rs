//! tandem's XDP program in the kernel: verdicts by `BPF_PROG_TEST_RUN` over hand-built
//! frames, the load-balancing filter, and the program attached to a veth in namespaces these
//! tests build (`tdm-xdp-<pid>-<n>a` with `va`, `…b` with `vb`, torn down in `Drop`), where
//! everything but DHCP must reach the kernel untouched.
//!
//! Run as root: `cargo test -p dataplane --test xdp_program`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use dataplane::limit::{RateLimit, RateLimits};
use dataplane::sys;
use dataplane::xdp::{AttachMode, Attached, VerdictCounts, XdpProgram};
use ebpf::{LB_ON, LbConfig};
use testkit::io::retrying;
use testkit::netns::{VethOptions, VethPair, in_ns};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

// ---------------------------------------------------------------------------------------
// Frames

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// One test frame: Ethernet, optional tags, IPv4 (with `ip_opts` words of options), then
/// `l4` (a UDP header is written when `proto` is 17).
struct Frame {
    tags: Vec<u16>,
    ethertype: u16,
    ip_opts: usize,
    proto: u8,
    frag: u16,
    dport: u16,
    payload: Vec<u8>,
}

impl Frame {
    fn dhcp(payload: Vec<u8>) -> Frame {
        Frame {
            tags: Vec::new(),
            ethertype: 0x0800,
            ip_opts: 0,
            proto: 17,
            frag: 0,
            dport: 67,
            payload,
        }
    }

    fn build(&self) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0xa, 1]);
        for tci in &self.tags {
            f.extend_from_slice(&0x8100u16.to_be_bytes());
            f.extend_from_slice(&tci.to_be_bytes());
        }
        f.extend_from_slice(&self.ethertype.to_be_bytes());
        let ip = f.len();
        let ihl = 5 + self.ip_opts;
        let total = ihl * 4 + 8 + self.payload.len();
        f.extend_from_slice(&[0x40 | ihl as u8, 0]);
        f.extend_from_slice(&(total as u16).to_be_bytes());
        f.extend_from_slice(&[0, 1]);
        f.extend_from_slice(&self.frag.to_be_bytes());
        f.extend_from_slice(&[64, self.proto, 0, 0]);
        f.extend_from_slice(&[0, 0, 0, 0, 255, 255, 255, 255]);
        // IP options: NOPs, then end of list.
        f.extend(std::iter::repeat_n(1u8, self.ip_opts * 4));
        let c = checksum(&f[ip..ip + ihl * 4]);
        f[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&68u16.to_be_bytes());
        f.extend_from_slice(&self.dport.to_be_bytes());
        f.extend_from_slice(&((8 + self.payload.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&self.payload);
        f
    }
}

/// A BOOTREQUEST of message type `msg` with `chaddr`, `secs`, and options `extra`.
fn bootp(msg: u8, chaddr: [u8; 6], secs: u16, extra: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 240];
    b[0] = 1;
    b[1] = 1;
    b[2] = 6;
    b[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    b[8..10].copy_from_slice(&secs.to_be_bytes());
    b[28..34].copy_from_slice(&chaddr);
    b[236..240].copy_from_slice(&[99, 130, 83, 99]);
    b.extend_from_slice(&[53, 1, msg]);
    b.extend_from_slice(extra);
    b.push(255);
    b.resize(300, 0);
    b
}

fn discover(chaddr: [u8; 6]) -> Vec<u8> {
    bootp(1, chaddr, 0, &[])
}

fn delta(after: VerdictCounts, before: VerdictCounts) -> VerdictCounts {
    VerdictCounts {
        pass: after.pass - before.pass,
        redirect: after.redirect - before.redirect,
        no_xsk: after.no_xsk - before.no_xsk,
        lb_drop: after.lb_drop - before.lb_drop,
        rate_relay: after.rate_relay - before.rate_relay,
        rate_circuit: after.rate_circuit - before.rate_circuit,
        rate_mac: after.rate_mac - before.rate_mac,
    }
}

/// Runs `frame` through the program; checks the action and which counter moved.
fn expect(prog: &mut XdpProgram, what: &str, frame: &[u8], action: u32, counter: &str) {
    let before = prog.counters().expect("counters");
    let got = prog.test_run(frame).expect("test run");
    assert_eq!(got, action, "{what}: XDP action");
    let d = delta(prog.counters().expect("counters"), before);
    let mut want = VerdictCounts::default();
    *match counter {
        "pass" => &mut want.pass,
        "no_xsk" => &mut want.no_xsk,
        "lb_drop" => &mut want.lb_drop,
        "rate_relay" => &mut want.rate_relay,
        "rate_circuit" => &mut want.rate_circuit,
        "rate_mac" => &mut want.rate_mac,
        other => panic!("unknown counter {other}"),
    } = 1;
    assert_eq!(d, want, "{what}: counters");
}

// ---------------------------------------------------------------------------------------
// Verdicts by test run

#[test]
fn object_is_aligned_elf() {
    assert_eq!(ebpf::XDP_DHCP.as_ptr() as usize % 8, 0);
    assert_eq!(&ebpf::XDP_DHCP[..4], b"\x7fELF");
}

#[test]
fn dhcp_is_steered_and_everything_else_passes() {
    let mut prog = XdpProgram::load().expect("load");
    let d = || discover([2, 0, 0, 0, 0, 1]);
    // No socket is bound in a test run: DHCP counts as no_xsk and goes to the kernel.
    expect(
        &mut prog,
        "plain DHCP",
        &Frame::dhcp(d()).build(),
        XDP_PASS,
        "no_xsk",
    );
    let tagged = Frame {
        tags: vec![100],
        ..Frame::dhcp(d())
    };
    expect(
        &mut prog,
        "802.1Q DHCP",
        &tagged.build(),
        XDP_PASS,
        "no_xsk",
    );
    let long_ihl = Frame {
        ip_opts: 10,
        ..Frame::dhcp(d())
    };
    expect(
        &mut prog,
        "IHL 15 DHCP",
        &long_ihl.build(),
        XDP_PASS,
        "no_xsk",
    );
    // A minimal UDP datagram to 67 with no BOOTP body is still steered (the engine judges).
    expect(
        &mut prog,
        "empty UDP to 67",
        &Frame::dhcp(Vec::new()).build(),
        XDP_PASS,
        "no_xsk",
    );

    let other: Vec<(&str, Vec<u8>)> = vec![
        (
            "UDP to 68",
            Frame {
                dport: 68,
                ..Frame::dhcp(d())
            }
            .build(),
        ),
        (
            "UDP to 6767",
            Frame {
                dport: 6767,
                ..Frame::dhcp(d())
            }
            .build(),
        ),
        (
            "TCP to 67",
            Frame {
                proto: 6,
                ..Frame::dhcp(d())
            }
            .build(),
        ),
        (
            "first fragment",
            Frame {
                frag: 0x2000,
                ..Frame::dhcp(d())
            }
            .build(),
        ),
        (
            "later fragment",
            Frame {
                frag: 0x0010,
                ..Frame::dhcp(d())
            }
            .build(),
        ),
        (
            "ARP",
            Frame {
                ethertype: 0x0806,
                ..Frame::dhcp(d())
            }
            .build(),
        ),
        (
            "two tags",
            Frame {
                tags: vec![100, 200],
                ..Frame::dhcp(d())
            }
            .build(),
        ),
    ];
    for (what, frame) in &other {
        expect(&mut prog, what, frame, XDP_PASS, "pass");
    }
    // Truncations of a DHCP frame anywhere in the headers pass (the kernel judges them).
    let full = Frame::dhcp(d()).build();
    for cut in [14, 20, 33, 34, 40, 41] {
        expect(
            &mut prog,
            &format!("cut at {cut}"),
            &full[..cut],
            XDP_PASS,
            "pass",
        );
    }
    // An IHL below 5 is not IPv4 we parse.
    let mut bad = full.clone();
    bad[14] = 0x44;
    expect(&mut prog, "IHL 4", &bad, XDP_PASS, "pass");
}

#[test]
fn lb_filter_drops_only_the_peers_discovers() {
    let mut prog = XdpProgram::load().expect("load");
    let mac = [2, 0, 0, 0, 0, 7];
    let frame = Frame::dhcp(discover(mac)).build();
    let none_ours = LbConfig {
        mode: LB_ON,
        primary: 1,
        hba: [0; 32],
        ..LbConfig::OFF
    };
    let all_ours = LbConfig {
        hba: [0xff; 32],
        ..none_ours
    };
    expect(&mut prog, "LB off", &frame, XDP_PASS, "no_xsk");
    prog.set_lb(&all_ours).expect("set lb");
    expect(&mut prog, "all buckets ours", &frame, XDP_PASS, "no_xsk");
    prog.set_lb(&none_ours).expect("set lb");
    expect(&mut prog, "no bucket ours", &frame, XDP_DROP, "lb_drop");
    // The secondary serves what the primary does not.
    let secondary = LbConfig {
        primary: 0,
        ..none_ours
    };
    prog.set_lb(&secondary).expect("set lb");
    expect(
        &mut prog,
        "secondary, no bit set",
        &frame,
        XDP_PASS,
        "no_xsk",
    );
    prog.set_lb(&none_ours).expect("set lb");
    // Only DISCOVERs are filtered; a REQUEST goes through whatever its bucket.
    let request = Frame::dhcp(bootp(3, mac, 0, &[])).build();
    expect(&mut prog, "REQUEST", &request, XDP_PASS, "no_xsk");
    // A client that has waited max_secs is served by both.
    let patient = LbConfig {
        max_secs: 10,
        ..none_ours
    };
    prog.set_lb(&patient).expect("set lb");
    let waited = Frame::dhcp(bootp(1, mac, 10, &[])).build();
    expect(&mut prog, "secs >= max", &waited, XDP_PASS, "no_xsk");
    let fresh = Frame::dhcp(bootp(1, mac, 9, &[])).build();
    expect(&mut prog, "secs < max", &fresh, XDP_DROP, "lb_drop");
    // Malformed option lists don't crash or drop: an option running past the end.
    let mut runaway = bootp(1, mac, 0, &[]);
    runaway.truncate(243);
    runaway.extend_from_slice(&[61, 200, 1, 2]);
    let f = Frame::dhcp(runaway).build();
    let got = prog.test_run(&f).expect("test run");
    assert!(got == XDP_PASS || got == XDP_DROP, "runaway option: {got}");
    prog.set_lb(&LbConfig::OFF).expect("set lb");
    expect(&mut prog, "LB off again", &frame, XDP_PASS, "no_xsk");
}

/// A DISCOVER from `chaddr` relayed through giaddr 10.9.0.1, with option 82 carrying
/// `circuit` as its circuit-id (sub-option 1) after a remote-id, if given.
fn relayed(chaddr: [u8; 6], circuit: Option<&[u8]>) -> Vec<u8> {
    let mut extra = Vec::new();
    if let Some(c) = circuit {
        let remote = [2u8, 4, 0xaa, 0xbb, 0xcc, 0xdd];
        extra.extend_from_slice(&[82, (remote.len() + 2 + c.len()) as u8]);
        extra.extend_from_slice(&remote);
        extra.extend_from_slice(&[1, c.len() as u8]);
        extra.extend_from_slice(c);
    }
    let mut b = bootp(1, chaddr, 0, &extra);
    b[24..28].copy_from_slice(&[10, 9, 0, 1]);
    b
}

/// Runs `frame` `n` times, each expected to go on to the (absent) socket.
fn expect_passes(prog: &mut XdpProgram, what: &str, frame: &[u8], n: usize) {
    for i in 0..n {
        expect(
            prog,
            &format!("{what} #{}", i + 1),
            frame,
            XDP_PASS,
            "no_xsk",
        );
    }
}

#[test]
fn rate_limits_drop_requests_over_their_mac_circuit_or_relay_rate() {
    // The buckets are per CPU and a test run runs on the caller's: stay on one.
    let core = core_affinity::get_core_ids().expect("cores")[0];
    assert!(core_affinity::set_for_current(core), "pinned to one core");
    let mut prog = XdpProgram::load().expect("load");
    let limit = |rate, burst| RateLimit { rate, burst };
    let off = RateLimits::OFF;

    // Per MAC: a burst of 3, then dropped; another MAC has its own bucket.
    let a = Frame::dhcp(discover([2, 0, 0, 0, 1, 1])).build();
    let b = Frame::dhcp(discover([2, 0, 0, 0, 1, 2])).build();
    prog.set_rates(&RateLimits {
        mac: limit(1, 3),
        ..off
    })
    .expect("set rates");
    expect_passes(&mut prog, "MAC a within its burst", &a, 3);
    expect(&mut prog, "MAC a over", &a, XDP_DROP, "rate_mac");
    expect(&mut prog, "MAC b", &b, XDP_PASS, "no_xsk");
    // A REQUEST counts against the same client.
    let req_a = Frame::dhcp(bootp(3, [2, 0, 0, 0, 1, 1], 0, &[])).build();
    expect(&mut prog, "MAC a's REQUEST", &req_a, XDP_DROP, "rate_mac");

    // Tokens come back at the rate: 2 a second, so one after 600 ms (the burst is 1).
    let c = Frame::dhcp(discover([2, 0, 0, 0, 1, 3])).build();
    prog.set_rates(&RateLimits {
        mac: limit(2, 1),
        ..off
    })
    .expect("set rates");
    expect(&mut prog, "MAC c", &c, XDP_PASS, "no_xsk");
    expect(&mut prog, "MAC c again", &c, XDP_DROP, "rate_mac");
    std::thread::sleep(Duration::from_millis(600));
    expect(&mut prog, "MAC c refilled", &c, XDP_PASS, "no_xsk");

    // Per relay: relayed requests of any MAC share their relay's bucket; direct ones don't.
    prog.set_rates(&RateLimits {
        relay: limit(1, 2),
        ..off
    })
    .expect("set rates");
    for (i, what) in ["relayed #1", "relayed #2"].iter().enumerate() {
        let f = Frame::dhcp(relayed([2, 0, 0, 0, 2, i as u8], None)).build();
        expect(&mut prog, what, &f, XDP_PASS, "no_xsk");
    }
    let third = Frame::dhcp(relayed([2, 0, 0, 0, 2, 9], None)).build();
    expect(&mut prog, "relayed #3", &third, XDP_DROP, "rate_relay");
    let direct = Frame::dhcp(discover([2, 0, 0, 0, 2, 9])).build();
    expect_passes(&mut prog, "direct", &direct, 3);

    // Per circuit-id within the relay, found after another sub-option.
    prog.set_rates(&RateLimits {
        circuit: limit(1, 2),
        ..off
    })
    .expect("set rates");
    for i in 0..2u8 {
        let f = Frame::dhcp(relayed([2, 0, 0, 0, 3, i], Some(b"eth0/1/1:100"))).build();
        expect(&mut prog, "circuit 1 within", &f, XDP_PASS, "no_xsk");
    }
    let over = Frame::dhcp(relayed([2, 0, 0, 0, 3, 7], Some(b"eth0/1/1:100"))).build();
    expect(&mut prog, "circuit 1 over", &over, XDP_DROP, "rate_circuit");
    let other = Frame::dhcp(relayed([2, 0, 0, 0, 3, 7], Some(b"eth0/1/1:101"))).build();
    expect_passes(&mut prog, "circuit 2", &other, 2);
    // No option 82: nothing to count a circuit by.
    let bare = Frame::dhcp(relayed([2, 0, 0, 0, 3, 8], None)).build();
    expect_passes(&mut prog, "relayed without option 82", &bare, 3);

    // Off again: nothing is limited, not even the buckets already empty.
    prog.set_rates(&off).expect("set rates");
    expect_passes(&mut prog, "limits off", &a, 3);
    expect_passes(&mut prog, "limits off", &over, 3);
    // Malformed option lists are neither limited wrongly nor fatal.
    prog.set_rates(&RateLimits::DEFAULT).expect("set rates");
    let mut runaway = relayed([2, 0, 0, 0, 4, 1], None);
    runaway.truncate(243);
    runaway.extend_from_slice(&[82, 200, 1, 250, 1, 2]);
    let f = Frame::dhcp(runaway).build();
    expect(&mut prog, "runaway option 82", &f, XDP_PASS, "no_xsk");
}

// ---------------------------------------------------------------------------------------
// Attached to a veth

/// Two namespaces joined by a veth (`va` 10.78.0.1 in `a`, `vb` 10.78.0.2 in `b`).
fn pair() -> VethPair {
    VethPair::new("xdp", [10, 78, 0], &VethOptions::default())
}

fn recv_len(sock: &UdpSocket) -> Option<usize> {
    let mut buf = [0u8; 4096];
    retrying(|| sock.recv_from(&mut buf)).ok().map(|(n, _)| n)
}

#[test]
fn attached_program_leaves_other_traffic_to_the_kernel() {
    let pair = pair();
    let (mut prog, mode) = in_ns(&pair.b, || {
        let mut prog = XdpProgram::load().expect("load");
        let mode = prog.attach("vb", AttachMode::Auto).expect("attach");
        (prog, mode)
    });
    assert_eq!(mode, Attached::Native, "veth takes native XDP");
    assert_eq!(prog.attached(), Some(("vb", Attached::Native)));
    assert!(pair.xdp_shown(), "ip link shows the program");
    assert!(
        in_ns(&pair.b, || XdpProgram::load()
            .expect("load")
            .attach("vb", AttachMode::Native)
            .is_err()),
        "a second program can't take the interface"
    );

    // Server side: UDP on 67 (no XSK bound: DHCP must reach the kernel) and 9, TCP on 80.
    let (s67, s9, tcp) = in_ns(&pair.b, || {
        let s67 = UdpSocket::bind("0.0.0.0:67").expect("bind 67");
        let s9 = UdpSocket::bind("0.0.0.0:9").expect("bind 9");
        for s in [&s67, &s9] {
            s.set_read_timeout(Some(Duration::from_secs(2)))
                .expect("timeout");
        }
        (
            s67,
            s9,
            TcpListener::bind("10.78.0.2:80").expect("bind tcp"),
        )
    });
    let before = prog.counters().expect("counters");
    let server = SocketAddrV4::new(Ipv4Addr::new(10, 78, 0, 2), 0);
    in_ns(&pair.a, || {
        let c = UdpSocket::bind("10.78.0.1:0").expect("client");
        c.send_to(
            &discover([2, 0, 0, 0, 0, 1]),
            SocketAddrV4::new(*server.ip(), 67),
        )
        .expect("send 67");
        c.send_to(b"discard me", SocketAddrV4::new(*server.ip(), 9))
            .expect("send 9");
        // 3000 bytes over a 1500-byte MTU: two fragments the kernel must reassemble.
        c.send_to(&[0x5a; 3000], SocketAddrV4::new(*server.ip(), 67))
            .expect("send frag");
        let mut t = TcpStream::connect_timeout(
            &"10.78.0.2:80".parse().expect("addr"),
            Duration::from_secs(2),
        )
        .expect("tcp connect");
        t.write_all(b"hello").expect("tcp write");
    });
    assert_eq!(recv_len(&s67), Some(300), "DHCP reached the kernel socket");
    assert_eq!(recv_len(&s9), Some(10), "UDP to 9 untouched");
    assert_eq!(
        recv_len(&s67),
        Some(3000),
        "fragments reassembled by the kernel"
    );
    let (mut conn, _) = tcp.accept().expect("accept");
    conn.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut hello = [0u8; 5];
    conn.read_exact(&mut hello).expect("tcp read");
    assert_eq!(&hello, b"hello");
    assert!(pair.ping(), "ICMP untouched");

    let d = delta(prog.counters().expect("counters"), before);
    assert_eq!(d.no_xsk, 1, "exactly the DHCP datagram was steered: {d:?}");
    assert_eq!(d.redirect, 0);
    assert_eq!(d.lb_drop, 0);
    // UDP 9, two fragments, the TCP handshake and data, ping, perhaps ARP.
    assert!(d.pass >= 6, "other frames counted as passed: {d:?}");

    // The LB filter, once on, drops in the driver before the kernel sees the frame.
    prog.set_lb(&LbConfig {
        mode: LB_ON,
        primary: 1,
        ..LbConfig::OFF
    })
    .expect("set lb");
    in_ns(&pair.a, || {
        let c = UdpSocket::bind("10.78.0.1:0").expect("client");
        c.send_to(
            &discover([2, 0, 0, 0, 0, 1]),
            SocketAddrV4::new(*server.ip(), 67),
        )
        .expect("send 67");
    });
    // The program counts the drop when the frame passes; only then is "nothing arrived" a
    // verdict.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while delta(prog.counters().expect("counters"), before).lb_drop < 1
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(delta(prog.counters().expect("counters"), before).lb_drop, 1);
    s67.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    assert_eq!(recv_len(&s67), None, "dropped by the LB filter");

    drop(prog);
    assert!(!pair.xdp_shown(), "dropping the program detaches it");
}

#[test]
fn a_stale_netlink_attached_program_is_detached_before_attach() {
    let pair = pair();
    let obj = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(obj.path(), ebpf::XDP_DHCP).expect("write object");
    let path = obj.path().to_string_lossy().into_owned();
    // What a crashed run attached through netlink would leave: the program, no owner.
    pair.b.run(&[
        "ip", "link", "set", "dev", "vb", "xdpdrv", "obj", &path, "sec", "xdp",
    ]);
    assert!(pair.xdp_shown());
    let stale = in_ns(&pair.b, || {
        let ifindex = sys::if_nametoindex("vb").expect("ifindex");
        dataplane::xdp::netlink::attached(ifindex).expect("query")
    })
    .expect("netlink reports the stale program");
    let prog = in_ns(&pair.b, || {
        let mut prog = XdpProgram::load().expect("load");
        prog.attach("vb", AttachMode::Native)
            .expect("attach over the stale program");
        prog
    });
    let now = in_ns(&pair.b, || {
        let ifindex = sys::if_nametoindex("vb").expect("ifindex");
        dataplane::xdp::netlink::attached(ifindex).expect("query")
    })
    .expect("ours is attached");
    assert_ne!(now.id, stale.id, "the stale program was replaced");
    drop(prog);
    assert!(!pair.xdp_shown(), "and ours went with the loader");
}
