//! Wire formats, in smoltcp's two levels: a zero-copy `Packet<T: AsRef<[u8]>>` view whose
//! accessors never panic after `check_len`, and a validated `Repr` with `parse`,
//! `buffer_len` and `emit`.
//!
//! - [`ethernet`]: Ethernet II with at most one IEEE 802.1Q tag.
//! - [`ipv4`]: IPv4 (RFC 791), unfragmented only.
//! - [`udp`]: UDP (RFC 768).
//! - [`dhcpv4`]: BOOTP/DHCPv4 (RFC 951, RFC 2131, RFC 2132, RFC 3396).
//! - [`options`]: the BOOTP vendor-extension TLV area (RFC 2132 §2).
//! - [`relay`]: the relay agent information option 82 (RFC 3046).
//! - [`frame`]: whole Ethernet/IPv4/UDP/DHCP frames, the only place that knows the offsets.
//!
//! Nothing here allocates and nothing here is `unsafe`.

#![forbid(unsafe_code)]

mod checksum;
pub mod dhcpv4;
pub mod ethernet;
pub mod frame;
pub mod ipv4;
pub mod options;
pub mod relay;
pub mod udp;

/// The fast path's one error: the packet is malformed. Callers drop and count it by the
/// reason their own context knows; nothing else is carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error;

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("malformed packet")
    }
}

impl core::error::Error for Error {}

pub type Result<T> = core::result::Result<T, Error>;
