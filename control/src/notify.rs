//! systemd's service notification protocol (sd_notify(3)), without libsystemd: `READY=1` once
//! the daemon serves, `STOPPING=1` when it stops, `STATUS=` lines, and `WATCHDOG=1` from a
//! thread that feeds systemd's watchdog only while every [`Heartbeat`] moves: a worker stuck in
//! its loop (a hung fdatasync, a deadlock) stops the feed, and systemd restarts the daemon
//! (`WatchdogSec=` with `Restart=on-failure`, as the packaged unit sets them).
//!
//! Nothing here runs unless systemd asked for it: without `NOTIFY_SOCKET` every call is a no-op,
//! and the watchdog thread starts only with `WATCHDOG_USEC` (for this process, `WATCHDOG_PID`).

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::daemon::Shutdown;

/// A heartbeat that has not moved for this long is a stuck thread. Every registered loop
/// moves much more often (workers every 100 ms at the latest, the failover driver every
/// second, the checkpointer every 200 ms), so this is seconds of no progress, not a busy spell.
pub const STALL: Duration = Duration::from_secs(3);

/// Where systemd listens, if it does.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// The socket of `NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace); a no-op
    /// notifier without it or when it cannot be used (logged).
    pub fn from_env() -> Self {
        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
            return Notifier { target: None };
        };
        let path = path.to_string_lossy().into_owned();
        let addr = match path.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
            None => SocketAddr::from_pathname(&path),
        };
        match (addr, UnixDatagram::unbound()) {
            (Ok(addr), Ok(socket)) => Notifier {
                target: Some((socket, addr)),
            },
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(socket = %path, error = %e, "NOTIFY_SOCKET cannot be used; systemd will not hear from tandemd");
                Notifier { target: None }
            }
        }
    }

    /// Whether systemd is listening.
    pub fn is_active(&self) -> bool {
        self.target.is_some()
    }

    /// Sends `state` (newline-separated `KEY=value` lines); an error is logged, not fatal.
    pub fn notify(&self, state: &str) {
        if let Some((socket, addr)) = &self.target
            && let Err(e) = socket.send_to_addr(state.as_bytes(), addr)
        {
            tracing::warn!(error = %e, "sd_notify failed");
        }
    }
}

/// A named counter a live loop keeps moving.
pub struct Heartbeat {
    /// The thread, as the log names it (`worker-0`, `failover`, `checkpoint`).
    pub name: String,
    /// The counter's current value.
    pub read: Box<dyn Fn() -> u64 + Send + Sync>,
}

impl Heartbeat {
    /// A heartbeat read from an atomic the loop increments.
    pub fn counter(name: impl Into<String>, counter: Arc<AtomicU64>) -> Self {
        Heartbeat {
            name: name.into(),
            read: Box::new(move || counter.load(Ordering::Relaxed)),
        }
    }
}

impl std::fmt::Debug for Heartbeat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heartbeat")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The watchdog interval systemd asked for (`WATCHDOG_USEC`, when `WATCHDOG_PID` is unset or
/// this process).
pub fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID")
        && pid.to_string_lossy().parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Starts the watchdog thread when systemd asked for one: `WATCHDOG=1` every half interval
/// while every heartbeat has moved within [`STALL`]; a stuck one is logged (once, by name)
/// and the feed stops until it moves again. Ends on shutdown.
pub fn start_watchdog(
    notifier: Arc<Notifier>,
    heartbeats: Vec<Heartbeat>,
    shutdown: Shutdown,
) -> io::Result<Option<JoinHandle<()>>> {
    let Some(interval) = watchdog_interval() else {
        return Ok(None);
    };
    if !notifier.is_active() {
        return Ok(None);
    }
    let tick = (interval / 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
    tracing::info!(interval = ?interval, threads = heartbeats.len(), "systemd watchdog: fed while every thread moves");
    std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            let now = Instant::now();
            let mut seen: Vec<(u64, Instant)> = heartbeats.iter().map(|h| ((h.read)(), now)).collect();
            let mut stuck = false;
            let mut last_feed = None::<Instant>;
            while !shutdown.wait_timeout(tick) {
                let now = Instant::now();
                let mut stalled = Vec::new();
                for (h, (value, since)) in heartbeats.iter().zip(seen.iter_mut()) {
                    let v = (h.read)();
                    if v != *value {
                        *value = v;
                        *since = now;
                    } else if now.duration_since(*since) >= STALL {
                        stalled.push((h.name.as_str(), now.duration_since(*since)));
                    }
                }
                if stalled.is_empty() {
                    if stuck {
                        tracing::info!("systemd watchdog: every thread moves again; feeding resumed");
                        stuck = false;
                    }
                    if last_feed.is_none_or(|t| now.duration_since(t) >= interval / 2) {
                        notifier.notify("WATCHDOG=1");
                        last_feed = Some(now);
                    }
                } else if !stuck {
                    stuck = true;
                    let names: Vec<String> = stalled
                        .iter()
                        .map(|(n, d)| format!("{n} ({} s)", d.as_secs()))
                        .collect();
                    tracing::error!(threads = %names.join(", "), "systemd watchdog: threads stopped moving; no longer feeding the watchdog, systemd will restart tandemd");
                    notifier.notify(&format!("STATUS=stuck: {}", names.join(", ")));
                }
            }
        })
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_a_path_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).expect("bind");
        let n = Notifier {
            target: Some((
                UnixDatagram::unbound().expect("socket"),
                SocketAddr::from_pathname(&path).expect("addr"),
            )),
        };
        assert!(n.is_active());
        n.notify("READY=1\nSTATUS=serving");
        let mut buf = [0u8; 64];
        let len = listener.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=serving");
        // Without a socket, nothing happens.
        Notifier { target: None }.notify("READY=1");
    }
}
