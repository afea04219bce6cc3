//! The monitoring kit in `control/monitoring/`: the alert rules pass `promtool check rules`
//! and their unit tests (`promtool test rules`), every dashboard query is valid PromQL, and
//! every metric the rules and the dashboard name is one tandemd exports
//! ([`control::metrics::CATALOGUE`]), so a renamed metric cannot leave them silently empty.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use control::metrics::CATALOGUE;
use prometheus::proto::MetricType;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("monitoring")
}

fn promtool(args: &[&str], cwd: &Path) {
    let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("promtool is needed (apt: prometheus; .ci/setup installs it)");
    let out = Command::new(promtool)
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every `tandem_...` name in `text`.
fn names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("tandem_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

/// Whether `name` is an exported series: a catalogue name, or a histogram's `_bucket`,
/// `_sum` or `_count`.
fn exported(name: &str) -> bool {
    CATALOGUE.iter().any(|(n, ty, _)| {
        name == *n
            || (*ty == MetricType::HISTOGRAM
                && ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name.strip_suffix(s) == Some(n)))
    })
}

fn dashboard_queries() -> Vec<String> {
    let text = std::fs::read_to_string(dir().join("grafana-dashboard.json")).expect("dashboard");
    let d: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let panels = d["panels"].as_array().expect("panels");
    let queries: Vec<String> = panels
        .iter()
        .filter_map(|p| p["targets"].as_array())
        .flatten()
        .map(|t| t["expr"].as_str().expect("expr").to_owned())
        .collect();
    assert!(queries.len() >= 20, "{queries:?}");
    queries
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    promtool(&["check", "rules", "alerts.yml"], &dir());
    promtool(&["test", "rules", "alerts.test.yml"], &dir());
}

#[test]
fn dashboard_queries_are_valid_promql() {
    // Each query as a recording rule: promtool parses every expression it is given.
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, q) in dashboard_queries().iter().enumerate() {
        let q = q
            .replace("$__rate_interval", "5m")
            .replace("$instance", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: {}\n",
            serde_json::to_string(&q).expect("quote")
        ));
    }
    std::fs::write(tmp.path().join("dashboard.yml"), rules).expect("write");
    promtool(&["check", "rules", "dashboard.yml"], tmp.path());
}

#[test]
fn rules_and_dashboard_name_only_exported_metrics() {
    let alerts = std::fs::read_to_string(dir().join("alerts.yml")).expect("alerts");
    let tests = std::fs::read_to_string(dir().join("alerts.test.yml")).expect("tests");
    let dashboard = dashboard_queries().join("\n");
    for (what, text) in [
        ("alerts.yml", &alerts),
        ("alerts.test.yml", &tests),
        ("dashboard", &dashboard),
    ] {
        let used = names(text);
        assert!(!used.is_empty(), "{what} names no metric");
        let unknown: Vec<_> = used.iter().filter(|n| !exported(n)).collect();
        assert!(
            unknown.is_empty(),
            "{what} names metrics tandemd does not export: {unknown:?}"
        );
    }
    // And the dashboard shows each family but the info ones at least once.
    let shown = names(&dashboard);
    let missing: Vec<_> = CATALOGUE
        .iter()
        .map(|(n, _, _)| *n)
        .filter(|n| !n.ends_with("_info") && *n != "tandem_uptime_seconds")
        .filter(|n| {
            !shown.iter().any(|s| {
                s == n
                    || s.strip_prefix(n)
                        .is_some_and(|r| ["_bucket", "_sum", "_count"].contains(&r))
            })
        })
        .collect();
    assert!(missing.is_empty(), "not on the dashboard: {missing:?}");
}
