//! The kernel packet path on real sockets, in network namespaces these tests build:
//! `tdm-pkt-<pid>-<n>a` (the clients' side, interface `va`) and `…b` (the server side,
//! interface `vb`), joined by a veth pair, torn down in `Drop` even when a test fails.
//!
//! The server side runs workers with an echo handler (swap MACs, IPs and ports; checksums
//! stay valid because swapping doesn't change a one's complement sum); the client side sends
//! frames through its own packet socket (or scapy) and checks what comes back.
//!
//! Run as root: `cargo test -p dataplane --test packet_netns -- --nocapture` (the
//! throughput line is printed, never asserted).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use dataplane::packet::{PacketIo, PortGuard, Socket, SocketOptions};
use dataplane::stats::WorkerStats;
use dataplane::sys;
use dataplane::worker::{self, BatchHandler, FrameIo, RxBatch, TxBatch, VlanTag, WorkerConfig};
use testkit::io::retrying;
use testkit::netns::{Ns, VethOptions, VethPair, in_ns, mac_str};

const MAC_A: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x0a, 0x01];
const MAC_B: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x0b, 0x01];
const IP_A: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const MAGIC: &[u8; 4] = b"TDMP";
const POLL: Duration = Duration::from_millis(50);
/// Scheduling delay allowed on top of the poll timeout when workers stop: generous, since a
/// loaded 2-core machine may not run a worker for a while; it catches a worker that never
/// sees the flag, not a slow one.
const STOP_SLACK: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------
// Namespaces

/// The test network: `va` 10.77.0.1 and `vb` 10.77.0.2 with fixed MACs and static
/// neighbours, IPv6 off, and every unreachable answered with its ICMP, so the guard test
/// can't be fooled by the limiter.
fn pair() -> VethPair {
    VethPair::new(
        "pkt",
        [10, 77, 0],
        &VethOptions {
            macs: Some((MAC_A, MAC_B)),
            static_neighbours: true,
            sysctls: &[
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
                "net.ipv4.icmp_ratelimit=0",
            ],
            ..VethOptions::default()
        },
    )
}

fn rx_packets(pair: &VethPair) -> u64 {
    let s = pair
        .b
        .run(&["cat", "/sys/class/net/vb/statistics/rx_packets"]);
    s.trim().parse().expect("rx_packets")
}

fn icmp_dest_unreachs_sent(pair: &VethPair) -> u64 {
    let snmp = pair.b.run(&["cat", "/proc/net/snmp"]);
    let mut lines = snmp.lines().filter(|l| l.starts_with("Icmp:"));
    let (names, values) = (
        lines.next().expect("Icmp header"),
        lines.next().expect("Icmp values"),
    );
    let col = names
        .split_whitespace()
        .position(|n| n == "OutDestUnreachs")
        .expect("OutDestUnreachs column");
    values
        .split_whitespace()
        .nth(col)
        .expect("value")
        .parse()
        .expect("number")
}

// ---------------------------------------------------------------------------------------
// Frames

/// Where the IPv4 header starts, after any VLAN tags.
fn ip_offset(f: &[u8]) -> Option<usize> {
    let mut off = 12;
    loop {
        let et = u16::from_be_bytes([*f.get(off)?, *f.get(off + 1)?]);
        match et {
            0x8100 | 0x88a8 => off += 4,
            0x0800 => return Some(off + 2),
            _ => return None,
        }
    }
}

/// The sequence number a test frame carries in its UDP payload.
fn seq_of(f: &[u8]) -> Option<u32> {
    let ip = ip_offset(f)?;
    let udp = ip + usize::from(f.get(ip)? & 0x0f) * 4;
    let payload = f.get(udp + 8..udp + 16)?;
    (&payload[..4] == MAGIC)
        .then(|| u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]))
}

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

struct Spec {
    dst_mac: [u8; 6],
    tags: Vec<(u16, u16)>,
    ethertype: u16,
    proto: u8,
    frag: u16,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
}

impl Spec {
    /// A relay-style DHCP frame, A:67 → B:67 (replies come back to port 67 too, so the
    /// client's own filtered socket sees them).
    fn dhcp() -> Spec {
        Spec {
            dst_mac: MAC_B,
            tags: Vec::new(),
            ethertype: 0x0800,
            proto: 17,
            frag: 0,
            src: IP_A,
            dst: IP_B,
            sport: 67,
            dport: 67,
        }
    }

