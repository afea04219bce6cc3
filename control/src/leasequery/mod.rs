//! Leasequery: who has which address, asked by an access concentrator or any other
//! requestor, answered from the lease tables (`lease_mmap::Store`). A failover pair
//! replicates every lease to both partners, so either server answers for every lease; a
//! lease the partner last changed says so in bulk replies (data-source REMOTE).
//!
//! Two transports, both answered here; the daemon owns the sockets' configuration:
//!
//! - **UDP, [`answer`]** (RFC 4388, RFC 6148): one DHCPLEASEQUERY (10) in, one reply out,
//!   built as bytes (the dataplane's `Repr` cannot carry options 91 and 92). The caller
//!   sends the reply to `giaddr`, port 67 (RFC 4388 §6.4.3).
//! - **TCP, [`spawn_bulk`]** (RFC 6926): DHCPBULKLEASEQUERY (14) over connections to port
//!   67, each message framed by its 2-byte length (§6.1); a stream of DHCPLEASEACTIVE (13)
//!   and DHCPLEASEUNASSIGNED (11) per query, always ended by DHCPLEASEQUERYDONE (15).
//!
//! # UDP: what is answered how
//!
//! A query must carry the DHCP cookie, `op` BOOTREQUEST, option 53 = 10 and a non-zero
//! `giaddr` (§6.3; without it there is no one to answer, §6.4.3), and exactly one of a
//! non-zero `ciaddr`, a hardware address (`hlen` > 0, `chaddr` not all zero) or option 61
//! (§6.3); with none of these, option 82 with a remote-id sub-option (RFC 6148). Anything
//! else is [`Refused`]: no reply, counted by reason.
//!
//! - **By IP address** (`ciaddr`, §6.4.1): DHCPLEASEACTIVE if the address's record is
//!   ACTIVE and not past its end; DHCPLEASEUNASSIGNED if a table covers the address and the
//!   address is in its allocatable ranges or its record was ever written; otherwise
//!   DHCPLEASEUNKNOWN.
//! - **By client-identifier** (option 61): every table's client index with
//!   `ClientKey::ClientId`.
//! - **By MAC address** (`htype`/`hlen`/`chaddr`): every table's client index with
//!   `ClientKey::HwAddr`, and with the client-identifier `htype ‖ chaddr` (RFC 2132 §9.14:
//!   what most clients that send option 61 send). A client whose option 61 is anything else
//!   is indexed by that option only: when the indexes find nothing, every table is scanned
//!   for the hardware address (§6.4.1 matches a MAC whatever the client called itself), as
//!   a bulk query by MAC always does. The responder runs off the fast path, on one thread
//!   behind a bounded queue, so a flood of such queries from an allowed requestor costs
//!   leasequery answers, never DHCP service.
//!
//!   For both client queries the reply is DHCPLEASEACTIVE for the binding with the latest
//!   client-last-transaction-time (§6.4.1), with option 92 listing every address bound to
//!   the client when there is more than one (§6.4.2), or DHCPLEASEUNKNOWN when the client
//!   has no active binding (§5, §6.4).
//! - **By remote-id** (RFC 6148): a scan of every table for ACTIVE bindings whose stored
//!   option 82 carries the same remote-id sub-option (RFC 3046 §3.2); DHCPLEASEACTIVE for
//!   the one with the latest client-last-transaction-time with option 92 listing them all,
//!   or DHCPLEASEUNKNOWN. The scan reads every record: the caller should rate-limit these
//!   queries (RFC 4388 §7) and keep them off a dataplane worker.
//!
//! Replies (§6.4.2) are BOOTREPLY with the query's `xid`, `flags` and `giaddr`. A
//! DHCPLEASEACTIVE has `ciaddr` and the lease's `htype`/`hlen`/`chaddr`, option 54 (this
//! server), and as option 55 asks (or, without option 55, all of them, as an ACK would
//! carry its options, §6.2): 51 (the time left), 61 (the lease's client-identifier, if
//! any), 91 (seconds since the client's last transaction), 82 (the relay agent information
//! the lease was last granted through, verbatim) — and 92 whether asked or not. A
//! DHCPLEASEUNASSIGNED has `ciaddr`, option 53 and option 54 and nothing else (§6.4.2,
//! RFC 6926 §8.3 on option 54). A DHCPLEASEUNKNOWN has option 53 only (§6.4: "MUST NOT
//! include other DHCP options"); it echoes the query's `ciaddr` and `chaddr` so the
//! requestor can match it. A reply fits in `max(option 57, 576) - 28` bytes (RFC 2132
//! §9.10, as the dataplane's replies): addresses of option 92 that do not fit are left
//! out and counted ([`Stats::associated_truncated`]).
//!
//! # TCP: bulk leasequery
//!
//! [`spawn_bulk`] serves a listener on one thread (mio), never blocking its caller. A
//! connection from outside the allowed prefixes, or beyond [`BULK_LQ_MAX_CONNS`], is
//! accepted and closed at once (§8.1). Each connection is served one query at a time
//! (§7.7's limiting case; §8.4): the next query is not read until the previous one's
//! DHCPLEASEQUERYDONE is queued. A connection that makes no progress for
//! [`BULK_LQ_DATA_TIMEOUT`] — idle after its last DONE (§8.5), stuck mid-query, or not
//! reading its replies (§8.2) — is closed. A frame longer than [`MAX_QUERY_LEN`], or one
//! too short to hold an `xid`, closes the connection (a query we cannot answer, §8.5).
//! Replies are produced as the requestor reads them, a bounded number of records per turn,
//! so one large query neither stalls the other connections nor fills memory.
//!
//! Query types (§7.2, §8.2): by MAC address, by client-identifier, by remote-id (sub-option
//! 2 of option 82), by Relay-ID (sub-option 12, RFC 6925), and for all configured
//! addresses (no primary query). A query whose option 82 carries a link-selection
//! sub-option (RFC 3527) is answered from the subnet holding that address only: the query by
//! link (tandem's qualifier; RFC 6926 has none for DHCPv4, RFC 5460 has it for DHCPv6), a
//! 4-byte value or MalformedQuery. Each is a scan of every table, so that every binding is
//! found, whatever the client identified itself with. The first four answer
//! DHCPLEASEACTIVE for each current binding (ACTIVE, not past its end) that matches;
//! all-configured answers every address that is allocatable or whose record was ever
//! written, as DHCPLEASEACTIVE or DHCPLEASEUNASSIGNED by its state. query-start-time (154)
//! and query-end-time (155) keep the addresses whose client-last-transaction-time or
//! start-time-of-state falls in the window (§8.2). A VSS option (221) asking for the default
//! VPN (255) or all VPNs (254) is served (tandem has only the default one); any other VPN is
//! NotAllowed.
//!
//! Errors end the query with a status-code (151) in its DONE (§8.2): a non-zero `ciaddr`,
//! `yiaddr` or `siaddr`, an unreadable message, a message that is not a
//! DHCPBULKLEASEQUERY, a broken option 82 or a bad qualifier is MalformedQuery; more than
//! one primary query is NotAllowed; a query cut short by shutdown is QueryTerminated.
//!
//! Each data reply (§8.3) has `ciaddr`, the lease's `htype`/`hlen`/`chaddr` (of the last
//! client, for an unassigned address), and as option 55 asks (without it, all of them):
//! 156 dhcp-state, 152 base-time (now), 153 start-time-of-state and 91
//! client-last-transaction-time (seconds before base-time, when known), 51 (the time left,
//! for ACTIVE, OFFERED and ABANDONED records not yet at their end), 157 data-source with
//! REMOTE set when the partner last changed the lease (`Owner::Partner`), 61 and 82. Option
//! 54 is in the first message of each query only (§7.3, §8.3); 92 never appears (§5).
//! dhcp-state maps ACTIVE → ACTIVE (EXPIRED once past its end), EXPIRED, RELEASED,
//! ABANDONED and RESET to themselves, OFFERED → TRANSITIONING, and FREE/BACKUP → AVAILABLE
//! when it is the state this server allocates from in that table
//! ([`BulkConfig::local_free`]), REMOTE otherwise (§6.2.7).
//!
//! # Not supported, and why
//!
//! - T1 and T2 (options 58, 59; RFC 4388 §6.4.2, a SHOULD): they are scope configuration,
//!   which the lease tables do not hold.
//! - Other options a query asks for (the "non-sensitive options" list, §6.4.2), and option
//!   60 (§5): the lease record keeps neither the options sent nor the client's vendor class.
//! - RFC 3118 authentication (RFC 4388 §7, a SHOULD): no DHCP authentication exists in
//!   tandem. RFC 6926 §9 forbids it over TCP anyway. Restrict requestors by address instead
//!   ([`permitted`], the `allowed` prefixes of [`spawn_bulk`]).
//! - Parallel queries on one connection (RFC 6926 §7.7, §8.4, SHOULDs): one at a time,
//!   which §7.7 names as the limiting case every requestor must expect.
//! - VPNs other than the default (RFC 6926 §6.2.9): tandem has none.
//! - Active leasequery (RFC 7724) and TLS: not implemented.

