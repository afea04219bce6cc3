//! The validated configuration: what `tandemd` runs on. Every value here has passed the checks in
//! [`super::validate`]; the types say what the TOML meant (addresses, seconds, enums), not how it was spelled.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// A whole `tandemd` configuration file (DESIGN.md §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[[subnet]]`, in file order.
    pub subnets: Vec<SubnetConfig>,
    /// `[[failover]]`, in file order. Parsed and validated; acted on by `control::failover`.
    pub failover: Vec<FailoverConfig>,
}

impl Config {
    /// The relationship called `name`.
    pub fn relationship(&self, name: &str) -> Option<&FailoverConfig> {
        self.failover.iter().find(|f| f.name == name)
    }

    /// The number of reservations over all subnets.
    pub fn reservation_count(&self) -> usize {
        self.subnets.iter().map(|s| s.reservations.len()).sum()
    }

    /// The Unix socket of the admin API: `DATA_DIR/tandemd.sock`.
    pub fn admin_socket(&self) -> PathBuf {
        self.server.data_dir.join(crate::admin::SOCKET_NAME)
    }
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// `interfaces`: where DHCP is served; never empty.
    pub interfaces: Vec<String>,
    /// `server_id` (option 54); `None` = the first interface's first IPv4 address.
    pub server_id: Option<Ipv4Addr>,
    /// `data_dir`: lease tables, journals, the admin socket. Default `/var/lib/tandem`.
    pub data_dir: PathBuf,
    /// `datapath`. Default `auto`.
    pub datapath: Datapath,
    /// `workers`: 0 = one per rx queue (capped at cores). At most [`MAX_WORKERS`].
    pub workers: u16,
    /// `durability`. Default `sync`.
    pub durability: Durability,
    /// `log_level`: a tracing filter of levels and `target=level` directives (`info`,
    /// `debug`, `control=debug,info`); span and field filters are refused. The failover
    /// protocol (session, state machine) logs under `failover_core`, the driver under
    /// `control`. `TANDEM_LOG` overrides it.
    pub log_level: Option<String>,
    /// `log_format`: `text` (default, compact lines for a person) or `json` (one object a
    /// line: timestamp, level, target, message and fields, for a log pipeline).
    pub log_format: LogFormat,
    /// `admin`: an optional TCP address for the admin API, besides the Unix socket.
    pub admin: Option<SocketAddr>,
    /// `http_tls_cert`, `http_tls_key`: PEM files (the certificate chain, and its private key);
    /// with both, the HTTP server speaks only HTTPS. Neither: plain HTTP.
    pub http_tls: Option<(PathBuf, PathBuf)>,
    /// `http_auth`: `auto` (default: reads without a token only on a loopback listener) or
    /// `on` (every read needs a token too). A change always needs a `dhcp-admin` token.
    pub http_auth: HttpAuth,
    /// `user`: when tandemd is started as root, the user it becomes before it opens anything,
    /// keeping only the capabilities the datapaths need (`dataplane::sys::KEPT_CAPABILITIES`,
    /// as the packaged unit grants them); `data_dir` is made this user's. Unset: no change
    /// (under the packaged unit, systemd has already made tandemd the `tandem` user).
    pub user: Option<String>,
    /// `http`: an optional TCP address for the HTTP server: Prometheus metrics at
    /// `/metrics`. Off when absent; give a loopback address unless the network in front of
    /// it is trusted (nothing on it changes state).
    pub http: Option<SocketAddr>,
    /// `dispatch`: software dispatch to sibling workers on the XDP datapath. Default `auto`.
    pub dispatch: Dispatch,
    /// `trusted_relays`: relay agents, as addresses (`"10.78.0.1"`) or prefixes
    /// (`"192.0.2.0/24"`), whose option 82 sub-options (link selection, server identifier
    /// override, circuit-id and remote-id for reservations) and option 118 are honoured. A
    /// relayed request (giaddr set) is trusted when its IPv4 source is in the list; from
    /// anyone else those options are ignored as if absent (option 82 is still echoed to the
    /// relay, never to a client). Default empty: no one is trusted, and a circuit-id or
    /// remote-id reservation is then an error.
    pub trusted_relays: Vec<Ipv4Prefix>,
    /// `leasequery_from`: who may ask about leases (RFC 4388 leasequery over UDP, RFC 6926
    /// bulk leasequery over TCP), as addresses or prefixes of the requestors' IPv4 sources.
    /// Default: `trusted_relays` (the relay agents that rebuild their tables by asking).
    /// Others get no answer over UDP and NotAllowed over TCP, counted.
    pub leasequery_from: Vec<Ipv4Prefix>,
    /// `bulk_leasequery`: the TCP address to serve RFC 6926 bulk leasequery on, normally
    /// `"0.0.0.0:67"`. Absent: no TCP listener (UDP leasequery is always served).
    pub bulk_leasequery: Option<SocketAddr>,
    /// `mac_rate` / `mac_burst`: requests a second per client MAC (`chaddr`), with bursts;
    /// default 5 and 20. `circuit_rate` / `circuit_burst`: per option 82 circuit-id within
    /// a relay; default 20 and 100. `relay_rate` / `relay_burst`: per relay agent (the IPv4
    /// source of relayed requests); default 0 (off). A rate of 0 turns its limit off; a
    /// burst defaults to four times its rate. On the packet datapath each worker counts on
    /// its own, so a client spread over several workers gets more, never less; requests over
    /// a limit are dropped before the engine sees them and counted (`rate-mac`,
    /// `rate-circuit`, `rate-relay`). On the XDP datapath the XDP program applies the same
    /// limits in the kernel, per CPU (LRU maps: a flood of new keys evicts the oldest
    /// buckets), before a frame is copied to user space; its drops are counted in the XDP
    /// verdicts (`tandemctl status`: RATE-MAC, RATE-CIRCUIT, RATE-RELAY).
    pub rate_limits: dataplane::limit::RateLimits,
    /// `mac_decline_rate`: DHCPDECLINEs an hour per client MAC that may abandon an address;
    /// default 10. `relay_decline_rate`: the same per relay agent (the IPv4 source of relayed
    /// DECLINEs); default 100. Each may be spent at once (the burst is the rate); 0 turns its
    /// limit off. Counted per worker, like the request limits; only a DECLINE of the
    /// sender's own live lease takes one. Over a limit the DECLINE is dropped and counted
    /// (`decline-rate-mac`, `decline-rate-relay`) and the lease stays the client's (#13).
    pub decline_limits: dataplane::limit::DeclineLimits,
}

