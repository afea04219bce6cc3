//! Leasequery end to end against a real lease store: UDP answers (RFC 4388, RFC 6148)
//! decoded by hand, and the bulk server (RFC 6926) over TCP on 127.0.0.1.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use control::leasequery::{
    self, BulkConfig, ConnEvent, QueryKind, Refused, ReplyKind, Stats, Status, Transport,
};
use lease_mmap::{
    BindingState, ClientId, Durability, Lease, Owner, RelayInfo, Store, TableSpec, UnixTime,
};

const SERVER_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const GIADDR: Ipv4Addr = Ipv4Addr::new(10, 9, 9, 1);

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

// ---------------------------------------------------------------------------------------
// The store

/// Table A: 10.0.0.10–.200, allocatable .20–.100 and .150–.200. Table B: 10.1.0.1–.50.
fn open_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let specs = [
        TableSpec {
            network: ip("10.0.0.0"),
            prefix_len: 24,
            first: ip("10.0.0.10"),
            last: ip("10.0.0.200"),
            allocatable: vec![
                (ip("10.0.0.20"), ip("10.0.0.100")),
                (ip("10.0.0.150"), ip("10.0.0.200")),
            ],
        },
        TableSpec {
            network: ip("10.1.0.0"),
            prefix_len: 24,
            first: ip("10.1.0.1"),
            last: ip("10.1.0.50"),
            allocatable: vec![(ip("10.1.0.1"), ip("10.1.0.50"))],
        },
    ];
    let (store, _journals, _) = Store::open(dir.path(), &specs, 1, Durability::Async).unwrap();
    (dir, store)
}

fn put(store: &Store, addr: Ipv4Addr, lease: &Lease) {
    let t = store.table_for_addr(addr).unwrap();
    let slot = t.slot(addr).unwrap();
    let (v, _) = t.read(slot);
    t.update(slot, v, lease).unwrap();
}

fn mac(i: u8) -> [u8; 16] {
    let mut c = [0; 16];
    c[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, i]);
    c
}

/// Option 82: circuit-id `circuit`, remote-id `remote`, and a relay-id when given.
fn relay(circuit: &[u8], remote: &[u8], relay_id: Option<&[u8]>) -> Vec<u8> {
    let mut v = vec![1, circuit.len() as u8];
    v.extend_from_slice(circuit);
    v.extend([2, remote.len() as u8]);
    v.extend_from_slice(remote);
    if let Some(r) = relay_id {
        v.extend([12, r.len() as u8]);
        v.extend_from_slice(r);
    }
    v
}

/// An ACTIVE lease for client `i` (MAC 02:00:00:00:00:i), last seen `ago` seconds before
/// `now`, ending an hour after that.
fn active(i: u8, now: UnixTime, ago: u32) -> Lease {
    Lease {
        state: BindingState::Active,
        ends: UnixTime(now.0 - ago + 3600),
        tstp: UnixTime(now.0 - ago + 3600),
        cltt: UnixTime(now.0 - ago),
        stos: UnixTime(now.0 - ago - 50),
        htype: 1,
        hlen: 6,
        chaddr: mac(i),
        ..Lease::default()
    }
}

fn with_id(l: Lease, id: &[u8]) -> Lease {
    Lease {
        client_id: ClientId::new(id).unwrap(),
        ..l
    }
}

fn with_relay(l: Lease, r: &[u8]) -> Lease {
    Lease {
        relay: RelayInfo::new(r).unwrap(),
        ..l
    }
}

// ---------------------------------------------------------------------------------------
// Messages, built and decoded by hand (RFC 2131 §2, RFC 2132, RFC 3396)

#[derive(Clone, Debug)]
struct Q {
    op: u8,
    htype: u8,
    hlen: u8,
    xid: u32,
    flags: u16,
    ciaddr: Ipv4Addr,
    yiaddr: Ipv4Addr,
    siaddr: Ipv4Addr,
    giaddr: Ipv4Addr,
    chaddr: [u8; 16],
    cookie: bool,
    options: Vec<(u8, Vec<u8>)>,
}

impl Q {
    fn new(message_type: u8) -> Q {
        Q {
            op: 1,
            htype: 0,
            hlen: 0,
            xid: 0x1234_5678,
            flags: 0x8000,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: GIADDR,
            chaddr: [0; 16],
            cookie: true,
            options: vec![(53, vec![message_type])],
        }
    }

    fn leasequery() -> Q {
        Q::new(10)
    }

    fn bulk() -> Q {
        Q {
            giaddr: Ipv4Addr::UNSPECIFIED,
            ..Q::new(14)
        }
    }

    fn xid(mut self, xid: u32) -> Q {
        self.xid = xid;
        self
    }

    fn ciaddr(mut self, a: Ipv4Addr) -> Q {
        self.ciaddr = a;
        self
    }

    fn mac(mut self, i: u8) -> Q {
        self.htype = 1;
        self.hlen = 6;
        self.chaddr = mac(i);
        self
    }

    fn opt(mut self, code: u8, data: &[u8]) -> Q {
        self.options.push((code, data.to_vec()));
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut b = vec![0u8; 236];
        b[0] = self.op;
        b[1] = self.htype;
        b[2] = self.hlen;
        b[4..8].copy_from_slice(&self.xid.to_be_bytes());
        b[10..12].copy_from_slice(&self.flags.to_be_bytes());
        b[12..16].copy_from_slice(&self.ciaddr.octets());
        b[16..20].copy_from_slice(&self.yiaddr.octets());
        b[20..24].copy_from_slice(&self.siaddr.octets());
        b[24..28].copy_from_slice(&self.giaddr.octets());
        b[28..44].copy_from_slice(&self.chaddr);
        if self.cookie {
            b.extend([99, 130, 83, 99]);
            for (code, data) in &self.options {
                b.push(*code);
                b.push(data.len() as u8);
                b.extend_from_slice(data);
            }
            b.push(255);
        }
        b
    }
}

