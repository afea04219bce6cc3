//! Per-core workers: wait for frames, receive a batch, hand the whole batch to a
//! [`BatchHandler`], send the replies it built as one batch, until shutdown.
//!
//! The loop is datapath-agnostic: the kernel packet path ([`crate::packet::PacketIo`]) and the
//! AF_XDP path both implement [`FrameIo`], and the DHCP engine is one [`BatchHandler`] for
//! both. The handler sees a whole batch at once so it can make every lease change of the batch
//! durable with one fdatasync (group commit). It does so off the loop's thread: replies that
//! promise nothing leave with the batch, those that wait for a commit leave through
//! [`BatchHandler::durable`] at a later turn of the loop, which polls the handler's
//! [`BatchHandler::wake_fd`] beside the datapath's socket.
//!
//! Architecture invariant: the loop allocates nothing per frame or per batch. Receive buffers
//! belong to the [`FrameIo`], transmit buffers to the worker's [`TxBatch`] (or, on AF_XDP, to
//! the datapath, which lends them to the batch before each receive: [`FrameIo::lend_tx`]), all
//! allocated once.
#![forbid(unsafe_code)]

use std::io;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::stats::{DropReason, WorkerStats};
use crate::xdp::umem::{Lender, UmemFrame};

/// Room per frame in the default receive and transmit buffers: a 1500-byte MTU frame with two
/// VLAN tags fits with margin; longer frames are dropped as [`DropReason::Truncated`].
pub const DEFAULT_SLOT_LEN: usize = 2048;

/// How long a worker sleeps in [`FrameIo::wait`] before it looks at the shutdown flag again
/// (and calls [`BatchHandler::idle`]).
pub const DEFAULT_POLL_TIMEOUT: Duration = Duration::from_millis(100);

/// An IEEE 802.1Q tag (TPID + TCI).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VlanTag {
    /// 0x8100 (802.1Q) or 0x88a8 (802.1ad S-tag).
    pub tpid: u16,
    /// Priority (3 bits), drop eligible (1 bit), VLAN id (12 bits).
    pub tci: u16,
}

impl VlanTag {
    /// The VLAN id, `0..4096` (0: priority-tagged only).
    pub const fn vid(self) -> u16 {
        self.tci & 0x0fff
    }

    /// The priority code point, `0..8`.
    pub const fn pcp(self) -> u8 {
        (self.tci >> 13) as u8
    }
}

/// What the datapath knows about a received frame besides its bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxMeta {
    /// The interface it arrived on.
    pub ifindex: u32,
    /// The outermost VLAN tag, whether it was in the frame or taken out by the kernel/NIC
    /// (in which case the datapath has put it back into the bytes: see [`RxFrame::data`]).
    pub vlan: Option<VlanTag>,
    /// The sender's UDP/IP checksums may not be filled in yet (the frame came from a local
    /// socket over a virtual link with checksum offload, `TP_STATUS_CSUMNOTREADY`): don't
    /// reject it for a wrong checksum.
    pub csum_not_ready: bool,
}

/// Where a received frame lies in the arena of [`RxBatch::new`]: `offset` is the byte offset
/// of its first byte in the arena, `len` its length. (A batch of UMEM frames, the AF_XDP
/// path, describes its frames with a `UmemDesc` instead: there is no arena to be an offset
/// into.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxDesc {
    pub offset: usize,
    pub len: usize,
    pub meta: RxMeta,
}

/// A received frame in a batch of UMEM frames ([`RxBatch::from_umem`]): `frame` is the
/// index of its view among the batch's frames; its length is the view's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct UmemDesc {
    pub(crate) frame: usize,
    pub(crate) meta: RxMeta,
}

/// One received frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxFrame<'a> {
    /// The whole Ethernet frame as it was on the wire, from the destination MAC on,
    /// VLAN tags included, without the FCS.
    pub data: &'a [u8],
    pub meta: RxMeta,
}

/// A batch of received frames, borrowed from the datapath's buffers (a packet socket's
/// receive arena, or the AF_XDP UMEM frames themselves) until the handler returns.
#[derive(Clone, Copy, Debug)]
pub struct RxBatch<'a> {
    src: RxSource<'a>,
}

