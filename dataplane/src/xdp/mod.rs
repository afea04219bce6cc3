//! The XDP datapath's kernel half: loading and attaching tandem's steering program
//! ([`ebpf::XDP_DHCP`]) and talking to its maps.
//!
//! [`XdpProgram::load`] loads the object; [`XdpProgram::attach`] attaches it to one interface
//! in native (driver) mode, falling back to generic (SKB) mode with a log line when the driver
//! refuses (or as asked by [`AttachMode`]). The attachment is a `bpf_link` owned by the
//! process: dropping the [`XdpProgram`] detaches it, and so does the kernel when the process
//! dies, so a crashed run leaves no program behind on the interface. [`XdpProgram::set_socket`]
//! binds an AF_XDP socket to an rx queue's slot of the XSKMAP, [`XdpProgram::counters`] reads
//! the per-CPU verdict counters, [`XdpProgram::set_lb`] fills the load-balancing filter and
//! [`XdpProgram::set_rates`] the request rate limits.
//! Before attaching, a tandem program left on the interface through netlink (which, unlike a
//! link, outlives its process) is detached ([`netlink`]).

use std::os::fd::AsRawFd;

pub mod netlink;
#[expect(
    unsafe_code,
    reason = "a UMEM frame seen as a byte slice: pointers into the kernel-shared mapping"
)]
pub(crate) mod umem;
#[expect(
    unsafe_code,
    reason = "xsk-rs's ring and UMEM calls are unsafe fns; their precondition is the frame accounting kept here"
)]
pub mod xsk;

pub use xsk::{
    XskCopyStats, XskError, XskFrames, XskIo, XskOptions, XskStats, ZeroCopy, rx_queue_count,
};

use aya::maps::{Array, MapData, PerCpuArray, XskMap};
use aya::programs::{ProgramError, TestRun, TestRunOptions, Xdp, XdpMode};
use aya::{Ebpf, EbpfError};
pub use ebpf::{LB_OFF, LB_ON, LbConfig, RateConfig, Verdict};

use crate::limit::RateLimits;
use crate::sys::{LbMapValue, RateMapValue};

/// What went wrong loading or driving the XDP program.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    /// The kernel refused the object (verifier, missing BPF support, no CAP_BPF).
    #[error("loading the XDP object: {0}")]
    Load(#[from] EbpfError),
    /// A program operation failed (load, attach, test run).
    #[error("XDP program {op}: {source}")]
    Program {
        op: &'static str,
        #[source]
        source: ProgramError,
    },
    /// Attaching to the interface failed in every mode tried.
    #[error("attaching XDP to {ifname}: {source}")]
    Attach {
        ifname: String,
        #[source]
        source: ProgramError,
    },
    /// A map is missing from the object or has an unexpected type.
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    /// The object lacks a map or program the loader expects.
    #[error("the XDP object has no {0}")]
    Missing(&'static str),
    /// The AF_XDP sockets could not be opened.
    #[error(transparent)]
    Xsk(#[from] XskError),
    /// The interface has more rx queues than the XSKMAP has slots.
    #[error("{ifname} has {queues} rx queues; the XDP program steers at most {max}")]
    TooManyQueues {
        ifname: String,
        queues: u32,
        max: u32,
    },
    /// The program is already attached to an interface.
    #[error("the XDP program is already attached to {0}")]
    AlreadyAttached(String),
}

/// How to attach: the configuration's choice.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttachMode {
    /// Native (driver) mode, else generic (SKB) mode with a log line.
    #[default]
    Auto,
    /// Native (driver) mode only.
    Native,
    /// Generic (SKB) mode only: works on every interface, slower.
    Generic,
}

/// The mode the program ended up attached in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attached {
    /// In the driver (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// After the kernel's SKB allocation (`XDP_FLAGS_SKB_MODE`).
    Generic,
}

impl Attached {
    /// Short name for logs and status (`"native"`, `"generic"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Attached::Native => "native",
            Attached::Generic => "generic",
        }
    }
}

