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
    use std::io::{Read, Write};
    let now = Now {
        instant: FoInstant::ZERO,
        wall: UnixTime::now(),
    };
    let mut c = fsm_mod::Config::new("loop", Role::Primary);
    c.mclt = 30;
    let mut fsm = Fsm::new(c, None, now);
    fsm.handle_connected(now);
    let connect = fsm.poll_transmit().expect("CONNECT");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(&connect.bytes).unwrap();
    let mut dec = StreamDecoder::new();
    let mut buf = [0u8; 2048];
    loop {
        let n = s.read(&mut buf).expect("an answer within 5 s");
        assert!(n > 0, "closed without an answer");
        dec.feed(&buf[..n]);
        if let Some(f) = dec.next_frame().expect("framing") {
            let m = Repr::parse_bytes(f).expect("parses");
            return (m.msg_type, m.options.reject_reason);
        }
    }
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
"#,
        dir = dir.to_string_lossy()
    );
    config::parse(&text).expect("valid config")
}

/// The relationship's lease store (the config's one subnet, no worker) for the driver.
fn replication(cfg: &Config) -> Replication {
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
        workers: 0,
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
    assert_eq!(st[0].unacked_updates, 0);

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
