//! tandem's control plane.
#![forbid(unsafe_code)]

pub mod failover;
