//! Which binding wins when the partner sends one (draft §7, ISC `failover.c:5115-5505`,
//! reference §1.5, §3.1-3.3, §3.6), and the bookkeeping of a record around an update.
//!
//! [`judge`] is the decision on a received BNDUPD: ISC's dueling-update rule
//! (`failover_lease_is_better`) when we have our own update of the address in flight, then
//! `normal_binding_state_transition_check` in NORMAL and
//! `conflict_binding_state_transition_check` in every other state. [`installed`],
//! [`unacked`] and [`acknowledged`] are what a record becomes when the partner's binding is
//! installed, whether it still waits for the partner, and what its acknowledgement writes.

use lease_record::{BindingState, Lease, UnixTime};

use super::Role;
use super::binding::{Binding, BindingError};
use super::fsm::StateKind;
use super::msg::{BindingStatus, RejectReason};

/// ISC's allowance for clock skew when a primary expires an ACTIVE lease (`failover.c:6140`).
const EXPIRY_SKEW: u32 = 65;

/// The limits a partner's binding must keep before it is judged at all (none of them is
/// ISC's: they keep a rogue or broken peer from writing bindings no server would grant).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Our clock.
    pub now: UnixTime,
    /// Seconds a peer's clock may run ahead of ours (the CONNECT check's bound).
    pub max_clock_skew: u32,
    /// The longest lease the partner may grant, seconds.
    pub max_lease_time: u32,
    /// The relationship's MCLT, seconds.
    pub mclt: u32,
}

/// Checks a received binding against [`Bounds`]: its CLTT no later than now plus the
/// allowed skew, an ACTIVE lease ending no later than its CLTT plus the longest lease plus
/// MCLT, and no infinite ACTIVE lease outside a reservation (`reserved`: the address is not
/// in a pool). Refused with reject reason 254 and a message naming the bound.
///
/// The potential expiry is not bounded: ISC sends the lease time the client asked for
/// there, which may exceed ours, and a late one only delays the address's reuse.
pub fn check_bounds(b: &Binding, reserved: bool, bounds: &Bounds) -> Result<(), BindingError> {
    let refuse = |message| {
        Err(BindingError {
            reason: RejectReason::Unspecified,
            message,
        })
    };
    let latest = u64::from(bounds.now.0) + u64::from(bounds.max_clock_skew);
    if u64::from(b.cltt.0) > latest {
        return refuse("client last transaction time is in the future");
    }
    if b.status == BindingStatus::Active {
        if b.ends == UnixTime(u32::MAX) {
            if !reserved {
                return refuse("infinite lease outside a reservation");
            }
        } else {
            let from = if b.cltt.0 != 0 {
                b.cltt.0
            } else {
                bounds.now.0
            };
            let limit = u64::from(from) + u64::from(bounds.max_lease_time) + u64::from(bounds.mclt);
            if u64::from(b.ends.0) > limit {
                return refuse("lease ends later than the longest lease plus MCLT");
            }
        }
    }
    Ok(())
}

/// Whether a binding names the same client as a record: the client identifier when both
/// have one, else the hardware address (htype and address).
fn same_client(local: &Lease, incoming: &Binding) -> bool {
    if !local.client_id.is_empty() && !incoming.client_id.is_empty() {
        return local.client_id == incoming.client_id;
    }
    let n = usize::from(local.hlen.min(16));
    match incoming.chaddr() {
        Some([htype, mac @ ..]) => *htype == local.htype && mac == &local.chaddr[..n],
        // ISC sends no hardware address only for states without a client.
        _ => n == 0,
    }
}

/// What to do with a received binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Install the partner's binding and acknowledge it.
    Apply,
    /// Keep our record, acknowledge, and send ours to the partner (conflict resolution:
    /// ours wins, as ISC keeps its ACTIVE lease against a FREE from the peer).
    KeepOurs,
    /// Refuse with this BNDACK reject reason.
    Reject(BindingError),
    /// Refuse (the partner's update is older than our binding, reject reason 16) and send
    /// ours, so that the partner neither counts its update as acknowledged nor keeps it.
    Outdated,
    /// Install the partner's binding with its end put back to the longest the partner can
    /// have granted ([`repaired`]), acknowledge, and send ours: the partner's renewal came
    /// back with our older lease's end (see [`judge`]).
    Repair,
}

