//! DHCPv4 / BOOTP (RFC 2131 §2, RFC 951) with the options of RFC 2132 tandem uses.
//!
//! [`Packet`] is the zero-copy view of the fixed BOOTP header (RFC 2131 §2, figure 1);
//! [`Repr`] is the validated message. Parsing follows RFC 3396 §5: every option that
//! appears more than once (in the options field, then `file`, then `sname` when option
//! overload, 52, RFC 2132 §9.3, says they carry options) is the concatenation of its
//! instances, built in the caller's scratch buffer. Emitting never overloads, writes the
//! options in one fixed order with option 82 last (RFC 3046 §2.1), splits options longer
//! than 255 bytes (RFC 3396 §5), and pads the message to 300 bytes (RFC 1542 §2.1).

use core::net::Ipv4Addr;

use super::options::{OptionWriter, OptionsIter};
use super::relay::RelayAgentInfo;
use super::{Error, Result};

/// BOOTP `op` (RFC 951).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpCode {
    Request,
    Reply,
}

/// Option 53, DHCP message type (RFC 2132 §9.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    Discover,
    Offer,
    Request,
    Decline,
    Ack,
    Nak,
    Release,
    Inform,
    Other(u8),
}

/// `flags` bit 15 (RFC 2131 §2): the client wants a broadcast reply.
pub const FLAG_BROADCAST: u16 = 0x8000;

/// The options tandem reads or writes. Values borrow the packet; an option that RFC 3396
/// splits into several instances (or that option overload, option 52, spreads over `file`
/// and `sname`) is concatenated into the caller's scratch buffer and borrowed from there.
/// Unknown options are skipped on parse and never emitted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options<'a> {
    /// 53
    pub message_type: Option<MessageType>,
    /// 1
    pub subnet_mask: Option<Ipv4Addr>,
    /// 3: a list of addresses, `len % 4 == 0` (validated on parse).
    pub router: Option<&'a [u8]>,
    /// 6: as `router`.
    pub dns: Option<&'a [u8]>,
    /// 12
    pub hostname: Option<&'a [u8]>,
    /// 15
    pub domain_name: Option<&'a [u8]>,
    /// 28
    pub broadcast_addr: Option<Ipv4Addr>,
    /// 50
    pub requested_ip: Option<Ipv4Addr>,
    /// 51, seconds; `u32::MAX` is infinite.
    pub lease_time: Option<u32>,
    /// 52 (parse only: emit never overloads).
    pub overload: Option<u8>,
    /// 54
    pub server_id: Option<Ipv4Addr>,
    /// 55
    pub parameter_request_list: Option<&'a [u8]>,
    /// 56
    pub message: Option<&'a [u8]>,
    /// 57
    pub max_message_size: Option<u16>,
    /// 58, T1 seconds.
    pub renewal_time: Option<u32>,
    /// 59, T2 seconds.
    pub rebinding_time: Option<u32>,
    /// 60
    pub vendor_class: Option<&'a [u8]>,
    /// 61, whole payload (type byte first). RFC 6842: echoed in replies.
    pub client_id: Option<&'a [u8]>,
    /// 82, the raw payload (sub-options), echoed unchanged in replies (RFC 3046 §2.2).
    pub relay_agent_info: Option<&'a [u8]>,
    /// 118, subnet selection (RFC 3011).
    pub subnet_selection: Option<Ipv4Addr>,
}

/// A parsed (or to-be-emitted) DHCPv4 message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr<'a> {
    pub op: OpCode,
    /// Hardware address type (1 = Ethernet).
    pub htype: u8,
    /// Hardware address length, `<= 16` (validated on parse).
    pub hlen: u8,
    pub hops: u8,
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 16],
    /// `sname` up to its first NUL, when not used for options (BOOTP servers fill it).
    pub sname: &'a [u8],
    /// `file` up to its first NUL, when not used for options.
    pub file: &'a [u8],
    /// Whether the magic cookie was present (false: plain BOOTP, RFC 951).
    pub is_dhcp: bool,
    pub options: Options<'a>,
}

