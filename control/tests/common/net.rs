//! Test networks made of network namespaces: a server, N clients on a bridge (the bridge in a
//! namespace of its own), and optionally a relay between the clients and the server.
//!
//! Everything is created inside namespaces named `tdm-e2e-<pid>-<n>-<role>`, so nothing touches
//! the host's interfaces and parallel tests never collide. [`TestNet`]'s `Drop` kills every
//! process still running in its namespaces (by pid) and deletes them, even after a panic.

use std::{
    net::Ipv4Addr,
    process::{Child, Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

/// The server's subnet in the direct layout (clients on the server's link).
pub const DIRECT_PREFIX: &str = "10.77.0.0/16";
/// The server's address in the direct layout; also its server identifier.
pub const DIRECT_SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The link between the relay and the server in the relay layout.
pub const RELAY_LINK_SERVER: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 1);
/// The relay's address toward the server.
pub const RELAY_LINK_RELAY: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 2);
/// The clients' subnet behind the relay: the relay's client-side address is its giaddr.
pub const RELAYED_PREFIX: &str = "10.78.0.0/24";
/// The relay's giaddr, in [`RELAYED_PREFIX`]: a /32 on the relay's uplink, so perfdhcp (which
/// sends out of the interface holding its `-l` address) reaches the server with it as giaddr.
pub const RELAY_GIADDR: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 1);
/// The relay's client-side (bridge) address, also in [`RELAYED_PREFIX`], for relay agents that
/// serve the client namespaces behind it.
pub const RELAY_CLIENT_SIDE: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 254);

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace this test created.
#[derive(Debug, Clone)]
pub struct Ns {
    /// `ip netns` name.
    pub name: String,
}

impl Ns {
    fn create(name: String) -> Self {
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        host_run(&["ip", "netns", "add", &name]);
        let ns = Self { name };
        ns.run(&["ip", "link", "set", "lo", "up"]);
        ns
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
    pub fn spawn(&self, args: &[&str], log: &std::path::Path) -> Child {
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
}

/// One interface of a namespace attached to the test network.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The namespace holding the interface.
    pub ns: Ns,
    /// The interface's name inside `ns`.
    pub iface: String,
    /// Its MAC address, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// A static address on it, if the layout gave one.
    pub addr: Option<Ipv4Addr>,
}

/// Where the clients sit relative to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Clients and server on one bridged link, server at [`DIRECT_SERVER`] in [`DIRECT_PREFIX`].
    Direct,
    /// Clients on a bridged link with a relay namespace (client side [`RELAY_CLIENT_SIDE`]),
    /// which has a second link to the server ([`RELAY_LINK_RELAY`] ⇄ [`RELAY_LINK_SERVER`])
    /// carrying the giaddr [`RELAY_GIADDR`] too.
    Relayed,
}

/// A whole test network; dropping it kills what runs in it and deletes its namespaces.
pub struct TestNet {
    /// The server's namespace and its serving interface.
    pub server: Endpoint,
    /// The clients' namespaces, one interface each, on the bridge.
    pub clients: Vec<Endpoint>,
    /// In [`Layout::Relayed`]: the relay namespace's client-side interface (on the bridge).
    pub relay: Option<Endpoint>,
    bridge: Ns,
    prefix: String,
    id: String,
}

