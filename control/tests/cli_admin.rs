//! The admin API in process, with a test backend that has live-looking data: the protocol's edges
//! (malformed, oversized, pipelined and unknown requests) and the real `tandemctl` rendering it.
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use control::admin::{AdminBackend, AdminServer, CommandError, Limits, MAX_REQUEST};
use control::audit::AuditLog;
use control::config::{FailoverMode, Role};
use control::http::{Access, HttpServer};
use control::status::{
    ConfigCheck, FailoverState, HistogramStatus, LeaseFilter, LeaseInfo, LeaseState,
    PartnerSettingsStatus, RelationshipDetail, RelationshipSettings, RelationshipStatus,
    ScopeLeases, Status, WorkerStatus, XdpStatus,
};
use control::tokens::Tokens;

/// When the partner was last heard from, as the fake backend has it: 2025-11-22T04:30:00Z.
const LAST_HEARD: u64 = 1_763_785_800;

#[derive(Default)]
struct TestBackend {
    partner_down_calls: Mutex<Vec<(String, u64)>>,
    resyncs: Mutex<Vec<String>>,
    reloads: Mutex<u32>,
    last_filter: Mutex<Option<LeaseFilter>>,
}

impl AdminBackend for TestBackend {
    fn status(&self) -> Status {
        Status {
            version: "9.9.9".into(),
            uptime: 3723,
            datapath: "xdp".into(),
            relationships: vec![RelationshipStatus {
                name: "edge-pair".into(),
                role: Role::Primary,
                mode: FailoverMode::LoadBalance,
                state: FailoverState::CommunicationsInterrupted,
                partner_state: FailoverState::RecoverWait,
                state_since: 1_763_784_000,
                unacked_updates: 7,
                updates_sent: 120,
                update_messages: 9,
                updates_refused: 2,
                updates_received: 0,
                resync: None,
                link_up: false,
                link_since: 1_763_784_000,
                last_heard: 1_763_783_990,
                bndupd_rtt_ms: HistogramStatus {
                    bounds: vec![1, 2, 4],
                    counts: vec![100, 15, 4, 1],
                    sum: 180,
                },
                history: Vec::new(),
                mclt: 3600,
                primary_buckets: 128,
                partner_settings: Some(PartnerSettingsStatus {
                    at: 1_763_783_000,
                    mclt: Some(1800),
                    primary_buckets: Some(128),
                    max_unacked_updates: 10,
                    max_response_delay: 60,
                    software: Some("tandem-0.1.0".into()),
                }),
                config_check: ConfigCheck::Differs,
                config_differences: vec!["mclt: ours 3600 s, the partner's 1800 s".into()],
                config_mismatches: 1,
                scopes_check: ConfigCheck::Unknown,
                scope_differences: Vec::new(),
                scopes_checked: 0,
                scopes_check_error: None,
                scope_mismatches: 0,
            }],
            workers: vec![WorkerStatus {
                id: 0,
                datapath: "xdp".into(),
                rx: 1000,
                dispatched: 0,
                tx: 988,
                dropped: BTreeMap::from([("malformed".into(), 4), ("overload".into(), 6)]),
                silent: BTreeMap::from([("released".into(), 2)]),
                ignored: BTreeMap::from([("untrusted-relay-options".into(), 3)]),
                received: BTreeMap::from([("discover".into(), 500), ("request".into(), 490)]),
                sent: BTreeMap::from([("offer".into(), 494), ("ack".into(), 490)]),
                batches: 50,
                busy_ns: 250_000_000,
                batch_frames: HistogramStatus::default(),
                commit_ns: HistogramStatus {
                    bounds: vec![1_000_000, 2_000_000],
                    counts: vec![10, 30, 2],
                    sum: 70_000_000,
                },
                commit_entries: HistogramStatus::default(),
            }],
            leases: BTreeMap::from([(
                "10.0.0.0/16".into(),
                BTreeMap::from([(LeaseState::Active, 12), (LeaseState::Free, 65_000)]),
            )]),
            scope_failover: BTreeMap::from([("10.0.0.0/16".into(), "edge-pair".into())]),
            xdp: vec![XdpStatus {
                interface: "eth7".into(),
                mode: "native".into(),
                pass: 31,
                redirect: 1000,
                no_xsk: 2,
                lb_drop: 977,
                rate_relay: 5,
                rate_circuit: 6,
                rate_mac: 7,
                lb_filter: true,
                rate_limits: BTreeMap::from([("mac".to_owned(), [5, 20])]),
            }],
            leasequery: control::leasequery::Stats::default().status(),
        }
    }

    fn leases(&self, filter: &LeaseFilter) -> Vec<LeaseInfo> {
        *self.last_filter.lock().expect("lock") = Some(filter.clone());
        vec![LeaseInfo {
            address: Ipv4Addr::new(10, 0, 1, 20),
            state: LeaseState::Active,
            chaddr: "02:00:00:00:00:01".into(),
            client_id: Some("01:02:00:00:00:00:01".into()),
            circuit_id: Some("ge-0/0/1".into()),
            remote_id: None,
            hostname: None,
            ends: 1_763_787_600,
        }]
    }

    /// Floors `since` at [`LAST_HEARD`], as the failover state machine does.
    fn partner_down(&self, name: &str, since: u64) -> Result<u64, CommandError> {
        if name == "panic" {
            panic!("backend bug");
        }
        if name != "edge-pair" {
            return Err(CommandError::NoSuchRelationship(name.to_owned()));
        }
        self.partner_down_calls
            .lock()
            .expect("lock")
            .push((name.into(), since));
        Ok(since.max(LAST_HEARD))
    }

    fn replicate(
        &self,
        relationship: Option<&str>,
        scope: Option<&str>,
    ) -> Result<Vec<String>, String> {
        match (relationship, scope) {
            (None | Some("edge-pair"), None | Some("10.0.0.0/16")) => Ok(vec![
                "relationship edge-pair: partner: subnet 10.0.0.0/16: dns".into(),
            ]),
            _ => Err("no such scope".into()),
        }
    }

    fn resync(&self, name: &str) -> Result<(), CommandError> {
        if name != "edge-pair" {
            return Err(CommandError::NoSuchRelationship(name.to_owned()));
        }
        self.resyncs.lock().expect("lock").push(name.to_owned());
        Ok(())
    }

    fn reload(&self) -> Result<Vec<String>, String> {
        *self.reloads.lock().expect("lock") += 1;
        Ok(vec!["subnet 10.77.0.0/16: dns, lease_time".to_owned()])
    }

