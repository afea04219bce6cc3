//! Live configuration: what a re-read configuration file changes against the one in force,
//! and whether the running daemon can take it without a restart (`tandemctl reload`,
//! SIGHUP). [`plan`] is pure: it names every change, or refuses the whole file with every
//! reason, and the caller ([`crate::serve`]) applies an accepted plan at once.
//!
//! Applied live: `log_level`, a subnet's options, lease times, pools and exclusions inside its lease
//! table's span, reservations, decline probation and cap, offer hold; `server_id`,
//! `trusted_relays`, the request and DECLINE rate limits. Refused with the reason, the running
//! configuration staying as it was: anything the daemon opened at start (interfaces,
//! `data_dir`, datapath, workers, dispatch, durability, the admin and HTTP listeners, TLS,
//! `http_auth`, user, the log format), a subnet added or removed or
//! moved to another interface, a pool change that moves the lease table's first or last
//! address (the table would have to be resized), and any change to a failover relationship or
//! to which subnets belong to one. The file is compared with the configuration in force (the
//! last one accepted), not the one at start.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;

use crate::config::{Config, FailoverConfig, Reservation, ServerConfig, SubnetConfig};

/// An accepted change: `config` (the file's, its subnets in the running order, so that
/// scope `i` stays lease table `i`) and what differs, one line per subnet or section.
#[derive(Debug)]
pub struct Plan {
    pub config: Config,
    pub changes: Vec<String>,
}

/// Every reason the file cannot be applied live.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not applied, the running configuration stays: {}", .reasons.join("; "))]
pub struct Refused {
    pub reasons: Vec<String>,
}

/// Compares `new` with the configuration in force, `old`.
pub fn plan(old: &Config, new: &Config) -> Result<Plan, Refused> {
    let mut reasons = Vec::new();
    let mut changes = Vec::new();

    let restart = restart_keys(&old.server, &new.server);
    if !restart.is_empty() {
        reasons.push(format!(
            "server {} changed: {} opened at start; restart tandemd to change {}",
            restart.join(", "),
            if restart.len() == 1 {
                "it is"
            } else {
                "they are"
            },
            if restart.len() == 1 { "it" } else { "them" },
        ));
    }
    let live = live_server_keys(&old.server, &new.server);
    if !live.is_empty() {
        changes.push(format!("server: {}", live.join(", ")));
    }

    // Subnets are matched by prefix; the new file's order does not matter.
    let mut subnets = Vec::with_capacity(old.subnets.len());
    for o in &old.subnets {
        match new.subnets.iter().find(|n| n.prefix == o.prefix) {
            Some(n) => {
                subnet_changes(o, n, &mut changes, &mut reasons);
                subnets.push(n.clone());
            }
            None => reasons.push(format!(
                "subnet {} removed: removing a subnet needs a restart (its lease table is \
                 opened at start)",
                o.prefix
            )),
        }
    }
    for n in &new.subnets {
        if !old.subnets.iter().any(|o| o.prefix == n.prefix) {
            reasons.push(format!(
                "subnet {} added: adding a subnet needs a restart (its lease table is created \
                 at start)",
                n.prefix
            ));
        }
    }

    relationship_changes(old, new, &mut reasons);

    if !reasons.is_empty() {
        return Err(Refused { reasons });
    }
    let mut config = new.clone();
    config.subnets = subnets;
    Ok(Plan { config, changes })
}

/// The `[server]` keys that only a restart changes, by their names in the file.
fn restart_keys(o: &ServerConfig, n: &ServerConfig) -> Vec<&'static str> {
    differing([
        (o.interfaces != n.interfaces, "interfaces"),
        (o.data_dir != n.data_dir, "data_dir"),
        (o.datapath != n.datapath, "datapath"),
        (o.workers != n.workers, "workers"),
        (o.dispatch != n.dispatch, "dispatch"),
        (o.durability != n.durability, "durability"),
        (o.log_format != n.log_format, "log_format"),
        (o.admin != n.admin, "admin"),
        (o.http != n.http, "http"),
        (o.http_tls != n.http_tls, "http_tls_cert/http_tls_key"),
        (o.http_auth != n.http_auth, "http_auth"),
        (o.user != n.user, "user"),
        (o.leasequery_from != n.leasequery_from, "leasequery_from"),
        (o.bulk_leasequery != n.bulk_leasequery, "bulk_leasequery"),
    ])
}

