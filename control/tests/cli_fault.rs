//! A thread that dies takes `tandemd` with it: the real daemon, built with the test-only
//! `fault-injection` feature and run with `TANDEM_FAULT=worker-panic`, has a worker panic on
//! its first batch. The panic hook logs it (error level, the thread's name) and aborts, so a
//! supervisor restarts the daemon and recovery runs, instead of a daemon that looks healthy
//! but no longer answers on that worker.
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
    let config = dir.path().join("tandem.toml");
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
            data_dir.display()
        ),
    )
    .expect("write config");
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
