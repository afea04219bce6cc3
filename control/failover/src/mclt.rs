//! The MCLT rules (draft §5.2.1, `reference/failover-protocol.md` §3.2 and §3.4), as pure
//! functions of a lease record, the relationship state and the clock.

use lease_record::{BindingState, Lease, UnixTime};

use super::Role;
use super::fsm::StateKind;

/// The partner's acknowledged knowledge of how long this binding may last: the later of the
/// potential expiry it acknowledged (`atsfp`) and the one it sent us (`tsfp`). ISC keeps one
/// field (`tsfp`) for both; the lease record keeps them apart.
pub fn partner_known_expiry(lease: &Lease) -> UnixTime {
    lease.tsfp.max(lease.atsfp)
}

/// The lease time (seconds) a server may give a client now, ISC `ack_lease`
/// (`dhcp.c:2887-2945`): `desired` if it is at most the MCLT; otherwise the MCLT if the
/// partner knows of no expiry still in the future; otherwise at most up to that expiry plus
/// the MCLT. So the expiry given never passes `max(now, known) + mclt`.
pub fn lease_time_limit(now: UnixTime, desired: u32, mclt: u32, lease: &Lease) -> u32 {
    if desired <= mclt {
        return desired;
    }
    let known = partner_known_expiry(lease);
    if known <= now {
        return mclt;
    }
    if u64::from(now.0) + u64::from(desired) > u64::from(known.0) + u64::from(mclt) {
        now.until(known).saturating_add(mclt)
    } else {
        desired
    }
}

/// The lease time a server in `state` may give now: `None` when the state does not serve
/// clients at all (ISC `dhcp_failover_set_service_state`, `failover.c:1655-1744`), else the
/// MCLT-limited time of [`lease_time_limit`] (ISC applies it in every serving state).
pub fn lease_time_for(
    state: StateKind,
    now: UnixTime,
    desired: u32,
    mclt: u32,
    lease: &Lease,
) -> Option<u32> {
    match state {
        StateKind::Normal | StateKind::CommunicationsInterrupted | StateKind::PartnerDown => {
            Some(lease_time_limit(now, desired, mclt, lease))
        }
        _ => None,
    }
}

/// The potential expiry to send to the partner after a DHCPACK of `granted` seconds when
/// `desired` was wanted: `now + desired + granted / 2`, so the next renewal can get the full
/// time once the partner acknowledges (`dhcp.c:2918-2934`). An infinite lease (`u32::MAX`)
/// gives the largest time.
pub fn tstp_after_ack(now: UnixTime, desired: u32, granted: u32) -> UnixTime {
    if desired == u32::MAX {
        return UnixTime(u32::MAX);
    }
    now.saturating_add(desired).saturating_add(granted / 2)
}

/// Whether a server may (re)allocate this address now (ISC `lease_mine_to_reallocate`,
/// `failover.c:6341-6446`; reference §3.4).
///
/// * `partner_down_since`: in PARTNER-DOWN, the time from which the partner is known to be
///   silent (the operator's "since", or when we entered the state); it plays ISC's `stos`.
/// * `rewind`: the binding's state before the change the partner has not acknowledged (ISC's
///   rewind state), if any.
pub fn may_reallocate(
    lease: &Lease,
    role: Role,
    state: StateKind,
    mclt: u32,
    partner_down_since: UnixTime,
    rewind: Option<BindingState>,
    now: UnixTime,
) -> bool {
    let own_free = match role {
        Role::Primary => BindingState::Free,
        Role::Secondary => BindingState::Backup,
    };
    let partner_down = state == StateKind::PartnerDown;
    // The partner may have handed this address out until `max(since, tsfp) + MCLT`.
    let after_mclt = || {
        let base = partner_down_since.max(lease.tsfp);
        base.saturating_add(mclt) < now
    };
    match lease.state {
        BindingState::Active | BindingState::Offered => false,
        s @ (BindingState::Free | BindingState::Backup) => {
            s == own_free || (partner_down && after_mclt())
        }
        BindingState::Expired | BindingState::Released => {
            rewind == Some(own_free) || (partner_down && lease.tsfp < now)
        }
        BindingState::Reset => partner_down && lease.tsfp < now,
        // ISC reuses ABANDONED only as a last resort, after the probation the engine keeps.
        BindingState::Abandoned => false,
    }
}

/// On entering PARTNER-DOWN, ISC sets `tsfp = stos + MCLT` on every EXPIRED, RELEASED and
/// RESET lease (`failover.c:1971-2017`): the time from which it may be reclaimed.
pub fn reclaim_tsfp(partner_down_since: UnixTime, mclt: u32) -> UnixTime {
    partner_down_since.saturating_add(mclt)
}
