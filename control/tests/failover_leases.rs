//! Binding replication and the MCLT rule under faults, lease by lease.
//!
//! Two servers, each the real thing minus sockets: a `lease_mmap::Store` in a tempdir, the
//! dataplane `Engine` behind the failover gate, a worker journal and change queue, and the
//! failover `Session` over the daemon's own `Tables` storage (the same code the driver runs).
//! They talk over the shared simulation (`sim/`): a virtual TCP network on a virtual clock
//! that can delay, reset, partition and heal, with each session dialling and choosing its
//! link itself. A server can be killed (its process state dropped without a checkpoint, so
//! recovery replays the journals) and restarted from its stored failover state; the operator
//! can declare the partner down. Virtual DHCP clients run DISCOVER/REQUEST, renew, rebind and
//! release against whichever server is up.
//!
//! After every step the run checks the product's promises:
//! * no address is held by two clients at overlapping times (judged from what the clients
//!   were told by DHCPACKs);
//! * no DHCPACK promises more than the MCLT beyond what the partner acknowledged: the
//!   expiry is at most `max(now, max(tsfp, atsfp)) + MCLT`, read from the server's record
//!   before the decision (reference §3.2);
//! * a lease a DHCPACK promised survives a crash of the server that promised it.
//!
//! `TANDEM_SEEDS=N` runs N seeds (default 1500); `TANDEM_SEED=S` replays one, printing its
//! steps.

mod sim;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use control::config::{self, Config};
use control::failover::driver::session_config;
use control::failover::fsm::StateKind;
use control::failover::gate::{Gate, RelationshipView};
use control::failover::persist;
use control::failover::replicate::{Outbox, Tables, WorkerOutbox};
use control::failover::session::Session;
use control::failover::{Now, UnixTime};
use dataplane::engine::{Engine, EngineWorker, Ingress};
use dataplane::server::ChangeSink;
use dataplane::wire::dhcpv4::{MessageType, Repr};
use lease_mmap::{BindingState, Durability, Lease, TableId, WorkerJournal};
use sim::ADDRS;
use testkit::rng::Rng;

const MCLT: u32 = 300;
const LEASE: u32 = 3600;
const SERVERS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3)];
const CLIENTS: u8 = 14;
/// Steps a stretch of [`World::run_until`] may take before it is a livelock.
const MAX_STEPS: u64 = 100_000;

fn config_text(primary: bool, hot_standby: bool, dir: &std::path::Path) -> String {
    let (role, sid, (address, peer)) = if primary {
        (
            format!("role = \"primary\"\nmclt = \"{MCLT}s\"\nsplit = 128"),
            SERVERS[0],
            (ADDRS[0], ADDRS[1]),
        )
    } else {
        (
            "role = \"secondary\"".to_owned(),
            SERVERS[1],
            (ADDRS[1], ADDRS[0]),
        )
    };
    let mode = if hot_standby {
        "hot-standby"
    } else {
        "load-balance"
    };
    format!(
        r#"[server]
interfaces = ["lan"]
server_id = "{sid}"
data_dir = {dir:?}
workers = 1

[[subnet]]
prefix = "10.0.0.0/24"
pools = ["10.0.0.10-10.0.0.25"]
lease_time = "{LEASE}s"
failover = "pair"

[[failover]]
name = "pair"
{role}
mode = "{mode}"
address = "{address}"
peer_address = "{peer}"
max_response_delay = "30s"
max_unacked_updates = 4
shared_secret_file = {secret:?}
"#,
        secret = secret_file(dir).to_string_lossy(),
    )
}

/// Writes the pair's shared secret into `dir`; returns the file.
fn secret_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("failover.secret");
    std::fs::write(&path, "failover leases test secret").expect("write the secret");
    path
}

/// A running server's process state outside its session. Dropping it (and the session) is
/// kill -9.
struct Live {
    engine: Engine,
    worker: EngineWorker,
    journal: WorkerJournal,
    sink: WorkerOutbox,
    outbox: Arc<Outbox>,
    view: Arc<RelationshipView>,
}

