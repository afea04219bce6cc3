//! The end-to-end harness: network namespaces built per test, a DHCP server (Kea or `tandemd`)
//! started inside them, real clients, a packet capture and the safety checker over every ACK.
//!
//! Modelled on dora's `bin/tests/common/env.rs`: each test builds its own namespaces with unique
//! names, starts the real binaries inside them and tears everything down in `Drop`, even after a
//! panic. Tests panic with context rather than return errors.
//!
//! Every test calls [`require_e2e`] first: the tests need root and the apt tools, and on a
//! machine without them they fail loudly instead of passing vacuously. The server under test is
//! chosen in one place, [`server::ServerKind::from_env`] (`TANDEM_E2E_SERVER=kea|tandemd`).
//!
//! Run (as root): `TANDEM_E2E_SERVER=kea cargo test -p control --test 'e2e_*'`; the default
//! server is `tandemd`. `TANDEM_E2E_LOAD_RATE` lowers the load test's 5,000 exchanges/s, only
//! to prove the harness against a baseline that can't keep up on a small machine.
//!
//! Map: [`net`] builds namespaces ([`net::TestNet`], [`net::Ns`]); [`server`] runs the server
//! ([`server::Server`]); [`clients`] drives dhclient, udhcpc, dhcpcd, perfdhcp and scapy;
//! [`capture`] records the wire and checks it; [`acks`] judges a failover pair's DHCPACKs;
//! [`Env`] puts the three together for a test.

pub mod accounting;
pub mod acks;
pub mod capture;
pub mod clients;
pub mod disk;
pub mod net;
pub mod pair;
pub mod server;

use std::{
    fs::File,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

pub use testkit::netns::{pid_alive, signal};

/// The tools every end-to-end test needs (Debian packages: kea-dhcp4-server, kea-admin,
/// isc-dhcp-client, udhcpc, dhcpcd-base, tshark, python3-scapy, iproute2, chromium,
/// prometheus).
const TOOLS: &[&str] = &[
    "chromium",
    "promtool",
    "ip",
    "kea-dhcp4",
    "perfdhcp",
    "dhclient",
    "udhcpc",
    "dhcpcd",
    "tshark",
    "dumpcap",
    "nsenter",
];

/// The Python that has scapy (Debian's `python3-scapy`, not a pyenv shim on `PATH`).
pub const PYTHON: &str = "/usr/bin/python3";

/// Checks that this machine can run the end-to-end tests, and panics with what is missing if
/// not. Deliberately not a skip: CI installs everything, so a missing tool is a broken setup.
pub fn require_e2e() {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .expect("e2e: cannot run `id -u`");
    let uid = String::from_utf8_lossy(&uid.stdout).trim().to_owned();
    assert_eq!(
        uid, "0",
        "e2e tests need root (network namespaces, raw sockets); run them as root"
    );
    let missing: Vec<&str> = TOOLS
        .iter()
        .copied()
        .filter(|t| which(t).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "e2e tests need these tools on PATH (apt: kea-dhcp4-server kea-admin isc-dhcp-client \
         udhcpc dhcpcd-base tshark python3-scapy iproute2 util-linux chromium prometheus): \
         missing {missing:?}"
    );
    let scapy = Command::new(PYTHON)
        .args(["-c", "import scapy.all"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        scapy,
        "e2e tests need scapy for {PYTHON} (apt: python3-scapy)"
    );
}

/// The full path of `tool` on `PATH` (plus the sbin directories), if it is there.
pub fn which(tool: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|dir| Path::new(dir).join(tool))
        .find(|p| p.is_file())
}

/// Polls `f` every 50 ms until it returns `Some`, for at most `timeout`; `None` on timeout.
pub fn try_wait_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Like [`try_wait_until`], but panics naming `what` on timeout.
pub fn wait_until<T>(timeout: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    try_wait_until(timeout, f)
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Held by tests that load the 2-core machine (perfdhcp at full rate, kill -9 under load), so
/// they never overlap with each other, in this test binary or another one. Light tests don't
/// take it.
pub struct HeavyGuard(File);

/// Takes the machine-wide heavy-test lock, waiting at most 30 minutes (holders are bounded
/// tests, and several may queue on a loaded machine).
pub fn heavy() -> HeavyGuard {
    let file = File::create(std::env::temp_dir().join("tdm-e2e-heavy.lock"))
        .expect("create the heavy-test lock file");
    wait_until(Duration::from_secs(1800), "the heavy-test lock", || {
        file.try_lock().ok()
    });
    HeavyGuard(file)
}

impl Drop for HeavyGuard {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Waits at most `timeout` for `child` to exit; its status, or `None` if it still runs.
pub fn wait_exit(
    child: &mut std::process::Child,
    timeout: Duration,
) -> Option<std::process::ExitStatus> {
    try_wait_until(timeout, || child.try_wait().ok().flatten())
}

/// Kills `child` (SIGKILL) and reaps it, whatever state it is in.
pub fn reap(child: &mut std::process::Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A whole test environment: a network, the server under test in it, and a capture on the
/// server's interface started before any client. Fields drop in order: capture, server, net.
pub struct Env {
    /// The capture on the server's interface.
    pub capture: capture::Capture,
    /// The server under test.
    pub server: server::Server,
    /// The network.
    pub net: net::TestNet,
}

impl Env {
    /// Checks the machine, builds `layout` with `clients` client namespaces, starts the server
    /// kind chosen by `TANDEM_E2E_SERVER` with a `lease_time` lease, and starts the capture.
    pub fn new(layout: net::Layout, clients: usize, lease_time: Duration) -> Self {
        require_e2e();
        let net = net::TestNet::new(layout, clients);
        let spec = match layout {
            net::Layout::Direct => server::ServerSpec::direct(&net, lease_time),
            net::Layout::Relayed => server::ServerSpec::relayed(&net, lease_time),
        };
        let capture = capture::Capture::start(&net.server.ns, &net.server.iface);
        let server = server::Server::start(server::ServerKind::from_env(), &net.server.ns, &spec);
        Self {
            capture,
            server,
            net,
        }
    }

    /// Stops the capture, runs the double-binding checker over it, and returns the messages.
    pub fn finish_capture(&mut self) -> Vec<capture::DhcpMsg> {
        let msgs = self.capture.stop();
        capture::check_no_double_binding(&msgs);
        msgs
    }
}

/// The `shared_secret_file` line of a tandem pair's config: writes the pair's shared secret
/// (the same on both sides) into `dir` and names it.
pub fn failover_secret(dir: &Path) -> String {
    let path = dir.join("failover.secret");
    std::fs::write(&path, "tandem end-to-end test secret\n").expect("write the shared secret");
    format!("shared_secret_file = {:?}", path.to_string_lossy())
}

/// The value of the sample `line_prefix` (a metric name with its labels, as exposed) in an
/// exposition, if it is there.
pub fn sample(exposition: &str, line_prefix: &str) -> Option<f64> {
    exposition.lines().find_map(|l| {
        l.strip_prefix(line_prefix)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}
