//! Leasequery against a real tandem failover pair (`common::pair`, load balance), asked by a
//! scripted relay agent: scapy (`common/scapy_leasequery.py`) in client namespace c0, at
//! 10.81.0.10, the pair's one trusted relay (`server.trusted_relays`, and so the default
//! `leasequery_from`), with bulk leasequery on (`bulk_leasequery = "0.0.0.0:67"`).
//!
//! * Relayed DORAs (giaddr 10.81.0.10, UDP from and to port 67, option 82 with circuit-id,
//!   remote-id and relay-id), each message sent to both servers: only the hash owner OFFERs
//!   and ACKs, echoing option 82, so both servers grant leases; clients with client-id
//!   `01 ‖ mac`, with another client-id and with none, two of them behind one remote-id. Each
//!   is renewed through the relay once its first, MCLT-capped, lease is acknowledged.
//! * On each server, for every lease, a DHCPLEASEQUERY (RFC 4388) by IP, by MAC, by
//!   client-id, and by remote-id (RFC 6148) is answered DHCPLEASEACTIVE from the server's
//!   address to the requestor's giaddr and port 67, on Ethernet to the requestor's MAC, with
//!   the lease's address, hardware address and client-id, its remaining time, the server
//!   identifier, the client's last-transaction time, the associated addresses (both of the
//!   shared remote-id), and the relay's option 82 byte for byte: the partner's copy of a
//!   binding carries the relay information too. By MAC whatever client-id the client sent.
//!   An unbound pool address is DHCPLEASEUNASSIGNED; an address outside every subnet, an
//!   unknown MAC, client-id and remote-id are DHCPLEASEUNKNOWN, with option 53 alone.
//! * On each server, bulk leasequery over TCP (RFC 6926) by relay-id, remote-id, MAC
//!   (every client, whatever its client-id) and client-id streams exactly the matching
//!   leases as DHCPLEASEACTIVE with the query's xid (base time, start time of state,
//!   dhcp-state ACTIVE, and the data-source flag REMOTE for the partner's bindings), then
//!   DHCPLEASEQUERYDONE; an unknown relay-id only the DONE; the query for all configured
//!   addresses every pool address, the leases ACTIVE and the rest UNASSIGNED, and so does
//!   the query by link (option 82 link selection) for the pair's subnet, while another link
//!   has nothing; a query by IP address, which RFC 6926 does not have, a DONE with status
//!   MalformedQuery.
//! * A requestor outside `leasequery_from` (a second address of the relay's interface) gets
//!   no answer over UDP, and no lease over TCP.
//! * After `kill -9` of the secondary and the operator's partner-down on the primary, the
//!   survivor still answers every UDP query and the bulk ones about every lease, the dead
//!   partner's included, with its option 82.
//!
//! Every check is made and the failures listed together, by query, server, expected and got.
//!
//! Run as root: `cargo test -p control --release --test e2e_leasequery`.

#[expect(
    dead_code,
    reason = "each e2e test binary uses a different part of the shared harness"
)]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use common::net::{Endpoint, Ns};
use common::pair::*;
use common::server::unix_now;
use control::failover::hash::client_bucket;
use serde_json::{Value, json};
use testkit::netns::mac_str;

/// The relay agent: client namespace c0's static address, trusted by both servers.
const RELAY: Ipv4Addr = Ipv4Addr::new(10, 81, 0, 10);
/// A second address of the relay's interface, outside `leasequery_from`.
const STRANGER: Ipv4Addr = Ipv4Addr::new(10, 81, 0, 99);
/// The relay's Relay-ID (RFC 6925), in every request it relays.
const RELAY_ID: &[u8] = b"relay-c0";
/// The remote-id two clients share (two CPE ports behind one modem).
const SHARED_REMOTE: &[u8] = b"cpe-shared";
/// Inside the pool, and none of the test's leases (`bind_all` checks).
const UNBOUND: Ipv4Addr = Ipv4Addr::new(10, 81, 3, 200);
/// Outside every subnet the pair serves (TEST-NET-1).
const FOREIGN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// An unknown MAC of this test's tag.
const UNKNOWN_MAC: [u8; 6] = [0x02, 0x81, 0x4c, 0xff, 0xff, 0xff];

const LEASEUNASSIGNED: u8 = 11;
const LEASEUNKNOWN: u8 = 12;
const LEASEACTIVE: u8 = 13;
const LEASEQUERYDONE: u8 = 15;
const OFFER: u8 = 2;
const ACK: u8 = 5;
/// Option 82's sub-options: circuit-id, remote-id (RFC 3046), relay-id (RFC 6925).
const CIRCUIT_ID: u8 = 1;
const REMOTE_ID: u8 = 2;
const RELAY_ID_SUB: u8 = 12;
/// What a UDP leasequery asks for (RFC 4388 section 6.2: option 51 and 82 only if asked).
const UDP_PRL: &[u8] = &[51, 54, 61, 82, 91, 92];
/// What a bulk leasequery asks for (RFC 6926 section 7.2).
const BULK_PRL: &[u8] = &[51, 54, 61, 82, 91, 151, 152, 153, 156, 157];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

fn sub_option(code: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![code, u8::try_from(value.len()).expect("short sub-option")];
    v.extend_from_slice(value);
    v
}

fn be32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.try_into().ok()?))
}

/// One relayed client: what the relay sends on its behalf.
#[derive(Debug, Clone)]
struct Client {
    mac: [u8; 6],
    client_id: Option<Vec<u8>>,
    remote_id: Vec<u8>,
    /// The whole option 82 the relay adds: circuit-id, remote-id, relay-id.
    option82: Vec<u8>,
}

