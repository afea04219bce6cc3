//! DHCPv4 failover (draft-ietf-dhc-failover-12) as ISC dhcpd 4.4 speaks it.
//!
//! The sans-IO core is the `failover-core` crate (`control/failover/`), re-exported here so
//! that every path stays `control::failover::...`: [`session`] (one relationship,
//! self-driving), [`fsm`], [`msg`], [`judge`], [`binding`], [`pool`], [`mclt`], [`hash`],
//! [`digest`], [`loglimit`] and [`storage`] (what the core needs of the tables).
//!
//! The parts that do I/O, in the daemon:
//!
//! * [`driver`]: the mio thread that carries every relationship's session over its TCP links.
//! * [`replicate`]: [`storage::Storage`] over the memory-mapped store and the control
//!   plane's journal ([`replicate::Tables`]), and the workers' outbound change queues.
//! * [`persist`]: each relationship's state in `data_dir`, stored atomically.
//! * [`gate`]: the engine's [`dataplane::engine::FailoverView`], published by the driver.
//! * [`consistency`]: whether the partner's settings, as the protocol shows them, match ours.

pub use failover_core::{
    Instant, Now, Role, UnixTime, binding, digest, fsm, hash, judge, loglimit, mclt, msg, pool,
    session, storage,
};

pub mod consistency;
pub mod driver;
pub mod gate;
pub mod persist;
pub mod replicate;
