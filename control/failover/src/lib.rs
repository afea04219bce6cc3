//! DHCPv4 failover (draft-ietf-dhc-failover-12) as ISC dhcpd 4.4 speaks it, sans IO: nothing
//! here reads a clock, touches a socket or opens a file, and the crate's dependencies (no mio,
//! no lease-mmap) keep it so. The daemon's driver (`control::failover::driver`) and the
//! simulations (`control/tests/sim/`) feed it bytes, links and time and carry out what it asks.
//!
//! * [`session`]: one relationship, self-driving (quinn-proto's shape): `handle_*(now, input)`
//!   in, `poll_transmit`/`poll_event`/`poll_timeout` out; link choice and redial, binding
//!   replication, pool balancing and the expiry sweep. Its records and durable state are
//!   behind [`storage`]'s two traits.
//! * [`fsm`]: the per-relationship state machine (draft §9, ISC `server/failover.c`).
//! * [`msg`]: the wire format (12-byte header, option TLVs, the TCP stream framer), with the
//!   ISC quirks that interoperability needs (`reference/failover-protocol.md` §1, §6).
//! * [`judge`]: which binding wins (dueling updates, ISC's transition checks) and the
//!   acknowledgement bookkeeping.
//! * [`binding`]: one binding between a lease record and BNDUPD/BNDACK, with ISC's checks;
//!   the record's relay info (option 82) travels in client-request-options (option 8).
//! * [`pool`]: pool balancing, which addresses each server may allocate (FREE/BACKUP moves).
//! * [`mclt`]: the MCLT rule for lease times and the PARTNER-DOWN reclaim rule.
//! * [`hash`]: the RFC 3074 load-balancing hash and the hash bucket assignment (HBA).
//! * [`digest`]: the HMAC-SHA256 message digest between tandem peers.
//! * [`loglimit`]: the rate limit of log lines a peer or a stranger can cause.
//!
//! Time: [`Instant`] is monotonic and only drives timers; [`UnixTime`] is wall-clock
//! seconds, the only time that travels to the peer and into lease records. The two do not
//! convert into each other; [`Now`] carries one of each into the core.
#![forbid(unsafe_code)]

pub mod binding;
pub mod digest;
pub mod fsm;
pub mod hash;
pub mod judge;
pub mod loglimit;
pub mod mclt;
pub mod msg;
pub mod pool;
pub mod session;
pub mod storage;

pub use lease_record::UnixTime;

use std::time::Duration;

/// A monotonic point in time, in milliseconds since an origin the driver picks (for
/// example process start). Never sent to the peer or stored in a lease.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The origin.
    pub const ZERO: Instant = Instant(0);

    /// `ms` milliseconds after the origin.
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at the far future.
    pub fn saturating_add(self, d: Duration) -> Self {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(ms))
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl std::ops::Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        self.saturating_add(d)
    }
}

/// The two clocks as the driver read them at one moment: `instant` for timers, `wall` for
/// the message header time, start-time-of-state and lease times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    pub instant: Instant,
    pub wall: UnixTime,
}

/// Which end of the relationship this server is (draft §5.1; ISC `primary;`/`secondary;`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sends CONNECT, owns the MCLT and the HBA, allocates FREE addresses.
    Primary,
    /// Answers CONNECT, learns MCLT and HBA from the primary, allocates BACKUP addresses.
    Secondary,
}
