//! Real clients against the server under test (`TANDEM_E2E_SERVER`): dhclient, udhcpc and
//! dhcpcd each obtain, renew and release a lease, checked on the client, in the server's store
//! and on the wire.

#[expect(
    dead_code,
    reason = "each e2e test binary uses a different part of the shared harness"
)]
mod common;

use std::time::Duration;

use common::{
    Env,
    capture::{DhcpMsg, msg},
    clients::{ClientLease, Dhclient, Dhcpcd, Udhcpc},
    net::{DIRECT_SERVER, Endpoint, Layout},
};

/// Short enough that dhclient renews by itself at T1 (15 s) within the test, long enough that
/// a slow step on a loaded machine never sees the lease run out.
const LEASE: Duration = Duration::from_secs(30);

/// The binding is in the server's pool, carries our lease time and server id, and the
/// server's store has it bound to this client.
fn assert_bound(env: &Env, ep: &Endpoint, lease: &ClientLease) {
    let octets = lease.address.octets();
    assert!(
        octets[0] == 10 && octets[1] == 77 && octets[2] >= 1,
        "address {} outside the pool",
        lease.address
    );
    assert_eq!(lease.lease_time, Some(LEASE.as_secs() as u32), "{lease:?}");
    assert_eq!(lease.server_id, Some(DIRECT_SERVER), "{lease:?}");
    let active = env.server.active_leases();
    assert!(
        active
            .iter()
            .any(|l| l.address == lease.address && l.chaddr == ep.mac),
        "server store has no active lease {} for {}: {active:?}",
        lease.address,
        ep.mac
    );
}

fn assert_released(env: &Env, lease: &ClientLease) {
    common::wait_until(
        Duration::from_secs(30),
        "the server to drop the released lease",
        || {
            (!env
                .server
                .active_leases()
                .iter()
                .any(|l| l.address == lease.address))
            .then_some(())
        },
    );
}

/// On the wire: at least `acks` ACKs of `address` to `mac`, and a RELEASE of it from `mac`.
fn assert_wire(msgs: &[DhcpMsg], mac: &str, lease: &ClientLease, acks: usize) {
    let n = msgs
        .iter()
        .filter(|m| m.msg_type == msg::ACK && m.chaddr == mac && m.yiaddr == lease.address)
        .count();
    assert!(
        n >= acks,
        "{n} ACKs of {} to {mac} on the wire, want {acks}",
        lease.address
    );
    assert!(
        msgs.iter()
            .any(|m| m.msg_type == msg::RELEASE && m.chaddr == mac && m.ciaddr == lease.address),
        "no RELEASE of {} from {mac} on the wire",
        lease.address
    );
}

#[test]
fn dhclient_obtains_renews_and_releases() {
    let mut env = Env::new(Layout::Direct, 1, LEASE);
    let ep = env.net.clients[0].clone();
    let mut client = Dhclient::new(&ep);
    let lease = client.obtain().unwrap_or_else(|e| panic!("{e}"));
    assert_bound(&env, &ep, &lease);
    // T1 is half the lease: dhclient renews by itself while it runs.
    let renewed = client
        .wait_renew(2 * LEASE)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(renewed.address, lease.address);
    assert_bound(&env, &ep, &renewed);
    client.release().unwrap_or_else(|e| panic!("{e}"));
    assert_released(&env, &lease);
    let msgs = env.finish_capture();
    assert_wire(&msgs, &ep.mac, &lease, 2);
}

#[test]
fn dhclient_init_reboot_gets_its_address_back() {
    let mut env = Env::new(Layout::Direct, 1, Duration::from_secs(120));
    let ep = env.net.clients[0].clone();
    let mut client = Dhclient::new(&ep);
    let first = client.obtain().unwrap_or_else(|e| panic!("{e}"));
    // No release: the lease file still holds the lease, so the next run starts in INIT-REBOOT.
    client.stop();
    let again = client.obtain().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.event, "REBOOT", "{again:?}");
    assert_eq!(again.address, first.address);
    let msgs = env.finish_capture();
    let discovers = msgs
        .iter()
        .filter(|m| m.msg_type == msg::DISCOVER && m.chaddr == ep.mac)
        .count();
    assert_eq!(discovers, 1, "the second run must not DISCOVER");
    assert!(
        msgs.iter().any(|m| m.msg_type == msg::REQUEST
            && m.chaddr == ep.mac
            && m.requested == Some(first.address)
            && m.server_id.is_none()),
        "no INIT-REBOOT REQUEST (option 50, no option 54) on the wire"
    );
}

#[test]
fn udhcpc_obtains_renews_and_releases() {
    let mut env = Env::new(Layout::Direct, 1, LEASE);
    let ep = env.net.clients[0].clone();
    let mut client = Udhcpc::new(&ep);
    let once = client.obtain_once().unwrap_or_else(|e| panic!("{e}"));
    assert_bound(&env, &ep, &once);
    let lease = client.start().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(lease.address, once.address, "same client, same address");
    let renewed = client.renew().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(renewed.address, lease.address);
    assert_bound(&env, &ep, &renewed);
    client.release().unwrap_or_else(|e| panic!("{e}"));
    assert_released(&env, &lease);
    let msgs = env.finish_capture();
    assert_wire(&msgs, &ep.mac, &lease, 3);
}

#[test]
fn dhcpcd_obtains_renews_and_releases() {
    let mut env = Env::new(Layout::Direct, 1, LEASE);
    let ep = env.net.clients[0].clone();
    let mut client = Dhcpcd::new(&ep);
    let lease = client.start().unwrap_or_else(|e| panic!("{e}"));
    assert_bound(&env, &ep, &lease);
    let renewed = client.renew().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(renewed.address, lease.address);
    assert_bound(&env, &ep, &renewed);
    client.release().unwrap_or_else(|e| panic!("{e}"));
    assert_released(&env, &lease);
    let msgs = env.finish_capture();
    assert_wire(&msgs, &ep.mac, &lease, 2);
}