/// Where a batch's bytes are, each with its own kind of descriptor.
#[derive(Clone, Copy, Debug)]
enum RxSource<'a> {
    /// One arena holding every frame at its descriptor's byte offset.
    Arena { buf: &'a [u8], descs: &'a [RxDesc] },
    /// One UMEM frame per descriptor (by index): no slice ever spans more than one frame,
    /// since the kernel writes the frames user space does not own.
    Umem {
        frames: &'a [UmemFrame],
        descs: &'a [UmemDesc],
    },
}

/// Reusable room for the descriptors of [`RxBatch::select`], for either kind of batch.
#[derive(Debug, Default)]
pub struct RxSelection {
    arena: Vec<RxDesc>,
    umem: Vec<UmemDesc>,
}

impl RxSelection {
    /// Room for `n` descriptors of either kind without reallocating.
    pub fn with_capacity(n: usize) -> Self {
        RxSelection {
            arena: Vec::with_capacity(n),
            umem: Vec::with_capacity(n),
        }
    }
}

impl<'a> RxBatch<'a> {
    /// The frames `descs` describe inside `buf`. A descriptor that does not lie inside `buf`
    /// is skipped by [`RxBatch::iter`] and is `None` from [`RxBatch::get`].
    pub fn new(buf: &'a [u8], descs: &'a [RxDesc]) -> Self {
        RxBatch {
            src: RxSource::Arena { buf, descs },
        }
    }

    /// The UMEM frames `frames`, described by `descs`.
    pub(crate) fn from_umem(frames: &'a [UmemFrame], descs: &'a [UmemDesc]) -> Self {
        RxBatch {
            src: RxSource::Umem { frames, descs },
        }
    }

    pub fn empty() -> RxBatch<'static> {
        RxBatch::new(&[], &[])
    }

    /// Whether the frames are views of the datapath's own buffers (the AF_XDP UMEM) rather
    /// than copies in an arena.
    pub fn is_zero_copy(&self) -> bool {
        matches!(self.src, RxSource::Umem { .. })
    }

    /// How many descriptors the batch holds.
    pub fn len(&self) -> usize {
        match self.src {
            RxSource::Arena { descs, .. } => descs.len(),
            RxSource::Umem { descs, .. } => descs.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Frame `i`, if it exists.
    pub fn get(&self, i: usize) -> Option<RxFrame<'a>> {
        match self.src {
            RxSource::Arena { buf, descs } => {
                let d = descs.get(i)?;
                let data = buf.get(d.offset..d.offset.checked_add(d.len)?)?;
                Some(RxFrame { data, meta: d.meta })
            }
            RxSource::Umem { frames, descs } => {
                let d = descs.get(i)?;
                let data = frames.get(d.frame)?.as_slice();
                Some(RxFrame { data, meta: d.meta })
            }
        }
    }

    /// The frames in arrival order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Option<RxFrame<'a>>> + 'a {
        let batch = *self;
        (0..batch.len()).map(move |i| batch.get(i))
    }

    /// The frames in arrival order, skipping malformed descriptors.
    pub fn frames(&self) -> impl Iterator<Item = RxFrame<'a>> + 'a {
        self.iter().flatten()
    }

    /// The frames `keep` selects (by index), as a batch over the same buffer; `room` is the
    /// caller's reusable room for their descriptors.
    pub fn select<'b>(
        &self,
        mut keep: impl FnMut(usize) -> bool,
        room: &'b mut RxSelection,
    ) -> RxBatch<'b>
    where
        'a: 'b,
    {
        fn kept<D: Copy>(from: &[D], mut keep: impl FnMut(usize) -> bool, into: &mut Vec<D>) {
            into.clear();
            into.extend(
                from.iter()
                    .enumerate()
                    .filter(|&(i, _)| keep(i))
                    .map(|(_, d)| *d),
            );
        }
        match self.src {
            RxSource::Arena { buf, descs } => {
                kept(descs, &mut keep, &mut room.arena);
                RxBatch::new(buf, &room.arena)
            }
            RxSource::Umem { frames, descs } => {
                kept(descs, &mut keep, &mut room.umem);
                RxBatch::from_umem(frames, &room.umem)
            }
        }
    }
}

