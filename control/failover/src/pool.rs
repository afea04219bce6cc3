//! Pool balancing: which addresses each server of a pair may hand to new clients
//! (`reference/failover-protocol.md` §3.5; ISC `dhcp_failover_pool_dobalance` and
//! `dhcp_failover_pool_check`, `failover.c:2514-2795`).
//!
//! An address a new client can get is FREE (the primary's) or BACKUP (the secondary's). Only
//! the owner may allocate it while the pair is cooperating, so the secondary serves its half
//! of the clients, and survives its partner's death, only with BACKUP addresses the primary
//! gave it. Balancing moves addresses between the two: the primary gives FREE ones away as
//! BACKUP, the secondary gives surplus BACKUP ones back as FREE, each move a BNDUPD.
//!
//! How many (`lts`, "leases to send"):
//! * load balance (ISC's only rule): half the difference, `(free − backup) / 2` on the
//!   primary, `(backup − free) / 2` on the secondary;
//! * hot standby: the standby holds `reserve_percent` of the available addresses (Windows'
//!   reserve, 5 % by default), so the primary's `lts` is that target less what the standby
//!   holds, and the standby's is the reverse.
//!
//! Which ones, in ISC's two passes over the giver's own pool: first the addresses whose last
//! client the RFC 3074 hash gives to the peer (so a returning client finds its old address
//! with the server that will answer it), until the peer holds up to `hold` more than its
//! share; then any address, never-used ones until even, used ones until we hold at most
//! `hold` more than our share. `hold` is ISC's `max-lease-ownership` (10 %) of the pool; in
//! hot standby it is zero, as the reserve is exact.
//!
//! When: on entering NORMAL, on the peer's POOLREQ, and on a schedule between
//! [`MIN_BALANCE`] and [`MAX_BALANCE`] estimated from the age of the oldest free address.
//! A run that finds this server short by more than twice `max-lease-misbalance` (15 %) asks
//! the peer to rebalance with POOLREQ ("panic").
//!
//! Everything here is a function of counts and records: the driver reads the tables, moves
//! the records it is told to and sends their BNDUPDs.

use std::time::Duration;

use lease_record::{BindingState, Lease, Slot, UnixTime};

use super::hash::{self, Hba};
use super::storage::Records;
use super::{Instant, Now, Role};

/// ISC `max-lease-misbalance` default, percent of the pool.
pub const MAX_LEASE_MISBALANCE: u32 = 15;
/// ISC `max-lease-ownership` default, percent of the pool.
pub const MAX_LEASE_OWNERSHIP: u32 = 10;
/// ISC `min-balance` default: runs are at least this far apart.
pub const MIN_BALANCE: Duration = Duration::from_secs(60);
/// ISC `max-balance` default: runs are at most this far apart.
pub const MAX_BALANCE: Duration = Duration::from_secs(3600);

/// How the available addresses are shared between the two servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Share {
    /// Load balance: half each.
    Half,
    /// Hot standby: the standby (secondary) holds this percentage.
    Reserve(u8),
}

impl Share {
    /// Hot standby's share: `percent` of the available addresses with the standby.
    pub fn reserve(percent: u8) -> Share {
        Share::Reserve(percent.min(100))
    }
}

/// One relationship's balancing settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub role: Role,
    pub share: Share,
    /// Percent of the pool; see [`MAX_LEASE_MISBALANCE`].
    pub misbalance_percent: u32,
    /// Percent of the pool; see [`MAX_LEASE_OWNERSHIP`].
    pub ownership_percent: u32,
}

/// Addresses a new client could get, by owner.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub free: u64,
    pub backup: u64,
}

/// The outcome of looking at one pool's counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Balance {
    /// Addresses this server should give the peer (negative: it should get some).
    pub lts: i64,
    /// The tolerated imbalance: `max-lease-misbalance` of the pool.
    pub thresh: i64,
    /// The tolerated excess when choosing: `max-lease-ownership` of the pool.
    pub hold: i64,
    /// This server is short by more than twice `thresh`: ask the peer with POOLREQ.
    pub panic: bool,
}

/// A record of the giver's own pool, as the selection sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub slot: Slot,
    /// The address was bound before (ISC: `ends != 0`); never-used ones go first.
    pub used: bool,
    /// The hash bucket of the last client, if the record names one.
    pub bucket: Option<u8>,
}

