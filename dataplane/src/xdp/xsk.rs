//! AF_XDP sockets (xsk-rs over libxdp) as a [`FrameIo`]: one socket per rx queue, one UMEM per
//! interface shared by them, each socket with its own fill and completion rings and its own
//! share of the UMEM's frames.
//!
//! libxdp is told not to load its own program (`XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD`): ours
//! ([`super::XdpProgram`]) stays the one attached, and the caller binds each socket into its
//! XSKMAP ([`super::XdpProgram::set_socket`] with [`XskIo::fd`]).
//!
//! Nothing is copied on the worker's path. Receive hands the handler views of the UMEM frames
//! themselves (one `UmemFrame` per frame, never a slice over the whole UMEM, which the
//! kernel writes concurrently) and keeps the frames out of the fill ring until the next
//! `recv`/`send`/`wait`, i.e. until the handler has returned (the [`RxBatch`] borrows the
//! socket, so the borrow checker enforces it). Before each receive the worker is lent up to a
//! batch of free frames for its [`TxBatch`] ([`FrameIo::lend_tx`]); replies are built in them,
//! and [`FrameIo::send_lent`] takes them back out of the batch, produces their descriptors on
//! the TX ring and kicks the kernel until the ring has drained (copy mode sends at most 32
//! frames per kick), reclaiming completed frames into the pool as it goes; frames the ring
//! refused go back to the pool. [`FrameIo::send`] (a batch that is not ours, or built in the
//! batch's own slots) still copies each reply into a free frame; [`XskIo::copy_stats`] counts
//! both kinds.
//!
//! # Unsafe
//!
//! This module and `xdp::umem` are the crate's only unsafe code outside [`crate::sys`]:
//! xsk-rs's ring and UMEM accessors (`FillQueue::produce`, `TxQueue::produce`,
//! `RxQueue::consume`, `CompQueue::consume`, `Umem::data_mut`, `Socket::new`) are `unsafe
//! fn`s, and what makes each call sound is the frame accounting this module keeps, so they
//! stay next to it. Invariants:
//! - Every frame of a socket's share of the UMEM is in exactly one place: the pool (`free`),
//!   the fill ring (`in_fill`), held by the current rx batch (`rx_held`, viewed by
//!   `rx_views`), lent to a [`TxBatch`] (`tx_lent`), `ready` for the TX ring, or on the TX ring
//!   or in flight (`in_flight`) until it comes back on the completion ring
//!   ([`XskIo::frames`] checks the sum). Only frames of this socket's own UMEM ever enter
//!   these lists.
//! - The kernel may write a frame only while it is on the fill ring, and read it only while
//!   on the TX ring; user space makes a view of a frame (`Umem::data_mut`, a `UmemFrame`)
//!   only while it owns the frame (pool, `rx_held`, `tx_lent`, `ready`), and drops every
//!   view before the descriptor is produced to a ring.
//! - The rings' memory ordering is libxdp's (`xsk_ring_prod__submit` releases the
//!   descriptors, `xsk_ring_cons__peek` acquires them); nothing here touches the ring
//!   indices directly.

use std::ffi::CString;
use std::io::{self, Write};
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};

use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use super::umem::{Lender, UmemFrame};
use crate::stats::{DropReason, WorkerStats};
use crate::worker::{
    DEFAULT_SLOT_LEN, FrameIo, RxBatch, RxMeta, TxBatch, TxOutcome, UmemDesc, VlanTag,
};

/// Ids for [`XskIo`]s, so a [`TxBatch`] gives lent frames back only to their socket.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// How many frames and bytes an [`XskIo`] moved with and without a copy, since it opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskCopyStats {
    /// Frames handed to the handler as views of their UMEM frame.
    pub rx_in_place: u64,
    /// Bytes copied on receive (none: kept to show it).
    pub rx_copied_bytes: u64,
    /// Frames transmitted from the UMEM frame they were built in.
    pub tx_in_place: u64,
    /// Frames copied into a UMEM frame to be transmitted (built outside the UMEM).
    pub tx_copied: u64,
    /// Their bytes.
    pub tx_copied_bytes: u64,
}

