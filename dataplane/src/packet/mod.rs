//! The kernel packet path (`datapath = "packet"`): AF_PACKET raw sockets for hosts or
//! interfaces where XDP can't attach.
//!
//! - [`Socket`]: an `AF_PACKET`/`SOCK_RAW` socket bound to one interface, with a classic BPF
//!   filter ([`filter::DHCP_SERVER`]) so only IPv4 UDP to port 67 is queued, `PACKET_AUXDATA`
//!   for VLAN tags the kernel took out of the frame, our own transmissions ignored, and an
//!   optional `PACKET_FANOUT` group so several workers share an interface.
//! - [`PacketIo`]: a [`Socket`] with its receive buffers, implementing
//!   [`crate::worker::FrameIo`] with `recvmmsg`/`sendmmsg` batches.
//! - [`PortGuard`]: a UDP socket on port 67 that drops everything, so the kernel doesn't
//!   answer unicast DHCP with ICMP port unreachable.
//!
//! **Why `recvmmsg`/`sendmmsg` and not a TPACKET_V3 ring.** DHCP is a few hundred thousand
//! frames a second at most, far below what one `recvmmsg` of 64 frames per syscall carries,
//! and each request costs an fdatasync share and a lease-table update that dwarf the copy. A
//! V3 ring would save that copy but bring a shared-memory block protocol (more unsafe code) and
//! a block-retire timer that holds frames back under light load, where latency matters most
//! (a DHCP client retransmits after 4 s, and the partner's MCLT clock runs). The AF_XDP path is
//! the zero-copy one.
//!
//! **Why fanout mode `PACKET_FANOUT_LB` (round robin) with `ROLLOVER`.** The default hash mode
//! keys on the flow, and DHCP's flows are degenerate: every broadcast DISCOVER/REQUEST is
//! 0.0.0.0:68 → 255.255.255.255:67 and all of one relay's traffic is giaddr:67 → server:67, so
//! hashing would put everything on one socket. `CPU` and `QM` inherit the NIC's RSS, which is
//! degenerate for the same reason. Round robin spreads frames evenly whatever their headers;
//! the lease table is safe from every worker, so a client's DISCOVER and REQUEST may land on
//! different workers. `ROLLOVER` moves a frame to the next socket when the chosen one's
//! queue is full, so one slow worker (waiting on fdatasync) doesn't drop what others could take.
#![forbid(unsafe_code)]

pub mod filter;
mod guard;

pub use guard::{GuardError, PortGuard};

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use crate::stats::{DropReason, WorkerStats};
use crate::sys;
use crate::worker::{
    DEFAULT_SLOT_LEN, FrameIo, RxBatch, RxDesc, RxMeta, TxBatch, TxOutcome, VlanTag,
};

/// Bytes kept free in front of every receive slot, so a VLAN tag the kernel took out can be
/// put back in place.
const VLAN_HEADROOM: usize = 4;
const TPID_8021Q: u16 = 0x8100;
const TPID_8021AD: u16 = 0x88a8;
/// Receive buffer asked for by default: about 4000 full frames, enough to ride out an
/// fdatasync (≈2 ms) at several hundred thousand frames a second.
pub const DEFAULT_RCVBUF: usize = 8 << 20;

/// How a socket takes part in a `PACKET_FANOUT` group (always round robin with rollover:
/// see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fanout {
    /// Start a new group with an id the kernel picks (`PACKET_FANOUT_FLAG_UNIQUEID`); read it
    /// back with [`Socket::fanout_group`] and let the other sockets [`Fanout::Join`] it.
    New,
    /// Join the group with this id (same interface, same network namespace).
    Join(u16),
}

/// Options of [`Socket::open`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketOptions {
    pub fanout: Option<Fanout>,
    /// `SO_RCVBUF` in bytes (as root `SO_RCVBUFFORCE`, so `net.core.rmem_max` doesn't cap it).
    pub rcvbuf: usize,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            fanout: None,
            rcvbuf: DEFAULT_RCVBUF,
        }
    }
}

/// Why a packet socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("interface {name:?}: {source}")]
    NoSuchInterface { name: String, source: io::Error },
    #[error("packet socket on {name:?}: {op}: {source}")]
    Syscall {
        name: String,
        op: &'static str,
        source: io::Error,
    },
}

