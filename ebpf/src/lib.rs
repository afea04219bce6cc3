//! tandem's XDP steering program and the map layouts user space shares with it.
//!
//! The program itself (C, compiled by `build.rs` with clang `-target bpf`) arrives with the
//! XDP datapath; until then the kernel packet path (`datapath = "packet"`) serves DHCP.
#![no_std]
#![forbid(unsafe_code)]

/// UDP port DHCP servers listen on (RFC 2131 §4.1).
pub const DHCP_SERVER_PORT: u16 = 67;
