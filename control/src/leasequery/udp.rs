//! DHCPLEASEQUERY over UDP: RFC 4388 (by IP address, MAC address, client-identifier) and
//! RFC 6148 (by relay agent remote-id). See the module above for the rules.

use std::net::Ipv4Addr;

use lease_mmap::{ClientKey, Lease, Store, TableId, UnixTime};

use super::msg::{self, Header, Query, msg_type, opt, sub};
use super::{QueryKind, Refused, ReplyKind, Stats, Transport, is_current, time_left};

/// The smallest datagram every requestor takes (RFC 2132 §9.10), and the IPv4 and UDP
/// headers inside it: replies are bounded as the dataplane bounds its own.
const MIN_DATAGRAM: usize = 576;
const IP_UDP_HEADERS: usize = 28;
/// The largest datagram a reply may be: an Ethernet MTU.
const ETHERNET_MTU: usize = 1500;

/// Answers one DHCPLEASEQUERY: `query_payload` is the UDP payload received, the `Ok` value
/// the UDP payload of the reply, to be sent to the query's `giaddr`, port 67 (RFC 4388
/// §6.4.3). `now` dates the lease times in the reply. Every outcome is counted in `stats`.
/// Never panics, whatever the bytes.
pub fn answer(
    store: &Store,
    server_id: Ipv4Addr,
    now: UnixTime,
    query_payload: &[u8],
    stats: &Stats,
) -> Result<Vec<u8>, Refused> {
    match respond(store, server_id, now, query_payload, stats) {
        Ok((kind, reply, bytes)) => {
            stats.count_query(Transport::Udp, kind);
            stats.count_reply(Transport::Udp, reply);
            Ok(bytes)
        }
        Err(r) => {
            stats.count_refused(r);
            Err(r)
        }
    }
}

/// An active binding found for a query.
struct Found {
    table: TableId,
    addr: Ipv4Addr,
    lease: Lease,
}

fn respond(
    store: &Store,
    server_id: Ipv4Addr,
    now: UnixTime,
    payload: &[u8],
    stats: &Stats,
) -> Result<(QueryKind, ReplyKind, Vec<u8>), Refused> {
    let q = Query::parse(payload).map_err(|_| Refused::Malformed)?;
    if !q.is_dhcp || !q.is_request || q.message_type != Some(msg_type::LEASEQUERY) {
        return Err(Refused::NotLeasequery);
    }
    if q.giaddr.is_unspecified() {
        return Err(Refused::NoGiaddr);
    }
    let by_addr = !q.ciaddr.is_unspecified();
    let by_mac = q.mac().iter().any(|b| *b != 0);
    let by_id = q.client_id.is_some();
    if [by_addr, by_mac, by_id].iter().filter(|b| **b).count() > 1 {
        return Err(Refused::Ambiguous);
    }
    // Within the requestor's option 57, and an Ethernet MTU: no reply needs fragments.
    let limit = usize::from(q.max_message_size.unwrap_or(0)).clamp(MIN_DATAGRAM, ETHERNET_MTU)
        - IP_UDP_HEADERS;
    if by_addr {
        let (reply, bytes) = by_address(store, server_id, now, &q, limit, stats);
        return Ok((QueryKind::Address, reply, bytes));
    }
    let (kind, found) = if let Some(id) = q.client_id.as_deref() {
        (
            QueryKind::ClientId,
            client(store, now, &[ClientKey::ClientId(id)]),
        )
    } else if by_mac {
        // RFC 2132 §9.14: a client-identifier of type htype is its hardware address.
        let mut typed = Vec::with_capacity(1 + q.mac().len());
        typed.push(q.htype);
        typed.extend_from_slice(q.mac());
        let keys = [
            ClientKey::HwAddr {
                htype: q.htype,
                chaddr: q.mac(),
            },
            ClientKey::ClientId(&typed),
        ];
        let mut found = client(store, now, &keys);
        if found.is_empty() {
            // A client that sent some other client-identifier is indexed by it only.
            found = by_hardware(store, now, q.htype, q.mac());
        }
        (QueryKind::Mac, found)
    } else {
        match q.relay_sub_option(sub::REMOTE_ID) {
            Err(_) => return Err(Refused::Malformed),
            // RFC 3046 §3.2: a remote-id has at least one byte.
            Ok(Some([])) => return Err(Refused::Malformed),
            Ok(Some(rid)) => (QueryKind::RemoteId, remote(store, now, rid)),
            Ok(None) => return Err(Refused::NoQuery),
        }
    };
    // RFC 4388 §6.4.1: the address of the most recent transaction with the client.
    let Some(newest) = found.iter().max_by_key(|f| (f.lease.cltt, f.lease.stos)) else {
        return Ok((kind, ReplyKind::Unknown, unknown(&q, limit)));
    };
    // RFC 4388 §6.4.2: every address when the client has more than one; RFC 6148: every
    // address with the remote-id.
    let list = found.len() > 1 || kind == QueryKind::RemoteId;
    let mut addrs: Vec<Ipv4Addr> = found.iter().map(|f| f.addr).collect();
    addrs.sort_unstable();
    let associated = list.then_some(&addrs[..]);
    let bytes = active(&q, server_id, now, limit, newest, associated, stats);
    Ok((kind, ReplyKind::Active, bytes))
}

