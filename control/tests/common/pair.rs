//! A tandem failover pair in namespaces, for `e2e_pair` and the fault campaign (`campaign`):
//! two `tandemd` on one client bridge, each with a point-to-point peer link of its own (a veth
//! pair between the two server namespaces), clients behind the bridge, a capture on both
//! servers' bridge ports, and the pair's DHCPACK checker ([`super::acks`]).

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use super::acks::AckLog;
use super::capture::{Capture, DhcpMsg};
use super::clients::{ClientLease, Udhcpc};
use super::net::{Endpoint, Ns};
use super::server::{Server, ServerKind};
use control::failover::hash::client_bucket;
use testkit::netns::{self, mac_str};

/// Server A (primary) and B (secondary) on the client bridge.
pub const A: Ipv4Addr = Ipv4Addr::new(10, 81, 0, 1);
pub const B: Ipv4Addr = Ipv4Addr::new(10, 81, 0, 2);
/// Their ends of the peer link, where the failover TCP runs.
pub const PEER_A: Ipv4Addr = Ipv4Addr::new(10, 82, 0, 1);
pub const PEER_B: Ipv4Addr = Ipv4Addr::new(10, 82, 0, 2);
/// The MCLT: short, so RECOVER-WAIT and every MCLT-bounded lease are seconds.
pub const MCLT: u32 = 20;
/// Lease time the scope asks for; capped at the MCLT while the partner acknowledges nothing.
pub const LEASE: u32 = 3600;
/// `load_balance_max_seconds`: a DISCOVER with larger `secs` is answered by both.
pub const LB_MAX_SECS: u16 = 3;
/// `max_response_delay`: how long a silent peer link lives. Long enough that a loaded 2-core
/// machine's stall never drops a healthy link (then both would answer every client), short
/// enough that a cut link is noticed within a test.
pub const MRD: u64 = 10;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    LoadBalance,
    HotStandby,
}

/// The network: bridge namespace `br` (br0 with ports `sa`, `sb`, `c0`..), servers `a` and `b`
/// (`lan` on the bridge, `peer` to each other), client namespaces (`eth0` on the bridge, a
/// static 10.81.0.(10+i)/16 for perfdhcp). Every process in them is killed and every namespace
/// deleted on drop.
pub struct PairNet {
    pub br: Ns,
    pub a: Ns,
    pub b: Ns,
    pub clients: Vec<Endpoint>,
}

pub fn ip(args: &[&str]) {
    netns::sh(&[&["ip"], args].concat());
}

impl PairNet {
    pub fn new(clients: usize) -> Self {
        super::require_e2e();
        netns::remove_stale("tdm-pair-");
        let prefix = netns::prefix("pair");
        let mk = |role: &str| Ns::create(format!("{prefix}-{role}"));
        // Half-built nets still tear down: fill in `self` as namespaces appear.
        let mut net = PairNet {
            br: mk("br"),
            a: mk("a"),
            b: mk("b"),
            clients: Vec::new(),
        };
        net.br.add_bridge("br0");
        for (ns, port, addr) in [(&net.a, "sa", A), (&net.b, "sb", B)] {
            net.br
                .add_bridge_port("br0", port, ns, "lan", &format!("{addr}/16"));
        }
        // The peer link: A's `peer` ⇄ B's `peer`, nothing else routes 10.82.0.0/30.
        ip(&[
            "-n",
            &net.a.name,
            "link",
            "add",
            "peer",
            "type",
            "veth",
            "peer",
            "name",
            "peer",
            "netns",
            &net.b.name,
        ]);
        for (ns, addr) in [(&net.a, PEER_A), (&net.b, PEER_B)] {
            ip(&[
                "-n",
                &ns.name,
                "addr",
                "add",
                &format!("{addr}/30"),
                "dev",
                "peer",
            ]);
            ip(&["-n", &ns.name, "link", "set", "peer", "up"]);
        }
        for i in 0..clients {
            let ns = mk(&format!("c{i}"));
            net.clients.push(Endpoint {
                ns: ns.clone(),
                iface: "eth0".into(),
                mac: String::new(),
                addr: None,
            });
            let addr = Ipv4Addr::new(10, 81, 0, 10 + u8::try_from(i).expect("few clients"));
            net.br
                .add_bridge_port("br0", &format!("c{i}"), &ns, "eth0", &format!("{addr}/16"));
            let ep = net.clients.last_mut().expect("just pushed");
            ep.mac = ns.mac("eth0");
            ep.addr = Some(addr);
        }
        net
    }

