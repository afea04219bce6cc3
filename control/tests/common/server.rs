//! The DHCP server under test, behind one type whatever it is: Kea (`kea-dhcp4` with memfile
//! persistence, the baseline the harness is proven against) or `tandemd`.
//!
//! Each server writes its config and keeps its data in its own temp dir, runs in the test's
//! server namespace, and can be killed (`kill -9`), terminated (SIGTERM) and restarted on the
//! same data.

use std::{
    fmt::Write as _,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Child,
    time::Duration,
};

use super::net::Ns;

/// Which DHCP server the end-to-end tests drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// ISC Kea `kea-dhcp4`, memfile lease database.
    Kea,
    /// Our `tandemd` with `datapath = "packet"`.
    Tandemd,
    /// ISC dhcpd 4.4 (`dhcpd -f -d`), a failover partner of tandemd
    /// ([`Server::start_isc_dhcpd`]): `dhcpd.conf` and `dhcpd.leases` in its data directory.
    IscDhcpd,
}

impl ServerKind {
    /// The one place the kind is chosen: `TANDEM_E2E_SERVER=kea|tandemd`, default `tandemd`.
    pub fn from_env() -> Self {
        match std::env::var("TANDEM_E2E_SERVER").as_deref() {
            Ok("kea") => Self::Kea,
            Ok("tandemd") | Err(_) => Self::Tandemd,
            Ok(other) => panic!("TANDEM_E2E_SERVER={other:?}: expected \"kea\" or \"tandemd\""),
        }
    }
}

/// One subnet the server serves.
#[derive(Debug, Clone)]
pub struct SubnetSpec {
    /// `10.77.0.0/16`.
    pub prefix: String,
    /// First and last address of the one pool.
    pub pool: (Ipv4Addr, Ipv4Addr),
    /// Option 3.
    pub router: Option<Ipv4Addr>,
}

/// What the test asks of the server, independent of its kind.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// Interfaces (inside the server namespace) where DHCP is served.
    pub interfaces: Vec<String>,
    /// Option 54.
    pub server_id: Ipv4Addr,
    /// The subnets.
    pub subnets: Vec<SubnetSpec>,
    /// Lease time given to clients; T1 and T2 are half and 7/8 of it.
    pub lease_time: Duration,
    /// tandemd's `datapath` (`"packet"` unless a test asks for `"xdp"` or `"auto"`).
    pub datapath: &'static str,
    /// tandemd's `server.user`: the user it becomes after starting as root (none by default).
    pub user: Option<&'static str>,
}

/// One lease as the server's own store reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The leased address.
    pub address: Ipv4Addr,
    /// Binding state: `active`, `released`, `expired`, ...
    pub state: String,
    /// Client hardware address, lower-case `aa:bb:...`.
    pub chaddr: String,
    /// Client identifier (option 61) as lower-case hex without separators, if any.
    pub client_id: Option<String>,
    /// Expiry, Unix seconds.
    pub ends: u64,
}

/// A running (or killed) DHCP server with its config and data directory.
pub struct Server {
    /// Which server this is.
    pub kind: ServerKind,
    pub ns: Ns,
    dir: tempfile::TempDir,
    /// tandemd's `data_dir` (the temp dir unless the test put it elsewhere).
    data: PathBuf,
    config: PathBuf,
    child: Option<Child>,
    starts: u32,
    /// Environment of tandemd's next starts ([`Server::set_env`]).
    env: Vec<(String, String)>,
    /// The interfaces ISC dhcpd listens on (its command line names them).
    interfaces: Vec<String>,
}

impl Server {
    /// Writes the config for `kind` and starts the server in `ns`; returns once it serves.
    pub fn start(kind: ServerKind, ns: &Ns, spec: &ServerSpec) -> Self {
        let dir = temp_dir();
        let config = match kind {
            ServerKind::Kea => write_kea_config(dir.path(), spec),
            ServerKind::Tandemd => write_tandemd_config(dir.path(), spec),
            ServerKind::IscDhcpd => panic!("ISC dhcpd takes its own config: start_isc_dhcpd"),
        };
        let data = dir.path().to_owned();
        Self::launched(kind, ns, dir, data, config, Vec::new())
    }

