//! The pieces of `tandem-loadgen` (the AF_XDP DHCP client emulator, `src/bin/tandem-loadgen.rs`)
//! that do no I/O: the request frames it sends, the replies it reads, the shared table of
//! exchanges in flight, and the latency histogram.
//!
//! One exchange is one emulated client's DORA: a DHCPDISCOVER, the server's DHCPOFFER, a
//! SELECTING DHCPREQUEST for the offered address, the DHCPACK. Exchange `seq` (a global
//! counter) uses transaction id `seq as u32` and client `seq % clients`, whose MAC is
//! `02:4c:` + the client number in 4 bytes: up to 2^32 distinct clients.
//!
//! Exchanges live in [`Exchanges`], a ring of [`Exchanges::capacity`] slots indexed by the
//! xid: any worker thread may receive any reply (the server picks the rx queue), so the table
//! is shared and every transition is a single atomic compare-and-swap. A sweeper walks the
//! ring in start order and times out the exchanges that got no ACK within the timeout.
//!
//! Beside them a run can send a **flood** ([`Flood`]): DHCPDISCOVERs of a hostile client that
//! never answers an OFFER, shaped by [`FloodShape`], counted apart from the exchanges. Its
//! chaddrs start with [`FLOOD_MAC_OCTET`], so a reply to the flood is told from a reply to a
//! legitimate client (`02:4c:…`) by its first octet.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use dataplane::wire::dhcpv4::{self, MessageType, OpCode, Options, Repr};
use dataplane::wire::frame::{self, ReplyHeader};
use dataplane::wire::relay;

/// Parameter Request List the emulated clients send (perfdhcp's).
const PRL: &[u8] = &[1, 3, 6, 15, 28];

/// How the emulated clients reach the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addressing {
    /// As a relay agent: giaddr (the generator interface's address), its MAC; requests go
    /// from giaddr:67 with option 82, replies come back to giaddr:67. `None`: directly, from
    /// 0.0.0.0:68 with the client's own MAC and the broadcast flag.
    pub relay: Option<(Ipv4Addr, [u8; 6])>,
    /// Destination IPv4 address of the requests (255.255.255.255 or the server).
    pub dst_ip: Ipv4Addr,
    /// Destination MAC (broadcast, or the server's for unicast).
    pub dst_mac: [u8; 6],
    /// Send option 61 (client identifier, type 1 + the MAC).
    pub client_id: bool,
    /// As a relay agent, add option 82 (perfdhcp -4 does not).
    pub option82: bool,
    /// Option 82's circuit id: `None`, `lg` + the client number (a line per client);
    /// `Some(id)`, `id` on every request (one subscriber port: the flood's).
    pub circuit_id: Option<[u8; 6]>,
}

/// The MAC of client `n`: locally administered, `02:4c:` + `n` big-endian.
pub fn client_mac(n: u32) -> [u8; 6] {
    let b = n.to_be_bytes();
    [0x02, 0x4c, b[0], b[1], b[2], b[3]]
}

/// Option 82 of a relayed request (RFC 3046 §2.0): circuit id `circuit`, or else `lg` + the
/// client number (one subscriber line per client, as an ISP's access relay stamps its port;
/// tandem limits requests per circuit), remote id the MAC. Returns the bytes used in `buf`.
fn option82(mac: &[u8; 6], circuit: Option<[u8; 6]>, buf: &mut [u8; 20]) -> usize {
    let c = circuit.unwrap_or([b'l', b'g', mac[2], mac[3], mac[4], mac[5]]);
    let bytes = [
        relay::CIRCUIT_ID,
        6,
        c[0],
        c[1],
        c[2],
        c[3],
        c[4],
        c[5],
        relay::REMOTE_ID,
        6,
        mac[0],
        mac[1],
        mac[2],
        mac[3],
        mac[4],
        mac[5],
    ];
    buf[..bytes.len()].copy_from_slice(&bytes);
    bytes.len()
}

