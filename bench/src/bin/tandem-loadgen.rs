//! tandem-loadgen: a multi-queue AF_XDP DHCPv4 client emulator that runs full DORA exchanges
//! (DISCOVER → OFFER → REQUEST → ACK) for many distinct clients against a server on the other
//! end of an interface (a veth in a namespace testbed), at a fixed offered rate or unpaced,
//! for a bounded time, and reports exchanges/s, drops and latency percentiles.
//!
//! ```text
//! tandem-loadgen --iface IF [--giaddr A.B.C.D] [--server A.B.C.D --server-mac MAC]
//!                [--rate N] [--outstanding N] [--exchanges N] [--duration S] [--timeout MS]
//!                [--clients N] [--first-client N]
//!                [--queues N] [--cpus 0,1] [--batch N] [--client-id] [--no-option82] [--xdp-mode auto|native|generic]
//!                [--flood-rate N] [--flood-shape circuit|direct|mac] [--flood-giaddr A.B.C.D]
//!                [--label NAME] [--json FILE] [--quiet]
//! ```
//!
//! - `--giaddr`: act as a relay agent (as perfdhcp -4 does): requests from giaddr:67 with
//!   hops 1 and option 82 (circuit id `lg` + client number, remote id the client's MAC); the server
//!   answers giaddr:67. Without it, clients speak directly from 0.0.0.0:68 with their own MAC
//!   and the broadcast flag. `--no-option82` leaves option 82 out, as perfdhcp -4 does.
//! - `--server`/`--server-mac`: unicast the requests to the server (default: broadcast).
//! - `--rate N`: start N exchanges per second (0: as fast as the window allows); open loop,
//!   replies do not slow it down. `--outstanding N` caps the exchanges in flight (closed loop).
//! - `--timeout MS` (1000): an exchange without its ACK after this long is dropped.
//! - `--exchanges N`: start at most N exchanges, and end the run once they are all over.
//! - `--clients N` (1,000,000) distinct clients, numbered from `--first-client` (0): exchange
//!   `n` is client `first + n % N`.
//! - `--flood-rate N`: besides the exchanges, N DHCPDISCOVERs a second of a hostile client
//!   that never answers an OFFER (for as long as the exchanges start), shaped by
//!   `--flood-shape` (`direct`, the default: a random chaddr per packet, not relayed;
//!   `circuit`: relayed from `--flood-giaddr` (default `--giaddr`) with one fixed option 82
//!   circuit-id and random chaddrs, one abusive subscriber port; `mac`: one fixed chaddr, not
//!   relayed). The flood is counted apart (`flood_sent`, and `flood_replies`: OFFERs to it);
//!   every other figure is the legitimate clients' alone.
//!
//! One AF_XDP socket (copy mode on veth) per rx queue of the interface, one worker thread per
//! socket, pinned round robin to `--cpus`. The generator's XDP program
//! (`ebpf::XDP_LG_CLIENT`) steers UDP to port 68 and 67 into the sockets and passes the rest
//! (ARP) to the kernel; the interface keeps its address so that the server can resolve giaddr.
//!
//! Output: one progress line per second on stderr, a summary on stderr, and one JSON line on
//! stdout (and appended to `--json FILE`). Exit status 0 when the run completed, 1 on a setup
//! error.

use std::error::Error;
use std::io::Write;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bench::loadgen::{self, Addressing, Exchanges, Flood, FloodShape, Histogram, Outcome};
use bench::xsk;
use dataplane::stats::{DropReason, WorkerStats};
use dataplane::wire::dhcpv4::MessageType;
use dataplane::worker::{DEFAULT_SLOT_LEN, FrameIo, TxBatch};
use dataplane::xdp::{XskIo, rx_queue_count};

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

#[derive(Clone, Debug)]
struct Args {
    iface: String,
    giaddr: Option<Ipv4Addr>,
    server: Option<Ipv4Addr>,
    server_mac: Option<[u8; 6]>,
    rate: u64,
    outstanding: u64,
    duration: Duration,
    timeout: Duration,
    clients: u64,
    first_client: u64,
    exchanges: u64,
    queues: Option<u32>,
    cpus: Vec<usize>,
    batch: usize,
    client_id: bool,
    no_option82: bool,
    xdp_mode: String,
    flood_rate: u64,
    flood_shape: FloodShape,
    flood_giaddr: Option<Ipv4Addr>,
    label: String,
    json: Option<String>,
    quiet: bool,
}