/// `(n × percent + 50) / 100`, ISC's rounding.
fn percent_of(n: u64, percent: u32) -> i64 {
    let v = (u128::from(n) * u128::from(percent) + 50) / 100;
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Policy {
    /// ISC's defaults for `role` and `share`.
    pub fn new(role: Role, share: Share) -> Policy {
        Policy {
            role,
            share,
            misbalance_percent: MAX_LEASE_MISBALANCE,
            ownership_percent: MAX_LEASE_OWNERSHIP,
        }
    }

    /// The state this server's own allocatable addresses are in.
    pub fn own_state(&self) -> BindingState {
        match self.role {
            Role::Primary => BindingState::Free,
            Role::Secondary => BindingState::Backup,
        }
    }

    /// The state an address given to the peer goes to.
    pub fn peer_state(&self) -> BindingState {
        match self.role {
            Role::Primary => BindingState::Backup,
            Role::Secondary => BindingState::Free,
        }
    }

    /// How far this pool is from its share (ISC `dhcp_failover_pool_dobalance`).
    pub fn balance(&self, c: Counts) -> Balance {
        let total = c.free.saturating_add(c.backup);
        let (free, backup) = (signed(c.free), signed(c.backup));
        // Addresses the primary should still give: positive on the primary's side.
        let primary_lts = match self.share {
            Share::Half => (free - backup) / 2,
            Share::Reserve(p) => percent_of(total, u32::from(p)) - backup,
        };
        let lts = match self.role {
            Role::Primary => primary_lts,
            Role::Secondary => -primary_lts,
        };
        let thresh = percent_of(total, self.misbalance_percent);
        let hold = match self.share {
            Share::Half => percent_of(total, self.ownership_percent),
            Share::Reserve(_) => 0,
        };
        let panic_at = match thresh * -2 {
            0 => -1,
            p => p,
        };
        Balance {
            lts,
            thresh,
            hold,
            panic: lts < panic_at,
        }
    }

    /// Whether the peer would answer the last client of this record (pass 1's preference).
    /// In hot standby the hash plays no part.
    fn peer_wants(&self, hba: Option<&Hba>, c: &Candidate) -> bool {
        match (self.share, hba, c.bucket) {
            (Share::Half, Some(hba), Some(b)) => !hba.serves(self.role, b),
            _ => false,
        }
    }

    /// Chooses the addresses to give away, in ISC's two passes over `candidates` (the
    /// giver's own pool in increasing slot order; it is walked at most three times, so it
    /// can stream from the table). Returns the slots, at most `balance.lts` of them.
    pub fn select<F>(&self, balance: &Balance, hba: Option<&Hba>, candidates: F) -> Vec<Slot>
    where
        F: Fn(&mut dyn FnMut(Candidate) -> bool),
    {
        let mut chosen = Vec::new();
        let mut lts = balance.lts;
        if lts <= 0 {
            return chosen;
        }
        // Pass 1: the peer's clients, until the peer holds up to `hold` over its share.
        // `stop` is the first slot pass 1 did not look at.
        let mut stop = None;
        candidates(&mut |c| {
            if lts <= -balance.hold {
                stop = Some(c.slot);
                return false;
            }
            if self.peer_wants(hba, &c) {
                chosen.push(c.slot);
                lts -= 1;
            }
            true
        });
        let taken = |c: &Candidate| self.peer_wants(hba, c) && stop.is_none_or(|s| c.slot < s);
        // Pass 2: never-used addresses until even, then used ones until we hold at most
        // `hold` over our share. ISC walks one list ordered by age, where never-used
        // addresses (ends = 0) come first; two walks give the same order.
        candidates(&mut |c| {
            if lts <= 0 {
                return false;
            }
            if !c.used && !taken(&c) {
                chosen.push(c.slot);
                lts -= 1;
            }
            true
        });
        candidates(&mut |c| {
            if lts <= balance.hold {
                return false;
            }
            if c.used && !taken(&c) {
                chosen.push(c.slot);
                lts -= 1;
            }
            true
        });
        chosen
    }
}

/// The record's hash bucket, from its client id, else its hardware address.
fn bucket_of(lease: &Lease) -> Option<u8> {
    if !lease.client_id.is_empty() {
        Some(hash::pearson(lease.client_id.as_bytes()))
    } else if lease.hlen > 0 {
        Some(hash::client_bucket(None, &lease.chaddr, lease.hlen))
    } else {
        None
    }
}

/// The FREE and BACKUP counts of the allocatable addresses of `table`.
pub fn count(table: &dyn Records) -> Counts {
    let mut c = Counts::default();
    table.for_each(&mut |slot, l| {
        if !table.is_allocatable(slot) {
            return;
        }
        match l.state {
            BindingState::Free => c.free += 1,
            BindingState::Backup => c.backup += 1,
            _ => {}
        }
    });
    c
}

/// Streams the giver's own allocatable addresses of `table` as [`Candidate`]s, in slot
/// order, to `f` until it returns `false`. Records change under the walk (workers allocate
/// concurrently); the driver re-checks each chosen record by CAS when it moves it.
pub fn candidates(table: &dyn Records, own: BindingState, f: &mut dyn FnMut(Candidate) -> bool) {
    for s in 0..table.slots() {
        let slot = Slot(s);
        if !table.is_allocatable(slot) {
            continue;
        }
        let l = table.read(slot);
        if l.state != own {
            continue;
        }
        let c = Candidate {
            slot,
            used: l.ends.0 != 0,
            bucket: bucket_of(&l),
        };
        if !f(c) {
            return;
        }
    }
}

/// The record an address given to the peer becomes: `state` (BACKUP or FREE), the client
/// kept (the hash affinity of pass 1 relies on it), `tstp = stos = now` as ISC writes it, and
/// nothing acknowledged yet.
pub fn moved(lease: &Lease, state: BindingState, now: UnixTime) -> Lease {
    let mut l = *lease;
    l.state = state;
    l.tstp = now;
    l.stos = now;
    l.atsfp = UnixTime(0);
    l
}

/// When the next scheduled run is due (ISC `dhcp_failover_pool_check`): a fraction
/// (`max-lease-misbalance`) of the age of the oldest free address of each side, the side
/// that would panic counted double, bounded by [`MAX_BALANCE`], at least [`MIN_BALANCE`]
/// after the last run. `oldest_*` are the earliest `ends` of a used FREE/BACKUP record (or
/// `None`), `last` the last run.
pub fn next_run(
    policy: &Policy,
    oldest_free: Option<UnixTime>,
    oldest_backup: Option<UnixTime>,
    last: UnixTime,
    now: UnixTime,
) -> UnixTime {
    let age = |t: Option<UnixTime>| -> u64 {
        t.filter(|t| *t < now).map_or(0, |t| u64::from(now.0 - t.0))
    };
    let scale = |a: u64| (a * u64::from(policy.misbalance_percent) + 50) / 100;
    let (mut free, mut backup) = (scale(age(oldest_free)), scale(age(oldest_backup)));
    match policy.role {
        Role::Primary => free *= 2,
        Role::Secondary => backup *= 2,
    }
    let est = free.min(backup).min(MAX_BALANCE.as_secs());
    let at = now.saturating_add(u32::try_from(est).unwrap_or(u32::MAX));
    let floor = last.saturating_add(u32::try_from(MIN_BALANCE.as_secs()).unwrap_or(u32::MAX));
    if last.0 != 0 && at < floor { floor } else { at }
}

/// What one balancing run over a table saw and did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// FREE and BACKUP before the run.
    pub counts: Counts,
    /// Addresses given to the peer.
    pub moved: u64,
    /// This server is short: ask the peer with POOLREQ.
    pub panic: bool,
    /// The earliest `ends` of a used FREE / BACKUP record, for [`next_run`].
    pub oldest_free: Option<UnixTime>,
    pub oldest_backup: Option<UnixTime>,
}