/// Our record's state as the failover rules see it: an ACTIVE lease past its end is
/// EXPIRED (ISC's timer would have moved it), an OFFERED hold is our free address.
fn effective(l: &Lease, now: UnixTime) -> BindingState {
    match l.state {
        BindingState::Active if l.ends != UnixTime(u32::MAX) && l.ends <= now => {
            BindingState::Expired
        }
        s => s,
    }
}

fn expired_enough(l: &Lease, now: UnixTime) -> bool {
    u64::from(l.ends.0) <= u64::from(now.0) + u64::from(EXPIRY_SKEW)
}

/// ISC `normal_binding_state_transition_check` (`failover.c:6061-6252`, reference §1.5):
/// may the partner, whose role is `sender`, move our record `local` to `to` in NORMAL?
pub fn normal_transition_ok(sender: Role, local: &Lease, to: BindingState, now: UnixTime) -> bool {
    let cur = effective(local, now);
    if cur == to {
        return true;
    }
    use BindingState as B;
    match cur {
        B::Free | B::Abandoned | B::Offered | B::Released => true,
        B::Active => match sender {
            // The client may release at the secondary.
            Role::Secondary => matches!(to, B::Released | B::Abandoned),
            Role::Primary => match to {
                B::Free | B::Backup => local.tsfp <= now,
                B::Expired => expired_enough(local, now),
                _ => true,
            },
        },
        B::Expired | B::Reset => match to {
            B::Free | B::Backup => local.tsfp <= now,
            _ => true,
        },
        // ISC accepts any move of a BACKUP address (a case fall-through, `failover.c:6215-6233`),
        // and so must we: the primary's ACTIVE on our BACKUP address is a lease it granted in
        // PARTNER-DOWN while we waited in RECOVER-WAIT, sent once it reached NORMAL. Refused,
        // we would give the address to a second client (found by `tests/failover_leases.rs`).
        B::Backup => true,
    }
}

/// ISC `conflict_binding_state_transition_check` (`failover.c:6254-6320`, reference §3.6):
/// outside NORMAL, does the partner's `incoming` binding beat our record `local`? Two ACTIVE
/// bindings are settled as dueling updates are (later CLTT; the primary on a tie).
///
/// Stricter than ISC: a RELEASED binding beats our live ACTIVE one only when it is later
/// (its CLTT after ours). ISC lets it win always, which loses the lease a client got from
/// us after releasing its old one at the partner (found by `tests/failover_leases.rs`).
pub fn conflict_peer_wins(us: Role, local: &Lease, incoming: &Binding, now: UnixTime) -> bool {
    if effective(local, now) != BindingState::Active {
        return true;
    }
    match incoming.status {
        BindingStatus::Free | BindingStatus::Backup => false,
        BindingStatus::Expired => expired_enough(local, now),
        BindingStatus::Released => incoming.cltt > local.cltt,
        BindingStatus::Reset | BindingStatus::Abandoned => true,
        BindingStatus::Active => {
            incoming.cltt > local.cltt || (incoming.cltt == local.cltt && us == Role::Secondary)
        }
    }
}

/// ISC `failover_lease_is_better` (`failover.c:5115-5168`, reference §3.6), for an address
/// both sides have an update in flight for: does the partner's `incoming` win over our
/// `local`?
///
/// Stricter than ISC where ISC would undo a lease a client holds: against our live ACTIVE
/// binding, the partner's EXPIRED, RELEASED or other non-ACTIVE update wins only when it
/// is later (its CLTT after ours). ISC lets EXPIRED always win and the primary win the
/// rest, which loses a renewal we granted while the partner expired its older copy, or the
/// lease a client took from us right after releasing its old one at the partner (both
/// found by `tests/failover_leases.rs`).
pub fn dueling_peer_wins(us: Role, local: &Lease, incoming: &Binding, now: UnixTime) -> bool {
    let peer_is_primary = us == Role::Secondary;
    match (effective(local, now), incoming.status) {
        (BindingState::Active, BindingStatus::Active) => {
            incoming.cltt > local.cltt || (incoming.cltt == local.cltt && peer_is_primary)
        }
        (_, BindingStatus::Active) => true,
        (BindingState::Active, _) => incoming.cltt > local.cltt,
        _ => peer_is_primary,
    }
}