/// A decoded reply: the fixed fields and each option (instances concatenated, RFC 3396), in
/// the order of first appearance.
#[derive(Clone, Debug)]
struct Msg {
    op: u8,
    htype: u8,
    hlen: u8,
    xid: u32,
    flags: u16,
    ciaddr: Ipv4Addr,
    yiaddr: Ipv4Addr,
    giaddr: Ipv4Addr,
    chaddr: [u8; 16],
    order: Vec<u8>,
    opts: BTreeMap<u8, Vec<u8>>,
}

impl Msg {
    fn decode(b: &[u8]) -> Msg {
        assert!(
            b.len() >= 300,
            "a reply is padded to 300 bytes, got {}",
            b.len()
        );
        assert_eq!(&b[236..240], &[99, 130, 83, 99], "magic cookie");
        let a = |at: usize| Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]);
        let mut opts: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
        let mut order = Vec::new();
        let mut i = 240;
        loop {
            assert!(i < b.len(), "options run off the end without END");
            match b[i] {
                0 => i += 1,
                255 => break,
                code => {
                    let len = usize::from(b[i + 1]);
                    let data = &b[i + 2..i + 2 + len];
                    if !opts.contains_key(&code) {
                        order.push(code);
                    }
                    opts.entry(code).or_default().extend_from_slice(data);
                    i += 2 + len;
                }
            }
        }
        assert!(b[i + 1..].iter().all(|x| *x == 0), "padding is zeros");
        let mut chaddr = [0; 16];
        chaddr.copy_from_slice(&b[28..44]);
        Msg {
            op: b[0],
            htype: b[1],
            hlen: b[2],
            xid: u32::from_be_bytes(b[4..8].try_into().unwrap()),
            flags: u16::from_be_bytes(b[10..12].try_into().unwrap()),
            ciaddr: a(12),
            yiaddr: a(16),
            giaddr: a(24),
            chaddr,
            order,
            opts,
        }
    }

    fn message_type(&self) -> u8 {
        self.opts[&53][0]
    }

    fn u32(&self, code: u8) -> Option<u32> {
        self.opts
            .get(&code)
            .map(|v| u32::from_be_bytes(v[..].try_into().expect("a 4-byte option")))
    }

    fn addrs(&self, code: u8) -> Vec<Ipv4Addr> {
        let v = self.opts.get(&code).cloned().unwrap_or_default();
        assert_eq!(v.len() % 4, 0, "option {code} is a list of addresses");
        v.chunks(4)
            .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
            .collect()
    }

    fn codes(&self) -> Vec<u8> {
        self.opts.keys().copied().collect()
    }
}

fn udp(store: &Store, now: UnixTime, q: &Q, stats: &Stats) -> Msg {
    let bytes = leasequery::answer(store, SERVER_ID, now, &q.bytes(), stats).expect("a reply");
    let m = Msg::decode(&bytes);
    assert_eq!(
        (m.op, m.xid, m.flags, m.giaddr),
        (2, q.xid, q.flags, q.giaddr)
    );
    assert_eq!(m.order.first(), Some(&53), "option 53 first");
    m
}

const NOW: UnixTime = UnixTime(1_800_000_000);

// ---------------------------------------------------------------------------------------
// UDP: RFC 4388

