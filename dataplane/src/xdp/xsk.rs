//! AF_XDP sockets (xsk-rs over libxdp) as a [`FrameIo`]: one socket per rx queue, one UMEM per
//! interface shared by them, each socket with its own fill and completion rings and its own
//! share of the UMEM's frames.
//!
//! libxdp is told not to load its own program (`XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD`): ours
//! ([`super::XdpProgram`]) stays the one attached, and the caller binds each socket into its
//! XSKMAP ([`super::XdpProgram::set_socket`] with [`XskIo::fd`]).
//!
//! Receive copies each frame out of the UMEM into an arena (this first version trades a
//! ~300-byte copy for not lending UMEM frames across the handler call) and gives the frame
//! back to the fill ring at once. Transmit copies each reply into a free UMEM frame, produces
//! the batch on the TX ring and kicks the kernel until the ring has drained (copy mode sends
//! at most 32 frames per kick), reclaiming completed frames as it goes.

use std::ffi::CString;
use std::io::{self, Write};
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use crate::stats::{DropReason, WorkerStats};
use crate::worker::{
    DEFAULT_SLOT_LEN, FrameIo, RxBatch, RxDesc, RxMeta, TxBatch, TxOutcome, VlanTag,
};

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

/// `struct ethtool_channels` (`linux/ethtool.h`).
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

const ETHTOOL_GCHANNELS: u32 = 0x3c;
const SIOCETHTOOL: libc::Ioctl = 0x8946;

/// The rx queues of `ifname` in the calling thread's network namespace: the driver's rx-only
/// plus combined channels (`ethtool -l`); 1 where the driver doesn't say (`lo`, some virtual
/// devices).
pub fn rx_queue_count(ifname: &str) -> u32 {
    channels(ifname)
        .ok()
        .map(|c| c.rx_count.saturating_add(c.combined_count))
        .filter(|&n| n > 0)
        .unwrap_or(1)
}

fn channels(ifname: &str) -> io::Result<EthtoolChannels> {
    let bytes = ifname.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let mut ch = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..EthtoolChannels::default()
    };
    // SAFETY: `ifreq` is plain old data (a name array and a union of plain data): all-zero
    // bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, &src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    req.ifr_ifru.ifru_data = (&raw mut ch).cast::<libc::c_char>();
    let fd = crate::sys::udp_socket()?;
    // SAFETY: `req` names the interface and points `ifru_data` at `ch`, a live, initialised
    // `struct ethtool_channels` the kernel fills for ETHTOOL_GCHANNELS; both outlive the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), SIOCETHTOOL, &raw mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ch)
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
    umem: Umem,
    rx: RxQueue,
    tx: TxQueue,
    fill: FillQueue,
    comp: CompQueue,
    /// Frames owned by user space, free for transmit or for the fill ring.
    free: Vec<FrameDesc>,
    /// Scratch for descriptors coming off the rx and completion rings.
    scratch: Vec<FrameDesc>,
    arena: Vec<u8>,
    descs: Vec<RxDesc>,
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
            let mut io = XskIo {
                umem: umem.clone(),
                rx,
                tx,
                fill,
                comp,
                free: frames,
                scratch: vec![FrameDesc::default(); opts.ring_size as usize],
                arena: vec![0; opts.batch.max(1) * DEFAULT_SLOT_LEN],
                descs: Vec::with_capacity(opts.batch.max(1)),
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
        if n > 0 && self.fill.needs_wakeup() {
            let _ = self.fill.wakeup(self.rx.fd_mut(), 0);
        }
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
        self.reclaim();
        self.descs.clear();
        let want = self.batch.min(self.scratch.len());
        // SAFETY: the rx ring belongs to this socket's UMEM.
        let n = unsafe { self.rx.consume(&mut self.scratch[..want]) };
        for (i, desc) in self.scratch[..n].iter().enumerate() {
            // SAFETY: `desc` came off this socket's rx ring: a frame of our UMEM that the
            // kernel handed to user space and does not touch until we give it back.
            let data = unsafe { self.umem.data(desc) };
            let bytes = data.contents();
            let offset = i * DEFAULT_SLOT_LEN;
            let len = bytes.len().min(DEFAULT_SLOT_LEN);
            if let Some(dst) = self.arena.get_mut(offset..offset + len) {
                dst.copy_from_slice(&bytes[..len]);
            }
            self.descs.push(RxDesc {
                offset,
                // A frame longer than a slot is cut; the wire parser rejects it by its lengths.
                len,
                meta: RxMeta {
                    ifindex: self.ifindex,
                    vlan: vlan_of(&bytes[..len]),
                    // XDP carries no checksum status: a frame from a local socket over veth
                    // may still have a partial UDP checksum, as with TP_STATUS_CSUMNOTREADY.
                    csum_not_ready: true,
                },
            });
        }
        // The bytes are copied: the frames go straight back to the fill ring.
        self.free.extend_from_slice(&self.scratch[..n]);
        self.top_up_fill();
        Ok(RxBatch::new(&self.arena, &self.descs))
    }

    fn wait(&mut self, timeout: Duration, stats: &WorkerStats) -> io::Result<bool> {
        self.count_kernel_drops(stats);
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        self.rx.poll(ms)
    }

    fn send(&mut self, tx: &TxBatch) -> TxOutcome {
        let mut out = TxOutcome::default();
        if tx.is_empty() {
            return out;
        }
        self.reclaim();
        let mut ready: Vec<FrameDesc> = Vec::with_capacity(tx.len());
        for frame in tx.frames() {
            let Some(mut desc) = self.free.pop() else {
                out.failed += 1;
                continue;
            };
            // SAFETY: `desc` is a free frame of our UMEM (owned by user space, on no ring).
            let mut data = unsafe { self.umem.data_mut(&mut desc) };
            let mut cur = data.cursor();
            cur.set_pos(0);
            if cur.write_all(frame).is_err() {
                self.free.push(desc);
                out.failed += 1;
                continue;
            }
            ready.push(desc);
        }
        let deadline = Instant::now() + MAX_SEND_WAIT;
        let mut produced = 0;
        let mut kicks = 0;
        while kicks < MAX_KICKS {
            if produced < ready.len() {
                // libxdp reserves all or nothing: offer only what the ring has room for.
                let want = ready.len() - produced;
                let room = self.tx.nb_free(u32::try_from(want).unwrap_or(u32::MAX)) as usize;
                let take = want.min(room);
                // SAFETY: the descriptors are frames of our UMEM we own, just written.
                let n = unsafe { self.tx.produce(&ready[produced..produced + take]) };
                produced += n;
                self.in_flight += n;
            }
            // Copy mode transmits at most 32 frames per kick: kick until the ring is empty.
            let _ = self.tx.wakeup();
            kicks += 1;
            self.reclaim();
            let ring_empty = self.tx.nb_free_exact() >= self.ring_size;
            if produced == ready.len() && ring_empty {
                break;
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        // Frames the ring never took go back to the pool.
        let unsent = ready.len() - produced;
        self.free.extend_from_slice(&ready[produced..]);
        out.sent = produced;
        out.failed += unsent;
        self.top_up_fill();
        out
    }
}