/// RFC 4388 §6.4.1: ACTIVE, UNASSIGNED when the server manages the address, else UNKNOWN.
fn by_address(
    store: &Store,
    server_id: Ipv4Addr,
    now: UnixTime,
    q: &Query,
    limit: usize,
    stats: &Stats,
) -> (ReplyKind, Vec<u8>) {
    let Some((table, slot)) = store
        .table_for_addr(q.ciaddr)
        .and_then(|t| Some((t, t.slot(q.ciaddr)?)))
    else {
        return (ReplyKind::Unknown, unknown(q, limit));
    };
    let (version, lease) = table.read(slot);
    if is_current(&lease, now) {
        let f = Found {
            table: table.id(),
            addr: q.ciaddr,
            lease,
        };
        return (
            ReplyKind::Active,
            active(q, server_id, now, limit, &f, None, stats),
        );
    }
    if table.is_allocatable(slot) || version != 0 {
        let h = Header {
            message_type: msg_type::LEASEUNASSIGNED,
            ciaddr: q.ciaddr,
            ..reply_header(q)
        };
        let bytes = msg::build(&h, limit, |w| {
            w.put(opt::SERVER_ID, &server_id.octets());
        });
        return (ReplyKind::Unassigned, bytes);
    }
    (ReplyKind::Unknown, unknown(q, limit))
}

/// The active bindings of a client, from every table's index under each of `keys`.
fn client(store: &Store, now: UnixTime, keys: &[ClientKey<'_>]) -> Vec<Found> {
    let mut found: Vec<Found> = Vec::new();
    for table in store.tables() {
        for key in keys {
            let Some((slot, _, lease)) = table.find_client(key) else {
                continue;
            };
            if !is_current(&lease, now)
                || found
                    .iter()
                    .any(|f| f.table == table.id() && f.addr == table.addr(slot))
            {
                continue;
            }
            found.push(Found {
                table: table.id(),
                addr: table.addr(slot),
                lease,
            });
        }
    }
    found
}

/// The active bindings of the hardware address `htype`/`mac`, whatever client-identifier
/// they were granted under (a scan).
fn by_hardware(store: &Store, now: UnixTime, htype: u8, mac: &[u8]) -> Vec<Found> {
    let mut found = Vec::new();
    for table in store.tables() {
        table.for_each(|slot, _, lease| {
            if is_current(lease, now)
                && lease.htype == htype
                && usize::from(lease.hlen) == mac.len()
                && lease.chaddr.get(..mac.len()) == Some(mac)
            {
                found.push(Found {
                    table: table.id(),
                    addr: table.addr(slot),
                    lease: *lease,
                });
            }
        });
    }
    found
}

/// RFC 6148: the active bindings granted through a relay with this remote-id (a scan).
fn remote(store: &Store, now: UnixTime, rid: &[u8]) -> Vec<Found> {
    let mut found = Vec::new();
    for table in store.tables() {
        table.for_each(|slot, _, lease| {
            if is_current(lease, now) && lease.relay.remote_id() == Some(rid) {
                found.push(Found {
                    table: table.id(),
                    addr: table.addr(slot),
                    lease: *lease,
                });
            }
        });
    }
    found
}

/// BOOTREPLY fields every reply copies from the query (RFC 4388 §6.4.3: it goes back to
/// `giaddr`).
fn reply_header(q: &Query) -> Header {
    Header {
        message_type: msg_type::LEASEUNKNOWN,
        xid: q.xid,
        flags: q.flags,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: q.giaddr,
        htype: 0,
        hlen: 0,
        chaddr: [0; 16],
    }
}

/// RFC 4388 §6.4: option 53 only; the query's `ciaddr` and hardware address echoed.
fn unknown(q: &Query, limit: usize) -> Vec<u8> {
    let h = Header {
        ciaddr: q.ciaddr,
        htype: q.htype,
        hlen: q.hlen,
        chaddr: q.chaddr,
        ..reply_header(q)
    };
    msg::build(&h, limit, |_| {})
}

/// RFC 4388 §6.4.2: a DHCPLEASEACTIVE about `f`, option 92 listing `associated`.
fn active(
    q: &Query,
    server_id: Ipv4Addr,
    now: UnixTime,
    limit: usize,
    f: &Found,
    associated: Option<&[Ipv4Addr]>,
    stats: &Stats,
) -> Vec<u8> {
    let l = &f.lease;
    let h = Header {
        message_type: msg_type::LEASEACTIVE,
        ciaddr: f.addr,
        htype: l.htype,
        hlen: l.hlen.min(16),
        chaddr: l.chaddr,
        ..reply_header(q)
    };
    let relay = (q.wants(opt::RELAY_AGENT_INFO) && !l.relay.is_empty()).then(|| l.relay.as_bytes());
    msg::build(&h, limit, |w| {
        w.put(opt::SERVER_ID, &server_id.octets());
        if q.wants(opt::LEASE_TIME) {
            w.put_u32(opt::LEASE_TIME, time_left(l, now));
        }
        if q.wants(opt::CLIENT_ID) && !l.client_id.is_empty() {
            w.put(opt::CLIENT_ID, l.client_id.as_bytes());
        }
        if q.wants(opt::CLIENT_LAST_TRANSACTION_TIME) && l.cltt.0 != 0 {
            w.put_u32(opt::CLIENT_LAST_TRANSACTION_TIME, l.cltt.until(now));
        }
        if let Some(addrs) = associated {
            // Option 82 goes last and keeps its room; 92 gets the rest.
            let keep = relay.map_or(0, |r| 2 + r.len());
            let n = msg::addresses_that_fit(w.room().saturating_sub(keep)).min(addrs.len());
            if n < addrs.len() {
                stats.count_truncated();
            }
            if n > 0 {
                let bytes: Vec<u8> = addrs[..n].iter().flat_map(|a| a.octets()).collect();
                w.put(opt::ASSOCIATED_IP, &bytes);
            }
        }
        if let Some(r) = relay {
            w.put(opt::RELAY_AGENT_INFO, r);
        }
    })
}