#[test]
fn by_address_active_carries_the_lease() {
    let (_d, store) = open_store();
    let r = relay(b"ge-0/0/7", b"modem-7", None);
    let lease = with_relay(with_id(active(7, NOW, 100), &[1, 2, 0, 0, 0, 0, 7]), &r);
    put(&store, ip("10.0.0.30"), &lease);
    let stats = Stats::default();
    // Option 55 asks for 51, 61, 82, 91.
    let q = Q::leasequery()
        .ciaddr(ip("10.0.0.30"))
        .opt(55, &[51, 61, 82, 91]);
    let m = udp(&store, NOW, &q, &stats);
    assert_eq!(m.message_type(), 13);
    assert_eq!(m.ciaddr, ip("10.0.0.30"));
    assert_eq!((m.htype, m.hlen, m.chaddr), (1, 6, mac(7)));
    assert_eq!(m.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(m.addrs(54), [SERVER_ID]);
    assert_eq!(m.u32(51), Some(3500), "the time left");
    assert_eq!(m.opts[&61], [1, 2, 0, 0, 0, 0, 7]);
    assert_eq!(m.opts[&82], r, "the stored option 82, verbatim");
    assert_eq!(m.u32(91), Some(100), "seconds since the last transaction");
    assert_eq!(
        m.codes(),
        [51, 53, 54, 61, 82, 91],
        "no 92 for a query by address"
    );
    assert_eq!(m.order.last(), Some(&82), "option 82 last");
    assert_eq!(stats.queries(Transport::Udp, QueryKind::Address), 1);
    assert_eq!(stats.replies(Transport::Udp, ReplyKind::Active), 1);
}

#[test]
fn option_55_limits_what_comes_back() {
    let (_d, store) = open_store();
    let lease = with_relay(
        with_id(active(7, NOW, 100), &[9, 9]),
        &relay(b"c", b"r", None),
    );
    put(&store, ip("10.0.0.30"), &lease);
    let q = Q::leasequery().ciaddr(ip("10.0.0.30")).opt(55, &[82]);
    let m = udp(&store, NOW, &q, &Stats::default());
    assert_eq!(m.codes(), [53, 54, 82]);
    // Without option 55, every option about the lease (RFC 4388 §6.2: as an ACK would).
    let q = Q::leasequery().ciaddr(ip("10.0.0.30"));
    let m = udp(&store, NOW, &q, &Stats::default());
    assert_eq!(m.codes(), [51, 53, 54, 61, 82, 91]);
}

#[test]
fn unassigned_and_unknown_addresses() {
    let (_d, store) = open_store();
    let stats = Stats::default();
    let ask = |a: &str| udp(&store, NOW, &Q::leasequery().ciaddr(ip(a)), &stats);
    // Allocatable, never leased: the server manages it.
    let m = ask("10.0.0.25");
    assert_eq!((m.message_type(), m.ciaddr), (11, ip("10.0.0.25")));
    assert_eq!(m.codes(), [53, 54], "nothing but the server identifier");
    assert_eq!((m.hlen, m.chaddr), (0, [0; 16]));
    // An ACTIVE record past its end, not yet swept: no active lease.
    let mut l = active(3, NOW, 100);
    l.ends = UnixTime(NOW.0 - 1);
    put(&store, ip("10.0.0.26"), &l);
    assert_eq!(ask("10.0.0.26").message_type(), 11);
    // Inside table A but excluded (.101–.149), never written: not ours to lease.
    let m = ask("10.0.0.120");
    assert_eq!(m.message_type(), 12);
    assert_eq!(m.codes(), [53], "DHCPLEASEUNKNOWN carries no other option");
    assert_eq!(m.ciaddr, ip("10.0.0.120"), "the queried address is echoed");
    // Excluded but with a record (a reservation that was leased once): managed.
    let l = Lease {
        state: BindingState::Released,
        ..active(4, NOW, 5000)
    };
    put(&store, ip("10.0.0.121"), &l);
    assert_eq!(ask("10.0.0.121").message_type(), 11);
    // No table at all.
    assert_eq!(ask("172.16.0.1").message_type(), 12);
    assert_eq!(stats.replies(Transport::Udp, ReplyKind::Unassigned), 3);
    assert_eq!(stats.replies(Transport::Udp, ReplyKind::Unknown), 2);
}

#[test]
fn by_client_id_names_the_newest_and_lists_every_address() {
    let (_d, store) = open_store();
    let id = [0xff, 1, 2, 3, 4];
    put(&store, ip("10.0.0.40"), &with_id(active(1, NOW, 500), &id));
    put(&store, ip("10.1.0.9"), &with_id(active(1, NOW, 20), &id));
    // Someone else.
    put(
        &store,
        ip("10.0.0.41"),
        &with_id(active(2, NOW, 1), &[0xff, 9]),
    );
    let stats = Stats::default();
    let m = udp(&store, NOW, &Q::leasequery().opt(61, &id), &stats);
    assert_eq!(m.message_type(), 13);
    assert_eq!(m.ciaddr, ip("10.1.0.9"), "the most recent transaction");
    assert_eq!(m.u32(91), Some(20));
    assert_eq!(m.opts[&61], id);
    assert_eq!(m.addrs(92), [ip("10.0.0.40"), ip("10.1.0.9")]);
    // One binding: no option 92 (RFC 4388 §6.4.2, "more than one").
    let m = udp(&store, NOW, &Q::leasequery().opt(61, &[0xff, 9]), &stats);
    assert_eq!(
        (m.ciaddr, m.opts.contains_key(&92)),
        (ip("10.0.0.41"), false)
    );
    // No binding: unknown, nothing but option 53.
    let m = udp(&store, NOW, &Q::leasequery().opt(61, &[0xff, 7]), &stats);
    assert_eq!((m.message_type(), m.codes()), (12, vec![53]));
    assert_eq!(stats.queries(Transport::Udp, QueryKind::ClientId), 3);
}

#[test]
fn by_mac_looks_in_both_indexes_then_scans() {
    let (_d, store) = open_store();
    // Client 5 without option 61 in table A, with the client-id 01‖MAC in table B.
    put(&store, ip("10.0.0.50"), &active(5, NOW, 300));
    let mut typed = vec![1];
    typed.extend_from_slice(&mac(5)[..6]);
    put(&store, ip("10.1.0.5"), &with_id(active(5, NOW, 10), &typed));
    // Client 6 sends some other client-id: indexed by it alone, found by MAC by a scan.
    put(
        &store,
        ip("10.0.0.60"),
        &with_id(active(6, NOW, 10), b"\0host-6"),
    );
    let stats = Stats::default();
    let m = udp(&store, NOW, &Q::leasequery().mac(5), &stats);
    assert_eq!(m.message_type(), 13);
    assert_eq!((m.ciaddr, m.chaddr), (ip("10.1.0.5"), mac(5)));
    assert_eq!(m.addrs(92), [ip("10.0.0.50"), ip("10.1.0.5")]);
    let m = udp(&store, NOW, &Q::leasequery().mac(6), &stats);
    assert_eq!(m.message_type(), 13);
    assert_eq!((m.ciaddr, m.chaddr), (ip("10.0.0.60"), mac(6)));
    // A MAC nobody has: UNKNOWN, the query's MAC echoed, nothing else.
    let m = udp(&store, NOW, &Q::leasequery().mac(7), &stats);
    assert_eq!(m.message_type(), 12);
    assert_eq!(
        (m.htype, m.hlen, m.chaddr),
        (1, 6, mac(7)),
        "the query's MAC echoed"
    );
    assert_eq!(m.codes(), [53]);
    assert_eq!(stats.queries(Transport::Udp, QueryKind::Mac), 3);
}

// ---------------------------------------------------------------------------------------
// UDP: RFC 6148

#[test]
fn by_remote_id_lists_every_binding_of_the_relay_port() {
    let (_d, store) = open_store();
    let r1 = relay(b"port-1", b"modem-1", None);
    put(
        &store,
        ip("10.0.0.20"),
        &with_relay(active(1, NOW, 400), &r1),
    );
    let partner = Lease {
        owner: Owner::Partner,
        ..with_relay(active(2, NOW, 40), &r1)
    };
    put(&store, ip("10.1.0.20"), &partner);
    put(
        &store,
        ip("10.0.0.21"),
        &with_relay(active(3, NOW, 1), &relay(b"port-2", b"modem-2", None)),
    );
    // Expired: not a binding any more.
    let mut gone = with_relay(active(4, NOW, 9000), &r1);
    gone.state = BindingState::Expired;
    put(&store, ip("10.0.0.22"), &gone);
    let stats = Stats::default();
    let q = Q::leasequery().opt(82, &[2, 7, b'm', b'o', b'd', b'e', b'm', b'-', b'1']);
    let m = udp(&store, NOW, &q, &stats);
    assert_eq!(m.message_type(), 13);
    assert_eq!(m.ciaddr, ip("10.1.0.20"), "the latest transaction");
    assert_eq!(m.chaddr, mac(2));
    assert_eq!(m.opts[&82], r1);
    assert_eq!(m.addrs(92), [ip("10.0.0.20"), ip("10.1.0.20")]);
    // A single binding is still listed.
    let q = Q::leasequery().opt(82, &[2, 7, b'm', b'o', b'd', b'e', b'm', b'-', b'2']);
    assert_eq!(udp(&store, NOW, &q, &stats).addrs(92), [ip("10.0.0.21")]);
    let q = Q::leasequery().opt(82, &[2, 3, b'n', b'o', b'1']);
    assert_eq!(udp(&store, NOW, &q, &stats).message_type(), 12);
    assert_eq!(stats.queries(Transport::Udp, QueryKind::RemoteId), 3);
}

#[test]
fn associated_ip_fits_the_message_size() {
    let (_d, store) = open_store();
    let r = relay(b"p", b"big", None);
    let addrs: Vec<Ipv4Addr> = (20..=100)
        .map(|i| Ipv4Addr::new(10, 0, 0, i))
        .chain((1..=50).map(|i| Ipv4Addr::new(10, 1, 0, i)))
        .collect();
    for (i, a) in addrs.iter().enumerate() {
        put(
            &store,
            *a,
            &with_relay(active(i as u8, NOW, 10 + i as u32), &r),
        );
    }
    let stats = Stats::default();
    let q = Q::leasequery().opt(82, &[2, 3, b'b', b'i', b'g']);
    let bytes = leasequery::answer(&store, SERVER_ID, NOW, &q.bytes(), &stats).unwrap();
    assert!(bytes.len() <= 576 - 28, "{} bytes", bytes.len());
    let listed = Msg::decode(&bytes).addrs(92);
    assert!(!listed.is_empty() && listed.len() < addrs.len());
    assert_eq!(stats.associated_truncated(), 1);
    // Option 57 allows more: every address, in 255-byte instances (RFC 3396).
    let q = q.opt(57, &4000u16.to_be_bytes());
    let bytes = leasequery::answer(&store, SERVER_ID, NOW, &q.bytes(), &stats).unwrap();
    let m = Msg::decode(&bytes);
    assert_eq!(m.addrs(92), addrs);
    assert_eq!(m.opts[&82], r);
    assert_eq!(stats.associated_truncated(), 1);
}

#[test]
fn refusals_are_counted_by_reason() {
    let (_d, store) = open_store();
    let stats = Stats::default();
    let refused =
        |bytes: Vec<u8>| leasequery::answer(&store, SERVER_ID, NOW, &bytes, &stats).unwrap_err();
    let mut no_giaddr = Q::leasequery().ciaddr(ip("10.0.0.30"));
    no_giaddr.giaddr = Ipv4Addr::UNSPECIFIED;
    assert_eq!(refused(no_giaddr.bytes()), Refused::NoGiaddr);
    assert_eq!(
        refused(Q::leasequery().ciaddr(ip("10.0.0.30")).mac(1).bytes()),
        Refused::Ambiguous
    );
    assert_eq!(
        refused(Q::leasequery().mac(1).opt(61, &[1, 2]).bytes()),
        Refused::Ambiguous
    );
    assert_eq!(refused(Q::leasequery().bytes()), Refused::NoQuery);
    assert_eq!(
        refused(Q::leasequery().opt(82, &[1, 1, b'c']).bytes()),
        Refused::NoQuery
    );
    assert_eq!(
        refused(Q::new(3).ciaddr(ip("10.0.0.30")).bytes()),
        Refused::NotLeasequery
    );
    assert_eq!(refused(Q::bulk().bytes()), Refused::NotLeasequery);
    let reply = Q {
        op: 2,
        ..Q::leasequery().ciaddr(ip("10.0.0.30"))
    };
    assert_eq!(refused(reply.bytes()), Refused::NotLeasequery);
    let bootp = Q {
        cookie: false,
        ..Q::leasequery().ciaddr(ip("10.0.0.30"))
    };
    assert_eq!(refused(bootp.bytes()), Refused::NotLeasequery);
    // Malformed: truncated, a bad option length, an option running off the end, a broken
    // or empty remote-id.
    assert_eq!(refused(vec![1; 100]), Refused::Malformed);
    assert_eq!(
        refused(Q::leasequery().ciaddr(ip("10.0.0.30")).bytes()[..241].to_vec()),
        Refused::Malformed
    );
    assert_eq!(
        refused(Q::leasequery().opt(51, &[0; 3]).bytes()),
        Refused::Malformed
    );
    let mut overrun = Q::leasequery()
        .ciaddr(ip("10.0.0.30"))
        .opt(61, &[1; 8])
        .bytes();
    overrun.truncate(overrun.len() - 4);
    assert_eq!(refused(overrun), Refused::Malformed);
    assert_eq!(
        refused(Q::leasequery().opt(82, &[2, 9, b'x']).bytes()),
        Refused::Malformed
    );
    assert_eq!(
        refused(Q::leasequery().opt(82, &[2, 0]).bytes()),
        Refused::Malformed
    );
    let mut hlen = Q::leasequery().mac(1);
    hlen.hlen = 17;
    assert_eq!(refused(hlen.bytes()), Refused::Malformed);
    let counts: Vec<u64> = Refused::ALL.iter().map(|r| stats.refused(*r)).collect();
    assert_eq!(counts, [7, 4, 1, 2, 2, 0, 0]);
}

/// A small deterministic generator, so that a failure names its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_bytes_never_panic() {
    let (_d, store) = open_store();
    put(
        &store,
        ip("10.0.0.30"),
        &with_relay(active(1, NOW, 1), &relay(b"c", b"r", Some(b"id"))),
    );
    let stats = Stats::default();
    let seeds = [
        Q::leasequery()
            .ciaddr(ip("10.0.0.30"))
            .opt(55, &[51, 82, 92])
            .bytes(),
        Q::leasequery().mac(1).opt(57, &[5, 220]).bytes(),
        Q::leasequery()
            .opt(82, &[2, 1, b'r', 12, 2, b'i', b'd'])
            .bytes(),
        Q::bulk().opt(154, &[0; 4]).opt(221, &[255]).bytes(),
    ];
    for seed in 1..=20_000u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let bytes = if seed % 4 == 0 {
            let len = rng.below(700);
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            // A valid query, some bytes changed, perhaps cut short.
            let mut b = seeds[rng.below(seeds.len())].clone();
            for _ in 0..1 + rng.below(6) {
                let at = 236 + rng.below(b.len() - 236);
                b[at] = rng.next() as u8;
            }
            if rng.below(3) == 0 {
                b.truncate(rng.below(b.len() + 1));
            }
            b
        };
        if let Ok(reply) = leasequery::answer(&store, SERVER_ID, NOW, &bytes, &stats) {
            let m = Msg::decode(&reply);
            assert!([11, 12, 13].contains(&m.message_type()), "seed {seed}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// TCP: RFC 6926

struct Server {
    addr: SocketAddr,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Server {
    fn start(store: Arc<Store>, allowed: Vec<(Ipv4Addr, u8)>, config: BulkConfig) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(Stats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let handle = leasequery::spawn_bulk_with(
            listener,
            store,
            SERVER_ID,
            allowed,
            Arc::clone(&stats),
            Arc::clone(&stop),
            config,
        )
        .unwrap();
        Server {
            addr,
            stats,
            stop,
            handle: Some(handle),
        }
    }

    fn connect(&self) -> Conn {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Conn(s)
    }

    /// Stops the server and waits for its thread, at most `within`.
    fn stop(&mut self, within: Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let h = self.handle.take().unwrap();
        let t = Instant::now();
        while !h.is_finished() {
            assert!(t.elapsed() < within, "the bulk server did not stop");
            std::thread::sleep(Duration::from_millis(10));
        }
        h.join().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

struct Conn(TcpStream);

impl Conn {
    fn send(&mut self, q: &Q) {
        self.send_raw(&q.bytes());
    }

    fn send_raw(&mut self, msg: &[u8]) {
        let mut framed = (msg.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(msg);
        self.0.write_all(&framed).unwrap();
    }

    /// The next framed message, `None` at end of stream.
    fn recv(&mut self) -> Option<Msg> {
        let mut len = [0u8; 2];
        match self.0.read_exact(&mut len) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
                ) =>
            {
                return None;
            }
            Err(e) => panic!("reading a frame: {e}"),
        }
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        self.0.read_exact(&mut msg).unwrap();
        Some(Msg::decode(&msg))
    }

    /// Every reply to one query, DONE included (last), each checked for the query's xid.
    /// The addresses of query `xid`'s data replies, in order (its DONE left out).
    fn addresses(&mut self, xid: u32) -> Vec<Ipv4Addr> {
        let r = self.replies(xid);
        r[..r.len() - 1].iter().map(|m| m.ciaddr).collect()
    }

    fn replies(&mut self, xid: u32) -> Vec<Msg> {
        let mut v = Vec::new();
        loop {
            let m = self.recv().expect("the connection closed before DONE");
            assert_eq!((m.op, m.xid), (2, xid));
            let done = m.message_type() == 15;
            v.push(m);
            if done {
                return v;
            }
        }
    }

    fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        match self.0.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => matches!(
                e.kind(),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
            ),
        }
    }
}

/// The status of a DONE: its code and text, `None` when it has no option 151.
fn status(done: &Msg) -> Option<(u8, String)> {
    assert_eq!(done.message_type(), 15);
    done.opts
        .get(&151)
        .map(|v| (v[0], String::from_utf8(v[1..].to_vec()).unwrap()))
}

fn local() -> Vec<(Ipv4Addr, u8)> {
    vec![(ip("127.0.0.0"), 8)]
}

/// A store with leases on both tables, times relative to the real clock (the server reads it).
fn bulk_store() -> (tempfile::TempDir, Arc<Store>, UnixTime) {
    let (d, store) = open_store();
    let now = UnixTime::now();
    let r1 = relay(b"port-1", b"modem-1", Some(b"relay-A"));
    put(
        &store,
        ip("10.0.0.20"),
        &with_relay(active(1, now, 100), &r1),
    );
    let partner = Lease {
        owner: Owner::Partner,
        ..with_id(with_relay(active(2, now, 200), &r1), &[0xff, 2])
    };
    put(&store, ip("10.1.0.7"), &partner);
    put(
        &store,
        ip("10.0.0.21"),
        &with_relay(
            active(1, now, 50),
            &relay(b"port-2", b"modem-2", Some(b"relay-B")),
        ),
    );
    let released = Lease {
        state: BindingState::Released,
        ..with_relay(active(3, now, 900), &r1)
    };
    put(&store, ip("10.0.0.22"), &released);
    let abandoned = Lease {
        state: BindingState::Abandoned,
        ..Lease::default()
    };
    put(&store, ip("10.1.0.8"), &abandoned);
    (d, Arc::new(store), now)
}

#[test]
fn bulk_queries_on_one_connection() {
    let (_d, store, now) = bulk_store();
    let server = Server::start(store, local(), BulkConfig::default());
    let mut c = server.connect();

    // By MAC: client 1 has two bindings, both returned, each its own message (no 92).
    c.send(&Q::bulk().xid(1).mac(1));
    let r = c.replies(1);
    assert_eq!(r.len(), 3);
    let addrs: Vec<Ipv4Addr> = r[..2].iter().map(|m| m.ciaddr).collect();
    assert_eq!(addrs, [ip("10.0.0.20"), ip("10.0.0.21")]);
    assert_eq!(r[0].addrs(54), [SERVER_ID], "option 54 in the first reply");
    assert!(
        !r[1].opts.contains_key(&54) && !r[2].opts.contains_key(&54),
        "and only there"
    );
    for m in &r[..2] {
        assert_eq!(m.message_type(), 13);
        assert_eq!((m.htype, m.hlen, m.chaddr), (1, 6, mac(1)));
        assert_eq!(m.opts[&156], [2], "dhcp-state ACTIVE");
        let base = m.u32(152).unwrap();
        assert!(
            base >= now.0 && base <= now.0 + 60,
            "base-time is the server's now"
        );
        assert!(!m.opts.contains_key(&92) && !m.opts.contains_key(&157));
    }
    assert_eq!(r[0].u32(91), Some(r[0].u32(152).unwrap() - (now.0 - 100)));
    assert_eq!(r[0].u32(153), Some(r[0].u32(152).unwrap() - (now.0 - 150)));
    assert_eq!(status(&r[2]), None, "success: no status-code");

    // By client-id: the partner's lease, data-source REMOTE.
    c.send(&Q::bulk().xid(2).opt(61, &[0xff, 2]));
    let r = c.replies(2);
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[0].ciaddr, r[0].opts[&157].clone()),
        (ip("10.1.0.7"), vec![1])
    );
    assert_eq!(r[0].opts[&61], [0xff, 2]);
    assert_eq!(
        r[0].addrs(54),
        [SERVER_ID],
        "the first reply of every query"
    );

    // By remote-id (sub-option 2): the two active bindings through modem-1, not the released.
    c.send(
        &Q::bulk()
            .xid(3)
            .opt(82, &[2, 7, b'm', b'o', b'd', b'e', b'm', b'-', b'1']),
    );
    let addrs = c.addresses(3);
    assert_eq!(addrs, [ip("10.0.0.20"), ip("10.1.0.7")]);

    // By relay-id (sub-option 12, RFC 6925), with option 55 asking for 82 and 156 only.
    c.send(
        &Q::bulk()
            .xid(4)
            .opt(82, &[12, 7, b'r', b'e', b'l', b'a', b'y', b'-', b'B'])
            .opt(55, &[82, 156]),
    );
    let r = c.replies(4);
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].ciaddr, ip("10.0.0.21"));
    assert_eq!(r[0].codes(), [53, 54, 82, 156]);
    assert_eq!(
        r[0].opts[&82],
        relay(b"port-2", b"modem-2", Some(b"relay-B"))
    );

    // Nothing matches: DONE alone, with option 54 and no status.
    c.send(&Q::bulk().xid(5).mac(99));
    let r = c.replies(5);
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].codes(), status(&r[0])), (vec![53, 54], None));

    let s = &server.stats;
    assert_eq!(s.queries(Transport::Bulk, QueryKind::Mac), 2);
    assert_eq!(s.queries(Transport::Bulk, QueryKind::RelayId), 1);
    assert_eq!(s.done(Status::Success), 5);
    assert_eq!(s.replies(Transport::Bulk, ReplyKind::Active), 6);
    assert_eq!(s.connections(ConnEvent::Accepted), 1);
}