    fn build(&self, seq: u32) -> Vec<u8> {
        let mut f = Vec::with_capacity(400);
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&MAC_A);
        for (tpid, tci) in &self.tags {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&tci.to_be_bytes());
        }
        f.extend_from_slice(&self.ethertype.to_be_bytes());
        let ip = f.len();
        let payload_len = 8 + 8 + 232; // UDP header, magic + seq, BOOTP-sized filler
        let total = 20 + payload_len;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&(total as u16).to_be_bytes());
        f.extend_from_slice(&(seq as u16).to_be_bytes());
        f.extend_from_slice(&self.frag.to_be_bytes());
        f.extend_from_slice(&[64, self.proto, 0, 0]);
        f.extend_from_slice(&self.src.octets());
        f.extend_from_slice(&self.dst.octets());
        let c = checksum(&f[ip..ip + 20]);
        f[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&self.sport.to_be_bytes());
        f.extend_from_slice(&self.dport.to_be_bytes());
        f.extend_from_slice(&(payload_len as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]); // no UDP checksum (RFC 768: allowed over IPv4)
        f.extend_from_slice(MAGIC);
        f.extend_from_slice(&seq.to_be_bytes());
        f.resize(ip + total, 0xa5);
        f
    }
}

/// The reply the echo handler makes of `f`, computed independently of it.
fn echoed(f: &[u8]) -> Vec<u8> {
    let mut r = f.to_vec();
    let (dst, src) = r.split_at_mut(6);
    dst.swap_with_slice(&mut src[..6]);
    let ip = ip_offset(f).expect("ipv4");
    let (a, b) = r[ip + 12..ip + 20].split_at_mut(4);
    a.swap_with_slice(b);
    let udp = ip + usize::from(f[ip] & 0x0f) * 4;
    let (a, b) = r[udp..udp + 4].split_at_mut(2);
    a.swap_with_slice(b);
    r
}

/// Frames that must never reach the handler.
fn noise() -> Vec<Vec<u8>> {
    let base = Spec::dhcp;
    let mut out = vec![
        Spec {
            dport: 68,
            ..base()
        }
        .build(1_000_001),
        Spec {
            dport: 6767,
            ..base()
        }
        .build(1_000_002),
        Spec { proto: 6, ..base() }.build(1_000_003),
        Spec { proto: 1, ..base() }.build(1_000_004),
        Spec {
            ethertype: 0x86dd,
            ..base()
        }
        .build(1_000_005),
        // A later fragment whose first payload bytes look like a UDP header to port 67.
        Spec {
            frag: 0x0020,
            ..base()
        }
        .build(1_000_006),
        // Not addressed to B at all (B sees it as PACKET_OTHERHOST only when promiscuous,
        // but the stack never asks): unicast to another MAC.
        Spec {
            dst_mac: [0x02, 0, 0, 0, 0x0c, 0x01],
            ..base()
        }
        .build(1_000_007),
        Spec {
            tags: vec![(0x8100, 5)],
            dport: 68,
            ..base()
        }
        .build(1_000_008),
    ];
    // ARP who-has 10.77.0.2.
    let mut arp = Vec::new();
    arp.extend_from_slice(&[0xff; 6]);
    arp.extend_from_slice(&MAC_A);
    arp.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&MAC_A);
    arp.extend_from_slice(&IP_A.octets());
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&IP_B.octets());
    arp.resize(60, 0);
    out.push(arp);
    out
}

// ---------------------------------------------------------------------------------------
// Server side

#[derive(Clone, Copy, Debug)]
struct Seen {
    seq: Option<u32>,
    vlan: Option<VlanTag>,
    worker: usize,
    head: [u8; 22],
}

/// Swaps MACs, IPs and ports into a reply; records what it saw.
struct Echo {
    worker: usize,
    seen: Arc<Mutex<Vec<Seen>>>,
    record: bool,
}