impl Client {
    /// The server the RFC 3074 hash gives this client to in NORMAL (the hash is over the
    /// client-id when there is one).
    fn owner(&self) -> Ipv4Addr {
        owner(client_bucket(self.client_id.as_deref(), &self.mac, 6))
    }
}

/// The `n`th client of the test: a MAC (tag 0x4c) whose bucket, over the client-id `cid`
/// makes of it, is in the primary's half or the secondary's.
fn client(
    n: u8,
    primary: bool,
    cid: impl Fn([u8; 6]) -> Option<Vec<u8>>,
    remote_id: &[u8],
) -> Client {
    let (mac, client_id) = (0..=u16::MAX)
        .map(|k| {
            let [hi, lo] = k.to_be_bytes();
            [0x02, 0x81, 0x4c, n, hi, lo]
        })
        .map(|mac| (mac, cid(mac)))
        .find(|(mac, id)| (client_bucket(id.as_deref(), mac, 6) < 128) == primary)
        .expect("a MAC in each half");
    let mut option82 = sub_option(CIRCUIT_ID, format!("port-{n}").as_bytes());
    option82.extend(sub_option(REMOTE_ID, remote_id));
    option82.extend(sub_option(RELAY_ID_SUB, RELAY_ID));
    Client {
        mac,
        client_id,
        remote_id: remote_id.to_vec(),
        option82,
    }
}

/// Six clients, three in each hash half: client-id `01 ‖ mac` (the two behind the shared
/// remote-id), a client-id of another kind (type 0, a name), and none.
fn clients() -> Vec<Client> {
    let hw_id = |mac: [u8; 6]| {
        let mut id = vec![1];
        id.extend_from_slice(&mac);
        Some(id)
    };
    let named = |mac: [u8; 6]| {
        let mut id = vec![0];
        id.extend_from_slice(format!("host-{}", hex(&mac)).as_bytes());
        Some(id)
    };
    vec![
        client(0, true, hw_id, SHARED_REMOTE),
        client(1, false, hw_id, SHARED_REMOTE),
        client(2, true, named, b"cpe-2"),
        client(3, false, named, b"cpe-3"),
        client(4, true, |_| None, b"cpe-4"),
        client(5, false, |_| None, b"cpe-5"),
    ]
}

/// A DHCP message the script saw: its fields and options, and for one sniffed off the wire,
/// its headers and whether the relay's socket received it too.
#[derive(Debug, Clone)]
struct Msg {
    ty: Option<u8>,
    op: u8,
    htype: u8,
    hlen: u8,
    xid: u32,
    ciaddr: Ipv4Addr,
    yiaddr: Ipv4Addr,
    chaddr: String,
    options: BTreeMap<u8, Vec<u8>>,
    wire: Option<Wire>,
}

#[derive(Debug, Clone)]
struct Wire {
    eth_dst: String,
    ip_src: Ipv4Addr,
    ip_dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    delivered: bool,
}

impl Msg {
    fn from_json(v: &Value) -> Self {
        let num = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("no {k} in {v}"));
        let small = |k: &str| u8::try_from(num(k)).expect("a byte");
        let addr = |k: &str| -> Ipv4Addr {
            v[k].as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("no address {k} in {v}"))
        };
        let options = v["options"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, h)| (k.parse().expect("code"), unhex(h.as_str().expect("hex"))))
                    .collect()
            })
            .unwrap_or_default();
        let wire = v.get("ip_src").map(|_| Wire {
            eth_dst: v["eth_dst"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase(),
            ip_src: addr("ip_src"),
            ip_dst: addr("ip_dst"),
            sport: u16::try_from(num("sport")).expect("port"),
            dport: u16::try_from(num("dport")).expect("port"),
            delivered: v["delivered"].as_bool().unwrap_or(false),
        });
        Msg {
            ty: v["type"].as_u64().and_then(|t| u8::try_from(t).ok()),
            op: small("op"),
            htype: small("htype"),
            hlen: small("hlen"),
            xid: u32::try_from(num("xid")).expect("xid"),
            ciaddr: addr("ciaddr"),
            yiaddr: addr("yiaddr"),
            chaddr: v["chaddr"].as_str().unwrap_or_default().to_owned(),
            options,
            wire,
        }
    }

    fn opt(&self, code: u8) -> Option<&[u8]> {
        self.options.get(&code).map(Vec::as_slice)
    }

    fn opt_u32(&self, code: u8) -> Option<u32> {
        self.opt(code).and_then(be32)
    }

    fn opt_addrs(&self, code: u8) -> Option<BTreeSet<Ipv4Addr>> {
        let v = self.opt(code)?;
        Some(
            v.chunks(4)
                .map(|c| {
                    let a: [u8; 4] = c.try_into().unwrap_or_default();
                    Ipv4Addr::from(a)
                })
                .collect(),
        )
    }

    fn src(&self) -> Option<Ipv4Addr> {
        self.wire.as_ref().map(|w| w.ip_src)
    }

    /// A short account of the message, for failure reports.
    fn brief(&self) -> String {
        let opts: Vec<String> = self
            .options
            .iter()
            .map(|(k, v)| format!("{k}={}", hex(v)))
            .collect();
        format!(
            "type {:?} from {:?} ciaddr {} chaddr {} options [{}]",
            self.ty,
            self.src(),
            self.ciaddr,
            self.chaddr,
            opts.join(" ")
        )
    }
}

/// The scripted relay agent: `scapy_leasequery.py` in the relay's namespace, each run with a
/// JSON spec in and JSON lines out, in a temp dir kept when the test fails.
struct Relay {
    dir: tempfile::TempDir,
    ns: Ns,
    iface: String,
    mac: String,
    runs: std::cell::Cell<u32>,
}

