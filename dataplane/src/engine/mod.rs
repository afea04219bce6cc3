//! The DHCP decision engine (RFC 2131), sans-IO: a request, the lease tables and `now` in;
//! a reply and the lease change to journal out.
//!
//! # Shape
//!
//! [`Engine`] is built once from an [`EngineConfig`] and the opened [`Store`] (scope `i` uses
//! table `TableId(i)`, so the store must be opened with [`EngineConfig::table_specs`]). It is
//! `Sync`: every worker shares it, each with its own [`EngineWorker`] (its allocation
//! cursor, from [`Engine::worker`]). [`Engine::decide`] maps one parsed request to a [`Decision`]:
//!
//! - [`Decision::Reply`]: send `repr` to `dest` from `server_ip`. If it carries a
//!   [`Commit`], the caller journals it and the reply leaves only after the batch's group
//!   commit. The table already holds the change (CAS on the record version).
//! - [`Decision::Silent`]: no reply; RELEASE and DECLINE carry a [`Commit`] to journal.
//! - [`Decision::Drop`]: count by [`DropReason::name`].
//!
//! The engine never reads a clock (`now` is passed in), never allocates on the decision path
//! and never panics on any request. Reply [`Repr`]s borrow from the request (client-id echo,
//! RFC 6842; option 82 echo, RFC 3046 §2.2; option 118 echo, RFC 3011 §3) and from the
//! engine (router, DNS, domain name precomputed per scope as bytes).
//!
//! # Decisions
//!
//! - **Trusted relays**: option 82's sub-options (link selection, RFC 5107 override,
//!   circuit-id and remote-id for reservations) and option 118 are read only from a relayed
//!   request whose IPv4 source is in [`EngineConfig::trusted_relays`]
//!   ([`Engine::trusts_relay`]); from anyone else they are as if absent, and 118 is not
//!   echoed. Option 82 is echoed to every relay (it needs it back) and never to a client.
//! - **Scope**: option 82 link selection (RFC 3527) when `giaddr` is set, else option 118
//!   (RFC 3011), else `giaddr`, else `ciaddr` when it lies in a scope (a RENEWING client
//!   unicasts from anywhere, §4.3.2), else the receiving interface's address. A link or
//!   subnet selection that names no scope is dropped (RFC 3011 §3: MUST NOT reply).
//! - **Server identifier**: the configured one, else the receiving interface's address; a
//!   relayed request's RFC 5107 server-identifier-override sub-option replaces it in option
//!   54 (and a REQUEST / RELEASE / DECLINE naming either is ours). Replies are sourced
//!   from the configured id or interface address ([`Reply::server_ip`]).
//! - **Client**: option 61 if present, else `htype` + `chaddr` (§4.2). Reservations match by
//!   client-id, then MAC, then circuit-id, then remote-id.
//! - **DISCOVER → OFFER** (§4.3.1): the client's reservation, else its current binding (if
//!   still allocatable), else option 50 if free and allocatable, else [`Table::allocate_within`]
//!   (the scope's allocatable ranges under this engine's configuration).
//!   A reservation goes first, unlike the RFC's order, so a reservation added for a client
//!   with a dynamic lease takes effect at its next DISCOVER. The address is held OFFERED
//!   until `now + offer_hold` (not journaled: offers are not durable); a client's own
//!   unexpired ACTIVE binding is offered without a write. Reusable records: FREE, EXPIRED,
//!   RELEASED, RESET, and ACTIVE / OFFERED / ABANDONED whose `ends` has passed (so an
//!   abandoned address returns after its probation), all subject to
//!   [`FailoverView::may_allocate`]. When nothing is free, the ABANDONED address whose
//!   probation ends first is reclaimed early (#13; ISC dhcpd and Kea do the same). The offered lease time is the scope's (the client's
//!   option 51 is not honoured).
//! - **REQUEST** (§4.3.2): with option 54 it is SELECTING: another server's id releases our
//!   hold silently; ours ACKs option 50 if its record is the client's or free (offers are
//!   not durable, so a restart must not strand a client), else NAK. Without option 54,
//!   `ciaddr` = 0 is INIT-REBOOT (address = option 50), else RENEWING / REBINDING (address
//!   = `ciaddr`); both: address outside the scope's subnet → NAK; bound to another client →
//!   NAK; the client's own record → ACK if the address is still valid for it (allocatable,
//!   or its reservation), else NAK; no record of the address for the client but the client
//!   is known elsewhere in the table → NAK; unknown client → silent.
//! - **RELEASE**: the client's ACTIVE/OFFERED record becomes RELEASED (`ends = now`),
//!   keeping the client so a later DISCOVER gets the same address back. **DECLINE**: only
//!   for the client's own unexpired ACTIVE lease (else dropped, `decline-not-held`), the
//!   record becomes ABANDONED with `ends = now + decline_probation` and no client. Against
//!   clients that starve a pool (#13): such a DECLINE first takes a token of the worker's
//!   [`DeclineLimits`] buckets, relay then MAC (else dropped, `decline-rate-relay`,
//!   `decline-rate-mac`), and is not applied while the scope holds its
//!   [`ScopeConfig::max_abandoned`] ABANDONED records (silent, `decline-over-cap`, logged at
//!   most once a minute per scope): the lease stays as it was.
//!   Both silent, both journaled. Both must name us in option 54 (RFC 2131 §4.4.4, §4.4.6):
//!   without it, or naming another server, they are dropped (`missing-server-id`,
//!   `other-server-id`); for a record that is not the client's, nothing changes.
//! - **INFORM** (§4.3.5): ACK with configuration only: no 51/58/59, `yiaddr` 0.
//! - **BOOTP** (no option 53, RFC 1534): served only from reservations, with an infinite
//!   ACTIVE lease; the BOOTREPLY carries only options 1, 3 and 6 (and none at all when the
//!   request had no magic cookie).
//! - **Options**: 53, 54, 1 always; 51, 58, 59 in OFFER/ACK; 3, 6, 15 when in option 55 (or
//!   when the client sent no option 55); 28 when in option 55; 61 echoed, 82 echoed to
//!   relays, 118 echoed when honoured. NAKs
//!   carry 53, 54, 56 and the echoes only (RFC 2131 table 3). A reply that would exceed
//!   the client's limit (576-byte datagram or its option 57; 300 bytes for BOOTP) sheds 15,
//!   then 6, then 3, then 28.
//! - **Addressing** (DESIGN.md §2): `giaddr` set → `giaddr`:67 at the request's source MAC
//!   (NAKs get the broadcast flag so the relay broadcasts them, §4.3.2); else NAK →
//!   broadcast; else `ciaddr` set → `ciaddr`:68 at the source MAC; else broadcast flag →
//!   broadcast; else `yiaddr`:68 at `chaddr` (Ethernet only; otherwise broadcast).
//! - **Lease times**: the scope's, capped by [`FailoverView::lease_time`]; T1/T2 from
//!   [`ScopeConfig::timers`] for the lease actually granted.
//! - **Failover times** (ISC `ack_lease`): a DHCPACK sets the potential expiry for the
//!   partner, `tstp = now + desired + granted / 2` (and lowers a `tsfp` beyond it); any other
//!   change of state clears `atsfp` and keeps `tstp` at least `now`, so `tstp > atsfp` marks
//!   every change the partner has not acknowledged. OFFERED holds keep both.
//!
//! # Concurrency
//!
//! Records change only through [`Table::update_capped`] / [`Table::allocate`] CAS on the
//! version read just before; a conflict re-reads and re-decides, at most [`MAX_CAS_ATTEMPTS`] times
//! ([`DropReason::Contention`]).
//!
//! # Failover seam
//!
//! [`FailoverView`] (set with [`Engine::with_failover`], default [`Standalone`]) decides
//! whether to serve a client, whether an address may be allocated, and the lease length.
#![forbid(unsafe_code)]