impl BatchHandler for Echo {
    fn handle(&mut self, rx: &RxBatch<'_>, tx: &mut TxBatch) {
        let mut seen = self.seen.lock().expect("seen");
        for f in rx.frames() {
            if !self.record {
                seen.clear();
            }
            let mut head = [0u8; 22];
            let n = f.data.len().min(22);
            head[..n].copy_from_slice(&f.data[..n]);
            seen.push(Seen {
                seq: seq_of(f.data),
                vlan: f.meta.vlan,
                worker: self.worker,
                head,
            });
            let Some(ip) = ip_offset(f.data) else {
                continue;
            };
            let _ = tx.push_with(|buf| {
                let len = f.data.len();
                let udp = ip + usize::from(f.data[ip] & 0x0f) * 4;
                if len > buf.len() || udp + 4 > len {
                    return None;
                }
                buf[..len].copy_from_slice(f.data);
                buf[..6].copy_from_slice(&f.data[6..12]);
                buf[6..12].copy_from_slice(&f.data[..6]);
                buf[ip + 12..ip + 16].copy_from_slice(&f.data[ip + 16..ip + 20]);
                buf[ip + 16..ip + 20].copy_from_slice(&f.data[ip + 12..ip + 16]);
                buf[udp..udp + 2].copy_from_slice(&f.data[udp + 2..udp + 4]);
                buf[udp + 2..udp + 4].copy_from_slice(&f.data[udp..udp + 2]);
                Some(len)
            });
        }
    }
}

/// `n` echo workers on `vb`, stopped (and their threads joined) on drop.
struct Server {
    shutdown: Arc<AtomicBool>,
    workers: Vec<worker::Worker<Echo>>,
    stats: Vec<Arc<WorkerStats>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    _guard: PortGuard,
}

impl Server {
    fn start(pair: &VethPair, n: usize) -> Server {
        Server::start_recording(pair, n, true)
    }

    fn start_recording(pair: &VethPair, n: usize, record: bool) -> Server {
        let (sockets, guard) = in_ns(&pair.b, || {
            let sockets = if n == 1 {
                vec![Socket::open("vb", &SocketOptions::default()).expect("open")]
            } else {
                Socket::open_group("vb", n, &SocketOptions::default()).expect("open group")
            };
            (sockets, PortGuard::bind(Some("vb")).expect("guard"))
        });
        if n > 1 {
            let group = sockets[0].fanout_group();
            assert!(group.is_some(), "the first socket made a group");
            for s in &sockets {
                assert_eq!(s.fanout_group(), group, "all sockets in one group");
                // id | type << 16 | flags << 24: round robin, rollover, outgoing ignored.
                let v = sys::get_int_opt(s.as_fd(), libc::SOL_PACKET, libc::PACKET_FANOUT)
                    .expect("fanout");
                let (mode, flags) = ((v >> 16) & 0xff, (v >> 24) & 0xff);
                assert_eq!(mode as u32, libc::PACKET_FANOUT_LB);
                assert_eq!(
                    flags as u32,
                    (libc::PACKET_FANOUT_FLAG_ROLLOVER | libc::PACKET_FANOUT_FLAG_IGNORE_OUTGOING)
                        >> 8
                );
            }
        }
        let shutdown = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let cores = core_count();
        let stats: Vec<_> = (0..n).map(|_| Arc::new(WorkerStats::new())).collect();
        let workers = sockets
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let mut cfg = WorkerConfig::new(format!("tdm-pkt-w{i}"));
                cfg.core = Some(i % cores);
                cfg.poll_timeout = POLL;
                let echo = Echo {
                    worker: i,
                    seen: Arc::clone(&seen),
                    record,
                };
                worker::spawn(
                    cfg,
                    PacketIo::new(s, 64),
                    echo,
                    Arc::clone(&stats[i]),
                    Arc::clone(&shutdown),
                )
                .expect("spawn")
            })
            .collect();
        Server {
            shutdown,
            workers,
            stats,
            seen,
            _guard: guard,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen").clone()
    }

    /// Stops the workers; returns how long they took.
    fn stop(&mut self) -> Duration {
        let t = Instant::now();
        self.shutdown.store(true, Ordering::Release);
        for w in self.workers.drain(..) {
            w.join().expect("worker panicked");
        }
        t.elapsed()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::Release);
    }
}

fn core_count() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

// ---------------------------------------------------------------------------------------
// Client side

struct Client {
    io: PacketIo,
    /// The replies come to A:67: without a guard A's kernel would answer each with ICMP.
    _guard: PortGuard,
    tx: TxBatch,
    stats: WorkerStats,
}

