//! Live configuration (#10, item 1) against the real `tandemd`: the test edits the running
//! server's configuration file by hand and applies it with `tandemctl reload` and with SIGHUP.
//!
//! * A lease time, a new reservation and a new exclusion are served at once, and a new log
//!   level is in force. A reserved client
//!   gets its address, fresh clients get nothing excluded, and an ACK carries the new lease time.
//!   The lease a client held before the change stays bound.
//! * A change only a restart can make (an interface, a new subnet) is refused with every
//!   reason, and the running configuration stays.
//! * Each reload, refused or not, is in the audit log, SIGHUP's too.
//! * On the XDP datapath a reload rewrites the XDP program's rate limits too.
//! * Under perfdhcp's load, repeated reloads drop no request: every frame the server read is
//!   answered or silenced for a counted reason, with no drop, and every ACK on the wire is in
//!   the table.

#[expect(
    dead_code,
    reason = "each e2e test binary uses a different part of the shared harness"
)]
mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    accounting::Accounting,
    capture::{self, Capture, msg},
    clients::{Dhclient, PerfTarget, Perfdhcp, Scapy},
    net::{Layout, TestNet},
    server::Server,
};

/// The pool's span (first to last) never changes: a lease table is not resized live.
const POOL: &str = "10.77.1.10-10.77.1.59";
const RESERVED_MAC: &str = "02:00:00:00:99:01";
const RESERVED: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 20);

fn config(net: &TestNet, data_dir: &Path, workers: u8, pool: &str) -> String {
    config_on(net, data_dir, workers, pool, "packet")
}

fn config_on(net: &TestNet, data_dir: &Path, workers: u8, pool: &str, datapath: &str) -> String {
    format!(
        r#"# The test edits this file by hand while tandemd runs.
[server]
interfaces = ["{iface}"]
server_id = "{server}"
data_dir = "{data}"
datapath = "{datapath}"
workers = {workers}
durability = "sync"

[[subnet]]
prefix = "{prefix}"
pools = ["{pool}"]
router = ["{server}"]
lease_time = "600s"
"#,
        iface = net.server.iface,
        server = common::net::DIRECT_SERVER,
        data = data_dir.display(),
        prefix = common::net::DIRECT_PREFIX,
    )
}

/// Rewrites the server's configuration file with `edit` applied to its text.
fn edit(server: &Server, edit: impl FnOnce(String) -> String) {
    let path = server.config_path();
    let text = std::fs::read_to_string(path).expect("read the config");
    std::fs::write(path, edit(text)).expect("write the config");
}

fn audit(server: &Server) -> Vec<serde_json::Value> {
    let out = server
        .tandemctl(&["audit", "--json", "--limit", "100"])
        .unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("audit --json ({e}): {out}"))
}

