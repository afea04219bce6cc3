//! A DECLINE flood against the real `tandemd` (#13, item 2): clients with random MACs each
//! take a lease (DORA, scapy) and DECLINE it at once. The subnet ends with at most its
//! `max_abandoned_percent` of the pool abandoned, as `tandemctl status` counts it, the DECLINEs
//! past the cap are counted (`decline-over-cap`), and a real client (dhclient) still gets a
//! lease.

#[expect(
    dead_code,
    reason = "each e2e test binary uses a different part of the shared harness"
)]
mod common;

use std::path::Path;

use common::{
    capture::Capture,
    clients::{Dhclient, Scapy},
    net::{Layout, TestNet},
    server::Server,
};
use testkit::rng::Rng;

/// 50 addresses, so 10 % is 5.
const POOL: &str = "10.77.1.10-10.77.1.59";
const CAP: u64 = 5;
/// Attackers: each takes a lease and declines it.
const FLOOD: usize = 20;

/// Two workers (both may abandon at once; the cap holds across them), the default cap.
fn config(net: &TestNet, data_dir: &Path) -> String {
    format!(
        r#"[server]
interfaces = ["{iface}"]
server_id = "{server}"
data_dir = "{data}"
datapath = "packet"
workers = 2
durability = "sync"

[[subnet]]
prefix = "{prefix}"
pools = ["{POOL}"]
lease_time = "3600s"
decline_probation = "1h"
max_abandoned_percent = 10
"#,
        iface = net.server.iface,
        server = common::net::DIRECT_SERVER,
        data = data_dir.display(),
        prefix = common::net::DIRECT_PREFIX,
    )
}

/// `tandemctl status --json`: abandoned leases over every subnet, and the workers' count of
/// `silent.<reason>`.
fn abandoned_and_silent(status: &serde_json::Value, reason: &str) -> (u64, u64) {
    let abandoned = status
        .get("leases")
        .and_then(|l| l.as_object())
        .unwrap_or_else(|| panic!("status without leases{{}}: {status}"))
        .values()
        .filter_map(|by_state| by_state.get("abandoned").and_then(|n| n.as_u64()))
        .sum();
    let silent = status
        .get("workers")
        .and_then(|w| w.as_array())
        .unwrap_or_else(|| panic!("status without workers[]: {status}"))
        .iter()
        .filter_map(|w| w.get("silent")?.get(reason)?.as_u64())
        .sum();
    (abandoned, silent)
}

#[test]
fn a_decline_flood_abandons_at_most_the_cap_and_a_real_client_still_gets_a_lease() {
    common::require_e2e();
    let net = TestNet::new(Layout::Direct, 1);
    let ep = net.clients[0].clone();
    let mut cap = Capture::start(&net.server.ns, &net.server.iface);
    let mut server = Server::start_tandemd_with(&net.server.ns, |d| config(&net, d));

    let seed = u64::from(std::process::id());
    eprintln!("random MACs from seed {seed}");
    let mut rng = Rng::new(seed);
    let macs: Vec<String> = (0..FLOOD)
        .map(|_| {
            let b = rng.next_u64().to_le_bytes();
            format!(
                "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                b[0], b[1], b[2], b[3], b[4]
            )
        })
        .collect();
    let replies = Scapy::new()
        .dora_decline(&ep, &macs)
        .unwrap_or_else(|e| panic!("{e}"));
    let declined = replies.iter().filter(|r| r.reply == "declined").count();
    assert_eq!(
        declined, FLOOD,
        "every attacker got a lease to decline: {replies:?}"
    );

    // The DECLINEs are silent: wait until the workers have counted them all.
    let (abandoned, over) = common::try_wait_until(std::time::Duration::from_secs(10), || {
        let status = server.status_json().expect("tandemd status");
        let (abandoned, over) = abandoned_and_silent(&status, "decline-over-cap");
        let (_, applied) = abandoned_and_silent(&status, "declined");
        (applied + over == FLOOD as u64).then_some((abandoned, over))
    })
    .unwrap_or_else(|| {
        panic!(
            "the DECLINEs were not all counted: {}",
            server.status_json().expect("status")
        )
    });
    assert!(
        abandoned <= CAP,
        "{abandoned} addresses abandoned, over the cap of {CAP}"
    );
    assert_eq!(abandoned, CAP, "the first DECLINEs are applied");
    assert_eq!(
        over,
        FLOOD as u64 - CAP,
        "the rest are counted over the cap"
    );
    let stored = server
        .tandemctl(&["leases", "--json", "--state", "abandoned"])
        .unwrap_or_else(|e| panic!("{e}"));
    let v: serde_json::Value = serde_json::from_str(&stored)
        .unwrap_or_else(|e| panic!("tandemctl leases --json ({e}): {stored}"));
    let listed = v
        .as_array()
        .or_else(|| v.get("leases").and_then(|l| l.as_array()))
        .unwrap_or_else(|| panic!("tandemctl leases --json: expected a list: {stored}"));
    assert_eq!(listed.len() as u64, abandoned, "{stored}");

    let mut client = Dhclient::new(&ep);
    let lease = client
        .obtain()
        .unwrap_or_else(|e| panic!("no lease for a real client after the flood: {e}"));
    assert!(
        server
            .active_leases()
            .iter()
            .any(|l| l.address == lease.address && l.chaddr == ep.mac),
        "{lease:?} not in the server's store"
    );
    assert!(server.alive(), "server died");
    client.stop();
    drop(server);
    let msgs = cap.stop();
    common::capture::check_no_double_binding(&msgs);
}