mod config;
mod decision;
mod failover;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use lease_mmap::{
    AllocCursor, BindingState, ClientId, ClientKey, Hostname, Lease, Owner, RelayInfo, Slot, Store,
    Table, TableId, UnixTime, UpdateError,
};

pub use config::{
    ConfigError, DEFAULT_DECLINE_PROBATION, DEFAULT_LEASE_TIME, DEFAULT_MAX_ABANDONED_PERCENT,
    DEFAULT_OFFER_HOLD, EngineConfig, INFINITE_LEASE, MAX_TABLE_LEN, Reservation, ReservationKey,
    ScopeConfig,
};
pub use decision::{
    BROADCAST_MAC, CLIENT_PORT, Commit, Decision, Destination, DropReason, Ingress, Reply,
    SERVER_PORT, SilentReason,
};
pub use failover::{FailoverView, Standalone};

use crate::limit::{self, Buckets, DECLINE_PERIOD, DeclineLimits};
use crate::wire::dhcpv4::{FLAG_BROADCAST, MessageType, OpCode, Options, Repr, code};
use crate::wire::relay::RelayAgentInfo;

/// How often a decision re-reads a record whose CAS lost a race before giving up.
pub const MAX_CAS_ATTEMPTS: u32 = 8;

/// Seconds between two log lines of one scope about DECLINEs over its cap.
const CAP_LOG_EVERY: u32 = 60;

/// Option 56 texts for NAKs.
mod nak {
    pub const WRONG_SUBNET: &[u8] = b"address not on this network";
    pub const NOT_YOURS: &[u8] = b"address not available";
    pub const WRONG_ADDRESS: &[u8] = b"address not valid for this client";
}

/// A scope compiled for the fast path.
#[derive(Debug)]
struct Scope {
    cfg: ScopeConfig,
    table: TableId,
    mask: Ipv4Addr,
    broadcast: Ipv4Addr,
    router: Vec<u8>,
    dns: Vec<u8>,
    domain_name: Vec<u8>,
    by_mac: HashMap<[u8; 6], Ipv4Addr>,
    by_client_id: HashMap<Box<[u8]>, Ipv4Addr>,
    by_circuit_id: HashMap<Box<[u8]>, Ipv4Addr>,
    by_remote_id: HashMap<Box<[u8]>, Ipv4Addr>,
    /// [`ScopeConfig::max_abandoned`].
    max_abandoned: u32,
    /// The pools minus exclusions and reservations, as slot ranges of the table: this
    /// configuration's, not the table's own, so a request never sees half of a live change.
    alloc: Vec<(u32, u32)>,
    /// When a DECLINE over the cap was last logged (Unix seconds; 0: never).
    cap_logged: AtomicU32,
}

impl Scope {
    fn new(cfg: ScopeConfig, table: TableId) -> Self {
        let bytes = |v: &[Ipv4Addr]| v.iter().flat_map(|a| a.octets()).collect::<Vec<u8>>();
        let mut s = Scope {
            table,
            max_abandoned: cfg.max_abandoned(&cfg.table_spec()),
            alloc: Vec::new(),
            cap_logged: AtomicU32::new(0),
            mask: cfg.mask(),
            broadcast: cfg.broadcast(),
            router: bytes(&cfg.router),
            dns: bytes(&cfg.dns),
            domain_name: cfg.domain_name.as_deref().unwrap_or("").as_bytes().to_vec(),
            by_mac: HashMap::new(),
            by_client_id: HashMap::new(),
            by_circuit_id: HashMap::new(),
            by_remote_id: HashMap::new(),
            cfg,
        };
        for r in &s.cfg.reservations {
            match &r.key {
                ReservationKey::Mac(m) => {
                    s.by_mac.insert(*m, r.address);
                }
                ReservationKey::ClientId(k) => {
                    s.by_client_id
                        .insert(k.clone().into_boxed_slice(), r.address);
                }
                ReservationKey::CircuitId(k) => {
                    s.by_circuit_id
                        .insert(k.clone().into_boxed_slice(), r.address);
                }
                ReservationKey::RemoteId(k) => {
                    s.by_remote_id
                        .insert(k.clone().into_boxed_slice(), r.address);
                }
            }
        }
        s
    }

    /// Whether `slot` of the scope's table may be handed out dynamically under this
    /// configuration.
    fn is_allocatable(&self, slot: Slot) -> bool {
        lease_mmap::table::in_ranges(&self.alloc, slot)
    }

    fn reservation(&self, req: &Repr<'_>, relay: &RelayAgentInfo<'_>) -> Option<Ipv4Addr> {
        if let Some(id) = req.options.client_id
            && let Some(&a) = self.by_client_id.get(id)
        {
            return Some(a);
        }
        if req.htype == 1
            && req.hlen == 6
            && let Some(mac) = req.chaddr.first_chunk::<6>()
            && let Some(&a) = self.by_mac.get(mac)
        {
            return Some(a);
        }
        if let Some(c) = relay.circuit_id
            && let Some(&a) = self.by_circuit_id.get(c)
        {
            return Some(a);
        }
        relay
            .remote_id
            .and_then(|r| self.by_remote_id.get(r).copied())
    }
}

/// The decision engine. `Sync`: shared by every worker.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    store: Arc<Store>,
    scopes: Vec<Scope>,
    /// `(first, last, scope index)` of every subnet, sorted by `first`, disjoint.
    index: Vec<(u32, u32, usize)>,
    failover: Arc<dyn FailoverView>,
}

/// One worker's engine state: its allocation cursor (its share of every table's free
/// ranges, with stealing) and its DECLINE buckets ([`EngineConfig::decline_limits`]). Not
/// shared.
#[derive(Debug)]
pub struct EngineWorker {
    cursor: AllocCursor,
    decline: DeclineLimits,
    decline_mac: Buckets,
    decline_relay: Buckets,
}

