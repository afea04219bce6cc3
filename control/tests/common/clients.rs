//! Drivers for real DHCP clients run inside a client namespace: ISC dhclient, busybox udhcpc,
//! dhcpcd, Kea's perfdhcp, and scapy (raw frames: INIT-REBOOT by hand, malformed frames).
//!
//! Each client gets its own temp dir (lease file, pid file, config, event log) and a hook
//! script that appends one line per event (`event=BOUND ip=… lease=… server=…`) which the
//! driver reads back as a typed [`ClientLease`]. Failures come back as [`ClientError`] carrying
//! the client's own output.

use std::{
    collections::BTreeMap,
    fmt,
    net::Ipv4Addr,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Child, ExitStatus},
    time::Duration,
};

use super::net::{Endpoint, Ns};

/// A lease as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientLease {
    /// The hook event that reported it (`BOUND`, `RENEW`, `REBOOT`, `bound`, `renew`, ...).
    pub event: String,
    /// The address obtained.
    pub address: Ipv4Addr,
    /// Option 51, seconds.
    pub lease_time: Option<u32>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
}

/// A client that did not do what was asked, with what it printed.
#[derive(Debug)]
pub struct ClientError {
    /// What was asked.
    pub what: String,
    /// The client's output (and event log).
    pub output: String,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\n--- client output ---\n{}", self.what, self.output)
    }
}

impl std::error::Error for ClientError {}

/// One line of a hook script's event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `reason` (dhclient, dhcpcd) or `$1` (udhcpc).
    pub event: String,
    /// `key=value` pairs: `ip`, `lease`, `server`, `old`.
    pub fields: BTreeMap<String, String>,
}

impl Event {
    fn lease(&self) -> Option<ClientLease> {
        Some(ClientLease {
            event: self.event.clone(),
            address: self.fields.get("ip")?.parse().ok()?,
            lease_time: self.fields.get("lease").and_then(|l| l.parse().ok()),
            server_id: self.fields.get("server").and_then(|s| s.parse().ok()),
        })
    }
}

/// Events that report a binding, for every client's spelling.
const BINDING_EVENTS: &[&str] = &["BOUND", "RENEW", "REBIND", "REBOOT", "bound", "renew"];

/// The per-client temp dir with its hook script and event log.
struct Workdir {
    dir: tempfile::TempDir,
    events: PathBuf,
    script: PathBuf,
}

impl Workdir {
    /// `manage`: the script configures the address itself (dhclient, udhcpc); dhcpcd does it
    /// on its own.
    fn new(tag: &str, manage: bool) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("tdm-e2e-{tag}-"))
            .tempdir()
            .expect("create a client temp dir");
        let events = dir.path().join("events");
        let script = dir.path().join("hook.sh");
        let body = format!(
            r#"#!/bin/sh
# Hook for dhclient (-sf), dhcpcd (-c) and udhcpc (-s): log the event, configure if asked.
ev="${{reason:-$1}}"
addr="${{new_ip_address:-$ip}}"
mask="${{new_subnet_mask:-${{subnet:-255.255.255.255}}}}"
lt="${{new_dhcp_lease_time:-$lease}}"
sid="${{new_dhcp_server_identifier:-$serverid}}"
if [ "{manage}" = "true" ]; then
  case "$ev" in
    PREINIT) ip link set dev "$interface" up ;;
    BOUND|RENEW|REBIND|REBOOT|bound|renew)
      [ -n "$addr" ] && ip addr replace "$addr/$mask" dev "$interface" ;;
    EXPIRE|RELEASE|STOP|FAIL)
      [ -n "$old_ip_address" ] && ip addr del "$old_ip_address/${{old_subnet_mask:-32}}" dev "$interface" ;;
  esac
