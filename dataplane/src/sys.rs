//! The one module through which the packet path makes system calls (aya's `sys` pattern):
//! the packet sockets, the interface ioctls (`SIOCGIF*`, `SIOCETHTOOL`), the rtnetlink
//! socket of [`crate::xdp::netlink`], `setns`, and the one kernel-ABI value type aya moves as
//! raw bytes (`LbMapValue`, `RateMapValue`).
//!
//! Everything above this module is safe code over owned file descriptors; everything here is a
//! thin wrapper that turns one syscall into an `io::Result`. (The AF_XDP rings and UMEM are
//! the other unsafe code of the crate: `xdp::xsk` and `xdp::umem`, see ARCHITECTURE.md.)
//!
//! Invariants every function here keeps:
//! - File descriptors come in as [`BorrowedFd`] (open for the whole call) and go out as
//!   [`OwnedFd`] (closed exactly once, on drop).
//! - Memory handed to the kernel is borrowed from safe Rust for the duration of the call only:
//!   the `iovec`, `msghdr`, address and control buffers live on this function's stack and
//!   point into slices the caller lent us; the kernel writes at most `iov_len`, `msg_namelen`
//!   and `msg_controllen` bytes into them and keeps no reference after returning.
//! - Nothing the kernel wrote is trusted for its length: every length it reports is clamped to
//!   the buffer it was written into before it is used to slice.
//! - No function here allocates on the heap; the batch functions use fixed stack arrays of
//!   [`MAX_BATCH`] entries.

use std::ffi::CString;
use std::io;
use std::mem::{self, MaybeUninit};
use std::net::SocketAddrV4;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// The most frames one [`recv_batch`] or [`send_batch`] call moves.
pub const MAX_BATCH: usize = 64;

/// One classic BPF instruction (`struct sock_filter`).
pub type SockFilter = libc::sock_filter;

/// `-1` from a syscall becomes `errno`.
fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Wraps a descriptor a successful `socket(2)` just returned.
fn owned(ret: libc::c_int) -> io::Result<OwnedFd> {
    let fd = cvt(ret)?;
    // SAFETY: `fd` was just returned by a successful socket(2); nothing else owns it, so
    // handing sole ownership to `OwnedFd` (which closes it once, on drop) is sound.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `size_of::<T>()` as a `socklen_t`; every type passed here is a small kernel struct.
fn socklen<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(mem::size_of::<T>()).unwrap_or(libc::socklen_t::MAX)
}

/// An `AF_PACKET`/`SOCK_RAW` socket with protocol 0: it receives nothing until
/// [`bind_packet`] names a protocol, so a filter attached before that sees every frame.
pub fn packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers.
    owned(unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })
}

/// An `AF_INET`/`SOCK_DGRAM` socket (nonblocking, close-on-exec).
pub fn udp_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers.
    owned(unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::IPPROTO_UDP,
        )
    })
}

/// The index of the interface called `name` in the calling thread's network namespace.
pub fn if_nametoindex(name: &str) -> io::Result<u32> {
    let cname = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `cname` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if index == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(index)
    }
}

/// An `ifreq` naming `name`, for the `SIOCGIF*` ioctls.
fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: `ifreq` is plain old data (a name array and a union of plain data): all-zero
    // bytes are a valid value.
    let mut req: libc::ifreq = unsafe { mem::zeroed() };
    for (dst, &src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    Ok(req)
}

/// `ioctl(fd, request, &mut req)` for one of the `SIOCGIF*` requests on an `AF_INET` socket.
fn ifreq_ioctl(request: libc::Ioctl, req: &mut libc::ifreq) -> io::Result<()> {
    let fd = udp_socket()?;
    // SAFETY: `req` is a live, initialised `ifreq` for the whole call; the SIOCGIF* requests
    // named by our callers read `ifr_name` and write at most `size_of::<ifreq>()` bytes into it.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), request, req as *mut libc::ifreq) }).map(drop)
}

/// `struct ethtool_channels` (`linux/ethtool.h`): a driver's rx, tx and combined channels.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EthtoolChannels {
    pub cmd: u32,
    pub max_rx: u32,
    pub max_tx: u32,
    pub max_other: u32,
    pub max_combined: u32,
    pub rx_count: u32,
    pub tx_count: u32,
    pub other_count: u32,
    pub combined_count: u32,
}