#[test]
fn bulk_all_configured_addresses() {
    let (_d, store, now) = bulk_store();
    let server = Server::start(store, local(), BulkConfig::default());
    let mut c = server.connect();
    c.send(&Q::bulk().xid(77));
    let r = c.replies(77);
    let (data, done) = r.split_at(r.len() - 1);
    assert_eq!(status(&done[0]), None);
    // Table A: .20–.100 and .150–.200 are allocatable (132), .22 and .21 among them; table
    // B: all 50. Every address once.
    let mut addrs: Vec<Ipv4Addr> = data.iter().map(|m| m.ciaddr).collect();
    assert_eq!(addrs.len(), 132 + 50);
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 132 + 50, "no address twice");
    assert!(
        !addrs.contains(&ip("10.0.0.120")),
        "excluded and never written"
    );
    let by = |a: &str| data.iter().find(|m| m.ciaddr == ip(a)).unwrap();
    let active: Vec<Ipv4Addr> = data
        .iter()
        .filter(|m| m.message_type() == 13)
        .map(|m| m.ciaddr)
        .collect();
    assert_eq!(active, [ip("10.0.0.20"), ip("10.0.0.21"), ip("10.1.0.7")]);
    assert_eq!(
        (
            by("10.0.0.22").message_type(),
            by("10.0.0.22").opts[&156].clone()
        ),
        (11, vec![4]),
        "RELEASED"
    );
    assert_eq!(
        by("10.0.0.22").chaddr,
        mac(3),
        "the last client of an unassigned address"
    );
    assert_eq!(by("10.1.0.8").opts[&156], [5], "ABANDONED");
    assert_eq!(by("10.0.0.99").opts[&156], [1], "FREE here: AVAILABLE");
    assert!(
        !by("10.0.0.99").opts.contains_key(&153),
        "a never-written record has no start time"
    );
    assert_eq!(by("10.1.0.7").opts[&157], [1]);
    assert!(by("10.0.0.99").u32(51).is_none() && by("10.0.0.20").u32(51).is_some());

    // query-start-time: only what changed since (client 1's bindings moved 100 and 50 s ago,
    // the partner's 200 s ago, the released one 900 s ago).
    c.send(&Q::bulk().xid(78).opt(154, &(now.0 - 120).to_be_bytes()));
    let addrs = c.addresses(78);
    assert_eq!(addrs, [ip("10.0.0.20"), ip("10.0.0.21")]);
    // And a window that ends before them: the partner's binding only (cltt 200 s ago).
    c.send(
        &Q::bulk()
            .xid(79)
            .opt(154, &(now.0 - 260).to_be_bytes())
            .opt(155, &(now.0 - 190).to_be_bytes()),
    );
    let addrs = c.addresses(79);
    assert_eq!(addrs, [ip("10.1.0.7")]);
    // By link: option 82's link selection (RFC 3527) names one subnet (its network
    // address here, outside the addresses table B covers), table B's.
    c.send(&Q::bulk().xid(80).opt(82, &[5, 4, 10, 1, 0, 0]));
    let r = c.replies(80);
    assert_eq!(status(&r[r.len() - 1]), None);
    let addrs: Vec<Ipv4Addr> = r[..r.len() - 1].iter().map(|m| m.ciaddr).collect();
    assert_eq!(addrs.len(), 50, "{addrs:?}");
    assert!(
        addrs.iter().all(|a| a.octets()[..2] == [10, 1]),
        "{addrs:?}"
    );
    assert_eq!(
        server
            .stats
            .queries(Transport::Bulk, QueryKind::AllConfigured),
        4
    );
}