#[test]
fn a_hand_edited_file_is_applied_live_or_refused_whole() {
    common::require_e2e();
    let net = TestNet::new(Layout::Direct, 1);
    let ep = net.clients[0].clone();
    let mut cap = Capture::start(&net.server.ns, &net.server.iface);
    let mut server = Server::start_tandemd_with(&net.server.ns, |d| config(&net, d, 1, POOL));

    // Before: a real client holds a lease of the first configuration.
    let mut dhclient = Dhclient::new(&ep);
    let before = dhclient.obtain().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(before.lease_time, Some(600), "{before:?}");

    // 1. A longer lease, the upper half of the pool excluded, one reservation: all live.
    edit(&server, |t| {
        let t = t
            .replace(r#"lease_time = "600s""#, r#"lease_time = "900s""#)
            .replace("workers = 1", "workers = 1\nlog_level = \"warn\"")
            .replace(
                &format!("pools = [\"{POOL}\"]"),
                &format!("pools = [\"{POOL}\"]\nexclude = [\"10.77.1.30-10.77.1.59\"]"),
            );
        format!("{t}\n[[subnet.reservation]]\nmac = \"{RESERVED_MAC}\"\naddress = \"{RESERVED}\"\n")
    });
    let out = server
        .tandemctl(&["reload"])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.contains("configuration reloaded: 2 changes applied")
            && out.contains("server: log_level")
            && out.contains("exclude, lease_time, reservations (+1 −0)"),
        "{out}"
    );
    // The new log level is in force before the reload reports itself: nothing at info.
    assert!(
        !server.log().contains("configuration change applied"),
        "{}",
        server.log()
    );

    // The reserved client gets its address; fresh clients never an excluded one.
    let scapy = Scapy::new();
    let reserved = scapy
        .dora(&ep, &[RESERVED_MAC.to_owned()])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reserved[0].reply, "ack", "{reserved:?}");
    assert_eq!(reserved[0].yiaddr, Some(RESERVED), "{reserved:?}");
    let fresh: Vec<String> = (1..=12)
        .map(|i| format!("02:00:00:00:98:{i:02x}"))
        .collect();
    let replies = scapy.dora(&ep, &fresh).unwrap_or_else(|e| panic!("{e}"));
    for r in &replies {
        assert_eq!(r.reply, "ack", "{replies:?}");
        let a = r.yiaddr.expect("an address");
        assert!(
            (Ipv4Addr::new(10, 77, 1, 10)..=Ipv4Addr::new(10, 77, 1, 29)).contains(&a)
                && a != RESERVED,
            "{a} is excluded or reserved: {replies:?}"
        );
    }
    // The lease taken before the change is still bound to its client.
    let held = server.tandemctl_leases(&["--ip", &before.address.to_string()]);
    assert!(
        held.iter()
            .any(|l| l.state == "active" && l.chaddr == ep.mac),
        "{held:?}"
    );

    // 2. What only a restart can change is refused whole, with every reason.
    edit(&server, |t| {
        let t = t.replace(r#"lease_time = "900s""#, r#"lease_time = "1200s""#);
        let t = t.replace(&format!("[\"{}\"]", net.server.iface), "[\"nosuch0\"]");
        format!("{t}\n[[subnet]]\nprefix = \"10.99.0.0/24\"\npools = [\"10.99.0.10-10.99.0.20\"]\n")
    });
    let refused = server.tandemctl(&["reload"]).expect_err("refused");
    assert!(
        refused.contains("not applied, the running configuration stays")
            && refused.contains("server interfaces changed")
            && refused.contains("subnet 10.99.0.0/24 added"),
        "{refused}"
    );
    // Still the accepted configuration: 900 s, not 1200 s.
    let again = scapy
        .dora(&ep, &[RESERVED_MAC.to_owned()])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again[0].yiaddr, Some(RESERVED), "{again:?}");

    // 3. A broken file is refused with its line, and the server keeps serving.
    std::fs::write(server.config_path(), "[server]\ninterfaces = 7\n").expect("write");
    let broken = server.tandemctl(&["reload"]).expect_err("refused");
    assert!(
        broken.contains(&format!("{}:2:", server.config_path().display())),
        "{broken}"
    );

    // 4. SIGHUP applies a repaired file the same way, audited as the signal's.
    std::fs::write(
        server.config_path(),
        config(&net, server.data_dir(), 1, POOL).replace("600s", "300s"),
    )
    .expect("write");
    server.signal("HUP");
    common::wait_until(Duration::from_secs(10), "SIGHUP's reload", || {
        audit(&server)
            .iter()
            .any(|e| e["who"] == "signal SIGHUP")
            .then_some(())
    });
    // Back at info (the file sets no log_level): the changes are logged.
    common::wait_until(Duration::from_secs(10), "the changes logged", || {
        server
            .log()
            .contains("configuration change applied: server: log_level")
            .then_some(())
    });
    let fresh = scapy
        .dora(&ep, &["02:00:00:00:97:01".to_owned()])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fresh[0].reply, "ack", "{fresh:?}");

    let entries = audit(&server);
    let reloads: Vec<_> = entries.iter().filter(|e| e["verb"] == "reload").collect();
    assert_eq!(reloads.len(), 4, "{entries:?}");
    let oks: Vec<bool> = reloads.iter().map(|e| e["ok"] == true).collect();
    assert_eq!(oks, [true, false, false, true], "{reloads:?}");

    dhclient.stop();
    // SIGHUP's handler let the store go: it closes clean.
    server.terminate();
    assert!(
        server.log().contains("store closed clean"),
        "{}",
        server.log()
    );
    let msgs = cap.stop();
    capture::check_no_double_binding(&msgs);
    let lease_of = |mac: &str| {
        msgs.iter()
            .filter(|m| m.msg_type == msg::ACK && m.chaddr == mac)
            .map(|m| m.lease_time)
            .collect::<Vec<_>>()
    };
    // The reserved client's two ACKs came under the 900 s configuration; the last client's
    // under SIGHUP's 300 s.
    assert_eq!(lease_of(RESERVED_MAC), [Some(900), Some(900)]);
    assert_eq!(lease_of("02:00:00:00:97:01"), [Some(300)]);
}

