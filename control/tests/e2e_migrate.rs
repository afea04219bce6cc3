//! Migration off ISC dhcpd, one box at a time, with real dhcpd 4.4.3 and real clients
//! (udhcpc), as README's migration section tells an operator to do it:
//!
//! 1. an ISC dhcpd failover pair (A primary, B secondary, load balance) serves clients;
//! 2. dhcpd B is stopped; `tandemctl import isc` turns B's own `dhcpd.conf` and
//!    `dhcpd.leases` into a tandem configuration and lease tables; tandemd B starts from them
//!    and the pair (dhcpd A, tandemd B) returns to NORMAL with every client keeping its address;
//! 3. dhcpd A is replaced the same way (its partner now tandem: `--shared-secret-file`), and B
//!    is restarted with the shared secret in place of `peer_software = "isc-dhcpd"`: the pair is
//!    tandem–tandem, NORMAL, and every client still has its address.
//!
//! Clients are served throughout, and the DHCPACK checker sees every ACK on the wire: no
//! address in two hands, no client renumbered.
//!
//! Run as root: `cargo test -p control --release --test e2e_migrate`.

#[expect(
    dead_code,
    reason = "each e2e test binary uses a different part of the shared harness"
)]
mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use common::pair::*;
use common::server::{Server, ServerKind};
use testkit::netns::mac_str;

/// Waits until dhcpd `s` has written relationship "pair" as NORMAL on both sides.
fn isc_normal(s: &Server, secs: u64, what: &str, logs: impl Fn() -> String) {
    let ok = common::try_wait_until(Duration::from_secs(secs), || {
        (s.isc_failover_state("pair") == ("normal".into(), "normal".into())).then_some(())
    });
    assert!(
        ok.is_some(),
        "{what}: not normal/normal: {:?}\n{}",
        s.isc_failover_state("pair"),
        logs()
    );
}

