//! Shared harness for the engine tests: the real lease-mmap `Store` on a tempdir, a virtual
//! clock, request builders, and decisions turned into owned summaries.

use std::net::Ipv4Addr;
use std::sync::Arc;

use dataplane::engine::{
    Commit, Decision, Destination, DropReason, Engine, EngineConfig, EngineWorker, Ingress,
    ScopeConfig, SilentReason,
};
use dataplane::wire::dhcpv4::{MessageType, OpCode, Options, Repr};
use lease_mmap::{Durability, Lease, Store, UnixTime, WorkerJournal};

pub fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("test address")
}

pub const T0: u32 = 1_700_000_000;
pub const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const RELAY_MAC: [u8; 6] = [0x02, 0xee, 0, 0, 0, 0x01];

pub fn mac(n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, n]
}

/// What a decision said, owned so the harness can be used again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Offer,
    Ack,
    Nak,
    BootReply,
    OtherReply,
    Silent(SilentReason),
    Drop(DropReason),
}

#[derive(Clone, Debug)]
pub struct Out {
    pub kind: Kind,
    pub reply: Option<Repr<'static>>,
    pub dest: Option<Destination>,
    pub server_ip: Option<Ipv4Addr>,
    pub commit: Option<Commit>,
    pub router: Option<Vec<u8>>,
    pub dns: Option<Vec<u8>>,
    pub domain_name: Option<Vec<u8>>,
    pub client_id: Option<Vec<u8>>,
    pub relay_agent_info: Option<Vec<u8>>,
    pub message: Option<Vec<u8>>,
}

impl Out {
    pub fn repr(&self) -> &Repr<'static> {
        self.reply
            .as_ref()
            .unwrap_or_else(|| panic!("no reply: {:?}", self.kind))
    }
    pub fn yiaddr(&self) -> Ipv4Addr {
        self.repr().yiaddr
    }
    pub fn opts(&self) -> &Options<'static> {
        &self.repr().options
    }
    pub fn dest(&self) -> Destination {
        self.dest
            .unwrap_or_else(|| panic!("no reply: {:?}", self.kind))
    }
    pub fn lease(&self) -> Lease {
        self.commit
            .unwrap_or_else(|| panic!("no commit: {:?}", self.kind))
            .lease
    }
}

pub struct Harness {
    pub engine: Engine,
    pub worker: EngineWorker,
    pub journal: WorkerJournal,
    pub now: UnixTime,
    pub journaled: u64,
    _dir: tempfile::TempDir,
}

impl Harness {
    pub fn new(config: EngineConfig) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let specs = config.table_specs();
        let (store, mut journals, _) =
            Store::open(dir.path(), &specs, 1, Durability::Async).expect("open store");
        let engine = Engine::new(config, Arc::new(store)).expect("engine");
        let worker = engine.worker(0, 2);
        let journal = journals.pop().expect("one journal");
        Harness {
            engine,
            worker,
            journal,
            now: UnixTime(T0),
            journaled: 0,
            _dir: dir,
        }
    }

    /// Drops the engine and the store as a crash would (no checkpoint, no close) and opens
    /// them again on the same directory with `config`: recovery replays the journal. The
    /// clock stays where it was.
    pub fn reopen(self, config: EngineConfig) -> Self {
        let Harness {
            engine,
            journal,
            now,
            journaled,
            _dir: dir,
            ..
        } = self;
        drop((engine, journal));
        let (store, mut journals, _) =
            Store::open(dir.path(), &config.table_specs(), 1, Durability::Async)
                .expect("reopen store");
        let engine = Engine::new(config, Arc::new(store)).expect("engine");
        Harness {
            worker: engine.worker(0, 2),
            engine,
            journal: journals.pop().expect("one journal"),
            now,
            journaled,
            _dir: dir,
        }
    }

    pub fn advance(&mut self, secs: u32) {
        self.now = self.now.saturating_add(secs);
    }

    /// Decide, journal and group-commit any change (as a worker would), summarise.
    pub fn run(&mut self, req: &Repr<'_>, ingress: &Ingress) -> Out {
        let d = self.engine.decide(&mut self.worker, req, ingress, self.now);
        if let Some(c) = d.commit() {
            self.journal.record(c.table, c.slot, c.version, &c.lease);
            self.journal.commit().expect("group commit");
            self.journaled += 1;
        }
        summarise(&d)
    }

    /// The record of `addr` in whichever table covers it.
    pub fn record(&self, addr: Ipv4Addr) -> Lease {
        let id = self.engine.scope_of(addr).expect("scope");
        let t = self.engine.store().table(id);
        t.read(t.slot(addr).expect("slot")).1
    }
}

fn owned(v: Option<&[u8]>) -> Option<Vec<u8>> {
    v.map(<[u8]>::to_vec)
}