    /// The server of `kind`, started: its temp dir `dir`, data directory, config file and
    /// (for ISC dhcpd) interfaces.
    fn launched(
        kind: ServerKind,
        ns: &Ns,
        dir: tempfile::TempDir,
        data: PathBuf,
        config: PathBuf,
        interfaces: Vec<String>,
    ) -> Self {
        let mut server = Self {
            kind,
            ns: ns.clone(),
            data,
            dir,
            config,
            child: None,
            starts: 0,
            env: Vec::new(),
            interfaces,
        };
        server.launch();
        server
    }

    /// Starts ISC dhcpd in `ns` on `interfaces` with the `dhcpd.conf` that `conf` returns
    /// (it gets the data directory) and an empty lease file; returns once it serves.
    pub fn start_isc_dhcpd(
        ns: &Ns,
        interfaces: &[&str],
        conf: impl FnOnce(&Path) -> String,
    ) -> Self {
        let dir = temp_dir();
        let config = dir.path().join("dhcpd.conf");
        std::fs::write(&config, conf(dir.path())).expect("write dhcpd.conf");
        std::fs::write(dir.path().join("dhcpd.leases"), "").expect("create dhcpd.leases");
        let data = dir.path().to_owned();
        let interfaces = interfaces.iter().map(|s| (*s).to_owned()).collect();
        Self::launched(ServerKind::IscDhcpd, ns, dir, data, config, interfaces)
    }

    /// ISC dhcpd's lease file (its whole database, failover states included).
    pub fn isc_leases_path(&self) -> PathBuf {
        self.data.join("dhcpd.leases")
    }

    /// ISC dhcpd's `(my state, partner state)` of failover peer `name`, as it last wrote them
    /// to its lease file (`failover peer "NAME" state { my state S at ...; partner state ...}`).
    pub fn isc_failover_state(&self, name: &str) -> (String, String) {
        let text = std::fs::read_to_string(self.isc_leases_path()).unwrap_or_default();
        let head = format!("failover peer \"{name}\" state {{");
        let Some(at) = text.rfind(&head) else {
            return (String::new(), String::new());
        };
        let block = &text[at..];
        let block = &block[..block.find('}').unwrap_or(block.len())];
        let state = |key: &str| {
            block
                .lines()
                .find_map(|l| l.trim().strip_prefix(key))
                .and_then(|rest| rest.split_whitespace().next())
                .map(|s| s.trim_end_matches(';').to_owned())
                .unwrap_or_default()
        };
        (state("my state "), state("partner state "))
    }

    /// The operator's partner-down on ISC dhcpd, through omshell and its OMAPI port 7911
    /// (local-state 4, `dhcpd.8`'s numbering; `failover.c:3099-3104` sets the state);
    /// omshell's output.
    pub fn isc_partner_down(&self, name: &str) -> String {
        isc_partner_down(&self.ns, name)
    }

    /// Starts `tandemd` in `ns` on a config the test writes itself: `toml` gets the server's
    /// temp dir (use it as `data_dir`) and returns the whole TOML. For what [`ServerSpec`]
    /// cannot say (`[[failover]]` relationships, several servers on one link).
    pub fn start_tandemd_with(ns: &Ns, toml: impl FnOnce(&Path) -> String) -> Self {
        let dir = temp_dir();
        let data = dir.path().to_owned();
        Self::start_tandemd_on(ns, dir, &data, toml)
    }

    /// Like [`Server::start_tandemd_with`], with `data_dir` elsewhere than the server's temp
    /// dir (on a filesystem the test set up): `toml` gets `data_dir`.
    pub fn start_tandemd_in(ns: &Ns, data_dir: &Path, toml: impl FnOnce(&Path) -> String) -> Self {
        let dir = temp_dir();
        Self::start_tandemd_on(ns, dir, data_dir, toml)
    }

    fn start_tandemd_on(
        ns: &Ns,
        dir: tempfile::TempDir,
        data: &Path,
        toml: impl FnOnce(&Path) -> String,
    ) -> Self {
        let config = dir.path().join("tandemd.toml");
        std::fs::write(&config, toml(data)).expect("write the tandemd config");
        Self::launched(
            ServerKind::Tandemd,
            ns,
            dir,
            data.to_owned(),
            config,
            Vec::new(),
        )
    }

