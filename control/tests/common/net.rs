//! Test networks made of network namespaces: a server, N clients on a bridge (the bridge in a
//! namespace of its own), and optionally a relay between the clients and the server.
//!
//! Everything is created inside namespaces named `tdm-e2e-<pid>-<n>-<role>`, so nothing touches
//! the host's interfaces and parallel tests never collide. [`TestNet`]'s `Drop` kills every
//! process still running in its namespaces (by pid) and deletes them, even after a panic
//! ([`testkit::netns::teardown`]).

use std::net::Ipv4Addr;

use testkit::netns::{self, sh};
pub use testkit::netns::{Ns, spawn_logged};

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
        netns::remove_stale("tdm-e2e-");
        let n = netns::next_id();
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
        net.bridge.add_bridge("br0");
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
                sh(&[
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
        sh(&[
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
        netns::teardown(&self.namespaces());
    }
}
