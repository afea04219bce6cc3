//! The engine's domain configuration: what the control plane builds from TOML (DESIGN.md §6)
//! after validating it. Plain data; [`EngineConfig::validate`] is the one check, and
//! [`ScopeConfig::table_spec`] derives the lease table a scope needs.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use lease_mmap::TableSpec;

use crate::limit::DeclineLimits;

/// Lease time a scope gets when the config names none (1 h).
pub const DEFAULT_LEASE_TIME: u32 = 3600;
/// How long a DHCPOFFER holds its address (RFC 2131 §4.3.1 leaves it to the server).
pub const DEFAULT_OFFER_HOLD: u32 = 30;
/// How long a declined address stays ABANDONED before it is reclaimed (Kea's default, 24 h).
pub const DEFAULT_DECLINE_PROBATION: u32 = 86_400;
/// The share of a scope's pool that DECLINEs may keep ABANDONED at once (#13).
pub const DEFAULT_MAX_ABANDONED_PERCENT: u8 = 10;
/// Option 51's "infinite" (RFC 2132 §9.2), and what BOOTP clients get (RFC 1534 §3).
pub const INFINITE_LEASE: u32 = u32::MAX;

/// Everything the engine serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Option 54 in every reply; `None` = the receiving interface's address.
    pub server_id: Option<Ipv4Addr>,
    /// The subnets served; scope `i` uses lease table `TableId(i)`.
    pub scopes: Vec<ScopeConfig>,
    /// Seconds a DHCPOFFER holds its address in OFFERED state.
    pub offer_hold: u32,
    /// Relay agents whose word is taken, as `(network, prefix length)`: a relayed request
    /// (`giaddr` set) whose IPv4 source lies in one of them has its option 82 sub-options
    /// (link selection, server identifier override, circuit-id / remote-id reservations)
    /// and option 118 honoured. Everyone else's are ignored. Empty: no one's.
    pub trusted_relays: Vec<(Ipv4Addr, u8)>,
    /// DHCPDECLINEs that abandon an address, per MAC and per relay, counted by each worker
    /// ([`crate::limit`]).
    pub decline_limits: DeclineLimits,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            server_id: None,
            scopes: Vec::new(),
            offer_hold: DEFAULT_OFFER_HOLD,
            trusted_relays: Vec::new(),
            decline_limits: DeclineLimits::DEFAULT,
        }
    }
}

/// One subnet (`[[subnet]]` in the TOML).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeConfig {
    /// Network address; host bits must be zero.
    pub network: Ipv4Addr,
    /// Prefix length, `0..=32`.
    pub prefix_len: u8,
    /// Dynamic pools, inclusive ranges inside the subnet.
    pub pools: Vec<(Ipv4Addr, Ipv4Addr)>,
    /// Inclusive ranges never handed out dynamically.
    pub exclude: Vec<(Ipv4Addr, Ipv4Addr)>,
    /// Option 3.
    pub router: Vec<Ipv4Addr>,
    /// Option 6.
    pub dns: Vec<Ipv4Addr>,
    /// Option 15.
    pub domain_name: Option<String>,
    /// Option 51, seconds ([`INFINITE_LEASE`] = infinite).
    pub lease_time: u32,
    /// Option 58 for a full lease; default `lease_time / 2` (RFC 2131 §4.4.5).
    pub renewal_time: Option<u32>,
    /// Option 59 for a full lease; default `lease_time * 7 / 8` (RFC 2131 §4.4.5).
    pub rebinding_time: Option<u32>,
    /// Seconds a declined address stays ABANDONED.
    pub decline_probation: u32,
    /// At most this percentage of the pool (its allocatable addresses, rounded down) is
    /// ABANDONED at once; a DECLINE beyond it leaves the lease as it was. `0..=100`.
    pub max_abandoned_percent: u8,
    /// Fixed addresses; they need not lie in a pool and are never allocated dynamically.
    pub reservations: Vec<Reservation>,
    /// The interface a directly attached scope lives on. Informational for the control plane
    /// (which interfaces to open); the engine selects scopes by address only.
    pub interface: Option<String>,
}

/// A fixed address for one client (`[[subnet.reservation]]`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reservation {
    pub key: ReservationKey,
    pub address: Ipv4Addr,
}

