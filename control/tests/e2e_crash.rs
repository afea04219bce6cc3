//! Crashes: `kill -9` of the server in the middle of a perfdhcp run, and SIGTERM. After a
//! restart on the same data, every lease ACKed on the wire before the crash is still bound to
//! its client in the server's store, and those clients get the same address back by
//! INIT-REBOOT (RFC 2131 §3.2, §4.3.2).

#[expect(
    dead_code,
    reason = "each e2e test binary uses a different part of the shared harness"
)]
mod common;

use std::{collections::BTreeMap, net::Ipv4Addr, time::Duration};

use common::{
    Env,
    capture::{self, Capture, DhcpMsg},
    clients::{Dhclient, PerfTarget, Perfdhcp, Scapy},
    net::Layout,
};

/// How many of the pre-crash clients re-check their address by INIT-REBOOT.
const REBOOTERS: usize = 20;

#[test]
fn kill_9_under_load_loses_no_acked_lease() {
    let _heavy = common::heavy();
    let mut env = Env::new(Layout::Direct, 1, Duration::from_secs(3600));
    let ep = env.net.clients[0].clone();
    let run = Perfdhcp::new(
        &ep.ns,
        &PerfTarget::Broadcast {
            iface: ep.iface.clone(),
        },
    )
    .arg("-r")
    .arg("400")
    .arg("-p")
    .arg("30")
    .arg("-R")
    .arg("20000")
    .spawn();
    // Kill in the middle of the load, once the server has bound a few hundred clients.
    common::wait_until(
        Duration::from_secs(60),
        "300 leases bound under load",
        || (env.server.active_leases().len() >= 300).then_some(()),
    );
    env.server.kill9();
    // perfdhcp sees drops from here on; its report is not the point.
    drop(run);
    let before = env.capture.stop();

    // What the wire promised: the last ACK per address, before the crash.
    let mut promised: BTreeMap<Ipv4Addr, &DhcpMsg> = BTreeMap::new();
    for ack in capture::acks(&before) {
        promised.insert(ack.yiaddr, ack);
    }
    // The capture may miss a frame under load; it never invents one.
    assert!(
        promised.len() >= 100,
        "only {} leases ACKed before the kill",
        promised.len()
    );

    env.capture = Capture::start(&env.net.server.ns, &env.net.server.iface);
    env.server.restart();
    let stored: BTreeMap<Ipv4Addr, _> = env
        .server
        .active_leases()
        .into_iter()
        .map(|l| (l.address, l))
        .collect();
    let mut lost = Vec::new();
    for (addr, ack) in &promised {
        match stored.get(addr) {
            Some(l) if l.chaddr == ack.chaddr => {}
            other => lost.push(format!(
                "{addr} ACKed to {} but stored {other:?}",
                ack.chaddr
            )),
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} ACKed leases lost by kill -9:\n{}",
        lost.len(),
        promised.len(),
        lost.join("\n")
    );

    // The clients come back: INIT-REBOOT with their address gets it ACKed again.
    let step = (promised.len() / REBOOTERS).max(1);
    let sample: Vec<(String, Option<String>, Ipv4Addr)> = promised
        .values()
        .step_by(step)
        .take(REBOOTERS)
        .map(|a| (a.chaddr.clone(), a.client_id.clone(), a.yiaddr))
        .collect();
    let replies = Scapy::new()
        .init_reboot(&ep, &sample)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(replies.len(), sample.len(), "{replies:?}");
    for ((mac, _, addr), reply) in sample.iter().zip(&replies) {
        assert_eq!(&reply.chaddr, mac);
        assert_eq!(
            (reply.reply.as_str(), reply.yiaddr),
            ("ack", Some(*addr)),
            "INIT-REBOOT of {mac} for {addr} after the crash"
        );
    }

    let mut all = before;
    all.extend(env.capture.stop());
    capture::check_no_double_binding(&all);
}

#[test]
fn sigterm_restart_keeps_the_lease_and_init_reboot_gets_it_back() {
    let mut env = Env::new(Layout::Direct, 1, Duration::from_secs(600));
    let ep = env.net.clients[0].clone();
    let mut client = Dhclient::new(&ep);
    let lease = client.obtain().unwrap_or_else(|e| panic!("{e}"));
    client.stop();
    env.server.terminate();
    env.server.restart();
    assert!(
        env.server
            .active_leases()
            .iter()
            .any(|l| l.address == lease.address && l.chaddr == ep.mac),
        "lease {} for {} gone after SIGTERM and restart",
        lease.address,
        ep.mac
    );
    let again = client.obtain().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.event, "REBOOT", "{again:?}");
    assert_eq!(again.address, lease.address);
    env.finish_capture();
}

#[test]
fn kill_9_then_dhclient_init_reboot_gets_the_same_address() {
    let mut env = Env::new(Layout::Direct, 1, Duration::from_secs(600));
    let ep = env.net.clients[0].clone();
    let mut client = Dhclient::new(&ep);
    let lease = client.obtain().unwrap_or_else(|e| panic!("{e}"));
    client.stop();
    env.server.kill9();
    env.server.restart();
    let again = client.obtain().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.event, "REBOOT", "{again:?}");
    assert_eq!(again.address, lease.address);
    env.finish_capture();
}
