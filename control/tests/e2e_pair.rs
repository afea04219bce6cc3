//! A tandem failover pair serving real clients: two `tandemd` on one client bridge, each with a
//! point-to-point peer link of its own (a veth pair between the two server namespaces, cut with
//! `ip link set down`), the harness's clients behind the bridge, one capture on both servers'
//! bridge ports, and the pair's DHCPACK checker ([`common::acks`]) over every test.
//!
//! * load balance: both NORMAL; every DISCOVER inside `load_balance_max_seconds` is OFFERed by
//!   the server the RFC 3074 hash gives it to, and only by it;
//! * hot standby: only the primary answers in NORMAL;
//! * a peer-link cut while clients keep coming: both COMMUNICATIONS-INTERRUPTED, still serving,
//!   every new lease within the MCLT, no address twice; healed: both NORMAL;
//! * a peer path that silently drops everything (nftables): both COMMUNICATIONS-INTERRUPTED;
//!   healed, both NORMAL within seconds (dials are given up after `DIAL_TIMEOUT`);
//! * `kill -9` of the primary: the secondary goes COMMUNICATIONS-INTERRUPTED; restarted, the
//!   pair is NORMAL again;
//! * operator partner-down on the survivor after its partner died: it serves both hash halves;
//!   the dead one restarted comes back through RECOVER to NORMAL.
//!
//! * `tandemctl failover list` and `failover show` on both servers of a pair whose files
//!   disagree on the MCLT and the split: each names the differing keys, the secondary serves by
//!   the primary's, the difference is logged once and counted, and the scope's leases are
//!   counted by state on both sides as a client binds; `failover resync` on the secondary
//!   receives every binding the primary has and follows it to the UPDDONE.
//!
//! * the management channel: a scope whose exclusions differ between the two files is named
//!   on both servers and logged once; after the secondary's file is mended and reloaded both
//!   are in step at once; a request without the shared secret, or for a relationship the
//!   server does not have, is refused.
//!
//! * `tandemctl replicate scope`: the primary's reservation and options replace the
//!   secondary's scope in its file (its own comments kept) and are applied live: the reserved
//!   client of the secondary's buckets gets the reserved address from it; with `replicate =
//!   "auto"` the primary's reload pushes each changed scope to the secondary at once.
//!
//! Two tests need what is not on main yet, and say so in their names:
//! `secondary_serves_its_half_from_backup_pool` (pool balancing: the secondary has BACKUP
//! addresses) and `bindings_replicate_to_the_partner` (BNDUPD send and apply).
//!
//! Run as root: `cargo test -p control --release --test e2e_pair`.

#[expect(
    dead_code,
    reason = "each e2e test binary uses a different part of the shared harness"
)]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use common::acks::discovers;
use common::capture::DhcpMsg;
use common::clients::{PerfTarget, Perfdhcp};
use common::pair::*;
use common::server::{Server, unix_now};
use testkit::netns::mac_str;

/// Every DISCOVER inside `load_balance_max_seconds` was OFFERed by nobody but its hash owner.
fn assert_split(msgs: &[DhcpMsg]) -> usize {
    let mut checked = 0;
    for d in discovers(msgs) {
        if d.secs > LB_MAX_SECS {
            continue;
        }
        let want = owner(d.bucket);
        assert!(
            d.offered_by.iter().all(|s| *s == want),
            "DISCOVER of {} (bucket {}, secs {}) offered by {:?}, but the hash gives it to {want}",
            d.client,
            d.bucket,
            d.secs,
            d.offered_by
        );
        checked += usize::from(!d.offered_by.is_empty());
    }
    checked
}

