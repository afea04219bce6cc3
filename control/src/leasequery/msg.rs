//! The bytes of leasequery: a query parsed through `dataplane::wire::dhcpv4` (RFC 2131 §2,
//! RFC 3396 concatenation, option overload), the few options the dataplane does not know
//! gathered here the same way, and replies built with the dataplane's `OptionWriter` (which
//! splits options over 255 bytes, RFC 3396 §5). Nothing here panics on any input.

use std::net::Ipv4Addr;

use dataplane::wire::dhcpv4::{
    MAGIC_COOKIE, MIN_MESSAGE_LEN, OPTIONS_OFFSET, OpCode, Packet, Repr,
};
use dataplane::wire::options::{OptionWriter, OptionsIter};
use dataplane::wire::relay::{SubOption, SubOptions};

/// DHCP message types (option 53) of RFC 4388 §6.1 and RFC 6926 §6.2.1.
pub(crate) mod msg_type {
    pub const LEASEQUERY: u8 = 10;
    pub const LEASEUNASSIGNED: u8 = 11;
    pub const LEASEUNKNOWN: u8 = 12;
    pub const LEASEACTIVE: u8 = 13;
    pub const BULKLEASEQUERY: u8 = 14;
    pub const LEASEQUERYDONE: u8 = 15;
}

/// Option codes beyond the dataplane's `code` module.
pub(crate) mod opt {
    pub use dataplane::wire::dhcpv4::code::{
        CLIENT_ID, LEASE_TIME, MESSAGE_TYPE, RELAY_AGENT_INFO, SERVER_ID,
    };
    /// client-last-transaction-time (RFC 4388 §6.1 #2).
    pub const CLIENT_LAST_TRANSACTION_TIME: u8 = 91;
    /// associated-ip (RFC 4388 §6.1 #3).
    pub const ASSOCIATED_IP: u8 = 92;
    /// status-code (RFC 6926 §6.2.2).
    pub const STATUS_CODE: u8 = 151;
    /// base-time (RFC 6926 §6.2.3).
    pub const BASE_TIME: u8 = 152;
    /// start-time-of-state (RFC 6926 §6.2.4).
    pub const START_TIME_OF_STATE: u8 = 153;
    /// query-start-time (RFC 6926 §6.2.5).
    pub const QUERY_START_TIME: u8 = 154;
    /// query-end-time (RFC 6926 §6.2.6).
    pub const QUERY_END_TIME: u8 = 155;
    /// dhcp-state (RFC 6926 §6.2.7).
    pub const DHCP_STATE: u8 = 156;
    /// data-source (RFC 6926 §6.2.8).
    pub const DATA_SOURCE: u8 = 157;
    /// Virtual Subnet Selection (RFC 6607 §3.1; type 254 added by RFC 6926 §6.2.9).
    pub const VSS: u8 = 221;
}

/// Relay agent information sub-options a query selects by.
pub(crate) mod sub {
    /// Agent Remote ID (RFC 3046 §3.2).
    pub const REMOTE_ID: u8 = dataplane::wire::relay::REMOTE_ID;
    /// Relay-ID (RFC 6925 §3).
    pub const RELAY_ID: u8 = 12;
    /// Link selection (RFC 3527 §3): a bulk query's link (tandem's qualifier).
    pub const LINK_SELECTION: u8 = 5;
}

/// The message is not a DHCP message we can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Malformed;

/// A request as leasequery reads it: the fixed fields and the options it may carry, each
/// option the concatenation of its instances (RFC 3396 §5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Query {
    pub is_request: bool,
    pub is_dhcp: bool,
    pub message_type: Option<u8>,
    pub xid: u32,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub htype: u8,
    /// `<= 16` (the dataplane's parse refuses more).
    pub hlen: u8,
    pub chaddr: [u8; 16],
    /// Option 61, at least 2 bytes (RFC 2132 §9.14).
    pub client_id: Option<Vec<u8>>,
    /// Option 82's payload.
    pub relay: Option<Vec<u8>>,
    /// Option 55.
    pub prl: Option<Vec<u8>>,
    /// Option 57, `>= 576`.
    pub max_message_size: Option<u16>,
    pub query_start_time: Option<Vec<u8>>,
    pub query_end_time: Option<Vec<u8>>,
    pub vss: Option<Vec<u8>>,
}

