//! The failover state machine, driven in pairs of real sessions on the shared simulation
//! (`sim/`, quinn-proto's `tests/util.rs` shape): each side's [`Session`] dials, picks its
//! link and runs its timers itself; the network can delay, reset, partition and heal.
//! Scenario tests at explicit times, then a seeded randomized run.

mod sim;

use std::borrow::{Borrow, BorrowMut};
use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};

use control::failover::fsm::{
    self, CloseReason, Config, ConfigError, Event, Fsm, LocalEventError, PersistedState, Service,
    State, StateKind,
};
use control::failover::hash::Hba;
use control::failover::msg::{BindingStatus, MessageType, RejectReason, Repr};
use control::failover::pool::Share;
use control::failover::session::{self, Cause, ResyncProgress, Session};
use control::failover::{Instant, Now, Role, UnixTime};
use sim::{BASE_WALL, NoTables};
use testkit::rng::Rng;

/// Two sides of one relationship over storage without tables.
struct Pair {
    sim: sim::Pair<NoTables>,
    configs: [Config; 2],
    /// The failover state each side's storage kept when it was killed.
    kept: [Option<PersistedState>; 2],
}

impl Deref for Pair {
    type Target = sim::Pair<NoTables>;
    fn deref(&self) -> &Self::Target {
        &self.sim
    }
}

impl DerefMut for Pair {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.sim
    }
}

impl Borrow<sim::Pair<NoTables>> for Pair {
    fn borrow(&self) -> &sim::Pair<NoTables> {
        &self.sim
    }
}

impl BorrowMut<sim::Pair<NoTables>> for Pair {
    fn borrow_mut(&mut self) -> &mut sim::Pair<NoTables> {
        &mut self.sim
    }
}

fn config(name: &str, role: Role, mclt: u32) -> Config {
    let mut c = Config::new(name, role);
    c.mclt = mclt;
    c
}

impl Pair {
    /// A pair whose sides start from `persisted` (None = a relationship never seen).
    fn new(a: Config, b: Config, pa: Option<PersistedState>, pb: Option<PersistedState>) -> Self {
        let mut p = Self {
            sim: sim::Pair::new(),
            configs: [a, b],
            kept: [pa, pb],
        };
        p.start(0);
        p.start(1);
        p
    }

    fn fresh(mclt: u32) -> Self {
        Self::new(
            config("edge", Role::Primary, mclt),
            config("edge", Role::Secondary, 3600),
            None,
            None,
        )
    }

    fn start(&mut self, i: usize) {
        let now = self.sim.now_for(i);
        let config = session::Config {
            fsm: self.configs[i].clone(),
            share: Share::Half,
            peer: sim::ADDRS[1 - i],
            max_lease_time: 3600,
        };
        let s = Session::new(config, self.kept[i], now, NoTables::default()).expect("in memory");
        self.sim.start(i, s);
    }

    /// kill -9: the side's state is what its storage kept.
    fn kill(&mut self, i: usize) {
        if let Some(s) = self.sim.kill(i) {
            self.kept[i] = s.storage().persisted;
        }
    }

    fn restart(&mut self, i: usize, lose_database: bool) {
        self.kill(i);
        if lose_database {
            self.kept[i] = None;
        }
        self.start(i);
    }

    /// The failover state side `i` stored last.
    fn persisted(&self, i: usize) -> Option<PersistedState> {
        match &self.sides[i].session {
            Some(s) => s.storage().persisted,
            None => self.kept[i],
        }
    }

    fn state(&self, i: usize) -> StateKind {
        self.sides[i].fsm().kind()
    }

    fn states(&self) -> (StateKind, StateKind) {
        (self.state(0), self.state(1))
    }

    /// An operation on side `i`'s machine; the session acts on what follows.
    fn with<R>(&mut self, i: usize, f: impl FnOnce(&mut Fsm, Now) -> R) -> R {
        self.sim.with(i, |s, now| s.operate(now, f))
    }

    fn drive_bounded(&mut self, secs: u64, done: impl Fn(&Pair) -> bool) -> bool {
        sim::drive_bounded(self, secs, done)
    }

    /// Why side `i`'s machine closed its links, in order.
    fn fsm_closes(&self, i: usize) -> Vec<CloseReason> {
        self.sides[i]
            .closes
            .iter()
            .filter_map(|c| match c {
                Cause::Fsm(r) => Some(*r),
                _ => None,
            })
            .collect()
    }
}

fn both(a: StateKind) -> impl Fn(&Pair) -> bool {
    move |p: &Pair| {
        p.sides
            .iter()
            .all(|s| s.session.as_ref().is_some_and(|s| s.fsm().kind() == a))
    }
}

use StateKind as S;

fn normal_pair() -> Pair {
    let mut p = Pair::fresh(60);
    assert!(
        p.drive_bounded(120, both(S::Normal)),
        "fresh pair reached {:?}",
        p.states()
    );
    p
}

#[test]
fn fresh_pair_goes_recover_then_normal() {
    let mut p = Pair::fresh(3600);
    assert_eq!(p.states(), (S::Startup, S::Startup));
    assert_eq!(
        p.sides[0].fsm().state(),
        State::Startup {
            saved: S::Recover,
            until: Instant::from_millis(15_000)
        }
    );
    // Both new: UPDDONE with the partner in RECOVER skips the MCLT wait (failover.c:5853-5858).
    assert!(p.drive_bounded(60, both(S::Normal)), "{:?}", p.states());
    for i in 0..2 {
        assert!(
            p.visited(i, S::Recover),
            "side {i}: {:?}",
            p.sides[i].history
        );
        assert!(p.visited(i, S::RecoverDone));
        assert!(!p.visited(i, S::RecoverWait));
        assert!(p.sides[i].sent.contains(&MessageType::UpdReqAll));
        assert!(p.sides[i].sent.contains(&MessageType::UpdDone));
    }
    assert_eq!(p.sides[0].sent[0], MessageType::Connect);
    assert_eq!(p.sides[1].sent[0], MessageType::ConnectAck);
    // The secondary learned the primary's MCLT and HBA.
    assert_eq!(p.sides[1].fsm().mclt(), 3600);
    assert_eq!(p.sides[1].fsm().hba(), Hba::split(128));
    assert_eq!(p.persisted(1).unwrap().mclt, 3600);
}

#[test]
fn restart_from_persisted_normal_goes_back_to_normal() {
    let mut p = normal_pair();
    let (a, b) = (p.persisted(0).unwrap(), p.persisted(1).unwrap());
    assert_eq!((a.my_state, b.my_state), (S::Normal, S::Normal));
    let mut q = Pair::new(p.configs[0].clone(), p.configs[1].clone(), Some(a), Some(b));
    q.now = p.now;
    assert!(q.drive_bounded(30, both(S::Normal)));
    assert!(!q.visited(0, S::Recover) && !q.visited(1, S::Recover));
    p.run_for(1);
}

#[test]
fn keepalive_contact_keeps_an_idle_link_up() {
    let mut p = normal_pair();
    let before = p.sides[0].sent.len();
    p.run_for(120);
    assert_eq!(p.states(), (S::Normal, S::Normal));
    let contacts = p.sides[0].sent[before..]
        .iter()
        .filter(|t| **t == MessageType::Contact)
        .count();
    // receive-timer 20 s => CONTACT every 20/3 s (failover.c:4335-4351): about 18 in 120 s.
    assert!((15..=20).contains(&contacts), "{contacts} CONTACTs");
    assert!(p.linked());
}

#[test]
fn link_cut_gives_communications_interrupted_and_heal_gives_normal() {
    let mut p = normal_pair();
    p.partition();
    // Nothing heard for max-response-delay (20 s) closes the link: NORMAL → COMM-INT.
    p.run_for(19);
    assert_eq!(p.states(), (S::Normal, S::Normal));
    p.run_for(2);
    assert_eq!(
        p.states(),
        (S::CommunicationsInterrupted, S::CommunicationsInterrupted)
    );
    assert_eq!(p.fsm_closes(0), vec![CloseReason::ReceiveTimeout]);
    // Stays there without a safe period.
    p.run_for(600);
    assert_eq!(
        p.states(),
        (S::CommunicationsInterrupted, S::CommunicationsInterrupted)
    );
    p.heal();
    assert!(p.drive_bounded(30, both(S::Normal)), "{:?}", p.states());
    assert!(
        p.sides
            .iter()
            .all(|s| s.events.contains(&Event::SendUpdates))
    );
}

