//! The XDP datapath against the rest of tandem: tandemd with `datapath = "xdp"` (and
//! `"auto"`) serves real clients over AF_XDP in the e2e harness's namespaces, and the
//! load-balancing filter of the XDP program (C, in the kernel) puts every client in the same
//! RFC 3074 bucket as the failover code's Rust reference (`control::failover::hash`).
//!
//! Run as root: `cargo test -p control --test e2e_xdp -- --nocapture`.

#[expect(
    dead_code,
    reason = "each e2e test binary uses a different part of the shared harness"
)]
mod common;

use std::time::Duration;

use common::accounting::Accounting;
use common::clients::{Dhclient, PerfTarget, Perfdhcp, Udhcpc};
use common::net::{Layout, Ns, TestNet};
use common::server::{Server, ServerKind, ServerSpec};
use control::failover::hash::{Hba, client_bucket, pearson};
use dataplane::xdp::{LB_ON, LbConfig, XdpProgram};

/// A direct-layout network with `clients` clients and tandemd on `datapath`.
fn start(datapath: &'static str, clients: usize) -> (Server, TestNet) {
    start_as(datapath, clients, None)
}

/// [`start`], tandemd becoming `user` once started (as root).
fn start_as(
    datapath: &'static str,
    clients: usize,
    user: Option<&'static str>,
) -> (Server, TestNet) {
    common::require_e2e();
    let net = TestNet::new(Layout::Direct, clients);
    let spec = ServerSpec {
        datapath,
        user,
        ..ServerSpec::direct(&net, Duration::from_secs(600))
    };
    let server = Server::start(ServerKind::Tandemd, &net.server.ns, &spec);
    (server, net)
}

/// `tandemctl status --json`: the datapath and the frames the workers received.
fn datapath_and_rx(server: &Server) -> (String, u64) {
    let status = server.status_json().expect("tandemctl status --json");
    let datapath = status["datapath"].as_str().unwrap_or_default().to_owned();
    let workers = status["workers"].as_array().cloned().unwrap_or_default();
    assert!(!workers.is_empty(), "no workers in {status}");
    for w in &workers {
        assert_eq!(w["datapath"].as_str(), Some(datapath.as_str()), "{w}");
    }
    let rx = workers.iter().filter_map(|w| w["rx"].as_u64()).sum();
    (datapath, rx)
}

