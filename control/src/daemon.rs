//! `tandemd`'s life: the command line ([`main`]), the shutdown flag signals set ([`Shutdown`]), and
//! the run loop ([`run`]) into which the lead wires the dataplane.

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::admin::{AdminBackend, AdminError, AdminServer, CommandError};
use crate::config::{self, Config, LoadError};
use crate::status::{LeaseFilter, LeaseInfo, RelationshipDetail, Status};

/// `tandemd`'s version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A shutdown request shared by every thread: set once (by SIGTERM/SIGINT or [`Shutdown::request`]),
/// observed by polling [`Shutdown::is_requested`], by [`Shutdown::wait`], or through registered mio
/// wakers (each event loop registers its own).
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<ShutdownInner>,
}

#[derive(Default)]
struct ShutdownInner {
    flag: AtomicBool,
    /// Set with the flag by [`Shutdown::fail`]: the daemon exits with status 1.
    failed: AtomicBool,
    wakers: Mutex<Vec<Arc<mio::Waker>>>,
    cond: Condvar,
    /// What SIGHUP does (a reload), once the daemon serves.
    hangup: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown")
            .field("requested", &self.is_requested())
            .finish()
    }
}

impl Shutdown {
    /// A flag not yet set.
    pub fn new() -> Self {
        Shutdown::default()
    }

    /// Whether shutdown was requested. Cheap: one relaxed-acquire load, fine on a worker's hot loop.
    pub fn is_requested(&self) -> bool {
        self.inner.flag.load(Ordering::Acquire)
    }

    /// The raw flag, for code that wants an `Arc<AtomicBool>`-like handle without this type.
    pub fn requested_flag(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        let inner = Arc::clone(&self.inner);
        move || inner.flag.load(Ordering::Acquire)
    }

    /// Requests shutdown: sets the flag, wakes the registered event loops and the waiters.
    pub fn request(&self) {
        self.inner.flag.store(true, Ordering::Release);
        let wakers = self
            .inner
            .wakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for w in wakers.iter() {
            if let Err(e) = w.wake() {
                tracing::warn!(error = %e, "cannot wake an event loop for shutdown");
            }
        }
        self.inner.cond.notify_all();
    }

    /// Requests shutdown because durability failed (a journal commit, a checkpoint, a failover
    /// state write): the teardown skips the checkpoint and the daemon exits with status 1, so
    /// that the supervisor restarts it and recovery replays the journals.
    pub fn fail(&self) {
        self.inner.failed.store(true, Ordering::Release);
        self.request();
    }

    /// Whether [`Shutdown::fail`] was called.
    pub fn has_failed(&self) -> bool {
        self.inner.failed.load(Ordering::Acquire)
    }

    /// Wakes `waker` on shutdown (at once if it was already requested).
    pub fn register_waker(&self, waker: Arc<mio::Waker>) {
        let mut wakers = self
            .inner
            .wakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.is_requested() {
            let _ = waker.wake();
        }
        wakers.push(waker);
    }

    /// Blocks until shutdown is requested.
    pub fn wait(&self) {
        let mut guard = self
            .inner
            .wakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while !self.is_requested() {
            guard = self
                .inner
                .cond
                .wait(guard)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Blocks until shutdown is requested or `timeout` passes; returns whether it was requested.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut guard = self
            .inner
            .wakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while !self.is_requested() {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            guard = self
                .inner
                .cond
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Runs `f` on every SIGHUP from now on (on the `signals` thread).
    pub fn on_hangup(&self, f: impl Fn() + Send + Sync + 'static) {
        *self
            .inner
            .hangup
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Box::new(f));
    }

    /// Forgets what SIGHUP does, once a reload in progress has finished.
    pub fn clear_hangup(&self) {
        *self
            .inner
            .hangup
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// SIGTERM and SIGINT request shutdown; a second one while shutting down exits at once (status 130).
    /// SIGHUP runs what [`Shutdown::on_hangup`] set (the daemon's reload), and is ignored, logged,
    /// before that and during shutdown.
    /// Uses signal-hook's self-pipe iterator on a thread named `signals`, so nothing runs in the handler.
    pub fn install_signal_handlers(&self) -> io::Result<()> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
        let shutdown = self.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    if signal == SIGHUP {
                        let hangup = shutdown
                            .inner
                            .hangup
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner);
                        match hangup.as_ref() {
                            Some(reload) if !shutdown.is_requested() => reload(),
                            _ => tracing::warn!(
                                signal = "SIGHUP",
                                "ignored: tandemd is not serving (starting or stopping)"
                            ),
                        }
                        continue;
                    }
                    let name = if signal == SIGTERM {
                        "SIGTERM"
                    } else {
                        "SIGINT"
                    };
                    if shutdown.is_requested() {
                        tracing::warn!(signal = name, "second signal: exiting now");
                        std::process::exit(130);
                    }
                    tracing::info!(signal = name, "shutting down");
                    shutdown.request();
                }
            })?;
        Ok(())
    }
}

