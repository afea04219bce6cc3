//! tandem's packet path.
//!
//! - [`wire`]: zero-copy views and validated reprs for Ethernet, IPv4, UDP and DHCPv4.
//! - [`engine`]: the RFC 2131 decision engine, sans-IO (time passed in).

pub mod wire;
pub mod engine;