/// Frames the program handled, summed over CPUs (slots of [`ebpf::MAP_COUNTERS`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerdictCounts {
    /// Not DHCP to port 67: passed to the kernel.
    pub pass: u64,
    /// Redirected to an AF_XDP socket.
    pub redirect: u64,
    /// DHCP with no socket bound for its rx queue: passed to the kernel.
    pub no_xsk: u64,
    /// Dropped by the load-balancing filter.
    pub lb_drop: u64,
    /// Dropped over their relay's rate.
    pub rate_relay: u64,
    /// Dropped over their circuit-id's rate.
    pub rate_circuit: u64,
    /// Dropped over their client hardware address's rate.
    pub rate_mac: u64,
}

impl VerdictCounts {
    /// The count of one verdict.
    pub fn get(&self, v: Verdict) -> u64 {
        match v {
            Verdict::Pass => self.pass,
            Verdict::Redirect => self.redirect,
            Verdict::NoXsk => self.no_xsk,
            Verdict::LbDrop => self.lb_drop,
            Verdict::RateRelay => self.rate_relay,
            Verdict::RateCircuit => self.rate_circuit,
            Verdict::RateMac => self.rate_mac,
        }
    }

    fn slot(&mut self, v: Verdict) -> &mut u64 {
        match v {
            Verdict::Pass => &mut self.pass,
            Verdict::Redirect => &mut self.redirect,
            Verdict::NoXsk => &mut self.no_xsk,
            Verdict::LbDrop => &mut self.lb_drop,
            Verdict::RateRelay => &mut self.rate_relay,
            Verdict::RateCircuit => &mut self.rate_circuit,
            Verdict::RateMac => &mut self.rate_mac,
        }
    }
}

/// tandem's XDP program, loaded, and attached to at most one interface. Dropping it detaches
/// the program and frees its maps.
pub struct XdpProgram {
    ebpf: Ebpf,
    attached: Option<(String, Attached)>,
}

impl std::fmt::Debug for XdpProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpProgram")
            .field("attached", &self.attached)
            .finish_non_exhaustive()
    }
}

impl XdpProgram {
    /// Loads [`ebpf::XDP_DHCP`] into the kernel (maps created, program verified), unattached.
    pub fn load() -> Result<Self, XdpError> {
        let mut ebpf = Ebpf::load(ebpf::XDP_DHCP)?;
        let prog = program_mut(&mut ebpf)?;
        prog.load()
            .map_err(|source| XdpError::Program { op: "load", source })?;
        Ok(XdpProgram {
            ebpf,
            attached: None,
        })
    }

    /// Attaches the program to `ifname` in `mode`; returns the mode it is attached in.
    pub fn attach(&mut self, ifname: &str, mode: AttachMode) -> Result<Attached, XdpError> {
        if let Some((name, _)) = &self.attached {
            return Err(XdpError::AlreadyAttached(name.clone()));
        }
        detach_stale(ifname);
        let prog = program_mut(&mut self.ebpf)?;
        let attach_err = |source| XdpError::Attach {
            ifname: ifname.to_owned(),
            source,
        };
        let attached = match mode {
            AttachMode::Native => {
                prog.attach(ifname, XdpMode::Driver).map_err(attach_err)?;
                Attached::Native
            }
            AttachMode::Generic => {
                prog.attach(ifname, XdpMode::Skb).map_err(attach_err)?;
                Attached::Generic
            }
            AttachMode::Auto => match prog.attach(ifname, XdpMode::Driver) {
                Ok(_) => Attached::Native,
                Err(native) => {
                    tracing::warn!(
                        ifname,
                        error = %native,
                        "native XDP attach refused; falling back to generic (SKB) mode"
                    );
                    prog.attach(ifname, XdpMode::Skb).map_err(attach_err)?;
                    Attached::Generic
                }
            },
        };
        tracing::info!(ifname, mode = attached.as_str(), "XDP program attached");
        self.attached = Some((ifname.to_owned(), attached));
        Ok(attached)
    }

