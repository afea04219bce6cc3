//! The daemon's wiring: config → lease store → engine → workers on the chosen datapath,
//! and the admin backend that reports on them.

use std::collections::BTreeMap;
use std::io;
use std::num::TryFromIntError;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use dataplane::dispatch::{self, Dispatcher, Lane, SiblingIo};
use dataplane::engine::{self, Engine, EngineConfig, ScopeConfig};
use dataplane::packet::{self, GuardError, PacketIo, PortGuard, Socket, SocketOptions};
use dataplane::server::{DhcpHandler, Interface, Live, Serving};
use dataplane::stats::WorkerStats;
use dataplane::worker::{self, FrameIo, Worker, WorkerConfig};
use dataplane::xdp::{AttachMode, XdpError, XdpPort, XskOptions};
use lease_mmap::{BindingState, Lease, Store, UnixTime};

use crate::admin::{AdminBackend, CommandError};
use crate::config::{self, Config, Datapath, SubnetConfig};
use crate::daemon::{Chain, Hooks, VERSION};
use crate::notify::Heartbeat;
use crate::status::{LeaseFilter, LeaseInfo, LeaseState, Status, WorkerStatus};

/// How often the lease tables are checkpointed (msync) so the journals can be reset.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(30);

/// The engine's view of one `[[subnet]]`.
pub fn scope_config(s: &SubnetConfig) -> ScopeConfig {
    let range = |r: &config::AddrRange| (r.first, r.last);
    ScopeConfig {
        network: s.prefix.addr,
        prefix_len: s.prefix.len,
        pools: s.pools.iter().map(range).collect(),
        exclude: s.exclude.iter().map(range).collect(),
        router: s.router.clone(),
        dns: s.dns.clone(),
        domain_name: s.domain_name.clone(),
        lease_time: s.lease_time,
        renewal_time: s.renewal_time,
        rebinding_time: s.rebinding_time,
        decline_probation: s.decline_probation,
        max_abandoned_percent: s.max_abandoned_percent,
        reservations: s
            .reservations
            .iter()
            .map(|r| engine::Reservation {
                key: match &r.key {
                    config::ReservationKey::Mac(m) => engine::ReservationKey::Mac(*m),
                    config::ReservationKey::ClientId(v) => {
                        engine::ReservationKey::ClientId(v.clone())
                    }
                    config::ReservationKey::CircuitId(v) => {
                        engine::ReservationKey::CircuitId(v.clone())
                    }
                    config::ReservationKey::RemoteId(v) => {
                        engine::ReservationKey::RemoteId(v.clone())
                    }
                },
                address: r.address,
            })
            .collect(),
        interface: s.interface.clone(),
    }
}

/// The engine's view of the whole config.
pub fn engine_config(c: &Config) -> EngineConfig {
    EngineConfig {
        server_id: c.server.server_id,
        scopes: c.subnets.iter().map(scope_config).collect(),
        offer_hold: c
            .subnets
            .iter()
            .map(|s| s.offer_hold)
            .max()
            .unwrap_or(engine::DEFAULT_OFFER_HOLD),
        trusted_relays: c
            .server
            .trusted_relays
            .iter()
            .map(|p| (p.addr, p.len))
            .collect(),
        decline_limits: c.server.decline_limits,
    }
}

fn durability(d: config::Durability) -> lease_mmap::Durability {
    match d {
        config::Durability::Sync => lease_mmap::Durability::Sync,
        config::Durability::Async => lease_mmap::Durability::Async,
    }
}