mod bulk;
mod msg;
pub mod responder;
mod server;
mod udp;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lease_mmap::{BindingState, Lease, UnixTime};

pub use server::{BulkConfig, spawn_bulk, spawn_bulk_with};
pub use udp::answer;

/// RFC 6926 §6.3: how long a connection may make no progress (idle, blocked reading a
/// query, or blocked sending replies) before the server closes it.
pub const BULK_LQ_DATA_TIMEOUT: Duration = Duration::from_secs(300);

/// RFC 6926 §6.3: the connections served at once by default; one more is closed at accept.
pub const BULK_LQ_MAX_CONNS: usize = 10;

/// The longest bulk query message taken (RFC 6926 §6.1 allows 65535): a real
/// DHCPBULKLEASEQUERY is a few hundred bytes.
pub const MAX_QUERY_LEN: usize = 4096;

/// Why a UDP leasequery got no reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Refused {
    /// Not a readable DHCP message: truncated, an option overrunning the message, a bad
    /// option length, `hlen` over 16, a broken option 82.
    #[error("malformed DHCP message")]
    Malformed,
    /// A DHCP message, but not a DHCPLEASEQUERY from a requestor (`op`, cookie, option 53).
    #[error("not a DHCPLEASEQUERY")]
    NotLeasequery,
    /// `giaddr` is zero: the reply has nowhere to go (RFC 4388 §6.4.3).
    #[error("giaddr is zero (RFC 4388 §6.4.3)")]
    NoGiaddr,
    /// More than one of `ciaddr`, hardware address and client-identifier (RFC 4388 §6.3).
    #[error("more than one of ciaddr, chaddr and client-identifier (RFC 4388 §6.3)")]
    Ambiguous,
    /// None of them, and no remote-id either (RFC 4388 §6.3, RFC 6148).
    #[error("nothing to query by")]
    NoQuery,
    /// The requestor's IPv4 source is outside `server.leasequery_from` ([`responder`]).
    #[error("requestor not in server.leasequery_from")]
    NotAllowed,
    /// Answered, but the reply could not be sent (the send socket's buffer was full, or it
    /// failed) ([`responder`]).
    #[error("the reply could not be sent")]
    Unsent,
}

