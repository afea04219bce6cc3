//! `tandemctl import isc` over the corpus in `tests/data/import/isc` (real-world-shaped
//! `dhcpd.conf` files that dhcpd 4.4.3 itself accepts, and a lease file a real dhcpd failover
//! secondary wrote), through the real binaries: the report names every statement with its
//! line, the configuration written passes `tandemd --check`, and the leases land in the lease
//! tables with their states, times and clients.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lease_mmap::{BindingState, Durability, Store};

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/import/isc")
        .join(name)
}

fn run(bin: &str, args: &[&str]) -> (Output, String) {
    let out = Command::new(bin).args(args).output().expect("run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

fn import(data: &Path, args: &[&str]) -> (Output, String) {
    let data = data.to_string_lossy().into_owned();
    let mut full = vec!["--data-dir", &data, "import", "isc"];
    full.extend_from_slice(args);
    run(env!("CARGO_BIN_EXE_tandemctl"), &full)
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// `--conf CONF (--leases L | --no-leases) --interface eth0 --output OUT` and `extra`.
fn import_files(
    data: &Path,
    conf: &Path,
    leases: Option<&Path>,
    out: &Path,
    extra: &[&str],
) -> (Output, String) {
    let (conf, out) = (s(conf), s(out));
    let leases = leases.map(s);
    let mut args = vec!["--conf", &conf];
    match &leases {
        Some(l) => args.extend(["--leases", l.as_str()]),
        None => args.push("--no-leases"),
    }
    args.extend(["--interface", "eth0", "--output", &out]);
    args.extend_from_slice(extra);
    import(data, &args)
}

/// The corpus is what dhcpd itself accepts (`dhcpd -t`), where dhcpd is installed.
#[test]
fn corpus_configs_pass_dhcpds_own_check() {
    if Command::new("dhcpd").arg("--version").output().is_err() {
        eprintln!("dhcpd not installed: skipped");
        return;
    }
    for name in [
        "isp-primary.conf",
        "hot-standby-secondary.conf",
        "secondary.conf",
    ] {
        let (out, text) = run("dhcpd", &["-t", "-4", "-cf", &s(&corpus(name))]);
        assert!(out.status.success(), "dhcpd -t {name}:\n{text}");
    }
}

#[test]
fn an_isp_config_is_translated_line_by_line_and_checks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = corpus("isp-primary.conf");
    let out = dir.path().join("tandem.toml");
    let (o, report) = import_files(&dir.path().join("data"), &conf, None, &out, &[]);
    assert!(o.status.success(), "{report}");
    let at = |line: u32, outcome: &str, statement: &str| {
        let head = format!("{}:{line}: {outcome:<12} {statement}", conf.display());
        assert!(
            report.lines().any(|l| l.starts_with(&head)),
            "no `{head}` in\n{report}"
        );
    };
    at(7, "translated", "default-lease-time 3600");
    at(8, "approximated", "max-lease-time 7200");
    at(6, "unsupported", "omapi-port 7911");
    at(20, "unsupported", "option cpe-vendor code 224 = string");
    at(22, "unsupported", "class \"cpe-acme\"");
    at(36, "translated", "split 128");
    at(41, "approximated", "shared-network \"agg-1\"");
    at(47, "translated", "deny dynamic bootp clients");
    at(73, "translated", "host noc-printer");
    at(86, "translated", "host cpe-circuit-17");
    at(92, "unsupported", "host roaming-laptop");
    assert!(report.contains("statements: "), "{report}");

    let toml = std::fs::read_to_string(&out).expect("config written");
    for want in [
        "interfaces = [\"eth0\"]",
        "server_id = \"192.0.2.1\"",
        "prefix = \"100.64.16.0/20\"",
        "pools = [\"100.64.16.10-100.64.31.250\"]",
        "lease_time = \"1800s\"",
        "dns = [\"198.51.100.53\", \"198.51.100.54\"]",
        "renewal_time = \"600s\"",
        "mac = \"00:11:22:33:44:55\"",
        "circuit_id = \"eth 1/1/17:100\"",
        "failover = \"edge-pair\"",
        "role = \"primary\"",
        "mclt = \"1800s\"",
        "auto_partner_down = \"86400s\"",
        "peer_software = \"isc-dhcpd\"",
    ] {
        assert!(toml.contains(want), "no {want:?} in\n{toml}");
    }
    let (o, text) = run(
        env!("CARGO_BIN_EXE_tandemd"),
        &["--check", "--config", &s(&out)],
    );
    assert!(o.status.success(), "tandemd --check:\n{text}\n{toml}");
    assert!(
        text.contains("4 subnets, 3 reservations, 1 failover relationship"),
        "{text}"
    );
}

#[test]
fn a_secondarys_leases_land_in_the_tables_with_their_states() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let out = dir.path().join("tandem.toml");
    let leases = corpus("secondary.leases");
    let (o, report) = import_files(&data, &corpus("secondary.conf"), Some(&leases), &out, &[]);
    assert!(o.status.success(), "{report}");
    assert!(
        report.contains("the relationship resumes in normal (partner normal), as dhcpd left it"),
        "{report}"
    );
    assert!(
        report.contains("stored 18 leases") && report.contains("4 active"),
        "{report}"
    );

    let config = control::config::load(&out).expect("config");
    let specs = control::serve::engine_config(&config).table_specs();
    let (store, journals, _) = Store::open(&data, &specs, 1, Durability::Sync).expect("open");
    let t = store
        .table_for_addr(Ipv4Addr::new(10, 81, 2, 127))
        .expect("table");
    let lease = |a: Ipv4Addr| t.read(t.slot(a).expect("slot")).1;
    // `lease 10.81.2.127` (its last entry): active for 02:81:01:00:00:01, client id 01 ‖ MAC.
    let l = lease(Ipv4Addr::new(10, 81, 2, 127));
    assert_eq!(l.state, BindingState::Active);
    assert_eq!(&l.chaddr[..6], &[0x02, 0x81, 0x01, 0, 0, 0x01]);
    assert_eq!((l.htype, l.hlen), (1, 6));
    assert_eq!(l.client_id.as_bytes(), &[1, 0x02, 0x81, 0x01, 0, 0, 0x01]);
    // starts 21:19:41, ends 21:20:01, tstp 22:19:51 (2026-12-07 UTC).
    let at = |h: u32, m: u32, s: u32| 1_796_677_200 - 21 * 3600 + h * 3600 + m * 60 + s;
    assert_eq!(l.stos.0, at(21, 19, 41));
    assert_eq!(l.ends.0, at(21, 20, 1));
    assert_eq!(l.tstp.0, at(22, 19, 51));
    assert_eq!(l.cltt.0, at(21, 19, 41));
    // The pool's halves as dhcpd balanced them: BACKUP for the secondary (the low end),
    // FREE for the primary.
    assert_eq!(
        lease(Ipv4Addr::new(10, 81, 1, 0)).state,
        BindingState::Backup
    );
    assert_eq!(
        lease(Ipv4Addr::new(10, 81, 3, 255)).state,
        BindingState::Free
    );
    store.close(journals).expect("close");
    // The relationship's state file is there for tandemd to resume from.
    let st = control::failover::persist::load(&data, "pair")
        .expect("state file")
        .expect("a state");
    assert_eq!(st.my_state.name(), "normal");
    assert_eq!(st.partner_state.map(|p| p.name()), Some("normal"));
    assert_eq!(st.mclt, 20);
    let (o, text) = run(
        env!("CARGO_BIN_EXE_tandemd"),
        &["--check", "--config", &s(&out)],
    );
    assert!(o.status.success(), "{text}");

    // A second import into the same data directory is refused, and writes nothing.
    let again = dir.path().join("again.toml");
    let (o, text) = import_files(&data, &corpus("secondary.conf"), Some(&leases), &again, &[]);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("not empty"), "{text}");
    assert!(!again.exists());
}

