//! Load: perfdhcp at 5,000 DORA exchanges per second for 10 s, broadcast from a client
//! namespace, completes with no drops; every ACK on the wire passes the double-binding checker.

#[expect(
    dead_code,
    reason = "each e2e test binary uses a different part of the shared harness"
)]
mod common;

use std::time::Duration;

use common::{
    Env, capture,
    clients::{PerfTarget, Perfdhcp},
    net::Layout,
};

/// Exchanges per second: 5,000 (the requirement); `TANDEM_E2E_LOAD_RATE` lowers it only to
/// prove the harness against a baseline that can't keep up on a small machine.
fn rate() -> u64 {
    std::env::var("TANDEM_E2E_LOAD_RATE")
        .ok()
        .map(|r| r.parse().expect("TANDEM_E2E_LOAD_RATE: a number"))
        .unwrap_or(5000)
}

const SECONDS: u64 = 10;

#[test]
fn perfdhcp_5000_per_second_for_10_seconds_without_drops() {
    let rate = rate();
    let _heavy = common::heavy();
    let mut env = Env::new(Layout::Direct, 1, Duration::from_secs(3600));
    let ep = env.net.clients[0].clone();
    let report = Perfdhcp::new(
        &ep.ns,
        &PerfTarget::Broadcast {
            iface: ep.iface.clone(),
        },
    )
    .arg("-r")
    .arg(rate.to_string())
    .arg("-p")
    .arg(SECONDS.to_string())
    .arg("-R")
    .arg("40000")
    // A reply within 2 s is a served client (RFC 2131 §4.1: clients first retransmit after
    // about 4 s); perfdhcp's 1 s default counts an fdatasync stall on a busy disk as a loss.
    .arg("-d")
    .arg("2")
    .run(Duration::from_secs(40))
    .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "perfdhcp: sent {:?} received {:?} drops {:?} rate {:?}",
        report.sent, report.received, report.drops, report.rate
    );
    let status = env
        .server
        .status_json()
        .map(|s| s.to_string())
        .unwrap_or_default();
    assert_eq!(
        report.total_drops(),
        0,
        "{}\nserver status: {status}",
        report.output
    );
    // Allow perfdhcp's own pacing slack (10 %), not lost exchanges.
    let want = rate * SECONDS * 9 / 10;
    assert!(
        report.acks() >= want,
        "only {} exchanges completed, want {want}:\n{}",
        report.acks(),
        report.output
    );
    assert!(env.server.alive(), "server died under load");
    let msgs = env.finish_capture();
    let acks = capture::acks(&msgs);
    eprintln!("capture: {} DHCP messages, {} ACKs", msgs.len(), acks.len());
    assert!(
        acks.len() as u64 >= report.acks() * 9 / 10,
        "capture saw {} ACKs of {}",
        acks.len(),
        report.acks()
    );
}
