//! One DHCPBULKLEASEQUERY (RFC 6926 §7.2, §8.2, §8.3), sans IO: parsed once, then walked
//! through the tables a bounded number of records at a time, each step appending framed
//! replies (§6.1) to the connection's output, until its DHCPLEASEQUERYDONE.

use std::net::Ipv4Addr;
use std::sync::Arc;

use lease_mmap::table::in_ranges;
use lease_mmap::{BindingState, Lease, Owner, Slot, Store, TableId, UnixTime};

use super::msg::{self, Header, Query, msg_type, opt, sub};
use super::{QueryKind, ReplyKind, Stats, Status, Transport, is_current, time_left};

/// Room for one reply: every option a reply carries fits (the longest are a 255-byte
/// client-identifier and a 115-byte option 82).
const REPLY_LIMIT: usize = 1024;

/// A step stops producing once the connection's output holds this much.
pub(crate) const HIGH_WATER: usize = 64 * 1024;

/// dhcp-state values (RFC 6926 §6.2.7).
mod state {
    pub const AVAILABLE: u8 = 1;
    pub const ACTIVE: u8 = 2;
    pub const EXPIRED: u8 = 3;
    pub const RELEASED: u8 = 4;
    pub const ABANDONED: u8 = 5;
    pub const RESET: u8 = 6;
    pub const REMOTE: u8 = 7;
    pub const TRANSITIONING: u8 = 8;
}

/// data-source's REMOTE flag (RFC 6926 §6.2.8: the last bit).
const DATA_SOURCE_REMOTE: u8 = 0x01;

/// The primary query (RFC 6926 §7.2).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Select {
    Mac {
        htype: u8,
        hlen: u8,
        chaddr: [u8; 16],
    },
    ClientId(Vec<u8>),
    RemoteId(Vec<u8>),
    RelayId(Vec<u8>),
    All,
}

/// What a parsed query asks.
#[derive(Clone, Debug)]
struct Ask {
    select: Select,
    /// Only the subnet holding this address (option 82 link selection): the query by link.
    link: Option<std::net::Ipv4Addr>,
    start: Option<UnixTime>,
    end: Option<UnixTime>,
    prl: Option<Vec<u8>>,
}

/// What a step needs besides the query: the tables, who we are, the time, the counters.
pub(crate) struct Env<'a> {
    pub store: &'a Store,
    pub server_id: Ipv4Addr,
    pub now: UnixTime,
    /// The state this server allocates from in a table (FREE or BACKUP).
    pub local_free: &'a dyn Fn(TableId) -> BindingState,
    pub stats: &'a Stats,
}

/// One query in progress on a connection.
#[derive(Debug)]
pub(crate) struct Bulk {
    xid: u32,
    flags: u16,
    /// `Err`: the query ends at once with this status and text.
    ask: Result<Ask, (Status, &'static str)>,
    table: usize,
    slot: u32,
    /// The allocatable ranges of table `table`, read once per table.
    alloc: Option<Arc<[(u32, u32)]>>,
    /// Nothing sent yet: the next message carries option 54 (§7.3, §8.3).
    first: bool,
    done: bool,
}

impl Bulk {
    /// Takes one framed message (without its length). `None` when it is too short to hold
    /// an `xid`, so that not even a DONE can answer it.
    pub fn start(bytes: &[u8], stats: &Stats) -> Option<Bulk> {
        let xid = u32::from_be_bytes(bytes.get(4..8)?.try_into().ok()?);
        let flags = bytes
            .get(10..12)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u16::from_be_bytes);
        let ask = parse(bytes);
        if let Ok(a) = &ask {
            stats.count_query(Transport::Bulk, a.select.kind());
        }
        Some(Bulk {
            xid,
            flags,
            ask,
            table: 0,
            slot: 0,
            alloc: None,
            first: true,
            done: false,
        })
    }