/// The `[server]` keys applied live that changed.
fn live_server_keys(o: &ServerConfig, n: &ServerConfig) -> Vec<&'static str> {
    differing([
        (o.server_id != n.server_id, "server_id"),
        (o.log_level != n.log_level, "log_level"),
        (o.trusted_relays != n.trusted_relays, "trusted_relays"),
        (o.rate_limits.mac != n.rate_limits.mac, "mac_rate/mac_burst"),
        (
            o.rate_limits.circuit != n.rate_limits.circuit,
            "circuit_rate/circuit_burst",
        ),
        (
            o.rate_limits.relay != n.rate_limits.relay,
            "relay_rate/relay_burst",
        ),
        (
            o.decline_limits.mac != n.decline_limits.mac,
            "mac_decline_rate",
        ),
        (
            o.decline_limits.relay != n.decline_limits.relay,
            "relay_decline_rate",
        ),
    ])
}

fn subnet_changes(
    o: &SubnetConfig,
    n: &SubnetConfig,
    changes: &mut Vec<String>,
    reasons: &mut Vec<String>,
) {
    let p = o.prefix;
    if o.interface != n.interface {
        reasons.push(format!(
            "subnet {p}: interface changed: the interfaces served are opened at start"
        ));
    }
    if o.failover != n.failover {
        reasons.push(format!(
            "subnet {p}: failover changed ({} → {}): moving a subnet in or out of a \
             relationship is not done live yet; restart both partners",
            o.failover.as_deref().unwrap_or("none"),
            n.failover.as_deref().unwrap_or("none"),
        ));
    }
    let (os, ns) = (
        crate::serve::scope_config(o).table_spec(),
        crate::serve::scope_config(n).table_spec(),
    );
    if (os.first, os.last) != (ns.first, ns.last) {
        reasons.push(format!(
            "subnet {p}: its pools and reservations now span {}-{}, but its lease table \
             covers {}-{}: a lease table cannot be resized yet (keep the pools' first and \
             last address, or restart with a new data_dir)",
            ns.first, ns.last, os.first, os.last
        ));
    }

    let mut keys: Vec<String> = differing([
        (o.pools != n.pools, "pools"),
        (o.exclude != n.exclude, "exclude"),
        (o.router != n.router, "router"),
        (o.dns != n.dns, "dns"),
        (o.domain_name != n.domain_name, "domain_name"),
        (o.lease_time != n.lease_time, "lease_time"),
        (o.renewal_time != n.renewal_time, "renewal_time"),
        (o.rebinding_time != n.rebinding_time, "rebinding_time"),
        (
            o.decline_probation != n.decline_probation,
            "decline_probation",
        ),
        (
            o.max_abandoned_percent != n.max_abandoned_percent,
            "max_abandoned_percent",
        ),
        (o.offer_hold != n.offer_hold, "offer_hold"),
    ])
    .into_iter()
    .map(str::to_owned)
    .collect();
    if o.reservations != n.reservations {
        let (added, removed) = reservation_diff(&o.reservations, &n.reservations);
        let mut k = String::from("reservations");
        if added + removed > 0 {
            let _ = write!(k, " (+{added} −{removed})");
        } else {
            k.push_str(" (reordered)");
        }
        keys.push(k);
    }
    if !keys.is_empty() {
        changes.push(format!("subnet {p}: {}", keys.join(", ")));
    }
}