/// Why [`TxBatch::push_with`] did not queue a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// Every transmit slot of this batch is taken.
    #[error("transmit batch full")]
    Full,
    /// The builder reported a length longer than the buffer it was given.
    #[error("frame length {0} exceeds the transmit slot")]
    TooLong(usize),
}

/// The replies a handler builds for one batch: a fixed number of preallocated slots of
/// [`TxBatch::slot_len`] bytes, filled in place, sent by the worker as one batch.
///
/// A datapath with its own transmit buffers (AF_XDP) lends the batch some of them before the
/// handler runs ([`FrameIo::lend_tx`]): the first slots are then those frames, so a reply is
/// built where the NIC reads it and sent without a copy; the batch's own slots serve the
/// rest.
#[derive(Debug)]
pub struct TxBatch {
    buf: Box<[u8]>,
    slot_len: usize,
    lens: Vec<usize>,
    slots: usize,
    refused: u64,
    /// Slot `i < lent.len()` is `lent[i]`.
    lent: Vec<UmemFrame>,
    lender: Option<Lender>,
}

impl TxBatch {
    /// `slots` slots (at least one) of `slot_len` bytes (at least 64).
    pub fn new(slots: usize, slot_len: usize) -> Self {
        let slots = slots.max(1);
        let slot_len = slot_len.max(64);
        TxBatch {
            buf: vec![0; slots.saturating_mul(slot_len)].into_boxed_slice(),
            slot_len,
            lens: Vec::with_capacity(slots),
            slots,
            refused: 0,
            lent: Vec::with_capacity(slots),
            lender: None,
        }
    }

    /// Most frames one batch holds.
    pub fn capacity(&self) -> usize {
        self.slots
    }

    /// Bytes each frame may have.
    pub fn slot_len(&self) -> usize {
        self.slot_len
    }

    /// Frames queued.
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// Slots still free.
    pub fn remaining(&self) -> usize {
        self.slots - self.lens.len()
    }

    /// Builds one frame in place: `build` gets the next free slot (`slot_len` bytes holding
    /// whatever an earlier frame left there) and returns the length of the complete Ethernet
    /// frame it wrote, or `None` to queue nothing. `Ok(true)` when a frame was queued.
    pub fn push_with<F>(&mut self, build: F) -> Result<bool, PushError>
    where
        F: FnOnce(&mut [u8]) -> Option<usize>,
    {
        let i = self.lens.len();
        if i >= self.slots {
            self.refused = self.refused.saturating_add(1);
            return Err(PushError::Full);
        }
        let slot_len = self.slot_len;
        let slot = if let Some(frame) = self.lent.get_mut(i) {
            let bytes = frame.as_mut_slice();
            let room = bytes.len().min(slot_len);
            &mut bytes[..room]
        } else {
            let start = i * slot_len;
            let Some(slot) = self.buf.get_mut(start..start + slot_len) else {
                return Err(PushError::Full);
            };
            slot
        };
        let room = slot.len();
        match build(slot) {
            None | Some(0) => Ok(false),
            Some(n) if n > room => Err(PushError::TooLong(n)),
            Some(n) => {
                self.lens.push(n);
                Ok(true)
            }
        }
    }

    /// Queues a copy of `frame`.
    pub fn push(&mut self, frame: &[u8]) -> Result<bool, PushError> {
        if frame.len() > self.slot_len {
            return Err(PushError::TooLong(frame.len()));
        }
        self.push_with(|slot| {
            slot.get_mut(..frame.len())?.copy_from_slice(frame);
            Some(frame.len())
        })
    }