/// Also the proof that the capabilities tandemd keeps when it gives up root (those the
/// packaged unit grants) are enough for XDP and AF_XDP: it runs as `nobody` here.
#[test]
fn tandemd_on_xdp_serves_dhclient_and_udhcpc() {
    let (server, net) = start_as("xdp", 2, Some("nobody"));
    let (datapath, rx0) = datapath_and_rx(&server);
    assert_eq!(datapath, "xdp");
    assert_eq!(rx0, 0);
    let pid = server.pid().expect("running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let (nobody, _) = dataplane::sys::lookup_user("nobody")
        .expect("getpwnam")
        .expect("a nobody user");
    assert!(
        status.contains("Name:\ttandemd")
            && status.contains(&format!("Uid:\t{nobody}\t{nobody}\t{nobody}\t{nobody}")),
        "{status}"
    );

    let mut dhclient = Dhclient::new(&net.clients[0]);
    let a = dhclient
        .obtain()
        .unwrap_or_else(|e| panic!("dhclient: {e}\n{}", server.log()));
    let mut udhcpc = Udhcpc::new(&net.clients[1]);
    let b = udhcpc
        .obtain_once()
        .unwrap_or_else(|e| panic!("udhcpc: {e}\n{}", server.log()));
    assert_ne!(a.address, b.address);
    let active = server.active_leases();
    for (lease, ep) in [(&a, &net.clients[0]), (&b, &net.clients[1])] {
        assert!(
            active
                .iter()
                .any(|l| l.address == lease.address && l.chaddr == ep.mac),
            "no active lease {} for {} in {active:?}",
            lease.address,
            ep.mac
        );
    }
    dhclient.release().unwrap_or_else(|e| panic!("{e}"));
    // DISCOVER + REQUEST each, and the RELEASE (counted once the worker has read it).
    common::wait_until(Duration::from_secs(30), "5 frames counted", || {
        (datapath_and_rx(&server).1 >= 5).then_some(())
    });
    assert!(
        server.log().contains("XDP program attached"),
        "{}",
        server.log()
    );
}

/// Whether the server's interface has an XDP program attached.
fn xdp_attached(net: &TestNet) -> bool {
    net.server
        .ns
        .run(&["ip", "-d", "link", "show", &net.server.iface])
        .contains("prog/xdp")
}

#[test]
fn xdp_goes_with_tandemd_on_sigterm_and_on_kill_9() {
    let (mut server, net) = start("xdp", 1);
    assert!(xdp_attached(&net), "serving, the program is attached");
    // kill -9: the program was attached through a bpf_link the kernel drops with the process,
    // so nothing stale stays on the interface and the next run attaches cleanly.
    server.kill9();
    assert!(
        !xdp_attached(&net),
        "a killed tandemd left its program behind"
    );
    server.restart();
    assert_eq!(datapath_and_rx(&server).0, "xdp");
    let mut udhcpc = Udhcpc::new(&net.clients[0]);
    udhcpc
        .obtain_once()
        .unwrap_or_else(|e| panic!("udhcpc after restart: {e}\n{}", server.log()));
    server.terminate();
    assert!(
        !xdp_attached(&net),
        "a stopped tandemd left its program behind"
    );
}

#[test]
fn tandemd_on_auto_picks_xdp_and_serves_perfdhcp() {
    let _heavy = common::heavy();
    let (server, net) = start("auto", 1);
    let (datapath, _) = datapath_and_rx(&server);
    assert_eq!(
        datapath,
        "xdp",
        "auto on a veth takes XDP:\n{}",
        server.log()
    );
    assert!(
        server.log().contains("datapath auto: using xdp"),
        "{}",
        server.log()
    );
    let ep = &net.clients[0];
    // 400/s suits a debug build on a busy machine; `TANDEM_E2E_XDP_RATE` measures more (the
    // release-build load test of the packet path asks 5,000/s).
    let rate: u64 = std::env::var("TANDEM_E2E_XDP_RATE")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(400);
    const SECONDS: u64 = 5;
    let report = Perfdhcp::new(
        &ep.ns,
        &PerfTarget::Broadcast {
            iface: ep.iface.clone(),
        },
    )
    .arg("-r")
    .arg(rate.to_string())
    .arg("-p")
    .arg(SECONDS.to_string())
    .arg("-R")
    .arg((rate * SECONDS * 2).to_string())
    // A late reply is a served client, not a drop (the verdict is the server's accounting).
    .drop_time(10)
    .run(Duration::from_secs(120))
    .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "perfdhcp over xdp (reported): sent {:?} received {:?} drops {:?} rate {:?}",
        report.sent, report.received, report.drops, report.rate
    );
    assert!(
        report.acks() >= rate * SECONDS / 10,
        "only {} exchanges:\n{}",
        report.acks(),
        report.output
    );
    let acct = Accounting::settled(&server);
    eprintln!("server accounting: {acct:?}");
    acct.assert_complete();
    assert!(
        acct.redirected.is_some(),
        "the XDP program's counters are in the status: {acct:?}"
    );
    let (_, rx) = datapath_and_rx(&server);
    assert!(rx >= 2 * report.acks(), "workers counted {rx} frames");
}