impl Outcome {
    /// Adds another table's run to this one (counts, moves, panic, the oldest addresses).
    pub fn add(&mut self, other: &Outcome) {
        self.counts.free += other.counts.free;
        self.counts.backup += other.counts.backup;
        self.moved += other.moved;
        self.panic |= other.panic;
        for (t, o) in [
            (&mut self.oldest_free, other.oldest_free),
            (&mut self.oldest_backup, other.oldest_backup),
        ] {
            if let Some(o) = o
                && t.is_none_or(|t| o < t)
            {
                *t = Some(o);
            }
        }
    }
}

/// One balancing run's plan over `table`: count, decide, and choose the slots to give to the
/// peer. The caller moves each (by CAS, only if it is still in our own state: a worker may
/// have allocated it meanwhile) to [`moved`], counts it in [`Outcome::moved`], and sends
/// its BNDUPD.
pub fn plan_table(policy: &Policy, hba: Option<&Hba>, table: &dyn Records) -> (Outcome, Vec<Slot>) {
    let mut out = Outcome::default();
    let oldest = |slot_state: BindingState, ends: UnixTime, out: &mut Outcome| {
        if ends.0 == 0 {
            return;
        }
        let o = match slot_state {
            BindingState::Free => &mut out.oldest_free,
            _ => &mut out.oldest_backup,
        };
        if o.is_none_or(|t| ends < t) {
            *o = Some(ends);
        }
    };
    table.for_each(&mut |slot, l| {
        if !table.is_allocatable(slot) {
            return;
        }
        match l.state {
            BindingState::Free => out.counts.free += 1,
            BindingState::Backup => out.counts.backup += 1,
            _ => return,
        }
        oldest(l.state, l.ends, &mut out);
    });
    let balance = policy.balance(out.counts);
    out.panic = balance.panic;
    let own = policy.own_state();
    let chosen = policy.select(&balance, hba, |f| candidates(table, own, f));
    (out, chosen)
}

