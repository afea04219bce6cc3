//! The bulk leasequery server (RFC 6926 §8): one thread, one mio poll, the listener and at
//! most `max_connections` connections. Each connection reads one framed query at a time,
//! runs it in bounded steps as its requestor takes the replies, and is closed when it makes
//! no progress for the data timeout.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lease_mmap::{BindingState, Store, TableId, UnixTime};
use mio::net::{TcpListener as MioListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use super::bulk::{Bulk, Env};
use super::{BULK_LQ_DATA_TIMEOUT, BULK_LQ_MAX_CONNS, ConnEvent, MAX_QUERY_LEN, Stats, permitted};

/// Connection `i` is `Token(i + 1)`.
const LISTENER: Token = Token(0);
/// Records a connection's query walks per turn, so that every connection gets its turn.
const RECORDS_PER_TURN: usize = 4096;
/// The longest sleep in `poll`: how soon a raised stop flag is seen.
const TICK: Duration = Duration::from_millis(100);

/// The bulk server's limits (RFC 6926 §6.3) and the one fact about failover it needs.
#[derive(Clone)]
pub struct BulkConfig {
    /// Connections served at once; more are closed at accept (§8.1).
    pub max_connections: usize,
    /// How long a connection may make no progress before it is closed (§8.1, §8.2, §8.5).
    pub data_timeout: Duration,
    /// The binding state this server allocates from in a table: FREE standalone and as a
    /// failover primary, BACKUP as a secondary (what the failover gate's `free_state`
    /// says). It makes dhcp-state AVAILABLE or REMOTE (§6.2.7).
    pub local_free: Arc<dyn Fn(TableId) -> BindingState + Send + Sync>,
}

impl Default for BulkConfig {
    fn default() -> Self {
        Self {
            max_connections: BULK_LQ_MAX_CONNS,
            data_timeout: BULK_LQ_DATA_TIMEOUT,
            local_free: Arc::new(|_| BindingState::Free),
        }
    }
}

impl std::fmt::Debug for BulkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkConfig")
            .field("max_connections", &self.max_connections)
            .field("data_timeout", &self.data_timeout)
            .finish_non_exhaustive()
    }
}

/// Serves bulk leasequery (RFC 6926) on `listener` from a thread of its own, with
/// [`BulkConfig::default`]'s limits: see [`spawn_bulk_with`].
pub fn spawn_bulk(
    listener: TcpListener,
    store: Arc<Store>,
    server_id: Ipv4Addr,
    allowed: Vec<(Ipv4Addr, u8)>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) -> io::Result<JoinHandle<()>> {
    spawn_bulk_with(
        listener,
        store,
        server_id,
        allowed,
        stats,
        stop,
        BulkConfig::default(),
    )
}

/// Serves bulk leasequery on `listener` (made non-blocking here) until `stop` is raised,
/// then ends every query in progress with QueryTerminated, closes every connection and
/// returns. Connections from outside `allowed` (`(network, prefix length)`; empty: nobody)
/// are closed at accept (§8.1). `server_id` is option 54. Errors only if the poll cannot
/// be set up; later I/O errors close the connection concerned.
pub fn spawn_bulk_with(
    listener: TcpListener,
    store: Arc<Store>,
    server_id: Ipv4Addr,
    allowed: Vec<(Ipv4Addr, u8)>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    config: BulkConfig,
) -> io::Result<JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let mut listener = MioListener::from_std(listener);
    let poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let server = Server {
        poll,
        listener,
        listener_ready: true,
        conns: (0..config.max_connections).map(|_| None).collect(),
        store,
        server_id,
        allowed,
        stats,
        stop,
        config,
    };
    std::thread::Builder::new()
        .name("leasequery-bulk".into())
        .spawn(move || server.run())
}

struct Server {
    poll: Poll,
    listener: MioListener,
    /// The listener may have connections to accept (edge-triggered: set by its event,
    /// cleared when accept would block).
    listener_ready: bool,
    conns: Vec<Option<Conn>>,
    store: Arc<Store>,
    server_id: Ipv4Addr,
    allowed: Vec<(Ipv4Addr, u8)>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    config: BulkConfig,
}

