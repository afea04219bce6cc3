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

use std::net::Ipv4Addr;

use lease_mmap::UnixTime;

/// Smallest message: the header alone (`DHCP_FAILOVER_MIN_MESSAGE_SIZE`, `failover.h:190`).
pub const MIN_MESSAGE_LEN: u16 = 12;
/// Largest message ISC accepts (`DHCP_FAILOVER_MAX_MESSAGE_SIZE`, `failover.h:192`).
pub const MAX_MESSAGE_LEN: u16 = 2048;
/// Header length, and the payload offset we send.
pub const HEADER_LEN: u8 = 12;
/// protocol-version we send (`DHCP_FAILOVER_VERSION`, `failover.h:397`).
pub const PROTOCOL_VERSION: u8 = 1;
/// server-flags bit 0: the sender is in STARTUP (draft §12.23, `FTF_SERVER_STARTUP`).
pub const SERVER_FLAG_STARTUP: u8 = 0x01;
/// IP-flags bit: the address is reserved (draft §12.12, `FTF_IP_FLAG_RESERVE`).
pub const IP_FLAG_RESERVED: u16 = 0x0001;
/// IP-flags bit: the address was given to a BOOTP client (`FTF_IP_FLAG_BOOTP`).
pub const IP_FLAG_BOOTP: u16 = 0x0002;

mod field {
    use std::ops::Range;
    pub const LENGTH: Range<usize> = 0..2;
    pub const TYPE: usize = 2;
    pub const PAYLOAD_OFFSET: usize = 3;
    pub const TIME: Range<usize> = 4..8;
    pub const XID: Range<usize> = 8..12;
}

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

/// Message types, draft §6.1 and `failover.h:150-164`. UPDREQALL is 7 and UPDREQ is 9.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum MessageType {
    PoolReq = 1,
    PoolResp = 2,
    BndUpd = 3,
    BndAck = 4,
    Connect = 5,
    ConnectAck = 6,
    UpdReqAll = 7,
    UpdDone = 8,
    UpdReq = 9,
    State = 10,
    Contact = 11,
    Disconnect = 12,
}

impl MessageType {
    /// Every type, in code order.
    pub const ALL: [MessageType; 12] = [
        Self::PoolReq,
        Self::PoolResp,
        Self::BndUpd,
        Self::BndAck,
        Self::Connect,
        Self::ConnectAck,
        Self::UpdReqAll,
        Self::UpdDone,
        Self::UpdReq,
        Self::State,
        Self::Contact,
        Self::Disconnect,
    ];

    pub fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.get(usize::from(v).checked_sub(1)?).copied()
    }

    /// The draft's name, upper case.
    pub fn name(self) -> &'static str {
        match self {
            Self::PoolReq => "POOLREQ",
            Self::PoolResp => "POOLRESP",
            Self::BndUpd => "BNDUPD",
            Self::BndAck => "BNDACK",
            Self::Connect => "CONNECT",
            Self::ConnectAck => "CONNECTACK",
            Self::UpdReqAll => "UPDREQALL",
            Self::UpdDone => "UPDDONE",
            Self::UpdReq => "UPDREQ",
            Self::State => "STATE",
            Self::Contact => "CONTACT",
            Self::Disconnect => "DISCONNECT",
        }
    }

    /// Options ISC stores for this type (`fto_allowed[]`, `stables.c:108-131`); any other
    /// known option is read and dropped. The digest is allowed everywhere.
    pub fn allows(self, code: u16) -> bool {
        use opt::*;
        if code == MESSAGE_DIGEST {
            return true;
        }
        let binding: &[u16] = &[
            ASSIGNED_IP_ADDRESS,
            BINDING_STATUS,
            CLIENT_IDENTIFIER,
            CLIENT_HARDWARE_ADDRESS,
            DDNS,
            IP_FLAGS,
            LEASE_EXPIRATION_TIME,
            POTENTIAL_EXPIRATION_TIME,
            START_TIME_OF_STATE,
            CLTT,
            CLIENT_REQUEST_OPTIONS,
            CLIENT_REPLY_OPTIONS,
        ];
        match self {
            Self::PoolReq | Self::UpdReqAll | Self::UpdDone | Self::UpdReq | Self::Contact => false,
            Self::PoolResp => code == ADDRESSES_TRANSFERRED,
            Self::BndUpd => binding.contains(&code),
            Self::BndAck => binding.contains(&code) || code == REJECT_REASON || code == MESSAGE,
            Self::Connect => [
                RELATIONSHIP_NAME,
                MAX_UNACKED_BNDUPD,
                RECEIVE_TIMER,
                VENDOR_CLASS,
                PROTOCOL_VERSION,
                TLS_REQUEST,
                MCLT,
                HASH_BUCKET_ASSIGNMENT,
            ]
            .contains(&code),
            Self::ConnectAck => [
                RELATIONSHIP_NAME,
                MAX_UNACKED_BNDUPD,
                RECEIVE_TIMER,
                VENDOR_CLASS,
                PROTOCOL_VERSION,
                TLS_REPLY,
                REJECT_REASON,
                MESSAGE,
            ]
            .contains(&code),
            Self::State => [SERVER_STATE, SERVER_FLAGS, START_TIME_OF_STATE].contains(&code),
            Self::Disconnect => code == REJECT_REASON || code == MESSAGE,
        }
    }

    /// The order ISC writes options in (`failover.c` `dhcp_failover_send_*`), so re-emitting
    /// a message ISC built gives the same bytes. Options not listed follow in code order; the
    /// digest is always last.
    fn emit_order(self) -> &'static [u16] {
        use opt::*;
        match self {
            Self::PoolResp => &[ADDRESSES_TRANSFERRED],
            Self::BndUpd | Self::BndAck => &[
                ASSIGNED_IP_ADDRESS,
                BINDING_STATUS,
                CLIENT_IDENTIFIER,
                CLIENT_HARDWARE_ADDRESS,
                LEASE_EXPIRATION_TIME,
                POTENTIAL_EXPIRATION_TIME,
                START_TIME_OF_STATE,
                CLTT,
                IP_FLAGS,
                REJECT_REASON,
                MESSAGE,
            ],
            Self::Connect => &[
                RELATIONSHIP_NAME,
                MAX_UNACKED_BNDUPD,
                RECEIVE_TIMER,
                VENDOR_CLASS,
                PROTOCOL_VERSION,
                TLS_REQUEST,
                MCLT,
                HASH_BUCKET_ASSIGNMENT,
            ],
            Self::ConnectAck => &[
                RELATIONSHIP_NAME,
                MAX_UNACKED_BNDUPD,
                RECEIVE_TIMER,
                VENDOR_CLASS,
                PROTOCOL_VERSION,
                TLS_REPLY,
                REJECT_REASON,
                MESSAGE,
            ],
            Self::State => &[SERVER_STATE, SERVER_FLAGS, START_TIME_OF_STATE],
            Self::Disconnect => &[REJECT_REASON, MESSAGE],
            _ => &[],
        }
    }
}

