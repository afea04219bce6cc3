//! The fault campaign (issue #13 item 5): randomized scenarios against a real tandemd pair in
//! network namespaces, with real clients throughout and a checker over every DHCPACK on the
//! wire and both servers' tables afterwards.
//!
//! A run builds the pair of `e2e_pair` ([`common::pair`]: two `tandemd` on a client bridge, a
//! peer link of their own, a capture on both servers' bridge ports), starts a `dhclient` that
//! renews and rebinds through everything, and then plays `CAMPAIGN_SCENARIOS` scenarios. A
//! scenario is one nemesis, chosen by the run's seed, with clients coming (udhcpc with fresh
//! hardware addresses, a perfdhcp burst) while it lasts, then the heal and the wait for both
//! servers to be NORMAL again. The nemeses:
//! * `peer-link-cut`: the peer link's veth down for a while, then up; or (half the time)
//!   everything crossing it silently dropped by nftables, then let through again;
//! * `client-partition`: one server's bridge port down (its clients cannot reach it);
//! * `kill-9`: one server killed, left down, restarted from its data directory;
//! * `pause`: SIGSTOP, shorter or longer than `max_response_delay`, then SIGCONT;
//! * `restart`: SIGTERM (SHUTDOWN told to the peer), started again;
//! * `partner-down`: one server killed, the operator declares it down on the survivor (past
//!   the 10 s margin of draft §9.3.2), clients of both halves served, the dead one restarted;
//! * `fsync-error`: server A's data directory is a FUSE passthrough
//!   ([`common::disk::FaultFs`]) whose fsync fails with EIO on demand: A must send no ACK it
//!   cannot keep and stop; healed, it restarts and recovers.
//! * `disk-full`: server B's data directory is a size-limited tmpfs
//!   ([`common::disk::Tmpfs`]), filled up while clients come: B must send no ACK it cannot
//!   write and stop (or, with nothing to write, go on); the space given back, it restarts
//!   and recovers.
//!
//! One run in four (seed 1 mod 4) has ISC dhcpd 4.4 as server B, the load-balance
//! secondary of tandemd, with the same nemeses (A's disk fails instead of B's; the
//! operator's partner-down on dhcpd goes through omshell); its state and leases are read
//! from its lease file. `CAMPAIGN_PARTNER=isc` or `=tandem` gives every run that partner. It found
//! a lost lease (`CAMPAIGN_PARTNER=isc CAMPAIGN_SEED=13 CAMPAIGN_SCENARIOS=4`, most runs):
//! tandemd, killed with an unacknowledged MCLT-short grant, sent it on reconnect over the
//! hour the client had meanwhile got from dhcpd; dhcpd installed our old end under its own
//! CLTT, sent that back, and both freed the address the client held. tandemd now repairs
//! such a renewal (`failover::judge::repaired`; each run counts them).
//!
//! Clock skew is a property of a whole run (server B under libfaketime from its first lease
//! on): one run in five skews B by up to ±30 s, within the 60 s bound, and serves as any
//! other; one in five by 90 to 300 s ahead, beyond it: the pair must refuse to connect and
//! each server serve alone, MCLT-bounded, until B is restarted on the true time at the end
//! (a step back, which only makes B's leases look longer). Such runs play no SHUTDOWN and no
//! operator partner-down (kill -9 instead): with the two unable to talk, either would leave
//! one in PARTNER-DOWN and the other serving beside it unheard, the hazard draft §10 warns of. A step *forward* of one server's
//! clock while it holds leases is outside what any DHCP server can keep: it expires them
//! early by the step (the first campaign found exactly that when the skew was a scenario).
//!
//! After the run (and two last renewals of udhcpc and dhcpcd in NORMAL, so that every run
//! has leases granted in full to check): no address was ACKed to two clients at overlapping times
//! ([`common::acks::AckLog::double_bindings`]); every lease an ACK promised and that has not
//! ended nor been released is in the table of at least one server (nothing lost across
//! crashes); both servers are NORMAL.
//!
//! Every run prints its seed; `CAMPAIGN_SEED=S` replays one; `CAMPAIGN_NEMESIS=NAME` plays
//! only that nemesis. `CAMPAIGN_RUNS` (default 1) and
//! `CAMPAIGN_SCENARIOS` (default 5) size the batch; `control/scripts/campaign` runs a campaign
//! and prints the counts per nemesis. Run as root.