/// Where an [`XskIo`]'s frames are, for checking that none is lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskFrames {
    /// Frames this socket was given.
    pub total: usize,
    /// In the pool (free for transmit or for the fill ring).
    pub free: usize,
    /// Produced to the fill ring and not yet received back.
    pub fill: usize,
    /// Received and still viewed by the last batch.
    pub rx_held: usize,
    /// Lent to a [`TxBatch`].
    pub tx_lent: usize,
    /// Produced to the TX ring and not yet completed.
    pub tx_in_flight: usize,
}

impl XskFrames {
    /// Whether every frame is accounted for.
    pub fn balanced(&self) -> bool {
        self.free + self.fill + self.rx_held + self.tx_lent + self.tx_in_flight == self.total
    }
}

/// Whether to ask the driver for zero-copy AF_XDP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ZeroCopy {
    /// Zero-copy where the driver supports it, else copy mode (veth, most virtual NICs).
    #[default]
    Auto,
    /// Zero-copy or fail.
    On,
    /// Copy mode.
    Off,
}

/// How the sockets of one interface are set up.
#[derive(Clone, Copy, Debug)]
pub struct XskOptions {
    /// Slots of each ring (rx, tx, fill, completion); a power of two.
    pub ring_size: u32,
    /// Most frames one `recv` returns.
    pub batch: usize,
    pub zero_copy: ZeroCopy,
}

impl Default for XskOptions {
    fn default() -> Self {
        XskOptions {
            ring_size: 2048,
            batch: 64,
            zero_copy: ZeroCopy::Auto,
        }
    }
}

/// Why the AF_XDP sockets could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    #[error("AF_XDP configuration: {0}")]
    Config(String),
    #[error("creating the UMEM for {ifname}: {source}")]
    Umem {
        ifname: String,
        #[source]
        source: xsk_rs::umem::UmemCreateError,
    },
    #[error("AF_XDP socket on {ifname} queue {queue}: {source}")]
    Socket {
        ifname: String,
        queue: u32,
        #[source]
        source: xsk_rs::socket::SocketCreateError,
    },
    #[error("AF_XDP socket on {ifname} queue {queue} came without fill/completion rings")]
    NoRings { ifname: String, queue: u32 },
    #[error("interface {0:?} not found")]
    UnknownInterface(String),
}

/// The rx queues of `ifname` in the calling thread's network namespace: the driver's rx-only
/// plus combined channels (`ethtool -l`); 1 where the driver doesn't say (`lo`, some virtual
/// devices).
pub fn rx_queue_count(ifname: &str) -> u32 {
    crate::sys::ethtool_channels(ifname)
        .ok()
        .map(|c| c.rx_count.saturating_add(c.combined_count))
        .filter(|&n| n > 0)
        .unwrap_or(1)
}

/// The kernel's counters for one AF_XDP socket (`getsockopt(SOL_XDP, XDP_STATISTICS)`), since
/// it was bound.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskStats {
    /// Frames dropped on the way in for other reasons than a full rx ring; in copy mode
    /// chiefly no free frame on the fill ring.
    pub rx_dropped: u64,
    /// Frames dropped on the way in because the rx ring was full.
    pub rx_ring_full: u64,
    /// Received frames dropped for an invalid descriptor.
    pub rx_invalid_descs: u64,
    /// Times the kernel found the fill ring empty.
    pub rx_fill_ring_empty_descs: u64,
    /// Transmit descriptors the kernel refused as invalid.
    pub tx_invalid_descs: u64,
    /// Times the kernel found the TX ring empty when asked to send.
    pub tx_ring_empty_descs: u64,
}

/// `recv` calls between two reads of the kernel's counters while frames keep coming (they
/// are also read on every idle wait).
const STATS_EVERY: u32 = 256;