/// What the lead's wiring hands to [`run`].
#[must_use]
pub struct Hooks {
    /// Set by signals; every loop of the daemon observes it.
    pub shutdown: Shutdown,
    /// Answers the admin API; `None` = [`ConfigBackend`] (configuration only, no live data).
    pub backend: Option<Arc<dyn AdminBackend>>,
    /// Run after shutdown was requested and the admin API stopped, last registered first: join
    /// workers, flush journals, close tables.
    pub on_shutdown: Vec<Box<dyn FnOnce() + Send>>,
    /// The loops systemd's watchdog is fed for ([`crate::notify`]).
    pub heartbeats: Vec<crate::notify::Heartbeat>,
    /// The configuration file the daemon was started from: what a reload re-reads.
    pub config_path: Option<PathBuf>,
}

impl Hooks {
    /// Hooks with a fresh shutdown flag and no backend.
    pub fn new(shutdown: Shutdown) -> Self {
        Hooks {
            shutdown,
            backend: None,
            on_shutdown: Vec::new(),
            heartbeats: Vec::new(),
            config_path: None,
        }
    }
}

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// `data_dir` could not be created.
    #[error("data_dir {}: {source}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The admin API could not start.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The HTTP server (`server.http`) could not start.
    #[error(transparent)]
    Http(#[from] crate::http::HttpError),
    /// The systemd watchdog thread could not start.
    #[error("cannot start the watchdog thread: {0}")]
    Watchdog(io::Error),
}

/// Runs the daemon until shutdown is requested: creates `data_dir` (0750), starts the admin API on
/// `DATA_DIR/tandemd.sock` (and `server.admin`), and waits. The dataplane (workers, lease tables) and
/// failover are started here by the lead's wiring, which also supplies the real backend.
pub fn run(config: &Config, mut hooks: Hooks) -> Result<(), DaemonError> {
    let started = Instant::now();
    let data_dir = &config.server.data_dir;
    create_data_dir(data_dir)?;
    let backend = hooks
        .backend
        .unwrap_or_else(|| Arc::new(ConfigBackend::new(config.clone())));
    let admin = AdminServer::start(
        &config.admin_socket(),
        config.server.admin,
        Arc::clone(&backend),
    )?;
    {
        // SIGHUP: the same reload as `tandemctl reload`, audited as the signal's.
        let backend = Arc::clone(&backend);
        let audit = admin.audit_log();
        hooks.shutdown.on_hangup(move || {
            let caller = crate::admin::Caller {
                who: "signal SIGHUP".to_owned(),
                from: "signal".to_owned(),
            };
            let answer = crate::admin::handle_request(
                crate::admin::Request::Reload,
                backend.as_ref(),
                Some((&caller, audit.as_ref())),
            );
            match (answer.ok, answer.message, answer.error) {
                (true, Some(m), _) => tracing::info!(signal = "SIGHUP", "{m}"),
                (_, _, Some(e)) => tracing::warn!(signal = "SIGHUP", "reload refused: {e}"),
                _ => {}
            }
        });
    }
    let http = config
        .server
        .http
        .map(|addr| {
            let access = crate::http::Access {
                tokens: Arc::new(crate::tokens::Tokens::new(data_dir)),
                reads_need_token: match config.server.http_auth {
                    crate::config::HttpAuth::On => true,
                    crate::config::HttpAuth::Auto => !addr.ip().is_loopback(),
                },
                audit: admin.audit_log(),
                tls: match &config.server.http_tls {
                    Some((cert, key)) => Some(Arc::new(crate::http::tls_config(cert, key)?)),
                    None => None,
                },
            };
            crate::http::HttpServer::start(addr, backend, access)
        })
        .transpose()?;
    tracing::info!(
        version = VERSION,
        subnets = config.subnets.len(),
        relationships = config.failover.len(),
        datapath = %config.server.datapath,
        data_dir = %data_dir.display(),
        "tandemd running"
    );
    let notifier = Arc::new(crate::notify::Notifier::from_env());
    let watchdog = crate::notify::start_watchdog(
        Arc::clone(&notifier),
        std::mem::take(&mut hooks.heartbeats),
        hooks.shutdown.clone(),
    )
    .map_err(DaemonError::Watchdog)?;
    notifier.notify(&format!(
        "READY=1\nSTATUS=serving {} subnets, {} failover relationships",
        config.subnets.len(),
        config.failover.len()
    ));
    hooks.shutdown.wait();
    // SIGHUP's reload holds the backend (and so the store): let it go, after any reload in
    // progress, so that the teardown can close the store clean.
    hooks.shutdown.clear_hangup();
    notifier.notify("STOPPING=1\nSTATUS=stopping");
    admin.stop();
    if let Some(http) = http {
        http.stop();
    }
    if let Some(w) = watchdog
        && w.join().is_err()
    {
        tracing::error!("the watchdog thread panicked");
    }
    for stop in hooks.on_shutdown.into_iter().rev() {
        stop();
    }
    tracing::info!(after = ?started.elapsed(), "tandemd stopped");
    Ok(())
}

