//! [`PortGuard`]: keeps the kernel from answering DHCP with ICMP port unreachable.
//!
//! A packet socket sees frames alongside the IP stack, which still delivers them. When no
//! UDP socket is bound to port 67, the stack answers every unicast one (a relay's forward, a
//! client's RENEW) with ICMP port unreachable, and relays and clients may take that as "no
//! server here". The guard is such a socket: bound to 0.0.0.0:67, with a filter that drops
//! every datagram, so it never queues data and never needs reading.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::filter;
use crate::sys;

/// Why the guard socket could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("UDP port {port} guard{}: {op}: {source}", interface.as_deref().map(|i| format!(" on {i:?}")).unwrap_or_default())]
pub struct GuardError {
    pub port: u16,
    pub interface: Option<String>,
    pub op: &'static str,
    pub source: io::Error,
}

/// A UDP socket bound to port 67 that discards everything. Keep it for as long as DHCP is
/// served; dropping it closes the socket.
#[derive(Debug)]
pub struct PortGuard {
    fd: OwnedFd,
    port: u16,
    interface: Option<String>,
}

impl PortGuard {
    /// Binds 0.0.0.0:67, only for traffic arriving on `interface` when one is given
    /// (`SO_BINDTODEVICE`; one guard per served interface), with `SO_REUSEADDR`.
    pub fn bind(interface: Option<&str>) -> Result<PortGuard, GuardError> {
        PortGuard::bind_port(interface, ebpf::DHCP_SERVER_PORT)
    }

    /// As [`PortGuard::bind`], on another port.
    pub fn bind_port(interface: Option<&str>, port: u16) -> Result<PortGuard, GuardError> {
        let err = |op: &'static str| {
            let interface = interface.map(str::to_owned);
            move |source| GuardError {
                port,
                interface,
                op,
                source,
            }
        };
        let fd = sys::udp_socket().map_err(err("socket"))?;
        let bfd = fd.as_fd();
        // Filter first: from the moment it is bound, nothing is ever queued.
        sys::attach_filter(bfd, &filter::DROP_ALL).map_err(err("SO_ATTACH_FILTER"))?;
        sys::set_int_opt(bfd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)
            .map_err(err("SO_REUSEADDR"))?;
        // The smallest buffer the kernel allows: it stays empty anyway.
        sys::set_int_opt(bfd, libc::SOL_SOCKET, libc::SO_RCVBUF, 0).map_err(err("SO_RCVBUF"))?;
        if let Some(name) = interface {
            sys::bind_to_device(bfd, name).map_err(err("SO_BINDTODEVICE"))?;
        }
        sys::bind_ipv4(bfd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).map_err(err("bind"))?;
        Ok(PortGuard {
            fd,
            port,
            interface: interface.map(str::to_owned),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn interface(&self) -> Option<&str> {
        self.interface.as_deref()
    }
}

impl AsFd for PortGuard {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    /// Sends to `port` on loopback from a connected socket and reports whether an ICMP port
    /// unreachable came back (the next receive fails with ECONNREFUSED).
    fn icmp_refused(port: u16) -> bool {
        let tx = UdpSocket::bind("127.0.0.1:0").expect("sender");
        tx.connect(("127.0.0.1", port)).expect("connect");
        tx.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        tx.send(b"hello").expect("send");
        let mut buf = [0u8; 16];
        match tx.recv(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => true,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                false
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn guard_holds_the_port_and_queues_nothing() {
        // A high port on loopback, so this runs without namespaces (the netns test does 67).
        let port = 46767;
        assert!(icmp_refused(port), "nothing bound: the kernel refuses");
        let guard = PortGuard::bind_port(Some("lo"), port).expect("guard");
        assert_eq!((guard.port(), guard.interface()), (port, Some("lo")));
        // SO_REUSEADDR: a second guard (another interface, or a restart) may bind too.
        let second = PortGuard::bind_port(None, port).expect("second guard");
        assert!(!icmp_refused(port), "guarded: no ICMP");
        // Nothing became readable on either guard: the filter dropped the datagram.
        for g in [&guard, &second] {
            assert!(
                !sys::poll_one(g.as_fd(), sys::Ready::Readable, Duration::from_millis(10))
                    .expect("poll")
            );
        }
        drop((guard, second));
        assert!(icmp_refused(port), "guard gone: refused again");
    }
}
