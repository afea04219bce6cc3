//! Prometheus metrics: the [`Status`] document in the text exposition format (version 0.0.4),
//! served at `/metrics` by [`crate::http`].
//!
//! Every metric is derived from one status snapshot taken at scrape time, so the exposition
//! is as consistent as the status is and costs the workers nothing: they only ever add to
//! their own relaxed counters (`dataplane::stats`). Names follow Prometheus conventions:
//! the `tandem_` prefix, base units (seconds, not the ns and ms the status keeps),
//! `_total` on counters, `_timestamp_seconds` on Unix times (alerts subtract `time()`),
//! states as a gauge per state that is 1 for the current one. [`CATALOGUE`] lists them all;
//! the Grafana dashboard and alert rules in `control/monitoring/` use only names from it
//! (checked by `control/tests/metrics_catalogue.rs`).

use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{Encoder, TextEncoder};

use crate::status::{ConfigCheck, FailoverState, HistogramStatus, LeaseState, Status};

/// The exposition format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every metric family tandem exports: name, type, help.
pub const CATALOGUE: &[(&str, MetricType, &str)] = &[
    (
        "tandem_build_info",
        MetricType::GAUGE,
        "tandemd's version (always 1).",
    ),
    (
        "tandem_uptime_seconds",
        MetricType::GAUGE,
        "Seconds since tandemd started.",
    ),
    (
        "tandem_datapath_info",
        MetricType::GAUGE,
        "The datapath in use (always 1).",
    ),
    (
        "tandem_failover_info",
        MetricType::GAUGE,
        "A failover relationship: our role and its mode (always 1).",
    ),
    (
        "tandem_failover_state",
        MetricType::GAUGE,
        "Our failover state: 1 for the current state, 0 for the others.",
    ),
    (
        "tandem_failover_partner_state",
        MetricType::GAUGE,
        "The partner's failover state as last reported: 1 for that state, 0 for the others.",
    ),
    (
        "tandem_failover_state_change_timestamp_seconds",
        MetricType::GAUGE,
        "When we entered the current failover state (Unix time).",
    ),
    (
        "tandem_failover_link_up",
        MetricType::GAUGE,
        "Whether the peer link is up (1) or not (0).",
    ),
    (
        "tandem_failover_link_change_timestamp_seconds",
        MetricType::GAUGE,
        "When the peer link last came up or went down (Unix time; 0: not since start).",
    ),
    (
        "tandem_failover_last_contact_timestamp_seconds",
        MetricType::GAUGE,
        "When a message from the partner was last accepted (Unix time).",
    ),
    (
        "tandem_failover_unacked_updates",
        MetricType::GAUGE,
        "Bindings sent to the partner and not yet acknowledged.",
    ),
    (
        "tandem_failover_bindings_sent_total",
        MetricType::COUNTER,
        "Bindings sent to the partner in BNDUPDs.",
    ),
    (
        "tandem_failover_update_messages_total",
        MetricType::COUNTER,
        "BNDUPD messages sent to the partner.",
    ),
    (
        "tandem_failover_bindings_received_total",
        MetricType::COUNTER,
        "Bindings received in the partner's BNDUPDs.",
    ),
    (
        "tandem_failover_bindings_refused_total",
        MetricType::COUNTER,
        "Bindings the partner refused in its BNDACKs.",
    ),
    (
        "tandem_failover_bndupd_rtt_seconds",
        MetricType::HISTOGRAM,
        "Time from a BNDUPD to its BNDACK.",
    ),
    (
        "tandem_failover_config_check",
        MetricType::GAUGE,
        "Whether the partner is configured as we are, as far as the protocol shows it (MCLT, split): 1 for the outcome (in-step, differs, unknown), 0 for the others.",
    ),
    (
        "tandem_failover_config_mismatches_total",
        MetricType::COUNTER,
        "Times the partner came up configured otherwise than we are.",
    ),
    (
        "tandem_failover_scopes_check",
        MetricType::GAUGE,
        "Whether the partner's scope definitions and settings match ours, compared over the management channel: 1 for the outcome (in-step, differs, unknown), 0 for the others.",
    ),
    (
        "tandem_failover_scope_mismatches_total",
        MetricType::COUNTER,
        "Times a new difference between our scope definitions and the partner's was found.",
    ),
    (
        "tandem_scope_failover_info",
        MetricType::GAUGE,
        "The failover relationship a scope belongs to (always 1).",
    ),
    (
        "tandem_scope_leases",
        MetricType::GAUGE,
        "Addresses of a scope by binding state.",
    ),
    (
        "tandem_scope_addresses",
        MetricType::GAUGE,
        "Addresses of a scope's pools.",
    ),
    (
        "tandem_scope_utilisation_ratio",
        MetricType::GAUGE,
        "Active leases over the scope's addresses.",
    ),
    (
        "tandem_dhcp_received_total",
        MetricType::COUNTER,
        "Well-formed DHCP/BOOTP requests read, by message type.",
    ),
    (
        "tandem_dhcp_sent_total",
        MetricType::COUNTER,
        "DHCP replies sent, by message type.",
    ),
    (
        "tandem_frames_received_total",
        MetricType::COUNTER,
        "Frames a worker received.",
    ),
    (
        "tandem_frames_sent_total",
        MetricType::COUNTER,
        "Frames a worker sent.",
    ),
    (
        "tandem_frames_dispatched_total",
        MetricType::COUNTER,
        "Frames a worker received and handed to a sibling worker.",
    ),
    (
        "tandem_drops_total",
        MetricType::COUNTER,
        "Frames and requests dropped, by reason.",
    ),
    (
        "tandem_silent_total",
        MetricType::COUNTER,
        "Valid requests deliberately not answered, by reason.",
    ),
    (
        "tandem_worker_batches_total",
        MetricType::COUNTER,
        "Receive batches a worker handled.",
    ),
    (
        "tandem_worker_busy_seconds_total",
        MetricType::COUNTER,
        "Time a worker spent handling batches and sending their replies.",
    ),
    (
        "tandem_worker_batch_frames",
        MetricType::HISTOGRAM,
        "Frames per receive batch.",
    ),
    (
        "tandem_journal_commit_seconds",
        MetricType::HISTOGRAM,
        "Journal group commit latency (write and fdatasync).",
    ),
    (
        "tandem_journal_commit_entries",
        MetricType::HISTOGRAM,
        "Journal entries made durable per group commit.",
    ),
    (
        "tandem_xdp_packets_total",
        MetricType::COUNTER,
        "What the XDP program did with the frames it saw, by verdict.",
    ),
    (
        "tandem_xdp_lb_filter",
        MetricType::GAUGE,
        "Whether the XDP load-balancing filter is on (1) or not (0).",
    ),
    (
        "tandem_leasequery_queries_total",
        MetricType::COUNTER,
        "Leasequeries taken, by transport (udp: RFC 4388/6148, bulk: RFC 6926) and kind.",
    ),
    (
        "tandem_leasequery_replies_total",
        MetricType::COUNTER,
        "Leasequery replies sent, by transport and type (active, unassigned, unknown, done).",
    ),
    (
        "tandem_leasequery_refused_total",
        MetricType::COUNTER,
        "UDP leasequeries not answered, by reason.",
    ),
    (
        "tandem_bulk_leasequery_done_total",
        MetricType::COUNTER,
        "Bulk leasequeries ended, by the status of their DHCPLEASEQUERYDONE.",
    ),
    (
        "tandem_bulk_leasequery_connections_total",
        MetricType::COUNTER,
        "Bulk leasequery connections, by what happened to them.",
    ),
];

