//! The serving gate: the failover state machine's say over DHCP, as the engine asks it
//! ([`dataplane::engine::FailoverView`]) on the fast path.
//!
//! The driver thread owns each relationship's [`Fsm`]; after every input it publishes what
//! the workers need into a [`RelationshipView`] made of atomics (our state, the service
//! decision, MCLT, HBA, since when the partner is down). Workers only load them: no lock, no
//! allocation. A view never published (before the driver's first turn) answers nobody.
//!
//! The decisions follow ISC (`reference/failover-protocol.md` §1.6, §2, §3.2, §3.4):
//! * who is answered: NORMAL balances DISCOVERs (and BOOTP requests) by the RFC 3074 hash and
//!   the HBA, with the `load_balance_max_seconds` override; other messages are answered
//!   (address ownership decides). COMMUNICATIONS-INTERRUPTED and PARTNER-DOWN answer
//!   everyone; every other state (and a partner in PARTNER-DOWN or resolving conflicts)
//!   answers nobody. In hot standby the primary is the active server (ISC `split 256`).
//! * which address: our free state, or the partner's after the MCLT in PARTNER-DOWN
//!   ([`mclt::may_reallocate`]); a binding that ran out only once its home server moved it
//!   to EXPIRED and the partner acknowledged that, so that no server hands out an address
//!   its partner may still be renewing ([`RelationshipView::may_allocate`]).
//! * how long: [`mclt::lease_time_for`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use dataplane::engine::FailoverView;
use dataplane::wire::dhcpv4::{MessageType, Repr};
use lease_mmap::{BindingState, ClientKey, Lease, TableId, UnixTime};

use super::fsm::{Fsm, Service, StateKind};
use super::hash::{self, Hba, LoadBalance};
use super::{Role, mclt};
use crate::config::{self, FailoverMode};

const SERVICE_NONE: u8 = 0;
const SERVICE_COOPERATING: u8 = 1;
const SERVICE_NOT_COOPERATING: u8 = 2;
const SERVICE_PARTNER_DOWN: u8 = 3;

/// One relationship's published state. Written by the driver only.
#[derive(Debug)]
pub struct RelationshipView {
    role: Role,
    mode: FailoverMode,
    max_seconds: u16,
    /// `SERVICE_*`.
    service: AtomicU8,
    /// [`StateKind`] as its wire number; 0 before the first publication.
    state: AtomicU8,
    mclt: AtomicU32,
    hba: [AtomicU64; 4],
    partner_down_since: AtomicU32,
}

impl RelationshipView {
    /// A view that answers nobody until [`RelationshipView::publish`].
    pub fn new(cfg: &config::FailoverConfig) -> Self {
        RelationshipView {
            role: match cfg.role {
                config::Role::Primary => Role::Primary,
                config::Role::Secondary => Role::Secondary,
            },
            mode: cfg.mode,
            max_seconds: cfg.load_balance_max_seconds,
            service: AtomicU8::new(SERVICE_NONE),
            state: AtomicU8::new(0),
            mclt: AtomicU32::new(cfg.mclt),
            hba: Default::default(),
            partner_down_since: AtomicU32::new(0),
        }
    }

    /// Copies what the workers need from `fsm`. The service decision is stored last, with
    /// release ordering, after the values it depends on.
    pub fn publish(&self, fsm: &Fsm) {
        self.publish_parts(
            fsm.service(),
            fsm.kind(),
            fsm.mclt(),
            fsm.hba(),
            fsm.persisted().partner_down_since,
        );
    }