impl Query {
    /// Parses `bytes` (one DHCP message, no framing).
    pub fn parse(bytes: &[u8]) -> Result<Query, Malformed> {
        let packet = Packet::new_checked(bytes).map_err(|_| Malformed)?;
        // Only repeated options are copied into the scratch: its length always suffices.
        let mut scratch = vec![0u8; bytes.len()];
        let repr = Repr::parse(&packet, &mut scratch).map_err(|_| Malformed)?;
        let o = &repr.options;
        let areas = areas(&packet, o.overload.unwrap_or(0));
        let extra = |code| gather(&areas, code);
        Ok(Query {
            is_request: repr.op == OpCode::Request,
            is_dhcp: repr.is_dhcp,
            message_type: o.message_type.map(u8::from),
            xid: repr.xid,
            flags: repr.flags,
            ciaddr: repr.ciaddr,
            yiaddr: repr.yiaddr,
            siaddr: repr.siaddr,
            giaddr: repr.giaddr,
            htype: repr.htype,
            hlen: repr.hlen,
            chaddr: repr.chaddr,
            client_id: o.client_id.map(<[u8]>::to_vec),
            relay: o.relay_agent_info.map(<[u8]>::to_vec),
            prl: o.parameter_request_list.map(<[u8]>::to_vec),
            max_message_size: o.max_message_size,
            query_start_time: extra(opt::QUERY_START_TIME),
            query_end_time: extra(opt::QUERY_END_TIME),
            vss: extra(opt::VSS),
        })
    }

    /// The hardware address the query names: `chaddr[..hlen]`.
    pub fn mac(&self) -> &[u8] {
        &self.chaddr[..usize::from(self.hlen.min(16))]
    }

    /// Whether `htype`, `hlen` or `chaddr` carries anything.
    pub fn has_hardware_fields(&self) -> bool {
        self.htype != 0 || self.hlen != 0 || self.chaddr.iter().any(|b| *b != 0)
    }

    /// The value of relay agent sub-option `code` (its first instance), `Err` when option 82
    /// is malformed.
    pub fn relay_sub_option(&self, code: u8) -> Result<Option<&[u8]>, Malformed> {
        let Some(payload) = self.relay.as_deref() else {
            return Ok(None);
        };
        let mut found = None;
        for s in SubOptions::new(payload) {
            let SubOption { kind, data } = s.map_err(|_| Malformed)?;
            if kind == code && found.is_none() {
                found = Some(data);
            }
        }
        Ok(found)
    }

    /// Whether option `code` was asked for: in the Parameter Request List, or by default
    /// when the query has none.
    pub fn wants(&self, code: u8) -> bool {
        self.prl.as_deref().is_none_or(|p| p.contains(&code))
    }
}

/// The options field, then `file`, then `sname` as option 52 says (RFC 3396 §5).
fn areas<'a>(packet: &Packet<&'a [u8]>, overload: u8) -> [&'a [u8]; 3] {
    [
        packet.options(),
        if overload & 1 != 0 {
            packet.file()
        } else {
            &[]
        },
        if overload & 2 != 0 {
            packet.sname()
        } else {
            &[]
        },
    ]
}

/// Option `code`'s instances concatenated (RFC 3396 §5); `None` if absent. The areas were
/// validated by the dataplane's parse, so no TLV is truncated.
fn gather(areas: &[&[u8]; 3], code: u8) -> Option<Vec<u8>> {
    let mut value: Option<Vec<u8>> = None;
    for o in areas.iter().flat_map(|a| OptionsIter::new(a)).flatten() {
        if o.kind == code {
            value.get_or_insert_with(Vec::new).extend_from_slice(o.data);
        }
    }
    value
}

/// The fixed fields of a reply (RFC 2131 §2); `op` is BOOTREPLY, `hops`, `secs`, `yiaddr`,
/// `siaddr`, `sname` and `file` are zero.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    pub message_type: u8,
    pub xid: u32,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub htype: u8,
    pub hlen: u8,
    pub chaddr: [u8; 16],
}

/// Writes a reply's options after option 53, keeping count of the room left.
pub(crate) struct Writer<'a> {
    w: OptionWriter<'a>,
    cap: usize,
}

impl Writer<'_> {
    /// Writes option `code` (split per RFC 3396 when over 255 bytes); false if it did not
    /// fit, and then nothing of it was written.
    pub fn put(&mut self, code: u8, data: &[u8]) -> bool {
        self.w.emit(code, data).is_ok()
    }

    /// A 4-byte big-endian option.
    pub fn put_u32(&mut self, code: u8, v: u32) -> bool {
        self.put(code, &v.to_be_bytes())
    }

    /// Bytes still free for options (END is already kept back).
    pub fn room(&self) -> usize {
        self.cap.saturating_sub(self.w.len())
    }
}

