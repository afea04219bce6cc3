//! Whole frames, Ethernet (+ one 802.1Q tag) / IPv4 / UDP / DHCP: the two operations the
//! workers need, so that no other module touches offsets. [`parse`] takes a received frame
//! apart (validating Ethernet, IPv4 and the UDP length, not the UDP checksum: see
//! [`super::udp`]); [`emit_reply`] builds a reply with every checksum computed.

use core::net::Ipv4Addr;

use super::dhcpv4::{self, Repr};
use super::{Error, Result, ethernet, ipv4, udp};

/// The addressing of a received IPv4/UDP frame and its UDP payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Ethernet source address.
    pub eth_src: [u8; 6],
    /// Ethernet destination address.
    pub eth_dst: [u8; 6],
    /// 802.1Q Tag Control Information, when tagged.
    pub vlan: Option<u16>,
    /// IPv4 Source Address.
    pub ip_src: Ipv4Addr,
    /// IPv4 Destination Address.
    pub ip_dst: Ipv4Addr,
    /// UDP Source Port.
    pub udp_src: u16,
    /// UDP Destination Port.
    pub udp_dst: u16,
    /// The UDP payload (the DHCP message, when the port says so: the caller checks).
    pub dhcp: &'a [u8],
}

/// Parses an Ethernet frame down to its UDP payload. Errors unless it is (tagged or not)
/// Ethernet II / unfragmented IPv4 with a valid header checksum / UDP with a consistent
/// length. Ethernet padding after the IPv4 Total Length is ignored.
pub fn parse(frame: &[u8]) -> Result<Frame<'_>> {
    let eth = ethernet::Packet::new_checked(frame)?;
    let eth_repr = ethernet::Repr::parse(&eth)?;
    if eth_repr.ethertype != ethernet::ETHERTYPE_IPV4 {
        return Err(Error);
    }
    let ip = ipv4::Packet::new_checked(eth.payload())?;
    let ip_repr = ipv4::Repr::parse(&ip)?;
    if ip_repr.protocol != ipv4::PROTOCOL_UDP {
        return Err(Error);
    }
    let udp = udp::Packet::new_checked(ip.payload())?;
    let udp_repr = udp::Repr::parse(&udp)?;
    Ok(Frame {
        eth_src: eth_repr.src_addr,
        eth_dst: eth_repr.dst_addr,
        vlan: eth_repr.vlan,
        ip_src: ip_repr.src_addr,
        ip_dst: ip_repr.dst_addr,
        udp_src: udp_repr.src_port,
        udp_dst: udp_repr.dst_port,
        dhcp: udp.payload(),
    })
}

/// The addressing of a reply frame; the engine decides it (RFC 2131 §4.1: to giaddr, to
/// ciaddr, to yiaddr by unicast, or broadcast).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyHeader {
    /// Ethernet source address.
    pub eth_src: [u8; 6],
    /// Ethernet destination address.
    pub eth_dst: [u8; 6],
    /// 802.1Q TCI to tag the reply with (normally the request's).
    pub vlan: Option<u16>,
    /// IPv4 Source Address.
    pub ip_src: Ipv4Addr,
    /// IPv4 Destination Address.
    pub ip_dst: Ipv4Addr,
    /// UDP Source Port (67).
    pub udp_src: u16,
    /// UDP Destination Port (68 to a client, 67 to a relay).
    pub udp_dst: u16,
    /// IPv4 Time to Live.
    pub ttl: u8,
}

/// Length of the frame [`emit_reply`] writes for these arguments.
pub fn reply_len(hdr: &ReplyHeader, dhcp: &Repr<'_>) -> usize {
    eth_repr(hdr).buffer_len() + ipv4::HEADER_LEN + udp::HEADER_LEN + dhcp.buffer_len()
}

const fn eth_repr(hdr: &ReplyHeader) -> ethernet::Repr {
    ethernet::Repr {
        src_addr: hdr.eth_src,
        dst_addr: hdr.eth_dst,
        vlan: hdr.vlan,
        ethertype: ethernet::ETHERTYPE_IPV4,
    }
}

/// Builds Ethernet (+802.1Q) / IPv4 (no options, DF clear, id 0, header checksum) / UDP
/// (checksum computed over the pseudo-header, never partial) / DHCP into the start of `buf`
/// and returns the frame length. Errors when `buf` is too short or `dhcp` cannot be emitted.
pub fn emit_reply(hdr: &ReplyHeader, dhcp: &Repr<'_>, buf: &mut [u8]) -> Result<usize> {
    emit_with(hdr, dhcp.buffer_len(), buf, |b| {
        dhcp.emit(&mut dhcpv4::Packet::new_unchecked(b))
    })
}

/// [`emit_reply`] with a UDP payload the caller built (the control plane's leasequery
/// replies, whose options `Repr` does not carry).
pub fn emit_payload(hdr: &ReplyHeader, payload: &[u8], buf: &mut [u8]) -> Result<usize> {
    emit_with(hdr, payload.len(), buf, |b| {
        b.copy_from_slice(payload);
        Ok(())
    })
}

fn emit_with(
    hdr: &ReplyHeader,
    dhcp_len: usize,
    buf: &mut [u8],
    dhcp: impl FnOnce(&mut [u8]) -> Result<()>,
) -> Result<usize> {
    let eth_repr = eth_repr(hdr);
    let total = eth_repr.buffer_len() + ipv4::HEADER_LEN + udp::HEADER_LEN + dhcp_len;
    let frame = buf.get_mut(..total).ok_or(Error)?;
    let (eth_hdr, ip_buf) = frame.split_at_mut(eth_repr.buffer_len());
    eth_repr.emit(&mut ethernet::Packet::new_unchecked(eth_hdr))?;

    let ip_repr = ipv4::Repr {
        src_addr: hdr.ip_src,
        dst_addr: hdr.ip_dst,
        protocol: ipv4::PROTOCOL_UDP,
        payload_len: udp::HEADER_LEN + dhcp_len,
        ttl: hdr.ttl,
    };
    let udp_repr = udp::Repr {
        src_port: hdr.udp_src,
        dst_port: hdr.udp_dst,
        payload_len: dhcp_len,
    };
    // Inside out: the DHCP message, then the UDP header and checksum over it, then IPv4.
    let udp_buf = &mut ip_buf[ipv4::HEADER_LEN..];
    dhcp(&mut udp_buf[udp::HEADER_LEN..])?;
    udp_repr.emit(
        &mut udp::Packet::new_unchecked(udp_buf),
        hdr.ip_src,
        hdr.ip_dst,
    )?;
    ip_repr.emit(&mut ipv4::Packet::new_unchecked(ip_buf))?;
    Ok(total)
}