impl TestNet {
    /// Builds a network with `clients` client namespaces in the given layout.
    pub fn new(layout: Layout, clients: usize) -> Self {
        remove_stale();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}{n}", std::process::id());
        let prefix = format!("tdm-e2e-{}-{n}", std::process::id());
        // Build into a half-made net first, so a failure half-way still tears down what exists.
        let bridge = Ns::create(format!("{prefix}-br"));
        let server_ns = Ns::create(format!("{prefix}-srv"));
        let mut net = Self {
            server: Endpoint {
                ns: server_ns,
                iface: String::new(),
                mac: String::new(),
                addr: None,
            },
            clients: Vec::new(),
            relay: None,
            bridge,
            prefix,
            id,
        };
        net.bridge
            .run(&["ip", "link", "add", "br0", "type", "bridge"]);
        net.bridge.run(&[
            "ip",
            "link",
            "set",
            "br0",
            "type",
            "bridge",
            "forward_delay",
            "0",
        ]);
        net.bridge.run(&["ip", "link", "set", "br0", "up"]);
        match layout {
            Layout::Direct => {
                let iface = net.iface("s");
                let server_ns = net.server.ns.clone();
                net.server = net.attach(&server_ns, &iface, Some((DIRECT_SERVER, 16)));
            }
            Layout::Relayed => {
                let relay_ns = Ns::create(format!("{}-rly", net.prefix));
                let iface = net.iface("r");
                net.relay = Some(net.attach(&relay_ns, &iface, Some((RELAY_CLIENT_SIDE, 24))));
                // The relay ⇄ server link is a plain veth pair, no bridge.
                let srv_if = net.iface("s");
                let up_if = net.iface("u");
                let server_ns = net.server.ns.clone();
                host_run(&[
                    "ip",
                    "link",
                    "add",
                    &srv_if,
                    "netns",
                    &server_ns.name,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &up_if,
                    "netns",
                    &relay_ns.name,
                ]);
                for (ns, ifc, addr) in [
                    (&server_ns, &srv_if, RELAY_LINK_SERVER),
                    (&relay_ns, &up_if, RELAY_LINK_RELAY),
                ] {
                    ns.run(&["ip", "addr", "add", &format!("{addr}/24"), "dev", ifc]);
                    ns.run(&["ip", "link", "set", ifc, "up"]);
                }
                let giaddr = format!("{RELAY_GIADDR}/32");
                relay_ns.run(&["ip", "addr", "add", &giaddr, "dev", &up_if]);
                relay_ns.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
                server_ns.run(&[
                    "ip",
                    "route",
                    "add",
                    RELAYED_PREFIX,
                    "via",
                    &RELAY_LINK_RELAY.to_string(),
                ]);
                net.server = Endpoint {
                    mac: server_ns.mac(&srv_if),
                    ns: server_ns,
                    iface: srv_if,
                    addr: Some(RELAY_LINK_SERVER),
                };
            }
        }
        for i in 0..clients {
            let ns = Ns::create(format!("{}-c{i}", net.prefix));
            let iface = net.iface(&format!("c{i}"));
            // Clients on the direct link get a static address outside the pools, so perfdhcp
            // (which sends from a bound UDP socket) has a source address.
            let addr = match layout {
                Layout::Direct => Some((Ipv4Addr::new(10, 77, 0, 10 + i as u8), 16)),
                Layout::Relayed => None,
            };
            let ep = net.attach(&ns, &iface, addr);
            net.clients.push(ep);
        }
        net
    }

    /// A unique interface name (≤ 15 bytes), `t<pid><n><role>`.
    fn iface(&self, role: &str) -> String {
        let name = format!("t{}{role}", self.id);
        assert!(name.len() <= 15, "interface name {name} too long");
        name
    }

    /// Creates a veth pair with one end `iface` in `ns` and the other on the bridge.
    fn attach(&self, ns: &Ns, iface: &str, addr: Option<(Ipv4Addr, u8)>) -> Endpoint {
        let peer = format!("{iface}b");
        assert!(peer.len() <= 15, "interface name {peer} too long");
        host_run(&[
            "ip",
            "link",
            "add",
            iface,
            "netns",
            &ns.name,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
            "netns",
            &self.bridge.name,
        ]);
        self.bridge
            .run(&["ip", "link", "set", &peer, "master", "br0"]);
        self.bridge.run(&["ip", "link", "set", &peer, "up"]);
        if let Some((a, len)) = addr {
            ns.run(&["ip", "addr", "add", &format!("{a}/{len}"), "dev", iface]);
        }
        ns.run(&["ip", "link", "set", iface, "up"]);
        Endpoint {
            mac: ns.mac(iface),
            ns: ns.clone(),
            iface: iface.to_owned(),
            addr: addr.map(|(a, _)| a),
        }
    }

    /// Every namespace of this net.
    fn namespaces(&self) -> Vec<&Ns> {
        let mut all = vec![&self.server.ns, &self.bridge];
        all.extend(self.relay.as_ref().map(|r| &r.ns));
        all.extend(self.clients.iter().map(|c| &c.ns));
        all
    }

    /// The unique prefix of this net's names, for temp files and logs.
    pub fn name(&self) -> &str {
        &self.prefix
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        // Everything running inside our namespaces was started by this test (dhclient and
        // dhcpcd daemonise, so their pids are found here rather than kept from spawn).
        for ns in self.namespaces() {
            for pid in ns.pids() {
                super::signal(pid, "KILL");
            }
        }
        for ns in self.namespaces() {
            let _ = super::try_wait_until(Duration::from_secs(3), || {
                ns.pids().is_empty().then_some(())
            });
            let _ = Command::new("ip").args(["netns", "del", &ns.name]).output();
        }
    }
}

/// Deletes the namespaces of earlier test processes that died without running `Drop` (killed
/// by a signal): `tdm-e2e-<pid>-…` whose `<pid>` is gone. Only our own prefix is touched.
fn remove_stale() {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for name in out.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = name
            .strip_prefix("tdm-e2e-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || super::pid_alive(pid) {
            continue;
        }
        let ns = Ns {
            name: name.to_owned(),
        };
        for p in ns.pids() {
            super::signal(p, "KILL");
        }
        let _ = Command::new("ip").args(["netns", "del", name]).output();
    }
}

/// Spawns `cmd` with no stdin and stdout and stderr to `log` (a file, not a pipe: daemons
/// that fork keep it open).
pub fn spawn_logged(mut cmd: Command, log: &std::path::Path) -> Child {
    let out = std::fs::File::create(log).expect("create a log file");
    let err = out.try_clone().expect("clone a log file handle");
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"))
}

/// Runs `args` on the host (for `ip netns add` and creating veths directly in namespaces).
fn host_run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
