//! Binding replication between the partners (draft §7, ISC `failover.c:5115-5505`, reference
//! §1.5, §3.1-3.3, §3.6): which binding wins when the partner sends one, the durable write of
//! a record from the control plane, and the outbound queue from the workers.
//!
//! * [`judge`] is the sans-IO decision on a received BNDUPD: ISC's dueling-update rule
//!   (`failover_lease_is_better`) when we have our own update of the address in flight, then
//!   `normal_binding_state_transition_check` in NORMAL and
//!   `conflict_binding_state_transition_check` in every other state.
//! * [`Replicator`] belongs to the driver thread: the control plane's own journal in the
//!   [`Store`] (so what it writes is replayed by recovery like a worker's change), the CAS
//!   write of a record ([`Replicator::write_record`], [`Replicator::install`]), the group
//!   commit ([`Replicator::commit`]) and, per relationship, the addresses still to send
//!   ([`Replicator::enqueue_update`]). Sending is lazy: the queue holds addresses, and the
//!   record is read when its BNDUPD is built, so the latest state wins.
//! * [`Outbox`] is the bridge from the workers: one bounded lock-free queue per worker
//!   ([`WorkerOutbox`], the worker's [`ChangeSink`]). A full queue never blocks a worker: it
//!   raises the table's resync flag, and the driver then scans that table for every record
//!   whose update the partner has not acknowledged (`tstp > atsfp`, ISC's own rule).

use std::collections::{HashSet, VecDeque};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam::queue::ArrayQueue;
use dataplane::server::ChangeSink;
use lease_mmap::{
    BindingState, CommitError, Lease, Slot, Store, TableId, UnixTime, UpdateError, WorkerJournal,
};

use super::Role;
use super::binding::{Binding, BindingError};
use super::fsm::StateKind;
use super::msg::{BindingStatus, RejectReason};

/// Entries per worker queue. A worker that outruns the driver by more falls back to a scan.
pub const WORKER_QUEUE_LEN: usize = 4096;
/// How often a CAS is retried against a concurrent worker before giving up.
const CAS_ATTEMPTS: u32 = 16;
/// ISC's allowance for clock skew when a primary expires an ACTIVE lease (`failover.c:6140`).
const EXPIRY_SKEW: u32 = 65;

/// What to do with a received binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Install the partner's binding and acknowledge it.
    Apply,
    /// Keep our record, acknowledge, and send ours to the partner (conflict resolution:
    /// ours wins, as ISC keeps its ACTIVE lease against a FREE from the peer).
    KeepOurs,
    /// Refuse with this BNDACK reject reason.
    Reject(BindingError),
    /// Refuse (the partner's update is older than our binding, reject reason 16) and send
    /// ours, so that the partner neither counts its update as acknowledged nor keeps it.
    Outdated,
}

/// Our record's state as the failover rules see it: an ACTIVE lease past its end is
/// EXPIRED (ISC's timer would have moved it), an OFFERED hold is our free address.
fn effective(l: &Lease, now: UnixTime) -> BindingState {
    match l.state {
        BindingState::Active if l.ends != UnixTime(u32::MAX) && l.ends <= now => {
            BindingState::Expired
        }
        s => s,
    }
}

fn expired_enough(l: &Lease, now: UnixTime) -> bool {
    u64::from(l.ends.0) <= u64::from(now.0) + u64::from(EXPIRY_SKEW)
}

/// ISC `normal_binding_state_transition_check` (`failover.c:6061-6252`, reference §1.5):
/// may the partner, whose role is `sender`, move our record `local` to `to` in NORMAL?
pub fn normal_transition_ok(sender: Role, local: &Lease, to: BindingState, now: UnixTime) -> bool {
    let cur = effective(local, now);
    if cur == to {
        return true;
    }
    use BindingState as B;
    match cur {
        B::Free | B::Abandoned | B::Offered | B::Released => true,
        B::Active => match sender {
            // The client may release at the secondary.
            Role::Secondary => matches!(to, B::Released | B::Abandoned),
            Role::Primary => match to {
                B::Free | B::Backup => local.tsfp <= now,
                B::Expired => expired_enough(local, now),
                _ => true,
            },
        },
        B::Expired | B::Reset => match to {
            B::Free | B::Backup => local.tsfp <= now,
            _ => true,
        },
        B::Backup => sender == Role::Secondary || to == B::Free,
    }
}

