//! Wire codec of the failover protocol: byte vectors as ISC dhcpd 4.4 builds them, ISC's
//! parser rules, the stream framer, and property tests.
//!
//! Each vector is laid out by hand from the ISC sender it names (isc-projects/dhcp
//! `server/failover.c` at 572032cb, identical in 4.4.3): option order, sizes and header as
//! `dhcp_failover_put_message` (`:4290-4333`) and `dhcp_failover_make_option`
//! (`:4008-4200`) write them.

use std::net::Ipv4Addr;

use control::failover::UnixTime;
use control::failover::binding::{Binding, BindingError};
use control::failover::digest;
use control::failover::hash::Hba;
use control::failover::msg::{
    self, BindingBatch, BindingStatus, FrameError, Message, MessageType, ParseError, RejectReason,
    Repr, ServerState, StreamDecoder, opt,
};
use lease_mmap::{BindingState, Lease};
use proptest::prelude::*;

const T: u32 = 0x6553_f100; // 1700000000

fn hex(s: &str) -> Vec<u8> {
    let digits: String = s.split_whitespace().collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

/// Parses `bytes`, checks the fields with `check`, and re-emits to the same bytes.
fn roundtrip(bytes: &[u8], check: impl FnOnce(&Repr<'_>)) {
    let repr = Repr::parse_bytes(bytes).expect("vector parses");
    check(&repr);
    assert_eq!(repr.buffer_len(), bytes.len());
    assert_eq!(
        repr.to_vec().unwrap(),
        bytes,
        "re-emit differs for {:?}",
        repr.msg_type
    );
}

#[test]
fn connect_as_isc_sends_it() {
    // dhcp_failover_send_connect, failover.c:4483-4537: relationship-name, max-unacked,
    // receive-timer, vendor-class "isc-4.4.3", protocol-version 1, TLS-request 0 (one byte),
    // MCLT, HBA (32 bytes; `split 128` sets bits 0..127, confpars.c:1112-1117).
    let v = hex(concat!(
        "0067 05 0c 6553f100 00000001", // length 103, CONNECT, offset 12, time, xid 1
        "0016 0004 70656572",           // 22 relationship-name "peer"
        "000e 0004 00000064",           // 14 max-unacked-bndupd 100
        "0013 0004 00000014",           // 19 receive-timer 20
        "001c 0009 6973632d342e342e33", // 28 vendor-class "isc-4.4.3"
        "0014 0001 01",                 // 20 protocol-version 1
        "001b 0001 00",                 // 27 TLS-request 0
        "000f 0004 00000e10",           // 15 MCLT 3600
        "000b 0020",                    // 11 HBA, 32 bytes
        "ffffffffffffffffffffffffffffffff",
        "00000000000000000000000000000000",
    ));
    roundtrip(&v, |r| {
        assert_eq!(r.msg_type, MessageType::Connect);
        assert_eq!(r.time, UnixTime(T));
        assert_eq!(r.xid, 1);
        let o = &r.options;
        assert_eq!(o.relationship_name, Some(&b"peer"[..]));
        assert_eq!(o.max_unacked, Some(100));
        assert_eq!(o.receive_timer, Some(20));
        assert_eq!(o.vendor_class, Some(&b"isc-4.4.3"[..]));
        assert_eq!(o.protocol_version, Some(1));
        assert_eq!(o.tls_request, Some(0));
        assert_eq!(o.mclt, Some(3600));
        assert_eq!(o.hba.and_then(Hba::from_bytes), Some(Hba::split(128)));
    });
}

#[test]
fn connectack_as_isc_sends_it() {
    // dhcp_failover_send_connectack, failover.c:4539-4608: the CONNECT's xid, TLS-reply 0
    // only because the CONNECT carried TLS-request.
    let ok = hex(concat!(
        "003b 06 0c 6553f100 00000001",
        "0016 0004 70656572",
        "000e 0004 00000064",
        "0013 0004 00000014",
        "001c 0009 6973632d342e342e33",
        "0014 0001 01",
        "001a 0001 00", // 26 TLS-reply 0
    ));
    roundtrip(&ok, |r| {
        assert_eq!(r.msg_type, MessageType::ConnectAck);
        assert_eq!(r.options.tls_reply, Some(0));
        assert_eq!(r.options.reject_reason, None);
    });
    // Refusal (failover.c:1326-1333): reject-reason 7 and message "already connected".
    let refused = hex(concat!(
        "0055 06 0c 6553f100 00000009",
        "0016 0004 70656572",
        "000e 0004 00000064",
        "0013 0004 00000014",
        "001c 0009 6973632d342e342e33",
        "0014 0001 01",
        "001a 0001 00",
        "0015 0001 07",                                 // 21 reject-reason 7
        "0010 0011 616c726561647920636f6e6e6563746564", // 16 message
    ));
    roundtrip(&refused, |r| {
        assert_eq!(r.xid, 9);
        assert_eq!(
            r.options.reject_reason,
            Some(RejectReason::DuplicateConnection)
        );
        assert_eq!(r.options.message, Some(&b"already connected"[..]));
    });
}

#[test]
fn state_as_isc_sends_it() {
    // dhcp_failover_send_state, failover.c:4431-4481: server-state, server-flags, stos.
    let normal = hex(concat!(
        "001e 0a 0c 6553f100 00000002",
        "0018 0001 02",       // 24 server-state NORMAL
        "0017 0001 00",       // 23 server-flags 0
        "0019 0004 6553f000", // 25 start-time-of-state
    ));
    roundtrip(&normal, |r| {
        assert_eq!(r.msg_type, MessageType::State);
        assert_eq!(
            r.options.server_state.and_then(ServerState::from_u8),
            Some(ServerState::Normal)
        );
        assert_eq!(r.options.server_flags, Some(0));
        assert_eq!(r.options.stos, Some(UnixTime(0x6553_f000)));
    });
    // RECOVER-WAIT is 254 on the wire (failover.h:302-308); in STARTUP, flag bit 0.
    let recover_wait =
        hex("001e 0a 0c 6553f100 00000003 0018 0001 fe 0017 0001 01 0019 0004 6553f000");
    roundtrip(&recover_wait, |r| {
        assert_eq!(
            r.options.server_state.and_then(ServerState::from_u8),
            Some(ServerState::RecoverWait)
        );
        assert_eq!(r.options.server_flags, Some(msg::SERVER_FLAG_STARTUP));
    });
}

#[test]
fn bndupd_as_isc_sends_it() {
    // dhcp_failover_send_bind_update, failover.c:4659-4785: assigned-IP, binding-status,
    // client-id (if any), chaddr = htype || MAC (if any), ends, tstp, starts as stos,
    // CLTT (if nonzero), IP-flags (if nonzero, two bytes).
    let v = hex(concat!(
        "0055 03 0c 6553f100 00000005",
        "0002 0004 0a000105",       // 2 assigned-IP 10.0.1.5
        "0003 0001 02",             // 3 binding-status ACTIVE
        "0004 0007 01020000000001", // 4 client-identifier (type 1 + MAC)
        "0005 0007 01020000000001", // 5 chaddr: htype 1, MAC 02:00:00:00:00:01
        "000d 0004 6554ff10",       // 13 lease-expiration-time
        "0012 0004 65557f88",       // 18 potential-expiration-time
        "0019 0004 6553f100",       // 25 start-time-of-state (lease starts)
        "0006 0004 6553f100",       // 6 CLTT
        "000c 0002 0002",           // 12 IP-flags BOOTP
    ));
    roundtrip(&v, |r| {
        let o = &r.options;
        assert_eq!(r.msg_type, MessageType::BndUpd);
        assert_eq!(o.assigned_ip, Some(Ipv4Addr::new(10, 0, 1, 5)));
        assert_eq!(
            o.binding_status.and_then(BindingStatus::from_u8),
            Some(BindingStatus::Active)
        );
        assert_eq!(o.chaddr, Some(&[1, 2, 0, 0, 0, 0, 1][..]));
        assert_eq!(o.lease_expiry, Some(UnixTime(0x6554_ff10)));
        assert_eq!(o.potential_expiry, Some(UnixTime(0x6555_7f88)));
        assert_eq!(o.cltt, Some(UnixTime(T)));
        assert_eq!(o.ip_flags, Some(msg::IP_FLAG_BOOTP));
    });
}

#[test]
fn bndack_as_isc_sends_it() {
    // dhcp_failover_send_bind_ack, failover.c:4787-4871, with DO_BNDACK_SHOULD_NOT undefined:
    // assigned-IP only, the BNDUPD's xid; reject-reason and message when refusing.
    let ack = hex("0014 04 0c 6553f100 00000005 0002 0004 0a000105");
    roundtrip(&ack, |r| {
        assert_eq!(r.msg_type, MessageType::BndAck);
        assert_eq!(r.options.assigned_ip, Some(Ipv4Addr::new(10, 0, 1, 5)));
        assert_eq!(r.options.binding_status, None);
    });
    let nak = hex(concat!(
        "003e 04 0c 6553f100 00000005",
        "0002 0004 0a000105",
        "0015 0001 10", // 21 reject-reason 16
        "0010 0021 6c65737320637269746963616c2062696e64696e6720696e666f726d6174696f6e",
    ));
    roundtrip(&nak, |r| {
        assert_eq!(
            r.options.reject_reason,
            Some(RejectReason::LessCriticalBindingInformation)
        );
        assert_eq!(
            r.options.message,
            Some(
                RejectReason::LessCriticalBindingInformation
                    .text()
                    .as_bytes()
            )
        );
    });
}

/// A binding of address 10.0.1.`n`, with a client-id as long as `id_len`.
fn binding(n: u8, state: BindingState, id_len: usize) -> Binding {
    let id: Vec<u8> = (0..id_len).map(|i| n ^ i as u8).collect();
    let mut chaddr = [0; 16];
    chaddr[..6].copy_from_slice(&[2, 0, 0, 0, 0, n]);
    let l = Lease {
        state,
        htype: 1,
        hlen: 6,
        chaddr,
        client_id: lease_mmap::record::ClientId::new(&id).unwrap(),
        ends: UnixTime(T + 3600),
        tstp: UnixTime(T + 7200),
        cltt: UnixTime(T),
        ..Lease::default()
    };
    Binding::from_lease(Ipv4Addr::new(10, 0, 1, n), &l, 0).unwrap()
}

#[test]
fn batched_bndupd_carries_every_binding_and_one_binding_is_isc_bytes() {
    let all: Vec<Binding> = (1..=5)
        .map(|n| binding(n, BindingState::Active, usize::from(n) * 3))
        .collect();
    let mut batch = BindingBatch::new(MessageType::BndUpd);
    for b in &all {
        assert!(batch.push(&b.to_repr().options));
    }
    assert_eq!(batch.len(), 5);
    let bytes = batch.repr(UnixTime(T), 9).to_vec().unwrap();
    let r = Repr::parse_bytes(&bytes).unwrap();
    assert_eq!((r.msg_type, r.xid), (MessageType::BndUpd, 9));
    let got: Vec<Binding> = r
        .bindings()
        .map(|o| Binding::from_options(&o).unwrap())
        .collect();
    assert_eq!(got, all);
    // The parsed form re-emits to the same bytes.
    assert_eq!(r.to_vec().unwrap(), bytes);

    // A batch of one is byte for byte the message ISC sends.
    let mut one = BindingBatch::new(MessageType::BndUpd);
    assert!(one.push(&all[0].to_repr().options));
    let mut single = all[0].to_repr();
    single.time = UnixTime(T);
    single.xid = 9;
    assert_eq!(
        one.repr(UnixTime(T), 9).to_vec().unwrap(),
        single.to_vec().unwrap()
    );
    assert_eq!(
        Repr::parse_bytes(&single.to_vec().unwrap()).unwrap().more,
        &[] as &[u8]
    );
}

#[test]
fn batched_bndack_answers_each_binding_with_its_own_reject() {
    let refused = BindingError {
        reason: RejectReason::LessCriticalBindingInformation,
        message: "less critical binding information",
    };
    let mut batch = BindingBatch::new(MessageType::BndAck);
    let ips = [1, 2, 3].map(|n| Ipv4Addr::new(10, 0, 1, n));
    assert!(batch.push(&Binding::ack(ips[0], None).options));
    assert!(batch.push(&Binding::ack(ips[1], Some(&refused)).options));
    assert!(batch.push(&Binding::ack(ips[2], None).options));
    let bytes = batch.repr(UnixTime(T), 77).to_vec().unwrap();
    let r = Repr::parse_bytes(&bytes).unwrap();
    let got: Vec<_> = r
        .bindings()
        .map(|o| (o.assigned_ip.unwrap(), o.reject_reason))
        .collect();
    assert_eq!(
        got,
        [
            (ips[0], None),
            (ips[1], Some(RejectReason::LessCriticalBindingInformation)),
            (ips[2], None)
        ]
    );
}

#[test]
fn batches_stop_short_of_2048_bytes_and_are_signed_whole() {
    let key = b"a shared secret";
    let mut batch = BindingBatch::new(MessageType::BndUpd);
    let mut n = 0u8;
    while batch.push(&binding(n, BindingState::Active, 200).to_repr().options) {
        n += 1;
    }
    assert!(n >= 2, "at least two long bindings fit");
    assert_eq!(batch.len(), usize::from(n));
    // Short bindings (no client-id) fill a message with far more.
    let mut short = BindingBatch::new(MessageType::BndUpd);
    while short.push(
        &binding(short.len() as u8, BindingState::Free, 0)
            .to_repr()
            .options,
    ) {}
    assert!(
        short.len() >= 16,
        "{} short bindings per message",
        short.len()
    );
    for b in [&batch, &short] {
        let signed = digest::sign(&b.repr(UnixTime(T), 1), key).unwrap();
        assert!(signed.len() <= usize::from(msg::MAX_MESSAGE_LEN));
        digest::verify(&signed, key).unwrap();
        let r = Repr::parse_bytes(&signed).unwrap();
        assert_eq!(r.bindings().count(), b.len());
        assert!(r.options.digest.is_some(), "the digest ends the message");
        // Tampering with a later binding breaks the digest.
        let mut bad = signed.clone();
        let at = signed.len() - 60;
        bad[at] ^= 1;
        assert!(digest::verify(&bad, key).is_err());
    }
    // An option without an assigned IP is not a binding.
    assert!(!BindingBatch::new(MessageType::BndUpd).push(&msg::Options::default()));
}

#[test]
fn header_only_messages_as_isc_sends_them() {
    // UPDREQALL (failover.c:5004-5052), UPDREQ (:4952-5002), UPDDONE with the request's xid
    // (:5054-5104), CONTACT (:4386-4429), POOLREQ (:4873-4909): no options.
    for (t, ty) in [
        (0x07, MessageType::UpdReqAll),
        (0x09, MessageType::UpdReq),
        (0x08, MessageType::UpdDone),
        (0x0b, MessageType::Contact),
        (0x01, MessageType::PoolReq),
    ] {
        let v = hex(&format!("000c {t:02x} 0c 6553f100 0000002a"));
        roundtrip(&v, |r| {
            assert_eq!(r.msg_type, ty);
            assert_eq!(r.xid, 42);
            assert_eq!(r.options, Default::default());
        });
    }
}

#[test]
fn poolresp_and_disconnect_as_isc_sends_them() {
    // dhcp_failover_send_poolresp, failover.c:4911-4950: addresses-transferred, POOLREQ's xid.
    let v = hex("0014 02 0c 6553f100 00000007 0001 0004 00000011");
    roundtrip(&v, |r| {
        assert_eq!(r.options.addresses_transferred, Some(17))
    });
    // dhcp_failover_send_disconnect, failover.c:4610-4657: reject-reason, message.
    let d = hex(concat!(
        "002a 0c 0c 6553f100 00000008",
        "0015 0001 04",
        "0010 0015 74696d65206f666673657420746f6f206c61726765", // "time offset too large"
    ));
    roundtrip(&d, |r| {
        assert_eq!(r.msg_type, MessageType::Disconnect);
        assert_eq!(r.options.reject_reason, Some(RejectReason::TimeMismatch));
        assert_eq!(r.options.message, Some(&b"time offset too large"[..]));
    });
}

#[test]
fn payload_offset_below_12_reads_as_12_and_above_is_skipped() {
    // Windows sends 8 (reference §1.2); treat as 12.
    let v = hex("0011 0a 08 6553f100 00000001 0018 0001 02");
    let r = Repr::parse_bytes(&v).unwrap();
    assert_eq!(r.options.server_state, Some(2));
    // Offset 16: the four bytes after the header are skipped (failover.c:507-512).
    let v = hex("0015 0a 10 6553f100 00000001 deadbeef 0018 0001 04");
    let r = Repr::parse_bytes(&v).unwrap();
    assert_eq!(r.options.server_state, Some(4));
    // Offset past the end is refused.
    let v = hex("000c 0a 20 6553f100 00000001");
    assert!(matches!(
        Repr::parse_bytes(&v),
        Err(ParseError::BadPayloadOffset { .. })
    ));
    // We always send 12.
    let out = Repr::new(MessageType::Contact, UnixTime(T), 1)
        .to_vec()
        .unwrap();
    assert_eq!(out[3], 12);
}

#[test]
fn isc_parser_rules() {
    let parse =
        |s: &str| Repr::parse_bytes(&hex(s)).map(|r| (r.options.server_state, r.options.mclt));
    // Unknown codes (0, 30, 0xffff) are skipped, whatever their length.
    let o = parse("001c 0a 0c 6553f100 00000001 001e 0003 aabbcc 0000 0000 0018 0001 02").unwrap();
    assert_eq!(o.0, Some(2));
    // A known option not used in this type (MCLT in STATE) is skipped without a length check.
    let o = parse("0017 0a 0c 6553f100 00000001 000f 0002 abcd 0018 0001 02").unwrap();
    assert_eq!(o, (Some(2), None));
    // ... and may even repeat.
    assert!(parse("0019 0a 0c 6553f100 00000001 000f 0000 000f 0000 0018 0001 02").is_ok());
    // A repeated option is a protocol error (failover.c:715-720).
    assert_eq!(
        parse("0016 0a 0c 6553f100 00000001 0018 0001 02 0018 0001 03"),
        Err(ParseError::DuplicateOption(opt::SERVER_STATE))
    );
    // A second assigned-IP is a protocol error to ISC (so it never gets batches); tandem
    // reads it as the start of a second binding.
    let two = hex("001c 03 0c 6553f100 00000001 0002 0004 0a000105 0002 0004 0a000106");
    let r = Repr::parse_bytes(&two).unwrap();
    let ips: Vec<_> = r.bindings().map(|o| o.assigned_ip).collect();
    assert_eq!(
        ips,
        [
            Some(Ipv4Addr::new(10, 0, 1, 5)),
            Some(Ipv4Addr::new(10, 0, 1, 6))
        ]
    );
    // Within one binding a repeated option is still an error.
    assert_eq!(
        parse(concat!(
            "0026 03 0c 6553f100 00000001 0002 0004 0a000105",
            "0002 0004 0a000106 0003 0001 02 0003 0001 03"
        )),
        Err(ParseError::DuplicateOption(opt::BINDING_STATUS))
    );
    // Fixed sizes are exact (failover.c:743-756): 1-byte IP-flags (Windows) is refused.
    assert_eq!(
        parse("0011 03 0c 6553f100 00000001 000c 0001 01"),
        Err(ParseError::BadOptionLength {
            code: opt::IP_FLAGS,
            len: 1,
            expected: 2
        })
    );
    assert!(matches!(
        parse("0012 0a 0c 6553f100 00000001 0019 0002 0000"),
        Err(ParseError::BadOptionLength {
            code: opt::START_TIME_OF_STATE,
            ..
        })
    ));
    // An option running past the length (failover.c:672-683).
    assert_eq!(
        parse("0011 0a 0c 6553f100 00000001 0018 0005 02"),
        Err(ParseError::OptionOverflow)
    );
    assert_eq!(
        parse("000e 0a 0c 6553f100 00000001 0018"),
        Err(ParseError::OptionOverflow)
    );
    // Types above 12 drop the link (failover.c:661-665); type 0 is refused too.
    assert_eq!(
        parse("000c 0d 0c 6553f100 00000001"),
        Err(ParseError::UnknownType(13))
    );
    assert_eq!(
        parse("000c 00 0c 6553f100 00000001"),
        Err(ParseError::UnknownType(0))
    );
    // Lengths outside 12..=2048.
    assert_eq!(
        parse("000b 0b 0c 6553f100 00000001"),
        Err(ParseError::BadLength(11))
    );
    assert_eq!(
        parse("0801 0b 0c 6553f100 00000001"),
        Err(ParseError::BadLength(2049))
    );
    assert_eq!(
        parse("0010 0b 0c 6553f100 00000001"),
        Err(ParseError::Truncated)
    );
}

#[test]
fn digest_is_accepted_anywhere_and_emitted_last() {
    // message-digest (17) in the middle of a STATE: ISC's table types it FT_BYTES and allows
    // it in no message (stables.c:75, :108-131), so it is skipped wherever it is.
    let v = hex("001d 0a 0c 6553f100 00000001 0011 0003 01abcd 0018 0001 02 0017 0001 00");
    let r = Repr::parse_bytes(&v).unwrap();
    assert_eq!(r.options.digest, Some(&[1, 0xab, 0xcd][..]));
    let out = r.to_vec().unwrap();
    assert_eq!(
        &out[out.len() - 7..],
        &hex("0011 0003 01abcd")[..],
        "digest last"
    );
}

#[test]
fn message_view_accessors_and_setters() {
    let mut buf = [0u8; 12];
    let mut m = Message::new_unchecked(&mut buf[..]);
    m.set_length(12);
    m.set_msg_type(MessageType::Contact as u8);
    m.set_payload_offset(12);
    m.set_time(UnixTime(T));
    m.set_xid(0xdead_beef);
    let m = Message::new_checked(&buf[..]).unwrap();
    assert_eq!((m.length(), m.msg_type(), m.xid()), (12, 11, 0xdead_beef));
    assert_eq!(m.options().count(), 0);
    assert_eq!(
        Message::new_checked(&buf[..5]).unwrap_err(),
        ParseError::Truncated
    );
}

#[test]
fn emit_refuses_oversized_messages() {
    let big = vec![b'x'; 2100];
    let mut r = Repr::new(MessageType::Disconnect, UnixTime(T), 1);
    r.options.message = Some(&big);
    assert!(matches!(r.to_vec(), Err(msg::EmitError::TooLong(_))));
    let mut small = [0u8; 10];
    let r = Repr::new(MessageType::Contact, UnixTime(T), 1);
    assert_eq!(
        r.emit(&mut Message::new_unchecked(&mut small[..])),
        Err(msg::EmitError::BufferTooSmall)
    );
}

#[test]
fn reject_reasons_and_states_map_both_ways() {
    for v in 0..=255u8 {
        assert_eq!(RejectReason::from_u8(v).to_u8(), v);
        if let Some(s) = ServerState::from_u8(v) {
            assert_eq!(s as u8, v);
        }
        if let Some(b) = BindingStatus::from_u8(v) {
            assert_eq!(b as u8, v);
            assert_eq!(BindingStatus::from_lease(b.to_lease()), Some(b));
        }
    }
    assert_eq!(ServerState::from_u8(254), Some(ServerState::RecoverWait));
    assert_eq!(ServerState::from_u8(12), None);
    assert_eq!(BindingStatus::from_u8(1), Some(BindingStatus::Free));
    assert_eq!(BindingStatus::from_u8(7), Some(BindingStatus::Backup));
    assert_eq!(BindingStatus::from_u8(8), None);
    assert_eq!(
        RejectReason::from_u8(18),
        RejectReason::HashBucketAssignmentConflict
    );
}

#[test]
fn stream_decoder_frames_whole_messages() {
    let a = Repr::new(MessageType::Contact, UnixTime(T), 1)
        .to_vec()
        .unwrap();
    let mut s = Repr::new(MessageType::State, UnixTime(T), 2);
    s.options.server_state = Some(2);
    let mut stream = a.clone();
    s.encode_into(&mut stream).unwrap();
    // Byte by byte.
    let mut d = StreamDecoder::new();
    let mut frames = Vec::new();
    for b in &stream {
        d.feed(std::slice::from_ref(b));
        while let Some(f) = d.next_frame().unwrap() {
            frames.push(f.to_vec());
        }
    }
    assert_eq!(frames, vec![a.clone(), s.to_vec().unwrap()]);
    assert_eq!(d.buffered(), 0);
    // All at once.
    let mut d = StreamDecoder::new();
    d.feed(&stream);
    assert_eq!(d.next_frame().unwrap(), Some(&a[..]));
    assert_eq!(
        Repr::parse_bytes(d.next_frame().unwrap().unwrap()).unwrap(),
        s
    );
    assert_eq!(d.next_frame().unwrap(), None);
    // A bad length fails the stream for good.
    let mut d = StreamDecoder::new();
    d.feed(&hex("0005 0b"));
    assert_eq!(d.next_frame(), Err(FrameError::BadLength(5)));
    d.feed(&a);
    assert_eq!(d.next_frame(), Err(FrameError::BadLength(5)));
    let mut d = StreamDecoder::new();
    d.feed(&hex("0900"));
    assert_eq!(d.next_frame(), Err(FrameError::BadLength(0x900)));
}

/// Raw option data of the right shape for `code`, from arbitrary bytes.
fn option_data(code: u16, seed: &[u8]) -> Vec<u8> {
    let fixed = match code {
        opt::BINDING_STATUS
        | opt::DELAYED_SERVICE_PARAMETER
        | opt::PROTOCOL_VERSION
        | opt::REJECT_REASON
        | opt::SERVER_FLAGS
        | opt::SERVER_STATE
        | opt::TLS_REPLY
        | opt::TLS_REQUEST => Some(1),
        opt::IP_FLAGS => Some(2),
        opt::ADDRESSES_TRANSFERRED
        | opt::ASSIGNED_IP_ADDRESS
        | opt::CLTT
        | opt::LEASE_EXPIRATION_TIME
        | opt::MAX_UNACKED_BNDUPD
        | opt::MCLT
        | opt::POTENTIAL_EXPIRATION_TIME
        | opt::RECEIVE_TIMER
        | opt::START_TIME_OF_STATE => Some(4),
        _ => None,
    };
    match fixed {
        Some(n) => seed
            .iter()
            .copied()
            .cycle()
            .chain(std::iter::repeat(0))
            .take(n)
            .collect(),
        None if code == opt::DDNS => [0u8, 1].iter().chain(seed).copied().collect(),
        None => seed.to_vec(),
    }
}

fn arb_message() -> impl Strategy<Value = Vec<u8>> {
    (
        1u8..=12,
        any::<u32>(),
        any::<u32>(),
        proptest::collection::vec(
            (1u16..=31, proptest::collection::vec(any::<u8>(), 0..24)),
            0..12,
        ),
        any::<u64>(),
    )
        .prop_map(|(ty, time, xid, opts, shuffle)| {
            let t = MessageType::from_u8(ty).unwrap();
            let mut seen = std::collections::BTreeSet::new();
            let mut body = Vec::new();
            let mut chosen: Vec<(u16, Vec<u8>)> = opts
                .into_iter()
                .filter(|(c, _)| *c > opt::MAX || !t.allows(*c) || seen.insert(*c))
                .map(|(c, seed)| (c, option_data(c, &seed)))
                .collect();
            let n = chosen.len() as u64 + 1;
            chosen.rotate_left(usize::try_from(shuffle % n).unwrap() % n as usize);
            for (c, d) in chosen {
                body.extend_from_slice(&c.to_be_bytes());
                body.extend_from_slice(&u16::try_from(d.len()).unwrap().to_be_bytes());
                body.extend_from_slice(&d);
            }
            let mut m = Vec::new();
            m.extend_from_slice(&u16::try_from(12 + body.len()).unwrap().to_be_bytes());
            m.extend_from_slice(&[ty, 12]);
            m.extend_from_slice(&time.to_be_bytes());
            m.extend_from_slice(&xid.to_be_bytes());
            m.extend_from_slice(&body);
            m
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// parse ∘ emit ∘ parse = parse, and emit is a fixed point after one pass.
    #[test]
    fn emit_parse_round_trip(bytes in arb_message()) {
        let r = Repr::parse_bytes(&bytes).expect("well-formed message parses");
        let out = r.to_vec().unwrap();
        prop_assert_eq!(out.len(), r.buffer_len());
        let r2 = Repr::parse_bytes(&out).unwrap();
        prop_assert_eq!(r, r2);
        prop_assert_eq!(r2.to_vec().unwrap(), out);
    }

    /// Arbitrary bytes never panic the view, the iterator, the parser or the framer.
    #[test]
    fn malformed_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600), cut in 1usize..64) {
        if let Ok(m) = Message::new_checked(&bytes[..]) {
            let _ = (m.length(), m.msg_type(), m.time(), m.xid(), m.payload().len());
            for o in m.options() { let _ = o; }
        }
        let _ = Message::new_unchecked(&bytes[..]).options().count();
        let _ = msg::OptionIter::new(&bytes).count();
        let _ = Repr::parse_bytes(&bytes);
        let mut d = StreamDecoder::new();
        for chunk in bytes.chunks(cut) {
            d.feed(chunk);
            while let Ok(Some(f)) = d.next_frame() {
                let _ = Repr::parse_bytes(f);
            }
        }
    }

    /// Batches of arbitrary bindings: every binding comes back, in order.
    #[test]
    fn batches_round_trip(spec in proptest::collection::vec((any::<u8>(), 0usize..40, 0u8..4), 1..40)) {
        let states = [BindingState::Active, BindingState::Free, BindingState::Backup, BindingState::Released];
        let mut batch = BindingBatch::new(MessageType::BndUpd);
        let mut sent = Vec::new();
        for (n, id, st) in spec {
            let b = binding(n, states[usize::from(st)], id);
            if batch.push(&b.to_repr().options) {
                sent.push(b);
            }
        }
        let bytes = batch.repr(UnixTime(T), 3).to_vec().unwrap();
        prop_assert!(bytes.len() <= usize::from(msg::MAX_MESSAGE_LEN));
        let r = Repr::parse_bytes(&bytes).unwrap();
        let got: Vec<Binding> = r.bindings().map(|o| Binding::from_options(&o).unwrap()).collect();
        prop_assert_eq!(got, sent);
    }

    /// A message with one byte flipped still never panics, and either parses or errors.
    #[test]
    fn mutated_messages_never_panic(bytes in arb_message(), at in any::<prop::sample::Index>(), x in any::<u8>()) {
        let mut b = bytes;
        let i = at.index(b.len());
        b[i] ^= x;
        if let Ok(r) = Repr::parse_bytes(&b) {
            let out = r.to_vec().unwrap();
            prop_assert_eq!(Repr::parse_bytes(&out).unwrap(), r);
        }
    }
}

/// Messages the real ISC dhcpd 4.4.3-P1 sent to our state machine in `tests/failover_isc.rs`
/// (kept with `FAILOVER_ISC_CAPTURE`): each parses and re-emits to the same bytes.
#[test]
fn captured_isc_messages_parse_and_reemit() {
    macro_rules! captured {
        ($name:literal) => {
            (
                $name,
                &include_bytes!(concat!("data/isc-4.4.3/", $name, ".bin"))[..],
            )
        };
    }
    let all = [
        captured!("connect"),
        captured!("connectack"),
        captured!("state-recover-startup"),
        captured!("state-normal"),
        captured!("updreqall"),
        captured!("bndupd-free"),
        captured!("bndupd-backup"),
        captured!("upddone"),
        captured!("contact"),
    ];
    for (name, bytes) in all {
        let r = Repr::parse_bytes(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.to_vec().unwrap(), bytes, "{name} re-emits differently");
        assert_eq!(bytes[3], 12, "{name}: ISC's payload offset");
        let o = &r.options;
        match name {
            "connect" => {
                assert_eq!(r.msg_type, MessageType::Connect);
                assert_eq!(r.xid, 0, "ISC's first xid on a link is 0");
                assert_eq!(o.relationship_name, Some(&b"edge"[..]));
                assert_eq!(o.vendor_class, Some(&b"isc-4.4.3-P1"[..]));
                assert_eq!(
                    (o.max_unacked, o.receive_timer, o.mclt),
                    (Some(10), Some(20), Some(600))
                );
                assert_eq!((o.protocol_version, o.tls_request), (Some(1), Some(0)));
                // `split 128`: LSB-first, the primary's buckets set.
                assert_eq!(o.hba.and_then(Hba::from_bytes), Some(Hba::split(128)));
            }
            "connectack" => {
                assert_eq!(r.msg_type, MessageType::ConnectAck);
                assert_eq!(r.xid, 1, "echoes our CONNECT's xid");
                assert_eq!(o.tls_reply, Some(0));
                assert_eq!(o.reject_reason, None);
            }
            "state-recover-startup" => {
                assert_eq!(
                    o.server_state.and_then(ServerState::from_u8),
                    Some(ServerState::Recover)
                );
                assert_eq!(o.server_flags, Some(msg::SERVER_FLAG_STARTUP));
            }
            "state-normal" => {
                assert_eq!(
                    o.server_state.and_then(ServerState::from_u8),
                    Some(ServerState::Normal)
                );
                assert_eq!(o.server_flags, Some(0));
            }
            "bndupd-free" | "bndupd-backup" => {
                assert_eq!(r.msg_type, MessageType::BndUpd);
                assert_eq!(o.assigned_ip, Some(Ipv4Addr::new(10, 77, 0, 100)));
                let want = if name == "bndupd-free" {
                    BindingStatus::Free
                } else {
                    BindingStatus::Backup
                };
                assert_eq!(
                    o.binding_status.and_then(BindingStatus::from_u8),
                    Some(want)
                );
                // No client: no client-id, chaddr, CLTT or IP-flags (failover.c:4740-4760).
                assert_eq!(
                    (o.client_id, o.chaddr, o.cltt, o.ip_flags),
                    (None, None, None, None)
                );
                assert!(
                    o.lease_expiry.is_some() && o.potential_expiry.is_some() && o.stos.is_some()
                );
            }
            "updreqall" => assert_eq!(r.msg_type, MessageType::UpdReqAll),
            "upddone" => assert_eq!(r.msg_type, MessageType::UpdDone),
            "contact" => assert_eq!(r.msg_type, MessageType::Contact),
            _ => unreachable!(),
        }
    }
}
