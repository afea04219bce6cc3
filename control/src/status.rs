//! The documents the admin API serves (`tandemctl status --json`, `tandemctl leases --json`).
//!
//! State names are the failover draft's in lower case with hyphens (DESIGN.md §6).

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::config::{FailoverMode, Role};

/// The answer to `{"verb":"status"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// `tandemd`'s version (the crate version).
    pub version: String,
    /// Seconds since the daemon started.
    pub uptime: u64,
    /// The datapath in use: `xdp`, `packet`, or `auto` before one has been chosen.
    pub datapath: String,
    /// One per `[[failover]]`; empty until failover is running.
    pub relationships: Vec<RelationshipStatus>,
    /// One per worker.
    pub workers: Vec<WorkerStatus>,
    /// Per subnet (its prefix, `10.0.0.0/16`): lease count by binding state.
    pub leases: BTreeMap<String, BTreeMap<LeaseState, u64>>,
    /// Per subnet in a failover relationship: the relationship's name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scope_failover: BTreeMap<String, String>,
    /// Per interface on the XDP datapath: the XDP program's verdicts; empty on `packet`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xdp: Vec<XdpStatus>,
    /// Leasequery (RFC 4388, RFC 6148, RFC 6926) counters.
    #[serde(default)]
    pub leasequery: LeasequeryStatus,
}

/// What leasequery was asked and answered (`control::leasequery::Stats`), as counts with
/// their labels; every combination is listed, zeros included.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeasequeryStatus {
    /// Queries by transport (`udp`, `bulk`) and kind (`address`, `mac`, `client-id`,
    /// `remote-id`, `relay-id`, `all-configured`).
    pub queries: Vec<LabelledCount>,
    /// Reply messages by transport and type (`unassigned`, `unknown`, `active`, `done`).
    pub replies: Vec<LabelledCount>,
    /// UDP queries not answered, by reason (`kind`; transport `udp`).
    pub refused: Vec<LabelledCount>,
    /// Bulk queries ended, by the status of their DONE (`kind`).
    pub bulk_done: Vec<LabelledCount>,
    /// Bulk connections by what happened to them (`kind`: accepted, refused-source, ...).
    pub bulk_connections: Vec<LabelledCount>,
}

/// A counter and its two labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelledCount {
    pub transport: String,
    pub kind: String,
    pub count: u64,
}

/// What the XDP program on one interface did with the frames it saw (counted in the kernel,
/// before any worker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XdpStatus {
    /// The interface.
    pub interface: String,
    /// How the program is attached: `native` (in the driver) or `generic` (SKB).
    pub mode: String,
    /// Not DHCP to port 67: passed to the kernel.
    pub pass: u64,
    /// DHCP redirected to a worker's AF_XDP socket.
    pub redirect: u64,
    /// DHCP arriving on an rx queue with no socket: passed to the kernel.
    pub no_xsk: u64,
    /// DHCPDISCOVERs of the failover partner's hash buckets, dropped (load balancing).
    pub lb_drop: u64,
    /// Requests over their relay's rate, dropped (`relay_rate`).
    #[serde(default)]
    pub rate_relay: u64,
    /// Requests over their circuit-id's rate, dropped (`circuit_rate`).
    #[serde(default)]
    pub rate_circuit: u64,
    /// Requests over their client MAC's rate, dropped (`mac_rate`).
    #[serde(default)]
    pub rate_mac: u64,
    /// Whether the load-balancing filter is on now (a relationship in NORMAL, load balance).
    pub lb_filter: bool,
    /// The request rate limits the program applies now, read back from the kernel: `mac`,
    /// `circuit` and `relay`, each `[rate a second, burst]` (`[0, 0]`: off).
    #[serde(default)]
    pub rate_limits: BTreeMap<String, [u32; 2]>,
}