/// ISC `conflict_binding_state_transition_check` (`failover.c:6254-6320`, reference §3.6):
/// outside NORMAL, does the partner's `incoming` binding beat our record `local`? Two ACTIVE
/// bindings are settled as dueling updates are (later CLTT; the primary on a tie).
///
/// Stricter than ISC: a RELEASED binding beats our live ACTIVE one only when it is later
/// (its CLTT after ours). ISC lets it win always, which loses the lease a client got from
/// us after releasing its old one at the partner (found by `tests/failover_leases.rs`).
pub fn conflict_peer_wins(us: Role, local: &Lease, incoming: &Binding, now: UnixTime) -> bool {
    if effective(local, now) != BindingState::Active {
        return true;
    }
    match incoming.status {
        BindingStatus::Free | BindingStatus::Backup => false,
        BindingStatus::Expired => expired_enough(local, now),
        BindingStatus::Released => incoming.cltt > local.cltt,
        BindingStatus::Reset | BindingStatus::Abandoned => true,
        BindingStatus::Active => {
            incoming.cltt > local.cltt || (incoming.cltt == local.cltt && us == Role::Secondary)
        }
    }
}

/// ISC `failover_lease_is_better` (`failover.c:5115-5168`, reference §3.6), for an address
/// both sides have an update in flight for: does the partner's `incoming` win over our
/// `local`?
///
/// Stricter than ISC where ISC would undo a lease a client holds: against our live ACTIVE
/// binding, the partner's EXPIRED, RELEASED or other non-ACTIVE update wins only when it
/// is later (its CLTT after ours). ISC lets EXPIRED always win and the primary win the
/// rest, which loses a renewal we granted while the partner expired its older copy, or the
/// lease a client took from us right after releasing its old one at the partner (both
/// found by `tests/failover_leases.rs`).
pub fn dueling_peer_wins(us: Role, local: &Lease, incoming: &Binding, now: UnixTime) -> bool {
    let peer_is_primary = us == Role::Secondary;
    match (effective(local, now), incoming.status) {
        (BindingState::Active, BindingStatus::Active) => {
            incoming.cltt > local.cltt || (incoming.cltt == local.cltt && peer_is_primary)
        }
        (_, BindingStatus::Active) => true,
        (BindingState::Active, _) => incoming.cltt > local.cltt,
        _ => peer_is_primary,
    }
}

/// The decision on a BNDUPD received in our `state`, for our record `local`;
/// `ours_in_flight` when we have sent an update of the same address that is not
/// acknowledged yet.
pub fn judge(
    us: Role,
    state: StateKind,
    local: &Lease,
    ours_in_flight: bool,
    incoming: &Binding,
    now: UnixTime,
) -> Verdict {
    if ours_in_flight && !dueling_peer_wins(us, local, incoming, now) {
        return Verdict::Reject(BindingError {
            reason: RejectReason::LessCriticalBindingInformation,
            message: "our update of this binding wins",
        });
    }
    // The end of an older transaction (its CLTT before ours) never undoes the live ACTIVE
    // binding we hold now: ours is sent instead. ISC would take an EXPIRED up to 65 s early
    // and any RELEASED, losing a lease a client holds (found by `tests/failover_leases.rs`).
    if effective(local, now) == BindingState::Active
        && matches!(
            incoming.status,
            BindingStatus::Expired | BindingStatus::Released
        )
        && incoming.cltt < local.cltt
    {
        return Verdict::Outdated;
    }
    let sender = match us {
        Role::Primary => Role::Secondary,
        Role::Secondary => Role::Primary,
    };
    if state == StateKind::Normal {
        if normal_transition_ok(sender, local, incoming.status.to_lease(), now) {
            Verdict::Apply
        } else {
            Verdict::Reject(BindingError {
                reason: RejectReason::FatalConflict,
                message: "invalid binding state transition",
            })
        }
    } else if conflict_peer_wins(us, local, incoming, now) {
        Verdict::Apply
    } else {
        Verdict::KeepOurs
    }
}

/// Our record after installing the partner's binding: its fields (see
/// [`Binding::apply_to`]), and nothing of ours left to send (`tstp = atsfp = 0`), so the
/// partner's binding is not echoed back; the partner's knowledge is `tsfp`.
pub fn installed(local: &Lease, incoming: &Binding) -> Lease {
    let mut new = *local;
    incoming.apply_to(&mut new);
    new.tstp = UnixTime(0);
    new.atsfp = UnixTime(0);
    new
}

/// Whether the partner has not acknowledged this record's current state (ISC: `tstp > atsfp`);
/// OFFERED holds never travel.
pub fn unacked(l: &Lease) -> bool {
    l.state != BindingState::Offered && l.tstp > l.atsfp
}