#[expect(
    dead_code,
    reason = "each e2e test binary uses a different part of the shared harness"
)]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::clients::{Dhclient, Dhcpcd, PerfTarget, Perfdhcp, Udhcpc};
use common::disk::{FaultFs, Tmpfs};
use common::pair::*;
use common::server::unix_now;
use common::server::{Server, ServerKind};
use testkit::netns::mac_str;
use testkit::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Nemesis {
    PeerLinkCut,
    ClientPartition,
    Kill9,
    Pause,
    Restart,
    PartnerDown,
    FsyncError,
    DiskFull,
}

impl Nemesis {
    const ALL: [Nemesis; 8] = [
        Nemesis::PeerLinkCut,
        Nemesis::ClientPartition,
        Nemesis::Kill9,
        Nemesis::Pause,
        Nemesis::Restart,
        Nemesis::PartnerDown,
        Nemesis::FsyncError,
        Nemesis::DiskFull,
    ];

    fn name(self) -> &'static str {
        match self {
            Nemesis::PeerLinkCut => "peer-link-cut",
            Nemesis::ClientPartition => "client-partition",
            Nemesis::Kill9 => "kill-9",
            Nemesis::Pause => "pause",
            Nemesis::Restart => "restart",
            Nemesis::PartnerDown => "partner-down",
            Nemesis::FsyncError => "fsync-error",
            Nemesis::DiskFull => "disk-full",
        }
    }

    /// `CAMPAIGN_NEMESIS=NAME`: every scenario plays that one (to work on one fault).
    fn forced() -> Option<Nemesis> {
        let name = std::env::var("CAMPAIGN_NEMESIS").ok()?;
        let n = Nemesis::ALL.into_iter().find(|n| n.name() == name);
        assert!(n.is_some(), "CAMPAIGN_NEMESIS={name}: not a nemesis");
        n
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// One run: a fresh pair, its clients and the scenarios.
struct Run {
    seed: u64,
    rng: Rng,
    net: PairNet,
    servers: Servers,
    /// Fresh hardware addresses, counted up.
    next_mac: u16,
    /// Nemeses played, by kind.
    played: BTreeMap<Nemesis, u64>,
    /// Server A's filesystem.
    fs: FaultFs,
    /// Server B's filesystem.
    disk: Tmpfs,
    /// B's clock offset for the whole run, seconds.
    skew: Option<i64>,
    /// Server B is ISC dhcpd 4.4 (secondary), not tandemd.
    isc: bool,
}

/// The pair's `max_clock_skew` (the failover default).
const BOUND: i64 = 60;

/// Server B's data directory: its tables, journals and state file with room to spare, until
/// the `disk-full` nemesis takes the rest.
const DISK_SIZE: &str = "64m";

/// libfaketime's environment for a wall clock `secs` off the true one (timers keep the true
/// monotonic clock).
fn faketime(secs: i64) -> Vec<(String, String)> {
    let lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
    assert!(std::path::Path::new(lib).exists(), "apt: faketime");
    vec![
        ("LD_PRELOAD".into(), lib.into()),
        ("FAKETIME".into(), format!("{secs:+}s")),
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
        ("FAKETIME_NO_CACHE".into(), "1".into()),
    ]
}

impl Run {
    fn server(&mut self, i: usize) -> &mut common::server::Server {
        if i == 0 {
            &mut self.servers.a
        } else {
            &mut self.servers.b
        }
    }

    /// Both running and out of NORMAL's reach (B's clock beyond the bound): each serves.
    fn both_serving(&self) {
        for s in [&self.servers.a, &self.servers.b] {
            wait_state(s, 3 * MRD + 60, "serving alone", |st, _| {
                st == "communications-interrupted" || st == "partner-down"
            });
        }
    }

    fn say(&self, what: String) {
        eprintln!("campaign seed {}: {what}", self.seed);
    }

    /// A hardware address no client of this run used yet.
    fn fresh_mac(&mut self) -> [u8; 6] {
        let [hi, lo] = self.next_mac.to_be_bytes();
        self.next_mac = self.next_mac.wrapping_add(1);
        [0x02, 0xca, (self.seed & 0xff) as u8, 0x5e, hi, lo]
    }

    /// Sleeps `ms` while clients come: udhcpc with fresh addresses on client 1.
    fn clients_for(&mut self, ms: u64) {
        let until = Instant::now() + Duration::from_millis(ms);
        loop {
            let mac = self.fresh_mac();
            // A client that finds nobody (every server down or cut off) just tries later.
            match self.net.udhcpc(1, mac) {
                Ok(l) => self.say(format!(
                    "{} got {:?} from {:?}",
                    mac_str(mac),
                    l.address,
                    l.server_id
                )),
                Err(e) => self.say(format!("{} got nothing: {e}", mac_str(mac))),
            }
            if Instant::now() >= until {
                return;
            }
            // A few clients a second: the pool outlasts a long campaign.
            std::thread::sleep(Duration::from_millis(700));
        }
    }

    /// A burst of 4-way exchanges from perfdhcp (client 0's namespace).
    fn burst(&mut self) {
        let r = Perfdhcp::new(
            &self.net.clients[0].ns,
            &PerfTarget::Broadcast {
                iface: "eth0".into(),
            },
        )
        .arg("-r")
        .arg("20")
        .arg("-n")
        .arg("40")
        .run(Duration::from_secs(30));
        match r {
            Ok(p) => self.say(format!(
                "perfdhcp sent {:?} received {:?}",
                p.sent, p.received
            )),
            Err(e) => self.say(format!("perfdhcp: {e}")),
        }
    }

    /// While server `i`'s disk fails, clients make it write for at most `hold` ms: it must
    /// stop (exit 1) rather than ACK what it cannot keep, or have nothing to write.
    fn until_stopped(&mut self, i: usize, hold: u64, what: &str) {
        let until = Instant::now() + Duration::from_millis(hold);
        let mut stopped = None;
        while stopped.is_none() && Instant::now() < until {
            let mac = self.fresh_mac();
            let _ = self.net.udhcpc(1, mac);
            stopped = self.server(i).wait_exit(Duration::from_millis(100));
        }
        let name = ["A", "B"][i];
        self.say(format!("{name} {what}: {stopped:?}"));
        if let Some(status) = stopped {
            assert_eq!(
                status.code(),
                Some(1),
                "seed {}: {name}'s exit {what}",
                self.seed
            );
        }
    }

    fn scenario(&mut self, n: u64) {
        let drawn = self.rng.below(Nemesis::ALL.len() as u64);
        let mut nemesis =
            Nemesis::forced().unwrap_or(Nemesis::ALL[usize::try_from(drawn).unwrap_or(0)]);
        // With B's clock beyond the bound the two cannot talk, so nothing may put one of them
        // in PARTNER-DOWN (a SHUTDOWN, the operator): B, back, would serve beside it unheard.
        if self.skew.is_some_and(|s| s > BOUND)
            && matches!(nemesis, Nemesis::Restart | Nemesis::PartnerDown)
        {
            nemesis = Nemesis::Kill9;
        }
        // ISC dhcpd's disk is not ours to fail: with it as B, A's disk fails instead.
        if self.isc && nemesis == Nemesis::DiskFull {
            nemesis = Nemesis::FsyncError;
        }
        let i = match nemesis {
            // Only A's data directory can fail fsync, only B's fill up.
            Nemesis::FsyncError => 0,
            Nemesis::DiskFull => 1,
            _ => usize::try_from(self.rng.below(2)).unwrap_or(0),
        };
        let hold = 2_000 + self.rng.below(3 * MRD * 1000);
        self.say(format!(
            "scenario {n}: {} on server {} for {} ms",
            nemesis.name(),
            ["A", "B"][i],
            hold
        ));
        *self.played.entry(nemesis).or_default() += 1;
        match nemesis {
            // The server drawn picks the kind of cut: the link down (both ends see it) for
            // A, for B everything on it silently dropped (nftables: a firewall or a dead hop
            // in between; the open connection goes quiet, new dials get no answer).
            Nemesis::PeerLinkCut if i == 0 => {
                self.net.peer_link(false);
                self.clients_for(hold);
                self.net.peer_link(true);
            }
            Nemesis::PeerLinkCut => {
                self.say("the peer link drops everything silently".into());
                self.net.peer_drop(true);
                self.clients_for(hold);
                self.net.peer_drop(false);
            }
            Nemesis::ClientPartition => {
                let port = ["sa", "sb"][i];
                let br = self.net.br.name.clone();
                ip(&["-n", &br, "link", "set", port, "down"]);
                self.clients_for(hold);
                ip(&["-n", &br, "link", "set", port, "up"]);
            }
            Nemesis::Kill9 => {
                self.server(i).kill9();
                self.clients_for(hold);
                self.server(i).restart();
            }
            Nemesis::Pause => {
                let pid = self.server(i).pid().expect("running");
                common::signal(pid, "STOP");
                self.clients_for(hold);
                common::signal(pid, "CONT");
            }
            Nemesis::Restart => {
                self.server(i).terminate();
                self.clients_for(hold.min(5_000));
                self.server(i).restart();
            }
            Nemesis::PartnerDown => {
                self.server(i).kill9();
                let killed = unix_now();
                let survivor = 1 - i;
                // The survivor notices (max_response_delay), then the operator waits past
                // the restarted server's margin (draft §9.3.2 step 5) and declares it down.
                self.clients_for(2_000);
                while unix_now() < killed + 12 {
                    std::thread::sleep(Duration::from_millis(200));
                }
                let s = &*self.server(survivor);
                let mut last = String::new();
                let done = common::try_wait_until(Duration::from_secs(3 * MRD + 30), || {
                    if s.kind == ServerKind::IscDhcpd {
                        // omshell, until dhcpd has written PARTNER-DOWN to its lease file.
                        if s.isc_failover_state("pair").0 == "partner-down" {
                            return Some(());
                        }
                        last = s.isc_partner_down("pair");
                        std::thread::sleep(Duration::from_millis(500));
                        return None;
                    }
                    match s.tandemctl(&["partner-down", "pair"]) {
                        Ok(_) => Some(()),
                        Err(e) => {
                            last = e;
                            std::thread::sleep(Duration::from_millis(500));
                            None
                        }
                    }
                });
                assert!(
                    done.is_some(),
                    "seed {}: partner-down refused: {last}",
                    self.seed
                );
                self.clients_for(hold);
                self.burst();
                self.server(i).restart();
            }
            Nemesis::FsyncError => {
                self.fs.fail_fsync(".tdj");
                self.until_stopped(0, hold, "under fsync errors");
                self.fs.heal();
                self.servers.a.restart();
            }
            Nemesis::DiskFull => {
                self.disk.fill();
                self.until_stopped(1, hold, "on a full disk");
                self.disk.free();
                self.servers.b.restart();
            }
        }
        self.burst();
        // Healed: back to NORMAL, whatever it takes within the MCLT's bounds (or, with B's
        // clock beyond the bound, both serving alone).
        if self.skew.is_some_and(|s| s > BOUND) {
            self.both_serving();
        } else {
            self.servers.both_normal(4 * u64::from(MCLT) + 90);
        }
    }
}

/// Every lease an ACK promised that has not ended, nor been given back, by the time the
/// tables are read: in the table of at least one of the two servers, for that client.
fn check_nothing_lost(seed: u64, log: &common::acks::AckLog, servers: &Servers) -> usize {
    let now_us = unix_now() * 1_000_000;
    // Time for the tables to be read after the capture: the lease must outlive it.
    let margin_us = 30 * 1_000_000;
    let tables: Vec<common::server::Lease> = servers
        .a
        .active_leases()
        .into_iter()
        .chain(servers.b.active_leases())
        .collect();
    let mut checked = 0;
    for (addr, bindings) in log.bindings() {
        let Some(last) = bindings.last() else {
            continue;
        };
        if last.end_us <= now_us + margin_us {
            continue;
        }
        checked += 1;
        let client = &last.ack.client;
        let held = tables.iter().any(|l| {
            let mac_hex = l.chaddr.replace(':', "");
            l.address == addr
                && (client == &format!("hw:{}", l.chaddr)
                    || l.client_id
                        .as_ref()
                        .is_some_and(|id| client == &format!("id:{id}"))
                    || client
                        .strip_prefix("id:")
                        .is_some_and(|id| id.ends_with(&mac_hex)))
        });
        if !held {
            // What each server holds for the address, every state, and the ACKs of it.
            let of = |s: &Server| -> Vec<common::server::Lease> {
                s.leases()
                    .into_iter()
                    .filter(|l| l.address == addr)
                    .collect()
            };
            let isc = (servers.b.kind == ServerKind::IscDhcpd)
                .then(|| std::fs::read_to_string(servers.b.isc_leases_path()).unwrap_or_default())
                .map(|t| {
                    let head = format!("lease {addr} {{");
                    t.split("\n}")
                        .filter(|b| b.contains(&head))
                        .map(|b| b.trim().to_owned())
                        .collect::<Vec<_>>()
                        .join("\n}\n")
                })
                .unwrap_or_default();
            panic!(
                "seed {seed}: the lease of {addr} ACKed to {client} (ends {}) is in neither table\n\
                 A: {:?}\nB: {:?}\nACKs: {bindings:?}\nISC lease file entries:\n{isc}",
                last.end_us / 1_000_000,
                of(&servers.a),
                of(&servers.b),
            );
        }
    }
    checked
}

/// Plays one seed; returns the nemeses played and whether B was ISC dhcpd.
fn run(seed: u64, scenarios: u64) -> (BTreeMap<Nemesis, u64>, bool) {
    // ISC dhcpd as B in one run in four; `CAMPAIGN_PARTNER` forces either for every run.
    let isc = match std::env::var("CAMPAIGN_PARTNER").as_deref() {
        Ok("isc") => true,
        Ok("tandem" | "tandemd") => false,
        _ => seed % 4 == 1,
    };
    eprintln!(
        "campaign seed {seed}: {scenarios} scenarios, B is {} (replay: CAMPAIGN_SEED={seed})",
        if isc { "ISC dhcpd" } else { "tandemd" }
    );
    let net = PairNet::new(4);
    let mut cap = net.capture();
    let mode = if seed % 4 == 3 && !isc {
        Mode::HotStandby
    } else {
        Mode::LoadBalance
    };
    let fs = FaultFs::mount();
    let disk = Tmpfs::mount(DISK_SIZE);
    let mut servers = if isc {
        Servers {
            a: Server::start_tandemd_in(&net.a, &fs.path, |d| isc_partner(config(d, true, mode))),
            b: Server::start_isc_dhcpd(&net.b, &["lan"], |_| isc_secondary_config()),
        }
    } else {
        Servers {
            a: Server::start_tandemd_in(&net.a, &fs.path, |d| config(d, true, mode)),
            b: Server::start_tandemd_in(&net.b, &disk.path, |d| config(d, false, mode)),
        }
    };
    let mut rng = Rng::new(seed);
    let skew = match seed % 5 {
        1 => Some(i64::try_from(rng.below(61)).unwrap_or(0) - 30),
        2 => Some(90 + i64::try_from(rng.below(211)).unwrap_or(0)),
        _ => None,
    };
    // NORMAL first (a fresh pair), then B's clock is set before any client has a lease.
    servers.both_normal(60);
    if let Some(secs) = skew {
        eprintln!("campaign seed {seed}: server B's wall clock {secs:+} s for the whole run");
        servers.b.set_env(faketime(secs));
        // Killed, not stopped: a SHUTDOWN would put A in PARTNER-DOWN.
        servers.b.kill9();
        servers.b.restart();
        if secs > BOUND {
            // Beyond the bound: CONNECT refused for the time offset, each side alone.
            wait_state(&servers.a, 3 * MRD + 60, "A alone", |st, _| {
                st == "communications-interrupted"
            });
        } else {
            servers.both_normal(60);
        }
    }
    // Clients that stay and renew (and rebind) through every fault: their leases grow past
    // the MCLT and must survive to the end.
    let mut dh = Dhclient::new(&net.clients[0]);
    let _ = dh.obtain();
    let mut ud = Udhcpc::new(&net.clients[2]);
    let ud_up = ud.start().is_ok();
    let mut dc = Dhcpcd::new(&net.clients[3]);
    let dc_up = dc.start().is_ok();
    let mut r = Run {
        seed,
        rng,
        net,
        servers,
        next_mac: 0,
        played: BTreeMap::new(),
        fs,
        disk,
        skew,
        isc,
    };
    for n in 0..scenarios {
        r.scenario(n);
    }
    if r.skew.is_some_and(|s| s > BOUND) {
        // B back on the true time (a step back): the pair connects and settles.
        r.servers.b.set_env(Vec::new());
        r.servers.b.kill9();
        r.servers.b.restart();
        r.servers.both_normal(4 * u64::from(MCLT) + 90);
    }
    // Two more renewals of the clients that can be told to, in NORMAL, so that every run
    // ends with leases granted in full for the check below (a run whose last grants were
    // all MCLT-short, as one beyond the clock bound, left it nothing to check). The first
    // may still be MCLT-short; once its update is acknowledged, the second is not.
    for round in 0..2 {
        std::thread::sleep(Duration::from_secs(1));
        for (name, renewed) in [
            ("udhcpc", ud_up.then(|| ud.renew().map(|_| ()))),
            ("dhcpcd", dc_up.then(|| dc.renew().map(|_| ()))),
        ] {
            if let Some(Err(e)) = renewed {
                r.say(format!("{name}'s renewal {round} at the end failed: {e}"));
            }
        }
    }
    // Killed, not stopped: a client that vanishes gives nothing back, so its lease stays.
    dh.stop();
    ud.stop();
    dc.stop();
    let (_msgs, log) = finish(&mut cap);
    let kept = check_nothing_lost(seed, &log, &r.servers);
    // The partner's renewals tandemd had to repair (`failover::judge::repaired`: ISC dhcpd
    // sent back a renewal with our older end), counted so that a campaign shows how often.
    let repaired = [&r.servers.a, &r.servers.b]
        .iter()
        .filter(|s| s.kind == ServerKind::Tandemd)
        .map(|s| {
            s.all_logs()
                .matches("came back with our older lease end")
                .count()
        })
        .sum::<usize>();
    eprintln!(
        "campaign seed {seed}: {} ACKs, no address bound twice, {kept} live leases all kept, both NORMAL{}",
        log.acks.len(),
        if repaired > 0 {
            format!(", {repaired} partner renewals repaired")
        } else {
            String::new()
        }
    );
    (r.played, r.isc)
}

#[test]
fn campaign() {
    let scenarios = env_u64("CAMPAIGN_SCENARIOS").unwrap_or(5);
    let seeds: Vec<u64> = match env_u64("CAMPAIGN_SEED") {
        Some(s) => vec![s],
        None => {
            let first = env_u64("CAMPAIGN_FIRST_SEED").unwrap_or(1);
            (first..first + env_u64("CAMPAIGN_RUNS").unwrap_or(1)).collect()
        }
    };
    // Every seed is played even when one fails (its panic, logs and kept dirs are printed
    // as it happens), so a long campaign reports all its violations, not the first.
    let mut total: BTreeMap<Nemesis, u64> = BTreeMap::new();
    let mut failed = Vec::new();
    let mut isc_runs = 0;
    for seed in &seeds {
        match std::panic::catch_unwind(|| run(*seed, scenarios)) {
            Ok((played, isc)) => {
                for (k, v) in played {
                    *total.entry(k).or_default() += v;
                }
                isc_runs += u64::from(isc);
            }
            Err(_) => {
                eprintln!("campaign seed {seed}: violation (replay: CAMPAIGN_SEED={seed})");
                failed.push(*seed);
            }
        }
    }
    let counts: Vec<String> = total
        .iter()
        .map(|(k, v)| format!("{}={v}", k.name()))
        .collect();
    let verdict = if failed.is_empty() {
        "no violation".to_owned()
    } else {
        format!("{} failed (seeds {failed:?})", failed.len())
    };
    eprintln!(
        "campaign: {} runs ({isc_runs} of those that passed with ISC dhcpd as B), {} scenarios in the runs that passed, {verdict}; per nemesis: {}",
        seeds.len(),
        total.values().sum::<u64>(),
        counts.join(" ")
    );
    assert!(failed.is_empty(), "campaign: seeds {failed:?} failed");
}
