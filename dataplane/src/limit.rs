//! Per-worker rate limits on requests, per client MAC (`chaddr`), per option 82 circuit-id
//! and per relay agent (the IPv4 source of a relayed request): token buckets in fixed-size,
//! direct-mapped tables allocated once, so a flood costs no allocation and bounded memory.
//!
//! A key hashes to one slot; a different key landing there takes the slot over with a full
//! bucket. Eviction therefore only ever forgets a client's debt: a flood of random keys can
//! make the limiter more lenient with a key it evicts, never stricter with anyone. Each
//! worker has its own tables, so a client whose frames are spread over `n` workers (packet
//! fanout) gets up to `n` times the rate; that also errs on the lenient side.
//!
//! Time is whole seconds ([`UnixTime`]): a bucket gains `rate` tokens a second (a
//! [`DeclineLimits`] bucket: an hour) up to `burst`, and each request takes one.
//!
//! The same buckets limit DHCPDECLINEs ([`DeclineLimits`], #13), per MAC and per relay. Those
//! are the engine's ([`crate::engine::EngineWorker`]): only a DECLINE that would abandon an
//! address takes a token, which only the engine knows after reading the record.
#![forbid(unsafe_code)]

use lease_mmap::UnixTime;

use crate::engine::Ingress;
use crate::wire::dhcpv4::Repr;

/// Slots per table (a power of two): 8192 × 16 bytes = 128 KiB per class and worker.
pub const SLOTS: usize = 8192;

/// One class's limit: `rate` requests a second with bursts of `burst`; `rate` 0 is off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub rate: u32,
    pub burst: u32,
}

impl RateLimit {
    pub const OFF: RateLimit = RateLimit { rate: 0, burst: 0 };
}

/// The limits a worker applies before the engine sees a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// Per client hardware address (`htype`, `chaddr`).
    pub mac: RateLimit,
    /// Per option 82 circuit-id (sub-option 1), within the relay that sent it.
    pub circuit: RateLimit,
    /// Per relay agent: the IPv4 source of requests with `giaddr` set.
    pub relay: RateLimit,
}

impl RateLimits {
    /// Nothing limited.
    pub const OFF: RateLimits = RateLimits {
        mac: RateLimit::OFF,
        circuit: RateLimit::OFF,
        relay: RateLimit::OFF,
    };

    /// The defaults of `tandemd`'s config: 5 a second per MAC with bursts of 20 (a client
    /// sends two per DORA and retransmits after seconds), 20 a second per circuit with
    /// bursts of 100 (a household), relays unlimited (their volume is the site's).
    pub const DEFAULT: RateLimits = RateLimits {
        mac: RateLimit { rate: 5, burst: 20 },
        circuit: RateLimit {
            rate: 20,
            burst: 100,
        },
        relay: RateLimit::OFF,
    };

    /// The same limits as the XDP program's `RATE_CONFIG` (a class with rate 0 is off; a
    /// burst under 1 is 1, as here).
    pub fn to_xdp(&self) -> ebpf::RateConfig {
        let one = |l: RateLimit| ebpf::Rate {
            rate: l.rate,
            burst: if l.rate == 0 { 0 } else { l.burst.max(1) },
        };
        ebpf::RateConfig {
            mac: one(self.mac),
            circuit: one(self.circuit),
            relay: one(self.relay),
        }
    }
}

/// The period of a [`DeclineLimits`] rate: an hour.
pub const DECLINE_PERIOD: u32 = 3600;

/// Limits on the DHCPDECLINEs that abandon an address (#13: each takes an address out of the
/// pool for the scope's probation, and is replicated to a failover partner). Rates are per
/// [`DECLINE_PERIOD`] (an hour), not per second; a DECLINE over either is dropped
/// (`decline-rate-relay`, `decline-rate-mac`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeclineLimits {
    /// Per client hardware address (`htype`, `chaddr`).
    pub mac: RateLimit,
    /// Per relay agent: the IPv4 source of DECLINEs with `giaddr` set, as for
    /// [`RateLimits::relay`].
    pub relay: RateLimit,
}

impl DeclineLimits {
    /// Nothing limited.
    pub const OFF: DeclineLimits = DeclineLimits {
        mac: RateLimit::OFF,
        relay: RateLimit::OFF,
    };

    /// The defaults of `tandemd`'s config: 10 an hour per MAC (a client that keeps finding
    /// its address in use has a network problem, not a need for more addresses), 100 an hour
    /// per relay; each may be spent at once.
    pub const DEFAULT: DeclineLimits = DeclineLimits {
        mac: RateLimit {
            rate: 10,
            burst: 10,
        },
        relay: RateLimit {
            rate: 100,
            burst: 100,
        },
    };
}

/// The key of a request's client hardware address (`htype`, `chaddr`).
pub fn mac_key(req: &Repr<'_>) -> u64 {
    let chaddr = req
        .chaddr
        .get(..usize::from(req.hlen.min(16)))
        .unwrap_or(&[]);
    hash(&[&[req.htype], chaddr])
}