    /// Frame `i`.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let len = *self.lens.get(i)?;
        self.slot(i, len)
    }

    fn slot(&self, i: usize, len: usize) -> Option<&[u8]> {
        match self.lent.get(i) {
            Some(frame) => frame.as_slice().get(..len),
            None => {
                let start = i * self.slot_len;
                self.buf.get(start..start + len)
            }
        }
    }

    /// The queued frames, in order.
    pub fn frames(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.lens
            .iter()
            .enumerate()
            .map(|(i, &len)| self.slot(i, len).unwrap_or_default())
    }

    /// Frames lent by the datapath (the first slots), in use or not.
    pub fn lent(&self) -> usize {
        self.lent.len()
    }

    /// Takes `frames` as the first slots; `lender` keeps them mapped. Nothing may be queued
    /// or lent already.
    pub(crate) fn lend(&mut self, lender: Lender, frames: impl Iterator<Item = UmemFrame>) {
        debug_assert!(self.lens.is_empty() && self.lent.is_empty());
        self.lent.extend(frames.take(self.slots));
        self.lender = Some(lender);
    }

    /// Whether the frames lent to this batch are `owner`'s.
    pub(crate) fn lent_by(&self, owner: u64) -> bool {
        self.lender.as_ref().is_some_and(|l| l.owner == owner)
    }

    /// The length queued in slot `i`.
    pub(crate) fn queued_len(&self, i: usize) -> Option<usize> {
        self.lens.get(i).copied()
    }

    /// Forgets the queued frames and the lent ones: the lender has taken them back (their
    /// frames go to the kernel or to its pool, so no view of them may stay here).
    pub(crate) fn unlend(&mut self) {
        self.lens.clear();
        self.lent.clear();
        self.lender = None;
    }

    /// Forgets the queued frames (the worker calls this after sending them).
    pub fn clear(&mut self) {
        self.lens.clear();
    }

    /// Frames refused with [`PushError::Full`] since the last call.
    fn take_refused(&mut self) -> u64 {
        std::mem::take(&mut self.refused)
    }
}

/// The seam between a worker and what it serves (the DHCP engine, or a test's echo).
///
/// A reply that promises something durable (a DHCPACK) need not hold up the rest: the
/// handler keeps it until its group commit is done and hands it over through
/// [`BatchHandler::durable`], while the worker goes on receiving. The worker asks at every
/// turn of its loop, and sleeps in [`FrameIo::wait`] on [`BatchHandler::wake_fd`] too.
pub trait BatchHandler: Send {
    /// Handles every frame of `rx` and queues replies in `tx`. When it returns, the replies
    /// in `tx` may leave; those it holds for durability leave through
    /// [`BatchHandler::durable`].
    fn handle(&mut self, rx: &RxBatch<'_>, tx: &mut TxBatch);

    /// Called when no frame arrived for a poll timeout, so deferred work (timers, delayed
    /// replies) can run; anything queued in `tx` is sent.
    fn idle(&mut self, tx: &mut TxBatch) {
        let _ = tx;
    }

    /// Held replies that may leave now (their commit is durable), if any. The worker sends
    /// them and clears the batch before it asks again. With `wait`, blocks until the
    /// handler's oldest held replies are durable, and `None` means none are held (the
    /// worker drains them so when it stops).
    fn durable(&mut self, wait: bool) -> Option<&mut TxBatch> {
        let _ = wait;
        None
    }

    /// A descriptor that polls readable when [`BatchHandler::durable`] may have replies.
    fn wake_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
}

impl<F> BatchHandler for F
where
    F: FnMut(&RxBatch<'_>, &mut TxBatch) + Send,
{
    fn handle(&mut self, rx: &RxBatch<'_>, tx: &mut TxBatch) {
        self(rx, tx);
    }
}

/// What became of one [`TxBatch`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxOutcome {
    /// Frames the kernel took.
    pub sent: usize,
    /// Frames it refused (counted as `tx_errors`).
    pub failed: usize,
}

/// A datapath's frame I/O, as the worker loop uses it.
pub trait FrameIo: Send {
    /// Most frames one [`FrameIo::recv`] returns.
    fn batch_size(&self) -> usize;

    /// The frames waiting now, up to [`FrameIo::batch_size`]; empty when none are (never
    /// blocks). Frames the datapath drops itself are counted in `stats`.
    fn recv(&mut self, stats: &WorkerStats) -> io::Result<RxBatch<'_>>;

    /// Blocks until frames may be waiting or `also` polls readable (`Ok(true)`), or
    /// `timeout` passed (`Ok(false)`). A datapath that cannot poll a descriptor wakes when
    /// the thread is unparked instead (who signals `also` unparks the worker too).
    fn wait(
        &mut self,
        timeout: Duration,
        also: Option<BorrowedFd<'_>>,
        stats: &WorkerStats,
    ) -> io::Result<bool>;

    /// Sends the frames of `tx`, in order, without blocking for long.
    fn send(&mut self, tx: &TxBatch) -> TxOutcome;