/// The decision on a BNDUPD received in our `state`, for our record `local`;
/// `ours_in_flight` when we have sent an update of the same address that is not
/// acknowledged yet.
pub fn judge(
    us: Role,
    state: StateKind,
    local: &Lease,
    ours_in_flight: bool,
    incoming: &Binding,
    now: UnixTime,
) -> Verdict {
    if ours_in_flight && !dueling_peer_wins(us, local, incoming, now) {
        return Verdict::Reject(BindingError {
            reason: RejectReason::LessCriticalBindingInformation,
            message: "our update of this binding wins",
        });
    }
    // The partner's ACTIVE for the same client from a later transaction (its CLTT after
    // ours) that carries exactly our lease's end, and a start before that transaction: the
    // partner renewed the lease and then took our older binding over it. ISC dhcpd does
    // this: a BNDUPD it receives while its own update of the address waits in its queue is
    // installed whole (`failover.c:5212-5231` checks only the ACK queue) except the CLTT,
    // which it never takes from a message; the client holds the partner's grant, which
    // neither record remembers. Found by the fault campaign with ISC dhcpd (tandemd killed
    // after an MCLT-short grant, the client rebinding at dhcpd for an hour meanwhile, our
    // unacknowledged update sent on reconnect): both servers freed the address 3 s later.
    if matches!(local.state, BindingState::Active | BindingState::Expired)
        && incoming.status == BindingStatus::Active
        && same_client(local, incoming)
        && incoming.cltt > local.cltt
        && incoming.ends == local.ends
        && incoming.stos.0 != 0
        && incoming.stos < incoming.cltt
    {
        return Verdict::Repair;
    }
    // The end of an older transaction (its CLTT before ours) never undoes the live ACTIVE
    // binding we hold now: ours is sent instead. ISC would take an EXPIRED up to 65 s early
    // and any RELEASED, losing a lease a client holds (found by `tests/failover_leases.rs`).
    if effective(local, now) == BindingState::Active
        && matches!(
            incoming.status,
            BindingStatus::Expired | BindingStatus::Released
        )
        && incoming.cltt < local.cltt
    {
        return Verdict::Outdated;
    }
    // A live ACTIVE lease we granted and the partner has not acknowledged is news to it: its
    // FREE or BACKUP of the address is older knowledge (ISC would take a primary's FREE once
    // the stale `tsfp` passed). Ours is sent instead. Found by the fault campaign: a lease
    // granted while our clock ran ahead was refused by the partner (CLTT in the future), and
    // its FREE then freed the address for a second client.
    if effective(local, now) == BindingState::Active
        && unacked(local)
        && matches!(incoming.status, BindingStatus::Free | BindingStatus::Backup)
    {
        return Verdict::Outdated;
    }
    // The partner's ACTIVE for the same client from a transaction no later than ours but
    // ending sooner can only be an older copy of the lease: it would cut short a lease the
    // client holds. Ours is sent instead. Found by the fault campaign with ISC dhcpd: after
    // dueling updates, dhcpd's record kept our MCLT-short end under its own later renewal
    // (its CLTT) and sent that back, which took the hour it had granted from both tables.
    if effective(local, now) == BindingState::Active
        && incoming.status == BindingStatus::Active
        && same_client(local, incoming)
        && incoming.cltt <= local.cltt
        && incoming.ends < local.ends
    {
        return Verdict::Outdated;
    }
    let sender = match us {
        Role::Primary => Role::Secondary,
        Role::Secondary => Role::Primary,
    };
    if state == StateKind::Normal {
        // In NORMAL each server allocates only from its own free addresses: the partner's
        // ACTIVE for another client over a lease a client still holds would bind the
        // address twice. (Dueling updates were settled above, by CLTT.)
        if !ours_in_flight
            && effective(local, now) == BindingState::Active
            && incoming.status == BindingStatus::Active
            && !same_client(local, incoming)
        {
            return Verdict::Reject(BindingError {
                reason: RejectReason::FatalConflict,
                message: "address in use by another client",
            });
        }
        if normal_transition_ok(sender, local, incoming.status.to_lease(), now) {
            Verdict::Apply
        } else {
            Verdict::Reject(BindingError {
                reason: RejectReason::FatalConflict,
                message: "invalid binding state transition",
            })
        }
    } else if conflict_peer_wins(us, local, incoming, now) {
        Verdict::Apply
    } else {
        Verdict::KeepOurs
    }
}