fi
echo "event=$ev ip=$addr lease=$lt server=$sid old=$old_ip_address" >> "{events}"
exit 0
"#,
            events = events.display()
        );
        std::fs::write(&script, body).expect("write the hook script");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .expect("make the hook script executable");
        Self {
            dir,
            events,
            script,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn events(&self) -> Vec<Event> {
        std::fs::read_to_string(&self.events)
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let mut fields = BTreeMap::new();
                for kv in line.split_whitespace() {
                    if let Some((k, v)) = kv.split_once('=')
                        && !v.is_empty()
                    {
                        fields.insert(k.to_owned(), v.to_owned());
                    }
                }
                Event {
                    event: fields.remove("event").unwrap_or_default(),
                    fields,
                }
            })
            .collect()
    }

    /// Waits for an event past the first `after` ones that matches `names`.
    fn wait_event(&self, after: usize, names: &[&str], timeout: Duration) -> Option<Event> {
        super::try_wait_until(timeout, || {
            self.events()
                .into_iter()
                .skip(after)
                .find(|e| names.contains(&e.event.as_str()))
        })
    }

    /// Everything worth showing when a client fails: the logs in its dir and the events.
    fn output(&self) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "log") || p == self.events {
                    out.push_str(&format!(
                        "== {} ==\n{}\n",
                        p.display(),
                        std::fs::read_to_string(&p).unwrap_or_default()
                    ));
                }
            }
        }
        out
    }

    fn error(&self, what: impl Into<String>) -> ClientError {
        ClientError {
            what: what.into(),
            output: self.output(),
        }
    }

    fn lease_after(
        &self,
        after: usize,
        names: &[&str],
        timeout: Duration,
        what: &str,
    ) -> Result<ClientLease, ClientError> {
        let ev = self
            .wait_event(after, names, timeout)
            .ok_or_else(|| self.error(format!("{what}: no {names:?} event within {timeout:?}")))?;
        ev.lease()
            .ok_or_else(|| self.error(format!("{what}: event without an address: {ev:?}")))
    }
}

