//! UDP datagrams (RFC 768). The checksum covers the IPv4 pseudo-header and is computed on
//! emit; it is NOT verified on parse: frames looped through a veth or handed up by a NIC with
//! checksum offload carry a partial checksum, and a DHCP server must not drop them. A zero
//! checksum means "none" (RFC 768, "Fields").

use core::net::Ipv4Addr;

use super::{Error, Result, checksum, ipv4::PROTOCOL_UDP};

/// Length of the header.
pub const HEADER_LEN: usize = 8;

mod field {
    use core::ops::Range;

    /// Source Port.
    pub const SRC_PORT: Range<usize> = 0..2;
    /// Destination Port.
    pub const DST_PORT: Range<usize> = 2..4;
    /// Length of header and data.
    pub const LENGTH: Range<usize> = 4..6;
    /// Checksum.
    pub const CHECKSUM: Range<usize> = 6..8;
}

/// A read/write view of a UDP datagram.
///
/// After [`Packet::check_len`] succeeds, no accessor panics and [`Packet::payload`] is the
/// data up to Length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer and runs [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks `8 <= Length <= buffer length`.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error);
        }
        let l = usize::from(self.len());
        if l < HEADER_LEN || l > len {
            return Err(Error);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn get16(&self, r: core::ops::Range<usize>) -> u16 {
        let d = &self.buffer.as_ref()[r];
        u16::from_be_bytes([d[0], d[1]])
    }

    /// Source Port.
    pub fn src_port(&self) -> u16 {
        self.get16(field::SRC_PORT)
    }

    /// Destination Port.
    pub fn dst_port(&self) -> u16 {
        self.get16(field::DST_PORT)
    }

    /// Length (header and data).
    pub fn len(&self) -> u16 {
        self.get16(field::LENGTH)
    }

    /// Whether Length says there is no data.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// Checksum.
    pub fn checksum(&self) -> u16 {
        self.get16(field::CHECKSUM)
    }

    /// Whether the checksum is absent (zero) or correct over the pseudo-header. Diagnostic
    /// only: parse never calls it (see the module docs).
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let len = self.len();
        let data = &self.buffer.as_ref()[..usize::from(len)];
        checksum::combine(&[
            checksum::pseudo_header(src, dst, PROTOCOL_UDP, len),
            checksum::sum(data),
        ]) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The data, from the header to Length.
    pub fn payload(&self) -> &'a [u8] {
        let data: &'a [u8] = self.buffer.as_ref();
        &data[HEADER_LEN..usize::from(self.len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set16(&mut self, r: core::ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets Source Port.
    pub fn set_src_port(&mut self, v: u16) {
        self.set16(field::SRC_PORT, v);
    }

    /// Sets Destination Port.
    pub fn set_dst_port(&mut self, v: u16) {
        self.set16(field::DST_PORT, v);
    }

    /// Sets Length.
    pub fn set_len(&mut self, v: u16) {
        self.set16(field::LENGTH, v);
    }

    /// Sets Checksum.
    pub fn set_checksum(&mut self, v: u16) {
        self.set16(field::CHECKSUM, v);
    }

    /// Computes the full checksum over the pseudo-header, header and data up to Length and
    /// stores it; a computed zero is sent as all ones (RFC 768).
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let len = self.len();
        let sum = checksum::combine(&[
            checksum::pseudo_header(src, dst, PROTOCOL_UDP, len),
            checksum::sum(&self.buffer.as_ref()[..usize::from(len)]),
        ]);
        let c = !sum;
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }

    /// The data up to Length, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// A validated UDP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    /// Source Port.
    pub src_port: u16,
    /// Destination Port.
    pub dst_port: u16,
    /// Length of the data (Length minus 8).
    pub payload_len: usize,
}

impl Repr {
    /// Parses the header; the checksum is deliberately not verified (module docs).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: usize::from(packet.len()) - HEADER_LEN,
        })
    }

    /// Length of the header.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header and the checksum over the pseudo-header; the data
    /// (`payload_len` bytes after the header) must already be in place.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        src_addr: Ipv4Addr,
        dst_addr: Ipv4Addr,
    ) -> Result<()> {
        let len = u16::try_from(HEADER_LEN + self.payload_len).map_err(|_| Error)?;
        if packet.buffer.as_ref().len() < usize::from(len) {
            return Err(Error);
        }
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(len);
        packet.fill_checksum(src_addr, dst_addr);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_roundtrip() {
        let mut b = [0u8; 13];
        b[8..].copy_from_slice(b"hello");
        let (s, d) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let repr = Repr {
            src_port: 67,
            dst_port: 68,
            payload_len: 5,
        };
        repr.emit(&mut Packet::new_unchecked(&mut b[..]), s, d)
            .unwrap();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum(s, d));
        assert_eq!(Repr::parse(&p), Ok(repr));
        assert_eq!(p.payload(), b"hello");
        let mut bad = b;
        bad[9] ^= 0x10;
        assert!(!Packet::new_unchecked(&bad[..]).verify_checksum(s, d));
        // A bad checksum does not fail parse.
        assert!(Repr::parse(&Packet::new_unchecked(&bad[..])).is_ok());
    }

    #[test]
    fn bad_length() {
        let mut b = [0u8; 10];
        b[4..6].copy_from_slice(&11u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&b[..]), Err(Error));
        b[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&b[..]), Err(Error));
    }
}