/// An `AF_PACKET` raw socket on one interface that receives IPv4 UDP to port 67 and sends
/// whole Ethernet frames out of that interface.
#[derive(Debug)]
pub struct Socket {
    fd: OwnedFd,
    ifname: String,
    ifindex: u32,
    fanout: Option<u16>,
}

const FANOUT_MODE: u32 = libc::PACKET_FANOUT_LB | libc::PACKET_FANOUT_FLAG_ROLLOVER;

impl Socket {
    /// Opens the socket on interface `ifname` (in the calling thread's network namespace).
    ///
    /// The filter is attached before the socket is bound to a protocol, so no frame that
    /// fails it is ever queued.
    pub fn open(ifname: &str, opts: &SocketOptions) -> Result<Socket, OpenError> {
        let syscall = |op: &'static str| {
            let name = ifname.to_owned();
            move |source| OpenError::Syscall { name, op, source }
        };
        let ifindex = sys::if_nametoindex(ifname).map_err(|source| OpenError::NoSuchInterface {
            name: ifname.to_owned(),
            source,
        })?;
        let fd = sys::packet_socket().map_err(syscall("socket"))?;
        let bfd = fd.as_fd();
        sys::attach_filter(bfd, &filter::DHCP_SERVER).map_err(syscall("SO_ATTACH_FILTER"))?;
        sys::set_int_opt(bfd, libc::SOL_PACKET, libc::PACKET_AUXDATA, 1)
            .map_err(syscall("PACKET_AUXDATA"))?;
        if let Err(e) = sys::set_int_opt(bfd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1) {
            // Kernels before 4.20: the filter refuses PACKET_OUTGOING frames anyway.
            tracing::debug!(interface = ifname, error = %e, "PACKET_IGNORE_OUTGOING unavailable");
        }
        let rcvbuf = libc::c_int::try_from(opts.rcvbuf / 2).unwrap_or(libc::c_int::MAX);
        if sys::set_int_opt(bfd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, rcvbuf).is_err() {
            // Not privileged: take what rmem_max allows.
            sys::set_int_opt(bfd, libc::SOL_SOCKET, libc::SO_RCVBUF, rcvbuf)
                .map_err(syscall("SO_RCVBUF"))?;
        }
        sys::bind_packet(bfd, ifindex, libc::ETH_P_ALL as u16).map_err(syscall("bind"))?;
        let fanout = match opts.fanout {
            None => None,
            Some(how) => Some(join_fanout(bfd, how).map_err(syscall("PACKET_FANOUT"))?),
        };
        Ok(Socket {
            fd,
            ifname: ifname.to_owned(),
            ifindex,
            fanout,
        })
    }

    /// Opens a socket on `ifname` that only sends: bound with protocol 0 and no fanout, it
    /// receives nothing. Software dispatch's sibling workers send their replies through one.
    pub fn open_tx_only(ifname: &str) -> Result<Socket, OpenError> {
        let syscall = |op: &'static str| {
            let name = ifname.to_owned();
            move |source| OpenError::Syscall { name, op, source }
        };
        let ifindex = sys::if_nametoindex(ifname).map_err(|source| OpenError::NoSuchInterface {
            name: ifname.to_owned(),
            source,
        })?;
        let fd = sys::packet_socket().map_err(syscall("socket"))?;
        sys::bind_packet(fd.as_fd(), ifindex, 0).map_err(syscall("bind"))?;
        Ok(Socket {
            fd,
            ifname: ifname.to_owned(),
            ifindex,
            fanout: None,
        })
    }

    /// Opens `n` sockets on `ifname` sharing one new fanout group, one per worker.
    pub fn open_group(
        ifname: &str,
        n: usize,
        opts: &SocketOptions,
    ) -> Result<Vec<Socket>, OpenError> {
        let mut sockets = Vec::with_capacity(n);
        let mut fanout = Fanout::New;
        for _ in 0..n {
            let s = Socket::open(
                ifname,
                &SocketOptions {
                    fanout: Some(fanout),
                    ..*opts
                },
            )?;
            if let Some(id) = s.fanout {
                fanout = Fanout::Join(id);
            }
            sockets.push(s);
        }
        Ok(sockets)
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The fanout group id, if the socket is in one.
    pub fn fanout_group(&self) -> Option<u16> {
        self.fanout
    }

    /// Frames received and dropped by the kernel (receive queue full) since the last call;
    /// reading resets the kernel's counters.
    pub fn kernel_stats(&self) -> io::Result<(u32, u32)> {
        sys::packet_statistics(self.fd.as_fd())
    }
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Joins (or creates) a fanout group and returns its id. Tries to have the group ignore
/// outgoing frames too (`PACKET_FANOUT_FLAG_IGNORE_OUTGOING`: for grouped sockets, the
/// group's hook is the one the kernel checks, not the socket's); older kernels refuse that
/// flag, and then the filter does the job.
fn join_fanout(fd: BorrowedFd<'_>, how: Fanout) -> io::Result<u16> {
    let (id, unique) = match how {
        Fanout::New => (0, libc::PACKET_FANOUT_FLAG_UNIQUEID),
        Fanout::Join(id) => (u32::from(id), 0),
    };
    let arg = |extra: u32| {
        libc::c_int::from_ne_bytes((id | ((FANOUT_MODE | unique | extra) << 16)).to_ne_bytes())
    };
    let with_ignore = sys::set_int_opt(
        fd,
        libc::SOL_PACKET,
        libc::PACKET_FANOUT,
        arg(libc::PACKET_FANOUT_FLAG_IGNORE_OUTGOING),
    );
    if with_ignore.is_err() {
        sys::set_int_opt(fd, libc::SOL_PACKET, libc::PACKET_FANOUT, arg(0))?;
    }
    // Reads back id | type << 16 | flags << 24.
    let got = sys::get_int_opt(fd, libc::SOL_PACKET, libc::PACKET_FANOUT)?;
    Ok((got & 0xffff) as u16)
}

/// A [`Socket`] with its receive arena: the kernel packet path's [`FrameIo`].
///
/// Each of the `batch` receive slots is 4 bytes of headroom + `slot_len` bytes; the kernel
/// writes a frame after the headroom, and when it had taken the VLAN tag out of the frame
/// (`TP_STATUS_VLAN_VALID`), the MAC addresses move 4 bytes forward and the tag goes back
/// in, so handlers always see the frame as it was on the wire, whichever datapath it took.
#[derive(Debug)]
pub struct PacketIo {
    socket: Socket,
    arena: Box<[u8]>,
    stride: usize,
    batch: usize,
    metas: Vec<sys::RecvMeta>,
    descs: Vec<RxDesc>,
    recv_calls: u64,
}

/// How often (in receive calls) the kernel's drop counter is read.
const KERNEL_STATS_EVERY: u64 = 256;
/// How long a send waits for room in the socket's send buffer, at most, per batch.
const SEND_WAIT: Duration = Duration::from_millis(5);
const SEND_WAITS: u32 = 3;

impl PacketIo {
    /// Receive batches of up to `batch` frames (1..=[`sys::MAX_BATCH`]) of up to
    /// [`DEFAULT_SLOT_LEN`] bytes.
    pub fn new(socket: Socket, batch: usize) -> PacketIo {
        PacketIo::with_slot_len(socket, batch, DEFAULT_SLOT_LEN)
    }

    /// As [`PacketIo::new`], with `slot_len` bytes per frame (at least 64).
    pub fn with_slot_len(socket: Socket, batch: usize, slot_len: usize) -> PacketIo {
        let batch = batch.clamp(1, sys::MAX_BATCH);
        let stride = VLAN_HEADROOM + slot_len.max(64);
        PacketIo {
            socket,
            arena: vec![0; batch * stride].into_boxed_slice(),
            stride,
            batch,
            metas: vec![sys::RecvMeta::default(); batch],
            descs: Vec::with_capacity(batch),
            recv_calls: 0,
        }
    }

    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    /// Adds the kernel's queue-full drops since the last look to `stats`.
    fn collect_kernel_drops(&self, stats: &WorkerStats) {
        if let Ok((_, drops)) = self.socket.kernel_stats()
            && drops > 0
        {
            stats.add_drops(DropReason::RxQueueFull, u64::from(drops));
        }
    }
}

/// The outermost tag of a frame that still carries it in its bytes.
fn inband_vlan(frame: &[u8]) -> Option<VlanTag> {
    let tpid = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let tci = u16::from_be_bytes([*frame.get(14)?, *frame.get(15)?]);
    matches!(tpid, TPID_8021Q | TPID_8021AD).then_some(VlanTag { tpid, tci })
}

impl FrameIo for PacketIo {
    fn batch_size(&self) -> usize {
        self.batch
    }

    fn recv(&mut self, stats: &WorkerStats) -> io::Result<RxBatch<'_>> {
        self.recv_calls = self.recv_calls.wrapping_add(1);
        if self.recv_calls.is_multiple_of(KERNEL_STATS_EVERY) {
            self.collect_kernel_drops(stats);
        }
        self.descs.clear();
        let bufs = self
            .arena
            .chunks_mut(self.stride)
            .map(|slot| &mut slot[VLAN_HEADROOM..]);
        let n = sys::recv_batch(self.socket.fd.as_fd(), bufs, &mut self.metas)?;
        for (i, m) in self.metas.iter().take(n).enumerate() {
            if m.truncated {
                stats.add_drop(DropReason::Truncated);
                continue;
            }
            let base = i * self.stride;
            let status = m.aux.map_or(0, |a| a.status);
            let stripped = m
                .aux
                .filter(|_| status & libc::TP_STATUS_VLAN_VALID != 0 && m.len >= 12);
            let (offset, len, vlan) = match stripped {
                Some(aux) => {
                    let tpid = if status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                        aux.vlan_tpid
                    } else {
                        TPID_8021Q
                    };
                    let slot = &mut self.arena[base..base + self.stride];
                    slot.copy_within(VLAN_HEADROOM..VLAN_HEADROOM + 12, 0);
                    slot[12..14].copy_from_slice(&tpid.to_be_bytes());
                    slot[14..16].copy_from_slice(&aux.vlan_tci.to_be_bytes());
                    let tag = VlanTag {
                        tpid,
                        tci: aux.vlan_tci,
                    };
                    (base, m.len + VLAN_HEADROOM, Some(tag))
                }
                None => {
                    let start = base + VLAN_HEADROOM;
                    (start, m.len, inband_vlan(&self.arena[start..start + m.len]))
                }
            };
            self.descs.push(RxDesc {
                offset,
                len,
                meta: RxMeta {
                    ifindex: if m.ifindex == 0 {
                        self.socket.ifindex
                    } else {
                        m.ifindex
                    },
                    vlan,
                    csum_not_ready: status & libc::TP_STATUS_CSUMNOTREADY != 0,
                },
            });
        }
        Ok(RxBatch::new(&self.arena, &self.descs))
    }

    fn wait(
        &mut self,
        timeout: Duration,
        also: Option<BorrowedFd<'_>>,
        stats: &WorkerStats,
    ) -> io::Result<bool> {
        let ready = sys::poll_readable(self.socket.fd.as_fd(), also, timeout)?;
        if !ready {
            // Idle: a good moment to pick up the kernel's drop count.
            self.collect_kernel_drops(stats);
        }
        Ok(ready)
    }

    fn send(&mut self, tx: &TxBatch) -> TxOutcome {
        let fd = self.socket.fd.as_fd();
        let total = tx.len();
        let mut out = TxOutcome::default();
        let mut waits = 0;
        while out.sent + out.failed < total {
            let done = out.sent + out.failed;
            match sys::send_batch(fd, tx.frames().skip(done)) {
                Ok(0) => {
                    out.failed = total - out.sent;
                }
                Ok(k) => out.sent += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && waits < SEND_WAITS => {
                    waits += 1;
                    let _ = sys::poll_one(fd, sys::Ready::Writable, SEND_WAIT);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Still no room after waiting: the rest of the batch is lost.
                    out.failed = total - out.sent;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // This frame failed (too long, interface down, queue full): skip it.
                    tracing::debug!(interface = %self.socket.ifname, error = %e, "frame not sent");
                    out.failed += 1;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inband_tag_is_read_from_the_frame() {
        let mut f = vec![0u8; 20];
        f[12..16].copy_from_slice(&[0x81, 0x00, 0x20, 0x64]);
        assert_eq!(
            inband_vlan(&f),
            Some(VlanTag {
                tpid: 0x8100,
                tci: 0x2064
            })
        );
        assert_eq!(inband_vlan(&f).map(VlanTag::vid), Some(100));
        assert_eq!(inband_vlan(&f).map(VlanTag::pcp), Some(1));
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(inband_vlan(&f), None);
        assert_eq!(inband_vlan(&f[..14]), None);
    }

    #[test]
    fn unknown_interface_is_reported_by_name() {
        let err = Socket::open("tdm-pkt-none0", &SocketOptions::default())
            .expect_err("no such interface");
        assert!(
            matches!(err, OpenError::NoSuchInterface { ref name, .. } if name == "tdm-pkt-none0")
        );
    }
}
