//! RFC 2131 scenarios against the real lease-mmap store, on a virtual clock.

#[expect(dead_code, reason = "the harness serves several test binaries")]
mod engine_support;

use std::net::Ipv4Addr;
use std::sync::Arc;

use dataplane::engine::{
    BROADCAST_MAC, CLIENT_PORT, Destination, DropReason, FailoverView, Ingress, Reservation,
    ReservationKey, SERVER_PORT, SilentReason,
};
use dataplane::wire::dhcpv4::{FLAG_BROADCAST, MessageType, OpCode, Repr};
use engine_support::*;
use lease_mmap::{BindingState, ClientKey, Lease, TableId, UnixTime};

fn lan_harness() -> Harness {
    Harness::new(config(vec![lan()]))
}

#[test]
fn full_dora_direct() {
    let mut h = lan_harness();
    let m = mac(1);
    let ing = direct(SERVER, m);
    let mut d = discover(m);
    d.options.parameter_request_list = Some(&[1, 3, 6, 15]);
    let offer = h.run(&d, &ing);
    assert_eq!(offer.kind, Kind::Offer);
    let addr = offer.yiaddr();
    assert!((ip("10.0.0.10")..=ip("10.0.0.20")).contains(&addr));
    let r = offer.repr();
    assert_eq!(r.op, OpCode::Reply);
    assert_eq!(r.xid, d.xid);
    assert_eq!(r.chaddr, d.chaddr);
    assert_eq!(r.ciaddr, Ipv4Addr::UNSPECIFIED);
    assert!(r.is_dhcp);
    let o = offer.opts();
    assert_eq!(o.server_id, Some(SERVER));
    assert_eq!(o.subnet_mask, Some(ip("255.255.255.0")));
    assert_eq!(o.lease_time, Some(3600));
    assert_eq!(o.renewal_time, Some(1800));
    assert_eq!(o.rebinding_time, Some(3150));
    assert_eq!(offer.router, Some(vec![10, 0, 0, 1]));
    assert_eq!(offer.dns, Some(vec![10, 0, 0, 53, 10, 0, 0, 54]));
    assert_eq!(offer.domain_name, Some(b"example.net".to_vec()));
    // Unicast to yiaddr at chaddr: no broadcast flag, no ciaddr, no relay.
    assert_eq!(
        offer.dest(),
        Destination {
            mac: m,
            ip: addr,
            port: CLIENT_PORT
        }
    );
    assert_eq!(offer.server_ip, Some(SERVER));
    // Offers are held, not journaled.
    assert!(offer.commit.is_none());
    let held = h.record(addr);
    assert_eq!(held.state, BindingState::Offered);
    assert_eq!(held.ends, UnixTime(T0 + 30));

    h.advance(2);
    let ack = h.run(&select(m, SERVER, addr), &ing);
    assert_eq!(ack.kind, Kind::Ack);
    assert_eq!(ack.yiaddr(), addr);
    assert_eq!(ack.opts().lease_time, Some(3600));
    assert_eq!(
        ack.dest(),
        Destination {
            mac: m,
            ip: addr,
            port: CLIENT_PORT
        }
    );
    let c = ack.commit.expect("ACK carries its commit");
    assert_eq!(c.table, TableId(0));
    assert_eq!(c.lease.state, BindingState::Active);
    assert_eq!(c.lease.ends, UnixTime(T0 + 2 + 3600));
    assert_eq!(c.lease.cltt, UnixTime(T0 + 2));
    assert_eq!(&c.lease.chaddr[..6], &m);
    assert_eq!(h.record(addr), c.lease);
    assert_eq!(h.journaled, 1);

    // A second DISCOVER from the bound client gets the same address, without a write.
    let again = h.run(&discover(m), &ing);
    assert_eq!(again.yiaddr(), addr);
    assert_eq!(h.record(addr).state, BindingState::Active);
}

#[test]
fn broadcast_flag_and_prl() {
    let mut h = lan_harness();
    let m = mac(2);
    let mut d = discover(m);
    d.flags = FLAG_BROADCAST;
    d.options.parameter_request_list = Some(&[1, 3, 28]);
    let offer = h.run(&d, &direct(SERVER, m));
    assert_eq!(offer.dest(), Destination::BROADCAST);
    assert_eq!(offer.dest().mac, BROADCAST_MAC);
    assert_eq!(offer.repr().flags, FLAG_BROADCAST);
    assert!(offer.router.is_some());
    assert_eq!(offer.dns, None);
    assert_eq!(offer.domain_name, None);
    assert_eq!(offer.opts().broadcast_addr, Some(ip("10.0.0.255")));
    // Always present, requested or not.
    assert!(offer.opts().lease_time.is_some());
    assert!(offer.opts().renewal_time.is_some());
    assert!(offer.opts().rebinding_time.is_some());
    assert!(offer.opts().subnet_mask.is_some());
    // No option 55: the configuration options all go out, 28 does not.
    let offer = h.run(&discover(mac(3)), &direct(SERVER, mac(3)));
    assert!(offer.router.is_some() && offer.dns.is_some() && offer.domain_name.is_some());
    assert_eq!(offer.opts().broadcast_addr, None);
}

#[test]
fn client_id_and_relay_info_echoed() {
    let mut h = Harness::new(config(vec![lan(), remote(1)]));
    let m = mac(4);
    let cid: &[u8] = &[0xff, 1, 2, 3, 4];
    let ri: &[u8] = &[1, 2, b'p', b'1', 2, 3, 9, 9, 9];
    let mut d = discover(m);
    d.giaddr = ip("10.1.0.1");
    d.hops = 1;
    d.options.client_id = Some(cid);
    d.options.relay_agent_info = Some(ri);
    let offer = h.run(&d, &via_relay(SERVER, ip("10.1.0.1")));
    assert_eq!(offer.client_id.as_deref(), Some(cid));
    assert_eq!(offer.relay_agent_info.as_deref(), Some(ri));
    assert_eq!(offer.repr().giaddr, ip("10.1.0.1"));
    assert_eq!(offer.repr().hops, 0);
    let addr = offer.yiaddr();
    // Bound by client-id: a request with the same client-id but another MAC is the same client.
    let mut r = select(mac(99), SERVER, addr);
    r.giaddr = ip("10.1.0.1");
    r.options.client_id = Some(cid);
    r.options.relay_agent_info = Some(ri);
    let ack = h.run(&r, &via_relay(SERVER, ip("10.1.0.1")));
    assert_eq!(ack.kind, Kind::Ack);
    assert_eq!(ack.lease().client_id.as_bytes(), cid);
    assert_eq!(ack.client_id.as_deref(), Some(cid));
    assert_eq!(ack.relay_agent_info.as_deref(), Some(ri));
}

