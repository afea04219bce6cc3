//! The MCLT rule for lease times and the PARTNER-DOWN reclaim rule
//! (`reference/failover-protocol.md` §3.2, §3.4; ISC `dhcp.c:2887-2945`,
//! `failover.c:6341-6446`).

use control::failover::Role;
use control::failover::fsm::StateKind;
use control::failover::mclt::{
    lease_time_for, lease_time_limit, may_reallocate, partner_known_expiry, tstp_after_ack,
};
use lease_mmap::{BindingState, Lease, Owner, UnixTime};
use proptest::prelude::*;

const NOW: UnixTime = UnixTime(1_700_000_000);
const MCLT: u32 = 3600;

fn lease(state: BindingState, tsfp: u32, atsfp: u32) -> Lease {
    Lease {
        state,
        tsfp: UnixTime(tsfp),
        atsfp: UnixTime(atsfp),
        ..Lease::default()
    }
}

#[test]
fn short_leases_are_not_limited() {
    let l = lease(BindingState::Free, 0, 0);
    assert_eq!(lease_time_limit(NOW, 600, MCLT, &l), 600);
    assert_eq!(lease_time_limit(NOW, MCLT, MCLT, &l), MCLT);
}

#[test]
fn a_new_lease_gets_the_mclt() {
    // Nothing the partner knows lies in the future: MCLT (dhcp.c:2905-2906).
    let l = lease(BindingState::Free, 0, 0);
    assert_eq!(lease_time_limit(NOW, 86_400, MCLT, &l), MCLT);
    let l = lease(BindingState::Active, NOW.0, NOW.0 - 5);
    assert_eq!(lease_time_limit(NOW, 86_400, MCLT, &l), MCLT);
}

#[test]
fn an_acknowledged_lease_extends_to_known_plus_mclt() {
    // The partner acknowledged an expiry 2 h ahead: at most 2 h + MCLT.
    let l = lease(BindingState::Active, 0, NOW.0 + 7200);
    assert_eq!(lease_time_limit(NOW, 86_400, MCLT, &l), 7200 + MCLT);
    // The desired time fits: given whole.
    assert_eq!(lease_time_limit(NOW, 9000, MCLT, &l), 9000);
    // tsfp (the partner's own potential expiry) counts the same.
    let l = lease(BindingState::Active, NOW.0 + 7200, 0);
    assert_eq!(lease_time_limit(NOW, 86_400, MCLT, &l), 7200 + MCLT);
    assert_eq!(
        partner_known_expiry(&lease(BindingState::Active, 5, 9)),
        UnixTime(9)
    );
}

#[test]
fn lease_time_only_in_serving_states() {
    let l = lease(BindingState::Free, 0, 0);
    for s in [
        StateKind::Normal,
        StateKind::CommunicationsInterrupted,
        StateKind::PartnerDown,
    ] {
        assert_eq!(lease_time_for(s, NOW, 86_400, MCLT, &l), Some(MCLT));
    }
    for s in [
        StateKind::Startup,
        StateKind::Recover,
        StateKind::RecoverWait,
        StateKind::RecoverDone,
        StateKind::PotentialConflict,
        StateKind::ResolutionInterrupted,
        StateKind::ConflictDone,
        StateKind::Paused,
        StateKind::Shutdown,
    ] {
        assert_eq!(lease_time_for(s, NOW, 86_400, MCLT, &l), None, "{s:?}");
    }
}

#[test]
fn tstp_after_ack_adds_half_the_granted_time() {
    // dhcp.c:2918-2934: now + desired + granted / 2.
    assert_eq!(
        tstp_after_ack(NOW, 86_400, 3600),
        UnixTime(NOW.0 + 86_400 + 1800)
    );
    assert_eq!(tstp_after_ack(NOW, u32::MAX, 3600), UnixTime(u32::MAX));
    assert_eq!(
        tstp_after_ack(UnixTime(u32::MAX - 10), 100, 100),
        UnixTime(u32::MAX)
    );
}

proptest! {
    /// The expiry given never passes max(now, known) + MCLT, and is never above desired.
    #[test]
    fn mclt_bound_holds(now in 1u32..2_000_000_000, desired in 0u32..10_000_000, mclt in 0u32..1_000_000,
                        tsfp in 0u32..2_100_000_000, atsfp in 0u32..2_100_000_000) {
        let l = lease(BindingState::Active, tsfp, atsfp);
        let now = UnixTime(now);
        let t = lease_time_limit(now, desired, mclt, &l);
        prop_assert!(t <= desired.max(mclt.min(desired)));
        let known = u64::from(partner_known_expiry(&l).0.max(now.0));
        if desired > mclt {
            prop_assert!(u64::from(now.0) + u64::from(t) <= known + u64::from(mclt));
            prop_assert!(t >= mclt, "never below the MCLT when more was wanted");
        }
    }
}