    /// [`RelationshipView::publish`] from the values themselves.
    pub fn publish_parts(
        &self,
        service: Service,
        state: StateKind,
        mclt: u32,
        hba: Hba,
        partner_down_since: UnixTime,
    ) {
        for (i, w) in self.hba.iter().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&hba.0[i * 8..i * 8 + 8]);
            w.store(u64::from_le_bytes(b), Ordering::Relaxed);
        }
        self.mclt.store(mclt, Ordering::Relaxed);
        self.partner_down_since
            .store(partner_down_since.0, Ordering::Relaxed);
        self.state.store(state as u8, Ordering::Relaxed);
        let service = match service {
            Service::Cooperating => SERVICE_COOPERATING,
            Service::NotCooperating => SERVICE_NOT_COOPERATING,
            Service::PartnerDown => SERVICE_PARTNER_DOWN,
            Service::NotResponding | Service::Startup => SERVICE_NONE,
        };
        self.service.store(service, Ordering::Release);
    }

    fn hba(&self) -> Hba {
        let mut h = [0u8; 32];
        for (i, w) in self.hba.iter().enumerate() {
            h[i * 8..i * 8 + 8].copy_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
        }
        Hba(h)
    }

    fn state(&self) -> Option<StateKind> {
        StateKind::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// The XDP load-balancing filter this view asks for: on only while the relationship
    /// cooperates in NORMAL in load-balance mode with `load_balance_max_seconds` > 0; off in
    /// every other state, and in hot standby (the standby's silence stays the engine's).
    /// The filter drops exactly the DHCPDISCOVERs [`RelationshipView::may_serve`] would not
    /// answer: the partner's buckets, unless `secs` exceeds the max seconds.
    pub fn xdp_filter(&self) -> dataplane::xdp::LbConfig {
        let on = self.mode == FailoverMode::LoadBalance
            && self.max_seconds > 0
            && self.service.load(Ordering::Acquire) == SERVICE_COOPERATING
            && self.state() == Some(StateKind::Normal);
        if !on {
            return dataplane::xdp::LbConfig::OFF;
        }
        dataplane::xdp::LbConfig {
            mode: dataplane::xdp::LB_ON,
            primary: u32::from(self.role == Role::Primary),
            // `mine` serves `secs > max_seconds`; the program serves `secs >= max_secs`.
            max_secs: u32::from(self.max_seconds) + 1,
            pad: 0,
            hba: self.hba().0,
        }
    }

    /// Whether we answer a client with this `secs` and bucket, for a message `msg`.
    pub fn may_serve(&self, msg: Option<MessageType>, secs: u16, bucket: u8) -> bool {
        match self.service.load(Ordering::Acquire) {
            SERVICE_NOT_COOPERATING | SERVICE_PARTNER_DOWN => true,
            SERVICE_COOPERATING => {
                let balanced = matches!(msg, None | Some(MessageType::Discover));
                match self.mode {
                    // The active server is the primary; the standby stays silent in NORMAL.
                    FailoverMode::HotStandby => self.role == Role::Primary,
                    FailoverMode::LoadBalance if balanced => LoadBalance {
                        role: self.role,
                        hba: Some(self.hba()),
                        max_seconds: self.max_seconds,
                        check_secs_byte_order: false,
                    }
                    .mine(secs, bucket),
                    FailoverMode::LoadBalance => true,
                }
            }
            _ => false,
        }
    }

    /// Whether the address in record `l` may go to a client now: nothing while we answer
    /// nobody; else the rules of [`mclt::may_reallocate`] in our state.
    pub fn may_allocate(&self, l: &Lease, now: UnixTime) -> bool {
        if self.service.load(Ordering::Acquire) == SERVICE_NONE {
            return false;
        }
        let Some(state) = self.state() else {
            return false;
        };
        let mclt = self.mclt.load(Ordering::Relaxed);
        let since = UnixTime(self.partner_down_since.load(Ordering::Relaxed));
        mclt::may_reallocate(l, self.role, state, mclt, since, now)
    }

    /// The lease time to grant on top of record `l`, at most `desired`.
    pub fn lease_time(&self, l: &Lease, desired: u32, now: UnixTime) -> u32 {
        let Some(state) = self.state() else {
            return 0;
        };
        let mclt = self.mclt.load(Ordering::Relaxed);
        mclt::lease_time_for(state, now, desired, mclt, l)
            .unwrap_or(0)
            .min(desired)
    }
}