/// A burst straight after attach: a few hundred clients at a rate well above the steady
/// test's, every exchange answered (or its DISCOVER shed, counted, by the overload policy if
/// the worker fell behind), nothing dropped on the way into the AF_XDP socket (the kernel's
/// `XDP_STATISTICS` show up as `xsk-*` drop reasons in the status), bounded in time.
#[test]
fn tandemd_on_xdp_answers_a_burst_of_clients_without_drops() {
    let _heavy = common::heavy();
    let (server, net) = start("xdp", 1);
    let ep = &net.clients[0];
    const CLIENTS: u64 = 600;
    let report = Perfdhcp::new(
        &ep.ns,
        &PerfTarget::Broadcast {
            iface: ep.iface.clone(),
        },
    )
    .arg("-r")
    .arg("3000")
    .arg("-R")
    .arg(CLIENTS.to_string())
    .arg("-n")
    .arg(CLIENTS.to_string())
    .arg("-p")
    .arg("10")
    // perfdhcp does not retransmit: a reply it waits 10 s for is late, not lost.
    .drop_time(10)
    .run(Duration::from_secs(120))
    .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "perfdhcp burst over xdp: sent {:?} received {:?} drops {:?} rate {:?}",
        report.sent, report.received, report.drops, report.rate
    );
    let acct = Accounting::settled(&server);
    let status = server.status_json().expect("tandemctl status --json");
    acct.assert_complete();
    // perfdhcp's -n bounds the exchanges it starts, give or take the last few of its rate
    // timer: every one it started must have completed, or had its DISCOVER shed by the
    // overload policy (a receive batch that came full: the worker was behind for a moment,
    // a matter of the machine's timing, not of correctness), and none lost on the way.
    let started = report.sent.get("DISCOVER-OFFER").copied().unwrap_or(0);
    let shed = acct.dropped.get("shed").copied().unwrap_or(0);
    assert!(
        started >= CLIENTS && report.acks() + shed == started && report.acks() >= CLIENTS / 2,
        "{} ACKs and {shed} DISCOVERs shed for {started} exchanges started\n{}\nstatus: {status}\nlog:\n{}",
        report.acks(),
        report.output,
        server.log()
    );
    assert!(
        acct.kernel.is_empty(),
        "the kernel dropped frames before the worker: {status}"
    );
}

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

/// A DHCPDISCOVER frame (broadcast, UDP 68 → 67) from `chaddr`, with option 61 = `client_id`
/// if given.
fn discover(chaddr: [u8; 6], client_id: Option<&[u8]>) -> Vec<u8> {
    let mut bootp = vec![0u8; 240];
    bootp[0] = 1;
    bootp[1] = 1;
    bootp[2] = 6;
    bootp[28..34].copy_from_slice(&chaddr);
    bootp[236..240].copy_from_slice(&[99, 130, 83, 99]);
    // A pad and an unrelated option first, so the walk has to step over them.
    bootp.extend_from_slice(&[0, 12, 3, b'a', b'b', b'c', 53, 1, 1]);
    if let Some(id) = client_id {
        bootp.push(61);
        bootp.push(u8::try_from(id.len()).expect("option length"));
        bootp.extend_from_slice(id);
    }
    bootp.push(255);
    if bootp.len() < 300 {
        bootp.resize(300, 0);
    }

    let mut f = vec![0xff; 6];
    f.extend_from_slice(&chaddr);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = u16::try_from(20 + 8 + bootp.len()).expect("size");
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0, 0, 64, 17, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255]);
    f.extend_from_slice(&68u16.to_be_bytes());
    f.extend_from_slice(&67u16.to_be_bytes());
    f.extend_from_slice(&(total - 20).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&bootp);
    f
}

/// Which bucket the program puts `frame` in, found by asking it with one-bucket HBAs: the
/// program keeps the frame (we are primary) only when its bucket's bit is set.
fn kernel_bucket_is(prog: &mut XdpProgram, frame: &[u8], bucket: u8) {
    let mut only = Hba::NONE;
    only.set(bucket, true);
    let mut all_but = Hba::ALL;
    all_but.set(bucket, false);
    for (hba, want, what) in [
        (only, XDP_PASS, "kept when only its bucket is ours"),
        (
            all_but,
            XDP_DROP,
            "dropped when every bucket but its own is ours",
        ),
    ] {
        prog.set_lb(&LbConfig {
            mode: LB_ON,
            primary: 1,
            hba: *hba.as_bytes(),
            ..LbConfig::OFF
        })
        .expect("set lb");
        let got = prog.test_run(frame).expect("test run");
        assert_eq!(got, want, "bucket {bucket}: {what}");
    }
}