#[test]
fn bulk_backup_state_is_available_to_a_secondary() {
    let (_d, store, now) = bulk_store();
    let free = Lease {
        state: BindingState::Free,
        stos: UnixTime(now.0 - 5),
        ..Lease::default()
    };
    let backup = Lease {
        state: BindingState::Backup,
        ..free
    };
    put(&store, ip("10.1.0.30"), &free);
    put(&store, ip("10.1.0.31"), &backup);
    let config = BulkConfig {
        local_free: Arc::new(|_| BindingState::Backup),
        ..BulkConfig::default()
    };
    let server = Server::start(store, local(), config);
    let mut c = server.connect();
    c.send(&Q::bulk().xid(1).opt(55, &[156]));
    let r = c.replies(1);
    let state = |a: &str| r.iter().find(|m| m.ciaddr == ip(a)).unwrap().opts[&156].clone();
    assert_eq!(
        state("10.1.0.30"),
        [7],
        "FREE belongs to the primary: REMOTE"
    );
    assert_eq!(state("10.1.0.31"), [1], "BACKUP is ours: AVAILABLE");
}

#[test]
fn bulk_errors_end_the_query_not_the_connection() {
    let (_d, store, _) = bulk_store();
    let server = Server::start(store, local(), BulkConfig::default());
    let mut c = server.connect();
    let cases: Vec<(Q, u8)> = vec![
        // §8.2: ciaddr, yiaddr or siaddr set.
        (Q::bulk().ciaddr(ip("10.0.0.20")), 3),
        (
            Q {
                siaddr: ip("10.0.0.1"),
                ..Q::bulk()
            },
            3,
        ),
        // §8.2: two primary queries.
        (Q::bulk().mac(1).opt(61, &[1, 2]), 4),
        (Q::bulk().opt(82, &[2, 1, b'a', 12, 1, b'b']), 4),
        // Not a bulk query at all, or one we cannot read.
        (Q::leasequery().ciaddr(ip("10.0.0.20")), 3),
        (Q::bulk().opt(82, &[2, 5, b'a']), 3),
        (Q::bulk().opt(82, &[12, 0]), 3),
        (Q::bulk().opt(154, &[1, 2]), 3),
        (Q::bulk().opt(154, &[0; 4]).opt(154, &[0; 4]), 3),
        // Only the default VPN (RFC 6607 type 255) or all (254) are served.
        (Q::bulk().opt(221, &[0, b'v', b'p', b'n']), 4),
    ];
    for (i, (q, code)) in cases.iter().enumerate() {
        let xid = 100 + i as u32;
        c.send(&q.clone().xid(xid));
        let r = c.replies(xid);
        assert_eq!(r.len(), 1, "case {i}: DONE alone");
        assert_eq!(r[0].addrs(54), [SERVER_ID], "case {i}");
        let (got, text) = status(&r[0]).unwrap_or_else(|| panic!("case {i}: no status"));
        assert_eq!(got, *code, "case {i}: {text}");
        assert!(!text.is_empty() && !text.contains('\0'));
    }
    // A message whose body cannot be parsed but has an xid.
    c.send_raw(&[1, 1, 6, 0, 0, 0, 0, 42, 9, 9]);
    let r = c.replies(42);
    assert_eq!(status(&r[0]).unwrap().0, 3);
    // The default and wildcard VPNs are served.
    c.send(&Q::bulk().xid(7).mac(1).opt(221, &[255]));
    assert_eq!(c.replies(7).len(), 3);
    c.send(&Q::bulk().xid(8).mac(1).opt(221, &[254]));
    assert_eq!(c.replies(8).len(), 3);
    assert_eq!(server.stats.done(Status::MalformedQuery), 8);
    assert_eq!(server.stats.done(Status::NotAllowed), 3);
}