/// Option codes, draft §12 and `failover.h:88-148`.
pub mod opt {
    pub const ADDRESSES_TRANSFERRED: u16 = 1;
    pub const ASSIGNED_IP_ADDRESS: u16 = 2;
    pub const BINDING_STATUS: u16 = 3;
    pub const CLIENT_IDENTIFIER: u16 = 4;
    pub const CLIENT_HARDWARE_ADDRESS: u16 = 5;
    pub const CLTT: u16 = 6;
    pub const CLIENT_REPLY_OPTIONS: u16 = 7;
    pub const CLIENT_REQUEST_OPTIONS: u16 = 8;
    pub const DDNS: u16 = 9;
    pub const DELAYED_SERVICE_PARAMETER: u16 = 10;
    pub const HASH_BUCKET_ASSIGNMENT: u16 = 11;
    pub const IP_FLAGS: u16 = 12;
    pub const LEASE_EXPIRATION_TIME: u16 = 13;
    pub const MAX_UNACKED_BNDUPD: u16 = 14;
    pub const MCLT: u16 = 15;
    pub const MESSAGE: u16 = 16;
    pub const MESSAGE_DIGEST: u16 = 17;
    pub const POTENTIAL_EXPIRATION_TIME: u16 = 18;
    pub const RECEIVE_TIMER: u16 = 19;
    pub const PROTOCOL_VERSION: u16 = 20;
    pub const REJECT_REASON: u16 = 21;
    pub const RELATIONSHIP_NAME: u16 = 22;
    pub const SERVER_FLAGS: u16 = 23;
    pub const SERVER_STATE: u16 = 24;
    pub const START_TIME_OF_STATE: u16 = 25;
    pub const TLS_REPLY: u16 = 26;
    pub const TLS_REQUEST: u16 = 27;
    pub const VENDOR_CLASS: u16 = 28;
    pub const VENDOR_SPECIFIC_OPTIONS: u16 = 29;
    /// Highest code ISC knows (`FTO_MAX`); higher codes are skipped.
    pub const MAX: u16 = 29;
}

/// The wire shape of a known option (`stables.c:41-100`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    U8,
    U16,
    U32,
    Ip,
    Bytes,
    Ddns,
}