/// Builds a request frame (Ethernet/IPv4/UDP with its checksum/DHCP) into `buf`.
fn emit_request(
    addr: &Addressing,
    xid: u32,
    mac: [u8; 6],
    options: Options<'_>,
    buf: &mut [u8],
) -> Option<usize> {
    let mut cid = [0u8; 7];
    cid[0] = 1;
    cid[1..].copy_from_slice(&mac);
    let mut o82 = [0u8; 20];
    let mut options = options;
    options.parameter_request_list = Some(PRL);
    if addr.client_id {
        options.client_id = Some(&cid);
    }
    let (hdr, giaddr, hops, flags) = match addr.relay {
        Some((giaddr, relay_mac)) => {
            if addr.option82 {
                let n = option82(&mac, addr.circuit_id, &mut o82);
                options.relay_agent_info = Some(&o82[..n]);
            }
            let hdr = ReplyHeader {
                eth_src: relay_mac,
                eth_dst: addr.dst_mac,
                vlan: None,
                ip_src: giaddr,
                ip_dst: addr.dst_ip,
                udp_src: dhcpv4::SERVER_PORT,
                udp_dst: dhcpv4::SERVER_PORT,
                ttl: 64,
            };
            (hdr, giaddr, 1, 0)
        }
        None => {
            let hdr = ReplyHeader {
                eth_src: mac,
                eth_dst: addr.dst_mac,
                vlan: None,
                ip_src: Ipv4Addr::UNSPECIFIED,
                ip_dst: addr.dst_ip,
                udp_src: dhcpv4::CLIENT_PORT,
                udp_dst: dhcpv4::SERVER_PORT,
                ttl: 64,
            };
            (hdr, Ipv4Addr::UNSPECIFIED, 0, dhcpv4::FLAG_BROADCAST)
        }
    };
    let repr = Repr {
        hops,
        flags,
        giaddr,
        options,
        ..Repr::request(mac, xid, None)
    };
    frame::emit_reply(&hdr, &repr, buf).ok()
}

/// Builds the DHCPDISCOVER of exchange `xid` from client `mac` into `buf`; its length.
pub fn discover(addr: &Addressing, xid: u32, mac: [u8; 6], buf: &mut [u8]) -> Option<usize> {
    let options = Options {
        message_type: Some(MessageType::Discover),
        ..Options::default()
    };
    emit_request(addr, xid, mac, options, buf)
}

/// Builds the SELECTING DHCPREQUEST answering `offer` into `buf`; its length.
pub fn request(addr: &Addressing, offer: &Reply, buf: &mut [u8]) -> Option<usize> {
    let options = Options {
        message_type: Some(MessageType::Request),
        requested_ip: Some(offer.yiaddr),
        server_id: Some(offer.server_id),
        ..Options::default()
    };
    emit_request(addr, offer.xid, offer.mac, options, buf)
}

/// The first octet of every flood chaddr (locally administered, unicast); a legitimate
/// client's is `02` ([`client_mac`]).
pub const FLOOD_MAC_OCTET: u8 = 0x06;

/// The one chaddr of [`FloodShape::Mac`].
pub const FLOOD_MAC: [u8; 6] = [FLOOD_MAC_OCTET, b'f', b'l', b'o', b'o', b'd'];

/// The one option 82 circuit id of [`FloodShape::Circuit`]: the abusive subscriber's port.
pub const FLOOD_CIRCUIT_ID: [u8; 6] = *b"flood0";

/// Whether a reply's chaddr is the flood's (see [`FLOOD_MAC_OCTET`]).
pub fn is_flood_mac(mac: &[u8; 6]) -> bool {
    mac[0] == FLOOD_MAC_OCTET
}

/// What the flood's DISCOVERs look like (`--flood-shape`), i.e. which of tandem's rate
/// limits (per MAC, per circuit-id, per relay) can tell them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloodShape {
    /// A random chaddr per packet, not relayed: no per-key limit catches it.
    Direct,
    /// Relayed with one fixed option 82 circuit-id ([`FLOOD_CIRCUIT_ID`]) and a random chaddr
    /// per packet: one abusive subscriber port behind a relay.
    Circuit,
    /// One fixed chaddr ([`FLOOD_MAC`]), not relayed.
    Mac,
}

impl FloodShape {
    /// Every shape, in `--flood-shape` order.
    pub const ALL: [FloodShape; 3] = [FloodShape::Circuit, FloodShape::Direct, FloodShape::Mac];

    /// The `--flood-shape` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FloodShape::Direct => "direct",
            FloodShape::Circuit => "circuit",
            FloodShape::Mac => "mac",
        }
    }

    /// Reads a `--flood-shape` value.
    pub fn parse(s: &str) -> Option<FloodShape> {
        FloodShape::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// The next value of a SplitMix64 sequence (Steele, Lea, Flood 2014): the flood's chaddrs
/// and xids need to be spread, not unpredictable.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A hostile client's DHCPDISCOVERs: sent, never followed by a REQUEST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flood {
    shape: FloodShape,
    addr: Addressing,
}

