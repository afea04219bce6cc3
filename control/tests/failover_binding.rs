//! Bindings between lease records and BNDUPD/BNDACK, with ISC's receive checks.

use std::net::Ipv4Addr;

use control::failover::UnixTime;
use control::failover::binding::{Binding, lease_state};
use control::failover::msg::{
    self, BindingBatch, BindingStatus, MessageType, ParseError, RejectReason, Repr, opt,
};
use lease_mmap::record::ClientId;
use lease_mmap::{BindingState, Lease, Owner, RelayInfo};

const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 5);

fn active_lease() -> Lease {
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    Lease {
        state: BindingState::Active,
        ends: UnixTime(0x6554_ff10),
        tstp: UnixTime(0x6555_7f88),
        stos: UnixTime(0x6553_f100),
        cltt: UnixTime(0x6553_f100),
        htype: 1,
        hlen: 6,
        chaddr,
        client_id: ClientId::new(&[1, 2, 0, 0, 0, 0, 1]).unwrap(),
        ..Lease::default()
    }
}

#[test]
fn bndupd_from_a_lease_is_byte_for_byte_iscs() {
    // The BNDUPD vector of tests/failover_msg.rs (dhcp_failover_send_bind_update layout).
    let b = Binding::from_lease(IP, &active_lease(), msg::IP_FLAG_BOOTP).unwrap();
    let mut r = b.to_repr();
    r.time = UnixTime(0x6553_f100);
    r.xid = 5;
    let want: Vec<u8> = [
        &[0x00, 0x55, 0x03, 0x0c, 0x65, 0x53, 0xf1, 0x00, 0, 0, 0, 5][..],
        &[0, 2, 0, 4, 10, 0, 1, 5],
        &[0, 3, 0, 1, 2],
        &[0, 4, 0, 7, 1, 2, 0, 0, 0, 0, 1],
        &[0, 5, 0, 7, 1, 2, 0, 0, 0, 0, 1],
        &[0, 13, 0, 4, 0x65, 0x54, 0xff, 0x10],
        &[0, 18, 0, 4, 0x65, 0x55, 0x7f, 0x88],
        &[0, 25, 0, 4, 0x65, 0x53, 0xf1, 0x00],
        &[0, 6, 0, 4, 0x65, 0x53, 0xf1, 0x00],
        &[0, 12, 0, 2, 0, 2],
    ]
    .concat();
    assert_eq!(r.to_vec().unwrap(), want);
    // And back.
    let parsed = Repr::parse_bytes(&want).unwrap();
    assert_eq!(Binding::from_repr(&parsed).unwrap(), b);
}

#[test]
fn no_client_no_optional_options() {
    let free = Lease {
        state: BindingState::Free,
        ..Lease::default()
    };
    let b = Binding::from_lease(IP, &free, 0).unwrap();
    let r = b.to_repr();
    assert_eq!(r.options.chaddr, None);
    assert_eq!(r.options.client_id, None);
    assert_eq!(r.options.cltt, None);
    assert_eq!(r.options.ip_flags, None);
    assert_eq!(r.options.binding_status, Some(BindingStatus::Free as u8));
    let offered = Lease {
        state: BindingState::Offered,
        ..Lease::default()
    };
    assert_eq!(Binding::from_lease(IP, &offered, 0), None);
}

#[test]
fn captured_isc_bndupds_are_accepted() {
    for (bytes, want) in [
        (
            &include_bytes!("data/isc-4.4.3/bndupd-free.bin")[..],
            BindingState::Free,
        ),
        (
            &include_bytes!("data/isc-4.4.3/bndupd-backup.bin")[..],
            BindingState::Backup,
        ),
    ] {
        let r = Repr::parse_bytes(bytes).unwrap();
        let b = Binding::from_repr(&r).unwrap();
        assert_eq!(b.ip, Ipv4Addr::new(10, 77, 0, 100));
        let mut lease = active_lease();
        b.apply_to(&mut lease);
        assert_eq!(lease.state, want);
        // FREE/BACKUP without client-id keep the stored one (failover.c:5312-5320).
        assert!(!lease.client_id.is_empty());
        assert_eq!(lease.owner, Owner::Partner);
        assert_eq!(lease.tsfp, r.options.potential_expiry.unwrap());
    }
}