#[test]
fn an_operators_resync_runs_to_the_partners_upddone_or_is_interrupted() {
    let mut p = normal_pair();
    // Not before NORMAL's link is up, and not in another state.
    assert_eq!(p.sides[1].session().resync_progress(), None);
    p.sim.with(1, |s, now| s.resync(now)).expect("in NORMAL");
    let r = p.sides[1].session().resync_progress().expect("recorded");
    assert_eq!(r.progress, ResyncProgress::Running);
    p.run_for(5);
    let r = p.sides[1].session().resync_progress().expect("recorded");
    assert!(
        matches!(r.progress, ResyncProgress::Done(t) if t >= r.asked),
        "{r:?}"
    );
    // The partner answered an UPDREQALL; nothing moved out of NORMAL.
    assert_eq!(p.states(), (S::Normal, S::Normal));

    // Asked again and cut before the UPDDONE: interrupted, and refused while the link is down.
    p.partition();
    p.sim.with(0, |s, now| s.resync(now)).expect("still NORMAL");
    p.run_for(25);
    let r = p.sides[0].session().resync_progress().expect("recorded");
    assert!(
        matches!(r.progress, ResyncProgress::Interrupted(_)),
        "{r:?}"
    );
    assert_eq!(
        p.sim.with(0, |s, now| s.resync(now)),
        Err(LocalEventError::ResyncNotAllowed(
            S::CommunicationsInterrupted
        ))
    );
}

#[test]
fn tcp_reset_gives_communications_interrupted_then_normal_on_reconnect() {
    let mut p = normal_pair();
    p.reset_link();
    assert_eq!(
        p.states(),
        (S::CommunicationsInterrupted, S::CommunicationsInterrupted)
    );
    assert!(p.drive_bounded(30, both(S::Normal)));
}

#[test]
fn manual_partner_down_then_potential_conflict_then_normal() {
    let mut p = normal_pair();
    assert_eq!(
        p.sim.with(0, |s, now| s.partner_down(now, now.wall)),
        Err(LocalEventError::PartnerDownNotAllowed(S::Normal))
    );
    let cut = p.wall(1);
    p.partition();
    p.run_for(25);
    // Backdated to before the partition: floored at the partner's last message, so the
    // MCLT is never waited out from a time the partner was still talking.
    let asked = UnixTime(p.wall(1).0 - 100);
    let since = p.sim.with(1, |s, now| s.partner_down(now, asked)).unwrap();
    assert_eq!(since, p.sides[1].fsm().last_heard());
    assert!(
        since > asked && since <= cut && since.0 + 15 >= cut.0,
        "in force {since:?}, asked {asked:?}, partitioned at {cut:?}"
    );
    assert_eq!(p.sides[1].fsm().state(), State::PartnerDown { since });
    assert_eq!(p.persisted(1).unwrap().partner_down_since, since);
    // A future "since" is clamped to now.
    p.run_for(10);
    assert_eq!(p.states(), (S::CommunicationsInterrupted, S::PartnerDown));
    p.heal();
    // The secondary in PARTNER-DOWN meets a primary that kept serving: POTENTIAL-CONFLICT on
    // both, the primary resolves (UPDREQ → UPDDONE → CONFLICT-DONE), then NORMAL.
    assert!(p.drive_bounded(60, both(S::Normal)), "{:?}", p.states());
    assert!(p.visited(0, S::PotentialConflict) && p.visited(1, S::PotentialConflict));
    assert!(p.visited(0, S::ConflictDone), "{:?}", p.sides[0].history);
    assert!(!p.visited(1, S::ConflictDone));
    assert!(p.sides[0].sent.contains(&MessageType::UpdReq));
    assert!(p.sides[1].sent.contains(&MessageType::UpdReq));
}

#[test]
fn both_partner_down_by_hand_resolve_through_potential_conflict() {
    let mut p = normal_pair();
    p.partition();
    p.run_for(25);
    for i in 0..2 {
        let (asked, since) = p
            .sim
            .with(i, |s, now| (now.wall, s.partner_down(now, now.wall)));
        assert_eq!(since, Ok(asked), "a time after the last message stands");
    }
    assert_eq!(p.states(), (S::PartnerDown, S::PartnerDown));
    p.heal();
    assert!(p.drive_bounded(60, both(S::Normal)), "{:?}", p.states());
    assert!(p.visited(0, S::ConflictDone));
}

#[test]
fn restart_with_lost_database_recovers_through_recover_wait() {
    let mclt = 120;
    let mut p = Pair::fresh(mclt);
    assert!(p.drive_bounded(60, both(S::Normal)));
    p.kill(1);
    p.run_for(1);
    // The survivor saw the link close: COMMUNICATIONS-INTERRUPTED.
    assert_eq!(p.state(0), S::CommunicationsInterrupted);
    p.run_for(30);
    p.restart(1, true);
    // RECOVER meets COMM-INT: the survivor goes PARTNER-DOWN (failover.c:2336-2340), the new
    // one asks for everything (UPDREQALL), then waits MCLT in RECOVER-WAIT.
    assert!(
        p.drive_bounded(30, |p| p.state(1) == S::RecoverWait),
        "{:?}",
        p.states()
    );
    assert_eq!(p.state(0), S::PartnerDown);
    let entered = p.now;
    let State::RecoverWait { until } = p.sides[1].fsm().state() else {
        unreachable!()
    };
    let wait = until.as_millis() - entered;
    assert!(
        wait <= u64::from(mclt) * 1000 && wait + 20_000 >= u64::from(mclt) * 1000,
        "wait {wait} ms"
    );
    assert!(
        p.drive_bounded(u64::from(mclt) + 30, both(S::Normal)),
        "{:?}",
        p.states()
    );
    assert!(p.visited(1, S::RecoverDone));
    assert!(p.now - entered >= wait);
}

#[test]
fn restart_keeping_the_database_skips_recover() {
    let mut p = normal_pair();
    p.kill(0);
    p.run_for(10);
    assert_eq!(p.state(1), S::CommunicationsInterrupted);
    p.restart(0, false);
    assert!(p.drive_bounded(30, both(S::Normal)), "{:?}", p.states());
    assert!(
        !p.sides[0]
            .history
            .iter()
            .any(|(t, _, to)| *t > 0 && *to == S::Recover && *t > 20_000)
    );
}

#[test]
fn safe_period_takes_one_side_to_partner_down() {
    let mut a = config("edge", Role::Primary, 60);
    let b = config("edge", Role::Secondary, 60);
    a.auto_partner_down = Some(300);
    let mut p = Pair::new(a, b, None, None);
    assert!(p.drive_bounded(60, both(S::Normal)));
    p.partition();
    p.run_for(25);
    assert_eq!(
        p.states(),
        (S::CommunicationsInterrupted, S::CommunicationsInterrupted)
    );
    p.run_for(290);
    assert_eq!(p.state(0), S::CommunicationsInterrupted);
    p.run_for(20);
    assert_eq!(p.states(), (S::PartnerDown, S::CommunicationsInterrupted));
    p.heal();
    assert!(p.drive_bounded(60, both(S::Normal)), "{:?}", p.states());
}

#[test]
fn service_follows_own_and_peer_state() {
    let mut p = Pair::fresh(60);
    assert_eq!(p.sides[0].fsm().service(), Service::Startup);
    assert!(p.drive_bounded(60, both(S::Normal)));
    assert_eq!(p.sides[0].fsm().service(), Service::Cooperating);
    p.partition();
    p.run_for(25);
    assert_eq!(p.sides[0].fsm().service(), Service::NotCooperating);
    p.sim
        .with(0, |s, now| s.partner_down(now, now.wall))
        .unwrap();
    assert_eq!(p.sides[0].fsm().service(), Service::PartnerDown);
    p.heal();
    // Reconnected: the peer sees PARTNER-DOWN and both resolve; nobody serves meanwhile.
    assert!(p.drive_bounded(30, |p| p.state(1) == S::PotentialConflict));
    assert_eq!(p.sides[1].fsm().service(), Service::NotResponding);
    assert!(p.drive_bounded(60, both(S::Normal)));
    // The primary's STATE(NORMAL) is still on the wire: the secondary knows it in CONFLICT-DONE.
    assert_eq!(p.sides[1].fsm().service(), Service::NotResponding);
    p.run_for(1);
    assert_eq!(p.sides[1].fsm().service(), Service::Cooperating);
}

