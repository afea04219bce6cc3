//! tandem's XDP steering program and the map layouts user space shares with it.
//!
//! [`XDP_DHCP`] is the BPF object file (ELF) compiled by `build.rs` from `src/xdp_dhcp.c` with
//! `clang -O2 -g -target bpf -mcpu=v3`. Its program `xdp_dhcp` sends IPv4 UDP to port 67
//! (behind at most one VLAN tag, any IHL, not fragmented) to the AF_XDP socket of the rx queue
//! the frame arrived on ([`MAP_XSKS`]), and passes everything else to the kernel untouched.
//! Each verdict is counted per CPU in [`MAP_COUNTERS`] (slots: [`Verdict`]).
//!
//! [`MAP_LB_CONFIG`] holds one [`LbConfig`]: the RFC 3074 load-balancing filter the failover
//! code fills. When on, a DHCPDISCOVER whose hash bucket the peer serves is dropped in the
//! kernel. The bucket is the Pearson hash of the client identifier (option 61) else of `chaddr`
//! for `hlen` bytes, as `control::failover::hash::client_bucket` computes it.
//!
//! [`MAP_RATE_CONFIG`] holds one [`RateConfig`]: request rate limits per client hardware
//! address, per option 82 circuit-id within its relay and per relay agent (the IPv4 source of
//! a request with `giaddr` set), as token buckets in per-CPU LRU hashes ([`MAP_RATE_MAC`],
//! [`MAP_RATE_CIRCUIT`], [`MAP_RATE_RELAY`]). A request over a limit is dropped in the kernel.
#![no_std]
#![forbid(unsafe_code)]

/// UDP port DHCP servers listen on (RFC 2131 §4.1).
pub const DHCP_SERVER_PORT: u16 = 67;

/// An 8-byte aligned wrapper, so the embedded ELF can be parsed in place.
#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);

static OBJECT: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/xdp_dhcp.o")));

/// The compiled BPF object (ELF, 8-byte aligned).
pub static XDP_DHCP: &[u8] = &OBJECT.0;

/// Name of the XDP program in [`XDP_DHCP`].
pub const PROGRAM_NAME: &str = "xdp_dhcp";
/// `BPF_MAP_TYPE_XSKMAP`, key: rx queue index (`u32`), value: AF_XDP socket fd.
pub const MAP_XSKS: &str = "XSKS";
/// Slots in [`MAP_XSKS`]: the most rx queues one interface can steer.
pub const MAX_QUEUES: u32 = 256;
/// `BPF_MAP_TYPE_PERCPU_ARRAY`, key: [`Verdict`] as `u32`, value: `u64` frame count.
pub const MAP_COUNTERS: &str = "COUNTERS";
/// `BPF_MAP_TYPE_ARRAY` with one [`LbConfig`] at key 0.
pub const MAP_LB_CONFIG: &str = "LB_CONFIG";

/// `BPF_MAP_TYPE_ARRAY` with one [`RateConfig`] at key 0.
pub const MAP_RATE_CONFIG: &str = "RATE_CONFIG";
/// `BPF_MAP_TYPE_LRU_PERCPU_HASH`: a bucket per `htype`, `hlen`, `chaddr` (65,536 entries).
pub const MAP_RATE_MAC: &str = "RATE_MAC";
/// `BPF_MAP_TYPE_LRU_PERCPU_HASH`: a bucket per relay and circuit-id hash (65,536 entries).
pub const MAP_RATE_CIRCUIT: &str = "RATE_CIRCUIT";
/// `BPF_MAP_TYPE_LRU_PERCPU_HASH`: a bucket per relay's IPv4 source (4,096 entries).
pub const MAP_RATE_RELAY: &str = "RATE_RELAY";

/// What the program did with a frame: the slots of [`MAP_COUNTERS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Verdict {
    /// Not DHCP to port 67: passed to the kernel.
    Pass = 0,
    /// DHCP redirected to the rx queue's AF_XDP socket.
    Redirect = 1,
    /// DHCP, but no socket is bound for the rx queue: passed to the kernel.
    NoXsk = 2,
    /// A DHCPDISCOVER in a bucket the failover peer serves: dropped.
    LbDrop = 3,
    /// A request over its relay's rate: dropped.
    RateRelay = 4,
    /// A request over its circuit-id's rate: dropped.
    RateCircuit = 5,
    /// A request over its client hardware address's rate: dropped.
    RateMac = 6,
}