impl Live {
    /// Opens the server as the daemon does: the store (recovering the journals), the engine
    /// behind the gate, and the session resumed from the stored failover state.
    fn open(cfg: &Config, now: Now) -> (Live, Session<Tables>) {
        let engine_cfg = control::serve::engine_config(cfg);
        let specs = engine_cfg.table_specs();
        let data_dir = &cfg.server.data_dir;
        let (store, mut journals, _) =
            lease_mmap::Store::open(data_dir, &specs, 2, Durability::Async).expect("open store");
        let store = Arc::new(store);
        let control_journal = journals.pop().expect("control journal");
        let journal = journals.pop().expect("worker journal");
        let (gate, views) = Gate::new(cfg);
        let engine = Engine::new(engine_cfg, Arc::clone(&store))
            .expect("engine")
            .with_failover(Arc::new(gate));
        let worker = engine.worker(0, 1);
        let outbox = Arc::new(Outbox::new(1, vec![true], Arc::new(|| {})));
        let sink = WorkerOutbox::new(&outbox, 0).expect("worker outbox");
        let f = &cfg.failover[0];
        let tables = Tables::new(
            store,
            Arc::new(Mutex::new(control_journal)),
            vec![TableId(0)],
            data_dir.clone(),
            &f.name,
        );
        let stored = persist::load(data_dir, &f.name).expect("stored state");
        let session = Session::new(session_config(cfg, f).expect("config"), stored, now, tables)
            .expect("session");
        let live = Live {
            engine,
            worker,
            journal,
            sink,
            outbox,
            view: Arc::clone(&views[0]),
        };
        (live, session)
    }

    fn record(&self, ip: Ipv4Addr) -> Lease {
        let id = self.engine.scope_of(ip).expect("scope");
        let t = self.engine.store().table(id);
        t.read(t.slot(ip).expect("slot")).1
    }
}

struct Node {
    cfg: Config,
    live: Option<Live>,
    /// When it was killed (wall seconds), while down.
    down_since: Option<u32>,
}

/// What a client holds, as the DHCPACK told it.
#[derive(Clone, Copy, Debug)]
struct Held {
    ip: Ipv4Addr,
    server: usize,
    expiry: u32,
}

#[derive(Clone, Copy, Debug)]
struct Client {
    mac: [u8; 6],
    held: Option<Held>,
}

/// A server's answer, owned.
#[derive(Clone, Copy, Debug)]
struct Answer {
    kind: Option<MessageType>,
    yiaddr: Ipv4Addr,
    lease_time: Option<u32>,
    /// The record of `yiaddr` before the decision.
    before: Lease,
}

struct World {
    seed: u64,
    pair: sim::Pair<Tables>,
    nodes: [Node; 2],
    clients: Vec<Client>,
    acks: u64,
    _dirs: [tempfile::TempDir; 2],
}

fn tempdir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).expect("tempdir")
    } else {
        tempfile::tempdir().expect("tempdir")
    }
}

impl World {
    fn new(seed: u64, hot_standby: bool, verbose: bool) -> World {
        let dirs = [tempdir(), tempdir()];
        let node = |i: usize| {
            let text = config_text(i == 0, hot_standby, dirs[i].path());
            let cfg = config::parse(&text).unwrap_or_else(|e| panic!("config: {e:?}"));
            Node {
                cfg,
                live: None,
                down_since: None,
            }
        };
        let nodes = [node(0), node(1)];
        let clients = (0..CLIENTS)
            .map(|n| Client {
                mac: [0x02, 0, 0, 0, 0x10, n],
                held: None,
            })
            .collect();
        let mut pair = sim::Pair::new();
        pair.verbose = verbose;
        let mut w = World {
            seed,
            pair,
            nodes,
            clients,
            acks: 0,
            _dirs: dirs,
        };
        w.start(0);
        w.start(1);
        w
    }

    fn note(&mut self, s: String) {
        self.pair.note(s);
    }