/// Why serving did not start ([`start`]). The text names the step; the cause is the
/// [`std::error::Error::source`] (the log shows both, [`crate::daemon::Chain`]).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("XDP on {name}")]
    Xdp {
        name: String,
        /// Boxed: `XdpError` is large and this is the cold path.
        #[source]
        source: Box<XdpError>,
    },
    #[error("too many workers")]
    TooManyWorkers(#[source] TryFromIntError),
    #[error("opening lease tables in {}", dir.display())]
    Store {
        dir: PathBuf,
        #[source]
        source: lease_mmap::OpenError,
    },
    /// A journal is damaged before its end ([`lease_mmap::OpenError::JournalDamaged`]).
    #[error(
        "opening lease tables in {}: a journal is damaged (`tandemd --repair --config FILE` sets it aside and keeps its intact entries; or restore it from a backup)",
        dir.display()
    )]
    JournalDamaged {
        dir: PathBuf,
        #[source]
        source: lease_mmap::OpenError,
    },
    #[error("control journal")]
    ControlJournal,
    #[error("engine")]
    Engine(#[source] engine::ConfigError),
    #[error(transparent)]
    Failover(#[from] crate::failover::driver::StartError),
    #[error("management channel")]
    Manage(#[source] io::Error),
    #[error(transparent)]
    Secret(#[from] crate::failover::driver::FsmConfigError),
    #[error("interface {name:?}")]
    Interface {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("port 67 on {name}")]
    PortGuard {
        name: String,
        #[source]
        source: GuardError,
    },
    #[error("packet sockets on {name}")]
    PacketSockets {
        name: String,
        #[source]
        source: packet::OpenError,
    },
    #[error("send socket on {name} for software dispatch")]
    DispatchSocket {
        name: String,
        #[source]
        source: packet::OpenError,
    },
    #[error("bulk leasequery listener on {addr} (server.bulk_leasequery)")]
    BulkLeasequery {
        addr: std::net::SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("journal count")]
    JournalCount,
    #[error(transparent)]
    WorkerId(TryFromIntError),
    #[error("spawning worker")]
    SpawnWorker(#[source] io::Error),
    /// The load-balance updater or the checkpoint thread could not be spawned.
    #[error(transparent)]
    Thread(io::Error),
}

/// Starts serving: opens and recovers the lease store, builds the engine, opens the
/// datapath on every interface and spawns the pinned workers. Registers the teardown
/// (stop workers, commit journals, checkpoint) and the admin backend in `hooks`.
pub fn start(config: &Config, hooks: &mut Hooks) -> Result<(), StartError> {
    // The XDP datapath, when chosen, is set up first: it decides how many workers there are
    // (one per rx queue of each interface).
    let open_xdp = || -> Result<Vec<XdpPort>, StartError> {
        config
            .server
            .interfaces
            .iter()
            .map(|name| {
                XdpPort::open(name, AttachMode::Auto, &XskOptions::default()).map_err(|source| {
                    StartError::Xdp {
                        name: name.clone(),
                        source: Box::new(source),
                    }
                })
            })
            .collect()
    };
    let mut xdp_ports = match config.server.datapath {
        Datapath::Packet => None,
        Datapath::Xdp => Some(open_xdp()?),
        Datapath::Auto => match open_xdp() {
            Ok(ports) => {
                tracing::info!("datapath auto: using xdp (AF_XDP)");
                Some(ports)
            }
            Err(e) => {
                tracing::info!(error = %Chain(&e), "datapath auto: XDP unavailable; using packet (AF_PACKET)");
                None
            }
        },
    };
    let datapath = if xdp_ports.is_some() { "xdp" } else { "packet" };
    // On XDP the program applies the request rate limits, per CPU in the kernel, before a
    // frame is copied to user space; the workers' own limiters are then off.
    if let Some(ports) = &mut xdp_ports {
        for (port, name) in ports.iter_mut().zip(&config.server.interfaces) {
            port.program_mut()
                .set_rates(&config.server.rate_limits)
                .map_err(|source| StartError::Xdp {
                    name: name.clone(),
                    source: Box::new(source),
                })?;
        }
    }
    let worker_limits = match xdp_ports {
        Some(_) => dataplane::limit::RateLimits::OFF,
        None => config.server.rate_limits,
    };
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let per_iface = match config.server.workers {
        0 => cores.len().max(1),
        n => usize::from(n),
    };
    let n_ifaces = config.server.interfaces.len();
    // Software dispatch: with `workers` above an interface's rx queue count, the queues'
    // workers hand frames to that many more sibling workers.
    let siblings = |queues: usize| match config.server.dispatch {
        config::Dispatch::Auto => usize::from(config.server.workers).saturating_sub(queues),
        config::Dispatch::Off => 0,
    };
    let n_workers = match &xdp_ports {
        Some(ports) => ports
            .iter()
            .map(|p| p.socket_count() + siblings(p.socket_count()))
            .sum(),
        None => per_iface * n_ifaces,
    };
    let n_journals = u16::try_from(n_workers).map_err(StartError::TooManyWorkers)?;

    let engine_cfg = engine_config(config);
    let specs = engine_cfg.table_specs();
    let opened = Instant::now();
    // With failover, the control plane writes records too (bindings from the partner): it
    // gets a journal of its own, the last one, replayed by recovery like the workers'.
    let replicating = !config.failover.is_empty();
    let (store, mut journals, report) = Store::open(
        &config.server.data_dir,
        &specs,
        n_journals + u16::from(replicating),
        durability(config.server.durability),
    )
    .map_err(|source| match source {
        lease_mmap::OpenError::JournalDamaged { .. } => StartError::JournalDamaged {
            dir: config.server.data_dir.clone(),
            source,
        },
        source => StartError::Store {
            dir: config.server.data_dir.clone(),
            source,
        },
    })?;
    tracing::info!(
        tables = specs.len(),
        replayed = report.replayed,
        torn_tails = report.torn_tails,
        clean = report.clean,
        took = ?opened.elapsed(),
        "lease tables recovered"
    );
    let store = Arc::new(store);
    let control_journal = if replicating {
        Some(journals.pop().ok_or(StartError::ControlJournal)?)
    } else {
        None
    };
    let (gate, views) = crate::failover::gate::Gate::new(config);
    let engine = Arc::new(
        Engine::new(engine_cfg, Arc::clone(&store))
            .map_err(StartError::Engine)?
            .with_failover(Arc::new(gate)),
    );
    // What a live configuration change replaces, every worker at once (`Backend::reload`).
    let live = Live::new(Serving {
        engine: Arc::clone(&engine),
        limits: worker_limits,
    });
    let lb_view = crate::xdp::lb_plan(config).and_then(|i| views.get(i).cloned());
    let failover = match control_journal {
        Some(journal) => Some(start_failover(
            config,
            views,
            &store,
            journal,
            n_workers,
            &hooks.shutdown,
        )?),
        None => None,
    };

    let mut interfaces = Vec::with_capacity(n_ifaces);
    let mut guards = Vec::with_capacity(n_ifaces);
    for name in &config.server.interfaces {
        let iface = Interface::lookup(name).map_err(|source| StartError::Interface {
            name: name.clone(),
            source,
        })?;
        if iface.addr.is_none() && config.server.server_id.is_none() {
            tracing::warn!(interface = %name, "no IPv4 address and no server_id: directly attached clients cannot be served");
        }
        guards.push(
            PortGuard::bind(Some(name)).map_err(|source| StartError::PortGuard {
                name: name.clone(),
                source,
            })?,
        );
        interfaces.push(iface);
    }
    let interfaces: Arc<[Interface]> = interfaces.into();

    let stop = Arc::new(AtomicBool::new(false));
    let fatal = Arc::new(AtomicBool::new(false));
    // Leasequeries: every worker forwards them to one responder thread (started below).
    let (lq_forwarder, lq_queue) = crate::leasequery::responder::queue();
    let mut workers: Vec<Worker<Dispatcher<DhcpHandler>>> = Vec::with_capacity(n_workers);
    let mut all_stats = Vec::with_capacity(n_workers);
    let mut journals = journals.into_iter();
    for (i, name) in config.server.interfaces.iter().enumerate() {
        let ios: Vec<Box<dyn FrameIo>> = match xdp_ports.as_mut().and_then(|p| p.get_mut(i)) {
            Some(port) => port
                .take_sockets()
                .into_iter()
                .map(|s| Box::new(s) as Box<dyn FrameIo>)
                .collect(),
            None => Socket::open_group(name, per_iface, &SocketOptions::default())
                .map_err(|source| StartError::PacketSockets {
                    name: name.clone(),
                    source,
                })?
                .into_iter()
                .map(|s| Box::new(PacketIo::new(s, dataplane::sys::MAX_BATCH)) as Box<dyn FrameIo>)
                .collect(),
        };
        // Siblings first (each with a lane from its queue's worker), then the queues' workers.
        let n_siblings = if xdp_ports.is_some() {
            siblings(ios.len())
        } else {
            0
        };
        let mut lanes: Vec<Vec<Arc<Lane>>> = vec![Vec::new(); ios.len()];
        let mut sibling_ios: Vec<Box<dyn FrameIo>> = Vec::with_capacity(n_siblings);
        for j in 0..n_siblings {
            let lane = Lane::new(dispatch::LANE_DEPTH);
            let tx = Socket::open_tx_only(name).map_err(|source| StartError::DispatchSocket {
                name: name.clone(),
                source,
            })?;
            sibling_ios.push(Box::new(SiblingIo::new(
                Arc::clone(&lane),
                tx,
                dataplane::sys::MAX_BATCH,
            )));
            if let Some(l) = lanes.get_mut(j % ios.len().max(1)) {
                l.push(lane);
            }
        }
        if n_siblings > 0 {
            tracing::info!(interface = %name, queues = ios.len(), siblings = n_siblings, "software dispatch to sibling workers");
        }
        let with_lanes = sibling_ios
            .into_iter()
            .map(|io| (io, Vec::new()))
            .chain(ios.into_iter().zip(lanes));
        for (io, lanes) in with_lanes {
            let id = workers.len();
            let journal = journals.next().ok_or(StartError::JournalCount)?;
            let stats = Arc::new(WorkerStats::new());
            let mut handler = DhcpHandler::new(
                Arc::clone(&engine),
                engine.worker(u16::try_from(id).map_err(StartError::WorkerId)?, n_journals),
                journal,
                Arc::clone(&interfaces),
                Arc::clone(&stats),
                Arc::clone(&fatal),
                worker_clock(),
            )
            .map_err(StartError::SpawnWorker)?
            .with_live(Arc::clone(&live));
            if let Some(sink) = failover
                .as_ref()
                .and_then(|f| crate::failover::replicate::WorkerOutbox::new(&f.outbox, id))
            {
                handler = handler.with_change_sink(Box::new(sink));
            }
            let handler = handler.with_query_sink(Box::new(lq_forwarder.clone()));
            let handler = Dispatcher::new(handler, lanes).counting(Arc::clone(&stats));
            let mut wc = WorkerConfig::new(format!("worker-{id}"));
            wc.core = cores.get(id % cores.len().max(1)).map(|c| c.id);
            workers.push(
                worker::spawn(wc, io, handler, Arc::clone(&stats), Arc::clone(&stop))
                    .map_err(StartError::SpawnWorker)?,
            );
            all_stats.push(stats);
        }
    }
    // The sockets are with the workers; the programs stay shared by the load-balance updater
    // (the filter follows the failover state), the admin backend and the teardown.
    let xdp = xdp_ports.map(|ports| {
        Arc::new(crate::xdp::XdpPorts::new(
            config.server.interfaces.clone(),
            ports,
        ))
    });
    let lb_updater = match (&xdp, lb_view) {
        (Some(xdp), Some(view)) => Some(
            crate::xdp::spawn_lb_updater(Arc::clone(xdp), view, hooks.shutdown.clone())
                .map_err(StartError::Thread)?,
        ),
        _ => None,
    };
    drop(lq_forwarder);
    let leasequery = Arc::new(crate::leasequery::Stats::default());
    let lq_allowed: Vec<(std::net::Ipv4Addr, u8)> = config
        .server
        .leasequery_from
        .iter()
        .map(|p| (p.addr, p.len))
        .collect();
    let mut lq_threads = vec![
        crate::leasequery::responder::Responder {
            store: Arc::clone(&store),
            interfaces: Arc::clone(&interfaces),
            server_id: config.server.server_id,
            allowed: lq_allowed.clone(),
            stats: Arc::clone(&leasequery),
        }
        .spawn(lq_queue, Arc::clone(&stop))
        .map_err(StartError::Thread)?,
    ];
    if let Some(addr) = config.server.bulk_leasequery {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|source| StartError::BulkLeasequery { addr, source })?;
        let server_id = config
            .server
            .server_id
            .or_else(|| interfaces.iter().find_map(|i| i.addr))
            .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
        // A secondary allocates from BACKUP: those are its AVAILABLE addresses (§6.2.7).
        let local_free: Vec<lease_mmap::BindingState> = config
            .subnets
            .iter()
            .map(|s| {
                let secondary = s.failover.as_ref().is_some_and(|name| {
                    config
                        .failover
                        .iter()
                        .any(|f| &f.name == name && f.role == crate::config::Role::Secondary)
                });
                if secondary {
                    lease_mmap::BindingState::Backup
                } else {
                    lease_mmap::BindingState::Free
                }
            })
            .collect();
        lq_threads.push(
            crate::leasequery::spawn_bulk_with(
                listener,
                Arc::clone(&store),
                server_id,
                lq_allowed,
                Arc::clone(&leasequery),
                Arc::clone(&stop),
                crate::leasequery::BulkConfig {
                    local_free: Arc::new(move |t: lease_mmap::TableId| {
                        local_free
                            .get(usize::from(t.0))
                            .copied()
                            .unwrap_or(lease_mmap::BindingState::Free)
                    }),
                    ..crate::leasequery::BulkConfig::default()
                },
            )
            .map_err(StartError::Thread)?,
        );
        tracing::info!(%addr, "bulk leasequery (RFC 6926) listening");
    }
    tracing::info!(
        interfaces = %config.server.interfaces.join(","),
        workers = workers.len(),
        datapath,
        durability = config.server.durability.as_str(),
        "serving DHCP"
    );

    // Background checkpoints, and the watch on fatal durability errors.
    let checkpoint_turns = Arc::new(AtomicU64::new(0));
    let checkpointer = {
        let store = Arc::clone(&store);
        let shutdown = hooks.shutdown.clone();
        let fatal = Arc::clone(&fatal);
        let turns = Arc::clone(&checkpoint_turns);
        std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || {
                let mut last = Instant::now();
                while !shutdown.wait_timeout(Duration::from_millis(200)) {
                    turns.fetch_add(1, Ordering::Relaxed);
                    if fatal.load(Ordering::Relaxed) {
                        tracing::error!(
                            "a journal commit failed: stopping (recovery will replay the journals)"
                        );
                        shutdown.fail();
                        break;
                    }
                    if last.elapsed() >= CHECKPOINT_EVERY {
                        if let Err(e) = store.checkpoint() {
                            tracing::error!(error = %e, "checkpoint failed: stopping");
                            fatal.store(true, Ordering::Relaxed);
                            shutdown.fail();
                            break;
                        }
                        last = Instant::now();
                    }
                }
            })
            .map_err(StartError::Thread)?
    };

    let (failover, failover_thread) = match failover {
        Some(r) => (Some(r.driver), Some(r.thread)),
        None => (None, None),
    };
    // What systemd's watchdog waits on: every worker, the checkpointer, the failover driver.
    for (i, s) in all_stats.iter().enumerate() {
        let s = Arc::clone(s);
        hooks.heartbeats.push(Heartbeat {
            name: format!("worker-{i}"),
            read: Box::new(move || s.loops()),
        });
    }
    hooks
        .heartbeats
        .push(Heartbeat::counter("checkpoint", checkpoint_turns));
    if let Some(d) = &failover {
        hooks
            .heartbeats
            .push(Heartbeat::counter("failover", d.turns()));
    }
    // The management channel between tandem partners: listeners and the consistency check.
    let config_in_force = Arc::new(Mutex::new(Arc::new(config.clone())));
    let (manage, manage_threads) = if config
        .failover
        .iter()
        .any(|f| f.peer_software == crate::config::PeerSoftware::Tandem)
    {
        let mut secrets = BTreeMap::new();
        for f in &config.failover {
            if let Some(path) = &f.shared_secret_file {
                secrets.insert(f.name.clone(), crate::failover::driver::read_secret(path)?);
            }
        }
        let source = Arc::clone(&config_in_force);
        let (m, threads) = crate::manage::Manage::start(
            Arc::new(move || Arc::clone(&source.lock().unwrap_or_else(PoisonError::into_inner))),
            secrets,
            &hooks.shutdown,
        )
        .map_err(StartError::Manage)?;
        (Some(m), threads)
    } else {
        (None, Vec::new())
    };
    let backend = Arc::new(Backend {
        config: config_in_force,
        manage,
        config_path: hooks.config_path.clone(),
        live,
        reloading: Mutex::new(()),
        started: Instant::now(),
        datapath,
        store: Arc::clone(&store),
        stats: all_stats,
        failover,
        xdp: xdp.clone(),
        leasequery,
    });
    if let Some(m) = &backend.manage {
        // Weak: the backend holds the channel, which must not keep the backend alive.
        let weak = Arc::downgrade(&backend);
        m.set_applier(Box::new(move |scopes| match weak.upgrade() {
            Some(b) => b.apply_scopes(scopes),
            None => Err("tandemd is stopping".into()),
        }));
    }
    hooks.backend = Some(backend);

    let workers = Mutex::new(Some(workers));
    let shutdown = hooks.shutdown.clone();
    hooks.on_shutdown.push(Box::new(move || {
        stop.store(true, Ordering::Relaxed);
        let _ = checkpointer.join();
        for t in lq_threads {
            if t.join().is_err() {
                tracing::error!("a leasequery thread panicked");
            }
        }
        for t in manage_threads {
            if t.join().is_err() {
                tracing::error!("a management channel thread panicked");
            }
        }
        if let Some(t) = lb_updater
            && t.join().is_err()
        {
            tracing::error!("the XDP load-balance updater panicked");
        }
        let workers = workers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let mut journals = Vec::new();
        for w in workers.into_iter().flatten() {
            let name = w.name().to_owned();
            match w.join() {
                Ok(h) => match h.into_inner().into_journal() {
                    Some(j) => journals.push(j),
                    None => tracing::error!(worker = %name, "the worker's commit thread panicked"),
                },
                Err(e) => tracing::error!(worker = %name, error = %e, "worker failed"),
            }
        }
        drop(guards);
        // The sockets went with the workers; now the XDP programs can be detached.
        if let Some(xdp) = &xdp {
            xdp.detach();
        }
        if fatal.load(Ordering::Relaxed) || shutdown.has_failed() {
            tracing::error!("exiting after a durability failure without a checkpoint");
            std::process::exit(1);
        }
        // Every other holder of the store (workers, engine, admin backend, checkpointer) is
        // gone by now, so it can be closed: journals committed, tables checkpointed, clean.
        match Arc::try_unwrap(store) {
            Ok(store) => match store.close(journals) {
                Ok(()) => {
                    tracing::info!("journals synced, tables checkpointed, store closed clean")
                }
                Err(e) => tracing::error!(error = %e, "closing the lease store failed"),
            },
            Err(store) => {
                for j in &mut journals {
                    if let Err(e) = j.commit() {
                        tracing::error!(error = %e, "final journal commit failed");
                    }
                }
                match store.checkpoint() {
                    Ok(()) => tracing::info!("journals synced and tables checkpointed"),
                    Err(e) => tracing::error!(error = %e, "final checkpoint failed"),
                }
            }
        }
    }));
    // Registered last, so run first: the driver (which holds the store and commits its own
    // journal) is gone before the store is closed.
    if let Some(t) = failover_thread {
        let thread = Mutex::new(Some(t));
        hooks.on_shutdown.push(Box::new(move || {
            if let Some(t) = thread.lock().unwrap_or_else(PoisonError::into_inner).take()
                && t.join().is_err()
            {
                tracing::error!("the failover driver thread panicked");
            }
        }));
    }
    Ok(())
}

/// The workers' wall clock. Built with the `fault-injection` feature (tests only) and run
/// with `TANDEM_FAULT=worker-panic`, it panics instead, on a worker's first batch: the test
/// of the daemon's panic hook; with `TANDEM_FAULT=worker-stall` it never returns: the test of
/// the systemd watchdog (both in `control/tests/cli_fault.rs`).
fn worker_clock() -> dataplane::server::Clock {
    #[cfg(feature = "fault-injection")]
    if std::env::var("TANDEM_FAULT").as_deref() == Ok("worker-stall") {
        // A worker that never comes back from its first batch (a hung disk): the test of the
        // systemd watchdog (`control/tests/cli_fault.rs`).
        return || -> UnixTime {
            tracing::warn!("fault injection: TANDEM_FAULT=worker-stall: this worker stops here");
            loop {
                std::thread::park();
            }
        };
    }
    #[cfg(feature = "fault-injection")]
    if std::env::var("TANDEM_FAULT").as_deref() == Ok("worker-panic") {
        tracing::warn!("fault injection: TANDEM_FAULT=worker-panic: a worker will panic");
        return || panic!("fault injection: TANDEM_FAULT=worker-panic");
    }
    UnixTime::now
}

/// `tandemd --repair`: recovers `data_dir` with [`Store::repair`] (the tables of `config`'s
/// subnets; a journal for every worker that has one), setting damaged journals aside.
pub fn repair(config: &Config) -> Result<lease_mmap::RecoveryReport, StartError> {
    let specs = engine_config(config).table_specs();
    Store::repair(&config.server.data_dir, &specs).map_err(|source| StartError::Store {
        dir: config.server.data_dir.clone(),
        source,
    })
}

/// Starts the failover driver with binding replication; the caller joins its thread at
/// shutdown (it stops by itself on the shutdown request) and hands the workers its outbox.
fn start_failover(
    config: &Config,
    views: Vec<Arc<crate::failover::gate::RelationshipView>>,
    store: &Arc<Store>,
    journal: lease_mmap::WorkerJournal,
    workers: usize,
    shutdown: &crate::daemon::Shutdown,
) -> Result<crate::failover::driver::Running, crate::failover::driver::StartError> {
    let rel_of = |s: &SubnetConfig| {
        s.failover
            .as_deref()
            .and_then(|name| config.failover.iter().position(|f| f.name == name))
    };
    let replication = crate::failover::driver::Replication {
        store: Arc::clone(store),
        journal,
        workers,
        table_rel: config.subnets.iter().map(rel_of).collect(),
    };
    crate::failover::driver::start(config, views, replication, shutdown)
}

/// What `tandemctl` sees of a running server, and what it changes.
struct Backend {
    /// The configuration in force: the file's at start, then at each accepted reload (the
    /// management channel reads it too).
    config: Arc<Mutex<Arc<Config>>>,
    /// The management channel between tandem partners, when there is one.
    manage: Option<crate::manage::Manage>,
    /// The file it came from (`None`: a test's wiring), re-read by [`Backend::reload`].
    config_path: Option<PathBuf>,
    /// The workers' engine and limits.
    live: Arc<Live>,
    /// One reload at a time.
    reloading: Mutex<()>,
    started: Instant,
    datapath: &'static str,
    store: Arc<Store>,
    stats: Vec<Arc<WorkerStats>>,
    failover: Option<crate::failover::driver::Driver>,
    xdp: Option<Arc<crate::xdp::XdpPorts>>,
    /// Leasequery counters ([`crate::leasequery::Stats`]).
    leasequery: Arc<crate::leasequery::Stats>,
}

/// A record's state as operators see it: an ACTIVE lease past its end is EXPIRED, an
/// OFFERED hold is not a binding.
fn shown_state(l: &Lease, now: UnixTime) -> LeaseState {
    match l.state {
        BindingState::Active if l.ends < now => LeaseState::Expired,
        BindingState::Active => LeaseState::Active,
        BindingState::Free | BindingState::Offered => LeaseState::Free,
        BindingState::Expired => LeaseState::Expired,
        BindingState::Released => LeaseState::Released,
        BindingState::Abandoned => LeaseState::Abandoned,
        BindingState::Reset => LeaseState::Reset,
        BindingState::Backup => LeaseState::Backup,
    }
}

/// Each failover subnet's relationship, by prefix.
pub fn scope_failover(config: &crate::config::Config) -> BTreeMap<String, String> {
    config
        .subnets
        .iter()
        .filter_map(|s| Some((s.prefix.to_string(), s.failover.clone()?)))
        .collect()
}

/// Message counts by type name ([`dataplane::stats::MESSAGE_KINDS`]), the nonzero ones.
fn by_kind(counts: &[u64]) -> BTreeMap<String, u64> {
    dataplane::stats::MESSAGE_KINDS
        .iter()
        .zip(counts)
        .filter(|&(_, &n)| n > 0)
        .map(|(name, &n)| ((*name).to_owned(), n))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    crate::config::format_hex(bytes, ":")
}
impl Backend {
    fn config(&self) -> Arc<Config> {
        Arc::clone(&self.config.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The driver's view of each relationship, with the management channel's comparison.
    fn relationship_status(&self) -> Vec<crate::status::RelationshipStatus> {
        let mut all = self
            .failover
            .as_ref()
            .map(crate::failover::driver::Driver::status)
            .unwrap_or_default();
        if let Some(m) = &self.manage {
            for r in &mut all {
                if let Some(c) = m.checks.get(&r.name) {
                    r.scopes_check = c.outcome();
                    r.scopes_checked = c.at;
                    r.scope_differences = c.differences.clone().unwrap_or_default();
                    r.scopes_check_error = c.error.clone();
                    r.scope_mismatches = c.mismatches;
                }
            }
        }
        all
    }
}

impl AdminBackend for Backend {
    fn status(&self) -> Status {
        let now = UnixTime::now();
        let config = self.config();
        let mut leases = BTreeMap::new();
        for (subnet, table) in config.subnets.iter().zip(self.store.tables()) {
            let mut counts: BTreeMap<LeaseState, u64> = BTreeMap::new();
            let alloc = table.allocatable();
            table.for_each(|slot, _, l| {
                if lease_mmap::table::in_ranges(&alloc, slot) || l.state != BindingState::Free {
                    *counts.entry(shown_state(l, now)).or_default() += 1;
                }
            });
            leases.insert(subnet.prefix.to_string(), counts);
        }
        Status {
            version: VERSION.to_owned(),
            uptime: self.started.elapsed().as_secs(),
            datapath: self.datapath.to_owned(),
            relationships: self.relationship_status(),
            workers: self
                .stats
                .iter()
                .enumerate()
                .map(|(id, s)| {
                    let snap = s.snapshot();
                    WorkerStatus {
                        id: u32::try_from(id).unwrap_or(u32::MAX),
                        datapath: self.datapath.to_owned(),
                        rx: snap.rx,
                        dispatched: snap.dispatched,
                        tx: snap.tx,
                        dropped: snap
                            .drops_by_name()
                            .chain([("tx-error", snap.tx_errors)])
                            .filter(|&(_, n)| n > 0)
                            .map(|(name, n)| (name.to_owned(), n))
                            .collect(),
                        silent: snap
                            .silent_by_name()
                            .filter(|&(_, n)| n > 0)
                            .map(|(name, n)| (name.to_owned(), n))
                            .collect(),
                        ignored: [("untrusted-relay-options", snap.untrusted_relay_options)]
                            .into_iter()
                            .filter(|&(_, n)| n > 0)
                            .map(|(name, n)| (name.to_owned(), n))
                            .collect(),
                        received: by_kind(&snap.received),
                        sent: by_kind(&snap.sent),
                        batches: snap.batches,
                        busy_ns: snap.busy_ns,
                        batch_frames: snap.batch_frames.into(),
                        commit_ns: snap.commit_ns.into(),
                        commit_entries: snap.commit_entries.into(),
                    }
                })
                .collect(),
            leases,
            scope_failover: scope_failover(&config),
            xdp: self.xdp.as_ref().map(|x| x.status()).unwrap_or_default(),
            leasequery: self.leasequery.status(),
        }
    }

    fn leases(&self, filter: &LeaseFilter) -> Vec<LeaseInfo> {
        let now = UnixTime::now();
        // A lookup shows what it finds in any state; a listing, the bound leases by default.
        let want = filter
            .state
            .or((!filter.is_lookup()).then_some(LeaseState::Active));
        let mac = match filter.mac.as_deref().map(crate::config::parse_mac) {
            Some(None) => return Vec::new(),
            Some(Some(m)) => Some(m),
            None => None,
        };
        let client_id = match filter.client_id.as_deref().map(crate::config::parse_hex) {
            Some(None) => return Vec::new(),
            Some(Some(c)) => Some(c),
            None => None,
        };
        let relay_key = |v: &Option<String>| v.as_deref().map(crate::status::relay_id_bytes);
        let (circuit, remote) = (relay_key(&filter.circuit_id), relay_key(&filter.remote_id));
        if matches!(circuit, Some(None)) || matches!(remote, Some(None)) {
            return Vec::new();
        }
        let limit = usize::try_from(filter.limit.unwrap_or(u32::MAX)).unwrap_or(usize::MAX);
        // In address order across subnets (they never overlap), for the `after` cursor.
        let config = self.config();
        let mut tables: Vec<_> = config.subnets.iter().zip(self.store.tables()).collect();
        tables.sort_by_key(|(subnet, _)| subnet.prefix.addr);
        let mut out = Vec::new();
        for (subnet, table) in tables {
            if filter
                .subnet
                .as_ref()
                .is_some_and(|s| *s != subnet.prefix.to_string())
            {
                continue;
            }
            table.for_each(|slot, _, l| {
                let address = table.addr(slot);
                let state = shown_state(l, now);
                let hw = &l.chaddr[..usize::from(l.hlen.min(16))];
                // Records without a client are the free pool: shown only when asked for by
                // address, or as ABANDONED (a DECLINE forgets the client, and the operator
                // asks which addresses are out of service).
                let shown = l.client_key().is_some()
                    || filter.address.is_some()
                    || state == LeaseState::Abandoned;
                if out.len() >= limit
                    || !shown
                    || want.is_some_and(|w| w != state)
                    || filter.address.is_some_and(|a| a != address)
                    || filter.after.is_some_and(|a| address <= a)
                    || mac.is_some_and(|m| hw != m)
                    || client_id
                        .as_ref()
                        .is_some_and(|c| l.client_id.as_bytes() != c.as_slice())
                    || circuit
                        .as_ref()
                        .is_some_and(|c| l.relay.circuit_id() != c.as_deref())
                    || remote
                        .as_ref()
                        .is_some_and(|r| l.relay.remote_id() != r.as_deref())
                    || filter
                        .hostname
                        .as_ref()
                        .is_some_and(|h| !l.hostname.as_bytes().eq_ignore_ascii_case(h.as_bytes()))
                {
                    return;
                }
                out.push(LeaseInfo {
                    address,
                    state,
                    chaddr: hex(hw),
                    client_id: (!l.client_id.is_empty()).then(|| hex(l.client_id.as_bytes())),
                    circuit_id: l.relay.circuit_id().map(crate::status::relay_id_text),
                    remote_id: l.relay.remote_id().map(crate::status::relay_id_text),
                    hostname: (!l.hostname.is_empty())
                        .then(|| String::from_utf8_lossy(l.hostname.as_bytes()).into_owned()),
                    ends: u64::from(l.ends.0),
                });
            });
        }
        out
    }

    fn partner_down(&self, name: &str, since: u64) -> Result<u64, CommandError> {
        match &self.failover {
            Some(driver) => driver.partner_down(name, since),
            None => crate::daemon::relationship_unavailable(&self.config(), name),
        }
    }

    fn resync(&self, name: &str) -> Result<(), CommandError> {
        match &self.failover {
            Some(driver) => driver.resync(name),
            None => crate::daemon::relationship_unavailable(&self.config(), name),
        }
    }

    fn relationships(&self) -> Vec<crate::status::RelationshipDetail> {
        crate::status::relationship_details(&self.config(), &self.status())
    }

    fn reload(&self) -> Result<Vec<String>, String> {
        let before = self.config();
        let mut changes = {
            let _one = self
                .reloading
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            self.reload_locked()?
        };
        if !changes.is_empty() {
            let after = self.config();
            changes.extend(self.replicate_changed(&before, &after));
        }
        Ok(changes)
    }

    fn replicate(
        &self,
        relationship: Option<&str>,
        scope: Option<&str>,
    ) -> Result<Vec<String>, String> {
        let Some(m) = &self.manage else {
            return Err("no relationship with a tandem partner: nothing to replicate to".into());
        };
        let config = self.config();
        let mut work: Vec<(String, Vec<String>)> = Vec::new();
        match (relationship, scope) {
            (_, Some(p)) => {
                let wanted = config::parse_prefix(p).map_err(|e| format!("scope {p:?}: {e}"))?;
                let s = config
                    .subnets
                    .iter()
                    .find(|s| s.prefix == wanted)
                    .ok_or_else(|| format!("no scope {p} here"))?;
                let name = s
                    .failover
                    .clone()
                    .ok_or_else(|| format!("scope {p} is in no failover relationship"))?;
                if relationship.is_some_and(|r| r != name) {
                    return Err(format!("scope {p} is in relationship {name:?}"));
                }
                work.push((name, vec![p.to_owned()]));
            }
            (Some(r), None) => work.push((r.to_owned(), Vec::new())),
            (None, None) => work.extend(
                config
                    .failover
                    .iter()
                    .filter(|f| f.peer_software == config::PeerSoftware::Tandem)
                    .filter(|f| {
                        config
                            .subnets
                            .iter()
                            .any(|s| s.failover.as_deref() == Some(f.name.as_str()))
                    })
                    .map(|f| (f.name.clone(), Vec::new())),
            ),
        }
        let mut changes = Vec::new();
        for (name, scopes) in work {
            let done = m
                .replicate(&name, &scopes)
                .map_err(|e| format!("relationship {name}: {e}"))?;
            if done.is_empty() {
                changes.push(format!(
                    "relationship {name}: the partner's scopes were already the same"
                ));
            }
            changes.extend(
                done.into_iter()
                    .map(|c| format!("relationship {name}: partner: {c}")),
            );
        }
        Ok(changes)
    }
}

impl Backend {
    /// `replicate = "auto"`: on a primary, the scopes a reload changed go to the partner at
    /// once. One line per relationship: what the partner applied, or why it did not (the
    /// local reload stands either way; `tandemctl replicate` tries again).
    fn replicate_changed(&self, before: &Config, after: &Config) -> Vec<String> {
        let Some(m) = &self.manage else {
            return Vec::new();
        };
        let mut lines = Vec::new();
        for f in after.failover.iter().filter(|f| {
            f.replicate_auto
                && f.role == config::Role::Primary
                && f.peer_software == config::PeerSoftware::Tandem
        }) {
            let changed: Vec<String> = after
                .subnets
                .iter()
                .filter(|s| s.failover.as_deref() == Some(f.name.as_str()))
                .filter(|s| {
                    let def = config::edit::ScopeDefinition::of(s);
                    !before.subnets.iter().any(|b| {
                        b.prefix == s.prefix && config::edit::ScopeDefinition::of(b) == def
                    })
                })
                .map(|s| s.prefix.to_string())
                .collect();
            if changed.is_empty() {
                continue;
            }
            match m.replicate(&f.name, &changed) {
                Ok(done) => lines.extend(
                    done.into_iter()
                        .map(|c| format!("relationship {}: replicated, partner: {c}", f.name)),
                ),
                Err(e) => {
                    tracing::warn!(relationship = %f.name, error = %e, "replicate = auto: the partner did not take the change");
                    lines.push(format!(
                        "relationship {}: not replicated to the partner ({e}); `tandemctl replicate relationship {}` tries again",
                        f.name, f.name
                    ));
                }
            }
        }
        lines
    }

    /// A partner's scope definitions put in force here: written into the configuration file
    /// (its comments and layout kept), then applied as a reload applies a hand edit; if the
    /// reload refuses, the file is put back as it was and nothing changes.
    fn apply_scopes(
        &self,
        scopes: &[config::edit::ScopeDefinition],
    ) -> Result<Vec<String>, String> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let _one = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let path = self
            .config_path
            .clone()
            .ok_or("tandemd was not started from a configuration file")?;
        let old = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        // The file must be the configuration in force: a reload would otherwise put the
        // operator's pending edits in force along with the partner's scopes.
        let on_disk = config::parse(&old)
            .map_err(|_| format!("{} does not pass `tandemd --check` now", path.display()))?;
        let pending = crate::reload::plan(&self.config(), &on_disk)
            .map(|p| p.changes)
            .unwrap_or_else(|e| vec![e.to_string()]);
        if !pending.is_empty() {
            return Err(format!(
                "{} has edits not in force ({}): reload or revert them first",
                path.display(),
                pending.join("; ")
            ));
        }
        let mut new = old.clone();
        for d in scopes {
            new = config::edit::replace_scope(&new, d).map_err(|e| e.to_string())?;
        }
        if new == old {
            return Ok(Vec::new());
        }
        let meta =
            std::fs::metadata(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let write = |text: &str| {
            crate::files::write_private(&path, text.as_bytes(), |tmp| {
                std::fs::set_permissions(
                    tmp,
                    std::fs::Permissions::from_mode(meta.mode() & 0o7777),
                )?;
                std::os::unix::fs::chown(tmp, Some(meta.uid()), Some(meta.gid()))
            })
            .map_err(|(p, e)| format!("cannot write {}: {e}", p.display()))
        };
        write(&new)?;
        match self.reload_locked() {
            Ok(changes) => Ok(changes),
            Err(e) => {
                write(&old)?;
                Err(format!(
                    "not applied, {} left as it was: {e}",
                    path.display()
                ))
            }
        }
    }

    /// [`AdminBackend::reload`], with the reload lock held.
    fn reload_locked(&self) -> Result<Vec<String>, String> {
        let path = self
            .config_path
            .as_deref()
            .ok_or("tandemd was not started from a configuration file")?;
        let new = config::load(path)
            .map_err(|e| format!("not applied: {}", e.to_string().replace('\n', "; ")))?;
        let old = self.config();
        let plan = crate::reload::plan(&old, &new).map_err(|e| e.to_string())?;
        if plan.changes.is_empty() {
            tracing::info!(file = %path.display(), "configuration reloaded: unchanged");
            return Ok(plan.changes);
        }
        // Everything that can fail comes before anything is put in force.
        let (_, serving) = self.live.load();
        let engine_cfg = engine_config(&plan.config);
        let specs = engine_cfg.table_specs();
        let engine = serving
            .engine
            .reconfigured(engine_cfg)
            .map_err(|e| format!("not applied: {e}"))?;
        for (table, spec) in self.store.tables().iter().zip(&specs) {
            if !lease_mmap::store::description_fits(spec) {
                return Err(format!(
                    "not applied: subnet {}/{}: too many allocatable ranges (exclusions and \
                     reservations inside the pools) for its lease table's header",
                    spec.network, spec.prefix_len
                ));
            }
            if table.slot_ranges(&spec.allocatable).is_none() {
                return Err(format!(
                    "not applied: subnet {}/{}: its pools leave the lease table's span",
                    spec.network, spec.prefix_len
                ));
            }
        }
        let limits = plan.config.server.rate_limits;
        let worker_limits = match &self.xdp {
            Some(xdp) => {
                if limits != old.server.rate_limits {
                    xdp.set_rates(&limits, &old.server.rate_limits)
                        .map_err(|e| format!("not applied: {e}"))?;
                }
                dataplane::limit::RateLimits::OFF
            }
            None => limits,
        };
        let generation = self.live.replace(Serving {
            engine: Arc::new(engine),
            limits: worker_limits,
        });
        // The control plane's view of the pools (failover's pool balancing, the status).
        for (table, spec) in self.store.tables().iter().zip(&specs) {
            if let Err(e) = table.set_allocatable(&spec.allocatable) {
                tracing::error!(table = %table.path().display(), error = %e, "updating the pools");
            }
        }
        let mut changes = plan.changes;
        if plan.config.server.log_level != old.server.log_level
            && let Err(e) = crate::logging::set_level(plan.config.server.log_level.as_deref())
        {
            tracing::warn!("log_level not in force: {e}");
            changes.push(format!("log_level not in force: {e}"));
        }
        *self.config.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(plan.config);
        for change in &changes {
            tracing::info!(file = %path.display(), generation, "configuration change applied: {change}");
        }
        // Each partner compares with what is in force now (one exchange updates both).
        if let (Some(m), false) = (&self.manage, changes.is_empty()) {
            m.recheck();
        }
        Ok(changes)
    }
}