/// `server.dispatch` (DESIGN.md §2, "RSS is degenerate for DHCP").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Dispatch {
    /// When an interface has fewer rx queues (AF_XDP sockets) than the worker count asks
    /// for, the queue's worker hands frames to sibling workers by client hash.
    #[default]
    Auto,
    /// One worker per rx queue, no hand-off.
    Off,
}

impl Dispatch {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Dispatch::Auto => "auto",
            Dispatch::Off => "off",
        }
    }
}

/// The largest accepted `server.workers`.
pub const MAX_WORKERS: u16 = 1024;

/// The default `server.data_dir`.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/tandem";

/// `server.datapath` (DESIGN.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Datapath {
    /// XDP + AF_XDP.
    Xdp,
    /// AF_PACKET raw frames.
    Packet,
    /// Try `xdp`, fall back to `packet` and say so.
    Auto,
}

/// `server.http_auth`: who may read over HTTP without a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpAuth {
    /// Reads are open on a loopback listener; elsewhere they need a token.
    #[default]
    Auto,
    /// Every read needs a token.
    On,
}

impl Datapath {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Datapath::Xdp => "xdp",
            Datapath::Packet => "packet",
            Datapath::Auto => "auto",
        }
    }
}

impl fmt::Display for Datapath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `server.log_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LogFormat {
    /// Compact human lines.
    #[default]
    Text,
    /// JSON lines.
    Json,
}

/// `server.durability` (DESIGN.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Durability {
    /// The journal is fdatasync'ed before the ACK leaves (group commit).
    Sync,
    /// ACKs may leave before the journal is durable: an explicit operator choice.
    Async,
}

impl Durability {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Sync => "sync",
            Durability::Async => "async",
        }
    }
}

/// An IPv4 prefix, `10.0.0.0/16`, with no host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Prefix {
    /// The network address.
    pub addr: Ipv4Addr,
    /// The prefix length, 0..=32.
    pub len: u8,
}

impl Ipv4Prefix {
    /// The netmask.
    pub fn netmask(self) -> Ipv4Addr {
        Ipv4Addr::from(mask(self.len))
    }
    /// The first address (the network address).
    pub fn first(self) -> Ipv4Addr {
        self.addr
    }
    /// The last address (the broadcast address).
    pub fn last(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !mask(self.len))
    }
    /// Whether `a` is inside.
    pub fn contains(self, a: Ipv4Addr) -> bool {
        u32::from(a) & mask(self.len) == u32::from(self.addr)
    }
    /// Whether the two prefixes share an address.
    pub fn overlaps(self, other: Ipv4Prefix) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }
    /// The whole prefix as a range.
    pub fn range(self) -> AddrRange {
        AddrRange {
            first: self.first(),
            last: self.last(),
        }
    }
}

impl fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

pub(crate) fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    }
}

/// An inclusive range of addresses, `first <= last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddrRange {
    /// The first address.
    pub first: Ipv4Addr,
    /// The last address (inclusive).
    pub last: Ipv4Addr,
}