    fn wall(&self) -> UnixTime {
        self.pair.wall(0)
    }

    fn start(&mut self, i: usize) {
        let (live, session) = Live::open(&self.nodes[i].cfg, self.pair.now_for(i));
        self.nodes[i].live = Some(live);
        self.nodes[i].down_since = None;
        self.pair.start(i, session);
    }

    /// Whether a server is in PARTNER-DOWN (running, or stopped in it).
    ///
    /// The operator's partner-down is a promise the protocol relies on: the partner is down
    /// and, when it comes back, talks to us before it serves. So while one side is in
    /// PARTNER-DOWN the runs neither partition nor reset the link nor kill that side, and
    /// the other side restarts only when it can reach it.
    fn in_partner_down(&self) -> bool {
        (0..2).any(|i| {
            self.state(i) == Some(StateKind::PartnerDown)
                || (self.nodes[i].live.is_none()
                    && persist::load(&self.nodes[i].cfg.server.data_dir, "pair")
                        .expect("stored state")
                        .is_some_and(|p| p.my_state == StateKind::PartnerDown))
        })
    }

    fn state(&self, i: usize) -> Option<StateKind> {
        self.pair.state(i)
    }

    /// Runs the network and the timers until `t` (ms).
    fn run_until(&mut self, t: u64) {
        let seed = self.seed;
        let run = std::panic::AssertUnwindSafe(|| self.pair.run_until(t, MAX_STEPS));
        if let Err(e) = std::panic::catch_unwind(run) {
            eprintln!("seed {seed}: {}", self.history());
            std::panic::resume_unwind(e);
        }
    }

    fn partition(&mut self) {
        self.pair.partition();
    }

    fn heal(&mut self) {
        self.pair.heal();
    }

    fn reset_link(&mut self) {
        self.pair.reset_link();
    }

    /// kill -9: the process state is gone (no checkpoint, no journal close); the peer sees
    /// the connection close unless partitioned.
    fn kill(&mut self, i: usize) {
        self.note(format!("{} killed", name(i)));
        self.pair.kill(i);
        self.nodes[i].live = None;
        self.nodes[i].down_since = Some(self.wall().0);
    }

    fn restart(&mut self, i: usize) {
        self.note(format!("{} restarted", name(i)));
        self.start(i);
        self.check_promises_kept(i);
    }

    /// The operator declares `i`'s partner down since it was killed (only when it is).
    fn partner_down(&mut self, i: usize) {
        let Some(since) = self.nodes[1 - i].down_since else {
            return;
        };
        if self.nodes[i].live.is_none() {
            return;
        }
        if self
            .pair
            .with(i, |s, now| s.partner_down(now, UnixTime(since)))
            .is_ok()
        {
            self.note(format!(
                "{}: operator says partner down since {since}",
                name(i)
            ));
        }
    }

    // ---- DHCP ----

    /// Server `i` answers `req` as a worker does: decided behind the gate (published from
    /// the session, as the driver does after every turn), committed, and the change handed
    /// to the session.
    fn ask(&mut self, i: usize, req: &Repr<'_>) -> Option<Answer> {
        let wall = self.wall();
        let live = self.nodes[i].live.as_mut()?;
        live.view.publish(self.pair.sides[i].fsm());
        let ingress = Ingress {
            if_addr: SERVERS[i],
            src_mac: mac_of(req),
            src_ip: Ipv4Addr::UNSPECIFIED,
        };
        let d = live.engine.decide(&mut live.worker, req, &ingress, wall);
        let answer = d.reply().map(|r| {
            let o = &r.repr.options;
            Answer {
                kind: o.message_type,
                yiaddr: r.repr.yiaddr,
                lease_time: o.lease_time,
                before: Lease::default(),
            }
        });
        if let Some(c) = d.commit().copied() {
            live.journal.record(c.table, c.slot, c.version, &c.lease);
            live.journal.commit().expect("group commit");
            live.sink.changed(c.table, c.slot);
            live.sink.batch_done();
        }
        let (mut changed, mut resync) = (Vec::new(), Vec::new());
        live.outbox
            .drain(|t, s| changed.push((t, s)), |t| resync.push(t));
        self.pair.with(i, |s, now| {
            s.handle_changed(now, &changed);
            for t in resync {
                s.handle_resync(now, t);
            }
        });
        answer
    }