impl Client {
    fn open(ns: &Ns, ifname: &str) -> Client {
        let (sock, guard) = in_ns(ns, || {
            let sock = Socket::open(ifname, &SocketOptions::default()).expect("client socket");
            (sock, PortGuard::bind(None).expect("client guard"))
        });
        Client {
            io: PacketIo::new(sock, 64),
            _guard: guard,
            tx: TxBatch::new(64, 2048),
            stats: WorkerStats::new(),
        }
    }

    fn send(&mut self, frames: &[Vec<u8>]) {
        for chunk in frames.chunks(self.tx.capacity()) {
            self.tx.clear();
            for f in chunk {
                self.tx.push(f).expect("push");
            }
            let out = self.io.send(&self.tx);
            assert_eq!(out.failed, 0, "client send failed");
        }
        self.tx.clear();
    }

    /// Receives until `want` frames arrived or `limit` passed.
    fn recv(&mut self, want: usize, limit: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + limit;
        let mut got = Vec::new();
        while got.len() < want && Instant::now() < deadline {
            let rx = self.io.recv(&self.stats).expect("recv");
            if rx.is_empty() {
                self.io
                    .wait(Duration::from_millis(10), None, &self.stats)
                    .expect("wait");
                continue;
            }
            got.extend(rx.frames().map(|f| f.data.to_vec()));
        }
        got
    }

    /// Sends `requests` in rounds of 32 and collects the replies, keyed by sequence number.
    fn round_trips(&mut self, requests: &[Vec<u8>]) -> BTreeMap<u32, Vec<u8>> {
        let mut replies = BTreeMap::new();
        for chunk in requests.chunks(32) {
            self.send(chunk);
            for r in self.recv(chunk.len(), Duration::from_secs(10)) {
                let seq = seq_of(&r).expect("reply carries a sequence number");
                assert!(replies.insert(seq, r).is_none(), "reply {seq} twice");
            }
        }
        replies
    }
}

/// Sends DHCP frames (half unicast to B, half broadcast) with noise before, between and after
/// them, and checks that every DHCP frame, and nothing else, came back and reached a handler.
fn echo_test(workers: usize, n: u32) -> Vec<Seen> {
    let pair = pair();
    let mut server = Server::start(&pair, workers);
    let mut client = Client::open(&pair.a, "va");
    let requests: Vec<Vec<u8>> = (0..n)
        .map(|seq| {
            let dst_mac = if seq % 2 == 0 { MAC_B } else { [0xff; 6] };
            Spec {
                dst_mac,
                ..Spec::dhcp()
            }
            .build(seq)
        })
        .collect();
    let noise = noise();
    let rx_before = rx_packets(&pair);

    client.send(&noise);
    let mut replies = client.round_trips(&requests[..requests.len() / 2]);
    client.send(&noise);
    replies.extend(client.round_trips(&requests[requests.len() / 2..]));

    let missing: Vec<u32> = (0..n).filter(|s| !replies.contains_key(s)).collect();
    assert!(
        missing.is_empty(),
        "no reply for {} frames, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    for (seq, reply) in &replies {
        assert_eq!(reply, &echoed(&requests[*seq as usize]), "reply {seq}");
    }
    // The noise did arrive at vb (the interface counted it), the filter kept it from us.
    let arrived = rx_packets(&pair) - rx_before;
    assert!(
        arrived >= u64::from(n) + 2 * noise.len() as u64,
        "vb received only {arrived}"
    );

    let elapsed = server.stop();
    let stats: Vec<_> = server.stats.iter().map(|s| s.snapshot()).collect();
    assert!(
        elapsed < POLL + STOP_SLACK,
        "workers took {elapsed:?} to stop"
    );
    let seen = server.seen();
    let mut seqs: Vec<Option<u32>> = seen.iter().map(|s| s.seq).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (0..n).map(Some).collect::<Vec<_>>(),
        "the handlers saw exactly the DHCP frames, once each"
    );
    assert!(seen.iter().all(|s| s.vlan.is_none()));
    let rx: u64 = stats.iter().map(|s| s.rx).sum();
    let tx: u64 = stats.iter().map(|s| s.tx).sum();
    assert_eq!((rx, tx), (u64::from(n), u64::from(n)));
    assert!(
        stats
            .iter()
            .all(|s| s.tx_errors == 0 && s.dropped_total() == 0),
        "{stats:?}"
    );
    seen
}