impl AddrRange {
    /// Whether `a` is inside.
    pub fn contains(self, a: Ipv4Addr) -> bool {
        self.first <= a && a <= self.last
    }
    /// Whether `other` lies wholly inside.
    pub fn covers(self, other: AddrRange) -> bool {
        self.first <= other.first && other.last <= self.last
    }
    /// Whether the two ranges share an address.
    pub fn overlaps(self, other: AddrRange) -> bool {
        self.first <= other.last && other.first <= self.last
    }
    /// The number of addresses.
    pub fn len(self) -> u64 {
        u64::from(u32::from(self.last)) - u64::from(u32::from(self.first)) + 1
    }
    /// Never empty (`first <= last` always holds); present for clippy's `len_without_is_empty`.
    pub fn is_empty(self) -> bool {
        false
    }
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// `[[subnet]]`: one scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetConfig {
    /// `prefix`.
    pub prefix: Ipv4Prefix,
    /// `pools`: dynamic ranges inside `prefix`, not overlapping each other, never the network or
    /// broadcast address. May be empty (a reservations-only subnet).
    pub pools: Vec<AddrRange>,
    /// `exclude`: ranges inside the pools that are never handed out.
    pub exclude: Vec<AddrRange>,
    /// `router` (option 3).
    pub router: Vec<Ipv4Addr>,
    /// `dns` (option 6).
    pub dns: Vec<Ipv4Addr>,
    /// `domain_name` (option 15).
    pub domain_name: Option<String>,
    /// `interface`: the receiving interface for clients that are not relayed (no giaddr).
    pub interface: Option<String>,
    /// `lease_time` in seconds (option 51). Default 3600.
    pub lease_time: u32,
    /// `renewal_time` T1 in seconds (option 58); `None` = lease_time / 2.
    pub renewal_time: Option<u32>,
    /// `rebinding_time` T2 in seconds (option 59); `None` = lease_time * 7 / 8.
    pub rebinding_time: Option<u32>,
    /// `decline_probation` in seconds: how long a DECLINEd address stays abandoned. Default a
    /// day (ISC dhcpd's `abandon-lease-time`, Kea's `decline-probation-period`).
    pub decline_probation: u32,
    /// `max_abandoned_percent`, 0..=100: at most this share of the pools' addresses (rounded
    /// down) is abandoned by DECLINEs at once. Default 10. A DECLINE beyond it is counted
    /// (`decline-over-cap`) and logged, and the lease stays the client's until it ends: a
    /// forged DECLINE must not free an address its client still uses (#13).
    pub max_abandoned_percent: u8,
    /// `offer_hold` in seconds: how long an OFFERed address is held for its client. Default 30.
    pub offer_hold: u32,
    /// `failover`: the relationship this scope belongs to (checked to exist).
    pub failover: Option<String>,
    /// `[[subnet.reservation]]`.
    pub reservations: Vec<Reservation>,
}

impl SubnetConfig {
    /// The effective T1.
    pub fn t1(&self) -> u32 {
        self.renewal_time.unwrap_or(self.lease_time / 2)
    }
    /// The effective T2.
    pub fn t2(&self) -> u32 {
        self.rebinding_time.unwrap_or_else(|| {
            u32::try_from(u64::from(self.lease_time) * 7 / 8).unwrap_or(u32::MAX)
        })
    }
}

/// `[[subnet.reservation]]`: a fixed address for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// Who the client is.
    pub key: ReservationKey,
    /// `address`, inside the subnet's prefix.
    pub address: Ipv4Addr,
    /// `hostname` (option 12), optional.
    pub hostname: Option<String>,
}

