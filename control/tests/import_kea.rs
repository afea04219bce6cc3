//! `tandemctl import kea` on real Kea 2.2 deployments (`tests/data/import/kea`, see its
//! README): each configuration is read, the configuration made from it validates, the key
//! findings name their lines, and the leases go into lease tables that open with them.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use control::config::{Config, FailoverMode, Role};
use control::import::{self, Imported, Options, Outcome, Partner, kea};
use lease_mmap::{BindingState, Durability, Lease, Store, UnixTime};

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/import/kea")
        .join(name)
}

/// About when a kea-dhcp4 wrote `kea-leases4.csv`: a lease in Kea's default state is judged
/// active or expired at this time, so that the test does not age with the file.
const WRITTEN: u32 = 1_796_678_720;

/// The 1-based line of the first line of `file` holding `text`.
fn line_of(file: &str, text: &str) -> u32 {
    let src = std::fs::read_to_string(corpus(file)).expect("corpus file");
    let n = src
        .lines()
        .position(|l| l.contains(text))
        .unwrap_or_else(|| panic!("{text:?} not in {file}"));
    u32::try_from(n + 1).expect("line")
}

/// The outcome of the finding at `line` whose statement holds `text`.
fn outcome(i: &Imported, line: u32, text: &str) -> Outcome {
    i.report
        .findings
        .iter()
        .find(|f| f.line == line && f.statement.contains(text))
        .unwrap_or_else(|| panic!("no finding {text:?} at line {line} in\n{}", i.report))
        .outcome
}