#[test]
fn isc_receive_checks() {
    let base = |status: BindingStatus| {
        let mut r = Repr::new(MessageType::BndUpd, UnixTime(1), 9);
        r.options.assigned_ip = Some(IP);
        r.options.binding_status = Some(status as u8);
        r
    };
    let chaddr = [1u8, 2, 0, 0, 0, 0, 1];
    // Missing IP or status: reject 3.
    let mut r = base(BindingStatus::Free);
    r.options.assigned_ip = None;
    assert_eq!(
        Binding::from_repr(&r).unwrap_err().reason,
        RejectReason::MissingBindingInformation
    );
    let mut r = base(BindingStatus::Free);
    r.options.binding_status = Some(9);
    assert_eq!(
        Binding::from_repr(&r).unwrap_err().reason,
        RejectReason::MissingBindingInformation
    );
    // ACTIVE, EXPIRED, RELEASED need chaddr: reject 3.
    for s in [
        BindingStatus::Active,
        BindingStatus::Expired,
        BindingStatus::Released,
    ] {
        let e = Binding::from_repr(&base(s)).unwrap_err();
        assert_eq!(
            (e.reason, e.message),
            (
                RejectReason::MissingBindingInformation,
                "BNDUPD without CHADDR"
            )
        );
        let mut r = base(s);
        r.options.chaddr = Some(&chaddr);
        assert!(Binding::from_repr(&r).is_ok());
    }
    // ABANDONED must carry neither chaddr nor client-id.
    let mut r = base(BindingStatus::Abandoned);
    r.options.chaddr = Some(&chaddr);
    assert_eq!(
        Binding::from_repr(&r).unwrap_err().message,
        "BNDUPD to ABANDONED with a CHADDR"
    );
    let mut r = base(BindingStatus::Abandoned);
    r.options.client_id = Some(&chaddr);
    assert_eq!(
        Binding::from_repr(&r).unwrap_err().reason,
        RejectReason::Unknown
    );
    // chaddr longer than htype + 16.
    let long = [0u8; 18];
    let mut r = base(BindingStatus::Free);
    r.options.chaddr = Some(&long);
    assert_eq!(
        Binding::from_repr(&r).unwrap_err().message,
        "chaddr too long"
    );
}

#[test]
fn apply_follows_isc() {
    // ACTIVE without client-id erases ours; ABANDONED clears the hardware address.
    let mut r = Repr::new(MessageType::BndUpd, UnixTime(1), 9);
    r.options.assigned_ip = Some(IP);
    r.options.binding_status = Some(BindingStatus::Active as u8);
    r.options.chaddr = Some(&[1, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]);
    r.options.potential_expiry = Some(UnixTime(777));
    let mut lease = active_lease();
    Binding::from_repr(&r).unwrap().apply_to(&mut lease);
    assert!(lease.client_id.is_empty());
    assert_eq!((lease.htype, lease.hlen), (1, 6));
    assert_eq!(&lease.chaddr[..6], &[0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]);
    assert_eq!(lease.tsfp, UnixTime(777));
    let mut r = Repr::new(MessageType::BndUpd, UnixTime(1), 9);
    r.options.assigned_ip = Some(IP);
    r.options.binding_status = Some(BindingStatus::Abandoned as u8);
    let mut lease = active_lease();
    Binding::from_repr(&r).unwrap().apply_to(&mut lease);
    assert_eq!((lease.state, lease.hlen), (BindingState::Abandoned, 0));
    assert_eq!(lease_state(7), Some(BindingState::Backup));
    assert_eq!(lease_state(0), None);
}