impl Relay {
    fn new(ep: &Endpoint) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tdm-e2e-lq-")
            .tempdir()
            .expect("create the relay's temp dir");
        std::fs::write(
            dir.path().join("scapy_leasequery.py"),
            include_str!("common/scapy_leasequery.py"),
        )
        .expect("write scapy_leasequery.py");
        Relay {
            dir,
            ns: ep.ns.clone(),
            iface: ep.iface.clone(),
            mac: ep.mac.to_ascii_lowercase(),
            runs: std::cell::Cell::new(0),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs the script in `mode` with `args` then the spec and output files; its JSON lines.
    fn run(&self, mode: &str, args: &[&str], spec: &Value, timeout: Duration) -> Vec<Value> {
        let n = self.runs.get() + 1;
        self.runs.set(n);
        let spec_path = self.path(&format!("{n}-{mode}.json"));
        let out = self.path(&format!("{n}-{mode}.out"));
        let log = self.path(&format!("{n}-{mode}.log"));
        std::fs::write(&spec_path, spec.to_string()).expect("write the spec");
        let script = self.path("scapy_leasequery.py");
        let (script, spec_s, out_s) = (
            script.to_string_lossy(),
            spec_path.to_string_lossy(),
            out.to_string_lossy(),
        );
        let mut full = vec![common::PYTHON, &*script, mode];
        full.extend_from_slice(args);
        full.extend([&*spec_s, &*out_s]);
        let mut child = self.ns.spawn(&full, &log);
        let status = common::wait_exit(&mut child, timeout);
        if status.is_none() {
            common::reap(&mut child);
        }
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        if !status.is_some_and(|s| s.success()) {
            panic!(
                "scapy {mode} exited with {status:?} (timeout {timeout:?}); log {}:\n{}",
                log.display(),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

impl Drop for Relay {
    /// After a failure the temp dir (every run's spec, output and log) is kept.
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "--- the relay's specs, outputs and logs are kept in {} ---",
                self.dir.path().display()
            );
        }
    }
}

/// A lease the relay got for a client.
#[derive(Debug, Clone)]
struct Lease {
    client: Client,
    address: Ipv4Addr,
    /// The server that ACKed it.
    server: Ipv4Addr,
    /// Option 51 of the renewal's ACK.
    lease_time: u32,
}

/// What the relay should see in any reply to it: from `server`, to the relay's giaddr and
/// port 67 (RFC 4388 section 6.4.3), on Ethernet to its MAC, taken by its socket.
fn check_addressing(relay: &Relay, giaddr: Ipv4Addr, server: Ipv4Addr, m: &Msg) -> Vec<String> {
    let mut bad = Vec::new();
    let Some(w) = &m.wire else {
        return vec!["not seen on the wire".into()];
    };
    if m.op != 2 {
        bad.push(format!("op {} (not BOOTREPLY)", m.op));
    }
    if w.ip_src != server {
        bad.push(format!("IPv4 source {} (expected {server})", w.ip_src));
    }
    if w.ip_dst != giaddr {
        bad.push(format!(
            "IPv4 destination {} (expected giaddr {giaddr})",
            w.ip_dst
        ));
    }
    if (w.sport, w.dport) != (67, 67) {
        bad.push(format!(
            "UDP ports {} → {} (expected 67 → 67)",
            w.sport, w.dport
        ));
    }
    if w.eth_dst != relay.mac {
        bad.push(format!(
            "Ethernet destination {} (expected the requestor's {})",
            w.eth_dst, relay.mac
        ));
    }
    if !w.delivered {
        bad.push("not received by a socket bound to giaddr:67 (checksums, addressing)".into());
    }
    bad
}

/// The relayed DORAs and renewals; panics unless every client is bound by its hash owner.
fn bind_all(relay: &Relay, s: &Servers, clients: &[Client]) -> Vec<Lease> {
    let spec = json!({
        "servers": [A.to_string(), B.to_string()],
        "clients": clients.iter().map(|c| json!({
            "mac": mac_str(c.mac),
            "cid": c.client_id.as_deref().map(hex),
            "opt82": hex(&c.option82),
        })).collect::<Vec<_>>(),
        "renew_after": 2,
        "renew_tries": 5,
        "min_lease": MCLT,
    });
    let out = relay.run(
        "dora",
        &[&relay.iface, &RELAY.to_string()],
        &spec,
        Duration::from_secs(300),
    );
    assert_eq!(out.len(), clients.len(), "{out:?}");
    let mut leases = Vec::new();
    let mut bad = Vec::new();
    for (c, r) in clients.iter().zip(&out) {
        let who = format!(
            "client {} (cid {:?})",
            mac_str(c.mac),
            c.client_id.as_deref().map(hex)
        );
        let want = c.owner();
        let msgs = |k: &str| -> Vec<Msg> {
            r[k].as_array()
                .map(|a| a.iter().map(Msg::from_json).collect())
                .unwrap_or_default()
        };
        let offers: Vec<Msg> = msgs("offers")
            .into_iter()
            .filter(|m| m.ty == Some(OFFER))
            .collect();
        let offered_by: BTreeSet<_> = offers.iter().filter_map(Msg::src).collect();
        if offered_by != BTreeSet::from([want]) {
            bad.push(format!(
                "{who}: OFFERed by {offered_by:?}, expected by its hash owner {want} alone"
            ));
            continue;
        }
        let acks: Vec<Msg> = msgs("request")
            .into_iter()
            .filter(|m| m.ty == Some(ACK))
            .collect();
        let Some(ack) = acks.first() else {
            bad.push(format!(
                "{who}: no ACK to the relayed REQUEST: {:?}",
                msgs("request")
            ));
            continue;
        };
        if acks.iter().any(|a| a.src() != Some(want)) || ack.yiaddr != offers[0].yiaddr {
            bad.push(format!(
                "{who}: ACKs {acks:?}, expected one from {want} of {}",
                offers[0].yiaddr
            ));
        }
        for m in offers.iter().chain(acks.iter()) {
            for e in check_addressing(relay, RELAY, want, m) {
                bad.push(format!("{who}: type {:?}: {e}", m.ty));
            }
            if m.opt(82) != Some(c.option82.as_slice()) {
                bad.push(format!(
                    "{who}: type {:?} echoes option 82 {:?}, expected {}",
                    m.ty,
                    m.opt(82).map(hex),
                    hex(&c.option82)
                ));
            }
        }
        let renewed = r["renewals"]
            .as_array()
            .and_then(|a| a.last())
            .and_then(|g| g.as_array())
            .and_then(|g| g.iter().map(Msg::from_json).find(|m| m.ty == Some(ACK)));
        let Some(renewed) = renewed else {
            bad.push(format!(
                "{who}: the renewal through the relay got no ACK: {}",
                r["renewals"]
            ));
            continue;
        };
        let lease_time = renewed.opt_u32(51).unwrap_or(0);
        if renewed.yiaddr != ack.yiaddr || renewed.src() != Some(want) || lease_time <= MCLT {
            bad.push(format!(
                "{who}: renewed {} by {:?} for {lease_time} s; expected {} by {want}, longer \
                 than the MCLT once the partner acknowledged the binding",
                renewed.yiaddr,
                renewed.src(),
                ack.yiaddr
            ));
        }
        leases.push(Lease {
            client: c.clone(),
            address: ack.yiaddr,
            server: want,
            lease_time,
        });
    }
    assert!(
        bad.is_empty(),
        "relayed DORA:\n{}\n{}",
        bad.join("\n"),
        s.logs()
    );
    let addrs: BTreeSet<_> = leases.iter().map(|l| l.address).collect();
    assert_eq!(addrs.len(), leases.len(), "an address twice: {leases:?}");
    assert!(
        !addrs.contains(&UNBOUND),
        "{UNBOUND} was bound: pick another"
    );
    for server in [A, B] {
        assert!(
            leases.iter().any(|l| l.server == server),
            "{server} granted nothing: {leases:?}"
        );
    }
    leases
}

/// Waits until both servers' tables hold every lease, active, for its client.
fn wait_replicated(s: &Servers, leases: &[Lease]) {
    for (name, server) in [("A", &s.a), ("B", &s.b)] {
        let mut missing = Vec::new();
        let done = common::try_wait_until(Duration::from_secs(30), || {
            let table: BTreeMap<Ipv4Addr, String> = server
                .active_leases()
                .into_iter()
                .map(|l| (l.address, l.chaddr))
                .collect();
            missing = leases
                .iter()
                .filter(|l| table.get(&l.address) != Some(&mac_str(l.client.mac)))
                .map(|l| l.address)
                .collect();
            missing.is_empty().then_some(())
        });
        assert!(
            done.is_some(),
            "{name}'s table lacks {missing:?} after 30 s\n{}",
            s.logs()
        );
    }
}

/// One UDP leasequery and what it must be answered.
struct UdpQuery {
    id: String,
    spec: Value,
    expect: Expect,
}

enum Expect {
    /// DHCPLEASEACTIVE for one of `addresses` (all of them in option 92 when `associated`),
    /// the lease at ciaddr described as bound.
    Active {
        addresses: BTreeSet<Ipv4Addr>,
        associated: bool,
    },
    Unassigned(Ipv4Addr),
    Unknown,
    /// No answer at all.
    Silence,
}

/// Every kind of UDP query for every lease, and the negative ones, to `server`.
fn udp_queries(server: Ipv4Addr, leases: &[Lease]) -> Vec<UdpQuery> {
    let mut qs = Vec::new();
    let base = |id: &str| {
        json!({
            "id": format!("{server}/{id}"),
            "server": server.to_string(),
            "prl": UDP_PRL,
        })
    };
    let mut push = |id: String, fields: Value, expect: Expect| {
        let mut spec = base(&id);
        for (k, v) in fields.as_object().expect("object") {
            spec[k] = v.clone();
        }
        qs.push(UdpQuery {
            id: format!("{server}/{id}"),
            spec,
            expect,
        });
    };
    for l in leases {
        let one = BTreeSet::from([l.address]);
        let active = |associated| Expect::Active {
            addresses: one.clone(),
            associated,
        };
        let mac = mac_str(l.client.mac);
        push(
            format!("ip {}", l.address),
            json!({"ciaddr": l.address.to_string()}),
            active(false),
        );
        // By MAC, whatever client-id the client sent (RFC 4388 §6.4.1): through the client
        // index for `htype ‖ chaddr` and `01 ‖ mac`, else a scan.
        push(format!("mac {mac}"), json!({"mac": mac}), active(true));
        if let Some(cid) = &l.client.client_id {
            push(
                format!("client-id {}", hex(cid)),
                json!({"cid": hex(cid)}),
                active(true),
            );
        }
        let remote: BTreeSet<_> = leases
            .iter()
            .filter(|o| o.client.remote_id == l.client.remote_id)
            .map(|o| o.address)
            .collect();
        push(
            format!(
                "remote-id {} (of {})",
                String::from_utf8_lossy(&l.client.remote_id),
                l.address
            ),
            json!({"remote_id": hex(&l.client.remote_id)}),
            Expect::Active {
                addresses: remote,
                associated: true,
            },
        );
    }
    push(
        format!("ip {UNBOUND} (pool, unbound)"),
        json!({"ciaddr": UNBOUND.to_string()}),
        Expect::Unassigned(UNBOUND),
    );
    push(
        format!("ip {FOREIGN} (no subnet)"),
        json!({"ciaddr": FOREIGN.to_string()}),
        Expect::Unknown,
    );
    push(
        format!("mac {} (unknown)", mac_str(UNKNOWN_MAC)),
        json!({"mac": mac_str(UNKNOWN_MAC)}),
        Expect::Unknown,
    );
    push(
        "client-id (unknown)".into(),
        json!({"cid": hex(b"\x00nobody")}),
        Expect::Unknown,
    );
    push(
        "remote-id (unknown)".into(),
        json!({"remote_id": hex(b"cpe-nobody")}),
        Expect::Unknown,
    );
    qs
}

/// What the options of a DHCPLEASEACTIVE say about the lease at its ciaddr; the failures.
fn check_active_lease(m: &Msg, l: &Lease, server: Ipv4Addr, elapsed: u64) -> Vec<String> {
    let mut bad = Vec::new();
    let mac = hex(&l.client.mac);
    if (m.htype, m.hlen, m.chaddr.as_str()) != (1, 6, mac.as_str()) {
        bad.push(format!(
            "htype/hlen/chaddr {}/{}/{} (expected 1/6/{mac})",
            m.htype, m.hlen, m.chaddr
        ));
    }
    if m.opt(82) != Some(l.client.option82.as_slice()) {
        bad.push(format!(
            "option 82 {:?} (expected the relay's {})",
            m.opt(82).map(hex),
            hex(&l.client.option82)
        ));
    }
    if let Some(cid) = &l.client.client_id
        && m.opt(61) != Some(cid.as_slice())
    {
        bad.push(format!(
            "option 61 {:?} (expected {})",
            m.opt(61).map(hex),
            hex(cid)
        ));
    }
    match m.opt_u32(51) {
        Some(t) if t > 0 && t <= l.lease_time => {}
        other => bad.push(format!(
            "option 51 {other:?} (expected the remaining time, 1..={} s)",
            l.lease_time
        )),
    }
    match m.opt_u32(91) {
        Some(t) if u64::from(t) <= elapsed + 5 => {}
        other => bad.push(format!(
            "option 91 {other:?} (expected the seconds since the renewal, at most {elapsed} + 5)"
        )),
    }
    if m.opt(54) != Some(&server.octets()[..]) {
        bad.push(format!(
            "option 54 {:?} (expected {server})",
            m.opt(54).map(hex)
        ));
    }
    bad
}

/// Runs `queries` from `giaddr` and checks each answer; the failures, one line each.
fn run_udp(
    relay: &Relay,
    giaddr: Ipv4Addr,
    queries: &[UdpQuery],
    leases: &[Lease],
    started: u64,
) -> Vec<String> {
    let spec = json!({
        "queries": queries.iter().map(|q| {
            let mut v = q.spec.clone();
            if matches!(q.expect, Expect::Silence) {
                v["timeout"] = json!(2);
            }
            v
        }).collect::<Vec<_>>(),
    });
    let out = relay.run(
        "query",
        &[&relay.iface, &giaddr.to_string()],
        &spec,
        Duration::from_secs(60 + 4 * queries.len() as u64),
    );
    assert_eq!(out.len(), queries.len(), "{out:?}");
    let by_addr: BTreeMap<Ipv4Addr, &Lease> = leases.iter().map(|l| (l.address, l)).collect();
    let elapsed = unix_now().saturating_sub(started);
    let mut bad = Vec::new();
    for (q, r) in queries.iter().zip(&out) {
        let server: Ipv4Addr = q.spec["server"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("server");
        let replies: Vec<Msg> = r["replies"]
            .as_array()
            .map(|a| a.iter().map(Msg::from_json).collect())
            .unwrap_or_default();
        let (ours, others): (Vec<Msg>, Vec<Msg>) =
            replies.into_iter().partition(|m| m.src() == Some(server));
        for m in &others {
            eprintln!(
                "note: query {} to {server} answered from elsewhere too: {}",
                q.id,
                m.brief()
            );
        }
        let mut fail = |what: String| bad.push(format!("query {}: {what}", q.id));
        if let Expect::Silence = q.expect {
            for m in ours.iter().chain(&others) {
                fail(format!("expected no answer, got {}", m.brief()));
            }
            continue;
        }
        let m = match ours.as_slice() {
            [m] => m,
            [] => {
                fail("no answer within 3 s".into());
                continue;
            }
            many => {
                fail(format!(
                    "{} answers: {:?}",
                    many.len(),
                    many.iter().map(Msg::brief).collect::<Vec<_>>()
                ));
                continue;
            }
        };
        for e in check_addressing(relay, giaddr, server, m) {
            fail(e);
        }
        let got = m.brief();
        match &q.expect {
            Expect::Active {
                addresses,
                associated,
            } => {
                if m.ty != Some(LEASEACTIVE) {
                    fail(format!(
                        "expected DHCPLEASEACTIVE for {addresses:?}, got {got}"
                    ));
                    continue;
                }
                let Some(l) = addresses.contains(&m.ciaddr).then(|| by_addr[&m.ciaddr]) else {
                    fail(format!(
                        "ciaddr {} (expected one of {addresses:?}): {got}",
                        m.ciaddr
                    ));
                    continue;
                };
                for e in check_active_lease(m, l, server, elapsed) {
                    fail(format!("{e}: {got}"));
                }
                // RFC 4388 section 6.4.2: every address of the client in option 92 when
                // there are several; with one, option 92 may be left out.
                match m.opt_addrs(92) {
                    Some(a) if *associated && a != *addresses => {
                        fail(format!("option 92 {a:?} (expected {addresses:?}): {got}"))
                    }
                    None if *associated && addresses.len() > 1 => {
                        fail(format!("no option 92 (expected {addresses:?}): {got}"))
                    }
                    _ => {}
                }
            }
            Expect::Unassigned(a) => {
                if m.ty != Some(LEASEUNASSIGNED) || m.ciaddr != *a {
                    fail(format!("expected DHCPLEASEUNASSIGNED for {a}, got {got}"));
                } else if m.options.keys().any(|c| ![53, 54].contains(c)) {
                    // RFC 4388 section 6.4.2: "No other options are returned" (54 names the
                    // server, as in RFC 6926 section 8.3).
                    fail(format!(
                        "options beyond 53 and 54 in DHCPLEASEUNASSIGNED: {got}"
                    ));
                }
            }
            Expect::Unknown => {
                if m.ty != Some(LEASEUNKNOWN) {
                    fail(format!("expected DHCPLEASEUNKNOWN, got {got}"));
                } else if m.options.keys().any(|c| *c != 53) {
                    // RFC 4388 section 6.4: "MUST NOT include other DHCP options".
                    fail(format!("options beyond 53 in DHCPLEASEUNKNOWN: {got}"));
                }
            }
            Expect::Silence => unreachable!(),
        }
    }
    eprintln!(
        "UDP: {} queries from {giaddr}, {} failures",
        queries.len(),
        bad.len()
    );
    bad
}

/// One bulk leasequery and the addresses it must stream.
struct BulkQuery {
    id: String,
    spec: Value,
    expect: Bulk,
}

enum Bulk {
    /// A DHCPLEASEACTIVE for each of these addresses and nothing else, then DONE.
    Active(BTreeSet<Ipv4Addr>),
    /// Every address of the pool: DHCPLEASEACTIVE for the leases, DHCPLEASEUNASSIGNED for the
    /// rest, then DONE.
    AllConfigured,
    /// DONE alone, with status-code MalformedQuery (3).
    Malformed,
}

/// The pool of the pair's one scope, `10.81.1.0-10.81.3.255`.
fn pool() -> BTreeSet<Ipv4Addr> {
    (u32::from(Ipv4Addr::new(10, 81, 1, 0))..=u32::from(Ipv4Addr::new(10, 81, 3, 255)))
        .map(Ipv4Addr::from)
        .collect()
}

/// Bulk queries by relay-id, remote-id and MAC, and for all configured addresses; with
/// `all`, by client-id too, and one by IP address, which RFC 6926 does not have (section
/// 7.2 lists no query by `ciaddr`, and tandem answers MalformedQuery).
fn bulk_queries(leases: &[Lease], all: bool) -> Vec<BulkQuery> {
    let every: BTreeSet<_> = leases.iter().map(|l| l.address).collect();
    let mut qs = vec![
        BulkQuery {
            id: format!("relay-id {}", String::from_utf8_lossy(RELAY_ID)),
            spec: json!({"relay_id": hex(RELAY_ID)}),
            expect: Bulk::Active(every),
        },
        BulkQuery {
            id: "relay-id relay-zz (unknown)".into(),
            spec: json!({"relay_id": hex(b"relay-zz")}),
            expect: Bulk::Active(BTreeSet::new()),
        },
        BulkQuery {
            id: "all configured addresses".into(),
            spec: json!({}),
            expect: Bulk::AllConfigured,
        },
        // By link (option 82 link selection): the pair's subnet is all of it; a link the
        // servers do not serve has nothing.
        BulkQuery {
            id: "link 10.81.0.0".into(),
            spec: json!({"link": "10.81.0.0"}),
            expect: Bulk::AllConfigured,
        },
        BulkQuery {
            id: "link 192.0.2.0 (not served)".into(),
            spec: json!({"link": "192.0.2.0"}),
            expect: Bulk::Active(BTreeSet::new()),
        },
    ];
    if all {
        qs.push(BulkQuery {
            id: format!("ip {} (no such query)", leases[0].address),
            spec: json!({"ciaddr": leases[0].address.to_string()}),
            expect: Bulk::Malformed,
        });
    }
    let remotes: BTreeSet<&Vec<u8>> = leases.iter().map(|l| &l.client.remote_id).collect();
    for r in remotes {
        qs.push(BulkQuery {
            id: format!("remote-id {}", String::from_utf8_lossy(r)),
            spec: json!({"remote_id": hex(r)}),
            expect: Bulk::Active(
                leases
                    .iter()
                    .filter(|l| &l.client.remote_id == r)
                    .map(|l| l.address)
                    .collect(),
            ),
        });
    }
    for l in leases {
        let one = BTreeSet::from([l.address]);
        qs.push(BulkQuery {
            id: format!("mac {}", mac_str(l.client.mac)),
            spec: json!({"mac": mac_str(l.client.mac)}),
            expect: Bulk::Active(one.clone()),
        });
        if let Some(cid) = l.client.client_id.as_ref().filter(|_| all) {
            qs.push(BulkQuery {
                id: format!("client-id {}", hex(cid)),
                spec: json!({"cid": hex(cid)}),
                expect: Bulk::Active(one),
            });
        }
    }
    for q in &mut qs {
        q.spec["id"] = json!(q.id);
        q.spec["prl"] = json!(BULK_PRL);
    }
    qs
}

/// The status-code (151) of a message: the code and its text; `None` without the option.
fn status(m: &Msg) -> Option<(u8, String)> {
    let v = m.opt(151)?;
    let (code, text) = v.split_first()?;
    Some((*code, String::from_utf8_lossy(text).into_owned()))
}

/// Runs `queries` on one TCP connection to `server` and checks each stream; the failures.
fn run_bulk(
    relay: &Relay,
    server: Ipv4Addr,
    queries: &[BulkQuery],
    leases: &[Lease],
    started: u64,
) -> Vec<String> {
    let spec = json!({
        "server": server.to_string(),
        "timeout": 10,
        "queries": queries.iter().map(|q| q.spec.clone()).collect::<Vec<_>>(),
    });
    let out = relay.run(
        "bulk",
        &[&RELAY.to_string()],
        &spec,
        Duration::from_secs(60 + 12 * queries.len() as u64),
    );
    assert_eq!(out.len(), queries.len(), "{out:?}");
    let by_addr: BTreeMap<Ipv4Addr, &Lease> = leases.iter().map(|l| (l.address, l)).collect();
    let every: BTreeSet<Ipv4Addr> = by_addr.keys().copied().collect();
    let now = unix_now();
    let elapsed = now.saturating_sub(started);
    let mut bad = Vec::new();
    for (q, r) in queries.iter().zip(&out) {
        let mut fail = |what: String| bad.push(format!("bulk query {} to {server}: {what}", q.id));
        if let Some(e) = r["error"].as_str() {
            fail(format!("the connection failed: {e}"));
            continue;
        }
        let xid = u32::try_from(r["xid"].as_u64().expect("xid")).expect("xid");
        let msgs: Vec<Msg> = r["messages"]
            .as_array()
            .map(|a| a.iter().map(Msg::from_json).collect())
            .unwrap_or_default();
        let Some((done, rest)) = msgs.split_last() else {
            fail("no message".into());
            continue;
        };
        if done.ty != Some(LEASEQUERYDONE) {
            fail(format!(
                "the last message is not DHCPLEASEQUERYDONE: {}",
                done.brief()
            ));
        }
        for m in &msgs {
            if m.xid != xid || m.op != 2 {
                fail(format!(
                    "xid {:#x} op {} (expected {xid:#x}, 2): {}",
                    m.xid,
                    m.op,
                    m.brief()
                ));
            }
        }
        if let Bulk::Malformed = q.expect {
            match status(done) {
                Some((3, _)) if rest.is_empty() => {}
                other => fail(format!(
                    "expected DONE alone with status MalformedQuery (3); got status {other:?} \
                     after {} messages",
                    rest.len()
                )),
            }
            continue;
        }
        if let Some(st) = status(done).filter(|(code, _)| *code != 0) {
            fail(format!("DONE with status-code {st:?} (expected success)"));
        }
        if let Some(first) = rest.first()
            && first.opt(54) != Some(&server.octets()[..])
        {
            fail(format!(
                "the first response has no server-id {server}: {}",
                first.brief()
            ));
        }
        let mut active = BTreeSet::new();
        let mut unassigned = BTreeSet::new();
        for m in rest {
            let got = m.brief();
            if !active.insert(m.ciaddr) || unassigned.contains(&m.ciaddr) {
                fail(format!("{} streamed twice", m.ciaddr));
            }
            match m.opt_u32(152) {
                Some(t) if u64::from(t).abs_diff(now) <= 60 => {}
                other => fail(format!(
                    "base-time (152) {other:?}, not within a minute of {now}: {got}"
                )),
            }
            if m.ty == Some(LEASEUNASSIGNED) && matches!(q.expect, Bulk::AllConfigured) {
                active.remove(&m.ciaddr);
                unassigned.insert(m.ciaddr);
                // FREE or BACKUP: AVAILABLE where this server allocates from it, else
                // REMOTE (RFC 6926 section 6.2.7).
                if !matches!(m.opt(156), Some([1 | 7])) {
                    fail(format!(
                        "dhcp-state (156) {:?} (expected AVAILABLE or REMOTE): {got}",
                        m.opt(156).map(hex)
                    ));
                }
                continue;
            }
            if m.ty != Some(LEASEACTIVE) {
                fail(format!("expected DHCPLEASEACTIVE, got {got}"));
                continue;
            }
            let Some(l) = by_addr.get(&m.ciaddr) else {
                fail(format!("{} is no lease of ours: {got}", m.ciaddr));
                continue;
            };
            // The first response alone carries the server-id (RFC 6926 section 7.3); the
            // rest of `check_active_lease` holds for every one.
            for e in check_active_lease(m, l, server, elapsed) {
                if !e.starts_with("option 54") {
                    fail(format!("{e}: {got}"));
                }
            }
            match m.opt_u32(153) {
                Some(t) if u64::from(t) <= elapsed + 5 => {}
                other => fail(format!(
                    "start-time-of-state (153) {other:?} (expected at most {elapsed} + 5 s \
                     ago): {got}"
                )),
            }
            if m.opt(156) != Some(&[2][..]) {
                fail(format!(
                    "dhcp-state (156) {:?} (expected ACTIVE, 02): {got}",
                    m.opt(156).map(hex)
                ));
            }
            let remote = m
                .opt(157)
                .and_then(|f| f.first())
                .is_some_and(|f| f & 1 == 1);
            if remote != (l.server != server) {
                fail(format!(
                    "data-source (157) {:?}: the binding was made by {}, the answer is \
                     {server}'s: {got}",
                    m.opt(157).map(hex),
                    l.server
                ));
            }
        }
        match &q.expect {
            Bulk::Active(want) if active != *want => {
                fail(format!("streamed {active:?}, expected exactly {want:?}"));
            }
            Bulk::AllConfigured => {
                if active != every {
                    fail(format!(
                        "DHCPLEASEACTIVE for {active:?}, expected exactly {every:?}"
                    ));
                }
                let rest_of_pool: BTreeSet<_> = pool().difference(&every).copied().collect();
                if unassigned != rest_of_pool {
                    fail(format!(
                        "DHCPLEASEUNASSIGNED for {} addresses, expected the {} others of the \
                         pool; missing {:?}, extra {:?}",
                        unassigned.len(),
                        rest_of_pool.len(),
                        rest_of_pool
                            .difference(&unassigned)
                            .take(5)
                            .collect::<Vec<_>>(),
                        unassigned
                            .difference(&rest_of_pool)
                            .take(5)
                            .collect::<Vec<_>>()
                    ));
                }
            }
            _ => {}
        }
    }
    eprintln!(
        "bulk: {} queries to {server}, {} messages, {} failures",
        queries.len(),
        out.iter()
            .map(|r| r["messages"].as_array().map_or(0, Vec::len))
            .sum::<usize>(),
        bad.len()
    );
    bad
}

/// Adds the relay and bulk leasequery to a pair config's `[server]`.
fn with_leasequery(config: String) -> String {
    config.replacen(
        "[server]\n",
        &format!("[server]\ntrusted_relays = [\"{RELAY}\"]\nbulk_leasequery = \"0.0.0.0:67\"\n"),
        1,
    )
}

/// All the checks of one server: UDP queries of every kind, bulk queries (every kind with
/// `all`); the failures.
fn check_server(
    relay: &Relay,
    server: Ipv4Addr,
    leases: &[Lease],
    started: u64,
    all: bool,
) -> Vec<String> {
    let mut bad = run_udp(relay, RELAY, &udp_queries(server, leases), leases, started);
    bad.extend(run_bulk(
        relay,
        server,
        &bulk_queries(leases, all),
        leases,
        started,
    ));
    bad
}

fn report(phase: &str, bad: &[String], s: &Servers) {
    if bad.is_empty() {
        eprintln!("{phase}: every check passed");
        return;
    }
    let mut msg = format!("{phase}: {} failures\n", bad.len());
    for b in bad {
        let _ = writeln!(msg, "  {b}");
    }
    panic!("{msg}{}", s.logs());
}

#[test]
fn leasequery_answers_for_every_lease_from_both_partners_and_after_a_failover() {
    let net = PairNet::new(1);
    let mut s = Servers::start_edited(&net, Mode::LoadBalance, with_leasequery, with_leasequery);
    let relay = Relay::new(&net.clients[0]);
    let started = unix_now();
    let clients = clients();
    let leases = bind_all(&relay, &s, &clients);
    for l in &leases {
        eprintln!(
            "{} (cid {:?}, remote-id {}) bound to {} by {} for {} s",
            mac_str(l.client.mac),
            l.client.client_id.as_deref().map(hex),
            String::from_utf8_lossy(&l.client.remote_id),
            l.address,
            l.server,
            l.lease_time
        );
    }
    wait_replicated(&s, &leases);

    // Both partners answer about every lease, each's own and the other's.
    let mut bad = Vec::new();
    for server in [A, B] {
        bad.extend(check_server(&relay, server, &leases, started, true));
    }
    report("both partners in NORMAL", &bad, &s);

    // A requestor outside `leasequery_from`: the relay's second address.
    net.clients[0].ns.run(&[
        "ip",
        "addr",
        "add",
        &format!("{STRANGER}/16"),
        "dev",
        "eth0",
    ]);
    let l0 = &leases[0];
    let stranger: Vec<UdpQuery> = [A, B]
        .into_iter()
        .flat_map(|server| {
            [
                json!({"ciaddr": l0.address.to_string()}),
                json!({"mac": mac_str(l0.client.mac)}),
                json!({"remote_id": hex(&l0.client.remote_id)}),
            ]
            .into_iter()
            .enumerate()
            .map(move |(k, fields)| {
                let id = format!("{server}/stranger {STRANGER} #{k}");
                let mut spec = json!({"id": id, "server": server.to_string(), "prl": UDP_PRL});
                for (key, v) in fields.as_object().expect("object") {
                    spec[key] = v.clone();
                }
                UdpQuery {
                    id,
                    spec,
                    expect: Expect::Silence,
                }
            })
        })
        .collect();
    let mut bad = run_udp(&relay, STRANGER, &stranger, &leases, started);
    for server in [A, B] {
        let spec = json!({
            "server": server.to_string(),
            "timeout": 5,
            "queries": [{"id": "stranger relay-id", "relay_id": hex(RELAY_ID), "prl": BULK_PRL}],
        });
        let out = relay.run(
            "bulk",
            &[&STRANGER.to_string()],
            &spec,
            Duration::from_secs(60),
        );
        let msgs: Vec<Msg> = out[0]["messages"]
            .as_array()
            .map(|a| a.iter().map(Msg::from_json).collect())
            .unwrap_or_default();
        let refused = msgs.last().is_some_and(|m| {
            m.ty == Some(LEASEQUERYDONE) && m.opt(151).and_then(|s| s.first()) == Some(&4)
        });
        // Refused: the connection closed or reset, or a DONE with status NotAllowed (4).
        if msgs.iter().any(|m| m.ty != Some(LEASEQUERYDONE)) || (!msgs.is_empty() && !refused) {
            bad.push(format!(
                "bulk query from {STRANGER} to {server}: expected a refusal, got {:?}",
                msgs.iter().map(Msg::brief).collect::<Vec<_>>()
            ));
        } else {
            eprintln!(
                "bulk query from {STRANGER} to {server} refused: {}",
                out[0]["error"].as_str().unwrap_or("DONE NotAllowed")
            );
        }
    }
    report("a requestor outside leasequery_from", &bad, &s);

    // The secondary dies; the operator puts the primary in PARTNER-DOWN.
    kill_and_partner_down(&mut s.b, &s.a);
    let bad = check_server(&relay, A, &leases, started, false);
    report("the survivor in PARTNER-DOWN", &bad, &s);
}