/// The [`FailoverView`] of a whole server: each table (subnet, in config order) either
/// belongs to a relationship, whose view decides, or is served standalone.
#[derive(Debug, Clone)]
pub struct Gate {
    /// Indexed by `TableId.0`.
    tables: Arc<[Option<Arc<RelationshipView>>]>,
}

impl Gate {
    /// The gate for `config`; the views, one per `[[failover]]` in config order, are the
    /// driver's to publish into.
    pub fn new(config: &config::Config) -> (Gate, Vec<Arc<RelationshipView>>) {
        let views: Vec<Arc<RelationshipView>> = config
            .failover
            .iter()
            .map(|f| Arc::new(RelationshipView::new(f)))
            .collect();
        let tables = config
            .subnets
            .iter()
            .map(|s| {
                let name = s.failover.as_deref()?;
                let i = config.failover.iter().position(|f| f.name == name)?;
                views.get(i).cloned()
            })
            .collect();
        (Gate { tables }, views)
    }

    fn view(&self, table: TableId) -> Option<&RelationshipView> {
        self.tables.get(usize::from(table.0))?.as_deref()
    }
}

impl FailoverView for Gate {
    fn may_serve(
        &self,
        table: TableId,
        _client: &ClientKey<'_>,
        msg: Option<MessageType>,
        req: &Repr<'_>,
    ) -> bool {
        match self.view(table) {
            None => true,
            Some(v) => {
                let bucket = hash::client_bucket(req.options.client_id, &req.chaddr, req.hlen);
                v.may_serve(msg, req.secs, bucket)
            }
        }
    }

    fn may_allocate(&self, table: TableId, current: &Lease, now: UnixTime) -> bool {
        match self.view(table) {
            None => current.state != BindingState::Backup,
            Some(v) => v.may_allocate(current, now),
        }
    }

    fn lease_time(&self, table: TableId, current: &Lease, desired: u32, now: UnixTime) -> u32 {
        match self.view(table) {
            None => desired,
            Some(v) => v.lease_time(current, desired, now),
        }
    }