/// Runs `args` in `ns` with output to `log`, waiting at most `timeout` for it to exit.
/// For clients that daemonise: the parent exits, the daemon keeps the log file, not a pipe.
fn run_bounded(ns: &Ns, args: &[&str], log: &Path, timeout: Duration) -> Option<ExitStatus> {
    let mut child = ns.spawn(args, log);
    let status = super::wait_exit(&mut child, timeout);
    if status.is_none() {
        super::reap(&mut child);
    }
    status
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// ISC dhclient with its own lease file, pid file, config and `-sf` hook.
pub struct Dhclient {
    ep: Endpoint,
    work: Workdir,
    runs: u32,
}

impl Dhclient {
    /// A dhclient for the client at `ep` (nothing runs yet).
    pub fn new(ep: &Endpoint) -> Self {
        let work = Workdir::new("dhclient", true);
        std::fs::write(
            work.path("dhclient.conf"),
            "timeout 60;\nretry 1;\ninitial-interval 1;\nbackoff-cutoff 2;\nreboot 20;\n\
             request subnet-mask, routers, dhcp-lease-time, dhcp-server-identifier;\n",
        )
        .expect("write dhclient.conf");
        Self {
            ep: ep.clone(),
            work,
            runs: 0,
        }
    }

    fn args(&self, extra: &[&str]) -> Vec<String> {
        let p = |n: &str| self.work.path(n).to_string_lossy().into_owned();
        let mut a = vec![
            "dhclient".to_owned(),
            "-4".into(),
            "-v".into(),
            "-lf".into(),
            p("dhclient.leases"),
            "-pf".into(),
            p("dhclient.pid"),
            "-cf".into(),
            p("dhclient.conf"),
            "-sf".into(),
            self.work.script.to_string_lossy().into_owned(),
        ];
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        a.push(self.ep.iface.clone());
        a
    }

    fn run(&mut self, extra: &[&str], timeout: Duration) -> Option<ExitStatus> {
        self.runs += 1;
        let args = self.args(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let log = self.work.path(&format!("run-{}.log", self.runs));
        run_bounded(&self.ep.ns, &args, &log, timeout)
    }

    /// `dhclient -1`: obtain a lease (DORA, or INIT-REBOOT if the lease file has one), then
    /// stay running in the background to renew it. Returns the binding it reported.
    pub fn obtain(&mut self) -> Result<ClientLease, ClientError> {
        let before = self.work.events().len();
        match self.run(&["-1"], Duration::from_secs(90)) {
            Some(s) if s.success() => {}
            other => {
                return Err(self
                    .work
                    .error(format!("dhclient -1 exited with {other:?}")));
            }
        }
        self.work.lease_after(
            before,
            BINDING_EVENTS,
            Duration::from_secs(2),
            "dhclient -1",
        )
    }

    /// Waits for the running dhclient to renew on its own (T1 of a short lease).
    pub fn wait_renew(&self, timeout: Duration) -> Result<ClientLease, ClientError> {
        let before = self.work.events().len();
        self.work
            .lease_after(before, &["RENEW"], timeout, "dhclient renew at T1")
    }

    /// `dhclient -r`: release the lease (stops the running instance).
    pub fn release(&mut self) -> Result<(), ClientError> {
        let before = self.work.events().len();
        match self.run(&["-r"], Duration::from_secs(45)) {
            Some(s) if s.success() => {}
            other => {
                return Err(self
                    .work
                    .error(format!("dhclient -r exited with {other:?}")));
            }
        }
        self.work
            .wait_event(before, &["RELEASE"], Duration::from_secs(2))
            .map(|_| ())
            .ok_or_else(|| self.work.error("dhclient -r: no RELEASE event"))
    }

    /// Kills the running dhclient without a release (`kill -9`), keeping its lease file, so
    /// the next [`Dhclient::obtain`] does INIT-REBOOT.
    pub fn stop(&mut self) {
        if let Some(pid) = read_pid(&self.work.path("dhclient.pid")) {
            super::signal(pid, "KILL");
            let _ = super::try_wait_until(Duration::from_secs(3), || {
                (!super::pid_alive(pid)).then_some(())
            });
        }
    }

    /// The pid of the background dhclient, while it runs.
    pub fn pid(&self) -> Option<u32> {
        read_pid(&self.work.path("dhclient.pid")).filter(|p| super::pid_alive(*p))
    }

    /// Every hook event so far.
    pub fn events(&self) -> Vec<Event> {
        self.work.events()
    }
}

impl Drop for Dhclient {
    fn drop(&mut self) {
        self.stop();
    }
}

/// busybox udhcpc, in the foreground, with its hook script.
pub struct Udhcpc {
    ep: Endpoint,
    work: Workdir,
    child: Option<Child>,
}

impl Udhcpc {
    /// A udhcpc for the client at `ep` (nothing runs yet).
    pub fn new(ep: &Endpoint) -> Self {
        Self {
            ep: ep.clone(),
            work: Workdir::new("udhcpc", true),
            child: None,
        }
    }

    fn base_args(&self) -> Vec<String> {
        vec![
            "udhcpc".into(),
            "-f".into(),
            "-i".into(),
            self.ep.iface.clone(),
            "-s".into(),
            self.work.script.to_string_lossy().into_owned(),
            "-t".into(),
            "10".into(),
            "-T".into(),
            "3".into(),
            "-n".into(),
        ]
    }

    /// `udhcpc -n -q -f`: obtain a lease and exit.
    pub fn obtain_once(&mut self) -> Result<ClientLease, ClientError> {
        let before = self.work.events().len();
        let mut args = self.base_args();
        args.push("-q".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let status = run_bounded(
            &self.ep.ns,
            &args,
            &self.work.path("once.log"),
            Duration::from_secs(60),
        );
        if !status.is_some_and(|s| s.success()) {
            return Err(self.work.error(format!("udhcpc -q exited with {status:?}")));
        }
        self.work
            .lease_after(before, &["bound"], Duration::from_secs(1), "udhcpc -q")
    }

    /// Starts udhcpc in the foreground and waits until it is bound; it keeps running so it can
    /// be told to renew ([`Udhcpc::renew`]) and release ([`Udhcpc::release`]).
    pub fn start(&mut self) -> Result<ClientLease, ClientError> {
        assert!(self.child.is_none(), "udhcpc already running");
        let before = self.work.events().len();
        let args = self.base_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.child = Some(self.ep.ns.spawn(&args, &self.work.path("udhcpc.log")));
        self.work
            .lease_after(before, &["bound"], Duration::from_secs(60), "udhcpc start")
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("udhcpc not running").id()
    }

    /// SIGUSR1: renew now (a unicast REQUEST to the server); returns the renewed binding.
    pub fn renew(&mut self) -> Result<ClientLease, ClientError> {
        let before = self.work.events().len();
        super::signal(self.pid(), "USR1");
        self.work.lease_after(
            before,
            &["renew", "bound"],
            Duration::from_secs(30),
            "udhcpc SIGUSR1",
        )
    }

    /// SIGUSR2: release the lease (udhcpc then deconfigures and idles); then stop it.
    pub fn release(&mut self) -> Result<(), ClientError> {
        let before = self.work.events().len();
        super::signal(self.pid(), "USR2");
        let ev = self
            .work
            .wait_event(before, &["deconfig"], Duration::from_secs(30));
        self.stop();
        ev.map(|_| ())
            .ok_or_else(|| self.work.error("udhcpc SIGUSR2: no deconfig event"))
    }

    /// Kills the running udhcpc.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            super::reap(&mut child);
        }
    }
}

impl Drop for Udhcpc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// dhcpcd, in the foreground, in a private mount namespace whose `/run` and `/var/lib/dhcpcd`
/// are this client's temp dirs (so it never touches the host's leases or control sockets);
/// `-n`/`-k` reach it through `nsenter` into that namespace.
pub struct Dhcpcd {
    ep: Endpoint,
    work: Workdir,
    child: Option<Child>,
}

impl Dhcpcd {
    /// A dhcpcd for the client at `ep` (nothing runs yet).
    pub fn new(ep: &Endpoint) -> Self {
        let work = Workdir::new("dhcpcd", false);
        std::fs::create_dir_all(work.path("run")).expect("create dhcpcd run dir");
        std::fs::create_dir_all(work.path("db")).expect("create dhcpcd db dir");
        std::fs::write(
            work.path("dhcpcd.conf"),
            "noipv4ll\nnoarp\nnoipv6\nnoipv6rs\nnohook resolv.conf, timesyncd, hostname, ntp\n\
             option subnet_mask, routers, dhcp_lease_time, dhcp_server_identifier\n",
        )
        .expect("write dhcpcd.conf");
        Self {
            ep: ep.clone(),
            work,
            child: None,
        }
    }

    /// Starts dhcpcd and waits for its first binding; it keeps running to renew.
    pub fn start(&mut self) -> Result<ClientLease, ClientError> {
        assert!(self.child.is_none(), "dhcpcd already running");
        let before = self.work.events().len();
        let p = |n: &str| self.work.path(n).to_string_lossy().into_owned();
        let shell = format!(
            "mount --bind {run} /run && mount --bind {db} /var/lib/dhcpcd && \
             exec dhcpcd -4 -B -f {conf} -c {script} -t 60 {iface}",
            run = p("run"),
            db = p("db"),
            conf = p("dhcpcd.conf"),
            script = self.work.script.display(),
            iface = self.ep.iface,
        );
        let args = [
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            &shell,
        ];
        self.child = Some(self.ep.ns.spawn(&args, &self.work.path("dhcpcd.log")));
        self.work.lease_after(
            before,
            BINDING_EVENTS,
            Duration::from_secs(65),
            "dhcpcd start",
        )
    }

    /// Runs `dhcpcd ARGS` inside the running dhcpcd's namespaces (its control socket).
    fn control(&self, args: &[&str]) -> Result<(), ClientError> {
        let pid = self
            .child
            .as_ref()
            .expect("dhcpcd not running")
            .id()
            .to_string();
        let mut full = vec!["nsenter", "-t", &pid, "-m", "-n", "dhcpcd", "-4"];
        full.extend_from_slice(args);
        full.push(&self.ep.iface);
        let out = self.ep.ns.exec(&full);
        if out.status.success() {
            Ok(())
        } else {
            Err(self.work.error(format!(
                "{full:?} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }

    /// `dhcpcd -n`: rebind now; returns the binding it reported.
    pub fn renew(&mut self) -> Result<ClientLease, ClientError> {
        let before = self.work.events().len();
        self.control(&["-n"])?;
        self.work
            .lease_after(before, BINDING_EVENTS, Duration::from_secs(45), "dhcpcd -n")
    }

    /// `dhcpcd -k`: release the lease; dhcpcd then exits (its hook reports `STOP`; the RELEASE
    /// itself is checked on the wire).
    pub fn release(&mut self) -> Result<(), ClientError> {
        let before = self.work.events().len();
        self.control(&["-k"])?;
        let ev = self
            .work
            .wait_event(before, &["RELEASE", "STOP"], Duration::from_secs(30));
        self.stop();
        ev.map(|_| ())
            .ok_or_else(|| self.work.error("dhcpcd -k: no RELEASE event"))
    }

    /// Kills dhcpcd (every process of it lives in the test's namespace, so `TestNet` also
    /// reaps any helper it forked).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            super::reap(&mut child);
        }
    }
}

impl Drop for Dhcpcd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// perfdhcp's summary.
#[derive(Debug, Clone, Default)]
pub struct PerfReport {
    /// Per exchange (`DISCOVER-OFFER`, `REQUEST-ACK`): packets sent.
    pub sent: BTreeMap<String, u64>,
    /// Per exchange: packets received.
    pub received: BTreeMap<String, u64>,
    /// Per exchange: drops (sent with no answer within the drop time).
    pub drops: BTreeMap<String, u64>,
    /// `Rate:` line, exchanges per second.
    pub rate: Option<f64>,
    /// The whole output.
    pub output: String,
}

impl PerfReport {
    /// Drops summed over exchanges.
    pub fn total_drops(&self) -> u64 {
        self.drops.values().sum()
    }

    /// Completed exchanges (ACKs received).
    pub fn acks(&self) -> u64 {
        self.received.get("REQUEST-ACK").copied().unwrap_or(0)
    }

    /// Parses perfdhcp's text report (the `***Statistics for: X***` sections).
    pub fn parse(output: &str) -> Self {
        let mut r = Self {
            output: output.to_owned(),
            ..Self::default()
        };
        let mut section = String::new();
        for line in output.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("***Statistics for:") {
                section = rest.trim().trim_end_matches('*').trim().to_owned();
                continue;
            }
            let num = |prefix: &str| {
                line.strip_prefix(prefix)
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|v| v.parse::<u64>().ok())
            };
            if let Some(v) = num("sent packets:") {
                r.sent.insert(section.clone(), v);
            } else if let Some(v) = num("received packets:") {
                r.received.insert(section.clone(), v);
            } else if let Some(v) = num("drops:") {
                r.drops.insert(section.clone(), v);
            } else if let Some(rest) = line.strip_prefix("Rate:") {
                r.rate = rest
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<f64>().ok());
            }
        }
        r
    }
}

/// How perfdhcp reaches the server.
#[derive(Debug, Clone)]
pub enum PerfTarget {
    /// Broadcast on `iface` from a client namespace, as clients on the server's link do.
    Broadcast {
        /// The client interface.
        iface: String,
    },
    /// Unicast from `local` (port 67) to `server`: perfdhcp acts as a relay, `giaddr = local`.
    Relay {
        /// The relay's address (giaddr).
        local: Ipv4Addr,
        /// The server's address.
        server: Ipv4Addr,
    },
}

/// A perfdhcp run; build with [`Perfdhcp::new`], add arguments, then [`Perfdhcp::run`] or
/// [`Perfdhcp::spawn`].
pub struct Perfdhcp {
    ns: Ns,
    args: Vec<String>,
    dir: tempfile::TempDir,
}

impl Perfdhcp {
    /// perfdhcp in `ns` toward `target`.
    pub fn new(ns: &Ns, target: &PerfTarget) -> Self {
        // -W: after the last exchange starts, wait 1 s for its answers instead of counting
        // them as drops.
        let mut args = vec![
            "perfdhcp".to_owned(),
            "-4".to_owned(),
            "-W".into(),
            "1000000".into(),
        ];
        match target {
            PerfTarget::Broadcast { iface } => args.extend(["-l".into(), iface.clone()]),
            PerfTarget::Relay { local, server } => {
                args.extend(["-l".into(), local.to_string()]);
                // The server address goes last; remember it.
                args.push(format!("@{server}"));
            }
        }
        Self {
            ns: ns.clone(),
            args,
            dir: tempfile::Builder::new()
                .prefix("tdm-e2e-perf-")
                .tempdir()
                .expect("create perfdhcp temp dir"),
        }
    }

    /// Adds raw perfdhcp arguments (`-r 5000`, `-p 10`, `-R 1000`, `-o 82,0104...`).
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    /// How long perfdhcp waits for a reply before it counts the request as dropped, for both
    /// exchanges (`-d` given twice: given once it sets DISCOVER-OFFER's only, and REQUEST-ACK
    /// keeps the 1 s default).
    pub fn drop_time(self, secs: u32) -> Self {
        let secs = secs.to_string();
        self.arg("-d").arg(secs.clone()).arg("-d").arg(secs)
    }

    fn argv(&self) -> Vec<String> {
        let mut argv: Vec<String> = self
            .args
            .iter()
            .filter(|a| !a.starts_with('@'))
            .cloned()
            .collect();
        argv.extend(
            self.args
                .iter()
                .filter_map(|a| a.strip_prefix('@').map(str::to_owned)),
        );
        argv
    }

    /// Starts it in the background.
    pub fn spawn(self) -> PerfRun {
        let argv = self.argv();
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let log = self.dir.path().join("perfdhcp.log");
        let child = self.ns.spawn(&argv, &log);
        PerfRun {
            child,
            log,
            _dir: self.dir,
        }
    }

    /// Runs it to the end (at most `timeout`) and parses the report.
    pub fn run(self, timeout: Duration) -> Result<PerfReport, ClientError> {
        self.spawn().wait(timeout)
    }
}

/// A perfdhcp running in the background.
pub struct PerfRun {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl PerfRun {
    /// Waits for it to finish (at most `timeout`) and parses its report. perfdhcp exits 3 when
    /// it saw drops; that is still a report, and the caller asserts on the drops.
    pub fn wait(mut self, timeout: Duration) -> Result<PerfReport, ClientError> {
        let status = super::wait_exit(&mut self.child, timeout);
        let output = std::fs::read_to_string(&self.log).unwrap_or_default();
        match status {
            None => {
                super::reap(&mut self.child);
                Err(ClientError {
                    what: format!("perfdhcp still running after {timeout:?}"),
                    output,
                })
            }
            Some(s) if s.success() || s.code() == Some(3) => {
                let report = PerfReport::parse(&output);
                if report.sent.is_empty() {
                    Err(ClientError {
                        what: "perfdhcp printed no statistics".into(),
                        output,
                    })
                } else {
                    Ok(report)
                }
            }
            Some(s) => Err(ClientError {
                what: format!("perfdhcp exited with {s}"),
                output,
            }),
        }
    }
}

impl Drop for PerfRun {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            super::reap(&mut self.child);
        }
    }
}