#[test]
fn renewing_and_rebinding_extend() {
    let mut h = lan_harness();
    let m = mac(5);
    let addr = dora(&mut h, m).yiaddr();

    // RENEWING: unicast from the client (here through a router: src MAC is the router's).
    h.advance(1800);
    let router_mac = [0x02, 0xaa, 0, 0, 0, 1];
    let ing = Ingress {
        if_addr: SERVER,
        src_mac: router_mac,
        src_ip: addr,
    };
    let ack = h.run(&renew(m, addr), &ing);
    assert_eq!(ack.kind, Kind::Ack);
    assert_eq!(ack.yiaddr(), addr);
    assert_eq!(ack.repr().ciaddr, addr);
    assert_eq!(ack.lease().ends, UnixTime(T0 + 1800 + 3600));
    assert_eq!(
        ack.dest(),
        Destination {
            mac: router_mac,
            ip: addr,
            port: CLIENT_PORT
        }
    );
    assert_eq!(ack.opts().server_id, Some(SERVER));

    // REBINDING: broadcast, still answered at ciaddr.
    h.advance(3200);
    let mut rb = renew(m, addr);
    rb.flags = FLAG_BROADCAST;
    let ack = h.run(&rb, &direct(SERVER, m));
    assert_eq!(ack.kind, Kind::Ack);
    assert_eq!(ack.lease().ends, UnixTime(T0 + 5000 + 3600));
    assert_eq!(
        ack.dest(),
        Destination {
            mac: m,
            ip: addr,
            port: CLIENT_PORT
        }
    );

    // A renewing client whose lease ran out but whose address nobody took is renewed.
    h.advance(10_000);
    let ack = h.run(&renew(m, addr), &direct(SERVER, m));
    assert_eq!(ack.kind, Kind::Ack);
}