const USAGE: &str = "usage: tandem-loadgen --iface IF [--giaddr IP] [--server IP --server-mac MAC] \
[--rate N] [--outstanding N] [--exchanges N] [--duration S] [--timeout MS] [--clients N] [--first-client N] \
[--queues N] [--cpus 0,1] \
[--batch N] [--client-id] [--no-option82] [--xdp-mode auto|native|generic] \
[--flood-rate N] [--flood-shape circuit|direct|mac] [--flood-giaddr IP] [--label NAME] [--json FILE] [--quiet]";

/// The most `--flood-rate` takes: far above what one generator core sends.
const MAX_FLOOD_RATE: u64 = 10_000_000;

fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(format!("bad MAC {s:?}").into());
    }
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16).map_err(|_| format!("bad MAC {s:?}"))?;
    }
    Ok(mac)
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        iface: String::new(),
        giaddr: None,
        server: None,
        server_mac: None,
        rate: 1000,
        outstanding: 0,
        duration: Duration::from_secs(10),
        timeout: Duration::from_millis(1000),
        clients: 1_000_000,
        first_client: 0,
        exchanges: 0,
        queues: None,
        cpus: Vec::new(),
        batch: 64,
        client_id: false,
        no_option82: false,
        xdp_mode: "auto".into(),
        flood_rate: 0,
        flood_shape: FloodShape::Direct,
        flood_giaddr: None,
        label: "loadgen".into(),
        json: None,
        quiet: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--iface" => a.iface = val()?,
            "--giaddr" => a.giaddr = Some(val()?.parse()?),
            "--server" => a.server = Some(val()?.parse()?),
            "--server-mac" => a.server_mac = Some(parse_mac(&val()?)?),
            "--rate" => a.rate = val()?.parse()?,
            "--outstanding" => a.outstanding = val()?.parse()?,
            "--duration" => a.duration = Duration::from_secs_f64(val()?.parse()?),
            "--timeout" => a.timeout = Duration::from_millis(val()?.parse()?),
            "--clients" => a.clients = val()?.parse::<u64>()?.clamp(1, 1 << 32),
            "--first-client" => a.first_client = val()?.parse()?,
            "--exchanges" => a.exchanges = val()?.parse()?,
            "--queues" => a.queues = Some(val()?.parse()?),
            "--cpus" => a.cpus = bench::cpu_list(&val()?)?,
            "--batch" => a.batch = val()?.parse::<usize>()?.clamp(1, 1024),
            "--client-id" => a.client_id = true,
            "--no-option82" => a.no_option82 = true,
            "--xdp-mode" => a.xdp_mode = val()?,
            "--flood-rate" => a.flood_rate = val()?.parse()?,
            "--flood-shape" => {
                let v = val()?;
                a.flood_shape = FloodShape::parse(&v)
                    .ok_or_else(|| format!("--flood-shape {v:?}: circuit, direct or mac"))?;
            }
            "--flood-giaddr" => a.flood_giaddr = Some(val()?.parse()?),
            "--label" => a.label = val()?,
            "--json" => a.json = Some(val()?),
            "--quiet" => a.quiet = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}").into()),
        }
    }
    if a.iface.is_empty() {
        return Err(format!("--iface is required\n{USAGE}").into());
    }
    if a.server.is_some() != a.server_mac.is_some() {
        return Err("--server and --server-mac go together".into());
    }
    if a.duration > Duration::from_secs(24 * 3600) {
        return Err("--duration is at most a day".into());
    }
    if a.flood_rate > MAX_FLOOD_RATE {
        return Err(format!("--flood-rate is at most {MAX_FLOOD_RATE}").into());
    }
    if a.flood_rate > 0
        && a.flood_shape == FloodShape::Circuit
        && a.flood_giaddr.or(a.giaddr).is_none()
    {
        return Err("--flood-shape circuit is relayed: it needs --flood-giaddr or --giaddr".into());
    }
    Ok(a)
}

