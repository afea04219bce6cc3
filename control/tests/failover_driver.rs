//! Two failover drivers in one process over loopback TCP (no root, no namespaces): they reach
//! NORMAL, refuse partner-down there, and the one left behind by an orderly shutdown goes to
//! PARTNER-DOWN; the stopped one's stored state is what it had before SHUTDOWN.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use control::config::{self, Config};
use control::daemon::Shutdown;
use control::failover::driver::{self, Driver, Replication, Running};
use control::failover::fsm::StateKind;
use control::failover::fsm::{self as fsm_mod, Fsm};
use control::failover::gate::Gate;
use control::failover::msg::{MessageType, RejectReason, Repr, StreamDecoder};
use control::failover::persist;
use control::failover::{Instant as FoInstant, Now, Role, UnixTime};
use control::status::FailoverState;

/// Dials `port` as a primary would and sends CONNECT; the type and reject reason of the
/// first message that comes back.
fn second_connect(port: u16) -> (MessageType, Option<RejectReason>) {
    let (_, _, m) = dial(port);
    (m.msg_type, m.options.reject_reason)
}

/// Dials `port` as a primary would (signed with [`SECRET`]) and sends CONNECT; the stream,
/// the machine after it took the first message back, and that message.
fn dial(port: u16) -> (std::net::TcpStream, Fsm, Repr<'static>) {
    use std::io::{Read, Write};
    let now = Now {
        instant: FoInstant::ZERO,
        wall: UnixTime::now(),
    };
    let mut c = fsm_mod::Config::new("loop", Role::Primary);
    c.mclt = 30;
    c.shared_secret = Some(SECRET.to_vec());
    let mut fsm = Fsm::new(c, None, now);
    fsm.handle_connected(now);
    let connect = fsm.poll_transmit().expect("CONNECT");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(&connect.bytes).unwrap();
    let mut dec = StreamDecoder::new();
    let mut buf = [0u8; 2048];
    loop {
        let n = testkit::io::retrying(|| s.read(&mut buf)).expect("an answer within 30 s");
        assert!(n > 0, "closed without an answer");
        dec.feed(&buf[..n]);
        if let Some(f) = dec.next_frame().expect("framing") {
            // Leaked: a handful of frames per test run, so the answer outlives the decoder.
            let f: &'static [u8] = Box::leak(f.to_vec().into_boxed_slice());
            let m = Repr::parse_bytes(f).expect("parses");
            fsm.handle_frame(now, f);
            return (s, fsm, m);
        }
    }
}

/// The pair's shared secret (tandem peers sign every message).
const SECRET: &[u8] = b"failover driver test secret";

/// Writes [`SECRET`] into `dir`; returns the file.
fn secret_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("failover.secret");
    std::fs::write(&path, SECRET).expect("write the secret");
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn config(dir: &std::path::Path, primary: bool, port: u16, peer_port: u16) -> Config {
    let role = if primary {
        "role = \"primary\"\nmclt = \"30s\""
    } else {
        "role = \"secondary\""
    };
    let text = format!(
        r#"[server]
interfaces = ["lo"]
data_dir = {dir:?}

[[subnet]]
prefix = "10.0.0.0/24"
pools = ["10.0.0.10-10.0.0.20"]
failover = "loop"

[[failover]]
name = "loop"
{role}
address = "127.0.0.1"
peer_address = "127.0.0.1"
port = {port}
peer_port = {peer_port}
max_response_delay = "6s"
shared_secret_file = {secret:?}
"#,
        dir = dir.to_string_lossy(),
        secret = secret_file(dir).to_string_lossy(),
    );
    config::parse(&text).expect("valid config")
}

/// The relationship's lease store (the config's one subnet, no worker) for the driver.
fn replication(cfg: &Config) -> Replication {
    replication_for(cfg, 0)
}

/// The same with `workers` outbound queues (a test writes records as a worker would).
fn replication_for(cfg: &Config, workers: usize) -> Replication {
    let specs = control::serve::engine_config(cfg).table_specs();
    let (store, mut journals, _) = lease_mmap::Store::open(
        &cfg.server.data_dir,
        &specs,
        1,
        lease_mmap::Durability::Async,
    )
    .expect("lease store");
    Replication {
        store: Arc::new(store),
        journal: journals.pop().expect("the control plane's journal"),
        workers,
        table_rel: vec![Some(0)],
    }
}

fn start(cfg: &Config, shutdown: &Shutdown) -> Running {
    let (_gate, views) = Gate::new(cfg);
    driver::start(cfg, views, replication(cfg), shutdown).expect("driver starts")
}