/// How a reservation recognises its client (DESIGN.md §3): exactly one of the keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReservationKey {
    /// `mac = "02:00:00:00:00:01"`: chaddr with htype 1.
    Mac([u8; 6]),
    /// `client_id = "01:02:00:00:00:00:01"` (hex): option 61, whole.
    ClientId(Vec<u8>),
    /// `circuit_id = "text"` or `circuit_id_hex = "0a0b"`: option 82 sub-option 1.
    CircuitId(Vec<u8>),
    /// `remote_id = "text"` or `remote_id_hex = "0a0b"`: option 82 sub-option 2.
    RemoteId(Vec<u8>),
}

/// `[[failover]]`: one relationship (DESIGN.md §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverConfig {
    /// `name`: unique.
    pub name: String,
    /// `role`.
    pub role: Role,
    /// `mode`. Default load balance.
    pub mode: FailoverMode,
    /// `address`: ours, where the peer link listens.
    pub address: Ipv4Addr,
    /// `peer_address`.
    pub peer_address: Ipv4Addr,
    /// `port`. Default 647.
    pub port: u16,
    /// `peer_port`. Default 647.
    pub peer_port: u16,
    /// `manage_port`: where this server's end of the management channel listens (on
    /// `address`), between tandem partners only ([`crate::manage`]). Default
    /// [`DEFAULT_MANAGE_PORT`].
    pub manage_port: u16,
    /// `peer_manage_port`: the partner's. Default [`DEFAULT_MANAGE_PORT`].
    pub peer_manage_port: u16,
    /// `replicate = "auto"`: on the primary, every change a reload applies to a scope of the
    /// relationship is replicated to the partner at once (`tandemctl replicate`); `"manual"`
    /// (the default): only when asked. Tandem partners only.
    pub replicate_auto: bool,
    /// `mclt` in seconds, > 0. Required of a primary; a secondary learns it (default 3600 until then).
    pub mclt: u32,
    /// Whether the file sets `mclt` (always on a primary). A secondary that leaves it to the
    /// primary has no MCLT of its own to compare with the primary's.
    pub mclt_set: bool,
    /// `split`: hash buckets the primary owns, 0..=256. Default 128.
    pub split: u16,
    /// `reserve_percent`: hot standby's share of free addresses, 0..=100. Default 10.
    pub reserve_percent: u8,
    /// `load_balance_max_seconds`: a client whose `secs` exceeds it is answered regardless of the hash.
    /// Default 3.
    pub load_balance_max_seconds: u16,
    /// `max_response_delay` in seconds. Default 60.
    pub max_response_delay: u32,
    /// `max_unacked_updates`. Default 10.
    pub max_unacked_updates: u32,
    /// `auto_partner_down`: the safe period in seconds; 0 = off (the default).
    pub auto_partner_down: u32,
    /// `peer_software`: what runs at the other end. Default tandem.
    pub peer_software: PeerSoftware,
    /// `shared_secret_file`: required with a tandem peer (every message is signed), refused
    /// with ISC dhcpd (it has no message digest).
    pub shared_secret_file: Option<PathBuf>,
    /// `max_lease_time` in seconds: the longest lease the partner may grant; a binding it
    /// sends that ends later than its CLTT plus this and MCLT is refused. Default: the
    /// longest `lease_time` of the relationship's subnets (set it to ISC's
    /// `max-lease-time` when the partner is ISC dhcpd).
    pub max_lease_time: Option<u32>,
}

/// The management channel's port unless `manage_port` says otherwise.
pub const DEFAULT_MANAGE_PORT: u16 = 8647;

/// `failover.peer_software`: the partner's implementation, which decides authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeerSoftware {
    /// Another tandemd: messages are signed with the shared secret (required).
    Tandem,
    /// ISC dhcpd 4.4 (a migration partner): no message digest exists.
    IscDhcpd,
}

/// `failover.role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The primary: owns mclt and split.
    Primary,
    /// The secondary: learns mclt and split from the primary.
    Secondary,
}

impl Role {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Secondary => "secondary",
        }
    }
}

/// `failover.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailoverMode {
    /// RFC 3074 hash split of DISCOVERs.
    LoadBalance,
    /// The standby answers only when the active one is down.
    HotStandby,
}

impl FailoverMode {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FailoverMode::LoadBalance => "load-balance",
            FailoverMode::HotStandby => "hot-standby",
        }
    }
}