/// Our record after the partner acknowledged the update that carried `sent_state` and
/// `sent_tstp`: `atsfp` and `tsfp` become that potential expiry (as ISC, which takes its own
/// `tstp`, `failover.c:5575`). `None` if the record changed since (a newer update follows).
pub fn acknowledged(cur: &Lease, sent_state: BindingState, sent_tstp: UnixTime) -> Option<Lease> {
    if cur.state != sent_state || cur.tstp != sent_tstp {
        return None;
    }
    Some(Lease {
        atsfp: sent_tstp,
        tsfp: sent_tstp,
        ..*cur
    })
}

/// The workers' side of the outbound queues, shared with the driver.
#[derive(Debug)]
pub struct Outbox {
    queues: Vec<ArrayQueue<(u16, u32)>>,
    /// By table: a queue overflowed, scan the table.
    resync: Vec<AtomicBool>,
    /// By table: whether the table belongs to a relationship at all.
    replicated: Vec<bool>,
    /// Set by a worker that woke the driver; cleared by the driver before it drains.
    wake_pending: AtomicBool,
    waker: Arc<mio::Waker>,
}

impl Outbox {
    /// Queues for `workers` workers over tables flagged in `replicated`, waking `waker`.
    pub fn new(workers: usize, replicated: Vec<bool>, waker: Arc<mio::Waker>) -> Self {
        Outbox {
            queues: (0..workers)
                .map(|_| ArrayQueue::new(WORKER_QUEUE_LEN))
                .collect(),
            resync: replicated.iter().map(|_| AtomicBool::new(false)).collect(),
            replicated,
            wake_pending: AtomicBool::new(false),
            waker,
        }
    }

    /// Every change the workers queued, and the tables to scan because a queue overflowed.
    pub fn drain(&self, mut change: impl FnMut(TableId, Slot), mut resync: impl FnMut(TableId)) {
        self.wake_pending.store(false, Ordering::Release);
        for q in &self.queues {
            while let Some((t, s)) = q.pop() {
                change(TableId(t), Slot(s));
            }
        }
        for (t, flag) in self.resync.iter().enumerate() {
            if flag.swap(false, Ordering::AcqRel) {
                resync(TableId(u16::try_from(t).unwrap_or(u16::MAX)));
            }
        }
    }
}

/// Worker `i`'s producer end of the [`Outbox`].
#[derive(Debug)]
pub struct WorkerOutbox {
    outbox: Arc<Outbox>,
    worker: usize,
    pushed: bool,
}

impl WorkerOutbox {
    /// The sink for worker `worker` (`None` if the outbox has no queue for it).
    pub fn new(outbox: &Arc<Outbox>, worker: usize) -> Option<Self> {
        (worker < outbox.queues.len()).then(|| WorkerOutbox {
            outbox: Arc::clone(outbox),
            worker,
            pushed: false,
        })
    }
}

impl ChangeSink for WorkerOutbox {
    fn changed(&mut self, table: TableId, slot: Slot) {
        let t = usize::from(table.0);
        if !self.outbox.replicated.get(t).copied().unwrap_or(false) {
            return;
        }
        if self.outbox.queues[self.worker]
            .push((table.0, slot.0))
            .is_err()
            && let Some(f) = self.outbox.resync.get(t)
        {
            f.store(true, Ordering::Release);
        }
        self.pushed = true;
    }

    fn batch_done(&mut self) {
        // At most one wake per driver turn, whatever the number of batches and workers.
        if std::mem::take(&mut self.pushed)
            && !self.outbox.wake_pending.swap(true, Ordering::AcqRel)
            && let Err(e) = self.outbox.waker.wake()
        {
            tracing::warn!(error = %e, "failover: cannot wake the driver");
        }
    }
}

/// Why a control-plane write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0} is in no lease table")]
    NoSuchAddress(Ipv4Addr),
    #[error("the record kept changing under concurrent writers")]
    Contention,
    #[error(transparent)]
    Update(#[from] UpdateError),
}

/// A relationship's addresses still to send, each once, in order.
#[derive(Debug, Default)]
pub struct SendQueue {
    set: HashSet<(u16, u32)>,
    order: VecDeque<(u16, u32)>,
}

impl SendQueue {
    pub fn push(&mut self, table: TableId, slot: Slot) {
        if self.set.insert((table.0, slot.0)) {
            self.order.push_back((table.0, slot.0));
        }
    }

