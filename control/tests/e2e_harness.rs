//! The harness checks itself: the double-binding checker catches what it must and accepts what
//! it must, and perfdhcp's report parses. No root or network needed.

#[expect(
    dead_code,
    reason = "each e2e test binary uses a different part of the shared harness"
)]
mod common;

use std::net::Ipv4Addr;

use common::{
    capture::{DhcpMsg, double_bindings, msg},
    clients::PerfReport,
};

const S: u64 = 1_000_000;

fn m(t: u64, kind: u8, addr: [u8; 4], mac: &str, lease: u32) -> DhcpMsg {
    let a = Ipv4Addr::from(addr);
    DhcpMsg {
        time_us: t * S,
        op: if kind == msg::ACK { 2 } else { 1 },
        sport: if kind == msg::ACK { 67 } else { 68 },
        msg_type: kind,
        xid: 0,
        ciaddr: if kind == msg::RELEASE {
            a
        } else {
            Ipv4Addr::UNSPECIFIED
        },
        yiaddr: if kind == msg::ACK {
            a
        } else {
            Ipv4Addr::UNSPECIFIED
        },
        giaddr: Ipv4Addr::UNSPECIFIED,
        chaddr: mac.to_owned(),
        client_id: None,
        lease_time: (kind == msg::ACK).then_some(lease),
        server_id: None,
        requested: None,
        option82: None,
    }
}

const A: [u8; 4] = [10, 77, 1, 5];
const X: &str = "02:00:00:00:00:0a";
const Y: &str = "02:00:00:00:00:0b";

#[test]
fn overlapping_bindings_of_two_clients_are_caught() {
    let v = double_bindings(&[m(0, msg::ACK, A, X, 100), m(50, msg::ACK, A, Y, 100)]);
    assert_eq!(v.len(), 1, "{v:?}");
}

#[test]
fn renewals_by_one_client_are_fine() {
    let msgs = [
        m(0, msg::ACK, A, X, 100),
        m(50, msg::ACK, A, X, 100),
        m(120, msg::ACK, A, X, 100),
    ];
    assert!(double_bindings(&msgs).is_empty());
}

#[test]
fn expiry_or_release_frees_the_address() {
    let expired = [m(0, msg::ACK, A, X, 100), m(100, msg::ACK, A, Y, 100)];
    assert!(double_bindings(&expired).is_empty());
    let released = [
        m(0, msg::ACK, A, X, 100),
        m(10, msg::RELEASE, A, X, 0),
        m(20, msg::ACK, A, Y, 100),
    ];
    assert!(double_bindings(&released).is_empty());
    // A RELEASE from someone else doesn't end X's binding.
    let spoofed = [
        m(0, msg::ACK, A, X, 100),
        m(10, msg::RELEASE, A, Y, 0),
        m(20, msg::ACK, A, Y, 100),
    ];
    assert_eq!(double_bindings(&spoofed).len(), 1);
}

#[test]
fn client_id_identifies_the_client_before_chaddr() {
    let mut a = m(0, msg::ACK, A, X, 100);
    let mut b = m(10, msg::ACK, A, X, 100);
    a.client_id = Some("01aa".into());
    b.client_id = Some("01bb".into());
    assert_eq!(
        double_bindings(&[a, b]).len(),
        1,
        "same chaddr, two client ids"
    );
}

#[test]
fn an_ack_that_ends_elsewhere_still_overlaps_by_time_not_by_order() {
    // A long lease followed by a short one for another client inside it, then a third.
    let msgs = [
        m(0, msg::ACK, A, X, 1000),
        m(900, msg::ACK, A, Y, 10),
        m(2000, msg::ACK, A, Y, 10),
    ];
    assert_eq!(double_bindings(&msgs).len(), 1);
}

#[test]
fn perfdhcp_report_parses() {
    let out = "Running: perfdhcp -4 -r 10\n***Rate statistics***\nRate: 4999.8 4-way exchanges/second, expected rate: 5000\n\n\
***Statistics for: DISCOVER-OFFER***\nsent packets: 50000\nreceived packets: 49990\ndrops: 10\ndrops ratio: 0.02 %\n\n\
***Statistics for: REQUEST-ACK***\nsent packets: 49990\nreceived packets: 49990\ndrops: 0\n";
    let r = PerfReport::parse(out);
    assert_eq!(r.sent.get("DISCOVER-OFFER"), Some(&50000));
    assert_eq!(r.received.get("DISCOVER-OFFER"), Some(&49990));
    assert_eq!(r.drops.get("DISCOVER-OFFER"), Some(&10));
    assert_eq!(r.acks(), 49990);
    assert_eq!(r.total_drops(), 10);
    assert_eq!(r.rate, Some(4999.8));
}