impl Refused {
    /// Every reason, in counter order.
    pub const ALL: [Refused; 7] = [
        Self::Malformed,
        Self::NotLeasequery,
        Self::NoGiaddr,
        Self::Ambiguous,
        Self::NoQuery,
        Self::NotAllowed,
        Self::Unsent,
    ];

    /// Kebab-case name, for metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::NotLeasequery => "not-leasequery",
            Self::NoGiaddr => "no-giaddr",
            Self::Ambiguous => "ambiguous",
            Self::NoQuery => "no-query",
            Self::NotAllowed => "not-allowed",
            Self::Unsent => "unsent",
        }
    }
}

/// Which leasequery protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// RFC 4388 / RFC 6148 over UDP.
    Udp,
    /// RFC 6926 over TCP.
    Bulk,
}

impl Transport {
    pub const ALL: [Transport; 2] = [Self::Udp, Self::Bulk];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Bulk => "bulk",
        }
    }
}

/// What a query selects by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueryKind {
    /// `ciaddr` (UDP only).
    Address,
    /// `htype`/`hlen`/`chaddr`.
    Mac,
    /// Option 61.
    ClientId,
    /// Option 82 sub-option 2.
    RemoteId,
    /// Option 82 sub-option 12 (bulk only).
    RelayId,
    /// No primary query (bulk only, RFC 6926 §8.2).
    AllConfigured,
}

