//! Clients that try to starve a pool with DHCPDECLINE (#13, item 2), against the real
//! lease-mmap store on a virtual clock: the per-scope cap on ABANDONED addresses, the
//! DECLINE limits per MAC and per relay, the cap after a restart, and a dry pool reclaiming
//! the abandoned addresses oldest first.

#[expect(dead_code, reason = "the harness serves several test binaries")]
mod engine_support;

use std::net::Ipv4Addr;

use dataplane::engine::{DropReason, EngineConfig, ScopeConfig, SilentReason};
use dataplane::limit::{DeclineLimits, RateLimit};
use engine_support::*;
use lease_mmap::{BindingState, TableId};
use testkit::rng::Rng;

/// 10.0.0.0/24 on the interface, pool .100-.199: 100 addresses, so the default 10 % is 10.
fn hundred() -> ScopeConfig {
    let mut s = lan();
    s.pools = vec![(ip("10.0.0.100"), ip("10.0.0.199"))];
    s
}

const CAP: u32 = 10;
const GIADDR: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);

fn random_mac(rng: &mut Rng) -> [u8; 6] {
    let b = rng.next_u64().to_le_bytes();
    [0x02, b[1], b[2], b[3], b[4], b[5]]
}

/// ABANDONED records of scope 0: the table's count, checked against a scan.
fn abandoned(h: &Harness) -> u32 {
    let t = h.engine.store().table(TableId(0));
    let scanned = t.counts()[BindingState::Abandoned as usize];
    assert_eq!(
        u64::from(t.abandoned()),
        scanned,
        "count and records disagree"
    );
    t.abandoned()
}

/// DORA then DECLINE of the lease, as the client on the LAN; the DECLINE's outcome.
fn dora_decline(h: &mut Harness, m: [u8; 6]) -> Kind {
    let addr = dora(h, m).yiaddr();
    let out = h.run(&decline(m, SERVER, addr), &direct(SERVER, m));
    match out.kind {
        Kind::Silent(SilentReason::Declined) => {
            assert_eq!(h.record(addr).state, BindingState::Abandoned)
        }
        _ => {
            let r = h.record(addr);
            assert_eq!(r.state, BindingState::Active, "{:?} left {r:?}", out.kind);
            assert!(out.commit.is_none(), "nothing changed, nothing to journal");
        }
    }
    out.kind
}

/// The same through relay `giaddr` (relayed scope 10.1.0.0/24).
fn relayed_dora_decline(h: &mut Harness, m: [u8; 6], giaddr: Ipv4Addr) -> Kind {
    let ing = via_relay(SERVER, giaddr);
    let mut d = discover(m);
    d.giaddr = giaddr;
    let offer = h.run(&d, &ing);
    assert_eq!(offer.kind, Kind::Offer, "{offer:?}");
    let mut r = select(m, SERVER, offer.yiaddr());
    r.giaddr = giaddr;
    assert_eq!(h.run(&r, &ing).kind, Kind::Ack);
    let mut d = decline(m, SERVER, offer.yiaddr());
    d.giaddr = giaddr;
    h.run(&d, &ing).kind
}

#[test]
fn decline_flood_from_random_macs_abandons_at_most_the_cap() {
    // Probation shorter than the leases, so that only abandoned addresses come back.
    let mut s = hundred();
    s.decline_probation = 600;
    let mut h = Harness::new(config(vec![s]));
    let mut rng = Rng::new(13);
    let mut outcomes = Vec::new();
    for _ in 0..40 {
        let m = random_mac(&mut rng);
        outcomes.push(dora_decline(&mut h, m));
    }
    let declined = outcomes
        .iter()
        .filter(|k| **k == Kind::Silent(SilentReason::Declined))
        .count();
    let over = outcomes
        .iter()
        .filter(|k| **k == Kind::Silent(SilentReason::DeclineOverCap))
        .count();
    assert_eq!((declined, over), (CAP as usize, 30), "{outcomes:?}");
    assert_eq!(abandoned(&h), CAP);
    // 40 ACKs and the 10 DECLINEs applied; an over-cap DECLINE changes nothing.
    assert_eq!(h.journaled, 50);

    // The rest of the pool is still there for real clients: 100 - 10 abandoned - 30 held.
    for n in 0..60u8 {
        dora(&mut h, [0x02, 0xc0, 0, 0, 1, n]);
    }
    // With no free address left, the abandoned ones are reclaimed before their probation
    // ends, and the count goes down with them; then the pool is exhausted.
    for n in 0..CAP as u8 {
        dora(&mut h, [0x02, 0xc1, 0, 0, 1, n]);
    }
    assert_eq!(abandoned(&h), 0);
    assert_eq!(
        h.run(&discover(mac(200)), &direct(SERVER, mac(200))).kind,
        Kind::Drop(DropReason::PoolExhausted)
    );
}