/// When a relationship's next balancing run is due, on the monotonic clock. Runs happen only
/// in NORMAL: entering it, or a POOLREQ, asks for one at once ([`Schedule::run_now`]); after
/// a run the next one is [`next_run`] from now; leaving NORMAL cancels it
/// ([`Schedule::cancel`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    next: Option<Instant>,
}

impl Schedule {
    pub fn run_now(&mut self, now: Instant) {
        self.next = Some(now);
    }

    pub fn cancel(&mut self) {
        self.next = None;
    }

    pub fn is_due(&self, now: Instant) -> bool {
        self.next.is_some_and(|t| t <= now)
    }

    /// When the next run is due, if one is scheduled.
    pub fn next(&self) -> Option<Instant> {
        self.next
    }

    /// A run finished at `now` having seen `out` (the oldest addresses over every table).
    pub fn ran(&mut self, policy: &Policy, out: &Outcome, now: Now) {
        let at = next_run(
            policy,
            out.oldest_free,
            out.oldest_backup,
            now.wall,
            now.wall,
        );
        let wait = Duration::from_secs(u64::from(now.wall.until(at)));
        self.next = Some(now.instant + wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(slot: u32, used: bool, bucket: Option<u8>) -> Candidate {
        Candidate {
            slot: Slot(slot),
            used,
            bucket,
        }
    }

    fn run(policy: &Policy, b: &Balance, hba: Option<&Hba>, list: &[Candidate]) -> Vec<u32> {
        policy
            .select(b, hba, |f| {
                for c in list {
                    if !f(*c) {
                        break;
                    }
                }
            })
            .into_iter()
            .map(|s| s.0)
            .collect()
    }

    #[test]
    fn load_balance_gives_half_the_difference() {
        let p = Policy::new(Role::Primary, Share::Half);
        let b = p.balance(Counts {
            free: 100,
            backup: 0,
        });
        assert_eq!((b.lts, b.thresh, b.hold, b.panic), (50, 15, 10, false));
        let s = Policy::new(Role::Secondary, Share::Half);
        let b = s.balance(Counts {
            free: 100,
            backup: 0,
        });
        assert_eq!(b.lts, -50);
        assert!(b.panic, "the secondary with nothing asks for a rebalance");
        let b = s.balance(Counts {
            free: 40,
            backup: 60,
        });
        assert_eq!((b.lts, b.panic), (10, false));
    }

    #[test]
    fn panic_threshold_is_minus_one_for_tiny_pools() {
        let s = Policy::new(Role::Secondary, Share::Half);
        // total 3: thresh rounds to 0, so panic at lts < -1.
        let b = s.balance(Counts { free: 3, backup: 0 });
        assert_eq!((b.lts, b.thresh, b.panic), (-1, 0, false));
        let b = s.balance(Counts { free: 6, backup: 0 });
        assert_eq!((b.lts, b.thresh), (-3, 1));
        assert!(b.panic);
    }

    #[test]
    fn hot_standby_reserve_is_exact() {
        let p = Policy::new(Role::Primary, Share::Reserve(5));
        let b = p.balance(Counts {
            free: 1000,
            backup: 0,
        });
        assert_eq!((b.lts, b.hold), (50, 0));
        let b = p.balance(Counts {
            free: 950,
            backup: 50,
        });
        assert_eq!(b.lts, 0);
        let list: Vec<Candidate> = (0..1000).map(|i| cand(i, i % 2 == 0, None)).collect();
        let b = p.balance(Counts {
            free: 1000,
            backup: 0,
        });
        let chosen = run(&p, &b, None, &list);
        assert_eq!(chosen.len(), 50);
        // Never-used first.
        assert!(chosen.iter().all(|s| s % 2 == 1));
        // The standby gives back what it holds over the reserve.
        let s = Policy::new(Role::Secondary, Share::Reserve(5));
        let b = s.balance(Counts {
            free: 500,
            backup: 500,
        });
        assert_eq!(b.lts, 450);
    }

    #[test]
    fn first_pass_prefers_the_peers_clients() {
        let p = Policy::new(Role::Primary, Share::Half);
        let hba = Hba::split(128); // primary owns buckets 0..128
        let list = [
            cand(0, true, Some(10)),  // ours
            cand(1, true, Some(200)), // the peer's
            cand(2, false, None),
            cand(3, true, Some(250)), // the peer's
            cand(4, true, Some(20)),
        ];
        let b = Balance {
            lts: 3,
            thresh: 0,
            hold: 0,
            panic: false,
        };
        assert_eq!(run(&p, &b, Some(&hba), &list), vec![1, 3, 2]);
        // Without the HBA (not learned yet) only age decides.
        assert_eq!(run(&p, &b, None, &list), vec![2, 0, 1]);
    }

    #[test]
    fn used_addresses_stop_at_hold() {
        let p = Policy::new(Role::Primary, Share::Half);
        let list: Vec<Candidate> = (0..10).map(|i| cand(i, true, None)).collect();
        let b = Balance {
            lts: 5,
            thresh: 1,
            hold: 2,
            panic: false,
        };
        // Used addresses move until lts reaches hold: 3 of them.
        assert_eq!(run(&p, &b, None, &list).len(), 3);
        let nothing = Balance { lts: -4, ..b };
        assert!(run(&p, &nothing, None, &list).is_empty());
    }

    #[test]
    fn moving_an_address_resets_its_acknowledgement() {
        let mut l = Lease {
            state: BindingState::Free,
            ..Lease::default()
        };
        l.atsfp = UnixTime(5);
        l.ends = UnixTime(7);
        let m = moved(&l, BindingState::Backup, UnixTime(100));
        assert_eq!(m.state, BindingState::Backup);
        assert_eq!(
            (m.tstp, m.stos, m.atsfp, m.ends),
            (UnixTime(100), UnixTime(100), UnixTime(0), UnixTime(7))
        );
    }

    #[test]
    fn schedule_is_bounded() {
        let p = Policy::new(Role::Primary, Share::Half);
        let now = UnixTime(1_000_000);
        // Nothing aged: run now (ISC schedules at cur_time + jitter), unless a run was recent.
        assert_eq!(next_run(&p, None, None, UnixTime(0), now), now);
        assert_eq!(
            next_run(&p, None, None, UnixTime(now.0 - 10), now),
            UnixTime(now.0 + 50)
        );
        // Very old free addresses: capped by max-balance.
        let old = Some(UnixTime(1));
        assert_eq!(
            next_run(&p, old, old, UnixTime(0), now),
            UnixTime(now.0 + 3600)
        );
        // 1000 s old backup: 15 % is 150 s; the free side (primary) is doubled.
        let t = Some(UnixTime(now.0 - 1000));
        assert_eq!(next_run(&p, t, t, UnixTime(0), now), UnixTime(now.0 + 150));
    }

    /// A table in memory: every slot allocatable.
    struct Mem(std::cell::RefCell<Vec<Lease>>);

    impl Records for Mem {
        fn id(&self) -> lease_record::TableId {
            lease_record::TableId(0)
        }
        fn slots(&self) -> u32 {
            u32::try_from(self.0.borrow().len()).unwrap_or(u32::MAX)
        }
        fn is_allocatable(&self, _: Slot) -> bool {
            true
        }
        fn read(&self, slot: Slot) -> Lease {
            self.0.borrow()[slot.0 as usize]
        }
        fn for_each(&self, f: &mut dyn FnMut(Slot, &Lease)) {
            for (i, l) in self.0.borrow().iter().enumerate() {
                f(Slot(u32::try_from(i).unwrap_or(u32::MAX)), l);
            }
        }
    }

    /// A run as the session makes it: plan, then move each chosen record still in our state.
    fn run_on(p: &Policy, hba: Option<&Hba>, table: &Mem, now: UnixTime) -> Outcome {
        let (mut out, chosen) = plan_table(p, hba, table);
        for slot in chosen {
            let cur = table.read(slot);
            if cur.state == p.own_state() {
                table.0.borrow_mut()[slot.0 as usize] = moved(&cur, p.peer_state(), now);
                out.moved += 1;
            }
        }
        out
    }

    #[test]
    fn a_run_over_a_table_moves_half_to_backup_once() {
        let table = Mem(std::cell::RefCell::new(vec![Lease::default(); 100]));
        let p = Policy::new(Role::Primary, Share::Half);
        let now = Now {
            instant: Instant::from_millis(5_000),
            wall: UnixTime(1_800_000_000),
        };
        let out = run_on(&p, Some(&Hba::split(128)), &table, now.wall);
        assert_eq!(
            out.counts,
            Counts {
                free: 100,
                backup: 0
            }
        );
        assert_eq!(out.moved, 50);
        assert_eq!(
            count(&table),
            Counts {
                free: 50,
                backup: 50
            }
        );
        let mut sched = Schedule::default();
        sched.ran(&p, &out, now);
        assert_eq!(sched.next(), Some(Instant::from_millis(65_000)));
        // Balanced: the next run moves nothing.
        let again = run_on(&p, Some(&Hba::split(128)), &table, now.wall);
        assert_eq!((again.moved, again.panic), (0, false));
        // The secondary's view of the same table: balanced too, nothing to give back.
        let s = Policy::new(Role::Secondary, Share::Half);
        let back = run_on(&s, None, &table, now.wall);
        assert_eq!(back.moved, 0);
        // Every moved record is BACKUP, stamped now, unacknowledged.
        table.for_each(&mut |_, l| {
            if l.state == BindingState::Backup {
                assert_eq!((l.tstp, l.stos, l.atsfp), (now.wall, now.wall, UnixTime(0)));
            }
        });
    }

    proptest::proptest! {
        /// Whatever the pool looks like, a selection names distinct addresses of the pool,
        /// at most `lts` of them, and never overshoots the share by more than `hold`.
        #[test]
        fn selection_is_bounded(
            pool in proptest::collection::vec((proptest::bool::ANY, proptest::option::of(0u8..=255)), 0..300),
            free in 0u64..400,
            backup in 0u64..400,
            split in 0u16..=256,
            primary in proptest::bool::ANY,
            reserve in proptest::option::of(0u8..=100),
        ) {
            let role = if primary { Role::Primary } else { Role::Secondary };
            let share = reserve.map_or(Share::Half, Share::Reserve);
            let p = Policy::new(role, share);
            let list: Vec<Candidate> = pool
                .iter()
                .enumerate()
                .map(|(i, (used, bucket))| cand(u32::try_from(i).unwrap_or(0), *used, *bucket))
                .collect();
            let b = p.balance(Counts { free, backup });
            let hba = Hba::split(split);
            let chosen = run(&p, &b, Some(&hba), &list);
            let mut sorted = chosen.clone();
            sorted.sort_unstable();
            sorted.dedup();
            proptest::prop_assert_eq!(sorted.len(), chosen.len());
            proptest::prop_assert!(chosen.iter().all(|s| (*s as usize) < list.len()));
            proptest::prop_assert!(i64::try_from(chosen.len()).unwrap_or(i64::MAX) <= b.lts.max(0) + b.hold);
        }
    }
}