const ETHTOOL_GCHANNELS: u32 = 0x3c;
const SIOCETHTOOL: libc::Ioctl = 0x8946;

/// The channels of interface `name` (`ETHTOOL_GCHANNELS`, what `ethtool -l` shows).
pub fn ethtool_channels(name: &str) -> io::Result<EthtoolChannels> {
    let mut req = ifreq(name)?;
    let mut ch = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..EthtoolChannels::default()
    };
    req.ifr_ifru.ifru_data = (&raw mut ch).cast::<libc::c_char>();
    let fd = udp_socket()?;
    // SAFETY: `req` names the interface and points `ifru_data` at `ch`, a live, initialised
    // `struct ethtool_channels` the kernel fills for ETHTOOL_GCHANNELS; both outlive the call.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), SIOCETHTOOL, &raw mut req) })?;
    Ok(ch)
}

/// The Ethernet address of interface `name` (`SIOCGIFHWADDR`).
pub fn if_hwaddr(name: &str) -> io::Result<[u8; 6]> {
    let mut req = ifreq(name)?;
    ifreq_ioctl(libc::SIOCGIFHWADDR, &mut req)?;
    // SAFETY: a successful SIOCGIFHWADDR fills the `ifru_hwaddr` member of the union.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (dst, &src) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *dst = src as u8;
    }
    Ok(mac)
}

/// The primary IPv4 address of interface `name` (`SIOCGIFADDR`), `None` if it has none.
pub fn if_ipv4(name: &str) -> io::Result<Option<std::net::Ipv4Addr>> {
    let mut req = ifreq(name)?;
    match ifreq_ioctl(libc::SIOCGIFADDR, &mut req) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => return Ok(None),
        Err(e) => return Err(e),
    }
    // SAFETY: a successful SIOCGIFADDR on an AF_INET socket fills `ifru_addr` with a
    // `sockaddr_in`, which has the same size as `sockaddr` (16 bytes).
    let sin: libc::sockaddr_in = unsafe { mem::transmute(req.ifr_ifru.ifru_addr) };
    Ok(Some(std::net::Ipv4Addr::from(u32::from_be(
        sin.sin_addr.s_addr,
    ))))
}