fn wait(d: &Driver, secs: u64, what: &str, ok: impl Fn(FailoverState, FailoverState) -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = d.status();
        let r = &s[0];
        if ok(r.state, r.partner_state) {
            return;
        }
        assert!(Instant::now() < until, "{what}: not reached; last {r:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_drivers_over_loopback() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (pa, pb) = (free_port(), free_port());
    let ca = config(da.path(), true, pa, pb);
    let cb = config(db.path(), false, pb, pa);
    let (sa, sb) = (Shutdown::new(), Shutdown::new());
    let a = start(&ca, &sa);
    let b = start(&cb, &sb);
    let normal = |s, p| s == FailoverState::Normal && p == FailoverState::Normal;
    wait(&a.driver, 90, "A normal", normal);
    wait(&b.driver, 90, "B normal", normal);
    let st = a.driver.status();
    assert_eq!(st[0].name, "loop");
    assert_eq!(st[0].role, config::Role::Primary);
    // Pool balancing on entering NORMAL sends BNDUPDs: every one is acknowledged.
    let until = Instant::now() + Duration::from_secs(30);
    while a.driver.status()[0].unacked_updates > 0 {
        assert!(
            Instant::now() < until,
            "updates never acknowledged: {:?}",
            a.driver.status()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // A second link to B while A's is established: its CONNECT gets CONNECTACK with
    // reject 7 (duplicate connection), and the pair stays NORMAL.
    let ack = second_connect(pb);
    assert_eq!(ack.0, MessageType::ConnectAck);
    assert_eq!(ack.1, Some(RejectReason::DuplicateConnection));
    wait(&b.driver, 5, "B still normal", normal);

    let e = b.driver.partner_down("loop", 0).unwrap_err().to_string();
    assert!(e.contains("only allowed"), "{e}");
    let e = b.driver.partner_down("other", 0).unwrap_err().to_string();
    assert!(e.contains("no such relationship"), "{e}");

    // A stops in order: B hears SHUTDOWN and goes PARTNER-DOWN.
    sa.request();
    a.thread.join().expect("driver A joins");
    wait(&b.driver, 30, "B partner-down", |s, p| {
        s == FailoverState::PartnerDown && p == FailoverState::Shutdown
    });
    // A's stored state is the one before SHUTDOWN; B's is PARTNER-DOWN.
    let stored = persist::load(da.path(), "loop").unwrap().unwrap();
    assert_eq!(stored.my_state, StateKind::Normal);
    let stored = persist::load(db.path(), "loop").unwrap().unwrap();
    assert_eq!(stored.my_state, StateKind::PartnerDown);
    assert_eq!(stored.partner_state, Some(StateKind::Shutdown));
    // The secondary stored the MCLT it learned from the primary.
    assert_eq!(stored.mclt, 30);
    // After PARTNER-DOWN, partner-down itself is refused (not from that state).
    assert!(b.driver.partner_down("loop", 0).is_err());
    sb.request();
    b.thread.join().expect("driver B joins");
}

/// A lease written on A with the relay info (option 82) it was granted through reaches B's
/// table with the same relay info (BNDUPD option 8), durably: B's store reopened still has
/// it. A's renewal without relay info clears it at B.
#[test]
fn relay_info_reaches_the_partners_table() {
    use control::failover::replicate::WorkerOutbox;
    use dataplane::server::ChangeSink;
    use lease_mmap::{BindingState, Lease, RelayInfo, Slot, TableId};

    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (pa, pb) = (free_port(), free_port());
    let (ca, cb) = (
        config(da.path(), true, pa, pb),
        config(db.path(), false, pb, pa),
    );
    let (ra, rb) = (replication_for(&ca, 1), replication(&cb));
    let (store_a, store_b) = (Arc::clone(&ra.store), Arc::clone(&rb.store));
    let (sa, sb) = (Shutdown::new(), Shutdown::new());
    let a = driver::start(&ca, Gate::new(&ca).1, ra, &sa).expect("driver A starts");
    let b = driver::start(&cb, Gate::new(&cb).1, rb, &sb).expect("driver B starts");
    let normal = |s, p| s == FailoverState::Normal && p == FailoverState::Normal;
    wait(&a.driver, 90, "A normal", normal);
    wait(&b.driver, 90, "B normal", normal);
    let settled = |d: &Driver| d.status()[0].unacked_updates == 0;
    let until = Instant::now() + Duration::from_secs(30);
    while !settled(&a.driver) || !settled(&b.driver) {
        assert!(Instant::now() < until, "pool balancing never acknowledged");
        std::thread::sleep(Duration::from_millis(50));
    }

    // A primary's FREE address, ACTIVE at A through a relay, as a worker writes it.
    let (ta, tb) = (&store_a.tables()[0], &store_b.tables()[0]);
    let slot = (0..ta.len())
        .map(Slot)
        .find(|&s| ta.is_allocatable(s) && ta.read(s).1.state == BindingState::Free)
        .expect("a FREE address at the primary");
    let relay = RelayInfo::new(&[
        1, 6, b'e', b't', b'h', b'0', b'/', b'7', 2, 6, 2, 0, 0, 0, 0, 7, 12, 4, 10, 0, 0, 1,
    ])
    .unwrap();
    let mut outbox = WorkerOutbox::new(&a.outbox, 0).expect("worker 0's queue");
    let mut write_at_a = |relay: RelayInfo, secs: u32| {
        let now = UnixTime::now();
        let (v, cur) = ta.read(slot);
        let mut l = Lease {
            state: BindingState::Active,
            ends: now.saturating_add(secs),
            tstp: now.saturating_add(secs),
            cltt: now,
            stos: now,
            htype: 1,
            hlen: 6,
            relay,
            hostname: lease_mmap::Hostname::keep(b"cpe-7", &relay),
            ..cur
        };
        l.atsfp = UnixTime(0);
        l.chaddr[..6].copy_from_slice(&[2, 0, 0, 0, 0, 7]);
        ta.update(slot, v, &l).expect("write at A");
        outbox.changed(TableId(0), slot);
        outbox.batch_done();
    };
    let at_b = |what: &str, ok: &dyn Fn(&Lease) -> bool| {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let l = tb.read(slot).1;
            if ok(&l) {
                return l;
            }
            assert!(Instant::now() < until, "{what}: B has {l:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    write_at_a(relay, 600);
    let l = at_b("ACTIVE with the relay info", &|l| {
        l.state == BindingState::Active && !l.relay.is_empty()
    });
    assert_eq!(l.relay, relay);
    assert_eq!(l.relay.circuit_id(), Some(&b"eth0/7"[..]));
    assert_eq!(l.hostname.as_bytes(), b"cpe-7");
    assert_eq!(&l.chaddr[..6], &[2, 0, 0, 0, 0, 7]);

    // A renewal that came without a relay: the partner's record says so too.
    let ends = l.ends;
    write_at_a(RelayInfo::EMPTY, 900);
    let l = at_b("the renewal", &|l| l.ends > ends);
    assert_eq!(l.state, BindingState::Active);
    assert!(l.relay.is_empty(), "{:?}", l.relay);

    // And once more with it, then B's store reopened from its files and journal.
    write_at_a(relay, 1200);
    at_b("the relay info again", &|l| l.relay == relay);
    sa.request();
    sb.request();
    a.thread.join().expect("driver A joins");
    b.thread.join().expect("driver B joins");
    drop(store_b);
    let specs = control::serve::engine_config(&cb).table_specs();
    let (store, _, _) =
        lease_mmap::Store::open(db.path(), &specs, 1, lease_mmap::Durability::Async)
            .expect("B's store reopens");
    let l = store.tables()[0].read(slot).1;
    assert_eq!((l.state, l.relay), (BindingState::Active, relay));
    assert_eq!(l.hostname.as_bytes(), b"cpe-7");
}

#[test]
fn corrupt_state_file_stops_the_start() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), true, free_port(), free_port());
    std::fs::write(persist::state_path(d.path(), "loop"), b"garbage").unwrap();
    let (_gate, views) = Gate::new(&cfg);
    let e = driver::start(&cfg, views, replication(&cfg), &Shutdown::new())
        .err()
        .expect("refused");
    let text = format!("{e:#}");
    assert!(text.contains("corrupt failover state file"), "{text}");
}

/// A primary's side of the handshake on a fresh TCP connection to `port`: CONNECT, and the
/// CONNECTACK read back (accepted). Returns the stream and the machine, connected.
fn handshake(port: u16) -> (std::net::TcpStream, Fsm) {
    let (s, fsm, m) = dial(port);
    assert_eq!(m.msg_type, MessageType::ConnectAck);
    assert_eq!(m.options.reject_reason, None, "CONNECT refused");
    assert!(fsm.is_connected(), "CONNECTACK not taken");
    (s, fsm)
}

/// A peer that sends BNDUPDs and never reads the BNDACKs is disconnected once the answers
/// waiting for it pass the limit, instead of growing our memory without bound.
#[test]
fn a_peer_that_does_not_read_is_disconnected() {
    use control::failover::msg::BindingStatus;
    use std::io::Write;
    let d = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config(d.path(), false, port, free_port());
    let shutdown = Shutdown::new();
    let b = start(&cfg, &shutdown);
    let (mut s, mut fsm) = handshake(port);
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    // Updates for an address in no pool: each is refused, each costs a BNDACK. Signed as
    // the peer signs them (the link's key, one sequence number each).
    let mut upd = Repr::new(MessageType::BndUpd, UnixTime::now(), 0);
    upd.options.assigned_ip = Some(std::net::Ipv4Addr::new(10, 0, 0, 99));
    upd.options.binding_status = Some(BindingStatus::Free as u8);
    let now = Now {
        instant: FoInstant::ZERO,
        wall: UnixTime::now(),
    };
    let started = Instant::now();
    let mut sent = 0u64;
    let cut = loop {
        let mut burst = Vec::new();
        for _ in 0..1000 {
            fsm.send(now, &upd, None).expect("connected");
            while let Some(t) = fsm.poll_transmit() {
                burst.extend_from_slice(&t.bytes);
            }
        }
        match s.write_all(&burst) {
            Ok(()) => sent += 1000,
            Err(e) => break e,
        }
        assert!(
            sent < 5_000_000 && started.elapsed() < Duration::from_secs(120),
            "{sent} BNDUPDs unanswered and the link still up"
        );
    };
    assert!(
        matches!(
            cut.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{cut}"
    );
    // The relationship is still there to serve and to take the real peer.
    assert_eq!(b.driver.status()[0].name, "loop");
    shutdown.request();
    b.thread.join().expect("driver joins");
}

/// Open file descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Connection floods as in CVE-2016-2774 and CVE-2017-3144 (connections that stay open and
/// say nothing, or say garbage, until the server runs out of descriptors): from a stranger
/// they are closed at once, from the peer's own address a few wait for their CONNECT and
/// the rest are closed; the pair stays NORMAL and every descriptor comes back.
#[test]
fn connection_floods_leave_the_pair_serving() {
    use std::io::{Read, Write};
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (pa, pb) = (free_port(), free_port());
    let (sa, sb) = (Shutdown::new(), Shutdown::new());
    let a = start(&config(da.path(), true, pa, pb), &sa);
    let b = start(&config(db.path(), false, pb, pa), &sb);
    let normal = |s, p| s == FailoverState::Normal && p == FailoverState::Normal;
    wait(&a.driver, 90, "A normal", normal);
    wait(&b.driver, 90, "B normal", normal);
    let baseline = open_fds();

    // From the peer's address: 300 links that stay silent or send garbage.
    let mut flood = Vec::new();
    for n in 0..300 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", pb)).expect("connect");
        if n % 2 == 1 {
            let _ = s.write_all(b"\xff\xff garbage that is no failover message");
        }
        flood.push(s);
    }
    // From a stranger (127.0.0.2): closed at once, without a word.
    let stranger = std::process::Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(format!(
            r#"
import socket
closed = 0
for _ in range(300):
    s = socket.socket()
    s.settimeout(10)
    s.bind(("127.0.0.2", 0))
    s.connect(("127.0.0.1", {pb}))
    try:
        closed += s.recv(1) == b""
    except ConnectionResetError:
        closed += 1
    s.close()
print(closed)
"#
        ))
        .output()
        .expect("python3");
    assert!(stranger.status.success(), "{stranger:?}");
    assert_eq!(String::from_utf8_lossy(&stranger.stdout).trim(), "300");

    // All but a few of the peer-address links are closed by B without waiting.
    let mut closed = 0;
    for s in &mut flood {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut b1 = [0u8; 64];
        if matches!(s.read(&mut b1), Ok(0) | Err(_)) && s.read(&mut b1).map_or(true, |n| n == 0) {
            closed += 1;
        }
    }
    assert!(closed >= 290, "only {closed} of 300 flood links closed");
    wait(&a.driver, 5, "A still normal", normal);
    wait(&b.driver, 5, "B still normal", normal);

    // Our ends closed, every descriptor B took comes back.
    drop(flood);
    let until = Instant::now() + Duration::from_secs(30);
    while open_fds() > baseline {
        assert!(
            Instant::now() < until,
            "descriptors leaked: {} open, {baseline} before the flood",
            open_fds()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    wait(&b.driver, 5, "B normal after the flood", normal);
    // A second link is answered again once the flood's links are gone.
    let ack = second_connect(pb);
    assert_eq!(
        ack,
        (
            MessageType::ConnectAck,
            Some(RejectReason::DuplicateConnection)
        )
    );
    sa.request();
    sb.request();
    a.thread.join().expect("A joins");
    b.thread.join().expect("B joins");
}