/// Why a connection is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Close {
    /// The requestor closed its end (§8.5: so do we).
    PeerClosed,
    Event(ConnEvent),
}

struct Conn {
    stream: TcpStream,
    /// The frame being read: its 2-byte length, then the message.
    frame: Vec<u8>,
    out: Vec<u8>,
    sent: usize,
    query: Option<Bulk>,
    readable: bool,
    writable: bool,
    last_progress: Instant,
}

impl Server {
    fn run(mut self) {
        let mut events = Events::with_capacity(64);
        loop {
            if self.stop.load(Ordering::Relaxed) {
                self.shut_down();
                return;
            }
            let now = Instant::now();
            let busy = self.conns.iter().flatten().any(Conn::has_work);
            let timeout = if busy {
                Duration::ZERO
            } else {
                self.conns
                    .iter()
                    .flatten()
                    .map(|c| {
                        (c.last_progress + self.config.data_timeout).saturating_duration_since(now)
                    })
                    .fold(TICK, Duration::min)
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != io::ErrorKind::Interrupted
            {
                tracing::error!(error = %e, "bulk leasequery: poll failed; the server stops");
                return;
            }
            for ev in &events {
                if ev.token() == LISTENER {
                    self.listener_ready = true;
                } else if let Some(Some(c)) = self.conns.get_mut(ev.token().0 - 1) {
                    c.readable |= ev.is_readable() || ev.is_read_closed() || ev.is_error();
                    c.writable |= ev.is_writable() || ev.is_write_closed() || ev.is_error();
                }
            }
            if self.listener_ready {
                self.accept();
            }
            self.serve();
        }
    }

    /// Accepts every pending connection; closes those not permitted or over the limit.
    fn accept(&mut self) {
        loop {
            let (mut stream, peer) = match self.listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.listener_ready = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // E.g. out of descriptors: retried on the next turn.
                    tracing::warn!(error = %e, "bulk leasequery: accept failed");
                    return;
                }
            };
            if !permitted(&self.allowed, peer.ip()) {
                tracing::debug!(%peer, "bulk leasequery: source not allowed, closed");
                self.stats.count_connection(ConnEvent::RefusedSource);
                continue;
            }
            let Some(i) = self.conns.iter().position(Option::is_none) else {
                tracing::debug!(%peer, "bulk leasequery: connection limit reached, closed");
                self.stats.count_connection(ConnEvent::RefusedLimit);
                continue;
            };
            let interest = Interest::READABLE | Interest::WRITABLE;
            if let Err(e) = self
                .poll
                .registry()
                .register(&mut stream, Token(i + 1), interest)
            {
                tracing::warn!(%peer, error = %e, "bulk leasequery: cannot poll a connection");
                self.stats.count_connection(ConnEvent::IoError);
                continue;
            }
            tracing::debug!(%peer, "bulk leasequery: connection accepted");
            self.stats.count_connection(ConnEvent::Accepted);
            self.conns[i] = Some(Conn {
                stream,
                frame: Vec::new(),
                out: Vec::new(),
                sent: 0,
                query: None,
                // Edge-triggered: try both at once rather than wait for a first edge.
                readable: true,
                writable: true,
                last_progress: Instant::now(),
            });
        }
    }

    /// Gives every connection with work one turn, and closes the stale and the broken.
    fn serve(&mut self) {
        let now = UnixTime::now();
        let timeout = self.config.data_timeout;
        for i in 0..self.conns.len() {
            let Some(c) = self.conns[i].as_mut() else {
                continue;
            };
            let mut budget = RECORDS_PER_TURN;
            let env = Env {
                store: &self.store,
                server_id: self.server_id,
                now,
                local_free: &*self.config.local_free,
                stats: &self.stats,
            };
            let result = if c.has_work() {
                c.drive(&env, &mut budget)
            } else {
                Ok(())
            };
            let result = result.and_then(|()| {
                if c.last_progress.elapsed() > timeout {
                    Err(Close::Event(ConnEvent::TimedOut))
                } else {
                    Ok(())
                }
            });
            if let Err(why) = result {
                if let Close::Event(e) = why {
                    self.stats.count_connection(e);
                }
                tracing::debug!(reason = ?why, "bulk leasequery: connection closed");
                if let Some(mut c) = self.conns[i].take() {
                    let _ = self.poll.registry().deregister(&mut c.stream);
                }
            }
        }
    }

    /// §8.5: a query cut short is signalled with QueryTerminated where the connection takes
    /// it without waiting; then every connection is closed.
    fn shut_down(&mut self) {
        for c in self.conns.iter_mut().filter_map(Option::take) {
            let mut c = c;
            if let Some(q) = c.query.as_mut() {
                q.terminate(self.server_id, &mut c.out, &self.stats);
            }
            c.writable = true;
            let _ = c.flush();
        }
    }
}

