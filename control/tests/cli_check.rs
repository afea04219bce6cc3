//! `tandemd --check`, `--version`, `--help` and usage errors, through the real binary.
use std::process::{Command, Output};

fn tandemd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tandemd"))
        .args(args)
        .env_remove("TANDEM_LOG")
        .output()
        .expect("run tandemd")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const GOOD: &str = r#"[server]
interfaces = ["eth0"]
data_dir = "/var/lib/tandem"

[[subnet]]
prefix = "10.0.0.0/16"
pools = ["10.0.1.0-10.0.255.254"]
failover = "edge-pair"

[[subnet.reservation]]
mac = "02:00:00:00:00:01"
address = "10.0.1.5"

[[failover]]
name = "edge-pair"
role = "primary"
address = "192.0.2.1"
peer_address = "192.0.2.2"
mclt = "1h"
shared_secret_file = "/etc/tandem/edge-pair.secret"
"#;

#[test]
fn check_good_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("good.toml");
    std::fs::write(&path, GOOD).expect("write");
    let out = tandemd(&["--check", "--config", path.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout.trim_end(),
        format!(
            "{}: ok (1 subnet, 1 reservation, 1 failover relationship; interfaces eth0, datapath auto, durability sync)",
            path.display()
        )
    );
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    assert!(!dir.path().join("tandemd.sock").exists());
}

#[test]
fn check_bad_file_lists_every_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    let bad = GOOD
        .replace("interfaces = [\"eth0\"]", "interfaces = []")
        .replace("10.0.1.0-10.0.255.254", "10.1.0.0-10.1.0.9")
        .replace("mclt = \"1h\"", "mclt = \"0s\"\nsplit = 999");
    std::fs::write(&path, bad).expect("write");
    let p = path.display().to_string();
    let out = tandemd(&["--check", &format!("--config={p}")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            format!("{p}:2:14: `interfaces` must name at least one interface"),
            format!("{p}:7:10: pool 10.1.0.0-10.1.0.9 is outside the subnet's prefix 10.0.0.0/16"),
            format!("{p}:19:8: `mclt` must be longer than 0s"),
            format!("{p}:20:9: `split` = 999 is out of range 0..=256"),
        ]
    );
}

#[test]
fn check_syntax_error_and_missing_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("syntax.toml");
    std::fs::write(&path, "[server]\ninterfaces = [\"eth0\"\n").expect("write");
    let out = tandemd(&["--check", "--config", path.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr,
        format!(
            "{}:3:1: TOML syntax: invalid array; expected `]`\n",
            path.display()
        )
    );

    let missing = dir.path().join("nope.toml");
    let out = tandemd(&["--check", "--config", missing.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("nope.toml: No such file or directory"),
        "{stderr}"
    );
}

#[test]
fn version_help_usage() {
    let out = tandemd(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("tandemd {}", env!("CARGO_PKG_VERSION"))
    );

    let out = tandemd(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("tandemd --check --config FILE"));

    for args in [
        &[][..],
        &["--check"],
        &["--config"],
        &["--bogus"],
        &["--config", "a", "extra"],
    ] {
        let out = tandemd(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).starts_with("tandemd: "),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}