    /// Whether the DONE was produced.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Walks at most `budget` records (taking them off it), appending replies to `out`
    /// until it holds [`HIGH_WATER`] bytes, and the DONE once every table was walked.
    pub fn step(&mut self, env: &Env<'_>, out: &mut Vec<u8>, budget: &mut usize) {
        let Env {
            store,
            server_id,
            now,
            local_free,
            stats,
        } = *env;
        if self.done {
            return;
        }
        let ask = match &self.ask {
            Ok(a) => a.clone(),
            Err((status, text)) => {
                let (status, text) = (*status, *text);
                self.finish(status, text, server_id, out, stats);
                return;
            }
        };
        while *budget > 0 && out.len() < HIGH_WATER {
            let Some(table) = store.tables().get(self.table) else {
                self.finish(Status::Success, "", server_id, out, stats);
                return;
            };
            if self.slot >= table.len() || ask.link.is_some_and(|l| !on_link(table.spec(), l)) {
                self.table += 1;
                self.slot = 0;
                self.alloc = None;
                continue;
            }
            let slot = Slot(self.slot);
            self.slot += 1;
            *budget -= 1;
            let allocatable =
                in_ranges(self.alloc.get_or_insert_with(|| table.allocatable()), slot);
            let (version, lease) = table.read(slot);
            let current = is_current(&lease, now);
            let chosen = match &ask.select {
                Select::Mac {
                    htype,
                    hlen,
                    chaddr,
                } => {
                    let n = usize::from(*hlen);
                    current
                        && lease.htype == *htype
                        && lease.hlen == *hlen
                        && lease.chaddr[..n] == chaddr[..n]
                }
                Select::ClientId(id) => current && lease.client_id.as_bytes() == &id[..],
                Select::RemoteId(id) => current && lease.relay.remote_id() == Some(&id[..]),
                Select::RelayId(id) => current && lease.relay.relay_id() == Some(&id[..]),
                // §8.2: every configured address, bound or not.
                Select::All => current || allocatable || version != 0,
            };
            if !chosen || !ask.in_window(&lease) {
                continue;
            }
            let local = local_free(table.id());
            let bytes = self.reply(&ask, server_id, now, table.addr(slot), &lease, local);
            frame(out, &bytes);
            self.first = false;
            let kind = if current {
                ReplyKind::Active
            } else {
                ReplyKind::Unassigned
            };
            stats.count_reply(Transport::Bulk, kind);
        }
    }

    /// Ends the query at once with QueryTerminated (§8.5), unless it already ended.
    pub fn terminate(&mut self, server_id: Ipv4Addr, out: &mut Vec<u8>, stats: &Stats) {
        if !self.done {
            self.finish(
                Status::QueryTerminated,
                "the server is shutting down",
                server_id,
                out,
                stats,
            );
        }
    }

    /// A DHCPLEASEACTIVE or DHCPLEASEUNASSIGNED about one address (§8.3).
    fn reply(
        &self,
        ask: &Ask,
        server_id: Ipv4Addr,
        now: UnixTime,
        addr: Ipv4Addr,
        l: &Lease,
        local_free: BindingState,
    ) -> Vec<u8> {
        let state = dhcp_state(l, now, local_free);
        let h = Header {
            // §8.3: the message type follows dhcp-state.
            message_type: if state == state::ACTIVE {
                msg_type::LEASEACTIVE
            } else {
                msg_type::LEASEUNASSIGNED
            },
            xid: self.xid,
            flags: self.flags,
            ciaddr: addr,
            giaddr: Ipv4Addr::UNSPECIFIED,
            htype: l.htype,
            hlen: l.hlen.min(16),
            chaddr: l.chaddr,
        };
        msg::build(&h, REPLY_LIMIT, |w| {
            if self.first {
                w.put(opt::SERVER_ID, &server_id.octets());
            }
            if ask.wants(opt::DHCP_STATE) {
                w.put(opt::DHCP_STATE, &[state]);
            }
            if ask.wants(opt::BASE_TIME) {
                w.put_u32(opt::BASE_TIME, now.0);
            }
            if ask.wants(opt::START_TIME_OF_STATE) && l.stos.0 != 0 {
                w.put_u32(opt::START_TIME_OF_STATE, l.stos.until(now));
            }
            let timed = matches!(
                l.state,
                BindingState::Active | BindingState::Offered | BindingState::Abandoned
            );
            if ask.wants(opt::LEASE_TIME) && timed && l.ends > now {
                w.put_u32(opt::LEASE_TIME, time_left(l, now));
            }
            if ask.wants(opt::DATA_SOURCE) && l.owner == Owner::Partner {
                w.put(opt::DATA_SOURCE, &[DATA_SOURCE_REMOTE]);
            }
            if ask.wants(opt::CLIENT_LAST_TRANSACTION_TIME) && l.cltt.0 != 0 {
                w.put_u32(opt::CLIENT_LAST_TRANSACTION_TIME, l.cltt.until(now));
            }
            if ask.wants(opt::CLIENT_ID) && !l.client_id.is_empty() {
                w.put(opt::CLIENT_ID, l.client_id.as_bytes());
            }
            if ask.wants(opt::RELAY_AGENT_INFO) && !l.relay.is_empty() {
                w.put(opt::RELAY_AGENT_INFO, l.relay.as_bytes());
            }
        })
    }