#[test]
fn c_and_rust_hash_agree_on_every_bucket() {
    let mut prog = XdpProgram::load().expect("load the XDP program (root needed)");

    // By chaddr: MACs until every bucket has been seen.
    let mut seen = [false; 256];
    let mut n: u32 = 0;
    while seen.iter().any(|s| !s) {
        assert!(n < 100_000, "buckets never covered by chaddr");
        let [_, x, y, z] = n.to_be_bytes();
        let mac = [0x02, 0x54, 0x44, x, y, z];
        n += 1;
        let bucket = client_bucket(None, &mac, 6);
        if seen[usize::from(bucket)] {
            continue;
        }
        seen[usize::from(bucket)] = true;
        kernel_bucket_is(&mut prog, &discover(mac, None), bucket);
    }

    // By client identifier, of lengths 1 to 255 (the length enters the hash).
    let mut seen = [false; 256];
    let mut state: u32 = 0x9e37_79b9;
    let mut tries = 0;
    while seen.iter().any(|s| !s) {
        tries += 1;
        assert!(tries < 100_000, "buckets never covered by client id");
        let len = 1 + (tries % 255);
        let id: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state.to_be_bytes()[0]
            })
            .collect();
        let bucket = pearson(&id);
        assert_eq!(bucket, client_bucket(Some(&id), &[0; 16], 6));
        if seen[usize::from(bucket)] {
            continue;
        }
        seen[usize::from(bucket)] = true;
        // The chaddr must not matter when a client id is present.
        kernel_bucket_is(&mut prog, &discover([2, 0, 0, 0, 0, 9], Some(&id)), bucket);
    }
}

/// Two tandemd on the XDP datapath, joined by a bridge in a third namespace (the clients'
/// side): `a` (10.77.0.1 on xa0, primary) and `b` (10.77.0.2 on xb0, secondary), `c` holding
/// br0. Deleted on drop.
struct XdpPair {
    a: Ns,
    b: Ns,
    c: Ns,
}

impl XdpPair {
    fn new() -> Self {
        let id = std::process::id();
        let ns = |x: &str| Ns {
            name: format!("tdm-xdp-{id}-lb{x}"),
        };
        let pair = XdpPair {
            a: ns("a"),
            b: ns("b"),
            c: ns("c"),
        };
        for ns in [&pair.a, &pair.b, &pair.c] {
            ns.add();
        }
        pair.c.add_bridge("br0");
        for (ns, dev, port, addr) in [
            (&pair.a, "xa0", "ca", "10.77.0.1/24"),
            (&pair.b, "xb0", "cb", "10.77.0.2/24"),
        ] {
            pair.c.add_bridge_port("br0", port, ns, dev, addr);
        }
        pair
    }

    /// Sends `frames` out of br0 (to both servers), in order, 2 ms apart.
    fn send(&self, frames: &[Vec<u8>], dir: &std::path::Path) {
        send_raw(&self.c, "br0", frames, 0.002, dir);
    }
}

/// Sends `frames` out of `iface` in `ns`, in order, `gap` seconds apart, through a raw
/// packet socket (`dir` holds the frames' file).
fn send_raw(ns: &Ns, iface: &str, frames: &[Vec<u8>], gap: f64, dir: &std::path::Path) {
    let file = dir.join("frames.bin");
    let mut blob = Vec::new();
    for f in frames {
        blob.extend_from_slice(&u16::try_from(f.len()).expect("len").to_be_bytes());
        blob.extend_from_slice(f);
    }
    std::fs::write(&file, blob).expect("write frames");
    let script = format!(
        "import socket, time\n\
         s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n\
         s.bind(({iface:?}, 0))\n\
         b = open({:?}, 'rb').read()\n\
         i = 0\n\
         while i < len(b):\n\
         \x20   n = int.from_bytes(b[i:i+2], 'big')\n\
         \x20   s.send(b[i+2:i+2+n])\n\
         \x20   i += 2 + n\n\
         \x20   if {gap} > 0: time.sleep({gap})\n",
        file.to_string_lossy()
    );
    let out = ns.exec(&["timeout", "30", "python3", "-c", &script]);
    assert!(out.status.success(), "send: {out:?}");
}

