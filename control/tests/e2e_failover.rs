//! Failover relationships run by the daemon: real `tandemd` processes (and a real ISC dhcpd
//! 4.4.3) over real TCP in network namespaces, observed through `tandemctl status --json`.
//!
//! * two tandemd reach NORMAL on both sides; `kill -9` of one moves the other to
//!   COMMUNICATIONS-INTERRUPTED; `tandemctl partner-down` moves it to PARTNER-DOWN; the killed
//!   one restarted comes back through RECOVER to NORMAL; a clean restart resumes the stored
//!   state (PARTNER-DOWN, same start time of state);
//! * tandemd as primary with ISC dhcpd as secondary reach NORMAL.
//!
//! Run as root: `cargo test -p control --release --test e2e_failover`.

#[expect(
    dead_code,
    reason = "each e2e test binary uses a different part of the shared harness"
)]
mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use common::net::Ns;
use common::server::Server;

/// Two namespaces joined by a veth pair, deleted on drop.
struct Pair {
    a: Ns,
    b: Ns,
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("run ip");
    assert!(st.success(), "ip {args:?} failed");
}

impl Pair {
    fn new(tag: &str) -> Self {
        let id = std::process::id();
        let a = Ns {
            name: format!("tdm-driver-{id}-{tag}a"),
        };
        let b = Ns {
            name: format!("tdm-driver-{id}-{tag}b"),
        };
        let pair = Pair { a, b };
        for ns in [&pair.a, &pair.b] {
            let _ = Command::new("ip")
                .args(["netns", "del", &ns.name])
                .stderr(std::process::Stdio::null())
                .status();
            ip(&["netns", "add", &ns.name]);
            ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        }
        ip(&[
            "-n",
            &pair.a.name,
            "link",
            "add",
            "fa0",
            "type",
            "veth",
            "peer",
            "name",
            "fb0",
            "netns",
            &pair.b.name,
        ]);
        ip(&[
            "-n",
            &pair.a.name,
            "addr",
            "add",
            "10.79.0.1/24",
            "dev",
            "fa0",
        ]);
        ip(&[
            "-n",
            &pair.b.name,
            "addr",
            "add",
            "10.79.0.2/24",
            "dev",
            "fb0",
        ]);
        ip(&["-n", &pair.a.name, "link", "set", "fa0", "up"]);
        ip(&["-n", &pair.b.name, "link", "set", "fb0", "up"]);
        pair
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", &ns.name]).status();
        }
    }
}

/// A tandemd config with one `[[failover]]` relationship "pair" over 10.79.0.0/24.
fn config(dir: &Path, iface: &str, me: &str, peer: &str, primary: bool) -> String {
    let role = if primary {
        "role = \"primary\"\nmclt = \"10s\"\nsplit = 128"
    } else {
        "role = \"secondary\""
    };
    format!(
        r#"[server]
interfaces = ["{iface}"]
server_id = "{me}"
data_dir = {dir:?}
datapath = "packet"
workers = 1
durability = "sync"

[[subnet]]
prefix = "10.79.0.0/24"
pools = ["10.79.0.100-10.79.0.200"]
lease_time = "1h"
failover = "pair"

[[failover]]
name = "pair"
{role}
mode = "load-balance"
address = "{me}"
peer_address = "{peer}"
port = 647
peer_port = 647
max_response_delay = "6s"
max_unacked_updates = 10
"#,
        dir = dir.to_string_lossy(),
    )
}

/// `(state, partner_state, state_since)` of relationship "pair".
fn rel(s: &Server) -> (String, String, u64) {
    let v = s.status_json().expect("status");
    let r = v["relationships"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == "pair"))
        .unwrap_or_else(|| panic!("no relationship \"pair\" in status: {v}"))
        .clone();
    let st = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
    (
        st("state"),
        st("partner_state"),
        r["state_since"].as_u64().unwrap_or(0),
    )
}

fn wait_state(s: &Server, secs: u64, what: &str, ok: impl Fn(&str, &str) -> bool) {
    let mut last = (String::new(), String::new(), 0);
    let reached = common::try_wait_until(Duration::from_secs(secs), || {
        last = rel(s);
        ok(&last.0, &last.1).then_some(())
    });
    assert!(
        reached.is_some(),
        "{what}: not reached in {secs} s; last (state, partner, since) = {last:?}\n--- log ---\n{}",
        s.log()
    );
}