#[test]
fn reallocation_rules() {
    let since = UnixTime(NOW.0 - 10_000);
    let free = lease(BindingState::Free, 0, 0);
    let backup = lease(BindingState::Backup, 0, 0);
    let at = |l: &Lease, role, state, now| may_reallocate(l, role, state, MCLT, since, now);
    // Own free state: always.
    assert!(at(&free, Role::Primary, StateKind::Normal, NOW));
    assert!(at(
        &backup,
        Role::Secondary,
        StateKind::CommunicationsInterrupted,
        NOW
    ));
    // The partner's free state: only in PARTNER-DOWN, after since + MCLT.
    assert!(!at(&backup, Role::Primary, StateKind::Normal, NOW));
    assert!(!at(
        &backup,
        Role::Primary,
        StateKind::CommunicationsInterrupted,
        NOW
    ));
    assert!(at(&backup, Role::Primary, StateKind::PartnerDown, NOW));
    let early = UnixTime(since.0 + MCLT);
    assert!(!at(&backup, Role::Primary, StateKind::PartnerDown, early));
    assert!(at(
        &backup,
        Role::Primary,
        StateKind::PartnerDown,
        UnixTime(early.0 + 1)
    ));
    // A later tsfp pushes it further (max(stos, tsfp) + MCLT).
    let late = lease(BindingState::Free, NOW.0, 0);
    assert!(!at(
        &late,
        Role::Secondary,
        StateKind::PartnerDown,
        UnixTime(NOW.0 + MCLT)
    ));
    assert!(at(
        &late,
        Role::Secondary,
        StateKind::PartnerDown,
        UnixTime(NOW.0 + MCLT + 1)
    ));
    // A binding that ran out (ACTIVE, RESET; EXPIRED and RELEASED not acknowledged as ours):
    // only in PARTNER-DOWN, once max(since, tsfp, tstp) + MCLT has passed, for the partner may
    // have renewed it up to what it knew.
    let mut active = lease(BindingState::Active, NOW.0, 0);
    active.tstp = UnixTime(NOW.0 + 100);
    let reclaim = UnixTime(NOW.0 + 100 + MCLT);
    for state in [StateKind::Normal, StateKind::CommunicationsInterrupted] {
        assert!(!at(&active, Role::Primary, state, UnixTime(u32::MAX)));
    }
    assert!(!at(&active, Role::Primary, StateKind::PartnerDown, reclaim));
    assert!(at(
        &active,
        Role::Primary,
        StateKind::PartnerDown,
        UnixTime(reclaim.0 + 1)
    ));
    let reset = Lease {
        state: BindingState::Reset,
        ..active
    };
    assert!(!at(
        &reset,
        Role::Secondary,
        StateKind::Normal,
        UnixTime(u32::MAX)
    ));
    assert!(at(
        &reset,
        Role::Secondary,
        StateKind::PartnerDown,
        UnixTime(reclaim.0 + 1)
    ));
    // EXPIRED, RELEASED, ABANDONED: ours once the partner acknowledged that end (ISC's rewind
    // rule), in any state that serves; the partner's, or ours unacknowledged, as above.
    for state in [
        BindingState::Expired,
        BindingState::Released,
        BindingState::Abandoned,
    ] {
        let mut ended = lease(state, NOW.0, 0);
        ended.tstp = UnixTime(NOW.0 + 100);
        ended.owner = Owner::Us;
        assert!(
            !at(&ended, Role::Primary, StateKind::Normal, NOW),
            "{state:?}"
        );
        ended.atsfp = ended.tstp;
        assert!(
            at(&ended, Role::Primary, StateKind::Normal, NOW),
            "{state:?}"
        );
        assert!(at(
            &ended,
            Role::Secondary,
            StateKind::CommunicationsInterrupted,
            NOW
        ));
        ended.owner = Owner::Partner;
        assert!(
            !at(&ended, Role::Primary, StateKind::Normal, NOW),
            "{state:?}"
        );
        assert!(!at(&ended, Role::Primary, StateKind::PartnerDown, reclaim));
        assert!(at(
            &ended,
            Role::Primary,
            StateKind::PartnerDown,
            UnixTime(reclaim.0 + 1)
        ));
    }
    // OFFERED: only our own hold.
    let mut offered = lease(BindingState::Offered, 0, 0);
    offered.owner = Owner::Partner;
    assert!(!at(
        &offered,
        Role::Primary,
        StateKind::PartnerDown,
        UnixTime(u32::MAX)
    ));
    offered.owner = Owner::Us;
    assert!(at(&offered, Role::Primary, StateKind::Normal, NOW));
}
