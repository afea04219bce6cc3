//! Software dispatch: one hot receive queue served by several workers.
//!
//! RSS is degenerate for DHCP (DESIGN.md §2): broadcast DISCOVERs share one 5-tuple, so a NIC
//! (or a veth, which has one queue) may put every frame on one rx queue, and with AF_XDP one
//! queue is one socket and one worker. Software dispatch lets that worker (the *rx worker*)
//! hand frames to *sibling* workers on other cores:
//!
//! * the rx worker's handler is a [`Dispatcher`]: for each frame it picks a lane by a hash of
//!   the client's `chaddr` (so one client's messages stay in order on one worker); lane 0 is
//!   the rx worker itself, lane `k` the `k`-th sibling. A frame for a sibling is copied into
//!   one of the lane's preallocated buffers and pushed on its bounded lock-free queue
//!   ([`Lane`], crossbeam `ArrayQueue`s, no allocation per frame); when the lane is full the
//!   rx worker serves the frame itself (no loss, only less spread). The copy is what keeps
//!   this sound on AF_XDP: the rx worker's batch views UMEM frames that go back to the fill
//!   ring once its handler returns, so only owned bytes may cross to a sibling. Lane 0's
//!   frames ([`RxBatch::select`]) stay views of the UMEM, and the rx worker's replies are
//!   built in its lent UMEM frames as without dispatch.
//! * a sibling runs the ordinary worker loop over a [`SiblingIo`]: it receives from its lane,
//!   and sends its replies itself through a send-only `AF_PACKET` socket on the interface
//!   ([`crate::packet::Socket::open_tx_only`]), so replies never queue behind the rx worker.
//!
//! Each worker, siblings included, has its own [`crate::engine::EngineWorker`] (its own
//! `AllocCursor`) and its own journal and commit thread, and sends an ACK only once its own
//! commit is durable: the durability rule of the worker loop holds unchanged. A frame handed to a sibling counts in
//! the rx worker's `rx` (received from the wire) and again in the sibling's (received from
//! the lane).
#![forbid(unsafe_code)]

use std::io;
use std::os::fd::BorrowedFd;
use std::sync::{Arc, OnceLock};
use std::thread::{self, Thread};
use std::time::Duration;

use crossbeam::queue::ArrayQueue;

use crate::packet::{PacketIo, Socket};
use crate::stats::WorkerStats;
use crate::worker::{
    BatchHandler, DEFAULT_SLOT_LEN, FrameIo, RxBatch, RxDesc, RxMeta, RxSelection, TxBatch,
    TxOutcome,
};

/// Frames one lane holds in flight (its queue and its buffer pool).
pub const LANE_DEPTH: usize = 1024;

/// A frame on its way to a sibling.
struct Job {
    buf: Box<[u8]>,
    len: usize,
    meta: RxMeta,
}

/// The queue from an rx worker to one sibling, with the sibling's pool of frame buffers.
pub struct Lane {
    jobs: ArrayQueue<Job>,
    free: ArrayQueue<Box<[u8]>>,
    /// The sibling's thread, to unpark when frames arrive.
    sibling: OnceLock<Thread>,
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane")
            .field("queued", &self.jobs.len())
            .finish_non_exhaustive()
    }
}

impl Lane {
    /// A lane of `depth` frames (at least one) of [`DEFAULT_SLOT_LEN`] bytes, all allocated now.
    pub fn new(depth: usize) -> Arc<Lane> {
        let depth = depth.max(1);
        let free = ArrayQueue::new(depth);
        for _ in 0..depth {
            let _ = free.push(vec![0u8; DEFAULT_SLOT_LEN].into_boxed_slice());
        }
        Arc::new(Lane {
            jobs: ArrayQueue::new(depth),
            free,
            sibling: OnceLock::new(),
        })
    }

    /// Frames waiting for the sibling.
    pub fn queued(&self) -> usize {
        self.jobs.len()
    }

    /// Queues a copy of `data`; `false` when the lane is full or the frame too long.
    fn offer(&self, data: &[u8], meta: RxMeta) -> bool {
        if data.len() > DEFAULT_SLOT_LEN {
            return false;
        }
        let Some(mut buf) = self.free.pop() else {
            return false;
        };
        buf[..data.len()].copy_from_slice(data);
        match self.jobs.push(Job {
            buf,
            len: data.len(),
            meta,
        }) {
            Ok(()) => true,
            Err(job) => {
                let _ = self.free.push(job.buf);
                false
            }
        }
    }

    fn wake(&self) {
        if let Some(t) = self.sibling.get() {
            t.unpark();
        }
    }
}