/// One AF_XDP socket bound to one rx queue, as a [`FrameIo`].
pub struct XskIo {
    id: u64,
    umem: Umem,
    /// The UMEM's address range in this process (for [`XskIo::umem_range`]).
    umem_range: std::ops::Range<usize>,
    /// Frames received and viewed by the current batch (`rx_views[i]` is `rx_held[i]`), on
    /// no ring until the next call that takes `&mut self`.
    rx_held: Vec<FrameDesc>,
    rx_views: Vec<UmemFrame>,
    /// Frames lent to a [`TxBatch`], in its slot order.
    tx_lent: Vec<FrameDesc>,
    /// Descriptors ready for the TX ring (reused).
    ready: Vec<FrameDesc>,
    /// The lengths of the replies in lent frames (reused).
    tx_lens: Vec<usize>,
    /// Frames on the fill ring (produced, not yet received).
    in_fill: usize,
    total: usize,
    copies: XskCopyStats,
    rx: RxQueue,
    tx: TxQueue,
    fill: FillQueue,
    comp: CompQueue,
    /// Frames owned by user space, free for transmit or for the fill ring.
    free: Vec<FrameDesc>,
    /// Scratch for descriptors coming off the rx and completion rings.
    scratch: Vec<FrameDesc>,
    descs: Vec<UmemDesc>,
    ifindex: u32,
    queue: u32,
    batch: usize,
    ring_size: u32,
    zero_copy: bool,
    /// Frames on the TX ring or in flight, not yet completed.
    in_flight: usize,
    /// The kernel's counters as last added to the worker's drop counters.
    counted: XskStats,
    /// `recv` calls since the kernel's counters were last read.
    since_stats: u32,
}

// Drop order: each queue holds the socket and the socket holds the UMEM (xsk-rs reference
// counts both), so the UMEM is deleted only after the last socket on it.

impl std::fmt::Debug for XskIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskIo")
            .field("ifindex", &self.ifindex)
            .field("queue", &self.queue)
            .field("zero_copy", &self.zero_copy)
            .finish_non_exhaustive()
    }
}

impl XskIo {
    /// Opens one socket per queue in `queues` on `ifname`, sharing one UMEM.
    pub fn open_all(
        ifname: &str,
        queues: std::ops::Range<u32>,
        opts: &XskOptions,
    ) -> Result<Vec<XskIo>, XskError> {
        let ring = QueueSize::new(opts.ring_size).map_err(|e| XskError::Config(e.to_string()))?;
        let frame_size = u32::try_from(DEFAULT_SLOT_LEN).unwrap_or(2048);
        let umem_cfg = UmemConfig::builder()
            .frame_size(FrameSize::new(frame_size).map_err(|e| XskError::Config(e.to_string()))?)
            .fill_queue_size(ring)
            .comp_queue_size(ring)
            .build()
            .map_err(|e| XskError::Config(e.to_string()))?;
        // Per socket: a ring's worth for the fill ring and as many again for transmit.
        let per_socket = opts.ring_size.saturating_mul(2);
        let n_queues = queues.end.saturating_sub(queues.start).max(1);
        let frames = NonZeroU32::new(per_socket.saturating_mul(n_queues))
            .ok_or_else(|| XskError::Config("no frames".into()))?;
        let (umem, mut all) =
            Umem::new(umem_cfg, frames, false).map_err(|source| XskError::Umem {
                ifname: ifname.to_owned(),
                source,
            })?;
        let name = CString::new(ifname).map_err(|_| XskError::UnknownInterface(ifname.into()))?;
        let ifindex = crate::sys::if_nametoindex(ifname)
            .map_err(|_| XskError::UnknownInterface(ifname.into()))?;
        let iface = Interface::new(name);
        let umem_range = match all.first_mut() {
            Some(d) => {
                let addr = d.addr();
                // SAFETY: `d` is a frame of `umem` that no ring has yet; the view is dropped
                // at once.
                let p = unsafe { umem.data_mut(d) }.contents_mut().as_ptr() as usize;
                let start = p.wrapping_sub(addr);
                start..start + frames.get() as usize * DEFAULT_SLOT_LEN
            }
            None => 0..0,
        };

        let mut out = Vec::new();
        for queue in queues {
            let frames: Vec<FrameDesc> =
                all.split_off(all.len().saturating_sub(per_socket as usize));
            let (sock, zero_copy) =
                open_socket(&umem, &iface, ifname, queue, ring, opts.zero_copy)?;
            let (tx, rx, rings) = sock;
            let (fill, comp) = rings.ok_or_else(|| XskError::NoRings {
                ifname: ifname.to_owned(),
                queue,
            })?;
            let total = frames.len();
            let batch = opts.batch.max(1);
            let mut io = XskIo {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                umem: umem.clone(),
                umem_range: umem_range.clone(),
                rx_held: Vec::with_capacity(batch),
                rx_views: Vec::with_capacity(batch),
                tx_lent: Vec::with_capacity(batch),
                ready: Vec::with_capacity(batch),
                tx_lens: Vec::with_capacity(batch),
                in_fill: 0,
                total,
                copies: XskCopyStats::default(),
                rx,
                tx,
                fill,
                comp,
                free: frames,
                scratch: vec![FrameDesc::default(); opts.ring_size as usize],
                descs: Vec::with_capacity(batch),
                ifindex,
                queue,
                batch: opts.batch.max(1),
                ring_size: opts.ring_size,
                zero_copy,
                in_flight: 0,
                counted: XskStats::default(),
                since_stats: 0,
            };
            io.top_up_fill();
            tracing::info!(
                ifname,
                queue,
                mode = if zero_copy { "zero-copy" } else { "copy" },
                "AF_XDP socket bound"
            );
            out.push(io);
        }
        Ok(out)
    }