/// The families being built, in [`CATALOGUE`] order.
struct Families(Vec<MetricFamily>);

type Labels<'a> = &'a [(&'a str, &'a str)];

impl Families {
    fn new() -> Self {
        Families(
            CATALOGUE
                .iter()
                .map(|(name, ty, help)| {
                    let mut f = MetricFamily::default();
                    f.set_name((*name).to_owned());
                    f.set_help((*help).to_owned());
                    f.set_field_type(*ty);
                    f
                })
                .collect(),
        )
    }

    fn push(&mut self, name: &str, labels: Labels<'_>, fill: impl FnOnce(&mut Metric)) {
        let Some(f) = self.0.iter_mut().find(|f| f.name() == name) else {
            debug_assert!(false, "{name} is not in the catalogue");
            return;
        };
        let mut m = Metric::default();
        let mut pairs: Vec<LabelPair> = labels
            .iter()
            .map(|(k, v)| {
                let mut l = LabelPair::default();
                l.set_name((*k).to_owned());
                l.set_value((*v).to_owned());
                l
            })
            .collect();
        pairs.sort_by(|a, b| a.name().cmp(b.name()));
        m.set_label(pairs);
        fill(&mut m);
        f.mut_metric().push(m);
    }

    fn gauge(&mut self, name: &str, labels: Labels<'_>, v: f64) {
        self.push(name, labels, |m| {
            let mut g = Gauge::default();
            g.set_value(v);
            m.set_gauge(g);
        });
    }