    /// The DHCPLEASEQUERYDONE (§8.2): a status-code only when not Success.
    fn finish(
        &mut self,
        status: Status,
        text: &str,
        server_id: Ipv4Addr,
        out: &mut Vec<u8>,
        stats: &Stats,
    ) {
        let h = Header {
            message_type: msg_type::LEASEQUERYDONE,
            xid: self.xid,
            flags: self.flags,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            htype: 0,
            hlen: 0,
            chaddr: [0; 16],
        };
        let bytes = msg::build(&h, REPLY_LIMIT, |w| {
            if self.first {
                w.put(opt::SERVER_ID, &server_id.octets());
            }
            if status != Status::Success {
                let mut v = Vec::with_capacity(1 + text.len());
                v.push(status.code());
                v.extend_from_slice(text.as_bytes());
                w.put(opt::STATUS_CODE, &v);
            }
        });
        frame(out, &bytes);
        self.first = false;
        self.done = true;
        stats.count_done(status);
    }
}

impl Select {
    fn kind(&self) -> QueryKind {
        match self {
            Self::Mac { .. } => QueryKind::Mac,
            Self::ClientId(_) => QueryKind::ClientId,
            Self::RemoteId(_) => QueryKind::RemoteId,
            Self::RelayId(_) => QueryKind::RelayId,
            Self::All => QueryKind::AllConfigured,
        }
    }
}

impl Ask {
    /// §8.3: an option is sent when option 55 asks for it; without option 55, all are.
    fn wants(&self, code: u8) -> bool {
        self.prl.as_deref().is_none_or(|p| p.contains(&code))
    }

    /// §8.2: the binding changed in the window if its client-last-transaction-time or its
    /// start-time-of-state lies in it.
    fn in_window(&self, l: &Lease) -> bool {
        let inside = |t: UnixTime| {
            t.0 != 0 && self.start.is_none_or(|s| t >= s) && self.end.is_none_or(|e| t <= e)
        };
        (self.start.is_none() && self.end.is_none()) || inside(l.cltt) || inside(l.stos)
    }
}

/// Whether `link` lies in the subnet `spec` belongs to (the subnet, not just the addresses
/// its table covers: a link selection names the relay's link, often its network address).
fn on_link(spec: &lease_mmap::TableSpec, link: std::net::Ipv4Addr) -> bool {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(spec.prefix_len.min(32)))
        .unwrap_or(0);
    u32::from(link) & mask == u32::from(spec.network) & mask
}

/// §6.2.7, from the record's state; FREE and BACKUP are AVAILABLE when this server
/// allocates from that state in the record's table, REMOTE when its partner does.
fn dhcp_state(l: &Lease, now: UnixTime, local_free: BindingState) -> u8 {
    match l.state {
        BindingState::Active if l.ends > now => state::ACTIVE,
        BindingState::Active | BindingState::Expired => state::EXPIRED,
        BindingState::Released => state::RELEASED,
        BindingState::Abandoned => state::ABANDONED,
        BindingState::Reset => state::RESET,
        BindingState::Offered => state::TRANSITIONING,
        s @ (BindingState::Free | BindingState::Backup) if s == local_free => state::AVAILABLE,
        BindingState::Free | BindingState::Backup => state::REMOTE,
    }
}