    /// The socket's fd, for the XSKMAP.
    pub fn fd(&self) -> RawFd {
        self.rx.fd().as_raw_fd()
    }

    /// The rx queue the socket is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// The address range of the UMEM this socket's frames are in: every received frame's
    /// bytes lie inside it (they are not copied out).
    pub fn umem_range(&self) -> std::ops::Range<usize> {
        self.umem_range.clone()
    }

    /// Frames and bytes moved with and without a copy.
    pub fn copy_stats(&self) -> XskCopyStats {
        self.copies
    }

    /// Where this socket's frames are now (completions are collected first).
    pub fn frames(&mut self) -> XskFrames {
        self.reclaim();
        XskFrames {
            total: self.total,
            free: self.free.len(),
            fill: self.in_fill,
            rx_held: self.rx_held.len(),
            tx_lent: self.tx_lent.len(),
            tx_in_flight: self.in_flight,
        }
    }

    /// Whether the socket runs in zero-copy mode.
    pub fn zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// The kernel's counters for this socket (`XDP_STATISTICS`).
    pub fn kernel_stats(&self) -> io::Result<XskStats> {
        let s = self.rx.fd().xdp_statistics()?;
        Ok(XskStats {
            rx_dropped: s.rx_dropped(),
            rx_ring_full: s.rx_ring_full(),
            rx_invalid_descs: s.rx_invalid_descs(),
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs(),
            tx_invalid_descs: s.tx_invalid_descs(),
            tx_ring_empty_descs: s.tx_ring_empty_descs(),
        })
    }

    /// Adds what the kernel dropped since the last call to the worker's drop counters
    /// ([`DropReason::XskRxDropped`], [`DropReason::XskRxRingFull`]).
    fn count_kernel_drops(&mut self, stats: &WorkerStats) {
        self.since_stats = 0;
        let Ok(now) = self.kernel_stats() else {
            return;
        };
        let was = self.counted;
        let dropped = (now.rx_dropped + now.rx_invalid_descs)
            .saturating_sub(was.rx_dropped + was.rx_invalid_descs);
        if dropped > 0 {
            stats.add_drops(DropReason::XskRxDropped, dropped);
        }
        let full = now.rx_ring_full.saturating_sub(was.rx_ring_full);
        if full > 0 {
            stats.add_drops(DropReason::XskRxRingFull, full);
        }
        if dropped > 0 || full > 0 {
            tracing::warn!(
                queue = self.queue,
                rx_dropped = now.rx_dropped,
                rx_invalid_descs = now.rx_invalid_descs,
                rx_ring_full = now.rx_ring_full,
                rx_fill_ring_empty_descs = now.rx_fill_ring_empty_descs,
                free_frames = self.free.len(),
                "the kernel dropped frames on the way into the AF_XDP socket"
            );
        }
        self.counted = now;
    }

