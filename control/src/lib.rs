//! tandem's control plane: the configuration ([`config`]), the admin API ([`admin`], [`status`]), the
//! daemon's front end ([`daemon`], [`logging`]) and the operator CLI ([`ctl`]).
#![forbid(unsafe_code)]

pub mod config;

/// Admin API.
pub mod admin {
    /// The admin socket's file name inside `data_dir`.
    pub const SOCKET_NAME: &str = "tandemd.sock";
}