    pub fn namespaces(&self) -> Vec<&Ns> {
        let mut all = vec![&self.br, &self.a, &self.b];
        all.extend(self.clients.iter().map(|c| &c.ns));
        all
    }

    /// Takes the peer link down (both ends lose carrier and their route) or back up.
    pub fn peer_link(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.a.name, "link", "set", "peer", state]);
    }

    /// Silently drops (nftables, in A's namespace) everything that crosses the peer link, or
    /// stops dropping: the link stays up, so neither side sees an error, as with a firewall
    /// or a dead path in between.
    pub fn peer_drop(&self, on: bool) {
        let nft = |args: &[&str]| ip(&[&["netns", "exec", &self.a.name, "nft"], args].concat());
        if on {
            nft(&["add", "table", "inet", "tdm_cut"]);
            for (chain, hook, dir) in [("in", "input", "iifname"), ("out", "output", "oifname")] {
                nft(&[
                    "add",
                    "chain",
                    "inet",
                    "tdm_cut",
                    chain,
                    &format!("{{ type filter hook {hook} priority 0; }}"),
                ]);
                nft(&["add", "rule", "inet", "tdm_cut", chain, dir, "peer", "drop"]);
            }
        } else {
            nft(&["delete", "table", "inet", "tdm_cut"]);
        }
    }

    /// Starts the capture on both servers' bridge ports.
    pub fn capture(&self) -> Capture {
        Capture::start_ifaces(&self.br, &["sa", "sb"])
    }

    /// One DHCP exchange by udhcpc in client namespace `i` with hardware address `mac` (and
    /// so client identifier `01 ‖ mac`, udhcpc's default).
    pub fn udhcpc(&self, i: usize, mac: [u8; 6]) -> Result<ClientLease, String> {
        let ep = &self.clients[i];
        ip(&[
            "-n",
            &ep.ns.name,
            "link",
            "set",
            "eth0",
            "address",
            &mac_str(mac),
        ]);
        let mut c = Udhcpc::new(ep);
        c.obtain_once().map_err(|e| e.to_string())
    }
}

impl Drop for PairNet {
    fn drop(&mut self) {
        netns::teardown(&self.namespaces());
    }
}

/// The bucket of a udhcpc client with hardware address `mac`: it sends option 61 `01 ‖ mac`.
pub fn udhcpc_bucket(mac: [u8; 6]) -> u8 {
    let mut id = vec![1u8];
    id.extend_from_slice(&mac);
    client_bucket(Some(&id), &mac, 6)
}

/// `count` fresh MACs (tagged `tag`, so tests don't share clients) whose bucket the primary
/// (`split 128`) serves, or the secondary.
pub fn macs(tag: u8, primary: bool, count: usize) -> Vec<[u8; 6]> {
    let found: Vec<[u8; 6]> = (0..=u16::MAX)
        .map(|n| {
            let [hi, lo] = n.to_be_bytes();
            [0x02, 0x81, tag, 0, hi, lo]
        })
        .filter(|m| (udhcpc_bucket(*m) < 128) == primary)
        .take(count)
        .collect();
    assert_eq!(found.len(), count, "not enough MACs in one half");
    found
}

/// The server the hash gives a bucket to in NORMAL (`split 128`).
pub fn owner(bucket: u8) -> Ipv4Addr {
    if bucket < 128 { A } else { B }
}

/// Where each server of the pair serves metrics, on its namespace's loopback.
pub const HTTP: &str = "127.0.0.1:9167";