/// §6.1: two bytes of length, then the message (at most [`REPLY_LIMIT`] bytes).
fn frame(out: &mut Vec<u8>, msg: &[u8]) {
    let len = u16::try_from(msg.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&msg[..usize::from(len)]);
}

/// §7.2, §8.2: the primary query and its qualifiers, or the status the query ends with.
fn parse(bytes: &[u8]) -> Result<Ask, (Status, &'static str)> {
    let malformed = |text| (Status::MalformedQuery, text);
    let q = Query::parse(bytes).map_err(|_| malformed("the message cannot be parsed"))?;
    if !q.is_dhcp || !q.is_request || q.message_type != Some(msg_type::BULKLEASEQUERY) {
        return Err(malformed("not a DHCPBULKLEASEQUERY"));
    }
    if !(q.ciaddr.is_unspecified() && q.yiaddr.is_unspecified() && q.siaddr.is_unspecified()) {
        return Err(malformed("ciaddr, yiaddr and siaddr must be zero"));
    }
    let bad_82 = |_| malformed("malformed relay agent information");
    let remote = q.relay_sub_option(sub::REMOTE_ID).map_err(bad_82)?;
    let link = match q.relay_sub_option(sub::LINK_SELECTION).map_err(bad_82)? {
        None => None,
        Some(&[a, b, c, d]) => Some(std::net::Ipv4Addr::new(a, b, c, d)),
        Some(_) => return Err(malformed("link selection is not 4 bytes")),
    };
    let relay = q.relay_sub_option(sub::RELAY_ID).map_err(bad_82)?;
    if remote.is_some_and(<[u8]>::is_empty) || relay.is_some_and(<[u8]>::is_empty) {
        return Err(malformed("empty remote-id or relay-id"));
    }
    let mac = q.has_hardware_fields();
    let primaries = [
        mac,
        q.client_id.is_some(),
        remote.is_some(),
        relay.is_some(),
    ];
    if primaries.iter().filter(|p| **p).count() > 1 {
        return Err((Status::NotAllowed, "more than one primary query"));
    }
    let select = if mac {
        if q.hlen == 0 {
            return Err(malformed("a hardware address needs hlen"));
        }
        Select::Mac {
            htype: q.htype,
            hlen: q.hlen,
            chaddr: q.chaddr,
        }
    } else if let Some(id) = &q.client_id {
        Select::ClientId(id.clone())
    } else if let Some(id) = remote {
        Select::RemoteId(id.to_vec())
    } else if let Some(id) = relay {
        Select::RelayId(id.to_vec())
    } else {
        Select::All
    };
    let time = |v: &Option<Vec<u8>>, text| match v.as_deref() {
        None => Ok(None),
        Some(&[a, b, c, d]) => Ok(Some(UnixTime(u32::from_be_bytes([a, b, c, d])))),
        Some(_) => Err(malformed(text)),
    };
    let start = time(&q.query_start_time, "query-start-time is not 4 bytes")?;
    let end = time(&q.query_end_time, "query-end-time is not 4 bytes")?;
    // RFC 6607 §3.1 type 255: the default VPN; RFC 6926 §6.2.9 type 254: all of them.
    match q.vss.as_deref() {
        None | Some([254 | 255, ..]) => {}
        Some([]) => return Err(malformed("empty VSS option")),
        Some(_) => return Err((Status::NotAllowed, "only the default VPN is served")),
    }
    Ok(Ask {
        select,
        link,
        start,
        end,
        prl: q.prl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lease_mmap::{Durability, TableSpec};

    const NOW: UnixTime = UnixTime(1_800_000_000);

    fn query(options: &[u8], f: impl FnOnce(&mut [u8])) -> Vec<u8> {
        let mut b = vec![0u8; 240];
        b[0] = 1;
        b[4..8].copy_from_slice(&9u32.to_be_bytes());
        b[236..240].copy_from_slice(&[99, 130, 83, 99]);
        f(&mut b);
        b.extend_from_slice(&[53, 1, 14]);
        b.extend_from_slice(options);
        b.push(255);
        b
    }

    fn status(bytes: &[u8]) -> Result<QueryKind, (Status, &'static str)> {
        parse(bytes).map(|a| a.select.kind())
    }

    #[test]
    fn primary_queries_and_their_errors() {
        assert_eq!(status(&query(&[], |_| {})), Ok(QueryKind::AllConfigured));
        assert_eq!(
            status(&query(&[82, 5, 5, 3, 10, 0, 0], |_| {})).map_err(|e| e.0),
            Err(Status::MalformedQuery)
        );
        assert_eq!(
            status(&query(&[82, 6, 5, 4, 10, 0, 0, 1], |_| {})),
            Ok(QueryKind::AllConfigured)
        );
        let mac = |b: &mut [u8]| {
            b[1] = 1;
            b[2] = 6;
            b[28..34].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        };
        assert_eq!(status(&query(&[], mac)), Ok(QueryKind::Mac));
        assert_eq!(
            status(&query(&[61, 2, 1, 2], |_| {})),
            Ok(QueryKind::ClientId)
        );
        assert_eq!(
            status(&query(&[82, 3, 2, 1, 7], |_| {})),
            Ok(QueryKind::RemoteId)
        );
        assert_eq!(
            status(&query(&[82, 3, 12, 1, 7], |_| {})),
            Ok(QueryKind::RelayId)
        );
        // Circuit-id alone selects nothing: all configured addresses.
        assert_eq!(
            status(&query(&[82, 3, 1, 1, 7], |_| {})),
            Ok(QueryKind::AllConfigured)
        );
        let code = |b: &[u8]| status(b).map_err(|(s, _)| s).unwrap_err();
        assert_eq!(code(&query(&[61, 2, 1, 2], mac)), Status::NotAllowed);
        assert_eq!(code(&query(&[], |b| b[12] = 10)), Status::MalformedQuery);
        assert_eq!(code(&query(&[], |b| b[16] = 10)), Status::MalformedQuery);
        assert_eq!(
            code(&query(&[], |b| b[1] = 1)),
            Status::MalformedQuery,
            "htype without hlen"
        );
        assert_eq!(
            code(&query(&[155, 3, 0, 0, 0], |_| {})),
            Status::MalformedQuery
        );
        assert_eq!(code(&query(&[221, 0], |_| {})), Status::MalformedQuery);
        assert_eq!(code(&query(&[221, 2, 1, 0], |_| {})), Status::NotAllowed);
        assert_eq!(code(&query(&[], |b| b[0] = 2)), Status::MalformedQuery);
        assert_eq!(code(&[1; 50]), Status::MalformedQuery);
        let a = parse(&query(
            &[154, 4, 0, 0, 0, 9, 155, 4, 0, 0, 0, 20, 55, 1, 156],
            |_| {},
        ))
        .unwrap();
        assert_eq!((a.start, a.end), (Some(UnixTime(9)), Some(UnixTime(20))));
        assert!(a.wants(opt::DHCP_STATE) && !a.wants(opt::BASE_TIME));
    }

    #[test]
    fn windows_take_either_time() {
        let ask = Ask {
            select: Select::All,
            link: None,
            start: Some(UnixTime(100)),
            end: Some(UnixTime(200)),
            prl: None,
        };
        let l = |cltt, stos| Lease {
            cltt: UnixTime(cltt),
            stos: UnixTime(stos),
            ..Lease::default()
        };
        assert!(
            ask.in_window(&l(150, 0)) && ask.in_window(&l(0, 200)) && ask.in_window(&l(50, 100))
        );
        assert!(!ask.in_window(&l(99, 201)) && !ask.in_window(&l(0, 0)));
        let open = Ask {
            start: None,
            end: None,
            ..ask
        };
        assert!(open.in_window(&l(0, 0)));
    }

    #[test]
    fn dhcp_states() {
        let s = |state, ends| {
            let l = Lease {
                state,
                ends: UnixTime(ends),
                ..Lease::default()
            };
            (
                dhcp_state(&l, NOW, BindingState::Free),
                dhcp_state(&l, NOW, BindingState::Backup),
            )
        };
        use BindingState as B;
        assert_eq!(s(B::Active, NOW.0 + 1), (state::ACTIVE, state::ACTIVE));
        assert_eq!(s(B::Active, NOW.0), (state::EXPIRED, state::EXPIRED));
        assert_eq!(s(B::Expired, 0).0, state::EXPIRED);
        assert_eq!(s(B::Released, 0).0, state::RELEASED);
        assert_eq!(s(B::Abandoned, 0).0, state::ABANDONED);
        assert_eq!(s(B::Reset, 0).0, state::RESET);
        assert_eq!(s(B::Offered, NOW.0 + 9).0, state::TRANSITIONING);
        assert_eq!(s(B::Free, 0), (state::AVAILABLE, state::REMOTE));
        assert_eq!(s(B::Backup, 0), (state::REMOTE, state::AVAILABLE));
    }

    #[test]
    fn steps_are_bounded_and_end_with_one_done() {
        let dir = tempfile::tempdir().unwrap();
        let spec = TableSpec {
            network: "10.0.0.0".parse().unwrap(),
            prefix_len: 24,
            first: "10.0.0.1".parse().unwrap(),
            last: "10.0.0.100".parse().unwrap(),
            allocatable: vec![("10.0.0.1".parse().unwrap(), "10.0.0.100".parse().unwrap())],
        };
        let (store, _, _) = Store::open(dir.path(), &[spec], 1, Durability::Async).unwrap();
        let stats = Stats::default();
        let mut q = Bulk::start(&query(&[55, 1, 156], |_| {}), &stats).unwrap();
        let mut out = Vec::new();
        let free = |_: TableId| BindingState::Free;
        let sid = Ipv4Addr::new(192, 0, 2, 1);
        let env = Env {
            store: &store,
            server_id: sid,
            now: NOW,
            local_free: &free,
            stats: &stats,
        };
        let mut budget = 30;
        q.step(&env, &mut out, &mut budget);
        assert_eq!((budget, q.is_done()), (0, false));
        assert_eq!(stats.replies(Transport::Bulk, ReplyKind::Unassigned), 30);
        let mut budget = 1000;
        q.step(&env, &mut out, &mut budget);
        assert!(q.is_done());
        assert_eq!(1000 - budget, 70, "each record walked once");
        assert_eq!(stats.replies(Transport::Bulk, ReplyKind::Unassigned), 100);
        assert_eq!(stats.done(Status::Success), 1);
        // 101 frames; only the first carries option 54.
        let mut frames = Vec::new();
        let mut rest = &out[..];
        while let [a, b, tail @ ..] = rest {
            let n = usize::from(u16::from_be_bytes([*a, *b]));
            frames.push(&tail[..n]);
            rest = &tail[n..];
        }
        assert_eq!(frames.len(), 101);
        let has_54 = |f: &[u8]| f[240..].windows(2).any(|w| w == [54, 4]);
        assert!(has_54(frames[0]) && !frames[1..].iter().any(|f| has_54(f)));
        // Done stays done; terminate after the end adds nothing.
        let len = out.len();
        q.terminate(sid, &mut out, &stats);
        let mut budget = 10;
        q.step(&env, &mut out, &mut budget);
        assert_eq!((out.len(), budget), (len, 10));
        // A query cut short ends with QueryTerminated.
        let mut q = Bulk::start(&query(&[], |_| {}), &stats).unwrap();
        q.terminate(sid, &mut out, &stats);
        assert_eq!(stats.done(Status::QueryTerminated), 1);
        assert!(
            Bulk::start(&[1, 2, 3], &stats).is_none(),
            "no xid, no answer"
        );
    }
}
