//! Interop with the real ISC dhcpd 4.4.3 over a real TCP failover link.
//!
//! Each test builds a network namespace (`tdm-failover-<pid>-<tag>`, removed in `Drop`),
//! starts `dhcpd -f` in it with a failover peer on 127.0.0.1, and runs `isc_client` (an
//! ignored test of this same binary) inside the namespace with `ip netns exec`. The client
//! drives our `Fsm` against dhcpd; every message dhcpd sends must parse and re-emit to the
//! same bytes, and every BNDUPD must pass ISC's own receive checks (`Binding::from_repr`).
//!
//! * `s`: dhcpd secondary, we primary: CONNECT, STATE, UPDREQALL both ways, BNDUPD/BNDACK
//!   for the 11 leases, UPDDONE, both NORMAL; then our BNDUPD of an ACTIVE lease with its
//!   relay info in client-request-options (option 8) is acknowledged and stored by dhcpd.
//! * `p`: dhcpd primary, we secondary: we learn its MCLT and `split 128` HBA; its pool
//!   rebalance sends us 5 addresses as BACKUP.
//! * `r`: dhcpd secondary killed with SIGKILL in NORMAL: we go COMMUNICATIONS-INTERRUPTED,
//!   the operator says partner-down, dhcpd restarts, goes RECOVER → RECOVER-WAIT (MCLT 30 s)
//!   → RECOVER-DONE, and both end NORMAL.
//!
//! Skipped (with a message) when not root or when `dhcpd`/`ip` are missing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant as StdInstant};

use control::failover::binding::Binding;
use control::failover::fsm::{Config, Event, Fsm, StateKind};
use control::failover::hash::Hba;
use control::failover::msg::{BindingStatus, MessageType, RejectReason, Repr, StreamDecoder};
use control::failover::{Instant, Now, Role, UnixTime};

const PORT: u16 = 6470;

/// The namespace and the first dhcpd; both go away in `Drop`, even after a failure.
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
    interop("s");
}

/// ISC as primary: it dials us and sends CONNECT with its MCLT and `split 128` HBA.
#[test]
fn isc_dhcpd_primary_reaches_normal() {
    interop("p");
}

/// dhcpd dies, we take over by hand, dhcpd comes back through RECOVER-WAIT.
#[test]
fn isc_dhcpd_restart_after_partner_down() {
    interop("r");
}

/// The files of one dhcpd instance, passed to the client through the environment.
struct Files {
    conf: PathBuf,
    leases: PathBuf,
    pid: PathBuf,
    log: PathBuf,
}

impl Files {
    fn to_env(&self) -> String {
        [&self.conf, &self.leases, &self.pid, &self.log]
            .map(|p| p.display().to_string())
            .join("|")
    }

    fn from_env() -> Files {
        let v = std::env::var("FAILOVER_ISC_FILES").expect("FAILOVER_ISC_FILES");
        let p: Vec<PathBuf> = v.split('|').map(PathBuf::from).collect();
        Files {
            conf: p[0].clone(),
            leases: p[1].clone(),
            pid: p[2].clone(),
            log: p[3].clone(),
        }
    }

    /// `dhcpd -f` on fo0 of the current namespace, logging to the log file.
    fn dhcpd(&self, wrap: &[&str]) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let (prog, pre) = match wrap.split_first() {
            Some((p, rest)) => (*p, rest),
            None => ("dhcpd", &[][..]),
        };
        let mut c = Command::new(prog);
        c.args(pre);
        if !wrap.is_empty() {
            c.arg("dhcpd");
        }
        c.args(["-f", "-d", "-cf"])
            .arg(&self.conf)
            .arg("-lf")
            .arg(&self.leases)
            .arg("-pf")
            .arg(&self.pid)
            .arg("fo0")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dhcpd")
    }
}

/// Runs dhcpd and our client in one namespace; `tag` picks the scenario.
fn interop(tag: &str) {
    if !is_root() || !have("dhcpd") || !have("ip") {
        eprintln!("skipped: needs root, dhcpd and ip");
        return;
    }
    let isc_primary = tag == "p";
    let dir = tempfile::tempdir().expect("tempdir");
    let files = Files {
        conf: dir.path().join("dhcpd.conf"),
        leases: dir.path().join("dhcpd.leases"),
        pid: dir.path().join("dhcpd.pid"),
        log: dir.path().join("dhcpd.log"),
    };
    std::fs::write(
        &files.conf,
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
            role = if isc_primary {
                "primary;\n  mclt 600;\n  split 128;"
            } else {
                "secondary;"
            },
        ),
    )
    .unwrap();
    std::fs::write(&files.leases, "").unwrap();
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
    ns.dhcpd = Some(files.dhcpd(&["ip", "netns", "exec", &ns.name]));
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
        .env("FAILOVER_ISC_FILES", files.to_env())
        // Set FAILOVER_ISC_CAPTURE=DIR to keep every message dhcpd sent (tests/data/isc-4.4.3).
        .envs(std::env::var("FAILOVER_ISC_CAPTURE").map(|d| ("FAILOVER_ISC_CAPTURE", d)))
        .output()
        .expect("run the client in the namespace");
    let dhcpd_log = std::fs::read_to_string(&files.log).unwrap_or_default();
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