/// How a reservation recognises its client. Lookup order in the engine: client-id, MAC,
/// circuit-id, remote-id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ReservationKey {
    /// `chaddr` of an Ethernet client (`htype` 1, `hlen` 6).
    Mac([u8; 6]),
    /// The whole option 61 payload, type byte first.
    ClientId(Vec<u8>),
    /// Option 82 sub-option 1 (RFC 3046 §3.1), from the relay the request came through.
    CircuitId(Vec<u8>),
    /// Option 82 sub-option 2 (RFC 3046 §3.2).
    RemoteId(Vec<u8>),
}

/// Why a configuration cannot be served.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("subnet {network}/{prefix_len}: prefix length over 32")]
    PrefixTooLong { network: Ipv4Addr, prefix_len: u8 },
    #[error("subnet {network}/{prefix_len}: host bits set in the network address")]
    HostBitsSet { network: Ipv4Addr, prefix_len: u8 },
    #[error("subnet {network}: range {first}-{last} is reversed")]
    ReversedRange {
        network: Ipv4Addr,
        first: Ipv4Addr,
        last: Ipv4Addr,
    },
    #[error("subnet {network}: range {first}-{last} is outside the subnet")]
    RangeOutsideSubnet {
        network: Ipv4Addr,
        first: Ipv4Addr,
        last: Ipv4Addr,
    },
    #[error("subnet {network}: reservation {address} is outside the subnet")]
    ReservationOutsideSubnet {
        network: Ipv4Addr,
        address: Ipv4Addr,
    },
    #[error("subnet {network}: address {address} is reserved twice")]
    DuplicateReservedAddress {
        network: Ipv4Addr,
        address: Ipv4Addr,
    },
    #[error("subnet {network}: two reservations share one client key")]
    DuplicateReservationKey { network: Ipv4Addr },
    #[error("subnet {network}: a reservation key is empty or longer than 255 bytes")]
    BadReservationKey { network: Ipv4Addr },
    #[error("subnet {network}: max_abandoned_percent {percent} is over 100")]
    BadAbandonedPercent { network: Ipv4Addr, percent: u8 },
    #[error("subnet {network}: lease time is zero")]
    ZeroLeaseTime { network: Ipv4Addr },
    #[error(
        "subnet {network}: renewal time must not exceed rebinding time, nor that the lease time"
    )]
    BadTimers { network: Ipv4Addr },
    #[error("subnet {network}: the table would cover more than {max} addresses")]
    TooLarge { network: Ipv4Addr, max: u32 },
    #[error("subnet {network}: domain name longer than 255 bytes")]
    DomainNameTooLong { network: Ipv4Addr },
    #[error("subnet {network}: more than 63 routers or DNS servers")]
    TooManyAddresses { network: Ipv4Addr },
    #[error("subnets {a} and {b} overlap")]
    OverlappingScopes { a: Ipv4Addr, b: Ipv4Addr },
    #[error("more than 65535 subnets")]
    TooManyScopes,
    #[error(
        "the lease store has {tables} tables for {scopes} subnets, or a table's span differs from its subnet's"
    )]
    StoreMismatch { tables: usize, scopes: usize },
}

/// Largest table one scope may ask for (a /8's worth).
pub const MAX_TABLE_LEN: u32 = 1 << 24;

impl EngineConfig {
    /// Check every scope and that no two scopes overlap.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.scopes.len() > usize::from(u16::MAX) {
            return Err(ConfigError::TooManyScopes);
        }
        let mut spans = Vec::with_capacity(self.scopes.len());
        for s in &self.scopes {
            s.validate()?;
            spans.push((u32::from(s.network), u32::from(s.broadcast()), s.network));
        }
        spans.sort_unstable();
        for pair in spans.windows(2) {
            if let [a, b] = pair
                && b.0 <= a.1
            {
                return Err(ConfigError::OverlappingScopes { a: a.2, b: b.2 });
            }
        }
        Ok(())
    }

    /// The table specs for [`lease_mmap::Store::open`], in scope order.
    pub fn table_specs(&self) -> Vec<TableSpec> {
        self.scopes.iter().map(ScopeConfig::table_spec).collect()
    }
}