    /// The interface and mode the program is attached to, if it is.
    pub fn attached(&self) -> Option<(&str, Attached)> {
        self.attached.as_ref().map(|(n, m)| (n.as_str(), *m))
    }

    /// Steers DHCP arriving on rx queue `queue` to the AF_XDP socket `socket`.
    pub fn set_socket(&mut self, queue: u32, socket: &impl AsRawFd) -> Result<(), XdpError> {
        let mut map = self.xsks()?;
        map.set(queue, socket.as_raw_fd(), 0)
            .map_err(|source| XdpError::Map {
                name: ebpf::MAP_XSKS,
                source,
            })
    }

    /// Unbinds rx queue `queue`: its DHCP goes to the kernel again.
    pub fn clear_socket(&mut self, queue: u32) -> Result<(), XdpError> {
        let mut map = self.xsks()?;
        map.unset(queue).map_err(|source| XdpError::Map {
            name: ebpf::MAP_XSKS,
            source,
        })
    }

    /// The verdict counters, summed over CPUs.
    pub fn counters(&self) -> Result<VerdictCounts, XdpError> {
        let map_err = |source| XdpError::Map {
            name: ebpf::MAP_COUNTERS,
            source,
        };
        let map = self
            .ebpf
            .map(ebpf::MAP_COUNTERS)
            .ok_or(XdpError::Missing(ebpf::MAP_COUNTERS))?;
        let arr: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map).map_err(map_err)?;
        let mut out = VerdictCounts::default();
        for v in Verdict::ALL {
            let per_cpu = arr.get(&(v as u32), 0).map_err(map_err)?;
            *out.slot(v) = per_cpu.iter().fold(0u64, |a, &c| a.wrapping_add(c));
        }
        Ok(out)
    }

    /// The request rate limits in the kernel now, as [`XdpProgram::set_rates`] wrote them.
    pub fn rates(&self) -> Result<RateConfig, XdpError> {
        let name = ebpf::MAP_RATE_CONFIG;
        let map_err = |source| XdpError::Map { name, source };
        let map = self.ebpf.map(name).ok_or(XdpError::Missing(name))?;
        let arr: Array<&MapData, RateMapValue> = Array::try_from(map).map_err(map_err)?;
        arr.get(&0, 0).map(|v| v.0).map_err(map_err)
    }

    /// Replaces the load-balancing filter ([`LbConfig::OFF`] switches it off).
    pub fn set_lb(&mut self, cfg: &LbConfig) -> Result<(), XdpError> {
        self.set_config(ebpf::MAP_LB_CONFIG, LbMapValue(*cfg))
    }

    /// Replaces the request rate limits ([`RateLimits::OFF`] switches them off). Buckets
    /// already in the maps keep their tokens.
    pub fn set_rates(&mut self, limits: &RateLimits) -> Result<(), XdpError> {
        self.set_config(ebpf::MAP_RATE_CONFIG, RateMapValue(limits.to_xdp()))
    }

    /// Writes `value` as the one entry of the configuration array `name`.
    fn set_config<V: aya::Pod>(&mut self, name: &'static str, value: V) -> Result<(), XdpError> {
        let map_err = |source| XdpError::Map { name, source };
        let map = self.ebpf.map_mut(name).ok_or(XdpError::Missing(name))?;
        let mut arr: Array<&mut MapData, V> = Array::try_from(map).map_err(map_err)?;
        arr.set(0, value, 0).map_err(map_err)
    }

    /// Runs the program once over `frame` in the kernel (`BPF_PROG_TEST_RUN`, rx queue 0) and
    /// returns its XDP action (`XDP_DROP` 1, `XDP_PASS` 2, `XDP_REDIRECT` 4). Counters count.
    pub fn test_run(&mut self, frame: &[u8]) -> Result<u32, XdpError> {
        let prog = program_mut(&mut self.ebpf)?;
        let opts = TestRunOptions {
            data_in: Some(frame),
            ..TestRunOptions::new()
        };
        prog.test_run(opts)
            .map(|r| r.return_value)
            .map_err(|source| XdpError::Program {
                op: "test run",
                source,
            })
    }

    fn xsks(&mut self) -> Result<XskMap<&mut MapData>, XdpError> {
        let map = self
            .ebpf
            .map_mut(ebpf::MAP_XSKS)
            .ok_or(XdpError::Missing(ebpf::MAP_XSKS))?;
        XskMap::try_from(map).map_err(|source| XdpError::Map {
            name: ebpf::MAP_XSKS,
            source,
        })
    }
}