/// `setsockopt(fd, level, name, &value, sizeof value)` for any plain-data `T`.
fn setsockopt<T>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` points to a live `T` of `size_of::<T>()` bytes for the whole call; the
    // kernel only reads it.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            socklen::<T>(),
        )
    })
    .map(drop)
}

/// Sets an `int`-valued socket option.
pub fn set_int_opt(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    setsockopt(fd, level, name, &value)
}

/// Reads an `int`-valued socket option.
pub fn get_int_opt(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = socklen::<libc::c_int>();
    // SAFETY: `value` and `len` are live locals; the kernel writes at most `len` (4) bytes
    // into `value` and updates `len`.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw mut value).cast(),
            &raw mut len,
        )
    })?;
    Ok(value)
}

/// Sets the process's file mode creation mask (`umask(2)`), returning the previous one.
pub fn set_umask(mask: u32) -> u32 {
    // SAFETY: umask(2) takes no pointers and cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

/// The capabilities a tandemd that gave up root keeps (capabilities(7) numbers): the relay and
/// failover ports below 1024 (`CAP_NET_BIND_SERVICE`), XDP attach and netlink
/// (`CAP_NET_ADMIN`), AF_PACKET and AF_XDP sockets (`CAP_NET_RAW`), AF_XDP's pinned UMEM
/// (`CAP_IPC_LOCK`), the XDP program and its maps (`CAP_PERFMON`, `CAP_BPF`). The packaged
/// systemd unit grants the same set.
pub const KEPT_CAPABILITIES: [u32; 6] = [10, 12, 13, 14, 38, 39];

/// The calling process's effective uid.
pub fn euid() -> u32 {
    // SAFETY: geteuid(2) takes nothing and cannot fail.
    unsafe { libc::geteuid() }
}

/// The uid and primary gid of user `name`, `None` if there is no such user.
pub fn lookup_user(name: &str) -> io::Result<Option<(u32, u32)>> {
    let cname =
        std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: `passwd` is plain old data; getpwnam_r fills it (its pointers into `buf`).
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is to a live local or to `buf`, whose length is passed; the
    // results are read only after the call returns, and only the plain ids are kept.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &raw mut pw,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &raw mut found,
        )
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok((!found.is_null()).then_some((pw.pw_uid, pw.pw_gid)))
}

/// `struct __user_cap_header_struct` (`linux/capability.h`).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`: one of the two 32-bit halves of the sets.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets in two halves.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `prctl(option, arg2, 0, 0, 0)`.
fn prctl(option: libc::c_int, arg2: libc::c_ulong) -> io::Result<()> {
    // SAFETY: the options used here take integers only, no pointers.
    cvt(unsafe {
        libc::prctl(
            option,
            arg2,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    })?;
    Ok(())
}

/// Gives up root for `uid`/`gid` (no supplementary groups), keeping `keep` (capability
/// numbers) in the permitted, effective, inheritable and ambient sets and nothing else in the
/// bounding set, with no-new-privileges set: what systemd's `User=`, `AmbientCapabilities=`,
/// `CapabilityBoundingSet=` and `NoNewPrivileges=` do. Call it before any thread is spawned:
/// capabilities are per thread, and threads copy the caller's.
pub fn drop_privileges(uid: u32, gid: u32, keep: &[u32]) -> io::Result<()> {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    for cap in (0..=last).filter(|c| !keep.contains(c)) {
        prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap))?;
    }
    prctl(libc::PR_SET_KEEPCAPS, 1)?;
    // SAFETY: a null list of length 0 clears the supplementary groups.
    cvt(unsafe { libc::setgroups(0, std::ptr::null()) })?;
    // SAFETY: setresgid/setresuid take integers only.
    cvt(unsafe { libc::setresgid(gid, gid, gid) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::setresuid(uid, uid, uid) })?;
    let mut data = [CapData::default(); 2];
    for &cap in keep {
        let half = &mut data[(cap / 32) as usize % 2];
        let bit = 1u32 << (cap % 32);
        half.effective |= bit;
        half.permitted |= bit;
        half.inheritable |= bit;
    }
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: `header` and `data` are live, correctly laid out (`repr(C)`) for the whole call;
    // version 3 reads exactly two `CapData`.
    cvt(unsafe { libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) } as libc::c_int)?;
    for &cap in keep {
        prctl2(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
            cap,
        )?;
    }
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1)?;
    Ok(())
}

/// `prctl(option, arg2, arg3, 0, 0)`.
fn prctl2(option: libc::c_int, arg2: libc::c_ulong, arg3: u32) -> io::Result<()> {
    // SAFETY: PR_CAP_AMBIENT takes integers only, no pointers.
    cvt(unsafe {
        libc::prctl(
            option,
            arg2,
            libc::c_ulong::from(arg3),
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    })?;
    Ok(())
}

/// The credentials of a Unix socket's peer as of its `connect` (`SO_PEERCRED`): pid, uid, gid.
pub fn peer_cred(fd: BorrowedFd<'_>) -> io::Result<(u32, u32, u32)> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = socklen::<libc::ucred>();
    // SAFETY: `cred` and `len` are live locals; the kernel writes at most `len` bytes (one
    // `ucred`) into `cred` and updates `len`.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &raw mut len,
        )
    })?;
    Ok((u32::try_from(cred.pid).unwrap_or(0), cred.uid, cred.gid))
}

/// `SO_BINDTODEVICE`: the socket only sees traffic that arrived on interface `name`.
pub fn bind_to_device(fd: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    let bytes = name.as_bytes();
    let len = libc::socklen_t::try_from(bytes.len())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `bytes` is a live slice of `len` bytes for the call; the kernel copies at most
    // IFNAMSIZ of them and does not need NUL termination when given the length.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            bytes.as_ptr().cast(),
            len,
        )
    })
    .map(drop)
}

/// `SO_ATTACH_FILTER`: attaches a classic BPF program; the kernel checks and copies it.
pub fn attach_filter(fd: BorrowedFd<'_>, program: &[SockFilter]) -> io::Result<()> {
    let len =
        u16::try_from(program.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let fprog = libc::sock_fprog {
        len,
        // The kernel only reads the program; the field is `*mut` for C's sake.
        filter: program.as_ptr().cast_mut(),
    };
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
}

/// Binds a packet socket to `ifindex`, receiving `protocol` (host order, e.g. `ETH_P_ALL`).
pub fn bind_packet(fd: BorrowedFd<'_>, ifindex: u32, protocol: u16) -> io::Result<()> {
    let ifindex =
        libc::c_int::try_from(ifindex).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let addr = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as libc::c_ushort,
        sll_protocol: protocol.to_be(),
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    // SAFETY: `addr` is a live, fully initialised sockaddr_ll and the length passed is its size.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const addr).cast(),
            socklen::<libc::sockaddr_ll>(),
        )
    })
    .map(drop)
}

