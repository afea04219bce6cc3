//! Leasequery over UDP (RFC 4388, RFC 6148): the workers hand every DHCPLEASEQUERY they
//! receive to this module ([`Forwarder`], a [`QuerySink`]) through a bounded queue, and one
//! control-plane thread ([`Responder`]) answers each from the lease tables ([`super::answer`])
//! and sends the
//! reply out of the interface the query came in on, as a whole frame through a send-only
//! packet socket, addressed as the workers address a relayed reply: to the requestor's
//! Ethernet source, to its `giaddr` (the address a requestor must put there, §6.1; its IPv4
//! source when it left it empty), at the server port 67.
//!
//! A leasequery never touches the fast path beyond the copy: a query by remote-id walks whole
//! tables, which a worker must never do. A requestor whose IPv4 source or `giaddr` is outside
//! `leasequery_from` gets no answer (counted [`Refused::NotAllowed`], logged at most once a
//! minute); a reply the socket would not take is counted [`Refused::Unsent`].

use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver, Sender, TrySendError};
use dataplane::packet::Socket;
use dataplane::server::{Interface, QuerySink};
use dataplane::wire::dhcpv4::SERVER_PORT;
use dataplane::wire::frame::{self, ReplyHeader};
use lease_mmap::{Store, UnixTime};

use super::{Refused, Stats};

/// Queries waiting for the responder; beyond it, workers drop (`leasequery-backlog`).
pub const QUEUE: usize = 1024;
/// TTL of the replies, as the workers' (`dataplane::server`).
const REPLY_TTL: u8 = 64;

/// One forwarded query: the whole frame and the interface it arrived on.
#[derive(Debug)]
pub struct Query {
    pub ifindex: u32,
    pub frame: Box<[u8]>,
}

/// A worker's end of the queue.
#[derive(Clone, Debug)]
pub struct Forwarder(Sender<Query>);

impl QuerySink for Forwarder {
    fn forward(&mut self, frame: &[u8], ifindex: u32) -> bool {
        match self.0.try_send(Query {
            ifindex,
            frame: frame.into(),
        }) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }
}

/// The queue: workers' [`Forwarder`]s and the responder's receiver.
pub fn queue() -> (Forwarder, Receiver<Query>) {
    let (tx, rx) = channel::bounded(QUEUE);
    (Forwarder(tx), rx)
}

/// What the UDP responder answers from and to whom.
#[derive(Debug)]
pub struct Responder {
    pub store: Arc<Store>,
    pub interfaces: Arc<[Interface]>,
    /// `server.server_id`; else each interface's own address.
    pub server_id: Option<Ipv4Addr>,
    /// `server.leasequery_from`, as (network, prefix length).
    pub allowed: Vec<(Ipv4Addr, u8)>,
    pub stats: Arc<Stats>,
}

impl Responder {
    /// Starts the responder thread; it ends when `stop` is set or every forwarder is gone.
    ///
    /// # Errors
    /// If a send socket cannot be opened on an interface.
    pub fn spawn(
        self,
        rx: Receiver<Query>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<JoinHandle<()>> {
        let sockets = self
            .interfaces
            .iter()
            .map(|i| Socket::open_tx_only(&i.name).map_err(std::io::Error::other))
            .collect::<Result<Vec<_>, _>>()?;
        std::thread::Builder::new()
            .name("leasequery".into())
            .spawn(move || {
                let mut warned: Option<Instant> = None;
                while !stop.load(Ordering::Relaxed) {
                    match rx.recv_timeout(Duration::from_millis(200)) {
                        Ok(q) => self.serve(&sockets, &q, &mut warned),
                        Err(channel::RecvTimeoutError::Timeout) => {}
                        Err(channel::RecvTimeoutError::Disconnected) => break,
                    }
                }
            })
    }

    fn serve(&self, sockets: &[Socket], q: &Query, warned: &mut Option<Instant>) {
        let Some(i) = self.interfaces.iter().position(|i| i.ifindex == q.ifindex) else {
            return;
        };
        let (iface, socket) = (&self.interfaces[i], &sockets[i]);
        // The worker parsed it already; a frame that no longer parses was not ours.
        let Ok(f) = frame::parse(&q.frame) else {
            return;
        };
        let giaddr = f
            .dhcp
            .get(24..28)
            .map(|b| Ipv4Addr::new(b[0], b[1], b[2], b[3]))
            .filter(|a| !a.is_unspecified())
            .unwrap_or(f.ip_src);
        // Both the source and giaddr, where the reply goes: a spoofed allowed source must
        // not have the answer delivered to an address of its choosing.
        if !super::permitted(&self.allowed, f.ip_src.into())
            || !super::permitted(&self.allowed, giaddr.into())
        {
            self.stats.count_refused(Refused::NotAllowed);
            if warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                *warned = Some(Instant::now());
                tracing::warn!(source = %f.ip_src, interface = %iface.name,
                    "leasequery from a requestor outside server.leasequery_from: not answered \
                     (logged once a minute)");
            }
            return;
        }
        let Some(server_id) = self.server_id.or(iface.addr) else {
            return;
        };
        let Ok(payload) =
            super::answer(&self.store, server_id, UnixTime::now(), f.dhcp, &self.stats)
        else {
            return;
        };
        let hdr = ReplyHeader {
            eth_src: iface.mac,
            eth_dst: f.eth_src,
            vlan: f.vlan,
            ip_src: server_id,
            ip_dst: giaddr,
            udp_src: SERVER_PORT,
            udp_dst: SERVER_PORT,
            ttl: REPLY_TTL,
        };
        let mut buf = vec![0u8; payload.len() + 64];
        let sent = frame::emit_payload(&hdr, &payload, &mut buf)
            .ok()
            .and_then(|n| dataplane::sys::send_batch(socket.as_fd(), [&buf[..n]]).ok());
        if sent != Some(1) {
            self.stats.count_refused(Refused::Unsent);
        }
    }
}