fn kind(code: u16) -> Option<Kind> {
    use opt::*;
    Some(match code {
        BINDING_STATUS
        | DELAYED_SERVICE_PARAMETER
        | PROTOCOL_VERSION
        | REJECT_REASON
        | SERVER_FLAGS
        | SERVER_STATE
        | TLS_REPLY
        | TLS_REQUEST => Kind::U8,
        IP_FLAGS => Kind::U16,
        ADDRESSES_TRANSFERRED
        | CLTT
        | LEASE_EXPIRATION_TIME
        | MAX_UNACKED_BNDUPD
        | MCLT
        | POTENTIAL_EXPIRATION_TIME
        | RECEIVE_TIMER
        | START_TIME_OF_STATE => Kind::U32,
        ASSIGNED_IP_ADDRESS => Kind::Ip,
        DDNS => Kind::Ddns,
        CLIENT_IDENTIFIER
        | CLIENT_HARDWARE_ADDRESS
        | CLIENT_REPLY_OPTIONS
        | CLIENT_REQUEST_OPTIONS
        | HASH_BUCKET_ASSIGNMENT
        | MESSAGE
        | MESSAGE_DIGEST
        | RELATIONSHIP_NAME
        | VENDOR_CLASS
        | VENDOR_SPECIFIC_OPTIONS => Kind::Bytes,
        _ => return None,
    })
}

/// Server states on the wire (option 24), draft §12.24 and `failover.h:287-309`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ServerState {
    /// Never sent by ISC: it sends the saved state with [`SERVER_FLAG_STARTUP`] instead.
    Startup = 1,
    Normal = 2,
    CommunicationsInterrupted = 3,
    PartnerDown = 4,
    PotentialConflict = 5,
    Recover = 6,
    Paused = 7,
    Shutdown = 8,
    RecoverDone = 9,
    ResolutionInterrupted = 10,
    ConflictDone = 11,
    /// No number in the draft; ISC uses 254.
    RecoverWait = 254,
}

impl ServerState {
    pub const ALL: [ServerState; 12] = [
        Self::Startup,
        Self::Normal,
        Self::CommunicationsInterrupted,
        Self::PartnerDown,
        Self::PotentialConflict,
        Self::Recover,
        Self::Paused,
        Self::Shutdown,
        Self::RecoverDone,
        Self::ResolutionInterrupted,
        Self::ConflictDone,
        Self::RecoverWait,
    ];

    pub fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| *s as u8 == v)
    }

    /// The draft's name in lower case with hyphens, as `tandemctl status --json` shows it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Startup => "startup",
            Self::Normal => "normal",
            Self::CommunicationsInterrupted => "communications-interrupted",
            Self::PartnerDown => "partner-down",
            Self::PotentialConflict => "potential-conflict",
            Self::Recover => "recover",
            Self::Paused => "paused",
            Self::Shutdown => "shutdown",
            Self::RecoverDone => "recover-done",
            Self::ResolutionInterrupted => "resolution-interrupted",
            Self::ConflictDone => "conflict-done",
            Self::RecoverWait => "recover-wait",
        }
    }
}

/// Binding status (option 3), draft §12.3 and ISC `FTS_*` (`dhcpd.h:533-543`). Note the wire
/// numbers start at 1, unlike [`lease_mmap::BindingState`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum BindingStatus {
    Free = 1,
    Active = 2,
    Expired = 3,
    Released = 4,
    Abandoned = 5,
    Reset = 6,
    Backup = 7,
}

impl BindingStatus {
    pub fn from_u8(v: u8) -> Option<Self> {
        use lease_mmap::BindingState as B;
        Self::from_lease(B::from_u8(v.checked_sub(1)?)?)
    }

    /// The wire status of a lease record's state; `None` for OFFERED, which never travels.
    pub fn from_lease(s: lease_mmap::BindingState) -> Option<Self> {
        use lease_mmap::BindingState as B;
        Some(match s {
            B::Free => Self::Free,
            B::Active => Self::Active,
            B::Expired => Self::Expired,
            B::Released => Self::Released,
            B::Abandoned => Self::Abandoned,
            B::Reset => Self::Reset,
            B::Backup => Self::Backup,
            B::Offered => return None,
        })
    }

    pub fn to_lease(self) -> lease_mmap::BindingState {
        use lease_mmap::BindingState as B;
        match self {
            Self::Free => B::Free,
            Self::Active => B::Active,
            Self::Expired => B::Expired,
            Self::Released => B::Released,
            Self::Abandoned => B::Abandoned,
            Self::Reset => B::Reset,
            Self::Backup => B::Backup,
        }
    }
}

/// Reject reasons (option 21), draft §12.21 and `failover.h:166-188`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    IllegalIpAddress,
    FatalConflict,
    MissingBindingInformation,
    TimeMismatch,
    InvalidMclt,
    Unknown,
    DuplicateConnection,
    InvalidFailoverPartner,
    TlsNotSupported,
    TlsNotConfigured,
    TlsRequired,
    DigestNotSupported,
    DigestNotConfigured,
    ProtocolVersionMismatch,
    OutdatedBindingInformation,
    LessCriticalBindingInformation,
    NoTraffic,
    HashBucketAssignmentConflict,
    IpNotReserved,
    DigestFailed,
    DigestMissing,
    /// 254, `FTR_UNKNOWN`.
    Unspecified,
    /// Any other value, kept so it re-emits unchanged.
    Other(u8),
}