    /// Asks `i`, first reading the record of `ip` (for the MCLT check of an ACK).
    fn ask_about(&mut self, i: usize, req: &Repr<'_>, ip: Ipv4Addr) -> Option<Answer> {
        let before = self.nodes[i].live.as_ref()?.record(ip);
        let mut a = self.ask(i, req)?;
        a.before = before;
        Some(a)
    }

    fn up(&self) -> Vec<usize> {
        (0..2).filter(|&i| self.nodes[i].live.is_some()).collect()
    }

    fn client_step(&mut self, rng: &mut Rng) {
        let c = usize::try_from(rng.below(self.clients.len() as u64)).unwrap_or(0);
        let client = self.clients[c];
        let mut up = self.up();
        if rng.chance(50) {
            up.reverse();
        }
        let wall = self.wall().0;
        match client.held {
            Some(h) if h.expiry <= wall => {
                self.clients[c].held = None;
            }
            None => self.dora(c, &up),
            Some(h) => match rng.below(10) {
                0..=4 => {
                    // RENEWING: unicast to the server that gave it.
                    if self.nodes[h.server].live.is_some() {
                        self.renew(c, &[h.server], h);
                    }
                }
                5..=7 => self.renew(c, &up, h),
                _ => {
                    if self.nodes[h.server].live.is_some() {
                        let mut r = request(Some(MessageType::Release), client.mac);
                        r.ciaddr = h.ip;
                        r.options.server_id = Some(SERVERS[h.server]);
                        self.ask(h.server, &r);
                    }
                    self.note(format!("client {c} releases {}", h.ip));
                    self.clients[c].held = None;
                }
            },
        }
    }

    fn dora(&mut self, c: usize, up: &[usize]) {
        let mac = self.clients[c].mac;
        let mut offers = Vec::new();
        for &i in up {
            let snapshot: Vec<(Ipv4Addr, Lease)> = match (&self.nodes[i].live, self.pair.verbose) {
                (Some(l), true) => (10..26)
                    .map(|n| {
                        let ip = Ipv4Addr::new(10, 0, 0, n);
                        (ip, l.record(ip))
                    })
                    .collect(),
                _ => Vec::new(),
            };
            if let Some(a) = self.ask(i, &request(Some(MessageType::Discover), mac))
                && a.kind == Some(MessageType::Offer)
            {
                if let Some((_, b)) = snapshot.iter().find(|(ip, _)| *ip == a.yiaddr) {
                    self.note(format!(
                        "{} offers {} to client {c} (was {:?} owner {:?} ends {} cltt {} tstp {} atsfp {} tsfp {})",
                        name(i),
                        a.yiaddr,
                        b.state,
                        b.owner,
                        b.ends.0,
                        b.cltt.0,
                        b.tstp.0,
                        b.atsfp.0,
                        b.tsfp.0
                    ));
                }
                offers.push((i, a.yiaddr));
            }
        }
        let Some(&(server, ip)) = offers.first() else {
            return;
        };
        let mut r = request(Some(MessageType::Request), mac);
        r.options.server_id = Some(SERVERS[server]);
        r.options.requested_ip = Some(ip);
        // Broadcast: every server sees it; only the chosen one answers.
        let mut ack = None;
        for &i in up {
            let a = self.ask_about(i, &r, ip);
            if i == server {
                ack = a;
            } else if let Some(a) = a {
                assert!(
                    a.kind.is_none(),
                    "seed {}: server {} answered a REQUEST for server {}: {a:?}",
                    self.seed,
                    name(i),
                    name(server)
                );
            }
        }
        self.take(c, server, ip, ack);
    }

