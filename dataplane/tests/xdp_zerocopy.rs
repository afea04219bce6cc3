//! The AF_XDP worker path copies nothing: the handler parses received frames where the kernel
//! wrote them in the UMEM, builds replies in UMEM frames lent to its `TxBatch`, and those very
//! frames are transmitted; under a stream of batches every reply is right and every frame
//! comes back (fill ring + pool full again). Namespaces `tdm-zc-<pid>-<n>a/b` joined by a
//! veth, torn down in `Drop`.
//!
//! Run as root: `cargo test -p dataplane --test xdp_zerocopy`.

use std::net::UdpSocket;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use dataplane::stats::WorkerStats;
use dataplane::worker::{RxBatch, TxBatch, run};
use dataplane::xdp::{AttachMode, XdpProgram, XskFrames, XskIo, XskOptions};
use testkit::io::retrying;
use testkit::netns::{VethOptions, VethPair, in_ns};

/// Two namespaces joined by a veth with one queue per side (`va` 10.79.0.1 in `a`, `vb`
/// 10.79.0.2 in `b`).
fn pair() -> VethPair {
    VethPair::new("zc", [10, 79, 0], &VethOptions::default())
}

/// The XDP program on `vb` and one AF_XDP socket bound to its queue 0.
fn open(pair: &VethPair, opts: &XskOptions) -> (XdpProgram, XskIo) {
    let (mut prog, mut xsks) = in_ns(&pair.b, || {
        let mut prog = XdpProgram::load().expect("load");
        prog.attach("vb", AttachMode::Native).expect("attach");
        let xsks = XskIo::open_all("vb", 0..1, opts).expect("open xsk");
        (prog, xsks)
    });
    let io = xsks.pop().expect("one socket");
    prog.set_socket(io.queue(), &io.fd()).expect("xskmap");
    (prog, io)
}

/// Builds, in `slot`, the reply to UDP/IPv4 frame `f` (no VLAN tag): MACs, addresses and
/// ports swapped, UDP checksum cleared, the payload's first 4 bytes (a sequence number) kept
/// and the next 4 set to its complement, so the client can tell a built reply from an echo.
fn build_reply(f: &[u8], slot: &mut [u8]) -> Option<usize> {
    let r = slot.get_mut(..f.len())?;
    r.copy_from_slice(f);
    let (dst, src) = r.split_at_mut(6);
    dst.swap_with_slice(&mut src[..6]);
    let ip = 14;
    let (a, b) = r[ip + 12..ip + 20].split_at_mut(4);
    a.swap_with_slice(b);
    let udp = ip + usize::from(f[ip] & 0x0f) * 4;
    let (a, b) = r[udp..udp + 4].split_at_mut(2);
    a.swap_with_slice(b);
    r[udp + 6..udp + 8].copy_from_slice(&[0, 0]);
    let pl = udp + 8;
    let seq = u32::from_be_bytes(r.get(pl..pl + 4)?.try_into().ok()?);
    r.get_mut(pl + 4..pl + 8)?
        .copy_from_slice(&(!seq).to_be_bytes());
    Some(f.len())
}

/// Checks one reply's payload and returns its sequence number.
fn check_reply(buf: &[u8]) -> usize {
    assert_eq!(buf.len(), 300);
    let seq = u32::from_be_bytes(buf[0..4].try_into().expect("4"));
    let mark = u32::from_be_bytes(buf[4..8].try_into().expect("4"));
    assert_eq!(mark, !seq, "reply {seq} was built by the handler");
    assert!(buf[8..].iter().all(|&b| b == 0x5a), "payload {seq} kept");
    seq as usize
}

fn request(seq: usize) -> Vec<u8> {
    let mut p = vec![0x5au8; 300];
    p[..4].copy_from_slice(&(seq as u32).to_be_bytes());
    p[4..8].fill(0);
    p
}

fn inside(range: &Range<usize>, s: &[u8]) -> bool {
    let p = s.as_ptr() as usize;
    range.contains(&p) && p + s.len() <= range.end
}