/// UDP port of the server (and of relay agents), RFC 2131 §4.1.
pub const SERVER_PORT: u16 = 67;
/// UDP port of the client, RFC 2131 §4.1.
pub const CLIENT_PORT: u16 = 68;
/// The magic cookie 99.130.83.99 (RFC 2131 §3, RFC 1497).
pub const MAGIC_COOKIE: u32 = 0x6382_5363;
/// Length of the fixed BOOTP header, without the cookie.
pub const BOOTP_HEADER_LEN: usize = 236;
/// Offset of the options, after the cookie.
pub const OPTIONS_OFFSET: usize = 240;
/// The smallest BOOTP message a relay agent must accept (RFC 1542 §2.1), so emit pads to it.
pub const MIN_MESSAGE_LEN: usize = 300;
/// The smallest max message size a client may announce (RFC 2132 §9.10).
pub const MIN_MAX_MESSAGE_SIZE: u16 = 576;

/// Option codes (RFC 2132, and the RFC named on each).
pub mod code {
    /// Subnet Mask (RFC 2132 §3.3).
    pub const SUBNET_MASK: u8 = 1;
    /// Router (RFC 2132 §3.5).
    pub const ROUTER: u8 = 3;
    /// Domain Name Server (RFC 2132 §3.8).
    pub const DNS: u8 = 6;
    /// Host Name (RFC 2132 §3.14).
    pub const HOSTNAME: u8 = 12;
    /// Domain Name (RFC 2132 §3.17).
    pub const DOMAIN_NAME: u8 = 15;
    /// Broadcast Address (RFC 2132 §5.3).
    pub const BROADCAST_ADDR: u8 = 28;
    /// Requested IP Address (RFC 2132 §9.1).
    pub const REQUESTED_IP: u8 = 50;
    /// IP Address Lease Time (RFC 2132 §9.2).
    pub const LEASE_TIME: u8 = 51;
    /// Option Overload (RFC 2132 §9.3).
    pub const OVERLOAD: u8 = 52;
    /// DHCP Message Type (RFC 2132 §9.6).
    pub const MESSAGE_TYPE: u8 = 53;
    /// Server Identifier (RFC 2132 §9.7).
    pub const SERVER_ID: u8 = 54;
    /// Parameter Request List (RFC 2132 §9.8).
    pub const PARAMETER_REQUEST_LIST: u8 = 55;
    /// Message (RFC 2132 §9.9).
    pub const MESSAGE: u8 = 56;
    /// Maximum DHCP Message Size (RFC 2132 §9.10).
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    /// Renewal (T1) Time Value (RFC 2132 §9.11).
    pub const RENEWAL_TIME: u8 = 58;
    /// Rebinding (T2) Time Value (RFC 2132 §9.12).
    pub const REBINDING_TIME: u8 = 59;
    /// Vendor class identifier (RFC 2132 §9.13).
    pub const VENDOR_CLASS: u8 = 60;
    /// Client-identifier (RFC 2132 §9.14).
    pub const CLIENT_ID: u8 = 61;
    /// Relay Agent Information (RFC 3046).
    pub const RELAY_AGENT_INFO: u8 = 82;
    /// Subnet Selection (RFC 3011).
    pub const SUBNET_SELECTION: u8 = 118;
}

mod field {
    use core::ops::Range;

