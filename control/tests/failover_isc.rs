//! Interop with the real ISC dhcpd 4.4.3 as failover secondary, our state machine as primary.
//!
//! `isc_dhcpd_secondary_reaches_normal` builds a network namespace (`tdm-failover-<pid>`,
//! removed in `Drop`), starts `dhcpd -f` in it with a failover peer on 127.0.0.1, and runs
//! `isc_client` (an ignored test of this same binary) inside the namespace with
//! `ip netns exec`. The client drives `Fsm` over a real TCP link to dhcpd: CONNECT, STATE,
//! UPDREQALL, BNDUPD/BNDACK for every lease of dhcpd's pool, UPDDONE, and both servers
//! reaching NORMAL. Every message dhcpd sends must parse and re-emit to the same bytes.
//!
//! Skipped (with a message) when not root or when `dhcpd`/`ip` are missing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant as StdInstant};

use control::failover::binding::Binding;
use control::failover::fsm::{Config, Event, Fsm, StateKind};
use control::failover::msg::{BindingStatus, MessageType, Repr, StreamDecoder};
use control::failover::{Instant, Now, Role, UnixTime};

const PORT: u16 = 6470;

struct Netns {
    name: String,
    dhcpd: Option<Child>,
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(mut c) = self.dhcpd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("run ip");
    assert!(st.success(), "ip {args:?} failed");
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn isc_dhcpd_secondary_reaches_normal() {
    interop(Role::Secondary);
}

/// ISC as primary: it dials us and sends CONNECT with its MCLT and `split 128` HBA.
#[test]
fn isc_dhcpd_primary_reaches_normal() {
    interop(Role::Primary);
}

/// Runs dhcpd in `isc_role` and our client, in the other role, in one namespace.
fn interop(isc_role: Role) {
    if !is_root() || !have("dhcpd") || !have("ip") {
        eprintln!("skipped: needs root, dhcpd and ip");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("dhcpd.conf");
    let leases = dir.path().join("dhcpd.leases");
    std::fs::write(
        &conf,
        format!(
            r#"failover peer "edge" {{
  {role}
  address 127.0.0.1;
  port {PORT};
  peer address 127.0.0.1;
  peer port {peer};
  max-response-delay 20;
  max-unacked-updates 10;
  load balance max seconds 3;
}}
subnet 10.77.0.0 netmask 255.255.255.0 {{
  pool {{
    failover peer "edge";
    range 10.77.0.100 10.77.0.110;
  }}
}}
"#,
            peer = PORT + 1,
            role = match isc_role {
                Role::Primary => "primary;\n  mclt 600;\n  split 128;",
                Role::Secondary => "secondary;",
            },
        ),
    )
    .unwrap();
    std::fs::write(&leases, "").unwrap();
    let tag = match isc_role {
        Role::Primary => "p",
        Role::Secondary => "s",
    };
    let mut ns = Netns {
        name: format!("tdm-failover-{}-{tag}", std::process::id()),
        dhcpd: None,
    };
    ip(&["netns", "add", &ns.name]);
    ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
    ip(&[
        "-n", &ns.name, "link", "add", "fo0", "type", "veth", "peer", "name", "fo1",
    ]);
    ip(&["-n", &ns.name, "addr", "add", "10.77.0.1/24", "dev", "fo0"]);
    ip(&["-n", &ns.name, "link", "set", "fo0", "up"]);
    ip(&["-n", &ns.name, "link", "set", "fo1", "up"]);
    let log = dir.path().join("dhcpd.log");
    let log_file = std::fs::File::create(&log).unwrap();
    ns.dhcpd = Some(
        Command::new("ip")
            .args(["netns", "exec", &ns.name, "dhcpd", "-f", "-d", "-cf"])
            .arg(&conf)
            .arg("-lf")
            .arg(&leases)
            .arg("-pf")
            .arg(dir.path().join("dhcpd.pid"))
            .arg("fo0")
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("start dhcpd"),
    );
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(&exe)
        .args([
            "--exact",
            "isc_client",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FAILOVER_ISC_CLIENT", tag)
        // Set FAILOVER_ISC_CAPTURE=DIR to keep every message dhcpd sent (tests/data/isc-4.4.3).
        .envs(std::env::var("FAILOVER_ISC_CAPTURE").map(|d| ("FAILOVER_ISC_CAPTURE", d)))
        .output()
        .expect("run the client in the namespace");
    let dhcpd_log = std::fs::read_to_string(&log).unwrap_or_default();
    let client =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && client.contains("1 passed"),
        "client failed:\n{client}\n--- dhcpd log ---\n{dhcpd_log}"
    );
    assert!(
        dhcpd_log.contains("Both servers normal"),
        "dhcpd log:\n{dhcpd_log}"
    );
    eprintln!("{client}");
}

/// Our side of the link; runs inside the namespace (see the module docs).
#[test]
#[ignore = "run by interop() inside its network namespace"]
fn isc_client() {
    let tag = std::env::var("FAILOVER_ISC_CLIENT").expect("run through interop()");
    // We play the role dhcpd does not.
    let role = if tag == "p" {
        Role::Secondary
    } else {
        Role::Primary
    };
    let start = StdInstant::now();
    let now = || Now {
        instant: Instant::from_millis(u64::try_from(start.elapsed().as_millis()).unwrap()),
        wall: UnixTime::now(),
    };
    let mut config = Config::new("edge", role);
    config.mclt = 600;
    config.max_unacked_updates = 10;
    let mut fsm = Fsm::new(config, None, now());
    let mut stream = match role {
        // dhcpd needs a moment to listen.
        Role::Primary => loop {
            match TcpStream::connect(("127.0.0.1", PORT)) {
                Ok(s) => break s,
                Err(e) if start.elapsed() < Duration::from_secs(10) => {
                    eprintln!("connect: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("cannot connect to dhcpd: {e}"),
            }
        },
        // An ISC primary dials its peer port.
        Role::Secondary => {
            let l = std::net::TcpListener::bind(("127.0.0.1", PORT + 1)).expect("listen");
            l.accept().expect("dhcpd connects").0
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    fsm.handle_connected(now());
    let mut decoder = StreamDecoder::new();
    let mut seen: Vec<MessageType> = Vec::new();
    let mut bndupds = 0;
    let mut to_backup = 0;
    let mut buf = [0u8; 4096];
    let deadline = Duration::from_secs(60);
    // Runs until both are NORMAL, then 8 s more (CONTACT both ways, ISC's pool balancing).
    let mut normal_at: Option<Duration> = None;
    loop {
        // Out: events, then transmits.
        while let Some(e) = fsm.poll_event() {
            eprintln!("event: {e:?}");
            match e {
                Event::UpdateRequest { .. } => fsm.update_done(now()),
                Event::CloseLink { .. } => panic!("link closed: {e:?}"),
                _ => {}
            }
        }
        while let Some(t) = fsm.poll_transmit() {
            eprintln!("send {}", t.msg_type.name());
            stream.write_all(&t.bytes).unwrap();
        }
        let both_normal =
            fsm.kind() == StateKind::Normal && fsm.partner_state() == Some(StateKind::Normal);
        match normal_at {
            None if both_normal => normal_at = Some(start.elapsed()),
            Some(t) if start.elapsed() > t + Duration::from_secs(8) => break,
            Some(_) => assert!(both_normal, "left NORMAL: {:?}", fsm.state()),
            None => assert!(
                start.elapsed() < deadline,
                "no NORMAL in time: {:?} / {:?}",
                fsm.state(),
                fsm.partner_state()
            ),
        }
        if fsm.poll_timeout().is_some_and(|t| t <= now().instant) {
            fsm.handle_timeout(now());
            continue;
        }
        match stream.read(&mut buf) {
            Ok(0) => panic!("dhcpd closed the link; seen {seen:?}"),
            Ok(n) => decoder.feed(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("read: {e}"),
        }
        while let Some(frame) = decoder.next_frame().expect("dhcpd frames") {
            let frame = frame.to_vec();
            let r = Repr::parse_bytes(&frame).expect("dhcpd's message parses");
            eprintln!("recv {} xid {} {:?}", r.msg_type.name(), r.xid, r.options);
            // What ISC builds, we re-emit byte for byte (option order and sizes).
            assert_eq!(
                r.to_vec().unwrap(),
                frame,
                "re-emit differs for {}",
                r.msg_type.name()
            );
            if let Ok(dir) = std::env::var("FAILOVER_ISC_CAPTURE") {
                let name = format!("{tag}-{:02}-{}.bin", seen.len(), r.msg_type.name());
                std::fs::write(std::path::Path::new(&dir).join(name), &frame).unwrap();
            }
            seen.push(r.msg_type);
            if r.msg_type == MessageType::BndUpd {
                bndupds += 1;
                if r.options.binding_status.and_then(BindingStatus::from_u8)
                    == Some(BindingStatus::Backup)
                {
                    to_backup += 1;
                }
                // Every BNDUPD dhcpd sends passes ISC's own receive checks; BNDACK as ISC
                // sends it (assigned-IP only, the BNDUPD's xid).
                let b = Binding::from_repr(&r).expect("dhcpd's BNDUPD is complete");
                let ack = Binding::ack(b.ip, None);
                assert!(fsm.send(now(), &ack, Some(r.xid)).is_some());
            }
            fsm.handle_message(now(), &r);
        }
    }
    eprintln!("seen from dhcpd: {seen:?}; {bndupds} BNDUPDs, {to_backup} to BACKUP");
    let handshake = match role {
        Role::Primary => MessageType::ConnectAck,
        Role::Secondary => MessageType::Connect,
    };
    for t in [
        handshake,
        MessageType::State,
        MessageType::UpdReqAll,
        MessageType::UpdDone,
        MessageType::Contact,
    ] {
        assert!(seen.contains(&t), "dhcpd never sent {}", t.name());
    }
    match role {
        Role::Primary => assert_eq!(bndupds, 11, "one BNDUPD per lease of the 11-address pool"),
        Role::Secondary => {
            // The pool (11 FREE) for our UPDREQALL, then ISC's rebalance on entering NORMAL
            // hands the secondary (11 - 0) / 2 = 5 addresses as BACKUP (failover.c:2514-2701).
            assert!(bndupds >= 11, "{bndupds} BNDUPDs");
            assert_eq!(to_backup, 5);
            // ISC's `split 128` as learned from its CONNECT: our bit order and meaning.
            assert_eq!(fsm.hba(), control::failover::hash::Hba::split(128));
            assert_eq!(fsm.mclt(), 600);
        }
    }
    eprintln!("NORMAL with ISC dhcpd");
}