/// One worker's counters, read by the main thread for progress and the summary.
#[derive(Debug, Default)]
struct Counters {
    started: AtomicU64,
    discovers: AtomicU64,
    offers: AtomicU64,
    requests: AtomicU64,
    acks: AtomicU64,
    completed: AtomicU64,
    naks: AtomicU64,
    late: AtomicU64,
    stale: AtomicU64,
    other: AtomicU64,
    tx_failed: AtomicU64,
    behind: AtomicU64,
    window_full: AtomicU64,
    dora_ns_sum: AtomicU64,
    /// Flood DISCOVERs handed to the socket.
    flood_sent: AtomicU64,
    /// Replies (OFFERs) to the flood.
    flood_replies: AtomicU64,
    flood_behind: AtomicU64,
    flood_tx_failed: AtomicU64,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

#[derive(Clone, Copy, Debug, Default)]
struct Totals {
    started: u64,
    discovers: u64,
    offers: u64,
    requests: u64,
    acks: u64,
    completed: u64,
    naks: u64,
    late: u64,
    stale: u64,
    other: u64,
    tx_failed: u64,
    behind: u64,
    window_full: u64,
    dora_ns_sum: u64,
    flood_sent: u64,
    flood_replies: u64,
    flood_behind: u64,
    flood_tx_failed: u64,
}

fn totals(all: &[Arc<Counters>]) -> Totals {
    let mut t = Totals::default();
    for c in all {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        t.started += g(&c.started);
        t.discovers += g(&c.discovers);
        t.offers += g(&c.offers);
        t.requests += g(&c.requests);
        t.acks += g(&c.acks);
        t.completed += g(&c.completed);
        t.naks += g(&c.naks);
        t.late += g(&c.late);
        t.stale += g(&c.stale);
        t.other += g(&c.other);
        t.tx_failed += g(&c.tx_failed);
        t.behind += g(&c.behind);
        t.window_full += g(&c.window_full);
        t.dora_ns_sum += g(&c.dora_ns_sum);
        t.flood_sent += g(&c.flood_sent);
        t.flood_replies += g(&c.flood_replies);
        t.flood_behind += g(&c.flood_behind);
        t.flood_tx_failed += g(&c.flood_tx_failed);
    }
    t
}

/// What every worker shares.
struct Shared {
    start: Instant,
    addr: Addressing,
    /// The flood sent beside the exchanges, if `--flood-rate` asks for one.
    flood: Option<Flood>,
    exchanges: Exchanges,
    /// The next exchange number.
    next: AtomicU64,
    /// The sweeper's position: every exchange before it is over.
    swept: AtomicU64,
    /// Exchanges over (completed, refused, late or timed out), for `--outstanding`.
    ended: AtomicU64,
    timeouts: AtomicU64,
    stop: AtomicBool,
    args: Args,
    /// Starts stop at this time (ns since `start`).
    send_until: u64,
    /// Workers stop at this time (`send_until` + the timeout).
    run_until: u64,
    threads: u64,
}

impl Shared {
    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

struct WorkerOut {
    /// Replies the kernel dropped on the way into this worker's socket (rx ring full, no
    /// fill-ring frame): the generator's own losses.
    xsk_drops: u64,
    discover_to_offer: Histogram,
    request_to_ack: Histogram,
    discover_to_ack: Histogram,
}

/// Most a worker lets its paced sends fall behind before it gives the backlog up (counted
/// as `behind`): catching up would send a burst the offered rate never asked for.
const MAX_BACKLOG: Duration = Duration::from_millis(50);

fn worker(sh: &Shared, mut io: XskIo, w: u16, c: &Counters) -> WorkerOut {
    let stats = WorkerStats::new();
    let batch = sh.args.batch;
    // Room for one batch of REQUESTs (one per received OFFER) and one of DISCOVERs.
    let mut tx = TxBatch::new(batch * 2, DEFAULT_SLOT_LEN);
    // The flood's own batch, so that its send failures are not the exchanges'.
    let mut flood_tx = TxBatch::new(batch, DEFAULT_SLOT_LEN);
    let flood_per_ns = sh.args.flood_rate as f64 / sh.threads as f64 / 1e9;
    let flood_backlog = (flood_per_ns * MAX_BACKLOG.as_nanos() as f64).ceil() as u64 + batch as u64;
    let mut flood_mine: u64 = 0;
    let mut rng = u64::from(w) ^ sh.start.elapsed().as_nanos() as u64 ^ 0x666c_6f6f_6400_0000;
    let mut out = WorkerOut {
        xsk_drops: 0,
        discover_to_offer: Histogram::default(),
        request_to_ack: Histogram::default(),
        discover_to_ack: Histogram::default(),
    };
    let per_ns = sh.args.rate as f64 / sh.threads as f64 / 1e9;
    let backlog = (per_ns * MAX_BACKLOG.as_nanos() as f64).ceil() as u64 + batch as u64;
    let timeout_ns = u64::try_from(sh.args.timeout.as_nanos()).unwrap_or(u64::MAX);
    let capacity = sh.exchanges.capacity();
    let margin = sh.threads * batch as u64 * 2;
    let clients = sh.args.clients;
    let mut mine: u64 = 0;
    let mut iterations: u64 = 0;
    loop {
        iterations += 1;
        let now = sh.now();
        if now >= sh.run_until || sh.stop.load(Ordering::Relaxed) {
            break;
        }
        let mut busy = false;
        // Replies.
        match io.recv(&stats) {
            Ok(rx) => {
                for f in rx.frames() {
                    busy = true;
                    let Some(reply) = loadgen::parse_reply(f.data) else {
                        add(&c.other, 1);
                        continue;
                    };
                    if loadgen::is_flood_mac(&reply.mac) {
                        add(&c.flood_replies, 1);
                        continue;
                    }
                    let now = sh.now();
                    match reply.kind {
                        MessageType::Offer => {
                            add(&c.offers, 1);
                            match sh.exchanges.on_offer(reply.xid, now) {
                                Outcome::Offered { discover_to_offer } => {
                                    out.discover_to_offer.record(discover_to_offer);
                                    let pushed =
                                        tx.push_with(|buf| loadgen::request(&sh.addr, &reply, buf));
                                    if matches!(pushed, Ok(true)) {
                                        add(&c.requests, 1);
                                    } else {
                                        add(&c.tx_failed, 1);
                                    }
                                }
                                _ => add(&c.stale, 1),
                            }
                        }
                        MessageType::Ack | MessageType::Nak => {
                            let nak = reply.kind == MessageType::Nak;
                            if !nak {
                                add(&c.acks, 1);
                            }
                            match sh.exchanges.on_ack(reply.xid, now, nak) {
                                Outcome::Acked {
                                    request_to_ack,
                                    discover_to_ack,
                                } => {
                                    add(&sh.ended, 1);
                                    if discover_to_ack > timeout_ns {
                                        add(&c.late, 1);
                                    } else {
                                        add(&c.completed, 1);
                                        add(&c.dora_ns_sum, discover_to_ack);
                                        out.request_to_ack.record(request_to_ack);
                                        out.discover_to_ack.record(discover_to_ack);
                                    }
                                }
                                Outcome::Nakked => {
                                    add(&sh.ended, 1);
                                    add(&c.naks, 1);
                                }
                                _ => add(&c.stale, 1),
                            }
                        }
                        _ => add(&c.other, 1),
                    }
                }
            }
            Err(e) => {
                if iterations < 4 {
                    eprintln!("tandem-loadgen: worker {w}: receive: {e}");
                }
            }
        }
        // New exchanges.
        let now = sh.now();
        if now < sh.send_until {
            let want = if sh.args.rate > 0 {
                let target = (now as f64 * per_ns) as u64;
                if target > mine + backlog {
                    add(&c.behind, target - mine - backlog);
                    mine = target - backlog;
                }
                target.saturating_sub(mine)
            } else {
                u64::MAX
            };
            let room = tx.remaining().saturating_sub(batch) as u64;
            let mut n = want.min(room).min(batch as u64);
            while n > 0 {
                let next = sh.next.load(Ordering::Relaxed);
                if sh.args.exchanges > 0 && next >= sh.args.exchanges {
                    break;
                }
                if next + margin >= sh.swept.load(Ordering::Relaxed) + capacity {
                    add(&c.window_full, 1);
                    break;
                }
                if sh.args.outstanding > 0
                    && next.saturating_sub(sh.ended.load(Ordering::Relaxed)) >= sh.args.outstanding
                {
                    break;
                }
                let seq = sh.next.fetch_add(1, Ordering::Relaxed);
                let mac = loadgen::client_mac((sh.args.first_client + seq % clients) as u32);
                sh.exchanges.start(seq, sh.now());
                add(&c.started, 1);
                mine += 1;
                n -= 1;
                let pushed = tx.push_with(|buf| loadgen::discover(&sh.addr, seq as u32, mac, buf));
                if matches!(pushed, Ok(true)) {
                    add(&c.discovers, 1);
                } else {
                    add(&c.tx_failed, 1);
                }
            }
        }
        if !tx.is_empty() {
            busy = true;
            let sent = io.send(&tx);
            if sent.failed > 0 {
                add(&c.tx_failed, sent.failed as u64);
            }
            tx.clear();
        }
        // The flood, paced like the starts, after them.
        if let Some(flood) = &sh.flood
            && now < sh.send_until
        {
            let target = (now as f64 * flood_per_ns) as u64;
            if target > flood_mine + flood_backlog {
                add(&c.flood_behind, target - flood_mine - flood_backlog);
                flood_mine = target - flood_backlog;
            }
            let n = target
                .saturating_sub(flood_mine)
                .min(flood_tx.remaining() as u64);
            for _ in 0..n {
                flood_mine += 1;
                if !matches!(
                    flood_tx.push_with(|buf| flood.discover(&mut rng, buf)),
                    Ok(true)
                ) {
                    add(&c.flood_tx_failed, 1);
                }
            }
            // Not `busy`: the loop still waits for replies, so the flood leaves in batches
            // of up to a millisecond's worth rather than a kick per packet.
            if !flood_tx.is_empty() {
                let sent = io.send(&flood_tx);
                add(&c.flood_sent, (flood_tx.len() - sent.failed) as u64);
                add(&c.flood_tx_failed, sent.failed as u64);
                flood_tx.clear();
            }
        }
        if !busy {
            // Sleep until a reply comes, at most 1 ms (the pacing's granularity: the starts
            // that fell due meanwhile leave in the next batch).
            let _ = io.wait(Duration::from_millis(1), None, &stats);
        }
    }
    // `wait` adds the kernel's drop counters to `stats`; once more for the last ones.
    let _ = io.wait(Duration::ZERO, None, &stats);
    let snap = stats.snapshot();
    out.xsk_drops =
        snap.dropped(DropReason::XskRxDropped) + snap.dropped(DropReason::XskRxRingFull);
    out
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

fn run(args: Args) -> Result<()> {
    let queues = args
        .queues
        .unwrap_or_else(|| rx_queue_count(&args.iface))
        .clamp(1, ebpf::MAX_QUEUES);
    let hw_queues = rx_queue_count(&args.iface);
    if queues < hw_queues {
        eprintln!(
            "tandem-loadgen: warning: {} has {hw_queues} rx queues and only {queues} get a socket: replies arriving on the others go to the kernel and count as drops",
            args.iface
        );
    }
    let our_mac = parse_mac(
        std::fs::read_to_string(format!("/sys/class/net/{}/address", args.iface))
            .map_err(|e| format!("{}: {e}", args.iface))?
            .trim(),
    )?;
    let addr = Addressing {
        relay: args.giaddr.map(|g| (g, our_mac)),
        dst_ip: args.server.unwrap_or(Ipv4Addr::BROADCAST),
        dst_mac: args.server_mac.unwrap_or([0xff; 6]),
        client_id: args.client_id,
        option82: !args.no_option82,
        circuit_id: None,
    };
    let flood = if args.flood_rate > 0 {
        let relay = args.flood_giaddr.or(args.giaddr).map(|g| (g, our_mac));
        Some(
            Flood::new(args.flood_shape, &addr, relay)
                .ok_or("--flood-shape circuit needs a relay")?,
        )
    } else {
        None
    };

    // The XDP program and the sockets.
    let steering = xsk::Steering::attach(&args.iface, queues, &args.xdp_mode, args.batch)?;
    let (mode, zero_copy) = (steering.mode, steering.zero_copy());
    let (_bpf, sockets) = (steering.bpf, steering.sockets);
    let rate = args.rate as f64;
    let timeout_s = args.timeout.as_secs_f64();
    // The ring holds every exchange that can be in flight: a timeout's worth at the offered
    // rate, twice over; unpaced, the outstanding cap or 1 Mi.
    let in_flight = if args.rate > 0 {
        (rate * timeout_s * 2.0) as u64
    } else if args.outstanding > 0 {
        args.outstanding * 2
    } else {
        1 << 20
    };
    let send_until = u64::try_from(args.duration.as_nanos()).unwrap_or(u64::MAX);
    let timeout_ns = u64::try_from(args.timeout.as_nanos()).unwrap_or(u64::MAX);
    let threads = u64::from(queues);
    let shared = Arc::new(Shared {
        start: Instant::now(),
        addr,
        flood,
        exchanges: Exchanges::new(in_flight.min(1 << 24)),
        next: AtomicU64::new(0),
        swept: AtomicU64::new(0),
        ended: AtomicU64::new(0),
        timeouts: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        args: args.clone(),
        send_until,
        run_until: send_until
            .saturating_add(timeout_ns)
            .saturating_add(50_000_000),
        threads,
    });
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let counters: Vec<Arc<Counters>> = (0..queues).map(|_| Arc::new(Counters::default())).collect();
    let mut handles = Vec::new();
    for (i, io) in sockets.into_iter().enumerate() {
        let sh = Arc::clone(&shared);
        let c = Arc::clone(&counters[i]);
        let core = args
            .cpus
            .get(i % args.cpus.len().max(1))
            .and_then(|&id| cores.iter().find(|c| c.id == id).copied());
        let w = u16::try_from(i).unwrap_or(u16::MAX);
        handles.push(
            std::thread::Builder::new()
                .name(format!("lg-{i}"))
                .spawn(move || {
                    if let Some(core) = core {
                        core_affinity::set_for_current(core);
                    }
                    worker(&sh, io, w, &c)
                })?,
        );
    }
    if !args.quiet {
        eprintln!(
            "tandem-loadgen: {} on {} ({} XDP, {} AF_XDP), {} queue(s), {} mode, offered {}/s for {:.1} s, timeout {} ms, {} clients",
            args.label,
            args.iface,
            mode,
            if zero_copy { "zero-copy" } else { "copy" },
            queues,
            if addr.relay.is_some() {
                "relay"
            } else {
                "direct"
            },
            if args.rate > 0 {
                args.rate.to_string()
            } else {
                "unpaced".into()
            },
            args.duration.as_secs_f64(),
            args.timeout.as_millis(),
            args.clients
        );
        if let Some(f) = &flood {
            eprintln!(
                "tandem-loadgen: and a {} flood of {} DISCOVERs/s{}",
                f.shape().as_str(),
                args.flood_rate,
                match (f.shape(), args.flood_giaddr.or(args.giaddr)) {
                    (FloodShape::Circuit, Some(g)) => format!(" relayed from {g}"),
                    _ => String::new(),
                }
            );
        }
    }

    // Main thread: the sweeper, and a progress line per second.
    let mut last = Totals::default();
    let mut last_timeouts = 0;
    let mut next_report = 1_000_000_000u64;
    // When --exchanges ended the run early: its length, for the rates.
    let mut ended_early: Option<u64> = None;
    loop {
        std::thread::sleep(Duration::from_millis(10));
        let now = shared.now();
        let cutoff = now.saturating_sub(timeout_ns);
        sweep(&shared, cutoff, 1 << 20);
        if now >= next_report && !args.quiet {
            let t = totals(&counters);
            let timeouts = shared.timeouts.load(Ordering::Relaxed);
            let in_flight = shared
                .next
                .load(Ordering::Relaxed)
                .saturating_sub(shared.ended.load(Ordering::Relaxed));
            let done = t.completed - last.completed;
            eprintln!(
                "[lg] t={:>4.0}s started {:>8}/s completed {:>8}/s timeouts {:>7}/s naks {:>5} in flight {:>7} mean DORA {:>8.3} ms{}{}",
                now as f64 / 1e9,
                t.started - last.started,
                done,
                timeouts - last_timeouts,
                t.naks - last.naks,
                in_flight,
                if done > 0 {
                    (t.dora_ns_sum - last.dora_ns_sum) as f64 / done as f64 / 1e6
                } else {
                    0.0
                },
                if t.behind > last.behind {
                    format!(" (generator behind by {})", t.behind - last.behind)
                } else {
                    String::new()
                },
                if flood.is_some() {
                    format!(
                        " flood {}/s ({} answered)",
                        t.flood_sent - last.flood_sent,
                        t.flood_replies - last.flood_replies
                    )
                } else {
                    String::new()
                }
            );
            last = t;
            last_timeouts = timeouts;
            next_report += 1_000_000_000;
        }
        if handles.iter().all(|h| h.is_finished()) {
            break;
        }
        if args.exchanges > 0
            && shared.next.load(Ordering::Relaxed) >= args.exchanges
            && shared.ended.load(Ordering::Relaxed) >= args.exchanges
        {
            ended_early.get_or_insert(now.min(send_until));
            shared.stop.store(true, Ordering::Relaxed);
        }
        if now > shared.run_until.saturating_add(5_000_000_000) {
            shared.stop.store(true, Ordering::Relaxed);
        }
    }
    let mut d2o = Histogram::default();
    let mut r2a = Histogram::default();
    let mut d2a = Histogram::default();
    let mut xsk_drops = 0;
    for h in handles {
        let out = h.join().map_err(|_| "a worker panicked")?;
        xsk_drops += out.xsk_drops;
        d2o.merge(&out.discover_to_offer);
        r2a.merge(&out.request_to_ack);
        d2a.merge(&out.discover_to_ack);
    }
    // Whatever is still live has timed out.
    sweep(&shared, u64::MAX, u64::MAX);
    let t = totals(&counters);
    let timeouts = shared.timeouts.load(Ordering::Relaxed);
    let secs = ended_early.map_or(args.duration.as_secs_f64(), |ns| {
        (ns as f64 / 1e9).max(1e-3)
    });
    let drops = t.started.saturating_sub(t.completed);
    let drop_pct = if t.started > 0 {
        drops as f64 * 100.0 / t.started as f64
    } else {
        100.0
    };
    let per_s = t.completed as f64 / secs;
    if !args.quiet {
        eprintln!(
            "tandem-loadgen: {}: {} exchanges started ({:.0}/s offered), {} completed = {:.0} DORA/s, {} dropped ({:.2} %: {} timed out, {} late, {} NAKed); generator fell behind by {}, window full {}×, tx failed {}, replies dropped by the kernel on the way into the generator's sockets {}",
            args.label,
            t.started,
            t.started as f64 / secs,
            t.completed,
            per_s,
            drops,
            drop_pct,
            timeouts,
            t.late,
            t.naks,
            t.behind,
            t.window_full,
            t.tx_failed,
            xsk_drops
        );
        eprintln!(
            "tandem-loadgen: latency DISCOVER→ACK p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs; DISCOVER→OFFER p50 {:.1} µs p99 {:.1} µs; REQUEST→ACK p50 {:.1} µs p99 {:.1} µs",
            us(d2a.quantile(0.5)),
            us(d2a.quantile(0.99)),
            us(d2a.quantile(0.999)),
            us(d2a.max()),
            us(d2o.quantile(0.5)),
            us(d2o.quantile(0.99)),
            us(r2a.quantile(0.5)),
            us(r2a.quantile(0.99))
        );
        if let Some(f) = &flood {
            eprintln!(
                "tandem-loadgen: flood ({}): {} DISCOVERs sent ({:.0}/s of {} asked), {} answered with an OFFER; fell behind by {}, tx failed {}",
                f.shape().as_str(),
                t.flood_sent,
                t.flood_sent as f64 / secs,
                args.flood_rate,
                t.flood_replies,
                t.flood_behind,
                t.flood_tx_failed
            );
        }
    }
    let json = format!(
        concat!(
            "{{\"label\":\"{}\",\"iface\":\"{}\",\"mode\":\"{}\",\"xdp\":\"{}\",\"queues\":{},",
            "\"offered_rate\":{},\"duration_s\":{},\"timeout_ms\":{},\"clients\":{},",
            "\"started\":{},\"discovers\":{},\"offers\":{},\"requests\":{},\"acks\":{},",
            "\"completed\":{},\"completed_per_s\":{:.1},\"dropped\":{},\"drop_pct\":{:.3},",
            "\"timeouts\":{},\"late\":{},\"naks\":{},\"stale\":{},\"other\":{},\"tx_failed\":{},",
            "\"behind\":{},\"window_full\":{},\"generator_rx_dropped\":{},",
            "\"dora_p50_us\":{:.1},\"dora_p99_us\":{:.1},\"dora_p999_us\":{:.1},\"dora_max_us\":{:.1},\"dora_mean_us\":{:.1},",
            "\"do_p50_us\":{:.1},\"do_p99_us\":{:.1},\"ra_p50_us\":{:.1},\"ra_p99_us\":{:.1},",
            "\"flood_shape\":\"{}\",\"flood_rate\":{},\"flood_sent\":{},\"flood_sent_per_s\":{:.1},",
            "\"flood_replies\":{},\"flood_behind\":{},\"flood_tx_failed\":{}}}"
        ),
        args.label.replace(['"', '\\'], "_"),
        args.iface,
        if addr.relay.is_some() {
            "relay"
        } else {
            "direct"
        },
        mode,
        queues,
        args.rate,
        secs,
        args.timeout.as_millis(),
        args.clients,
        t.started,
        t.discovers,
        t.offers,
        t.requests,
        t.acks,
        t.completed,
        per_s,
        drops,
        drop_pct,
        timeouts,
        t.late,
        t.naks,
        t.stale,
        t.other,
        t.tx_failed,
        t.behind,
        t.window_full,
        xsk_drops,
        us(d2a.quantile(0.5)),
        us(d2a.quantile(0.99)),
        us(d2a.quantile(0.999)),
        us(d2a.max()),
        us(d2a.mean()),
        us(d2o.quantile(0.5)),
        us(d2o.quantile(0.99)),
        us(r2a.quantile(0.5)),
        us(r2a.quantile(0.99)),
        flood.map_or("none", |f| f.shape().as_str()),
        args.flood_rate,
        t.flood_sent,
        t.flood_sent as f64 / secs,
        t.flood_replies,
        t.flood_behind,
        t.flood_tx_failed,
    );
    println!("{json}");
    if let Some(path) = &args.json {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(f, "{json}")?;
    }
    Ok(())
}

/// Times out, in start order, the live exchanges started before `cutoff`; stops at the first
/// younger or unstarted one, or after `limit` steps.
fn sweep(sh: &Shared, cutoff: u64, limit: u64) {
    let mut at = sh.swept.load(Ordering::Relaxed);
    let end = sh.next.load(Ordering::Relaxed);
    let mut steps = 0;
    while at < end && steps < limit {
        match sh.exchanges.expire(at, cutoff) {
            None => break,
            Some(true) => {
                sh.timeouts.fetch_add(1, Ordering::Relaxed);
                sh.ended.fetch_add(1, Ordering::Relaxed);
            }
            Some(false) => {}
        }
        at += 1;
        steps += 1;
    }
    sh.swept.store(at, Ordering::Relaxed);
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tandem-loadgen: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args) {
        eprintln!("tandem-loadgen: {e}");
        std::process::exit(1);
    }
}