    /// Starts the process on the existing config and data and waits until it serves.
    fn launch(&mut self) {
        assert!(self.child.is_none(), "server already running");
        self.starts += 1;
        let log = self.log_path();
        let config = self.config.to_string_lossy().into_owned();
        let mut child = match self.kind {
            ServerKind::Kea => {
                let mut cmd = self.ns.command("kea-dhcp4");
                cmd.args(["-c", &config])
                    .env("KEA_PIDFILE_DIR", self.dir.path())
                    .env("KEA_LOCKFILE_DIR", self.dir.path());
                super::net::spawn_logged(cmd, &log)
            }
            ServerKind::Tandemd => {
                let mut cmd = self.ns.command(env!("CARGO_BIN_EXE_tandemd"));
                cmd.args(["--config", &config]);
                cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
                super::net::spawn_logged(cmd, &log)
            }
            ServerKind::IscDhcpd => {
                let mut cmd = self.ns.command("dhcpd");
                cmd.args(["-f", "-d", "-cf", &config, "-lf"])
                    .arg(self.isc_leases_path())
                    .arg("-pf")
                    .arg(self.dir.path().join("dhcpd.pid"))
                    .args(&self.interfaces);
                cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
                super::net::spawn_logged(cmd, &log)
            }
        };
        let ready = super::try_wait_until(Duration::from_secs(60), || {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(Err(status));
            }
            self.serving().then_some(Ok(()))
        });
        match ready {
            Some(Ok(())) => self.child = Some(child),
            Some(Err(status)) => panic!(
                "{:?} exited at start ({status}); log {}:\n{}",
                self.kind,
                log.display(),
                self.log()
            ),
            None => {
                super::reap(&mut child);
                panic!(
                    "{:?} did not start serving within 15 s; log:\n{}",
                    self.kind,
                    self.log()
                )
            }
        }
    }

    /// Whether the server says it is up: Kea logs `DHCP4_STARTED` (once per start); tandemd
    /// answers `tandemctl status`.
    fn serving(&self) -> bool {
        match self.kind {
            ServerKind::Kea => self.log().contains("DHCP4_STARTED"),
            ServerKind::IscDhcpd => self.log().contains("Server starting service."),
            ServerKind::Tandemd => self
                .tandemctl(&["status", "--json"])
                .is_ok_and(|s| serde_json::from_str::<serde_json::Value>(&s).is_ok()),
        }
    }

    fn log_path(&self) -> PathBuf {
        self.log_path_of(self.starts)
    }

    /// The log of start `n` (1 is the first).
    fn log_path_of(&self, n: u32) -> PathBuf {
        self.dir.path().join(format!("server-{n}.log"))
    }

    /// The log of the current (or last) run.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The logs of every start, oldest first.
    pub fn all_logs(&self) -> String {
        (1..=self.starts)
            .map(|n| std::fs::read_to_string(self.log_path_of(n)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The data directory (tandemd's `data_dir`; Kea's memfile lives there too).
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Waits at most `timeout` for the process to exit by itself; its status, or `None` if it
    /// still runs (then it is left running).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let pid = child.id();
        let status = super::wait_exit(child, timeout)?;
        self.child = None;
        remove_faketime_shm(pid);
        Some(status)
    }

    /// The configuration file the server runs on (a test may edit it and reload).
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Sends the running server a signal by name (`HUP`, `TERM`, ...).
    pub fn signal(&self, name: &str) {
        super::signal(self.pid().expect("signal: server not running"), name);
    }

    /// No lease lost: the latest ACK of every address among `acks` (seen on the wire) is
    /// bound to that client in the table. A capture may miss frames under load; it never
    /// invents them.
    pub fn assert_acks_in_table(&self, acks: &[&super::capture::DhcpMsg]) {
        let table: std::collections::BTreeMap<_, _> = self
            .leases()
            .into_iter()
            .filter(|l| l.state == "active")
            .map(|l| (l.address, l.chaddr))
            .collect();
        let mut latest = std::collections::BTreeMap::new();
        for ack in acks {
            latest.insert(ack.yiaddr, ack.chaddr.clone());
        }
        let missing: Vec<_> = latest
            .iter()
            .filter(|&(addr, chaddr)| table.get(addr) != Some(chaddr))
            .take(10)
            .collect();
        assert!(
            missing.is_empty(),
            "ACKed on the wire but not bound to that client in the table (first 10): {missing:?}"
        );
    }

    /// The server's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// `kill -9`: no chance to flush or say goodbye.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("kill9: server not running");
        super::signal(child.id(), "KILL");
        let _ = child.wait();
        remove_faketime_shm(child.id());
    }

    /// SIGTERM and wait (at most 10 s) for a clean exit; panics if it doesn't exit.
    pub fn terminate(&mut self) {
        let mut child = self.child.take().expect("terminate: server not running");
        super::signal(child.id(), "TERM");
        if super::wait_exit(&mut child, Duration::from_secs(30)).is_none() {
            super::reap(&mut child);
            panic!(
                "{:?} ignored SIGTERM for 10 s; log:\n{}",
                self.kind,
                self.log()
            );
        }
    }

    /// The environment tandemd gets from its next start on (for example libfaketime's).
    pub fn set_env(&mut self, env: Vec<(String, String)>) {
        self.env = env;
    }

    /// Starts the server again on the same config and data directory.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.terminate();
        }
        self.launch();
    }

    /// Runs `tandemctl --data-dir D ARGS` in the server namespace; stdout or the error output.
    pub fn tandemctl(&self, args: &[&str]) -> Result<String, String> {
        let data_dir = self.data.to_string_lossy().into_owned();
        let mut full = vec![env!("CARGO_BIN_EXE_tandemctl"), "--data-dir", &data_dir];
        full.extend_from_slice(args);
        let out = self.ns.exec(&full);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{full:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// `tandemctl status --json` for tandemd; `None` for Kea, which has no such thing here.
    /// The Prometheus exposition at `http://ADDR/metrics`, fetched from inside the server's
    /// namespace (`server.http` must be set to `addr`).
    pub fn metrics(&self, addr: &str) -> String {
        let script = format!(
            "import sys, urllib.request\n\
             r = urllib.request.urlopen('http://{addr}/metrics', timeout=10)\n\
             assert r.headers['Content-Type'].startswith('text/plain; version=0.0.4'), r.headers\n\
             sys.stdout.write(r.read().decode())\n"
        );
        self.ns.run(&[super::PYTHON, "-c", &script])
    }

    /// Loads `url` in headless Chromium inside the server's namespace and returns the DOM
    /// once the page's scripts and fetches have run; with `screenshot`, also saves what it
    /// drew there as a PNG ([`testkit::tools::chromium`]).
    pub fn chromium(&self, url: &str, screenshot: Option<&Path>) -> String {
        testkit::tools::chromium(&["ip", "netns", "exec", &self.ns.name], url, screenshot)
    }

    pub fn status_json(&self) -> Option<serde_json::Value> {
        match self.kind {
            ServerKind::Kea | ServerKind::IscDhcpd => None,
            ServerKind::Tandemd => {
                let out = self
                    .tandemctl(&["status", "--json"])
                    .unwrap_or_else(|e| panic!("tandemctl status: {e}"));
                Some(
                    serde_json::from_str(&out).unwrap_or_else(|e| {
                        panic!("tandemctl status --json is not JSON ({e}): {out}")
                    }),
                )
            }
        }
    }

    /// Every lease the server's store holds: tandemd through `tandemctl leases --json`, Kea by
    /// reading its memfile CSV (works whether or not the server runs).
    /// tandemd's `tandemctl leases --json ARGS...` (a lookup, a page, a state).
    pub fn tandemctl_leases(&self, args: &[&str]) -> Vec<Lease> {
        let mut full = vec!["leases", "--json"];
        full.extend_from_slice(args);
        let out = self
            .tandemctl(&full)
            .unwrap_or_else(|e| panic!("tandemctl leases: {e}"));
        parse_tandemctl_leases(&out)
    }

    pub fn leases(&self) -> Vec<Lease> {
        match self.kind {
            ServerKind::Kea => read_kea_memfile(&self.dir.path().join("leases4.csv")),
            ServerKind::IscDhcpd => read_isc_leases(&self.isc_leases_path()),
            ServerKind::Tandemd => {
                let out = self
                    .tandemctl(&["leases", "--json"])
                    .unwrap_or_else(|e| panic!("tandemctl leases: {e}"));
                parse_tandemctl_leases(&out)
            }
        }
    }

    /// The leases bound now (state `active` and not yet ended).
    pub fn active_leases(&self) -> Vec<Lease> {
        let now = unix_now();
        self.leases()
            .into_iter()
            .filter(|l| l.state == "active" && l.ends > now)
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            super::signal(child.id(), "KILL");
            let _ = child.wait();
            remove_faketime_shm(child.id());
        }
        if std::thread::panicking() {
            // The last start's log here; the dir is kept with the logs of every start (a
            // restarted server's first life is often where a failure began).
            self.dir.disable_cleanup(true);
            eprintln!(
                "--- {:?} log ({}; {} starts, every log kept in {}) ---\n{}",
                self.kind,
                self.log_path().display(),
                self.starts,
                self.dir.path().display(),
                self.log()
            );
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn write_kea_config(dir: &Path, spec: &ServerSpec) -> PathBuf {
    let lease = spec.lease_time.as_secs();
    let subnets: Vec<serde_json::Value> = spec
        .subnets
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut options = Vec::new();
            if let Some(r) = s.router {
                options.push(serde_json::json!({"name": "routers", "data": r.to_string()}));
            }
            serde_json::json!({
                "id": i + 1,
                "subnet": s.prefix,
                "pools": [{"pool": format!("{} - {}", s.pool.0, s.pool.1)}],
                "option-data": options,
            })
        })
        .collect();
    let config = serde_json::json!({
        "Dhcp4": {
            "interfaces-config": {
                "interfaces": spec.interfaces,
                "dhcp-socket-type": "raw",
            },
            "lease-database": {
                "type": "memfile",
                "persist": true,
                "name": dir.join("leases4.csv"),
                "lfc-interval": 0,
            },
            "valid-lifetime": lease,
            "renew-timer": lease / 2,
            "rebind-timer": lease * 7 / 8,
            "server-tag": "tandem-e2e",
            "option-data": [
                {"name": "dhcp-server-identifier", "data": spec.server_id.to_string()},
            ],
            "subnet4": subnets,
            // Start-up at INFO (readiness is DHCP4_STARTED); per-lease logging off, it halves
            // Kea's rate.
            "loggers": [
                {
                    "name": "kea-dhcp4",
                    "output_options": [{"output": "stdout"}],
                    "severity": "INFO",
                },
                {
                    "name": "kea-dhcp4.leases",
                    "output_options": [{"output": "stdout"}],
                    "severity": "WARN",
                },
            ],
        }
    });
    let path = dir.join("kea-dhcp4.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&config).expect("serialise"),
    )
    .expect("write the Kea config");
    path
}

/// The TOML of DESIGN.md §6, with the spec's `datapath`.
fn write_tandemd_config(dir: &Path, spec: &ServerSpec) -> PathBuf {
    let quoted = |v: &[String]| {
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut toml = String::new();
    let _ = writeln!(toml, "[server]");
    let _ = writeln!(toml, "interfaces = [{}]", quoted(&spec.interfaces));
    let _ = writeln!(toml, "server_id = \"{}\"", spec.server_id);
    let _ = writeln!(toml, "data_dir = {:?}", dir.to_string_lossy());
    let _ = writeln!(toml, "datapath = {:?}", spec.datapath);
    let _ = writeln!(toml, "workers = 0");
    let _ = writeln!(toml, "durability = \"sync\"");
    if let Some(user) = spec.user {
        let _ = writeln!(toml, "user = {user:?}");
    }
    for s in &spec.subnets {
        let _ = writeln!(toml, "\n[[subnet]]");
        let _ = writeln!(toml, "prefix = \"{}\"", s.prefix);
        let _ = writeln!(toml, "pools = [\"{}-{}\"]", s.pool.0, s.pool.1);
        if let Some(r) = s.router {
            let _ = writeln!(toml, "router = [\"{r}\"]");
        }
        let _ = writeln!(toml, "lease_time = \"{}s\"", spec.lease_time.as_secs());
    }
    let path = dir.join("tandemd.toml");
    std::fs::write(&path, toml).expect("write the tandemd config");
    path
}

/// Kea memfile v4 CSV: `address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,
/// fqdn_rev,hostname,state,user_context[,pool_id]`; one row per change, the last row of an
/// address wins; `valid_lifetime = 0` is a deletion (release), state 0 = default (bound),
/// 1 = declined, 2 = expired-reclaimed.
fn read_kea_memfile(path: &Path) -> Vec<Lease> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut last: std::collections::BTreeMap<Ipv4Addr, Lease> = Default::default();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 10 {
            continue;
        }
        let Ok(address) = f[0].parse::<Ipv4Addr>() else {
            continue;
        };
        let valid: u64 = f[3].parse().unwrap_or(0);
        let expire: u64 = f[4].parse().unwrap_or(0);
        let state = match (valid, f[9]) {
            (0, _) => "released",
            (_, "0") => "active",
            (_, "1") => "declined",
            (_, "2") => "expired",
            _ => "unknown",
        };
        last.insert(
            address,
            Lease {
                address,
                state: state.to_owned(),
                chaddr: f[1].to_ascii_lowercase(),
                client_id: (!f[2].is_empty()).then(|| f[2].replace(':', "").to_ascii_lowercase()),
                ends: expire,
            },
        );
    }
    last.into_values().collect()
}