/// Detaches a tandem program left on `ifname` through netlink (a `bpf_link` goes with its
/// process; a netlink attachment outlives it). Another program, or ours held by a live
/// link (a running tandemd), is left alone: the attach that follows reports it.
fn detach_stale(ifname: &str) {
    let Ok(ifindex) = crate::sys::if_nametoindex(ifname) else {
        return;
    };
    let Ok(Some(found)) = netlink::attached(ifindex) else {
        return;
    };
    let ours = aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .find(|p| p.id() == found.id)
        .is_some_and(|p| p.name_as_str() == Some(ebpf::PROGRAM_NAME));
    if !ours {
        tracing::warn!(
            ifname,
            prog_id = found.id,
            "another XDP program is attached"
        );
        return;
    }
    match netlink::detach(ifindex, found.mode) {
        Ok(()) => tracing::warn!(
            ifname,
            prog_id = found.id,
            "detached a stale tandem XDP program left by an earlier run"
        ),
        Err(e) => tracing::warn!(
            ifname,
            prog_id = found.id,
            error = %e,
            "a tandem XDP program is attached and could not be detached (another tandemd running?)"
        ),
    }
}

fn program_mut(ebpf: &mut Ebpf) -> Result<&mut Xdp, XdpError> {
    let prog = ebpf
        .program_mut(ebpf::PROGRAM_NAME)
        .ok_or(XdpError::Missing("program xdp_dhcp"))?;
    prog.try_into().map_err(|source| XdpError::Program {
        op: "lookup",
        source,
    })
}

/// The XDP datapath on one interface: the program attached, and one AF_XDP socket per rx
/// queue bound into its XSKMAP. Drop the sockets (workers) before the port: dropping the port
/// detaches the program.
#[derive(Debug)]
pub struct XdpPort {
    program: XdpProgram,
    sockets: Vec<XskIo>,
}

impl XdpPort {
    /// Attaches the program to `ifname` and opens a socket on each of its rx queues.
    pub fn open(ifname: &str, mode: AttachMode, opts: &XskOptions) -> Result<XdpPort, XdpError> {
        let queues = rx_queue_count(ifname);
        if queues > ebpf::MAX_QUEUES {
            return Err(XdpError::TooManyQueues {
                ifname: ifname.to_owned(),
                queues,
                max: ebpf::MAX_QUEUES,
            });
        }
        let mut program = XdpProgram::load()?;
        program.attach(ifname, mode)?;
        let sockets = XskIo::open_all(ifname, 0..queues, opts)?;
        for s in &sockets {
            program.set_socket(s.queue(), &s.fd())?;
        }
        Ok(XdpPort { program, sockets })
    }

    /// How many sockets (rx queues) the port has left to hand out.
    pub fn socket_count(&self) -> usize {
        self.sockets.len()
    }

    /// Hands the sockets out, one per worker.
    pub fn take_sockets(&mut self) -> Vec<XskIo> {
        std::mem::take(&mut self.sockets)
    }

    /// The attached program (counters, load-balancing filter).
    pub fn program(&self) -> &XdpProgram {
        &self.program
    }

    /// The attached program, mutably.
    pub fn program_mut(&mut self) -> &mut XdpProgram {
        &mut self.program
    }
}