impl ScopeConfig {
    /// A scope with no pools and the defaults: 1 h leases, RFC T1/T2, 24 h decline probation,
    /// at most 10 % of the pool abandoned.
    pub fn new(network: Ipv4Addr, prefix_len: u8) -> Self {
        Self {
            network,
            prefix_len,
            pools: Vec::new(),
            exclude: Vec::new(),
            router: Vec::new(),
            dns: Vec::new(),
            domain_name: None,
            lease_time: DEFAULT_LEASE_TIME,
            renewal_time: None,
            rebinding_time: None,
            decline_probation: DEFAULT_DECLINE_PROBATION,
            max_abandoned_percent: DEFAULT_MAX_ABANDONED_PERCENT,
            reservations: Vec::new(),
            interface: None,
        }
    }

    /// Option 1.
    pub fn mask(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask_bits(self.prefix_len))
    }

    /// The subnet's broadcast address (option 28).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !mask_bits(self.prefix_len))
    }

    /// Whether `addr` lies in this subnet.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        let m = mask_bits(self.prefix_len);
        u32::from(addr) & m == u32::from(self.network) & m
    }

    /// T1 and T2 for a lease of `lease` seconds: the configured values scaled to `lease`
    /// when the lease granted is shorter than configured (failover's MCLT bound, BOOTP),
    /// else `lease / 2` and `lease * 7 / 8` (RFC 2131 §4.4.5). An infinite lease has
    /// infinite timers.
    pub fn timers(&self, lease: u32) -> (u32, u32) {
        if lease == INFINITE_LEASE {
            return (INFINITE_LEASE, INFINITE_LEASE);
        }
        let full = u64::from(self.lease_time.max(1));
        let scale = |t: u32| {
            let v = u64::from(lease) * u64::from(t.min(self.lease_time)) / full;
            u32::try_from(v).unwrap_or(lease)
        };
        let t1 = self.renewal_time.map_or(lease / 2, scale);
        let t2 = self.rebinding_time.map_or_else(
            || u32::try_from(u64::from(lease) * 7 / 8).unwrap_or(lease),
            scale,
        );
        (t1.min(t2), t2)
    }

    /// The lease table this scope needs: `first..=last` spans its pools and reservations;
    /// `allocatable` is the pools minus the exclusions, the reserved addresses, and the
    /// subnet's network and broadcast addresses (for prefixes up to /30). A scope with
    /// neither pools nor reservations gets a one-record table at its network address,
    /// with nothing allocatable.
    pub fn table_spec(&self) -> TableSpec {
        let pools: Vec<(u32, u32)> = self
            .pools
            .iter()
            .map(|&(a, b)| (u32::from(a), u32::from(b)))
            .collect();
        let reserved: Vec<u32> = self
            .reservations
            .iter()
            .map(|r| u32::from(r.address))
            .collect();
        let lo = pools
            .iter()
            .map(|p| p.0)
            .chain(reserved.iter().copied())
            .min();
        let hi = pools
            .iter()
            .map(|p| p.1)
            .chain(reserved.iter().copied())
            .max();
        let (first, last) = match (lo, hi) {
            (Some(lo), Some(hi)) if lo <= hi => (lo, hi),
            _ => (u32::from(self.network), u32::from(self.network)),
        };
        let mut holes: Vec<(u32, u32)> = self
            .exclude
            .iter()
            .map(|&(a, b)| (u32::from(a), u32::from(b)))
            .collect();
        holes.extend(reserved.iter().map(|&a| (a, a)));
        if self.prefix_len <= 30 {
            holes.push((u32::from(self.network), u32::from(self.network)));
            holes.push((u32::from(self.broadcast()), u32::from(self.broadcast())));
        }
        let allocatable = subtract(merge(pools), merge(holes))
            .into_iter()
            .map(|(a, b)| (Ipv4Addr::from(a), Ipv4Addr::from(b)))
            .collect();
        TableSpec {
            network: Ipv4Addr::from(u32::from(self.network) & mask_bits(self.prefix_len)),
            prefix_len: self.prefix_len,
            first: Ipv4Addr::from(first),
            last: Ipv4Addr::from(last),
            allocatable,
        }
    }

    /// How many of the scope's records DECLINEs may keep ABANDONED at once:
    /// `max_abandoned_percent` of the allocatable addresses of `spec` (this scope's
    /// [`ScopeConfig::table_spec`]), rounded down.
    pub fn max_abandoned(&self, spec: &TableSpec) -> u32 {
        let pool: u64 = spec
            .allocatable
            .iter()
            .map(|&(a, b)| u64::from(u32::from(b)) - u64::from(u32::from(a)) + 1)
            .sum();
        let cap = pool * u64::from(self.max_abandoned_percent.min(100)) / 100;
        u32::try_from(cap).unwrap_or(u32::MAX)
    }

    /// Check this scope alone.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let network = self.network;
        if self.prefix_len > 32 {
            return Err(ConfigError::PrefixTooLong {
                network,
                prefix_len: self.prefix_len,
            });
        }
        if u32::from(network) & !mask_bits(self.prefix_len) != 0 {
            return Err(ConfigError::HostBitsSet {
                network,
                prefix_len: self.prefix_len,
            });
        }
        for &(first, last) in self.pools.iter().chain(&self.exclude) {
            if u32::from(first) > u32::from(last) {
                return Err(ConfigError::ReversedRange {
                    network,
                    first,
                    last,
                });
            }
        }
        for &(first, last) in &self.pools {
            if !self.contains(first) || !self.contains(last) {
                return Err(ConfigError::RangeOutsideSubnet {
                    network,
                    first,
                    last,
                });
            }
        }
        let mut addrs = HashSet::new();
        let mut keys = HashSet::new();
        for r in &self.reservations {
            if !self.contains(r.address) {
                return Err(ConfigError::ReservationOutsideSubnet {
                    network,
                    address: r.address,
                });
            }
            if !addrs.insert(r.address) {
                return Err(ConfigError::DuplicateReservedAddress {
                    network,
                    address: r.address,
                });
            }
            let key_len = match &r.key {
                ReservationKey::Mac(_) => 6,
                ReservationKey::ClientId(k)
                | ReservationKey::CircuitId(k)
                | ReservationKey::RemoteId(k) => k.len(),
            };
            if key_len == 0 || key_len > 255 {
                return Err(ConfigError::BadReservationKey { network });
            }
            if !keys.insert(&r.key) {
                return Err(ConfigError::DuplicateReservationKey { network });
            }
        }
        if self.lease_time == 0 {
            return Err(ConfigError::ZeroLeaseTime { network });
        }
        if self.max_abandoned_percent > 100 {
            return Err(ConfigError::BadAbandonedPercent {
                network,
                percent: self.max_abandoned_percent,
            });
        }
        let t1 = self.renewal_time.unwrap_or(0);
        let t2 = self.rebinding_time.unwrap_or(self.lease_time);
        if t1 > t2 || t2 > self.lease_time {
            return Err(ConfigError::BadTimers { network });
        }
        if self.domain_name.as_ref().is_some_and(|d| d.len() > 255) {
            return Err(ConfigError::DomainNameTooLong { network });
        }
        if self.router.len() > 63 || self.dns.len() > 63 {
            return Err(ConfigError::TooManyAddresses { network });
        }
        let spec = self.table_spec();
        let len = u64::from(u32::from(spec.last)) - u64::from(u32::from(spec.first)) + 1;
        if len > u64::from(MAX_TABLE_LEN) {
            return Err(ConfigError::TooLarge {
                network,
                max: MAX_TABLE_LEN,
            });
        }
        Ok(())
    }
}

