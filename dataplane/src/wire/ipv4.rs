//! IPv4 headers (RFC 791 §3.1). The header checksum is verified on parse and computed on
//! emit; options (IHL > 5) are skipped; fragments are rejected, since a DHCP message is
//! never fragmented on a link tandem serves (RFC 2131 §2: at least 576 bytes must pass).

use core::net::Ipv4Addr;

use super::{Error, Result, checksum};

/// Protocol number of UDP (RFC 768).
pub const PROTOCOL_UDP: u8 = 17;
/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

mod field {
    use core::ops::Range;

    /// Version (4 bits) and IHL, the header length in 32-bit words (4 bits).
    pub const VER_IHL: usize = 0;
    /// Type of Service (now DSCP and ECN, RFC 2474, RFC 3168).
    pub const TOS: usize = 1;
    /// Total Length of the datagram, header included.
    pub const LENGTH: Range<usize> = 2..4;
    /// Identification.
    pub const IDENT: Range<usize> = 4..6;
    /// Flags (reserved, DF, MF) and Fragment Offset.
    pub const FLG_OFF: Range<usize> = 6..8;
    /// Time to Live.
    pub const TTL: usize = 8;
    /// Protocol.
    pub const PROTOCOL: usize = 9;
    /// Header Checksum.
    pub const CHECKSUM: Range<usize> = 10..12;
    /// Source Address.
    pub const SRC_ADDR: Range<usize> = 12..16;
    /// Destination Address.
    pub const DST_ADDR: Range<usize> = 16..20;
}

/// Flag "don't fragment".
const FLAG_DF: u16 = 0x4000;
/// Flag "more fragments".
const FLAG_MF: u16 = 0x2000;
/// Mask of the Fragment Offset.
const OFFSET_MASK: u16 = 0x1fff;

/// A read/write view of an IPv4 packet.
///
/// After [`Packet::check_len`] succeeds, no accessor panics and [`Packet::payload`] is the
/// data up to Total Length (Ethernet padding excluded).
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

    /// Checks `20 <= IHL*4 <= Total Length <= buffer length`.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error);
        }
        let hlen = self.header_len();
        let total = usize::from(self.total_len());
        if hlen < HEADER_LEN || total < hlen || len < total {
            return Err(Error);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn data(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn get16(&self, r: core::ops::Range<usize>) -> u16 {
        let d = &self.data()[r];
        u16::from_be_bytes([d[0], d[1]])
    }

    fn get_addr(&self, r: core::ops::Range<usize>) -> Ipv4Addr {
        let d = &self.data()[r];
        Ipv4Addr::new(d[0], d[1], d[2], d[3])
    }

    /// Version.
    pub fn version(&self) -> u8 {
        self.data()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.data()[field::VER_IHL] & 0x0f) * 4
    }

    /// Type of Service.
    pub fn tos(&self) -> u8 {
        self.data()[field::TOS]
    }

    /// Total Length.
    pub fn total_len(&self) -> u16 {
        self.get16(field::LENGTH)
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        self.get16(field::IDENT)
    }

    /// Flag DF.
    pub fn dont_frag(&self) -> bool {
        self.get16(field::FLG_OFF) & FLAG_DF != 0
    }

    /// Flag MF.
    pub fn more_frags(&self) -> bool {
        self.get16(field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment Offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (self.get16(field::FLG_OFF) & OFFSET_MASK) << 3
    }

    /// Time to Live.
    pub fn ttl(&self) -> u8 {
        self.data()[field::TTL]
    }

    /// Protocol.
    pub fn protocol(&self) -> u8 {
        self.data()[field::PROTOCOL]
    }

    /// Header Checksum.
    pub fn checksum(&self) -> u16 {
        self.get16(field::CHECKSUM)
    }

    /// Source Address.
    pub fn src_addr(&self) -> Ipv4Addr {
        self.get_addr(field::SRC_ADDR)
    }

    /// Destination Address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        self.get_addr(field::DST_ADDR)
    }

    /// Whether the header checksum is valid (RFC 791: the sum over the header is all ones).
    pub fn verify_checksum(&self) -> bool {
        checksum::sum(&self.data()[..self.header_len()]) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload: from the end of the header (options skipped) to Total Length.
    pub fn payload(&self) -> &'a [u8] {
        let data: &'a [u8] = self.buffer.as_ref();
        &data[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set16(&mut self, r: core::ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets Version and IHL from a header length in bytes (a multiple of 4, 20..=60).
    pub fn set_version_and_header_len(&mut self, version: u8, header_len: u8) {
        self.buffer.as_mut()[field::VER_IHL] = (version << 4) | ((header_len / 4) & 0x0f);
    }

    /// Sets Type of Service.
    pub fn set_tos(&mut self, v: u8) {
        self.buffer.as_mut()[field::TOS] = v;
    }

    /// Sets Total Length.
    pub fn set_total_len(&mut self, v: u16) {
        self.set16(field::LENGTH, v);
    }

    /// Sets Identification.
    pub fn set_ident(&mut self, v: u16) {
        self.set16(field::IDENT, v);
    }

    /// Sets the flags and offset word (DF, MF, Fragment Offset in 8-byte units).
    pub fn set_flags_and_offset(&mut self, v: u16) {
        self.set16(field::FLG_OFF, v);
    }

    /// Sets Time to Live.
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }

    /// Sets Protocol.
    pub fn set_protocol(&mut self, v: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = v;
    }

    /// Sets Header Checksum.
    pub fn set_checksum(&mut self, v: u16) {
        self.set16(field::CHECKSUM, v);
    }

    /// Sets Source Address.
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets());
    }

    /// Sets Destination Address.
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets());
    }

    /// Computes and stores the header checksum (RFC 791 §3.1, "Header Checksum").
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hlen = self.header_len();
        let sum = checksum::sum(&self.buffer.as_ref()[..hlen]);
        self.set_checksum(!sum);
    }

    /// The payload (header to Total Length), mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        let end = usize::from(self.total_len());
        &mut self.buffer.as_mut()[start..end]
    }
}