/// The scapy helper (`scapy_dhcp.py`), written to a temp dir and run with Debian's python3.
pub struct Scapy {
    dir: tempfile::TempDir,
}

/// One kind of malformed frame scapy sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// `truncated_bootp`, `hlen_over_16`, ..., `garbage_burst`.
    pub kind: String,
    /// Its xid, unique per kind (none for the random burst).
    pub xid: Option<u32>,
}

/// The reply scapy saw to one INIT-REBOOT REQUEST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebootReply {
    /// The client's chaddr.
    pub chaddr: String,
    /// `ack`, `nak` or `none`.
    pub reply: String,
    /// yiaddr of the reply.
    pub yiaddr: Option<Ipv4Addr>,
}

impl Scapy {
    /// Writes the helper script.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tdm-e2e-scapy-")
            .tempdir()
            .expect("create the scapy temp dir");
        std::fs::write(
            dir.path().join("scapy_dhcp.py"),
            include_str!("scapy_dhcp.py"),
        )
        .expect("write scapy_dhcp.py");
        Self { dir }
    }

    fn run(&self, ep: &Endpoint, args: &[&str], timeout: Duration) -> Result<String, ClientError> {
        let script = self.dir.path().join("scapy_dhcp.py");
        let script = script.to_string_lossy();
        let mut full = vec![super::PYTHON, &*script];
        full.extend_from_slice(args);
        let log = self.dir.path().join("scapy.log");
        let status = run_bounded(&ep.ns, &full, &log, timeout);
        let output = std::fs::read_to_string(&log).unwrap_or_default();
        if status.is_some_and(|s| s.success()) {
            Ok(output)
        } else {
            Err(ClientError {
                what: format!("scapy {args:?} exited with {status:?}"),
                output,
            })
        }
    }

    /// Sends every malformed frame kind once, then `burst` random garbage frames, from `ep`
    /// (with `ep.mac` as source and chaddr) toward the server. Returns what was sent.
    pub fn malformed(&self, ep: &Endpoint, burst: u32) -> Result<Vec<Malformed>, ClientError> {
        let out = self.run(
            ep,
            &["malformed", &ep.iface, &ep.mac, &burst.to_string()],
            Duration::from_secs(60),
        )?;
        Ok(out
            .lines()
            .filter_map(|l| l.strip_prefix("sent "))
            .map(|l| {
                let mut f = l.split_whitespace();
                Malformed {
                    kind: f.next().unwrap_or_default().to_owned(),
                    xid: f
                        .next()
                        .and_then(|x| u32::from_str_radix(x.trim_start_matches("0x"), 16).ok()),
                }
            })
            .collect())
    }

    /// One DORA per chaddr in `macs`, one after another, from `ep`'s link: DISCOVER (retried),
    /// then the REQUEST of the offer, sent once. Returns each REQUEST's reply (`ack`, `nak`,
    /// `none`; `no-offer` when no OFFER came, and then no REQUEST was sent).
    pub fn dora(&self, ep: &Endpoint, macs: &[String]) -> Result<Vec<RebootReply>, ClientError> {
        self.exchanges("dora", ep, macs)
    }

    /// [`Scapy::dora`], and each client whose REQUEST was ACKed then DECLINEs the address
    /// (reply `declined`): a client that found it in use, or one starving the pool (#13).
    pub fn dora_decline(
        &self,
        ep: &Endpoint,
        macs: &[String],
    ) -> Result<Vec<RebootReply>, ClientError> {
        self.exchanges("decline", ep, macs)
    }

    fn exchanges(
        &self,
        mode: &str,
        ep: &Endpoint,
        macs: &[String],
    ) -> Result<Vec<RebootReply>, ClientError> {
        let mut args = vec![mode, &ep.iface];
        args.extend(macs.iter().map(String::as_str));
        let out = self.run(ep, &args, Duration::from_secs(60 + 20 * macs.len() as u64))?;
        Ok(out
            .lines()
            .filter_map(|l| l.strip_prefix("reply "))
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                Some(RebootReply {
                    chaddr: f.next()?.to_owned(),
                    reply: f.next()?.to_owned(),
                    yiaddr: f.next().and_then(|a| a.parse().ok()),
                })
            })
            .collect())
    }

    /// INIT-REBOOT (RFC 2131 §4.3.2): for each `(chaddr, client-id hex, address)`, a broadcast
    /// REQUEST with option 50 and no server id from `ep`'s link; returns each reply.
    pub fn init_reboot(
        &self,
        ep: &Endpoint,
        clients: &[(String, Option<String>, Ipv4Addr)],
    ) -> Result<Vec<RebootReply>, ClientError> {
        let specs: Vec<String> = clients
            .iter()
            .map(|(mac, cid, addr)| format!("{mac}/{}/{addr}", cid.as_deref().unwrap_or("-")))
            .collect();
        let mut args = vec!["init-reboot", &ep.iface];
        args.extend(specs.iter().map(String::as_str));
        let out = self.run(
            ep,
            &args,
            Duration::from_secs(60 + 30 * clients.len() as u64),
        )?;
        Ok(out
            .lines()
            .filter_map(|l| l.strip_prefix("reply "))
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                Some(RebootReply {
                    chaddr: f.next()?.to_owned(),
                    reply: f.next()?.to_owned(),
                    yiaddr: f.next().and_then(|a| a.parse().ok()),
                })
            })
            .collect())
    }
}
