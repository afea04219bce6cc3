//! Option TLVs (draft §12): the codes, the [`Options`] a message carries, the borrowing
//! [`OptionIter`], and how one option is read and written.

use std::net::Ipv4Addr;

use lease_mmap::UnixTime;

use super::{EmitError, MessageType, ParseError, RejectReason};

/// protocol-version we send (`DHCP_FAILOVER_VERSION`, `failover.h:397`).
pub const PROTOCOL_VERSION: u8 = 1;
/// server-flags bit 0: the sender is in STARTUP (draft §12.23, `FTF_SERVER_STARTUP`).
pub const SERVER_FLAG_STARTUP: u8 = 0x01;
/// IP-flags bit: the address is reserved (draft §12.12, `FTF_IP_FLAG_RESERVE`).
pub const IP_FLAG_RESERVED: u16 = 0x0001;
/// IP-flags bit: the address was given to a BOOTP client (`FTF_IP_FLAG_BOOTP`).
pub const IP_FLAG_BOOTP: u16 = 0x0002;

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
    /// 3: raw binding status; see [`BindingStatus::from_u8`](super::BindingStatus::from_u8).
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
    /// 24: raw state; see [`ServerState::from_u8`](super::ServerState::from_u8).
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
pub(super) enum Value<'a> {
    U8(u8),
    U16(u16),
    U32(u32),
    Ip(Ipv4Addr),
    Bytes(&'a [u8]),
    Ddns(Ddns<'a>),
}

impl<'a> Options<'a> {
    pub(super) fn get(&self, code: u16) -> Option<Value<'a>> {
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
    pub(super) fn set(&mut self, code: u16, v: Value<'a>) -> bool {
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

pub(super) fn value_len(v: &Value<'_>) -> usize {
    match v {
        Value::U8(_) => 1,
        Value::U16(_) => 2,
        Value::U32(_) | Value::Ip(_) => 4,
        Value::Bytes(b) => b.len(),
        Value::Ddns(d) => 2 + d.name.len(),
    }
}

/// The options of one group in emission order: ISC's order for the type, the rest by code;
/// the digest is not among them (it goes last in the message, after [`Repr::more`]).
///
/// [`Repr::more`]: super::Repr::more
pub(super) fn ordered<'a, 'o>(
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
pub(super) fn emit_option(
    buf: &mut [u8],
    at: usize,
    code: u16,
    v: Value<'_>,
) -> Result<usize, EmitError> {
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

pub(super) fn parse_options(
    msg_type: MessageType,
    payload: &[u8],
) -> Result<Options<'_>, ParseError> {
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