/// A tandemd config for one side of relationship "pair".
pub fn config(dir: &Path, primary: bool, mode: Mode) -> String {
    let (me, peer, sid) = if primary {
        (PEER_A, PEER_B, A)
    } else {
        (PEER_B, PEER_A, B)
    };
    let role = if primary {
        format!("role = \"primary\"\nmclt = \"{MCLT}s\"\nsplit = 128")
    } else {
        "role = \"secondary\"".to_owned()
    };
    let mode = match mode {
        Mode::LoadBalance => "load-balance",
        Mode::HotStandby => "hot-standby",
    };
    format!(
        r#"[server]
interfaces = ["lan"]
server_id = "{sid}"
data_dir = {dir:?}
datapath = "packet"
workers = 1
durability = "sync"
http = "{HTTP}"

[[subnet]]
prefix = "10.81.0.0/16"
pools = ["10.81.1.0-10.81.3.255"]
router = ["10.81.0.1"]
lease_time = "{LEASE}s"
failover = "pair"

[[failover]]
name = "pair"
{role}
mode = "{mode}"
address = "{me}"
peer_address = "{peer}"
port = 647
peer_port = 647
max_response_delay = "{MRD}s"
max_unacked_updates = 10
load_balance_max_seconds = {LB_MAX_SECS}
{secret}
"#,
        dir = dir.to_string_lossy(),
        secret = super::failover_secret(dir),
    )
}

/// A [`config`] for a partner that is ISC dhcpd: no shared secret (ISC has no message
/// digest), `peer_software = "isc-dhcpd"`.
pub fn isc_partner(config: String) -> String {
    let secret = config
        .lines()
        .find(|l| l.starts_with("shared_secret_file"))
        .map(str::to_owned)
        .unwrap_or_default();
    config.replace(&secret, "peer_software = \"isc-dhcpd\"")
}

/// ISC dhcpd 4.4's `dhcpd.conf` for server B, the secondary of load-balance relationship
/// "pair" with tandemd on A: the same subnet, pool, lease time and timers as [`config`].
pub fn isc_secondary_config() -> String {
    isc_config(false)
}

/// ISC dhcpd 4.4's `dhcpd.conf` for either side of load-balance relationship "pair" (the
/// primary: A, `split 128`, MCLT [`MCLT`]), with the same subnet, pool, lease time and timers
/// as [`config`].
pub fn isc_config(primary: bool) -> String {
    let (sid, me, peer, role) = if primary {
        (
            A,
            PEER_A,
            PEER_B,
            format!("primary;\n  mclt {MCLT};\n  split 128;"),
        )
    } else {
        (B, PEER_B, PEER_A, "secondary;".to_owned())
    };
    format!(
        r#"ddns-update-style none;
authoritative;
default-lease-time {LEASE};
max-lease-time {LEASE};
server-identifier {sid};
omapi-port 7911;
failover peer "pair" {{
  {role}
  address {me};
  port 647;
  peer address {peer};
  peer port 647;
  max-response-delay {MRD};
  max-unacked-updates 10;
  load balance max seconds {LB_MAX_SECS};
}}
subnet 10.81.0.0 netmask 255.255.0.0 {{
  option routers 10.81.0.1;
  pool {{
    failover peer "pair";
    range 10.81.1.0 10.81.3.255;
  }}
}}
"#
    )
}

/// The two servers, started on `net` and waited for until both are NORMAL.
pub struct Servers {
    pub a: Server,
    pub b: Server,
}

impl Servers {
    pub fn start(net: &PairNet, mode: Mode) -> Self {
        let a = Server::start_tandemd_with(&net.a, |d| config(d, true, mode));
        let b = Server::start_tandemd_with(&net.b, |d| config(d, false, mode));
        let s = Servers { a, b };
        s.both_normal(60);
        s
    }