/// Waits (bounded) until every transmitted frame has completed and returns the accounting.
fn settled(io: &mut XskIo) -> XskFrames {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let f = io.frames();
        if f.tx_in_flight == 0 || Instant::now() >= deadline {
            return f;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn received_frames_are_read_in_the_umem_and_replies_are_sent_from_the_frames_they_were_built_in() {
    const N: usize = 100;
    let pair = pair();
    let (_prog, mut io) = open(&pair, &XskOptions::default());
    let umem = io.umem_range();
    assert!(!umem.is_empty());
    let client = in_ns(&pair.a, || {
        UdpSocket::bind("10.79.0.1:6800").expect("client")
    });
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    for i in 0..N {
        client.send_to(&request(i), "10.79.0.2:67").expect("send");
    }

    let stats = WorkerStats::new();
    let shutdown = AtomicBool::new(false);
    let mut tx = TxBatch::new(64, 2048);
    let mut seen = 0usize;
    let mut all_lent = true;
    let start = Instant::now();
    let mut handler = |rx: &RxBatch<'_>, tx: &mut TxBatch| {
        assert!(rx.is_zero_copy());
        all_lent &= tx.lent() >= rx.len();
        for f in rx.frames() {
            assert!(inside(&umem, f.data), "the received frame is in the UMEM");
            let pushed = tx.push_with(|slot| {
                assert!(inside(&umem, slot), "the reply is built in the UMEM");
                build_reply(f.data, slot)
            });
            assert_eq!(pushed, Ok(true));
            seen += 1;
        }
        if seen >= N || start.elapsed() > Duration::from_secs(30) {
            shutdown.store(true, Ordering::Release);
        }
    };
    run(
        &mut io,
        &mut handler,
        &mut tx,
        &stats,
        &shutdown,
        Duration::from_millis(20),
    );
    assert_eq!(seen, N, "every request reached the handler");
    assert!(all_lent, "every batch had a lent frame per request");
    assert_eq!(tx.lent(), 0, "the worker took its frames back on stopping");

    let mut got = [false; N];
    let mut buf = [0u8; 2048];
    for _ in 0..N {
        let Ok((n, from)) = retrying(|| client.recv_from(&mut buf)) else {
            break;
        };
        assert_eq!(from.port(), 67);
        got[check_reply(&buf[..n])] = true;
    }
    assert!(got.iter().all(|&g| g), "every reply arrived");

    let c = io.copy_stats();
    assert_eq!(c.rx_in_place, N as u64);
    assert_eq!(c.rx_copied_bytes, 0);
    assert_eq!(c.tx_in_place, N as u64, "{c:?}");
    assert_eq!((c.tx_copied, c.tx_copied_bytes), (0, 0), "{c:?}");
    let s = stats.snapshot();
    assert_eq!((s.rx, s.tx, s.tx_errors), (N as u64, N as u64, 0));
    let f = settled(&mut io);
    assert!(f.balanced(), "{f:?}");
    assert_eq!((f.rx_held, f.tx_lent, f.tx_in_flight), (0, 0, 0), "{f:?}");
}

#[test]
fn many_batches_all_replies_right_and_no_frame_lost() {
    const ROUNDS: usize = 150;
    const PER_ROUND: usize = 96;
    // A small ring (and so a small pool) makes frames recycle many times over.
    let opts = XskOptions {
        ring_size: 256,
        batch: 32,
        ..XskOptions::default()
    };
    let pair = pair();
    let (_prog, mut io) = open(&pair, &opts);
    let total = io.frames().total;
    let client = in_ns(&pair.a, || {
        UdpSocket::bind("10.79.0.1:6801").expect("client")
    });
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");

    let stats = WorkerStats::new();
    let shutdown = AtomicBool::new(false);
    let handled = AtomicUsize::new(0);
    let mut rounds_sent = 0;
    let mut got = vec![0u8; ROUNDS * PER_ROUND];
    let deadline = Instant::now() + Duration::from_secs(60);
    thread::scope(|s| {
        let worker = s.spawn(|| {
            let mut tx = TxBatch::new(opts.batch, 2048);
            let mut handler = |rx: &RxBatch<'_>, tx: &mut TxBatch| {
                for f in rx.frames() {
                    let _ = tx.push_with(|slot| build_reply(f.data, slot));
                    handled.fetch_add(1, Ordering::Relaxed);
                }
            };
            run(
                &mut io,
                &mut handler,
                &mut tx,
                &stats,
                &shutdown,
                Duration::from_millis(10),
            );
            assert_eq!(tx.lent(), 0);
        });
        let mut buf = [0u8; 2048];
        for round in 0..ROUNDS {
            if Instant::now() >= deadline {
                break;
            }
            for i in 0..PER_ROUND {
                client
                    .send_to(&request(round * PER_ROUND + i), "10.79.0.2:67")
                    .expect("send");
            }
            rounds_sent += 1;
            for _ in 0..PER_ROUND {
                let Ok((n, _)) = retrying(|| client.recv_from(&mut buf)) else {
                    break;
                };
                let seq = check_reply(&buf[..n]);
                got[seq] += 1;
            }
        }
        shutdown.store(true, Ordering::Release);
        worker.join().expect("worker");
    });
    // Rounds not sent before the deadline (a starved machine) are not counted as lost.
    let n = rounds_sent * PER_ROUND;
    assert!(rounds_sent > 0, "no round sent");
    let once = got.iter().filter(|&&g| g == 1).count();
    assert!(got.iter().all(|&g| g <= 1), "no reply twice");
    let s = stats.snapshot();
    eprintln!(
        "{once}/{n} replies; worker rx {} tx {} batches {} errors {}",
        s.rx, s.tx, s.batches, s.tx_errors
    );
    // The client's socket and the veth may drop a few under load; the worker itself must
    // neither drop nor fail any.
    assert_eq!(s.tx_errors, 0);
    assert_eq!(s.rx, s.tx, "a reply for every request the worker received");
    assert_eq!(handled.load(Ordering::Relaxed) as u64, s.rx);
    assert!(once * 100 >= n * 99, "{once}/{n} replies arrived");
    let c = io.copy_stats();
    assert_eq!(c.tx_in_place, s.tx, "{c:?}");
    assert_eq!((c.rx_copied_bytes, c.tx_copied), (0, 0), "{c:?}");
    let f = settled(&mut io);
    assert_eq!(f.total, total);
    assert!(f.balanced(), "{f:?}");
    assert_eq!((f.rx_held, f.tx_lent, f.tx_in_flight), (0, 0, 0), "{f:?}");
    assert_eq!(
        f.free + f.fill,
        total,
        "fill ring and pool full again: {f:?}"
    );
}