    /// `edge-pair` with one scope, and `spare`, configured without scopes or a running session.
    fn relationships(&self) -> Vec<RelationshipDetail> {
        let settings = RelationshipSettings {
            role: Role::Primary,
            mode: FailoverMode::LoadBalance,
            address: "10.0.0.1:647".into(),
            partner: "10.0.0.2:647".into(),
            partner_software: "tandem".into(),
            mclt: 3600,
            safe_period: 0,
            load_balance_percent: Some(50),
            split: Some(128),
            reserve_percent: None,
            standby_is: None,
            load_balance_max_seconds: 3,
            max_response_delay: 60,
            max_unacked_updates: 10,
            max_lease_time: None,
            shared_secret: true,
        };
        vec![
            RelationshipDetail {
                name: "edge-pair".into(),
                settings: settings.clone(),
                status: self.status().relationships.into_iter().next(),
                empty: false,
                scopes: vec![ScopeLeases {
                    subnet: "10.0.0.0/16".into(),
                    leases: BTreeMap::from([
                        (LeaseState::Free, 100),
                        (LeaseState::Backup, 20),
                        (LeaseState::Active, 7),
                    ]),
                }],
            },
            RelationshipDetail {
                name: "spare".into(),
                settings: RelationshipSettings {
                    mode: FailoverMode::HotStandby,
                    role: Role::Secondary,
                    load_balance_percent: None,
                    split: None,
                    reserve_percent: Some(5),
                    standby_is: Some("local".into()),
                    ..settings
                },
                status: None,
                empty: true,
                scopes: Vec::new(),
            },
        ]
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    backend: Arc<TestBackend>,
    server: Option<AdminServer>,
}

impl Fixture {
    fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    fn with_limits(limits: Limits) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = Arc::new(TestBackend::default());
        let server = AdminServer::start_with(
            &dir.path().join("tandemd.sock"),
            Some("127.0.0.1:0".parse().expect("addr")),
            backend.clone(),
            limits,
        )
        .expect("admin server");
        Fixture {
            dir,
            backend,
            server: Some(server),
        }
    }