#[test]
fn renewing_naks_and_silence() {
    let mut h = lan_harness();
    let a = mac(6);
    let b = mac(7);
    let addr_a = dora(&mut h, a).yiaddr();
    // B renews A's address: NAK, broadcast (no relay).
    let nak = h.run(&renew(b, addr_a), &direct(SERVER, b));
    assert_eq!(nak.kind, Kind::Nak);
    assert_eq!(nak.dest(), Destination::BROADCAST);
    assert_eq!(nak.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(nak.opts().lease_time, None);
    assert_eq!(nak.opts().server_id, Some(SERVER));
    assert!(nak.message.is_some());
    assert!(nak.commit.is_none());
    // A renews an address of a subnet we serve but that is not its interface's... (no
    // scope at all for 192.168.1.5: falls back to the interface scope → wrong subnet).
    let nak = h.run(&renew(a, ip("192.168.1.5")), &direct(SERVER, a));
    assert_eq!(nak.kind, Kind::Nak);
    // A client we never heard of renews a free address: silent.
    let c = mac(8);
    let s = h.run(&renew(c, ip("10.0.0.19")), &direct(SERVER, c));
    assert_eq!(s.kind, Kind::Silent(SilentReason::UnknownClient));
    // A's lease is untouched.
    assert_eq!(h.record(addr_a).state, BindingState::Active);
}

#[test]
fn init_reboot_cases() {
    let mut h = Harness::new(config(vec![lan(), remote(1)]));
    let a = mac(9);
    let addr = dora(&mut h, a).yiaddr();
    h.advance(100);
    // Good: the client's own address.
    let ack = h.run(&init_reboot(a, addr), &direct(SERVER, a));
    assert_eq!(ack.kind, Kind::Ack);
    assert_eq!(ack.lease().ends, UnixTime(T0 + 100 + 3600));
    assert_eq!(
        ack.dest(),
        Destination {
            mac: a,
            ip: addr,
            port: CLIENT_PORT
        }
    );
    // Wrong subnet: the client moved to the 10.1 link (relayed) but asks for its LAN address.
    let mut r = init_reboot(a, addr);
    r.giaddr = ip("10.1.0.1");
    let nak = h.run(&r, &via_relay(SERVER, ip("10.1.0.1")));
    assert_eq!(nak.kind, Kind::Nak);
    assert_eq!(
        nak.message.as_deref(),
        Some(&b"address not on this network"[..])
    );
    // Through a relay the NAK goes to giaddr with the broadcast bit set (§4.3.2).
    assert_eq!(
        nak.dest(),
        Destination {
            mac: RELAY_MAC,
            ip: ip("10.1.0.1"),
            port: SERVER_PORT
        }
    );
    assert_ne!(nak.repr().flags & FLAG_BROADCAST, 0);
    // Wrong subnet, direct: broadcast.
    let nak = h.run(&init_reboot(a, ip("10.9.0.5")), &direct(SERVER, a));
    assert_eq!(nak.kind, Kind::Nak);
    assert_eq!(nak.dest(), Destination::BROADCAST);
    // Bound to another client.
    let b = mac(10);
    let nak = h.run(&init_reboot(b, addr), &direct(SERVER, b));
    assert_eq!(nak.kind, Kind::Nak);
    // Known client asking for an address that is not its own.
    let other = if addr == ip("10.0.0.20") {
        ip("10.0.0.19")
    } else {
        ip("10.0.0.20")
    };
    let nak = h.run(&init_reboot(a, other), &direct(SERVER, a));
    assert_eq!(nak.kind, Kind::Nak);
    // Unknown client, free address in the subnet: silent (§4.3.2).
    let s = h.run(&init_reboot(b, other), &direct(SERVER, b));
    assert_eq!(s.kind, Kind::Silent(SilentReason::UnknownClient));
    assert_eq!(s.commit, None);
    // INIT-REBOOT without option 50 is malformed.
    let bad = h.run(&request(Some(MessageType::Request), b), &direct(SERVER, b));
    assert_eq!(bad.kind, Kind::Drop(DropReason::MissingRequestedIp));
}

#[test]
fn request_for_another_server_releases_the_offer() {
    let mut h = lan_harness();
    let m = mac(11);
    let ing = direct(SERVER, m);
    let addr = h.run(&discover(m), &ing).yiaddr();
    assert_eq!(h.record(addr).state, BindingState::Offered);
    let s = h.run(&select(m, ip("10.0.0.2"), addr), &ing);
    assert_eq!(s.kind, Kind::Silent(SilentReason::OtherServerSelected));
    assert!(s.commit.is_none());
    let rec = h.record(addr);
    assert_eq!(rec.state, BindingState::Free);
    assert!(rec.client_key().is_none());
    // Our later REQUEST for it still works (the address is free).
    let ack = h.run(&select(m, SERVER, addr), &ing);
    assert_eq!(ack.kind, Kind::Ack);
}

#[test]
fn selecting_naks() {
    let mut h = lan_harness();
    let a = mac(12);
    let b = mac(13);
    let addr_a = dora(&mut h, a).yiaddr();
    // B asks for A's address.
    let nak = h.run(&select(b, SERVER, addr_a), &direct(SERVER, b));
    assert_eq!(nak.kind, Kind::Nak);
    assert_eq!(nak.dest(), Destination::BROADCAST);
    // B asks for an address outside the subnet.
    let nak = h.run(&select(b, SERVER, ip("172.16.0.1")), &direct(SERVER, b));
    assert_eq!(nak.kind, Kind::Nak);
    // B asks for an address in the subnet but outside every pool.
    let nak = h.run(&select(b, SERVER, ip("10.0.0.200")), &direct(SERVER, b));
    assert_eq!(nak.kind, Kind::Nak);
    // SELECTING without option 50.
    let mut r = select(b, SERVER, addr_a);
    r.options.requested_ip = None;
    assert_eq!(
        h.run(&r, &direct(SERVER, b)).kind,
        Kind::Drop(DropReason::MissingRequestedIp)
    );
    // Still A's.
    assert!(h.record(addr_a).is_for(&ClientKey::HwAddr {
        htype: 1,
        chaddr: &a
    }));
}

#[test]
fn release_then_rediscover() {
    let mut h = lan_harness();
    let m = mac(14);
    let addr = dora(&mut h, m).yiaddr();
    h.advance(60);
    let s = h.run(&release(m, SERVER, addr), &direct(SERVER, m));
    assert_eq!(s.kind, Kind::Silent(SilentReason::Released));
    let c = s.commit.expect("RELEASE is journaled");
    assert_eq!(c.lease.state, BindingState::Released);
    assert_eq!(c.lease.ends, UnixTime(T0 + 60));
    assert_eq!(h.journaled, 2);
    // A release from someone else, or for another server, changes nothing.
    let s = h.run(&release(mac(15), SERVER, addr), &direct(SERVER, mac(15)));
    assert_eq!(s.kind, Kind::Silent(SilentReason::NotBound));
    // The client gets its previous address back.
    let offer = h.run(&discover(m), &direct(SERVER, m));
    assert_eq!(offer.yiaddr(), addr);
    let ack = h.run(&select(m, SERVER, addr), &direct(SERVER, m));
    assert_eq!(ack.kind, Kind::Ack);
    let s = h.run(&release(m, ip("10.0.0.2"), addr), &direct(SERVER, m));
    assert_eq!(s.kind, Kind::Drop(DropReason::OtherServerId));
    assert_eq!(h.record(addr).state, BindingState::Active);
    // RELEASE without ciaddr.
    let mut r = release(m, SERVER, addr);
    r.ciaddr = Ipv4Addr::UNSPECIFIED;
    assert_eq!(
        h.run(&r, &direct(SERVER, m)).kind,
        Kind::Drop(DropReason::MissingCiaddr)
    );
}

#[test]
fn release_and_decline_need_our_server_id() {
    // RFC 2131 §4.4.4 / §4.4.6: RELEASE and DECLINE carry option 54. Without it, or naming
    // another server, they are dropped and counted, and the lease stays (review of #13:
    // anyone who knew a client's chaddr could release its lease).
    let mut h = lan_harness();
    let m = mac(19);
    let addr = dora(&mut h, m).yiaddr();
    let ing = direct(SERVER, m);
    let mut r = release(m, SERVER, addr);
    r.options.server_id = None;
    assert_eq!(
        h.run(&r, &ing).kind,
        Kind::Drop(DropReason::MissingServerId)
    );
    assert_eq!(
        h.run(&release(m, ip("10.0.0.2"), addr), &ing).kind,
        Kind::Drop(DropReason::OtherServerId)
    );
    let mut r = decline(m, SERVER, addr);
    r.options.server_id = None;
    assert_eq!(
        h.run(&r, &ing).kind,
        Kind::Drop(DropReason::MissingServerId)
    );
    assert_eq!(
        h.run(&decline(m, ip("10.0.0.2"), addr), &ing).kind,
        Kind::Drop(DropReason::OtherServerId)
    );
    assert_eq!(h.record(addr).state, BindingState::Active);
    assert_eq!(h.journaled, 1);
    // Naming us, it is released.
    assert_eq!(
        h.run(&release(m, SERVER, addr), &ing).kind,
        Kind::Silent(SilentReason::Released)
    );
}

fn one_address_lan(probation: u32) -> Harness {
    let mut s = lan();
    s.pools = vec![(ip("10.0.0.10"), ip("10.0.0.10"))];
    s.decline_probation = probation;
    // The whole pool may be abandoned (10 % of one address is none: engine_abuse.rs).
    s.max_abandoned_percent = 100;
    Harness::new(config(vec![s]))
}

#[test]
fn decline_abandons_until_probation_ends() {
    // Three addresses, so that the pool is never dry here: a dry pool reclaims abandoned
    // addresses early (engine_abuse.rs).
    let mut s = lan();
    s.pools = vec![(ip("10.0.0.10"), ip("10.0.0.12"))];
    s.decline_probation = 600;
    s.max_abandoned_percent = 100;
    let mut h = Harness::new(config(vec![s]));
    let a = mac(16);
    let addr = dora(&mut h, a).yiaddr();
    assert_eq!(addr, ip("10.0.0.10"));
    let s = h.run(&decline(a, SERVER, addr), &direct(SERVER, a));
    assert_eq!(s.kind, Kind::Silent(SilentReason::Declined));
    let c = s.commit.expect("DECLINE is journaled");
    assert_eq!(c.lease.state, BindingState::Abandoned);
    assert_eq!(c.lease.ends, UnixTime(T0 + 600));
    assert!(c.lease.client_key().is_none());
    // Nobody gets it during probation, not even by asking for it.
    let asking = |h: &mut Harness, n: u8| {
        let m = mac(n);
        let mut d = discover(m);
        d.options.requested_ip = Some(addr);
        let offer = h.run(&d, &direct(SERVER, m));
        assert_eq!(offer.kind, Kind::Offer);
        offer.yiaddr()
    };
    assert_ne!(asking(&mut h, 17), addr);
    assert_ne!(
        h.run(&discover(a), &direct(SERVER, a)).yiaddr(),
        addr,
        "not even the client that declined it"
    );
    assert_eq!(
        h.run(&select(mac(17), SERVER, addr), &direct(SERVER, mac(17)))
            .kind,
        Kind::Nak
    );
    h.advance(599);
    assert_ne!(asking(&mut h, 18), addr);
    // Reusable once the probation is over.
    h.advance(1);
    assert_eq!(asking(&mut h, 19), addr);
    // DECLINE without option 50 is malformed; a decline of someone else's address is ignored.
    let mut r = decline(a, SERVER, addr);
    r.options.requested_ip = None;
    assert_eq!(
        h.run(&r, &direct(SERVER, a)).kind,
        Kind::Drop(DropReason::MissingRequestedIp)
    );
    assert_eq!(
        h.run(&decline(a, SERVER, addr), &direct(SERVER, a)).kind,
        Kind::Drop(DropReason::DeclineNotHeld)
    );
}

#[test]
fn decline_needs_the_clients_active_lease() {
    // #13: DISCOVER then DECLINE from random MACs abandoned a pool two packets an address.
    // Only the client holding an ACKed, unexpired ACTIVE lease may decline it.
    let mut h = lan_harness();
    let a = mac(90);
    let ing = direct(SERVER, a);
    let offered = h.run(&discover(a), &ing).yiaddr();
    assert_eq!(
        h.run(&decline(a, SERVER, offered), &ing).kind,
        Kind::Drop(DropReason::DeclineNotHeld)
    );
    assert_eq!(h.record(offered).state, BindingState::Offered);
    // Someone else's lease, a free address, an address outside the scope.
    let addr = h.run(&select(a, SERVER, offered), &ing).yiaddr();
    let b = mac(91);
    for (who, what) in [(b, addr), (a, ip("10.0.0.19")), (a, ip("10.9.0.1"))] {
        assert_eq!(
            h.run(&decline(who, SERVER, what), &direct(SERVER, who))
                .kind,
            Kind::Drop(DropReason::DeclineNotHeld),
            "{who:?} declining {what}"
        );
    }
    assert_eq!(h.record(addr).state, BindingState::Active);
    assert_eq!(h.journaled, 1);
    // An expired lease is no longer held.
    h.advance(3600);
    assert_eq!(
        h.run(&decline(a, SERVER, addr), &ing).kind,
        Kind::Drop(DropReason::DeclineNotHeld)
    );
    // The holder of a live lease declines it.
    let c = mac(92);
    let addr = dora(&mut h, c).yiaddr();
    let s = h.run(&decline(c, SERVER, addr), &direct(SERVER, c));
    assert_eq!(s.kind, Kind::Silent(SilentReason::Declined));
    assert_eq!(h.record(addr).state, BindingState::Abandoned);
}

#[test]
fn inform_gets_configuration_only() {
    let mut h = lan_harness();
    let m = mac(18);
    let mut r = request(Some(MessageType::Inform), m);
    r.ciaddr = ip("10.0.0.77");
    let ack = h.run(&r, &direct(SERVER, m));
    assert_eq!(ack.kind, Kind::Ack);
    assert_eq!(ack.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(ack.repr().ciaddr, ip("10.0.0.77"));
    assert_eq!(ack.opts().lease_time, None);
    assert_eq!(ack.opts().renewal_time, None);
    assert_eq!(ack.opts().rebinding_time, None);
    assert_eq!(ack.opts().server_id, Some(SERVER));
    assert_eq!(ack.opts().subnet_mask, Some(ip("255.255.255.0")));
    assert!(ack.router.is_some() && ack.dns.is_some());
    assert_eq!(
        ack.dest(),
        Destination {
            mac: m,
            ip: ip("10.0.0.77"),
            port: CLIENT_PORT
        }
    );
    assert!(ack.commit.is_none());
    assert_eq!(h.journaled, 0);
}

/// `config(scopes)` trusting the relay at 10.1.0.1.
fn trusting(scopes: Vec<dataplane::engine::ScopeConfig>) -> dataplane::engine::EngineConfig {
    let mut c = config(scopes);
    c.trusted_relays = vec![(ip("10.1.0.1"), 32)];
    c
}

#[test]
fn subnet_selection_order() {
    let mut h = Harness::new(trusting(vec![lan(), remote(1), remote(2)]));
    let in_net = |a: Ipv4Addr, n: u8| a.octets()[..2] == [10, n];

    // giaddr.
    let mut d = discover(mac(20));
    d.giaddr = ip("10.1.0.1");
    let offer = h.run(&d, &via_relay(SERVER, ip("10.1.0.1")));
    assert!(in_net(offer.yiaddr(), 1), "{offer:?}");
    assert_eq!(
        offer.dest(),
        Destination {
            mac: RELAY_MAC,
            ip: ip("10.1.0.1"),
            port: SERVER_PORT
        }
    );
    assert_eq!(offer.server_ip, Some(SERVER));

    // Link selection (RFC 3527) beats giaddr.
    let ri: &[u8] = &[5, 4, 10, 2, 0, 0];
    let mut d = discover(mac(21));
    d.giaddr = ip("10.1.0.1");
    d.options.relay_agent_info = Some(ri);
    let offer = h.run(&d, &via_relay(SERVER, ip("10.1.0.1")));
    assert!(in_net(offer.yiaddr(), 2), "{offer:?}");
    assert_eq!(offer.relay_agent_info.as_deref(), Some(ri));
    assert_eq!(offer.dest().ip, ip("10.1.0.1"));

    // Link selection without giaddr is ignored: the interface decides.
    let mut d = discover(mac(22));
    d.options.relay_agent_info = Some(ri);
    let offer = h.run(&d, &direct(SERVER, mac(22)));
    assert!(in_net(offer.yiaddr(), 0), "{offer:?}");

    // Option 118 (RFC 3011) from a trusted relay beats giaddr, and is echoed.
    let mut d = discover(mac(23));
    d.giaddr = ip("10.1.0.1");
    d.options.subnet_selection = Some(ip("10.2.0.77"));
    let offer = h.run(&d, &via_relay(SERVER, ip("10.1.0.1")));
    assert!(in_net(offer.yiaddr(), 2), "{offer:?}");
    assert_eq!(offer.opts().subnet_selection, Some(ip("10.2.0.77")));
    let mut d = discover(mac(24));
    d.giaddr = ip("10.1.0.1");
    d.options.subnet_selection = Some(ip("10.2.0.0"));
    assert!(in_net(
        h.run(&d, &via_relay(SERVER, ip("10.1.0.1"))).yiaddr(),
        2
    ));

    // The interface.
    let offer = h.run(&discover(mac(25)), &direct(ip("10.2.0.1"), mac(25)));
    assert!(in_net(offer.yiaddr(), 2));
    assert_eq!(offer.opts().server_id, Some(ip("10.2.0.1")));

    // Nothing configured there.
    let mut d = discover(mac(26));
    d.giaddr = ip("10.7.0.1");
    assert_eq!(
        h.run(&d, &via_relay(SERVER, ip("10.7.0.1"))).kind,
        Kind::Drop(DropReason::NoSubnet)
    );
    let mut d = discover(mac(26));
    d.giaddr = ip("10.1.0.1");
    d.options.subnet_selection = Some(ip("10.7.0.0"));
    assert_eq!(
        h.run(&d, &via_relay(SERVER, ip("10.1.0.1"))).kind,
        Kind::Drop(DropReason::NoSubnet)
    );
    assert_eq!(
        h.run(&discover(mac(26)), &direct(ip("192.168.0.1"), mac(26)))
            .kind,
        Kind::Drop(DropReason::NoSubnet)
    );
}

#[test]
fn configured_server_id_is_used() {
    let mut cfg = config(vec![lan()]);
    cfg.server_id = Some(ip("192.0.2.1"));
    let mut h = Harness::new(cfg);
    let m = mac(27);
    let offer = h.run(&discover(m), &direct(SERVER, m));
    assert_eq!(offer.opts().server_id, Some(ip("192.0.2.1")));
    assert_eq!(offer.server_ip, Some(ip("192.0.2.1")));
    // A REQUEST naming the interface address is for "another server".
    let s = h.run(&select(m, SERVER, offer.yiaddr()), &direct(SERVER, m));
    assert_eq!(s.kind, Kind::Silent(SilentReason::OtherServerSelected));
    assert_eq!(
        h.run(&discover(m), &direct(Ipv4Addr::UNSPECIFIED, m)).kind,
        Kind::Drop(DropReason::NoSubnet)
    );
}

fn reserved_lan() -> Harness {
    let mut s = lan();
    s.reservations = vec![
        Reservation {
            key: ReservationKey::Mac(mac(30)),
            address: ip("10.0.0.100"),
        },
        Reservation {
            key: ReservationKey::ClientId(vec![0, b'c', b'i', b'd']),
            address: ip("10.0.0.15"),
        },
    ];
    let mut r = remote(1);
    r.reservations = vec![
        Reservation {
            key: ReservationKey::CircuitId(b"port-7".to_vec()),
            address: ip("10.1.0.50"),
        },
        Reservation {
            key: ReservationKey::RemoteId(b"cpe-9".to_vec()),
            address: ip("10.1.0.51"),
        },
    ];
    Harness::new(trusting(vec![s, r]))
}

#[test]
fn reservations_by_mac_client_id_circuit_and_remote_id() {
    let mut h = reserved_lan();
    // MAC, outside the pool.
    let m = mac(30);
    let ack = dora(&mut h, m);
    assert_eq!(ack.yiaddr(), ip("10.0.0.100"));
    // Client-id, inside the pool (so never handed out dynamically).
    let cid: &[u8] = &[0, b'c', b'i', b'd'];
    let mut d = discover(mac(31));
    d.options.client_id = Some(cid);
    let offer = h.run(&d, &direct(SERVER, mac(31)));
    assert_eq!(offer.yiaddr(), ip("10.0.0.15"));
    // Circuit-id via the relay.
    let ri: &[u8] = &[1, 6, b'p', b'o', b'r', b't', b'-', b'7'];
    let mut d = discover(mac(32));
    d.giaddr = ip("10.1.0.1");
    d.options.relay_agent_info = Some(ri);
    let offer = h.run(&d, &via_relay(SERVER, ip("10.1.0.1")));
    assert_eq!(offer.yiaddr(), ip("10.1.0.50"));
    let mut r = select(mac(32), SERVER, ip("10.1.0.50"));
    r.giaddr = ip("10.1.0.1");
    r.options.relay_agent_info = Some(ri);
    assert_eq!(
        h.run(&r, &via_relay(SERVER, ip("10.1.0.1"))).kind,
        Kind::Ack
    );
    // Remote-id.
    let ri: &[u8] = &[2, 5, b'c', b'p', b'e', b'-', b'9'];
    let mut d = discover(mac(33));
    d.giaddr = ip("10.1.0.1");
    d.options.relay_agent_info = Some(ri);
    assert_eq!(
        h.run(&d, &via_relay(SERVER, ip("10.1.0.1"))).yiaddr(),
        ip("10.1.0.51")
    );

    // Others never get a reserved address: not by asking, not by selecting.
    let o = mac(34);
    let mut d = discover(o);
    d.options.requested_ip = Some(ip("10.0.0.15"));
    let offer = h.run(&d, &direct(SERVER, o));
    assert_ne!(offer.yiaddr(), ip("10.0.0.15"));
    assert_eq!(
        h.run(&select(o, SERVER, ip("10.0.0.15")), &direct(SERVER, o))
            .kind,
        Kind::Nak
    );
    assert_eq!(
        h.run(&select(o, SERVER, ip("10.0.0.100")), &direct(SERVER, o))
            .kind,
        Kind::Nak
    );
    // The reserved client asking for a dynamic address is NAKed toward its reservation.
    assert_eq!(
        h.run(&init_reboot(m, offer.yiaddr()), &direct(SERVER, m))
            .kind,
        Kind::Nak
    );
}

#[test]
fn exclusions_never_handed_out_and_exhaustion_drops() {
    let mut s = lan();
    s.exclude = vec![(ip("10.0.0.12"), ip("10.0.0.18"))];
    let mut h = Harness::new(config(vec![s]));
    let mut got = Vec::new();
    for n in 0..4 {
        got.push(dora(&mut h, mac(40 + n)).yiaddr());
    }
    got.sort();
    assert_eq!(
        got,
        [
            ip("10.0.0.10"),
            ip("10.0.0.11"),
            ip("10.0.0.19"),
            ip("10.0.0.20")
        ]
    );
    let m = mac(50);
    let out = h.run(&discover(m), &direct(SERVER, m));
    assert_eq!(out.kind, Kind::Drop(DropReason::PoolExhausted));
    assert_eq!(DropReason::PoolExhausted.name(), "pool-exhausted");
    // Asking for an excluded address does not help.
    let mut d = discover(m);
    d.options.requested_ip = Some(ip("10.0.0.13"));
    assert_eq!(
        h.run(&d, &direct(SERVER, m)).kind,
        Kind::Drop(DropReason::PoolExhausted)
    );
    // Leases run out: the pool refills.
    h.advance(3601);
    assert_eq!(h.run(&discover(m), &direct(SERVER, m)).kind, Kind::Offer);
}

#[test]
fn offer_hold_expires() {
    let mut h = one_address_lan(600);
    let (a, b) = (mac(51), mac(52));
    let offer = h.run(&discover(a), &direct(SERVER, a));
    assert_eq!(offer.yiaddr(), ip("10.0.0.10"));
    h.advance(29);
    assert_eq!(
        h.run(&discover(b), &direct(SERVER, b)).kind,
        Kind::Drop(DropReason::PoolExhausted)
    );
    h.advance(1);
    let offer_b = h.run(&discover(b), &direct(SERVER, b));
    assert_eq!(offer_b.yiaddr(), ip("10.0.0.10"));
    // A comes back too late: NAK. B gets it.
    assert_eq!(
        h.run(&select(a, SERVER, ip("10.0.0.10")), &direct(SERVER, a))
            .kind,
        Kind::Nak
    );
    assert_eq!(
        h.run(&select(b, SERVER, ip("10.0.0.10")), &direct(SERVER, b))
            .kind,
        Kind::Ack
    );
}

#[test]
fn bootp_from_reservation() {
    let mut h = reserved_lan();
    let m = mac(30);
    let mut r = request(None, m);
    r.flags = FLAG_BROADCAST;
    let reply = h.run(&r, &direct(SERVER, m));
    assert_eq!(reply.kind, Kind::BootReply);
    assert_eq!(reply.yiaddr(), ip("10.0.0.100"));
    assert_eq!(reply.dest(), Destination::BROADCAST);
    let o = reply.opts();
    assert_eq!(o.message_type, None);
    assert_eq!(o.server_id, None);
    assert_eq!(o.lease_time, None);
    assert_eq!(o.subnet_mask, Some(ip("255.255.255.0")));
    assert!(reply.router.is_some() && reply.dns.is_some());
    assert_eq!(reply.domain_name, None);
    let c = reply.commit.expect("BOOTP binding is journaled");
    assert_eq!(c.lease.state, BindingState::Active);
    assert_eq!(c.lease.ends, UnixTime(u32::MAX));
    // Asked again: same answer, nothing new to journal; unicast to yiaddr without the flag.
    h.advance(100);
    let again = h.run(&request(None, m), &direct(SERVER, m));
    assert_eq!(again.yiaddr(), ip("10.0.0.100"));
    assert!(again.commit.is_none());
    assert_eq!(
        again.dest(),
        Destination {
            mac: m,
            ip: ip("10.0.0.100"),
            port: CLIENT_PORT
        }
    );
    // Plain RFC 951 (no magic cookie): no options at all.
    let mut plain = request(None, m);
    plain.is_dhcp = false;
    let reply = h.run(&plain, &direct(SERVER, m));
    assert!(!reply.repr().is_dhcp);
    assert_eq!(reply.opts().subnet_mask, None);
    assert_eq!(reply.router, None);
    // No reservation: no answer.
    let n = mac(60);
    assert_eq!(
        h.run(&request(None, n), &direct(SERVER, n)).kind,
        Kind::Silent(SilentReason::BootpWithoutReservation)
    );
}

#[test]
fn malformed_requests_are_dropped() {
    let mut h = lan_harness();
    let m = mac(61);
    let ing = direct(SERVER, m);
    let mut r = discover(m);
    r.op = OpCode::Reply;
    assert_eq!(h.run(&r, &ing).kind, Kind::Drop(DropReason::NotBootRequest));
    let mut r = discover(m);
    r.hlen = 17;
    assert_eq!(h.run(&r, &ing).kind, Kind::Drop(DropReason::BadHlen));
    let mut r = discover(m);
    r.hlen = 0;
    assert_eq!(
        h.run(&r, &ing).kind,
        Kind::Drop(DropReason::NoClientIdentity)
    );
    // Option 82 is read only from a trusted relay: there, overrun sub-options are dropped;
    // from a client it is not read at all.
    let mut r = discover(m);
    r.options.relay_agent_info = Some(&[1, 9, 0]);
    assert_eq!(h.run(&r, &ing).kind, Kind::Offer);
    let mut h = Harness::new(trusting(vec![lan(), remote(1)]));
    r.giaddr = ip("10.1.0.1");
    assert_eq!(
        h.run(&r, &via_relay(SERVER, ip("10.1.0.1"))).kind,
        Kind::Drop(DropReason::BadRelayAgentInfo)
    );
    for (mt, why) in [
        (MessageType::Offer, DropReason::ServerMessageType),
        (MessageType::Ack, DropReason::ServerMessageType),
        (MessageType::Nak, DropReason::ServerMessageType),
        (MessageType::Other(99), DropReason::UnknownMessageType),
    ] {
        assert_eq!(h.run(&request(Some(mt), m), &ing).kind, Kind::Drop(why));
    }
    // Every reason has a distinct name.
    let mut names: Vec<&str> = DropReason::ALL.iter().map(|r| r.name()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), DropReason::ALL.len());
    let mut names: Vec<&str> = SilentReason::ALL.iter().map(|r| r.name()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), SilentReason::ALL.len());
}