impl Conn {
    fn pending(&self) -> usize {
        self.out.len() - self.sent
    }

    /// Whether a turn could make progress without waiting for an event.
    fn has_work(&self) -> bool {
        if self.pending() > 0 {
            self.writable
        } else {
            self.query.is_some() || self.readable
        }
    }

    /// Sends, runs the query, reads the next one, until something would block or the
    /// turn's budget is spent.
    fn drive(&mut self, env: &Env<'_>, budget: &mut usize) -> Result<(), Close> {
        loop {
            self.flush()?;
            if self.pending() > 0 {
                return Ok(());
            }
            if let Some(q) = self.query.as_mut() {
                if *budget == 0 {
                    return Ok(());
                }
                let before = *budget;
                q.step(env, &mut self.out, budget);
                if *budget != before {
                    // Walking the tables is progress even when nothing matched.
                    self.last_progress = Instant::now();
                }
                if q.is_done() {
                    self.query = None;
                }
                continue;
            }
            if !self.readable {
                return Ok(());
            }
            let Some(msg) = self.read_frame()? else {
                return Ok(());
            };
            self.query =
                Some(Bulk::start(&msg, env.stats).ok_or(Close::Event(ConnEvent::Unreadable))?);
        }
    }

    /// Writes what is pending until done or the socket would block.
    fn flush(&mut self) -> Result<(), Close> {
        while self.pending() > 0 && self.writable {
            match self.stream.write(&self.out[self.sent..]) {
                Ok(0) => return Err(Close::Event(ConnEvent::IoError)),
                Ok(n) => {
                    self.sent += n;
                    self.last_progress = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Close::Event(ConnEvent::IoError)),
            }
        }
        if self.pending() == 0 {
            self.out.clear();
            self.sent = 0;
        }
        Ok(())
    }

    /// Reads the next frame, no further (§8.4: the next query stays unread until this one
    /// is done): `Some` once a whole message is in, `None` if the socket would block first.
    fn read_frame(&mut self) -> Result<Option<Vec<u8>>, Close> {
        loop {
            let want = match self.frame.len() {
                n @ 0..=1 => 2 - n,
                n => {
                    let len = usize::from(u16::from_be_bytes([self.frame[0], self.frame[1]]));
                    if len == 0 || len > MAX_QUERY_LEN {
                        return Err(Close::Event(ConnEvent::Unreadable));
                    }
                    if n == 2 + len {
                        let mut msg = std::mem::take(&mut self.frame);
                        msg.drain(..2);
                        return Ok(Some(msg));
                    }
                    2 + len - n
                }
            };
            let mut buf = [0u8; 1024];
            let take = want.min(buf.len());
            match self.stream.read(&mut buf[..take]) {
                Ok(0) => return Err(Close::PeerClosed),
                Ok(n) => {
                    self.frame.extend_from_slice(&buf[..n]);
                    self.last_progress = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return Ok(None);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Close::Event(ConnEvent::IoError)),
            }
        }
    }
}