impl RejectReason {
    const TABLE: [(u8, RejectReason, &'static str); 22] = [
        (1, Self::IllegalIpAddress, "IP address not in pool"),
        (
            2,
            Self::FatalConflict,
            "fatal conflict exists: address in use by other client",
        ),
        (
            3,
            Self::MissingBindingInformation,
            "missing binding information",
        ),
        (
            4,
            Self::TimeMismatch,
            "connection rejected, time mismatch too great",
        ),
        (5, Self::InvalidMclt, "connection rejected, invalid MCLT"),
        (6, Self::Unknown, "connection rejected, unknown reason"),
        (
            7,
            Self::DuplicateConnection,
            "connection rejected, duplicate connection",
        ),
        (
            8,
            Self::InvalidFailoverPartner,
            "connection rejected, invalid failover partner",
        ),
        (9, Self::TlsNotSupported, "TLS not supported"),
        (
            10,
            Self::TlsNotConfigured,
            "TLS supported but not configured",
        ),
        (
            11,
            Self::TlsRequired,
            "TLS required but not supported by partner",
        ),
        (12, Self::DigestNotSupported, "message digest not supported"),
        (
            13,
            Self::DigestNotConfigured,
            "message digest not configured",
        ),
        (
            14,
            Self::ProtocolVersionMismatch,
            "protocol version mismatch",
        ),
        (
            15,
            Self::OutdatedBindingInformation,
            "outdated binding information",
        ),
        (
            16,
            Self::LessCriticalBindingInformation,
            "less critical binding information",
        ),
        (17, Self::NoTraffic, "no traffic within sufficient time"),
        (
            18,
            Self::HashBucketAssignmentConflict,
            "hash bucket assignment conflict",
        ),
        (19, Self::IpNotReserved, "IP not reserved on this server"),
        (20, Self::DigestFailed, "message digest failed to compare"),
        (21, Self::DigestMissing, "missing message digest"),
        (254, Self::Unspecified, "unknown reason"),
    ];

    pub fn from_u8(v: u8) -> Self {
        Self::TABLE
            .iter()
            .find(|(c, _, _)| *c == v)
            .map_or(Self::Other(v), |(_, r, _)| *r)
    }

    pub fn to_u8(self) -> u8 {
        match self {
            Self::Other(v) => v,
            r => Self::TABLE
                .iter()
                .find(|(_, t, _)| *t == r)
                .map_or(254, |(c, _, _)| *c),
        }
    }

    /// Text for the message option, after ISC's `dhcp_failover_reject_reason_print`.
    pub fn text(self) -> &'static str {
        Self::TABLE
            .iter()
            .find(|(_, t, _)| *t == self)
            .map_or("unknown reason", |(_, _, s)| *s)
    }
}

/// One option as it sits in the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawOption<'a> {
    pub code: u16,
    pub data: &'a [u8],
}

/// Iterates the option TLVs of a payload. Yields `Err(OptionOverflow)` once for a TLV that
/// runs past the end, then stops. Never panics.
#[derive(Clone, Debug)]
pub struct OptionIter<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> OptionIter<'a> {
    pub fn new(payload: &'a [u8]) -> Self {
        Self {
            rest: payload,
            failed: false,
        }
    }
}

impl<'a> Iterator for OptionIter<'a> {
    type Item = Result<RawOption<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let parsed = (|| {
            let (hdr, rest) = self.rest.split_at_checked(4)?;
            let code = u16::from_be_bytes([hdr[0], hdr[1]]);
            let len = u16::from_be_bytes([hdr[2], hdr[3]]);
            let (data, rest) = rest.split_at_checked(usize::from(len))?;
            Some((RawOption { code, data }, rest))
        })();
        match parsed {
            Some((o, rest)) => {
                self.rest = rest;
                Some(Ok(o))
            }
            None => {
                self.failed = true;
                Some(Err(ParseError::OptionOverflow))
            }
        }
    }
}

/// A zero-copy view of one failover message.
///
/// After [`Message::check_len`] succeeds (and so after [`Message::new_checked`]), no
/// accessor panics: the buffer holds the 12-byte header and the whole declared length.
#[derive(Clone, Copy, Debug)]
pub struct Message<T: AsRef<[u8]>> {
    buffer: T,
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

    /// The raw type byte; see [`MessageType::from_u8`].
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

/// DDNS option contents (draft §12.9): flags, then the client FQDN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ddns<'a> {
    pub flags: u16,
    pub name: &'a [u8],
}