impl Verdict {
    /// Every verdict, in slot order.
    pub const ALL: [Verdict; 7] = [
        Verdict::Pass,
        Verdict::Redirect,
        Verdict::NoXsk,
        Verdict::LbDrop,
        Verdict::RateRelay,
        Verdict::RateCircuit,
        Verdict::RateMac,
    ];
    /// Slots in [`MAP_COUNTERS`].
    pub const COUNT: u32 = 7;
}

/// [`LbConfig::mode`]: no load-balancing drop.
pub const LB_OFF: u32 = 0;
/// [`LbConfig::mode`]: drop DHCPDISCOVERs of the peer's buckets.
pub const LB_ON: u32 = 1;

/// The load-balancing filter (C `struct lb_config`), the one value of [`MAP_LB_CONFIG`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct LbConfig {
    /// [`LB_OFF`] or [`LB_ON`].
    pub mode: u32,
    /// 1: this server is the primary (a set HBA bit is its bucket); 0: the secondary.
    pub primary: u32,
    /// A client whose `secs` is at least this is served whatever its bucket (0: no limit;
    /// ISC `load balance max seconds`).
    pub max_secs: u32,
    /// Zero.
    pub pad: u32,
    /// The 256-bit hash bucket assignment in ISC order: bucket `b` is bit `1 << (b & 7)` of
    /// byte `b >> 3`; a set bit means the primary serves the bucket.
    pub hba: [u8; 32],
}

impl LbConfig {
    /// The filter switched off.
    pub const OFF: LbConfig = LbConfig {
        mode: LB_OFF,
        primary: 0,
        max_secs: 0,
        pad: 0,
        hba: [0; 32],
    };
}

/// One class's limit (C `struct rate`): `rate` requests a second with bursts of `burst`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct Rate {
    /// Requests a second; 0 switches the class off.
    pub rate: u32,
    /// The most requests at once (at least 1 when `rate` is not 0).
    pub burst: u32,
}

/// The request rate limits (C `struct rate_config`), the one value of [`MAP_RATE_CONFIG`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct RateConfig {
    /// Per `htype`, `hlen` and `chaddr`.
    pub mac: Rate,
    /// Per option 82 circuit-id (sub-option 1), within its relay.
    pub circuit: Rate,
    /// Per relay agent: the IPv4 source of requests with `giaddr` set.
    pub relay: Rate,
}

impl RateConfig {
    /// Nothing limited.
    pub const OFF: RateConfig = RateConfig {
        mac: Rate { rate: 0, burst: 0 },
        circuit: Rate { rate: 0, burst: 0 },
        relay: Rate { rate: 0, burst: 0 },
    };
}

static LG_OBJECT: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    env!("OUT_DIR"),
    "/xdp_lg_client.o"
)));

/// The load generator's client-side program (`src/xdp_lg_client.c`, ELF, 8-byte aligned):
/// IPv4 UDP to port 68 or 67 (replies to clients or to a relay's giaddr) goes to the AF_XDP
/// socket of its rx queue ([`LG_MAP_XSKS`]); everything else passes to the kernel.
pub static XDP_LG_CLIENT: &[u8] = &LG_OBJECT.0;

/// Name of the program in [`XDP_LG_CLIENT`].
pub const LG_PROGRAM_NAME: &str = "xdp_lg_client";
/// [`XDP_LG_CLIENT`]'s `BPF_MAP_TYPE_XSKMAP` ([`MAX_QUEUES`] slots), key: rx queue index.
pub const LG_MAP_XSKS: &str = "LG_XSKS";
/// [`XDP_LG_CLIENT`]'s per-CPU counters, key: 0 passed, 1 redirected, 2 no socket bound.
pub const LG_MAP_COUNTERS: &str = "LG_COUNTERS";