#[test]
fn a_dry_pool_reclaims_abandoned_addresses_oldest_first() {
    // 10 addresses, of which DECLINEs may abandon 5.
    let mut s = lan();
    s.pools = vec![(ip("10.0.0.100"), ip("10.0.0.109"))];
    s.max_abandoned_percent = 50;
    let mut h = Harness::new(config(vec![s]));
    let mut held = Vec::new();
    for n in 0..10u8 {
        held.push(dora(&mut h, mac(n)).yiaddr());
    }
    assert_eq!(
        h.run(&discover(mac(100)), &direct(SERVER, mac(100))).kind,
        Kind::Drop(DropReason::PoolExhausted),
        "every address is bound and none is abandoned"
    );
    // Three clients decline, a minute apart, in an order unlike the addresses'.
    let order = [7usize, 2, 5];
    for &i in &order {
        let m = mac(u8::try_from(i).expect("small"));
        let out = h.run(&decline(m, SERVER, held[i]), &direct(SERVER, m));
        assert_eq!(out.kind, Kind::Silent(SilentReason::Declined));
        h.advance(60);
    }
    assert_eq!(abandoned(&h), 3);
    // New clients get them back in the order they were abandoned, long before the
    // probation (24 h) ends.
    for (k, &i) in order.iter().enumerate() {
        let m = [0x02, 0xee, 0, 0, 0, u8::try_from(k).expect("small")];
        let ack = dora(&mut h, m);
        assert_eq!(ack.yiaddr(), held[i], "reclaim #{k}");
        assert_eq!(h.record(held[i]).state, BindingState::Active);
        assert_eq!(abandoned(&h), u32::try_from(2 - k).expect("small"));
    }
    assert_eq!(
        h.run(&discover(mac(101)), &direct(SERVER, mac(101))).kind,
        Kind::Drop(DropReason::PoolExhausted)
    );
}

#[test]
fn decline_limits_per_mac_and_per_relay_drop_and_count() {
    assert_eq!(DropReason::DeclineRateMac.name(), "decline-rate-mac");
    assert_eq!(DropReason::DeclineRateRelay.name(), "decline-rate-relay");
    let mut lan = hundred();
    lan.max_abandoned_percent = 100;
    let mut relayed = remote(1);
    relayed.pools = vec![(ip("10.1.0.10"), ip("10.1.0.250"))];
    relayed.max_abandoned_percent = 100;
    let cfg = EngineConfig {
        decline_limits: DeclineLimits::DEFAULT,
        ..config(vec![lan, relayed])
    };
    assert_eq!(
        DeclineLimits::DEFAULT,
        DeclineLimits {
            mac: RateLimit {
                rate: 10,
                burst: 10
            },
            relay: RateLimit {
                rate: 100,
                burst: 100
            },
        }
    );
    let mut h = Harness::new(cfg);

    // Per MAC: DECLINEs of addresses it does not hold are refused and cost it nothing.
    let m = mac(7);
    let ing = direct(SERVER, m);
    for n in 0..30u8 {
        assert_eq!(
            h.run(&decline(m, SERVER, Ipv4Addr::new(10, 0, 0, 100 + n)), &ing)
                .kind,
            Kind::Drop(DropReason::DeclineNotHeld)
        );
    }
    // Ten an hour abandon; the eleventh is dropped and its lease stays the client's.
    for i in 0..10 {
        assert_eq!(
            dora_decline(&mut h, m),
            Kind::Silent(SilentReason::Declined),
            "DECLINE {i}"
        );
    }
    assert_eq!(
        dora_decline(&mut h, m),
        Kind::Drop(DropReason::DeclineRateMac)
    );
    assert_eq!(abandoned(&h), 10);
    // Another MAC has its own budget; this one gets a token back every 6 minutes.
    assert_eq!(
        dora_decline(&mut h, mac(8)),
        Kind::Silent(SilentReason::Declined)
    );
    h.advance(359);
    let held = h.run(&discover(m), &ing).yiaddr();
    assert_eq!(
        h.run(&decline(m, SERVER, held), &ing).kind,
        Kind::Drop(DropReason::DeclineRateMac)
    );
    h.advance(1);
    assert_eq!(
        h.run(&decline(m, SERVER, held), &ing).kind,
        Kind::Silent(SilentReason::Declined)
    );

    // Per relay: a hundred an hour from one relay, whatever the MACs.
    let mut rng = Rng::new(82);
    for i in 0..100 {
        let m = random_mac(&mut rng);
        assert_eq!(
            relayed_dora_decline(&mut h, m, GIADDR),
            Kind::Silent(SilentReason::Declined),
            "relayed DECLINE {i}"
        );
    }
    let m = random_mac(&mut rng);
    assert_eq!(
        relayed_dora_decline(&mut h, m, GIADDR),
        Kind::Drop(DropReason::DeclineRateRelay)
    );
    // Another relay (another IPv4 source) is counted on its own.
    let m = random_mac(&mut rng);
    assert_eq!(
        relayed_dora_decline(&mut h, m, Ipv4Addr::new(10, 1, 0, 2)),
        Kind::Silent(SilentReason::Declined)
    );
    assert_eq!(h.engine.store().table(TableId(1)).abandoned(), 101);
}

#[test]
fn the_cap_holds_after_the_table_is_reopened() {
    let cfg = || config(vec![hundred()]);
    let mut h = Harness::new(cfg());
    for n in 0..CAP as u8 {
        assert_eq!(
            dora_decline(&mut h, [0x02, 0xab, 0, 0, 0, n]),
            Kind::Silent(SilentReason::Declined)
        );
    }
    assert_eq!(abandoned(&h), CAP);
    // A crash: the records come back from the table and the journal, the count from them.
    let mut h = h.reopen(cfg());
    assert_eq!(abandoned(&h), CAP);
    for n in 0..5u8 {
        assert_eq!(
            dora_decline(&mut h, [0x02, 0xab, 0, 0, 1, n]),
            Kind::Silent(SilentReason::DeclineOverCap)
        );
    }
    assert_eq!(abandoned(&h), CAP);
    // A larger cap in the new config is taken at once.
    let mut s = hundred();
    s.max_abandoned_percent = 12;
    let mut h = h.reopen(config(vec![s]));
    for n in 0..3u8 {
        dora_decline(&mut h, [0x02, 0xab, 0, 0, 2, n]);
    }
    assert_eq!(abandoned(&h), 12);
}