    /// [`Servers::start`] with each side's config edited first (`a` the primary's, `b` the
    /// secondary's).
    pub fn start_edited(
        net: &PairNet,
        mode: Mode,
        a: impl FnOnce(String) -> String,
        b: impl FnOnce(String) -> String,
    ) -> Self {
        let a = Server::start_tandemd_with(&net.a, |d| a(config(d, true, mode)));
        let b = Server::start_tandemd_with(&net.b, |d| b(config(d, false, mode)));
        let s = Servers { a, b };
        s.both_normal(60);
        s
    }

    pub fn both_normal(&self, secs: u64) {
        let normal = |s: &str, p: &str| s == "normal" && p == "normal";
        wait_state(&self.a, secs, "A normal/normal", normal);
        wait_state(&self.b, secs, "B normal/normal", normal);
    }

    pub fn logs(&self) -> String {
        format!(
            "--- A ---\n{}\n--- B ---\n{}",
            tail(&self.a.log()),
            tail(&self.b.log())
        )
    }
}

pub fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// `(state, partner_state)` of relationship "pair", from `tandemctl status --json`.
pub fn rel(s: &Server) -> (String, String) {
    if s.kind == ServerKind::IscDhcpd {
        return s.isc_failover_state("pair");
    }
    let v = s.status_json().expect("status");
    let r = v["relationships"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == "pair"))
        .unwrap_or_else(|| panic!("no relationship \"pair\" in status: {v}"))
        .clone();
    let st = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
    (st("state"), st("partner_state"))
}

pub fn wait_state(s: &Server, secs: u64, what: &str, ok: impl Fn(&str, &str) -> bool) {
    let mut last = (String::new(), String::new());
    let reached = super::try_wait_until(Duration::from_secs(secs), || {
        last = rel(s);
        ok(&last.0, &last.1).then_some(())
    });
    assert!(
        reached.is_some(),
        "{what}: not reached in {secs} s; last (state, partner) = {last:?}\n--- log ---\n{}",
        tail(&s.log())
    );
}

pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Stops the capture, runs the pair's ACK checker, returns the messages and the ACK log.
pub fn finish(cap: &mut Capture) -> (Vec<DhcpMsg>, AckLog) {
    let msgs = cap.stop();
    let log = AckLog::from_msgs(&msgs);
    // On a violation, first the wire history of the first clients involved.
    for v in log.double_bindings().iter().take(2) {
        for client in [&v.first.ack.client, &v.second.ack.client] {
            eprintln!("--- wire history of {client} ---");
            for m in msgs.iter().filter(|m| &m.client_key() == client) {
                eprintln!(
                    "{}.{:06} type {} op {} xid {:08x} secs {} yiaddr {} ciaddr {} sid {:?} req {:?} lease {:?}",
                    m.time_us / 1_000_000,
                    m.time_us % 1_000_000,
                    m.msg_type,
                    m.op,
                    m.xid,
                    m.secs,
                    m.yiaddr,
                    m.ciaddr,
                    m.server_id,
                    m.requested,
                    m.lease_time
                );
            }
        }
    }
    let n = log.check();
    eprintln!("ACK checker: {n} ACKs, per server {:?}", log.per_server());
    (msgs, log)
}

/// Kills `dead` (`kill -9`), waits for `survivor` to be COMMUNICATIONS-INTERRUPTED and until
/// clearly after the dead one's last recorded operation (`fsm::PARTNER_DOWN_MARGIN`, 10 s,
/// so that the dead one, back, knows its partner served alone: RECOVER), then declares
/// partner-down on `survivor` as an operator does and waits for PARTNER-DOWN.
pub fn kill_and_partner_down(dead: &mut Server, survivor: &Server) {
    dead.kill9();
    let killed = super::server::unix_now();
    wait_state(
        survivor,
        3 * MRD + 30,
        "the survivor communications-interrupted",
        |st, _| st == "communications-interrupted",
    );
    while super::server::unix_now() < killed + 12 {
        std::thread::sleep(Duration::from_millis(200));
    }
    survivor
        .tandemctl(&["partner-down", "pair"])
        .unwrap_or_else(|e| panic!("partner-down: {e}"));
    wait_state(survivor, 30, "the survivor partner-down", |st, _| {
        st == "partner-down"
    });
}
