//! The real `tandemd` (front end: config, logging, admin API, signals, a failover relationship) answering
//! the real `tandemctl`, and stopping cleanly on SIGTERM and SIGINT.
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Each daemon's failover listener gets its own port: the tests run in parallel on one host.
static PORT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(16470);

struct Daemon {
    child: Option<Child>,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Daemon {
    fn start(extra_server: &str) -> Self {
        Self::start_with(extra_server, |_| {})
    }

    /// [`Daemon::start`], calling `before` with the config's path first.
    fn start_with(extra_server: &str, before: impl FnOnce(&Path)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let config = dir.path().join("tandem.toml");
        std::fs::write(
            &config,
            format!(
                r#"[server]
interfaces = ["lo"]
data_dir = "{}"
datapath = "packet"
{extra_server}

[[subnet]]
prefix = "10.77.0.0/24"
pools = ["10.77.0.10-10.77.0.200"]
failover = "pair"

[[failover]]
name = "pair"
role = "primary"
address = "127.0.0.1"
peer_address = "127.0.0.2"
port = {port}
manage_port = {manage_port}
mclt = "1h"
shared_secret_file = "{secret}"
"#,
                data_dir.display(),
                port = PORT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                // Tests run side by side on the host's loopback: a management port each.
                manage_port = PORT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                secret = {
                    let p = dir.path().join("pair.secret");
                    std::fs::write(&p, "cli daemon test secret").expect("write the secret");
                    p.display().to_string()
                },
            ),
        )
        .expect("write config");
        before(&config);
        let child = Command::new(env!("CARGO_BIN_EXE_tandemd"))
            .arg("--config")
            .arg(&config)
            .env("TANDEM_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tandemd");
        let mut d = Daemon {
            child: Some(child),
            dir,
            config,
        };
        d.wait_for_socket();
        d
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn socket(&self) -> PathBuf {
        self.data_dir().join("tandemd.sock")
    }

    fn wait_for_socket(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(self.socket()).is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .expect("child")
                .try_wait()
                .expect("try_wait")
            {
                let mut err = String::new();
                let _ = self
                    .child
                    .as_mut()
                    .expect("child")
                    .stderr
                    .take()
                    .expect("stderr")
                    .read_to_string(&mut err);
                panic!("tandemd exited early with {status}: {err}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("tandemd did not open {} in 20 s", self.socket().display());
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("child").id()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig}");
    }

    /// Waits (bounded) for exit; returns the exit code and stderr.
    fn wait(&mut self) -> (Option<i32>, String) {
        self.wait_within(Duration::from_secs(20))
    }

    /// Waits at most `timeout` for exit; returns the exit code and stderr.
    fn wait_within(&mut self, timeout: Duration) -> (Option<i32>, String) {
        let mut child = self.child.take().expect("child");
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = child.try_wait().expect("try_wait") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let mut err = String::new();
                let _ = child
                    .stderr
                    .take()
                    .expect("stderr")
                    .read_to_string(&mut err);
                panic!("tandemd did not exit within {timeout:?}; log:\n{err}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        let _ = child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut err);
        (status.code(), err)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn ctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tandemctl"))
        .args(args)
        .output()
        .expect("run tandemctl")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn serves_status_and_stops_on_sigterm() {
    let mut d = Daemon::start("");
    let mode = std::fs::metadata(d.socket()).expect("stat").permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );

    // --data-dir
    let out = ctl(&["--data-dir", s(&d.data_dir()), "status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["datapath"], "packet");
    assert!(v["uptime"].as_u64().expect("uptime") < 60);
    // The relationship runs (its peer never answers: it stays where it started).
    let rel = &v["relationships"][0];
    assert_eq!(rel["name"], "pair", "{v}");
    assert_eq!(rel["role"], "primary", "{v}");
    assert!(
        ["startup", "recover"].contains(&rel["state"].as_str().unwrap_or("")),
        "{v}"
    );
    assert_eq!(rel["partner_state"], "unknown", "{v}");
    let workers = v["workers"].as_array().expect("workers");
    assert!(!workers.is_empty(), "a worker per core on lo: {v}");
    assert!(
        workers
            .iter()
            .all(|w| w["datapath"] == "packet" && w["rx"].is_u64()),
        "{v}"
    );
    assert!(v["leases"]["10.77.0.0/24"].is_object(), "{v}");

    // --config finds the same socket
    let out = ctl(&["--config", s(&d.config), "status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let human = text(&out.stdout);
    assert!(
        human.starts_with(&format!("tandemd {}, up ", env!("CARGO_PKG_VERSION"))),
        "{human}"
    );
    assert!(human.contains("datapath packet"), "{human}");
    assert!(human.lines().any(|l| l.starts_with("pair")), "{human}");
    assert!(human.lines().any(|l| l.starts_with("WORKER")), "{human}");
    assert!(
        human.lines().any(|l| l.starts_with("10.77.0.0/24")),
        "{human}"
    );

    let out = ctl(&["--config", s(&d.config), "leases"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "no leases\n");

    // partner-down: the state machine refuses it outside COMMUNICATIONS-INTERRUPTED.
    let out = ctl(&["--config", s(&d.config), "partner-down", "pair"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("partner-down is only allowed"),
        "{}",
        text(&out.stderr)
    );
    let out = ctl(&[
        "--config",
        s(&d.config),
        "partner-down",
        "other",
        "--since",
        "2025-11-22T04:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "tandemctl: no such relationship \"other\"\n"
    );

    // A second daemon on the same data_dir refuses to start.
    let second = Command::new(env!("CARGO_BIN_EXE_tandemd"))
        .arg("--config")
        .arg(&d.config)
        .output()
        .expect("second tandemd");
    assert_eq!(second.status.code(), Some(1));
    // Refused by the lease store's lock (opened first) or the admin socket check.
    assert!(
        text(&second.stderr).contains("already serving")
            || text(&second.stderr).contains("data directory is in use"),
        "{}",
        text(&second.stderr)
    );
    assert!(
        std::os::unix::net::UnixStream::connect(d.socket()).is_ok(),
        "the first still serves"
    );

    d.signal("TERM");
    let (code, log) = d.wait();
    assert_eq!(code, Some(0), "log:\n{log}");
    assert!(log.contains("tandemd running"), "log:\n{log}");
    assert!(log.contains("SIGTERM"), "log:\n{log}");
    assert!(log.contains("tandemd stopped"), "log:\n{log}");
    assert!(!d.socket().exists(), "socket removed on shutdown");

    let out = ctl(&["--data-dir", s(&d.data_dir()), "status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("(is tandemd running?)"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn tcp_admin_and_sigint() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("probe port")
        .local_addr()
        .expect("addr")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut d = Daemon::start(&format!("admin = \"{addr}\"\nlog_level = \"warn\""));
    let out = ctl(&["--admin", &addr, "status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["datapath"], "packet");
    d.signal("INT");
    let (code, log) = d.wait();
    assert_eq!(code, Some(0), "log:\n{log}");
    // TANDEM_LOG=debug (set by Daemon::start) overrides log_level = "warn".
    assert!(log.contains("tandemd running"), "log:\n{log}");
    assert!(log.contains("SIGINT"), "log:\n{log}");
}

#[test]
fn invalid_config_does_not_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "[server]\ninterfaces = [\"lo\"]\ndatapath = \"warp\"\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_tandemd"))
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "{}:3:12: `datapath` = \"warp\" is not one of \"xdp\", \"packet\", \"auto\"\n",
            config.display()
        )
    );
}

#[test]
fn a_failed_failover_state_write_stops_the_daemon_with_status_1() {
    let mut d = Daemon::start("");
    // The state is written to `failover-pair.state.tmp` and renamed: a directory in its
    // place makes the next write fail (permissions would not stop root).
    std::fs::create_dir(d.data_dir().join("failover-pair.state.tmp")).expect("mkdir");
    // STARTUP ends 15 s after the start, and the move to RECOVER is stored (or fails to be).
    let (code, log) = d.wait_within(Duration::from_secs(90));
    assert_eq!(code, Some(1), "log:\n{log}");
    assert!(
        log.contains("storing the failover state failed")
            && log.contains("failover-pair.state.tmp"),
        "log:\n{log}"
    );
    assert!(
        log.contains("exiting after a durability failure without a checkpoint"),
        "log:\n{log}"
    );
}

/// Flips one bit inside entry `k` of `journal`.
fn flip_entry(journal: &Path, k: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(journal)
        .expect("open journal");
    let at = 512 + 512 * k + 60;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).expect("read");
    f.write_all_at(&[b[0] ^ 0x08], at).expect("write");
}

#[test]
fn a_damaged_journal_refuses_to_start_and_repair_sets_it_aside() {
    use lease_mmap::{BindingState, Durability, Lease, Slot, Store, TableId, UnixTime};
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let config = dir.path().join("tandem.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ninterfaces = [\"lo\"]\ndata_dir = \"{}\"\ndatapath = \"packet\"\n\n\
             [[subnet]]\nprefix = \"10.77.0.0/24\"\npools = [\"10.77.0.10-10.77.0.200\"]\n",
            data_dir.display()
        ),
    )
    .expect("write config");
    // Six leases committed the way a worker does, in two batches (LSNs 1-3, 4-6), then a
    // crash (no close), then a flipped bit in LSN 2: acknowledged, and followed by four.
    let specs = control::serve::engine_config(&control::config::load(&config).expect("config"))
        .table_specs();
    {
        let (store, mut j, _) =
            Store::open(&data_dir, &specs, 1, Durability::Sync).expect("open store");
        let t = store.table(TableId(0));
        for i in 0..6u8 {
            let mut l = Lease {
                state: BindingState::Active,
                ends: UnixTime(UnixTime::now().0 + 3600),
                htype: 1,
                hlen: 6,
                ..Lease::default()
            };
            l.chaddr[..6].copy_from_slice(&[2, 0, 0, 0, 0, i]);
            let slot = Slot(u32::from(i) + 20);
            let v = t.update(slot, 0, &l).expect("update");
            j[0].record(t.id(), slot, v, &l);
            if i % 3 == 2 {
                j[0].commit().expect("commit");
            }
        }
    }
    let journal = data_dir.join("journal-00000.tdj");
    flip_entry(&journal, 1);
    let damaged = std::fs::read(&journal).expect("read journal");

    let tandemd = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tandemd"))
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .expect("run tandemd")
    };
    let out = tandemd(&[]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for want in [
        "journal-00000.tdj",
        "byte 1024",
        "LSN 2",
        "4 intact entries",
        "not a torn tail",
        "tandemd --repair",
    ] {
        assert!(err.contains(want), "{want:?} missing from:\n{err}");
    }

    let out = tandemd(&["--repair"]);
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{report}{}", text(&out.stderr));
    for want in [
        "journal-00000.tdj: entry at byte 1024 (LSN 2) is damaged",
        "damage at byte offset: 1024",
        "entries kept:          5",
        "entries set aside:     1",
        "repaired: 1 journal set aside",
    ] {
        assert!(report.contains(want), "{want:?} missing from:\n{report}");
    }
    let moved = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("set aside as:"))
        .map(|p| PathBuf::from(p.trim()))
        .unwrap_or_else(|| panic!("no 'set aside as' in:\n{report}"));
    assert!(
        moved
            .to_string_lossy()
            .contains("journal-00000.tdj.damaged-"),
        "{report}"
    );
    assert_eq!(std::fs::read(&moved).expect("set-aside file"), damaged);

    // A second repair finds nothing; the daemon starts again.
    let out = tandemd(&["--repair"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).contains("no damaged journal"),
        "{}",
        text(&out.stdout)
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandemd"))
        .arg("--config")
        .arg(&config)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let serving = (0..500).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        ctl(&["--data-dir", s(&data_dir), "status", "--json"])
            .status
            .success()
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(serving, "tandemd did not serve after the repair");
}

#[test]
fn json_logs_are_one_object_a_line() {
    let mut d = Daemon::start("log_format = \"json\"");
    d.signal("TERM");
    let (code, log) = d.wait();
    assert_eq!(code, Some(0), "log:\n{log}");
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l:?}")))
        .collect();
    assert!(events.len() > 3, "log:\n{log}");
    for e in &events {
        for key in ["timestamp", "level", "target", "threadName"] {
            assert!(e[key].is_string(), "no {key}: {e}");
        }
        assert!(e["fields"]["message"].is_string(), "no message: {e}");
    }
    let running = events
        .iter()
        .find(|e| e["fields"]["message"] == "tandemd running")
        .unwrap_or_else(|| panic!("no start line in\n{log}"));
    assert_eq!(running["level"], "INFO");
    assert!(
        events.iter().any(|e| e["fields"]["relationship"] == "pair"
            && e["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("failover_core"))),
        "the failover lines name their relationship as a field:\n{log}"
    );
}

/// Every mode bit of every file and directory under `dir`, `dir` itself included.
fn modes(dir: &Path) -> Vec<(PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = vec![(
        dir.to_owned(),
        std::fs::metadata(dir).expect("stat").permissions().mode() & 0o7777,
    )];
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let e = e.expect("entry");
        let meta = e.metadata().expect("stat");
        if meta.is_dir() {
            out.extend(modes(&e.path()));
        } else {
            out.push((e.path(), meta.permissions().mode() & 0o7777));
        }
    }
    out
}

#[test]
fn data_files_are_private_and_a_data_dir_or_secret_others_can_write_is_refused() {
    let mut d = Daemon::start("");
    // The admin socket answers, the tables, journals, manifest and failover state are there.
    let out = ctl(&["--data-dir", s(&d.data_dir()), "status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    d.signal("TERM");
    assert_eq!(d.wait().0, Some(0));
    let found = modes(&d.data_dir());
    assert!(found.len() >= 4, "{found:?}");
    for (path, mode) in &found {
        let want = if path.is_dir() { 0o750 } else { 0o600 };
        assert_eq!(
            *mode,
            want,
            "{} is {mode:04o}, not {want:04o}",
            path.display()
        );
    }

    let refused = |what: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_tandemd"))
            .arg("--config")
            .arg(&d.config)
            .output()
            .expect("run tandemd");
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert!(
            err.contains(what)
                && err.contains("writable by its group or by everyone")
                && err.contains("refusing to start"),
            "{err}"
        );
    };
    let chmod = |p: &Path, mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    chmod(&d.data_dir(), 0o770);
    refused("data_dir");
    chmod(&d.data_dir(), 0o750);
    let secret = d.dir.path().join("pair.secret");
    chmod(&secret, 0o666);
    refused("shared_secret_file");
}

#[test]
fn started_as_root_with_a_user_it_runs_as_that_user_with_only_the_datapath_capabilities() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let (uid, gid) = dataplane::sys::lookup_user("nobody")
        .expect("getpwnam")
        .expect("a nobody user");
    assert_eq!(
        dataplane::sys::lookup_user("root").expect("getpwnam"),
        Some((0, 0))
    );
    assert_eq!(
        dataplane::sys::lookup_user("no-such-user-here").expect("getpwnam"),
        None
    );

    let dir = tempfile::tempdir().expect("tempdir");
    // The user must be able to reach its data_dir.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let data_dir = dir.path().join("data");
    let config = dir.path().join("tandem.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
interfaces = ["lo"]
data_dir = "{}"
datapath = "packet"
workers = 1
user = "nobody"

[[subnet]]
prefix = "10.77.0.0/24"
pools = ["10.77.0.10-10.77.0.200"]
"#,
            data_dir.display()
        ),
    )
    .expect("write config");
    let mut d = Daemon {
        child: Some(
            Command::new(env!("CARGO_BIN_EXE_tandemd"))
                .arg("--config")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn tandemd"),
        ),
        dir,
        config,
    };
    d.wait_for_socket();
    let out = ctl(&["--data-dir", s(&data_dir), "status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name} in\n{status}"))
            .to_owned()
    };
    let ids = |name: &str| -> Vec<u32> {
        field(name)
            .split_whitespace()
            .map(|v| v.parse().expect("id"))
            .collect()
    };
    assert_eq!(ids("Uid"), vec![uid; 4]);
    assert_eq!(ids("Gid"), vec![gid; 4]);
    assert_eq!(field("Groups"), "");
    let want: u64 = dataplane::sys::KEPT_CAPABILITIES
        .iter()
        .map(|c| 1u64 << c)
        .sum();
    for set in ["CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        let v = u64::from_str_radix(&field(set), 16).expect("hex");
        assert_eq!(v, want, "{set} {v:#x}");
    }
    assert_eq!(field("NoNewPrivs"), "1");
    for e in std::fs::read_dir(&data_dir).expect("data_dir") {
        let e = e.expect("entry");
        assert_eq!(
            e.metadata().expect("stat").uid(),
            uid,
            "{}",
            e.path().display()
        );
    }
    d.signal("TERM");
    let (code, err) = d.wait();
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("gave up root"), "{err}");
}

#[test]
fn leases_are_found_by_the_circuit_id_remote_id_or_host_name_they_were_granted_with() {
    use lease_mmap::{
        BindingState, Durability, Hostname, Lease, RelayInfo, Slot, Store, TableId, UnixTime,
    };
    // Three leases as a worker writes them through a relay: option 82 with circuit-id and
    // remote-id (one binary, one with a comma), and one without option 82.
    let relays: [&[u8]; 3] = [
        b"\x01\x08ge-0/0/1\x02\x06\x00\x1a\x2b\x3c\x4d\x5e",
        b"\x01\x08ge-0/0/2\x02\x05cpe,1",
        b"",
    ];
    let d = Daemon::start_with("", |config| {
        let specs = control::serve::engine_config(&control::config::load(config).expect("config"))
            .table_specs();
        let text = std::fs::read_to_string(config).expect("config");
        let data_dir = text
            .lines()
            .find_map(|l| l.strip_prefix("data_dir = \""))
            .and_then(|l| l.strip_suffix('"'))
            .expect("data_dir");
        let (store, mut j, _) =
            Store::open(Path::new(data_dir), &specs, 1, Durability::Sync).expect("open store");
        let t = store.table(TableId(0));
        for (i, r) in relays.iter().enumerate() {
            let relay = RelayInfo::new(r).expect("fits");
            let mut l = Lease {
                state: BindingState::Active,
                ends: UnixTime(UnixTime::now().0 + 3600),
                htype: 1,
                hlen: 6,
                relay,
                hostname: Hostname::keep(format!("Host-{i}").as_bytes(), &relay),
                ..Lease::default()
            };
            l.chaddr[..6].copy_from_slice(&[2, 0, 0, 0, 0, i as u8]);
            let slot = Slot(20 + i as u32);
            let v = t.update(slot, 0, &l).expect("update");
            j[0].record(t.id(), slot, v, &l);
        }
        j[0].commit().expect("commit");
        store.close(j).expect("close");
    });
    let leases = |args: &[&str]| {
        let out = ctl(&[&["--config", s(&d.config), "leases"], args].concat());
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let human = leases(&[]);
    assert!(human.contains("CIRCUIT-ID"), "{human}");
    assert!(
        human.contains("ge-0/0/1") && human.contains("0x001a2b3c4d5e"),
        "{human}"
    );
    let one = leases(&["--circuit-id", "ge-0/0/1"]);
    assert!(
        one.contains("10.77.0.30") && !one.contains("10.77.0.31"),
        "{one}"
    );
    let one = leases(&["--remote-id", "0x00:1a:2b:3c:4d:5e", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&one).expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v[0]["address"], "10.77.0.30");
    assert_eq!(v[0]["circuit_id"], "ge-0/0/1");
    assert_eq!(v[0]["remote_id"], "0x001a2b3c4d5e");
    let csv = leases(&["--remote-id", "cpe,1", "--csv"]);
    assert_eq!(
        csv.lines().next(),
        Some("address,state,chaddr,client_id,circuit_id,remote_id,hostname,ends")
    );
    assert!(
        csv.contains("10.77.0.31,active,02:00:00:00:00:01,,ge-0/0/2,\"cpe,1\",Host-1,"),
        "{csv}"
    );
    let one = leases(&["--hostname", "host-2"]);
    assert!(
        one.contains("10.77.0.32") && one.contains("Host-2") && !one.contains("10.77.0.31"),
        "{one}"
    );
    assert_eq!(leases(&["--circuit-id", "nowhere"]), "no leases\n");
    let out = ctl(&["--config", s(&d.config), "leases", "--circuit-id", "0xzz"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}