impl EngineWorker {
    /// Follow `engine`, which replaced the one this state was made for (a live
    /// configuration change): the allocation cursor stays (the tables are the same), the
    /// DECLINE buckets start afresh if their limits changed.
    pub fn retune(&mut self, engine: &Engine) {
        let limits = engine.config.decline_limits;
        if limits != self.decline {
            self.decline = limits;
            self.decline_mac = Buckets::per(limits.mac, DECLINE_PERIOD);
            self.decline_relay = Buckets::per(limits.relay, DECLINE_PERIOD);
        }
    }

    /// Take a token for a DECLINE of `cx`'s client: the relay's first, as the handler's
    /// request limits do (a flood through one relay is stopped there whatever MACs it
    /// carries).
    fn limit_decline(&mut self, cx: &Cx<'_, '_>) -> Result<(), DropReason> {
        if let Some(relay) = limit::relay_key(cx.req, cx.ingress)
            && !self.decline_relay.allow(relay, cx.now)
        {
            return Err(DropReason::DeclineRateRelay);
        }
        if !self.decline_mac.allow(limit::mac_key(cx.req), cx.now) {
            return Err(DropReason::DeclineRateMac);
        }
        Ok(())
    }
}

/// Per-request context, after the checks common to every message type.
struct Cx<'r, 'a> {
    req: &'r Repr<'a>,
    ingress: &'r Ingress,
    now: UnixTime,
    scope: &'a Scope,
    table: &'a Table,
    /// Our address: the reply's IPv4 source.
    server_ip: Ipv4Addr,
    /// Option 54 in replies: `server_ip`, or the relay's RFC 5107 override.
    server_id: Ipv4Addr,
    key: ClientKey<'r>,
    client_id: ClientId,
    reserved: Option<Ipv4Addr>,
    /// Came through a trusted relay ([`Engine::trusts_relay`]): its option 118 was honoured.
    trusted: bool,
    /// What a lease granted now keeps of the trusted relay's option 82 (empty otherwise).
    relay_info: RelayInfo,
}

/// How a record stands relative to the requesting client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Standing {
    /// Bound (ACTIVE / OFFERED / EXPIRED / RELEASED) to this client.
    Mine,
    /// Free for anyone.
    Available,
    /// Bound to someone else, on probation, or not ours to give.
    Taken,
}

/// The outcome of [`Engine::cas`].
#[expect(
    clippy::large_enum_variant,
    reason = "short-lived, on the stack; never boxed"
)]
enum Cas<T> {
    Wrote {
        version: u64,
        lease: Lease,
    },
    Unchanged,
    Refused(T),
    /// The record would have become ABANDONED past the scope's cap; nothing was written.
    OverCap,
}

impl Engine {
    /// Compile `config` against `store`, which must have been opened with
    /// [`EngineConfig::table_specs`] (same order, same spans).
    pub fn new(config: EngineConfig, store: Arc<Store>) -> Result<Self, ConfigError> {
        config.validate()?;
        let mismatch = || ConfigError::StoreMismatch {
            tables: store.tables().len(),
            scopes: config.scopes.len(),
        };
        if store.tables().len() != config.scopes.len() {
            return Err(mismatch());
        }
        let mut scopes = Vec::with_capacity(config.scopes.len());
        let mut index = Vec::with_capacity(config.scopes.len());
        for (i, cfg) in config.scopes.iter().enumerate() {
            let id = TableId(u16::try_from(i).map_err(|_| ConfigError::TooManyScopes)?);
            let spec = cfg.table_spec();
            let table = store.table(id);
            let span = u32::from(spec.last) - u32::from(spec.first) + 1;
            if table.first() != spec.first || table.len() != span {
                return Err(mismatch());
            }
            let net = u32::from(spec.network);
            index.push((net, u32::from(cfg.broadcast()), i));
            let mut scope = Scope::new(cfg.clone(), id);
            scope.alloc = table.slot_ranges(&spec.allocatable).ok_or_else(mismatch)?;
            scopes.push(scope);
        }
        index.sort_unstable();
        Ok(Engine {
            config,
            store,
            scopes,
            index,
            failover: Arc::new(Standalone),
        })
    }

    /// An engine for `config` over the same store and failover view: a live configuration
    /// change, checked as [`Engine::new`] checks (the scopes must still match the store's
    /// tables, in order and span).
    pub fn reconfigured(&self, config: EngineConfig) -> Result<Engine, ConfigError> {
        Ok(Engine::new(config, Arc::clone(&self.store))?.with_failover(Arc::clone(&self.failover)))
    }

    /// Consult `failover` from now on (default: [`Standalone`]).
    pub fn with_failover(mut self, failover: Arc<dyn FailoverView>) -> Self {
        self.failover = failover;
        self
    }

    /// State for worker `index` of `workers` (each worker allocates from its own share of
    /// every table first).
    pub fn worker(&self, index: u16, workers: u16) -> EngineWorker {
        let decline = self.config.decline_limits;
        let DeclineLimits { mac, relay } = decline;
        EngineWorker {
            cursor: AllocCursor::new(index, workers),
            decline,
            decline_mac: Buckets::per(mac, DECLINE_PERIOD),
            decline_relay: Buckets::per(relay, DECLINE_PERIOD),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The configuration of scope `id`.
    pub fn scope_config(&self, id: TableId) -> Option<&ScopeConfig> {
        self.scopes.get(usize::from(id.0)).map(|s| &s.cfg)
    }

    /// The scope (table) whose subnet contains `addr`.
    pub fn scope_of(&self, addr: Ipv4Addr) -> Option<TableId> {
        self.lookup(addr).map(|s| s.table)
    }

    fn lookup(&self, addr: Ipv4Addr) -> Option<&Scope> {
        let a = u32::from(addr);
        let i = self.index.partition_point(|e| e.0 <= a).checked_sub(1)?;
        let &(_, last, s) = self.index.get(i)?;
        (a <= last).then(|| self.scopes.get(s)).flatten()
    }

    /// Decide what to do with `req`, received at `ingress`, at `now`. See the module docs.
    pub fn decide<'a>(
        &'a self,
        w: &mut EngineWorker,
        req: &Repr<'a>,
        ingress: &Ingress,
        now: UnixTime,
    ) -> Decision<'a> {
        match self.try_decide(w, req, ingress, now) {
            Ok(d) => d,
            Err(reason) => Decision::Drop(reason),
        }
    }