#[test]
fn bad_input_is_refused_with_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("dhcpd.conf");
    std::fs::write(
        &conf,
        "authoritative;\nsubnet 10.0.0.0 netmask 255.255.255.0 {\n  range 10.0.0.5 10.0.0.9;\n",
    )
    .expect("write");
    let out = dir.path().join("tandem.toml");
    let (o, text) = import_files(&dir.path().join("data"), &conf, None, &out, &[]);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("{}:2: a `{{` block is not closed", conf.display())),
        "{text}"
    );
    assert!(!out.exists());

    let leases = dir.path().join("dhcpd.leases");
    std::fs::write(
        &conf,
        "subnet 10.0.0.0 netmask 255.255.255.0 { range 10.0.0.5 10.0.0.9; }\n",
    )
    .expect("write");
    std::fs::write(
        &leases,
        "lease 10.0.0.5 {\n  starts 1 2026/12/07 21:19:41;\n  binding state sideways;\n}\n",
    )
    .expect("write");
    let (o, text) = import_files(&dir.path().join("data"), &conf, Some(&leases), &out, &[]);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "{}:3: unknown binding state \"sideways\"",
            leases.display()
        )),
        "{text}"
    );
    assert!(!out.exists() && !dir.path().join("data").exists());

    // No interface anywhere: refused, saying how to name one.
    let (o, text) = import(
        &dir.path().join("data"),
        &["--conf", &s(&conf), "--no-leases", "--output", &s(&out)],
    );
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("--interface"), "{text}");
    // Without --leases (or --no-leases on purpose): refused.
    let (o, text) = import(
        &dir.path().join("data"),
        &[
            "--conf",
            &s(&conf),
            "--interface",
            "eth0",
            "--output",
            &s(&out),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{text}");
    assert!(text.contains("--no-leases"), "{text}");
    // A usage error is exit 2.
    let (o, text) = import(&dir.path().join("data"), &["--output", &s(&out)]);
    assert_eq!(o.status.code(), Some(2), "{text}");
}

/// A failover secondary's lease file with what the corpus lacks: a partner-written expiry and
/// our own (by `rewind binding state`), an ACTIVE lease we sent (tstp) and one the partner
/// sent, a lease block without a binding state, a pool with its own lease time and a
/// `dynamic-bootp` range written high to low, and PARTNER-DOWN.
#[test]
fn owners_states_and_pools_follow_dhcpds_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("dhcpd.conf");
    std::fs::write(
        &conf,
        "authoritative;\n\
         failover peer \"p\" { secondary; address 10.9.0.2; peer address 10.9.0.1; }\n\
         subnet 10.9.0.0 netmask 255.255.255.0 {\n\
         \x20 pool { failover peer \"p\"; default-lease-time 900; range dynamic-bootp 10.9.0.90 10.9.0.10; }\n\
         }\n",
    )
    .expect("write");
    let leases = dir.path().join("dhcpd.leases");
    std::fs::write(
        &leases,
        "lease 10.9.0.10 {\n  ends 1 2020/01/01 00:00:00;\n  binding state expired;\n  rewind binding state backup;\n  hardware ethernet 02:00:00:00:00:10;\n}\n\
         lease 10.9.0.11 {\n  ends 1 2020/01/01 00:00:00;\n  binding state expired;\n  rewind binding state free;\n  hardware ethernet 02:00:00:00:00:11;\n}\n\
         lease 10.9.0.12 {\n  ends 4 2037/01/01 00:00:00;\n  tstp 4 2037/01/01 00:00:00;\n  binding state active;\n  hardware ethernet 02:00:00:00:00:12;\n}\n\
         lease 10.9.0.13 {\n  ends 4 2037/01/01 00:00:00;\n  binding state active;\n  hardware ethernet 02:00:00:00:00:13;\n  client-hostname \"printer-13\";\n}\n\
         lease 10.9.0.14 {\n  ends 4 2037/01/01 00:00:00;\n  hardware ethernet 02:00:00:00:00:14;\n}\n\
         lease 10.9.0.15 {\n  binding state backup;\n  reserved;\n}\n\
         failover peer \"p\" state {\n  my state partner-down at 1 2026/12/07 20:00:00;\n  partner state communications-interrupted at 1 2026/12/07 19:00:00;\n  mclt 0;\n}\n",
    )
    .expect("write");
    let data = dir.path().join("data");
    let out = dir.path().join("tandem.toml");
    let (o, report) = import_files(&data, &conf, Some(&leases), &out, &[]);
    assert!(o.status.success(), "{report}");
    assert!(
        report.contains("approximated default-lease-time 900"),
        "a pool's parameter is the subnet's: {report}"
    );
    let toml = std::fs::read_to_string(&out).expect("config");
    assert!(toml.contains("pools = [\"10.9.0.10-10.9.0.90\"]"), "{toml}");
    assert!(toml.contains("lease_time = \"900s\""), "{toml}");
    // dhcpd keeps .15 `reserved;`: never for a dynamic client.
    assert!(toml.contains("exclude = [\"10.9.0.15\"]"), "{toml}");

    let config = control::config::load(&out).expect("config");
    let specs = control::serve::engine_config(&config).table_specs();
    let (store, journals, _) = Store::open(&data, &specs, 1, Durability::Sync).expect("open");
    let t = store
        .table_for_addr(Ipv4Addr::new(10, 9, 0, 10))
        .expect("table");
    let lease = |last: u8| {
        t.read(t.slot(Ipv4Addr::new(10, 9, 0, last)).expect("slot"))
            .1
    };
    use lease_mmap::Owner;
    // A secondary rewinds its own expiries to BACKUP: .10 is ours, .11 the primary's.
    assert_eq!(
        (lease(10).state, lease(10).owner),
        (BindingState::Expired, Owner::Us)
    );
    assert_eq!(
        (lease(11).state, lease(11).owner),
        (BindingState::Expired, Owner::Partner)
    );
    // ACTIVE: ours if we sent it to the partner (tstp), else the partner's.
    assert_eq!(lease(12).owner, Owner::Us);
    assert_eq!(lease(13).owner, Owner::Partner);
    // The host name dhcpd kept comes along, for `tandemctl leases --hostname`.
    assert_eq!(lease(13).hostname.as_bytes(), b"printer-13");
    assert!(lease(12).hostname.is_empty());
    // No binding state, ends in 2037, a client: ACTIVE, as dhcpd reads it.
    assert_eq!(lease(14).state, BindingState::Active);
    store.close(journals).expect("close");
    // PARTNER-DOWN is waited out from when it began; an MCLT of 0 (not yet heard) is not kept.
    let st = control::failover::persist::load(&data, "p")
        .expect("state")
        .expect("a state");
    assert_eq!(st.my_state.name(), "partner-down");
    assert_eq!(st.partner_down_since, st.my_stos);
    assert!(st.my_stos.0 > 0);
    assert_eq!(st.mclt, config.failover[0].mclt);
}