    fn counter(&mut self, name: &str, labels: Labels<'_>, v: u64) {
        self.push(name, labels, |m| {
            let mut c = Counter::default();
            c.set_value(v as f64);
            m.set_counter(c);
        });
    }

    /// `h`, whose bounds and sum count `per_unit` to the base unit (1e9 for ns).
    fn histogram(&mut self, name: &str, labels: Labels<'_>, h: &HistogramStatus, per_unit: f64) {
        self.push(name, labels, |m| {
            let mut out = Histogram::default();
            let mut cumulative = 0u64;
            out.set_bucket(
                h.bounds
                    .iter()
                    .zip(&h.counts)
                    .map(|(&bound, &n)| {
                        cumulative = cumulative.saturating_add(n);
                        let mut b = Bucket::default();
                        b.set_upper_bound(bound as f64 / per_unit);
                        b.set_cumulative_count(cumulative);
                        b
                    })
                    .collect(),
            );
            out.set_sample_count(h.count());
            out.set_sample_sum(h.sum as f64 / per_unit);
            m.set_histogram(out);
        });
    }

    fn into_vec(self) -> Vec<MetricFamily> {
        self.0
            .into_iter()
            .filter(|f| !f.get_metric().is_empty())
            .collect()
    }
}

/// Every own failover state (a gauge each); the partner's adds `unknown`.
const STATES: [FailoverState; 12] = [
    FailoverState::Startup,
    FailoverState::Normal,
    FailoverState::CommunicationsInterrupted,
    FailoverState::PartnerDown,
    FailoverState::PotentialConflict,
    FailoverState::ResolutionInterrupted,
    FailoverState::ConflictDone,
    FailoverState::Recover,
    FailoverState::RecoverWait,
    FailoverState::RecoverDone,
    FailoverState::Paused,
    FailoverState::Shutdown,
];

/// The names of every drop and no-answer reason, so that a counter that has not moved is
/// exported as 0 (a series that appears only at its first increment defeats `rate()`).
fn drop_reasons() -> impl Iterator<Item = &'static str> {
    use dataplane::engine::DropReason as EngineDrop;
    use dataplane::stats::DropReason;
    DropReason::ALL
        .iter()
        .map(|r| r.name())
        .chain(EngineDrop::ALL.iter().map(|r| r.name()))
        .chain(["tx-error"])
}