/// The reply with its borrowed fields dropped (the harness keeps those as `Vec`s).
fn detach(r: &Repr<'_>) -> Repr<'static> {
    let o = &r.options;
    Repr {
        op: r.op,
        htype: r.htype,
        hlen: r.hlen,
        hops: r.hops,
        xid: r.xid,
        secs: r.secs,
        flags: r.flags,
        ciaddr: r.ciaddr,
        yiaddr: r.yiaddr,
        siaddr: r.siaddr,
        giaddr: r.giaddr,
        chaddr: r.chaddr,
        sname: &[],
        file: &[],
        is_dhcp: r.is_dhcp,
        options: Options {
            message_type: o.message_type,
            subnet_mask: o.subnet_mask,
            broadcast_addr: o.broadcast_addr,
            requested_ip: o.requested_ip,
            lease_time: o.lease_time,
            overload: o.overload,
            server_id: o.server_id,
            max_message_size: o.max_message_size,
            renewal_time: o.renewal_time,
            rebinding_time: o.rebinding_time,
            subnet_selection: o.subnet_selection,
            ..Options::default()
        },
    }
}

fn summarise(d: &Decision<'_>) -> Out {
    let mut out = Out {
        kind: Kind::OtherReply,
        reply: None,
        dest: None,
        server_ip: None,
        commit: d.commit().copied(),
        router: None,
        dns: None,
        domain_name: None,
        client_id: None,
        relay_agent_info: None,
        message: None,
    };
    match d {
        Decision::Drop(r) => out.kind = Kind::Drop(*r),
        Decision::Silent { reason, .. } => out.kind = Kind::Silent(*reason),
        Decision::Reply(r) => {
            let o = &r.repr.options;
            out.kind = match o.message_type {
                Some(MessageType::Offer) => Kind::Offer,
                Some(MessageType::Ack) => Kind::Ack,
                Some(MessageType::Nak) => Kind::Nak,
                None => Kind::BootReply,
                Some(_) => Kind::OtherReply,
            };
            assert_eq!(r.repr.op, OpCode::Reply);
            out.router = owned(o.router);
            out.dns = owned(o.dns);
            out.domain_name = owned(o.domain_name);
            out.client_id = owned(o.client_id);
            out.relay_agent_info = owned(o.relay_agent_info);
            out.message = owned(o.message);
            out.reply = Some(detach(&r.repr));
            out.dest = Some(r.dest);
            out.server_ip = Some(r.server_ip);
        }
    }
    out
}

/// A BOOTREQUEST from Ethernet client `mac`, DHCP message type `mt`.
pub fn request(mt: Option<MessageType>, mac: [u8; 6]) -> Repr<'static> {
    let xid = u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]) ^ 0x5a5a_0000;
    Repr::request(mac, xid, mt)
}

pub fn discover(mac: [u8; 6]) -> Repr<'static> {
    request(Some(MessageType::Discover), mac)
}

/// REQUEST in SELECTING: option 54 and option 50.
pub fn select(mac: [u8; 6], server: Ipv4Addr, addr: Ipv4Addr) -> Repr<'static> {
    let mut r = request(Some(MessageType::Request), mac);
    r.options.server_id = Some(server);
    r.options.requested_ip = Some(addr);
    r
}

/// REQUEST in INIT-REBOOT: option 50, no option 54, ciaddr 0.
pub fn init_reboot(mac: [u8; 6], addr: Ipv4Addr) -> Repr<'static> {
    let mut r = request(Some(MessageType::Request), mac);
    r.options.requested_ip = Some(addr);
    r
}

/// REQUEST in RENEWING / REBINDING: ciaddr, no 50, no 54.
pub fn renew(mac: [u8; 6], addr: Ipv4Addr) -> Repr<'static> {
    let mut r = request(Some(MessageType::Request), mac);
    r.ciaddr = addr;
    r
}

pub fn release(mac: [u8; 6], server: Ipv4Addr, addr: Ipv4Addr) -> Repr<'static> {
    let mut r = request(Some(MessageType::Release), mac);
    r.ciaddr = addr;
    r.options.server_id = Some(server);
    r
}

pub fn decline(mac: [u8; 6], server: Ipv4Addr, addr: Ipv4Addr) -> Repr<'static> {
    let mut r = request(Some(MessageType::Decline), mac);
    r.options.requested_ip = Some(addr);
    r.options.server_id = Some(server);
    r
}

/// A directly attached client on the interface with address `if_addr`.
pub fn direct(if_addr: Ipv4Addr, mac: [u8; 6]) -> Ingress {
    Ingress {
        if_addr,
        src_mac: mac,
        src_ip: Ipv4Addr::UNSPECIFIED,
    }
}

/// A request relayed by `giaddr` (sent from the relay's MAC), received on `if_addr`.
pub fn via_relay(if_addr: Ipv4Addr, giaddr: Ipv4Addr) -> Ingress {
    Ingress {
        if_addr,
        src_mac: RELAY_MAC,
        src_ip: giaddr,
    }
}

/// Scope 10.0.0.0/24 (interface 10.0.0.1) with pool .10-.20.
pub fn lan() -> ScopeConfig {
    let mut s = ScopeConfig::new(ip("10.0.0.0"), 24);
    s.pools = vec![(ip("10.0.0.10"), ip("10.0.0.20"))];
    s.router = vec![ip("10.0.0.1")];
    s.dns = vec![ip("10.0.0.53"), ip("10.0.0.54")];
    s.domain_name = Some("example.net".into());
    s
}

/// A relayed scope `10.N.0.0/24` with pool .10-.20.
pub fn remote(n: u8) -> ScopeConfig {
    let mut s = ScopeConfig::new(Ipv4Addr::new(10, n, 0, 0), 24);
    s.pools = vec![(Ipv4Addr::new(10, n, 0, 10), Ipv4Addr::new(10, n, 0, 20))];
    s.router = vec![Ipv4Addr::new(10, n, 0, 1)];
    s
}

pub fn config(scopes: Vec<ScopeConfig>) -> EngineConfig {
    EngineConfig {
        scopes,
        ..EngineConfig::default()
    }
}

/// DISCOVER then SELECTING REQUEST on the LAN; returns the ACK.
pub fn dora(h: &mut Harness, m: [u8; 6]) -> Out {
    let ing = direct(SERVER, m);
    let offer = h.run(&discover(m), &ing);
    assert_eq!(offer.kind, Kind::Offer, "{offer:?}");
    let ack = h.run(&select(m, SERVER, offer.yiaddr()), &ing);
    assert_eq!(ack.kind, Kind::Ack, "{ack:?}");
    assert_eq!(ack.yiaddr(), offer.yiaddr());
    ack
}
