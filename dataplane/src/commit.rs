//! A worker's commit pipeline: the write and fdatasync of one group of journal entries run
//! on a thread of their own while the worker receives and decides the next batches.
//!
//! The worker records each lease change into a [`JournalRecorder`]. After a batch, if no
//! commit is in flight, everything recorded since the last one goes to the commit thread as
//! one group ([`Committer::start`]); while its fdatasync runs (≈2 ms here), the worker
//! answers what needs no durability (OFFERs, NAKs) at once and records the next batches'
//! changes into the following group, which starts when this one is done. So there is at
//! most one commit in flight per worker, groups stay in LSN order, and each commit starts
//! only after the previous one's fdatasync (what journal recovery relies on: `FORMAT.md`
//! §5.3). A reply promising a change (an ACK) waits for its group, never for the ones
//! after it.
//!
//! The commit thread tells the worker that a group is done through an `eventfd` the worker
//! polls beside its socket ([`Committer::wake_fd`]), and by unparking it (for datapaths
//! that park instead of polling).
#![forbid(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, JoinHandle, Thread};
use std::time::Instant;

use crossbeam::channel::{self, Receiver, Sender, TryRecvError};
use lease_mmap::{CommitError, JournalGroup, JournalRecorder, Lease, Slot, TableId, WorkerJournal};

use crate::sys::EventFd;

/// A group on its way to the commit thread, and whom to wake when it is done.
struct Job {
    group: JournalGroup,
    worker: Thread,
}

/// What the commit thread did with a group.
struct Done {
    /// The group's buffer, to record into again.
    buf: Vec<u8>,
    entries: usize,
    nanos: u64,
    result: Result<(), CommitError>,
}

/// How the commit thread wakes its worker.
#[derive(Debug)]
struct Wake {
    fd: EventFd,
    /// Groups finished (counted before the eventfd is signalled).
    finished: AtomicU64,
}

/// A finished group commit.
#[derive(Debug)]
pub struct Finished {
    /// Entries it made durable (or failed to).
    pub entries: usize,
    /// How long the write and fdatasync took, in ns.
    pub nanos: u64,
    pub result: Result<(), CommitError>,
}

/// A worker's commit pipeline (see the module docs).
pub struct Committer {
    recorder: JournalRecorder,
    jobs: Option<Sender<Job>>,
    done: Receiver<Done>,
    wake: Arc<Wake>,
    /// Signals of `wake.fd` read so far.
    woken: u64,
    /// Entries of the group in flight, if one is.
    in_flight: Option<usize>,
    /// A finished group's buffer, recorded into after the next [`Committer::start`].
    spare: Vec<u8>,
    /// The worker's thread, known from the first [`Committer::start`].
    worker: Option<Thread>,
    thread: Option<JoinHandle<WorkerJournal>>,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer")
            .field("pending", &self.recorder.pending())
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

impl Committer {
    /// Starts the commit thread of `journal` (named after it).
    pub fn new(mut journal: WorkerJournal) -> io::Result<Self> {
        let recorder = journal.recorder();
        let wake = Arc::new(Wake {
            fd: EventFd::new()?,
            finished: AtomicU64::new(0),
        });
        let (jobs, jobs_rx) = channel::bounded::<Job>(1);
        let (done_tx, done) = channel::bounded::<Done>(1);
        let thread_wake = Arc::clone(&wake);
        let thread = thread::Builder::new()
            .name(format!("commit-{}", journal.worker()))
            .spawn(move || {
                for job in jobs_rx {
                    let start = Instant::now();
                    let result = journal.commit_group(&job.group);
                    let entries = job.group.entries();
                    let done = Done {
                        buf: job.group.into_buffer(),
                        entries,
                        nanos: u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX),
                        result,
                    };
                    if done_tx.send(done).is_err() {
                        break;
                    }
                    thread_wake.finished.fetch_add(1, Ordering::Release);
                    thread_wake.fd.signal();
                    job.worker.unpark();
                }
                journal
            })?;
        Ok(Committer {
            recorder,
            jobs: Some(jobs),
            done,
            wake,
            woken: 0,
            in_flight: None,
            spare: Vec::new(),
            worker: None,
            thread: Some(thread),
        })
    }

    /// Buffers a lease change into the next group.
    pub fn record(&mut self, table: TableId, slot: Slot, version: u64, lease: &Lease) {
        self.recorder.record(table, slot, version, lease);
    }

    /// Entries recorded and not yet handed to the commit thread.
    pub fn pending(&self) -> usize {
        self.recorder.pending()
    }

    /// Whether a group is being committed.
    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Hands everything recorded to the commit thread as one group, unless a group is in
    /// flight or nothing is recorded: whether it did.
    pub fn start(&mut self) -> bool {
        if self.in_flight.is_some() || self.recorder.pending() == 0 {
            return false;
        }
        let Some(jobs) = &self.jobs else { return false };
        let group = self.recorder.take(std::mem::take(&mut self.spare));
        let entries = group.entries();
        let worker = self.worker.get_or_insert_with(thread::current).clone();
        match jobs.try_send(Job { group, worker }) {
            Ok(()) => {
                self.in_flight = Some(entries);
                true
            }
            // Only when the thread is gone (a panic): nothing will commit again.
            Err(_) => {
                self.jobs = None;
                self.in_flight = Some(entries);
                true
            }
        }
    }

    /// The outcome of the group in flight once it is done (`wait`: blocks until it is);
    /// `None` while it runs or when none is in flight.
    pub fn finished(&mut self, wait: bool) -> Option<Finished> {
        if self.woken < self.wake.finished.load(Ordering::Acquire) {
            // The signal may land a moment after the count; then the next call reads it.
            self.woken += self.wake.fd.drain();
        }
        let entries = self.in_flight?;
        let done = if wait {
            self.done.recv().ok()
        } else {
            match self.done.try_recv() {
                Ok(d) => Some(d),
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Disconnected) => None,
            }
        };
        self.in_flight = None;
        Some(match done {
            Some(d) => {
                self.spare = d.buf;
                Finished {
                    entries: d.entries,
                    nanos: d.nanos,
                    result: d.result,
                }
            }
            // The commit thread is gone (it panicked): nothing it had is known durable.
            None => Finished {
                entries,
                nanos: 0,
                result: Err(CommitError::Poisoned),
            },
        })
    }

    /// Polls readable when a group may have finished.
    pub fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake.fd.as_fd()
    }

    /// Waits for the group in flight, stops the commit thread and gives the journal back,
    /// with what was recorded since buffered in it again (for [`WorkerJournal::commit`]).
    /// `None` if the commit thread panicked.
    pub fn into_journal(mut self) -> Option<WorkerJournal> {
        let _ = self.finished(true);
        // Closing the channel ends the thread's loop. (A committer dropped without this
        // call ends the same way, after the group it has, if any.)
        self.jobs = None;
        let mut journal = self.thread.take()?.join().ok()?;
        journal.resume(self.recorder);
        Some(journal)
    }
}
