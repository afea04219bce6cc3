//! DHCPv4 / BOOTP (RFC 2131 §2, RFC 951) with the options of RFC 2132 tandem uses.

use core::net::Ipv4Addr;

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