    fn renew(&mut self, c: usize, servers: &[usize], h: Held) {
        let mac = self.clients[c].mac;
        let mut r = request(Some(MessageType::Request), mac);
        r.ciaddr = h.ip;
        for &i in servers {
            let a = self.ask_about(i, &r, h.ip);
            if a.is_some_and(|a| a.kind.is_some()) {
                self.take(c, i, h.ip, a);
                return;
            }
        }
    }

    /// The client reads a server's answer to its REQUEST.
    fn take(&mut self, c: usize, server: usize, ip: Ipv4Addr, a: Option<Answer>) {
        let Some(a) = a else { return };
        match a.kind {
            Some(MessageType::Ack) => {
                assert_eq!(a.yiaddr, ip, "seed {}: ACK for another address", self.seed);
                let wall = self.wall();
                let granted = a.lease_time.expect("ACK carries a lease time");
                let expiry = wall.0.saturating_add(granted);
                // The MCLT rule, from the record as it was before the decision.
                let known = a.before.tsfp.max(a.before.atsfp);
                let bound = wall.0.max(known.0).saturating_add(MCLT);
                assert!(
                    expiry <= bound,
                    "seed {}: {} ACKed {ip} until {expiry}, beyond max(now {}, acknowledged {}) + MCLT = {bound}\n{}",
                    self.seed,
                    name(server),
                    wall.0,
                    known.0,
                    self.history()
                );
                self.acks += 1;
                let b = a.before;
                self.note(format!(
                    "client {c} holds {ip} from {} for {granted} s (was {:?} owner {:?} ends {} cltt {} tstp {} atsfp {} tsfp {})",
                    name(server),
                    b.state,
                    b.owner,
                    b.ends.0,
                    b.cltt.0,
                    b.tstp.0,
                    b.atsfp.0,
                    b.tsfp.0
                ));
                self.clients[c].held = Some(Held { ip, server, expiry });
            }
            Some(MessageType::Nak) => {
                self.note(format!("client {c} NAKed for {ip} by {}", name(server)));
                self.clients[c].held = None;
            }
            _ => {}
        }
    }

    // ---- the promises ----

    fn history(&self) -> String {
        let from = self.pair.log.len().saturating_sub(80);
        self.pair.log[from..].join("\n")
    }

    /// No address held by two clients at once.
    /// The expiry sweep (from each table's expiry index) moved every lease of ours that ran
    /// out a sweep ago or more to EXPIRED, those written before a restart too.
    fn check_expired_swept(&self) {
        let wall = self.wall();
        for (i, node) in self.nodes.iter().enumerate() {
            let Some(live) = &node.live else { continue };
            let t = live.engine.store().table(TableId(0));
            t.for_each(|slot, _, l| {
                assert!(
                    !(l.state == BindingState::Active
                        && l.owner == lease_mmap::Owner::Us
                        && l.ends.0 + 10 < wall.0),
                    "seed {}: {} still holds {} ACTIVE, ended at {} (now {})\n{}",
                    self.seed,
                    name(i),
                    t.addr(slot),
                    l.ends.0,
                    wall.0,
                    self.history()
                );
            });
        }
    }

    fn check_no_double_binding(&self) {
        let wall = self.wall().0;
        let mut by_ip: BTreeMap<Ipv4Addr, usize> = BTreeMap::new();
        for (c, cl) in self.clients.iter().enumerate() {
            let Some(h) = cl.held.filter(|h| h.expiry > wall) else {
                continue;
            };
            if let Some(other) = by_ip.insert(h.ip, c) {
                let records: Vec<_> = self
                    .nodes
                    .iter()
                    .map(|n| n.live.as_ref().map(|l| l.record(h.ip)))
                    .collect();
                panic!(
                    "seed {}: {} bound to clients {other} and {c} at once ({:?} / {:?})\nrecords: {records:#?}\n{}",
                    self.seed,
                    h.ip,
                    self.clients[other].held,
                    h,
                    self.history()
                );
            }
        }
    }

