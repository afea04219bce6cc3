//! Failover messages on the wire (draft-ietf-dhc-failover-12 §6, §12), as ISC dhcpd 4.4
//! sends and accepts them (`reference/failover-protocol.md` §1.2-§1.7, §6).
//!
//! Two levels, as in smoltcp's `wire`: [`Message`] is a zero-copy view over the bytes with an
//! [`OptionIter`] that never panics; [`Repr`] is the validated, borrowed form with
//! [`Repr::parse`], [`Repr::buffer_len`] and [`Repr::emit`]. [`StreamDecoder`] cuts a TCP byte
//! stream into whole messages.
//!
//! ISC quirks carried here:
//! * the payload offset is sent as 12 (`failover.c:4312-4314`); on receive, bytes between 12
//!   and the offset are skipped, and an offset below 12 is read as 12 (ISC's unsigned
//!   subtraction would skip a huge count instead);
//! * RECOVER-WAIT is 254 on the wire (`failover.h:302-308`);
//! * IP-flags is 2 bytes (`stables.c` `FT_UINT16`);
//! * a repeated option, a fixed-size option of the wrong length, a message type above 12, or a
//!   length outside 12..=2048 is a protocol error that drops the link (`failover.c:453-458`,
//!   `:661-665`, `:715-720`, `:743-756`);
//! * unknown option codes, and known options that ISC does not use in that message type
//!   (`fto_allowed[]`, `stables.c:108-131`), are skipped without any check (`:685-697`,
//!   `:722-734`);
//! * the message digest (17) is allowed in every message and emitted last, where ISC's dead
//!   `FT_DIGEST` branch (`:699-712`) would want it.
//!
//! Batches (tandem's extension, as Windows packs up to 16 bindings, MS-DHCPF §3.3.5.1): a
//! BNDUPD or BNDACK may carry several bindings, each a group of options that starts with
//! assigned-IP-address. [`Repr::options`] holds the first group, [`Repr::more`] the bytes of
//! the others, and [`Repr::bindings`] walks them all; [`BindingBatch`] builds one. A repeated
//! option inside one group is still an error. ISC refuses a second assigned-IP (a repeated
//! option), so batches go only to peers whose vendor class says tandem.

mod batch;
mod codes;
mod header;
mod options;
mod stream;

use lease_record::UnixTime;

pub use batch::{BindingBatch, Bindings};
pub use codes::{BindingStatus, MessageType, RejectReason, ServerState};
pub use header::{HEADER_LEN, MAX_MESSAGE_LEN, MIN_MESSAGE_LEN, Message};
pub use options::{
    Ddns, IP_FLAG_BOOTP, IP_FLAG_RESERVED, OptionIter, Options, PROTOCOL_VERSION, RawOption,
    SERVER_FLAG_STARTUP, opt,
};
pub use stream::{FrameError, StreamDecoder};

use batch::parse_batch;
use options::{Value, emit_option, ordered, parse_options, value_len};

/// Why bytes are not a valid failover message. Every variant drops the link in ISC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("buffer shorter than the message header or its declared length")]
    Truncated,
    #[error("message length {0} outside 12..=2048")]
    BadLength(u16),
    #[error("unknown message type {0}")]
    UnknownType(u8),
    #[error("payload offset {offset} beyond message length {length}")]
    BadPayloadOffset { offset: u8, length: u16 },
    #[error("option overflows the message")]
    OptionOverflow,
    #[error("option {0} repeated")]
    DuplicateOption(u16),
    #[error("option {code} has length {len}, expected {expected}")]
    BadOptionLength { code: u16, len: u16, expected: u16 },
}

/// Why a [`Repr`] cannot be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    #[error("message would be {0} bytes, more than 2048")]
    TooLong(usize),
    #[error("option {0} longer than 65535 bytes")]
    OptionTooLong(u16),
    #[error("buffer too small")]
    BufferTooSmall,
}