/// Our record after installing the partner's binding: its fields (see
/// [`Binding::apply_to`]), and nothing of ours left to send (`tstp = atsfp = 0`), so the
/// partner's binding is not echoed back; the partner's knowledge is `tsfp`.
pub fn installed(local: &Lease, incoming: &Binding) -> Lease {
    let mut new = *local;
    incoming.apply_to(&mut new);
    new.tstp = UnixTime(0);
    new.atsfp = UnixTime(0);
    new
}

/// Our record after a [`Verdict::Repair`]: the partner's binding installed, its end put
/// back to the longest the partner can have granted at its CLTT (ISC's limit, reference
/// §1.4: the potential expiry we had told it, or the CLTT, plus the MCLT; and never past
/// the longest lease plus MCLT that [`check_bounds`] allows), and that end ours to tell
/// the partner (`tstp`, not acknowledged). A lease kept longer than the client holds it
/// costs an address for a while; one kept shorter can bind it twice.
pub fn repaired(local: &Lease, incoming: &Binding, bounds: &Bounds) -> Lease {
    let mut new = installed(local, incoming);
    let told = local.tstp.max(local.atsfp).max(incoming.cltt);
    let granted = u64::from(told.0) + u64::from(bounds.mclt);
    let longest =
        u64::from(incoming.cltt.0) + u64::from(bounds.max_lease_time) + u64::from(bounds.mclt);
    let ends = UnixTime(u32::try_from(granted.min(longest)).unwrap_or(u32::MAX - 1));
    new.ends = new.ends.max(ends);
    new.tstp = new.ends.max(new.tsfp);
    new
}

/// Whether the partner has not acknowledged this record's current state (ISC: `tstp > atsfp`);
/// OFFERED holds never travel.
pub fn unacked(l: &Lease) -> bool {
    l.state != BindingState::Offered && l.tstp > l.atsfp
}