/// A dhcpd the client started; killed in `Drop`.
struct Restarted(Child);

impl Drop for Restarted {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The link is gone.
#[derive(Debug)]
struct Closed;

/// Our side: the machine, its TCP link to dhcpd, and what dhcpd sent.
struct Client {
    tag: String,
    start: StdInstant,
    fsm: Fsm,
    stream: Option<TcpStream>,
    decoder: StreamDecoder,
    seen: Vec<MessageType>,
    partner_states: Vec<StateKind>,
    bndupds: u32,
    to_backup: u32,
    /// Every BNDACK dhcpd sent: xid and reject reason.
    bndacks: Vec<(u32, Option<RejectReason>)>,
}

impl Client {
    fn now(&self) -> Now {
        Now {
            instant: Instant::from_millis(u64::try_from(self.start.elapsed().as_millis()).unwrap()),
            wall: UnixTime::now(),
        }
    }

    /// Dials dhcpd, then tells the machine. In both roles: an ISC primary also accepts its
    /// peer's connection and sends CONNECT on it (`failover.c:325-333`), and dialling avoids
    /// waiting 90 s for its next attempt if its first one came before we listened.
    fn connect(&mut self) {
        let give_up = self.start.elapsed() + Duration::from_secs(60);
        let stream = loop {
            match TcpStream::connect(("127.0.0.1", PORT)) {
                Ok(s) => break s,
                Err(e) if self.start.elapsed() < give_up => {
                    eprintln!("connect: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("cannot connect to dhcpd: {e}"),
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        self.stream = Some(stream);
        self.decoder = StreamDecoder::new();
        let now = self.now();
        self.fsm.handle_connected(now);
    }

    fn disconnected(&mut self) {
        self.stream = None;
        let now = self.now();
        self.fsm.handle_disconnected(now);
        self.flush();
    }

    /// Events and transmits out.
    fn flush(&mut self) {
        while let Some(e) = self.fsm.poll_event() {
            eprintln!("event: {e:?}");
            match e {
                Event::UpdateRequest { .. } => {
                    let now = self.now();
                    self.fsm.update_done(now);
                }
                Event::CloseLink { last_words, .. } => {
                    if let Some(s) = self.stream.as_mut() {
                        for t in last_words {
                            let _ = s.write_all(&t.bytes);
                        }
                    }
                    self.stream = None;
                }
                Event::PartnerStateChanged { to, .. } => self.partner_states.push(to),
                _ => {}
            }
        }
        while let Some(t) = self.fsm.poll_transmit() {
            eprintln!("send {}", t.msg_type.name());
            if let Some(s) = self.stream.as_mut() {
                s.write_all(&t.bytes).unwrap();
            }
        }
    }

    /// One round: flush, timers, one read (at most 100 ms), the frames it completed.
    fn turn(&mut self) -> Result<(), Closed> {
        self.flush();
        if self
            .fsm
            .poll_timeout()
            .is_some_and(|t| t <= self.now().instant)
        {
            let now = self.now();
            self.fsm.handle_timeout(now);
            self.flush();
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(Closed);
        };
        let mut buf = [0u8; 4096];
        match testkit::io::retrying(|| stream.read(&mut buf)) {
            Ok(0) => {
                eprintln!("dhcpd closed the link");
                self.disconnected();
                return Err(Closed);
            }
            Ok(n) => self.decoder.feed(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                eprintln!("read: {e}");
                self.disconnected();
                return Err(Closed);
            }
        }
        while let Some(frame) = self.decoder.next_frame().expect("dhcpd frames") {
            let frame = frame.to_vec();
            let r = Repr::parse_bytes(&frame).expect("dhcpd's message parses");
            eprintln!("recv {} xid {}", r.msg_type.name(), r.xid);
            // What ISC builds, we re-emit byte for byte (option order and sizes).
            assert_eq!(
                r.to_vec().unwrap(),
                frame,
                "re-emit differs for {}",
                r.msg_type.name()
            );
            if let Ok(dir) = std::env::var("FAILOVER_ISC_CAPTURE") {
                let name = format!(
                    "{}-{:02}-{}.bin",
                    self.tag,
                    self.seen.len(),
                    r.msg_type.name()
                );
                std::fs::write(std::path::Path::new(&dir).join(name), &frame).unwrap();
            }
            self.seen.push(r.msg_type);
            if r.msg_type == MessageType::BndAck {
                self.bndacks.push((r.xid, r.options.reject_reason));
            }
            let now = self.now();
            if r.msg_type == MessageType::BndUpd {
                self.bndupds += 1;
                // Every BNDUPD dhcpd sends passes ISC's own receive checks; BNDACK as ISC
                // sends it (assigned-IP only, the BNDUPD's xid).
                let b = Binding::from_repr(&r).expect("dhcpd's BNDUPD is complete");
                if b.status == BindingStatus::Backup {
                    self.to_backup += 1;
                }
                assert!(
                    self.fsm
                        .send(now, &Binding::ack(b.ip, None), Some(r.xid))
                        .is_some()
                );
            }
            self.fsm.handle_message(now, &r);
        }
        Ok(())
    }

    fn both_normal(&self) -> bool {
        self.fsm.kind() == StateKind::Normal && self.fsm.partner_state() == Some(StateKind::Normal)
    }

    /// Runs until `done`, panicking after `secs`.
    fn drive(&mut self, secs: u64, what: &str, done: impl Fn(&Client) -> bool) {
        let give_up = self.start.elapsed() + Duration::from_secs(secs);
        while !done(self) {
            assert!(
                self.start.elapsed() < give_up,
                "{what}: not reached in {secs} s: {:?} / partner {:?}",
                self.fsm.state(),
                self.fsm.partner_state()
            );
            if self.turn().is_err() {
                panic!("{what}: link lost: {:?}", self.fsm.state());
            }
        }
    }

    /// Stays connected and NORMAL for `secs` (CONTACT both ways, no timeouts).
    fn hold_normal(&mut self, secs: u64) {
        let until = self.start.elapsed() + Duration::from_secs(secs);
        while self.start.elapsed() < until {
            self.turn().expect("link stays up in NORMAL");
            assert!(self.both_normal(), "left NORMAL: {:?}", self.fsm.state());
        }
    }
}

/// Our side of the link; runs inside the namespace (see the module docs).
#[test]
#[ignore = "run by interop() inside its network namespace"]
fn isc_client() {
    let tag = std::env::var("FAILOVER_ISC_CLIENT").expect("run through interop()");
    let role = if tag == "p" {
        Role::Secondary
    } else {
        Role::Primary
    };
    let start = StdInstant::now();
    let mut config = Config::new("edge", role);
    config.mclt = if tag == "r" { 30 } else { 600 };
    config.max_unacked_updates = 10;
    let now = Now {
        instant: Instant::from_millis(0),
        wall: UnixTime::now(),
    };
    let mut c = Client {
        tag: tag.clone(),
        start,
        fsm: Fsm::new(config, None, now),
        stream: None,
        decoder: StreamDecoder::new(),
        seen: Vec::new(),
        partner_states: Vec::new(),
        bndupds: 0,
        to_backup: 0,
        bndacks: Vec::new(),
    };
    c.connect();
    c.drive(60, "both NORMAL", Client::both_normal);
    c.hold_normal(8);
    eprintln!(
        "seen from dhcpd: {:?}; {} BNDUPDs, {} to BACKUP",
        c.seen, c.bndupds, c.to_backup
    );
    let handshake = if role == Role::Primary {
        MessageType::ConnectAck
    } else {
        MessageType::Connect
    };
    for t in [
        handshake,
        MessageType::State,
        MessageType::UpdReqAll,
        MessageType::UpdDone,
        MessageType::Contact,
    ] {
        assert!(c.seen.contains(&t), "dhcpd never sent {}", t.name());
    }
    match tag.as_str() {
        "s" => {
            assert_eq!(c.bndupds, 11, "one BNDUPD per lease of the 11-address pool");
            // A message-digest option placed first, as the draft says (§12.17), then a
            // second one: ISC types option 17 FT_BYTES and allows it in no message
            // (stables.c:75, :108-131), so it skips both and keeps the link.
            let mut m = Repr::new(MessageType::Contact, c.now().wall, 4242)
                .to_vec()
                .unwrap();
            let digest = [0, 17, 0, 5, 2, 0xde, 0xad, 0xbe, 0xef];
            m.extend_from_slice(&digest);
            m.extend_from_slice(&digest);
            let len = u16::try_from(m.len()).unwrap().to_be_bytes();
            m[..2].copy_from_slice(&len);
            c.stream.as_mut().unwrap().write_all(&m).unwrap();
            c.hold_normal(4);
            relayed_bndupd(&mut c);
        }
        "p" => {
            // The pool (11 FREE) for our UPDREQALL, then ISC's rebalance on entering NORMAL
            // hands the secondary (11 - 0) / 2 = 5 addresses as BACKUP (failover.c:2514-2701).
            assert!(c.bndupds >= 11, "{} BNDUPDs", c.bndupds);
            assert_eq!(c.to_backup, 5);
            // ISC's `split 128` as learned from its CONNECT: our bit order and meaning.
            assert_eq!(c.fsm.hba(), Hba::split(128));
            assert_eq!(c.fsm.mclt(), 600);
        }
        "r" => restart_scenario(&mut c),
        t => panic!("unknown scenario {t}"),
    }
    eprintln!("NORMAL with ISC dhcpd");
}

/// Our BNDUPD of an ACTIVE lease granted through a relay, its option 82 in
/// client-request-options (option 8), as every peer gets it: dhcpd 4.4 allows option 8 in a
/// BNDUPD and never reads it (`stables.c:58-59`, `:112-115`), so it acknowledges the binding
/// without a reject reason, keeps the link NORMAL and writes the lease to its lease file.
fn relayed_bndupd(c: &mut Client) {
    use lease_mmap::{BindingState, Lease, RelayInfo};
    let ip = std::net::Ipv4Addr::new(10, 77, 0, 105);
    let now = c.now().wall;
    let mut lease = Lease {
        state: BindingState::Active,
        ends: now.saturating_add(600),
        tstp: now.saturating_add(900),
        cltt: now,
        stos: now,
        htype: 1,
        hlen: 6,
        relay: RelayInfo::new(&[1, 4, b'p', b'o', b'r', b't', 2, 6, 2, 0, 0, 0, 0x77, 5]).unwrap(),
        ..Lease::default()
    };
    lease.chaddr[..6].copy_from_slice(&[2, 0, 0, 0, 0x77, 5]);
    let b = Binding::from_lease(ip, &lease, 0).unwrap();
    let r = b.to_repr();
    assert!(r.options.client_request_options.is_some());
    let xid = c.fsm.send(c.now(), &r, None).expect("connected");
    c.drive(20, "BNDACK for the relayed binding", |c| {
        c.bndacks.iter().any(|(x, _)| *x == xid)
    });
    let reject = c.bndacks.iter().find(|(x, _)| *x == xid).unwrap().1;
    assert_eq!(reject, None, "dhcpd refused the binding");
    c.hold_normal(4);
    let leases = std::fs::read_to_string(Files::from_env().leases).unwrap();
    let at = leases
        .rfind("lease 10.77.0.105 {")
        .unwrap_or_else(|| panic!("not in dhcpd's lease file:\n{leases}"));
    let block = &leases[at..];
    let block = &block[..block.find('}').unwrap_or(block.len())];
    assert!(
        block.contains("binding state active") && block.contains("02:00:00:00:77:05"),
        "{block}"
    );
}

fn restart_scenario(c: &mut Client) {
    let files = Files::from_env();
    // SIGKILL the dhcpd the test started (its pid file names it).
    let pid = std::fs::read_to_string(&files.pid).expect("dhcpd pid file");
    let st = Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .unwrap();
    assert!(st.success());
    // The link drops: NORMAL → COMMUNICATIONS-INTERRUPTED.
    let give_up = c.start.elapsed() + Duration::from_secs(30);
    while c.turn().is_ok() {
        assert!(c.start.elapsed() < give_up, "link did not drop");
    }
    assert_eq!(c.fsm.kind(), StateKind::CommunicationsInterrupted);
    // The operator: partner down, last known up a few seconds ago.
    let now = c.now();
    c.fsm.partner_down(now, UnixTime(now.wall.0 - 5)).unwrap();
    c.flush();
    assert_eq!(c.fsm.kind(), StateKind::PartnerDown);
    // dhcpd comes back with its lease file (it was NORMAL): in STARTUP it sees us in
    // PARTNER-DOWN and goes RECOVER (failover.c:2126-2131), asks for everything, waits MCLT
    // (30 s) in RECOVER-WAIT, then RECOVER-DONE; we go NORMAL, then it does.
    // The killed dhcpd stays a zombie of the outer test until it is reaped, and dhcpd
    // refuses to start while its pid file names a live pid: remove the file.
    std::fs::remove_file(&files.pid).unwrap();
    let _dhcpd = Restarted(files.dhcpd(&[]));
    c.partner_states.clear();
    c.connect();
    c.drive(90, "NORMAL after recovery", Client::both_normal);
    eprintln!("partner states after restart: {:?}", c.partner_states);
    for s in [
        StateKind::Recover,
        StateKind::RecoverWait,
        StateKind::RecoverDone,
    ] {
        assert!(c.partner_states.contains(&s), "dhcpd never reported {s:?}");
    }
    c.hold_normal(4);
}