impl QueryKind {
    pub const ALL: [QueryKind; 6] = [
        Self::Address,
        Self::Mac,
        Self::ClientId,
        Self::RemoteId,
        Self::RelayId,
        Self::AllConfigured,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Address => "address",
            Self::Mac => "mac",
            Self::ClientId => "client-id",
            Self::RemoteId => "remote-id",
            Self::RelayId => "relay-id",
            Self::AllConfigured => "all-configured",
        }
    }
}

/// A reply's message type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReplyKind {
    /// DHCPLEASEUNASSIGNED (11).
    Unassigned,
    /// DHCPLEASEUNKNOWN (12), UDP only.
    Unknown,
    /// DHCPLEASEACTIVE (13).
    Active,
    /// DHCPLEASEQUERYDONE (15), bulk only.
    Done,
}

impl ReplyKind {
    pub const ALL: [ReplyKind; 4] = [Self::Unassigned, Self::Unknown, Self::Active, Self::Done];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unassigned => "unassigned",
            Self::Unknown => "unknown",
            Self::Active => "active",
            Self::Done => "done",
        }
    }
}

/// The status-code (option 151) a bulk query ended with (RFC 6926 §6.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Success,
    UnspecFail,
    QueryTerminated,
    MalformedQuery,
    NotAllowed,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Self::Success,
        Self::UnspecFail,
        Self::QueryTerminated,
        Self::MalformedQuery,
        Self::NotAllowed,
    ];

    /// The code on the wire.
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::UnspecFail => 1,
            Self::QueryTerminated => 2,
            Self::MalformedQuery => 3,
            Self::NotAllowed => 4,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::UnspecFail => "unspec-fail",
            Self::QueryTerminated => "query-terminated",
            Self::MalformedQuery => "malformed-query",
            Self::NotAllowed => "not-allowed",
        }
    }
}

/// What happened to a bulk leasequery connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnEvent {
    /// Accepted and served.
    Accepted,
    /// From outside the allowed prefixes: closed at accept (RFC 6926 §8.1).
    RefusedSource,
    /// Over the connection limit: closed at accept (RFC 6926 §8.1).
    RefusedLimit,
    /// No progress for the data timeout (RFC 6926 §8.1, §8.2, §8.5).
    TimedOut,
    /// A frame over [`MAX_QUERY_LEN`], empty, or too short to answer.
    Unreadable,
    /// A read or write failed.
    IoError,
}

impl ConnEvent {
    pub const ALL: [ConnEvent; 6] = [
        Self::Accepted,
        Self::RefusedSource,
        Self::RefusedLimit,
        Self::TimedOut,
        Self::Unreadable,
        Self::IoError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::RefusedSource => "refused-source",
            Self::RefusedLimit => "refused-limit",
            Self::TimedOut => "timed-out",
            Self::Unreadable => "unreadable",
            Self::IoError => "io-error",
        }
    }
}

/// A current binding (RFC 6926 §2, "active binding"): ACTIVE and not past its end (the
/// expiry sweep may not have reached it yet).
pub(crate) fn is_current(l: &Lease, now: UnixTime) -> bool {
    l.state == BindingState::Active && l.ends > now
}