    /// Lends `tx` transmit buffers of the datapath's own (UMEM frames), so replies are built
    /// where they are sent from. The worker calls it before each receive; a datapath without
    /// such buffers does nothing.
    fn lend_tx(&mut self, tx: &mut TxBatch) {
        let _ = tx;
    }

    /// Sends the frames of `tx` like [`FrameIo::send`], taking back the frames it lent to
    /// `tx` (the worker's path). `tx` is empty afterwards.
    fn send_lent(&mut self, tx: &mut TxBatch) -> TxOutcome {
        let out = self.send(tx);
        tx.clear();
        out
    }

    /// Takes back, unsent, the frames lent to `tx` (the worker calls it when it stops).
    fn take_back_tx(&mut self, tx: &mut TxBatch) {
        let _ = tx;
    }
}

/// A datapath chosen at run time (`datapath = "auto"`) is a `Box<dyn FrameIo>`.
impl<T: FrameIo + ?Sized> FrameIo for Box<T> {
    fn batch_size(&self) -> usize {
        (**self).batch_size()
    }

    fn recv(&mut self, stats: &WorkerStats) -> io::Result<RxBatch<'_>> {
        (**self).recv(stats)
    }

    fn wait(
        &mut self,
        timeout: Duration,
        also: Option<BorrowedFd<'_>>,
        stats: &WorkerStats,
    ) -> io::Result<bool> {
        (**self).wait(timeout, also, stats)
    }

    fn send(&mut self, tx: &TxBatch) -> TxOutcome {
        (**self).send(tx)
    }

    fn lend_tx(&mut self, tx: &mut TxBatch) {
        (**self).lend_tx(tx);
    }

    fn send_lent(&mut self, tx: &mut TxBatch) -> TxOutcome {
        (**self).send_lent(tx)
    }

    fn take_back_tx(&mut self, tx: &mut TxBatch) {
        (**self).take_back_tx(tx);
    }
}

/// How a worker runs.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The thread's name (shown by `top -H`, logs).
    pub name: String,
    /// The core to pin to (`core_affinity` id); `None`: unpinned.
    pub core: Option<usize>,
    /// Longest sleep before the shutdown flag is looked at again.
    pub poll_timeout: Duration,
    /// Transmit slots per batch; 0: the datapath's batch size.
    pub tx_slots: usize,
    /// Bytes per transmit slot.
    pub tx_slot_len: usize,
}

impl WorkerConfig {
    pub fn new(name: impl Into<String>) -> Self {
        WorkerConfig {
            name: name.into(),
            core: None,
            poll_timeout: DEFAULT_POLL_TIMEOUT,
            tx_slots: 0,
            tx_slot_len: DEFAULT_SLOT_LEN,
        }
    }
}

/// The worker thread panicked (the handler's panic is logged by the panic hook).
#[derive(Debug, thiserror::Error)]
#[error("worker {name} panicked")]
pub struct WorkerPanicked {
    pub name: String,
}

/// A running worker.
#[derive(Debug)]
pub struct Worker<H> {
    name: String,
    stats: Arc<WorkerStats>,
    thread: JoinHandle<H>,
}

impl<H> Worker<H> {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its counters.
    pub fn stats(&self) -> &Arc<WorkerStats> {
        &self.stats
    }

    /// The loop has ended (shutdown seen, or a panic).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits for the loop to end (set the shutdown flag first) and returns the handler.
    pub fn join(self) -> Result<H, WorkerPanicked> {
        self.thread
            .join()
            .map_err(|_| WorkerPanicked { name: self.name })
    }
}

