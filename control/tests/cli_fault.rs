//! A thread that dies takes `tandemd` with it: the real daemon, built with the test-only
//! `fault-injection` feature and run with `TANDEM_FAULT=worker-panic`, has a worker panic on
//! its first batch. The panic hook logs it (error level, the thread's name) and aborts, so a
//! supervisor restarts the daemon and recovery runs, instead of a daemon that looks healthy
//! but no longer answers on that worker.
//!
//!
//! The systemd watchdog the same way: with `TANDEM_FAULT=worker-stall` a worker never comes
//! back from its first batch, and the daemon stops feeding the watchdog (a fake systemd: a
//! datagram socket named by `NOTIFY_SOCKET`).
//!
//! Needs the feature (`Cargo.toml` lists this test under `required-features`):
//! `cargo test --profile ci -p control --features fault-injection --test cli_fault`.

use std::io::Read;
use std::net::UdpSocket;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_panicking_worker_aborts_the_daemon() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let config = lo_config(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandemd"))
        .arg("--config")
        .arg(&config)
        .env("TANDEM_FAULT", "worker-panic")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tandemd");
    let socket = data_dir.join("tandemd.sock");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "tandemd exited before serving"
        );
        assert!(Instant::now() < deadline, "tandemd did not start in 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Any frame to port 67 reaches the worker's handler, whose clock panics. Sent until the
    // daemon is gone (the first datagram may come before the socket is bound to lo).
    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let mut err = String::new();
            let _ = child
                .stderr
                .take()
                .expect("stderr")
                .read_to_string(&mut err);
            panic!("tandemd still runs 30 s after its worker panicked:\n{err}");
        }
        let _ = udp.send_to(b"not dhcp, but a frame for the worker", "127.0.0.1:67");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    let _ = child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err);
    assert_eq!(
        status.signal(),
        Some(libc::SIGABRT),
        "expected an abort, got {status}:\n{err}"
    );
    assert!(
        err.contains("ERROR")
            && err.contains("a thread panicked")
            && err.contains("worker-0")
            && err.contains("TANDEM_FAULT=worker-panic"),
        "the panic is logged at error level with the thread's name:\n{err}"
    );
}

/// A config serving on `lo` from `data_dir` (packet datapath, one worker).
fn lo_config(dir: &std::path::Path) -> std::path::PathBuf {
    let config = dir.join("tandem.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
interfaces = ["lo"]
data_dir = "{}"
datapath = "packet"
workers = 1

[[subnet]]
prefix = "10.77.0.0/24"
pools = ["10.77.0.10-10.77.0.200"]
"#,
            dir.join("data").display()
        ),
    )
    .expect("write config");
    config
}

/// A fake systemd: the notification socket, and tandemd started with it and a watchdog.
struct FakeSystemd {
    socket: std::os::unix::net::UnixDatagram,
    child: std::process::Child,
}

impl FakeSystemd {
    fn start(dir: &std::path::Path, fault: Option<&str>) -> Self {
        let path = dir.join("notify.sock");
        let socket = std::os::unix::net::UnixDatagram::bind(&path).expect("bind");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tandemd"));
        cmd.arg("--config")
            .arg(lo_config(dir))
            .env("NOTIFY_SOCKET", &path)
            .env("WATCHDOG_USEC", "600000")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(f) = fault {
            cmd.env("TANDEM_FAULT", f);
        }
        let child = cmd.spawn().expect("spawn tandemd");
        FakeSystemd { socket, child }
    }

    /// The next notification within `within`, if any.
    fn next(&self, within: Duration) -> Option<String> {
        self.socket.set_read_timeout(Some(within)).expect("timeout");
        let mut buf = [0u8; 512];
        match self.socket.recv(&mut buf) {
            Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => self.next(within),
            Err(e) => panic!("recv: {e}"),
        }
    }

    /// Waits for a notification containing `what`, returning the ones before it.
    fn wait_for(&self, what: &str, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left.max(Duration::from_millis(1))) {
                Some(m) if m.contains(what) => return before,
                Some(m) => before.push(m),
                None => panic!("no {what:?} within {within:?}; got {before:?}"),
            }
        }
    }

    fn stderr(&mut self) -> String {
        let mut err = String::new();
        let _ = self
            .child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut err);
        err
    }
}

#[test]
fn systemd_hears_ready_then_the_watchdog_then_stopping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sd = FakeSystemd::start(dir.path(), None);
    let before = sd.wait_for("READY=1", Duration::from_secs(30));
    assert!(before.is_empty(), "nothing before READY: {before:?}");
    // READY means served: the admin socket answers.
    assert!(std::os::unix::net::UnixStream::connect(dir.path().join("data/tandemd.sock")).is_ok());
    // Fed every half interval (300 ms) while every thread moves.
    let start = Instant::now();
    for _ in 0..4 {
        sd.wait_for("WATCHDOG=1", Duration::from_secs(2));
    }
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    // SIGTERM: STOPPING=1, then a clean exit.
    let pid = i32::try_from(sd.child.id()).expect("pid");
    // SAFETY: kill(2) on the pid of our own child, which has not been waited for.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    sd.wait_for("STOPPING=1", Duration::from_secs(10));
    let status = sd.child.wait().expect("wait");
    let err = sd.stderr();
    assert!(status.success(), "{status}\n{err}");
}

#[test]
fn a_stuck_worker_stops_the_watchdog_feed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sd = FakeSystemd::start(dir.path(), Some("worker-stall"));
    sd.wait_for("READY=1", Duration::from_secs(30));
    sd.wait_for("WATCHDOG=1", Duration::from_secs(2));
    // A frame for the worker: its first batch never ends.
    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for _ in 0..5 {
        let _ = udp.send_to(b"a frame for the worker", "127.0.0.1:67");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Within the stall limit and a margin the feed stops, and systemd is told why.
    let fed = sd.wait_for(
        "STATUS=stuck: worker-0",
        control::notify::STALL + Duration::from_secs(3),
    );
    assert!(fed.iter().all(|m| m == "WATCHDOG=1"), "{fed:?}");
    if let Some(m) = sd.next(Duration::from_secs(2)) {
        panic!("fed after the worker stopped: {m:?}");
    }
    // systemd would kill it now; so does the test (a stuck worker cannot be joined).
    sd.child.kill().expect("kill");
    sd.child.wait().expect("wait");
    let err = sd.stderr();
    assert!(
        err.contains("ERROR") && err.contains("threads stopped moving") && err.contains("worker-0"),
        "the stall is logged at error level with the thread's name:\n{err}"
    );
}