#[test]
fn peer_pause_puts_us_in_communications_interrupted() {
    let mut p = normal_pair();
    p.with(0, |f, now| f.pause(now));
    p.run_for(1);
    assert_eq!(p.states(), (S::Paused, S::CommunicationsInterrupted));
    assert_eq!(p.persisted(0).unwrap().my_state, S::Paused);
}

/// Why the safe period belongs on one side only (draft §10): with it on both, a partition
/// longer than it puts both servers in PARTNER-DOWN, each free to hand out the other's
/// addresses after MCLT.
#[test]
fn symmetric_safe_period_lets_a_partition_split_the_pair() {
    let mut a = config("edge", Role::Primary, 60);
    let mut b = config("edge", Role::Secondary, 60);
    a.auto_partner_down = Some(120);
    b.auto_partner_down = Some(120);
    let mut p = Pair::new(a, b, None, None);
    assert!(p.drive_bounded(60, both(S::Normal)));
    p.partition();
    p.run_for(150);
    assert_eq!(p.states(), (S::PartnerDown, S::PartnerDown));
    // Healing still resolves it: both go through POTENTIAL-CONFLICT to NORMAL.
    p.heal();
    assert!(p.drive_bounded(60, both(S::Normal)), "{:?}", p.states());
    assert!(p.visited(0, S::ConflictDone));
}

#[test]
fn pool_request_is_answered_by_the_session() {
    let mut p = normal_pair();
    let xid = p
        .with(0, |f, now| {
            f.send(now, &Repr::new(MessageType::PoolReq, UnixTime(0), 0), None)
        })
        .unwrap();
    p.run_for(1);
    assert!(p.sides[1].events.contains(&Event::PoolRequest { xid }));
    // The session balances its pools and answers with what it moved (no tables: none).
    assert!(p.sides[1].sent.contains(&MessageType::PoolResp));
    assert!(
        p.sides[0]
            .events
            .contains(&Event::PoolResponse { addresses: 0 })
    );
}

#[test]
fn peer_shutdown_puts_us_in_partner_down() {
    let mut p = normal_pair();
    p.sim.with(1, |s, now| s.shutdown(now));
    p.run_for(1);
    assert_eq!(p.states(), (S::PartnerDown, S::Shutdown));
    // SHUTDOWN is not a state to resume: the stored state is the one before it.
    assert_eq!(p.persisted(1).unwrap().my_state, S::Normal);
}

fn connect_msg<'a>(
    name: &'a [u8],
    hba: Option<&'a [u8]>,
    mclt: Option<u32>,
    time: UnixTime,
) -> Repr<'a> {
    let mut r = Repr::new(MessageType::Connect, time, 77);
    r.options.relationship_name = Some(name);
    r.options.max_unacked = Some(100);
    r.options.receive_timer = Some(20);
    r.options.hba = hba;
    r.options.mclt = mclt;
    r.options.tls_request = Some(0);
    r
}

/// Feeds one CONNECT to a fresh secondary and returns its CONNECTACK's reject reason.
fn connect_outcome(
    role: Role,
    m: impl FnOnce(UnixTime) -> Vec<u8>,
) -> (Option<RejectReason>, bool) {
    let now = Now {
        instant: Instant::from_millis(0),
        wall: UnixTime(BASE_WALL),
    };
    let mut f = Fsm::new(config("edge", role, 600), None, now);
    while f.poll_event().is_some() {}
    f.handle_connected(now);
    while f.poll_transmit().is_some() {}
    let bytes = m(now.wall);
    f.handle_message(now, &Repr::parse_bytes(&bytes).unwrap());
    let mut closed = false;
    let mut ack = None;
    while let Some(e) = f.poll_event() {
        if let Event::CloseLink { last_words, .. } = e {
            closed = true;
            ack = last_words
                .into_iter()
                .find(|t| t.msg_type == MessageType::ConnectAck);
        }
    }
    let ack = ack.or_else(|| {
        std::iter::from_fn(|| f.poll_transmit()).find(|t| t.msg_type == MessageType::ConnectAck)
    });
    let ack = ack.expect("a CONNECTACK");
    let r = Repr::parse_bytes(&ack.bytes).unwrap();
    assert_eq!(r.xid, 77, "CONNECTACK echoes the CONNECT's xid");
    assert_eq!(r.options.tls_reply, Some(0));
    assert_eq!(r.options.max_unacked, Some(100));
    assert_eq!(r.options.receive_timer, Some(20));
    (r.options.reject_reason, closed)
}

#[test]
fn connect_checks_as_isc() {
    let hba = [0xffu8; 32];
    let ok = connect_outcome(Role::Secondary, |t| {
        connect_msg(b"edge", Some(&hba), Some(600), t)
            .to_vec()
            .unwrap()
    });
    assert_eq!(ok, (None, false));
    let name = connect_outcome(Role::Secondary, |t| {
        connect_msg(b"other", Some(&hba), Some(600), t)
            .to_vec()
            .unwrap()
    });
    assert_eq!(name, (Some(RejectReason::InvalidFailoverPartner), true));
    let skew = connect_outcome(Role::Secondary, |t| {
        connect_msg(b"edge", Some(&hba), Some(600), UnixTime(t.0 + 61))
            .to_vec()
            .unwrap()
    });
    assert_eq!(skew, (Some(RejectReason::TimeMismatch), true));
    let skew_ok = connect_outcome(Role::Secondary, |t| {
        connect_msg(b"edge", Some(&hba), Some(600), UnixTime(t.0 - 60))
            .to_vec()
            .unwrap()
    });
    assert_eq!(skew_ok, (None, false));
    let short_hba = connect_outcome(Role::Secondary, |t| {
        connect_msg(b"edge", Some(&hba[..31]), Some(600), t)
            .to_vec()
            .unwrap()
    });
    assert_eq!(
        short_hba,
        (Some(RejectReason::HashBucketAssignmentConflict), true)
    );
    let no_hba = connect_outcome(Role::Secondary, |t| {
        connect_msg(b"edge", None, Some(600), t).to_vec().unwrap()
    });
    assert_eq!(
        no_hba,
        (Some(RejectReason::HashBucketAssignmentConflict), true)
    );
    let no_mclt = connect_outcome(Role::Secondary, |t| {
        connect_msg(b"edge", Some(&hba), None, t).to_vec().unwrap()
    });
    assert_eq!(no_mclt, (Some(RejectReason::InvalidMclt), true));
    let to_primary = connect_outcome(Role::Primary, |t| {
        connect_msg(b"edge", Some(&hba), Some(600), t)
            .to_vec()
            .unwrap()
    });
    assert_eq!(
        to_primary,
        (Some(RejectReason::InvalidFailoverPartner), true)
    );
}

#[test]
fn each_side_learns_the_settings_the_other_shows() {
    // The secondary is configured with another MCLT and split than the primary: it serves by
    // the primary's (draft §7.2), but both sides can tell the operator they differ.
    let mut primary = config("edge", Role::Primary, 60);
    primary.hba = Hba::split(128);
    primary.max_unacked_updates = 40;
    let mut secondary = config("edge", Role::Secondary, 1800);
    secondary.hba = Hba::split(64);
    secondary.max_response_delay = 30;
    let mut p = Pair::new(primary, secondary, None, None);
    assert!(p.drive_bounded(120, both(S::Normal)), "{:?}", p.states());

    let seen_by_primary = p.sides[0].fsm().partner_settings().expect("a CONNECTACK");
    assert_eq!(seen_by_primary.mclt, Some(1800));
    assert_eq!(seen_by_primary.hba.map(|h| h.primary_buckets()), Some(64));
    assert_eq!(seen_by_primary.receive_timer, 30);
    assert!(
        seen_by_primary
            .vendor_class
            .as_deref()
            .is_some_and(|v| v.starts_with("tandem-"))
    );

    let seen_by_secondary = p.sides[1].fsm().partner_settings().expect("a CONNECT");
    assert_eq!(seen_by_secondary.mclt, Some(60));
    assert_eq!(
        seen_by_secondary.hba.map(|h| h.primary_buckets()),
        Some(128)
    );
    assert_eq!(seen_by_secondary.max_unacked, 40);
    // What is in force is the primary's.
    assert_eq!(p.sides[1].fsm().mclt(), 60);
    assert_eq!(p.sides[1].fsm().hba().primary_buckets(), 128);
}