    pub fn pop(&mut self) -> Option<(TableId, Slot)> {
        let (t, s) = self.order.pop_front()?;
        self.set.remove(&(t, s));
        Some((TableId(t), Slot(s)))
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// The driver's handle on the lease tables: the control plane's journal, the CAS writes
/// and the per-relationship send queues. Owned by the driver thread.
#[derive(Debug)]
pub struct Replicator {
    store: Arc<Store>,
    journal: WorkerJournal,
    outbox: Arc<Outbox>,
    /// By `TableId`: the relationship (index in config order) the table belongs to.
    table_rel: Vec<Option<usize>>,
    queues: Vec<SendQueue>,
}

impl Replicator {
    /// `journal` is the control plane's own journal of `store` (one more than the workers';
    /// see `serve`), `table_rel` maps each table to its relationship, `rels` relationships.
    pub fn new(
        store: Arc<Store>,
        journal: WorkerJournal,
        outbox: Arc<Outbox>,
        table_rel: Vec<Option<usize>>,
        rels: usize,
    ) -> Self {
        Replicator {
            store,
            journal,
            outbox,
            table_rel,
            queues: (0..rels).map(|_| SendQueue::default()).collect(),
        }
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The relationship table `t` belongs to.
    pub fn rel_of(&self, t: TableId) -> Option<usize> {
        self.table_rel.get(usize::from(t.0)).copied().flatten()
    }

    /// The table and slot of `ip` among relationship `rel`'s tables.
    pub fn locate(&self, rel: usize, ip: Ipv4Addr) -> Option<(TableId, Slot)> {
        self.store.tables().iter().find_map(|t| {
            let s = t.slot(ip)?;
            (self.rel_of(t.id()) == Some(rel)).then_some((t.id(), s))
        })
    }

    /// The send queue of relationship `rel`.
    pub fn queue(&mut self, rel: usize) -> Option<&mut SendQueue> {
        self.queues.get_mut(rel)
    }

    /// Queues `slot` of `table` to be sent to the partner as a BNDUPD (the record is read
    /// when it is sent). **Pool-balancer hook (b).** Ignored for a table without partner.
    pub fn enqueue_update(&mut self, table: TableId, slot: Slot) {
        if let Some(r) = self.rel_of(table)
            && let Some(q) = self.queues.get_mut(r)
        {
            q.push(table, slot);
        }
    }

    /// Queues every record of relationship `rel` the partner has not acknowledged
    /// (`tstp > atsfp`), or with `all` every record but FREE and OFFERED (UPDREQALL).
    pub fn enqueue_unacked(&mut self, rel: usize, all: bool) -> usize {
        let mut n = 0;
        let store = Arc::clone(&self.store);
        for t in store.tables() {
            if self.rel_of(t.id()) != Some(rel) {
                continue;
            }
            t.for_each(|slot, _, l| {
                let want = if all {
                    !matches!(l.state, BindingState::Free | BindingState::Offered)
                } else {
                    unacked(l)
                };
                if want {
                    self.queues[rel].push(t.id(), slot);
                    n += 1;
                }
            });
        }
        n
    }

    /// Takes in what the workers queued (and scans tables whose queue overflowed).
    pub fn drain_outbox(&mut self) {
        let outbox = Arc::clone(&self.outbox);
        let mut resync = Vec::new();
        outbox.drain(|t, s| self.enqueue_update(t, s), |t| resync.push(t));
        for t in resync {
            let Some(rel) = self.rel_of(t) else { continue };
            tracing::info!(
                table = t.0,
                "failover: a worker queue overflowed; scanning the table"
            );
            let store = Arc::clone(&self.store);
            if let Some(table) = store.tables().get(usize::from(t.0)) {
                table.for_each(|slot, _, l| {
                    if unacked(l) {
                        self.queues[rel].push(t, slot);
                    }
                });
            }
        }
    }

    /// Reads a record: `(address, version, lease)`.
    pub fn read(&self, table: TableId, slot: Slot) -> Option<(Ipv4Addr, u64, Lease)> {
        let t = self.store.tables().get(usize::from(table.0))?;
        (slot.0 < t.len()).then(|| {
            let (v, l) = t.read(slot);
            (t.addr(slot), v, l)
        })
    }

    /// CAS loop on a record: `change` gets the current record and returns the new one, or
    /// `None` to leave it. Returns the record written (and its version), unjournaled.
    fn cas(
        &self,
        table: TableId,
        slot: Slot,
        mut change: impl FnMut(&Lease) -> Option<Lease>,
    ) -> Result<Option<(u64, Lease)>, WriteError> {
        let t = self
            .store
            .tables()
            .get(usize::from(table.0))
            .ok_or(UpdateError::NoSuchSlot(slot.0))?;
        if slot.0 >= t.len() {
            return Err(UpdateError::NoSuchSlot(slot.0).into());
        }
        for _ in 0..CAS_ATTEMPTS {
            let (v, cur) = t.read(slot);
            let Some(new) = change(&cur) else {
                return Ok(None);
            };
            match t.update(slot, v, &new) {
                Ok(v) => return Ok(Some((v, new))),
                Err(UpdateError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(WriteError::Contention)
    }

    /// Changes a record from the control plane (CAS against the workers) and journals it:
    /// durable after the next [`Replicator::commit`], and queued to be sent to the partner.
    /// A change of state is marked unacknowledged (`atsfp` cleared, `tstp` at least `now`),
    /// as the engine marks its own. **Pool-balancer hook (a)**, e.g. FREE → BACKUP.
    pub fn write_record(
        &mut self,
        table: TableId,
        slot: Slot,
        now: UnixTime,
        mut change: impl FnMut(&Lease) -> Option<Lease>,
    ) -> Result<Option<Lease>, WriteError> {
        let r = self.cas(table, slot, |cur| {
            let mut new = change(cur)?;
            if new.state != cur.state {
                new.atsfp = UnixTime(0);
                new.tstp = new.tstp.max(now);
            }
            Some(new)
        })?;
        Ok(r.map(|(v, l)| {
            self.journal.record(table, slot, v, &l);
            self.enqueue_update(table, slot);
            l
        }))
    }

    /// Installs a received binding by CAS, deciding again against every record seen
    /// (`decide` returns the verdict for the current record); journals what it writes.
    pub fn install(
        &mut self,
        table: TableId,
        slot: Slot,
        incoming: &Binding,
        mut decide: impl FnMut(&Lease) -> Verdict,
    ) -> Result<Verdict, WriteError> {
        let mut verdict = Verdict::Apply;
        let r = self.cas(table, slot, |cur| {
            verdict = decide(cur);
            (verdict == Verdict::Apply).then(|| installed(cur, incoming))
        })?;
        if let Some((v, l)) = r {
            self.journal.record(table, slot, v, &l);
        }
        Ok(verdict)
    }

    /// Writes the partner's acknowledgement of the update that carried `sent_state` and
    /// `sent_tstp` into the record (`atsfp`, `tsfp`). Not journaled: losing it in a crash
    /// only makes us send the update again (conservative).
    pub fn acknowledge(
        &self,
        table: TableId,
        slot: Slot,
        sent_state: BindingState,
        sent_tstp: UnixTime,
    ) -> Result<bool, WriteError> {
        Ok(self
            .cas(table, slot, |cur| acknowledged(cur, sent_state, sent_tstp))?
            .is_some())
    }

    /// Journal entries waiting for [`Replicator::commit`].
    pub fn pending(&self) -> usize {
        self.journal.pending()
    }

    /// Makes every journaled write durable (one write and one fdatasync).
    pub fn commit(&mut self) -> Result<(), CommitError> {
        self.journal.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixTime = UnixTime(1_800_000_000);

    fn lease(state: BindingState) -> Lease {
        Lease {
            state,
            ends: NOW.saturating_add(3600),
            cltt: NOW,
            ..Lease::default()
        }
    }

    fn binding(status: BindingStatus, cltt: UnixTime) -> Binding {
        let mut l = Lease {
            state: status.to_lease(),
            ends: NOW.saturating_add(3600),
            cltt,
            htype: 1,
            hlen: 6,
            ..Lease::default()
        };
        l.chaddr[..6].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        Binding::from_lease(Ipv4Addr::new(10, 0, 0, 9), &l, 0).unwrap()
    }

    #[test]
    fn normal_secondary_cannot_free_an_active_lease() {
        let active = lease(BindingState::Active);
        let now = NOW;
        assert!(!normal_transition_ok(
            Role::Secondary,
            &active,
            BindingState::Free,
            now
        ));
        assert!(normal_transition_ok(
            Role::Secondary,
            &active,
            BindingState::Released,
            now
        ));
        // Renewals (ACTIVE to ACTIVE) are always taken.
        assert!(normal_transition_ok(
            Role::Secondary,
            &active,
            BindingState::Active,
            now
        ));
        assert!(!normal_transition_ok(
            Role::Secondary,
            &active,
            BindingState::Expired,
            now
        ));
    }

    #[test]
    fn normal_primary_frees_an_active_lease_only_after_tsfp() {
        let mut active = lease(BindingState::Active);
        active.tsfp = NOW.saturating_add(10);
        assert!(!normal_transition_ok(
            Role::Primary,
            &active,
            BindingState::Free,
            NOW
        ));
        assert!(normal_transition_ok(
            Role::Primary,
            &active,
            BindingState::Free,
            NOW.saturating_add(10)
        ));
        // EXPIRED only within 65 s of the end.
        assert!(!normal_transition_ok(
            Role::Primary,
            &active,
            BindingState::Expired,
            NOW
        ));
        assert!(normal_transition_ok(
            Role::Primary,
            &active,
            BindingState::Expired,
            NOW.saturating_add(3600 - 65)
        ));
    }

    #[test]
    fn normal_backup_moves_only_from_the_secondary_or_to_free() {
        let backup = lease(BindingState::Backup);
        assert!(normal_transition_ok(
            Role::Secondary,
            &backup,
            BindingState::Active,
            NOW
        ));
        assert!(!normal_transition_ok(
            Role::Primary,
            &backup,
            BindingState::Active,
            NOW
        ));
        assert!(normal_transition_ok(
            Role::Primary,
            &backup,
            BindingState::Free,
            NOW
        ));
        // Pool balancing: the primary moves its FREE addresses to BACKUP.
        assert!(normal_transition_ok(
            Role::Primary,
            &lease(BindingState::Free),
            BindingState::Backup,
            NOW
        ));
    }

    #[test]
    fn dueling_updates_follow_cltt_then_the_primary() {
        let mine = lease(BindingState::Active);
        let later = binding(BindingStatus::Active, NOW.saturating_add(1));
        let same = binding(BindingStatus::Active, NOW);
        let earlier = binding(BindingStatus::Active, UnixTime(NOW.0 - 1));
        assert!(dueling_peer_wins(Role::Primary, &mine, &later, NOW));
        assert!(!dueling_peer_wins(Role::Primary, &mine, &earlier, NOW));
        assert!(!dueling_peer_wins(Role::Primary, &mine, &same, NOW));
        assert!(dueling_peer_wins(Role::Secondary, &mine, &same, NOW));
        // ACTIVE beats anything not ACTIVE. An end (EXPIRED, RELEASED) beats our live
        // ACTIVE binding only when it is later (ISC: EXPIRED always, the primary otherwise).
        let released = lease(BindingState::Released);
        assert!(dueling_peer_wins(Role::Primary, &released, &earlier, NOW));
        for status in [BindingStatus::Expired, BindingStatus::Released] {
            for us in [Role::Primary, Role::Secondary] {
                assert!(!dueling_peer_wins(us, &mine, &binding(status, NOW), NOW));
                let later = binding(status, NOW.saturating_add(1));
                assert!(dueling_peer_wins(us, &mine, &later, NOW));
            }
        }
        // Otherwise the primary's view.
        let free = binding(BindingStatus::Free, NOW);
        assert!(!dueling_peer_wins(Role::Primary, &released, &free, NOW));
        assert!(dueling_peer_wins(Role::Secondary, &released, &free, NOW));
        assert_eq!(
            judge(Role::Primary, StateKind::Normal, &mine, true, &earlier, NOW),
            Verdict::Reject(BindingError {
                reason: RejectReason::LessCriticalBindingInformation,
                message: "our update of this binding wins",
            })
        );
        assert_eq!(
            judge(Role::Primary, StateKind::Normal, &mine, true, &later, NOW),
            Verdict::Apply
        );
    }

    #[test]
    fn conflict_states_keep_our_active_against_free() {
        let mine = lease(BindingState::Active);
        for s in [BindingStatus::Free, BindingStatus::Backup] {
            assert_eq!(
                judge(
                    Role::Secondary,
                    StateKind::PotentialConflict,
                    &mine,
                    false,
                    &binding(s, NOW),
                    NOW
                ),
                Verdict::KeepOurs
            );
        }
        for s in [BindingStatus::Reset, BindingStatus::Abandoned] {
            assert!(conflict_peer_wins(
                Role::Primary,
                &mine,
                &binding(s, NOW),
                NOW
            ));
        }
        // RELEASED wins only when later than our binding (stricter than ISC).
        let released = |t| binding(BindingStatus::Released, t);
        assert!(!conflict_peer_wins(
            Role::Primary,
            &mine,
            &released(NOW),
            NOW
        ));
        assert!(conflict_peer_wins(
            Role::Primary,
            &mine,
            &released(NOW.saturating_add(1)),
            NOW
        ));
        // An older end never undoes our live binding, in any state: refused, ours sent.
        for state in [StateKind::Normal, StateKind::PotentialConflict] {
            assert_eq!(
                judge(
                    Role::Secondary,
                    state,
                    &mine,
                    false,
                    &released(UnixTime(NOW.0 - 1)),
                    NOW
                ),
                Verdict::Outdated
            );
        }
        let expired = binding(BindingStatus::Expired, NOW);
        assert!(!conflict_peer_wins(Role::Primary, &mine, &expired, NOW));
        assert!(conflict_peer_wins(
            Role::Primary,
            &mine,
            &expired,
            NOW.saturating_add(3600)
        ));
        // Ours not ACTIVE (say, lost in RECOVER): the partner's copy wins.
        assert_eq!(
            judge(
                Role::Secondary,
                StateKind::Recover,
                &lease(BindingState::Free),
                false,
                &binding(BindingStatus::Active, NOW),
                NOW
            ),
            Verdict::Apply
        );
        // An ACTIVE lease past its end counts as EXPIRED.
        let mut old = lease(BindingState::Active);
        old.ends = UnixTime(NOW.0 - 1);
        assert!(conflict_peer_wins(
            Role::Primary,
            &old,
            &binding(BindingStatus::Free, NOW),
            NOW
        ));
    }

    #[test]
    fn normal_refusal_is_a_fatal_conflict() {
        let v = judge(
            Role::Primary,
            StateKind::Normal,
            &lease(BindingState::Active),
            false,
            &binding(BindingStatus::Free, NOW),
            NOW,
        );
        assert!(matches!(v, Verdict::Reject(e) if e.reason == RejectReason::FatalConflict));
    }

    #[test]
    fn install_and_acknowledge_bookkeeping() {
        let mut mine = lease(BindingState::Active);
        mine.tstp = NOW.saturating_add(5000);
        mine.atsfp = NOW;
        let mut incoming = binding(BindingStatus::Active, NOW.saturating_add(1));
        incoming.potential_expiry = NOW.saturating_add(7000);
        let l = installed(&mine, &incoming);
        assert_eq!(l.tsfp, NOW.saturating_add(7000));
        assert_eq!((l.tstp, l.atsfp), (UnixTime(0), UnixTime(0)));
        assert!(!unacked(&l));
        assert_eq!(l.owner, lease_mmap::Owner::Partner);
        assert_eq!(&l.chaddr[..6], &[2, 0, 0, 0, 0, 9]);

        assert!(unacked(&mine));
        let acked = acknowledged(&mine, BindingState::Active, mine.tstp).unwrap();
        assert_eq!((acked.atsfp, acked.tsfp), (mine.tstp, mine.tstp));
        assert!(!unacked(&acked));
        // The record moved on since the update was sent: nothing is written.
        assert_eq!(acknowledged(&mine, BindingState::Released, mine.tstp), None);
        assert_eq!(
            acknowledged(&mine, BindingState::Active, NOW.saturating_add(1)),
            None
        );
        let offered = Lease {
            state: BindingState::Offered,
            ..mine
        };
        assert!(!unacked(&offered));
    }

    fn spec() -> lease_mmap::TableSpec {
        lease_mmap::TableSpec {
            network: Ipv4Addr::new(10, 0, 0, 0),
            prefix_len: 24,
            first: Ipv4Addr::new(10, 0, 0, 1),
            last: Ipv4Addr::new(10, 0, 0, 20),
            allocatable: vec![(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 20))],
        }
    }

    /// One worker journal and the control plane's; a replicator over them.
    fn open(dir: &std::path::Path) -> Replicator {
        let (store, mut journals, _) =
            Store::open(dir, &[spec()], 2, lease_mmap::Durability::Sync).unwrap();
        let control = journals.pop().unwrap();
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let outbox = Arc::new(Outbox::new(1, vec![true], waker));
        Replicator::new(Arc::new(store), control, outbox, vec![Some(0)], 1)
    }

    /// A binding installed and committed by the control plane survives a crash that lost
    /// the table's pages: recovery replays the control plane's journal.
    #[test]
    fn installed_bindings_are_durable_through_the_control_journal() {
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join(lease_mmap::store::table_file_name(&spec()));
        let ip = Ipv4Addr::new(10, 0, 0, 9);
        {
            let r = open(dir.path());
            drop(r);
        }
        // The table as the disk held it before the update.
        let before = std::fs::read(&table).unwrap();
        {
            let mut r = open(dir.path());
            let (t, s) = r.locate(0, ip).expect("address located");
            assert_eq!(r.locate(0, Ipv4Addr::new(10, 0, 1, 9)), None);
            let b = binding(BindingStatus::Active, NOW);
            let v = r
                .install(t, s, &b, |cur| {
                    judge(Role::Secondary, StateKind::Normal, cur, false, &b, NOW)
                })
                .unwrap();
            assert_eq!(v, Verdict::Apply);
            assert_eq!(r.pending(), 1);
            r.commit().unwrap();
            // Nothing of the partner's is queued to be sent back.
            assert!(r.queue(0).unwrap().is_empty());
        }
        // Crash: the table's pages are lost, the journal is not.
        std::fs::write(&table, &before).unwrap();
        let r = open(dir.path());
        let (t, s) = r.locate(0, ip).unwrap();
        let (_, _, l) = r.read(t, s).unwrap();
        assert_eq!(l.state, BindingState::Active);
        assert_eq!(&l.chaddr[..6], &[2, 0, 0, 0, 0, 9]);
        assert_eq!(l.owner, lease_mmap::Owner::Partner);
    }

    /// The pool balancer's hooks: a control-plane change is journaled, marked
    /// unacknowledged and queued; the acknowledgement is written back only while the record
    /// is still what was sent.
    #[test]
    fn control_writes_are_queued_and_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = open(dir.path());
        let (t, s) = r.locate(0, Ipv4Addr::new(10, 0, 0, 3)).unwrap();
        let l = r
            .write_record(t, s, NOW, |cur| {
                (cur.state == BindingState::Free).then_some(Lease {
                    state: BindingState::Backup,
                    ..*cur
                })
            })
            .unwrap()
            .expect("written");
        assert!(unacked(&l));
        assert_eq!(l.tstp, NOW);
        r.commit().unwrap();
        assert_eq!(r.queue(0).unwrap().pop(), Some((t, s)));
        // Not FREE any more: the change function leaves it.
        assert!(r.write_record(t, s, NOW, |_| None).unwrap().is_none());
        assert_eq!(r.enqueue_unacked(0, false), 1);
        assert!(r.acknowledge(t, s, BindingState::Backup, NOW).unwrap());
        let (_, _, l) = r.read(t, s).unwrap();
        assert_eq!((l.atsfp, l.tsfp), (NOW, NOW));
        assert!(!unacked(&l));
        // A stale acknowledgement (another state) writes nothing.
        assert!(!r.acknowledge(t, s, BindingState::Free, NOW).unwrap());
        r.queue(0).unwrap().pop();
        assert_eq!(r.enqueue_unacked(0, false), 0);
        assert_eq!(r.enqueue_unacked(0, true), 1);
    }

    #[test]
    fn send_queue_keeps_each_address_once_in_order() {
        let mut q = SendQueue::default();
        q.push(TableId(0), Slot(3));
        q.push(TableId(0), Slot(1));
        q.push(TableId(0), Slot(3));
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop(), Some((TableId(0), Slot(3))));
        q.push(TableId(0), Slot(3));
        assert_eq!(q.pop(), Some((TableId(0), Slot(1))));
        assert_eq!(q.pop(), Some((TableId(0), Slot(3))));
        assert!(q.is_empty());
    }

    #[test]
    fn a_full_worker_queue_raises_the_resync_flag_and_wakes_once() {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let outbox = Arc::new(Outbox::new(1, vec![true, false], waker));
        let mut w = WorkerOutbox::new(&outbox, 0).unwrap();
        assert!(WorkerOutbox::new(&outbox, 1).is_none());
        for s in 0..(WORKER_QUEUE_LEN as u32 + 5) {
            w.changed(TableId(0), Slot(s));
        }
        w.changed(TableId(1), Slot(0)); // not replicated: ignored
        w.batch_done();
        assert!(outbox.wake_pending.load(Ordering::Acquire));
        let (mut changes, mut resync) = (0, Vec::new());
        outbox.drain(|_, _| changes += 1, |t| resync.push(t));
        assert_eq!(changes, WORKER_QUEUE_LEN);
        assert_eq!(resync, vec![TableId(0)]);
        assert!(!outbox.wake_pending.load(Ordering::Acquire));
    }
}