/// Reads `conf` (and `leases`), validates the configuration made from it, stores the leases
/// into a new data directory and opens the lease tables again.
fn import(conf: &str, leases: Option<&str>) -> (tempfile::TempDir, Imported, Config, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("failover.secret");
    std::fs::write(&secret, format!("{}\n", "5a".repeat(32))).expect("secret");
    let opts = Options {
        data_dir: dir.path().join("data"),
        interfaces: vec!["eth0".into()],
        partner: Partner::Tandem {
            shared_secret_file: secret,
        },
    };
    let leases = leases.map(corpus);
    let imported =
        kea::read_at(&corpus(conf), leases.as_deref(), UnixTime(WRITTEN)).expect("reads");
    let toml = imported.draft.to_toml(&opts, conf);
    let config = import::validate(&toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
    let stored =
        import::store(&config, &imported.leases, &imported.states, |_| {}).expect("stores");
    assert!(stored.outside.is_empty(), "{:?}", stored.outside);
    let specs = control::serve::engine_config(&config).table_specs();
    let (store, _, _) =
        Store::open(&config.server.data_dir, &specs, 1, Durability::Sync).expect("opens");
    (dir, imported, config, store)
}

fn lease(store: &Store, addr: &str) -> Lease {
    let addr: Ipv4Addr = addr.parse().expect("address");
    let table = store.table_for_addr(addr).expect("a table holds it");
    let slot = table.slot(addr).expect("a slot holds it");
    table.read(slot).1
}

fn mac(text: &str) -> [u8; 16] {
    let mut chaddr = [0; 16];
    for (b, h) in chaddr.iter_mut().zip(text.split(':')) {
        *b = u8::from_str_radix(h, 16).expect("hex");
    }
    chaddr
}

#[test]
fn isp_with_shared_networks_and_load_balancing() {
    const CONF: &str = "isp-kea-dhcp4.conf";
    let (_dir, i, config, store) = import(CONF, Some("kea-leases4.csv"));
    let at = |text: &str| line_of(CONF, text);

    let [f] = config.failover.as_slice() else {
        panic!("{:?}", config.failover)
    };
    assert_eq!(
        (f.name.as_str(), f.role, f.mode),
        ("kea-ha", Role::Primary, FailoverMode::LoadBalance)
    );
    assert_eq!(f.address, Ipv4Addr::new(10, 255, 0, 2));
    assert_eq!(f.peer_address, Ipv4Addr::new(10, 255, 0, 3));
    assert_eq!((f.max_response_delay, f.mclt), (60, 3600));
    assert!(
        config
            .subnets
            .iter()
            .all(|s| s.failover.as_deref() == Some("kea-ha"))
    );
    assert_eq!(
        outcome(&i, at("libdhcp_ha.so"), "libdhcp_ha.so"),
        Outcome::Approximated
    );
    assert_eq!(
        outcome(&i, at("libdhcp_lease_cmds.so"), "lease_cmds"),
        Outcome::Unsupported
    );
    assert_eq!(
        outcome(&i, at("\"max-ack-delay\""), "max-ack-delay"),
        Outcome::Unsupported
    );

    let prefixes: Vec<String> = config
        .subnets
        .iter()
        .map(|s| s.prefix.to_string())
        .collect();
    assert_eq!(
        prefixes,
        [
            "100.64.0.0/22",
            "203.0.113.0/24",
            "100.65.0.0/20",
            "100.66.0.0/21",
            "10.255.1.0/24"
        ]
    );
    let cmts = &config.subnets[0];
    assert_eq!(cmts.lease_time, 28800, "the shared network's");
    assert_eq!(cmts.renewal_time, Some(7200), "the global one");
    assert_eq!(
        cmts.dns,
        [
            Ipv4Addr::new(198, 51, 100, 55),
            Ipv4Addr::new(198, 51, 100, 56)
        ]
    );
    assert_eq!(cmts.domain_name.as_deref(), Some("access.example.net"));
    assert_eq!(cmts.decline_probation, 3600);
    let business = &config.subnets[1];
    let pools: Vec<String> = business.pools.iter().map(ToString::to_string).collect();
    assert_eq!(
        pools,
        ["203.0.113.32-203.0.113.63", "203.0.113.64-203.0.113.254"]
    );
    assert_eq!(business.router, [Ipv4Addr::new(203, 0, 113, 1)]);
    assert_eq!(
        business.reservations.len(),
        2,
        "by client-id and by circuit-id"
    );
    assert!(
        business
            .reservations
            .iter()
            .any(|r| matches!(r.key, control::config::ReservationKey::CircuitId(_))),
        "{:?}",
        business.reservations
    );
    assert_eq!(config.server.trusted_relays.len(), 1, "0.0.0.0/0, reported");
    let noc = &config.subnets[4];
    assert_eq!(noc.domain_name.as_deref(), Some("mgmt.example.net"));
    assert_eq!(noc.reservations.len(), 2, "by MAC and by circuit-id");

    assert_eq!(
        outcome(&i, at("\"client-classes\""), "client-classes"),
        Outcome::Unsupported
    );
    assert_eq!(
        outcome(&i, at("\"option-def\""), "option-def"),
        Outcome::Unsupported
    );
    assert_eq!(
        outcome(&i, at("\"name\": \"cmts-1-bundle\""), "shared-network"),
        Outcome::Approximated
    );
    assert_eq!(
        outcome(&i, at("'cmts1:3/0/1:17'"), "circuit-id"),
        Outcome::Translated
    );
    assert_eq!(
        outcome(&i, at("'port-4711'"), "flex-id"),
        Outcome::Unsupported
    );
    assert_eq!(
        outcome(
            &i,
            at("\"hostname\": \"no-address-here\"") - 1,
            "3c:a6:2f:00:12:34"
        ),
        Outcome::Unsupported
    );
    assert_eq!(
        outcome(&i, at("\"code\": 42"), "option 42"),
        Outcome::Unsupported
    );
    assert_eq!(
        outcome(&i, at("\"100.64.0.1\" ]"), "relay"),
        Outcome::Translated
    );
    assert_eq!(
        outcome(&i, at("\"ens1f0/10.255.0.2\""), "ens1f0/"),
        Outcome::Approximated
    );
    assert_eq!(
        outcome(&i, at("\"loggers\""), "loggers"),
        Outcome::Unsupported
    );
    let summary = i.report.findings.last().expect("findings");
    assert_eq!(summary.statement, "kea-leases4.csv: 415 rows");
    assert!(
        summary
            .note
            .starts_with("216 leases (193 active, 19 expired, 4 abandoned); 49 addresses deleted"),
        "{}",
        summary.note
    );

    // Leases: active with their client, declined (no client), reclaimed, released.
    let l = lease(&store, "100.64.0.10");
    assert_eq!(
        (l.state, l.ends, l.tstp),
        (
            BindingState::Active,
            UnixTime(1_796_707_392),
            UnixTime(1_796_707_392)
        )
    );
    assert_eq!(l.cltt, UnixTime(1_796_707_392 - 28800));
    assert_eq!(
        (l.htype, l.hlen, l.chaddr),
        (1, 6, mac("00:1d:d5:10:00:00"))
    );
    assert_eq!(l.client_id.as_bytes(), [1, 0x00, 0x1d, 0xd5, 0x10, 0, 0]);
    let l = lease(&store, "100.65.0.22");
    assert_eq!(
        (l.state, l.ends, l.hlen),
        (BindingState::Abandoned, UnixTime(1_796_682_212), 0)
    );
    let l = lease(&store, "100.66.0.66");
    assert_eq!(
        (l.state, l.chaddr),
        (BindingState::Expired, mac("52:54:00:31:00:10"))
    );
    assert_eq!(
        lease(&store, "100.65.0.20").state,
        BindingState::Free,
        "released: deleted"
    );
}

#[test]
fn hot_standby_pair() {
    const CONF: &str = "hot-standby-kea-dhcp4.conf";
    let (_dir, i, config, store) = import(CONF, None);
    let at = |text: &str| line_of(CONF, text);

    let [f] = config.failover.as_slice() else {
        panic!("{:?}", config.failover)
    };
    assert_eq!(
        (f.role, f.mode),
        (Role::Secondary, FailoverMode::HotStandby)
    );
    assert_eq!(
        (f.address, f.peer_address),
        (Ipv4Addr::new(172, 16, 0, 3), Ipv4Addr::new(172, 16, 0, 2))
    );
    assert_eq!(f.max_response_delay, 20);
    assert_eq!(
        outcome(&i, at("\"name\": \"dhcp-3\""), "dhcp-3"),
        Outcome::Unsupported
    );
    assert_eq!(
        outcome(&i, at("\"basic-auth-user\""), "basic-auth-user"),
        Outcome::Unsupported
    );
    assert_eq!(
        outcome(&i, at("\"heartbeat-delay\""), "heartbeat-delay"),
        Outcome::Approximated
    );

    assert_eq!(config.server.interfaces, ["eth0"], "--interface wins");
    assert_eq!(i.draft.interfaces, ["eno1", "eno2"]);
    assert_eq!(config.server.server_id, Some(Ipv4Addr::new(172, 16, 0, 3)));
    let library = &config.subnets[0];
    assert_eq!(
        (library.lease_time, library.decline_probation),
        (43200, 86400)
    );
    // The /23 pool starts at the network address, which tandem never gives.
    assert_eq!(library.pools[0].first, Ipv4Addr::new(172, 16, 8, 1));
    assert_eq!(
        library.reservations.len(),
        1,
        "the global reservation, placed"
    );
    assert_eq!(
        library.reservations[0].address,
        Ipv4Addr::new(172, 16, 8, 10)
    );
    let lab = &config.subnets[1];
    assert_eq!(lab.router, [Ipv4Addr::new(172, 16, 12, 1)], "from hex");
    assert_eq!(lab.lease_time, 3600);
    assert_eq!(lab.reservations.len(), 2);
    assert_eq!(
        outcome(&i, at("'lab-controller'"), "client-id"),
        Outcome::Approximated
    );
    assert_eq!(
        outcome(&i, at("\"172.16.12.254\""), "option-data"),
        Outcome::Unsupported
    );
    assert_eq!(
        outcome(&i, at("\"domain-search\""), "domain-search"),
        Outcome::Unsupported
    );
    assert_eq!(
        outcome(&i, at("\"boot-file-name\""), "boot-file-name"),
        Outcome::Unsupported
    );
    assert_eq!(
        outcome(&i, at("\"dhcp-ddns\""), "dhcp-ddns"),
        Outcome::Unsupported
    );
    assert_eq!(lease(&store, "172.16.8.20").state, BindingState::Free);
}

#[test]
fn minimal() {
    const CONF: &str = "minimal-kea-dhcp4.conf";
    let (_dir, i, config, store) = import(CONF, None);
    let by_clock = kea::read(&corpus(CONF), None).expect("reads");
    assert_eq!((&by_clock.draft, &by_clock.report), (&i.draft, &i.report));
    assert!(i.draft.interfaces.is_empty());
    assert_eq!(
        outcome(&i, line_of(CONF, "\"*\""), "\"*\""),
        Outcome::Unsupported
    );
    let [s] = config.subnets.as_slice() else {
        panic!("{:?}", config.subnets)
    };
    assert_eq!(
        (s.prefix.to_string(), s.lease_time),
        ("192.168.1.0/24".to_owned(), 4000)
    );
    assert_eq!(s.router, [Ipv4Addr::new(192, 168, 1, 1)]);
    assert!(config.failover.is_empty());
    assert_eq!(lease(&store, "192.168.1.100").state, BindingState::Free);
}

/// The corpus is what Kea itself accepts: `kea-dhcp4 -t` on each configuration. The checker
/// wants the interfaces named to exist, so the copy it checks names none (and `lo` for a
/// subnet's).
#[test]
fn corpus_passes_kea_checker() {
    let kea = Path::new("/usr/sbin/kea-dhcp4");
    let hooks = Path::new("/usr/lib/x86_64-linux-gnu/kea/hooks/libdhcp_ha.so");
    if !kea.exists() || !hooks.exists() {
        println!("skipped: no {} or no {}", kea.display(), hooks.display());
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for conf in [
        "isp-kea-dhcp4.conf",
        "hot-standby-kea-dhcp4.conf",
        "minimal-kea-dhcp4.conf",
    ] {
        let src = std::fs::read_to_string(corpus(conf)).expect("corpus file");
        let copy: Vec<String> = src
            .lines()
            .map(|l| match l.split_once("\"interface") {
                Some((indent, rest)) if rest.starts_with("s\": [") => {
                    format!(
                        "{indent}\"interfaces\": [ ]{}",
                        if l.ends_with(',') { "," } else { "" }
                    )
                }
                Some((indent, rest)) if rest.starts_with("\": \"") => {
                    format!("{indent}\"interface\": \"lo\",")
                }
                _ => l.to_owned(),
            })
            .collect();
        let path = dir.path().join(conf);
        std::fs::write(&path, copy.join("\n")).expect("write");
        let out = Command::new(kea)
            .arg("-t")
            .arg(&path)
            .env("KEA_LOCKFILE_DIR", dir.path())
            .env("KEA_PIDFILE_DIR", dir.path())
            .output()
            .expect("runs kea-dhcp4");
        assert!(
            out.status.success(),
            "{conf}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