/// Binds an `AF_INET` socket to `addr`.
pub fn bind_ipv4(fd: BorrowedFd<'_>, addr: SocketAddrV4) -> io::Result<()> {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `sin` is a live, fully initialised sockaddr_in and the length passed is its size.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sin).cast(),
            socklen::<libc::sockaddr_in>(),
        )
    })
    .map(drop)
}

/// `PACKET_STATISTICS`: frames the socket received and dropped (queue full) since the last
/// call. Reading resets the kernel's counters.
pub fn packet_statistics(fd: BorrowedFd<'_>) -> io::Result<(u32, u32)> {
    let mut stats = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = socklen::<libc::tpacket_stats>();
    // SAFETY: `stats` and `len` are live locals; the kernel writes at most `len` bytes.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&raw mut stats).cast(),
            &raw mut len,
        )
    })?;
    Ok((stats.tp_packets, stats.tp_drops))
}

/// What [`poll_one`] waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ready {
    Readable,
    Writable,
}

/// Waits up to `timeout` for `fd` to become ready. `Ok(false)` on timeout or `EINTR`.
pub fn poll_one(fd: BorrowedFd<'_>, ready: Ready, timeout: Duration) -> io::Result<bool> {
    let events = match ready {
        Ready::Readable => libc::POLLIN,
        Ready::Writable => libc::POLLOUT,
    };
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    // Round up so a sub-millisecond timeout still sleeps instead of spinning.
    let ms = timeout.as_micros().div_ceil(1000);
    let ms = libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX);
    // SAFETY: `pfd` is one live pollfd and we pass nfds = 1.
    match cvt(unsafe { libc::poll(&raw mut pfd, 1, ms) }) {
        Ok(n) => Ok(n > 0),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
        Err(e) => Err(e),
    }
}

/// Waits up to `timeout` for `fd` to become readable, or `also` if given: whether either
/// is. `Ok(false)` on timeout or `EINTR`.
pub fn poll_readable(
    fd: BorrowedFd<'_>,
    also: Option<BorrowedFd<'_>>,
    timeout: Duration,
) -> io::Result<bool> {
    let Some(also) = also else {
        return poll_one(fd, Ready::Readable, timeout);
    };
    let mut pfds = [fd, also].map(|fd| libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    });
    let ms = timeout.as_micros().div_ceil(1000);
    let ms = libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX);
    // SAFETY: `pfds` is an array of two live pollfds and we pass nfds = 2.
    match cvt(unsafe { libc::poll(pfds.as_mut_ptr(), 2, ms) }) {
        Ok(n) => Ok(n > 0),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
        Err(e) => Err(e),
    }
}

/// A non-blocking `eventfd`: one thread [`signal`](EventFd::signal)s, another polls it
/// readable and [`drain`](EventFd::drain)s it.
#[derive(Debug)]
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    pub fn new() -> io::Result<Self> {
        // SAFETY: eventfd takes no pointers; the result is checked by `owned`.
        let fd = owned(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        Ok(EventFd { fd })
    }

    /// Adds one to the counter: the fd polls readable.
    pub fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of a live local. It fails only when the counter would
        // overflow (2^64 - 2 unread signals): then it is readable already, which is all a
        // signal is for.
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), (&raw const one).cast(), 8) };
    }

    /// Reads and resets the counter: the signals since the last drain (0 if none).
    pub fn drain(&self) -> u64 {
        let mut n: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live local.
        let got = unsafe { libc::read(self.fd.as_raw_fd(), (&raw mut n).cast(), 8) };
        if got == 8 { n } else { 0 }
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// `struct tpacket_auxdata`, the fields the packet path reads (`PACKET_AUXDATA`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuxData {
    /// `TP_STATUS_*` bits.
    pub status: u32,
    /// The frame's length on the wire.
    pub len: u32,
    /// The 802.1Q TCI the kernel (or NIC) took out of the frame, if `TP_STATUS_VLAN_VALID`.
    pub vlan_tci: u16,
    /// Its TPID, if `TP_STATUS_VLAN_TPID_VALID`.
    pub vlan_tpid: u16,
}