    /// `op`: 1 BOOTREQUEST, 2 BOOTREPLY.
    pub const OP: usize = 0;
    /// `htype`: hardware address type (ARP's, RFC 1700).
    pub const HTYPE: usize = 1;
    /// `hlen`: hardware address length.
    pub const HLEN: usize = 2;
    /// `hops`: relay agents passed.
    pub const HOPS: usize = 3;
    /// `xid`: transaction ID.
    pub const XID: Range<usize> = 4..8;
    /// `secs`: seconds since the client began.
    pub const SECS: Range<usize> = 8..10;
    /// `flags`: bit 15 is BROADCAST.
    pub const FLAGS: Range<usize> = 10..12;
    /// `ciaddr`: client IP address, when it can answer ARP.
    pub const CIADDR: Range<usize> = 12..16;
    /// `yiaddr`: "your" (client) IP address.
    pub const YIADDR: Range<usize> = 16..20;
    /// `siaddr`: next server in bootstrap.
    pub const SIADDR: Range<usize> = 20..24;
    /// `giaddr`: relay agent IP address.
    pub const GIADDR: Range<usize> = 24..28;
    /// `chaddr`: client hardware address.
    pub const CHADDR: Range<usize> = 28..44;
    /// `sname`: server host name, NUL-terminated, or options (overload 2).
    pub const SNAME: Range<usize> = 44..108;
    /// `file`: boot file name, NUL-terminated, or options (overload 1).
    pub const FILE: Range<usize> = 108..236;
    /// The magic cookie.
    pub const MAGIC: Range<usize> = 236..240;
}