#[test]
fn non_ethernet_client_gets_broadcast() {
    let mut h = lan_harness();
    let mut r = discover(mac(62));
    r.htype = 32;
    r.hlen = 0;
    r.options.client_id = Some(&[0xff, 0, 0, 0, 1, 0, 1]);
    let offer = h.run(&r, &direct(SERVER, mac(62)));
    assert_eq!(offer.kind, Kind::Offer);
    assert_eq!(offer.dest(), Destination::BROADCAST);
}

/// A failover view that refuses one client and caps lease times at 600 s.
#[derive(Debug)]
struct Capped;

impl FailoverView for Capped {
    fn may_serve(
        &self,
        _: TableId,
        c: &ClientKey<'_>,
        _: Option<MessageType>,
        _: &Repr<'_>,
    ) -> bool {
        !matches!(c, ClientKey::HwAddr { chaddr, .. } if chaddr[5] == 99)
    }
    fn may_allocate(&self, _: TableId, l: &Lease, _: UnixTime) -> bool {
        l.state != BindingState::Backup
    }
    fn lease_time(&self, _: TableId, _: &Lease, desired: u32, _: UnixTime) -> u32 {
        desired.min(600)
    }
}

#[test]
fn failover_seam_is_consulted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(vec![lan()]);
    let (store, _, _) = lease_mmap::Store::open(
        dir.path(),
        &cfg.table_specs(),
        1,
        lease_mmap::Durability::Async,
    )
    .unwrap();
    let engine = dataplane::engine::Engine::new(cfg, Arc::new(store))
        .unwrap()
        .with_failover(Arc::new(Capped));
    let mut w = engine.worker(0, 1);
    let now = UnixTime(T0);
    let d = engine.decide(&mut w, &discover(mac(99)), &direct(SERVER, mac(99)), now);
    assert!(matches!(
        d,
        dataplane::engine::Decision::Silent {
            reason: SilentReason::PartnerServes,
            commit: None
        }
    ));
    let m = mac(63);
    let d = engine.decide(&mut w, &discover(m), &direct(SERVER, m), now);
    let addr = d.reply().expect("offer").repr.yiaddr;
    let d = engine.decide(&mut w, &select(m, SERVER, addr), &direct(SERVER, m), now);
    let r = d.reply().expect("ack");
    assert_eq!(r.repr.options.lease_time, Some(600));
    assert_eq!(r.repr.options.renewal_time, Some(300));
    assert_eq!(r.repr.options.rebinding_time, Some(525));
    assert_eq!(r.commit.expect("commit").lease.ends, UnixTime(T0 + 600));
}