#[test]
fn on_xdp_a_reload_rewrites_the_kernel_rate_limits_and_serves_on() {
    common::require_e2e();
    let net = TestNet::new(Layout::Direct, 1);
    let ep = net.clients[0].clone();
    let server = Server::start_tandemd_with(&net.server.ns, |d| config_on(&net, d, 1, POOL, "xdp"));
    assert_eq!(
        server.status_json().expect("status")["datapath"],
        "xdp",
        "{}",
        server.log()
    );
    let kernel_mac_limit = || -> serde_json::Value {
        server.status_json().expect("status")["xdp"][0]["rate_limits"]["mac"].clone()
    };
    // The defaults (5 a second, bursts of 20), as the kernel holds them.
    assert_eq!(kernel_mac_limit(), serde_json::json!([5, 20]));
    edit(&server, |t| {
        t.replace("workers = 1", "workers = 1\nmac_rate = 50\nmac_burst = 100")
            .replace(r#"lease_time = "600s""#, r#"lease_time = "700s""#)
    });
    let out = server
        .tandemctl(&["reload"])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.contains("server: mac_rate/mac_burst") && out.contains("lease_time"),
        "{out}"
    );
    let lease = Dhclient::new(&ep)
        .obtain()
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert_eq!(lease.lease_time, Some(700), "{lease:?}");
    assert_eq!(kernel_mac_limit(), serde_json::json!([50, 100]));
    let redirected: u64 = server.status_json().expect("status")["xdp"]
        .as_array()
        .expect("xdp")
        .iter()
        .filter_map(|x| x["redirect"].as_u64())
        .sum();
    assert!(redirected > 0, "served through XDP");
}

#[test]
fn reloads_under_load_drop_no_request_and_lose_no_lease() {
    common::require_e2e();
    let _heavy = common::heavy();
    let net = TestNet::new(Layout::Direct, 1);
    let ep = net.clients[0].clone();
    let mut cap = Capture::start(&net.server.ns, &net.server.iface);
    // A pool far larger than the run needs, on two workers.
    let server = Server::start_tandemd_with(&net.server.ns, |d| {
        config(&net, d, 2, "10.77.1.0-10.77.200.255")
    });
    let run = Perfdhcp::new(
        &ep.ns,
        &PerfTarget::Broadcast {
            iface: ep.iface.clone(),
        },
    )
    .arg("-r")
    .arg("500")
    .arg("-p")
    .arg("8")
    .arg("-R")
    .arg("20000")
    .drop_time(2)
    .spawn();

    // Alternate two configurations while perfdhcp runs: every reload must be applied.
    let started = Instant::now();
    let mut applied = 0;
    std::thread::sleep(Duration::from_secs(1));
    while started.elapsed() < Duration::from_secs(7) && applied < 20 {
        let (from, to) = if applied % 2 == 0 {
            (
                r#"lease_time = "600s""#,
                "lease_time = \"900s\"\ndns = [\"10.77.0.53\"]",
            )
        } else {
            (
                "lease_time = \"900s\"\ndns = [\"10.77.0.53\"]",
                r#"lease_time = "600s""#,
            )
        };
        edit(&server, |t| t.replace(from, to));
        let out = server
            .tandemctl(&["reload"])
            .unwrap_or_else(|e| panic!("reload {applied}: {e}"));
        assert!(out.contains("1 change applied"), "{out}");
        applied += 1;
        std::thread::sleep(Duration::from_millis(300));
    }
    let report = run
        .wait(Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "{applied} reloads; perfdhcp (reported, not asserted): sent {:?} received {:?} drops {:?}",
        report.sent, report.received, report.drops
    );
    assert!(applied >= 10, "only {applied} reloads in the run");
    assert!(report.acks() >= 1000, "{}", report.output);

    // The server's own account: everything read was answered or silenced, nothing dropped.
    let acct = Accounting::settled(&server);
    eprintln!("server accounting: {acct:?}");
    acct.assert_complete();
    assert!(
        acct.dropped.is_empty() && acct.kernel.is_empty(),
        "requests dropped across the reloads: {acct:?}"
    );

    // No lease lost: every ACK on the wire is bound to its client in the table, and every ACK
    // carries one of the two configurations' lease times.
    let msgs = cap.stop();
    capture::check_no_double_binding(&msgs);
    let acks = capture::acks(&msgs);
    let times: BTreeMap<Option<u32>, usize> = acks.iter().fold(BTreeMap::new(), |mut m, a| {
        *m.entry(a.lease_time).or_default() += 1;
        m
    });
    eprintln!("ACKs by lease time: {times:?}");
    assert!(
        times.keys().all(|t| matches!(t, Some(600 | 900))),
        "{times:?}"
    );
    assert!(times.len() == 2, "both configurations served: {times:?}");
    server.assert_acks_in_table(&acks);
}
