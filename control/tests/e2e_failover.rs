//! Failover relationships run by the daemon: real `tandemd` processes (and a real ISC dhcpd
//! 4.4.3) over real TCP in network namespaces, observed through `tandemctl status --json`.
//!
//! * two tandemd reach NORMAL on both sides; `kill -9` of one moves the other to
//!   COMMUNICATIONS-INTERRUPTED; `tandemctl partner-down` moves it to PARTNER-DOWN; the killed
//!   one restarted comes back through RECOVER to NORMAL; a clean restart resumes the stored
//!   state (PARTNER-DOWN, same start time of state);
//! * tandemd as primary with ISC dhcpd as secondary reach NORMAL; tandemd killed in NORMAL
//!   while dhcpd is put in PARTNER-DOWN (omshell) comes back through RECOVER (draft §9.3.2).
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
use common::pair::isc_partner;
use common::server::{Server, isc_partner_down};

/// Three namespaces: the servers' `a` (10.79.0.1 on fa0) and `b` (10.79.0.2 on fb0), and
/// `c`, whose bridge br0 joins them and is the DHCP client's interface. Deleted on drop.
struct Pair {
    a: Ns,
    b: Ns,
    c: Ns,
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("run ip");
    assert!(st.success(), "ip {args:?} failed");
}

impl Pair {
    fn new(tag: &str) -> Self {
        let id = std::process::id();
        let ns = |x: &str| Ns {
            name: format!("tdm-driver-{id}-{tag}{x}"),
        };
        let pair = Pair {
            a: ns("a"),
            b: ns("b"),
            c: ns("c"),
        };
        for ns in [&pair.a, &pair.b, &pair.c] {
            ns.add();
        }
        pair.c.add_bridge("br0");
        for (ns, dev, port, addr) in [
            (&pair.a, "fa0", "ca", "10.79.0.1/24"),
            (&pair.b, "fb0", "cb", "10.79.0.2/24"),
        ] {
            pair.c.add_bridge_port("br0", port, ns, dev, addr);
        }
        pair
    }

    /// One DHCP exchange by busybox udhcpc on br0 with hardware address `mac` (no client
    /// identifier, so the RFC 3074 hash is over chaddr): `(address, lease seconds, server)`,
    /// or `None` if no server answered within about 15 s.
    fn dhcp(&self, mac: [u8; 6], dir: &Path) -> Option<(String, u64, String)> {
        let mac_s = mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        let c = self.c.name.as_str();
        ip(&["-n", c, "link", "set", "br0", "address", &mac_s]);
        let out = dir.join(format!("lease-{mac_s}"));
        let script = dir.join("udhcpc.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n[ \"$1\" = bound ] && echo \"$ip $lease $serverid\" > {}\nexit 0\n",
                out.display()
            ),
        )
        .unwrap();
        let _ = Command::new("chmod").arg("+x").arg(&script).status();
        let script = script.to_string_lossy().into_owned();
        let _ = self.c.exec(&[
            "udhcpc", "-i", "br0", "-n", "-q", "-f", "-C", "-t", "5", "-T", "3", "-A", "1", "-s",
            &script,
        ]);
        let text = std::fs::read_to_string(&out).ok()?;
        let mut f = text.split_whitespace();
        Some((
            f.next()?.to_owned(),
            f.next()?.parse().ok()?,
            f.next()?.to_owned(),
        ))
    }
}

/// A MAC whose RFC 3074 bucket the primary (`split 128`) serves, or not.
fn mac_for(primary: bool) -> [u8; 6] {
    (1..=255u8)
        .map(|n| [0x02, 0, 0, 0x79, 0, n])
        .find(|m| (control::failover::hash::client_bucket(None, m, 6) < 128) == primary)
        .expect("a MAC in each half")
}