/// A failover secondary's view: it allocates only BACKUP addresses, which are its own pool.
#[derive(Debug)]
struct Secondary;

impl FailoverView for Secondary {
    fn may_serve(
        &self,
        _: TableId,
        _: &ClientKey<'_>,
        _: Option<MessageType>,
        _: &Repr<'_>,
    ) -> bool {
        true
    }
    fn may_allocate(&self, _: TableId, l: &Lease, _: UnixTime) -> bool {
        l.state == BindingState::Backup
    }
    fn lease_time(&self, _: TableId, _: &Lease, desired: u32, _: UnixTime) -> u32 {
        desired
    }
    fn free_state(&self, _: TableId) -> BindingState {
        BindingState::Backup
    }
}

#[test]
fn a_secondary_allocates_backup_only_and_a_declined_offer_stays_backup() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(vec![lan()]);
    let (store, _, _) = lease_mmap::Store::open(
        dir.path(),
        &cfg.table_specs(),
        1,
        lease_mmap::Durability::Async,
    )
    .unwrap();
    let store = Arc::new(store);
    let engine = dataplane::engine::Engine::new(cfg, Arc::clone(&store))
        .unwrap()
        .with_failover(Arc::new(Secondary));
    let mut w = engine.worker(0, 1);
    let now = UnixTime(T0);
    // Every address is FREE (the primary's): nothing for the secondary.
    let m = mac(64);
    let d = engine.decide(&mut w, &discover(m), &direct(SERVER, m), now);
    assert!(
        matches!(
            d,
            dataplane::engine::Decision::Drop(DropReason::PoolExhausted)
        ),
        "{d:?}"
    );
    // One BACKUP address: offered, declined (the client took another server's offer),
    // and back to BACKUP, not FREE.
    let backup = ip("10.0.0.15");
    let t = store.table(TableId(0));
    let slot = t.slot(backup).unwrap();
    let (v, mut l) = t.read(slot);
    l.state = BindingState::Backup;
    t.update(slot, v, &l).unwrap();
    let d = engine.decide(&mut w, &discover(m), &direct(SERVER, m), now);
    assert_eq!(d.reply().expect("offer").repr.yiaddr, backup);
    let d = engine.decide(
        &mut w,
        &select(m, ip("10.0.0.2"), backup),
        &direct(SERVER, m),
        now,
    );
    assert!(
        matches!(d, dataplane::engine::Decision::Silent { .. }),
        "{d:?}"
    );
    assert_eq!(t.read(slot).1.state, BindingState::Backup);
}