    fn free_state(&self, table: TableId) -> BindingState {
        match self.view(table).map(|v| v.role) {
            Some(Role::Secondary) => BindingState::Backup,
            Some(Role::Primary) | None => BindingState::Free,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lease_mmap::Owner;

    const NOW: UnixTime = UnixTime(1_800_000_000);

    fn view(role: config::Role, mode: FailoverMode) -> RelationshipView {
        RelationshipView {
            role: match role {
                config::Role::Primary => Role::Primary,
                config::Role::Secondary => Role::Secondary,
            },
            mode,
            max_seconds: 3,
            service: AtomicU8::new(SERVICE_NONE),
            state: AtomicU8::new(0),
            mclt: AtomicU32::new(600),
            hba: Default::default(),
            partner_down_since: AtomicU32::new(0),
        }
    }

    fn set(v: &RelationshipView, service: Service, state: StateKind, since: u32) {
        v.publish_parts(service, state, 600, Hba::split(128), UnixTime(since));
    }

    fn lease(state: BindingState, owner: Owner) -> Lease {
        Lease {
            state,
            owner,
            ..Lease::default()
        }
    }

    const DISCOVER: Option<MessageType> = Some(MessageType::Discover);

    #[test]
    fn unpublished_and_silent_states_serve_nobody() {
        let v = view(config::Role::Primary, FailoverMode::LoadBalance);
        assert!(!v.may_serve(DISCOVER, 0, 0));
        assert!(!v.may_allocate(&lease(BindingState::Free, Owner::Us), NOW));
        for (service, state) in [
            (Service::NotResponding, StateKind::Recover),
            (Service::Startup, StateKind::Startup),
            (Service::NotResponding, StateKind::PotentialConflict),
        ] {
            set(&v, service, state, 0);
            assert!(!v.may_serve(DISCOVER, 0, 0), "{state:?}");
            assert!(!v.may_serve(Some(MessageType::Request), 0, 0), "{state:?}");
            assert!(!v.may_allocate(&lease(BindingState::Free, Owner::Us), NOW));
            assert_eq!(v.lease_time(&Lease::default(), 3600, NOW), 0);
        }
    }

    #[test]
    fn normal_balances_discovers_by_bucket() {
        let p = view(config::Role::Primary, FailoverMode::LoadBalance);
        let s = view(config::Role::Secondary, FailoverMode::LoadBalance);
        set(&p, Service::Cooperating, StateKind::Normal, 0);
        set(&s, Service::Cooperating, StateKind::Normal, 0);
        for b in 0..=255u8 {
            assert_eq!(p.may_serve(DISCOVER, 0, b), b < 128, "bucket {b}");
            assert_eq!(s.may_serve(DISCOVER, 0, b), b >= 128, "bucket {b}");
            assert_eq!(p.may_serve(None, 0, b), b < 128, "BOOTP bucket {b}");
            // REQUESTs are not balanced; a client waiting long is answered by both.
            assert!(p.may_serve(Some(MessageType::Request), 0, b));
            assert!(s.may_serve(Some(MessageType::Request), 0, b));
            assert!(s.may_serve(DISCOVER, 4, b));
        }
        // Each allocates its own free addresses only.
        assert!(p.may_allocate(&lease(BindingState::Free, Owner::Us), NOW));
        assert!(!p.may_allocate(&lease(BindingState::Backup, Owner::Us), NOW));
        assert!(s.may_allocate(&lease(BindingState::Backup, Owner::Us), NOW));
        assert!(!s.may_allocate(&lease(BindingState::Free, Owner::Us), NOW));
        // A new lease is bounded by the MCLT until the partner acknowledges more.
        assert_eq!(p.lease_time(&Lease::default(), 3600, NOW), 600);
        assert_eq!(p.lease_time(&Lease::default(), 300, NOW), 300);
    }

    #[test]
    fn xdp_filter_drops_exactly_what_may_serve_refuses() {
        use dataplane::xdp::{LB_OFF, LB_ON};
        for role in [config::Role::Primary, config::Role::Secondary] {
            let v = view(role, FailoverMode::LoadBalance);
            assert_eq!(v.xdp_filter().mode, LB_OFF, "unpublished");
            set(&v, Service::Cooperating, StateKind::Normal, 0);
            let f = v.xdp_filter();
            assert_eq!(f.mode, LB_ON);
            for secs in [0u16, 2, 3, 4, 9] {
                for b in 0..=255u8 {
                    let set = f.hba[usize::from(b >> 3)] >> (b & 7) & 1 == 1;
                    let ours = if f.primary == 1 { set } else { !set };
                    let xdp_serves = ours || u32::from(secs) >= f.max_secs;
                    assert_eq!(
                        xdp_serves,
                        v.may_serve(DISCOVER, secs, b),
                        "{role:?} {secs} {b}"
                    );
                }
            }
            for (service, state) in [
                (
                    Service::NotCooperating,
                    StateKind::CommunicationsInterrupted,
                ),
                (Service::PartnerDown, StateKind::PartnerDown),
                (Service::NotResponding, StateKind::Recover),
            ] {
                set(&v, service, state, 0);
                assert_eq!(v.xdp_filter().mode, LB_OFF, "{state:?}");
            }
            let hs = view(role, FailoverMode::HotStandby);
            set(&hs, Service::Cooperating, StateKind::Normal, 0);
            assert_eq!(hs.xdp_filter().mode, LB_OFF, "hot standby");
        }
    }

    #[test]
    fn hot_standby_primary_serves_alone_in_normal() {
        let p = view(config::Role::Primary, FailoverMode::HotStandby);
        let s = view(config::Role::Secondary, FailoverMode::HotStandby);
        set(&p, Service::Cooperating, StateKind::Normal, 0);
        set(&s, Service::Cooperating, StateKind::Normal, 0);
        for b in [0u8, 127, 128, 255] {
            assert!(p.may_serve(DISCOVER, 0, b));
            assert!(!s.may_serve(DISCOVER, 0, b));
            assert!(!s.may_serve(Some(MessageType::Request), 9, b));
        }
        set(
            &s,
            Service::NotCooperating,
            StateKind::CommunicationsInterrupted,
            0,
        );
        assert!(s.may_serve(DISCOVER, 0, 5));
    }

    #[test]
    fn interrupted_serves_everyone_from_its_own_pool() {
        let s = view(config::Role::Secondary, FailoverMode::LoadBalance);
        set(
            &s,
            Service::NotCooperating,
            StateKind::CommunicationsInterrupted,
            0,
        );
        for b in [0u8, 200] {
            assert!(s.may_serve(DISCOVER, 0, b));
        }
        assert!(s.may_allocate(&lease(BindingState::Backup, Owner::Us), NOW));
        assert!(!s.may_allocate(&lease(BindingState::Free, Owner::Us), NOW));
        // The partner's binding is never taken outside PARTNER-DOWN.
        let mut theirs = lease(BindingState::Active, Owner::Partner);
        theirs.ends = UnixTime(NOW.0 - 10);
        assert!(!s.may_allocate(&theirs, NOW));
        assert_eq!(s.lease_time(&Lease::default(), 3600, NOW), 600);
    }

    #[test]
    fn partner_down_takes_the_partners_addresses_after_mclt() {
        let s = view(config::Role::Secondary, FailoverMode::LoadBalance);
        let since = NOW.0 - 100;
        set(&s, Service::PartnerDown, StateKind::PartnerDown, since);
        assert!(s.may_serve(DISCOVER, 0, 3));
        let free = lease(BindingState::Free, Owner::Us);
        assert!(!s.may_allocate(&free, NOW), "within MCLT of since");
        assert!(s.may_allocate(&free, UnixTime(since + 601)));
        // A partner in PARTNER-DOWN silences us (Fsm::service), whatever our state.
        set(&s, Service::NotResponding, StateKind::Normal, 0);
        assert!(!s.may_serve(DISCOVER, 0, 200));
    }

    #[test]
    fn gate_serves_unrelated_scopes_standalone() {
        let text = r#"
[server]
interfaces = ["eth0"]
server_id = "192.0.2.1"
data_dir = "/tmp/x"

[[subnet]]
prefix = "10.0.0.0/24"
pools = ["10.0.0.10-10.0.0.20"]
failover = "pair"

[[subnet]]
prefix = "10.0.1.0/24"
pools = ["10.0.1.10-10.0.1.20"]

[[failover]]
name = "pair"
role = "primary"
address = "192.0.2.1"
peer_address = "192.0.2.2"
mclt = "10m"
shared_secret_file = "/etc/tandem/pair.secret"
"#;
        let cfg = crate::config::parse(text).expect("config");
        let (gate, views) = Gate::new(&cfg);
        assert_eq!(views.len(), 1);
        let free = lease(BindingState::Free, Owner::Us);
        // Not yet published: the relationship's scope is silent, the other is served.
        assert!(!gate.may_allocate(TableId(0), &free, NOW));
        assert!(gate.may_allocate(TableId(1), &free, NOW));
        assert_eq!(gate.lease_time(TableId(1), &free, 3600, NOW), 3600);
        assert!(!gate.may_allocate(TableId(1), &lease(BindingState::Backup, Owner::Us), NOW));
        views[0].publish_parts(
            Service::Cooperating,
            StateKind::Normal,
            600,
            Hba::split(128),
            UnixTime(0),
        );
        assert!(gate.may_allocate(TableId(0), &free, NOW));
        assert_eq!(gate.lease_time(TableId(0), &free, 3600, NOW), 600);
        // A table the config does not know is served standalone.
        assert!(gate.may_allocate(TableId(7), &free, NOW));
        // A declined offer goes back to the primary's own pool, FREE.
        assert_eq!(gate.free_state(TableId(0)), BindingState::Free);
        assert_eq!(gate.free_state(TableId(1)), BindingState::Free);
    }
}