// ---------------------------------------------------------------------------------------
// Tests

#[test]
fn packet_one_worker_echoes_dhcp_and_nothing_else() {
    echo_test(1, 500);
}

#[test]
fn packet_two_workers_share_an_interface_through_fanout() {
    let seen = echo_test(2, 2000);
    let per_worker = [0, 1].map(|w| seen.iter().filter(|s| s.worker == w).count());
    // Round robin: both take a share; the rollover flag may skew it, never to nothing.
    assert!(
        per_worker.iter().all(|&c| c > 200),
        "frames per worker {per_worker:?}"
    );
}

#[test]
fn packet_vlan_tags_are_reported_and_put_back_into_the_frame() {
    let pair = pair();
    let mut server = Server::start(&pair, 1);

    // 1. Tagged frames from A's packet socket (VLAN 100, in the bytes). B's kernel takes the
    //    tag out before the tap; the datapath reports it and puts it back, so the echo goes
    //    out tagged; A's kernel takes it out again and A's datapath puts it back, so the
    //    client sees exactly the swapped request. (This kernel has no 8021q module for a
    //    VLAN sub-interface; the tag handling on receive is the same core code.)
    let mut client = Client::open(&pair.a, "va");
    let requests: Vec<Vec<u8>> = (0..20)
        .map(|seq| {
            Spec {
                tags: vec![(0x8100, 100)],
                ..Spec::dhcp()
            }
            .build(seq)
        })
        .collect();
    let replies = client.round_trips(&requests);
    assert_eq!(replies.len(), requests.len(), "all tagged frames came back");
    for (seq, reply) in &replies {
        assert_eq!(
            reply,
            &echoed(&requests[*seq as usize]),
            "reply {seq}, tag included"
        );
    }

    // 2. From scapy: a priority-tagged frame, QinQ (outer S-tag taken out by the kernel, the
    //    inner C-tag still in the bytes), and a tagged frame to another port.
    let script = format!(
        "from scapy.all import Ether, IP, UDP, Raw, sendp\n\
         from scapy.layers.l2 import Dot1Q, Dot1AD\n\
         import struct\n\
         def p(seq): return Raw(b'TDMP' + struct.pack('>I', seq) + bytes(232))\n\
         e = Ether(src='{a}', dst='{b}')\n\
         ip = IP(src='10.77.0.1', dst='10.77.0.2')\n\
         sendp([e/Dot1Q(vlan=42, prio=5)/ip/UDP(sport=68, dport=67)/p(100),\n\
                e/Dot1AD(vlan=7)/Dot1Q(vlan=42)/ip/UDP(sport=68, dport=67)/p(200),\n\
                e/Dot1Q(vlan=42)/ip/UDP(sport=67, dport=68)/p(300)], iface='va', verbose=0)\n",
        a = mac_str(MAC_A),
        b = mac_str(MAC_B)
    );
    pair.a.run(&["/usr/bin/python3", "-c", &script]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.seen().iter().filter(|s| s.seq >= Some(100)).count() < 2
        && Instant::now() < deadline
    {
        thread::sleep(Duration::from_millis(10));
    }
    thread::sleep(Duration::from_millis(100));
    server.stop();
    let seen = server.seen();

    let by_seq = |seq: u32| -> Seen {
        let v: Vec<_> = seen.iter().filter(|s| s.seq == Some(seq)).collect();
        assert_eq!(v.len(), 1, "frame {seq} seen {} times", v.len());
        *v[0]
    };
    for seq in 0..20 {
        let s = by_seq(seq);
        assert_eq!(
            s.vlan,
            Some(VlanTag {
                tpid: 0x8100,
                tci: 100
            })
        );
        assert_eq!(
            &s.head[12..18],
            &[0x81, 0x00, 0x00, 100, 0x08, 0x00],
            "tag back in the bytes"
        );
        assert_eq!(&s.head[..6], &MAC_B);
        assert_eq!(&s.head[6..12], &MAC_A);
    }
    let prio = by_seq(100);
    assert_eq!(
        prio.vlan,
        Some(VlanTag {
            tpid: 0x8100,
            tci: (5 << 13) | 42
        })
    );
    assert_eq!(prio.vlan.map(VlanTag::vid), Some(42));
    assert_eq!(prio.vlan.map(VlanTag::pcp), Some(5));
    let qinq = by_seq(200);
    assert_eq!(
        qinq.vlan,
        Some(VlanTag {
            tpid: 0x88a8,
            tci: 7
        }),
        "outermost tag reported"
    );
    assert_eq!(
        &qinq.head[12..22],
        &[0x88, 0xa8, 0, 7, 0x81, 0x00, 0, 42, 0x08, 0x00]
    );
    assert!(
        seen.iter().all(|s| s.seq != Some(300)),
        "tagged frame to port 68 was filtered"
    );
    assert_eq!(seen.len(), 22);
}

#[test]
fn packet_port_guard_suppresses_icmp_port_unreachable() {
    let pair = pair();
    // A connected UDP socket in A learns of an ICMP port unreachable as ECONNREFUSED.
    let probe = in_ns(&pair.a, || {
        let s = UdpSocket::bind("10.77.0.1:0").expect("bind");
        s.connect("10.77.0.2:67").expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        s
    });
    let refused = || {
        let before = icmp_dest_unreachs_sent(&pair);
        probe.send(b"unicast to 67").expect("send");
        let mut buf = [0u8; 64];
        let refused = match retrying(|| probe.recv(&mut buf)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => true,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                false
            }
            other => panic!("unexpected {other:?}"),
        };
        let icmp_sent = icmp_dest_unreachs_sent(&pair) - before;
        assert_eq!(
            refused,
            icmp_sent > 0,
            "ECONNREFUSED iff B sent ICMP ({icmp_sent})"
        );
        refused
    };

    assert!(
        refused(),
        "nothing on port 67: the kernel answers with ICMP"
    );
    let guard = in_ns(&pair.b, || PortGuard::bind(Some("vb")).expect("guard"));
    assert!(!refused(), "guarded: no ICMP");
    assert!(!refused(), "still none");
    assert!(
        !sys::poll_one(
            guard.as_fd(),
            sys::Ready::Readable,
            Duration::from_millis(10)
        )
        .expect("poll"),
        "the guard queued nothing"
    );
    drop(guard);
    assert!(
        refused(),
        "guard gone: ICMP again (so the limiter wasn't hiding it)"
    );
}