/// A parsed and validated failover message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr<'a> {
    pub msg_type: MessageType,
    /// Sender's wall-clock time (header).
    pub time: UnixTime,
    pub xid: u32,
    pub options: Options<'a>,
    /// A batched BNDUPD or BNDACK: the option bytes of the bindings after the first, each
    /// group starting with assigned-IP-address (see [`Repr::bindings`]). Empty otherwise.
    /// Emitted after [`Repr::options`] and before the digest.
    pub more: &'a [u8],
}

impl<'a> Repr<'a> {
    /// A message of `msg_type` with no options.
    pub fn new(msg_type: MessageType, time: UnixTime, xid: u32) -> Self {
        Self {
            msg_type,
            time,
            xid,
            options: Options::default(),
            more: &[],
        }
    }

    /// Parses a message with ISC's rules (see the module docs). The length checks of
    /// [`Message::check_len`] are repeated, so an unchecked view is fine too.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(msg: &Message<&'a T>) -> Result<Self, ParseError> {
        let bytes: &'a T = msg.buffer;
        parse_slice(bytes.as_ref())
    }

    /// Parses a whole message from bytes (a frame from [`StreamDecoder`]).
    pub fn parse_bytes(bytes: &'a [u8]) -> Result<Self, ParseError> {
        parse_slice(bytes)
    }

    /// Bytes [`Repr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        let digest = self.options.get(opt::MESSAGE_DIGEST);
        usize::from(HEADER_LEN)
            + ordered(self.msg_type, &self.options)
                .map(|(_, v)| 4 + value_len(&v))
                .sum::<usize>()
            + self.more.len()
            + digest.map_or(0, |v| 4 + value_len(&v))
    }

    /// Writes the message into the start of `msg`'s buffer.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        msg: &mut Message<T>,
    ) -> Result<(), EmitError> {
        let total = self.buffer_len();
        let length = u16::try_from(total)
            .ok()
            .filter(|l| *l <= MAX_MESSAGE_LEN)
            .ok_or(EmitError::TooLong(total))?;
        if msg.buffer.as_ref().len() < total {
            return Err(EmitError::BufferTooSmall);
        }
        msg.set_length(length);
        msg.set_msg_type(self.msg_type as u8);
        msg.set_payload_offset(HEADER_LEN);
        msg.set_time(self.time);
        msg.set_xid(self.xid);
        let mut at = usize::from(HEADER_LEN);
        let buf = msg.buffer.as_mut();
        for (code, v) in ordered(self.msg_type, &self.options) {
            at = emit_option(buf, at, code, v)?;
        }
        let out = buf
            .get_mut(at..at + self.more.len())
            .ok_or(EmitError::BufferTooSmall)?;
        out.copy_from_slice(self.more);
        at += self.more.len();
        if let Some(v) = self.options.get(opt::MESSAGE_DIGEST) {
            emit_option(buf, at, opt::MESSAGE_DIGEST, v)?;
        }
        Ok(())
    }

    /// The message as a fresh byte vector, ready for the TCP stream.
    pub fn to_vec(&self) -> Result<Vec<u8>, EmitError> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut Message::new_unchecked(&mut v[..]))?;
        Ok(v)
    }

    /// Appends the message to an output stream buffer (the encoder half of the framer).
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EmitError> {
        let start = out.len();
        out.resize(start + self.buffer_len(), 0);
        let r = self.emit(&mut Message::new_unchecked(&mut out[start..]));
        if r.is_err() {
            out.truncate(start);
        }
        r
    }
}

fn parse_slice(bytes: &[u8]) -> Result<Repr<'_>, ParseError> {
    let view = Message::new_checked(bytes)?;
    let raw_type = view.msg_type();
    let msg_type = MessageType::from_u8(raw_type).ok_or(ParseError::UnknownType(raw_type))?;
    let start = usize::from(view.payload_offset().max(HEADER_LEN));
    let payload = bytes.get(start..usize::from(view.length())).unwrap_or(&[]);
    let (options, more) = match msg_type {
        MessageType::BndUpd | MessageType::BndAck => parse_batch(msg_type, payload)?,
        _ => (parse_options(msg_type, payload)?, &[][..]),
    };
    Ok(Repr {
        msg_type,
        time: view.time(),
        xid: view.xid(),
        options,
        more,
    })
}
