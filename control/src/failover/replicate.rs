//! The daemon's side of binding replication: the lease store as the failover core's
//! [`Storage`], and the workers' outbound queues.
//!
//! * [`Tables`] is one relationship's [`Storage`]: its tables in the [`Store`], the control
//!   plane's own journal (shared by every relationship, so what the core writes is replayed
//!   by recovery like a worker's change, and one commit covers them all), the CAS write of a
//!   record against the workers, and the failover state file ([`super::persist`]).
//! * [`Outbox`] is the bridge from the workers: one bounded lock-free queue per worker
//!   ([`WorkerOutbox`], the worker's [`ChangeSink`]). A full queue never blocks a worker: it
//!   raises the table's resync flag, and the driver then has the session scan that table for
//!   every record whose update the partner has not acknowledged (`tstp > atsfp`, ISC's own
//!   rule). A worker that queued something wakes the driver through a callback, at most
//!   once per driver turn.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crossbeam::queue::ArrayQueue;
use dataplane::server::ChangeSink;
use lease_mmap::{Lease, Slot, Store, Table, TableId, UnixTime, UpdateError, WorkerJournal};

use super::fsm::PersistedState;
use super::persist;
use super::storage::{RecordId, Records, Storage, StorageError};

/// Entries per worker queue. A worker that outruns the driver by more falls back to a scan.
pub const WORKER_QUEUE_LEN: usize = 4096;
/// How often a CAS is retried against a concurrent worker before giving up.
const CAS_ATTEMPTS: u32 = 16;

/// How the workers' outbox wakes the driver.
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// The workers' side of the outbound queues, shared with the driver.
pub struct Outbox {
    queues: Vec<ArrayQueue<(u16, u32)>>,
    /// By table: a queue overflowed, scan the table.
    resync: Vec<AtomicBool>,
    /// By table: whether the table belongs to a relationship at all.
    replicated: Vec<bool>,
    /// Set by a worker that woke the driver; cleared by the driver before it drains.
    wake_pending: AtomicBool,
    wake: Wake,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("workers", &self.queues.len())
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// Queues for `workers` workers over tables flagged in `replicated`, waking the driver
    /// with `wake`.
    pub fn new(workers: usize, replicated: Vec<bool>, wake: Wake) -> Self {
        Outbox {
            queues: (0..workers)
                .map(|_| ArrayQueue::new(WORKER_QUEUE_LEN))
                .collect(),
            resync: replicated.iter().map(|_| AtomicBool::new(false)).collect(),
            replicated,
            wake_pending: AtomicBool::new(false),
            wake,
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
        {
            (self.outbox.wake)();
        }
    }
}

/// Why a control-plane write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the record kept changing under concurrent writers")]
    Contention,
    #[error(transparent)]
    Update(#[from] UpdateError),
}

/// One relationship's tables, the control plane's journal and its state file, as the
/// failover core's [`Storage`] (module docs).
#[derive(Debug)]
pub struct Tables {
    store: Arc<Store>,
    /// The control plane's journal, shared by every relationship of the daemon.
    journal: Arc<Mutex<WorkerJournal>>,
    /// The relationship's tables.
    ids: Vec<TableId>,
    data_dir: PathBuf,
    name: String,
}

/// A [`Table`] as the core's [`Records`].
struct View<'a>(&'a Table);

impl Records for View<'_> {
    fn id(&self) -> TableId {
        self.0.id()
    }
    fn slots(&self) -> u32 {
        self.0.len()
    }
    fn is_allocatable(&self, slot: Slot) -> bool {
        self.0.is_allocatable(slot)
    }
    fn read(&self, slot: Slot) -> Lease {
        self.0.read(slot).1
    }
    fn for_each(&self, f: &mut dyn FnMut(Slot, &Lease)) {
        self.0.for_each(|slot, _, l| f(slot, l));
    }
    fn due(&self, now: UnixTime, f: &mut dyn FnMut(Slot, &Lease)) {
        self.0.due(now, |slot, _, l| {
            f(slot, l);
            true
        });
    }
}

impl Tables {
    /// Relationship `name`'s tables `ids` of `store`, writing through `journal` (the control
    /// plane's own, one more than the workers'; see `serve`) and storing its failover state
    /// in `data_dir`.
    pub fn new(
        store: Arc<Store>,
        journal: Arc<Mutex<WorkerJournal>>,
        ids: Vec<TableId>,
        data_dir: PathBuf,
        name: &str,
    ) -> Self {
        // The expiry sweep of the relationship reads its tables' expiry index.
        for t in store.tables() {
            if ids.contains(&t.id()) {
                t.track_expiry();
            }
        }
        Tables {
            store,
            journal,
            ids,
            data_dir,
            name: name.to_owned(),
        }
    }