/// The daemon's file mode creation mask: nothing it creates is writable by others than its
/// user, or readable by others than its group.
pub const UMASK: u32 = 0o027;

/// Refuses a `data_dir` or a shared secret that anyone but the daemon's user (and root) can
/// write: whoever can write them can rewrite the leases or impersonate the partner. A secret
/// that everyone can read is allowed but warned about.
pub fn check_private_paths(config: &Config) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let writable_by_others = |path: &Path, what: &str| -> Result<Option<u32>, String> {
        match std::fs::metadata(path) {
            Ok(m) => {
                let mode = m.permissions().mode() & 0o7777;
                if mode & 0o022 != 0 {
                    Err(format!(
                        "{what} {} is writable by its group or by everyone (mode {mode:04o}): \
                         refusing to start; chmod go-w {}",
                        path.display(),
                        path.display()
                    ))
                } else {
                    Ok(Some(mode))
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{what} {}: {e}", path.display())),
        }
    };
    writable_by_others(&config.server.data_dir, "data_dir")?;
    for f in &config.failover {
        let Some(path) = &f.shared_secret_file else {
            continue;
        };
        if let Some(mode) = writable_by_others(path, "shared_secret_file")?
            && mode & 0o004 != 0
        {
            tracing::warn!(relationship = %f.name, file = %path.display(), mode = format!("{mode:04o}"),
                "shared_secret_file is readable by everyone: chmod 0600 it (or 0640 with the daemon's group)");
        }
    }
    Ok(())
}

/// With `server.user` and started as root: makes `data_dir` (created if missing) and what is
/// in it the user's, then becomes the user with only the capabilities the datapaths need
/// (`dataplane::sys::drop_privileges`). Runs before any thread exists, so every thread the
/// daemon starts has the same reduced credentials. Already that user: nothing to do.
pub fn become_user(config: &Config) -> Result<(), String> {
    let Some(name) = config.server.user.as_deref() else {
        return Ok(());
    };
    let (uid, gid) = dataplane::sys::lookup_user(name)
        .map_err(|e| format!("server.user {name:?}: cannot look it up: {e}"))?
        .ok_or_else(|| format!("server.user {name:?}: no such user"))?;
    match dataplane::sys::euid() {
        0 => {}
        me if me == uid => return Ok(()),
        me => {
            return Err(format!(
                "server.user {name:?} (uid {uid}), but tandemd runs as uid {me}: only root can \
                 become another user"
            ));
        }
    }
    let data_dir = &config.server.data_dir;
    create_data_dir(data_dir).map_err(|e| e.to_string())?;
    chown_tree(data_dir, uid, gid).map_err(|e| {
        format!(
            "data_dir {}: cannot make it {name}'s: {e}",
            data_dir.display()
        )
    })?;
    dataplane::sys::drop_privileges(uid, gid, &dataplane::sys::KEPT_CAPABILITIES)
        .map_err(|e| format!("cannot become user {name:?}: {e}"))?;
    tracing::info!(
        user = name,
        uid,
        gid,
        "gave up root: running as the user with CAP_NET_ADMIN, CAP_NET_RAW, CAP_NET_BIND_SERVICE, CAP_BPF, CAP_PERFMON and CAP_IPC_LOCK only"
    );
    Ok(())
}

/// `chown -R uid:gid path` (symbolic links themselves, not what they point to).
fn chown_tree(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if std::fs::symlink_metadata(path)?.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

fn create_data_dir(path: &Path) -> Result<(), DaemonError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(path)
        .map_err(|source| DaemonError::DataDir {
            path: path.to_owned(),
            source,
        })
}

/// An [`AdminBackend`] that knows only the configuration: no workers, no leases, no failover yet.
/// The default until the lead's wiring supplies the live one.
#[derive(Debug)]
pub struct ConfigBackend {
    config: Config,
    started: Instant,
}

impl ConfigBackend {
    /// Starts the uptime clock now.
    pub fn new(config: Config) -> Self {
        ConfigBackend {
            config,
            started: Instant::now(),
        }
    }
}

impl AdminBackend for ConfigBackend {
    fn status(&self) -> Status {
        Status {
            version: VERSION.to_owned(),
            uptime: self.started.elapsed().as_secs(),
            datapath: self.config.server.datapath.as_str().to_owned(),
            relationships: Vec::new(),
            workers: Vec::new(),
            leases: self
                .config
                .subnets
                .iter()
                .map(|s| (s.prefix.to_string(), Default::default()))
                .collect(),
            scope_failover: crate::serve::scope_failover(&self.config),
            xdp: Vec::new(),
            leasequery: Default::default(),
        }
    }

    fn leases(&self, _filter: &LeaseFilter) -> Vec<LeaseInfo> {
        Vec::new()
    }

    fn partner_down(&self, name: &str, _since: u64) -> Result<u64, CommandError> {
        relationship_unavailable(&self.config, name)
    }

    fn resync(&self, name: &str) -> Result<(), CommandError> {
        relationship_unavailable(&self.config, name)
    }

    fn relationships(&self) -> Vec<RelationshipDetail> {
        crate::status::relationship_details(&self.config, &self.status())
    }
}

/// The answer to a relationship's command (`partner-down`, `resync`) while failover is not
/// running: "no such relationship" for a name the config lacks, "failover not active" for one
/// it has.
pub fn relationship_unavailable<T>(config: &Config, name: &str) -> Result<T, CommandError> {
    if config.relationship(name).is_some() {
        Err(CommandError::NotRunning(name.to_owned()))
    } else {
        Err(CommandError::NoSuchRelationship(name.to_owned()))
    }
}

const TANDEMD_HELP: &str = "\
tandemd: the tandem DHCPv4 failover daemon

Usage:
  tandemd --config FILE            run the daemon
  tandemd --check --config FILE    validate FILE and exit (0 = valid)
  tandemd --repair --config FILE   recover data_dir when a journal is damaged, and exit:
                                   each damaged journal is renamed .damaged-SECONDS (never
                                   deleted), every intact entry is kept, a report is printed
  tandemd --version | --help

Logging goes to stderr, as compact text or (server.log_format = \"json\") one JSON object a
line; the level is server.log_level (default info), overridden by the TANDEM_LOG environment
variable (a tracing filter such as \"debug\" or \"control=debug,info\").
SIGTERM or SIGINT stop the daemon cleanly. Exit status: 0 after a clean stop, 1 on an
invalid config, a failed start or a durability failure (a journal commit, a checkpoint,
a failover state write), 2 on bad usage; a panicking thread aborts the process (SIGABRT).";

/// What `tandemd`'s command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run with this config file.
    Run(PathBuf),
    /// Validate this config file.
    Check(PathBuf),
    /// Repair the lease store of this config file's `data_dir`.
    Repair(PathBuf),
    /// Print the version.
    Version,
    /// Print the help.
    Help,
}

/// What is wrong with a `tandemd` command line (exit status 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    #[error("--config needs a FILE")]
    ConfigNeedsFile,
    #[error("--config given twice")]
    ConfigTwice,
    #[error("unexpected argument {0:?}")]
    Unexpected(String),
    #[error("--config FILE is required")]
    NoConfig,
    #[error("--check and --repair exclude each other")]
    CheckAndRepair,
}

/// Parses `tandemd`'s arguments (without the program name).
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Command, UsageError> {
    let mut config: Option<PathBuf> = None;
    let mut check = false;
    let mut repair = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            "--version" | "-V" => return Ok(Command::Version),
            "--check" => check = true,
            "--repair" => repair = true,
            "--config" | "-c" => {
                let v = args.next().ok_or(UsageError::ConfigNeedsFile)?;
                if config.replace(v.into()).is_some() {
                    return Err(UsageError::ConfigTwice);
                }
            }
            other => {
                if let Some(v) = other.strip_prefix("--config=") {
                    if config.replace(v.into()).is_some() {
                        return Err(UsageError::ConfigTwice);
                    }
                } else {
                    return Err(UsageError::Unexpected(other.to_owned()));
                }
            }
        }
    }
    let config = config.ok_or(UsageError::NoConfig)?;
    Ok(match (check, repair) {
        (true, true) => return Err(UsageError::CheckAndRepair),
        (true, false) => Command::Check(config),
        (false, true) => Command::Repair(config),
        (false, false) => Command::Run(config),
    })
}

