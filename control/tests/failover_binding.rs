//! Bindings between lease records and BNDUPD/BNDACK, with ISC's receive checks.

use std::net::Ipv4Addr;

use control::failover::UnixTime;
use control::failover::binding::{Binding, lease_state};
use control::failover::msg::{self, BindingStatus, MessageType, RejectReason, Repr};
use lease_mmap::record::ClientId;
use lease_mmap::{BindingState, Lease, Owner};

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
