//! Option TLVs (draft §12): the codes, the [`Options`] a message carries, the borrowing
//! [`OptionIter`], and how one option is read and written.

use std::net::Ipv4Addr;

use lease_record::UnixTime;

use super::{EmitError, MessageType, ParseError, RejectReason};

/// protocol-version we send (`DHCP_FAILOVER_VERSION`, `failover.h:397`).
pub const PROTOCOL_VERSION: u8 = 1;
/// server-flags bit 0: the sender is in STARTUP (draft §12.23, `FTF_SERVER_STARTUP`).
pub const SERVER_FLAG_STARTUP: u8 = 0x01;
/// IP-flags bit: the address is reserved (draft §12.12, `FTF_IP_FLAG_RESERVE`).
pub const IP_FLAG_RESERVED: u16 = 0x0001;
/// IP-flags bit: the address was given to a BOOTP client (`FTF_IP_FLAG_BOOTP`).
pub const IP_FLAG_BOOTP: u16 = 0x0002;

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

/// One option's value in its wire shape.
#[derive(Clone, Copy, Debug)]
pub(super) enum Value<'a> {
    U8(u8),
    U16(u16),
    U32(u32),
    Ip(Ipv4Addr),
    Bytes(&'a [u8]),
    Ddns(Ddns<'a>),
}

/// The type of an [`Options`] field: its wire shape, and the way to and from a [`Value`].
trait Field<'a>: Sized {
    const KIND: Kind;
    fn to_value(self) -> Value<'a>;
    /// `None` when the value has another shape.
    fn from_value(v: Value<'a>) -> Option<Self>;
}

/// `Field` for types held as they are on the wire, and for those converted to a shape.
macro_rules! fields {
    ($($t:ty => $kind:ident $(via $to:path, $from:path)?;)*) => {$(
        impl<'a> Field<'a> for $t {
            const KIND: Kind = Kind::$kind;
            fn to_value(self) -> Value<'a> {
                Value::$kind($($to)?(self))
            }
            fn from_value(v: Value<'a>) -> Option<Self> {
                match v {
                    Value::$kind(x) => Some($($from)?(x)),
                    _ => None,
                }
            }
        }
    )*};
}

fields! {
    u8 => U8;
    u16 => U16;
    u32 => U32;
    Ipv4Addr => Ip;
    &'a [u8] => Bytes;
    Ddns<'a> => Ddns;
    UnixTime => U32 via secs, UnixTime;
    RejectReason => U8 via RejectReason::to_u8, RejectReason::from_u8;
}

/// Seconds since the epoch, as the wire carries a time.
fn secs(t: UnixTime) -> u32 {
    t.0
}

/// Stores `v` unless the slot is already full; false if it was.
fn put<T>(slot: &mut Option<T>, v: Option<T>) -> bool {
    if slot.is_some() {
        return false;
    }
    *slot = v;
    true
}

/// Every option from one table: its code in [`opt`], its field in [`Options`] (whose type
/// gives the wire shape), and the lookups by code the parser and the emitter use.
macro_rules! options {
    ($($(#[$doc:meta])* $code:literal $name:ident $field:ident: $t:ty,)*) => {
        /// Option codes, draft §12 and `failover.h:88-148`.
        pub mod opt {
            $(pub const $name: u16 = $code;)*
            /// Highest code ISC knows (`FTO_MAX`); higher codes are skipped.
            pub const MAX: u16 = 29;
        }
        const _: () = assert!([$($code),*].len() == opt::MAX as usize);

        /// Every option of draft-12 (1..=29), each at most once. Variable-length values
        /// borrow the message; text values (message, vendor class, relationship name) stay
        /// bytes.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct Options<'a> {
            $(
                #[doc = concat!("Option ", $code, ".")]
                $(#[$doc])*
                pub $field: Option<$t>,
            )*
        }

        impl<'a> Options<'a> {
            /// The wire shape of option `code`; `None` for a code ISC does not know.
            fn kind(code: u16) -> Option<Kind> {
                match code {
                    $(opt::$name => Some(<$t as Field<'a>>::KIND),)*
                    _ => None,
                }
            }

            pub(super) fn get(&self, code: u16) -> Option<Value<'a>> {
                match code {
                    $(opt::$name => self.$field.map(Field::to_value),)*
                    _ => None,
                }
            }

            /// Stores a value of the right shape for `code`; returns false if it was
            /// already set.
            pub(super) fn set(&mut self, code: u16, v: Value<'a>) -> bool {
                match code {
                    $(opt::$name => put(&mut self.$field, Field::from_value(v)),)*
                    _ => true,
                }
            }
        }
    };
}

options! {
    /// Addresses moved by POOLRESP.
    1 ADDRESSES_TRANSFERRED addresses_transferred: u32,
    /// The binding's address; first in a binding (draft §6.3).
    2 ASSIGNED_IP_ADDRESS assigned_ip: Ipv4Addr,
    /// Raw binding status; see [`BindingStatus::from_u8`](super::BindingStatus::from_u8).
    3 BINDING_STATUS binding_status: u8,
    /// DHCP option 61 contents.
    4 CLIENT_IDENTIFIER client_id: &'a [u8],
    /// htype followed by chaddr.
    5 CLIENT_HARDWARE_ADDRESS chaddr: &'a [u8],
    /// Client last transaction time.
    6 CLTT cltt: UnixTime,
    7 CLIENT_REPLY_OPTIONS client_reply_options: &'a [u8],
    8 CLIENT_REQUEST_OPTIONS client_request_options: &'a [u8],
    9 DDNS ddns: Ddns<'a>,
    10 DELAYED_SERVICE_PARAMETER delayed_service: u8,
    /// Hash bucket assignment; ISC requires exactly 32 bytes in CONNECT.
    11 HASH_BUCKET_ASSIGNMENT hba: &'a [u8],
    /// [`IP_FLAG_RESERVED`], [`IP_FLAG_BOOTP`]; 2 bytes as ISC.
    12 IP_FLAGS ip_flags: u16,
    /// The expiry given to the client (`ends`).
    13 LEASE_EXPIRATION_TIME lease_expiry: UnixTime,
    14 MAX_UNACKED_BNDUPD max_unacked: u32,
    /// Seconds.
    15 MCLT mclt: u32,
    /// Human-readable text.
    16 MESSAGE message: &'a [u8],
    /// Digest type byte and digest.
    17 MESSAGE_DIGEST digest: &'a [u8],
    /// The sender's `tstp`.
    18 POTENTIAL_EXPIRATION_TIME potential_expiry: UnixTime,
    /// The sender's max-response-delay, seconds.
    19 RECEIVE_TIMER receive_timer: u32,
    20 PROTOCOL_VERSION protocol_version: u8,
    21 REJECT_REASON reject_reason: RejectReason,
    22 RELATIONSHIP_NAME relationship_name: &'a [u8],
    /// [`SERVER_FLAG_STARTUP`].
    23 SERVER_FLAGS server_flags: u8,
    /// Raw state; see [`ServerState::from_u8`](super::ServerState::from_u8).
    24 SERVER_STATE server_state: u8,
    /// Start time of state (in BNDUPD ISC sends the lease `starts`).
    25 START_TIME_OF_STATE stos: UnixTime,
    26 TLS_REPLY tls_reply: u8,
    27 TLS_REQUEST tls_request: u8,
    28 VENDOR_CLASS vendor_class: &'a [u8],
    29 VENDOR_SPECIFIC_OPTIONS vendor_options: &'a [u8],
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
        let Some(k) = Options::kind(o.code) else {
            continue;
        };
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