    fn try_decide<'a>(
        &'a self,
        w: &mut EngineWorker,
        req: &Repr<'a>,
        ingress: &Ingress,
        now: UnixTime,
    ) -> Result<Decision<'a>, DropReason> {
        if req.op != OpCode::Request {
            return Err(DropReason::NotBootRequest);
        }
        if req.hlen > 16 {
            return Err(DropReason::BadHlen);
        }
        // Option 82's sub-options and option 118 steer scope, server identifier and
        // reservations: only a trusted relay's are read (#13); others' are as if absent.
        let trusted = self.trusts_relay(req, ingress);
        let relay = match req.options.relay_agent_info {
            Some(p) if trusted => {
                RelayAgentInfo::parse(p).map_err(|_| DropReason::BadRelayAgentInfo)?
            }
            _ => RelayAgentInfo::default(),
        };
        let key = match req.options.client_id {
            Some(id) if !id.is_empty() => ClientKey::ClientId(id),
            _ if req.hlen > 0 => ClientKey::HwAddr {
                htype: req.htype,
                chaddr: req
                    .chaddr
                    .get(..usize::from(req.hlen))
                    .ok_or(DropReason::BadHlen)?,
            },
            _ => return Err(DropReason::NoClientIdentity),
        };
        let client_id = match req.options.client_id {
            Some(id) => ClientId::new(id).ok_or(DropReason::ClientIdTooLong)?,
            None => ClientId::EMPTY,
        };
        let scope = self.select_scope(req, &relay, trusted, ingress)?;
        let server_ip = self.config.server_id.unwrap_or(ingress.if_addr);
        if server_ip.is_unspecified() {
            return Err(DropReason::NoServerAddress);
        }
        // RFC 5107: a relay may name the server identifier its clients must use.
        let server_id = relay
            .server_id_override
            .filter(|a| !req.giaddr.is_unspecified() && !a.is_unspecified())
            .unwrap_or(server_ip);
        let cx = Cx {
            req,
            ingress,
            now,
            scope,
            table: self.store.table(scope.table),
            server_ip,
            server_id,
            key,
            client_id,
            reserved: scope.reservation(req, &relay),
            trusted,
            relay_info: match req.options.relay_agent_info {
                Some(p) if trusted => RelayInfo::keep(p),
                _ => RelayInfo::EMPTY,
            },
        };
        let msg = req.options.message_type.filter(|_| req.is_dhcp);
        match msg {
            Some(MessageType::Offer | MessageType::Ack | MessageType::Nak) => {
                return Err(DropReason::ServerMessageType);
            }
            Some(MessageType::Other(_)) => return Err(DropReason::UnknownMessageType),
            _ => {}
        }
        if !self.failover.may_serve(scope.table, &cx.key, msg, req) {
            return Ok(silent(SilentReason::PartnerServes));
        }
        let Some(msg) = msg else {
            return self.bootp(&cx);
        };
        match msg {
            MessageType::Discover => self.discover(w, &cx),
            MessageType::Request => self.request(&cx),
            MessageType::Release => self.release(&cx),
            MessageType::Decline => self.decline(w, &cx),
            MessageType::Inform => Ok(self.inform(&cx)),
            MessageType::Offer | MessageType::Ack | MessageType::Nak => {
                Err(DropReason::ServerMessageType)
            }
            MessageType::Other(_) => Err(DropReason::UnknownMessageType),
        }
    }

    /// Whether `req` came through a trusted relay agent: `giaddr` is set and the packet's
    /// IPv4 source lies in [`EngineConfig::trusted_relays`]. The source, not `giaddr`: any
    /// client can write `giaddr`, while the source of a relay's unicast is what the network
    /// in front of the server (uRPF, ACLs) can vouch for.
    pub fn trusts_relay(&self, req: &Repr<'_>, ingress: &Ingress) -> bool {
        !req.giaddr.is_unspecified()
            && self.config.trusted_relays.iter().any(|&(net, len)| {
                let m = config::mask_bits(len);
                u32::from(ingress.src_ip) & m == u32::from(net) & m
            })
    }

    fn select_scope(
        &self,
        req: &Repr<'_>,
        relay: &RelayAgentInfo<'_>,
        trusted: bool,
        ingress: &Ingress,
    ) -> Result<&Scope, DropReason> {
        let relayed = !req.giaddr.is_unspecified();
        if relayed && let Some(link) = relay.link_selection {
            return self.lookup(link).ok_or(DropReason::NoSubnet);
        }
        if trusted && let Some(sel) = req.options.subnet_selection {
            return self.lookup(sel).ok_or(DropReason::NoSubnet);
        }
        if relayed {
            return self.lookup(req.giaddr).ok_or(DropReason::NoSubnet);
        }
        if !req.ciaddr.is_unspecified()
            && let Some(s) = self.lookup(req.ciaddr)
        {
            return Ok(s);
        }
        self.lookup(ingress.if_addr).ok_or(DropReason::NoSubnet)
    }

    // ---- message types ------------------------------------------------------------------

    fn discover<'a>(
        &'a self,
        w: &mut EngineWorker,
        cx: &Cx<'_, 'a>,
    ) -> Result<Decision<'a>, DropReason> {
        // 1. The client's reservation.
        if let Some(addr) = cx.reserved {
            let slot = cx.table.slot(addr).ok_or(DropReason::Internal)?;
            return match self.hold(cx, slot)? {
                Some(lease) => Ok(self.offer(cx, addr, &lease)),
                None => Err(DropReason::ReservedAddressUnavailable),
            };
        }
        // 2. Its current (or previous) binding, if the address is still in a pool.
        if let Some((slot, _, _)) = cx.table.find_client(&cx.key)
            && cx.scope.is_allocatable(slot)
            && let Some(lease) = self.hold(cx, slot)?
        {
            return Ok(self.offer(cx, cx.table.addr(slot), &lease));
        }
        // 3. The address it asks for.
        if let Some(addr) = cx.req.options.requested_ip
            && cx.scope.cfg.contains(addr)
            && let Some(slot) = cx.table.slot(addr)
            && cx.scope.is_allocatable(slot)
            && let Some(lease) = self.hold(cx, slot)?
        {
            return Ok(self.offer(cx, addr, &lease));
        }
        // 4. Anything free.
        let new = self.bind(
            cx,
            &Lease::default(),
            BindingState::Offered,
            self.hold_ends(cx),
        );
        let reusable = |now: UnixTime, l: &Lease| self.reusable(cx.scope.table, now, l);
        if let Some((slot, _)) =
            cx.table
                .allocate_within(&cx.scope.alloc, &mut w.cursor, cx.now, &new, &reusable)
        {
            return Ok(self.offer(cx, cx.table.addr(slot), &new));
        }
        // 5. Nothing free: the address abandoned longest ago, before its probation ends.
        match self.reclaim_abandoned(cx, &new)? {
            Some(slot) => Ok(self.offer(cx, cx.table.addr(slot), &new)),
            None => Err(DropReason::PoolExhausted),
        }
    }

    /// When the pool has run dry: hold the ABANDONED address whose probation ends first (it
    /// was abandoned longest ago) for the client, as ISC dhcpd and Kea reclaim abandoned
    /// addresses before refusing a client (#13). Failover must let us give it, as for any
    /// other address. A scan of the table, paid only by a DISCOVER that found nothing free
    /// while the table holds ABANDONED records.
    fn reclaim_abandoned(&self, cx: &Cx<'_, '_>, new: &Lease) -> Result<Option<Slot>, DropReason> {
        if cx.table.abandoned() == 0 {
            return Ok(None);
        }
        let table = cx.scope.table;
        let reclaimable = |slot: Slot, l: &Lease| {
            l.state == BindingState::Abandoned
                && cx.scope.is_allocatable(slot)
                && self.failover.may_allocate(table, l, cx.now)
        };
        let mut oldest: Option<(UnixTime, Slot)> = None;
        cx.table.for_each(|slot, _, l| {
            if reclaimable(slot, l) && oldest.is_none_or(|(ends, _)| l.ends < ends) {
                oldest = Some((l.ends, slot));
            }
        });
        let Some((_, slot)) = oldest else {
            return Ok(None);
        };
        let r = self.cas(cx, slot, |cur| {
            if reclaimable(slot, cur) {
                Ok(Some(*new))
            } else {
                Err(())
            }
        })?;
        Ok(match r {
            Cas::Wrote { .. } => {
                tracing::info!(
                    address = %cx.table.addr(slot),
                    "pool exhausted: reclaiming the oldest abandoned address"
                );
                Some(slot)
            }
            // Another worker took it first: this DISCOVER finds the pool exhausted.
            Cas::Unchanged | Cas::Refused(()) | Cas::OverCap => None,
        })
    }

    /// Hold `slot` for the client as OFFERED; `None` when it is not available to it. The
    /// client's own unexpired ACTIVE binding is left as it is.
    fn hold(&self, cx: &Cx<'_, '_>, slot: Slot) -> Result<Option<Lease>, DropReason> {
        let mut seen = Lease::default();
        let r = self.cas(cx, slot, |cur| {
            seen = *cur;
            match self.standing(cx, cur) {
                Standing::Mine if cur.state == BindingState::Active && cur.ends > cx.now => {
                    Ok(None)
                }
                Standing::Mine | Standing::Available => Ok(Some(self.bind(
                    cx,
                    cur,
                    BindingState::Offered,
                    self.hold_ends(cx),
                ))),
                Standing::Taken => Err(()),
            }
        })?;
        Ok(match r {
            Cas::Wrote { lease, .. } => Some(lease),
            Cas::Unchanged => Some(seen),
            Cas::Refused(()) | Cas::OverCap => None,
        })
    }

    fn request<'a>(&'a self, cx: &Cx<'_, 'a>) -> Result<Decision<'a>, DropReason> {
        let req = cx.req;
        if let Some(sid) = req.options.server_id {
            // SELECTING (§4.3.2).
            if sid != cx.server_id && sid != cx.server_ip {
                self.release_hold(cx)?;
                return Ok(silent(SilentReason::OtherServerSelected));
            }
            let addr = req
                .options
                .requested_ip
                .ok_or(DropReason::MissingRequestedIp)?;
            if !cx.scope.cfg.contains(addr) {
                return Ok(self.nak(cx, nak::WRONG_SUBNET));
            }
            let Some(slot) = cx.table.slot(addr) else {
                return Ok(self.nak(cx, nak::NOT_YOURS));
            };
            if !self.valid_for(cx, slot, addr) {
                return Ok(self.nak(cx, nak::WRONG_ADDRESS));
            }
            let r = self.cas(cx, slot, |cur| match self.standing(cx, cur) {
                Standing::Mine | Standing::Available => Ok(Some(self.activate(cx, cur))),
                Standing::Taken => Err(()),
            })?;
            return Ok(match r {
                Cas::Wrote { version, lease } => self.ack(cx, slot, addr, version, lease),
                Cas::Unchanged | Cas::Refused(()) | Cas::OverCap => self.nak(cx, nak::NOT_YOURS),
            });
        }
        // INIT-REBOOT (option 50) or RENEWING / REBINDING (ciaddr).
        let addr = if req.ciaddr.is_unspecified() {
            req.options
                .requested_ip
                .ok_or(DropReason::MissingRequestedIp)?
        } else {
            req.ciaddr
        };
        if !cx.scope.cfg.contains(addr) {
            return Ok(self.nak(cx, nak::WRONG_SUBNET));
        }
        if let Some(slot) = cx.table.slot(addr) {
            let valid = self.valid_for(cx, slot, addr);
            // Refused(true): NAK; Refused(false): no record of this client at `addr`.
            let r = self.cas(cx, slot, |cur| match self.standing(cx, cur) {
                Standing::Mine if valid => Ok(Some(self.activate(cx, cur))),
                Standing::Mine | Standing::Taken => Err(true),
                Standing::Available => Err(false),
            })?;
            match r {
                Cas::Wrote { version, lease } => {
                    return Ok(self.ack(cx, slot, addr, version, lease));
                }
                Cas::Refused(true) => return Ok(self.nak(cx, nak::NOT_YOURS)),
                Cas::Unchanged | Cas::Refused(false) | Cas::OverCap => {}
            }
        }
        let known = cx
            .table
            .find_client(&cx.key)
            .is_some_and(|(_, _, l)| l.is_for(&cx.key));
        Ok(if known || cx.reserved.is_some_and(|r| r != addr) {
            self.nak(cx, nak::WRONG_ADDRESS)
        } else {
            silent(SilentReason::UnknownClient)
        })
    }

    /// SELECTING for another server: drop our OFFERED hold for this client, if any.
    fn release_hold(&self, cx: &Cx<'_, '_>) -> Result<(), DropReason> {
        let Some((slot, _, _)) = cx.table.find_client(&cx.key) else {
            return Ok(());
        };
        self.cas(cx, slot, |cur| {
            if cur.state == BindingState::Offered && cur.is_for(&cx.key) {
                Ok(Some(Lease {
                    state: self.failover.free_state(cx.scope.table),
                    ends: cx.now,
                    stos: cx.now,
                    ..forget_client(cur)
                }))
            } else {
                Err(())
            }
        })?;
        Ok(())
    }

    fn release<'a>(&'a self, cx: &Cx<'_, 'a>) -> Result<Decision<'a>, DropReason> {
        let addr = cx.req.ciaddr;
        if addr.is_unspecified() {
            return Err(DropReason::MissingCiaddr);
        }
        self.unbind(
            cx,
            None,
            addr,
            BindingState::Released,
            cx.now,
            SilentReason::Released,
        )
    }

    fn decline<'a>(
        &'a self,
        w: &mut EngineWorker,
        cx: &Cx<'_, 'a>,
    ) -> Result<Decision<'a>, DropReason> {
        let addr = cx
            .req
            .options
            .requested_ip
            .ok_or(DropReason::MissingRequestedIp)?;
        let ends = cx.now.saturating_add(cx.scope.cfg.decline_probation);
        self.unbind(
            cx,
            Some(w),
            addr,
            BindingState::Abandoned,
            ends,
            SilentReason::Declined,
        )
    }

    /// RELEASE / DECLINE: move the client's ACTIVE or OFFERED record at `addr` to `state`.
    /// A DECLINE passes the worker, whose limits it must be within.
    fn unbind<'a>(
        &'a self,
        cx: &Cx<'_, 'a>,
        limits: Option<&mut EngineWorker>,
        addr: Ipv4Addr,
        state: BindingState,
        ends: UnixTime,
        done: SilentReason,
    ) -> Result<Decision<'a>, DropReason> {
        // RFC 2131 §4.4.4 / §4.4.6: both carry option 54, and only the server named there
        // acts. Without the check anyone who knows a client's chaddr could release its lease.
        match cx.req.options.server_id {
            None => return Err(DropReason::MissingServerId),
            Some(s) if s != cx.server_id && s != cx.server_ip => {
                return Err(DropReason::OtherServerId);
            }
            Some(_) => {}
        }
        let slot = cx.table.slot(addr).filter(|_| cx.scope.cfg.contains(addr));
        let decline = state == BindingState::Abandoned;
        let refused = if decline {
            Err(DropReason::DeclineNotHeld)
        } else {
            Ok(silent(SilentReason::NotBound))
        };
        let Some(slot) = slot else {
            return refused;
        };
        // A DECLINE abandons an address for the probation period, so only the client that
        // holds it may: an ACKed, unexpired ACTIVE lease (an OFFER is not enough, else
        // DISCOVER + DECLINE from random MACs empties a pool, #13). A RELEASE also drops
        // the client's OFFERED hold.
        let holds = |cur: &Lease| {
            let bound = if decline {
                cur.state == BindingState::Active && cur.ends > cx.now
            } else {
                matches!(cur.state, BindingState::Active | BindingState::Offered)
            };
            bound && cur.is_for(&cx.key)
        };
        if let Some(w) = limits {
            // Only a DECLINE that would abandon takes a token, so DECLINEs of leases their
            // senders do not hold spend no one's budget (a relay's least of all).
            if !holds(&cx.table.read(slot).1) {
                return refused;
            }
            w.limit_decline(cx)?;
        }
        let r = self.cas(cx, slot, |cur| {
            if !holds(cur) {
                return Err(());
            }
            let mut new = self.bind(cx, cur, state, ends);
            if state == BindingState::Abandoned {
                new = forget_client(&new);
            }
            Ok(Some(new))
        })?;
        Ok(match r {
            Cas::Wrote { version, lease } => Decision::Silent {
                reason: done,
                commit: Some(Commit {
                    table: cx.scope.table,
                    slot,
                    version,
                    lease,
                }),
            },
            // The lease stays the client's ACTIVE one rather than going back to the pool:
            // DECLINE is not authenticated (anyone who knows a client's chaddr can send it),
            // and an address freed on a forged DECLINE would be given to a second client
            // while the first still uses it. Left alone, it ends and is reused as any lease
            // does (EXPIRED, acknowledged by a failover partner first), and nothing changed
            // that needs journaling or replicating.
            Cas::OverCap => {
                self.log_over_cap(cx);
                silent(SilentReason::DeclineOverCap)
            }
            Cas::Unchanged | Cas::Refused(()) => return refused,
        })
    }

    /// Say (at most once every [`CAP_LOG_EVERY`] per scope) that a DECLINE was not applied.
    fn log_over_cap(&self, cx: &Cx<'_, '_>) {
        let last = cx.scope.cap_logged.load(Ordering::Relaxed);
        if cx.now.0.saturating_sub(last) >= CAP_LOG_EVERY
            && cx
                .scope
                .cap_logged
                .compare_exchange(last, cx.now.0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                subnet = %cx.scope.cfg.network,
                abandoned = cx.table.abandoned(),
                max = cx.scope.max_abandoned,
                "DECLINE not applied: the subnet holds its max_abandoned_percent of abandoned \
                 addresses (counted as decline-over-cap)"
            );
        }
    }

    fn inform<'a>(&'a self, cx: &Cx<'_, 'a>) -> Decision<'a> {
        let mut repr = self.reply_repr(cx, MessageType::Ack, Ipv4Addr::UNSPECIFIED);
        repr.ciaddr = cx.req.ciaddr;
        self.reply(cx, repr, false, None)
    }

    fn bootp<'a>(&'a self, cx: &Cx<'_, 'a>) -> Result<Decision<'a>, DropReason> {
        let Some(addr) = cx.reserved else {
            return Ok(silent(SilentReason::BootpWithoutReservation));
        };
        let slot = cx.table.slot(addr).ok_or(DropReason::Internal)?;
        let r = self.cas(cx, slot, |cur| match self.standing(cx, cur) {
            Standing::Mine
                if cur.state == BindingState::Active && cur.ends == UnixTime(INFINITE_LEASE) =>
            {
                Ok(None)
            }
            Standing::Mine | Standing::Available => Ok(Some(self.bind(
                cx,
                cur,
                BindingState::Active,
                UnixTime(INFINITE_LEASE),
            ))),
            Standing::Taken => Err(()),
        })?;
        let commit = match r {
            Cas::Wrote { version, lease } => Some(Commit {
                table: cx.scope.table,
                slot,
                version,
                lease,
            }),
            Cas::Unchanged => None,
            Cas::Refused(()) | Cas::OverCap => return Err(DropReason::ReservedAddressUnavailable),
        };
        let req = cx.req;
        let prl = req.options.parameter_request_list;
        let options = if req.is_dhcp {
            Options {
                subnet_mask: Some(cx.scope.mask),
                router: nonempty(&cx.scope.router).filter(|_| wants(prl, code::ROUTER)),
                dns: nonempty(&cx.scope.dns).filter(|_| wants(prl, code::DNS)),
                ..Options::default()
            }
        } else {
            Options::default()
        };
        let repr = Repr {
            yiaddr: addr,
            ciaddr: req.ciaddr,
            options,
            ..base_reply(req)
        };
        Ok(self.reply(cx, repr, false, commit))
    }

    // ---- records ------------------------------------------------------------------------

    /// Read-decide-CAS on `slot` of `cx`'s table, re-deciding after a lost race. `f` returns
    /// the record to write, `None` to leave it, or `Err` to refuse. A record never becomes
    /// ABANDONED past the scope's cap ([`Table::update_capped`]).
    fn cas<T>(
        &self,
        cx: &Cx<'_, '_>,
        slot: Slot,
        mut f: impl FnMut(&Lease) -> Result<Option<Lease>, T>,
    ) -> Result<Cas<T>, DropReason> {
        let table = cx.table;
        for _ in 0..MAX_CAS_ATTEMPTS {
            let (version, cur) = table.read(slot);
            let new = match f(&cur) {
                Err(t) => return Ok(Cas::Refused(t)),
                Ok(None) => return Ok(Cas::Unchanged),
                Ok(Some(new)) => new,
            };
            match table.update_capped(slot, version, &new, cx.scope.max_abandoned) {
                Ok(version) => {
                    return Ok(Cas::Wrote {
                        version,
                        lease: new,
                    });
                }
                Err(UpdateError::Conflict { .. }) => {}
                Err(UpdateError::IndexFull | UpdateError::ClientIdAreaFull) => {
                    return Err(DropReason::ClientIndexFull);
                }
                Err(UpdateError::AbandonedCap(_)) => return Ok(Cas::OverCap),
                Err(UpdateError::NoSuchSlot(_)) => return Err(DropReason::Internal),
                Err(UpdateError::WriteBack(_)) => return Err(DropReason::Storage),
            }
        }
        Err(DropReason::Contention)
    }

    fn standing(&self, cx: &Cx<'_, '_>, cur: &Lease) -> Standing {
        let bound = matches!(
            cur.state,
            BindingState::Active
                | BindingState::Offered
                | BindingState::Expired
                | BindingState::Released
        );
        if bound && cur.is_for(&cx.key) {
            // The client's own binding, unless it ran out (or was released) and failover
            // says the address is not ours to give again: the partner may have renewed or
            // reallocated it.
            let live = matches!(cur.state, BindingState::Active if cur.ends > cx.now)
                || cur.state == BindingState::Offered;
            if live || self.failover.may_allocate(cx.scope.table, cur, cx.now) {
                Standing::Mine
            } else {
                Standing::Taken
            }
        } else if self.reusable(cx.scope.table, cx.now, cur) {
            Standing::Available
        } else {
            Standing::Taken
        }
    }

    /// Whether a record not bound to the asking client may be given to it.
    fn reusable(&self, table: TableId, now: UnixTime, l: &Lease) -> bool {
        let free = match l.state {
            BindingState::Free
            | BindingState::Expired
            | BindingState::Released
            | BindingState::Reset => true,
            BindingState::Active | BindingState::Offered | BindingState::Abandoned => l.ends <= now,
            BindingState::Backup => true,
        };
        free && self.failover.may_allocate(table, l, now)
    }

    /// Whether `addr` may be bound to this client at all: its reservation, or (without one)
    /// a dynamic address.
    fn valid_for(&self, cx: &Cx<'_, '_>, slot: Slot, addr: Ipv4Addr) -> bool {
        match cx.reserved {
            Some(r) => r == addr,
            None => cx.scope.is_allocatable(slot),
        }
    }

    fn hold_ends(&self, cx: &Cx<'_, '_>) -> UnixTime {
        cx.now.saturating_add(self.config.offer_hold)
    }

    /// The lease length to grant on top of record `cur`.
    fn grant(&self, cx: &Cx<'_, '_>, cur: &Lease) -> u32 {
        let desired = cx.scope.cfg.lease_time;
        self.failover
            .lease_time(cx.scope.table, cur, desired, cx.now)
            .min(desired)
    }

    fn activate(&self, cx: &Cx<'_, '_>, cur: &Lease) -> Lease {
        let secs = self.grant(cx, cur);
        let ends = if secs == INFINITE_LEASE {
            UnixTime(INFINITE_LEASE)
        } else {
            cx.now.saturating_add(secs)
        };
        let mut new = self.bind(cx, cur, BindingState::Active, ends);
        // The potential expiry to tell a failover partner (ISC `ack_lease`, `dhcp.c:2918-2942`):
        // `now + desired + granted / 2`, so the next renewal can get the full time once the
        // partner acknowledges; a `tsfp` beyond it is lowered to it.
        let desired = cx.scope.cfg.lease_time;
        new.tstp = if desired == INFINITE_LEASE {
            UnixTime(INFINITE_LEASE)
        } else {
            cx.now.saturating_add(desired).saturating_add(secs / 2)
        };
        if new.tstp < new.tsfp {
            new.tsfp = new.tstp;
        }
        new
    }

    /// `cur` rewritten for this client in `state` until `ends`; failover times kept, except
    /// that a change of state is not acknowledged by the partner yet (`atsfp` cleared, as ISC
    /// clears it on every state change, `mdb.c:1339-1345`, and `tstp` at least now), so it
    /// is sent again.
    fn bind(&self, cx: &Cx<'_, '_>, cur: &Lease, state: BindingState, ends: UnixTime) -> Lease {
        let req = cx.req;
        let n = usize::from(req.hlen.min(16));
        let mut chaddr = [0; 16];
        if let (Some(dst), Some(src)) = (chaddr.get_mut(..n), req.chaddr.get(..n)) {
            dst.copy_from_slice(src);
        }
        let same_client = cur.is_for(&cx.key);
        // For leasequery (RFC 4388 §6.4.2): the trusted relay's option 82; a renewal unicast
        // straight from the client (no giaddr) keeps what its lease was granted through.
        let relay = if !cx.relay_info.is_empty() {
            cx.relay_info
        } else if same_client && cx.req.giaddr.is_unspecified() {
            cur.relay
        } else {
            RelayInfo::EMPTY
        };
        // For lookups by name: the host name the client sends, else the one it sent before.
        let hostname = match req.options.hostname {
            Some(name) => Hostname::keep(name, &relay),
            None if same_client => Hostname::keep(cur.hostname.as_bytes(), &relay),
            None => Hostname::EMPTY,
        };
        Lease {
            state,
            ends,
            cltt: cx.now,
            stos: if cur.state == state { cur.stos } else { cx.now },
            htype: req.htype,
            hlen: req.hlen,
            chaddr,
            client_id: cx.client_id,
            owner: Owner::Us,
            relay,
            hostname,
            atsfp: if cur.state == state || state == BindingState::Offered {
                cur.atsfp
            } else {
                UnixTime(0)
            },
            // Never 0 after a change, so `tstp > atsfp` marks it unacknowledged. An OFFERED
            // hold never travels and keeps the old times (ISC: OFFERs keep `tstp`).
            tstp: if cur.state == state || state == BindingState::Offered {
                cur.tstp
            } else {
                cur.tstp.max(cx.now)
            },
            ..*cur
        }
    }

    // ---- replies ------------------------------------------------------------------------

    fn offer<'a>(&'a self, cx: &Cx<'_, 'a>, addr: Ipv4Addr, held: &Lease) -> Decision<'a> {
        let secs = self.grant(cx, held);
        let mut repr = self.reply_repr(cx, MessageType::Offer, addr);
        self.lease_options(cx, &mut repr.options, secs);
        self.reply(cx, repr, false, None)
    }

    fn ack<'a>(
        &'a self,
        cx: &Cx<'_, 'a>,
        slot: Slot,
        addr: Ipv4Addr,
        version: u64,
        lease: Lease,
    ) -> Decision<'a> {
        let secs = if lease.ends == UnixTime(INFINITE_LEASE) {
            INFINITE_LEASE
        } else {
            cx.now.until(lease.ends)
        };
        let mut repr = self.reply_repr(cx, MessageType::Ack, addr);
        repr.ciaddr = cx.req.ciaddr;
        self.lease_options(cx, &mut repr.options, secs);
        let commit = Commit {
            table: cx.scope.table,
            slot,
            version,
            lease,
        };
        self.reply(cx, repr, false, Some(commit))
    }

    fn nak<'a>(&'a self, cx: &Cx<'_, 'a>, message: &'static [u8]) -> Decision<'a> {
        let req = cx.req;
        let mut repr = base_reply(req);
        if !req.giaddr.is_unspecified() {
            repr.flags |= FLAG_BROADCAST;
        }
        repr.options = Options {
            message_type: Some(MessageType::Nak),
            server_id: Some(cx.server_id),
            message: Some(message),
            client_id: req.options.client_id,
            relay_agent_info: relay_echo(req),
            subnet_selection: req.options.subnet_selection.filter(|_| cx.trusted),
            ..Options::default()
        };
        self.reply(cx, repr, true, None)
    }

    fn lease_options(&self, cx: &Cx<'_, '_>, o: &mut Options<'_>, secs: u32) {
        let (t1, t2) = cx.scope.cfg.timers(secs);
        o.lease_time = Some(secs);
        o.renewal_time = Some(t1);
        o.rebinding_time = Some(t2);
    }

    /// An OFFER / ACK skeleton with the configuration options (no lease times).
    fn reply_repr<'a>(&'a self, cx: &Cx<'_, 'a>, mt: MessageType, yiaddr: Ipv4Addr) -> Repr<'a> {
        let req = cx.req;
        let prl = req.options.parameter_request_list;
        let s = cx.scope;
        let options = Options {
            message_type: Some(mt),
            server_id: Some(cx.server_id),
            subnet_mask: Some(s.mask),
            router: nonempty(&s.router).filter(|_| wants(prl, code::ROUTER)),
            dns: nonempty(&s.dns).filter(|_| wants(prl, code::DNS)),
            domain_name: nonempty(&s.domain_name).filter(|_| wants(prl, code::DOMAIN_NAME)),
            broadcast_addr: prl
                .is_some_and(|l| l.contains(&code::BROADCAST_ADDR))
                .then_some(s.broadcast),
            client_id: req.options.client_id,
            relay_agent_info: relay_echo(req),
            subnet_selection: req.options.subnet_selection.filter(|_| cx.trusted),
            ..Options::default()
        };
        Repr {
            yiaddr,
            options,
            ..base_reply(req)
        }
    }

    fn reply<'a>(
        &'a self,
        cx: &Cx<'_, 'a>,
        repr: Repr<'a>,
        is_nak: bool,
        commit: Option<Commit>,
    ) -> Decision<'a> {
        let mut repr = repr;
        fit(cx.req, &mut repr);
        Decision::Reply(Reply {
            dest: destination(cx.req, cx.ingress, repr.yiaddr, is_nak),
            repr,
            server_ip: cx.server_ip,
            commit,
        })
    }
}