/// One failover relationship.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationshipStatus {
    /// `failover.name`.
    pub name: String,
    /// Our role.
    pub role: Role,
    /// The mode.
    pub mode: FailoverMode,
    /// Our state.
    pub state: FailoverState,
    /// The partner's state as last reported.
    pub partner_state: FailoverState,
    /// When we entered `state`, Unix seconds.
    pub state_since: u64,
    /// Binding updates sent and not yet acknowledged.
    pub unacked_updates: u64,
    /// Bindings sent to the partner in BNDUPDs since start.
    #[serde(default)]
    pub updates_sent: u64,
    /// BNDUPD messages those went in (fewer than the bindings toward a tandem partner,
    /// which takes several per message; equal toward ISC).
    #[serde(default)]
    pub update_messages: u64,
    /// Bindings the partner refused in its BNDACKs since start (each is logged with the
    /// reason, and sent again after the next reconnection).
    #[serde(default)]
    pub updates_refused: u64,
    /// Bindings received in the partner's BNDUPDs since start.
    #[serde(default)]
    pub updates_received: u64,
    /// The operator's last resync since start (`tandemctl failover resync`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resync: Option<ResyncStatus>,
    /// Whether the peer link is up (the partner's CONNECT or CONNECTACK received).
    #[serde(default)]
    pub link_up: bool,
    /// When the link last came up or went down, Unix seconds (0: not since start).
    #[serde(default)]
    pub link_since: u64,
    /// When a message from the partner was last received and accepted, Unix seconds (after
    /// a restart with nothing heard yet: the start of the current state).
    #[serde(default)]
    pub last_heard: u64,
    /// How long BNDUPDs waited for their BNDACK, ms.
    #[serde(default)]
    pub bndupd_rtt_ms: HistogramStatus,
    /// The last state changes since start, ours and the partner's, oldest first (at most
    /// `failover::driver::HISTORY`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<StateChange>,
    /// The MCLT in force, seconds (a secondary's is the primary's, once it has heard it).
    #[serde(default)]
    pub mclt: u32,
    /// Of the 256 hash buckets, how many the primary serves now (a secondary's is the
    /// primary's, once it has heard it).
    #[serde(default)]
    pub primary_buckets: u16,
    /// What the partner showed of its settings when the link last came up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_settings: Option<PartnerSettingsStatus>,
    /// Whether the partner is configured as we are, as far as the protocol shows it.
    #[serde(default)]
    pub config_check: ConfigCheck,
    /// With `differs`: each differing key, ours and the partner's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_differences: Vec<String>,
    /// How many times since start the partner came up configured otherwise than we are (each
    /// new difference is logged once as a warning).
    #[serde(default)]
    pub config_mismatches: u64,
    /// Whether the partner's scope definitions and settings match ours, compared over the
    /// management channel (`unknown` against ISC dhcpd, or while the partner cannot be
    /// reached).
    #[serde(default)]
    pub scopes_check: ConfigCheck,
    /// With `differs`: each scope whose definitions differ, naming the keys (options,
    /// lease_times, pools, exclusions, reservations), and each differing setting.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scope_differences: Vec<String>,
    /// When the scopes were last compared (or tried), Unix seconds; 0: never.
    #[serde(default)]
    pub scopes_checked: u64,
    /// Why the last comparison could not be made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_check_error: Option<String>,
    /// How many times since start a new scope difference was found (each logged once).
    #[serde(default)]
    pub scope_mismatches: u64,
}

/// The operator's resync: every binding asked of the partner (UPDREQALL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResyncStatus {
    /// When it was asked, Unix seconds.
    pub asked: u64,
    /// Bindings received since.
    pub bindings: u64,
    /// `running`, `done` (the partner's UPDDONE came: it has sent every binding) or
    /// `interrupted` (the link was lost first; ask again).
    pub progress: String,
    /// When it was done or interrupted, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<u64>,
}

/// What the partner showed of its settings in its last CONNECT or CONNECTACK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerSettingsStatus {
    /// When, Unix seconds.
    pub at: u64,
    /// Its MCLT, seconds (a primary's, or a tandem secondary's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mclt: Option<u32>,
    /// Of the 256 hash buckets, how many the primary serves by its settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_buckets: Option<u16>,
    /// Its max-unacked-bndupd.
    pub max_unacked_updates: u32,
    /// Its receive timer (`max_response_delay`), seconds.
    pub max_response_delay: u32,
    /// Its vendor class (`tandem-0.1.0`); ISC dhcpd sends none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software: Option<String>,
}

/// The outcome of comparing the partner's settings with ours ([`crate::failover::consistency`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConfigCheck {
    /// Nothing to compare yet (the link never came up), or the partner shows nothing (an ISC
    /// secondary).
    #[default]
    Unknown,
    /// Everything the partner showed matches.
    InStep,
    /// At least one key differs (`config_differences`).
    Differs,
}

