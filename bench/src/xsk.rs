//! The bench tools' AF_XDP set-up: the client-side XDP program (`ebpf::XDP_LG_CLIENT`, which
//! steers IPv4 UDP to port 67 or 68 into the socket of its rx queue and passes the rest to the
//! kernel) attached to an interface, and one socket per rx queue in its XSKMAP.
//! tandem-loadgen receives the server's replies through it; tandem-responder the requests.

use aya::Ebpf;
use aya::maps::XskMap;
use aya::programs::{Xdp, XdpMode};
use dataplane::xdp::{XskIo, XskOptions, ZeroCopy};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The program attached and the sockets bound. The program goes with `bpf` (a `bpf_link`).
pub struct Steering {
    pub bpf: Ebpf,
    /// One per rx queue `0..queues`.
    pub sockets: Vec<XskIo>,
    /// `native` or `generic` XDP.
    pub mode: &'static str,
}

impl Steering {
    /// Attaches the program to `iface` in `mode` (`native`, `generic`, or `auto`: native,
    /// else generic) and binds a socket of `batch` frames a receive to each of its first
    /// `queues` rx queues.
    pub fn attach(iface: &str, queues: u32, mode: &str, batch: usize) -> Result<Steering> {
        let mut bpf = Ebpf::load(ebpf::XDP_LG_CLIENT)?;
        let prog: &mut Xdp = bpf
            .program_mut(ebpf::LG_PROGRAM_NAME)
            .ok_or("the XDP object has no xdp_lg_client")?
            .try_into()?;
        prog.load()?;
        let mode = match mode {
            "native" => {
                prog.attach(iface, XdpMode::Driver)?;
                "native"
            }
            "generic" => {
                prog.attach(iface, XdpMode::Skb)?;
                "generic"
            }
            _ => match prog.attach(iface, XdpMode::Driver) {
                Ok(_) => "native",
                Err(_) => {
                    prog.attach(iface, XdpMode::Skb)?;
                    "generic"
                }
            },
        };
        let opts = XskOptions {
            ring_size: 2048,
            batch,
            zero_copy: ZeroCopy::Auto,
        };
        let sockets = XskIo::open_all(iface, 0..queues, &opts)?;
        {
            let map = bpf
                .map_mut(ebpf::LG_MAP_XSKS)
                .ok_or("the XDP object has no LG_XSKS")?;
            let mut xsks: XskMap<_> = XskMap::try_from(map)?;
            for s in &sockets {
                xsks.set(s.queue(), s.fd(), 0)?;
            }
        }
        Ok(Steering { bpf, sockets, mode })
    }

    /// Whether every socket runs in zero-copy mode.
    pub fn zero_copy(&self) -> bool {
        self.sockets.iter().all(XskIo::zero_copy)
    }
}
