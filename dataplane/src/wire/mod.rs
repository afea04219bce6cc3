//! Wire formats, in smoltcp's two levels: a zero-copy `Packet<T: AsRef<[u8]>>` view whose
//! accessors never panic after `check_len`, and a validated `Repr` with `parse`,
//! `buffer_len` and `emit`.

pub mod dhcpv4;

/// The fast path's one error: the packet is malformed. Callers drop and count it by the
/// reason their own context knows; nothing else is carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error;

pub type Result<T> = core::result::Result<T, Error>;