/// Option 51's value (RFC 2132 §9.2): seconds until the lease's end; an infinite lease
/// (`u32::MAX`) stays infinite.
pub(crate) fn time_left(l: &Lease, now: UnixTime) -> u32 {
    if l.ends.0 == u32::MAX {
        u32::MAX
    } else {
        now.until(l.ends)
    }
}

fn index<T: PartialEq>(all: &[T], x: T) -> usize {
    all.iter().position(|a| *a == x).unwrap_or(0)
}

/// Leasequery counters, shared by the UDP path and the bulk server and read by the metrics.
/// Relaxed atomics: each counter is monotonic and read on its own.
#[derive(Debug, Default)]
pub struct Stats {
    queries: [[AtomicU64; QueryKind::ALL.len()]; Transport::ALL.len()],
    replies: [[AtomicU64; ReplyKind::ALL.len()]; Transport::ALL.len()],
    refused: [AtomicU64; Refused::ALL.len()],
    done: [AtomicU64; Status::ALL.len()],
    connections: [AtomicU64; ConnEvent::ALL.len()],
    associated_truncated: AtomicU64,
}

impl Stats {
    /// Queries taken (a bulk query is counted once it parsed; one that did not is counted
    /// by its DONE's status).
    pub fn queries(&self, t: Transport, k: QueryKind) -> u64 {
        self.queries[index(&Transport::ALL, t)][index(&QueryKind::ALL, k)].load(Ordering::Relaxed)
    }

    /// Reply messages sent (queued, for bulk).
    pub fn replies(&self, t: Transport, k: ReplyKind) -> u64 {
        self.replies[index(&Transport::ALL, t)][index(&ReplyKind::ALL, k)].load(Ordering::Relaxed)
    }

    /// UDP queries that got no reply, by reason.
    pub fn refused(&self, r: Refused) -> u64 {
        self.refused[index(&Refused::ALL, r)].load(Ordering::Relaxed)
    }

    /// Bulk queries ended, by the status of their DONE.
    pub fn done(&self, s: Status) -> u64 {
        self.done[index(&Status::ALL, s)].load(Ordering::Relaxed)
    }

    /// Bulk connections, by what happened to them.
    pub fn connections(&self, e: ConnEvent) -> u64 {
        self.connections[index(&ConnEvent::ALL, e)].load(Ordering::Relaxed)
    }

    /// UDP replies whose option 92 could not list every address (message size).
    pub fn associated_truncated(&self) -> u64 {
        self.associated_truncated.load(Ordering::Relaxed)
    }