/// Every option of draft-12 (1..=29), each at most once. Variable-length values borrow the
/// message; text values (message, vendor class, relationship name) stay bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options<'a> {
    /// 1: addresses moved by POOLRESP.
    pub addresses_transferred: Option<u32>,
    /// 2: the binding's address; first in a binding (draft §6.3).
    pub assigned_ip: Option<Ipv4Addr>,
    /// 3: raw binding status; see [`BindingStatus::from_u8`].
    pub binding_status: Option<u8>,
    /// 4: DHCP option 61 contents.
    pub client_id: Option<&'a [u8]>,
    /// 5: htype followed by chaddr (draft §12.5).
    pub chaddr: Option<&'a [u8]>,
    /// 6: client last transaction time.
    pub cltt: Option<UnixTime>,
    /// 7
    pub client_reply_options: Option<&'a [u8]>,
    /// 8
    pub client_request_options: Option<&'a [u8]>,
    /// 9
    pub ddns: Option<Ddns<'a>>,
    /// 10
    pub delayed_service: Option<u8>,
    /// 11: hash bucket assignment; ISC requires exactly 32 bytes in CONNECT.
    pub hba: Option<&'a [u8]>,
    /// 12: [`IP_FLAG_RESERVED`], [`IP_FLAG_BOOTP`]; 2 bytes as ISC.
    pub ip_flags: Option<u16>,
    /// 13: the expiry given to the client (`ends`).
    pub lease_expiry: Option<UnixTime>,
    /// 14
    pub max_unacked: Option<u32>,
    /// 15: seconds.
    pub mclt: Option<u32>,
    /// 16: human-readable text.
    pub message: Option<&'a [u8]>,
    /// 17: digest type byte and digest.
    pub digest: Option<&'a [u8]>,
    /// 18: the sender's `tstp`.
    pub potential_expiry: Option<UnixTime>,
    /// 19: the sender's max-response-delay, seconds.
    pub receive_timer: Option<u32>,
    /// 20
    pub protocol_version: Option<u8>,
    /// 21
    pub reject_reason: Option<RejectReason>,
    /// 22
    pub relationship_name: Option<&'a [u8]>,
    /// 23: [`SERVER_FLAG_STARTUP`].
    pub server_flags: Option<u8>,
    /// 24: raw state; see [`ServerState::from_u8`].
    pub server_state: Option<u8>,
    /// 25: start time of state (in BNDUPD ISC sends the lease `starts`).
    pub stos: Option<UnixTime>,
    /// 26
    pub tls_reply: Option<u8>,
    /// 27
    pub tls_request: Option<u8>,
    /// 28
    pub vendor_class: Option<&'a [u8]>,
    /// 29
    pub vendor_options: Option<&'a [u8]>,
}