/// `tandemctl leases --json`: a list of `{address, state, chaddr, client_id, ends}`.
fn parse_tandemctl_leases(out: &str) -> Vec<Lease> {
    let v: serde_json::Value = serde_json::from_str(out)
        .unwrap_or_else(|e| panic!("tandemctl leases --json is not JSON ({e}): {out}"));
    let list = v
        .as_array()
        .or_else(|| v.get("leases").and_then(|l| l.as_array()))
        .unwrap_or_else(|| panic!("tandemctl leases --json: expected a list: {out}"));
    list.iter()
        .map(|l| {
            let s = |k: &str| l.get(k).and_then(|v| v.as_str()).map(str::to_owned);
            Lease {
                address: s("address")
                    .and_then(|a| a.parse().ok())
                    .unwrap_or_else(|| panic!("lease without address: {l}")),
                state: s("state").unwrap_or_default().to_ascii_lowercase(),
                chaddr: s("chaddr").unwrap_or_default().to_ascii_lowercase(),
                client_id: s("client_id")
                    .filter(|c| !c.is_empty())
                    .map(|c| c.replace(':', "").to_ascii_lowercase()),
                ends: l.get("ends").and_then(|e| e.as_u64()).unwrap_or(0),
            }
        })
        .collect()
}

impl ServerSpec {
    /// The direct layout's server: [`DIRECT_PREFIX`](super::net::DIRECT_PREFIX), pool
    /// `10.77.1.0-10.77.255.254` (the clients' static addresses `10.77.0.x` stay outside).
    pub fn direct(net: &super::net::TestNet, lease_time: Duration) -> Self {
        Self {
            interfaces: vec![net.server.iface.clone()],
            server_id: super::net::DIRECT_SERVER,
            subnets: vec![SubnetSpec {
                prefix: super::net::DIRECT_PREFIX.to_owned(),
                pool: (Ipv4Addr::new(10, 77, 1, 0), Ipv4Addr::new(10, 77, 255, 254)),
                router: Some(super::net::DIRECT_SERVER),
            }],
            lease_time,
            datapath: "packet",
            user: None,
        }
    }