#[test]
fn a_secondary_without_its_own_mclt_shows_none_and_an_isc_primary_gets_no_settings() {
    let mut secondary = config("edge", Role::Secondary, 3600);
    secondary.mclt_configured = false;
    let mut p = Pair::new(config("edge", Role::Primary, 60), secondary, None, None);
    assert!(p.drive_bounded(120, both(S::Normal)), "{:?}", p.states());
    let seen = p.sides[0].fsm().partner_settings().expect("a CONNECTACK");
    assert_eq!(seen.mclt, None);
    assert_eq!(seen.hba.map(|h| h.primary_buckets()), Some(128));

    // A CONNECT without a tandem vendor class (ISC's) gets a CONNECTACK without them.
    let now = Now {
        instant: Instant::from_millis(0),
        wall: UnixTime(BASE_WALL),
    };
    let mut f = Fsm::new(config("edge", Role::Secondary, 600), None, now);
    while f.poll_event().is_some() {}
    f.handle_connected(now);
    while f.poll_transmit().is_some() {}
    let hba = [0xffu8; 32];
    let mut c = connect_msg(b"edge", Some(&hba), Some(600), now.wall);
    c.options.vendor_class = Some(b"isc-dhcpd");
    let bytes = c.to_vec().unwrap();
    f.handle_message(now, &Repr::parse_bytes(&bytes).unwrap());
    let ack = std::iter::from_fn(|| f.poll_transmit())
        .find(|t| t.msg_type == MessageType::ConnectAck)
        .expect("a CONNECTACK");
    let ack = Repr::parse_bytes(&ack.bytes).unwrap();
    assert_eq!(ack.options.reject_reason, None);
    assert_eq!((ack.options.mclt, ack.options.hba), (None, None));
    let seen = f.partner_settings().expect("the CONNECT");
    assert_eq!(seen.vendor_class.as_deref(), Some("isc-dhcpd"));
    assert_eq!(seen.mclt, Some(600));
}

#[test]
fn mismatched_names_never_connect() {
    let mut p = Pair::new(
        config("edge", Role::Primary, 60),
        config("core", Role::Secondary, 60),
        None,
        None,
    );
    p.run_for(120);
    assert!(!p.sides[0].fsm().is_connected());
    assert!(p.sides[0].events.iter().any(|e| matches!(
        e,
        Event::RejectedByPeer {
            reason: Some(RejectReason::InvalidFailoverPartner),
            ..
        }
    )));
    // Still in RECOVER (start-up over, nobody to recover from).
    assert_eq!(p.states(), (S::Recover, S::Recover));
}

#[test]
fn clock_skew_over_a_minute_is_refused() {
    let mut p = Pair::fresh(60);
    p.sides[1].skew = 90;
    p.restart(1, true);
    p.run_for(60);
    assert!(!p.sides[0].fsm().is_connected());
    assert!(p.sides[0].events.iter().any(|e| matches!(
        e,
        Event::RejectedByPeer {
            reason: Some(RejectReason::TimeMismatch),
            ..
        }
    )));
}

#[test]
fn no_connectack_closes_the_link_after_15_seconds() {
    let mut p = Pair::fresh(60);
    // The secondary never answers: the link comes up, and the network parts before the
    // CONNECT gets through.
    assert!(p.drive_bounded(1, |p| p.sides[0].link().is_some()));
    p.partition();
    p.run_for(16);
    assert!(
        p.fsm_closes(0).contains(&CloseReason::StartupTimeout),
        "{:?}",
        p.sides[0].closes
    );
}

#[test]
fn bindings_before_the_handshake_are_dropped() {
    let mut p = Pair::fresh(60);
    // The secondary's link is up and the primary's CONNECT has not arrived.
    assert!(p.drive_bounded(1, |p| p.sides[1].link().is_some()));
    p.partition();
    assert!(!p.sides[1].fsm().is_connected());
    // A well-formed update (FREE needs no client), so that only the handshake can stop it.
    let mut upd = Repr::new(MessageType::BndUpd, UnixTime(BASE_WALL), 9);
    upd.options.assigned_ip = Some(std::net::Ipv4Addr::new(10, 0, 1, 5));
    upd.options.binding_status = Some(BindingStatus::Free as u8);
    let bytes = upd.to_vec().unwrap();
    let link = p.sides[1].link().unwrap();
    p.sim.with(1, |s, now| s.handle_bytes(now, link, &bytes));
    // Not even looked at: no lookup, no BNDACK.
    assert_eq!(p.sides[1].session().storage().lookups.get(), 0);
    assert!(!p.sides[1].sent.contains(&MessageType::BndAck));
    // Once connected, the same update is answered.
    p.heal();
    assert!(p.drive_bounded(60, both(S::Normal)), "{:?}", p.states());
    let link = p.sides[1].link().unwrap();
    p.sim.with(1, |s, now| s.handle_bytes(now, link, &bytes));
    assert_eq!(p.sides[1].session().storage().lookups.get(), 1);
    assert!(p.sides[1].sent.contains(&MessageType::BndAck));
}

#[test]
fn a_connect_with_an_mclt_beyond_seven_days_is_refused() {
    use control::failover::fsm::MAX_MCLT;
    let mut p = Pair::fresh(MAX_MCLT + 1);
    p.sim.run_for(30);
    assert!(!p.sides[1].fsm().is_connected());
    assert!(
        p.sides[1]
            .closes
            .contains(&Cause::Fsm(CloseReason::Rejected(
                RejectReason::InvalidMclt
            ))),
        "{:?}",
        p.sides[1].closes
    );
    assert!(p.sides[0].events.iter().any(|e| matches!(
        e,
        Event::RejectedByPeer {
            reason: Some(RejectReason::InvalidMclt),
            ..
        }
    )));
    // Seven days exactly is taken, and learnt.
    let mut p = Pair::fresh(MAX_MCLT);
    assert!(p.drive_bounded(60, both(S::Normal)), "{:?}", p.states());
    assert_eq!(p.sides[1].fsm().mclt(), MAX_MCLT);
}

#[test]
fn the_update_window_is_the_peers_within_our_cap() {
    for (theirs, ours, window) in [(100_000, 5, 5), (3, 100, 3), (0, 100, 1)] {
        let mut a = config("edge", Role::Primary, 60);
        let mut b = config("edge", Role::Secondary, 3600);
        a.max_unacked_updates = theirs;
        b.max_unacked_updates = ours;
        let mut p = Pair::new(a, b, None, None);
        assert!(p.drive_bounded(60, both(S::Normal)), "{:?}", p.states());
        assert_eq!(
            p.sides[1].fsm().partner_max_unacked(),
            window,
            "{theirs} {ours}"
        );
    }
}