#[test]
fn engine_rejects_a_store_that_does_not_match() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(vec![lan()]);
    let (store, _, _) = lease_mmap::Store::open(
        dir.path(),
        &config(vec![remote(1), lan()]).table_specs(),
        1,
        lease_mmap::Durability::Async,
    )
    .unwrap();
    assert!(dataplane::engine::Engine::new(cfg, Arc::new(store)).is_err());
}

#[test]
fn addressing_via_relay_for_every_reply_kind() {
    let mut h = Harness::new(config(vec![lan(), remote(1)]));
    let g = ip("10.1.0.1");
    let ing = via_relay(SERVER, g);
    let to_relay = Destination {
        mac: RELAY_MAC,
        ip: g,
        port: SERVER_PORT,
    };
    let m = mac(70);
    let mut d = discover(m);
    d.giaddr = g;
    d.flags = FLAG_BROADCAST;
    let offer = h.run(&d, &ing);
    assert_eq!(offer.dest(), to_relay);
    let addr = offer.yiaddr();
    let mut r = select(m, SERVER, addr);
    r.giaddr = g;
    let ack = h.run(&r, &ing);
    assert_eq!(ack.dest(), to_relay);
    let mut r = init_reboot(m, ip("10.1.0.99"));
    r.giaddr = g;
    let nak = h.run(&r, &ing);
    assert_eq!(nak.kind, Kind::Nak);
    assert_eq!(nak.dest(), to_relay);
    let mut r = request(Some(MessageType::Inform), m);
    r.giaddr = g;
    r.ciaddr = addr;
    assert_eq!(h.run(&r, &ing).dest(), to_relay);
}