/// Builds a reply of at most `limit` bytes (never less than the 300 of RFC 1542 §2.1, to
/// which it is padded): the header, the cookie, option 53, what `options` writes, END.
pub(crate) fn build(h: &Header, limit: usize, options: impl FnOnce(&mut Writer<'_>)) -> Vec<u8> {
    let limit = limit.max(MIN_MESSAGE_LEN);
    let mut buf = vec![0u8; limit];
    let mut p = Packet::new_unchecked(&mut buf[..]);
    p.set_op(2);
    p.set_htype(h.htype);
    p.set_hlen(h.hlen.min(16));
    p.set_xid(h.xid);
    p.set_flags(h.flags);
    p.set_ciaddr(h.ciaddr);
    p.set_giaddr(h.giaddr);
    p.set_chaddr(&h.chaddr);
    buf[OPTIONS_OFFSET - 4..OPTIONS_OFFSET].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    let area = &mut buf[OPTIONS_OFFSET..];
    // One byte is OptionWriter's own reserve for END.
    let cap = area.len().saturating_sub(1);
    let mut w = Writer {
        w: OptionWriter::new(area),
        cap,
    };
    // Option 53 first; 300 bytes hold it.
    w.put(opt::MESSAGE_TYPE, &[h.message_type]);
    options(&mut w);
    let used = w.w.finish().unwrap_or(0);
    buf.truncate((OPTIONS_OFFSET + used).max(MIN_MESSAGE_LEN));
    buf
}

/// How many addresses an associated-ip option can carry in `room` bytes, split into
/// 255-byte instances (RFC 3396 §5): at most 63 addresses per instance.
pub(crate) fn addresses_that_fit(room: usize) -> usize {
    // Every full instance is 2 + 252 bytes (63 addresses); a last partial one 2 + 4k.
    let full = room / 254;
    let rest = room % 254;
    full * 63 + rest.saturating_sub(2) / 4
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(options: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 240];
        b[0] = 1;
        b[236..240].copy_from_slice(&[99, 130, 83, 99]);
        b.extend_from_slice(options);
        b.push(255);
        b
    }

    #[test]
    fn parses_and_concatenates_long_options() {
        // Option 61 split in two (RFC 3396), 154 present, 82 with a remote-id.
        let b = request(&[
            53, 1, 14, 61, 2, 1, 2, 154, 4, 0, 0, 1, 0, 61, 1, 3, 82, 4, 2, 2, b'r', b'1',
        ]);
        let q = Query::parse(&b).unwrap();
        assert_eq!(q.message_type, Some(14));
        assert_eq!(q.client_id.as_deref(), Some(&[1, 2, 3][..]));
        assert_eq!(q.query_start_time.as_deref(), Some(&[0, 0, 1, 0][..]));
        assert_eq!(q.relay_sub_option(sub::REMOTE_ID), Ok(Some(&b"r1"[..])));
        assert_eq!(q.relay_sub_option(sub::RELAY_ID), Ok(None));
        assert!(q.wants(opt::LEASE_TIME), "no PRL: everything is wanted");
    }

    #[test]
    fn truncated_and_bad_lengths_are_malformed() {
        assert_eq!(Query::parse(&[1; 100]), Err(Malformed));
        // Option 61 runs past the end.
        let mut b = request(&[53, 1, 10, 61, 9, 1, 2]);
        b.pop();
        assert_eq!(Query::parse(&b), Err(Malformed));
        // Option 53 of two bytes.
        assert_eq!(Query::parse(&request(&[53, 2, 10, 10])), Err(Malformed));
        // hlen over 16.
        let mut b = request(&[53, 1, 10]);
        b[2] = 17;
        assert_eq!(Query::parse(&b), Err(Malformed));
        // A broken sub-option in 82.
        let q = Query::parse(&request(&[53, 1, 10, 82, 3, 2, 5, 1])).unwrap();
        assert_eq!(q.relay_sub_option(sub::REMOTE_ID), Err(Malformed));
    }

    #[test]
    fn built_replies_are_padded_and_bounded() {
        let h = Header {
            message_type: msg_type::LEASEUNKNOWN,
            xid: 7,
            flags: 0x8000,
            ciaddr: Ipv4Addr::new(10, 0, 0, 1),
            giaddr: Ipv4Addr::new(10, 0, 0, 254),
            htype: 0,
            hlen: 0,
            chaddr: [0; 16],
        };
        let b = build(&h, 576, |_| {});
        assert_eq!(b.len(), 300);
        assert_eq!(&b[240..244], &[53, 1, 12, 255]);
        assert_eq!(
            (b[0], &b[4..8], &b[10..12]),
            (2, &[0, 0, 0, 7][..], &[0x80, 0][..])
        );
        // A writer never overruns its limit.
        let b = build(&h, 400, |w| {
            assert!(w.put(92, &[1; 100]));
            assert!(!w.put(92, &[1; 100]), "only 155 bytes were left");
            let n = addresses_that_fit(w.room());
            assert!(w.put(92, &vec![9; 4 * n]));
            assert!(!w.put(92, &[9; 4]));
        });
        assert!(b.len() <= 400);
        assert_eq!(addresses_that_fit(254), 63);
        assert_eq!(addresses_that_fit(6), 1);
        assert_eq!(addresses_that_fit(5), 0);
        assert_eq!(addresses_that_fit(254 + 6), 64);
    }
}