#[derive(Clone, Copy, Debug)]
enum Value<'a> {
    U8(u8),
    U16(u16),
    U32(u32),
    Ip(Ipv4Addr),
    Bytes(&'a [u8]),
    Ddns(Ddns<'a>),
}

impl<'a> Options<'a> {
    fn get(&self, code: u16) -> Option<Value<'a>> {
        use opt::*;
        let t = |t: Option<UnixTime>| t.map(|t| Value::U32(t.0));
        match code {
            ADDRESSES_TRANSFERRED => self.addresses_transferred.map(Value::U32),
            ASSIGNED_IP_ADDRESS => self.assigned_ip.map(Value::Ip),
            BINDING_STATUS => self.binding_status.map(Value::U8),
            CLIENT_IDENTIFIER => self.client_id.map(Value::Bytes),
            CLIENT_HARDWARE_ADDRESS => self.chaddr.map(Value::Bytes),
            CLTT => t(self.cltt),
            CLIENT_REPLY_OPTIONS => self.client_reply_options.map(Value::Bytes),
            CLIENT_REQUEST_OPTIONS => self.client_request_options.map(Value::Bytes),
            DDNS => self.ddns.map(Value::Ddns),
            DELAYED_SERVICE_PARAMETER => self.delayed_service.map(Value::U8),
            HASH_BUCKET_ASSIGNMENT => self.hba.map(Value::Bytes),
            IP_FLAGS => self.ip_flags.map(Value::U16),
            LEASE_EXPIRATION_TIME => t(self.lease_expiry),
            MAX_UNACKED_BNDUPD => self.max_unacked.map(Value::U32),
            MCLT => self.mclt.map(Value::U32),
            MESSAGE => self.message.map(Value::Bytes),
            MESSAGE_DIGEST => self.digest.map(Value::Bytes),
            POTENTIAL_EXPIRATION_TIME => t(self.potential_expiry),
            RECEIVE_TIMER => self.receive_timer.map(Value::U32),
            PROTOCOL_VERSION => self.protocol_version.map(Value::U8),
            REJECT_REASON => self.reject_reason.map(|r| Value::U8(r.to_u8())),
            RELATIONSHIP_NAME => self.relationship_name.map(Value::Bytes),
            SERVER_FLAGS => self.server_flags.map(Value::U8),
            SERVER_STATE => self.server_state.map(Value::U8),
            START_TIME_OF_STATE => t(self.stos),
            TLS_REPLY => self.tls_reply.map(Value::U8),
            TLS_REQUEST => self.tls_request.map(Value::U8),
            VENDOR_CLASS => self.vendor_class.map(Value::Bytes),
            VENDOR_SPECIFIC_OPTIONS => self.vendor_options.map(Value::Bytes),
            _ => None,
        }
    }

    /// Stores a value of the right kind for `code`; returns false if it was already set.
    fn set(&mut self, code: u16, v: Value<'a>) -> bool {
        use opt::*;
        fn put<T>(slot: &mut Option<T>, v: Option<T>) -> bool {
            if slot.is_some() {
                return false;
            }
            *slot = v;
            true
        }
        let u8v = match v {
            Value::U8(x) => Some(x),
            _ => None,
        };
        let u32v = match v {
            Value::U32(x) => Some(x),
            _ => None,
        };
        let bytes = match v {
            Value::Bytes(x) => Some(x),
            _ => None,
        };
        let time = u32v.map(UnixTime);
        match code {
            ADDRESSES_TRANSFERRED => put(&mut self.addresses_transferred, u32v),
            ASSIGNED_IP_ADDRESS => put(
                &mut self.assigned_ip,
                match v {
                    Value::Ip(a) => Some(a),
                    _ => None,
                },
            ),
            BINDING_STATUS => put(&mut self.binding_status, u8v),
            CLIENT_IDENTIFIER => put(&mut self.client_id, bytes),
            CLIENT_HARDWARE_ADDRESS => put(&mut self.chaddr, bytes),
            CLTT => put(&mut self.cltt, time),
            CLIENT_REPLY_OPTIONS => put(&mut self.client_reply_options, bytes),
            CLIENT_REQUEST_OPTIONS => put(&mut self.client_request_options, bytes),
            DDNS => put(
                &mut self.ddns,
                match v {
                    Value::Ddns(d) => Some(d),
                    _ => None,
                },
            ),
            DELAYED_SERVICE_PARAMETER => put(&mut self.delayed_service, u8v),
            HASH_BUCKET_ASSIGNMENT => put(&mut self.hba, bytes),
            IP_FLAGS => put(
                &mut self.ip_flags,
                match v {
                    Value::U16(x) => Some(x),
                    _ => None,
                },
            ),
            LEASE_EXPIRATION_TIME => put(&mut self.lease_expiry, time),
            MAX_UNACKED_BNDUPD => put(&mut self.max_unacked, u32v),
            MCLT => put(&mut self.mclt, u32v),
            MESSAGE => put(&mut self.message, bytes),
            MESSAGE_DIGEST => put(&mut self.digest, bytes),
            POTENTIAL_EXPIRATION_TIME => put(&mut self.potential_expiry, time),
            RECEIVE_TIMER => put(&mut self.receive_timer, u32v),
            PROTOCOL_VERSION => put(&mut self.protocol_version, u8v),
            REJECT_REASON => put(&mut self.reject_reason, u8v.map(RejectReason::from_u8)),
            RELATIONSHIP_NAME => put(&mut self.relationship_name, bytes),
            SERVER_FLAGS => put(&mut self.server_flags, u8v),
            SERVER_STATE => put(&mut self.server_state, u8v),
            START_TIME_OF_STATE => put(&mut self.stos, time),
            TLS_REPLY => put(&mut self.tls_reply, u8v),
            TLS_REQUEST => put(&mut self.tls_request, u8v),
            VENDOR_CLASS => put(&mut self.vendor_class, bytes),
            VENDOR_SPECIFIC_OPTIONS => put(&mut self.vendor_options, bytes),
            _ => true,
        }
    }
}