    /// After `i` restarts: every lease it promised and the client still holds is in its
    /// table, for that client, at least as long.
    fn check_promises_kept(&self, i: usize) {
        let wall = self.wall().0;
        let Some(live) = self.nodes[i].live.as_ref() else {
            return;
        };
        for (c, cl) in self.clients.iter().enumerate() {
            let Some(h) = cl.held.filter(|h| h.server == i && h.expiry > wall) else {
                continue;
            };
            let l = live.record(h.ip);
            let ok =
                l.state == BindingState::Active && l.chaddr[..6] == cl.mac && l.ends.0 >= h.expiry;
            assert!(
                ok,
                "seed {}: {} lost client {c}'s lease of {} (until {}) in a crash: record {l:?}\n{}",
                self.seed,
                name(i),
                h.ip,
                h.expiry,
                self.history()
            );
        }
    }
}

fn mac_of(req: &Repr<'_>) -> [u8; 6] {
    let mut m = [0; 6];
    m.copy_from_slice(&req.chaddr[..6]);
    m
}

fn name(i: usize) -> &'static str {
    ["primary", "secondary"][i]
}

fn request(mt: Option<MessageType>, mac: [u8; 6]) -> Repr<'static> {
    Repr::request(
        mac,
        u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]),
        mt,
    )
}

/// One randomized run: clients, time, and faults; the promises checked after every step.
fn run_seed(seed: u64, verbose: bool) -> u64 {
    let mut rng = Rng::new(seed);
    let mut w = World::new(seed, seed % 3 == 2, verbose);
    // Both up and NORMAL first (RECOVER, RECOVER-WAIT for the MCLT, then NORMAL).
    w.run_until(u64::from(MCLT) * 1000 + 60_000);
    for _ in 0..160 {
        match rng.below(100) {
            0..=54 => w.client_step(&mut rng),
            55..=79 => {
                let ms = match rng.below(4) {
                    0 => rng.below(2_000),
                    1 => rng.below(30_000),
                    2 => rng.below(u64::from(MCLT) * 1000),
                    _ => rng.below(u64::from(LEASE) * 1000),
                };
                let t = w.pair.now + ms;
                w.run_until(t);
            }
            80..=84 => {
                if w.pair.partitioned {
                    w.heal();
                } else if !w.in_partner_down() {
                    // The operator's partner-down promises that the partner is down and,
                    // when it returns, reaches us before it serves: no partition then.
                    w.partition();
                }
            }
            85..=87 => {
                if !w.in_partner_down() {
                    w.reset_link();
                }
            }
            88..=92 => {
                let i = usize::try_from(rng.below(2)).unwrap_or(0);
                if w.nodes[i].live.is_some() {
                    if w.nodes[1 - i].live.is_some() && w.state(i) != Some(StateKind::PartnerDown) {
                        w.kill(i);
                    }
                } else if !(w.in_partner_down()
                    && (w.pair.partitioned || w.nodes[1 - i].live.is_none()))
                {
                    w.restart(i);
                }
            }
            _ => {
                let i = usize::try_from(rng.below(2)).unwrap_or(0);
                w.partner_down(i);
            }
        }
        w.check_no_double_binding();
    }
    // The link healed, everyone back: the pair converges to NORMAL.
    w.heal();
    for i in 0..2 {
        if w.nodes[i].live.is_none() {
            w.restart(i);
        }
    }
    let until = w.pair.now + 4 * u64::from(MCLT) * 1000;
    w.run_until(until);
    w.check_no_double_binding();
    let states = (w.state(0), w.state(1));
    assert_eq!(
        states,
        (Some(StateKind::Normal), Some(StateKind::Normal)),
        "seed {seed}: the pair did not return to NORMAL\n{}",
        w.history()
    );
    w.check_expired_swept();
    w.acks
}