/// The largest IPv4 datagram every DHCP client accepts (RFC 2131 §2), and BOOTP's fixed
/// message size (RFC 951).
const MIN_DATAGRAM: usize = 576;
const BOOTP_MESSAGE: usize = 300;
/// IPv4 (no options) and UDP headers.
const IP_UDP_HEADERS: usize = 28;

/// Shed configuration options (domain name, DNS, routers, broadcast address, in that order)
/// until the reply fits what the client accepts: 576 bytes or its option 57 (RFC 2132
/// §9.10), as an IPv4 datagram; 300 bytes for BOOTP. Option 82 does not count when relayed
/// (the relay strips it, RFC 3046 §2.2).
fn fit(req: &Repr<'_>, repr: &mut Repr<'_>) {
    let limit = if repr.options.message_type.is_none() {
        BOOTP_MESSAGE
    } else {
        let max = req.options.max_message_size.map_or(0, usize::from);
        max.max(MIN_DATAGRAM) - IP_UDP_HEADERS
    };
    let stripped = match repr.options.relay_agent_info {
        Some(ri) if !req.giaddr.is_unspecified() => ri.len() + 2 * ri.len().div_ceil(255),
        _ => 0,
    };
    for shed in 0..4 {
        if repr.buffer_len().saturating_sub(stripped) <= limit {
            return;
        }
        let o = &mut repr.options;
        match shed {
            0 => o.domain_name = None,
            1 => o.dns = None,
            2 => o.router = None,
            _ => o.broadcast_addr = None,
        }
    }
}