    /// The relay layout's server: the relayed subnet
    /// [`RELAYED_PREFIX`](super::net::RELAYED_PREFIX) plus a decoy subnet no relay uses, so a
    /// lease from the right one proves the giaddr selected it.
    pub fn relayed(net: &super::net::TestNet, lease_time: Duration) -> Self {
        Self {
            interfaces: vec![net.server.iface.clone()],
            server_id: super::net::RELAY_LINK_SERVER,
            subnets: vec![
                SubnetSpec {
                    prefix: "10.80.0.0/24".to_owned(),
                    pool: (Ipv4Addr::new(10, 80, 0, 100), Ipv4Addr::new(10, 80, 0, 200)),
                    router: Some(Ipv4Addr::new(10, 80, 0, 1)),
                },
                SubnetSpec {
                    prefix: super::net::RELAYED_PREFIX.to_owned(),
                    pool: (Ipv4Addr::new(10, 78, 0, 100), Ipv4Addr::new(10, 78, 0, 200)),
                    router: Some(super::net::RELAY_GIADDR),
                },
            ],
            lease_time,
            datapath: "packet",
            user: None,
        }
    }
}

/// A server's temp dir (config, logs, and its data unless the test puts them elsewhere).
fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("tdm-e2e-srv-")
        .tempdir()
        .expect("create the server's temp dir")
}