impl ConfigCheck {
    /// The name shown.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigCheck::Unknown => "unknown",
            ConfigCheck::InStep => "in-step",
            ConfigCheck::Differs => "differs",
        }
    }
}

/// One state change of a relationship.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChange {
    /// When, Unix seconds (ours: the new state's start time; the partner's: when we heard).
    pub at: u64,
    /// The partner's state changed (as it told us), not ours.
    #[serde(default)]
    pub partner: bool,
    /// The state before.
    pub from: FailoverState,
    /// The state after.
    pub to: FailoverState,
}

/// A histogram in the status document. `counts[i]` is the number of observations at most
/// `bounds[i]` and above `bounds[i - 1]`; the last count (one more than `bounds`) is of
/// those above every bound. Units are in the field's name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistogramStatus {
    /// Upper bounds, ascending.
    pub bounds: Vec<u64>,
    /// Per bucket, not cumulative: `bounds.len() + 1` of them.
    pub counts: Vec<u64>,
    /// The sum of every observation.
    pub sum: u64,
}

impl HistogramStatus {
    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.counts.iter().fold(0, |a, &b| a.saturating_add(b))
    }
}

impl From<dataplane::stats::HistogramSnapshot> for HistogramStatus {
    fn from(h: dataplane::stats::HistogramSnapshot) -> Self {
        HistogramStatus {
            bounds: h.bounds().collect(),
            counts: h.buckets.to_vec(),
            sum: h.sum,
        }
    }
}

impl From<crate::failover::session::RoundTrips> for HistogramStatus {
    fn from(h: crate::failover::session::RoundTrips) -> Self {
        HistogramStatus {
            bounds: (0..h.buckets.len() - 1).map(|i| 1 << i).collect(),
            counts: h.buckets.to_vec(),
            sum: h.sum_ms,
        }
    }
}

/// The failover states (draft-ietf-dhc-failover-12 §9), plus `unknown` for a partner not yet heard from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[expect(missing_docs, reason = "the draft's state names speak for themselves")]
pub enum FailoverState {
    Unknown,
    Startup,
    Normal,
    CommunicationsInterrupted,
    PartnerDown,
    PotentialConflict,
    ResolutionInterrupted,
    ConflictDone,
    Recover,
    RecoverWait,
    RecoverDone,
    Paused,
    Shutdown,
}

impl FailoverState {
    /// The name as in `--json`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailoverState::Unknown => "unknown",
            FailoverState::Startup => "startup",
            FailoverState::Normal => "normal",
            FailoverState::CommunicationsInterrupted => "communications-interrupted",
            FailoverState::PartnerDown => "partner-down",
            FailoverState::PotentialConflict => "potential-conflict",
            FailoverState::ResolutionInterrupted => "resolution-interrupted",
            FailoverState::ConflictDone => "conflict-done",
            FailoverState::Recover => "recover",
            FailoverState::RecoverWait => "recover-wait",
            FailoverState::RecoverDone => "recover-done",
            FailoverState::Paused => "paused",
            FailoverState::Shutdown => "shutdown",
        }
    }
}

impl fmt::Display for FailoverState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One worker's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// Worker index.
    pub id: u32,
    /// The datapath this worker runs on (`xdp` or `packet`).
    pub datapath: String,
    /// Frames received.
    pub rx: u64,
    /// Of those, frames handed to a sibling worker by software dispatch (the sibling counts
    /// them again in its `rx`).
    #[serde(default)]
    pub dispatched: u64,
    /// Frames sent.
    pub tx: u64,
    /// Frames dropped, by reason (`malformed`, `not-for-us`, `overload`, ...). The kernel's
    /// drops before the worker read a frame (`xsk-rx-*`, `rx-queue-full`) are here too.
    pub dropped: BTreeMap<String, u64>,
    /// Valid requests deliberately left unanswered, by reason (`partner-serves`, `released`,
    /// ...). Every frame a worker read (`rx - dispatched`) is sent, dropped or silent.
    #[serde(default)]
    pub silent: BTreeMap<String, u64>,
    /// Requests served with some of their options ignored, by reason
    /// (`untrusted-relay-options`: option 82 or 118 not from `server.trusted_relays`). Not
    /// in the balance: each is also sent, dropped or silent.
    #[serde(default)]
    pub ignored: BTreeMap<String, u64>,
    /// Well-formed requests read, by DHCP message type (`discover`, ..., `bootp` for a
    /// request without one, `other`).
    #[serde(default)]
    pub received: BTreeMap<String, u64>,
    /// Replies sent, by type (`offer`, `ack`, `nak`, ...).
    #[serde(default)]
    pub sent: BTreeMap<String, u64>,
    /// Receive batches handled.
    #[serde(default)]
    pub batches: u64,
    /// Time spent handling batches and sending their replies, ns.
    #[serde(default)]
    pub busy_ns: u64,
    /// Frames per receive batch.
    #[serde(default)]
    pub batch_frames: HistogramStatus,
    /// Journal group commit latency (write + fdatasync), ns.
    #[serde(default)]
    pub commit_ns: HistogramStatus,
    /// Journal entries made durable per group commit.
    #[serde(default)]
    pub commit_entries: HistogramStatus,
}