#[test]
fn load_balance_pair_splits_discovers_by_hash() {
    let net = PairNet::new(3);
    let mut cap = net.capture();
    let s = Servers::start(&net, Mode::LoadBalance);

    // The primary's half, by udhcpc: each from A, within the MCLT.
    for (i, mac) in macs(1, true, 4).into_iter().enumerate() {
        let l = net
            .udhcpc(i % 3, mac)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", mac_str(mac), s.logs()));
        assert_eq!(l.server_id, Some(A), "{} {l:?}", mac_str(mac));
        assert!(
            l.lease_time.is_some_and(|t| (1..=MCLT).contains(&t)),
            "{l:?}"
        );
    }
    // dhclient (no client identifier: the hash is over chaddr) and dhcpcd, whichever half
    // they fall in; and a perfdhcp burst of random clients. Who answers is judged from the
    // capture below; on main the secondary has no addresses to give (no pool balancing),
    // so these may go unanswered by B, and they are not required to be bound here.
    let mut dh = common::clients::Dhclient::new(&net.clients[0]);
    let _ = dh.obtain();
    let mut dc = common::clients::Dhcpcd::new(&net.clients[1]);
    let _ = dc.start();
    let perf = Perfdhcp::new(
        &net.clients[2].ns,
        &PerfTarget::Broadcast {
            iface: "eth0".into(),
        },
    )
    .arg("-r")
    .arg("20")
    .arg("-R")
    .arg("100")
    .arg("-n")
    .arg("60")
    .run(Duration::from_secs(30))
    .unwrap_or_else(|e| panic!("perfdhcp: {e}"));
    eprintln!(
        "perfdhcp: sent {:?} received {:?}",
        perf.sent, perf.received
    );
    dh.stop();
    dc.stop();

    let (st_a, st_b) = (rel(&s.a), rel(&s.b));
    assert_eq!(st_a.0, "normal", "A stayed NORMAL");
    assert_eq!(st_b.0, "normal", "B stayed NORMAL");
    let (msgs, log) = finish(&mut cap);
    let answered = assert_split(&msgs);
    assert!(answered >= 4, "only {answered} balanced DISCOVERs answered");
    assert!(
        log.acks
            .iter()
            .all(|a| a.server == Some(A) || a.server == Some(B)),
        "an ACK from a stranger"
    );
}