/// A lease still bound outside every subnet of the configuration is never forgotten: the
/// import is refused and nothing is written; a dry run shows the file and says why.
#[test]
fn a_bound_lease_outside_the_configuration_refuses_the_import() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("dhcpd.conf");
    std::fs::write(
        &conf,
        "subnet 10.9.0.0 netmask 255.255.255.0 { range 10.9.0.10 10.9.0.20; }\n",
    )
    .expect("write");
    let leases = dir.path().join("dhcpd.leases");
    std::fs::write(
        &leases,
        "lease 10.9.0.50 {\n  ends 4 2037/01/01 00:00:00;\n  binding state active;\n  hardware ethernet 02:00:00:00:00:50;\n}\n",
    )
    .expect("write");
    let data = dir.path().join("data");
    let out = dir.path().join("tandem.toml");
    let args = |extra: &[&'static str]| {
        let mut v = vec![
            "--conf".to_owned(),
            s(&conf),
            "--leases".to_owned(),
            s(&leases),
            "--output".to_owned(),
            s(&out),
            "--interface".to_owned(),
            "eth0".to_owned(),
        ];
        v.extend(extra.iter().map(|x| (*x).to_owned()));
        v
    };
    let a = args(&[]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let (o, text) = import(&data, &a);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains("left out     lease of 10.9.0.50 (active, still bound)"),
        "{text}"
    );
    assert!(text.contains("1 leases still bound lie outside"), "{text}");
    assert!(!out.exists() && !data.exists(), "nothing written");
    let a = args(&["--dry-run"]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let (o, text) = import(&data, &a);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains("[[subnet]]"),
        "the dry run shows the file: {text}"
    );
}