impl Flood {
    /// The flood of `shape` toward the same server as `legit`. [`FloodShape::Circuit`] is
    /// relayed by `relay` (its giaddr and MAC: the IPv4 source the server answers), and is
    /// `None` without one; the other shapes are direct clients.
    pub fn new(
        shape: FloodShape,
        legit: &Addressing,
        relay: Option<(Ipv4Addr, [u8; 6])>,
    ) -> Option<Flood> {
        let relayed = shape == FloodShape::Circuit;
        let addr = Addressing {
            relay: if relayed { Some(relay?) } else { None },
            dst_ip: legit.dst_ip,
            dst_mac: legit.dst_mac,
            client_id: false,
            option82: relayed,
            circuit_id: relayed.then_some(FLOOD_CIRCUIT_ID),
        };
        Some(Flood { shape, addr })
    }

    /// The shape.
    pub fn shape(&self) -> FloodShape {
        self.shape
    }

    /// Builds one flood DHCPDISCOVER into `buf`, its xid and (but for [`FloodShape::Mac`])
    /// its chaddr drawn from `rng`; its length.
    pub fn discover(&self, rng: &mut u64, buf: &mut [u8]) -> Option<usize> {
        let r = splitmix64(rng);
        let mac = match self.shape {
            FloodShape::Mac => FLOOD_MAC,
            FloodShape::Direct | FloodShape::Circuit => {
                let b = r.to_be_bytes();
                [FLOOD_MAC_OCTET, b[0], b[1], b[2], b[3], b[4]]
            }
        };
        discover(&self.addr, (r >> 32) as u32, mac, buf)
    }
}

/// What the generator reads of a server's reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub kind: MessageType,
    pub xid: u32,
    pub yiaddr: Ipv4Addr,
    /// Option 54, else the IPv4 source address.
    pub server_id: Ipv4Addr,
    /// The first 6 bytes of chaddr.
    pub mac: [u8; 6],
}

/// Reads a reply frame: a BOOTREPLY with a message type. `None` for anything else.
pub fn parse_reply(data: &[u8]) -> Option<Reply> {
    let f = frame::parse(data).ok()?;
    let packet = dhcpv4::Packet::new_checked(f.dhcp).ok()?;
    let mut scratch = [0u8; 1024];
    let repr = Repr::parse(&packet, &mut scratch).ok()?;
    if repr.op != OpCode::Reply {
        return None;
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&repr.chaddr[..6]);
    Some(Reply {
        kind: repr.options.message_type?,
        xid: repr.xid,
        yiaddr: repr.yiaddr,
        server_id: repr.options.server_id.unwrap_or(f.ip_src),
        mac,
    })
}

/// Log-bucket latency histogram in nanoseconds (HDR-style: 32 linear sub-buckets per power
/// of two, so a bucket's width is at most 1/32 of its value: ~3 % precision).
#[derive(Clone, Debug)]
pub struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    sum: u128,
    max: u64,
}

const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: vec![0; ((64 - SUB_BITS as usize) + 1) * SUB as usize],
            count: 0,
            sum: 0,
            max: 0,
        }
    }
}

impl Histogram {
    fn index(v: u64) -> usize {
        if v < SUB {
            return v as usize;
        }
        let e = 63 - v.leading_zeros(); // >= SUB_BITS
        let sub = (v >> (e - SUB_BITS)) & (SUB - 1);
        ((e - SUB_BITS + 1) as usize) * SUB as usize + sub as usize
    }

    /// The largest value in bucket `i`.
    fn upper(i: usize) -> u64 {
        let (group, sub) = ((i as u64) / SUB, (i as u64) % SUB);
        if group == 0 {
            return sub;
        }
        let e = group - 1 + u64::from(SUB_BITS);
        let lo = (SUB + sub) << (e - u64::from(SUB_BITS));
        lo + ((1u64 << (e - u64::from(SUB_BITS))) - 1)
    }

    /// Counts one value.
    pub fn record(&mut self, v: u64) {
        if let Some(b) = self.buckets.get_mut(Self::index(v)) {
            *b += 1;
        }
        self.count += 1;
        self.sum += u128::from(v);
        self.max = self.max.max(v);
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    /// Values counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest value counted (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The mean (0 when empty).
    pub fn mean(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            u64::try_from(self.sum / u128::from(self.count)).unwrap_or(u64::MAX)
        }
    }