#[test]
fn packet_shutdown_stops_idle_workers_within_the_poll_timeout() {
    let pair = pair();
    let mut server = Server::start(&pair, 2);
    thread::sleep(POLL * 2);
    assert!(server.workers.iter().all(|w| !w.is_finished()));
    let took = server.stop();
    assert!(
        took < POLL + STOP_SLACK,
        "stopping took {took:?} with a {POLL:?} poll timeout"
    );
}

#[test]
fn packet_measure_echo_rate_one_worker() {
    let pair = pair();
    let server = Server::start_recording(&pair, 1, false);
    let mut client = Client::open(&pair.a, "va");
    let frames: Vec<Vec<u8>> = (0..64).map(|seq| Spec::dhcp().build(seq)).collect();
    // Keep a window of frames in flight; count what comes back in ~2 s.
    let window = 256;
    let (mut sent, mut received) = (0usize, 0usize);
    let start = Instant::now();
    let run = Duration::from_secs(2);
    while start.elapsed() < run {
        while sent - received + frames.len() <= window {
            client.send(&frames);
            sent += frames.len();
        }
        let rx = client.io.recv(&client.stats).expect("recv");
        if rx.is_empty() {
            let woke = client
                .io
                .wait(Duration::from_millis(20), None, &client.stats)
                .expect("wait");
            if !woke {
                // Lost frames (queue overflow) would stall the window: forget them.
                received = sent;
            }
            continue;
        }
        received += rx.len();
    }
    let secs = start.elapsed().as_secs_f64();
    let s = server.stats[0].snapshot();
    println!(
        "packet datapath, 1 worker over veth: {:.0} frames/s echoed ({} echoed in {secs:.2} s, mean batch {:.1}, dropped {:?})",
        s.tx as f64 / secs,
        s.tx,
        s.rx as f64 / s.batches.max(1) as f64,
        s.drops_by_name()
            .filter(|(_, c)| *c > 0)
            .collect::<Vec<_>>()
    );
    assert!(s.tx > 0);
}
