//! tandem-responder: the ceiling of the load benchmarks. A stateless AF_XDP DHCP responder
//! that answers each DHCPDISCOVER with a canned DHCPOFFER and each DHCPREQUEST with a
//! canned DHCPACK: no lease table, no journal, no fdatasync, no failover, no checks beyond
//! parsing. No DHCP server can complete more exchanges on the same testbed, so the
//! side-by-side benchmark runs it as its ceiling row and divides tandem's figures by it.
//!
//! ```text
//! tandem-responder --iface IF [--server-id A] [--cpus 1] [--queues N] [--batch 64]
//!                  [--pool-first 10.100.0.10] [--pool-size 262129] [--mask 255.252.0.0]
//! ```
//!
//! The same datapath as tandemd's `datapath = "xdp"`: the worker loop of `dataplane::worker`
//! over one `XskIo` per rx queue (copy mode on veth), replies built in the lent UMEM frames
//! with `frame::emit_reply` (every checksum computed). The XDP program is the load
//! generator's (`bench::xsk`): IPv4 UDP to port 67 or 68 into the sockets, the rest (ARP) to
//! the kernel. The offered address is the pool's `FNV-1a(chaddr) mod size`-th, the ACK
//! confirms the requested one; options 53, 54, 51, 58, 59, 1, 3, and option 82 echoed, as
//! tandemd sends. It runs until killed; every 5 s it prints what it received and sent.

use std::error::Error;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use bench::xsk;
use dataplane::stats::WorkerStats;
use dataplane::sys;
use dataplane::wire::dhcpv4::{self, MessageType, OpCode, Options, Repr};
use dataplane::wire::frame::{self, ReplyHeader};
use dataplane::worker::{self, RxBatch, TxBatch, WorkerConfig};
use dataplane::xdp::rx_queue_count;

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

const USAGE: &str = "usage: tandem-responder --iface IF [--server-id A] [--cpus 1] [--queues N] \
[--batch 64] [--pool-first 10.100.0.10] [--pool-size 262129] [--mask 255.252.0.0]";

#[derive(Clone, Debug)]
struct Args {
    iface: String,
    server_id: Option<Ipv4Addr>,
    cpus: Vec<usize>,
    queues: Option<u32>,
    batch: usize,
    pool_first: Ipv4Addr,
    pool_size: u32,
    mask: Ipv4Addr,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        iface: String::new(),
        server_id: None,
        cpus: Vec::new(),
        queues: None,
        batch: 64,
        pool_first: Ipv4Addr::new(10, 100, 0, 10),
        pool_size: 262_129,
        mask: Ipv4Addr::new(255, 252, 0, 0),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--iface" => a.iface = val()?,
            "--server-id" => a.server_id = Some(val()?.parse()?),
            "--cpus" => a.cpus = bench::cpu_list(&val()?)?,
            "--queues" => a.queues = Some(val()?.parse()?),
            "--batch" => a.batch = val()?.parse::<usize>()?.clamp(1, 1024),
            "--pool-first" => a.pool_first = val()?.parse()?,
            "--pool-size" => a.pool_size = val()?.parse::<u32>()?.max(1),
            "--mask" => a.mask = val()?.parse()?,
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
    Ok(a)
}

/// What every reply carries besides the request's own fields.
#[derive(Clone, Copy, Debug)]
struct Canned {
    mac: [u8; 6],
    server_id: Ipv4Addr,
    router: [u8; 4],
    mask: Ipv4Addr,
    pool_first: u32,
    pool_size: u32,
}

impl Canned {
    /// The address offered to `chaddr`.
    fn address(&self, chaddr: &[u8]) -> Ipv4Addr {
        let mut h: u32 = 0x811c_9dc5;
        for b in chaddr.iter().take(6) {
            h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
        }
        Ipv4Addr::from(self.pool_first.wrapping_add(h % self.pool_size))
    }

