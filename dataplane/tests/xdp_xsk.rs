//! AF_XDP sockets behind tandem's XDP program: DHCP to port 67 reaches the socket of its rx
//! queue (and not the kernel), and replies sent through the socket's TX ring in batches
//! larger than copy mode's 32 frames per kick all leave. Namespaces `tdm-xdp-<pid>-<n>a/b`
//! joined by a veth, torn down in `Drop`.
//!
//! Run as root: `cargo test -p dataplane --test xdp_xsk`.

use std::net::UdpSocket;
use std::thread;
use std::time::{Duration, Instant};

use dataplane::stats::{DropReason, WorkerStats};
use dataplane::worker::{FrameIo, TxBatch};
use dataplane::xdp::{
    AttachMode, XdpPort, XdpProgram, XskIo, XskOptions, XskStats, rx_queue_count,
};
use testkit::io::retrying;
use testkit::netns::{VethOptions, VethPair, in_ns};

/// Two namespaces joined by a veth (`va` 10.78.0.1 in `a`, `vb` 10.78.0.2 in `b`) whose ends
/// have `queues` rx and tx queues each.
fn pair(queues: u32) -> VethPair {
    VethPair::new(
        "xdp",
        [10, 78, 0],
        &VethOptions {
            queues: Some(queues),
            ..VethOptions::default()
        },
    )
}

/// The reply to a UDP/IPv4 frame without VLAN tags: MACs, addresses and ports swapped, UDP
/// checksum cleared (allowed over IPv4), the payload kept.
fn reply_to(f: &[u8]) -> Vec<u8> {
    let mut r = f.to_vec();
    let (dst, src) = r.split_at_mut(6);
    dst.swap_with_slice(&mut src[..6]);
    let ip = 14;
    let (a, b) = r[ip + 12..ip + 20].split_at_mut(4);
    a.swap_with_slice(b);
    let udp = ip + usize::from(f[ip] & 0x0f) * 4;
    let (a, b) = r[udp..udp + 4].split_at_mut(2);
    a.swap_with_slice(b);
    r[udp + 6..udp + 8].copy_from_slice(&[0, 0]);
    r
}

#[test]
fn dhcp_reaches_the_socket_and_replies_leave_in_big_batches() {
    const N: usize = 300;
    let pair = pair(1);
    let (mut prog, mut xsks) = in_ns(&pair.b, || {
        let mut prog = XdpProgram::load().expect("load");
        prog.attach("vb", AttachMode::Native).expect("attach");
        let xsks = XskIo::open_all("vb", 0..1, &XskOptions::default()).expect("open xsk");
        (prog, xsks)
    });
    let mut io = xsks.pop().expect("one socket");
    assert!(!io.zero_copy(), "veth has no zero-copy AF_XDP");
    prog.set_socket(io.queue(), &io.fd()).expect("xskmap");
    let kernel67 = in_ns(&pair.b, || {
        let s = UdpSocket::bind("0.0.0.0:67").expect("bind 67");
        s.set_nonblocking(true).expect("nonblocking");
        s
    });

    let client = in_ns(&pair.a, || {
        UdpSocket::bind("10.78.0.1:6800").expect("client")
    });
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let before = prog.counters().expect("counters");
    for i in 0..N {
        let mut payload = vec![0u8; 300];
        payload[..4].copy_from_slice(&(i as u32).to_be_bytes());
        client.send_to(&payload, "10.78.0.2:67").expect("send");
    }
    let stats = WorkerStats::new();
    let mut got: Vec<Vec<u8>> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < N && Instant::now() < deadline {
        let rx = io.recv(&stats).expect("recv");
        if rx.is_empty() {
            io.wait(Duration::from_millis(50), None, &stats)
                .expect("wait");
            continue;
        }
        for f in rx.frames() {
            assert_eq!(f.meta.vlan, None);
            got.push(f.data.to_vec());
        }
    }
    assert_eq!(got.len(), N, "every datagram reached the AF_XDP socket");
    let mut buf = [0u8; 2048];
    assert!(
        retrying(|| kernel67.recv_from(&mut buf)).is_err(),
        "the kernel saw none of them"
    );
    let c = prog.counters().expect("counters");
    assert_eq!(c.redirect - before.redirect, N as u64);
    assert_eq!(c.no_xsk - before.no_xsk, 0);
    for (i, f) in got.iter().enumerate() {
        let udp = 14 + usize::from(f[14] & 0x0f) * 4;
        assert_eq!(&f[udp + 2..udp + 4], &67u16.to_be_bytes());
        let seq = u32::from_be_bytes([f[udp + 8], f[udp + 9], f[udp + 10], f[udp + 11]]);
        assert_eq!(seq as usize, i, "in order");
    }

    // Replies in batches of 64 (two copy-mode kicks' worth each), read back after each batch
    // so the client's receive buffer never overflows.
    let mut tx = TxBatch::new(64, 2048);
    let mut sent = 0;
    let mut seen = vec![false; N];
    for chunk in got.chunks(64) {
        tx.clear();
        for f in chunk {
            tx.push(&reply_to(f)).expect("push");
        }
        let out = io.send(&tx);
        assert_eq!(out.failed, 0, "send failed: {out:?}");
        sent += out.sent;
        for _ in 0..chunk.len() {
            let Ok((n, from)) = retrying(|| client.recv_from(&mut buf)) else {
                break;
            };
            assert_eq!(n, 300);
            assert_eq!(from.port(), 67);
            let seq = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            seen[seq] = true;
        }
    }
    assert_eq!(sent, N);
    let missing = seen.iter().filter(|s| !**s).count();
    assert_eq!(missing, 0, "replies that never arrived");

    // Unbound, DHCP goes back to the kernel.
    prog.clear_socket(io.queue()).expect("unset");
    client.send_to(&[0u8; 300], "10.78.0.2:67").expect("send");
    kernel67.set_nonblocking(false).expect("blocking");
    kernel67
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    assert_eq!(
        retrying(|| kernel67.recv_from(&mut buf))
            .map(|(n, _)| n)
            .ok(),
        Some(300)
    );

    drop(io);
    drop(prog);
    assert!(!pair.xdp_shown(), "program detached with the loader");
}

