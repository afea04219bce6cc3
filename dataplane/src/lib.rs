//! tandem's packet path.
//!
//! - [`wire`]: zero-copy views and validated reprs for Ethernet, IPv4, UDP and DHCPv4.
//! - [`engine`]: the RFC 2131 decision engine, sans-IO (time passed in).
//! - [`packet`]: the AF_PACKET datapath; [`xdp`]: the XDP steering program's loader; [`worker`]: pinned worker threads; [`stats`]: their
//!   counters; [`server`]: the batch handler joining wire, engine and journal; [`sys`]: every
//!   syscall.

pub mod dispatch;
pub mod engine;
pub mod packet;
mod reasons;
pub mod server;
pub mod stats;
pub mod sys;
pub mod wire;
pub mod worker;
pub mod xdp;