/// A lease's binding state (DESIGN.md §4), as named in the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[expect(
    missing_docs,
    reason = "the draft's binding-state names speak for themselves"
)]
pub enum LeaseState {
    Free,
    Active,
    Expired,
    Released,
    Abandoned,
    Reset,
    Backup,
}

impl LeaseState {
    /// Every state, in display order.
    pub const ALL: [LeaseState; 7] = [
        LeaseState::Active,
        LeaseState::Free,
        LeaseState::Backup,
        LeaseState::Expired,
        LeaseState::Released,
        LeaseState::Abandoned,
        LeaseState::Reset,
    ];

    /// The name as in `--json`.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseState::Free => "free",
            LeaseState::Active => "active",
            LeaseState::Expired => "expired",
            LeaseState::Released => "released",
            LeaseState::Abandoned => "abandoned",
            LeaseState::Reset => "reset",
            LeaseState::Backup => "backup",
        }
    }
}

impl fmt::Display for LeaseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `{"verb":"leases"}` asks for; all fields optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseFilter {
    /// Only this subnet (its prefix as written in the config, `10.0.0.0/16`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// Only this state; `None` = bound leases (`active`), or any state in a lookup by
    /// `address`, `mac` or `client_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<LeaseState>,
    /// At most this many (the server keeps it within 1..=[`crate::admin::MAX_LEASES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Only this address (shown whatever its state, free included, unless `state` is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv4Addr>,
    /// Only this client hardware address (`02:00:00:00:00:01`, `-` separators too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Only this client identifier (option 61, hex with or without colons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Only leases granted through this relay agent circuit-id (option 82 sub-option 1), as
    /// text, or as `0x` and hex digits ([`relay_id_bytes`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_id: Option<String>,
    /// Only leases granted with this remote-id (option 82 sub-option 2), as `circuit_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    /// Only leases whose client last sent this host name (option 12), compared without
    /// regard to case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The cursor: only addresses after this one. Leases come in address order; an answer
    /// cut at its limit gives the `next` cursor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Ipv4Addr>,
}

impl LeaseFilter {
    /// Whether the filter looks up one address or one client (then any state is shown).
    pub fn is_lookup(&self) -> bool {
        self.address.is_some()
            || self.mac.is_some()
            || self.client_id.is_some()
            || self.circuit_id.is_some()
            || self.remote_id.is_some()
            || self.hostname.is_some()
    }
}

/// The bytes an operator means by a circuit-id or remote-id: `0x` and hex digits (colons
/// allowed), else the text itself. `None`: `0x` followed by something not hex.
pub fn relay_id_bytes(s: &str) -> Option<Vec<u8>> {
    match s.strip_prefix("0x") {
        Some(h) => crate::config::parse_hex(h).filter(|b| !b.is_empty()),
        None => Some(s.as_bytes().to_vec()),
    }
}

/// A circuit-id or remote-id as shown: printable ASCII as text, anything else as `0x` and
/// hex ([`relay_id_bytes`] reads both back).
pub fn relay_id_text(b: &[u8]) -> String {
    if !b.is_empty()
        && !b.starts_with(b"0x")
        && b.iter().all(|c| c.is_ascii_graphic() || *c == b' ')
    {
        String::from_utf8_lossy(b).into_owned()
    } else {
        let mut s = String::from("0x");
        for x in b {
            s.push_str(&format!("{x:02x}"));
        }
        s
    }
}