    /// The value below which a fraction `q` (0..=1) of the values lie, as the upper bound of
    /// its bucket (never above [`Histogram::max`]); 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Self::upper(i).min(self.max);
            }
        }
        self.max
    }
}

/// One exchange in flight.
#[derive(Debug, Default)]
struct Slot {
    xid: AtomicU32,
    /// When the DISCOVER left, in ns since the run's start, plus 1; 0: the slot is free (the
    /// exchange completed, was refused or timed out).
    discover_at: AtomicU64,
    /// When the REQUEST left, likewise; 0: no OFFER yet.
    request_at: AtomicU64,
}

/// What became of a reply, for [`Exchanges::on_offer`] / [`Exchanges::on_ack`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The first OFFER of a live exchange: answer it. `discover_to_offer` in ns.
    Offered { discover_to_offer: u64 },
    /// The ACK completing a live exchange (latencies in ns).
    Acked {
        request_to_ack: u64,
        discover_to_ack: u64,
    },
    /// A NAK ending a live exchange.
    Nakked,
    /// A reply to an exchange that is over (timed out, or a duplicate) or unknown.
    Stale,
}

/// The exchanges in flight, a ring indexed by xid.
#[derive(Debug)]
pub struct Exchanges {
    slots: Box<[Slot]>,
    mask: u64,
}

impl Exchanges {
    /// A ring of at least `min_slots` slots (rounded up to a power of two, at least 1024).
    pub fn new(min_slots: u64) -> Self {
        let n = min_slots.max(1024).next_power_of_two();
        // A slot's first xid is never its own index: an exchange not started yet is
        // recognised by its slot holding another xid.
        let slots = (0..n)
            .map(|i| Slot {
                xid: AtomicU32::new(!(i as u32)),
                ..Slot::default()
            })
            .collect();
        Exchanges { slots, mask: n - 1 }
    }

    /// Slots in the ring: the most exchanges that can be in flight.
    pub fn capacity(&self) -> u64 {
        self.mask + 1
    }

    fn slot(&self, xid: u32) -> &Slot {
        &self.slots[(u64::from(xid) & self.mask) as usize]
    }

    /// Starts exchange `seq` at `now` (ns since the start). The caller keeps `seq` below the
    /// sweeper's position + [`Exchanges::capacity`].
    pub fn start(&self, seq: u64, now: u64) {
        let s = self.slot(seq as u32);
        s.request_at.store(0, Ordering::Relaxed);
        s.discover_at.store(now + 1, Ordering::Release);
        s.xid.store(seq as u32, Ordering::Release);
    }

    /// An OFFER for `xid` arrived at `now`.
    pub fn on_offer(&self, xid: u32, now: u64) -> Outcome {
        let s = self.slot(xid);
        let d = s.discover_at.load(Ordering::Acquire);
        if d == 0 || s.xid.load(Ordering::Relaxed) != xid {
            return Outcome::Stale;
        }
        match s
            .request_at
            .compare_exchange(0, now + 1, Ordering::AcqRel, Ordering::Relaxed)
        {
            Ok(_) => Outcome::Offered {
                discover_to_offer: (now + 1).saturating_sub(d),
            },
            Err(_) => Outcome::Stale,
        }
    }

    /// An ACK (or, `nak`, a NAK) for `xid` arrived at `now`.
    pub fn on_ack(&self, xid: u32, now: u64, nak: bool) -> Outcome {
        let s = self.slot(xid);
        let d = s.discover_at.load(Ordering::Acquire);
        if d == 0 || s.xid.load(Ordering::Relaxed) != xid {
            return Outcome::Stale;
        }
        let r = s.request_at.load(Ordering::Acquire);
        if r == 0 {
            return Outcome::Stale;
        }
        if s.discover_at
            .compare_exchange(d, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return Outcome::Stale;
        }
        if nak {
            return Outcome::Nakked;
        }
        Outcome::Acked {
            request_to_ack: (now + 1).saturating_sub(r),
            discover_to_ack: (now + 1).saturating_sub(d),
        }
    }