/// The netmask of `/prefix_len` as bits (prefixes over 32 saturate to /32).
pub(crate) fn mask_bits(prefix_len: u8) -> u32 {
    match prefix_len {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

/// Sort and coalesce inclusive ranges.
fn merge(mut ranges: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    ranges.retain(|r| r.0 <= r.1);
    ranges.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match out.last_mut() {
            Some(last) if u64::from(a) <= u64::from(last.1) + 1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// `ranges` minus `holes`, both merged (sorted, disjoint).
fn subtract(ranges: Vec<(u32, u32)>, holes: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for (a, b) in ranges {
        let mut start = u64::from(a);
        let end = u64::from(b);
        for &(ha, hb) in &holes {
            let (ha, hb) = (u64::from(ha), u64::from(hb));
            if hb < start || ha > end {
                continue;
            }
            if ha > start {
                out.push((start, ha - 1));
            }
            start = hb + 1;
            if start > end {
                break;
            }
        }
        if start <= end {
            out.push((start, end));
        }
    }
    out.into_iter()
        .filter_map(|(a, b)| Some((u32::try_from(a).ok()?, u32::try_from(b).ok()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn table_spec_subtracts_excludes_reservations_and_edges() {
        let mut s = ScopeConfig::new(ip("10.0.0.0"), 24);
        s.pools = vec![
            (ip("10.0.0.0"), ip("10.0.0.20")),
            (ip("10.0.0.100"), ip("10.0.0.255")),
        ];
        s.exclude = vec![(ip("10.0.0.5"), ip("10.0.0.9"))];
        s.reservations = vec![Reservation {
            key: ReservationKey::Mac([2, 0, 0, 0, 0, 1]),
            address: ip("10.0.0.50"),
        }];
        let spec = s.table_spec();
        assert_eq!(spec.first, ip("10.0.0.0"));
        assert_eq!(spec.last, ip("10.0.0.255"));
        assert_eq!(
            spec.allocatable,
            vec![
                (ip("10.0.0.1"), ip("10.0.0.4")),
                (ip("10.0.0.10"), ip("10.0.0.20")),
                (ip("10.0.0.100"), ip("10.0.0.254")),
            ]
        );
        s.validate().unwrap();
        // 10 % of the 170 allocatable addresses; rounded down.
        assert_eq!(s.max_abandoned(&spec), 17);
        s.max_abandoned_percent = 3;
        assert_eq!(s.max_abandoned(&spec), 5);
        s.max_abandoned_percent = 0;
        assert_eq!(s.max_abandoned(&spec), 0);
        s.max_abandoned_percent = 100;
        assert_eq!(s.max_abandoned(&spec), 170);
        s.max_abandoned_percent = 101;
        assert!(matches!(
            s.validate(),
            Err(ConfigError::BadAbandonedPercent { percent: 101, .. })
        ));
    }

    #[test]
    fn reservation_outside_pools_widens_the_span() {
        let mut s = ScopeConfig::new(ip("10.0.0.0"), 24);
        s.pools = vec![(ip("10.0.0.10"), ip("10.0.0.20"))];
        s.reservations = vec![Reservation {
            key: ReservationKey::ClientId(vec![1, 2, 3]),
            address: ip("10.0.0.30"),
        }];
        let spec = s.table_spec();
        assert_eq!((spec.first, spec.last), (ip("10.0.0.10"), ip("10.0.0.30")));
        assert_eq!(spec.allocatable, vec![(ip("10.0.0.10"), ip("10.0.0.20"))]);
    }

    #[test]
    fn timers_default_and_scaled() {
        let mut s = ScopeConfig::new(ip("10.0.0.0"), 24);
        s.lease_time = 800;
        assert_eq!(s.timers(800), (400, 700));
        s.renewal_time = Some(200);
        s.rebinding_time = Some(600);
        assert_eq!(s.timers(800), (200, 600));
        assert_eq!(s.timers(400), (100, 300));
        assert_eq!(s.timers(INFINITE_LEASE), (INFINITE_LEASE, INFINITE_LEASE));
    }

    #[test]
    fn validation_catches_mistakes() {
        let mut s = ScopeConfig::new(ip("10.0.0.1"), 24);
        assert!(matches!(s.validate(), Err(ConfigError::HostBitsSet { .. })));
        s.network = ip("10.0.0.0");
        s.pools = vec![(ip("10.0.1.1"), ip("10.0.1.5"))];
        assert!(matches!(
            s.validate(),
            Err(ConfigError::RangeOutsideSubnet { .. })
        ));
        s.pools = vec![(ip("10.0.0.9"), ip("10.0.0.5"))];
        assert!(matches!(
            s.validate(),
            Err(ConfigError::ReversedRange { .. })
        ));
        s.pools = vec![(ip("10.0.0.5"), ip("10.0.0.9"))];
        s.renewal_time = Some(4000);
        assert!(matches!(s.validate(), Err(ConfigError::BadTimers { .. })));
        s.renewal_time = None;
        s.validate().unwrap();
        let mut t = ScopeConfig::new(ip("10.0.0.128"), 25);
        t.pools = vec![(ip("10.0.0.130"), ip("10.0.0.140"))];
        let cfg = EngineConfig {
            scopes: vec![s, t],
            ..EngineConfig::default()
        };
        assert!(matches!(
            cfg.validate(),
            Err(ConfigError::OverlappingScopes { .. })
        ));
    }
}
