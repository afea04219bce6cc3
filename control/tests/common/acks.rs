//! The DHCPACK checker of a failover pair: what every server promised on the wire, and whether
//! two promises ever collide.
//!
//! Built from a capture ([`super::capture`]) that sees both servers (their bridge ports), it
//! reads every DHCPACK (address, client, lease time, server, time seen), every DHCPRELEASE and
//! DHCPDECLINE, and every DHCPNAK, and answers:
//! * [`AckLog::double_bindings`]: an address bound to two different clients at overlapping
//!   times. A binding runs from its ACK to ACK + lease time; a RELEASE (or DECLINE) of that
//!   address by the same client ends it then. A client is its client identifier if it sent
//!   one, else its chaddr (RFC 2131 §4.2). An ACK without option 51 counts as infinite.
//! * [`AckLog::longer_than`]: ACKs granting more than a bound (the MCLT while the partner
//!   cannot be told).
//! * [`discovers`]: for every DISCOVER, its RFC 3074 bucket, its `secs` and the servers that
//!   OFFERed, to check the load-balancing split.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    net::Ipv4Addr,
};

use super::capture::{DhcpMsg, msg};

/// One DHCPACK that binds an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// When it was seen, microseconds since the Unix epoch.
    pub time_us: u64,
    /// `yiaddr`.
    pub addr: Ipv4Addr,
    /// The client ([`DhcpMsg::client_key`]: `id:HEX` or `hw:MAC`).
    pub client: String,
    /// Option 51, seconds; `None` is an infinite lease.
    pub lease_secs: Option<u32>,
    /// Option 54: which server promised it.
    pub server: Option<Ipv4Addr>,
}

impl Ack {
    /// When the binding ends if nothing cuts it short.
    pub fn end_us(&self) -> u64 {
        match self.lease_secs {
            Some(s) => self.time_us.saturating_add(u64::from(s) * 1_000_000),
            None => u64::MAX,
        }
    }
}

/// A client giving an address back (DHCPRELEASE: `ciaddr`) or refusing it (DHCPDECLINE:
/// option 50).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GiveBack {
    /// When it was seen.
    pub time_us: u64,
    /// The address given back.
    pub addr: Ipv4Addr,
    /// The client giving it back.
    pub client: String,
}

/// A binding as the checker judges it: an ACK and when it really ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The ACK that made it.
    pub ack: Ack,
    /// Its end: the lease's end, or the client's RELEASE/DECLINE if earlier.
    pub end_us: u64,
}

/// Two clients holding one address at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The address.
    pub addr: Ipv4Addr,
    /// The binding that started first.
    pub first: Binding,
    /// The other client's binding, started before `first` ended.
    pub second: Binding,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = |b: &Binding| {
            format!(
                "{} (ACK by {} at {}.{:06}, {} s, ends {})",
                b.ack.client,
                b.ack
                    .server
                    .map_or_else(|| "?".to_owned(), |s| s.to_string()),
                b.ack.time_us / 1_000_000,
                b.ack.time_us % 1_000_000,
                b.ack
                    .lease_secs
                    .map_or_else(|| "infinite".to_owned(), |s| s.to_string()),
                b.end_us / 1_000_000,
            )
        };
        write!(
            f,
            "{}: {} overlaps {}",
            self.addr,
            who(&self.first),
            who(&self.second)
        )
    }
}

/// Every promise and give-back in a capture.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckLog {
    /// The ACKs binding an address, in time order.
    pub acks: Vec<Ack>,
    /// RELEASEs and DECLINEs, in time order.
    pub give_backs: Vec<GiveBack>,
    /// DHCPNAKs: (time, client, server).
    pub naks: Vec<(u64, String, Option<Ipv4Addr>)>,
}

impl AckLog {
    /// Reads the ACKs, RELEASEs, DECLINEs and NAKs out of a capture's messages. A reply seen
    /// twice (a capture on two ports of one bridge) is kept once.
    pub fn from_msgs(msgs: &[DhcpMsg]) -> Self {
        let mut sorted: Vec<&DhcpMsg> = msgs.iter().collect();
        sorted.sort_by_key(|m| m.time_us);
        let mut log = Self::default();
        let mut last_seen: BTreeMap<_, u64> = BTreeMap::new();
        for m in sorted {
            // One frame seen on two ports differs in time by microseconds: the same message
            // from the same sender, for the same transaction, within 100 ms, is one message.
            let key = (m.msg_type, m.xid, m.client_key(), m.server_id, m.yiaddr);
            if let Some(t) = last_seen.insert(key, m.time_us)
                && m.time_us.saturating_sub(t) < 100_000
            {
                continue;
            }
            match m.msg_type {
                msg::ACK if !m.yiaddr.is_unspecified() => log.acks.push(Ack {
                    time_us: m.time_us,
                    addr: m.yiaddr,
                    client: m.client_key(),
                    lease_secs: m.lease_time,
                    server: m.server_id,
                }),
                msg::RELEASE => log.give_backs.push(GiveBack {
                    time_us: m.time_us,
                    addr: m.ciaddr,
                    client: m.client_key(),
                }),
                msg::DECLINE => {
                    if let Some(addr) = m.requested {
                        log.give_backs.push(GiveBack {
                            time_us: m.time_us,
                            addr,
                            client: m.client_key(),
                        });
                    }
                }
                msg::NAK => log.naks.push((m.time_us, m.client_key(), m.server_id)),
                _ => {}
            }
        }
        log
    }