/// What the kernel said about one received frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecvMeta {
    /// Bytes written into the buffer (never more than its length).
    pub len: usize,
    /// The frame did not fit the buffer (`MSG_TRUNC`).
    pub truncated: bool,
    /// `sll_ifindex`: the interface it arrived on.
    pub ifindex: u32,
    /// `sll_pkttype` (`PACKET_HOST`, `PACKET_BROADCAST`, ...).
    pub pkttype: u8,
    /// `PACKET_AUXDATA`, when the socket asked for it.
    pub aux: Option<AuxData>,
}

/// Room for one `cmsghdr` + `tpacket_auxdata` (CMSG_SPACE(20) = 40 on LP64), u64-aligned as
/// `cmsghdr` requires.
type CmsgBuf = [u64; 8];

/// `recvmmsg(2)` without blocking: fills up to [`MAX_BATCH`] of the buffers `bufs` yields,
/// one frame each, and describes frame `i` in `out[i]`. Returns how many arrived (`Ok(0)`
/// when none were waiting).
pub fn recv_batch<'a>(
    fd: BorrowedFd<'_>,
    bufs: impl IntoIterator<Item = &'a mut [u8]>,
    out: &mut [RecvMeta],
) -> io::Result<usize> {
    // SAFETY: all four are arrays of C structs made only of integers and raw pointers, for
    // which all-zero bytes are a valid (null / empty) value.
    let mut iov: [libc::iovec; MAX_BATCH] = unsafe { mem::zeroed() };
    // SAFETY: as above.
    let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { mem::zeroed() };
    // SAFETY: as above.
    let mut addrs: [libc::sockaddr_ll; MAX_BATCH] = unsafe { mem::zeroed() };
    let mut cmsgs: [CmsgBuf; MAX_BATCH] = [[0; 8]; MAX_BATCH];

    let mut n = 0;
    for buf in bufs.into_iter().take(out.len().min(MAX_BATCH)) {
        iov[n] = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        n += 1;
    }
    if n == 0 {
        return Ok(0);
    }
    for i in 0..n {
        let h = &mut hdrs[i].msg_hdr;
        h.msg_name = (&raw mut addrs[i]).cast();
        h.msg_namelen = socklen::<libc::sockaddr_ll>();
        h.msg_iov = &raw mut iov[i];
        h.msg_iovlen = 1;
        h.msg_control = (&raw mut cmsgs[i]).cast();
        h.msg_controllen = mem::size_of::<CmsgBuf>();
    }
    let vlen = libc::c_uint::try_from(n).unwrap_or(0);
    // SAFETY: `hdrs[..n]` are initialised msghdrs whose name, iov and control pointers point
    // at live stack arrays (or at the caller's buffers, borrowed mutably for this call) with
    // the lengths given; the kernel writes within those lengths and keeps no pointer.
    let got = match cvt(unsafe {
        libc::recvmmsg(
            fd.as_raw_fd(),
            hdrs.as_mut_ptr(),
            vlen,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    }) {
        Ok(got) => usize::try_from(got).unwrap_or(0).min(n),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
        Err(e) => return Err(e),
    };
    for i in 0..got {
        let h = &hdrs[i].msg_hdr;
        let written = usize::try_from(hdrs[i].msg_len).unwrap_or(usize::MAX);
        let addr = &addrs[i];
        out[i] = RecvMeta {
            len: written.min(iov[i].iov_len),
            truncated: h.msg_flags & libc::MSG_TRUNC != 0 || written > iov[i].iov_len,
            ifindex: u32::try_from(addr.sll_ifindex).unwrap_or(0),
            pkttype: addr.sll_pkttype,
            aux: read_auxdata(h),
        };
    }
    Ok(got)
}

/// The `PACKET_AUXDATA` control message of a received `msghdr`, if there is one.
fn read_auxdata(h: &libc::msghdr) -> Option<AuxData> {
    // SAFETY: `h` is a msghdr the kernel just filled; its msg_control/msg_controllen describe
    // our live, u64-aligned control buffer and the kernel set msg_controllen to the bytes
    // it wrote, so CMSG_FIRSTHDR/CMSG_NXTHDR stay inside it.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(h) };
    let want = mem::size_of::<libc::tpacket_auxdata>();
    while !cmsg.is_null() {
        // SAFETY: non-null pointers from CMSG_FIRSTHDR/NXTHDR point at a whole cmsghdr
        // inside the control buffer.
        let c = unsafe { &*cmsg };
        let data_len = c.cmsg_len.saturating_sub(cmsg_len_of(0));
        if c.cmsg_level == libc::SOL_PACKET
            && c.cmsg_type == libc::PACKET_AUXDATA
            && data_len >= want
        {
            let mut aux = MaybeUninit::<libc::tpacket_auxdata>::uninit();
            // SAFETY: the cmsg holds at least `want` data bytes (checked above) inside the
            // control buffer; we copy them byte-wise (no alignment needed) into `aux`, which
            // is then fully initialised (tpacket_auxdata is all integers).
            let aux = unsafe {
                std::ptr::copy_nonoverlapping(
                    libc::CMSG_DATA(cmsg),
                    aux.as_mut_ptr().cast::<u8>(),
                    want,
                );
                aux.assume_init()
            };
            return Some(AuxData {
                status: aux.tp_status,
                len: aux.tp_len,
                vlan_tci: aux.tp_vlan_tci,
                vlan_tpid: aux.tp_vlan_tpid,
            });
        }
        // SAFETY: as for CMSG_FIRSTHDR; NXTHDR returns null past the end of the buffer.
        cmsg = unsafe { libc::CMSG_NXTHDR(h, cmsg) };
    }
    None
}

/// `CMSG_LEN(n)` as a `usize`.
fn cmsg_len_of(n: u32) -> usize {
    // SAFETY: CMSG_LEN is pure arithmetic on its argument.
    usize::try_from(unsafe { libc::CMSG_LEN(n) }).unwrap_or(usize::MAX)
}

/// `sendmmsg(2)` without blocking: sends up to [`MAX_BATCH`] of `frames`, each a whole
/// datagram (for a bound packet socket, a whole Ethernet frame out of the bound interface).
/// Returns how many the kernel took, in order; `Err` when the first one failed (the errno
/// belongs to that frame, or `WouldBlock` when the socket's send buffer is full).
pub fn send_batch<'a>(
    fd: BorrowedFd<'_>,
    frames: impl IntoIterator<Item = &'a [u8]>,
) -> io::Result<usize> {
    // SAFETY: arrays of C structs made only of integers and raw pointers, for which all-zero
    // bytes are a valid (null / empty) value.
    let mut iov: [libc::iovec; MAX_BATCH] = unsafe { mem::zeroed() };
    // SAFETY: as above.
    let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { mem::zeroed() };
    let mut n = 0;
    for frame in frames.into_iter().take(MAX_BATCH) {
        iov[n] = libc::iovec {
            // The kernel only reads from send buffers; the field is `*mut` for C's sake.
            iov_base: frame.as_ptr().cast_mut().cast(),
            iov_len: frame.len(),
        };
        n += 1;
    }
    if n == 0 {
        return Ok(0);
    }
    for i in 0..n {
        hdrs[i].msg_hdr.msg_iov = &raw mut iov[i];
        hdrs[i].msg_hdr.msg_iovlen = 1;
    }
    let vlen = libc::c_uint::try_from(n).unwrap_or(0);
    // SAFETY: `hdrs[..n]` are initialised msghdrs without name or control, whose single
    // iovec points at a frame borrowed from the caller for this call; the kernel only reads
    // the frames and writes `msg_len` into `hdrs`.
    let sent = cvt(unsafe {
        libc::sendmmsg(fd.as_raw_fd(), hdrs.as_mut_ptr(), vlen, libc::MSG_DONTWAIT)
    })?;
    Ok(usize::try_from(sent).unwrap_or(0).min(n))
}