#[test]
fn bndack_as_isc_sends_it() {
    let ok = Binding::ack(IP, None);
    assert_eq!(ok.options.assigned_ip, Some(IP));
    assert_eq!(ok.options.binding_status, None);
    let e = control::failover::binding::BindingError {
        reason: RejectReason::LessCriticalBindingInformation,
        message: "outdated",
    };
    let nak = Binding::ack(IP, Some(&e));
    assert_eq!(
        nak.options.reject_reason,
        Some(RejectReason::LessCriticalBindingInformation)
    );
    assert_eq!(nak.options.message, Some(&b"outdated"[..]));
}

/// Option 82 as a relay sends it: circuit-id "eth0/1", remote-id 02:00:00:00:00:01.
const RELAY: [u8; 16] = [
    1, 6, b'e', b't', b'h', b'0', b'/', b'1', 2, 6, 2, 0, 0, 0, 0, 1,
];

fn relayed_lease() -> Lease {
    Lease {
        relay: RelayInfo::new(&RELAY).unwrap(),
        ..active_lease()
    }
}

/// Writes a message's own length into its header.
fn set_length(m: &mut [u8]) {
    let len = u16::try_from(m.len()).unwrap();
    m[..2].copy_from_slice(&len.to_be_bytes());
}

/// Option 8 as we send it: one DHCP option 82 TLV holding the relay's payload.
fn option_8() -> Vec<u8> {
    [&[0, 8, 0, 18, 82, 16][..], &RELAY].concat()
}

#[test]
fn relay_info_travels_in_client_request_options() {
    // ISC's BNDUPD vector, then option 8 (codes ISC does not send follow in code order).
    let b = Binding::from_lease(IP, &relayed_lease(), msg::IP_FLAG_BOOTP).unwrap();
    assert_eq!(b.relay().as_bytes(), RELAY);
    let mut r = b.to_repr();
    r.time = UnixTime(0x6553_f100);
    r.xid = 5;
    let bytes = r.to_vec().unwrap();
    let isc = Binding::from_lease(IP, &active_lease(), msg::IP_FLAG_BOOTP).unwrap();
    let mut isc = isc.to_repr();
    (isc.time, isc.xid) = (r.time, r.xid);
    let mut want = isc.to_vec().unwrap();
    want.extend_from_slice(&option_8());
    set_length(&mut want);
    assert_eq!(bytes, want);
    // And back, into the partner's record.
    let parsed = Repr::parse_bytes(&bytes).unwrap();
    let got = Binding::from_repr(&parsed).unwrap();
    assert_eq!(got, b);
    let mut lease = Lease::default();
    got.apply_to(&mut lease);
    assert_eq!(lease.relay.as_bytes(), RELAY);

    // In a batch toward a tandem peer, each binding carries its own.
    let mut batch = BindingBatch::new(MessageType::BndUpd);
    let other = Ipv4Addr::new(10, 0, 1, 6);
    assert!(batch.push(&b.to_repr().options));
    assert!(
        batch.push(
            &Binding::from_lease(other, &active_lease(), 0)
                .unwrap()
                .to_repr()
                .options
        )
    );
    assert!(batch.push(&b.to_repr().options));
    let bytes = batch.repr(UnixTime(1), 7).to_vec().unwrap();
    let parsed = Repr::parse_bytes(&bytes).unwrap();
    let relays: Vec<RelayInfo> = parsed
        .bindings()
        .map(|o| Binding::from_options(&o).unwrap().relay())
        .collect();
    assert_eq!(relays, [b.relay(), RelayInfo::EMPTY, b.relay()]);
}

