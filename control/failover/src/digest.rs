//! The message digest between tandem peers (draft §12.17 option 17), HMAC-SHA256 with a
//! shared secret, as Windows does by default (MS-DHCPF; its type number 2).
//!
//! ISC has no digest (it skips option 17, `reference/failover-protocol.md` §1.1), so this is
//! for tandem-to-tandem links only; the driver turns it on when `shared_secret_file` is set
//! and then refuses unsigned or mis-signed messages (reject reasons 21 and 20).
//!
//! Layout (ours; the draft leaves it open and puts the option first, ISC would want it last):
//! the digest option is the **last** option, `00 11 00 21 02 <32 bytes>`. The HMAC covers a
//! context, then the whole message as sent (header with its final length, every option, the
//! digest option's code, length and type byte) with the 32 digest bytes set to zero.
//!
//! Replay protection (the context, [`sign_in`] and [`verify_in`]): each end sends a fresh
//! [`NONCE_LEN`]-byte nonce in its CONNECT or CONNECTACK ([`nonce_option`]); the CONNECTACK's
//! digest covers the CONNECT's nonce, and every later message on the link is signed with the
//! link's own key ([`link_key`], from the secret and both nonces) over its direction and its
//! sequence number on the link. A message recorded on one link fails on any other, and
//! a message repeated, dropped or reordered within a link fails there.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::msg::{EmitError, HEADER_LEN, Message, OptionIter, Repr, opt};

/// Digest type byte for HMAC-SHA256 (the Windows "Microsoft" type).
pub const HMAC_SHA256: u8 = 2;
/// Bytes of an HMAC-SHA256 value.
pub const DIGEST_LEN: usize = 32;

/// Bytes of a connection nonce.
pub const NONCE_LEN: usize = 16;
/// The enterprise number heading our vendor-specific option (draft §12.29): 32473, the
/// number RFC 5612 sets aside for documentation, as tandem has none of its own; only tandem
/// peers sharing a secret ever exchange it.
pub const ENTERPRISE: [u8; 4] = 32473u32.to_be_bytes();

/// The vendor-specific option value carrying a connection nonce.
pub fn nonce_option(nonce: &[u8; NONCE_LEN]) -> [u8; 4 + NONCE_LEN] {
    let mut v = [0; 4 + NONCE_LEN];
    v[..4].copy_from_slice(&ENTERPRISE);
    v[4..].copy_from_slice(nonce);
    v
}

/// The nonce in a vendor-specific option value, if it is ours.
pub fn nonce_of(vendor_options: Option<&[u8]>) -> Option<[u8; NONCE_LEN]> {
    let v = vendor_options?;
    if v.len() != 4 + NONCE_LEN || v[..4] != ENTERPRISE {
        return None;
    }
    let mut n = [0; NONCE_LEN];
    n.copy_from_slice(&v[4..]);
    Some(n)
}

/// A fresh nonce: the HMAC, under the secret, of a seed the driver drew from the operating
/// system's random source and a count that never repeats in a process. Unpredictable to
/// anyone without the secret and the seed.
pub fn nonce(key: &[u8], seed: &[u8], count: u64) -> [u8; NONCE_LEN] {
    let mut m = mac(key);
    m.update(b"tandem failover nonce");
    m.update(seed);
    m.update(&count.to_be_bytes());
    let mut n = [0; NONCE_LEN];
    n.copy_from_slice(&m.finalize().into_bytes()[..NONCE_LEN]);
    n
}

/// The key of one link: the HMAC, under the secret, of the primary's and the secondary's
/// nonces.
pub fn link_key(key: &[u8], primary: &[u8; NONCE_LEN], secondary: &[u8; NONCE_LEN]) -> [u8; 32] {
    let mut m = mac(key);
    m.update(b"tandem failover link");
    m.update(primary);
    m.update(secondary);
    m.finalize().into_bytes().into()
}

