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
}