    /// Ends exchange `seq` if it is still live and started before `cutoff` (ns since the
    /// start): `Some(true)` it timed out now, `Some(false)` it was already over, `None` it is
    /// not started yet, or live and younger than `cutoff` (the sweeper stops there).
    pub fn expire(&self, seq: u64, cutoff: u64) -> Option<bool> {
        let s = self.slot(seq as u32);
        if s.xid.load(Ordering::Acquire) != seq as u32 {
            return None;
        }
        let d = s.discover_at.load(Ordering::Acquire);
        if d == 0 {
            return Some(false);
        }
        if d > cutoff {
            return None;
        }
        Some(
            s.discover_at
                .compare_exchange(d, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok(),
        )
    }
}

#[cfg(test)]
mod tests {
    use dhcproto::Decodable;
    use dhcproto::v4;

    use super::*;

    const RELAY: Addressing = Addressing {
        relay: Some((Ipv4Addr::new(10, 9, 0, 2), [2, 0, 0, 0, 0, 2])),
        dst_ip: Ipv4Addr::BROADCAST,
        dst_mac: [0xff; 6],
        client_id: true,
        option82: true,
        circuit_id: None,
    };

    /// Turns a request into the reply a server would send, as a frame.
    fn answer(req: &[u8], kind: MessageType, yiaddr: Ipv4Addr, buf: &mut [u8]) -> usize {
        let f = frame::parse(req).unwrap();
        let packet = dhcpv4::Packet::new_checked(f.dhcp).unwrap();
        let mut scratch = [0u8; 1024];
        let r = Repr::parse(&packet, &mut scratch).unwrap();
        let reply = Repr {
            op: OpCode::Reply,
            yiaddr,
            options: Options {
                message_type: Some(kind),
                server_id: Some(Ipv4Addr::new(10, 9, 0, 1)),
                ..Options::default()
            },
            ..r
        };
        let hdr = ReplyHeader {
            eth_src: [2, 0, 0, 0, 0, 1],
            eth_dst: f.eth_src,
            vlan: None,
            ip_src: Ipv4Addr::new(10, 9, 0, 1),
            ip_dst: f.ip_src,
            udp_src: 67,
            udp_dst: 67,
            ttl: 64,
        };
        frame::emit_reply(&hdr, &reply, buf).unwrap()
    }

    #[test]
    fn discover_is_a_relayed_request_with_option_82_and_a_udp_checksum() {
        let mut buf = [0u8; 2048];
        let n = discover(&RELAY, 0xabcd, client_mac(7), &mut buf).unwrap();
        let f = frame::parse(&buf[..n]).unwrap();
        assert_eq!((f.udp_src, f.udp_dst), (67, 67));
        assert_eq!(f.ip_src, Ipv4Addr::new(10, 9, 0, 2));
        let packet = dhcpv4::Packet::new_checked(f.dhcp).unwrap();
        let mut scratch = [0u8; 1024];
        let r = Repr::parse(&packet, &mut scratch).unwrap();
        assert_eq!(r.options.message_type, Some(MessageType::Discover));
        assert_eq!(r.giaddr, Ipv4Addr::new(10, 9, 0, 2));
        assert_eq!(r.hops, 1);
        assert_eq!(&r.chaddr[..6], &client_mac(7));
        assert_eq!(r.options.client_id, Some(&[1, 2, 0x4c, 0, 0, 0, 7][..]));
        let o82 = r.relay_agent_info().unwrap().unwrap();
        assert_eq!(o82.circuit_id, Some(&b"lg\0\0\0\x07"[..]));
        assert_eq!(o82.remote_id, Some(&client_mac(7)[..]));
        // The UDP checksum is filled in (not zero, not partial): summing the pseudo-header
        // and the datagram gives 0xffff.
        let ip = &buf[14..n];
        let udp = &ip[20..];
        assert_ne!(&udp[6..8], &[0, 0]);
        let mut sum: u32 = 0;
        for c in ip[12..20].chunks(2).chain(udp.chunks(2)) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        sum += 17 + udp.len() as u32;
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff);
    }