/// `tandemctl --data-dir DATA import isc ...` of server `s`'s (stopped) dhcpd files, run in
/// its namespace; the configuration is written to `out`. Returns the report.
fn import(s: &Server, data: &Path, out: &Path, extra: &[&str]) -> String {
    let conf = s.config_path().to_string_lossy().into_owned();
    let leases = s.isc_leases_path().to_string_lossy().into_owned();
    let data = data.to_string_lossy().into_owned();
    let out = out.to_string_lossy().into_owned();
    let mut args = vec![
        env!("CARGO_BIN_EXE_tandemctl"),
        "--data-dir",
        &data,
        "import",
        "isc",
        "--conf",
        &conf,
        "--leases",
        &leases,
        "--interface",
        "lan",
        "--output",
        &out,
    ];
    args.extend_from_slice(extra);
    let r = s.ns.exec(&args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(r.status.success(), "{args:?}:\n{text}");
    text
}

/// Every binding in `given` is in tandemd `s`'s lease table, active, for its client: imported
/// from dhcpd's lease file, or (what dhcpd had not acknowledged yet) sent by the partner as
/// the relationship resumed; checked before any client asks again.
fn imported(s: &Server, given: &BTreeMap<[u8; 6], Ipv4Addr>, logs: impl Fn() -> String) {
    let table: BTreeMap<Ipv4Addr, (String, String)> = s
        .leases()
        .into_iter()
        .map(|l| (l.address, (l.state, l.chaddr)))
        .collect();
    for (mac, addr) in given {
        assert_eq!(
            table.get(addr),
            Some(&("active".to_owned(), mac_str(*mac))),
            "{addr} of {} not imported active\n{}",
            mac_str(*mac),
            logs()
        );
    }
}

/// Every client in `given` asks again (a fresh DORA: udhcpc keeps no lease) and must get
/// the address it had.
fn same_addresses(net: &PairNet, given: &BTreeMap<[u8; 6], Ipv4Addr>, logs: impl Fn() -> String) {
    for (k, (mac, addr)) in given.iter().enumerate() {
        let l = net
            .udhcpc(k % net.clients.len(), *mac)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", mac_str(*mac), logs()));
        assert_eq!(
            l.address,
            *addr,
            "{} was renumbered ({l:?})\n{}",
            mac_str(*mac),
            logs()
        );
    }
}

/// New clients of both hash halves get addresses (and are added to `given`).
fn new_clients(
    net: &PairNet,
    tag: u8,
    given: &mut BTreeMap<[u8; 6], Ipv4Addr>,
    logs: impl Fn() -> String,
) {
    for primary in [true, false] {
        for (k, mac) in macs(tag, primary, 2).into_iter().enumerate() {
            let l = net
                .udhcpc(k % net.clients.len(), mac)
                .unwrap_or_else(|e| panic!("{}: {e}\n{}", mac_str(mac), logs()));
            given.insert(mac, l.address);
        }
    }
}

/// Waits until dhcpd `s` knows its partner is gone.
fn isc_comm_interrupted(s: &Server, logs: impl Fn() -> String) {
    let ok = common::try_wait_until(Duration::from_secs(30), || {
        (s.isc_failover_state("pair").0 == "communications-interrupted").then_some(())
    });
    assert!(
        ok.is_some(),
        "{:?}\n{}",
        s.isc_failover_state("pair"),
        logs()
    );
}

/// While one server is down, a new client of each hash half is served by the other.
fn alone(
    net: &PairNet,
    tag: u8,
    given: &mut BTreeMap<[u8; 6], Ipv4Addr>,
    logs: impl Fn() -> String,
) {
    for primary in [true, false] {
        let mac = macs(tag, primary, 1)[0];
        let l = net
            .udhcpc(0, mac)
            .unwrap_or_else(|e| panic!("{} with one server: {e}\n{}", mac_str(mac), logs()));
        given.insert(mac, l.address);
    }
}

#[test]
fn isc_pair_replaced_by_tandem_one_box_at_a_time() {
    assert!(common::which("dhcpd").is_some(), "ISC dhcpd not installed");
    let net = PairNet::new(2);
    let mut cap = net.capture();
    let mut a = Server::start_isc_dhcpd(&net.a, &["lan"], |_| isc_config(true));
    let mut b = Server::start_isc_dhcpd(&net.b, &["lan"], |_| isc_config(false));
    let both = |a: &Server, b: &Server| {
        format!(
            "--- A ({:?}) ---\n{}\n--- B ({:?}) ---\n{}",
            a.kind,
            tail(&a.log()),
            b.kind,
            tail(&b.log())
        )
    };
    isc_normal(&a, 90, "dhcpd A", || both(&a, &b));
    isc_normal(&b, 30, "dhcpd B", || both(&a, &b));

    // 1. The ISC pair serves clients of both halves.
    let mut given = BTreeMap::new();
    new_clients(&net, 1, &mut given, || both(&a, &b));
    // Each binding reaches the partner's lease file (BNDUPD) before B is taken away.
    let b_leases = b.isc_leases_path();
    let replicated = common::try_wait_until(Duration::from_secs(30), || {
        let text = std::fs::read_to_string(&b_leases).unwrap_or_default();
        given
            .iter()
            .all(|(mac, addr)| {
                let head = format!("lease {addr} {{");
                text.rfind(&head).is_some_and(|at| {
                    let block = &text[at..];
                    let block = &block[..block.find('}').unwrap_or(block.len())];
                    block.contains("binding state active;")
                        && block.contains(&format!("hardware ethernet {};", mac_str(*mac)))
                })
            })
            .then_some(())
    });
    assert!(
        replicated.is_some(),
        "bindings not in B's lease file\n{}",
        both(&a, &b)
    );

    // 2. B: dhcpd stopped (dhcpd A alone serves everyone meanwhile), its files imported,
    //    tandemd started from them.
    b.terminate();
    isc_comm_interrupted(&a, || both(&a, &b));
    alone(&net, 4, &mut given, || both(&a, &b));
    let work = tempfile::tempdir().expect("tempdir");
    let data_b = work.path().join("b-data");
    let conf_b = work.path().join("b.toml");
    let report = import(&b, &data_b, &conf_b, &[]);
    eprintln!("--- import of dhcpd B ---\n{report}");
    assert!(
        report.contains("the relationship resumes in normal (partner normal)"),
        "no failover state imported:\n{report}"
    );
    assert!(report.contains("peer_address"), "{report}");
    let toml_b = std::fs::read_to_string(&conf_b).expect("imported config");
    assert!(toml_b.contains("peer_software = \"isc-dhcpd\""), "{toml_b}");
    let mut b = Server::start_tandemd_in(&net.b, &data_b, |_| toml_b.clone());
    let tandem_normal = |s: &Server, other: &Server, what: &str| {
        wait_state(s, 120, what, |m, p| m == "normal" && p == "normal");
        let _ = other;
    };
    imported(&b, &given, || both(&a, &b));
    tandem_normal(&b, &a, "tandemd B with dhcpd A");
    isc_normal(&a, 60, "dhcpd A with tandemd B", || both(&a, &b));
    // Every client keeps its address, whichever server its hash gives it to; new ones are served.
    same_addresses(&net, &given, || both(&a, &b));
    new_clients(&net, 2, &mut given, || both(&a, &b));

    // 3. A: dhcpd stopped (tandemd B alone serves everyone meanwhile) and imported with a
    //    tandem partner; B restarted with the secret.
    a.terminate();
    wait_state(&b, 30, "tandemd B alone", |m, _| {
        m == "communications-interrupted"
    });
    alone(&net, 5, &mut given, || both(&a, &b));
    let secret = work.path().join("pair.secret");
    let s = b.tandemctl(&["secret", &secret.to_string_lossy()]);
    assert!(s.is_ok(), "{s:?}");
    let data_a = work.path().join("a-data");
    let conf_a = work.path().join("a.toml");
    let report = import(
        &a,
        &data_a,
        &conf_a,
        &["--shared-secret-file", &secret.to_string_lossy()],
    );
    eprintln!("--- import of dhcpd A ---\n{report}");
    let toml_a = std::fs::read_to_string(&conf_a).expect("imported config");
    assert!(toml_a.contains("shared_secret_file"), "{toml_a}");
    let tandem_b = toml_b.replace(
        "peer_software = \"isc-dhcpd\"",
        &format!("shared_secret_file = {:?}", secret.to_string_lossy()),
    );
    std::fs::write(b.config_path(), tandem_b).expect("B's config");
    b.restart();
    let a = Server::start_tandemd_in(&net.a, &data_a, |_| toml_a.clone());
    assert_eq!(a.kind, ServerKind::Tandemd);
    imported(&a, &given, || both(&a, &b));
    tandem_normal(&a, &b, "tandemd A with tandemd B");
    tandem_normal(&b, &a, "tandemd B with tandemd A");
    same_addresses(&net, &given, || both(&a, &b));
    new_clients(&net, 3, &mut given, || both(&a, &b));

    // Throughout: no address in two hands (the checker), and each client one address.
    let (_, log) = finish(&mut cap);
    let mut seen: BTreeMap<Ipv4Addr, [u8; 6]> = BTreeMap::new();
    for (mac, addr) in &given {
        if let Some(other) = seen.insert(*addr, *mac) {
            panic!("{addr} given to {} and {}", mac_str(other), mac_str(*mac));
        }
    }
    assert!(log.per_server().len() >= 2, "{:?}", log.per_server());
}