fn value_len(v: &Value<'_>) -> usize {
    match v {
        Value::U8(_) => 1,
        Value::U16(_) => 2,
        Value::U32(_) | Value::Ip(_) => 4,
        Value::Bytes(b) => b.len(),
        Value::Ddns(d) => 2 + d.name.len(),
    }
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

    /// Every binding the message carries: [`Repr::options`] when it has an assigned IP,
    /// then each group of [`Repr::more`]. A parsed message's groups were all checked by
    /// the parser; a group that does not parse ends the walk.
    pub fn bindings(&self) -> Bindings<'a> {
        Bindings {
            msg_type: self.msg_type,
            first: self.options.assigned_ip.is_some().then_some(self.options),
            rest: self.more,
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

/// The options of one group in emission order: ISC's order for the type, the rest by code;
/// the digest is not among them (it goes last in the message, after [`Repr::more`]).
fn ordered<'a, 'o>(
    msg_type: MessageType,
    options: &'o Options<'a>,
) -> impl Iterator<Item = (u16, Value<'a>)> + 'o {
    let first = msg_type.emit_order();
    let rest = (1..=opt::MAX).filter(move |c| !first.contains(c) && *c != opt::MESSAGE_DIGEST);
    first
        .iter()
        .copied()
        .chain(rest)
        .filter_map(|c| options.get(c).map(|v| (c, v)))
}

/// Writes one option TLV at `at`; returns where the next one goes.
fn emit_option(buf: &mut [u8], at: usize, code: u16, v: Value<'_>) -> Result<usize, EmitError> {
    let len = value_len(&v);
    let len16 = u16::try_from(len).map_err(|_| EmitError::OptionTooLong(code))?;
    let out = buf
        .get_mut(at..at + 4 + len)
        .ok_or(EmitError::BufferTooSmall)?;
    out[0..2].copy_from_slice(&code.to_be_bytes());
    out[2..4].copy_from_slice(&len16.to_be_bytes());
    let data = &mut out[4..];
    match v {
        Value::U8(x) => data[0] = x,
        Value::U16(x) => data.copy_from_slice(&x.to_be_bytes()),
        Value::U32(x) => data.copy_from_slice(&x.to_be_bytes()),
        Value::Ip(a) => data.copy_from_slice(&a.octets()),
        Value::Bytes(b) => data.copy_from_slice(b),
        Value::Ddns(d) => {
            data[0..2].copy_from_slice(&d.flags.to_be_bytes());
            data[2..].copy_from_slice(d.name);
        }
    }
    Ok(at + 4 + len)
}

/// Iterates the bindings of a BNDUPD or BNDACK ([`Repr::bindings`]).
#[derive(Clone, Debug)]
pub struct Bindings<'a> {
    msg_type: MessageType,
    first: Option<Options<'a>>,
    rest: &'a [u8],
}

impl<'a> Iterator for Bindings<'a> {
    type Item = Options<'a>;

    fn next(&mut self) -> Option<Options<'a>> {
        if let Some(o) = self.first.take() {
            return Some(o);
        }
        if self.rest.is_empty() {
            return None;
        }
        let end = next_group(self.rest, 1).unwrap_or(self.rest.len());
        let (group, rest) = self.rest.split_at(end);
        self.rest = rest;
        match parse_options(self.msg_type, group) {
            Ok(o) => Some(o),
            Err(_) => {
                self.rest = &[];
                None
            }
        }
    }
}

/// Byte offset in `payload` of the `nth` (0-based) option that starts a binding group
/// (assigned-IP-address), or `None`. Stops at a malformed option.
fn next_group(payload: &[u8], nth: usize) -> Option<usize> {
    let mut at = 0;
    let mut seen = 0;
    for o in OptionIter::new(payload) {
        let o = o.ok()?;
        if o.code == opt::ASSIGNED_IP_ADDRESS {
            if seen == nth {
                return Some(at);
            }
            seen += 1;
        }
        at += 4 + o.data.len();
    }
    None
}

/// Several bindings packed into one BNDUPD or BNDACK for a tandem peer: each binding's
/// options are encoded as they are pushed, until the message would pass 2048 bytes (room
/// is kept for a digest).
#[derive(Clone, Debug)]
pub struct BindingBatch {
    msg_type: MessageType,
    buf: Vec<u8>,
    count: usize,
    limit: usize,
}

/// Bytes a digest option takes (`00 11 00 21`, type, 32 bytes).
const DIGEST_OPTION_LEN: usize = 4 + 1 + 32;

impl BindingBatch {
    /// An empty BNDUPD or BNDACK batch.
    pub fn new(msg_type: MessageType) -> Self {
        Self {
            msg_type,
            buf: Vec::new(),
            count: 0,
            limit: usize::from(MAX_MESSAGE_LEN) - usize::from(HEADER_LEN) - DIGEST_OPTION_LEN,
        }
    }

    /// Bindings held.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds one binding (the options of a single-binding [`Repr`]; it must have an assigned
    /// IP, and its digest is ignored). Returns false, adding nothing, when it has no assigned
    /// IP or the message would grow past 2048 bytes.
    pub fn push(&mut self, binding: &Options<'_>) -> bool {
        if binding.assigned_ip.is_none() {
            return false;
        }
        let len: usize = ordered(self.msg_type, binding)
            .map(|(_, v)| 4 + value_len(&v))
            .sum();
        if self.buf.len() + len > self.limit {
            return false;
        }
        let start = self.buf.len();
        self.buf.resize(start + len, 0);
        let mut at = start;
        for (code, v) in ordered(self.msg_type, binding) {
            match emit_option(&mut self.buf, at, code, v) {
                Ok(next) => at = next,
                Err(_) => {
                    self.buf.truncate(start);
                    return false;
                }
            }
        }
        self.count += 1;
        true
    }

    /// The message: every binding in [`Repr::more`] (the first group too), ready for
    /// [`Repr::emit`] or the state machine's `send`.
    pub fn repr(&self, time: UnixTime, xid: u32) -> Repr<'_> {
        let mut r = Repr::new(self.msg_type, time, xid);
        r.more = &self.buf;
        r
    }

    /// Empties the batch for the next message.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.count = 0;
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

/// A BNDUPD or BNDACK payload: the first binding group (with a digest that ends the
/// message) as the options, the other groups, each checked, as the `more` bytes.
fn parse_batch(msg_type: MessageType, payload: &[u8]) -> Result<(Options<'_>, &[u8]), ParseError> {
    // Where the digest starts, when it is the last option.
    let mut digest_at = None;
    let mut at = 0;
    for o in OptionIter::new(payload) {
        let o = o?;
        digest_at = (o.code == opt::MESSAGE_DIGEST).then_some(at);
        at += 4 + o.data.len();
    }
    let (body, digest) = payload.split_at(digest_at.unwrap_or(payload.len()));
    let Some(second) = next_group(body, 1) else {
        return Ok((parse_options(msg_type, payload)?, &[]));
    };
    let (first, more) = body.split_at(second);
    let mut options = parse_options(msg_type, first)?;
    if let Some(o) = OptionIter::new(digest).next() {
        let o = o?;
        if !options.set(o.code, Value::Bytes(o.data)) {
            return Err(ParseError::DuplicateOption(o.code));
        }
    }
    let mut rest = more;
    while !rest.is_empty() {
        let end = next_group(rest, 1).unwrap_or(rest.len());
        let (group, tail) = rest.split_at(end);
        parse_options(msg_type, group)?;
        rest = tail;
    }
    Ok((options, more))
}

fn parse_options(msg_type: MessageType, payload: &[u8]) -> Result<Options<'_>, ParseError> {
    let mut options = Options::default();
    for o in OptionIter::new(payload) {
        let o = o?;
        let Some(k) = kind(o.code) else { continue };
        if !msg_type.allows(o.code) {
            continue;
        }
        let bad = |expected: u16| ParseError::BadOptionLength {
            code: o.code,
            len: u16::try_from(o.data.len()).unwrap_or(u16::MAX),
            expected,
        };
        let v = match (k, o.data) {
            (Kind::U8, [a]) => Value::U8(*a),
            (Kind::U8, _) => return Err(bad(1)),
            (Kind::U16, [a, b]) => Value::U16(u16::from_be_bytes([*a, *b])),
            (Kind::U16, _) => return Err(bad(2)),
            (Kind::U32, [a, b, c, d]) => Value::U32(u32::from_be_bytes([*a, *b, *c, *d])),
            (Kind::U32, _) => return Err(bad(4)),
            (Kind::Ip, [a, b, c, d]) => Value::Ip(Ipv4Addr::new(*a, *b, *c, *d)),
            (Kind::Ip, _) => return Err(bad(4)),
            (Kind::Ddns, [a, b, name @ ..]) => Value::Ddns(Ddns {
                flags: u16::from_be_bytes([*a, *b]),
                name,
            }),
            (Kind::Ddns, _) => return Err(bad(2)),
            (Kind::Bytes, d) => Value::Bytes(d),
        };
        if !options.set(o.code, v) {
            return Err(ParseError::DuplicateOption(o.code));
        }
    }
    Ok(options)
}