impl Drop for Pair {
    fn drop(&mut self) {
        testkit::netns::teardown(&[&self.a, &self.b, &self.c]);
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
{secret}
"#,
        dir = dir.to_string_lossy(),
        secret = common::failover_secret(dir),
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

    // Serving in NORMAL: a client of the primary's hash buckets gets an address from A, for
    // no longer than the MCLT (10 s; B has acknowledged nothing).
    let tmp = tempfile::tempdir().unwrap();
    let (addr, lease, server) = net
        .dhcp(mac_for(true), tmp.path())
        .unwrap_or_else(|| panic!("no lease in NORMAL\n--- A ---\n{}", a.log()));
    assert_eq!(server, "10.79.0.1", "{addr}");
    assert!((1..=10).contains(&lease), "lease {lease} s beyond the MCLT");

    // The peer dies: the link drops, A goes COMMUNICATIONS-INTERRUPTED.
    b.kill9();
    let killed = common::server::unix_now();
    wait_state(&a, 60, "A communications-interrupted", |s, _| {
        s == "communications-interrupted"
    });
    // Now A answers the secondary's clients too, still MCLT-bounded.
    let (addr, lease, server) = net
        .dhcp(mac_for(false), tmp.path())
        .unwrap_or_else(|| panic!("no lease in COMMUNICATIONS-INTERRUPTED\n{}", a.log()));
    assert_eq!(server, "10.79.0.1", "{addr}");
    assert!((1..=10).contains(&lease), "lease {lease} s beyond the MCLT");
    // The operator: partner down, clearly after B's last recorded operation (at most 5 s
    // before the kill; `fsm::PARTNER_DOWN_MARGIN` is 10 s). Sooner, B could not tell it
    // had stopped serving first and would resolve through POTENTIAL-CONFLICT instead.
    while common::server::unix_now() < killed + 12 {
        std::thread::sleep(Duration::from_millis(200));
    }
    a.tandemctl(&["partner-down", "pair"])
        .unwrap_or_else(|e| panic!("partner-down: {e}"));
    wait_state(&a, 30, "A partner-down", |s, _| s == "partner-down");

    // B comes back (stored state NORMAL): sees A in PARTNER-DOWN since after it stopped,
    // goes RECOVER (draft §9.3.2 step 5), RECOVER-WAIT until the MCLT (10 s) has passed since
    // it went down (if it has not yet), RECOVER-DONE; then both NORMAL.
    b.restart();
    both_normal(&a, &b, 90);
    let blog = b.log();
    let at = |s: &str| {
        blog.find(s)
            .unwrap_or_else(|| panic!("B never logged {s}:\n{blog}\n--- A ---\n{}", a.log()))
    };
    let order = [
        at("from=\"startup\" to=\"recover\""),
        at("to=\"recover-done\""),
        at("from=\"recover-done\" to=\"normal\""),
    ];
    assert!(order.is_sorted(), "B's states out of order:\n{blog}");
    assert!(!blog.contains("potential-conflict"), "{blog}");

    // Clean stop of A: it tells B (SHUTDOWN), B goes PARTNER-DOWN.
    a.terminate();
    wait_state(&b, 60, "B partner-down after A's shutdown", |s, _| {
        s == "partner-down"
    });
    let (_, _, since) = rel(&b);
    // B's clean restart resumes PARTNER-DOWN from its stored state (after STARTUP's 15 s
    // without news from A), with the same start time of state.
    b.restart();
    wait_state(&b, 90, "B back in partner-down", |s, _| s == "partner-down");
    assert_eq!(rel(&b).2, since, "state_since survives the restart");
    // A comes back with NORMAL stored and finds B in PARTNER-DOWN: the machine resolves it
    // (POTENTIAL-CONFLICT, CONFLICT-DONE, or RECOVER if B's STATE arrives during STARTUP),
    // then both NORMAL again.
    a.restart();
    both_normal(&a, &b, 90);
    eprintln!("--- A ---\n{}\n--- B ---\n{}", a.log(), b.log());
}

/// The address `s` holds for hardware address `mac` (active or expired), from
/// `tandemctl leases --json`.
fn lease_of(s: &Server, mac: [u8; 6]) -> Option<String> {
    let want = mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    ["active", "expired"].iter().find_map(|state| {
        let out = s.tandemctl(&["leases", "--json", "--state", state]).ok()?;
        let v: serde_json::Value = serde_json::from_str(&out).ok()?;
        v.as_array()?
            .iter()
            .find(|l| l["chaddr"] == want.as_str())
            .and_then(|l| l["address"].as_str().map(str::to_owned))
    })
}

fn wait_lease(s: &Server, mac: [u8; 6], secs: u64, what: &str) -> String {
    common::try_wait_until(Duration::from_secs(secs), || lease_of(s, mac)).unwrap_or_else(|| {
        panic!(
            "{what}: no lease for {mac:02x?} in {secs} s\n--- log ---\n{}",
            s.log()
        )
    })
}

#[test]
fn two_tandemd_replicate_bindings() {
    assert!(is_root(), "e2e_failover needs root (network namespaces)");
    let net = Pair::new("r");
    // A longer MCLT than the state test, so leases outlive the restarts below.
    let cfg = |d: &Path, iface: &str, me: &str, peer: &str, primary: bool| {
        config(d, iface, me, peer, primary).replace("mclt = \"10s\"", "mclt = \"120s\"")
    };
    let mut a =
        Server::start_tandemd_with(&net.a, |d| cfg(d, "fa0", "10.79.0.1", "10.79.0.2", true));
    let mut b =
        Server::start_tandemd_with(&net.b, |d| cfg(d, "fb0", "10.79.0.2", "10.79.0.1", false));
    both_normal(&a, &b, 60);

    // A client of the primary's buckets: leased by A, MCLT-bounded (B knew nothing yet).
    let tmp = tempfile::tempdir().unwrap();
    let m1 = mac_for(true);
    let (addr, lease, server) = net
        .dhcp(m1, tmp.path())
        .unwrap_or_else(|| panic!("no lease in NORMAL\n--- A ---\n{}", a.log()));
    assert_eq!(server, "10.79.0.1", "{addr}");
    assert!(
        (1..=120).contains(&lease),
        "lease {lease} s beyond the MCLT"
    );
    // The binding reaches B's table (BNDUPD applied), same address and client.
    assert_eq!(wait_lease(&b, m1, 10, "B learns A's lease"), addr);
    // B acknowledged it, and A wrote the acknowledgement back: the next request gets the
    // full lease time (partner-acknowledged expiry + MCLT, capped at 1 h).
    let acked = common::try_wait_until(Duration::from_secs(60), || {
        let (addr2, lease2, _) = net.dhcp(m1, tmp.path())?;
        (addr2 == addr && lease2 > 120).then_some(lease2)
    });
    assert!(
        acked.is_some(),
        "renewal after the BNDACK not beyond the MCLT\n--- A ---\n{}\n--- B ---\n{}",
        a.log(),
        b.log()
    );

    // B dies; A, on its own, leases to a client of B's buckets. Nobody acknowledges it.
    b.kill9();
    wait_state(&a, 60, "A communications-interrupted", |s, _| {
        s == "communications-interrupted"
    });
    let m2 = mac_for(false);
    let (addr2, _, server) = net
        .dhcp(m2, tmp.path())
        .unwrap_or_else(|| panic!("no lease in COMMUNICATIONS-INTERRUPTED\n{}", a.log()));
    assert_eq!(server, "10.79.0.1", "{addr2}");
    // A crashes too, while disconnected: the unacknowledged update survives only in A's
    // tables and journal (tstp > atsfp).
    a.kill9();
    a.restart();
    b.restart();
    both_normal(&a, &b, 90);
    // After the reconnect A sends it again: B ends up with the lease.
    assert_eq!(
        wait_lease(&b, m2, 20, "B learns the lease A granted while B was down"),
        addr2
    );
    assert_eq!(lease_of(&b, m1).as_deref(), Some(addr.as_str()));
    eprintln!("--- A ---\n{}\n--- B ---\n{}", a.log(), b.log());
}

/// ISC dhcpd (secondary), in the other namespace, over the veth pair.
struct Dhcpd(Child);

impl Dhcpd {
    /// ISC dhcpd on `fa0` in `ns`, with `conf` and an empty lease file in `dir`
    /// (`dhcpd.conf`, `dhcpd.leases`, `dhcpd.log`, `dhcpd.pid`).
    fn start(ns: &Ns, dir: &Path, conf: &str) -> Self {
        let conf_path = dir.join("dhcpd.conf");
        let leases = dir.join("dhcpd.leases");
        std::fs::write(&conf_path, conf).unwrap();
        std::fs::write(&leases, "").unwrap();
        let mut cmd = ns.command("dhcpd");
        cmd.args(["-f", "-d", "-cf"])
            .arg(&conf_path)
            .arg("-lf")
            .arg(&leases)
            .arg("-pf")
            .arg(dir.join("dhcpd.pid"))
            .arg("fa0");
        Dhcpd(common::net::spawn_logged(cmd, &dir.join("dhcpd.log")))
    }
}

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
    let leases = dir.path().join("dhcpd.leases");
    let log = dir.path().join("dhcpd.log");
    let dhcpd = Dhcpd::start(
        &net.a,
        dir.path(),
        r#"failover peer "pair" {
  secondary;
  address 10.79.0.1;
  port 647;
  peer address 10.79.0.2;
  peer port 647;
  max-response-delay 60;
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
    );
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
max_response_delay = "60s"
max_unacked_updates = 10
peer_software = "isc-dhcpd"
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
    let ok = common::try_wait_until(Duration::from_secs(60), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("Both servers normal")
            .then_some(())
    });
    let dlog = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(ok.is_some(), "dhcpd log:\n{dlog}");

    // Replication toward ISC: a client of the primary's buckets, leased by tandemd, appears
    // in dhcpd's lease file (BNDUPD accepted and committed by dhcpd).
    let tmp = tempfile::tempdir().unwrap();
    let m = mac_for(true);
    let (addr, lease, server) = net
        .dhcp(m, tmp.path())
        .unwrap_or_else(|| panic!("no lease from tandemd\n{}", t.log()));
    assert_eq!(server, "10.79.0.2", "{addr}");
    assert!((1..=10).contains(&lease), "lease {lease} s beyond the MCLT");
    wait_isc_lease(&leases, &addr, m, &log);
    // dhcpd's BNDACK was written back: tandemd's renewal gets more than the MCLT. dhcpd, now
    // holding the client's binding, answers its DISCOVER too (ISC skips load balancing for a
    // client with a lease) and usually first; so dhcpd is frozen (SIGSTOP: the peer link
    // stays up, tandemd stays NORMAL) while the client asks again, and only tandemd answers.
    let pid = dhcpd.0.id().to_string();
    // ISC flushes its BNDACKs every 2 s: wait until tandemd has every one.
    common::wait_until(Duration::from_secs(60), "dhcpd's BNDACKs", || {
        let v = t.status_json()?;
        (v["relationships"][0]["unacked_updates"].as_u64() == Some(0)).then_some(())
    });
    let signal = |sig: &str| {
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {pid}");
    };
    signal("-STOP");
    let mut seen = Vec::new();
    // Frozen for at most 30 s, well inside both sides' 60 s max-response-delay.
    let acked = common::try_wait_until(Duration::from_secs(30), || {
        let (a2, l2, s2) = net.dhcp(m, tmp.path())?;
        seen.push((a2.clone(), l2, s2.clone()));
        (a2 == addr && s2 == "10.79.0.2" && l2 > 10).then_some(l2)
    });
    signal("-CONT");
    assert!(
        acked.is_some(),
        "no lease beyond the MCLT after dhcpd's BNDACK: renewals {seen:?}\n{}\n--- dhcpd ---\n{}",
        t.log(),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // Toward ISC every binding travels alone: as many BNDUPDs as bindings.
    let v = t.status_json().expect("status");
    let r = &v["relationships"][0];
    let (sent, messages) = (r["updates_sent"].as_u64(), r["update_messages"].as_u64());
    assert!(
        sent.is_some_and(|n| n > 0) && sent == messages,
        "toward ISC one binding per BNDUPD: {r}"
    );

    // dhcpd dies: tandemd goes COMMUNICATIONS-INTERRUPTED, and after the operator's
    // partner-down serves the clients of dhcpd's hash buckets too.
    drop(dhcpd);
    wait_state(&t, 60, "tandemd communications-interrupted", |s, _| {
        s == "communications-interrupted"
    });
    t.tandemctl(&["partner-down", "pair"])
        .unwrap_or_else(|e| panic!("partner-down: {e}"));
    wait_state(&t, 30, "tandemd partner-down", |s, _| s == "partner-down");
    let other = mac_for(false);
    let served = common::try_wait_until(Duration::from_secs(60), || net.dhcp(other, tmp.path()));
    let (addr2, _, server2) = served
        .unwrap_or_else(|| panic!("no lease for dhcpd's client in PARTNER-DOWN\n{}", t.log()));
    assert_eq!(server2, "10.79.0.2", "{addr2}");
    eprintln!(
        "--- tandemd ---\n{}\n--- dhcpd ---\n{}",
        t.log(),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// Whether dhcpd's lease file holds `addr` ACTIVE for hardware address `mac` (its last
/// entry for the address wins, as in dhcpd).
fn isc_has_lease(leases: &Path, addr: &str, mac: [u8; 6]) -> bool {
    let hw = testkit::netns::mac_str(mac);
    common::server::read_isc_leases(leases)
        .iter()
        .any(|l| l.address.to_string() == addr && l.state == "active" && l.chaddr == hw)
}

fn wait_isc_lease(leases: &Path, addr: &str, mac: [u8; 6], log: &Path) {
    let ok = common::try_wait_until(Duration::from_secs(60), || {
        isc_has_lease(leases, addr, mac).then_some(())
    });
    assert!(
        ok.is_some(),
        "{addr} for {mac:02x?} not active in dhcpd.leases:\n{}\n--- dhcpd ---\n{}",
        std::fs::read_to_string(leases).unwrap_or_default(),
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// ISC dhcpd as primary (`split 128`, MCLT 600 s), tandemd as secondary: dhcpd's pool
/// rebalance gives tandemd BACKUP addresses; a client of the secondary's buckets is leased
/// by tandemd and appears in dhcpd's lease file; a client of the primary's is leased by
/// dhcpd and appears in tandemd's table.
#[test]
fn isc_dhcpd_primary_replicates_with_tandemd_secondary() {
    assert!(is_root(), "e2e_failover needs root (network namespaces)");
    assert!(common::which("dhcpd").is_some(), "ISC dhcpd not installed");
    let net = Pair::new("j");
    let dir = tempfile::tempdir().unwrap();
    let leases = dir.path().join("dhcpd.leases");
    let log = dir.path().join("dhcpd.log");
    let _dhcpd = Dhcpd::start(
        &net.a,
        dir.path(),
        r#"failover peer "pair" {
  primary;
  address 10.79.0.1;
  port 647;
  peer address 10.79.0.2;
  peer port 647;
  max-response-delay 20;
  max-unacked-updates 10;
  load balance max seconds 3;
  mclt 600;
  split 128;
}
subnet 10.79.0.0 netmask 255.255.255.0 {
  pool {
    failover peer "pair";
    range 10.79.0.100 10.79.0.110;
  }
}
"#,
    );
    let t = Server::start_tandemd_with(&net.b, |d| {
        isc_partner(config(d, "fb0", "10.79.0.2", "10.79.0.1", false))
            .replace("10.79.0.100-10.79.0.200", "10.79.0.100-10.79.0.110")
            .replace(
                "max_response_delay = \"6s\"",
                "max_response_delay = \"20s\"",
            )
    });
    let reached = common::try_wait_until(Duration::from_secs(90), || {
        let (s, p, _) = rel(&t);
        (s == "normal" && p == "normal").then_some(())
    });
    assert!(
        reached.is_some(),
        "not NORMAL: {:?}\n--- tandemd ---\n{}\n--- dhcpd ---\n{}",
        rel(&t),
        t.log(),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // dhcpd's rebalance moves addresses to BACKUP for us; our table shows them.
    let backup = common::try_wait_until(Duration::from_secs(60), || {
        let v = t.status_json()?;
        let n = v["leases"]["10.79.0.0/24"]["backup"].as_u64()?;
        (n > 0).then_some(n)
    });
    assert!(
        backup.is_some(),
        "no BACKUP address from dhcpd's rebalance: {:?}\n{}",
        t.status_json(),
        t.log()
    );

    let tmp = tempfile::tempdir().unwrap();
    // The secondary's client: leased by tandemd, then in dhcpd's lease file.
    let ms = mac_for(false);
    let (addr, _, server) = net
        .dhcp(ms, tmp.path())
        .unwrap_or_else(|| panic!("no lease from tandemd\n{}", t.log()));
    assert_eq!(server, "10.79.0.2", "{addr}");
    wait_isc_lease(&leases, &addr, ms, &log);
    // The primary's client: leased by dhcpd, then in tandemd's table.
    let mp = mac_for(true);
    let (addr, _, server) = net.dhcp(mp, tmp.path()).unwrap_or_else(|| {
        panic!(
            "no lease from dhcpd\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    assert_eq!(server, "10.79.0.1", "{addr}");
    assert_eq!(wait_lease(&t, mp, 15, "tandemd learns dhcpd's lease"), addr);
    // dhcpd's CONNECT shows its MCLT and split; the secondary's file sets neither, so the two
    // are in step, and `failover show` says what dhcpd showed.
    let show = t
        .tandemctl(&["failover", "show", "pair"])
        .expect("failover show");
    assert!(
        show.contains(
            "partner's settings        mclt 600 s, the primary on 128 of 256 buckets (50 %)"
        ) && show.contains("in force                  mclt 600 s")
            && show.contains("configuration             in step with the partner"),
        "{show}"
    );
    eprintln!(
        "--- tandemd ---\n{}\n--- dhcpd ---\n{}",
        t.log(),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// Issue #13 item 6 against a real ISC dhcpd: tandemd (primary) is killed while NORMAL,
/// dhcpd is put in PARTNER-DOWN by the operator (omshell) after it, and tandemd restarted
/// from its stored state goes STARTUP → RECOVER on dhcpd's STATE (draft §9.3.2 step 5, as
/// dhcpd itself does), never NORMAL first, then RECOVER-DONE; dhcpd goes NORMAL on it and
/// both end NORMAL.
#[test]
fn tandemd_killed_in_normal_recovers_from_isc_dhcpd_in_partner_down() {
    assert!(is_root(), "e2e_failover needs root (network namespaces)");
    assert!(common::which("dhcpd").is_some(), "ISC dhcpd not installed");
    assert!(common::which("omshell").is_some(), "omshell not installed");
    let net = Pair::new("k");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("dhcpd.log");
    let _dhcpd = Dhcpd::start(
        &net.a,
        dir.path(),
        r#"omapi-port 7911;
failover peer "pair" {
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
    );
    let dlog = || std::fs::read_to_string(&log).unwrap_or_default();
    let mut t = Server::start_tandemd_with(&net.b, |d| {
        isc_partner(config(d, "fb0", "10.79.0.2", "10.79.0.1", true))
            .replace("10.79.0.100-10.79.0.200", "10.79.0.100-10.79.0.110")
            .replace(
                "max_response_delay = \"6s\"",
                "max_response_delay = \"20s\"",
            )
    });
    wait_state(&t, 90, "tandemd normal/normal", |s, p| {
        s == "normal" && p == "normal"
    });
    // An ISC secondary's CONNECTACK shows nothing of its settings to compare.
    let show = t
        .tandemctl(&["failover", "show", "pair"])
        .expect("failover show");
    assert!(
        show.contains(
            "configuration             unknown (the partner has shown nothing to compare)"
        ),
        "{show}"
    );
    let isc_log_has = |t: &Server, what: &str, secs: u64| {
        let ok = common::try_wait_until(Duration::from_secs(secs), || {
            dlog().contains(what).then_some(())
        });
        assert!(
            ok.is_some(),
            "dhcpd never logged {what:?}:\n{}\n--- tandemd ---\n{}",
            dlog(),
            t.log()
        );
    };
    isc_log_has(&t, "Both servers normal", 60);

    // kill -9 in NORMAL: dhcpd sees the link drop and goes COMMUNICATIONS-INTERRUPTED.
    t.kill9();
    let killed = common::server::unix_now();
    isc_log_has(&t, "I move from normal to communications-interrupted", 60);
    // The operator puts dhcpd in PARTNER-DOWN, clearly after tandemd's last recorded
    // operation (recorded at most 5 s before the kill; the margin is 10 s).
    while common::server::unix_now() < killed + 15 {
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = isc_partner_down(&net.a, "pair");
    isc_log_has(
        &t,
        "I move from communications-interrupted to partner-down",
        30,
    );

    // tandemd comes back with NORMAL stored.
    t.restart();
    wait_state(&t, 120, "tandemd normal/normal after recovery", |s, p| {
        s == "normal" && p == "normal"
    });
    let tlog = t.log();
    let ctx = || format!("{tlog}\n--- dhcpd ---\n{}\n--- omshell ---\n{out}", dlog());
    let pos = |s: &str| tlog.find(s);
    let recover = pos("from=\"startup\" to=\"recover\"")
        .unwrap_or_else(|| panic!("tandemd did not go STARTUP → RECOVER:\n{}", ctx()));
    assert!(tlog.contains("after=true"), "step 5 not taken:\n{}", ctx());
    let done = pos("to=\"recover-done\"")
        .unwrap_or_else(|| panic!("tandemd never reached RECOVER-DONE:\n{}", ctx()));
    let normal =
        pos("to=\"normal\"").unwrap_or_else(|| panic!("tandemd never logged NORMAL:\n{}", ctx()));
    assert!(recover < done && done < normal, "order:\n{}", ctx());
    assert!(
        !tlog.contains("to=\"potential-conflict\""),
        "conflict resolution instead of recovery:\n{}",
        ctx()
    );
    isc_log_has(&t, "I move from partner-down to normal", 30);
    let after_restart = dlog()
        .rsplit("I move from partner-down to normal")
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(
        !dlog().contains("potential-conflict"),
        "dhcpd went through conflict resolution:\n{}",
        ctx()
    );
    let both = common::try_wait_until(Duration::from_secs(60), || {
        dlog()
            .rsplit("I move from partner-down to normal")
            .next()
            .is_some_and(|s| s.contains("Both servers normal"))
            .then_some(())
    });
    assert!(both.is_some(), "dhcpd after recovery:\n{after_restart}");
    eprintln!("--- tandemd ---\n{tlog}\n--- dhcpd ---\n{}", dlog());
}