impl Drop for XdpPair {
    fn drop(&mut self) {
        testkit::netns::teardown(&[&self.a, &self.b, &self.c]);
    }
}

/// A tandemd config: XDP, one load-balance relationship "pair" covering the only subnet.
fn pair_config(dir: &std::path::Path, iface: &str, me: &str, peer: &str, primary: bool) -> String {
    let role = if primary {
        "role = \"primary\"\nmclt = \"10s\"\nsplit = 128"
    } else {
        "role = \"secondary\""
    };
    format!(
        r#"[server]
interfaces = ["{iface}"]
server_id = "{me}"
data_dir = {dir:?}
datapath = "xdp"
durability = "sync"

[[subnet]]
prefix = "10.77.0.0/24"
pools = ["10.77.0.100-10.77.0.200"]
lease_time = "1h"
failover = "pair"

[[failover]]
name = "pair"
{role}
mode = "load-balance"
address = "{me}"
peer_address = "{peer}"
port = 647
peer_port = 647
max_response_delay = "15s"
max_unacked_updates = 10
{secret}
"#,
        dir = dir.to_string_lossy(),
        secret = common::failover_secret(dir),
    )
}

/// From `tandemctl status --json`: the relationship's state, the XDP counters of the one
/// interface, whether its filter is on, and the frames the workers received.
#[derive(Debug, Default, Clone, PartialEq)]
struct PairView {
    state: String,
    lb_filter: bool,
    lb_drop: u64,
    redirect: u64,
    rx: u64,
}

