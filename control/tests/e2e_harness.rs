//! The harness checks itself: the double-binding checker catches what it must and accepts what
//! it must, and perfdhcp's report parses. No root or network needed.

#[expect(
    dead_code,
    reason = "each e2e test binary uses a different part of the shared harness"
)]
mod common;

use std::net::Ipv4Addr;

use common::{
    acks::{AckLog, discovers},
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
        secs: 0,
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

/// `m` as sent by server `sid` (option 54), for the pair checker.
fn from(sid: [u8; 4], mut msg: DhcpMsg) -> DhcpMsg {
    msg.server_id = Some(Ipv4Addr::from(sid));
    msg
}

const SA: [u8; 4] = [10, 81, 0, 1];
const SB: [u8; 4] = [10, 81, 0, 2];

#[test]
fn pair_checker_catches_two_servers_binding_one_address() {
    // A gives A-address to X for 60 s; 20 s later B gives the same address to Y: the split
    // brain failover exists to prevent.
    let msgs = [
        from(SA, m(0, msg::ACK, A, X, 60)),
        from(SB, m(20, msg::ACK, A, Y, 60)),
    ];
    let log = AckLog::from_msgs(&msgs);
    let v = log.double_bindings();
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].first.ack.server, Some(Ipv4Addr::from(SA)));
    assert_eq!(v[0].second.ack.server, Some(Ipv4Addr::from(SB)));
    let text = v[0].to_string();
    assert!(
        text.contains("10.77.1.5") && text.contains(X) && text.contains(Y),
        "{text}"
    );
}

#[test]
#[should_panic(expected = "bound to two clients at overlapping times")]
fn pair_checker_check_panics_on_overlap() {
    let msgs = [
        from(SA, m(0, msg::ACK, A, X, 60)),
        from(SB, m(59, msg::ACK, A, Y, 60)),
    ];
    AckLog::from_msgs(&msgs).check();
}

#[test]
fn pair_checker_accepts_expiry_release_and_renewal_by_the_other_server() {
    let msgs = [
        // X renews with the other server (rebinding after a link cut): same client, fine.
        from(SA, m(0, msg::ACK, A, X, 30)),
        from(SB, m(20, msg::ACK, A, X, 30)),
        // X's binding ends at 50; Y gets the address at 50: no overlap.
        from(SA, m(50, msg::ACK, A, Y, 30)),
        // Y releases at 60, X takes it back at 61.
        m(60, msg::RELEASE, A, Y, 0),
        from(SB, m(61, msg::ACK, A, X, 30)),
    ];
    let log = AckLog::from_msgs(&msgs);
    assert_eq!(log.check(), 4);
    assert_eq!(log.give_backs.len(), 1);
    let per = log.per_server();
    assert_eq!(per.get(&Some(Ipv4Addr::from(SA))), Some(&2));
    assert_eq!(per.get(&Some(Ipv4Addr::from(SB))), Some(&2));
}

#[test]
fn pair_checker_keeps_one_of_a_frame_seen_on_two_ports() {
    let ack = from(SA, m(5, msg::ACK, A, X, 30));
    let mut twin = ack.clone();
    twin.time_us += 40;
    let log = AckLog::from_msgs(&[ack, twin]);
    assert_eq!(log.acks.len(), 1, "{log:?}");
}

#[test]
fn pair_checker_finds_leases_beyond_the_mclt() {
    let msgs = [
        from(SA, m(0, msg::ACK, A, X, 3600)),
        from(SA, m(10, msg::ACK, [10, 77, 1, 6], Y, 30)),
        from(SA, m(20, msg::ACK, [10, 77, 1, 7], "02:00:00:00:00:0c", 31)),
    ];
    let log = AckLog::from_msgs(&msgs);
    // Before the link cut (t < 5) anything goes; after it, at most 30 s.
    let long = log.longer_than(30, 5 * S, 100 * S);
    assert_eq!(long.len(), 1, "{long:?}");
    assert_eq!(long[0].lease_secs, Some(31));
}

#[test]
fn discovers_know_their_bucket_and_who_offered() {
    let mut d = m(0, msg::DISCOVER, [0; 4], X, 0);
    d.xid = 7;
    let mut d_again = d.clone();
    d_again.time_us += 30; // the same frame on the other port
    let mut retry = d.clone();
    retry.time_us = 4 * S;
    retry.secs = 4;
    let mut offer_b = from(SB, m(4, msg::OFFER, [0; 4], X, 0));
    offer_b.op = 2;
    offer_b.sport = 67;
    offer_b.xid = 7;
    offer_b.time_us += 1000;
    let list = discovers(&[d, d_again, retry, offer_b]);
    assert_eq!(list.len(), 2, "{list:?}");
    let expect = control::failover::hash::client_bucket(None, &[2, 0, 0, 0, 0, 0x0a], 6);
    assert!(list.iter().all(|d| d.bucket == expect));
    assert!(list[0].offered_by.is_empty(), "nobody answered secs 0");
    assert_eq!(
        list[1].offered_by.iter().copied().collect::<Vec<_>>(),
        vec![Ipv4Addr::from(SB)]
    );
    // With a client identifier, the bucket is the identifier's.
    let mut with_id = m(0, msg::DISCOVER, [0; 4], X, 0);
    with_id.client_id = Some("01020000000000".into());
    let want = control::failover::hash::client_bucket(Some(&[1, 2, 0, 0, 0, 0, 0]), &[], 6);
    assert_eq!(discovers(&[with_id])[0].bucket, want);
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