fn both_normal(a: &Server, b: &Server, secs: u64) {
    let normal = |s: &str, p: &str| s == "normal" && p == "normal";
    wait_state(a, secs, "A normal/normal", normal);
    wait_state(b, secs, "B normal/normal", normal);
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn two_tandemd_pair_states() {
    assert!(is_root(), "e2e_failover needs root (network namespaces)");
    let net = Pair::new("p");
    let mut a =
        Server::start_tandemd_with(&net.a, |d| config(d, "fa0", "10.79.0.1", "10.79.0.2", true));
    let mut b = Server::start_tandemd_with(&net.b, |d| {
        config(d, "fb0", "10.79.0.2", "10.79.0.1", false)
    });

    // A new pair: both RECOVER, each asks the other for everything, then NORMAL.
    both_normal(&a, &b, 60);
    assert!(
        a.data_dir().join("failover-pair.state").exists(),
        "state file"
    );
    // Partner-down is refused in NORMAL, with the machine's reason.
    let e = a.tandemctl(&["partner-down", "pair"]).unwrap_err();
    assert!(e.contains("only allowed"), "{e}");
    let e = a.tandemctl(&["partner-down", "nope"]).unwrap_err();
    assert!(e.contains("no such relationship"), "{e}");

    // The peer dies: the link drops, A goes COMMUNICATIONS-INTERRUPTED.
    b.kill9();
    wait_state(&a, 30, "A communications-interrupted", |s, _| {
        s == "communications-interrupted"
    });
    // The operator: partner down.
    a.tandemctl(&["partner-down", "pair"])
        .unwrap_or_else(|e| panic!("partner-down: {e}"));
    wait_state(&a, 5, "A partner-down", |s, _| s == "partner-down");

    // B comes back (stored state NORMAL): sees A in PARTNER-DOWN during STARTUP, goes
    // RECOVER, waits the MCLT (10 s) in RECOVER-WAIT, RECOVER-DONE; then both NORMAL.
    b.restart();
    both_normal(&a, &b, 90);
    let blog = b.log();
    for s in [
        "to=\"recover\"",
        "to=\"recover-wait\"",
        "to=\"recover-done\"",
    ] {
        assert!(blog.contains(s), "B never logged {s}:\n{blog}");
    }

    // Clean stop of A: it tells B (SHUTDOWN), B goes PARTNER-DOWN.
    a.terminate();
    wait_state(&b, 30, "B partner-down after A's shutdown", |s, _| {
        s == "partner-down"
    });
    let (_, _, since) = rel(&b);
    // B's clean restart resumes PARTNER-DOWN from its stored state (after STARTUP's 15 s
    // without news from A), with the same start time of state.
    b.restart();
    wait_state(&b, 40, "B back in partner-down", |s, _| s == "partner-down");
    assert_eq!(rel(&b).2, since, "state_since survives the restart");
    // A comes back with NORMAL stored and finds B in PARTNER-DOWN: the machine resolves it
    // (POTENTIAL-CONFLICT, CONFLICT-DONE, or RECOVER if B's STATE arrives during STARTUP),
    // then both NORMAL again.
    a.restart();
    both_normal(&a, &b, 90);
    eprintln!("--- A ---\n{}\n--- B ---\n{}", a.log(), b.log());
}

/// ISC dhcpd (secondary), in the other namespace, over the veth pair.
struct Dhcpd(Child);

impl Drop for Dhcpd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn tandemd_primary_with_isc_dhcpd_reaches_normal() {
    assert!(is_root(), "e2e_failover needs root (network namespaces)");
    assert!(common::which("dhcpd").is_some(), "ISC dhcpd not installed");
    let net = Pair::new("i");
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("dhcpd.conf");
    let leases = dir.path().join("dhcpd.leases");
    let log = dir.path().join("dhcpd.log");
    std::fs::write(
        &conf,
        r#"failover peer "pair" {
  secondary;
  address 10.79.0.1;
  port 647;
  peer address 10.79.0.2;
  peer port 647;
  max-response-delay 20;
  max-unacked-updates 10;
  load balance max seconds 3;
}
subnet 10.79.0.0 netmask 255.255.255.0 {
  pool {
    failover peer "pair";
    range 10.79.0.100 10.79.0.110;
  }
}
"#,
    )
    .unwrap();
    std::fs::write(&leases, "").unwrap();
    let mut cmd = net.a.command("dhcpd");
    cmd.args(["-f", "-d", "-cf"])
        .arg(&conf)
        .arg("-lf")
        .arg(&leases)
        .arg("-pf")
        .arg(dir.path().join("dhcpd.pid"))
        .arg("fa0");
    let _dhcpd = Dhcpd(common::net::spawn_logged(cmd, &log));
    let t = Server::start_tandemd_with(&net.b, |d| {
        format!(
            r#"[server]
interfaces = ["fb0"]
server_id = "10.79.0.2"
data_dir = {dir:?}
datapath = "packet"
workers = 1

[[subnet]]
prefix = "10.79.0.0/24"
pools = ["10.79.0.100-10.79.0.110"]
lease_time = "1h"
failover = "pair"

[[failover]]
name = "pair"
role = "primary"
mclt = "10s"
split = 128
address = "10.79.0.2"
peer_address = "10.79.0.1"
port = 647
peer_port = 647
max_response_delay = "20s"
max_unacked_updates = 10
"#,
            dir = d.to_string_lossy()
        )
    });
    let normal = |s: &str, p: &str| s == "normal" && p == "normal";
    let reached = common::try_wait_until(Duration::from_secs(90), || {
        let (s, p, _) = rel(&t);
        normal(&s, &p).then_some(())
    });
    let dlog = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        reached.is_some(),
        "tandemd with ISC: not NORMAL: {:?}\n--- tandemd ---\n{}\n--- dhcpd ---\n{dlog}",
        rel(&t),
        t.log()
    );
    let ok = common::try_wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("Both servers normal")
            .then_some(())
    });
    let dlog = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(ok.is_some(), "dhcpd log:\n{dlog}");
    eprintln!("--- tandemd ---\n{}\n--- dhcpd ---\n{dlog}", t.log());
}