/// Runs omshell in `ns` against ISC dhcpd's OMAPI port 7911: the operator's partner-down of
/// failover peer `name`. Returns omshell's output.
pub fn isc_partner_down(ns: &Ns, name: &str) -> String {
    use std::io::Write;
    let mut cmd = ns.command("omshell");
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("run omshell");
    let script = format!(
        "server 127.0.0.1\nport 7911\nconnect\nnew failover-state\nset name = \"{name}\"\nopen\nset local-state = 4\nupdate\n"
    );
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write to omshell");
    let out = child.wait_with_output().expect("omshell");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Unix seconds of an ISC lease-file time, `W YYYY/MM/DD HH:MM:SS` (UTC) or `epoch N`.
fn isc_time(v: &str) -> Option<u64> {
    let parts: Vec<&str> = v.split_whitespace().collect();
    if let ["epoch", n, ..] = parts.as_slice() {
        return n.parse().ok();
    }
    let [_, date, time, ..] = parts.as_slice() else {
        return None;
    };
    let d: Vec<i64> = date.split('/').filter_map(|x| x.parse().ok()).collect();
    let t: Vec<i64> = time.split(':').filter_map(|x| x.parse().ok()).collect();
    let ([y, m, day], [hh, mm, ss]) = (d.as_slice(), t.as_slice()) else {
        return None;
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if *m <= 2 { y - 1 } else { *y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

/// Every lease in an ISC dhcpd lease file, the last entry of each address winning (as in
/// dhcpd). `client_id` is not read (the ACK checker matches ISC's leases by hardware address).
pub fn read_isc_leases(path: &Path) -> Vec<Lease> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut by_addr: std::collections::BTreeMap<Ipv4Addr, Lease> = Default::default();
    let mut rest = text.as_str();
    while let Some(at) = rest
        .find("\nlease ")
        .or_else(|| rest.starts_with("lease ").then_some(0))
    {
        let from = &rest[at..].trim_start_matches('\n');
        let end = from.find("\n}").map_or(from.len(), |e| e + 2);
        let block = &from[..end];
        rest = &from[end..];
        let Some(addr) = block
            .strip_prefix("lease ")
            .and_then(|b| b.split_whitespace().next())
            .and_then(|a| a.parse::<Ipv4Addr>().ok())
        else {
            continue;
        };
        let field = |key: &str| {
            block
                .lines()
                .find_map(|l| l.trim().strip_prefix(key))
                .map(|v| v.trim_end_matches(';').trim().to_owned())
        };
        by_addr.insert(
            addr,
            Lease {
                address: addr,
                state: field("binding state ").unwrap_or_default(),
                chaddr: field("hardware ethernet ").unwrap_or_default(),
                client_id: None,
                ends: field("ends ")
                    .and_then(|e| isc_time(&e))
                    .unwrap_or(u64::MAX),
            },
        );
    }
    by_addr.into_values().collect()
}

/// libfaketime (the campaign's skewed clocks) keeps a shared-memory segment and a semaphore
/// named after the process, which only a clean exit removes: after a kill, or an abort, they
/// are removed here (nothing happens for a process that never loaded it).
fn remove_faketime_shm(pid: u32) {
    for name in [
        format!("faketime_shm_{pid}"),
        format!("sem.faketime_sem_{pid}"),
    ] {
        let _ = std::fs::remove_file(Path::new("/dev/shm").join(name));
    }
}