/// Starts a worker thread running [`run`] over `io` and `handler` until `shutdown` is set.
/// It pins itself to `cfg.core` first; if that fails it logs and runs unpinned.
pub fn spawn<I, H>(
    cfg: WorkerConfig,
    io: I,
    handler: H,
    stats: Arc<WorkerStats>,
    shutdown: Arc<AtomicBool>,
) -> io::Result<Worker<H>>
where
    I: FrameIo + 'static,
    H: BatchHandler + 'static,
{
    let name = cfg.name.clone();
    let thread_stats = Arc::clone(&stats);
    let thread = thread::Builder::new().name(cfg.name.clone()).spawn(move || {
        let (mut io, mut handler) = (io, handler);
        if let Some(id) = cfg.core {
            if core_affinity::set_for_current(core_affinity::CoreId { id }) {
                tracing::debug!(worker = %cfg.name, core = id, "pinned");
            } else {
                tracing::warn!(worker = %cfg.name, core = id, "could not pin to core; running unpinned");
            }
        }
        let slots = if cfg.tx_slots == 0 { io.batch_size() } else { cfg.tx_slots };
        let mut tx = TxBatch::new(slots, cfg.tx_slot_len);
        run(&mut io, &mut handler, &mut tx, &thread_stats, &shutdown, cfg.poll_timeout);
        tracing::debug!(worker = %cfg.name, "stopped");
        handler
    })?;
    Ok(Worker {
        name,
        stats,
        thread,
    })
}

/// Rate-limits the log of a recurring I/O error: the 1st, 2nd, 4th, 8th... occurrence.
#[derive(Default)]
struct ErrorLog {
    count: u64,
}

impl ErrorLog {
    fn note(&mut self, what: &str, e: &io::Error) {
        self.count = self.count.saturating_add(1);
        if self.count.is_power_of_two() {
            tracing::warn!(error = %e, occurrences = self.count, "worker {what} failed");
        }
    }
}