/// The keys whose values changed, in the order given.
fn differing<const N: usize>(keys: [(bool, &'static str); N]) -> Vec<&'static str> {
    keys.into_iter()
        .filter_map(|(changed, key)| changed.then_some(key))
        .collect()
}

/// How many reservations `new` has that `old` lacks, and the other way round.
fn reservation_diff(old: &[Reservation], new: &[Reservation]) -> (usize, usize) {
    let key = |r: &Reservation| (r.key.clone(), r.address, r.hostname.clone());
    let o: HashSet<_> = old.iter().map(key).collect();
    let n: HashSet<_> = new.iter().map(key).collect();
    (n.difference(&o).count(), o.difference(&n).count())
}

/// A relationship changes only with a restart today (the management verbs of issue #10
/// will change them live). One thing a subnet change can do to a relationship is caught
/// too: raising the longest lease time of its subnets raises the longest lease the partner
/// may grant when `max_lease_time` is not set, and the running session would still refuse
/// the partner's longer bindings.
fn relationship_changes(old: &Config, new: &Config, reasons: &mut Vec<String>) {
    let names: BTreeSet<&str> = old
        .failover
        .iter()
        .chain(&new.failover)
        .map(|f| f.name.as_str())
        .collect();
    for name in names {
        match (old.relationship(name), new.relationship(name)) {
            (Some(_), None) => reasons.push(format!(
                "failover {name:?} removed: relationships are not removed live yet; restart"
            )),
            (None, Some(_)) => reasons.push(format!(
                "failover {name:?} added: relationships are not added live yet; restart"
            )),
            (Some(o), Some(n)) => {
                let keys = relationship_keys(o, n);
                if !keys.is_empty() {
                    reasons.push(format!(
                        "failover {name:?}: {} changed: relationships are not changed live \
                         yet; restart",
                        keys.join(", ")
                    ));
                } else if o.max_lease_time.is_none() {
                    let (was, now) = (longest_lease(old, name), longest_lease(new, name));
                    if now > was {
                        reasons.push(format!(
                            "failover {name:?}: its subnets' longest lease_time rises from \
                             {was} s to {now} s, which raises the longest lease the partner \
                             may grant (max_lease_time is not set): not live yet; set \
                             max_lease_time in [[failover]] and restart, or restart"
                        ));
                    }
                }
            }
            (None, None) => {}
        }
    }
}

fn longest_lease(config: &Config, relationship: &str) -> u32 {
    config
        .subnets
        .iter()
        .filter(|s| s.failover.as_deref() == Some(relationship))
        .map(|s| s.lease_time)
        .max()
        .unwrap_or(0)
}

fn relationship_keys(o: &FailoverConfig, n: &FailoverConfig) -> Vec<&'static str> {
    differing([
        (o.role != n.role, "role"),
        (o.mode != n.mode, "mode"),
        (o.address != n.address, "address"),
        (o.peer_address != n.peer_address, "peer_address"),
        (o.port != n.port, "port"),
        (o.peer_port != n.peer_port, "peer_port"),
        (o.mclt != n.mclt, "mclt"),
        (o.split != n.split, "split"),
        (o.reserve_percent != n.reserve_percent, "reserve_percent"),
        (
            o.load_balance_max_seconds != n.load_balance_max_seconds,
            "load_balance_max_seconds",
        ),
        (
            o.max_response_delay != n.max_response_delay,
            "max_response_delay",
        ),
        (
            o.max_unacked_updates != n.max_unacked_updates,
            "max_unacked_updates",
        ),
        (
            o.auto_partner_down != n.auto_partner_down,
            "auto_partner_down",
        ),
        (o.peer_software != n.peer_software, "peer_software"),
        (
            o.shared_secret_file != n.shared_secret_file,
            "shared_secret_file",
        ),
        (o.max_lease_time != n.max_lease_time, "max_lease_time"),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[server]
interfaces = ["eth0"]
data_dir = "/tmp/x"

[[subnet]]
prefix = "10.0.0.0/24"
pools = ["10.0.0.10-10.0.0.200"]
dns = ["10.0.0.1"]
failover = "pair"

[[subnet.reservation]]
mac = "02:00:00:00:00:01"
address = "10.0.0.50"

[[subnet]]
prefix = "10.1.0.0/24"
pools = ["10.1.0.10-10.1.0.200"]

[[failover]]
name = "pair"
role = "primary"
address = "192.0.2.1"
peer_address = "192.0.2.2"
mclt = "1h"
peer_software = "isc-dhcpd"
"#;

    fn parse(src: &str) -> Config {
        crate::config::parse(src).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn edited(from: &str, to: &str) -> Config {
        assert!(BASE.contains(from), "{from}");
        parse(&BASE.replacen(from, to, 1))
    }

    #[test]
    fn the_same_file_is_no_change() {
        let p = plan(&parse(BASE), &parse(BASE)).unwrap();
        assert!(p.changes.is_empty(), "{:?}", p.changes);
    }

    #[test]
    fn options_reservations_and_exclusions_are_live_and_named() {
        let new = parse(&BASE.replacen(
            r#"dns = ["10.0.0.1"]"#,
            "dns = [\"10.0.0.53\"]\nexclude = [\"10.0.0.20-10.0.0.29\"]\nlease_time = \"30m\"",
            1,
        ).replacen(
            "[[subnet]]\nprefix = \"10.1.0.0/24\"",
            "[[subnet.reservation]]\nmac = \"02:00:00:00:00:02\"\naddress = \"10.0.0.51\"\n\n[[subnet]]\nprefix = \"10.1.0.0/24\"",
            1,
        ));
        let p = plan(&parse(BASE), &new).unwrap();
        assert_eq!(
            p.changes,
            ["subnet 10.0.0.0/24: exclude, dns, lease_time, reservations (+1 −0)"]
        );
    }

    #[test]
    fn a_reordered_file_keeps_the_running_table_order() {
        let swapped = BASE.replacen(
            "[[subnet]]\nprefix = \"10.1.0.0/24\"\npools = [\"10.1.0.10-10.1.0.200\"]\n",
            "",
            1,
        );
        let swapped = swapped.replacen(
            "[[subnet]]\nprefix = \"10.0.0.0/24\"",
            "[[subnet]]\nprefix = \"10.1.0.0/24\"\npools = [\"10.1.0.10-10.1.0.200\"]\n\n[[subnet]]\nprefix = \"10.0.0.0/24\"",
            1,
        );
        let new = parse(&swapped);
        assert_eq!(new.subnets[0].prefix.to_string(), "10.1.0.0/24");
        let p = plan(&parse(BASE), &new).unwrap();
        assert!(p.changes.is_empty(), "{:?}", p.changes);
        assert_eq!(p.config.subnets[0].prefix.to_string(), "10.0.0.0/24");
    }

    #[test]
    fn what_only_a_restart_changes_is_refused_with_every_reason() {
        let new = edited(r#"interfaces = ["eth0"]"#, r#"interfaces = ["eth1"]"#);
        let e = plan(&parse(BASE), &new).unwrap_err();
        assert_eq!(e.reasons.len(), 1);
        assert!(e.reasons[0].contains("server interfaces changed"), "{e}");

        let new = edited(
            "pools = [\"10.0.0.10-10.0.0.200\"]",
            "pools = [\"10.0.0.10-10.0.0.250\"]",
        );
        let e = plan(&parse(BASE), &new).unwrap_err();
        assert!(e.reasons[0].contains("cannot be resized"), "{e}");
        assert!(e.reasons[0].contains("10.0.0.10-10.0.0.250"), "{e}");

        let new = edited("mclt = \"1h\"", "mclt = \"2h\"");
        let e = plan(&parse(BASE), &new).unwrap_err();
        assert!(
            e.reasons[0].contains("failover \"pair\": mclt changed"),
            "{e}"
        );

        let new = parse(&format!(
            "{BASE}\n[[subnet]]\nprefix = \"10.2.0.0/24\"\npools = [\"10.2.0.10-10.2.0.20\"]\n"
        ));
        let e = plan(&parse(BASE), &new).unwrap_err();
        assert!(e.reasons[0].contains("subnet 10.2.0.0/24 added"), "{e}");

        // Several at once: all of them named.
        let new = parse(
            &BASE
                .replacen("data_dir = \"/tmp/x\"", "data_dir = \"/tmp/y\"", 1)
                .replacen("failover = \"pair\"\n", "", 1),
        );
        let e = plan(&parse(BASE), &new).unwrap_err();
        assert_eq!(e.reasons.len(), 2, "{e}");
    }

    #[test]
    fn a_longer_lease_in_a_failover_subnet_is_refused_without_max_lease_time() {
        let longer = edited(
            r#"dns = ["10.0.0.1"]"#,
            "dns = [\"10.0.0.1\"]\nlease_time = \"2h\"",
        );
        let e = plan(&parse(BASE), &longer).unwrap_err();
        assert!(e.reasons[0].contains("rises from 3600 s to 7200 s"), "{e}");
        // A shorter one is fine, and so is a longer one under an explicit bound.
        let shorter = edited(
            r#"dns = ["10.0.0.1"]"#,
            "dns = [\"10.0.0.1\"]\nlease_time = \"30m\"",
        );
        assert!(plan(&parse(BASE), &shorter).is_ok());
        let bounded = BASE.replacen("mclt = \"1h\"", "mclt = \"1h\"\nmax_lease_time = \"1d\"", 1);
        let longer_bounded = bounded.replacen(
            r#"dns = ["10.0.0.1"]"#,
            "dns = [\"10.0.0.1\"]\nlease_time = \"2h\"",
            1,
        );
        assert!(plan(&parse(&bounded), &parse(&longer_bounded)).is_ok());
    }
}