/// The context of a message on an established link: its direction (0 from the primary, 1
/// from the secondary) and its sequence number in that direction.
pub fn link_context(from_primary: bool, seq: u64) -> [u8; 9] {
    let mut c = [0; 9];
    c[0] = u8::from(!from_primary);
    c[1..].copy_from_slice(&seq.to_be_bytes());
    c
}

/// Why a message's digest is not accepted; each maps to a draft reject reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Reject reason 21.
    #[error("message digest missing")]
    Missing,
    /// Reject reason 12: a type other than HMAC-SHA256, or a wrong length.
    #[error("message digest type {0} not supported")]
    Unsupported(u8),
    /// The digest is not the last option, or appears twice.
    #[error("message digest not the single last option")]
    Misplaced,
    /// Reject reason 20.
    #[error("message digest does not match")]
    Mismatch,
    #[error("message malformed")]
    Malformed,
}

impl DigestError {
    /// The reject reason to send for this failure.
    pub fn reject_reason(self) -> super::msg::RejectReason {
        use super::msg::RejectReason as R;
        match self {
            Self::Missing => R::DigestMissing,
            Self::Unsupported(_) => R::DigestNotSupported,
            Self::Misplaced | Self::Mismatch | Self::Malformed => R::DigestFailed,
        }
    }
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts every key length"),
    }
}

/// Encodes `repr` (any digest it carries is replaced) with an HMAC-SHA256 digest last.
pub fn sign(repr: &Repr<'_>, key: &[u8]) -> Result<Vec<u8>, EmitError> {
    sign_in(repr, key, &[])
}

/// [`sign`], with the digest also covering `context` (not sent).
pub fn sign_in(repr: &Repr<'_>, key: &[u8], context: &[u8]) -> Result<Vec<u8>, EmitError> {
    let placeholder = [HMAC_SHA256; 1 + DIGEST_LEN];
    let mut r = *repr;
    r.options.digest = Some(&placeholder);
    let mut bytes = r.to_vec()?;
    let start = bytes.len() - DIGEST_LEN;
    bytes[start..].fill(0);
    let mut m = mac(key);
    m.update(context);
    m.update(&bytes);
    bytes[start..].copy_from_slice(&m.finalize().into_bytes());
    Ok(bytes)
}

/// Checks the digest of one whole message (a frame from the stream decoder).
pub fn verify(frame: &[u8], key: &[u8]) -> Result<(), DigestError> {
    verify_in(frame, key, &[])
}

/// [`verify`], for a digest that covers `context` too.
pub fn verify_in(frame: &[u8], key: &[u8], context: &[u8]) -> Result<(), DigestError> {
    let view = Message::new_checked(frame).map_err(|_| DigestError::Malformed)?;
    let start = usize::from(view.payload_offset().max(HEADER_LEN));
    let mut at = start;
    let mut found: Option<(usize, &[u8])> = None;
    for o in OptionIter::new(view.payload()) {
        let o = o.map_err(|_| DigestError::Malformed)?;
        if found.is_some() {
            // Something after the digest, or a second digest.
            return Err(DigestError::Misplaced);
        }
        if o.code == opt::MESSAGE_DIGEST {
            found = Some((at + 4, o.data));
        }
        at += 4 + o.data.len();
    }
    let (data_at, data) = found.ok_or(DigestError::Missing)?;
    match data {
        [HMAC_SHA256, value @ ..] if value.len() == DIGEST_LEN => {
            let end = usize::from(view.length());
            let mut copy = frame.get(..end).ok_or(DigestError::Malformed)?.to_vec();
            copy.get_mut(data_at + 1..data_at + 1 + DIGEST_LEN)
                .ok_or(DigestError::Malformed)?
                .fill(0);
            let mut m = mac(key);
            m.update(context);
            m.update(&copy);
            m.verify_slice(value).map_err(|_| DigestError::Mismatch)
        }
        [t, ..] => Err(DigestError::Unsupported(*t)),
        [] => Err(DigestError::Unsupported(0)),
    }
}