    #[test]
    fn a_full_exchange_through_offer_request_ack() {
        let ex = Exchanges::new(16);
        let mut d = [0u8; 2048];
        let mut o = [0u8; 2048];
        let n = discover(&RELAY, 42, client_mac(42), &mut d).unwrap();
        ex.start(42, 1_000);
        let on = answer(
            &d[..n],
            MessageType::Offer,
            Ipv4Addr::new(10, 9, 1, 1),
            &mut o,
        );
        let offer = parse_reply(&o[..on]).unwrap();
        assert_eq!(offer.kind, MessageType::Offer);
        assert_eq!(offer.xid, 42);
        assert_eq!(offer.mac, client_mac(42));
        assert_eq!(
            ex.on_offer(42, 3_000),
            Outcome::Offered {
                discover_to_offer: 2_000
            }
        );
        // A duplicate OFFER is not answered twice.
        assert_eq!(ex.on_offer(42, 3_500), Outcome::Stale);
        let rn = request(&RELAY, &offer, &mut d).unwrap();
        let f = frame::parse(&d[..rn]).unwrap();
        let packet = dhcpv4::Packet::new_checked(f.dhcp).unwrap();
        let mut scratch = [0u8; 1024];
        let r = Repr::parse(&packet, &mut scratch).unwrap();
        assert_eq!(r.options.message_type, Some(MessageType::Request));
        assert_eq!(r.options.requested_ip, Some(Ipv4Addr::new(10, 9, 1, 1)));
        assert_eq!(r.options.server_id, Some(Ipv4Addr::new(10, 9, 0, 1)));
        assert_eq!(r.xid, 42);
        let an = answer(
            &d[..rn],
            MessageType::Ack,
            Ipv4Addr::new(10, 9, 1, 1),
            &mut o,
        );
        let ack = parse_reply(&o[..an]).unwrap();
        assert_eq!(ack.kind, MessageType::Ack);
        assert_eq!(
            ex.on_ack(42, 7_000, false),
            Outcome::Acked {
                request_to_ack: 4_000,
                discover_to_ack: 6_000
            }
        );
        assert_eq!(ex.on_ack(42, 7_001, false), Outcome::Stale);
        assert_eq!(ex.expire(42, u64::MAX), Some(false));
    }

    #[test]
    fn expiry_ends_live_exchanges_once_and_late_replies_are_stale() {
        let ex = Exchanges::new(16);
        ex.start(5, 100);
        assert_eq!(ex.expire(5, 50), None);
        assert_eq!(ex.expire(5, 200), Some(true));
        assert_eq!(ex.expire(5, 200), Some(false));
        assert_eq!(ex.on_offer(5, 300), Outcome::Stale);
        // A reply to an exchange whose slot was reused by a later one is stale.
        ex.start(5 + ex.capacity(), 400);
        assert_eq!(ex.on_offer(5, 500), Outcome::Stale);
        // Not started yet: the sweeper waits.
        assert_eq!(ex.expire(6, u64::MAX), None);
        assert_eq!(ex.expire(0, u64::MAX), None);
    }

    #[test]
    fn parse_reply_ignores_requests_and_garbage() {
        let mut d = [0u8; 2048];
        let n = discover(&RELAY, 1, client_mac(1), &mut d).unwrap();
        assert_eq!(parse_reply(&d[..n]), None);
        assert_eq!(parse_reply(&d[..40]), None);
        assert_eq!(parse_reply(&[]), None);
    }

    /// A flood DISCOVER as an independent decoder (dhcproto) reads it, with the frame's
    /// IPv4 source and UDP source port.
    fn decode_flood(flood: &Flood, rng: &mut u64) -> (v4::Message, Ipv4Addr, u16) {
        let mut buf = [0u8; 2048];
        let n = flood.discover(rng, &mut buf).unwrap();
        let f = frame::parse(&buf[..n]).unwrap();
        let msg = v4::Message::from_bytes(f.dhcp).expect("dhcproto decodes the flood DISCOVER");
        assert_eq!(msg.opcode(), v4::Opcode::BootRequest);
        assert_eq!(msg.opts().msg_type(), Some(v4::MessageType::Discover));
        assert_eq!(msg.chaddr()[0], FLOOD_MAC_OCTET);
        (msg, f.ip_src, f.udp_src)
    }