/// Which lane of `lanes` (0: the rx worker) serves `frame`: a hash of the client hardware
/// address, so one client's messages stay on one worker. Frames that do not parse stay on 0.
pub fn lane_of(frame: &[u8], lanes: usize) -> usize {
    if lanes <= 1 {
        return 0;
    }
    let Ok(f) = crate::wire::frame::parse(frame) else {
        return 0;
    };
    let Ok(p) = crate::wire::dhcpv4::Packet::new_checked(f.dhcp) else {
        return 0;
    };
    let hlen = usize::from(p.hlen().min(16));
    // FNV-1a over chaddr[..hlen].
    let h = p.chaddr()[..hlen]
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    usize::try_from(h % lanes as u64).unwrap_or(0)
}

/// The rx worker's handler: serves its own share of each batch with `inner` and hands the
/// rest to its siblings' lanes. With no lanes it is `inner` (plus one pass over the batch).
pub struct Dispatcher<H> {
    inner: H,
    lanes: Vec<Arc<Lane>>,
    keep: Vec<bool>,
    woken: Vec<bool>,
    local: RxSelection,
    stats: Option<Arc<WorkerStats>>,
}

impl<H> std::fmt::Debug for Dispatcher<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("lanes", &self.lanes)
            .finish_non_exhaustive()
    }
}

impl<H: BatchHandler> Dispatcher<H> {
    /// `inner` serves lane 0; `lanes[k]` feeds sibling `k + 1`.
    pub fn new(inner: H, lanes: Vec<Arc<Lane>>) -> Self {
        let n = lanes.len();
        Dispatcher {
            inner,
            lanes,
            keep: Vec::with_capacity(crate::sys::MAX_BATCH),
            woken: vec![false; n],
            local: RxSelection::with_capacity(crate::sys::MAX_BATCH),
            stats: None,
        }
    }

    /// Counts the frames handed to siblings in `stats` (the rx worker's), so that
    /// `rx - dispatched` is what this worker answered or dropped itself.
    pub fn counting(mut self, stats: Arc<WorkerStats>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// The handler of lane 0.
    pub fn inner(&self) -> &H {
        &self.inner
    }

    /// Gives back the handler of lane 0.
    pub fn into_inner(self) -> H {
        self.inner
    }
}

impl<H: BatchHandler> BatchHandler for Dispatcher<H> {
    fn handle(&mut self, rx: &RxBatch<'_>, tx: &mut TxBatch) {
        if self.lanes.is_empty() {
            self.inner.handle(rx, tx);
            return;
        }
        let n = self.lanes.len() + 1;
        self.keep.clear();
        self.woken.iter_mut().for_each(|w| *w = false);
        for f in rx.iter() {
            let keep = match f {
                None => true,
                Some(f) => match lane_of(f.data, n).checked_sub(1) {
                    None => true,
                    Some(k) => match self.lanes.get(k) {
                        Some(lane) if lane.offer(f.data, f.meta) => {
                            self.woken[k] = true;
                            false
                        }
                        _ => true,
                    },
                },
            };
            self.keep.push(keep);
        }
        for (lane, woken) in self.lanes.iter().zip(&self.woken) {
            if *woken {
                lane.wake();
            }
        }
        if let Some(stats) = &self.stats {
            let handed = self.keep.iter().filter(|&&k| !k).count();
            if handed > 0 {
                stats.add_dispatched(handed as u64);
            }
        }
        let keep = &self.keep;
        let local = rx.select(|i| keep.get(i).copied().unwrap_or(true), &mut self.local);
        if !local.is_empty() {
            self.inner.handle(&local, tx);
        }
    }

    fn idle(&mut self, tx: &mut TxBatch) {
        self.inner.idle(tx);
    }

    fn durable(&mut self, wait: bool) -> Option<&mut TxBatch> {
        self.inner.durable(wait)
    }

    fn wake_fd(&self) -> Option<BorrowedFd<'_>> {
        self.inner.wake_fd()
    }
}

/// A sibling worker's datapath: frames from its [`Lane`], replies out of a send-only packet
/// socket.
#[derive(Debug)]
pub struct SiblingIo {
    lane: Arc<Lane>,
    tx: PacketIo,
    arena: Box<[u8]>,
    descs: Vec<RxDesc>,
    batch: usize,
}

impl SiblingIo {
    /// Receives from `lane` in batches of up to `batch`, sends through `tx`.
    pub fn new(lane: Arc<Lane>, tx: Socket, batch: usize) -> Self {
        let batch = batch.max(1);
        SiblingIo {
            lane,
            tx: PacketIo::new(tx, batch),
            arena: vec![0u8; batch * DEFAULT_SLOT_LEN].into_boxed_slice(),
            descs: Vec::with_capacity(batch),
            batch,
        }
    }
}

impl FrameIo for SiblingIo {
    fn batch_size(&self) -> usize {
        self.batch
    }