/// The randomized run: random faults on a virtual clock; after every step no two sides are in
/// PARTNER-DOWN by automatic action, and after the faults stop the pair gets back to NORMAL.
#[test]
fn randomized_pairs_stay_safe_and_live() {
    let seeds: u64 = std::env::var("FAILOVER_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    let mut seen = std::collections::BTreeMap::<StateKind, u64>::new();
    for seed in 0..seeds {
        match std::panic::catch_unwind(|| run_seed(seed)) {
            Ok(visited) => {
                for k in visited {
                    *seen.entry(k).or_default() += 1;
                }
            }
            Err(e) => {
                eprintln!(
                    "failover randomized run failed: seed {seed} (rerun with FAILOVER_SEED={seed})"
                );
                std::panic::resume_unwind(e);
            }
        }
    }
    eprintln!("state entries over all seeds: {seen:?}");
    // The faults must reach the interesting states, or the run proves little.
    if seeds >= 1000 {
        for k in [
            S::CommunicationsInterrupted,
            S::PartnerDown,
            S::PotentialConflict,
            S::ResolutionInterrupted,
            S::ConflictDone,
            S::Recover,
            S::RecoverWait,
            S::RecoverDone,
        ] {
            assert!(
                seen.get(&k).copied().unwrap_or(0) > 0,
                "no seed reached {k:?}"
            );
        }
    }
}

#[test]
fn randomized_single_seed() {
    if let Some(seed) = std::env::var("FAILOVER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        let visited = run_seed(seed);
        eprintln!("seed {seed}: {visited:?}");
    }
}

/// One randomized run; returns every state either side entered.
fn run_seed(seed: u64) -> Vec<StateKind> {
    let mut rng = Rng::new(seed);
    let mclt = 30 + u32::try_from(rng.below(90)).unwrap();
    let mut a = config("edge", Role::Primary, mclt);
    let mut b = config("edge", Role::Secondary, 3600);
    // The safe period and the operator's partner-down act on one side only, the "takeover"
    // side (see `Config::auto_partner_down`).
    let takeover = usize::try_from(rng.below(2)).unwrap();
    if rng.chance(60) {
        let secs = Some(60 + u32::try_from(rng.below(120)).unwrap());
        if takeover == 0 {
            a.auto_partner_down = secs;
        } else {
            b.auto_partner_down = secs;
        }
    }
    let mut p = Pair::new(a, b, None, None);
    p.delay_ms = 1 + rng.below(800);
    // Clocks apart by less than the 60 s CONNECT limit.
    p.sides[1].skew = i64::try_from(rng.below(100)).unwrap() - 50;
    if p.sides[1].skew != 0 {
        p.restart(1, true);
    }
    let mut faults: VecDeque<u64> = (0..rng.below(14)).map(|_| rng.below(900_000)).collect();
    faults.make_contiguous().sort_unstable();
    let end_of_faults = 900_000;
    while p.now < end_of_faults {
        let next_fault = faults.front().copied().unwrap_or(end_of_faults);
        let before = p.now;
        if p.next_time().is_some_and(|t| t <= next_fault) {
            p.step();
        } else {
            p.now = next_fault;
            if faults.pop_front().is_some() {
                fault(&mut p, &mut rng, takeover);
            }
        }
        check(&p, seed);
        assert!(
            p.steps < 400_000,
            "seed {seed}: livelock, {} steps by {} ms",
            p.steps,
            p.now
        );
        assert!(p.now >= before);
    }
    // Faults over: heal, restart the dead, and the pair must reach NORMAL.
    p.heal();
    for i in 0..2 {
        if !p.sides[i].is_up() {
            p.restart(i, false);
        }
    }
    let limit = 3 * u64::from(mclt) + 200;
    let ok = p.drive_bounded(limit, |p| {
        check(p, seed);
        both(S::Normal)(p)
    });
    assert!(
        ok,
        "seed {seed}: not NORMAL {limit} s after the faults: {:?}\nA: {:?}\nB: {:?}",
        p.states(),
        p.sides[0].history,
        p.sides[1].history
    );
    p.sides
        .iter()
        .flat_map(|s| s.history.iter().map(|(_, _, to)| *to))
        .collect()
}

fn fault(p: &mut Pair, rng: &mut Rng, takeover: usize) {
    match rng.below(7) {
        0 => p.partition(),
        1 => p.heal(),
        2 => p.reset_link(),
        3 => {
            let i = usize::try_from(rng.below(2)).unwrap();
            if p.sides[i].is_up() {
                p.kill(i);
            }
        }
        4 => {
            // The operator's partner-down, last known up a little before the current state.
            if let Some(s) = p.sides[takeover].session.as_ref() {
                let f = s.fsm();
                let back = u32::try_from(rng.below(60)).unwrap();
                let since = UnixTime(f.stos().0.saturating_sub(back));
                // Refused outside COMM-INT and RES-INT, which is part of what is tested.
                let _ = p.sim.with(takeover, |s, now| s.partner_down(now, since));
            }
        }
        _ => {
            let i = usize::try_from(rng.below(2)).unwrap();
            if !p.sides[i].is_up() {
                p.restart(i, rng.chance(30));
            }
        }
    }
}

fn check(p: &Pair, seed: u64) {
    // Quiet, connected link: each side knows the other's state, and NORMAL is only ever
    // paired with NORMAL.
    if let [Some(a), Some(b)] =
        [&p.sides[0].session, &p.sides[1].session].map(|s| s.as_ref().map(Session::fsm))
    {
        // Not partitioned either: a partition drops what is sent, so an empty queue proves
        // nothing until the receive timers close the link.
        let quiet = !p.partitioned && p.quiet() && p.linked();
        if quiet && a.is_connected() && b.is_connected() {
            let (ea, eb) = (a.persisted().my_state, b.persisted().my_state);
            assert_eq!(
                a.partner_state(),
                Some(eb),
                "seed {seed}: A's view of B at {} ms\nA: {:?}\nB: {:?}",
                p.now,
                p.sides[0].history,
                p.sides[1].history
            );
            assert_eq!(
                b.partner_state(),
                Some(ea),
                "seed {seed}: B's view of A at {} ms\nA: {:?}\nB: {:?}",
                p.now,
                p.sides[0].history,
                p.sides[1].history
            );
            if ea == S::Normal || eb == S::Normal {
                assert_eq!(
                    (ea, eb),
                    (S::Normal, S::Normal),
                    "seed {seed}: NORMAL beside another state on a quiet link at {} ms\nA: {:?}\nB: {:?}",
                    p.now,
                    p.sides[0].history,
                    p.sides[1].history
                );
            }
        }
    }
    let kinds: Vec<Option<StateKind>> = p
        .sides
        .iter()
        .map(|s| s.session.as_ref().map(|s| s.fsm().kind()))
        .collect();
    assert!(
        kinds != [Some(S::PartnerDown), Some(S::PartnerDown)],
        "seed {seed}: both in PARTNER-DOWN at {} ms\nA: {:?}\nB: {:?}",
        p.now,
        p.sides[0].history,
        p.sides[1].history
    );
    for (i, s) in p.sides.iter().enumerate() {
        if let Some(f) = s.session.as_ref().map(Session::fsm) {
            // No automatic action may shut a side down: that would be an illegal peer state.
            assert_ne!(
                f.kind(),
                S::Shutdown,
                "seed {seed}: side {i} shut down at {} ms\nA: {:?}\nB: {:?}",
                p.now,
                p.sides[0].history,
                p.sides[1].history
            );
            if let State::RecoverWait { until } = f.state() {
                // stos + MCLT on this side's wall clock, as a virtual-clock instant.
                let end_secs =
                    i64::from(f.stos().0) + i64::from(f.mclt()) - i64::from(BASE_WALL) - s.skew;
                let end = u64::try_from(end_secs.max(0)).unwrap() * 1000 + 1000;
                assert!(
                    until.as_millis() <= end.max(p.now + 1000),
                    "seed {seed}: RECOVER-WAIT beyond stos+MCLT"
                );
            }
            let persisted = f.persisted();
            assert_ne!(
                persisted.my_state,
                S::Startup,
                "seed {seed}: STARTUP persisted"
            );
        }
    }
}

#[test]
fn config_validation() {
    let ok = Config::new("edge", Role::Primary);
    assert_eq!(ok.validate(), Ok(()));
    let mut c = ok.clone();
    c.name = vec![b'x'; 256];
    assert_eq!(c.validate(), Err(ConfigError::Name));
    c.name.clear();
    assert_eq!(c.validate(), Err(ConfigError::Name));
    let mut c = ok.clone();
    c.mclt = 0;
    assert_eq!(c.validate(), Err(ConfigError::Mclt));
    c.role = Role::Secondary;
    assert_eq!(c.validate(), Ok(()), "the secondary learns the MCLT");
    let mut c = ok.clone();
    c.max_response_delay = 0;
    assert_eq!(c.validate(), Err(ConfigError::MaxResponseDelay));
    let mut c = ok;
    c.max_unacked_updates = 0;
    assert_eq!(c.validate(), Err(ConfigError::MaxUnacked));
}

#[test]
fn driver_messages_get_fresh_xids_and_update_requests_are_answered_with_their_xid() {
    let mut p = normal_pair();
    let mut upd = Repr::new(MessageType::BndUpd, UnixTime(0), 0);
    upd.options.assigned_ip = Some(std::net::Ipv4Addr::new(10, 0, 1, 5));
    upd.options.binding_status = Some(2);
    let x1 = p.with(0, |f, now| f.send(now, &upd, None)).unwrap();
    let x2 = p.with(0, |f, now| f.send(now, &upd, None)).unwrap();
    assert!(x1 != 0 && x2 != 0 && x1 != x2);
    let ack = Repr::new(MessageType::BndAck, UnixTime(0), 0);
    assert_eq!(p.with(1, |f, now| f.send(now, &ack, Some(x1))), Some(x1));
    let big = vec![0u8; 3000];
    let mut huge = upd;
    huge.options.client_id = Some(&big);
    assert_eq!(p.with(0, |f, now| f.send(now, &huge, None)), None);
    // UPDREQ from the primary, answered by the session with UPDDONE and its xid, once.
    let done = |p: &Pair| {
        p.sides[1]
            .sent
            .iter()
            .filter(|t| **t == MessageType::UpdDone)
            .count()
    };
    let before = done(&p);
    p.partition();
    p.run_for(25);
    p.sim
        .with(0, |s, now| s.partner_down(now, now.wall))
        .unwrap();
    p.heal();
    assert!(p.drive_bounded(30, |p| {
        p.sides[1]
            .events
            .contains(&Event::UpdateRequest { all: false })
    }));
    assert_eq!(done(&p), before + 1);
    // Nothing to answer twice.
    let sent = p.sides[1].sent.len();
    p.with(1, |f, now| f.update_done(now));
    assert_eq!(p.sides[1].sent.len(), sent);
    assert!(p.drive_bounded(60, both(S::Normal)), "{:?}", p.states());
    // Not connected: nothing sent.
    p.reset_link();
    assert_eq!(p.with(0, |f, now| f.send(now, &upd, None)), None);
}

#[test]
fn shared_secret_signs_and_checks_every_message() {
    let secret = |c: &mut Config, k: &[u8]| c.shared_secret = Some(k.to_vec());
    let (mut a, mut b) = (
        config("edge", Role::Primary, 60),
        config("edge", Role::Secondary, 60),
    );
    secret(&mut a, b"s3cret");
    secret(&mut b, b"s3cret");
    let mut p = Pair::new(a.clone(), b.clone(), None, None);
    assert!(p.drive_bounded(60, both(S::Normal)), "{:?}", p.states());
    p.run_for(30);
    assert_eq!(p.states(), (S::Normal, S::Normal));
    // Different secrets: the secondary refuses the CONNECT (reject 20), nothing connects.
    secret(&mut b, b"other");
    let mut p = Pair::new(a.clone(), b, None, None);
    p.run_for(60);
    assert!(!p.sides[0].fsm().is_connected() && !p.sides[1].fsm().is_connected());
    assert!(
        p.fsm_closes(1)
            .contains(&CloseReason::Rejected(RejectReason::DigestFailed))
    );
    // A peer without the secret: its messages carry no digest (reject 21).
    let mut p = Pair::new(a, config("edge", Role::Secondary, 60), None, None);
    p.run_for(60);
    assert!(!p.sides[0].fsm().is_connected());
    assert!(
        p.fsm_closes(0)
            .contains(&CloseReason::Rejected(RejectReason::DigestMissing))
    );
    let mut c = Config::new("edge", Role::Primary);
    c.shared_secret = Some(Vec::new());
    assert_eq!(c.validate(), Err(ConfigError::EmptySecret));
}

#[test]
fn unparseable_frames_close_the_link() {
    let mut p = normal_pair();
    // A whole frame (length 12) that is no failover message, on the secondary's link.
    let link = p.sides[1].link().expect("linked");
    p.sim.with(1, |s, now| {
        s.handle_bytes(now, link, &[0, 12, 13, 12, 0, 0, 0, 0, 0, 0, 0, 1])
    });
    assert_eq!(p.fsm_closes(1), vec![CloseReason::ProtocolError]);
    assert!(!p.sides[1].fsm().is_connected());
    assert_eq!(p.sides[1].link(), None);
}

/// Seeds that once failed, kept as regressions: 12 and 2416 (liveness gaps in ISC's table),
/// 587 (CONFLICT-DONE meeting RECOVER), 2630 (harness: partition dropped TCP bytes), 6939
/// (operator's partner-down racing a reconnect).
#[test]
fn randomized_regression_seeds() {
    for seed in [12, 587, 2416, 2630, 6939] {
        run_seed(seed);
    }
}

/// The race of seed 6939, spelled out: the operator declares partner-down just after the link
/// comes back, while our STATE(COMMUNICATIONS-INTERRUPTED) is already on its way. The peer
/// goes NORMAL on it and then meets our PARTNER-DOWN; we meet its stale NORMAL. ISC would shut
/// down on both; we resolve through POTENTIAL-CONFLICT.
#[test]
fn partner_down_racing_a_reconnect_resolves() {
    let mut p = normal_pair();
    p.partition();
    p.run_for(25);
    assert_eq!(
        p.states(),
        (S::CommunicationsInterrupted, S::CommunicationsInterrupted)
    );
    p.delay_ms = 300;
    p.heal();
    assert!(p.drive_bounded(30, |p| p.sides[1].fsm().is_connected()));
    p.sim
        .with(1, |s, now| s.partner_down(now, now.wall))
        .unwrap();
    assert!(p.drive_bounded(60, both(S::Normal)), "{:?}", p.states());
    for i in 0..2 {
        assert!(!p.visited(i, S::Shutdown), "{:?}", p.sides[i].history);
        assert!(p.visited(i, S::PotentialConflict));
    }
    // The race happened: the primary went NORMAL on the stale STATE, then met PARTNER-DOWN.
    let a: Vec<(StateKind, StateKind)> = p.sides[0]
        .history
        .iter()
        .map(|(_, f, t)| (*f, *t))
        .collect();
    let race = [
        (S::CommunicationsInterrupted, S::Normal),
        (S::Normal, S::PotentialConflict),
    ];
    assert!(a.windows(2).any(|w| w == race), "{a:?}");
    assert!(p.visited(0, S::ConflictDone));
}

#[test]
fn batching_is_negotiated_by_vendor_class() {
    // Two tandem peers take batched BNDUPDs from each other.
    let p = normal_pair();
    assert!(p.sides.iter().all(|s| s.fsm().partner_batches()));
    // A peer that calls itself ISC gets one binding per message, in both directions.
    let mut isc = config("r", Role::Secondary, 60);
    isc.vendor_class = b"isc-4.4.3".to_vec();
    let mut p = Pair::new(config("r", Role::Primary, 60), isc, None, None);
    assert!(p.drive_bounded(120, both(S::Normal)), "{:?}", p.states());
    assert!(!p.sides[0].fsm().partner_batches(), "primary toward ISC");
    assert!(
        p.sides[1].fsm().partner_batches(),
        "ISC side sees a tandem primary"
    );
    let mut isc = config("r", Role::Primary, 60);
    isc.vendor_class = b"isc-4.4.3".to_vec();
    let mut p = Pair::new(isc, config("r", Role::Secondary, 60), None, None);
    assert!(p.drive_bounded(120, both(S::Normal)), "{:?}", p.states());
    assert!(!p.sides[1].fsm().partner_batches(), "secondary toward ISC");
}

/// A `tracing` writer into a shared buffer, to count the lines a flood causes.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_connection_flood_from_strangers_is_logged_at_a_bounded_rate() {
    use control::failover::session::{LinkId, Origin};
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let mut p = Pair::fresh(60);
    assert!(p.drive_bounded(60, both(S::Normal)), "{:?}", p.states());
    let stranger = std::net::Ipv4Addr::new(192, 0, 2, 66);
    tracing::subscriber::with_default(subscriber, || {
        for n in 0..2000 {
            p.sim.with(1, |s, now| {
                s.handle_link_up(now, LinkId(1_000_000 + n), Origin::Accepted, stranger);
            });
        }
    });
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines = text
        .lines()
        .filter(|l| l.contains("unknown address refused"))
        .count();
    assert_eq!(lines, control::failover::loglimit::BURST as usize, "{text}");
    // Every one was refused, and the pair never noticed.
    let refused = p.sides[1]
        .closes
        .iter()
        .filter(|c| **c == Cause::UnknownPeer)
        .count();
    assert_eq!(refused, 2000);
    assert!(p.drive_bounded(5, both(S::Normal)), "{:?}", p.states());
}