/// A one-line summary of a valid config, for `--check`.
pub fn summary(config: &Config) -> String {
    format!(
        "{} subnet{}, {} reservation{}, {} failover relationship{}; interfaces {}, datapath {}, durability {}",
        config.subnets.len(),
        plural(config.subnets.len()),
        config.reservation_count(),
        plural(config.reservation_count()),
        config.failover.len(),
        plural(config.failover.len()),
        config.server.interfaces.join(","),
        config.server.datapath,
        config.server.durability.as_str(),
    )
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn load_or_report(path: &Path) -> Option<Config> {
    match config::load(path) {
        Ok(c) => Some(c),
        Err(LoadError::Invalid(errors)) => {
            eprintln!("{errors}");
            None
        }
        Err(e @ LoadError::Io { .. }) => {
            eprintln!("tandemd: cannot read config {e}");
            None
        }
    }
}

/// An error and its causes as the log shows them: `what: cause: cause's cause`.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

/// What `tandemd --repair` prints: each journal set aside, what was kept, where it went.
pub fn repair_report(data_dir: &Path, report: &lease_mmap::RecoveryReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if report.set_aside.is_empty() {
        let _ = writeln!(
            out,
            "{}: no damaged journal; nothing set aside ({} entries replayed, {} torn tail{} cut)",
            data_dir.display(),
            report.replayed,
            report.torn_tails,
            plural(report.torn_tails as usize),
        );
        return out;
    }
    for s in &report.set_aside {
        let _ = writeln!(out, "{}: {}", s.path.display(), s.damage);
        let _ = writeln!(out, "  damage at byte offset: {}", s.damage.offset);
        let _ = writeln!(out, "  entries kept:          {}", s.kept);
        let _ = writeln!(out, "  entries set aside:     {}", s.damage.damaged);
        let _ = writeln!(out, "  set aside as:          {}", s.moved_to.display());
    }
    let _ = writeln!(
        out,
        "{}: repaired: {} journal{} set aside, {} entries replayed; tandemd starts from the intact entries",
        data_dir.display(),
        report.set_aside.len(),
        plural(report.set_aside.len()),
        report.replayed,
    );
    out
}

/// Every panic, on any thread, is logged at error level with the thread's name and then
/// aborts the process: a worker or the failover driver that died would leave the daemon
/// looking healthy while it no longer answers or replicates. After the abort the supervisor
/// restarts tandemd and recovery replays the journals (as after `kill -9`). The release
/// profile also sets `panic = "abort"`; the hook makes every build behave so.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("<unnamed>");
        let backtrace = std::backtrace::Backtrace::capture();
        tracing::error!(thread = name, panic = %info, %backtrace, "a thread panicked: aborting (the supervisor restarts tandemd and recovery runs)");
        std::process::abort();
    }));
}

