//! Outside tools the tests drive the same way from several test crates: Prometheus' promtool
//! and headless Chromium. Both are required where they are used (CI installs them): a missing
//! tool is a broken setup, reported by name, never a skipped check.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The first of `candidates` that exists.
fn find(tool: &str, apt: &str) -> PathBuf {
    ["/usr/bin", "/usr/local/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{tool} is needed (apt: {apt}; .ci/setup installs it)"))
}

/// Runs `promtool check metrics` on an exposition and panics with what it says unless it is
/// clean (names, types, units, help).
pub fn promtool_check_metrics(exposition: &str) {
    let mut check = Command::new(find("promtool", "prometheus"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(exposition.as_bytes())
        .expect("write to promtool");
    let out = check.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Loads `url` in headless Chromium (run through `prefix`, such as `ip netns exec NS`, when
/// given) and returns the DOM once the page's scripts and fetches have run (virtual time);
/// with `screenshot`, first saves what it draws there as a PNG. The flags are those that keep
/// Chromium off the network it cannot reach here, with a fresh profile each time.
pub fn chromium(prefix: &[&str], url: &str, screenshot: Option<&Path>) -> String {
    static RUN: AtomicU32 = AtomicU32::new(0);
    let profile = std::env::temp_dir().join(format!(
        "tandem-chromium-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    let chromium = find("chromium", "chromium");
    let run = |extra: &[String]| {
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&chromium);
                c
            }
            None => Command::new(&chromium),
        };
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=6000",
            "--window-size=1280,1500",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null());
        let out = cmd.output().expect("run chromium");
        assert!(
            out.status.success(),
            "{cmd:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    if let Some(path) = screenshot {
        run(&[format!("--screenshot={}", path.display())]);
    }
    let dom = run(&["--dump-dom".to_owned()]);
    let _ = std::fs::remove_dir_all(&profile);
    dom
}