/// Two machines sharing a secret, connected by hand: the bytes each sent, to deliver or to
/// replay.
struct Signed {
    p: Fsm,
    s: Fsm,
    now: Now,
}

impl Signed {
    fn new() -> Self {
        let now = Now {
            instant: Instant::ZERO,
            wall: UnixTime(BASE_WALL),
        };
        let cfg = |role, seed| {
            let mut c = config("edge", role, 60);
            c.shared_secret = Some(b"s3cret".to_vec());
            c.nonce_seed = [seed; 32];
            c
        };
        let mut x = Self {
            p: Fsm::new(cfg(Role::Primary, 1), None, now),
            s: Fsm::new(cfg(Role::Secondary, 2), None, now),
            now,
        };
        x.connect();
        x
    }

    fn connect(&mut self) {
        self.p.handle_connected(self.now);
        self.s.handle_connected(self.now);
        self.exchange();
        assert!(
            self.p.is_connected() && self.s.is_connected(),
            "{:?} {:?}",
            self.closes(0),
            self.closes(1)
        );
    }

    /// Delivers what both have written until neither has more.
    fn exchange(&mut self) {
        for _ in 0..10 {
            let (a, b) = (self.out(0), self.out(1));
            if a.is_empty() && b.is_empty() {
                return;
            }
            for m in a {
                self.s.handle_frame(self.now, &m);
            }
            for m in b {
                self.p.handle_frame(self.now, &m);
            }
        }
    }

