//! The failover seam: what the engine asks before it serves a client, hands out an address
//! or promises a lease time. The control plane's failover state machine (DESIGN.md §5)
//! implements [`FailoverView`] from atomics it publishes; until then [`Standalone`] serves
//! everything. Every method is called on the fast path: no locks, no allocation.

use std::fmt::Debug;

use lease_mmap::{BindingState, ClientKey, Lease, TableId, UnixTime};

use crate::wire::dhcpv4::{MessageType, Repr};

/// Failover's say over one decision. Implementations must be cheap and non-blocking.
pub trait FailoverView: Send + Sync + Debug {
    /// Whether this server answers `req` (of type `msg`; `None` for BOOTP) from `client` in
    /// scope `table` at all: load balancing (RFC 3074 hash buckets, `load_balance_max_seconds`
    /// against `req.secs`) and the failover state (e.g. not in RECOVER, not the standby in
    /// NORMAL).
    fn may_serve(
        &self,
        table: TableId,
        client: &ClientKey<'_>,
        msg: Option<MessageType>,
        req: &Repr<'_>,
    ) -> bool;

    /// Whether an address whose record is `current` (FREE, EXPIRED, RELEASED, RESET, an
    /// expired hold, or BACKUP) may be given to a new client by this server now.
    fn may_allocate(&self, table: TableId, current: &Lease, now: UnixTime) -> bool;

    /// The lease length to promise, at most `desired`: with a partner, no more than what it
    /// acknowledged plus MCLT (draft-ietf-dhc-failover-12 §5.2.1).
    fn lease_time(&self, table: TableId, current: &Lease, desired: u32, now: UnixTime) -> u32;

    /// The state an address this server held for a client (an OFFERED hold the client did
    /// not take) goes back to: this server's own free pool, FREE, or BACKUP on a failover
    /// secondary, so that a declined offer does not hand the address to the partner.
    fn free_state(&self, _table: TableId) -> BindingState {
        BindingState::Free
    }
}

/// No partner: serve everyone, allocate anything but BACKUP, grant the configured lease.
#[derive(Clone, Copy, Debug, Default)]
pub struct Standalone;

impl FailoverView for Standalone {
    fn may_serve(
        &self,
        _: TableId,
        _: &ClientKey<'_>,
        _: Option<MessageType>,
        _: &Repr<'_>,
    ) -> bool {
        true
    }

    fn may_allocate(&self, _: TableId, current: &Lease, _: UnixTime) -> bool {
        current.state != BindingState::Backup
    }

    fn lease_time(&self, _: TableId, _: &Lease, desired: u32, _: UnixTime) -> u32 {
        desired
    }
}