    fn table(&self, id: TableId) -> Option<&Table> {
        self.ids
            .contains(&id)
            .then(|| self.store.tables().get(usize::from(id.0)))
            .flatten()
    }

    fn journal(&self) -> std::sync::MutexGuard<'_, WorkerJournal> {
        self.journal.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// CAS loop on a record: `change` gets the current record and returns the new one, or
    /// `None` to leave it. Returns the record written and its version.
    fn cas(
        &self,
        (table, slot): RecordId,
        change: &mut dyn FnMut(&Lease) -> Option<Lease>,
    ) -> Result<Option<(u64, Lease)>, WriteError> {
        let t = self.table(table).ok_or(UpdateError::NoSuchSlot(slot.0))?;
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
}

impl Storage for Tables {
    fn tables(&self, f: &mut dyn FnMut(&dyn Records)) {
        for &id in &self.ids {
            if let Some(t) = self.store.tables().get(usize::from(id.0)) {
                f(&View(t));
            }
        }
    }

    fn locate(&self, ip: Ipv4Addr) -> Option<RecordId> {
        self.ids.iter().find_map(|&id| {
            let s = self.store.tables().get(usize::from(id.0))?.slot(ip)?;
            Some((id, s))
        })
    }

    fn read(&self, (table, slot): RecordId) -> Option<(Ipv4Addr, Lease)> {
        let t = self.table(table)?;
        (slot.0 < t.len()).then(|| (t.addr(slot), t.read(slot).1))
    }

    fn update(
        &mut self,
        rec: RecordId,
        journal: bool,
        change: &mut dyn FnMut(&Lease) -> Option<Lease>,
    ) -> Result<Option<Lease>, StorageError> {
        let written = self.cas(rec, change).map_err(StorageError::new)?;
        Ok(written.map(|(v, l)| {
            // A record with relay info or a host name is always journaled: its relay cell
            // reaches the disk only by a checkpoint's msync, so a new version of it (an
            // acknowledgement written back) whose image is written back first would lose
            // them after a power loss, unless an entry of that version restores the cell
            // (lease-mmap FORMAT.md §3.5).
            if journal || !l.relay.is_empty() || !l.hostname.is_empty() {
                self.journal().record(rec.0, rec.1, v, &l);
            }
            l
        }))
    }

    fn pending(&self) -> bool {
        self.journal().pending() > 0
    }

    fn commit(&mut self) -> Result<(), StorageError> {
        self.journal().commit().map_err(StorageError::new)
    }

    fn persist(&mut self, state: &PersistedState) -> Result<(), StorageError> {
        persist::store(&self.data_dir, &self.name, state).map_err(StorageError::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failover::Role;
    use crate::failover::binding::Binding;
    use crate::failover::fsm::StateKind;
    use crate::failover::judge::{Verdict, acknowledged, installed, judge, unacked};
    use crate::failover::msg::BindingStatus;
    use lease_mmap::{BindingState, UnixTime};

    const NOW: UnixTime = UnixTime(1_800_000_000);

    fn spec() -> lease_mmap::TableSpec {
        lease_mmap::TableSpec {
            network: Ipv4Addr::new(10, 0, 0, 0),
            prefix_len: 24,
            first: Ipv4Addr::new(10, 0, 0, 1),
            last: Ipv4Addr::new(10, 0, 0, 20),
            allocatable: vec![(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 20))],
        }
    }

    /// One worker journal and the control plane's; the relationship's storage over them.
    fn open(dir: &std::path::Path) -> Tables {
        let (store, mut journals, _) =
            Store::open(dir, &[spec()], 2, lease_mmap::Durability::Sync).unwrap();
        let control = journals.pop().unwrap();
        Tables::new(
            Arc::new(store),
            Arc::new(Mutex::new(control)),
            vec![TableId(0)],
            dir.to_owned(),
            "t",
        )
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
            let rec = r.locate(ip).expect("address located");
            assert_eq!(r.locate(Ipv4Addr::new(10, 0, 1, 9)), None);
            let b = binding(BindingStatus::Active, NOW);
            let mut verdict = Verdict::Apply;
            r.update(rec, true, &mut |cur| {
                verdict = judge(Role::Secondary, StateKind::Normal, cur, false, &b, NOW);
                (verdict == Verdict::Apply).then(|| installed(cur, &b))
            })
            .unwrap();
            assert_eq!(verdict, Verdict::Apply);
            assert!(r.pending());
            r.commit().unwrap();
            assert!(!r.pending());
        }
        // Crash: the table's pages are lost, the journal is not.
        std::fs::write(&table, &before).unwrap();
        let r = open(dir.path());
        let rec = r.locate(ip).unwrap();
        let (_, l) = r.read(rec).unwrap();
        assert_eq!(l.state, BindingState::Active);
        assert_eq!(&l.chaddr[..6], &[2, 0, 0, 0, 0, 9]);
        assert_eq!(l.owner, lease_mmap::Owner::Partner);
    }

