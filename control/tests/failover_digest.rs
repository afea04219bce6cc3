//! HMAC-SHA256 message digest between tandem peers.

use control::failover::UnixTime;
use control::failover::digest::{DigestError, sign, verify};
use control::failover::msg::{MessageType, RejectReason, Repr};

const KEY: &[u8] = b"edge-pair-secret";

fn hex(s: &str) -> Vec<u8> {
    let d: String = s.split_whitespace().collect();
    (0..d.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&d[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn signed_contact_known_answer() {
    // HMAC-SHA256(key, message with the 32 digest bytes zeroed), computed independently
    // (Python hmac/hashlib) over 0031 0b 0c 6553f100 00000001 0011 0021 02 00*32.
    let r = Repr::new(MessageType::Contact, UnixTime(0x6553_f100), 1);
    let signed = sign(&r, KEY).unwrap();
    assert_eq!(
        signed,
        hex(concat!(
            "0031 0b 0c 6553f100 00000001 0011 0021 02",
            "b6b8ff1ca221087ff51da5811731427f1e24c8384d522f234707272b4d269360"
        ))
    );
    assert_eq!(verify(&signed, KEY), Ok(()));
    // ISC-style parsing still sees the plain message (the digest is just an option).
    let back = Repr::parse_bytes(&signed).unwrap();
    assert_eq!(back.msg_type, MessageType::Contact);
    assert_eq!(back.options.digest.map(<[u8]>::len), Some(33));
}

#[test]
fn signed_messages_verify_and_tampering_fails() {
    let mut r = Repr::new(MessageType::State, UnixTime(1_700_000_000), 7);
    r.options.server_state = Some(2);
    r.options.server_flags = Some(0);
    r.options.stos = Some(UnixTime(1_699_999_000));
    let signed = sign(&r, KEY).unwrap();
    assert_eq!(verify(&signed, KEY), Ok(()));
    assert_eq!(verify(&signed, b"other"), Err(DigestError::Mismatch));
    for i in 0..signed.len() {
        let mut t = signed.clone();
        t[i] ^= 0x01;
        assert!(verify(&t, KEY).is_err(), "flip at byte {i} accepted");
    }
    // Unsigned.
    assert_eq!(verify(&r.to_vec().unwrap(), KEY), Err(DigestError::Missing));
    assert_eq!(
        DigestError::Missing.reject_reason(),
        RejectReason::DigestMissing
    );
    assert_eq!(
        DigestError::Mismatch.reject_reason(),
        RejectReason::DigestFailed
    );
}

#[test]
fn digest_must_be_last_and_hmac_sha256() {
    // Digest (type 2, 32 bytes) followed by another option.
    let mut v = hex("0036 0a 0c 6553f100 00000001 0011 0021 02");
    v.extend_from_slice(&[0; 32]);
    v.extend_from_slice(&hex("0018 0001 02"));
    assert_eq!(verify(&v, KEY), Err(DigestError::Misplaced));
    // Type 1 (HMAC-MD5, draft): not supported.
    let v = hex("0021 0b 0c 6553f100 00000001 0011 0011 01 00000000000000000000000000000000");
    assert_eq!(verify(&v, KEY), Err(DigestError::Unsupported(1)));
    assert_eq!(
        DigestError::Unsupported(1).reject_reason(),
        RejectReason::DigestNotSupported
    );
    // Short digest.
    let v = hex("0014 0b 0c 6553f100 00000001 0011 0004 02 000000");
    assert_eq!(verify(&v, KEY), Err(DigestError::Unsupported(2)));
    assert_eq!(verify(&hex("0005"), KEY), Err(DigestError::Malformed));
}