/// One lease in the `leases` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseInfo {
    /// The address.
    pub address: Ipv4Addr,
    /// Its binding state.
    pub state: LeaseState,
    /// The client's hardware address, `02:00:00:00:00:01`.
    pub chaddr: String,
    /// The client identifier (option 61) in hex with colons, if the client sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The circuit-id of the relay agent it was granted through ([`relay_id_text`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_id: Option<String>,
    /// The remote-id of the relay agent it was granted through ([`relay_id_text`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    /// The host name the client last sent (option 12; bytes that are not UTF-8 replaced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// When the lease ends, Unix seconds.
    pub ends: u64,
}

/// One failover relationship as `tandemctl failover list` and `failover show` give it: its
/// settings as configured here, its state and link, and its scopes' leases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationshipDetail {
    /// `failover.name`.
    pub name: String,
    /// What this server's configuration says.
    pub settings: RelationshipSettings,
    /// Its state, link and replication; `None` while failover is not running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RelationshipStatus>,
    /// No scope belongs to it (a relationship is activated by its first scope).
    pub empty: bool,
    /// Its scopes, in configuration order, each with its leases by binding state.
    pub scopes: Vec<ScopeLeases>,
}

/// A relationship's settings in the operator's units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationshipSettings {
    /// Our role.
    pub role: Role,
    /// The mode.
    pub mode: FailoverMode,
    /// Where our end of the peer link listens, `ADDRESS:PORT`.
    pub address: String,
    /// The partner's end, `ADDRESS:PORT`.
    pub partner: String,
    /// What runs at the other end: `tandem` or `isc-dhcpd`.
    pub partner_software: String,
    /// Maximum client lead time, seconds.
    pub mclt: u32,
    /// The safe period (`auto_partner_down`), seconds; 0: off (partner-down by hand only).
    pub safe_period: u32,
    /// Load balance: the share of clients the primary answers, percent (of the 256 hash
    /// buckets, `split`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balance_percent: Option<u8>,
    /// Load balance: the hash buckets the primary answers, of 256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<u16>,
    /// Hot standby: the share of free addresses the standby holds, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserve_percent: Option<u8>,
    /// Hot standby: which server is the standby, `local` or `partner` (the secondary is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standby_is: Option<String>,
    /// A client whose `secs` exceeds this is answered whatever its hash bucket, seconds.
    pub load_balance_max_seconds: u16,
    /// Seconds without a word from the partner before the link is given up.
    pub max_response_delay: u32,
    /// Binding updates we take before acknowledging.
    pub max_unacked_updates: u32,
    /// The longest lease the partner may grant, seconds (default: our longest lease time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lease_time: Option<u32>,
    /// Whether the peer link is signed with a shared secret (never shown).
    pub shared_secret: bool,
}

/// One scope's leases by binding state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeLeases {
    /// The subnet, `10.0.0.0/24`.
    pub subnet: String,
    /// Leases by state (a state with none is absent).
    pub leases: BTreeMap<LeaseState, u64>,
}

impl RelationshipSettings {
    /// The settings of a `[[failover]]` section.
    pub fn of(f: &crate::config::FailoverConfig) -> Self {
        let load_balance = f.mode == FailoverMode::LoadBalance;
        RelationshipSettings {
            role: f.role,
            mode: f.mode,
            address: format!("{}:{}", f.address, f.port),
            partner: format!("{}:{}", f.peer_address, f.peer_port),
            partner_software: match f.peer_software {
                crate::config::PeerSoftware::Tandem => "tandem",
                crate::config::PeerSoftware::IscDhcpd => "isc-dhcpd",
            }
            .to_owned(),
            mclt: f.mclt,
            safe_period: f.auto_partner_down,
            load_balance_percent: load_balance
                .then(|| u8::try_from(u32::from(f.split.min(256)) * 100 / 256).unwrap_or(100)),
            split: load_balance.then_some(f.split),
            reserve_percent: (!load_balance).then_some(f.reserve_percent),
            standby_is: (!load_balance).then(|| {
                match f.role {
                    Role::Primary => "partner",
                    Role::Secondary => "local",
                }
                .to_owned()
            }),
            load_balance_max_seconds: f.load_balance_max_seconds,
            max_response_delay: f.max_response_delay,
            max_unacked_updates: f.max_unacked_updates,
            max_lease_time: f.max_lease_time,
            shared_secret: f.shared_secret_file.is_some(),
        }
    }
}