#[test]
fn one_socket_per_rx_queue_and_every_queue_is_served() {
    const N: usize = 400;
    let pair = pair(2);
    let mut port = in_ns(&pair.b, || {
        assert_eq!(rx_queue_count("vb"), 2, "ethtool -L took");
        XdpPort::open("vb", AttachMode::Native, &XskOptions::default()).expect("open port")
    });
    let mut socks = port.take_sockets();
    assert_eq!(socks.len(), 2, "one socket per rx queue");
    let before = port.program().counters().expect("counters");
    // Many flows (one socket each), so the sender's queue selection spreads them.
    in_ns(&pair.a, || {
        let clients: Vec<UdpSocket> = (0..16)
            .map(|_| UdpSocket::bind("10.78.0.1:0").expect("client"))
            .collect();
        for i in 0..N {
            clients[i % clients.len()]
                .send_to(&[0u8; 300], "10.78.0.2:67")
                .expect("send");
        }
    });
    let stats = WorkerStats::new();
    let mut per_queue = vec![0usize; socks.len()];
    let deadline = Instant::now() + Duration::from_secs(30);
    while per_queue.iter().sum::<usize>() < N && Instant::now() < deadline {
        for (i, io) in socks.iter_mut().enumerate() {
            per_queue[i] += io.recv(&stats).expect("recv").len();
        }
        thread::sleep(Duration::from_millis(1));
    }
    eprintln!("frames per rx queue: {per_queue:?}");
    assert_eq!(per_queue.iter().sum::<usize>(), N, "{per_queue:?}");
    let c = port.program().counters().expect("counters");
    assert_eq!(c.redirect - before.redirect, N as u64);
    assert_eq!(c.no_xsk - before.no_xsk, 0, "a queue without its socket");
    drop(socks);
    drop(port);
    assert!(!pair.xdp_shown());
}

#[test]
fn frames_the_kernel_drops_before_the_socket_are_counted_as_xsk_drops() {
    const RING: u32 = 64;
    const N: usize = 200;
    let pair = pair(1);
    let (mut prog, mut xsks) = in_ns(&pair.b, || {
        let mut prog = XdpProgram::load().expect("load");
        prog.attach("vb", AttachMode::Native).expect("attach");
        let opts = XskOptions {
            ring_size: RING,
            ..XskOptions::default()
        };
        let xsks = XskIo::open_all("vb", 0..1, &opts).expect("open xsk");
        (prog, xsks)
    });
    let mut io = xsks.pop().expect("one socket");
    prog.set_socket(io.queue(), &io.fd()).expect("xskmap");
    assert_eq!(io.kernel_stats().expect("stats"), XskStats::default());

    // More than the fill ring holds, none read while they arrive (fewer than the veth's
    // 256-slot ring, so the veth itself drops none).
    let client = in_ns(&pair.a, || {
        UdpSocket::bind("10.78.0.1:6801").expect("client")
    });
    let before = prog.counters().expect("counters");
    for i in 0..N {
        let mut payload = vec![0u8; 300];
        payload[..4].copy_from_slice(&(i as u32).to_be_bytes());
        client.send_to(&payload, "10.78.0.2:67").expect("send");
    }
    // Every frame has been through the program (into the socket or dropped by the kernel)
    // before any is read.
    let deadline = Instant::now() + Duration::from_secs(30);
    while prog.counters().expect("counters").redirect - before.redirect < N as u64
        && Instant::now() < deadline
    {
        thread::sleep(Duration::from_millis(10));
    }

    let stats = WorkerStats::new();
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let rx = io.recv(&stats).expect("recv");
        if rx.is_empty() {
            if !io
                .wait(Duration::from_millis(50), None, &stats)
                .expect("wait")
            {
                break;
            }
            continue;
        }
        got += rx.len();
    }
    let k = io.kernel_stats().expect("stats");
    let kernel_drops = k.rx_dropped + k.rx_invalid_descs + k.rx_ring_full;
    let snap = stats.snapshot();
    let counted = snap.dropped(DropReason::XskRxDropped) + snap.dropped(DropReason::XskRxRingFull);
    assert_eq!(got, RING as usize, "the fill ring's worth arrived: {k:?}");
    assert_eq!(kernel_drops, (N - got) as u64, "{k:?}");
    assert_eq!(counted, kernel_drops, "every kernel drop counted: {k:?}");
    drop(io);
    drop(prog);
}