    /// What side `i` (0 the primary) has written since last asked.
    fn out(&mut self, i: usize) -> Vec<Vec<u8>> {
        let f = if i == 0 { &mut self.p } else { &mut self.s };
        std::iter::from_fn(|| f.poll_transmit().map(|t| t.bytes)).collect()
    }

    fn closes(&mut self, i: usize) -> Vec<CloseReason> {
        let f = if i == 0 { &mut self.p } else { &mut self.s };
        std::iter::from_fn(|| f.poll_event())
            .filter_map(|e| match e {
                Event::CloseLink { reason, .. } => Some(reason),
                _ => None,
            })
            .collect()
    }
}

/// Replay protection between tandem peers: a message recorded on a link and played again,
/// on the same link or on a later one, fails its digest and the link is dropped.
#[test]
fn a_replayed_message_is_refused() {
    let contact = Repr::new(MessageType::Contact, UnixTime(BASE_WALL), 0);
    // The same message twice on one link: the second is refused.
    let mut x = Signed::new();
    x.exchange();
    x.closes(1);
    x.p.send(x.now, &contact, None).expect("connected");
    let recorded = x.out(0).pop().expect("CONTACT written");
    x.s.handle_frame(x.now, &recorded);
    assert_eq!(x.closes(1), vec![]);
    assert!(x.s.is_connected());
    x.s.handle_frame(x.now, &recorded);
    assert_eq!(
        x.closes(1),
        vec![CloseReason::Rejected(RejectReason::DigestFailed)]
    );
    assert!(!x.s.is_connected());

    // Recorded on one link, played on the next: refused though it was never seen there.
    let mut x = Signed::new();
    x.exchange();
    x.p.send(x.now, &contact, None).expect("connected");
    let recorded = x.out(0).pop().expect("CONTACT written");
    x.p.handle_disconnected(x.now);
    x.s.handle_disconnected(x.now);
    x.connect();
    x.closes(1);
    x.s.handle_frame(x.now, &recorded);
    assert_eq!(
        x.closes(1),
        vec![CloseReason::Rejected(RejectReason::DigestFailed)]
    );

    // A CONNECTACK recorded for one CONNECT does not answer another.
    let mut x = Signed::new();
    x.p.handle_disconnected(x.now);
    x.s.handle_disconnected(x.now);
    x.p.handle_connected(x.now);
    x.s.handle_connected(x.now);
    let connect = x.out(0);
    for m in &connect {
        x.s.handle_frame(x.now, m);
    }
    let answer = x.out(1);
    x.p.handle_disconnected(x.now);
    x.p.handle_connected(x.now);
    x.out(0);
    x.closes(0);
    x.p.handle_frame(x.now, &answer[0]);
    assert!(!x.p.is_connected());
    assert_eq!(
        x.closes(0),
        vec![CloseReason::Rejected(RejectReason::DigestFailed)]
    );
}

// ---- STARTUP against a partner in PARTNER-DOWN (draft §9.3.2 step 5; issue #13 item 6) ----

/// Side `i`'s state changes from `t0` (ms) on.
fn history_since(p: &Pair, i: usize, t0: u64) -> Vec<(StateKind, StateKind)> {
    p.sides[i]
        .history
        .iter()
        .filter(|(t, _, _)| *t >= t0)
        .map(|(_, f, t)| (*f, *t))
        .collect()
}

/// Where side `i` (restarted at `t0`, its events cleared then) went when it left STARTUP,
/// checking that it left only on the partner's STATE: its first state change follows the
/// first partner state it heard, so it was never NORMAL before it knew the partner's state,
/// not even within one read.
fn left_startup(p: &Pair, i: usize, t0: u64) -> StateKind {
    let h = history_since(p, i, t0);
    let Some(&(from, to)) = h.first() else {
        panic!("side {i} never left STARTUP: {:?}", p.sides[i].history)
    };
    assert_eq!(from, S::Startup, "{h:?}");
    let events = &p.sides[i].events;
    let first = |f: fn(&Event) -> bool| events.iter().position(f);
    let heard = first(|e| matches!(e, Event::PartnerStateChanged { .. }));
    let left = first(|e| matches!(e, Event::StateChanged { .. }));
    assert!(
        heard.is_some() && heard < left,
        "side {i} left STARTUP for {to:?} before hearing the partner's state: {events:?}"
    );
    to
}

/// Drives until both are NORMAL, checking at every step that the restarted side `i` (its
/// events cleared at the restart) serves nobody before it has heard the partner's state.
fn drive_to_normal_checking(p: &mut Pair, i: usize, secs: u64) {
    let ok = p.drive_bounded(secs, |p| {
        let f = p.sides[i].fsm();
        let heard = p.sides[i]
            .events
            .iter()
            .any(|e| matches!(e, Event::PartnerStateChanged { .. }));
        if !heard || f.kind() == S::Startup {
            assert!(
                matches!(f.service(), Service::Startup | Service::NotResponding),
                "side {i} serves ({:?}) in {:?} before the partner's state",
                f.service(),
                f.kind()
            );
        }
        both(S::Normal)(p)
    });
    assert!(
        ok,
        "not NORMAL: {:?}\nA: {:?}\nB: {:?}",
        p.states(),
        p.sides[0].history,
        p.sides[1].history
    );
}