    fn server(&self) -> &AdminServer {
        self.server.as_ref().expect("running")
    }

    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_tandemctl"))
            .arg("--data-dir")
            .arg(self.dir.path())
            .args(args)
            .output()
            .expect("run tandemctl")
    }

    fn connect(&self) -> UnixStream {
        let s = UnixStream::connect(self.server().socket()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn exchange(s: &mut UnixStream, request: &[u8]) -> serde_json::Value {
    s.write_all(request).expect("write");
    let mut line = String::new();
    BufReader::new(&*s).read_line(&mut line).expect("read");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

#[test]
fn socket_is_private() {
    let f = Fixture::new();
    let mode = std::fs::metadata(f.server().socket())
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn status_json_through_tandemctl() {
    let f = Fixture::new();
    let out = f.ctl(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["version"], "9.9.9");
    assert_eq!(v["uptime"], 3723);
    assert_eq!(v["datapath"], "xdp");
    let r = &v["relationships"][0];
    assert_eq!(r["name"], "edge-pair");
    assert_eq!(r["role"], "primary");
    assert_eq!(r["mode"], "load-balance");
    assert_eq!(r["state"], "communications-interrupted");
    assert_eq!(r["partner_state"], "recover-wait");
    assert_eq!(r["state_since"], 1_763_784_000);
    assert_eq!(r["unacked_updates"], 7);
    assert_eq!(r["updates_sent"], 120);
    assert_eq!(r["update_messages"], 9);
    assert_eq!(r["updates_refused"], 2);
    let w = &v["workers"][0];
    assert_eq!(
        (w["id"].as_u64(), w["rx"].as_u64(), w["tx"].as_u64()),
        (Some(0), Some(1000), Some(988))
    );
    assert_eq!(w["datapath"], "xdp");
    assert_eq!(w["dispatched"], 0);
    assert_eq!(w["dropped"]["malformed"], 4);
    assert_eq!(w["dropped"]["overload"], 6);
    assert_eq!(w["silent"]["released"], 2);
    assert_eq!(w["ignored"]["untrusted-relay-options"], 3);
    assert_eq!(v["leases"]["10.0.0.0/16"]["active"], 12);
    assert_eq!(v["leases"]["10.0.0.0/16"]["free"], 65_000);
    let x = &v["xdp"][0];
    assert_eq!(x["interface"], "eth7");
    assert_eq!(x["mode"], "native");
    assert_eq!(
        [
            "pass",
            "redirect",
            "no_xsk",
            "lb_drop",
            "rate_relay",
            "rate_circuit",
            "rate_mac"
        ]
        .map(|k| x[k].as_u64()),
        [
            Some(31),
            Some(1000),
            Some(2),
            Some(977),
            Some(5),
            Some(6),
            Some(7)
        ]
    );
    assert_eq!(x["lb_filter"], true);
}

#[test]
fn status_human_through_tandemctl() {
    let f = Fixture::new();
    let out = f.ctl(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.starts_with("tandemd 9.9.9, up 1h02m03s, datapath xdp\n"),
        "{s}"
    );
    let line_with = |needle: &str| {
        s.lines()
            .find(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("no line starting {needle:?} in\n{s}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        line_with("RELATIONSHIP"),
        [
            "RELATIONSHIP",
            "ROLE",
            "MODE",
            "STATE",
            "PARTNER-STATE",
            "SINCE",
            "UNACKED",
            "SENT",
            "REFUSED"
        ]
    );
    assert_eq!(
        line_with("edge-pair"),
        [
            "edge-pair",
            "primary",
            "load-balance",
            "communications-interrupted",
            "recover-wait",
            "2025-11-22T04:00:00Z",
            "7",
            "120",
            "2"
        ]
    );
    assert_eq!(
        line_with("WORKER"),
        [
            "WORKER",
            "DATAPATH",
            "RX",
            "DISPATCHED",
            "TX",
            "DROPPED",
            "SILENT",
            "IGNORED"
        ]
    );
    assert_eq!(
        line_with("0 "),
        [
            "0",
            "xdp",
            "1000",
            "0",
            "988",
            "10",
            "(malformed",
            "4,",
            "overload",
            "6)",
            "2",
            "(released",
            "2)",
            "3",
            "(untrusted-relay-options",
            "3)"
        ]
    );
    assert_eq!(
        line_with("XDP"),
        [
            "XDP",
            "MODE",
            "PASS",
            "REDIRECT",
            "NO-XSK",
            "RATE-MAC",
            "RATE-CIRCUIT",
            "RATE-RELAY",
            "LB-DROP",
            "LB-FILTER"
        ]
    );
    assert_eq!(
        line_with("eth7"),
        [
            "eth7", "native", "31", "1000", "2", "7", "6", "5", "977", "on"
        ]
    );
    assert_eq!(line_with("SUBNET")[..3], ["SUBNET", "ACTIVE", "FREE"]);
    assert_eq!(
        line_with("10.0.0.0/16"),
        ["10.0.0.0/16", "12", "65000", "0", "0", "0", "0", "0"]
    );
}

#[test]
fn leases_and_partner_down_through_tandemctl() {
    let f = Fixture::new();
    let out = f.ctl(&["leases", "--state", "active", "--subnet", "10.0.0.0/16"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    let row: Vec<&str> = s
        .lines()
        .nth(1)
        .expect("a row")
        .split_whitespace()
        .collect();
    assert_eq!(
        row,
        [
            "10.0.1.20",
            "active",
            "02:00:00:00:00:01",
            "01:02:00:00:00:00:01",
            "ge-0/0/1",
            "-",
            "-",
            "2025-11-22T05:00:00Z"
        ]
    );
    let filter = f
        .backend
        .last_filter
        .lock()
        .expect("lock")
        .clone()
        .expect("called");
    assert_eq!(filter.subnet.as_deref(), Some("10.0.0.0/16"));
    assert_eq!(filter.state, Some(LeaseState::Active));
    assert_eq!(
        filter.limit,
        Some(control::admin::MAX_LEASES + 1),
        "the server caps and fills the limit, and asks for one more to know whether the \
         answer was cut"
    );

    let out = f.ctl(&["leases", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v[0]["address"], "10.0.1.20");
    assert_eq!(v[0]["ends"], 1_763_787_600);
    assert_eq!(v[0]["circuit_id"], "ge-0/0/1");
    assert!(v[0].get("remote_id").is_none(), "{v}");
    f.ctl(&[
        "leases",
        "--circuit-id",
        "ge-0/0/1",
        "--remote-id",
        "0x01:02",
    ]);
    let filter = f.backend.last_filter.lock().expect("lock").clone();
    let filter = filter.expect("called");
    assert_eq!(
        (filter.circuit_id.as_deref(), filter.remote_id.as_deref()),
        (Some("ge-0/0/1"), Some("0x01:02"))
    );

    let out = f.ctl(&[
        "partner-down",
        "edge-pair",
        "--since",
        "2025-11-22T04:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(
            "last known up at 2025-11-22T04:30:00Z, not 2025-11-22T04:00:00Z: it was heard from after that"
        ),
        "the operator is told the floored time: {}",
        text(&out.stdout)
    );
    let before = control::admin::unix_now();
    let out = f.ctl(&["partner-down", "edge-pair"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let calls = f.backend.partner_down_calls.lock().expect("lock").clone();
    assert_eq!(calls[0], ("edge-pair".into(), 1_763_784_000));
    assert!(
        calls[1].1 >= before && calls[1].1 <= before + 5,
        "default since = now: {calls:?}"
    );

    let out = f.ctl(&["partner-down", "nope", "--since", "1763784000"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "tandemctl: no such relationship \"nope\"\n"
    );
}

#[test]
fn tcp_admin_address() {
    let f = Fixture::new();
    let addr = f.server().tcp_addr().expect("tcp").to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_tandemctl"))
        .args(["--admin", &addr, "status", "--json"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["version"], "9.9.9");
}

#[test]
fn every_change_is_audited_with_who_and_from_where() {
    let f = Fixture::new();
    let addr = f.server().tcp_addr().expect("tcp").to_string();
    let ok = f.ctl(&[
        "partner-down",
        "edge-pair",
        "--since",
        "2025-11-22T04:00:00Z",
    ]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));
    assert_eq!(f.ctl(&["partner-down", "nope"]).status.code(), Some(1));
    assert_eq!(f.ctl(&["status"]).status.code(), Some(0));
    let tcp = Command::new(env!("CARGO_BIN_EXE_tandemctl"))
        .args(["--admin", &addr, "partner-down", "edge-pair"])
        .output()
        .expect("run");
    assert_eq!(tcp.status.code(), Some(0), "{}", text(&tcp.stderr));

    let out = f.ctl(&["audit", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let entries = v.as_array().expect("a list");
    assert_eq!(entries.len(), 3, "changes only, not reads: {v:#}");
    let uid = std::fs::metadata("/proc/self").expect("stat").uid();
    for e in &entries[..2] {
        assert!(
            e["who"]
                .as_str()
                .is_some_and(|w| w.starts_with(&format!("uid {uid} (pid "))),
            "{e}"
        );
        assert_eq!(e["from"], "unix");
        assert_eq!(e["verb"], "partner-down");
    }
    assert_eq!(entries[0]["ok"], true);
    assert_eq!(entries[0]["request"]["since"], 1_763_784_000);
    assert!(
        entries[0]["result"]
            .as_str()
            .is_some_and(|r| r.contains("partner declared down")),
        "{}",
        entries[0]
    );
    assert_eq!(entries[1]["ok"], false);
    assert_eq!(entries[1]["result"], "no such relationship \"nope\"");
    assert_eq!(entries[2]["who"], "anonymous");
    assert_eq!(
        entries[2]["from"]
            .as_str()
            .map(|f| f.starts_with("tcp 127.0.0.1:")),
        Some(true),
        "{}",
        entries[2]
    );

    // The table, and a limit.
    let out = f.ctl(&["audit", "--limit", "1"]);
    let table = text(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[0].starts_with("TIME"), "{table}");
    assert!(
        lines[1].contains("anonymous") && lines[1].contains("ok"),
        "{table}"
    );

    // In the data directory, private, and still there for the next daemon.
    let path = f.dir.path().join(control::audit::FILE_NAME);
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let mut f = f;
    f.server.take().expect("running").stop();
    let next = AdminServer::start(
        &f.dir.path().join("tandemd.sock"),
        None,
        Arc::new(TestBackend::default()),
    )
    .expect("restart");
    let out = f.ctl(&["audit", "--json"]);
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(again, v, "read back from the file");
    next.stop();
}

#[test]
fn malformed_requests_get_errors_and_the_server_survives() {
    let f = Fixture::new();
    let mut s = f.connect();
    let v = exchange(&mut s, b"this is not json\n");
    assert_eq!(v["ok"], false);
    assert!(
        v["error"]
            .as_str()
            .expect("error")
            .starts_with("malformed request"),
        "{v}"
    );
    let v = exchange(&mut s, b"{\"verb\":\"reboot\"}\n");
    assert_eq!(v["ok"], false);
    assert!(
        v["error"]
            .as_str()
            .expect("error")
            .contains("unknown verb \"reboot\""),
        "{v}"
    );
    let v = exchange(&mut s, b"{\"verb\":\"partner-down\"}\n");
    assert_eq!(v["ok"], false);
    let v = exchange(&mut s, b"[1,2,3]\r\n");
    assert_eq!(v["ok"], false);
    let v = exchange(&mut s, b"{\"verb\":\"partner-down\",\"name\":\"panic\"}\n");
    assert_eq!(v["ok"], false);
    assert!(
        v["error"]
            .as_str()
            .expect("error")
            .contains("internal error"),
        "{v}"
    );
    // Still serving on the same connection, blank lines ignored.
    let v = exchange(&mut s, b"\n\n{\"verb\":\"status\"}\n");
    assert_eq!(v["ok"], true);
    assert_eq!(v["status"]["version"], "9.9.9");
}

#[test]
fn pipelined_requests_and_request_without_newline() {
    let f = Fixture::new();
    let mut s = f.connect();
    s.write_all(b"{\"verb\":\"status\"}\n{\"verb\":\"leases\"}\n{\"verb\":\"status\"}")
        .expect("write");
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let mut all = String::new();
    s.read_to_string(&mut all).expect("read to EOF");
    let answers: Vec<serde_json::Value> = all
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(answers.len(), 3, "{all}");
    assert!(answers[0]["status"].is_object());
    assert!(answers[1]["leases"].is_array());
    assert!(answers[2]["status"].is_object());
}

#[test]
fn oversized_request_is_refused_and_closed() {
    let f = Fixture::new();
    let mut s = f.connect();
    let big = vec![b'x'; MAX_REQUEST + 10_000];
    // The server may close before we finish writing; that is fine.
    let _ = s.write_all(&big);
    let mut all = String::new();
    let _ = s.read_to_string(&mut all);
    let first = all.lines().next().expect("an answer before close");
    let v: serde_json::Value = serde_json::from_str(first).expect("json");
    assert_eq!(v["ok"], false);
    assert!(
        v["error"]
            .as_str()
            .expect("error")
            .contains("request too large"),
        "{v}"
    );
    // Others are still served.
    let mut s2 = f.connect();
    assert_eq!(exchange(&mut s2, b"{\"verb\":\"status\"}\n")["ok"], true);
}

/// A line from `s`, or `None` at EOF.
fn read_line(s: impl Read) -> Option<String> {
    let mut line = String::new();
    let n = BufReader::new(s).read_line(&mut line).expect("read");
    (n > 0).then_some(line)
}

fn tcp(f: &Fixture) -> TcpStream {
    let s = TcpStream::connect(f.server().tcp_addr().expect("tcp")).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

fn tcp_status(s: &mut TcpStream) -> Option<String> {
    s.write_all(b"{\"verb\":\"status\"}\n").expect("write");
    read_line(&*s)
}

#[test]
fn idle_clients_cannot_lock_the_operator_out() {
    let f = Fixture::with_limits(Limits {
        stalled: Duration::from_secs(3600),
        ..Limits::default()
    });
    // Twice the cap of idle TCP clients: each past the cap takes the longest-idle one's place.
    let mut idle: Vec<TcpStream> = (0..2 * control::admin::MAX_CONNECTIONS)
        .map(|_| tcp(&f))
        .collect();
    let first = read_line(&idle[0]).expect("told why");
    assert!(
        first.contains("too many admin connections, this one idle longest"),
        "{first}"
    );
    assert_eq!(read_line(&idle[0]), None, "and closed");
    // The newest are served, the Unix socket has a budget of its own.
    let last = idle.last_mut().expect("one");
    assert!(tcp_status(last).expect("answer").contains("\"ok\":true"));
    let mut local = f.connect();
    assert_eq!(exchange(&mut local, b"{\"verb\":\"status\"}\n")["ok"], true);
    drop(idle);

    // Clients each half through a request (and not yet stalled) are not pushed out: past
    // the cap a new one is refused, and told so rather than left hanging.
    let busy: Vec<TcpStream> = (0..control::admin::MAX_CONNECTIONS)
        .map(|_| {
            let mut s = tcp(&f);
            s.write_all(b"{\"verb\":").expect("write");
            s
        })
        .collect();
    let mut ok = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !ok && std::time::Instant::now() < deadline {
        // The server may still hold some of the dropped idle ones: wait for it to see them go.
        let mut s = tcp(&f);
        ok = tcp_status(&mut s).is_some_and(|l| l.contains("too many admin connections"));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(ok, "a client past the cap of busy ones is refused");
    assert_eq!(exchange(&mut local, b"{\"verb\":\"status\"}\n")["ok"], true);
    drop(busy);
}

#[test]
fn a_connection_idle_past_the_limit_is_closed() {
    let f = Fixture::with_limits(Limits {
        idle_timeout: Duration::from_millis(1500),
        ..Limits::default()
    });
    let quiet = tcp(&f);
    let mut talking = tcp(&f);
    let half = {
        let mut s = tcp(&f);
        s.write_all(b"{\"verb\":").expect("write");
        s
    };
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        assert!(
            tcp_status(&mut talking)
                .expect("open")
                .contains("\"ok\":true")
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    for s in [&quiet, &half] {
        let line = read_line(s).expect("told why");
        assert!(
            line.contains("admin connection closed: idle for too long"),
            "{line}"
        );
        assert_eq!(read_line(s), None, "and closed");
    }
    assert!(
        tcp_status(&mut talking)
            .expect("still open")
            .contains("\"ok\":true"),
        "a client that keeps asking stays connected"
    );
}

#[test]
fn stop_removes_socket_and_refuses_second_server() {
    let mut f = Fixture::new();
    let path = f.server().socket().to_owned();
    let second = AdminServer::start(&path, None, f.backend.clone());
    assert!(
        second
            .expect_err("in use")
            .to_string()
            .contains("already serving")
    );
    f.server.take().expect("server").stop();
    assert!(!path.exists(), "socket removed on stop");
    let out = f.ctl(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "tandemctl: cannot reach tandemd at {}: no such file or directory (is tandemd running?)\n",
            path.display()
        )
    );
}

#[test]
fn stale_socket_is_replaced_and_reported_as_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tandemd.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).expect("bind"));
    let out = Command::new(env!("CARGO_BIN_EXE_tandemctl"))
        .args(["--data-dir", dir.path().to_str().expect("utf-8"), "status"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "tandemctl: cannot reach tandemd at {}: connection refused (is tandemd running?)\n",
            path.display()
        )
    );
    let server = AdminServer::start(&path, None, Arc::new(TestBackend::default()))
        .expect("replaces the stale socket");
    server.stop();
}

#[test]
fn tandemctl_usage_errors() {
    for args in [
        &["frobnicate"][..],
        &[],
        &["status", "--yaml"],
        &["--config", "a", "--admin", "b", "status"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_tandemctl"))
            .args(args)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).starts_with("tandemctl: "),
            "{}",
            text(&out.stderr)
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_tandemctl"))
        .arg("--help")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("partner-down NAME [--since TIME]"));
}

/// `tandemctl secret FILE`: 256 random bits as hex, a new file only its owner reads, never an
/// existing file overwritten; two secrets differ.
#[test]
fn secret_writes_a_new_private_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pair.secret");
    let run = |p: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_tandemctl"))
            .arg("secret")
            .arg(p)
            .output()
            .expect("run tandemctl")
    };
    let out = run(&path);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text(&out.stdout).contains("copy it to the partner"),
        "{out:?}"
    );
    let secret = std::fs::read_to_string(&path).unwrap();
    let hex = secret.strip_suffix('\n').expect("one line");
    assert_eq!(hex.len(), 64);
    assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{secret}");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Never over an existing file.
    let again = run(&path);
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), secret);
    let other = dir.path().join("other.secret");
    assert!(run(&other).status.success());
    assert_ne!(std::fs::read_to_string(&other).unwrap(), secret);
    // Usage: one FILE.
    let out = Command::new(env!("CARGO_BIN_EXE_tandemctl"))
        .arg("secret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// An HTTP server on a free loopback port over `backend`, with `data_dir`'s tokens and audit
/// log.
fn serve_http(
    data_dir: &std::path::Path,
    backend: Arc<TestBackend>,
    reads_need_token: bool,
) -> HttpServer {
    HttpServer::start(
        "127.0.0.1:0".parse().unwrap(),
        backend,
        access(data_dir, reads_need_token),
    )
    .expect("start")
}

/// The HTTP server's access rules over `data_dir`'s tokens and audit log.
fn access(data_dir: &std::path::Path, reads_need_token: bool) -> Access {
    Access {
        tokens: Arc::new(Tokens::new(data_dir)),
        reads_need_token,
        audit: Arc::new(AuditLog::new(data_dir)),
        tls: None,
    }
}

/// One HTTP/1.1 request over a fresh connection: the status code, the headers (names in lower
/// case) and the body.
fn http(addr: std::net::SocketAddr, request: &str) -> (u16, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the answer");
    let raw = String::from_utf8(raw).expect("utf-8");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head");
    let mut lines = head.split("\r\n");
    let code = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
        .collect();
    (code, headers, body.to_owned())
}

fn get(addr: std::net::SocketAddr, path: &str) -> (u16, Vec<(String, String)>, String) {
    http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: tandem\r\nConnection: close\r\n\r\n"),
    )
}

#[test]
fn metrics_are_served_over_http_and_pass_promtool() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve_http(dir.path(), Arc::new(TestBackend::default()), false);
    let addr = server.local_addr();

    let (code, headers, body) = get(addr, "/metrics");
    assert_eq!(code, 200, "{body}");
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-type" && v.starts_with("text/plain; version=0.0.4")),
        "{headers:?}"
    );
    for line in [
        r#"tandem_failover_state{relationship="edge-pair",state="communications-interrupted"} 1"#,
        r#"tandem_failover_state{relationship="edge-pair",state="normal"} 0"#,
        r#"tandem_failover_partner_state{relationship="edge-pair",state="recover-wait"} 1"#,
        r#"tandem_failover_link_up{relationship="edge-pair"} 0"#,
        r#"tandem_failover_unacked_updates{relationship="edge-pair"} 7"#,
        r#"tandem_failover_bindings_refused_total{relationship="edge-pair"} 2"#,
        r#"tandem_failover_bndupd_rtt_seconds_count{relationship="edge-pair"} 120"#,
        r#"tandem_scope_leases{scope="10.0.0.0/16",state="active"} 12"#,
        r#"tandem_dhcp_sent_total{type="ack",worker="0"} 490"#,
        r#"tandem_drops_total{reason="malformed",worker="0"} 4"#,
        r#"tandem_journal_commit_seconds_bucket{worker="0",le="0.002"} 40"#,
        r#"tandem_xdp_packets_total{interface="eth7",mode="native",verdict="lb-drop"} 977"#,
    ] {
        assert!(body.lines().any(|l| l == line), "no {line:?} in\n{body}");
    }

    // Prometheus' own linter accepts the exposition as it is (names, types, units, help).
    testkit::tools::promtool_check_metrics(&body);

    let (code, _, body) = get(addr, "/healthz");
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    let (code, _, _) = get(addr, "/nothing-here");
    assert_eq!(code, 404);
    let (code, headers, _) = http(
        addr,
        "POST /metrics HTTP/1.1\r\nHost: tandem\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(code, 405);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "allow" && v == "GET, HEAD"),
        "{headers:?}"
    );
    server.stop();
    assert!(
        TcpStream::connect(addr).is_err(),
        "still listening after stop"
    );
}

#[test]
fn an_http_client_that_sends_nothing_is_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve_http(dir.path(), Arc::new(TestBackend::default()), false);
    let addr = server.local_addr();
    // Silent clients up to the limit and past it: the one past it is closed at once, and
    // every silent one is closed once the header timeout has passed.
    let silent: Vec<TcpStream> = (0..=control::http::MAX_CONNECTIONS)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    for s in &silent {
        s.set_read_timeout(Some(control::http::HEADER_TIMEOUT * 2))
            .unwrap();
    }
    let mut closed = 0;
    for mut s in silent {
        let mut buf = [0u8; 256];
        // Closed: EOF, or an answer (408) and then EOF; never left hanging past the timeout.
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                // A stop and continue of this process interrupts a read with a timeout
                // (signal(7)); it is not the server's doing.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("a silent client was not closed: {e}"),
            }
        }
        closed += 1;
    }
    assert_eq!(closed, control::http::MAX_CONNECTIONS + 1);
    // And the server still answers.
    assert_eq!(get(addr, "/healthz").0, 200);
}

#[test]
fn the_http_api_answers_status_and_leases_as_the_admin_socket_does() {
    let backend = Arc::new(TestBackend::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve_http(dir.path(), backend.clone(), false);
    let addr = server.local_addr();

    let (code, _, body) = get(addr, "/api/v1/status");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(v["ok"], true);
    assert_eq!(
        v["status"]["relationships"][0]["state"],
        "communications-interrupted"
    );
    assert_eq!(v["status"]["scope_failover"]["10.0.0.0/16"], "edge-pair");

    let (code, _, body) = get(
        addr,
        "/api/v1/leases?mac=02%3A00%3A00%3A00%3A00%3A01&state=active&limit=1",
    );
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(v["leases"][0]["address"], "10.0.1.20");
    let filter = backend.last_filter.lock().unwrap().clone().expect("asked");
    assert_eq!(filter.mac.as_deref(), Some("02:00:00:00:00:01"));
    assert_eq!(filter.state, Some(LeaseState::Active));
    // One more than asked, so the answer knows whether it was cut: the fake backend has only
    // the one, so it was not.
    assert_eq!(filter.limit, Some(2));
    assert!(v.get("next").is_none(), "{v}");

    // Refused with the reason, as the socket refuses them.
    let (code, _, body) = get(addr, "/api/v1/leases?mac=not-a-mac");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("is not a hardware address"), "{body}");
    let (code, _, body) = get(addr, "/api/v1/leases?ip=10.0.0.300");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("is not an IPv4 address"), "{body}");

    // The page and its two assets, served with a policy that allows nothing from elsewhere.
    for (path, kind) in [
        ("/", "text/html"),
        ("/status.js", "text/javascript"),
        ("/status.css", "text/css"),
    ] {
        let (code, headers, body) = get(addr, path);
        assert_eq!(code, 200, "{path}");
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert!(
            header("content-type").starts_with(kind),
            "{path}: {headers:?}"
        );
        assert!(header("content-security-policy").starts_with("default-src 'self'"));
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{path} loads from elsewhere"
        );
    }
}

#[test]
fn failover_list_and_show_through_tandemctl_and_http() {
    let f = Fixture::new();
    let out = f.ctl(&["failover", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list = text(&out.stdout);
    let lines: Vec<&str> = list.lines().collect();
    assert!(lines[0].starts_with("RELATIONSHIP  ROLE"), "{list}");
    assert!(
        lines[1].contains("edge-pair")
            && lines[1].contains("communications-interrupted")
            && lines[1].contains("recover-wait")
            && lines[1].contains("down")
            && lines[1].ends_with("DIFFERS"),
        "{list}"
    );
    assert!(
        lines[2].contains("spare")
            && lines[2].contains("hot-standby")
            && lines[2].contains("not running")
            && lines[2].contains("empty"),
        "{list}"
    );

    let out = f.ctl(&["failover", "show", "edge-pair"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let show = text(&out.stdout);
    for want in [
        "relationship edge-pair",
        "mode                      load-balance, the primary answers 50 % of clients (128 of 256 hash buckets)",
        "partner                   10.0.0.2:647 (tandem)",
        "mclt                      1h00m00s (3600 s)",
        "safe period               off (partner-down by hand)",
        "shared secret             set",
        "state                     communications-interrupted since 2025-11-22T04:00:00Z",
        "link                      down since 2025-11-22T04:00:00Z",
        "updates                   7 unacknowledged, 120 sent, 2 refused, 0 received",
        "partner's settings        mclt 1800 s, the primary on 128 of 256 buckets (50 %)",
        "configuration             DIFFERS from the partner's:",
        "    mclt: ours 3600 s, the partner's 1800 s",
    ] {
        assert!(show.contains(want), "no {want:?} in\n{show}");
    }
    let scope = show
        .lines()
        .find(|l| l.trim_start().starts_with("10.0.0.0/16"))
        .unwrap_or_else(|| panic!("no scope line in\n{show}"));
    let cells: Vec<&str> = scope.split_whitespace().collect();
    assert_eq!(
        cells,
        ["10.0.0.0/16", "100", "20", "7", "0", "0", "0"],
        "{show}"
    );

    let out = f.ctl(&["failover", "show", "spare"]);
    let show = text(&out.stdout);
    assert!(
        show.contains(
            "hot-standby, the standby is the local server and holds 5 % of free addresses"
        ) && show.contains("state                     not running")
            && show.contains("none: the relationship is empty until a scope joins"),
        "{show}"
    );

    let out = f.ctl(&["failover", "show", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(r#"no such relationship "nope""#),
        "{}",
        text(&out.stderr)
    );
    let out = f.ctl(&["failover", "show", "edge-pair", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["settings"]["load_balance_percent"], 50);
    assert_eq!(v["status"]["config_check"], "differs");
    assert_eq!(v["scopes"][0]["leases"]["backup"], 20);
    assert_eq!(f.ctl(&["failover"]).status.code(), Some(2));
    let out = f.ctl(&["failover", "resync", "edge-pair"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("resync of edge-pair asked"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(f.backend.resyncs.lock().unwrap().as_slice(), ["edge-pair"]);
    let out = f.ctl(&["failover", "resync", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    let out = f.ctl(&["replicate", "scope", "10.0.0.0/16"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "replicated: 1 change applied by the partner\n  relationship edge-pair: partner: subnet 10.0.0.0/16: dns\n"
    );
    assert_eq!(
        f.ctl(&["replicate", "scope", "10.9.0.0/16"]).status.code(),
        Some(1)
    );
    assert_eq!(f.ctl(&["replicate"]).status.code(), Some(2));
    assert_eq!(f.ctl(&["failover", "show"]).status.code(), Some(2));

    // The same documents over HTTP; an unknown name is 404.
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve_http(dir.path(), Arc::new(TestBackend::default()), false);
    let (code, _, body) = get(server.local_addr(), "/api/v1/relationships");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(v["relationships"][1]["empty"], true);
    let (code, _, body) = get(server.local_addr(), "/api/v1/relationships/spare");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(v["relationships"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["relationships"][0]["settings"]["standby_is"], "local");
    let (code, _, body) = get(server.local_addr(), "/api/v1/relationships/nope");
    assert_eq!(code, 404, "{body}");
}

/// `tandemctl --data-dir DIR token add NAME --role ROLE`: the token it prints.
fn make_token(dir: &std::path::Path, name: &str, role: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tandemctl"))
        .arg("--data-dir")
        .arg(dir)
        .args(["token", "add", name, "--role", role])
        .output()
        .expect("tandemctl token add");
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out.stderr).contains("not shown again"), "{out:?}");
    text(&out.stdout).trim().to_owned()
}

fn with_token(method: &str, path: &str, token: Option<&str>, body: &str) -> String {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    format!(
        "{method} {path} HTTP/1.1\r\nHost: tandem\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn the_http_api_needs_a_token_and_the_role_for_what_it_asks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let noc = make_token(dir.path(), "noc", "read-only");
    let ops = make_token(dir.path(), "ops", "dhcp-admin");
    assert_eq!((noc.len(), ops.len()), (64, 64));
    let backend = Arc::new(TestBackend::default());
    let server = serve_http(dir.path(), backend.clone(), true);
    let addr = server.local_addr();
    let ask = |method: &str, path: &str, token: Option<&str>, body: &str| {
        http(addr, &with_token(method, path, token, body))
    };

    // No token, or a wrong one: 401, with the scheme to use.
    let (code, headers, body) = ask("GET", "/api/v1/status", None, "");
    assert_eq!(code, 401, "{body}");
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "www-authenticate" && v.starts_with("Bearer")),
        "{headers:?}"
    );
    assert!(body.contains("a token is needed"), "{body}");
    let (code, _, body) = ask("GET", "/metrics", Some(&"0".repeat(64)), "");
    assert_eq!(code, 401, "{body}");
    // The page carries no data: anyone gets it.
    assert_eq!(ask("GET", "/", None, "").0, 200);
    // A reader reads.
    for path in [
        "/api/v1/status",
        "/api/v1/leases?limit=5",
        "/metrics",
        "/api/v1/relationships",
        "/api/v1/relationships/edge-pair",
    ] {
        let (code, _, body) = ask("GET", path, Some(&noc), "");
        assert_eq!(code, 200, "{path}: {body}");
        let (code, _, body) = ask("GET", path, None, "");
        assert_eq!(code, 401, "{path}: {body}");
    }

    // A change: without a token nothing is done, with a reader's token it is forbidden and
    // says which role it needs.
    let pd = "/api/v1/relationships/edge-pair/partner-down";
    let (code, _, body) = ask("POST", pd, None, "");
    assert_eq!(code, 401, "{body}");
    let (code, _, body) = ask("POST", pd, Some(&noc), "");
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("needs role dhcp-admin")
            && body.contains(r#"token \"noc\" has role read-only"#),
        "{body}"
    );
    assert!(
        backend.partner_down_calls.lock().unwrap().is_empty(),
        "done anyway"
    );
    let (code, _, body) = ask("GET", "/api/v1/audit", Some(&noc), "");
    assert_eq!(code, 403, "{body}");
    let (code, _, body) = ask(
        "POST",
        "/api/v1/replicate",
        Some(&noc),
        r#"{"scope":"10.0.0.0/16"}"#,
    );
    assert_eq!(code, 403, "{body}");
    let (code, _, body) = ask(
        "POST",
        "/api/v1/replicate",
        Some(&ops),
        r#"{"scope":"10.0.0.0/16"}"#,
    );
    assert_eq!(code, 200, "{body}");
    let (code, _, body) = ask("POST", "/api/v1/replicate", Some(&ops), r#"{"scopes":1}"#);
    assert_eq!(code, 400, "{body}");
    let rs = "/api/v1/relationships/edge-pair/resync";
    assert_eq!(ask("POST", rs, None, "").0, 401);
    let (code, _, body) = ask("POST", rs, Some(&noc), "");
    assert_eq!(code, 403, "{body}");
    assert!(backend.resyncs.lock().unwrap().is_empty(), "done anyway");
    let (code, _, body) = ask("POST", rs, Some(&ops), "");
    assert_eq!(code, 200, "{body}");
    assert_eq!(backend.resyncs.lock().unwrap().as_slice(), ["edge-pair"]);

    // An administrator's: done, floored at the last contact, and audited under its name.
    let (code, _, body) = ask("POST", pd, Some(&ops), r#"{"since": 1763785000}"#);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(
        backend.partner_down_calls.lock().unwrap().as_slice(),
        &[("edge-pair".to_owned(), 1_763_785_000)]
    );
    let (code, _, body) = ask("POST", pd, Some(&ops), r#"{"since": "yesterday"}"#);
    assert_eq!(code, 400, "{body}");
    assert_eq!(ask("GET", pd, Some(&ops), "").0, 405);
    let (code, _, body) = ask("GET", "/api/v1/audit?limit=10", Some(&ops), "");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let entries = v["audit"].as_array().expect("entries");
    let done = entries
        .iter()
        .find(|e| e["ok"] == true && e["verb"] == "partner-down")
        .expect("the change");
    assert_eq!(done["who"], "token ops", "{v}");
    assert!(
        done["from"]
            .as_str()
            .unwrap_or("")
            .starts_with("http 127.0.0.1:"),
        "{v}"
    );
    assert_eq!(done["verb"], "partner-down", "{v}");
    assert!(
        entries
            .iter()
            .any(|e| e["verb"] == "resync" && e["ok"] == true && e["who"] == "token ops"),
        "{v}"
    );
    let refused = entries
        .iter()
        .find(|e| e["ok"] == false)
        .expect("the forbidden try");
    assert_eq!(refused["who"], "token noc", "{v}");

    // A removed token stops working without a restart.
    let out = Command::new(env!("CARGO_BIN_EXE_tandemctl"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["token", "remove", "noc"])
        .output()
        .expect("tandemctl token remove");
    assert!(out.status.success(), "{out:?}");
    let listed = Command::new(env!("CARGO_BIN_EXE_tandemctl"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["token", "list"])
        .output()
        .expect("tandemctl token list");
    let listed = text(&listed.stdout);
    assert!(
        listed.contains("ops") && listed.contains("dhcp-admin") && !listed.contains("noc"),
        "{listed}"
    );
    assert!(
        !listed.contains(&ops),
        "a token is shown after it was made: {listed}"
    );
    std::thread::sleep(control::tokens::RECHECK + Duration::from_millis(100));
    assert_eq!(ask("GET", "/api/v1/status", Some(&noc), "").0, 401);
}

#[test]
fn a_reload_over_http_needs_dhcp_admin_and_is_audited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let noc = make_token(dir.path(), "noc", "read-only");
    let ops = make_token(dir.path(), "ops", "dhcp-admin");
    let backend = Arc::new(TestBackend::default());
    let server = serve_http(dir.path(), backend.clone(), false);
    let addr = server.local_addr();
    let reload = "/api/v1/config/reload";
    // Even on loopback, where reads are open, a change needs a token, and the right role.
    assert_eq!(http(addr, &with_token("POST", reload, None, "")).0, 401);
    let (code, _, body) = http(addr, &with_token("POST", reload, Some(&noc), ""));
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("needs role dhcp-admin"), "{body}");
    assert_eq!(*backend.reloads.lock().unwrap(), 0, "done anyway");
    assert_eq!(
        http(addr, &with_token("GET", reload, Some(&ops), "")).0,
        405
    );
    let (code, _, body) = http(addr, &with_token("POST", reload, Some(&ops), ""));
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        v["changes"][0], "subnet 10.77.0.0/16: dns, lease_time",
        "{v}"
    );
    assert_eq!(*backend.reloads.lock().unwrap(), 1);

    // tandemctl reload over the API prints each change.
    let token_file = dir.path().join("ops.token");
    std::fs::write(&token_file, format!("{ops}\n")).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_tandemctl"))
        .args(["--admin", &format!("http://{addr}"), "reload"])
        .env_remove("TANDEM_TOKEN")
        .env("TANDEM_TOKEN_FILE", &token_file)
        .output()
        .expect("tandemctl reload");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        "configuration reloaded: 1 change applied\n  subnet 10.77.0.0/16: dns, lease_time\n"
    );

    // Both the refused and the done are in the audit log, under the tokens' names.
    let (_, _, body) = http(addr, &with_token("GET", "/api/v1/audit", Some(&ops), ""));
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let seen: Vec<(String, String, bool)> = v["audit"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["who"].as_str().unwrap_or("").to_owned(),
                e["verb"].as_str().unwrap_or("").to_owned(),
                e["ok"] == true,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("token noc".to_owned(), "reload".to_owned(), false),
            ("token ops".to_owned(), "reload".to_owned(), true),
            ("token ops".to_owned(), "reload".to_owned(), true),
        ]
    );
}

#[test]
fn on_a_loopback_listener_reads_are_open_by_default_but_changes_are_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = Arc::new(TestBackend::default());
    let server = serve_http(dir.path(), backend.clone(), false);
    let addr = server.local_addr();
    assert_eq!(
        http(addr, &with_token("GET", "/api/v1/status", None, "")).0,
        200
    );
    let (code, _, body) = http(
        addr,
        &with_token(
            "POST",
            "/api/v1/relationships/edge-pair/partner-down",
            None,
            "",
        ),
    );
    assert_eq!(code, 401, "{body}");
    assert!(backend.partner_down_calls.lock().unwrap().is_empty());
}

#[test]
fn the_status_page_asks_for_a_token_when_the_api_wants_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve_http(dir.path(), Arc::new(TestBackend::default()), true);
    let dom = testkit::tools::chromium(&[], &format!("http://{}/", server.local_addr()), None);
    assert!(
        dom.contains(r#"<form id="login">"#),
        "the token form is not shown:\n{dom}"
    );
    assert!(dom.contains("a token is needed"), "{dom}");
    assert!(
        !dom.contains("edge-pair"),
        "data shown without a token:\n{dom}"
    );
}

#[test]
fn the_openapi_description_lists_every_route_and_each_is_served() {
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/api/openapi.yaml"))
        .expect("openapi.yaml");
    // The paths: two-space indented keys under `paths:`.
    let paths: std::collections::BTreeSet<&str> = spec
        .lines()
        .skip_while(|l| *l != "paths:")
        .skip(1)
        .take_while(|l| l.starts_with(' ') || l.is_empty())
        .filter_map(|l| {
            l.strip_prefix("  /")
                .map(|_| l.trim().trim_end_matches(':'))
        })
        .collect();
    let routes: std::collections::BTreeSet<&str> = control::http::ROUTES.into_iter().collect();
    assert_eq!(paths, routes);

    let dir = tempfile::tempdir().expect("tempdir");
    let admin = make_token(dir.path(), "ops", "dhcp-admin");
    let server = serve_http(dir.path(), Arc::new(TestBackend::default()), true);
    for route in routes {
        let (method, path) = match route.replace("{name}", "edge-pair") {
            p if ["/partner-down", "/reload", "/resync", "/replicate"]
                .iter()
                .any(|s| p.ends_with(s)) =>
            {
                ("POST", p)
            }
            p => ("GET", p),
        };
        let (code, _, body) = http(
            server.local_addr(),
            &with_token(method, &path, Some(&admin), ""),
        );
        assert_eq!(code, 200, "{method} {path}: {body}");
    }
    assert_eq!(get(server.local_addr(), "/api/v2/status").0, 404);
}

#[test]
fn tandemctl_speaks_the_http_api_with_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let noc = make_token(dir.path(), "noc", "read-only");
    let ops = make_token(dir.path(), "ops", "dhcp-admin");
    let ops_file = dir.path().join("ops.token");
    std::fs::write(&ops_file, format!("{ops}\n")).expect("write");
    let backend = Arc::new(TestBackend::default());
    let server = serve_http(dir.path(), backend.clone(), true);
    let url = format!("http://{}", server.local_addr());
    let ctl = |env: &[(&str, &str)], args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tandemctl"));
        cmd.args(["--admin", &url])
            .args(args)
            .env_remove("TANDEM_TOKEN")
            .env_remove("TANDEM_TOKEN_FILE");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("tandemctl")
    };

    let out = ctl(&[], &["status"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(text(&out.stderr).contains("unauthorized"), "{out:?}");
    let out = ctl(&[("TANDEM_TOKEN", &noc)], &["status"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(text(&out.stdout).contains("edge-pair"), "{out:?}");
    let out = ctl(
        &[("TANDEM_TOKEN", &noc)],
        &["leases", "--mac", "02:00:00:00:00:01", "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(text(&out.stdout).contains("10.0.1.20"), "{out:?}");
    assert_eq!(
        backend
            .last_filter
            .lock()
            .unwrap()
            .as_ref()
            .and_then(|f| f.mac.clone())
            .as_deref(),
        Some("02:00:00:00:00:01")
    );
    let out = ctl(&[("TANDEM_TOKEN", &noc)], &["partner-down", "edge-pair"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        text(&out.stderr).contains("needs role dhcp-admin"),
        "{out:?}"
    );
    let file = ops_file.to_string_lossy().into_owned();
    let out = ctl(
        &[("TANDEM_TOKEN_FILE", &file)],
        &["partner-down", "edge-pair", "--since", "1763785000"],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        backend.partner_down_calls.lock().unwrap().last().cloned(),
        Some(("edge-pair".to_owned(), 1_763_785_000))
    );
    let out = ctl(&[("TANDEM_TOKEN_FILE", &file)], &["audit", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(text(&out.stdout).contains("token ops"), "{out:?}");
}

#[test]
fn https_serves_with_the_configured_certificate_and_tandemctl_checks_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    // An authority, and the server's certificate it signs (for 127.0.0.1), as an operator's
    // own CA would make them.
    let (ca, cert, key) = (
        dir.path().join("ca.pem"),
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
    );
    let script = format!(
        "set -e; cd {dir}; \
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
           -keyout ca.key -out ca.pem -days 2 -subj '/CN=tandem test CA'; \
         openssl req -x509 -CA ca.pem -CAkey ca.key -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
           -nodes -keyout key.pem -out cert.pem -days 2 -subj /CN=tandem \
           -addext subjectAltName=IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE \
           -addext extendedKeyUsage=serverAuth",
        dir = dir.path().display()
    );
    let out = Command::new("bash")
        .args(["-c", &script])
        .output()
        .expect("openssl (apt: openssl)");
    assert!(out.status.success(), "{out:?}");

    let tls = control::http::tls_config(&cert, &key).expect("tls config");
    let server = HttpServer::start(
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(TestBackend::default()),
        Access {
            tls: Some(Arc::new(tls)),
            ..access(dir.path(), false)
        },
    )
    .expect("start");
    let port = server.local_addr().port();
    let ctl = |ca: Option<&std::path::Path>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tandemctl"));
        cmd.args([
            "--admin",
            &format!("https://127.0.0.1:{port}"),
            "status",
            "--json",
        ])
        .env_remove("TANDEM_CA_FILE");
        if let Some(ca) = ca {
            cmd.env("TANDEM_CA_FILE", ca);
        }
        cmd.output().expect("tandemctl")
    };
    // Trusting the authority: served over TLS.
    let out = ctl(Some(&ca));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(text(&out.stdout).contains("edge-pair"), "{out:?}");
    // Trusting only the system's authorities: refused, and says why.
    let out = ctl(None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        text(&out.stderr).to_lowercase().contains("certificate"),
        "{out:?}"
    );
    // Plain HTTP to the TLS port gets no HTTP answer.
    let mut s = TcpStream::connect(server.local_addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    assert!(
        !raw.starts_with(b"HTTP/"),
        "{}",
        String::from_utf8_lossy(&raw)
    );

    // A key that does not go with the certificate, or a missing file: refused at start, named.
    let other = dir.path().join("other.pem");
    let out = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-out",
        ])
        .arg(&other)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "{out:?}");
    let e = control::http::tls_config(&cert, &other)
        .expect_err("mismatched key")
        .to_string();
    assert!(
        e.contains("other.pem") && e.contains("does not go with"),
        "{e}"
    );
    let e = control::http::tls_config(&dir.path().join("none.pem"), &key)
        .expect_err("missing")
        .to_string();
    assert!(e.contains("none.pem"), "{e}");
}