/// The key of the relay agent a request came through (its IPv4 source), if `giaddr` is set.
pub fn relay_key(req: &Repr<'_>, ingress: &Ingress) -> Option<u64> {
    (!req.giaddr.is_unspecified()).then(|| hash(&[&ingress.src_ip.octets()]))
}

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    /// The key's hash, 0 for an empty slot (a key hashing to 0 is stored as 1).
    key: u64,
    /// When `tokens` was last brought up to date.
    at: u32,
    tokens: u32,
}

/// One class's table of buckets.
#[derive(Debug)]
pub struct Buckets {
    limit: RateLimit,
    /// Seconds in which a bucket gains `limit.rate` tokens.
    period: u32,
    slots: Box<[Bucket]>,
}

impl Buckets {
    /// A table for `limit` (a rate per second); no memory when it is off.
    pub fn new(limit: RateLimit) -> Self {
        Self::per(limit, 1)
    }

    /// A table for `limit` as a rate per `period` seconds; no memory when it is off.
    pub fn per(limit: RateLimit, period: u32) -> Self {
        let n = if limit.rate == 0 { 0 } else { SLOTS };
        Buckets {
            limit,
            period: period.max(1),
            slots: vec![Bucket::default(); n].into_boxed_slice(),
        }
    }

    /// Whether one more request from the key hashed to `hash` is allowed at `now` (taking a
    /// token if so). Always true when the limit is off.
    pub fn allow(&mut self, hash: u64, now: UnixTime) -> bool {
        let RateLimit { rate, burst } = self.limit;
        if rate == 0 {
            return true;
        }
        let burst = burst.max(1);
        let key = hash.max(1);
        let mask = (self.slots.len() - 1) as u64;
        let Ok(i) = usize::try_from(hash & mask) else {
            return true;
        };
        let Some(b) = self.slots.get_mut(i) else {
            return true;
        };
        if b.key != key {
            *b = Bucket {
                key,
                at: now.0,
                tokens: burst,
            };
        } else {
            // Whole tokens only; `at` moves on by the time they took, so the remainder of a
            // period is not lost (a rate per hour gains a token every 360 s of 10).
            let period = u64::from(self.period);
            let gained = u64::from(now.0.saturating_sub(b.at)) * u64::from(rate) / period;
            let tokens = u64::from(b.tokens) + gained;
            if tokens >= u64::from(burst) {
                b.tokens = burst;
                b.at = b.at.max(now.0);
            } else {
                b.tokens = u32::try_from(tokens).unwrap_or(burst);
                let used = gained * period / u64::from(rate);
                b.at = b.at.saturating_add(u32::try_from(used).unwrap_or(u32::MAX));
            }
        }
        if b.tokens == 0 {
            return false;
        }
        b.tokens -= 1;
        true
    }
}

/// FNV-1a over `parts`, each followed by its length so that part boundaries count.
pub fn hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in p.iter().chain(&[u8::try_from(p.len()).unwrap_or(u8::MAX)]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    // Fold the high bits in: the slot index takes the low ones.
    h ^ (h >> 29)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let mut b = Buckets::new(RateLimit { rate: 2, burst: 3 });
        let k = hash(&[b"a"]);
        let t = UnixTime(100);
        assert!((0..3).all(|_| b.allow(k, t)));
        assert!(!b.allow(k, t));
        let t = UnixTime(101);
        assert!(b.allow(k, t) && b.allow(k, t));
        assert!(!b.allow(k, t));
        // Another key has its own bucket; a long pause refills to the burst only.
        assert!(b.allow(hash(&[b"b"]), t));
        let t = UnixTime(1000);
        assert!((0..3).all(|_| b.allow(k, t)));
        assert!(!b.allow(k, t));
        // Off allows everything.
        let mut off = Buckets::new(RateLimit::OFF);
        assert!((0..1000).all(|_| off.allow(k, t)));
    }

    #[test]
    fn bucket_per_hour_refills_a_token_every_period_over_rate() {
        let mut b = Buckets::per(RateLimit { rate: 10, burst: 2 }, DECLINE_PERIOD);
        let k = hash(&[b"a"]);
        let t = |s: u32| UnixTime(1000 + s);
        assert!(b.allow(k, t(0)) && b.allow(k, t(0)));
        assert!(!b.allow(k, t(0)));
        // Asked every 100 s: the partial periods add up, one token per 360 s.
        let allowed: Vec<u32> = (1..=8)
            .map(|i| i * 100)
            .filter(|&s| b.allow(k, t(s)))
            .collect();
        assert_eq!(allowed, vec![400, 800]);
        // A long pause refills to the burst only.
        assert!(b.allow(k, t(100_000)) && b.allow(k, t(100_000)));
        assert!(!b.allow(k, t(100_000)));
    }
}