    fn circuit_id(msg: &v4::Message) -> Option<Vec<u8>> {
        match msg.opts().get(v4::OptionCode::RelayAgentInformation)? {
            v4::DhcpOption::RelayAgentInformation(ri) => {
                match ri.get(v4::relay::RelayCode::AgentCircuitId)? {
                    v4::relay::RelayInfo::AgentCircuitId(c) => Some(c.clone()),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    #[test]
    fn flood_circuit_is_relayed_with_one_circuit_id_and_random_chaddrs() {
        let relay = (Ipv4Addr::new(10, 9, 0, 3), [2, 0, 0, 0, 0, 3]);
        assert_eq!(Flood::new(FloodShape::Circuit, &RELAY, None), None);
        let flood = Flood::new(FloodShape::Circuit, &RELAY, Some(relay)).unwrap();
        let mut rng = 1;
        let mut macs = std::collections::HashSet::new();
        for _ in 0..100 {
            let (msg, ip_src, udp_src) = decode_flood(&flood, &mut rng);
            assert_eq!((ip_src, udp_src), (relay.0, 67));
            assert_eq!(msg.giaddr(), relay.0);
            assert_eq!(msg.hops(), 1);
            assert_eq!(circuit_id(&msg).as_deref(), Some(&FLOOD_CIRCUIT_ID[..]));
            // No client id: the legitimate clients' `--client-id` is theirs alone.
            assert!(msg.opts().get(v4::OptionCode::ClientIdentifier).is_none());
            macs.insert(msg.chaddr().to_vec());
        }
        assert_eq!(macs.len(), 100, "a new chaddr per packet");
    }

    #[test]
    fn flood_direct_is_unrelayed_with_random_chaddrs() {
        let flood = Flood::new(FloodShape::Direct, &RELAY, None).unwrap();
        let mut rng = 2;
        let mut macs = std::collections::HashSet::new();
        for _ in 0..100 {
            let (msg, ip_src, udp_src) = decode_flood(&flood, &mut rng);
            assert_eq!((ip_src, udp_src), (Ipv4Addr::UNSPECIFIED, 68));
            assert_eq!(msg.giaddr(), Ipv4Addr::UNSPECIFIED);
            assert_eq!(msg.hops(), 0);
            assert!(msg.flags().broadcast());
            assert_eq!(circuit_id(&msg), None);
            assert!(
                msg.opts()
                    .get(v4::OptionCode::RelayAgentInformation)
                    .is_none()
            );
            macs.insert(msg.chaddr().to_vec());
        }
        assert_eq!(macs.len(), 100, "a new chaddr per packet");
    }

    #[test]
    fn flood_mac_is_unrelayed_from_one_chaddr() {
        let flood = Flood::new(FloodShape::Mac, &RELAY, None).unwrap();
        let mut rng = 3;
        let mut xids = std::collections::HashSet::new();
        for _ in 0..100 {
            let (msg, ip_src, _) = decode_flood(&flood, &mut rng);
            assert_eq!(ip_src, Ipv4Addr::UNSPECIFIED);
            assert_eq!(msg.giaddr(), Ipv4Addr::UNSPECIFIED);
            assert_eq!(msg.chaddr(), &FLOOD_MAC[..]);
            assert!(
                msg.opts()
                    .get(v4::OptionCode::RelayAgentInformation)
                    .is_none()
            );
            xids.insert(msg.xid());
        }
        assert_eq!(xids.len(), 100, "a new xid per packet");
    }

    #[test]
    fn replies_to_the_flood_are_told_from_the_legitimate_clients() {
        assert!(!is_flood_mac(&client_mac(0)));
        assert!(!is_flood_mac(&client_mac(u32::MAX)));
        assert!(is_flood_mac(&FLOOD_MAC));
        for shape in FloodShape::ALL {
            assert_eq!(FloodShape::parse(shape.as_str()), Some(shape));
        }
        assert_eq!(FloodShape::parse("relay"), None);
    }

    #[test]
    fn histogram_quantiles_are_within_its_precision() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v * 1_000);
        }
        for (q, want) in [
            (0.5, 50_000_000f64),
            (0.99, 99_000_000.0),
            (0.999, 99_900_000.0),
        ] {
            let got = h.quantile(q) as f64;
            assert!((got - want).abs() / want < 0.04, "q {q}: {got} vs {want}");
        }
        assert_eq!(h.max(), 100_000_000);
        assert_eq!(h.count(), 100_000);
        let mut m = Histogram::default();
        m.record(5);
        m.merge(&h);
        assert_eq!(m.count(), 100_001);
        assert_eq!(m.quantile(0.0), 5);
        assert_eq!(Histogram::default().quantile(0.5), 0);
        // Every bucket's upper bound maps back to that bucket.
        for i in 0..(64 - SUB_BITS as usize + 1) * SUB as usize {
            let u = Histogram::upper(i);
            assert_eq!(Histogram::index(u), i, "bucket {i}");
        }
    }
}
