//! The 12-byte message header (draft §6.1) and the zero-copy [`Message`] view over it.

use lease_record::UnixTime;

use super::{OptionIter, ParseError};

/// Smallest message: the header alone (`DHCP_FAILOVER_MIN_MESSAGE_SIZE`, `failover.h:190`).
pub const MIN_MESSAGE_LEN: u16 = 12;
/// Largest message ISC accepts (`DHCP_FAILOVER_MAX_MESSAGE_SIZE`, `failover.h:192`).
pub const MAX_MESSAGE_LEN: u16 = 2048;
/// Header length, and the payload offset we send.
pub const HEADER_LEN: u8 = 12;

mod field {
    use std::ops::Range;
    pub const LENGTH: Range<usize> = 0..2;
    pub const TYPE: usize = 2;
    pub const PAYLOAD_OFFSET: usize = 3;
    pub const TIME: Range<usize> = 4..8;
    pub const XID: Range<usize> = 8..12;
}

/// A zero-copy view of one failover message.
///
/// After [`Message::check_len`] succeeds (and so after [`Message::new_checked`]), no
/// accessor panics: the buffer holds the 12-byte header and the whole declared length.
#[derive(Clone, Copy, Debug)]
pub struct Message<T: AsRef<[u8]>> {
    pub(super) buffer: T,
}

impl<T: AsRef<[u8]>> Message<T> {
    /// Wraps a buffer without checking it; accessors may panic until `check_len` passes.
    pub fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps untrusted bytes: the header, the declared length (12..=2048, within the
    /// buffer) and the payload offset (not past the end) are checked.
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let m = Self::new_unchecked(buffer);
        m.check_len()?;
        Ok(m)
    }

    pub fn check_len(&self) -> Result<(), ParseError> {
        let b = self.buffer.as_ref();
        if b.len() < usize::from(HEADER_LEN) {
            return Err(ParseError::Truncated);
        }
        let length = self.length();
        if !(MIN_MESSAGE_LEN..=MAX_MESSAGE_LEN).contains(&length) {
            return Err(ParseError::BadLength(length));
        }
        if b.len() < usize::from(length) {
            return Err(ParseError::Truncated);
        }
        let offset = self.payload_offset();
        if u16::from(offset) > length {
            return Err(ParseError::BadPayloadOffset { offset, length });
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Message length, header included (draft §6.1).
    pub fn length(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[field::LENGTH.start], b[field::LENGTH.start + 1]])
    }

    /// The raw type byte; see [`MessageType::from_u8`](super::MessageType::from_u8).
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// The payload offset as sent (ISC sends 12, Windows 8).
    pub fn payload_offset(&self) -> u8 {
        self.buffer.as_ref()[field::PAYLOAD_OFFSET]
    }

    /// Sender's wall-clock time.
    pub fn time(&self) -> UnixTime {
        let b = &self.buffer.as_ref()[field::TIME];
        UnixTime(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Transaction id.
    pub fn xid(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::XID];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The option bytes: from the payload offset (read as 12 when smaller) to the length.
    /// Empty, never a panic, when the view is unchecked and too short.
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let (Some(&[l0, l1]), Some(&off)) = (b.get(field::LENGTH), b.get(field::PAYLOAD_OFFSET))
        else {
            return &[];
        };
        let start = usize::from(off.max(HEADER_LEN));
        let end = usize::from(u16::from_be_bytes([l0, l1]));
        b.get(start..end).unwrap_or(&[])
    }

    pub fn options(&self) -> OptionIter<'_> {
        OptionIter::new(self.payload())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Message<T> {
    pub fn set_length(&mut self, v: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }
    pub fn set_payload_offset(&mut self, v: u8) {
        self.buffer.as_mut()[field::PAYLOAD_OFFSET] = v;
    }
    pub fn set_time(&mut self, v: UnixTime) {
        self.buffer.as_mut()[field::TIME].copy_from_slice(&v.0.to_be_bytes());
    }
    pub fn set_xid(&mut self, v: u32) {
        self.buffer.as_mut()[field::XID].copy_from_slice(&v.to_be_bytes());
    }
}