/// A validated, unfragmented IPv4 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    /// Source Address.
    pub src_addr: Ipv4Addr,
    /// Destination Address.
    pub dst_addr: Ipv4Addr,
    /// Protocol.
    pub protocol: u8,
    /// Payload length (Total Length minus the header).
    pub payload_len: usize,
    /// Time to Live.
    pub ttl: u8,
}

impl Repr {
    /// Parses and validates: version 4, lengths, header checksum, not a fragment.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        if packet.version() != 4
            || !packet.verify_checksum()
            || packet.more_frags()
            || packet.frag_offset() != 0
        {
            return Err(Error);
        }
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: usize::from(packet.total_len()) - packet.header_len(),
            ttl: packet.ttl(),
        })
    }

    /// Length of the header this repr emits (no options).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes a 20-byte header (TOS 0, id 0, DF clear, checksum filled). Fails when the
    /// datagram would not fit the buffer or exceed 65535 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        let total = u16::try_from(HEADER_LEN + self.payload_len).map_err(|_| Error)?;
        if packet.buffer.as_ref().len() < usize::from(total) {
            return Err(Error);
        }
        packet.set_version_and_header_len(4, 20);
        packet.set_tos(0);
        packet.set_total_len(total);
        packet.set_ident(0);
        packet.set_flags_and_offset(0);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> [u8; 24] {
        let mut b = [0u8; 24];
        let repr = Repr {
            src_addr: Ipv4Addr::new(10, 0, 0, 1),
            dst_addr: Ipv4Addr::BROADCAST,
            protocol: PROTOCOL_UDP,
            payload_len: 4,
            ttl: 64,
        };
        repr.emit(&mut Packet::new_unchecked(&mut b[..])).unwrap();
        b
    }

    #[test]
    fn checksum_and_fragments() {
        let b = sample();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(Repr::parse(&p).unwrap().payload_len, 4);
        let mut bad = b;
        bad[10] ^= 1;
        assert_eq!(Repr::parse(&Packet::new_unchecked(&bad[..])), Err(Error));
        for flags in [0x2000u16, 0x0001] {
            let mut f = b;
            let mut p = Packet::new_unchecked(&mut f[..]);
            p.set_flags_and_offset(flags);
            p.fill_checksum();
            assert_eq!(Repr::parse(&Packet::new_unchecked(&f[..])), Err(Error));
        }
        // DF alone is fine.
        let mut f = b;
        let mut p = Packet::new_unchecked(&mut f[..]);
        p.set_flags_and_offset(FLAG_DF);
        p.fill_checksum();
        assert!(Repr::parse(&Packet::new_unchecked(&f[..])).is_ok());
    }

    #[test]
    fn options_skipped() {
        // IHL 6 with a 4-byte NOP option block.
        let mut b = [0u8; 28];
        b[0] = 0x46;
        b[2..4].copy_from_slice(&28u16.to_be_bytes());
        b[8] = 1;
        b[9] = PROTOCOL_UDP;
        b[20..24].copy_from_slice(&[1, 1, 1, 0]);
        b[24..28].copy_from_slice(b"data");
        Packet::new_unchecked(&mut b[..]).fill_checksum();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&p).unwrap().payload_len, 4);
        assert_eq!(p.payload(), b"data");
    }
}