/// An `AF_NETLINK`/`NETLINK_ROUTE` socket (blocking, close-on-exec) that asks for extended
/// acknowledgements (`NETLINK_EXT_ACK`) where the kernel has them.
pub fn netlink_route_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers.
    let fd = owned(unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    })?;
    // Failure is harmless: errors then come without the kernel's explanation.
    let _ = set_int_opt(fd.as_fd(), libc::SOL_NETLINK, libc::NETLINK_EXT_ACK, 1);
    Ok(fd)
}

/// Sends `msg` as one datagram to the kernel (netlink pid 0) over a netlink socket.
pub fn netlink_send_to_kernel(fd: BorrowedFd<'_>, msg: &[u8]) -> io::Result<()> {
    // SAFETY: `sockaddr_nl` is plain data; all-zero is valid (pid 0, groups 0: the kernel).
    let mut kernel: libc::sockaddr_nl = unsafe { mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: `msg` and `kernel` are live for the call and the lengths passed are theirs; the
    // kernel only reads them.
    let sent = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&raw const kernel).cast(),
            socklen::<libc::sockaddr_nl>(),
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `recv(2)`, blocking: one datagram into `buf`. Returns the bytes written (never more than
/// `buf.len()`).
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is live and writable for its whole length, which is what we pass; the
    // kernel keeps no pointer after the call.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(n).unwrap_or(0).min(buf.len()))
}

/// An `LB_CONFIG` map value as aya reads and writes it: raw bytes of a [`ebpf::LbConfig`].
#[derive(Clone, Copy, Debug)]
#[repr(transparent)]
pub(crate) struct LbMapValue(pub(crate) ebpf::LbConfig);

// SAFETY: `LbConfig` is `#[repr(C)]`, `Copy`, made of `u32`s and a byte array with no padding
// (4 × 4 + 32 bytes), and every bit pattern is a valid value: it may be read from and
// written to the map as bytes.
unsafe impl aya::Pod for LbMapValue {}

/// A `RATE_CONFIG` map value as aya reads and writes it: raw bytes of a [`ebpf::RateConfig`].
#[derive(Clone, Copy, Debug)]
#[repr(transparent)]
pub(crate) struct RateMapValue(pub(crate) ebpf::RateConfig);

// SAFETY: `RateConfig` is `#[repr(C)]`, `Copy`, six `u32`s with no padding, and every bit
// pattern is a valid value: it may be read from and written to the map as bytes.
unsafe impl aya::Pod for RateMapValue {}

/// Moves the calling thread into the network namespace `ns` refers to (an open
/// `/run/netns/NAME` or `/proc/PID/ns/net`). Sockets opened afterwards belong to that
/// namespace for life, whichever thread uses them later.
pub fn set_thread_netns(ns: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: setns(2) takes a descriptor and a flag, no pointers; CLONE_NEWNET only changes
    // the calling thread's network namespace.
    cvt(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) }).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn recv_and_send_batches_roundtrip_over_a_socketpair() {
        let (a, b) = UnixDatagram::pair().expect("socketpair");
        let frames: [&[u8]; 3] = [b"one", b"second", b"third frame"];
        let sent = send_batch(a.as_fd(), frames).expect("sendmmsg");
        assert_eq!(sent, 3);

        let mut arena = [0u8; 3 * 8];
        let mut out = [RecvMeta::default(); 4];
        let got = recv_batch(b.as_fd(), arena.chunks_mut(8), &mut out).expect("recvmmsg");
        assert_eq!(got, 3);
        assert_eq!(&arena[..3], b"one");
        assert_eq!(out[0].len, 3);
        assert!(!out[0].truncated);
        assert_eq!(&arena[8..14], b"second");
        // 11 bytes into an 8-byte buffer: truncated, and the length is clamped.
        assert!(out[2].truncated);
        assert_eq!(out[2].len, 8);
        assert_eq!(&arena[16..24], b"third fr");
        assert_eq!(out[0].aux, None);

        // Nothing left: nonblocking recv returns 0 and poll times out.
        assert_eq!(
            recv_batch(b.as_fd(), arena.chunks_mut(8), &mut out).expect("empty"),
            0
        );
        assert!(!poll_one(b.as_fd(), Ready::Readable, Duration::from_millis(1)).expect("poll"));
        assert!(poll_one(a.as_fd(), Ready::Writable, Duration::from_millis(1)).expect("poll"));
    }

    #[test]
    fn unknown_interface_is_an_error() {
        assert!(if_nametoindex("tdm-pkt-nonexistent0").is_err());
        assert!(if_nametoindex("lo").is_ok_and(|i| i > 0));
        assert!(if_nametoindex("bad\0name").is_err());
    }
}
