//! The XDP program attached to an interface through rtnetlink (`IFLA_XDP`): which one it is,
//! and detaching it. tandem attaches through a `bpf_link`, which the kernel removes with the
//! process; a program attached through netlink (`ip link set … xdp`, an older tandem, a tool)
//! stays until someone detaches it, and blocks ours.
//!
//! The messages are built and read here; the socket calls are [`crate::sys`]'s.
#![forbid(unsafe_code)]

use std::io;
use std::os::fd::AsFd;

use crate::sys;

const IFLA_XDP: u16 = 43;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_FLAGS: u16 = 3;
const IFLA_XDP_PROG_ID: u16 = 4;
const NLA_F_NESTED: u16 = 1 << 15;
const NLA_TYPE_MASK: u16 = 0x3fff;
/// `XDP_ATTACHED_*`.
const ATTACHED_DRV: u8 = 1;
const ATTACHED_SKB: u8 = 2;
const XDP_FLAGS_SKB_MODE: u32 = 2;
const XDP_FLAGS_DRV_MODE: u32 = 4;

/// The program netlink reports on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttachedProgram {
    /// The kernel's program id.
    pub id: u32,
    /// `XDP_ATTACHED_*`: 1 driver, 2 generic, 3 offloaded, 4 several.
    pub mode: u8,
}

/// One request: header, `ifinfomsg` for `ifindex`, then `attrs` (already encoded).
fn request(kind: u16, flags: u16, ifindex: u32, attrs: &[u8]) -> Vec<u8> {
    let len = 16 + 16 + attrs.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel's
    // ifinfomsg: family, pad, type, index, flags, change
    m.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    m.extend_from_slice(&i32::try_from(ifindex).unwrap_or(0).to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(attrs);
    m
}

fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
    let len = 4 + payload.len();
    let mut a = Vec::with_capacity(len.next_multiple_of(4));
    a.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_ne_bytes());
    a.extend_from_slice(&kind.to_ne_bytes());
    a.extend_from_slice(payload);
    a.resize(len.next_multiple_of(4), 0);
    a
}

/// Sends `msg` and reads one reply datagram.
fn transact(msg: &[u8]) -> io::Result<Vec<u8>> {
    let fd = sys::netlink_route_socket()?;
    sys::netlink_send_to_kernel(fd.as_fd(), msg)?;
    let mut buf = vec![0u8; 32 * 1024];
    let n = sys::recv(fd.as_fd(), &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Walks the attributes in `b`: `(type without flags, payload)`.
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16_at(b, 0)?);
        let kind = u16_at(b, 2)? & NLA_TYPE_MASK;
        let payload = b.get(4..len)?;
        b = b.get(len.next_multiple_of(4)..).unwrap_or(&[]);
        Some((kind, payload))
    })
}

/// The error of an `NLMSG_ERROR` reply (0: an ACK), or `None` if `reply` isn't one.
fn nl_error(reply: &[u8]) -> Option<i32> {
    (u16_at(reply, 4)? == libc::NLMSG_ERROR as u16)
        .then(|| u32_at(reply, 16).map(|e| e as i32))
        .flatten()
}

/// The XDP program attached to `ifindex` (in the calling thread's namespace), if any.
pub fn attached(ifindex: u32) -> io::Result<Option<AttachedProgram>> {
    let msg = request(libc::RTM_GETLINK, libc::NLM_F_REQUEST as u16, ifindex, &[]);
    let reply = transact(&msg)?;
    if let Some(err) = nl_error(&reply) {
        return Err(io::Error::from_raw_os_error(-err));
    }
    let len = usize::try_from(u32_at(&reply, 0).unwrap_or(0)).unwrap_or(0);
    let body = reply.get(32..len.min(reply.len())).unwrap_or(&[]);
    let Some((_, xdp)) = attrs(body).find(|&(k, _)| k == IFLA_XDP) else {
        return Ok(None);
    };
    let mut mode = 0;
    let mut id = 0;
    for (k, p) in attrs(xdp) {
        match k {
            IFLA_XDP_ATTACHED => mode = p.first().copied().unwrap_or(0),
            IFLA_XDP_PROG_ID => id = u32_at(p, 0).unwrap_or(0),
            _ => {}
        }
    }
    Ok((mode != 0 && id != 0).then_some(AttachedProgram { id, mode }))
}

/// Detaches the netlink-attached XDP program of `ifindex` in `mode` (driver or generic).
/// Fails with `EBUSY` when the program belongs to a live `bpf_link`.
pub fn detach(ifindex: u32, mode: u8) -> io::Result<()> {
    let flags = match mode {
        ATTACHED_DRV => XDP_FLAGS_DRV_MODE,
        ATTACHED_SKB => XDP_FLAGS_SKB_MODE,
        _ => return Err(io::Error::from(io::ErrorKind::Unsupported)),
    };
    let mut nested = attr(IFLA_XDP_FD, &(-1i32).to_ne_bytes());
    nested.extend(attr(IFLA_XDP_FLAGS, &flags.to_ne_bytes()));
    let xdp = attr(IFLA_XDP | NLA_F_NESTED, &nested);
    let msg = request(
        libc::RTM_SETLINK,
        (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16,
        ifindex,
        &xdp,
    );
    match nl_error(&transact(&msg)?) {
        Some(0) => Ok(()),
        Some(err) => Err(io::Error::from_raw_os_error(-err)),
        None => Err(io::Error::other("no netlink acknowledgement")),
    }
}