    /// Gives free frames to the fill ring, keeping half of them for transmit.
    fn top_up_fill(&mut self) {
        let keep = self.ring_size as usize;
        if self.free.len() <= keep {
            return;
        }
        let give = self.free.len() - keep;
        let start = self.free.len() - give;
        // SAFETY: every descriptor in `free` is a frame of this socket's UMEM that user space
        // owns (never produced to a ring since it was last consumed from one).
        let n = unsafe { self.fill.produce(&self.free[start..]) };
        // The ring took the first `n` of them (libxdp reserves all or nothing; this holds
        // either way).
        self.free.drain(start..start + n.min(give));
        self.in_fill += n.min(give);
        if n > 0 && self.fill.needs_wakeup() {
            let _ = self.fill.wakeup(self.rx.fd_mut(), 0);
        }
    }

    /// Gives the frames the last batch viewed back to the pool (the handler has returned:
    /// this takes `&mut self`, which the batch borrowed).
    fn release_rx(&mut self) {
        self.rx_views.clear();
        self.free.append(&mut self.rx_held);
    }

    /// Takes back the frames lent to `tx` without sending them.
    fn unlend(&mut self, tx: &mut TxBatch) {
        if tx.lent_by(self.id) {
            tx.unlend();
            self.free.append(&mut self.tx_lent);
        }
    }

    /// Copies `frame` into a free frame and appends it to `ready`.
    fn copy_in(&mut self, frame: &[u8]) -> bool {
        let Some(mut desc) = self.free.pop() else {
            return false;
        };
        // SAFETY: `desc` is a free frame of our UMEM (owned by user space, on no ring, not
        // lent: no `UmemFrame` views it).
        let mut data = unsafe { self.umem.data_mut(&mut desc) };
        let mut cur = data.cursor();
        cur.set_pos(0);
        if cur.write_all(frame).is_err() {
            self.free.push(desc);
            return false;
        }
        self.copies.tx_copied += 1;
        self.copies.tx_copied_bytes += frame.len() as u64;
        self.ready.push(desc);
        true
    }

