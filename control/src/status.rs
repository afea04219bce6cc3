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
    /// The cursor: only addresses after this one. Leases come in address order; an answer
    /// cut at its limit gives the `next` cursor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Ipv4Addr>,
}

impl LeaseFilter {
    /// Whether the filter looks up one address or one client (then any state is shown).
    pub fn is_lookup(&self) -> bool {
        self.address.is_some() || self.mac.is_some() || self.client_id.is_some()
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
    /// When the lease ends, Unix seconds.
    pub ends: u64,
}