fn silent_reasons() -> impl Iterator<Item = &'static str> {
    dataplane::engine::SilentReason::ALL
        .iter()
        .map(|r| r.name())
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// The families of `status`, as [`render`] encodes them.
pub fn families(status: &Status) -> Vec<MetricFamily> {
    let mut f = Families::new();
    f.gauge("tandem_build_info", &[("version", &status.version)], 1.0);
    f.gauge("tandem_uptime_seconds", &[], status.uptime as f64);
    f.gauge(
        "tandem_datapath_info",
        &[("datapath", &status.datapath)],
        1.0,
    );

    for r in &status.relationships {
        let rel = r.name.as_str();
        let l: Labels<'_> = &[("relationship", rel)];
        f.gauge(
            "tandem_failover_info",
            &[
                ("relationship", rel),
                ("role", r.role.as_str()),
                ("mode", r.mode.as_str()),
            ],
            1.0,
        );
        for s in STATES {
            f.gauge(
                "tandem_failover_state",
                &[("relationship", rel), ("state", s.as_str())],
                flag(r.state == s),
            );
        }
        for s in std::iter::once(FailoverState::Unknown).chain(STATES) {
            f.gauge(
                "tandem_failover_partner_state",
                &[("relationship", rel), ("state", s.as_str())],
                flag(r.partner_state == s),
            );
        }
        f.gauge(
            "tandem_failover_state_change_timestamp_seconds",
            l,
            r.state_since as f64,
        );
        f.gauge("tandem_failover_link_up", l, flag(r.link_up));
        f.gauge(
            "tandem_failover_link_change_timestamp_seconds",
            l,
            r.link_since as f64,
        );
        f.gauge(
            "tandem_failover_last_contact_timestamp_seconds",
            l,
            r.last_heard as f64,
        );
        f.gauge(
            "tandem_failover_unacked_updates",
            l,
            r.unacked_updates as f64,
        );
        f.counter("tandem_failover_bindings_sent_total", l, r.updates_sent);
        f.counter(
            "tandem_failover_update_messages_total",
            l,
            r.update_messages,
        );
        f.counter(
            "tandem_failover_bindings_refused_total",
            l,
            r.updates_refused,
        );
        f.counter(
            "tandem_failover_bindings_received_total",
            l,
            r.updates_received,
        );
        f.histogram(
            "tandem_failover_bndupd_rtt_seconds",
            l,
            &r.bndupd_rtt_ms,
            1e3,
        );
        for c in [
            ConfigCheck::InStep,
            ConfigCheck::Differs,
            ConfigCheck::Unknown,
        ] {
            f.gauge(
                "tandem_failover_config_check",
                &[("relationship", rel), ("check", c.as_str())],
                flag(r.config_check == c),
            );
        }
        f.counter(
            "tandem_failover_config_mismatches_total",
            l,
            r.config_mismatches,
        );
        for c in [
            ConfigCheck::InStep,
            ConfigCheck::Differs,
            ConfigCheck::Unknown,
        ] {
            f.gauge(
                "tandem_failover_scopes_check",
                &[("relationship", rel), ("check", c.as_str())],
                flag(r.scopes_check == c),
            );
        }
        f.counter(
            "tandem_failover_scope_mismatches_total",
            l,
            r.scope_mismatches,
        );
    }

    for (scope, counts) in &status.leases {
        let total: u64 = counts.values().sum();
        for s in LeaseState::ALL {
            let n = counts.get(&s).copied().unwrap_or(0);
            f.gauge(
                "tandem_scope_leases",
                &[("scope", scope), ("state", s.as_str())],
                n as f64,
            );
        }
        f.gauge("tandem_scope_addresses", &[("scope", scope)], total as f64);
        let active = counts.get(&LeaseState::Active).copied().unwrap_or(0);
        let ratio = if total == 0 {
            0.0
        } else {
            active as f64 / total as f64
        };
        f.gauge("tandem_scope_utilisation_ratio", &[("scope", scope)], ratio);
        if let Some(rel) = status.scope_failover.get(scope) {
            f.gauge(
                "tandem_scope_failover_info",
                &[("scope", scope), ("relationship", rel)],
                1.0,
            );
        }
    }

    for w in &status.workers {
        let id = w.id.to_string();
        let l: Labels<'_> = &[("worker", &id)];
        for kind in dataplane::stats::MESSAGE_KINDS {
            let lk: Labels<'_> = &[("worker", &id), ("type", kind)];
            f.counter(
                "tandem_dhcp_received_total",
                lk,
                w.received.get(kind).copied().unwrap_or(0),
            );
            f.counter(
                "tandem_dhcp_sent_total",
                lk,
                w.sent.get(kind).copied().unwrap_or(0),
            );
        }
        f.counter("tandem_frames_received_total", l, w.rx);
        f.counter("tandem_frames_sent_total", l, w.tx);
        f.counter("tandem_frames_dispatched_total", l, w.dispatched);
        for reason in drop_reasons() {
            let n = w.dropped.get(reason).copied().unwrap_or(0);
            f.counter(
                "tandem_drops_total",
                &[("worker", &id), ("reason", reason)],
                n,
            );
        }
        for reason in silent_reasons() {
            let n = w.silent.get(reason).copied().unwrap_or(0);
            f.counter(
                "tandem_silent_total",
                &[("worker", &id), ("reason", reason)],
                n,
            );
        }
        f.counter("tandem_worker_batches_total", l, w.batches);
        f.push("tandem_worker_busy_seconds_total", l, |m| {
            let mut c = Counter::default();
            c.set_value(w.busy_ns as f64 / 1e9);
            m.set_counter(c);
        });
        f.histogram("tandem_worker_batch_frames", l, &w.batch_frames, 1.0);
        f.histogram("tandem_journal_commit_seconds", l, &w.commit_ns, 1e9);
        f.histogram("tandem_journal_commit_entries", l, &w.commit_entries, 1.0);
    }

    for x in &status.xdp {
        let i = x.interface.as_str();
        for (verdict, n) in [
            ("pass", x.pass),
            ("redirect", x.redirect),
            ("no-xsk", x.no_xsk),
            ("lb-drop", x.lb_drop),
            ("rate-relay", x.rate_relay),
            ("rate-circuit", x.rate_circuit),
            ("rate-mac", x.rate_mac),
        ] {
            f.counter(
                "tandem_xdp_packets_total",
                &[("interface", i), ("mode", &x.mode), ("verdict", verdict)],
                n,
            );
        }
        f.gauge(
            "tandem_xdp_lb_filter",
            &[("interface", i)],
            flag(x.lb_filter),
        );
    }
    let lq = &status.leasequery;
    for c in &lq.queries {
        let l = [
            ("transport", c.transport.as_str()),
            ("kind", c.kind.as_str()),
        ];
        f.counter("tandem_leasequery_queries_total", &l, c.count);
    }
    for c in &lq.replies {
        let l = [
            ("transport", c.transport.as_str()),
            ("type", c.kind.as_str()),
        ];
        f.counter("tandem_leasequery_replies_total", &l, c.count);
    }
    for (name, label, counts) in [
        ("tandem_leasequery_refused_total", "reason", &lq.refused),
        ("tandem_bulk_leasequery_done_total", "status", &lq.bulk_done),
        (
            "tandem_bulk_leasequery_connections_total",
            "event",
            &lq.bulk_connections,
        ),
    ] {
        for c in counts {
            f.counter(name, &[(label, c.kind.as_str())], c.count);
        }
    }
    f.into_vec()
}