#[test]
fn an_update_without_option_8_clears_the_relay_info() {
    // What the partner knows: no relay info (ISC never sends option 8).
    let b = Binding::from_lease(IP, &active_lease(), 0).unwrap();
    let r = b.to_repr();
    assert_eq!(r.options.client_request_options, None);
    let mut lease = relayed_lease();
    Binding::from_repr(&r).unwrap().apply_to(&mut lease);
    assert!(lease.relay.is_empty());
    // A captured ISC BNDUPD too.
    let isc = include_bytes!("data/isc-4.4.3/bndupd-free.bin");
    let mut lease = relayed_lease();
    Binding::from_repr(&Repr::parse_bytes(isc).unwrap())
        .unwrap()
        .apply_to(&mut lease);
    assert!(lease.relay.is_empty());
}

#[test]
fn malformed_option_8_is_ignored() {
    let plain = Binding::from_lease(IP, &active_lease(), 0).unwrap();
    for contents in [
        // Option 82 longer than what follows it.
        &[82, 30, 1, 6, b'e'][..],
        // A length byte missing.
        &[82][..],
        // Other options only, and nothing at all.
        &[55, 2, 1, 3, 255][..],
        &[][..],
    ] {
        let mut r = plain.to_repr();
        r.options.client_request_options = Some(contents);
        let bytes = r.to_vec().unwrap();
        let b = Binding::from_repr(&Repr::parse_bytes(&bytes).unwrap())
            .expect("the binding is not refused for its option 8");
        assert_eq!(b, plain, "{contents:?}");
        let mut lease = relayed_lease();
        b.apply_to(&mut lease);
        assert!(lease.relay.is_empty(), "{contents:?}");
    }
    // Option 12 alone: the host name, and no relay info.
    let mut r = plain.to_repr();
    r.options.client_request_options = Some(&[12, 3, b'p', b'c', b'1', 255]);
    let bytes = r.to_vec().unwrap();
    let b = Binding::from_repr(&Repr::parse_bytes(&bytes).unwrap()).expect("accepted");
    let mut lease = relayed_lease();
    b.apply_to(&mut lease);
    assert!(lease.relay.is_empty());
    assert_eq!(lease.hostname.as_bytes(), b"pc1");
}

#[test]
fn option_8_keeps_to_iscs_parser_rules() {
    // ISC 4.4 allows client-request-options in BNDUPD, stores it as bytes of any length and
    // never reads it (stables.c:58-59, :112-115; failover.c:796-818), so every peer gets
    // it. What ISC does not survive is a repeated option (failover.c:715-720): one
    // binding's BNDUPD, ISC's kind, holds option 8 once.
    assert!(MessageType::BndUpd.allows(opt::CLIENT_REQUEST_OPTIONS));
    let b = Binding::from_lease(IP, &relayed_lease(), 0).unwrap();
    let bytes = b.to_repr().to_vec().unwrap();
    let eights = msg::OptionIter::new(&bytes[usize::from(msg::HEADER_LEN)..])
        .filter(|o| o.unwrap().code == opt::CLIENT_REQUEST_OPTIONS)
        .count();
    assert_eq!(eights, 1);
    // The same update with option 8 twice is the protocol error ISC would drop the link for.
    let mut twice = bytes.clone();
    twice.extend_from_slice(&option_8());
    set_length(&mut twice);
    assert_eq!(
        Repr::parse_bytes(&twice).unwrap_err(),
        ParseError::DuplicateOption(opt::CLIENT_REQUEST_OPTIONS)
    );
    // The longest relay info still leaves a BNDUPD far under 2048 bytes with the longest
    // client id and hardware address.
    let mut l = relayed_lease();
    l.relay = RelayInfo::new(&[0xab; lease_mmap::MAX_RELAY_INFO]).unwrap();
    l.client_id = ClientId::new(&[7; lease_mmap::record::MAX_CLIENT_ID]).unwrap();
    l.hlen = 16;
    let b = Binding::from_lease(IP, &l, msg::IP_FLAG_BOOTP).unwrap();
    let len = b.to_repr().buffer_len();
    assert!(len < 500, "{len}");
}
