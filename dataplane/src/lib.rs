//! tandem's packet path.
//!
//! - [`wire`]: zero-copy views and validated reprs for Ethernet, IPv4, UDP and DHCPv4.
//! - [`engine`]: the RFC 2131 decision engine, sans-IO (time passed in).
//! - [`packet`]: the AF_PACKET datapath; [`xdp`]: the XDP steering program's loader; [`worker`]: pinned worker threads; [`stats`]: their
//!   counters; [`server`]: the batch handler joining wire, engine and journal; [`commit`]:
//!   its commit pipeline (the fdatasync off the worker's thread); [`sys`]: every syscall.
//!
//! `unsafe` is denied crate-wide and allowed, by an `#[expect]` that names why, in three
//! modules only: [`sys`] (the syscalls), `xdp::umem` (the view of one UMEM frame) and
//! [`xdp::xsk`] (the AF_XDP rings, whose xsk-rs calls are `unsafe fn`s with the socket's frame
//! accounting as their precondition). Each opens with the invariants it keeps.
#![deny(unsafe_code)]

pub mod commit;
pub mod dispatch;
pub mod engine;
pub mod limit;
pub mod packet;
mod reasons;
pub mod server;
pub mod stats;
#[expect(
    unsafe_code,
    reason = "the syscalls: every one the crate makes goes through here"
)]
pub mod sys;
pub mod wire;
pub mod worker;
pub mod xdp;