/// A read/write view of a BOOTP/DHCP message (the UDP payload).
///
/// After [`Packet::check_len`] succeeds (236 bytes, the fixed header), no accessor panics;
/// [`Packet::magic_cookie`] and [`Packet::options`] answer `None` / empty when the message
/// is too short to have them.
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

    /// Checks that the fixed BOOTP header (236 bytes) fits.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < BOOTP_HEADER_LEN {
            Err(Error)
        } else {
            Ok(())
        }
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn data(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn get_addr(&self, r: core::ops::Range<usize>) -> Ipv4Addr {
        let d = &self.data()[r];
        Ipv4Addr::new(d[0], d[1], d[2], d[3])
    }

    /// `op` (raw): 1 BOOTREQUEST, 2 BOOTREPLY.
    pub fn op(&self) -> u8 {
        self.data()[field::OP]
    }

    /// `htype`.
    pub fn htype(&self) -> u8 {
        self.data()[field::HTYPE]
    }

    /// `hlen`.
    pub fn hlen(&self) -> u8 {
        self.data()[field::HLEN]
    }

    /// `hops`.
    pub fn hops(&self) -> u8 {
        self.data()[field::HOPS]
    }

    /// `xid`.
    pub fn xid(&self) -> u32 {
        let d = &self.data()[field::XID];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    /// `secs`.
    pub fn secs(&self) -> u16 {
        let d = &self.data()[field::SECS];
        u16::from_be_bytes([d[0], d[1]])
    }

    /// `flags`.
    pub fn flags(&self) -> u16 {
        let d = &self.data()[field::FLAGS];
        u16::from_be_bytes([d[0], d[1]])
    }

    /// `ciaddr`.
    pub fn ciaddr(&self) -> Ipv4Addr {
        self.get_addr(field::CIADDR)
    }

    /// `yiaddr`.
    pub fn yiaddr(&self) -> Ipv4Addr {
        self.get_addr(field::YIADDR)
    }

    /// `siaddr`.
    pub fn siaddr(&self) -> Ipv4Addr {
        self.get_addr(field::SIADDR)
    }

    /// `giaddr`.
    pub fn giaddr(&self) -> Ipv4Addr {
        self.get_addr(field::GIADDR)
    }

    /// `chaddr`, all 16 bytes (only `hlen` of them are the address).
    pub fn chaddr(&self) -> [u8; 16] {
        let mut a = [0; 16];
        a.copy_from_slice(&self.data()[field::CHADDR]);
        a
    }

    /// The magic cookie, if the message is long enough to have one.
    pub fn magic_cookie(&self) -> Option<u32> {
        let d = self.data().get(field::MAGIC)?;
        Some(u32::from_be_bytes([d[0], d[1], d[2], d[3]]))
    }

    /// Whether the message carries the DHCP magic cookie.
    pub fn is_dhcp(&self) -> bool {
        self.magic_cookie() == Some(MAGIC_COOKIE)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// `sname`, all 64 bytes.
    pub fn sname(&self) -> &'a [u8] {
        let d: &'a [u8] = self.buffer.as_ref();
        &d[field::SNAME]
    }

    /// `file`, all 128 bytes.
    pub fn file(&self) -> &'a [u8] {
        let d: &'a [u8] = self.buffer.as_ref();
        &d[field::FILE]
    }

    /// The options area after the cookie (empty if the message is shorter).
    pub fn options(&self) -> &'a [u8] {
        let d: &'a [u8] = self.buffer.as_ref();
        d.get(OPTIONS_OFFSET..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_addr(&mut self, r: core::ops::Range<usize>, a: Ipv4Addr) {
        self.buffer.as_mut()[r].copy_from_slice(&a.octets());
    }

    /// Sets `op` (raw).
    pub fn set_op(&mut self, v: u8) {
        self.buffer.as_mut()[field::OP] = v;
    }

    /// Sets `htype`.
    pub fn set_htype(&mut self, v: u8) {
        self.buffer.as_mut()[field::HTYPE] = v;
    }

    /// Sets `hlen`.
    pub fn set_hlen(&mut self, v: u8) {
        self.buffer.as_mut()[field::HLEN] = v;
    }

    /// Sets `hops`.
    pub fn set_hops(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOPS] = v;
    }

    /// Sets `xid`.
    pub fn set_xid(&mut self, v: u32) {
        self.buffer.as_mut()[field::XID].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets `secs`.
    pub fn set_secs(&mut self, v: u16) {
        self.buffer.as_mut()[field::SECS].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets `flags`.
    pub fn set_flags(&mut self, v: u16) {
        self.buffer.as_mut()[field::FLAGS].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets `ciaddr`.
    pub fn set_ciaddr(&mut self, a: Ipv4Addr) {
        self.set_addr(field::CIADDR, a);
    }

    /// Sets `yiaddr`.
    pub fn set_yiaddr(&mut self, a: Ipv4Addr) {
        self.set_addr(field::YIADDR, a);
    }

    /// Sets `siaddr`.
    pub fn set_siaddr(&mut self, a: Ipv4Addr) {
        self.set_addr(field::SIADDR, a);
    }

    /// Sets `giaddr`.
    pub fn set_giaddr(&mut self, a: Ipv4Addr) {
        self.set_addr(field::GIADDR, a);
    }

    /// Sets `chaddr`.
    pub fn set_chaddr(&mut self, a: &[u8; 16]) {
        self.buffer.as_mut()[field::CHADDR].copy_from_slice(a);
    }

    /// Sets `sname`: `name`, NUL-filled to 64 bytes. Fails if `name` is longer than 64.
    pub fn set_sname(&mut self, name: &[u8]) -> Result<()> {
        set_padded(&mut self.buffer.as_mut()[field::SNAME], name)
    }

    /// Sets `file`: `name`, NUL-filled to 128 bytes. Fails if `name` is longer than 128.
    pub fn set_file(&mut self, name: &[u8]) -> Result<()> {
        set_padded(&mut self.buffer.as_mut()[field::FILE], name)
    }

    /// Sets the magic cookie (the buffer must be at least 240 bytes).
    pub fn set_magic_cookie(&mut self, v: u32) {
        self.buffer.as_mut()[field::MAGIC].copy_from_slice(&v.to_be_bytes());
    }

    /// The options area after the cookie, mutably (empty if the buffer is shorter).
    pub fn options_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(OPTIONS_OFFSET..)
            .unwrap_or(&mut [])
    }
}

fn set_padded(dst: &mut [u8], src: &[u8]) -> Result<()> {
    if src.len() > dst.len() {
        return Err(Error);
    }
    let (head, tail) = dst.split_at_mut(src.len());
    head.copy_from_slice(src);
    tail.fill(0);
    Ok(())
}

/// `field` up to its first NUL.
fn until_nul(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

impl From<u8> for MessageType {
    fn from(v: u8) -> Self {
        match v {
            1 => MessageType::Discover,
            2 => MessageType::Offer,
            3 => MessageType::Request,
            4 => MessageType::Decline,
            5 => MessageType::Ack,
            6 => MessageType::Nak,
            7 => MessageType::Release,
            8 => MessageType::Inform,
            other => MessageType::Other(other),
        }
    }
}

impl From<MessageType> for u8 {
    fn from(v: MessageType) -> u8 {
        match v {
            MessageType::Discover => 1,
            MessageType::Offer => 2,
            MessageType::Request => 3,
            MessageType::Decline => 4,
            MessageType::Ack => 5,
            MessageType::Nak => 6,
            MessageType::Release => 7,
            MessageType::Inform => 8,
            MessageType::Other(other) => other,
        }
    }
}

/// The option codes [`Options`] holds, in slot order (the slot is the index).
const KNOWN: [u8; 20] = [
    code::MESSAGE_TYPE,
    code::SUBNET_MASK,
    code::ROUTER,
    code::DNS,
    code::HOSTNAME,
    code::DOMAIN_NAME,
    code::BROADCAST_ADDR,
    code::REQUESTED_IP,
    code::LEASE_TIME,
    code::OVERLOAD,
    code::SERVER_ID,
    code::PARAMETER_REQUEST_LIST,
    code::MESSAGE,
    code::MAX_MESSAGE_SIZE,
    code::RENEWAL_TIME,
    code::REBINDING_TIME,
    code::VENDOR_CLASS,
    code::CLIENT_ID,
    code::RELAY_AGENT_INFO,
    code::SUBNET_SELECTION,
];

fn slot(kind: u8) -> Option<usize> {
    KNOWN.iter().position(|&k| k == kind)
}

/// First pass over the option areas: the first instance of each known option, and whether
/// it has more (then RFC 3396 concatenation is needed).
struct Collected<'a> {
    first: [Option<&'a [u8]>; KNOWN.len()],
    repeated: [bool; KNOWN.len()],
}

impl<'a> Collected<'a> {
    fn scan(&mut self, area: &'a [u8]) -> Result<()> {
        for opt in OptionsIter::new(area) {
            let opt = opt?;
            if let Some(s) = slot(opt.kind) {
                if self.first[s].is_some() {
                    self.repeated[s] = true;
                } else {
                    self.first[s] = Some(opt.data);
                }
            }
        }
        Ok(())
    }
}

fn addr(data: &[u8]) -> Result<Ipv4Addr> {
    match data {
        [a, b, c, d] => Ok(Ipv4Addr::new(*a, *b, *c, *d)),
        _ => Err(Error),
    }
}

fn u32_of(data: &[u8]) -> Result<u32> {
    match data {
        [a, b, c, d] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => Err(Error),
    }
}

fn addr_list(data: &[u8]) -> Result<&[u8]> {
    if data.len().is_multiple_of(4) {
        Ok(data)
    } else {
        Err(Error)
    }
}

impl<'a> Options<'a> {
    /// Decodes the values of the known options, validating each one's length
    /// (RFC 2132 gives the fixed lengths and the minimums).
    fn decode(values: &[Option<&'a [u8]>; KNOWN.len()]) -> Result<Options<'a>> {
        let mut o = Options::default();
        for (&kind, value) in KNOWN.iter().zip(values) {
            let Some(v) = *value else { continue };
            match kind {
                code::MESSAGE_TYPE => match v {
                    [t] => o.message_type = Some(MessageType::from(*t)),
                    _ => return Err(Error),
                },
                code::SUBNET_MASK => o.subnet_mask = Some(addr(v)?),
                code::ROUTER => o.router = Some(addr_list(v)?),
                code::DNS => o.dns = Some(addr_list(v)?),
                code::HOSTNAME => o.hostname = Some(v),
                code::DOMAIN_NAME => o.domain_name = Some(v),
                code::BROADCAST_ADDR => o.broadcast_addr = Some(addr(v)?),
                code::REQUESTED_IP => o.requested_ip = Some(addr(v)?),
                code::LEASE_TIME => o.lease_time = Some(u32_of(v)?),
                code::OVERLOAD => match v {
                    [x @ 1..=3] => o.overload = Some(*x),
                    _ => return Err(Error),
                },
                code::SERVER_ID => o.server_id = Some(addr(v)?),
                code::PARAMETER_REQUEST_LIST => o.parameter_request_list = Some(v),
                code::MESSAGE => o.message = Some(v),
                code::MAX_MESSAGE_SIZE => match v {
                    [a, b] if u16::from_be_bytes([*a, *b]) >= MIN_MAX_MESSAGE_SIZE => {
                        o.max_message_size = Some(u16::from_be_bytes([*a, *b]));
                    }
                    _ => return Err(Error),
                },
                code::RENEWAL_TIME => o.renewal_time = Some(u32_of(v)?),
                code::REBINDING_TIME => o.rebinding_time = Some(u32_of(v)?),
                code::VENDOR_CLASS => o.vendor_class = Some(v),
                code::CLIENT_ID => {
                    // RFC 2132 §9.14: a type byte and at least one byte of identifier.
                    if v.len() < 2 {
                        return Err(Error);
                    }
                    o.client_id = Some(v);
                }
                code::RELAY_AGENT_INFO => o.relay_agent_info = Some(v),
                code::SUBNET_SELECTION => o.subnet_selection = Some(addr(v)?),
                _ => {}
            }
        }
        Ok(o)
    }

    /// Calls `f(code, data)` for every present option in emit order: 53, 54, 51, 58, 59,
    /// 1, 3, 6, 12, 15, 28, 56, then the client-side ones (50, 55, 57, 60, 118), then 61,
    /// and 82 last (RFC 3046 §2.1). Overload (52) is never emitted.
    fn for_each_emitted(&self, mut f: impl FnMut(u8, &[u8]) -> Result<()>) -> Result<()> {
        if let Some(t) = self.message_type {
            f(code::MESSAGE_TYPE, &[u8::from(t)])?;
        }
        if let Some(a) = self.server_id {
            f(code::SERVER_ID, &a.octets())?;
        }
        if let Some(v) = self.lease_time {
            f(code::LEASE_TIME, &v.to_be_bytes())?;
        }
        if let Some(v) = self.renewal_time {
            f(code::RENEWAL_TIME, &v.to_be_bytes())?;
        }
        if let Some(v) = self.rebinding_time {
            f(code::REBINDING_TIME, &v.to_be_bytes())?;
        }
        if let Some(a) = self.subnet_mask {
            f(code::SUBNET_MASK, &a.octets())?;
        }
        if let Some(v) = self.router {
            f(code::ROUTER, v)?;
        }
        if let Some(v) = self.dns {
            f(code::DNS, v)?;
        }
        if let Some(v) = self.hostname {
            f(code::HOSTNAME, v)?;
        }
        if let Some(v) = self.domain_name {
            f(code::DOMAIN_NAME, v)?;
        }
        if let Some(a) = self.broadcast_addr {
            f(code::BROADCAST_ADDR, &a.octets())?;
        }
        if let Some(v) = self.message {
            f(code::MESSAGE, v)?;
        }
        if let Some(a) = self.requested_ip {
            f(code::REQUESTED_IP, &a.octets())?;
        }
        if let Some(v) = self.parameter_request_list {
            f(code::PARAMETER_REQUEST_LIST, v)?;
        }
        if let Some(v) = self.max_message_size {
            f(code::MAX_MESSAGE_SIZE, &v.to_be_bytes())?;
        }
        if let Some(v) = self.vendor_class {
            f(code::VENDOR_CLASS, v)?;
        }
        if let Some(a) = self.subnet_selection {
            f(code::SUBNET_SELECTION, &a.octets())?;
        }
        if let Some(v) = self.client_id {
            f(code::CLIENT_ID, v)?;
        }
        if let Some(v) = self.relay_agent_info {
            f(code::RELAY_AGENT_INFO, v)?;
        }
        Ok(())
    }

    /// Bytes the options take on emit, END included.
    fn emitted_len(&self) -> usize {
        let mut n = 1;
        // The closure never fails.
        let _ = self.for_each_emitted(|_, v| {
            n += OptionWriter::encoded_len(v.len());
            Ok(())
        });
        n
    }
}

impl<'a> Repr<'a> {
    /// A BOOTREQUEST from the Ethernet client `mac` (htype 1, hlen 6, `chaddr` = `mac`; RFC
    /// 2131 §2) in exchange `xid`, DHCP (magic cookie), with option 53 `message_type` (left
    /// out when `None`) and nothing else: every other field zero, no other option. What a
    /// client builds before filling in its own fields (the load generator, the benches and the
    /// tests start from it).
    pub fn request(mac: [u8; 6], xid: u32, message_type: Option<MessageType>) -> Self {
        let mut chaddr = [0; 16];
        chaddr[..6].copy_from_slice(&mac);
        Repr {
            op: OpCode::Request,
            htype: 1,
            hlen: 6,
            hops: 0,
            xid,
            secs: 0,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr,
            sname: &[],
            file: &[],
            is_dhcp: true,
            options: Options {
                message_type,
                ..Options::default()
            },
        }
    }

    /// Parses and validates a message.
    ///
    /// `scratch` holds the concatenations of options split per RFC 3396 or spread over
    /// `file`/`sname` by option overload. Only repeated options are copied, so a scratch as
    /// long as the message is always enough; 1 KiB on the caller's stack covers every real
    /// client (a message whose repeated options need more is rejected, not truncated).
    /// Errors when the scratch is too small, and on every malformation listed on
    /// [`Repr`] and [`Options`]: `op` not 1 or 2, `hlen > 16`, a truncated option, an
    /// option 52 outside 1..=3, a fixed-length option of the wrong length (1, 28, 50, 54,
    /// 118, 51, 58, 59: 4 bytes; 53: 1; 57: 2 and >= 576), a router or DNS list whose length
    /// is not a multiple of 4, an option 61 shorter than 2.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&'a T>,
        scratch: &'a mut [u8],
    ) -> Result<Repr<'a>> {
        packet.check_len()?;
        let op = match packet.op() {
            1 => OpCode::Request,
            2 => OpCode::Reply,
            _ => return Err(Error),
        };
        let hlen = packet.hlen();
        if hlen > 16 {
            return Err(Error);
        }
        let is_dhcp = packet.is_dhcp();
        let mut sname = until_nul(packet.sname());
        let mut file = until_nul(packet.file());
        let mut options = Options::default();
        if is_dhcp {
            let mut c = Collected {
                first: [None; KNOWN.len()],
                repeated: [false; KNOWN.len()],
            };
            c.scan(packet.options())?;
            // RFC 3396 §5: options, then file, then sname.
            let ov = slot(code::OVERLOAD).unwrap_or(0);
            let overload = match c.first[ov] {
                None => 0,
                Some([x @ 1..=3]) if !c.repeated[ov] => *x,
                Some(_) => return Err(Error),
            };
            let mut areas: [&'a [u8]; 3] = [packet.options(), &[], &[]];
            if overload & 1 != 0 {
                areas[1] = packet.file();
                c.scan(areas[1])?;
                file = &[];
            }
            if overload & 2 != 0 {
                areas[2] = packet.sname();
                c.scan(areas[2])?;
                sname = &[];
            }
            let mut values = c.first;
            let mut scratch = scratch;
            for (s, &kind) in KNOWN.iter().enumerate() {
                if !c.repeated[s] {
                    continue;
                }
                let total: usize = areas
                    .iter()
                    .flat_map(|a| OptionsIter::new(a))
                    .filter_map(|o| o.ok())
                    .filter(|o| o.kind == kind)
                    .map(|o| o.data.len())
                    .sum();
                if total > scratch.len() {
                    return Err(Error);
                }
                let (joined, rest) = core::mem::take(&mut scratch).split_at_mut(total);
                scratch = rest;
                let mut at = 0;
                for o in areas
                    .iter()
                    .flat_map(|a| OptionsIter::new(a))
                    .filter_map(|o| o.ok())
                {
                    if o.kind == kind {
                        joined[at..at + o.data.len()].copy_from_slice(o.data);
                        at += o.data.len();
                    }
                }
                values[s] = Some(joined);
            }
            options = Options::decode(&values)?;
        }
        Ok(Repr {
            op,
            htype: packet.htype(),
            hlen,
            hops: packet.hops(),
            xid: packet.xid(),
            secs: packet.secs(),
            flags: packet.flags(),
            ciaddr: packet.ciaddr(),
            yiaddr: packet.yiaddr(),
            siaddr: packet.siaddr(),
            giaddr: packet.giaddr(),
            chaddr: packet.chaddr(),
            sname,
            file,
            is_dhcp,
            options,
        })
    }

    /// Length of the message [`Repr::emit`] writes: header, cookie, options and END, padded
    /// to 300 bytes (RFC 1542 §2.1).
    pub fn buffer_len(&self) -> usize {
        let len = if self.is_dhcp {
            OPTIONS_OFFSET + self.options.emitted_len()
        } else {
            BOOTP_HEADER_LEN
        };
        len.max(MIN_MESSAGE_LEN)
    }

    /// Writes the message into the first [`Repr::buffer_len`] bytes of `packet`: the fixed
    /// header, then (when `is_dhcp`) the cookie and the options in the order of
    /// [`Options`]' emit (53, 54, 51, 58, 59, 1, 3, 6, 12, 15, 28, 56, 50, 55, 57, 60, 118,
    /// 61, 82, END), options over 255 bytes split per RFC 3396, never overloaded; then zero
    /// padding. Fails if the buffer is too short or `sname`/`file` do not fit their fields.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        let len = self.buffer_len();
        let buf = packet.buffer.as_mut();
        let Some(buf) = buf.get_mut(..len) else {
            return Err(Error);
        };
        let mut p = Packet::new_unchecked(buf);
        p.set_op(match self.op {
            OpCode::Request => 1,
            OpCode::Reply => 2,
        });
        p.set_htype(self.htype);
        p.set_hlen(self.hlen);
        p.set_hops(self.hops);
        p.set_xid(self.xid);
        p.set_secs(self.secs);
        p.set_flags(self.flags);
        p.set_ciaddr(self.ciaddr);
        p.set_yiaddr(self.yiaddr);
        p.set_siaddr(self.siaddr);
        p.set_giaddr(self.giaddr);
        p.set_chaddr(&self.chaddr);
        p.set_sname(self.sname)?;
        p.set_file(self.file)?;
        let rest = p.buffer.get_mut(BOOTP_HEADER_LEN..).unwrap_or(&mut []);
        if self.is_dhcp {
            let (cookie, opts) = rest.split_at_mut(4);
            cookie.copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
            let mut w = OptionWriter::new(opts);
            self.options.for_each_emitted(|kind, v| w.emit(kind, v))?;
            let n = w.finish()?;
            opts[n..].fill(0);
        } else {
            rest.fill(0);
        }
        Ok(())
    }

    /// The relay agent information (option 82), parsed, if present.
    pub fn relay_agent_info(&self) -> Option<Result<RelayAgentInfo<'a>>> {
        self.options.relay_agent_info.map(RelayAgentInfo::parse)
    }
}