/// `tandemd`'s `main`: exit 0 on success, 1 on an invalid config or a runtime failure, 2 on bad usage.
/// `wire` starts the dataplane: given the config and hooks, it may fill `hooks.backend` and start
/// threads observing `hooks.shutdown` before [`run`] is called. Its error is logged with its
/// causes ([`Chain`]).
pub fn main<E: std::error::Error + 'static>(
    wire: impl FnOnce(&Config, &mut Hooks) -> Result<(), E>,
) -> ExitCode {
    let command = match parse_args(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tandemd: {e}\n\n{TANDEMD_HELP}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help => {
            println!("{TANDEMD_HELP}");
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("tandemd {VERSION}");
            ExitCode::SUCCESS
        }
        Command::Check(path) => match load_or_report(&path) {
            Some(c) => {
                println!("{}: ok ({})", path.display(), summary(&c));
                ExitCode::SUCCESS
            }
            None => ExitCode::from(1),
        },
        Command::Repair(path) => {
            let Some(config) = load_or_report(&path) else {
                return ExitCode::from(1);
            };
            crate::logging::init(config.server.log_level.as_deref(), config.server.log_format);
            match crate::serve::repair(&config) {
                Ok(report) => {
                    print!("{}", repair_report(&config.server.data_dir, &report));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("tandemd: repair failed: {}", Chain(&e));
                    ExitCode::from(1)
                }
            }
        }
        Command::Run(path) => {
            let Some(config) = load_or_report(&path) else {
                return ExitCode::from(1);
            };
            crate::logging::init(config.server.log_level.as_deref(), config.server.log_format);
            install_panic_hook();
            // Whatever the daemon creates is its own: files 0600 or 0640, directories 0750.
            dataplane::sys::set_umask(UMASK);
            if let Err(e) = check_private_paths(&config).and_then(|()| become_user(&config)) {
                tracing::error!("{e}");
                return ExitCode::from(1);
            }
            let shutdown = Shutdown::new();
            if let Err(e) = shutdown.install_signal_handlers() {
                tracing::error!(error = %e, "cannot install signal handlers");
                return ExitCode::from(1);
            }
            let mut hooks = Hooks::new(shutdown.clone());
            hooks.config_path = Some(path.clone());
            if let Err(e) = wire(&config, &mut hooks) {
                tracing::error!(error = %Chain(&e), "cannot start");
                shutdown.request();
                return ExitCode::from(1);
            }
            match run(&config, hooks) {
                Ok(()) if shutdown.has_failed() => {
                    tracing::error!("tandemd stopped after a durability failure");
                    ExitCode::from(1)
                }
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "tandemd failed");
                    shutdown.request();
                    ExitCode::from(1)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn command_line() {
        assert_eq!(
            parse_args(args(&["--config", "a.toml"])),
            Ok(Command::Run("a.toml".into()))
        );
        assert_eq!(
            parse_args(args(&["--check", "--config=a.toml"])),
            Ok(Command::Check("a.toml".into()))
        );
        assert_eq!(
            parse_args(args(&["--config", "a.toml", "--check"])),
            Ok(Command::Check("a.toml".into()))
        );
        assert_eq!(
            parse_args(args(&["--repair", "--config", "a.toml"])),
            Ok(Command::Repair("a.toml".into()))
        );
        assert_eq!(
            parse_args(args(&["--repair", "--check", "--config", "a.toml"])),
            Err(UsageError::CheckAndRepair)
        );
        assert_eq!(parse_args(args(&["--version"])), Ok(Command::Version));
        assert_eq!(parse_args(args(&["-h"])), Ok(Command::Help));
        assert!(parse_args(args(&[])).is_err());
        assert!(parse_args(args(&["--config"])).is_err());
        assert!(parse_args(args(&["--check"])).is_err());
        assert!(parse_args(args(&["--config", "a", "--config", "b"])).is_err());
        assert!(parse_args(args(&["--frobnicate"])).is_err());
    }

    #[test]
    fn shutdown_wakes_waiters() {
        let s = Shutdown::new();
        assert!(!s.wait_timeout(Duration::from_millis(10)));
        let s2 = s.clone();
        let t = std::thread::spawn(move || s2.wait());
        s.request();
        t.join().expect("waiter");
        assert!(s.is_requested());
        assert!(s.wait_timeout(Duration::from_secs(1)));
        assert!(s.requested_flag()());
    }
}
