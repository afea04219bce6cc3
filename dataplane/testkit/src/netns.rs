//! Network namespaces the tests build, and the veths between them.
//!
//! Every name is unique to the test that makes it: `tdm-<tag>-<pid>-<n>…` ([`prefix`]), the
//! pid for tests running alongside other runs, `n` for tests running in parallel in one
//! process. Whatever owns namespaces tears them down with [`teardown`] in its `Drop`, so they go
//! even when the test panics; [`remove_stale`] clears what an earlier run killed by a signal
//! (no `Drop`) left behind.
//!
//! Everything here needs root (`ip netns`, veths, `setns`).

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Runs `args` on the host; panics with its stderr unless it succeeds; returns its stdout.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A number no earlier call in this process returned.
pub fn next_id() -> u32 {
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A fresh name prefix `tdm-<tag>-<pid>-<n>`, unique among the tests of this process and,
/// through the pid, among processes alive at once. [`remove_stale`] reads the pid back.
pub fn prefix(tag: &str) -> String {
    format!("tdm-{tag}-{}-{}", std::process::id(), next_id())
}

/// A network namespace a test made. A handle only: its owner deletes it ([`teardown`]).
#[derive(Debug, Clone)]
pub struct Ns {
    /// `ip netns` name.
    pub name: String,
}

impl Ns {
    /// Creates namespace `name` (deleting a leftover of that name first) with `lo` up.
    pub fn create(name: String) -> Self {
        let ns = Self { name };
        ns.add();
        ns
    }

    /// `ip netns add` for a handle made before the namespace exists, so that an owner holds
    /// it (and deletes it) even if a later step fails.
    pub fn add(&self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
        sh(&["ip", "netns", "add", &self.name]);
        self.run(&["ip", "link", "set", "lo", "up"]);
    }

    /// A `Command` running `prog` inside this namespace (`ip netns exec`, which execs, so the
    /// child's pid is the program's pid).
    pub fn command(&self, prog: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, prog]);
        cmd
    }

    /// Runs `args` in this namespace to completion and returns its output, whatever the status.
    pub fn exec(&self, args: &[&str]) -> Output {
        self.command(args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {args:?} in {}: {e}", self.name))
    }

    /// Runs `args` in this namespace, panics with its output unless it succeeds, returns stdout.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.exec(args);
        assert!(
            out.status.success(),
            "{args:?} in {} failed ({}): {}{}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts `args` in this namespace in the background, stdout and stderr to `log`.
    pub fn spawn(&self, args: &[&str], log: &Path) -> Child {
        let mut cmd = self.command(args[0]);
        cmd.args(&args[1..]);
        spawn_logged(cmd, log)
    }

    /// The pids of every process living in this namespace.
    pub fn pids(&self) -> Vec<u32> {
        let out = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        out.split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// The MAC address of `iface` in this namespace.
    pub fn mac(&self, iface: &str) -> String {
        self.run(&["cat", &format!("/sys/class/net/{iface}/address")])
            .trim()
            .to_owned()
    }

    /// Creates bridge `name` here, forwarding on every port as soon as it is up
    /// (`forward_delay 0`), and sets it up.
    pub fn add_bridge(&self, name: &str) {
        self.run(&["ip", "link", "add", name, "type", "bridge"]);
        self.run(&[
            "ip",
            "link",
            "set",
            name,
            "type",
            "bridge",
            "forward_delay",
            "0",
        ]);
        self.run(&["ip", "link", "set", name, "up"]);
    }

    /// Joins `ns` to bridge `bridge` here: a veth with end `port` on the bridge and end `dev`
    /// in `ns` holding `addr` (`a.b.c.d/len`), both up.
    pub fn add_bridge_port(&self, bridge: &str, port: &str, ns: &Ns, dev: &str, addr: &str) {
        self.run(&[
            "ip", "link", "add", port, "type", "veth", "peer", "name", dev, "netns", &ns.name,
        ]);
        self.run(&["ip", "link", "set", port, "master", bridge]);
        self.run(&["ip", "link", "set", port, "up"]);
        ns.run(&["ip", "addr", "add", addr, "dev", dev]);
        ns.run(&["ip", "link", "set", dev, "up"]);
    }

    /// Whether `iface` here says it is up (`operstate`).
    pub fn is_up(&self, iface: &str) -> bool {
        self.exec(&["cat", &format!("/sys/class/net/{iface}/operstate")])
            .stdout
            .starts_with(b"up")
    }
}

/// Runs `f` on a thread inside namespace `ns`: sockets it opens belong to `ns` for life.
pub fn in_ns<T: Send>(ns: &Ns, f: impl FnOnce() -> T + Send) -> T {
    thread::scope(|s| {
        s.spawn(|| {
            let file = File::open(format!("/run/netns/{}", ns.name)).expect("open netns");
            dataplane::sys::set_thread_netns(file.as_fd()).expect("setns");
            f()
        })
        .join()
        .expect("netns thread")
    })
}

/// Spawns `cmd` with no stdin and stdout and stderr to `log` (a file, not a pipe: daemons
/// that fork keep it open).
pub fn spawn_logged(mut cmd: Command, log: &Path) -> Child {
    let out = File::create(log).expect("create a log file");
    let err = out.try_clone().expect("clone a log file handle");
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"))
}

/// What an owner's `Drop` does: kills every process still running in `namespaces` (all started
/// by the test; daemons that fork are found here rather than kept from spawn), waits up to 3 s
/// for them to go, and deletes the namespaces. Never panics.
pub fn teardown(namespaces: &[&Ns]) {
    for ns in namespaces {
        for pid in ns.pids() {
            signal(pid, "KILL");
        }
    }
    for ns in namespaces {
        let deadline = Instant::now() + Duration::from_secs(3);
        while !ns.pids().is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("ip").args(["netns", "del", &ns.name]).output();
    }
}

/// Deletes the namespaces of earlier test processes that died without running `Drop` (killed
/// by a signal), and what still runs in them: `<prefix><pid>-…` whose `<pid>` is gone, e.g.
/// `remove_stale("tdm-e2e-")`. Only names with that prefix are touched.
pub fn remove_stale(prefix: &str) {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for name in out.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || pid_alive(pid) {
            continue;
        }
        teardown(&[&Ns {
            name: name.to_owned(),
        }]);
    }
}

/// Sends `signal` (e.g. `"KILL"`, `"TERM"`, `"USR1"`) to `pid`, a process this test started.
pub fn signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Whether `pid` is still running (and not a zombie).
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// `aa:bb:cc:dd:ee:ff`, as `ip` takes it.
pub fn mac_str(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// What [`VethPair::new`] adds to a plain veth (kernel-chosen MACs, one queue each way, the
/// namespaces' sysctls as the kernel sets them).
#[derive(Debug, Clone, Copy, Default)]
pub struct VethOptions {
    /// The MAC addresses of `va` and `vb`.
    pub macs: Option<([u8; 6], [u8; 6])>,
    /// Static neighbour entries for each other's address (needs `macs`), so the kernel sends
    /// no ARP of its own in the middle of a test.
    pub static_neighbours: bool,
    /// Create each end with 8 rx and 8 tx queues, then `ethtool -L` it to this many (a veth
    /// otherwise has as many real queues as it was created with).
    pub queues: Option<u32>,
    /// `sysctl -w` settings for both namespaces, made before the veth exists.
    pub sysctls: &'static [&'static str],
}

/// Two namespaces `<prefix>a` and `<prefix>b` ([`prefix`]`(tag)`) joined by a veth: `va` in
/// `a` with `<subnet>.1/24`, `vb` in `b` with `<subnet>.2/24`. [`VethPair::new`] returns once
/// the link carries frames; `Drop` tears both namespaces down.
#[derive(Debug)]
pub struct VethPair {
    /// The namespace holding `va`.
    pub a: Ns,
    /// The namespace holding `vb`.
    pub b: Ns,
    /// `va`'s address.
    pub addr_a: Ipv4Addr,
    /// `vb`'s address.
    pub addr_b: Ipv4Addr,
}

impl VethPair {
    /// Builds the pair in the /24 whose first three octets are `subnet`.
    pub fn new(tag: &str, subnet: [u8; 3], opts: &VethOptions) -> Self {
        let id = prefix(tag);
        let [x, y, z] = subnet;
        // The owner exists before the namespaces, so a failure half-way still tears down.
        let pair = Self {
            a: Ns {
                name: format!("{id}a"),
            },
            b: Ns {
                name: format!("{id}b"),
            },
            addr_a: Ipv4Addr::new(x, y, z, 1),
            addr_b: Ipv4Addr::new(x, y, z, 2),
        };
        for ns in [&pair.a, &pair.b] {
            ns.add();
            for setting in opts.sysctls {
                ns.run(&["sysctl", "-qw", setting]);
            }
        }
        let end = |dev: &str, mac: Option<[u8; 6]>| {
            let mut args = vec![dev.to_owned()];
            if let Some(mac) = mac {
                args.extend(["address".to_owned(), mac_str(mac)]);
            }
            if opts.queues.is_some() {
                args.extend(["numtxqueues", "8", "numrxqueues", "8"].map(str::to_owned));
            }
            args
        };
        let mut add = ["ip", "-n", &pair.a.name, "link", "add"]
            .map(str::to_owned)
            .to_vec();
        add.extend(end("va", opts.macs.map(|m| m.0)));
        add.extend(["type", "veth", "peer", "name"].map(str::to_owned));
        add.extend(end("vb", opts.macs.map(|m| m.1)));
        add.extend(["netns".to_owned(), pair.b.name.clone()]);
        sh(&add.iter().map(String::as_str).collect::<Vec<_>>());
        for (ns, dev, addr) in [(&pair.a, "va", pair.addr_a), (&pair.b, "vb", pair.addr_b)] {
            ns.run(&["ip", "addr", "add", &format!("{addr}/24"), "dev", dev]);
        }
        if let Some(q) = opts.queues {
            let q = q.to_string();
            for (ns, dev) in [(&pair.a, "va"), (&pair.b, "vb")] {
                ns.run(&["ethtool", "-L", dev, "rx", &q, "tx", &q]);
            }
        }
        pair.a.run(&["ip", "link", "set", "va", "up"]);
        pair.b.run(&["ip", "link", "set", "vb", "up"]);
        if opts.static_neighbours {
            let (mac_a, mac_b) = opts.macs.expect("static neighbours need the MACs");
            for (ns, dev, addr, mac) in [
                (&pair.a, "va", pair.addr_b, mac_b),
                (&pair.b, "vb", pair.addr_a, mac_a),
            ] {
                let addr = addr.to_string();
                ns.run(&[
                    "ip",
                    "neigh",
                    "replace",
                    &addr,
                    "lladdr",
                    &mac_str(mac),
                    "dev",
                    dev,
                ]);
            }
        }
        pair.wait_until_up();
        pair
    }

    /// A fresh veth only carries frames once the kernel's link watcher has activated its
    /// queues (up to a second later); until then, frames are silently dropped. Waits for
    /// both ends to say `up` and for one ping to make the round trip.
    fn wait_until_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(self.a.is_up("va") && self.b.is_up("vb") && self.ping()) {
            assert!(
                Instant::now() < deadline,
                "veth between {} and {} never came up",
                self.a.name,
                self.b.name
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether one ping from `a` to `vb`'s address comes back within a second.
    pub fn ping(&self) -> bool {
        self.a
            .exec(&["ping", "-c1", "-W1", "-q", &self.addr_b.to_string()])
            .status
            .success()
    }

    /// Whether `ip link` shows an XDP program on `vb`.
    pub fn xdp_shown(&self) -> bool {
        self.b
            .run(&["ip", "-d", "link", "show", "vb"])
            .contains("prog/xdp")
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        teardown(&[&self.a, &self.b]);
    }
}