/// The worker loop, on the calling thread: receive a batch, handle it, send the replies,
/// until `shutdown` is set (seen within `poll_timeout`). I/O errors are counted, logged
/// (rate-limited) and outlived: the loop only ends on shutdown.
pub fn run<I, H>(
    io: &mut I,
    handler: &mut H,
    tx: &mut TxBatch,
    stats: &WorkerStats,
    shutdown: &AtomicBool,
    poll_timeout: Duration,
) where
    I: FrameIo + ?Sized,
    H: BatchHandler + ?Sized,
{
    let mut errors = ErrorLog::default();
    while !shutdown.load(Ordering::Acquire) {
        stats.beat();
        send_durable(io, handler, stats, false);
        // Replies are built in the datapath's transmit frames where it has them.
        io.lend_tx(tx);
        // Try to receive before waiting: under load the next batch is already there and the
        // poll would be a wasted syscall.
        let rx = match io.recv(stats) {
            Ok(rx) => rx,
            Err(e) => {
                errors.note("receive", &e);
                thread::sleep(poll_timeout);
                continue;
            }
        };
        if rx.is_empty() {
            match io.wait(poll_timeout, handler.wake_fd(), stats) {
                Ok(true) => {}
                Ok(false) => {
                    handler.idle(tx);
                    flush(io, tx, stats);
                }
                Err(e) => {
                    errors.note("wait", &e);
                    thread::sleep(poll_timeout);
                }
            }
            continue;
        }
        let start = Instant::now();
        stats.add_rx(rx.len() as u64);
        stats.add_batch(rx.len() as u64);
        handler.handle(&rx, tx);
        flush(io, tx, stats);
        stats.add_busy(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    // What was promised leaves once it is durable, even now.
    send_durable(io, handler, stats, true);
    io.take_back_tx(tx);
}

/// Sends the handler's held replies that are durable now (`wait`: every held reply, as it
/// becomes durable).
fn send_durable<I, H>(io: &mut I, handler: &mut H, stats: &WorkerStats, wait: bool)
where
    I: FrameIo + ?Sized,
    H: BatchHandler + ?Sized,
{
    while let Some(ready) = handler.durable(wait) {
        if !ready.is_empty() {
            let out = io.send(ready);
            stats.add_tx(out.sent as u64);
            stats.add_tx_errors(out.failed as u64);
        }
        ready.clear();
        if !wait {
            return;
        }
    }
}
/// Sends what the handler queued and counts the outcome.
fn flush<I: FrameIo + ?Sized>(io: &mut I, tx: &mut TxBatch, stats: &WorkerStats) {
    let refused = tx.take_refused();
    if refused > 0 {
        stats.add_drops(DropReason::TxFull, refused);
    }
    if tx.is_empty() {
        return;
    }
    let out = io.send_lent(tx);
    stats.add_tx(out.sent as u64);
    stats.add_tx_errors(out.failed as u64);
    tx.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::time::Instant;

    /// A fake datapath: frames queued in memory, sends recorded.
    struct FakeIo {
        incoming: VecDeque<Vec<u8>>,
        batch: usize,
        buf: Vec<u8>,
        descs: Vec<RxDesc>,
        sent: Vec<Vec<u8>>,
        fail_every: usize,
    }

    impl FakeIo {
        fn new(frames: usize, batch: usize) -> Self {
            FakeIo {
                incoming: (0..frames)
                    .map(|i| vec![(i % 251) as u8; 60 + i % 7])
                    .collect(),
                batch,
                buf: vec![0; batch * 128],
                descs: Vec::new(),
                sent: Vec::new(),
                fail_every: 0,
            }
        }
    }

    impl FrameIo for FakeIo {
        fn batch_size(&self) -> usize {
            self.batch
        }

        fn recv(&mut self, _stats: &WorkerStats) -> io::Result<RxBatch<'_>> {
            self.descs.clear();
            for i in 0..self.batch {
                let Some(f) = self.incoming.pop_front() else {
                    break;
                };
                self.buf[i * 128..i * 128 + f.len()].copy_from_slice(&f);
                self.descs.push(RxDesc {
                    offset: i * 128,
                    len: f.len(),
                    meta: RxMeta {
                        ifindex: 7,
                        ..RxMeta::default()
                    },
                });
            }
            Ok(RxBatch::new(&self.buf, &self.descs))
        }

        fn wait(
            &mut self,
            timeout: Duration,
            _also: Option<BorrowedFd<'_>>,
            _stats: &WorkerStats,
        ) -> io::Result<bool> {
            thread::sleep(timeout);
            Ok(!self.incoming.is_empty())
        }

        fn send(&mut self, tx: &TxBatch) -> TxOutcome {
            let mut out = TxOutcome::default();
            for (i, f) in tx.frames().enumerate() {
                if self.fail_every > 0 && i % self.fail_every == 0 {
                    out.failed += 1;
                } else {
                    self.sent.push(f.to_vec());
                    out.sent += 1;
                }
            }
            out
        }
    }

    fn echo(rx: &RxBatch<'_>, tx: &mut TxBatch) {
        for f in rx.frames() {
            assert_eq!(f.meta.ifindex, 7);
            let _ = tx.push(f.data);
        }
    }

    #[test]
    fn tx_batch_fills_refuses_and_clears() {
        let mut tx = TxBatch::new(2, 64);
        assert_eq!(
            tx.push_with(|b| Some(b.len() + 1)),
            Err(PushError::TooLong(65))
        );
        assert_eq!(tx.push_with(|_| None), Ok(false));
        assert_eq!(tx.push(&[1; 10]), Ok(true));
        assert_eq!(
            tx.push_with(|b| {
                b[..3].copy_from_slice(&[7, 8, 9]);
                Some(3)
            }),
            Ok(true)
        );
        assert_eq!(tx.push(&[2; 10]), Err(PushError::Full));
        assert_eq!(tx.remaining(), 0);
        assert_eq!(
            tx.frames().collect::<Vec<_>>(),
            vec![&[1u8; 10][..], &[7, 8, 9][..]]
        );
        assert_eq!(tx.get(1), Some(&[7u8, 8, 9][..]));
        assert_eq!(tx.get(2), None);
        assert_eq!(tx.take_refused(), 1);
        tx.clear();
        assert!(tx.is_empty());
        assert_eq!(tx.push(&[0; 65]), Err(PushError::TooLong(65)));
    }

    #[test]
    fn rx_batch_never_panics_on_bad_descriptors() {
        let buf = [1u8; 16];
        let descs = [
            RxDesc {
                offset: 0,
                len: 4,
                ..RxDesc::default()
            },
            RxDesc {
                offset: 14,
                len: 4,
                ..RxDesc::default()
            },
            RxDesc {
                offset: usize::MAX,
                len: 2,
                ..RxDesc::default()
            },
        ];
        let rx = RxBatch::new(&buf, &descs);
        assert_eq!(rx.len(), 3);
        assert!(rx.get(0).is_some());
        assert!(rx.get(1).is_none());
        assert!(rx.get(2).is_none());
        assert_eq!(rx.frames().count(), 1);
        assert!(RxBatch::empty().is_empty());
    }

    #[test]
    fn loop_echoes_every_frame_in_batches_and_stops_on_shutdown() {
        let mut io = FakeIo::new(1000, 64);
        let expected: Vec<Vec<u8>> = io.incoming.iter().cloned().collect();
        let stats = WorkerStats::new();
        let shutdown = AtomicBool::new(false);
        let mut tx = TxBatch::new(64, 256);
        let mut calls = 0usize;
        let mut handler = |rx: &RxBatch<'_>, tx: &mut TxBatch| {
            calls += 1;
            echo(rx, tx);
            if calls == 16 {
                // 1000 frames in batches of 64 take 16 calls; stop after the last one.
                shutdown.store(true, Ordering::Release);
            }
        };
        run(
            &mut io,
            &mut handler,
            &mut tx,
            &stats,
            &shutdown,
            Duration::from_millis(5),
        );
        assert_eq!(io.sent, expected);
        let s = stats.snapshot();
        assert_eq!((s.rx, s.tx, s.tx_errors, s.batches), (1000, 1000, 0, 16));
    }

    #[test]
    fn send_failures_and_overflow_are_counted() {
        let mut io = FakeIo::new(10, 10);
        io.fail_every = 5;
        let stats = WorkerStats::new();
        let shutdown = AtomicBool::new(false);
        // 4 slots for 10 frames: 6 refused as TxFull; of the 4 sent, frames 0 fails.
        let mut tx = TxBatch::new(4, 256);
        let mut handler = |rx: &RxBatch<'_>, tx: &mut TxBatch| {
            echo(rx, tx);
            shutdown.store(true, Ordering::Release);
        };
        run(
            &mut io,
            &mut handler,
            &mut tx,
            &stats,
            &shutdown,
            Duration::from_millis(5),
        );
        let s = stats.snapshot();
        assert_eq!((s.rx, s.tx, s.tx_errors), (10, 3, 1));
        assert_eq!(s.dropped(DropReason::TxFull), 6);
    }

    #[test]
    fn spawned_worker_stops_within_the_poll_timeout_and_returns_its_handler() {
        use std::sync::atomic::AtomicUsize;
        struct Counting(usize, Arc<AtomicUsize>);
        impl BatchHandler for Counting {
            fn handle(&mut self, rx: &RxBatch<'_>, tx: &mut TxBatch) {
                self.0 += rx.len();
                echo(rx, tx);
            }
            fn idle(&mut self, _tx: &mut TxBatch) {
                self.1.fetch_add(1, Ordering::Relaxed);
            }
        }
        /// Polls `done` every 5 ms for at most 30 s (a generous bound: a loaded machine may
        /// not schedule the worker for a while); whether it came true.
        fn wait(done: impl Fn() -> bool) -> bool {
            let start = Instant::now();
            while !done() {
                if start.elapsed() > Duration::from_secs(30) {
                    return false;
                }
                thread::sleep(Duration::from_millis(5));
            }
            true
        }
        let shutdown = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(WorkerStats::new());
        let idles = Arc::new(AtomicUsize::new(0));
        let mut cfg = WorkerConfig::new("tdm-test-worker");
        cfg.poll_timeout = Duration::from_millis(20);
        cfg.core = Some(0);
        let w = spawn(
            cfg,
            Box::new(FakeIo::new(100, 8)) as Box<dyn FrameIo>,
            Counting(0, Arc::clone(&idles)),
            stats,
            Arc::clone(&shutdown),
        )
        .expect("spawn");
        assert!(
            wait(|| w.stats().snapshot().tx >= 100),
            "the worker echoed 100 frames"
        );
        assert!(
            wait(|| idles.load(Ordering::Relaxed) >= 1),
            "idle was called while nothing arrived"
        );
        let stop = Instant::now();
        shutdown.store(true, Ordering::Release);
        let name = w.name().to_owned();
        let h = w.join().expect("join");
        // One poll timeout (20 ms) in the worker's terms; the bound only catches a worker that
        // never sees the flag (a loaded machine may not schedule it for a while).
        assert!(
            stop.elapsed() < Duration::from_secs(5),
            "{:?}",
            stop.elapsed()
        );
        assert_eq!(name, "tdm-test-worker");
        assert_eq!(h.0, 100);
    }
}
