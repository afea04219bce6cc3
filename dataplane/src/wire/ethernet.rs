//! Ethernet II frames (IEEE 802.3 §3.2.6, "Length/Type" as a type) with at most one
//! IEEE 802.1Q customer tag (TPID 0x8100, IEEE 802.1Q §9.6). A second tag, or an S-tag
//! (0x88a8), is reported as an unknown EtherType: tandem serves access networks.

use super::{Error, Result};

/// EtherType of IPv4 (RFC 894).
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// Tag Protocol Identifier of an IEEE 802.1Q C-tag.
pub const TPID_8021Q: u16 = 0x8100;
/// Length of an untagged header: destination, source, EtherType.
pub const HEADER_LEN: usize = 14;
/// Length of one 802.1Q tag: TPID and TCI.
pub const VLAN_TAG_LEN: usize = 4;
/// The broadcast address.
pub const BROADCAST: [u8; 6] = [0xff; 6];

mod field {
    use core::ops::Range;

    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    /// The EtherType, or the TPID when the frame is tagged.
    pub const ETHERTYPE: Range<usize> = 12..14;
    /// Tag Control Information (PCP, DEI, VID), present when tagged.
    pub const TCI: Range<usize> = 14..16;
    /// The EtherType after the tag.
    pub const INNER_ETHERTYPE: Range<usize> = 16..18;
}

/// A read/write view of an Ethernet frame.
///
/// After [`Packet::check_len`] succeeds (always the case for [`Packet::new_checked`]),
/// no accessor panics. Untrusted bytes go through `new_checked`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors may panic unless `check_len` passes.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer and checks that the header (with its tag, if any) fits.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the header, including the 802.1Q tag when the TPID says there is one,
    /// fits in the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || len < self.header_len() {
            Err(Error)
        } else {
            Ok(())
        }
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn get16(&self, range: core::ops::Range<usize>) -> u16 {
        let d = &self.buffer.as_ref()[range];
        u16::from_be_bytes([d[0], d[1]])
    }

    /// Destination MAC address.
    pub fn dst_addr(&self) -> [u8; 6] {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::DESTINATION]);
        a
    }

    /// Source MAC address.
    pub fn src_addr(&self) -> [u8; 6] {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::SOURCE]);
        a
    }

    /// The Length/Type field at offset 12: the EtherType, or the TPID of a tag.
    pub fn outer_ethertype(&self) -> u16 {
        self.get16(field::ETHERTYPE)
    }

    /// Whether the frame carries an 802.1Q tag.
    pub fn is_tagged(&self) -> bool {
        // A short buffer reads as untagged so `check_len` stays panic-free.
        self.buffer.as_ref().len() >= field::ETHERTYPE.end && self.outer_ethertype() == TPID_8021Q
    }

    /// The 802.1Q Tag Control Information (PCP 3 bits, DEI 1 bit, VID 12 bits), if tagged.
    pub fn vlan_tci(&self) -> Option<u16> {
        self.is_tagged().then(|| self.get16(field::TCI))
    }

    /// The EtherType of the payload (after the tag, if any).
    pub fn ethertype(&self) -> u16 {
        if self.is_tagged() {
            self.get16(field::INNER_ETHERTYPE)
        } else {
            self.outer_ethertype()
        }
    }

    /// Length of the header: 14, or 18 with a tag.
    pub fn header_len(&self) -> usize {
        if self.is_tagged() {
            HEADER_LEN + VLAN_TAG_LEN
        } else {
            HEADER_LEN
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload after the header, borrowed for the buffer's lifetime.
    pub fn payload(&self) -> &'a [u8] {
        let data: &'a [u8] = self.buffer.as_ref();
        &data[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set16(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the destination MAC address.
    pub fn set_dst_addr(&mut self, addr: [u8; 6]) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&addr);
    }

    /// Sets the source MAC address.
    pub fn set_src_addr(&mut self, addr: [u8; 6]) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&addr);
    }

    /// Sets the field at offset 12 (EtherType or TPID).
    pub fn set_outer_ethertype(&mut self, value: u16) {
        self.set16(field::ETHERTYPE, value);
    }

    /// Sets the TCI; only meaningful once the TPID is set.
    pub fn set_vlan_tci(&mut self, tci: u16) {
        self.set16(field::TCI, tci);
    }

    /// Sets the payload's EtherType, after the tag when the frame is tagged.
    pub fn set_ethertype(&mut self, value: u16) {
        if self.is_tagged() {
            self.set16(field::INNER_ETHERTYPE, value);
        } else {
            self.set16(field::ETHERTYPE, value);
        }
    }

    /// The payload after the header, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
}

/// A validated Ethernet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    /// Source MAC address.
    pub src_addr: [u8; 6],
    /// Destination MAC address.
    pub dst_addr: [u8; 6],
    /// 802.1Q Tag Control Information, when tagged.
    pub vlan: Option<u16>,
    /// EtherType of the payload.
    pub ethertype: u16,
}

impl Repr {
    /// Parses a header; fails only when it does not fit.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            vlan: packet.vlan_tci(),
            ethertype: packet.ethertype(),
        })
    }

    /// Length of the header this repr emits.
    pub const fn buffer_len(&self) -> usize {
        match self.vlan {
            Some(_) => HEADER_LEN + VLAN_TAG_LEN,
            None => HEADER_LEN,
        }
    }

    /// Writes the header. The buffer must hold at least [`Repr::buffer_len`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        if packet.buffer.as_ref().len() < self.buffer_len() {
            return Err(Error);
        }
        packet.set_dst_addr(self.dst_addr);
        packet.set_src_addr(self.src_addr);
        match self.vlan {
            Some(tci) => {
                packet.set_outer_ethertype(TPID_8021Q);
                packet.set_vlan_tci(tci);
                packet.set16(field::INNER_ETHERTYPE, self.ethertype);
            }
            None => packet.set_outer_ethertype(self.ethertype),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_short_is_error() {
        let mut b = [0u8; 16];
        b[12..14].copy_from_slice(&TPID_8021Q.to_be_bytes());
        assert_eq!(Packet::new_checked(&b[..]), Err(Error));
        assert_eq!(Packet::new_checked(&b[..13]), Err(Error));
    }

    #[test]
    fn emit_parse_tagged() {
        let repr = Repr {
            src_addr: [2, 0, 0, 0, 0, 1],
            dst_addr: BROADCAST,
            vlan: Some(0x2064),
            ethertype: ETHERTYPE_IPV4,
        };
        let mut b = [0u8; 18];
        repr.emit(&mut Packet::new_unchecked(&mut b[..])).unwrap();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&p), Ok(repr));
        assert!(p.payload().is_empty());
    }
}