    /// The bindings per address, in start order, each cut short by its client's give-back.
    pub fn bindings(&self) -> BTreeMap<Ipv4Addr, Vec<Binding>> {
        let mut by_addr: BTreeMap<Ipv4Addr, Vec<Binding>> = BTreeMap::new();
        for ack in &self.acks {
            by_addr.entry(ack.addr).or_default().push(Binding {
                end_us: ack.end_us(),
                ack: ack.clone(),
            });
        }
        for list in by_addr.values_mut() {
            list.sort_by_key(|b| b.ack.time_us);
        }
        for g in &self.give_backs {
            for b in by_addr.get_mut(&g.addr).into_iter().flatten() {
                if b.ack.client == g.client && b.ack.time_us <= g.time_us && g.time_us < b.end_us {
                    b.end_us = g.time_us;
                }
            }
        }
        by_addr
    }

    /// Every pair of bindings of one address to two different clients that overlap in time.
    pub fn double_bindings(&self) -> Vec<Violation> {
        let mut out = Vec::new();
        for (addr, list) in self.bindings() {
            for (i, a) in list.iter().enumerate() {
                for b in &list[i + 1..] {
                    if b.ack.time_us < a.end_us && a.ack.client != b.ack.client {
                        out.push(Violation {
                            addr,
                            first: a.clone(),
                            second: b.clone(),
                        });
                    }
                }
            }
        }
        out
    }

    /// Panics listing every double binding, if there is one; else returns how many ACKs were
    /// judged.
    pub fn check(&self) -> usize {
        let v = self.double_bindings();
        assert!(
            v.is_empty(),
            "{} address(es) bound to two clients at overlapping times:\n{}",
            v.len(),
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
        self.acks.len()
    }

    /// The ACKs seen in `[from_us, to_us)` that grant more than `max_secs` (or infinity).
    pub fn longer_than(&self, max_secs: u32, from_us: u64, to_us: u64) -> Vec<&Ack> {
        self.acks
            .iter()
            .filter(|a| (from_us..to_us).contains(&a.time_us))
            .filter(|a| a.lease_secs.is_none_or(|s| s > max_secs))
            .collect()
    }

    /// How many ACKs each server sent.
    pub fn per_server(&self) -> BTreeMap<Option<Ipv4Addr>, usize> {
        let mut n = BTreeMap::new();
        for a in &self.acks {
            *n.entry(a.server).or_insert(0) += 1;
        }
        n
    }
}

/// One DHCPDISCOVER and who answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discover {
    /// When it was first seen.
    pub time_us: u64,
    /// The client.
    pub client: String,
    /// `chaddr`.
    pub chaddr: String,
    /// `xid`.
    pub xid: u32,
    /// `secs`.
    pub secs: u16,
    /// Its RFC 3074 bucket (option 61 if present, else chaddr).
    pub bucket: u8,
    /// The servers (option 54) that sent an OFFER for this `xid` and chaddr.
    pub offered_by: BTreeSet<Ipv4Addr>,
}

/// Parses `aa:bb:cc:...` or `aabbcc...` hex into bytes; `None` if it is not hex.
pub fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = s.bytes().filter(|b| *b != b':').collect();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect()
}

/// The RFC 3074 bucket of the client that sent `m` (`hlen` 6: Ethernet).
pub fn bucket_of(m: &DhcpMsg) -> u8 {
    let id = m.client_id.as_deref().and_then(hex_bytes);
    let chaddr = hex_bytes(&m.chaddr).unwrap_or_default();
    control::failover::hash::client_bucket(id.as_deref(), &chaddr, 6)
}

/// Every DISCOVER in `msgs` (one per client transaction and `secs`: a retransmission with
/// larger `secs` is its own entry), with the servers that OFFERed to that transaction.
pub fn discovers(msgs: &[DhcpMsg]) -> Vec<Discover> {
    let mut sorted: Vec<&DhcpMsg> = msgs.iter().collect();
    sorted.sort_by_key(|m| m.time_us);
    let mut out: Vec<Discover> = Vec::new();
    let mut index: BTreeMap<(u32, String, u16), usize> = BTreeMap::new();
    for m in &sorted {
        if m.msg_type != msg::DISCOVER || m.op != 1 {
            continue;
        }
        let key = (m.xid, m.chaddr.clone(), m.secs);
        if index.contains_key(&key) {
            continue;
        }
        index.insert(key, out.len());
        out.push(Discover {
            time_us: m.time_us,
            client: m.client_key(),
            chaddr: m.chaddr.clone(),
            xid: m.xid,
            secs: m.secs,
            bucket: bucket_of(m),
            offered_by: BTreeSet::new(),
        });
    }
    for m in &sorted {
        if m.msg_type != msg::OFFER || !m.is_server_reply() {
            continue;
        }
        let Some(server) = m.server_id else { continue };
        // An OFFER answers the latest DISCOVER of its transaction sent before it.
        if let Some(d) = out
            .iter_mut()
            .filter(|d| d.xid == m.xid && d.chaddr == m.chaddr && d.time_us <= m.time_us)
            .max_by_key(|d| d.time_us)
        {
            d.offered_by.insert(server);
        }
    }
    out
}