fn pair_view(s: &Server) -> PairView {
    let Some(v) = s.status_json() else {
        return PairView::default();
    };
    let x = &v["xdp"][0];
    PairView {
        state: v["relationships"][0]["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        lb_filter: x["lb_filter"].as_bool().unwrap_or(false),
        lb_drop: x["lb_drop"].as_u64().unwrap_or(0),
        redirect: x["redirect"].as_u64().unwrap_or(0),
        rx: v["workers"]
            .as_array()
            .map(|w| w.iter().filter_map(|w| w["rx"].as_u64()).sum())
            .unwrap_or(0),
    }
}

/// Fills in the IPv4 header checksum of a frame from [`discover`].
fn with_ip_checksum(mut f: Vec<u8>) -> Vec<u8> {
    let mut sum = 0u32;
    for w in f[14..34].chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let c = !(u16::try_from(sum).expect("folded"));
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

#[test]
fn a_tandem_pair_in_normal_drops_the_partners_discovers_in_xdp() {
    common::require_e2e();
    let net = XdpPair::new();
    let a = Server::start_tandemd_with(&net.a, |d| {
        pair_config(d, "xa0", "10.77.0.1", "10.77.0.2", true)
    });
    let b = Server::start_tandemd_with(&net.b, |d| {
        pair_config(d, "xb0", "10.77.0.2", "10.77.0.1", false)
    });
    // NORMAL on both sides, and the updater has switched the filter on.
    for (s, name) in [(&a, "A"), (&b, "B")] {
        let mut last = PairView::default();
        let ok = common::try_wait_until(Duration::from_secs(90), || {
            last = pair_view(s);
            (last.state == "normal" && last.lb_filter).then_some(())
        });
        assert!(
            ok.is_some(),
            "{name}: not NORMAL with the filter on: {last:?}\n{}",
            s.log()
        );
    }
    let (a0, b0) = (pair_view(&a), pair_view(&b));

    // 64 DISCOVERs from distinct MACs (no client id: the bucket is the chaddr's).
    let macs: Vec<[u8; 6]> = (0..64u8).map(|n| [0x02, 0x77, 0, 0, 1, n]).collect();
    let primarys = macs
        .iter()
        .filter(|m| client_bucket(None, &m[..], 6) < 128)
        .count() as u64;
    let secondarys = macs.len() as u64 - primarys;
    assert!(primarys > 0 && secondarys > 0, "both halves represented");
    let frames: Vec<Vec<u8>> = macs
        .iter()
        .map(|m| with_ip_checksum(discover(*m, None)))
        .collect();
    let tmp = tempfile::tempdir().expect("tempdir");
    net.send(&frames, tmp.path());

    // Every DISCOVER reached both servers: each dropped the other's half in the kernel and
    // its workers saw only its own half.
    let want = |v0: &PairView, ours: u64, theirs: u64| PairView {
        lb_drop: v0.lb_drop + theirs,
        redirect: v0.redirect + ours,
        rx: v0.rx + ours,
        ..v0.clone()
    };
    for (s, v0, ours, theirs, name) in [
        (&a, &a0, primarys, secondarys, "A (primary)"),
        (&b, &b0, secondarys, primarys, "B (secondary)"),
    ] {
        let want = want(v0, ours, theirs);
        let mut last = PairView::default();
        let ok = common::try_wait_until(Duration::from_secs(60), || {
            last = pair_view(s);
            (last == want).then_some(())
        });
        assert!(
            ok.is_some(),
            "{name}: want {want:?}, have {last:?}\n{}",
            s.log()
        );
    }

    // The partner goes away: the survivor leaves NORMAL and its filter goes off, so the
    // kernel hands it every DISCOVER again.
    drop(b);
    let mut last = PairView::default();
    let ok = common::try_wait_until(Duration::from_secs(40), || {
        last = pair_view(&a);
        (last.state != "normal" && !last.lb_filter).then_some(())
    });
    assert!(ok.is_some(), "A kept the filter on: {last:?}\n{}", a.log());
    let a1 = pair_view(&a);
    net.send(&frames, tmp.path());
    let mut last = PairView::default();
    let ok = common::try_wait_until(Duration::from_secs(60), || {
        last = pair_view(&a);
        (last.rx == a1.rx + macs.len() as u64).then_some(())
    });
    assert!(ok.is_some(), "A after B left: {last:?} from {a1:?}");
    assert_eq!(
        last.lb_drop, a1.lb_drop,
        "nothing dropped with the filter off"
    );
}

/// Software dispatch: `workers = 3` on a veth (one rx queue, so one AF_XDP socket) runs the
/// queue's worker and two siblings; perfdhcp's clients are spread over all three by client
/// hash and every exchange completes (the siblings answer through their own send sockets).
#[test]
fn tandemd_on_xdp_dispatches_a_single_queue_to_sibling_workers() {
    let _heavy = common::heavy();
    common::require_e2e();
    let net = TestNet::new(Layout::Direct, 1);
    let spec = ServerSpec {
        datapath: "xdp",
        ..ServerSpec::direct(&net, Duration::from_secs(600))
    };
    let server = Server::start_tandemd_with(&net.server.ns, |dir| {
        let mut toml = format!(
            "[server]\ninterfaces = [{:?}]\nserver_id = \"{}\"\ndata_dir = {:?}\n\
             datapath = \"xdp\"\nworkers = 3\ndispatch = \"auto\"\ndurability = \"sync\"\n",
            spec.interfaces[0],
            spec.server_id,
            dir.to_string_lossy()
        );
        for s in &spec.subnets {
            toml.push_str(&format!(
                "\n[[subnet]]\nprefix = \"{}\"\npools = [\"{}-{}\"]\nlease_time = \"600s\"\n",
                s.prefix, s.pool.0, s.pool.1
            ));
        }
        toml
    });
    assert!(
        server
            .log()
            .contains("software dispatch to sibling workers"),
        "{}",
        server.log()
    );
    let ep = &net.clients[0];
    const CLIENTS: u64 = 300;
    let report = Perfdhcp::new(
        &ep.ns,
        &PerfTarget::Broadcast {
            iface: ep.iface.clone(),
        },
    )
    .arg("-r")
    .arg("300")
    .arg("-R")
    .arg(CLIENTS.to_string())
    .arg("-n")
    .arg(CLIENTS.to_string())
    .arg("-p")
    .arg("10")
    .drop_time(10)
    .run(Duration::from_secs(120))
    .unwrap_or_else(|e| panic!("{e}"));
    let acct = Accounting::settled(&server);
    let status = server.status_json().expect("tandemctl status --json");
    acct.assert_complete();
    let started = report.sent.get("DISCOVER-OFFER").copied().unwrap_or(0);
    assert!(
        report.acks() >= CLIENTS && report.acks() == started,
        "{} ACKs for {started} exchanges started\n{}\nstatus: {status}\nlog:\n{}",
        report.acks(),
        report.output,
        server.log()
    );
    let workers = status["workers"].as_array().cloned().unwrap_or_default();
    assert_eq!(workers.len(), 3, "{status}");
    let tx: Vec<u64> = workers
        .iter()
        .map(|w| w["tx"].as_u64().unwrap_or(0))
        .collect();
    assert!(
        tx.iter().all(|&t| t > 0),
        "every worker answered some clients: tx {tx:?}\n{status}"
    );
    let dispatched: u64 = workers
        .iter()
        .map(|w| w["dispatched"].as_u64().unwrap_or(0))
        .sum();
    assert!(dispatched > 0, "the rx worker handed frames on: {status}");
    assert_eq!(
        tx.iter().sum::<u64>(),
        2 * report.acks(),
        "one OFFER and one ACK each"
    );
}

#[test]
fn tandemd_on_xdp_drops_a_one_mac_flood_in_the_kernel_and_serves_the_rest() {
    let (server, net) = start("xdp", 2);
    let tmp = tempfile::tempdir().expect("tempdir");
    // The default limits: 5 requests a second per MAC, bursts of 20, counted per CPU.
    const FLOOD: u64 = 600;
    let flood = with_ip_checksum(discover([2, 0x66, 0, 0, 0, 1], None));
    let frames = vec![flood; FLOOD as usize];
    let sent = std::time::Instant::now();
    let ep = &net.clients[1];
    // 100 a second for 6 s, while dhclient gets its lease next door.
    let lease = std::thread::scope(|sc| {
        sc.spawn(|| send_raw(&ep.ns, &ep.iface, &frames, 0.01, tmp.path()));
        Dhclient::new(&net.clients[0])
            .obtain()
            .unwrap_or_else(|e| panic!("dhclient during the flood: {e}\n{}", server.log()))
    });
    let secs = sent.elapsed().as_secs() + 1;
    let xdp = |s: &serde_json::Value, k: &str| s["xdp"][0][k].as_u64().unwrap_or(0);
    let status = common::wait_until(Duration::from_secs(30), "the flood counted", || {
        let s = server.status_json()?;
        (xdp(&s, "redirect") + xdp(&s, "rate_mac") >= FLOOD).then_some(s)
    });
    let cpus = u64::try_from(core_affinity::get_core_ids().map_or(1, |c| c.len())).expect("cpus");
    let allowed = cpus * (20 + 5 * secs);
    let (redirected, dropped) = (xdp(&status, "redirect"), xdp(&status, "rate_mac"));
    eprintln!("one-MAC flood of {FLOOD} in {secs} s: {redirected} redirected, {dropped} dropped");
    assert!(
        redirected <= allowed && dropped >= FLOOD - allowed,
        "at most {allowed} of the flood may reach user space: {status}"
    );
    // The workers' own limiter is off on XDP: nothing was left for it to drop.
    for w in status["workers"].as_array().expect("workers") {
        assert!(w["dropped"].get("rate-mac").is_none(), "{w}");
    }
    // Everyone else was served meanwhile.
    assert!(
        server
            .active_leases()
            .iter()
            .any(|l| l.address == lease.address && l.chaddr == net.clients[0].mac),
        "dhclient's lease is active"
    );
}