    fn add(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_query(&self, t: Transport, k: QueryKind) {
        Self::add(&self.queries[index(&Transport::ALL, t)][index(&QueryKind::ALL, k)]);
    }

    pub(crate) fn count_reply(&self, t: Transport, k: ReplyKind) {
        Self::add(&self.replies[index(&Transport::ALL, t)][index(&ReplyKind::ALL, k)]);
    }

    pub(crate) fn count_refused(&self, r: Refused) {
        Self::add(&self.refused[index(&Refused::ALL, r)]);
    }

    pub(crate) fn count_done(&self, s: Status) {
        Self::add(&self.done[index(&Status::ALL, s)]);
        self.count_reply(Transport::Bulk, ReplyKind::Done);
    }

    pub(crate) fn count_connection(&self, e: ConnEvent) {
        Self::add(&self.connections[index(&ConnEvent::ALL, e)]);
    }

    pub(crate) fn count_truncated(&self) {
        Self::add(&self.associated_truncated);
    }

    /// Every counter, labelled, for `tandemctl status --json` and the metrics.
    pub fn status(&self) -> crate::status::LeasequeryStatus {
        use crate::status::LabelledCount;
        let count = |transport: &str, kind: &str, count: u64| LabelledCount {
            transport: transport.to_owned(),
            kind: kind.to_owned(),
            count,
        };
        let per = |f: &dyn Fn(Transport) -> Vec<LabelledCount>| {
            Transport::ALL.iter().flat_map(|t| f(*t)).collect()
        };
        crate::status::LeasequeryStatus {
            queries: per(&|t| {
                QueryKind::ALL
                    .iter()
                    .map(|k| count(t.as_str(), k.as_str(), self.queries(t, *k)))
                    .collect()
            }),
            replies: per(&|t| {
                ReplyKind::ALL
                    .iter()
                    .map(|k| count(t.as_str(), k.as_str(), self.replies(t, *k)))
                    .collect()
            }),
            refused: Refused::ALL
                .iter()
                .map(|r| count("udp", r.as_str(), self.refused(*r)))
                .collect(),
            bulk_done: Status::ALL
                .iter()
                .map(|s| count("bulk", s.as_str(), self.done(*s)))
                .collect(),
            bulk_connections: ConnEvent::ALL
                .iter()
                .map(|e| count("bulk", e.as_str(), self.connections(*e)))
                .collect(),
        }
    }
}

/// Whether `addr` lies in one of `prefixes` (`(network, length)`; a length over 32 counts
/// as 32). An IPv4-mapped IPv6 address is taken as its IPv4 address; any other IPv6 address
/// is not permitted. An empty list permits nobody.
pub fn permitted(prefixes: &[(Ipv4Addr, u8)], addr: IpAddr) -> bool {
    let v4 = match addr {
        IpAddr::V4(a) => a,
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(a) => a,
            None => return false,
        },
    };
    prefixes.iter().any(|&(net, len)| {
        let mask = match len.min(32) {
            0 => 0,
            l => u32::MAX << (32 - u32::from(l)),
        };
        u32::from(v4) & mask == u32::from(net) & mask
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kebab_case_and_distinct() {
        let names: Vec<&str> = Refused::ALL
            .iter()
            .map(|r| r.as_str())
            .chain(QueryKind::ALL.iter().map(|k| k.as_str()))
            .chain(ReplyKind::ALL.iter().map(|k| k.as_str()))
            .chain(Status::ALL.iter().map(|s| s.as_str()))
            .chain(ConnEvent::ALL.iter().map(|e| e.as_str()))
            .chain(Transport::ALL.iter().map(|t| t.as_str()))
            .collect();
        for n in &names {
            assert!(n.chars().all(|c| c.is_ascii_lowercase() || c == '-'), "{n}");
        }
        let codes: Vec<u8> = Status::ALL.iter().map(|s| s.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn stats_count_per_key() {
        let s = Stats::default();
        s.count_query(Transport::Bulk, QueryKind::RelayId);
        s.count_refused(Refused::NoGiaddr);
        s.count_done(Status::NotAllowed);
        assert_eq!(s.queries(Transport::Bulk, QueryKind::RelayId), 1);
        assert_eq!(s.queries(Transport::Udp, QueryKind::RelayId), 0);
        assert_eq!(s.refused(Refused::NoGiaddr), 1);
        assert_eq!(s.done(Status::NotAllowed), 1);
        assert_eq!(s.replies(Transport::Bulk, ReplyKind::Done), 1);
    }

    #[test]
    fn prefixes() {
        let p = [
            (Ipv4Addr::new(192, 0, 2, 0), 24),
            (Ipv4Addr::new(10, 1, 1, 1), 40),
        ];
        let ok = |s: &str| permitted(&p, s.parse().unwrap());
        assert!(ok("192.0.2.77") && ok("10.1.1.1") && ok("::ffff:192.0.2.1"));
        assert!(!ok("192.0.3.1") && !ok("10.1.1.2") && !ok("2001:db8::1"));
        assert!(permitted(
            &[(Ipv4Addr::UNSPECIFIED, 0)],
            "8.8.8.8".parse().unwrap()
        ));
        assert!(!permitted(&[], "127.0.0.1".parse().unwrap()));
    }
}