#[test]
fn failover_show_names_a_partner_configured_otherwise_and_resync_fetches_every_binding() {
    let net = PairNet::new(1);
    // The secondary's file says another MCLT and split than the primary's.
    let s = Servers::start_edited(
        &net,
        Mode::LoadBalance,
        |a| a,
        |b| {
            b.replace(
                "role = \"secondary\"",
                &format!("role = \"secondary\"\nmclt = \"{}s\"\nsplit = 64", 2 * MCLT),
            )
        },
    );

    let list = s.a.tandemctl(&["failover", "list"]).expect("failover list");
    let row = list
        .lines()
        .find(|l| l.starts_with("pair "))
        .unwrap_or_else(|| panic!("{list}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells,
        [
            "pair",
            "primary",
            "load-balance",
            "10.82.0.2:647",
            "normal",
            "normal",
            "up",
            "1",
            "DIFFERS"
        ],
        "{list}"
    );
    let mclt_line =
        |ours: u32, theirs: u32| format!("    mclt: ours {ours} s, the partner's {theirs} s");
    let show_a =
        s.a.tandemctl(&["failover", "show", "pair"])
            .expect("show on A");
    for want in [
        "configuration             DIFFERS from the partner's:".to_owned(),
        mclt_line(MCLT, 2 * MCLT),
        "    split: the primary on 128 of 256 buckets (50 %) by ours, on 64 of 256 buckets (25 %) by the partner's".to_owned(),
        "link                      up since ".to_owned(),
    ] {
        assert!(show_a.contains(&want), "no {want:?} in\n{show_a}");
    }
    let show_b =
        s.b.tandemctl(&["failover", "show", "pair"])
            .expect("show on B");
    for want in [
        mclt_line(2 * MCLT, MCLT),
        "    split: the primary on 64 of 256 buckets (25 %) by ours, on 128 of 256 buckets (50 %) by the partner's".to_owned(),
        // The secondary serves by the primary's.
        format!("in force                  mclt {MCLT} s, the primary on 128 of 256 buckets (50 %)"),
    ] {
        assert!(show_b.contains(&want), "no {want:?} in\n{show_b}");
    }
    for server in [&s.a, &s.b] {
        let log = server.log();
        assert_eq!(
            log.matches("the partner is configured otherwise").count(),
            1,
            "logged once\n{log}"
        );
        let m = server.metrics(HTTP);
        assert!(
            m.contains("tandem_failover_config_mismatches_total{relationship=\"pair\"} 1")
                && m.contains(
                    "tandem_failover_config_check{check=\"differs\",relationship=\"pair\"} 1"
                ),
            "{m}"
        );
    }

    // The scope's leases by state, on both sides: 768 addresses, split between FREE and
    // BACKUP by pool balancing, and a client bound on one shows ACTIVE on both.
    let scope = |srv: &Server| -> BTreeMap<String, u64> {
        let out = srv
            .tandemctl(&["failover", "show", "pair", "--json"])
            .expect("show --json");
        let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        assert_eq!(v["scopes"][0]["subnet"], "10.81.0.0/16", "{v}");
        serde_json::from_value(v["scopes"][0]["leases"].clone()).expect("counts")
    };
    for srv in [&s.a, &s.b] {
        let c = scope(srv);
        assert_eq!(c.values().sum::<u64>(), 768, "{c:?}");
    }
    let mac = macs(3, true, 1)[0];
    net.udhcpc(0, mac)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", mac_str(mac), s.logs()));
    for srv in [&s.a, &s.b] {
        let bound = common::try_wait_until(Duration::from_secs(15), || {
            (scope(srv).get("active") == Some(&1)).then_some(())
        });
        assert!(bound.is_some(), "{:?}\n{}", scope(srv), s.logs());
    }

    // The operator's resync on B: A sends every binding it has but FREE ones (the bound
    // client, and the BACKUP addresses it gave B), B shows them as they come, then A's UPDDONE.
    let out =
        s.b.tandemctl(&["failover", "resync", "pair", "--wait"])
            .unwrap_or_else(|e| panic!("{e}\n{}", s.logs()));
    let a = scope(&s.a);
    let sent = a.values().sum::<u64>() - a.get("free").copied().unwrap_or(0);
    assert!(
        out.lines()
            .next()
            .is_some_and(|l| l.starts_with("resync of pair asked"))
            && out.contains(&format!(
                "resync of pair done: {sent} bindings received in "
            )),
        "{sent} bindings expected:\n{out}\n{}",
        s.logs()
    );
    let show =
        s.b.tandemctl(&["failover", "show", "pair"])
            .expect("show on B");
    assert!(
        show.contains(&format!(
            "resync                    done: {sent} bindings received since "
        )),
        "{show}"
    );
    assert_eq!(rel(&s.a), ("normal".into(), "normal".into()));
    assert_eq!(rel(&s.b), ("normal".into(), "normal".into()));
    // Refused where it cannot be asked, with the reason.
    let e =
        s.b.tandemctl(&["failover", "resync", "nope"])
            .expect_err("no such relationship");
    assert!(e.contains(r#"no such relationship "nope""#), "{e}");
}

#[test]
fn the_management_channel_compares_scopes_and_refuses_strangers() {
    use control::manage::{self, Answer, Op};
    let net = PairNet::new(1);
    // The secondary's scope excludes ten addresses the primary's does not.
    let exclusion = "failover = \"pair\"\nexclude = [\"10.81.1.0-10.81.1.9\"]";
    let s = Servers::start_edited(
        &net,
        Mode::LoadBalance,
        |a| a,
        |b| b.replace("failover = \"pair\"", exclusion),
    );

    let scope_line = "    scope 10.81.0.0/16: exclusions differ";
    for srv in [&s.a, &s.b] {
        // Each side compares at start (and every 30 s): the second to start updates both.
        let shown = common::try_wait_until(Duration::from_secs(40), || {
            let show = srv.tandemctl(&["failover", "show", "pair"]).ok()?;
            (show.contains("scope definitions         DIFFER from the partner's")
                && show.contains(scope_line))
            .then_some(show)
        });
        assert!(shown.is_some(), "{}", s.logs());
        let list = srv.tandemctl(&["failover", "list"]).expect("list");
        assert!(
            list.lines().nth(1).is_some_and(|l| l.ends_with("DIFFERS")),
            "{list}"
        );
        assert_eq!(
            srv.log()
                .matches("management: the partner's configuration differs")
                .count(),
            1,
            "logged once\n{}",
            srv.log()
        );
    }

    // Mended on B and reloaded: B compares at once, and the one exchange puts both in step.
    let text = std::fs::read_to_string(s.b.config_path()).expect("B's file");
    std::fs::write(
        s.b.config_path(),
        text.replace(exclusion, "failover = \"pair\""),
    )
    .expect("write");
    s.b.tandemctl(&["reload"]).expect("reload");
    for srv in [&s.a, &s.b] {
        let in_step = common::try_wait_until(Duration::from_secs(10), || {
            let show = srv.tandemctl(&["failover", "show", "pair"]).ok()?;
            show.contains("scope definitions         in step with the partner's")
                .then_some(())
        });
        assert!(in_step.is_some(), "{}", s.logs());
        let list = srv.tandemctl(&["failover", "list"]).expect("list");
        assert!(
            list.lines().nth(1).is_some_and(|l| l.ends_with("in step")),
            "{list}"
        );
    }

    // From B's namespace, as the partner would: A answers the right secret only.
    let cfg = control::config::load(s.b.config_path()).expect("B's config");
    let ours = manage::describe(&cfg, "pair").expect("described");
    let a_addr = std::net::SocketAddr::new(std::net::IpAddr::V4(PEER_A), 8647);
    let secret = b"tandem end-to-end test secret".to_vec();
    let ask = |name: &str, secret: Vec<u8>| {
        let op = Op::Compare {
            description: ours.clone(),
        };
        let name = name.to_owned();
        testkit::netns::in_ns(&net.b, move || manage::call(a_addr, &name, &secret, &op))
    };
    match ask("pair", secret.clone()) {
        Ok(Answer::Compared { description }) => {
            assert_eq!(description.relationship, "pair");
            assert_eq!(
                manage::differences(&ours, &description),
                Vec::<String>::new()
            );
        }
        other => panic!("{other:?}"),
    }
    let wrong = ask("pair", b"a guess".to_vec()).expect_err("refused");
    assert!(
        wrong.to_string().contains("authentication failed"),
        "{wrong}"
    );
    let unknown = ask("other", secret).expect_err("refused");
    assert!(
        unknown
            .to_string()
            .contains("no tandem relationship \"other\" here"),
        "{unknown}"
    );
    assert!(
        s.a.log().contains("management: request refused"),
        "{}",
        s.a.log()
    );
}

#[test]
fn replicate_scope_replaces_the_partners_definitions_live() {
    let net = PairNet::new(1);
    // B has a comment of its own that must survive the write.
    let s = Servers::start_edited(
        &net,
        Mode::LoadBalance,
        |a| a,
        |b| {
            b.replace(
                "[[subnet]]",
                "# B's own note: kept across replication\n[[subnet]]",
            )
        },
    );

    // On A, by hand: a reservation for a client of B's hash buckets, of an address B holds
    // (BACKUP: the one B may give), and a DNS server; reloaded live on A only.
    let mac = macs(5, false, 1)[0];
    // (A listing shows bindings only: free and BACKUP records are looked up by address.)
    let backup = (0u32..768).step_by(7).find_map(|i| {
        let a = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 81, 1, 0)) + i);
        let l = s.b.tandemctl_leases(&["--ip", &a.to_string()]);
        l.first().filter(|l| l.state == "backup").map(|l| l.address)
    });
    let reserved = backup.unwrap_or_else(|| panic!("no BACKUP address on B\n{}", s.logs()));
    let reservation = format!(
        "failover = \"pair\"\ndns = [\"10.81.0.53\"]\n\n[[subnet.reservation]]\nmac = \"{}\"\naddress = \"{reserved}\"\n",
        mac_str(mac)
    );
    let text = std::fs::read_to_string(s.a.config_path()).expect("A's file");
    std::fs::write(
        s.a.config_path(),
        text.replace("failover = \"pair\"\n", &reservation),
    )
    .expect("write");
    s.a.tandemctl(&["reload"]).expect("reload on A");

    // B's file has an edit of its own not yet in force: B refuses rather than apply it too.
    let b_text = std::fs::read_to_string(s.b.config_path()).expect("B's file");
    let pending = b_text.replace(
        "failover = \"pair\"\n",
        "failover = \"pair\"\noffer_hold = \"20s\"\n",
    );
    std::fs::write(s.b.config_path(), &pending).expect("write");
    let e =
        s.a.tandemctl(&["replicate", "scope", "10.81.0.0/16"])
            .expect_err("refused by B");
    assert!(
        e.contains("has edits not in force") && e.contains("offer_hold"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_to_string(s.b.config_path()).expect("B's file"),
        pending
    );
    std::fs::write(s.b.config_path(), &b_text).expect("revert");

    let out =
        s.a.tandemctl(&["replicate", "scope", "10.81.0.0/16"])
            .unwrap_or_else(|e| panic!("{e}\n{}", s.logs()));
    assert!(
        out.starts_with("replicated: ")
            && out.contains("relationship pair: partner: subnet 10.81.0.0/16"),
        "{out}"
    );
    let text = std::fs::read_to_string(s.b.config_path()).expect("B's file");
    assert!(
        text.contains("# B's own note: kept across replication")
            && text.contains(&mac_str(mac))
            && text.contains("10.81.0.53"),
        "{text}"
    );
    // Applied live: B answers the reserved client of its buckets with the reserved address.
    let l = net
        .udhcpc(0, mac)
        .unwrap_or_else(|e| panic!("{e}\n{}", s.logs()));
    assert_eq!((l.address, l.server_id), (reserved, Some(B)), "{l:?}");
    // Both sides compare again at once and are in step.
    for srv in [&s.a, &s.b] {
        let in_step = common::try_wait_until(Duration::from_secs(10), || {
            let show = srv.tandemctl(&["failover", "show", "pair"]).ok()?;
            show.contains("scope definitions         in step with the partner's")
                .then_some(())
        });
        assert!(in_step.is_some(), "{}", s.logs());
    }
    // Audited on A; replicating again changes nothing; a scope outside the relationship is
    // refused with the reason.
    let audit = s.a.tandemctl(&["audit"]).expect("audit");
    assert!(audit.contains("replicate"), "{audit}");
    let again =
        s.a.tandemctl(&["replicate", "relationship", "pair"])
            .expect("again");
    assert!(
        again.contains("the partner's scopes were already the same"),
        "{again}"
    );
    let e =
        s.a.tandemctl(&["replicate", "scope", "10.99.0.0/16"])
            .expect_err("no scope");
    assert!(e.contains("no scope 10.99.0.0/16 here"), "{e}");
}

#[test]
fn replicate_auto_pushes_each_reloaded_scope_change_to_the_partner() {
    let net = PairNet::new(1);
    let s = Servers::start_edited(
        &net,
        Mode::LoadBalance,
        |a| a.replace("name = \"pair\"", "name = \"pair\"\nreplicate = \"auto\""),
        |b| b,
    );

    // A hand edit on the primary, reloaded: applied here, and at once on the partner.
    let text = std::fs::read_to_string(s.a.config_path()).expect("A's file");
    std::fs::write(
        s.a.config_path(),
        text.replace(
            "router = [\"10.81.0.1\"]",
            "router = [\"10.81.0.1\"]\ndns = [\"10.81.0.54\"]",
        ),
    )
    .expect("write");
    let out =
        s.a.tandemctl(&["reload"])
            .unwrap_or_else(|e| panic!("{e}\n{}", s.logs()));
    assert!(
        out.contains("subnet 10.81.0.0/16: dns")
            && out.contains("relationship pair: replicated, partner: subnet 10.81.0.0/16: dns"),
        "{out}"
    );
    let b_text = std::fs::read_to_string(s.b.config_path()).expect("B's file");
    assert!(b_text.contains("10.81.0.54"), "{b_text}");
    // A client of B's buckets is told the new DNS server by B.
    let mac = macs(6, false, 1)[0];
    let l = net
        .udhcpc(0, mac)
        .unwrap_or_else(|e| panic!("{e}\n{}", s.logs()));
    assert_eq!(l.server_id, Some(B), "{l:?}");
    let in_step = common::try_wait_until(Duration::from_secs(10), || {
        let show = s.b.tandemctl(&["failover", "show", "pair"]).ok()?;
        show.contains("scope definitions         in step")
            .then_some(())
    });
    assert!(in_step.is_some(), "{}", s.logs());
    // The secondary's own reload pushes nothing (only the primary replicates).
    let out = s.b.tandemctl(&["reload"]).expect("reload on B");
    assert!(!out.contains("replicated"), "{out}");
}

#[test]
fn hot_standby_only_the_primary_serves() {
    let net = PairNet::new(2);
    let mut cap = net.capture();
    let s = Servers::start(&net, Mode::HotStandby);
    for (k, mac) in macs(2, true, 2)
        .into_iter()
        .chain(macs(2, false, 2))
        .enumerate()
    {
        let l = net
            .udhcpc(k % 2, mac)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", mac_str(mac), s.logs()));
        assert_eq!(l.server_id, Some(A), "the standby answered: {l:?}");
    }
    let (msgs, log) = finish(&mut cap);
    assert!(
        msgs.iter()
            .filter(|m| m.is_server_reply())
            .all(|m| m.server_id == Some(A)),
        "the standby B sent a reply in NORMAL"
    );
    assert_eq!(log.per_server().get(&Some(B)), None);
    assert!(log.acks.len() >= 4);
}

#[test]
fn peer_link_cut_while_clients_keep_coming() {
    let _heavy = common::heavy();
    let net = PairNet::new(3);
    let mut cap = net.capture();
    let s = Servers::start(&net, Mode::LoadBalance);
    // Clients keep coming the whole time: perfdhcp, 10 new clients a second, for 30 s.
    let perf = Perfdhcp::new(
        &net.clients[2].ns,
        &PerfTarget::Broadcast {
            iface: "eth0".into(),
        },
    )
    .arg("-r")
    .arg("10")
    .arg("-R")
    .arg("1000")
    .arg("-p")
    .arg("30")
    .spawn();
    std::thread::sleep(Duration::from_secs(2));

    let cut_us = now_us();
    net.peer_link(false);
    let comm_int = |st: &str, _: &str| st == "communications-interrupted";
    wait_state(&s.a, 3 * MRD + 30, "A communications-interrupted", comm_int);
    wait_state(&s.b, 3 * MRD + 30, "B communications-interrupted", comm_int);
    // Both halves are served while the pair can't talk.
    for (k, mac) in macs(3, true, 2)
        .into_iter()
        .chain(macs(3, false, 2))
        .enumerate()
    {
        let l = net
            .udhcpc(k % 2, mac)
            .unwrap_or_else(|e| panic!("{} in COMM-INT: {e}\n{}", mac_str(mac), s.logs()));
        assert!(l.lease_time.is_some_and(|t| t <= MCLT), "{l:?}");
    }
    let heal_us = now_us();
    net.peer_link(true);
    // The driver dials again RECONNECT_AFTER (5 s) after the link dropped.
    s.both_normal(60);
    let report = perf
        .wait(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("perfdhcp: {e}"));
    eprintln!(
        "perfdhcp: sent {:?} received {:?}",
        report.sent, report.received
    );
    assert!(report.acks() > 0, "perfdhcp got nothing: {}", report.output);

    let (_, log) = finish(&mut cap);
    // New leases given while the partner could not be told are within the MCLT.
    let known: BTreeSet<&str> = log
        .acks
        .iter()
        .filter(|a| a.time_us < cut_us)
        .map(|a| a.client.as_str())
        .collect();
    let long: Vec<_> = log
        .longer_than(MCLT, cut_us, heal_us)
        .into_iter()
        .filter(|a| !known.contains(a.client.as_str()))
        .collect();
    assert!(long.is_empty(), "new leases beyond the MCLT: {long:?}");
    let during = log
        .acks
        .iter()
        .filter(|a| (cut_us..heal_us).contains(&a.time_us))
        .count();
    assert!(during >= 4, "only {during} ACKs during the cut");
}

/// A peer path that drops everything (a firewall, a dead hop) rather than failing: each
/// side's dial gets no answer. Without a dial timeout each dial sat in the kernel's SYN
/// retries (1, 3, 7, 15, 31, 63 s after it began), so a path healed 40 s into them came back
/// only at the 63 s retry, half a minute later.
#[test]
fn peer_path_that_drops_everything_reconnects_soon_after_it_heals() {
    let _heavy = common::heavy();
    let net = PairNet::new(1);
    let s = Servers::start(&net, Mode::LoadBalance);
    net.peer_drop(true);
    let comm_int = |st: &str, _: &str| st == "communications-interrupted";
    wait_state(&s.a, 3 * MRD + 30, "A communications-interrupted", comm_int);
    wait_state(&s.b, 3 * MRD + 30, "B communications-interrupted", comm_int);
    std::thread::sleep(Duration::from_secs(45));
    net.peer_drop(false);
    let healed = std::time::Instant::now();
    s.both_normal(90);
    let took = healed.elapsed();
    for (name, server) in [("A", &s.a), ("B", &s.b)] {
        assert!(
            server.log().contains("failover: connect timed out"),
            "{name} never gave up a dial\n{}",
            s.logs()
        );
    }
    // A dial is given up after 5 s and retried 5 s later: NORMAL within about 10 s of the
    // heal (the half minute of the kernel's retries before).
    assert!(
        took < Duration::from_secs(16),
        "both NORMAL only {took:?} after the path healed\n{}",
        s.logs()
    );
}

#[test]
fn kill9_of_the_primary_and_restart_back_to_normal() {
    let net = PairNet::new(1);
    let mut cap = net.capture();
    let mut s = Servers::start(&net, Mode::LoadBalance);
    let before = net
        .udhcpc(0, macs(4, true, 1)[0])
        .unwrap_or_else(|e| panic!("{e}\n{}", s.logs()));
    assert_eq!(before.server_id, Some(A));

    s.a.kill9();
    wait_state(
        &s.b,
        3 * MRD + 30,
        "B communications-interrupted",
        |st, _| st == "communications-interrupted",
    );
    s.a.restart();
    s.both_normal(60);
    // Serving again: the primary's half from A.
    let after = net
        .udhcpc(0, macs(4, true, 2)[1])
        .unwrap_or_else(|e| panic!("{e}\n{}", s.logs()));
    assert_eq!(after.server_id, Some(A));
    finish(&mut cap);
}

#[test]
fn partner_down_survivor_serves_both_halves_and_partner_recovers() {
    let net = PairNet::new(2);
    let mut cap = net.capture();
    let mut s = Servers::start(&net, Mode::LoadBalance);

    kill_and_partner_down(&mut s.b, &s.a);
    let status = s.a.tandemctl(&["status"]).expect("tandemctl status");
    assert!(status.contains("partner-down"), "{status}");

    // Clients of both hash halves, all from A.
    let mut leases = BTreeMap::new();
    for (k, mac) in macs(5, true, 2)
        .into_iter()
        .chain(macs(5, false, 2))
        .enumerate()
    {
        let l = net
            .udhcpc(k % 2, mac)
            .unwrap_or_else(|e| panic!("{} in PARTNER-DOWN: {e}\n{}", mac_str(mac), s.logs()));
        assert_eq!(l.server_id, Some(A), "{l:?}");
        leases.insert(mac, l);
    }
    let buckets: BTreeSet<bool> = leases.keys().map(|m| udhcpc_bucket(*m) < 128).collect();
    assert_eq!(buckets.len(), 2, "both halves served");

    // B comes back: RECOVER (UPDREQALL; draft §9.3.2 step 5), RECOVER-WAIT until the MCLT
    // has passed since it went down, RECOVER-DONE, NORMAL.
    s.b.restart();
    s.both_normal(3 * u64::from(MCLT) + 60);
    let blog = s.b.log();
    for st in ["to=\"recover\"", "to=\"recover-done\""] {
        assert!(blog.contains(st), "B never logged {st}:\n{}", tail(&blog));
    }
    finish(&mut cap);
}

/// Needs pool balancing (the primary moving FREE addresses to BACKUP): without BACKUP
/// addresses the secondary can give no new address, in NORMAL or COMMUNICATIONS-INTERRUPTED.
#[test]
fn secondary_serves_its_half_from_backup_pool() {
    let net = PairNet::new(2);
    let mut cap = net.capture();
    let mut s = Servers::start(&net, Mode::LoadBalance);
    // Pool balancing runs after NORMAL: give it a moment (POOLREQ/POOLRESP, BNDUPDs).
    let backup = common::try_wait_until(Duration::from_secs(30), || {
        let v = s.b.status_json().expect("status");
        let n = v["leases"]["10.81.0.0/16"]["backup"].as_u64().unwrap_or(0);
        (n > 0).then_some(n)
    });
    assert!(
        backup.is_some(),
        "the secondary holds no BACKUP address after NORMAL (pool balancing)\n{}",
        s.logs()
    );
    // NORMAL: the secondary's half from B.
    for (k, mac) in macs(6, false, 3).into_iter().enumerate() {
        let l = net
            .udhcpc(k % 2, mac)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", mac_str(mac), s.logs()));
        assert_eq!(l.server_id, Some(B), "{l:?}");
    }
    // The primary dies: B, COMMUNICATIONS-INTERRUPTED, serves new clients of both halves.
    let killed_at = now_us();
    s.a.kill9();
    wait_state(
        &s.b,
        3 * MRD + 30,
        "B communications-interrupted",
        |st, _| st == "communications-interrupted",
    );
    for (k, mac) in macs(7, true, 2)
        .into_iter()
        .chain(macs(7, false, 2))
        .enumerate()
    {
        let l = net
            .udhcpc(k % 2, mac)
            .unwrap_or_else(|e| panic!("{} from B alone: {e}\n{}", mac_str(mac), s.logs()));
        assert_eq!(l.server_id, Some(B), "{l:?}");
        assert!(l.lease_time.is_some_and(|t| t <= MCLT), "{l:?}");
    }
    s.a.restart();
    s.both_normal(60);
    let (msgs, _) = finish(&mut cap);
    // The hash split holds while both were NORMAL (before the kill); after it B answered
    // everyone, as it must.
    let normal: Vec<DhcpMsg> = msgs.into_iter().filter(|m| m.time_us < killed_at).collect();
    assert!(assert_split(&normal) > 0, "no DISCOVER answered in NORMAL");
}

/// Needs binding replication (BNDUPD sent by the server that ACKs, applied by its partner):
/// every binding one server gives is in the other's lease table once both are NORMAL.
#[test]
fn bindings_replicate_to_the_partner() {
    let net = PairNet::new(2);
    let mut cap = net.capture();
    let s = Servers::start(&net, Mode::LoadBalance);
    let mut given = Vec::new();
    for (k, mac) in macs(8, true, 3).into_iter().enumerate() {
        let l = net
            .udhcpc(k % 2, mac)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", mac_str(mac), s.logs()));
        given.push((l.address, mac_str(mac)));
    }
    let missing = common::try_wait_until(Duration::from_secs(60), || {
        let on_b: BTreeMap<Ipv4Addr, String> =
            s.b.leases()
                .into_iter()
                .filter(|l| l.state == "active" && l.ends > unix_now())
                .map(|l| (l.address, l.chaddr))
                .collect();
        let missing: Vec<_> = given
            .iter()
            .filter(|(addr, mac)| on_b.get(addr) != Some(mac))
            .cloned()
            .collect();
        missing.is_empty().then_some(())
    });
    assert!(
        missing.is_some(),
        "bindings A gave are not in B's lease table: {given:?}\nB: {:?}\n{}",
        s.b.leases(),
        s.logs()
    );
    // Between tandem peers bindings travel many to a BNDUPD: pool balancing alone moved
    // hundreds of addresses to B.
    let v = s.a.status_json().expect("status");
    let r = &v["relationships"][0];
    let sent = r["updates_sent"].as_u64().unwrap_or(0);
    let messages = r["update_messages"].as_u64().unwrap_or(0);
    assert!(
        sent >= 100 && messages > 0 && messages * 4 <= sent,
        "bindings not batched toward the tandem partner: {r}"
    );

    // What Prometheus scrapes from each partner says the same, and promtool accepts it.
    for (name, server) in [("A", &s.a), ("B", &s.b)] {
        let m = server.metrics(HTTP);
        testkit::tools::promtool_check_metrics(&m);
        let v = |sample: &str| {
            common::sample(&m, sample).unwrap_or_else(|| panic!("{name}: no {sample} in\n{m}"))
        };
        let rel = r#"{relationship="pair"}"#;
        assert_eq!(
            v(r#"tandem_failover_state{relationship="pair",state="normal"}"#),
            1.0,
            "{name}"
        );
        assert_eq!(
            v(r#"tandem_failover_partner_state{relationship="pair",state="normal"}"#),
            1.0,
            "{name}"
        );
        assert_eq!(v(&format!("tandem_failover_link_up{rel}")), 1.0, "{name}");
        assert!(
            v(&format!(
                "tandem_failover_last_contact_timestamp_seconds{rel}"
            )) >= (unix_now() - 60) as f64,
            "{name}"
        );
        assert!(
            v(r#"tandem_dhcp_received_total{type="discover",worker="0"}"#) > 0.0,
            "{name}"
        );
        assert_eq!(
            v(r#"tandem_drops_total{reason="malformed",worker="0"}"#),
            0.0,
            "{name}"
        );
        assert!(
            v(r#"tandem_scope_addresses{scope="10.81.0.0/16"}"#) >= 768.0,
            "{name}"
        );
    }
    // A served the clients (theirs are A's hash buckets) and sent their bindings to B.
    let ma = s.a.metrics(HTTP);
    let rel = r#"{relationship="pair"}"#;
    for sample in [
        format!("tandem_failover_bindings_sent_total{rel}"),
        format!("tandem_failover_bndupd_rtt_seconds_count{rel}"),
    ] {
        let n = common::sample(&ma, &sample).unwrap_or(0.0);
        assert!(n > 0.0, "A: {sample} is {n}\n{ma}");
    }
    // Between them, an ACK for each client, every ACK made durable by a measured group
    // commit, and each binding active on both sides.
    let mb = s.b.metrics(HTTP);
    let both = |sample: &str| {
        common::sample(&ma, sample).unwrap_or(0.0) + common::sample(&mb, sample).unwrap_or(0.0)
    };
    assert!(
        both(r#"tandem_dhcp_sent_total{type="ack",worker="0"}"#) >= 3.0,
        "{ma}\n{mb}"
    );
    assert!(
        both(r#"tandem_journal_commit_seconds_count{worker="0"}"#) >= 3.0,
        "{ma}\n{mb}"
    );
    assert!(
        both(r#"tandem_scope_leases{scope="10.81.0.0/16",state="active"}"#) >= 6.0,
        "each binding is active on both sides: {ma}\n{mb}"
    );
    finish(&mut cap);
}

/// The status page (`GET /` on `server.http`), loaded by headless Chromium against a pair in
/// NORMAL: the rendered DOM shows the relationship and its states, the state timeline, the
/// pool bar and a lease looked up by address. The screenshot is kept in
/// `target/test-artifacts/status-page.png`.
#[test]
fn status_page_renders_the_pair_in_chromium() {
    let net = PairNet::new(1);
    let s = Servers::start(&net, Mode::LoadBalance);
    s.both_normal(60);
    let mac = macs(9, true, 1)[0];
    let lease = net
        .udhcpc(0, mac)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", mac_str(mac), s.logs()));

    let artefacts =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&artefacts).expect("artefact dir");
    let shot = artefacts.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let url = format!("http://{HTTP}/?q={}", lease.address);
    let dom = s.a.chromium(&url, Some(&shot));

    let has = |needle: &str| assert!(dom.contains(needle), "no {needle:?} in the page:\n{dom}");
    // The relationship, both states, and the timeline of our state changes ending in NORMAL.
    has(r#"data-name="pair" data-state="normal" data-partner-state="normal""#);
    has(r#"<span class="state normal">normal</span>"#);
    has(r#"data-state="normal" style="width:"#);
    has("we: recover-done → normal");
    // The pool: every address of the scope accounted for, the client's among the active.
    has(r#"data-scope="10.81.0.0/16""#);
    has(r#"data-total="768""#);
    assert!(
        !dom.contains(r#"data-active="0""#),
        "no active lease drawn:\n{dom}"
    );
    // The lease search of `?q=`: the client's address, bound, with its hardware address.
    has(&format!(
        "<td>{}</td><td>active</td><td>{}</td>",
        lease.address,
        mac_str(mac)
    ));
    // Counters, and no error line from the page's fetches.
    has("<th>acks</th>");
    assert!(!dom.contains("cannot reach tandemd"), "{dom}");

    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
}