    /// Builds the answer to the request in `data` into `tx`: whether there was one.
    fn answer(&self, data: &[u8], scratch: &mut [u8], tx: &mut TxBatch) -> bool {
        let Ok(f) = frame::parse(data) else {
            return false;
        };
        if f.udp_dst != dhcpv4::SERVER_PORT {
            return false;
        }
        let Ok(packet) = dhcpv4::Packet::new_checked(f.dhcp) else {
            return false;
        };
        let Ok(req) = Repr::parse(&packet, scratch) else {
            return false;
        };
        let (kind, yiaddr) = match req.options.message_type {
            Some(MessageType::Discover) => (MessageType::Offer, self.address(&req.chaddr)),
            Some(MessageType::Request) => (
                MessageType::Ack,
                req.options
                    .requested_ip
                    .filter(|a| !a.is_unspecified())
                    .unwrap_or(req.ciaddr),
            ),
            _ => return false,
        };
        let repr = Repr {
            op: OpCode::Reply,
            hops: 0,
            secs: 0,
            ciaddr: req.ciaddr,
            yiaddr,
            siaddr: Ipv4Addr::UNSPECIFIED,
            sname: &[],
            file: &[],
            is_dhcp: true,
            options: Options {
                message_type: Some(kind),
                server_id: Some(self.server_id),
                lease_time: Some(3600),
                renewal_time: Some(1800),
                rebinding_time: Some(3150),
                subnet_mask: Some(self.mask),
                router: Some(&self.router),
                relay_agent_info: req.options.relay_agent_info,
                ..Options::default()
            },
            ..req
        };
        let relayed = !req.giaddr.is_unspecified();
        let hdr = ReplyHeader {
            eth_src: self.mac,
            eth_dst: if relayed { f.eth_src } else { [0xff; 6] },
            vlan: f.vlan,
            ip_src: self.server_id,
            ip_dst: if relayed {
                req.giaddr
            } else {
                Ipv4Addr::BROADCAST
            },
            udp_src: dhcpv4::SERVER_PORT,
            udp_dst: if relayed {
                dhcpv4::SERVER_PORT
            } else {
                dhcpv4::CLIENT_PORT
            },
            ttl: 64,
        };
        matches!(
            tx.push_with(|buf| frame::emit_reply(&hdr, &repr, buf).ok()),
            Ok(true)
        )
    }
}

fn run(args: &Args) -> Result<()> {
    let queues = args
        .queues
        .unwrap_or_else(|| rx_queue_count(&args.iface))
        .clamp(1, ebpf::MAX_QUEUES);
    let server_id = match args.server_id {
        Some(a) => a,
        None => sys::if_ipv4(&args.iface)?
            .ok_or_else(|| format!("{} has no IPv4 address: give --server-id", args.iface))?,
    };
    let canned = Canned {
        mac: sys::if_hwaddr(&args.iface)?,
        server_id,
        router: server_id.octets(),
        mask: args.mask,
        pool_first: u32::from(args.pool_first),
        pool_size: args.pool_size,
    };
    let steering = xsk::Steering::attach(&args.iface, queues, "auto", args.batch)?;
    eprintln!(
        "tandem-responder: {} ({} XDP, {} AF_XDP), {queues} queue(s), server id {server_id}, canned OFFER/ACK",
        args.iface,
        steering.mode,
        if steering.zero_copy() {
            "zero-copy"
        } else {
            "copy"
        },
    );
    let shutdown = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for (i, io) in steering.sockets.into_iter().enumerate() {
        let stats = Arc::new(WorkerStats::new());
        let mut cfg = WorkerConfig::new(format!("responder-{i}"));
        cfg.core = args.cpus.get(i % args.cpus.len().max(1)).copied();
        let mut scratch = [0u8; 1536];
        let handler = move |rx: &RxBatch<'_>, tx: &mut TxBatch| {
            for f in rx.frames() {
                canned.answer(f.data, &mut scratch, tx);
            }
        };
        workers.push(worker::spawn(
            cfg,
            io,
            handler,
            stats,
            Arc::clone(&shutdown),
        )?);
    }
    loop {
        std::thread::sleep(Duration::from_secs(5));
        let (mut rx, mut tx) = (0, 0);
        for w in &workers {
            let s = w.stats().snapshot();
            rx += s.rx;
            tx += s.tx;
        }
        eprintln!("tandem-responder: received {rx}, sent {tx}");
        if workers.iter().any(worker::Worker::is_finished) {
            return Err("a worker stopped".into());
        }
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tandem-responder: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("tandem-responder: {e}");
        std::process::exit(1);
    }
}
