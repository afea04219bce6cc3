//! Relayed clients (RFC 2131 §4.1 giaddr, RFC 3046 option 82): perfdhcp in the relay namespace
//! acts as the relay agent, unicasting from its client-side address (the giaddr) to the server.

#[expect(
    dead_code,
    reason = "each e2e test binary uses a different part of the shared harness"
)]
mod common;

use std::{net::Ipv4Addr, time::Duration};

use common::{
    Env,
    capture::{self, msg},
    clients::{PerfTarget, Perfdhcp},
    net::{Layout, RELAY_GIADDR, RELAY_LINK_SERVER},
};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn relayed_clients_get_leases_from_the_giaddr_subnet_with_option_82_echoed() {
    let mut env = Env::new(Layout::Relayed, 0, Duration::from_secs(300));
    let relay = env.net.relay.clone().expect("relay layout");
    // Option 82: circuit-id "port-7", remote-id "cpe-0042" (RFC 3046 §3.1, §3.2).
    let circuit = b"port-7";
    let remote = b"cpe-0042";
    let mut value = vec![1, circuit.len() as u8];
    value.extend_from_slice(circuit);
    value.extend_from_slice(&[2, remote.len() as u8]);
    value.extend_from_slice(remote);
    let option82 = hex(&value);
    const CLIENTS: u64 = 8;
    let report = Perfdhcp::new(
        &relay.ns,
        &PerfTarget::Relay {
            local: RELAY_GIADDR,
            server: RELAY_LINK_SERVER,
        },
    )
    .arg("-r")
    .arg("20")
    .arg("-n")
    .arg(CLIENTS.to_string())
    .arg("-R")
    .arg(CLIENTS.to_string())
    .arg("-o")
    .arg(format!("82,{option82}"))
    // perfdhcp does not retransmit: give a reply 10 s before it counts as lost.
    .drop_time(10)
    .run(Duration::from_secs(120))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.acks(), CLIENTS, "{}", report.output);
    assert_eq!(report.total_drops(), 0, "{}", report.output);

    let msgs = env.finish_capture();
    let acks = capture::acks(&msgs);
    assert_eq!(acks.len() as u64, CLIENTS, "ACKs on the wire: {acks:#?}");
    let in_relayed_subnet = |a: Ipv4Addr| a.octets()[..3] == [10, 78, 0];
    for ack in &acks {
        assert_eq!(ack.giaddr, RELAY_GIADDR, "{ack:?}");
        assert!(
            in_relayed_subnet(ack.yiaddr),
            "lease from the wrong subnet: {ack:?}"
        );
        assert_eq!(
            ack.option82.as_deref(),
            Some(option82.as_str()),
            "option 82 not echoed: {ack:?}"
        );
    }
    for offer in msgs.iter().filter(|m| m.msg_type == msg::OFFER) {
        assert_eq!(
            offer.option82.as_deref(),
            Some(option82.as_str()),
            "{offer:?}"
        );
    }
    let active = env.server.active_leases();
    let bound: Vec<_> = active
        .iter()
        .filter(|l| in_relayed_subnet(l.address))
        .collect();
    assert_eq!(bound.len() as u64, CLIENTS, "server store: {active:?}");
    for ack in &acks {
        assert!(
            bound
                .iter()
                .any(|l| l.address == ack.yiaddr && l.chaddr == ack.chaddr),
            "ACKed {ack:?} not bound in the server's store: {active:?}"
        );
    }

    // Looked up by address and by hardware address; listed a page at a time in address order.
    let server = &env.server;
    for ack in &acks {
        let by_ip = server.tandemctl_leases(&["--ip", &ack.yiaddr.to_string()]);
        let by_mac = server.tandemctl_leases(&["--mac", &ack.chaddr]);
        for found in [&by_ip, &by_mac] {
            assert_eq!(found.len(), 1, "{ack:?}: {found:?}");
            assert_eq!(
                (
                    found[0].address,
                    found[0].chaddr.as_str(),
                    found[0].state.as_str()
                ),
                (ack.yiaddr, ack.chaddr.as_str(), "active")
            );
        }
    }
    let mut sorted: Vec<Ipv4Addr> = active.iter().map(|l| l.address).collect();
    sorted.sort();
    let page = server.tandemctl_leases(&["--limit", "3"]);
    let page: Vec<Ipv4Addr> = page.iter().map(|l| l.address).collect();
    assert_eq!(page, sorted[..3], "the first page, in address order");
    let after = server.tandemctl_leases(&["--limit", "3", "--after", &sorted[2].to_string()]);
    assert_eq!(
        after[0].address, sorted[3],
        "the next page starts after the cursor"
    );
    let csv = server
        .tandemctl(&["leases", "--limit", "3", "--all", "--csv"])
        .unwrap_or_else(|e| panic!("{e}"));
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows[0],
        "address,state,chaddr,client_id,circuit_id,remote_id,hostname,ends"
    );
    let listed: Vec<Ipv4Addr> = rows[1..]
        .iter()
        .map(|r| {
            r.split(',')
                .next()
                .and_then(|a| a.parse().ok())
                .expect("address")
        })
        .collect();
    assert_eq!(
        listed, sorted,
        "--all follows the cursor through every page"
    );
    // An address no client holds is shown as what it is.
    let unused = (10..250u8)
        .map(|h| Ipv4Addr::new(10, 78, 0, h))
        .find(|a| !sorted.contains(a))
        .expect("a free address");
    let free = server.tandemctl_leases(&["--ip", &unused.to_string()]);
    assert!(
        free.iter()
            .all(|l| l.address == unused && l.state != "active"),
        "{free:?}"
    );
}