#[test]
fn server_id_override_from_the_relay() {
    // RFC 5107: option 54 becomes the relay's address; the reply still comes from us, and
    // a REQUEST naming the override is ours.
    let mut h = Harness::new(trusting(vec![lan(), remote(1)]));
    let g = ip("10.1.0.1");
    let ing = via_relay(SERVER, g);
    let ri: &[u8] = &[11, 4, 10, 1, 0, 1];
    let m = mac(80);
    let mut d = discover(m);
    d.giaddr = g;
    d.options.relay_agent_info = Some(ri);
    let offer = h.run(&d, &ing);
    assert_eq!(offer.opts().server_id, Some(g));
    assert_eq!(offer.server_ip, Some(SERVER));
    let mut r = select(m, g, offer.yiaddr());
    r.giaddr = g;
    r.options.relay_agent_info = Some(ri);
    let ack = h.run(&r, &ing);
    assert_eq!(ack.kind, Kind::Ack);
    assert_eq!(ack.opts().server_id, Some(g));
    // Without giaddr the sub-option is not trusted.
    let mut d = discover(mac(81));
    d.options.relay_agent_info = Some(ri);
    assert_eq!(
        h.run(&d, &direct(SERVER, mac(81))).opts().server_id,
        Some(SERVER)
    );
}

#[test]
fn requested_address_honoured_when_free() {
    let mut h = lan_harness();
    let m = mac(90);
    let mut d = discover(m);
    d.options.requested_ip = Some(ip("10.0.0.17"));
    assert_eq!(h.run(&d, &direct(SERVER, m)).yiaddr(), ip("10.0.0.17"));
    // Taken (held for m): another client asking for it gets something else.
    let n = mac(91);
    let mut d = discover(n);
    d.options.requested_ip = Some(ip("10.0.0.17"));
    let other = h.run(&d, &direct(SERVER, n)).yiaddr();
    assert_ne!(other, ip("10.0.0.17"));
    // Outside the pool: ignored.
    let k = mac(92);
    let mut d = discover(k);
    d.options.requested_ip = Some(ip("10.0.0.2"));
    assert_ne!(h.run(&d, &direct(SERVER, k)).yiaddr(), ip("10.0.0.2"));
}

#[test]
fn expired_lease_goes_to_another_client_and_the_old_one_is_naked() {
    let mut h = one_address_lan(600);
    let (a, b) = (mac(93), mac(94));
    let addr = dora(&mut h, a).yiaddr();
    h.advance(3599);
    assert_eq!(
        h.run(&discover(b), &direct(SERVER, b)).kind,
        Kind::Drop(DropReason::PoolExhausted)
    );
    h.advance(1);
    assert_eq!(dora(&mut h, b).yiaddr(), addr);
    assert_eq!(h.run(&renew(a, addr), &direct(SERVER, a)).kind, Kind::Nak);
    assert_eq!(
        h.run(&init_reboot(a, addr), &direct(SERVER, a)).kind,
        Kind::Nak
    );
    // b's lease is intact.
    assert!(h.record(addr).is_for(&ClientKey::HwAddr {
        htype: 1,
        chaddr: &b
    }));
    assert_eq!(
        h.engine.scope_config(TableId(0)).map(|s| s.lease_time),
        Some(3600)
    );
}

#[test]
fn replies_fit_the_clients_message_size() {
    let mut s = lan();
    s.dns = (1..=60).map(|i| Ipv4Addr::new(10, 0, 1, i)).collect();
    s.router = (1..=20).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
    s.domain_name = Some("d".repeat(200));
    let mut h = Harness::new(config(vec![s]));
    let m = mac(95);
    // Default 576-byte datagram: the domain name and then the DNS list are shed.
    let offer = h.run(&discover(m), &direct(SERVER, m));
    assert_eq!(offer.domain_name, None);
    assert_eq!(offer.dns, None);
    assert_eq!(offer.router.as_ref().map(Vec::len), Some(80));
    assert!(offer.opts().lease_time.is_some() && offer.opts().server_id.is_some());
    // A client that takes 1500 bytes gets everything.
    let mut d = discover(m);
    d.options.max_message_size = Some(1500);
    let offer = h.run(&d, &direct(SERVER, m));
    assert_eq!(offer.domain_name.as_ref().map(Vec::len), Some(200));
    assert_eq!(offer.dns.as_ref().map(Vec::len), Some(240));
}

/// The failover times (ISC `ack_lease`): a DHCPACK sets `tstp = now + desired + granted / 2`
/// and lowers a larger `tsfp`; a RELEASE clears `atsfp` so the change counts as not
/// acknowledged (`tstp > atsfp`); an OFFER keeps the times it found.
#[test]
fn failover_times_mark_changes_unacknowledged() {
    let mut h = lan_harness();
    let m = mac(16);
    let ack = dora(&mut h, m);
    let addr = ack.yiaddr();
    let l = h.record(addr);
    assert_eq!(l.state, BindingState::Active);
    // Standalone: desired = granted = 3600.
    assert_eq!(l.tstp, UnixTime(T0 + 3600 + 1800));
    assert!(l.tstp > l.atsfp);
    // Pretend the partner acknowledged it, with a tsfp beyond the next tstp.
    let t = h.engine.store().table(TableId(0));
    let slot = t.slot(addr).expect("address in the table");
    let (v, cur) = t.read(slot);
    let acked = Lease {
        atsfp: cur.tstp,
        tsfp: UnixTime(T0 + 100_000),
        ..cur
    };
    t.update(slot, v, &acked).unwrap();
    h.advance(10);
    // A renewal: ACTIVE stays ACTIVE, atsfp kept, tstp moves on, tsfp lowered to it.
    let a = h.run(&renew(m, addr), &direct(SERVER, m));
    assert_eq!(a.kind, Kind::Ack);
    let l = h.record(addr);
    assert_eq!(l.tstp, UnixTime(T0 + 10 + 3600 + 1800));
    assert_eq!(l.atsfp, acked.atsfp);
    assert_eq!(l.tsfp, l.tstp);
    assert!(l.tstp > l.atsfp);
    // RELEASE: a change of state; not acknowledged.
    h.advance(10);
    let s = h.run(&release(m, SERVER, addr), &direct(SERVER, m));
    assert_eq!(s.kind, Kind::Silent(SilentReason::Released));
    let l = h.record(addr);
    assert_eq!(l.atsfp, UnixTime(0));
    assert!(l.tstp > l.atsfp);
}