/// `status` in the text exposition format.
pub fn render(status: &Status) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 * 1024);
    if let Err(e) = TextEncoder::new().encode(&families(status), &mut out) {
        // Only an invalid family can fail, and every one is built here from the catalogue.
        tracing::error!(error = %e, "metrics: cannot encode");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FailoverMode, Role};
    use crate::status::{RelationshipStatus, WorkerStatus, XdpStatus};
    use std::collections::BTreeMap;

    fn status() -> Status {
        Status {
            version: "0.1.0".into(),
            uptime: 42,
            datapath: "xdp".into(),
            relationships: vec![RelationshipStatus {
                name: "pair".into(),
                role: Role::Primary,
                mode: FailoverMode::LoadBalance,
                state: FailoverState::Normal,
                partner_state: FailoverState::Normal,
                state_since: 1_700_000_000,
                unacked_updates: 3,
                updates_sent: 10,
                update_messages: 4,
                updates_refused: 1,
                updates_received: 0,
                resync: None,
                link_up: true,
                link_since: 1_700_000_001,
                last_heard: 1_700_000_100,
                bndupd_rtt_ms: HistogramStatus {
                    bounds: vec![1, 2, 4],
                    counts: vec![1, 2, 0, 1],
                    sum: 12,
                },
                history: Vec::new(),
                mclt: 3600,
                primary_buckets: 128,
                partner_settings: None,
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
                rx: 100,
                dispatched: 0,
                tx: 90,
                dropped: BTreeMap::from([("malformed".to_owned(), 5)]),
                silent: BTreeMap::new(),
                ignored: BTreeMap::new(),
                received: BTreeMap::from([("discover".to_owned(), 50), ("request".to_owned(), 45)]),
                sent: BTreeMap::from([("offer".to_owned(), 45), ("ack".to_owned(), 45)]),
                batches: 20,
                busy_ns: 1_500_000_000,
                batch_frames: HistogramStatus::default(),
                commit_ns: HistogramStatus {
                    bounds: vec![16_000, 32_000],
                    counts: vec![0, 3, 1],
                    sum: 2_000_000,
                },
                commit_entries: HistogramStatus::default(),
            }],
            leases: BTreeMap::from([(
                "10.0.0.0/24".to_owned(),
                BTreeMap::from([(LeaseState::Active, 25), (LeaseState::Free, 75)]),
            )]),
            scope_failover: BTreeMap::from([("10.0.0.0/24".to_owned(), "pair".to_owned())]),
            xdp: vec![XdpStatus {
                interface: "eth0".into(),
                mode: "native".into(),
                pass: 7,
                redirect: 100,
                no_xsk: 0,
                lb_drop: 3,
                rate_relay: 0,
                rate_circuit: 0,
                rate_mac: 0,
                lb_filter: true,
                rate_limits: BTreeMap::new(),
            }],
            leasequery: {
                let stats = crate::leasequery::Stats::default();
                stats.count_query(
                    crate::leasequery::Transport::Udp,
                    crate::leasequery::QueryKind::Address,
                );
                stats.status()
            },
        }
    }

    fn text() -> String {
        String::from_utf8(render(&status())).expect("utf-8")
    }

    fn has(text: &str, line: &str) {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in\n{text}"
        );
    }

    #[test]
    fn states_are_one_gauge_per_state() {
        let t = text();
        has(
            &t,
            r#"tandem_failover_state{relationship="pair",state="normal"} 1"#,
        );
        has(
            &t,
            r#"tandem_failover_state{relationship="pair",state="partner-down"} 0"#,
        );
        has(
            &t,
            r#"tandem_failover_partner_state{relationship="pair",state="unknown"} 0"#,
        );
        has(&t, r#"tandem_failover_link_up{relationship="pair"} 1"#);
        has(
            &t,
            r#"tandem_failover_config_check{check="differs",relationship="pair"} 1"#,
        );
        has(
            &t,
            r#"tandem_failover_config_check{check="in-step",relationship="pair"} 0"#,
        );
        has(
            &t,
            r#"tandem_failover_config_mismatches_total{relationship="pair"} 1"#,
        );
        has(
            &t,
            r#"tandem_failover_last_contact_timestamp_seconds{relationship="pair"} 1700000100"#,
        );
    }

    #[test]
    fn histograms_are_cumulative_in_base_units() {
        let t = text();
        has(
            &t,
            r#"tandem_failover_bndupd_rtt_seconds_bucket{relationship="pair",le="0.001"} 1"#,
        );
        has(
            &t,
            r#"tandem_failover_bndupd_rtt_seconds_bucket{relationship="pair",le="0.002"} 3"#,
        );
        has(
            &t,
            r#"tandem_failover_bndupd_rtt_seconds_bucket{relationship="pair",le="0.004"} 3"#,
        );
        has(
            &t,
            r#"tandem_failover_bndupd_rtt_seconds_bucket{relationship="pair",le="+Inf"} 4"#,
        );
        has(
            &t,
            r#"tandem_failover_bndupd_rtt_seconds_count{relationship="pair"} 4"#,
        );
        has(
            &t,
            r#"tandem_failover_bndupd_rtt_seconds_sum{relationship="pair"} 0.012"#,
        );
        has(
            &t,
            r#"tandem_journal_commit_seconds_bucket{worker="0",le="0.000032"} 3"#,
        );
        has(&t, r#"tandem_worker_busy_seconds_total{worker="0"} 1.5"#);
    }

    #[test]
    fn counters_that_never_moved_are_zero_not_absent() {
        let t = text();
        has(&t, r#"tandem_drops_total{reason="malformed",worker="0"} 5"#);
        has(&t, r#"tandem_drops_total{reason="shed",worker="0"} 0"#);
        has(
            &t,
            r#"tandem_dhcp_received_total{type="decline",worker="0"} 0"#,
        );
        has(&t, r#"tandem_dhcp_sent_total{type="ack",worker="0"} 45"#);
        has(
            &t,
            r#"tandem_scope_leases{scope="10.0.0.0/24",state="backup"} 0"#,
        );
        has(
            &t,
            r#"tandem_scope_utilisation_ratio{scope="10.0.0.0/24"} 0.25"#,
        );
        has(
            &t,
            r#"tandem_xdp_packets_total{interface="eth0",mode="native",verdict="lb-drop"} 3"#,
        );
    }

    #[test]
    fn every_family_has_help_and_type_and_a_conventional_name() {
        let t = text();
        for (name, ty, _) in CATALOGUE {
            assert!(name.starts_with("tandem_"), "{name}");
            assert_eq!(
                *ty == MetricType::COUNTER,
                name.ends_with("_total"),
                "{name}"
            );
            has(
                &t,
                &format!("# TYPE {name} {}", format!("{ty:?}").to_lowercase()),
            );
            assert!(t.contains(&format!("# HELP {name} ")), "{name}");
        }
    }

    #[test]
    fn an_idle_daemon_exports_what_it_has() {
        let s = Status {
            relationships: Vec::new(),
            workers: Vec::new(),
            leases: BTreeMap::new(),
            xdp: Vec::new(),
            ..status()
        };
        let t = String::from_utf8(render(&s)).expect("utf-8");
        has(&t, r#"tandem_build_info{version="0.1.0"} 1"#);
        assert!(!t.contains("tandem_failover_state"), "{t}");
    }
}