/// Relayed clients through tandemd whose `trusted_relays` lists `trusted` (the relay sends
/// from [`RELAY_GIADDR`]); option 82 carries link selection (RFC 3527) naming the decoy
/// subnet 10.80.0.0/24. Returns the leases' addresses and the server's `status --json`.
fn relay_with_link_selection(trusted: &str) -> (Vec<Ipv4Addr>, serde_json::Value) {
    let (leases, status, _) = relay_run(trusted, "", 4, 10, 10);
    (leases, status)
}

/// Relayed perfdhcp (`clients` clients at `rate` a second, a reply lost after `drop_time` s)
/// through tandemd trusting `trusted`, with `extra` lines in `[server]`; returns the leases,
/// `status --json` and perfdhcp's ACK count.
fn relay_run(
    trusted: &str,
    extra: &str,
    clients: u64,
    rate: u64,
    drop_time: u32,
) -> (Vec<Ipv4Addr>, serde_json::Value, u64) {
    common::require_e2e();
    let net = common::net::TestNet::new(Layout::Relayed, 0);
    let relay = net.relay.clone().expect("relay layout");
    let iface = net.server.iface.clone();
    let server = common::server::Server::start_tandemd_with(&net.server.ns, |dir| {
        format!(
            "[server]\ninterfaces = [{iface:?}]\nserver_id = \"{RELAY_LINK_SERVER}\"\n\
             data_dir = {dir:?}\ndatapath = \"packet\"\nworkers = 1\n\
             trusted_relays = [\"{trusted}\"]\n{extra}\
             [[subnet]]\nprefix = \"10.80.0.0/24\"\npools = [\"10.80.0.100-10.80.0.200\"]\n\
             [[subnet]]\nprefix = \"10.78.0.0/24\"\npools = [\"10.78.0.100-10.78.0.200\"]\n"
        )
    });
    // Sub-option 1 circuit-id "port-7", sub-option 5 link selection 10.80.0.0.
    let option82 = hex(&[1, 6, b'p', b'o', b'r', b't', b'-', b'7', 5, 4, 10, 80, 0, 0]);
    let report = Perfdhcp::new(
        &relay.ns,
        &PerfTarget::Relay {
            local: RELAY_GIADDR,
            server: RELAY_LINK_SERVER,
        },
    )
    .arg("-r")
    .arg(rate.to_string())
    .arg("-n")
    .arg(clients.to_string())
    .arg("-R")
    .arg(clients.to_string())
    .arg("-o")
    .arg(format!("82,{option82}"))
    .drop_time(drop_time)
    .run(Duration::from_secs(120))
    .unwrap_or_else(|e| panic!("{e}"));
    let leases = server.active_leases().iter().map(|l| l.address).collect();
    let status = server.status_json().expect("tandemctl status --json");
    (leases, status, report.acks())
}

fn ignored_untrusted(status: &serde_json::Value) -> u64 {
    status["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .filter_map(|w| w["ignored"]["untrusted-relay-options"].as_u64())
        .sum()
}

#[test]
fn link_selection_is_honoured_from_a_trusted_relay_only() {
    // Trusted (the relay's source address is listed): the link selection picks 10.80.0.0/24.
    let (leases, status) = relay_with_link_selection(&RELAY_GIADDR.to_string());
    assert_eq!(leases.len(), 4, "{leases:?}; {status}");
    assert!(
        leases.iter().all(|a| a.octets()[..3] == [10, 80, 0]),
        "a trusted relay's link selection was not honoured: {leases:?}"
    );
    assert_eq!(ignored_untrusted(&status), 0, "{status}");
    // Untrusted (another relay listed): option 82 is ignored, the giaddr's subnet serves,
    // and the requests are counted.
    let (leases, status) = relay_with_link_selection("192.0.2.0/24");
    assert_eq!(leases.len(), 4, "{leases:?}");
    assert!(
        leases.iter().all(|a| a.octets()[..3] == [10, 78, 0]),
        "an untrusted relay steered the subnet: {leases:?}"
    );
    assert!(ignored_untrusted(&status) >= 4, "{status}");
}

fn dropped(status: &serde_json::Value, reason: &str) -> u64 {
    status["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .filter_map(|w| w["dropped"][reason].as_u64())
        .sum()
}

#[test]
fn a_flood_through_one_relay_is_cut_at_its_rate_and_counted() {
    // 400 clients through one relay at up to 400 a second against `relay_rate = 5`,
    // `relay_burst = 10`: the relay's excess is dropped before the engine (`rate-relay`) and
    // only a fraction gets leases. Counts, not timings: every lease must be one the server
    // answered, and far fewer than were asked for.
    let (leases, status, acks) = relay_run(
        &RELAY_GIADDR.to_string(),
        "relay_rate = 5\nrelay_burst = 10\n",
        400,
        400,
        2,
    );
    let cut = dropped(&status, "rate-relay");
    assert!(cut > 0, "nothing counted as rate-relay: {status}");
    assert!(
        acks < 400,
        "every client got a lease through the limit: {status}"
    );
    assert_eq!(leases.len() as u64, acks, "{leases:?}; {status}");
}