#[test]
fn randomized_pairs_never_double_bind_nor_pass_the_mclt() {
    if let Some(seed) = std::env::var("TANDEM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        let acks = run_seed(seed, true);
        eprintln!("seed {seed}: {acks} DHCPACKs checked");
        return;
    }
    let seeds: u64 = std::env::var("TANDEM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1500);
    let started = std::time::Instant::now();
    let mut acks = 0;
    for seed in 0..seeds {
        acks += run_seed(seed, false);
    }
    eprintln!(
        "{seeds} seeds, {acks} DHCPACKs checked, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(acks > seeds * 5, "the runs serve clients ({acks} ACKs)");
}

/// A peer that got through CONNECT and then sends bindings no server would grant: each is
/// refused and leaves our record as it was; a sane one on the same link is installed.
#[test]
fn bindings_out_of_bounds_from_the_peer_change_nothing() {
    use control::failover::msg::{self as fo, BindingStatus, MessageType as FoType};
    let mut w = World::new(7, false, false);
    w.run_until(u64::from(MCLT) * 1000 + 60_000);
    assert_eq!(
        (w.state(0), w.state(1)),
        (Some(StateKind::Normal), Some(StateKind::Normal))
    );
    // A client holds a lease from some server; the rogue updates go to the secondary.
    w.dora(0, &[0, 1]);
    let held = w.clients[0].held.expect("client 0 leased");
    w.run_until(w.pair.now + 5_000);
    let victim = 1;
    fn live(w: &World) -> &Live {
        w.nodes[1].live.as_ref().expect("up")
    }
    let free = (10..26)
        .map(|n| Ipv4Addr::new(10, 0, 0, n))
        .find(|&ip| ip != held.ip && live(&w).record(ip).state == BindingState::Free)
        .expect("a free address");
    let now = w.wall().0;
    // The peer's own machine sends them (signed as the link requires), as a rogue or broken
    // partner would.
    let bndupd = |w: &mut World, ip: Ipv4Addr, mac: u8, cltt: u32, ends: u32| {
        let chaddr = [1, 2, 0, 0, 0, 0x66, mac];
        let mut r = fo::Repr::new(FoType::BndUpd, UnixTime(now), 0);
        r.options.assigned_ip = Some(ip);
        r.options.binding_status = Some(BindingStatus::Active as u8);
        r.options.chaddr = Some(&chaddr);
        r.options.cltt = Some(UnixTime(cltt));
        r.options.lease_expiry = Some(UnixTime(ends));
        r.options.potential_expiry = Some(UnixTime(ends));
        r.options.stos = Some(UnixTime(cltt));
        let sent = w.pair.with(1 - victim, |s, now| {
            s.operate(now, |f, now| f.send(now, &r, None))
        });
        assert!(sent.is_some(), "the peer is connected");
        let t = w.pair.now + 2_000;
        w.run_until(t);
    };
    let rogue = [
        // Another client over the lease a client holds.
        ("active for another client", held.ip, 1, now, now + 600),
        // A transaction an hour in the future.
        ("cltt in the future", free, 2, now + 3600, now + 4000),
        // Ten days, against a 1 h lease and a 5 min MCLT.
        ("end too late", free, 3, now, now + 10 * 86_400),
        ("infinite", free, 4, now, u32::MAX),
    ];
    let link = w.pair.sides[victim].link().expect("linked");
    for (what, ip, mac, cltt, ends) in rogue {
        let before = [live(&w).record(held.ip), live(&w).record(free)];
        bndupd(&mut w, ip, mac, cltt, ends);
        let after = [live(&w).record(held.ip), live(&w).record(free)];
        assert_eq!(before, after, "{what}: the record changed");
        assert_eq!(
            w.pair.sides[victim].link(),
            Some(link),
            "{what}: link dropped"
        );
    }
    // The same link's sane update is installed: the refusals were the bounds, not the path.
    bndupd(&mut w, free, 5, now, now + 600);
    let l = live(&w).record(free);
    assert_eq!((l.state, l.chaddr[5]), (BindingState::Active, 5), "{l:?}");
}