#[test]
fn bulk_framing_and_one_query_at_a_time() {
    let (_d, store, _) = bulk_store();
    let server = Server::start(store, local(), BulkConfig::default());
    let mut c = server.connect();
    // Three queries in two writes, the second cut in the middle: answered in order, each
    // stream whole before the next begins.
    let mut burst = Vec::new();
    for (xid, q) in [
        (1, Q::bulk().mac(1)),
        (2, Q::bulk().opt(61, &[0xff, 2])),
        (3, Q::bulk().mac(3)),
    ] {
        let b = q.xid(xid).bytes();
        burst.extend((b.len() as u16).to_be_bytes());
        burst.extend(b);
    }
    let (a, b) = burst.split_at(400);
    c.0.write_all(a).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    c.0.write_all(b).unwrap();
    assert_eq!(c.replies(1).len(), 3);
    assert_eq!(c.replies(2).len(), 2);
    assert_eq!(
        c.replies(3).len(),
        1,
        "client 3's lease is released: not a binding"
    );
}

#[test]
fn bulk_refuses_sources_outside_the_allowed_prefixes() {
    let (_d, store, _) = bulk_store();
    let server = Server::start(store, vec![(ip("192.0.2.0"), 24)], BulkConfig::default());
    let mut c = server.connect();
    assert!(c.closed(), "closed at once (RFC 6926 §8.1)");
    let t = Instant::now();
    while server.stats.connections(ConnEvent::RefusedSource) == 0 {
        assert!(t.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(server.stats.connections(ConnEvent::Accepted), 0);
}

#[test]
fn bulk_connection_limit() {
    let (_d, store, _) = bulk_store();
    let config = BulkConfig {
        max_connections: 2,
        ..BulkConfig::default()
    };
    let server = Server::start(store, local(), config);
    let mut a = server.connect();
    let mut b = server.connect();
    for c in [&mut a, &mut b] {
        c.send(&Q::bulk().xid(1).mac(9));
        assert_eq!(c.replies(1).len(), 1);
    }
    let mut over = server.connect();
    assert!(over.closed(), "the third is closed at accept");
    assert_eq!(server.stats.connections(ConnEvent::RefusedLimit), 1);
    // A place frees up when one closes.
    drop(a);
    let t = Instant::now();
    loop {
        let mut c = server.connect();
        c.send(&Q::bulk().xid(2).mac(9));
        if let Some(m) = c.recv() {
            assert_eq!((m.xid, m.message_type()), (2, 15));
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "no place freed");
        std::thread::sleep(Duration::from_millis(20));
    }
    b.send(&Q::bulk().xid(3).mac(9));
    assert_eq!(b.replies(3).len(), 1, "the others are still served");
}

#[test]
fn bulk_idle_and_stuck_connections_time_out() {
    let (_d, store, _) = bulk_store();
    let config = BulkConfig {
        data_timeout: Duration::from_millis(300),
        ..BulkConfig::default()
    };
    let server = Server::start(store, local(), config);
    // Idle after a DONE.
    let mut idle = server.connect();
    idle.send(&Q::bulk().xid(1).mac(9));
    assert_eq!(idle.replies(1).len(), 1);
    // Half a query, never finished.
    let mut stuck = server.connect();
    stuck.0.write_all(&[1, 44, 1, 1]).unwrap();
    let t = Instant::now();
    assert!(idle.closed() && stuck.closed());
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(server.stats.connections(ConnEvent::TimedOut), 2);
}

#[test]
fn bulk_unreadable_frames_close_the_connection() {
    let (_d, store, _) = bulk_store();
    let server = Server::start(store, local(), BulkConfig::default());
    for frame in [
        // Longer than MAX_QUERY_LEN.
        [0x20u8, 0x00].to_vec(),
        // Empty.
        vec![0, 0],
        // Too short for an xid.
        vec![0, 3, 1, 1, 6],
    ] {
        let mut c = server.connect();
        c.0.write_all(&frame).unwrap();
        assert!(c.closed(), "{frame:?}");
    }
    let t = Instant::now();
    while server.stats.connections(ConnEvent::Unreadable) < 3 {
        assert!(t.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn bulk_random_frames_get_an_answer_or_a_close() {
    let (_d, store, _) = bulk_store();
    let server = Server::start(store, local(), BulkConfig::default());
    let mut c = server.connect();
    let valid = Q::bulk().opt(55, &[1, 2, 3]).opt(82, &[2, 1, b'x']).bytes();
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d));
        let mut b = if seed % 3 == 0 {
            (0..8 + rng.below(400)).map(|_| rng.next() as u8).collect()
        } else {
            let mut b = valid.clone();
            for _ in 0..1 + rng.below(5) {
                let at = 8 + rng.below(b.len() - 8);
                b[at] = rng.next() as u8;
            }
            b
        };
        b[4..8].copy_from_slice(&(seed as u32).to_be_bytes());
        c.send_raw(&b);
        let r = c.replies(seed as u32);
        assert!(
            r.iter().all(|m| [11, 13, 15].contains(&m.message_type())),
            "seed {seed}"
        );
    }
    assert_eq!(
        server.stats.connections(ConnEvent::Accepted),
        1,
        "one connection throughout"
    );
}

#[test]
fn bulk_stop_ends_the_server_and_its_connections() {
    let (_d, store) = open_store();
    // Big replies (a 115-byte option 82 each) for a query the requestor does not read yet.
    for a in (20..=100).chain(150..=200) {
        put(
            &store,
            Ipv4Addr::new(10, 0, 0, a),
            &with_relay(active(a, UnixTime::now(), 1), &[9; 115]),
        );
    }
    let mut server = Server::start(Arc::new(store), local(), BulkConfig::default());
    let mut c = server.connect();
    c.send(&Q::bulk().xid(5));
    std::thread::sleep(Duration::from_millis(200));
    server.stop(Duration::from_secs(5));
    // What the connection got is whole messages of query 5, then the end of the stream; if
    // the server could queue it, the last is DONE QueryTerminated (or Success if it had
    // finished).
    let mut last = None;
    while let Some(m) = c.recv() {
        assert_eq!(m.xid, 5);
        last = Some(m);
    }
    let last = last.expect("some replies");
    if last.message_type() == 15 {
        assert!(matches!(status(&last), None | Some((2, _))));
    }
}