/// Kills `victim` in NORMAL; the survivor goes COMMUNICATIONS-INTERRUPTED, and `delay` s
/// later the operator puts it in PARTNER-DOWN; `down` s after the kill the victim restarts
/// from what it stored (the caller may edit it first). Returns the restart time (ms).
fn kill_then_partner_down(
    p: &mut Pair,
    victim: usize,
    delay: u64,
    down: u64,
    edit: impl FnOnce(&mut PersistedState),
) -> u64 {
    let survivor = 1 - victim;
    // Operating for a while: the last time of operation is recorded as it goes.
    p.run_for(23);
    let last = p
        .persisted(victim)
        .unwrap()
        .last_operation
        .expect("recorded");
    let interval = u32::try_from(fsm::OPERATION_RECORD_INTERVAL.as_secs()).unwrap();
    assert!(
        last.0 + interval >= p.wall(victim).0 && last <= p.wall(victim),
        "last operation {last:?} at {:?}",
        p.wall(victim)
    );
    p.kill(victim);
    p.run_for(1);
    assert_eq!(p.state(survivor), S::CommunicationsInterrupted);
    p.run_for(delay);
    let since = UnixTime(p.wall(survivor).0 - u32::try_from(delay).unwrap());
    p.sim
        .with(survivor, |s, now| s.partner_down(now, since))
        .unwrap();
    assert_eq!(p.state(survivor), S::PartnerDown);
    p.run_for(down.saturating_sub(delay + 1));
    let mut kept = p.kept[victim].expect("stored state");
    assert_eq!(kept.my_state, S::Normal);
    assert_eq!(
        kept.last_operation,
        Some(last),
        "nothing recorded after the kill"
    );
    edit(&mut kept);
    p.kept[victim] = Some(kept);
    let t0 = p.now;
    p.sides[victim].events.clear();
    p.start(victim);
    // STARTUP keeps the stored last operation: it is not operating.
    assert_eq!(
        p.persisted(victim).unwrap().last_operation,
        kept.last_operation
    );
    t0
}

/// The fault test of issue #13 item 6, for either side killed: it stopped while NORMAL, the
/// operator put its partner in PARTNER-DOWN well after, and on restart it goes to RECOVER
/// (draft §9.3.2 step 5) on the partner's STATE, never NORMAL before it; asks for every
/// binding, and with the MCLT (60 s) since it went down already over, skips RECOVER-WAIT
/// (§9.6.2); the partner goes NORMAL on RECOVER-DONE (§9.4.3), then it does. Before the fix
/// the primary went STARTUP → NORMAL on CONNECTACK, then POTENTIAL-CONFLICT.
#[test]
fn killed_in_normal_recovers_when_the_partner_went_down_after() {
    for victim in [0, 1] {
        let mut p = normal_pair();
        let t0 = kill_then_partner_down(&mut p, victim, 60, 120, |_| {});
        drive_to_normal_checking(&mut p, victim, 200);
        assert_eq!(
            left_startup(&p, victim, t0),
            S::Recover,
            "victim {victim}: {:?}",
            history_since(&p, victim, t0)
        );
        assert_eq!(
            history_since(&p, victim, t0),
            vec![
                (S::Startup, S::Recover),
                (S::Recover, S::RecoverDone),
                (S::RecoverDone, S::Normal),
            ],
            "victim {victim}"
        );
        assert_eq!(
            history_since(&p, 1 - victim, t0),
            vec![(S::PartnerDown, S::Normal)],
            "survivor of victim {victim}"
        );
        assert!(p.sides[victim].sent.contains(&MessageType::UpdReqAll));
    }
}

/// Back sooner than the MCLT after going down: RECOVER-WAIT lasts until the MCLT has passed
/// since then, by the stored last time of operation (draft §9.6.2), not from the restart
/// and not from when NORMAL began.
#[test]
fn recover_wait_counts_the_mclt_from_when_we_went_down() {
    let mut p = normal_pair();
    let t0 = kill_then_partner_down(&mut p, 0, 10, 30, |_| {});
    let last = p.kept[0].unwrap().last_operation.unwrap();
    assert!(
        p.drive_bounded(30, |p| p.state(0) == S::RecoverWait),
        "{:?}",
        history_since(&p, 0, t0)
    );
    assert_eq!(left_startup(&p, 0, t0), S::Recover);
    let went_down = last.0 + fsm::PARTNER_DOWN_MARGIN;
    assert_eq!(p.sides[0].fsm().stos().0, went_down);
    let State::RecoverWait { until } = p.sides[0].fsm().state() else {
        unreachable!()
    };
    let end_wall = went_down + p.sides[0].fsm().mclt();
    let end_ms = u64::from(end_wall - BASE_WALL) * 1000;
    assert!(
        until.as_millis() <= end_ms + 1000 && until.as_millis() + 1000 >= end_ms,
        "until {until:?}, expected about {end_ms} ms"
    );
    drive_to_normal_checking(&mut p, 0, 120);
    assert!(p.visited(0, S::RecoverDone));
}

/// The other half of step 5: the partner entered PARTNER-DOWN before our last time of
/// operation (a partition: we served on in COMMUNICATIONS-INTERRUPTED while the operator
/// took the partner to PARTNER-DOWN), so both may have served: POTENTIAL-CONFLICT, not
/// RECOVER, and still nothing served before the partner's STATE.
#[test]
fn partner_down_before_our_last_operation_gives_potential_conflict() {
    let mut p = normal_pair();
    p.partition();
    p.run_for(25);
    p.sim
        .with(1, |s, now| s.partner_down(now, now.wall))
        .unwrap();
    // The primary serves on, cut off, and records its operation; then it dies.
    p.run_for(60);
    assert_eq!(p.state(0), S::CommunicationsInterrupted);
    p.kill(0);
    p.heal();
    p.run_for(30);
    let t0 = p.now;
    p.sides[0].events.clear();
    p.start(0);
    drive_to_normal_checking(&mut p, 0, 200);
    assert_eq!(left_startup(&p, 0, t0), S::PotentialConflict);
    assert!(
        history_since(&p, 0, t0)
            .iter()
            .all(|(_, to)| *to != S::Recover)
    );
    assert!(p.visited(0, S::ConflictDone));
}

/// A state file from before the last time of operation was kept (`None`): the time the
/// partner entered PARTNER-DOWN cannot be compared, and the safe way is POTENTIAL-CONFLICT,
/// which exchanges both sides' updates; still never NORMAL first.
#[test]
fn unknown_last_operation_gives_potential_conflict() {
    let mut p = normal_pair();
    let t0 = kill_then_partner_down(&mut p, 0, 60, 120, |s| s.last_operation = None);
    drive_to_normal_checking(&mut p, 0, 200);
    assert_eq!(left_startup(&p, 0, t0), S::PotentialConflict);
    assert!(
        history_since(&p, 0, t0)
            .iter()
            .all(|(_, to)| *to != S::Recover)
    );
}

/// The partner's start time of state is on its clock: the STATE's header time moves it to
/// ours. Partner 50 s ahead, PARTNER-DOWN 3 s after we stopped: not "after" by the margin
/// (uncorrected it would look 53 s later). Partner 50 s behind, PARTNER-DOWN 40 s after:
/// after (uncorrected it would look 10 s earlier).
#[test]
fn partner_down_time_is_read_on_our_clock() {
    for (skew, delay, expect) in [(50, 3, S::PotentialConflict), (-50, 40, S::Recover)] {
        let mut p = Pair::fresh(60);
        p.sides[1].skew = skew;
        p.restart(1, true);
        assert!(p.drive_bounded(200, both(S::Normal)), "{:?}", p.states());
        let t0 = kill_then_partner_down(&mut p, 0, delay, 90, |_| {});
        drive_to_normal_checking(&mut p, 0, 300);
        assert_eq!(
            left_startup(&p, 0, t0),
            expect,
            "skew {skew}: {:?}",
            history_since(&p, 0, t0)
        );
    }
}

/// The last time of operation is recorded every few seconds while operating, and at the
/// orderly stop, whose SHUTDOWN is not stored.
#[test]
fn last_operation_is_recorded_while_operating_and_at_shutdown() {
    let mut p = normal_pair();
    let interval = u32::try_from(fsm::OPERATION_RECORD_INTERVAL.as_secs()).unwrap();
    for _ in 0..5 {
        p.run_for(7);
        let last = p.persisted(0).unwrap().last_operation.unwrap();
        assert!(
            last.0 + interval >= p.wall(0).0,
            "{last:?} at {:?}",
            p.wall(0)
        );
    }
    p.run_for(3);
    p.sim.with(0, |s, now| s.shutdown(now));
    let stored = p.persisted(0).unwrap();
    assert_eq!(stored.my_state, S::Normal);
    assert_eq!(stored.last_operation, Some(p.wall(0)));
}