#[test]
fn relay_options_only_from_trusted_relays() {
    // #13: option 82 sub-options, option 118 and circuit-id / remote-id reservations were
    // honoured from anyone. Now only from a relayed request whose IPv4 source is trusted;
    // from others they are as if absent (and 118 is not echoed).
    let mut r1 = remote(1);
    r1.reservations = vec![
        Reservation {
            key: ReservationKey::CircuitId(b"port-7".to_vec()),
            address: ip("10.1.0.50"),
        },
        Reservation {
            key: ReservationKey::RemoteId(b"cpe-9".to_vec()),
            address: ip("10.1.0.51"),
        },
    ];
    let mut h = Harness::new(trusting(vec![lan(), r1, remote(2), remote(3)]));
    let in_net = |a: Ipv4Addr, n: u8| a.octets()[..2] == [10, n];
    let trusted = via_relay(SERVER, ip("10.1.0.1"));
    // A relay on 10.3.0.1 is not in the list; neither is a client that writes a trusted
    // relay's address into giaddr but sends from its own.
    let untrusted = via_relay(SERVER, ip("10.3.0.1"));
    let forged = Ingress {
        src_ip: ip("10.3.0.99"),
        ..trusted
    };
    let circuit: &[u8] = &[1, 6, b'p', b'o', b'r', b't', b'-', b'7'];
    let remote_id: &[u8] = &[2, 5, b'c', b'p', b'e', b'-', b'9'];
    let link: &[u8] = &[5, 4, 10, 2, 0, 0];
    let sid_override: &[u8] = &[11, 4, 10, 3, 0, 1];
    let mut n = 100;
    let mut ask = |h: &mut Harness,
                   giaddr: &str,
                   ing: &Ingress,
                   ri: Option<&'static [u8]>,
                   sel: Option<Ipv4Addr>| {
        n += 1;
        let mut d = discover(mac(n));
        d.giaddr = ip(giaddr);
        d.options.relay_agent_info = ri;
        d.options.subnet_selection = sel;
        h.run(&d, ing)
    };
    // Trusted: the reservations, link selection and option 118 are honoured.
    assert_eq!(
        ask(&mut h, "10.1.0.1", &trusted, Some(circuit), None).yiaddr(),
        ip("10.1.0.50")
    );
    assert_eq!(
        ask(&mut h, "10.1.0.1", &trusted, Some(remote_id), None).yiaddr(),
        ip("10.1.0.51")
    );
    assert!(in_net(
        ask(&mut h, "10.1.0.1", &trusted, Some(link), None).yiaddr(),
        2
    ));
    let o = ask(&mut h, "10.1.0.1", &trusted, None, Some(ip("10.2.0.0")));
    assert!(in_net(o.yiaddr(), 2));
    assert_eq!(o.opts().subnet_selection, Some(ip("10.2.0.0")));
    // Untrusted or forged: giaddr decides, reservations by circuit / remote id do not match,
    // the RFC 5107 override is not applied, option 118 is neither used nor echoed; option 82
    // still goes back to the relay unchanged.
    for (g, ing) in [("10.3.0.1", &untrusted), ("10.1.0.1", &forged)] {
        let net = ip(g).octets()[1];
        for ri in [circuit, remote_id, link] {
            let o = ask(&mut h, g, ing, Some(ri), None);
            assert_eq!(o.kind, Kind::Offer, "{o:?}");
            assert!(in_net(o.yiaddr(), net), "{g} {ri:?}: {o:?}");
            assert!(!(ip("10.1.0.50")..=ip("10.1.0.51")).contains(&o.yiaddr()));
            assert_eq!(o.relay_agent_info.as_deref(), Some(ri));
        }
        let o = ask(&mut h, g, ing, None, Some(ip("10.2.0.0")));
        assert!(in_net(o.yiaddr(), net), "{o:?}");
        assert_eq!(o.opts().subnet_selection, None);
        let o = ask(&mut h, g, ing, Some(sid_override), None);
        assert_eq!(o.opts().server_id, Some(SERVER));
    }
    // A direct client's option 118 is ignored too.
    let o = ask(
        &mut h,
        "0.0.0.0",
        &direct(SERVER, mac(1)),
        None,
        Some(ip("10.2.0.0")),
    );
    assert!(in_net(o.yiaddr(), 0), "{o:?}");
    assert_eq!(o.opts().subnet_selection, None);
}

#[test]
fn option_82_is_never_echoed_to_a_direct_client() {
    // RFC 3046 §2.2 echoes option 82 to the relay agent; a client sending it itself
    // (giaddr 0) gets no option 82 back, in an OFFER, an ACK or a NAK.
    let mut h = Harness::new(trusting(vec![lan(), remote(1)]));
    let m = mac(120);
    let ing = direct(SERVER, m);
    let ri: &[u8] = &[1, 2, b'p', b'1'];
    let mut d = discover(m);
    d.options.relay_agent_info = Some(ri);
    let offer = h.run(&d, &ing);
    assert_eq!(offer.kind, Kind::Offer);
    assert_eq!(offer.relay_agent_info, None);
    let mut r = select(m, SERVER, offer.yiaddr());
    r.options.relay_agent_info = Some(ri);
    let ack = h.run(&r, &ing);
    assert_eq!(ack.kind, Kind::Ack);
    assert_eq!(ack.relay_agent_info, None);
    let mut r = init_reboot(m, ip("10.0.0.99"));
    r.options.relay_agent_info = Some(ri);
    let nak = h.run(&r, &ing);
    assert_eq!(nak.kind, Kind::Nak);
    assert_eq!(nak.relay_agent_info, None);
}

#[test]
fn a_lease_keeps_the_trusted_relays_option_82_for_leasequery() {
    let mut h = Harness::new(trusting(vec![lan(), remote(1), remote(3)]));
    let opt82: &'static [u8] = &[
        1, 6, b'p', b'o', b'r', b't', b'-', b'7', 2, 3, b'c', b'p', b'e',
    ];
    let relayed = |h: &mut Harness, m: [u8; 6], giaddr: &str, ri: Option<&'static [u8]>| {
        let ing = via_relay(SERVER, ip(giaddr));
        let mut d = discover(m);
        d.giaddr = ip(giaddr);
        d.options.relay_agent_info = ri;
        let offer = h.run(&d, &ing);
        let mut r = select(m, SERVER, offer.yiaddr());
        r.giaddr = ip(giaddr);
        r.options.relay_agent_info = ri;
        let ack = h.run(&r, &ing);
        assert_eq!(ack.kind, Kind::Ack, "{ack:?}");
        ack.yiaddr()
    };
    // Through a trusted relay: kept whole.
    let a = relayed(&mut h, mac(1), "10.1.0.1", Some(opt82));
    let l = h.record(a);
    assert_eq!(l.relay.as_bytes(), opt82);
    assert_eq!(l.relay.circuit_id(), Some(&b"port-7"[..]));
    // A renewal unicast by the client itself (no relay, no option 82) keeps it.
    h.advance(60);
    let ack = h.run(&renew(mac(1), a), &direct(SERVER, mac(1)));
    assert_eq!(ack.kind, Kind::Ack, "{ack:?}");
    assert_eq!(h.record(a).relay.as_bytes(), opt82);
    assert!(h.record(a).cltt > l.cltt);
    // Through the trusted relay again, without option 82 this time (the client moved to a
    // port that inserts none): what it was granted through before no longer holds.
    h.advance(60);
    let mut r = renew(mac(1), a);
    r.giaddr = ip("10.1.0.1");
    assert_eq!(
        h.run(&r, &via_relay(SERVER, ip("10.1.0.1"))).kind,
        Kind::Ack
    );
    assert!(h.record(a).relay.is_empty());
    // Through an untrusted relay: its option 82 is echoed, never kept (a forged one must
    // not poison what a relay rebuilds its anti-spoofing table from).
    let b = relayed(&mut h, mac(2), "10.3.0.1", Some(opt82));
    assert!(h.record(b).relay.is_empty());
    // A directly attached client has none.
    let c = dora(&mut h, mac(3)).yiaddr();
    assert!(h.record(c).relay.is_empty());
    // The host name a client sends is kept, and kept when its renewal leaves it out.
    assert!(h.record(c).hostname.is_empty());
    let mut r = renew(mac(3), c);
    r.options.hostname = Some(b"laptop-3");
    assert_eq!(h.run(&r, &direct(SERVER, mac(3))).kind, Kind::Ack);
    assert_eq!(h.record(c).hostname.as_bytes(), b"laptop-3");
    assert_eq!(
        h.run(&renew(mac(3), c), &direct(SERVER, mac(3))).kind,
        Kind::Ack
    );
    assert_eq!(h.record(c).hostname.as_bytes(), b"laptop-3");
}