    /// A journaled change is pending until the commit; an acknowledgement is written
    /// without the journal, and only while the record is still what was sent.
    #[test]
    fn writes_are_journaled_and_acknowledgements_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = open(dir.path());
        let rec = r.locate(Ipv4Addr::new(10, 0, 0, 3)).unwrap();
        let l = r
            .update(rec, true, &mut |cur| {
                (cur.state == BindingState::Free).then_some(Lease {
                    state: BindingState::Backup,
                    tstp: NOW,
                    ..*cur
                })
            })
            .unwrap()
            .expect("written");
        assert!(unacked(&l));
        assert!(r.pending());
        r.commit().unwrap();
        // Not FREE any more: the change function leaves it.
        assert!(r.update(rec, true, &mut |_| None).unwrap().is_none());
        let acked = r
            .update(rec, false, &mut |cur| {
                acknowledged(cur, BindingState::Backup, NOW)
            })
            .unwrap();
        assert!(acked.is_some());
        assert!(!r.pending(), "acknowledgements are not journaled");
        let (_, l) = r.read(rec).unwrap();
        assert_eq!((l.atsfp, l.tsfp), (NOW, NOW));
        assert!(!unacked(&l));
        // A stale acknowledgement (another state) writes nothing.
        let stale = r
            .update(rec, false, &mut |cur| {
                acknowledged(cur, BindingState::Free, NOW)
            })
            .unwrap();
        assert!(stale.is_none());
        // A record with relay info is journaled even so: its relay cell is durable only
        // through an entry of its own version (lease-mmap FORMAT.md §3.5).
        let relayed = r.locate(Ipv4Addr::new(10, 0, 0, 4)).unwrap();
        r.update(relayed, true, &mut |cur| {
            Some(Lease {
                state: BindingState::Active,
                tstp: NOW,
                relay: lease_mmap::RelayInfo::new(&[1, 2, b'p', b'1']).unwrap(),
                ..*cur
            })
        })
        .unwrap();
        r.commit().unwrap();
        r.update(relayed, false, &mut |cur| {
            acknowledged(cur, BindingState::Active, NOW)
        })
        .unwrap()
        .expect("acknowledged");
        assert!(
            r.pending(),
            "an acknowledgement of a relayed lease is journaled"
        );
        r.commit().unwrap();
        // A record of a table not the relationship's is none of its business.
        assert!(r.read((TableId(1), Slot(0))).is_none());
    }

    #[test]
    fn a_full_worker_queue_raises_the_resync_flag_and_wakes_once() {
        let wakes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&wakes);
        let wake: Wake = Arc::new(move || {
            counted.fetch_add(1, Ordering::Relaxed);
        });
        let outbox = Arc::new(Outbox::new(1, vec![true, false], wake));
        let mut w = WorkerOutbox::new(&outbox, 0).unwrap();
        assert!(WorkerOutbox::new(&outbox, 1).is_none());
        for s in 0..(WORKER_QUEUE_LEN as u32 + 5) {
            w.changed(TableId(0), Slot(s));
        }
        w.changed(TableId(1), Slot(0)); // not replicated: ignored
        w.batch_done();
        w.changed(TableId(0), Slot(0));
        w.batch_done();
        assert_eq!(wakes.load(Ordering::Relaxed), 1, "one wake per driver turn");
        assert!(outbox.wake_pending.load(Ordering::Acquire));
        let (mut changes, mut resync) = (0, Vec::new());
        outbox.drain(|_, _| changes += 1, |t| resync.push(t));
        assert_eq!(changes, WORKER_QUEUE_LEN);
        assert_eq!(resync, vec![TableId(0)]);
        assert!(!outbox.wake_pending.load(Ordering::Acquire));
    }
}
