//! The MCLT rules (draft §5.2.1, `reference/failover-protocol.md` §3.2 and §3.4), as pure
//! functions of a lease record, the relationship state and the clock.

use lease_record::{BindingState, Lease, Owner, UnixTime};

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

/// Whether the address in record `lease` may go to a client now: to a new one, or back to
/// the client whose expired or released binding it holds (ISC `lease_mine_to_reallocate`,
/// `failover.c:6341-6446`; reference §3.4). `partner_down_since`: in PARTNER-DOWN, the time
/// from which the partner is known to be silent (the operator's "since", or when we entered
/// the state); it plays ISC's `stos`.
///
/// * FREE or BACKUP: our own free state (FREE on the primary, BACKUP on the secondary), or
///   the partner's in PARTNER-DOWN once `max(since, tsfp) + MCLT` has passed.
/// * OFFERED: our own hold that ran out (it came from an address we could give).
/// * ACTIVE (the engine asks only once its lease ran out): the partner may have renewed it,
///   its update late or lost, up to what it knew plus the MCLT; so only in PARTNER-DOWN,
///   once `max(since, tsfp, tstp) + MCLT` has passed. Its home server first moves it to
///   EXPIRED (the session's expiry sweep).
/// * EXPIRED, RELEASED or ABANDONED: ours (we wrote that end, [`Owner::Us`]) once the
///   partner has acknowledged it (`atsfp >= tstp`), so it renews the binding no more; this
///   is ISC's rewind rule, with the acknowledged state standing for the rewind state. Else
///   as an expired ACTIVE binding.
/// * RESET: as an expired ACTIVE binding.
pub fn may_reallocate(
    lease: &Lease,
    role: Role,
    state: StateKind,
    mclt: u32,
    partner_down_since: UnixTime,
    now: UnixTime,
) -> bool {
    let own_free = match role {
        Role::Primary => BindingState::Free,
        Role::Secondary => BindingState::Backup,
    };
    let partner_down = state == StateKind::PartnerDown;
    let ours = lease.owner == Owner::Us;
    // The partner may have handed the address out, or renewed its binding, until
    // `max(since, what it knew) + MCLT`.
    let after_mclt =
        |known: UnixTime| partner_down && partner_down_since.max(known).saturating_add(mclt) < now;
    let reclaimable = || after_mclt(lease.tsfp.max(lease.tstp));
    match lease.state {
        BindingState::Offered => ours,
        s @ (BindingState::Free | BindingState::Backup) => s == own_free || after_mclt(lease.tsfp),
        BindingState::Active | BindingState::Reset => reclaimable(),
        BindingState::Expired | BindingState::Released | BindingState::Abandoned => {
            (ours && lease.atsfp >= lease.tstp) || reclaimable()
        }
    }
}