/// Our record after the partner acknowledged the update that carried `sent_state` and
/// `sent_tstp`: `atsfp` and `tsfp` become that potential expiry (as ISC, which takes its own
/// `tstp`, `failover.c:5575`). `None` if the record changed since (a newer update follows).
pub fn acknowledged(cur: &Lease, sent_state: BindingState, sent_tstp: UnixTime) -> Option<Lease> {
    if cur.state != sent_state || cur.tstp != sent_tstp {
        return None;
    }
    Some(Lease {
        atsfp: sent_tstp,
        tsfp: sent_tstp,
        ..*cur
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const NOW: UnixTime = UnixTime(1_800_000_000);

    fn lease(state: BindingState) -> Lease {
        Lease {
            state,
            ends: NOW.saturating_add(3600),
            cltt: NOW,
            ..Lease::default()
        }
    }

    fn binding(status: BindingStatus, cltt: UnixTime) -> Binding {
        let mut l = Lease {
            state: status.to_lease(),
            ends: NOW.saturating_add(3600),
            cltt,
            htype: 1,
            hlen: 6,
            ..Lease::default()
        };
        l.chaddr[..6].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        Binding::from_lease(Ipv4Addr::new(10, 0, 0, 9), &l, 0).unwrap()
    }

    #[test]
    fn normal_secondary_cannot_free_an_active_lease() {
        let active = lease(BindingState::Active);
        let now = NOW;
        assert!(!normal_transition_ok(
            Role::Secondary,
            &active,
            BindingState::Free,
            now
        ));
        assert!(normal_transition_ok(
            Role::Secondary,
            &active,
            BindingState::Released,
            now
        ));
        // Renewals (ACTIVE to ACTIVE) are always taken.
        assert!(normal_transition_ok(
            Role::Secondary,
            &active,
            BindingState::Active,
            now
        ));
        assert!(!normal_transition_ok(
            Role::Secondary,
            &active,
            BindingState::Expired,
            now
        ));
    }

    #[test]
    fn normal_primary_frees_an_active_lease_only_after_tsfp() {
        let mut active = lease(BindingState::Active);
        active.tsfp = NOW.saturating_add(10);
        assert!(!normal_transition_ok(
            Role::Primary,
            &active,
            BindingState::Free,
            NOW
        ));
        assert!(normal_transition_ok(
            Role::Primary,
            &active,
            BindingState::Free,
            NOW.saturating_add(10)
        ));
        // EXPIRED only within 65 s of the end.
        assert!(!normal_transition_ok(
            Role::Primary,
            &active,
            BindingState::Expired,
            NOW
        ));
        assert!(normal_transition_ok(
            Role::Primary,
            &active,
            BindingState::Expired,
            NOW.saturating_add(3600 - 65)
        ));
    }

    #[test]
    fn normal_backup_moves_from_either_side() {
        let backup = lease(BindingState::Backup);
        assert!(normal_transition_ok(
            Role::Secondary,
            &backup,
            BindingState::Active,
            NOW
        ));
        // A lease the primary granted in PARTNER-DOWN, arriving in NORMAL (ISC accepts it).
        assert!(normal_transition_ok(
            Role::Primary,
            &backup,
            BindingState::Active,
            NOW
        ));
        assert!(normal_transition_ok(
            Role::Primary,
            &backup,
            BindingState::Free,
            NOW
        ));
        // Pool balancing: the primary moves its FREE addresses to BACKUP.
        assert!(normal_transition_ok(
            Role::Primary,
            &lease(BindingState::Free),
            BindingState::Backup,
            NOW
        ));
    }

    #[test]
    fn dueling_updates_follow_cltt_then_the_primary() {
        let mine = lease(BindingState::Active);
        let later = binding(BindingStatus::Active, NOW.saturating_add(1));
        let same = binding(BindingStatus::Active, NOW);
        let earlier = binding(BindingStatus::Active, UnixTime(NOW.0 - 1));
        assert!(dueling_peer_wins(Role::Primary, &mine, &later, NOW));
        assert!(!dueling_peer_wins(Role::Primary, &mine, &earlier, NOW));
        assert!(!dueling_peer_wins(Role::Primary, &mine, &same, NOW));
        assert!(dueling_peer_wins(Role::Secondary, &mine, &same, NOW));
        // ACTIVE beats anything not ACTIVE. An end (EXPIRED, RELEASED) beats our live
        // ACTIVE binding only when it is later (ISC: EXPIRED always, the primary otherwise).
        let released = lease(BindingState::Released);
        assert!(dueling_peer_wins(Role::Primary, &released, &earlier, NOW));
        for status in [BindingStatus::Expired, BindingStatus::Released] {
            for us in [Role::Primary, Role::Secondary] {
                assert!(!dueling_peer_wins(us, &mine, &binding(status, NOW), NOW));
                let later = binding(status, NOW.saturating_add(1));
                assert!(dueling_peer_wins(us, &mine, &later, NOW));
            }
        }
        // Otherwise the primary's view.
        let free = binding(BindingStatus::Free, NOW);
        assert!(!dueling_peer_wins(Role::Primary, &released, &free, NOW));
        assert!(dueling_peer_wins(Role::Secondary, &released, &free, NOW));
        assert_eq!(
            judge(Role::Primary, StateKind::Normal, &mine, true, &earlier, NOW),
            Verdict::Reject(BindingError {
                reason: RejectReason::LessCriticalBindingInformation,
                message: "our update of this binding wins",
            })
        );
        assert_eq!(
            judge(Role::Primary, StateKind::Normal, &mine, true, &later, NOW),
            Verdict::Apply
        );
    }

    #[test]
    fn conflict_states_keep_our_active_against_free() {
        let mine = lease(BindingState::Active);
        for s in [BindingStatus::Free, BindingStatus::Backup] {
            assert_eq!(
                judge(
                    Role::Secondary,
                    StateKind::PotentialConflict,
                    &mine,
                    false,
                    &binding(s, NOW),
                    NOW
                ),
                Verdict::KeepOurs
            );
        }
        for s in [BindingStatus::Reset, BindingStatus::Abandoned] {
            assert!(conflict_peer_wins(
                Role::Primary,
                &mine,
                &binding(s, NOW),
                NOW
            ));
        }
        // RELEASED wins only when later than our binding (stricter than ISC).
        let released = |t| binding(BindingStatus::Released, t);
        assert!(!conflict_peer_wins(
            Role::Primary,
            &mine,
            &released(NOW),
            NOW
        ));
        assert!(conflict_peer_wins(
            Role::Primary,
            &mine,
            &released(NOW.saturating_add(1)),
            NOW
        ));
        // An older end never undoes our live binding, in any state: refused, ours sent.
        for state in [StateKind::Normal, StateKind::PotentialConflict] {
            assert_eq!(
                judge(
                    Role::Secondary,
                    state,
                    &mine,
                    false,
                    &released(UnixTime(NOW.0 - 1)),
                    NOW
                ),
                Verdict::Outdated
            );
        }
        let expired = binding(BindingStatus::Expired, NOW);
        assert!(!conflict_peer_wins(Role::Primary, &mine, &expired, NOW));
        assert!(conflict_peer_wins(
            Role::Primary,
            &mine,
            &expired,
            NOW.saturating_add(3600)
        ));
        // Ours not ACTIVE (say, lost in RECOVER): the partner's copy wins.
        assert_eq!(
            judge(
                Role::Secondary,
                StateKind::Recover,
                &lease(BindingState::Free),
                false,
                &binding(BindingStatus::Active, NOW),
                NOW
            ),
            Verdict::Apply
        );
        // An ACTIVE lease past its end counts as EXPIRED.
        let mut old = lease(BindingState::Active);
        old.ends = UnixTime(NOW.0 - 1);
        assert!(conflict_peer_wins(
            Role::Primary,
            &old,
            &binding(BindingStatus::Free, NOW),
            NOW
        ));
    }

    #[test]
    fn normal_refusal_is_a_fatal_conflict() {
        let v = judge(
            Role::Primary,
            StateKind::Normal,
            &lease(BindingState::Active),
            false,
            &binding(BindingStatus::Free, NOW),
            NOW,
        );
        assert!(matches!(v, Verdict::Reject(e) if e.reason == RejectReason::FatalConflict));
    }

    #[test]
    fn install_and_acknowledge_bookkeeping() {
        let mut mine = lease(BindingState::Active);
        mine.tstp = NOW.saturating_add(5000);
        mine.atsfp = NOW;
        let mut incoming = binding(BindingStatus::Active, NOW.saturating_add(1));
        incoming.potential_expiry = NOW.saturating_add(7000);
        let l = installed(&mine, &incoming);
        assert_eq!(l.tsfp, NOW.saturating_add(7000));
        assert_eq!((l.tstp, l.atsfp), (UnixTime(0), UnixTime(0)));
        assert!(!unacked(&l));
        assert_eq!(l.owner, lease_record::Owner::Partner);
        assert_eq!(&l.chaddr[..6], &[2, 0, 0, 0, 0, 9]);

        assert!(unacked(&mine));
        let acked = acknowledged(&mine, BindingState::Active, mine.tstp).unwrap();
        assert_eq!((acked.atsfp, acked.tsfp), (mine.tstp, mine.tstp));
        assert!(!unacked(&acked));
        // The record moved on since the update was sent: nothing is written.
        assert_eq!(acknowledged(&mine, BindingState::Released, mine.tstp), None);
        assert_eq!(
            acknowledged(&mine, BindingState::Active, NOW.saturating_add(1)),
            None
        );
        let offered = Lease {
            state: BindingState::Offered,
            ..mine
        };
        assert!(!unacked(&offered));
    }

    const BOUNDS: Bounds = Bounds {
        now: NOW,
        max_clock_skew: 60,
        max_lease_time: 3600,
        mclt: 600,
    };

    fn refusal(b: &Binding, reserved: bool) -> Option<&'static str> {
        check_bounds(b, reserved, &BOUNDS).err().map(|e| {
            assert_eq!(e.reason, RejectReason::Unspecified);
            e.message
        })
    }

    #[test]
    fn an_older_copy_of_a_live_lease_does_not_shorten_it() {
        let mine = {
            let mut l = lease(BindingState::Active);
            l.htype = 1;
            l.hlen = 6;
            l.chaddr[..6].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
            l
        };
        let shorter = |cltt: UnixTime| {
            let mut l = mine;
            l.cltt = cltt;
            l.ends = NOW.saturating_add(20);
            Binding::from_lease(Ipv4Addr::new(10, 0, 0, 9), &l, 0).unwrap()
        };
        for us in [Role::Primary, Role::Secondary] {
            for state in [StateKind::Normal, StateKind::PotentialConflict] {
                for cltt in [NOW, UnixTime(NOW.0 - 17)] {
                    let v = judge(us, state, &mine, false, &shorter(cltt), NOW);
                    assert_eq!(v, Verdict::Outdated, "{us:?} {state:?} cltt {cltt:?}");
                }
                // A later transaction may grant less: the client holds that one now.
                let later = shorter(NOW.saturating_add(5));
                assert_eq!(judge(us, state, &mine, false, &later, NOW), Verdict::Apply);
            }
        }
    }

    /// The campaign's case: we granted 20 s (the MCLT) at `t`, telling the partner a
    /// potential expiry an hour and a half on; the client renewed at the partner at `t + 17`
    /// for an hour; the partner then took our (older) binding over its own and sent it back
    /// under its CLTT.
    #[test]
    fn a_renewal_that_comes_back_with_our_older_end_is_kept_for_the_partners_longest_grant() {
        let t = UnixTime(NOW.0 - 20);
        let mut mine = lease(BindingState::Active);
        mine.htype = 1;
        mine.hlen = 6;
        mine.chaddr[..6].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        mine.cltt = t;
        mine.stos = t;
        mine.ends = t.saturating_add(20);
        mine.tstp = t.saturating_add(5400);
        let merged = {
            let mut b = binding(BindingStatus::Active, t.saturating_add(17));
            b.stos = t;
            b.ends = mine.ends;
            b
        };
        for us in [Role::Primary, Role::Secondary] {
            for state in [
                StateKind::Normal,
                StateKind::CommunicationsInterrupted,
                StateKind::PotentialConflict,
            ] {
                for ours in [BindingState::Active, BindingState::Expired] {
                    let local = Lease {
                        state: ours,
                        ..mine
                    };
                    for in_flight in [false, true] {
                        let v = judge(us, state, &local, in_flight, &merged, NOW);
                        assert_eq!(v, Verdict::Repair, "{us:?} {state:?} {ours:?} {in_flight}");
                    }
                }
            }
        }
        let bounds = Bounds { mclt: 20, ..BOUNDS };
        let kept = repaired(&mine, &merged, &bounds);
        assert_eq!(kept.state, BindingState::Active);
        assert_eq!(kept.cltt, merged.cltt);
        // The partner can have granted up to its CLTT plus the longest lease plus MCLT,
        // and no further than what we told it plus MCLT: here the first is the limit.
        assert_eq!(kept.ends, merged.cltt.saturating_add(3600 + 20));
        assert!(
            unacked(&kept) && kept.tstp >= kept.ends,
            "ours to send: {kept:?}"
        );
        // Told less, the MCLT past what we told bounds it.
        let told_less = Lease {
            tstp: t.saturating_add(100),
            ..mine
        };
        let kept = repaired(&told_less, &merged, &bounds);
        assert_eq!(kept.ends, t.saturating_add(120));
        // Not a merge: a renewal that started at its own CLTT, or ended elsewhere.
        let mut fresh = merged;
        fresh.stos = merged.cltt;
        let v = judge(Role::Primary, StateKind::Normal, &mine, false, &fresh, NOW);
        assert_eq!(v, Verdict::Apply);
        let mut other_end = merged;
        other_end.ends = mine.ends.saturating_add(1);
        let v = judge(
            Role::Primary,
            StateKind::Normal,
            &mine,
            false,
            &other_end,
            NOW,
        );
        assert_eq!(v, Verdict::Apply);
    }

    #[test]
    fn an_unacknowledged_live_lease_is_not_freed_by_the_partner() {
        let mut mine = lease(BindingState::Active);
        mine.tstp = NOW.saturating_add(3600);
        mine.atsfp = UnixTime(0);
        mine.tsfp = UnixTime(0);
        for (us, state) in [
            (Role::Secondary, StateKind::Normal),
            (Role::Primary, StateKind::Normal),
            (Role::Secondary, StateKind::PotentialConflict),
        ] {
            for s in [BindingStatus::Free, BindingStatus::Backup] {
                let v = judge(us, state, &mine, false, &binding(s, NOW), NOW);
                assert_eq!(v, Verdict::Outdated, "{us:?} {state:?} {s:?}");
            }
        }
        // Once the partner acknowledged it, the usual rules decide (tsfp passed: freed).
        mine.atsfp = mine.tstp;
        let free = binding(BindingStatus::Free, NOW);
        let v = judge(Role::Secondary, StateKind::Normal, &mine, false, &free, NOW);
        assert_eq!(v, Verdict::Apply);
    }

    #[test]
    fn bindings_out_of_bounds_are_refused() {
        // A renewal as a partner sends it passes.
        assert_eq!(refusal(&binding(BindingStatus::Active, NOW), false), None);
        // CLTT: within the skew, not beyond.
        let mut b = binding(BindingStatus::Active, NOW.saturating_add(60));
        b.ends = b.cltt.saturating_add(3600);
        assert_eq!(refusal(&b, false), None);
        b.cltt = NOW.saturating_add(61);
        b.ends = b.cltt.saturating_add(3600);
        assert!(refusal(&b, false).unwrap().contains("future"));
        // The end: at most the longest lease plus MCLT after the CLTT.
        let mut b = binding(BindingStatus::Active, NOW);
        b.ends = NOW.saturating_add(3600 + 600);
        assert_eq!(refusal(&b, false), None);
        b.ends = NOW.saturating_add(3600 + 601);
        assert!(refusal(&b, false).unwrap().contains("longest lease"));
        // Without a CLTT the end is measured from now.
        b.cltt = UnixTime(0);
        assert!(refusal(&b, false).is_some());
        // An infinite lease only on a reserved address.
        b.ends = UnixTime(u32::MAX);
        assert!(refusal(&b, false).unwrap().contains("infinite"));
        assert_eq!(refusal(&b, true), None);
        // States without a client carry whatever end they had.
        let mut free = binding(BindingStatus::Free, NOW);
        free.ends = UnixTime(u32::MAX);
        assert_eq!(refusal(&free, false), None);
    }

    #[test]
    fn normal_refuses_an_active_binding_for_another_client() {
        let mut mine = lease(BindingState::Active);
        mine.htype = 1;
        mine.hlen = 6;
        mine.chaddr[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        let theirs = binding(BindingStatus::Active, NOW.saturating_add(1));
        for us in [Role::Primary, Role::Secondary] {
            let v = judge(us, StateKind::Normal, &mine, false, &theirs, NOW);
            assert_eq!(
                v,
                Verdict::Reject(BindingError {
                    reason: RejectReason::FatalConflict,
                    message: "address in use by another client",
                })
            );
        }
        // The same client renewing is taken.
        mine.chaddr[..6].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        let v = judge(Role::Primary, StateKind::Normal, &mine, false, &theirs, NOW);
        assert_eq!(v, Verdict::Apply);
        // A client identifier decides when both have one.
        let id = lease_record::ClientId::new(b"\x01abc").unwrap();
        mine.client_id = id;
        let mut other = theirs;
        other.client_id = lease_record::ClientId::new(b"\x01xyz").unwrap();
        let v = judge(Role::Primary, StateKind::Normal, &mine, false, &other, NOW);
        assert!(matches!(v, Verdict::Reject(_)), "{v:?}");
        other.client_id = id;
        let v = judge(Role::Primary, StateKind::Normal, &mine, false, &other, NOW);
        assert_eq!(v, Verdict::Apply);
        // Once our lease ran out the address is the partner's to give.
        mine.client_id = lease_record::ClientId::EMPTY;
        mine.chaddr[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        mine.ends = NOW;
        let v = judge(Role::Primary, StateKind::Normal, &mine, false, &theirs, NOW);
        assert_eq!(v, Verdict::Apply);
    }
}