/// Every relationship of `config`, in configuration order, with its state from `status`.
pub fn relationship_details(
    config: &crate::config::Config,
    status: &Status,
) -> Vec<RelationshipDetail> {
    config
        .failover
        .iter()
        .map(|f| {
            let scopes: Vec<ScopeLeases> = config
                .subnets
                .iter()
                .filter(|s| s.failover.as_deref() == Some(f.name.as_str()))
                .map(|s| {
                    let subnet = s.prefix.to_string();
                    ScopeLeases {
                        leases: status.leases.get(&subnet).cloned().unwrap_or_default(),
                        subnet,
                    }
                })
                .collect();
            RelationshipDetail {
                name: f.name.clone(),
                settings: RelationshipSettings::of(f),
                status: status
                    .relationships
                    .iter()
                    .find(|r| r.name == f.name)
                    .cloned(),
                empty: scopes.is_empty(),
                scopes,
            }
        })
        .collect()
}

#[cfg(test)]
mod details_tests {
    use super::*;

    const CONFIG: &str = r#"
[server]
interfaces = ["eth0"]

[[subnet]]
prefix = "10.0.0.0/24"
pools = ["10.0.0.10-10.0.0.99"]
failover = "edge"

[[subnet]]
prefix = "10.0.1.0/24"
pools = ["10.0.1.10-10.0.1.99"]

[[failover]]
name = "edge"
role = "primary"
address = "192.0.2.1"
peer_address = "192.0.2.2"
mclt = "30m"
split = 64
auto_partner_down = "2h"
shared_secret_file = "/s"

[[failover]]
name = "standby"
role = "secondary"
mode = "hot-standby"
reserve_percent = 5
address = "192.0.2.1"
port = 648
peer_address = "192.0.2.3"
shared_secret_file = "/s"
"#;

    #[test]
    fn relationships_carry_settings_in_operator_units_and_their_scopes() {
        let config = crate::config::parse(CONFIG).expect("valid");
        let status = Status {
            version: "t".into(),
            uptime: 0,
            datapath: "packet".into(),
            relationships: Vec::new(),
            workers: Vec::new(),
            leases: BTreeMap::from([
                (
                    "10.0.0.0/24".to_owned(),
                    BTreeMap::from([(LeaseState::Free, 45), (LeaseState::Backup, 45)]),
                ),
                (
                    "10.0.1.0/24".to_owned(),
                    BTreeMap::from([(LeaseState::Free, 90)]),
                ),
            ]),
            scope_failover: BTreeMap::new(),
            xdp: Vec::new(),
            leasequery: Default::default(),
        };
        let d = relationship_details(&config, &status);
        assert_eq!(d.len(), 2);
        let edge = &d[0];
        assert_eq!(edge.name, "edge");
        assert_eq!(edge.settings.mclt, 1800);
        assert_eq!(edge.settings.safe_period, 7200);
        assert_eq!(edge.settings.split, Some(64));
        assert_eq!(edge.settings.load_balance_percent, Some(25));
        assert_eq!(
            (
                edge.settings.reserve_percent,
                edge.settings.standby_is.as_deref()
            ),
            (None, None)
        );
        assert_eq!(edge.settings.partner, "192.0.2.2:647");
        assert!(edge.settings.shared_secret);
        assert!(!edge.empty);
        assert_eq!(
            edge.scopes.len(),
            1,
            "the plain subnet is not the relationship's"
        );
        assert_eq!(edge.scopes[0].subnet, "10.0.0.0/24");
        assert_eq!(edge.scopes[0].leases.get(&LeaseState::Backup), Some(&45));
        assert!(edge.status.is_none(), "failover not running");

        let standby = &d[1];
        assert!(standby.empty && standby.scopes.is_empty());
        assert_eq!(standby.settings.address, "192.0.2.1:648");
        assert_eq!(standby.settings.reserve_percent, Some(5));
        assert_eq!(standby.settings.standby_is.as_deref(), Some("local"));
        assert_eq!(standby.settings.load_balance_percent, None);
    }
}
