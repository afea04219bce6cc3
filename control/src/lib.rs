//! tandem's control plane: the configuration ([`config`]), the admin API ([`admin`], [`status`]),
//! metrics over HTTP ([`metrics`], [`http`]), the
//! daemon's front end ([`daemon`], [`logging`]), its wiring of the dataplane ([`serve`]) and the
//! operator CLI ([`ctl`]); the failover protocol's sans-IO cores ([`failover`]: codec, RFC 3074
//! hash, MCLT rules, state machine) and the driver that runs them in the daemon; the
//! leasequery engine ([`leasequery`]: RFC 4388, RFC 6148 over UDP, RFC 6926 over TCP).
#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod config;
pub mod ctl;
pub mod daemon;
pub mod failover;
pub mod files;
pub mod http;
pub mod import;
pub mod leasequery;
pub mod logging;
pub mod manage;
pub mod metrics;
pub mod notify;
pub mod reload;
pub mod serve;
pub mod status;
pub mod time;
pub mod tokens;
pub mod xdp;