/// Where a reply to `req` goes (DESIGN.md §2 "Replies", RFC 2131 §4.1).
fn destination(req: &Repr<'_>, ingress: &Ingress, yiaddr: Ipv4Addr, is_nak: bool) -> Destination {
    if !req.giaddr.is_unspecified() {
        return Destination {
            mac: ingress.src_mac,
            ip: req.giaddr,
            port: SERVER_PORT,
        };
    }
    if is_nak {
        return Destination::BROADCAST;
    }
    if !req.ciaddr.is_unspecified() {
        return Destination {
            mac: ingress.src_mac,
            ip: req.ciaddr,
            port: CLIENT_PORT,
        };
    }
    if req.flags & FLAG_BROADCAST != 0 || yiaddr.is_unspecified() {
        return Destination::BROADCAST;
    }
    match req.chaddr.first_chunk::<6>() {
        Some(mac) if req.htype == 1 && req.hlen == 6 => Destination {
            mac: *mac,
            ip: yiaddr,
            port: CLIENT_PORT,
        },
        _ => Destination::BROADCAST,
    }
}

/// The BOOTREPLY fields every reply copies from its request (RFC 2131 table 3).
fn base_reply<'a>(req: &Repr<'a>) -> Repr<'a> {
    Repr {
        op: OpCode::Reply,
        htype: req.htype,
        hlen: req.hlen,
        hops: 0,
        xid: req.xid,
        secs: 0,
        flags: req.flags,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        yiaddr: Ipv4Addr::UNSPECIFIED,
        siaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: req.giaddr,
        chaddr: req.chaddr,
        sname: &[],
        file: &[],
        is_dhcp: req.is_dhcp,
        options: Options::default(),
    }
}

/// Option 82 to echo: to a relay agent, unchanged (RFC 3046 §2.2), trusted or not, since it
/// needs its circuit back to deliver the reply; never to a client (`giaddr` 0), which has no
/// business seeing or steering it.
fn relay_echo<'a>(req: &Repr<'a>) -> Option<&'a [u8]> {
    req.options
        .relay_agent_info
        .filter(|_| !req.giaddr.is_unspecified())
}

/// Whether option `code` goes out: listed in option 55, or no option 55 at all.
fn wants(prl: Option<&[u8]>, code: u8) -> bool {
    prl.is_none_or(|l| l.contains(&code))
}

fn nonempty(v: &[u8]) -> Option<&[u8]> {
    (!v.is_empty()).then_some(v)
}

/// `l` with no client.
fn forget_client(l: &Lease) -> Lease {
    Lease {
        htype: 0,
        hlen: 0,
        chaddr: [0; 16],
        client_id: ClientId::EMPTY,
        relay: RelayInfo::EMPTY,
        hostname: Hostname::EMPTY,
        ..*l
    }
}

fn silent(reason: SilentReason) -> Decision<'static> {
    Decision::Silent {
        reason,
        commit: None,
    }
}