    /// Produces `self.ready` on the TX ring and kicks the kernel until the ring has drained
    /// (or a bound passed); what the ring did not take goes back to the pool.
    fn transmit(&mut self) -> (usize, usize) {
        let deadline = Instant::now() + MAX_SEND_WAIT;
        let mut produced = 0;
        let mut kicks = 0;
        while kicks < MAX_KICKS {
            if produced < self.ready.len() {
                // libxdp reserves all or nothing: offer only what the ring has room for.
                let want = self.ready.len() - produced;
                let room = self.tx.nb_free(u32::try_from(want).unwrap_or(u32::MAX)) as usize;
                let take = want.min(room);
                // SAFETY: the descriptors are frames of our UMEM we own, written, and viewed
                // by no `UmemFrame` any more.
                let n = unsafe { self.tx.produce(&self.ready[produced..produced + take]) };
                produced += n;
                self.in_flight += n;
            }
            // Copy mode transmits at most 32 frames per kick: kick until the ring is empty.
            let _ = self.tx.wakeup();
            kicks += 1;
            self.reclaim();
            let ring_empty = self.tx.nb_free_exact() >= self.ring_size;
            if produced == self.ready.len() && ring_empty {
                break;
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        // Frames the ring never took go back to the pool.
        let unsent = self.ready.len() - produced;
        self.free.extend(self.ready.drain(..).skip(produced));
        self.top_up_fill();
        (produced, unsent)
    }

    /// Takes completed transmit frames back.
    fn reclaim(&mut self) {
        loop {
            // SAFETY: the completion ring belongs to this socket's UMEM.
            let n = unsafe { self.comp.consume(&mut self.scratch) };
            if n == 0 {
                break;
            }
            self.free.extend_from_slice(&self.scratch[..n]);
            self.in_flight = self.in_flight.saturating_sub(n);
        }
    }
}

fn open_socket(
    umem: &Umem,
    iface: &Interface,
    ifname: &str,
    queue: u32,
    ring: QueueSize,
    zc: ZeroCopy,
) -> Result<(SocketParts, bool), XskError> {
    let try_bind = |mode: BindFlags| {
        let cfg = SocketConfig::builder()
            .rx_queue_size(ring)
            .tx_queue_size(ring)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(mode | BindFlags::XDP_USE_NEED_WAKEUP)
            .build();
        // SAFETY: INHIBIT_PROG_LOAD is set, as `Socket::new` requires when a shared UMEM's
        // (interface, queue) pair may already be bound; the UMEM outlives the socket (xsk-rs
        // holds a reference to it).
        unsafe { Socket::new(cfg, umem, iface, queue) }
    };
    let err = |source| XskError::Socket {
        ifname: ifname.to_owned(),
        queue,
        source,
    };
    match zc {
        ZeroCopy::On => Ok((try_bind(BindFlags::XDP_ZEROCOPY).map_err(err)?, true)),
        ZeroCopy::Off => Ok((try_bind(BindFlags::XDP_COPY).map_err(err)?, false)),
        ZeroCopy::Auto => match try_bind(BindFlags::XDP_ZEROCOPY) {
            Ok(s) => Ok((s, true)),
            Err(e) => {
                tracing::debug!(ifname, queue, error = %e, "no zero-copy AF_XDP; using copy mode");
                Ok((try_bind(BindFlags::XDP_COPY).map_err(err)?, false))
            }
        },
    }
}

type SocketParts = (TxQueue, RxQueue, Option<(FillQueue, CompQueue)>);

/// The outermost VLAN tag in the frame's bytes (XDP sees tags the NIC did not strip).
fn vlan_of(frame: &[u8]) -> Option<VlanTag> {
    let tpid = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    if tpid != 0x8100 && tpid != 0x88a8 {
        return None;
    }
    let tci = u16::from_be_bytes([*frame.get(14)?, *frame.get(15)?]);
    Some(VlanTag { tpid, tci })
}

/// Bound on kicks per `send` while waiting for the TX ring to drain.
const MAX_KICKS: usize = 256;
/// Bound on time per `send` while waiting for the TX ring to drain.
const MAX_SEND_WAIT: Duration = Duration::from_millis(20);

impl FrameIo for XskIo {
    fn batch_size(&self) -> usize {
        self.batch
    }

    fn recv(&mut self, stats: &WorkerStats) -> io::Result<RxBatch<'_>> {
        self.since_stats += 1;
        if self.since_stats >= STATS_EVERY {
            self.count_kernel_drops(stats);
        }
        self.release_rx();
        self.reclaim();
        self.descs.clear();
        let want = self.batch.min(self.scratch.len());
        // SAFETY: the rx ring belongs to this socket's UMEM.
        let n = unsafe { self.rx.consume(&mut self.scratch[..want]) };
        self.in_fill = self.in_fill.saturating_sub(n);
        for desc in self.scratch[..n].iter_mut() {
            let addr = desc.addr() as u64;
            // SAFETY: `desc` came off this socket's rx ring: a frame of our UMEM that the
            // kernel handed to user space and does not touch until we give it back, which
            // `release_rx` does only after the batch's borrow has ended. The view made here
            // spans this one frame and is the only one.
            let mut data = unsafe { self.umem.data_mut(desc) };
            let bytes = data.contents_mut();
            // A frame longer than a slot cannot come (the frame size is the slot length).
            let len = bytes.len().min(DEFAULT_SLOT_LEN);
            let vlan = vlan_of(&bytes[..len]);
            let ptr = NonNull::from(&mut bytes[..len]).cast::<u8>();
            let frame = self.rx_views.len();
            // SAFETY: `ptr..ptr + len` is this frame's received bytes, in the UMEM mapping
            // that `self.umem` keeps mapped while the view (kept in `self.rx_views`) exists;
            // the frame stays owned by user space until `release_rx` drops the view first.
            self.rx_views
                .push(unsafe { UmemFrame::new(ptr, len, addr) });
            self.rx_held.push(*desc);
            self.descs.push(UmemDesc {
                frame,
                meta: RxMeta {
                    ifindex: self.ifindex,
                    vlan,
                    // XDP carries no checksum status: a frame from a local socket over veth
                    // may still have a partial UDP checksum, as with TP_STATUS_CSUMNOTREADY.
                    csum_not_ready: true,
                },
            });
        }
        self.copies.rx_in_place += n as u64;
        self.top_up_fill();
        Ok(RxBatch::from_umem(&self.rx_views, &self.descs))
    }

    fn wait(
        &mut self,
        timeout: Duration,
        also: Option<BorrowedFd<'_>>,
        stats: &WorkerStats,
    ) -> io::Result<bool> {
        self.release_rx();
        self.top_up_fill();
        self.count_kernel_drops(stats);
        if also.is_none() {
            let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
            return self.rx.poll(ms);
        }
        // SAFETY: the descriptor is the socket's, which `self` owns for the whole call.
        let fd = unsafe { BorrowedFd::borrow_raw(self.rx.fd().as_raw_fd()) };
        crate::sys::poll_readable(fd, also, timeout)
    }

    fn send(&mut self, tx: &TxBatch) -> TxOutcome {
        let mut out = TxOutcome::default();
        self.release_rx();
        if tx.is_empty() {
            return out;
        }
        self.reclaim();
        self.ready.clear();
        for frame in tx.frames() {
            if !self.copy_in(frame) {
                out.failed += 1;
            }
        }
        let (sent, unsent) = self.transmit();
        out.sent = sent;
        out.failed += unsent;
        out
    }

    fn lend_tx(&mut self, tx: &mut TxBatch) {
        if tx.lent() > 0 || !tx.is_empty() {
            return;
        }
        self.release_rx();
        self.reclaim();
        // Leave the fill ring its share: lend from what `top_up_fill` keeps for transmit.
        let n = tx.capacity().min(self.free.len());
        let start = self.free.len() - n;
        self.tx_lent.extend(self.free.drain(start..));
        let umem = &self.umem;
        let frames = self.tx_lent.iter_mut().map(|desc| {
            let addr = desc.addr() as u64;
            // SAFETY: `desc` is a free frame of our UMEM, on no ring, and now lent: only the
            // view made here touches it until `send_lent`/`take_back_tx` take it back.
            let mut data = unsafe { umem.data_mut(desc) };
            let mut cur = data.cursor();
            let cap = cur.buf_len();
            cur.set_pos(cap);
            let bytes = data.contents_mut();
            let len = bytes.len();
            let ptr = NonNull::from(bytes).cast::<u8>();
            // SAFETY: `ptr..ptr + len` is this whole frame's data segment in the mapping
            // that the `Lender` given with it keeps mapped; the frame is owned by user space
            // and reached only through this view until it is taken back (`unlend` drops
            // the views before the descriptor goes to a ring or the pool).
            unsafe { UmemFrame::new(ptr, len, addr) }
        });
        tx.lend(Lender::new(self.id, self.umem.clone()), frames);
    }

    fn send_lent(&mut self, tx: &mut TxBatch) -> TxOutcome {
        if !tx.lent_by(self.id) {
            let out = self.send(tx);
            tx.clear();
            return out;
        }
        let mut out = TxOutcome::default();
        self.release_rx();
        self.reclaim();
        self.ready.clear();
        let queued = tx.len();
        let lent = tx.lent().min(self.tx_lent.len());
        // Replies past the lent frames were built in the batch's own slots: copy those in.
        for i in lent..queued {
            let ok = match tx.get(i) {
                Some(frame) => self.copy_in(frame),
                None => false,
            };
            if !ok {
                out.failed += 1;
            }
        }
        let copied = self.ready.len();
        // The lent frames in use go out as they are; drop the batch's views of them first.
        let in_place = lent.min(queued);
        self.tx_lens.clear();
        self.tx_lens
            .extend((0..in_place).map(|i| tx.queued_len(i).unwrap_or(0)));
        tx.unlend();
        for (desc, &len) in self.tx_lent.iter_mut().zip(&self.tx_lens) {
            // SAFETY: a frame we lent and have just taken back (no view of it is left); the
            // view made here only records the reply's length in the descriptor.
            unsafe { self.umem.data_mut(desc) }.cursor().set_pos(len);
        }
        self.ready.extend(self.tx_lent.drain(..in_place));
        self.free.append(&mut self.tx_lent);
        self.copies.tx_in_place += in_place as u64;
        // Keep the order of the batch: lent slots came first.
        self.ready.rotate_left(copied);
        let (sent, unsent) = self.transmit();
        out.sent = sent;
        out.failed += unsent;
        out
    }

    fn take_back_tx(&mut self, tx: &mut TxBatch) {
        self.unlend(tx);
        self.release_rx();
        self.top_up_fill();
    }
}