    fn recv(&mut self, _stats: &WorkerStats) -> io::Result<RxBatch<'_>> {
        self.descs.clear();
        while self.descs.len() < self.batch {
            let Some(job) = self.lane.jobs.pop() else {
                break;
            };
            let offset = self.descs.len() * DEFAULT_SLOT_LEN;
            let len = job.len.min(DEFAULT_SLOT_LEN);
            self.arena[offset..offset + len].copy_from_slice(&job.buf[..len]);
            self.descs.push(RxDesc {
                offset,
                len,
                meta: job.meta,
            });
            let _ = self.lane.free.push(job.buf);
        }
        Ok(RxBatch::new(&self.arena, &self.descs))
    }

    /// Parks: the dispatcher unparks the sibling when it queues a job, and whoever
    /// signals `also` unparks its worker too.
    fn wait(
        &mut self,
        timeout: Duration,
        _also: Option<BorrowedFd<'_>>,
        _stats: &WorkerStats,
    ) -> io::Result<bool> {
        let me = self.lane.sibling.get_or_init(thread::current);
        if me.id() != thread::current().id() {
            return Err(io::Error::other("a lane serves one sibling thread"));
        }
        if !self.lane.jobs.is_empty() {
            return Ok(true);
        }
        thread::park_timeout(timeout);
        Ok(!self.lane.jobs.is_empty())
    }

    fn send(&mut self, tx: &TxBatch) -> TxOutcome {
        self.tx.send(tx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_lane_refuses_and_recycles() {
        let lane = Lane::new(2);
        let meta = RxMeta::default();
        assert!(lane.offer(&[1; 60], meta));
        assert!(lane.offer(&[2; 60], meta));
        assert!(!lane.offer(&[3; 60], meta), "two buffers only");
        assert!(!lane.offer(&[0; DEFAULT_SLOT_LEN + 1], meta));
        assert_eq!(lane.queued(), 2);
        let job = lane.jobs.pop().expect("job");
        assert_eq!(&job.buf[..job.len], &[1; 60]);
        let _ = lane.free.push(job.buf);
        assert!(lane.offer(&[4; 60], meta));
    }

    /// A minimal DHCP frame from `chaddr` (IPv4 header checksum filled in).
    fn frame(chaddr: [u8; 6]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&chaddr);
        f.extend_from_slice(&[0x08, 0x00]);
        let total: u16 = 20 + 8 + 244;
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255]);
        let mut sum: u32 = ip
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        let sum = u16::try_from(sum).unwrap_or(0);
        ip[10..12].copy_from_slice(&(!sum).to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0, 68, 0, 67]);
        f.extend_from_slice(&(total - 20).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        let mut bootp = vec![0u8; 244];
        bootp[0] = 1;
        bootp[1] = 1;
        bootp[2] = 6;
        bootp[28..34].copy_from_slice(&chaddr);
        bootp[236..240].copy_from_slice(&[99, 130, 83, 99]);
        bootp[240..244].copy_from_slice(&[53, 1, 1, 255]);
        f.extend_from_slice(&bootp);
        f
    }

    #[test]
    fn frames_spread_by_client_and_each_client_keeps_its_lane() {
        let lanes = vec![Lane::new(64), Lane::new(64)];
        let mut seen_local: Vec<Vec<u8>> = Vec::new();
        let inner = |rx: &RxBatch<'_>, _tx: &mut TxBatch| {
            seen_local.extend(rx.frames().map(|f| f.data.to_vec()));
        };
        let mut d = Dispatcher::new(inner, lanes.clone());
        // 30 clients, each twice in the batch.
        let frames: Vec<Vec<u8>> = (0..60u8).map(|i| frame([2, 0, 0, 0, 9, i % 30])).collect();
        let mut buf = Vec::new();
        let mut descs = Vec::new();
        for f in &frames {
            descs.push(RxDesc {
                offset: buf.len(),
                len: f.len(),
                meta: RxMeta::default(),
            });
            buf.extend_from_slice(f);
        }
        let mut tx = TxBatch::new(64, 256);
        d.handle(&RxBatch::new(&buf, &descs), &mut tx);
        drop(d);
        let want_local: Vec<Vec<u8>> = frames
            .iter()
            .filter(|f| lane_of(f, 3) == 0)
            .cloned()
            .collect();
        assert_eq!(seen_local, want_local, "lane 0 is served in arrival order");
        let mut total = seen_local.len();
        for (k, lane) in lanes.iter().enumerate() {
            let mut got = Vec::new();
            while let Some(job) = lane.jobs.pop() {
                got.push(job.buf[..job.len].to_vec());
            }
            let want: Vec<Vec<u8>> = frames
                .iter()
                .filter(|f| lane_of(f, 3) == k + 1)
                .cloned()
                .collect();
            assert_eq!(got, want, "lane {}", k + 1);
            assert!(!got.is_empty(), "30 clients reach every lane");
            total += got.len();
        }
        assert_eq!(total, frames.len(), "no frame lost or doubled");
    }

    #[test]
    fn garbage_stays_on_lane_zero() {
        assert_eq!(lane_of(&[0; 10], 4), 0);
        assert_eq!(lane_of(&[], 1), 0);
    }
}