/// Why a byte stream cannot be framed. The link must be dropped (`failover.c:453-458`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("message length {0} outside 12..=2048")]
    BadLength(u16),
}

/// Cuts the peer link's TCP byte stream into whole messages.
///
/// Feed it what the socket gave ([`StreamDecoder::feed`]) and call
/// [`StreamDecoder::next_frame`] until it returns `Ok(None)`. A frame is the whole message,
/// header included, ready for [`Repr::parse_bytes`]. After an error the decoder stays failed;
/// drop the link.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out, removed on the next call.
    consumed: usize,
    failed: Option<FrameError>,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the socket.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.compact();
        if self.failed.is_none() {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Bytes held that are not yet a whole message.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.consumed
    }

    fn compact(&mut self) {
        if self.consumed > 0 {
            self.buf.drain(..self.consumed);
            self.consumed = 0;
        }
    }

    /// The next whole message, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        self.compact();
        if let Some(e) = self.failed {
            return Err(e);
        }
        let Some(&[a, b]) = self.buf.get(0..2) else {
            return Ok(None);
        };
        let len = u16::from_be_bytes([a, b]);
        if !(MIN_MESSAGE_LEN..=MAX_MESSAGE_LEN).contains(&len) {
            self.failed = Some(FrameError::BadLength(len));
            self.buf.clear();
            return Err(FrameError::BadLength(len));
        }
        let n = usize::from(len);
        if self.buf.len() < n {
            return Ok(None);
        }
        self.consumed = n;
        Ok(self.buf.get(..n))
    }
}
