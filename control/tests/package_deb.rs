//! The Debian package: `control/packaging/build-deb` packs the test's own binaries, and
//! `control/packaging/test-install` installs the package into a throwaway overlay of this
//! machine's root (private mount and network namespaces) and runs tandemd there as the unit
//! does: as the `tandem` user with the unit's ambient capabilities and nothing else. The test
//! reads what it reports: the package, the user, file modes, the unit's `systemd-analyze`
//! verdict and exposure score, the running process's ids and capabilities, and the purge.
//! Needs root (namespaces, overlayfs, chroot), as the end-to-end tests do.
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const PACKAGING: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging");

/// Bits of the capabilities the unit grants: NET_BIND_SERVICE (10), NET_ADMIN (12), NET_RAW
/// (13), IPC_LOCK (14), PERFMON (38), BPF (39).
const UNIT_CAPS: u64 = (1 << 10) | (1 << 12) | (1 << 13) | (1 << 14) | (1 << 38) | (1 << 39);

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn the_deb_installs_and_runs_as_the_unit_runs_it() {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_tandemd"))
        .parent()
        .expect("bin dir");
    let out = tempfile::tempdir().expect("tempdir");
    let built = run(Command::new("bash")
        .arg(format!("{PACKAGING}/build-deb"))
        .arg("--bin-dir")
        .arg(bin_dir)
        .arg("--out")
        .arg(out.path()));
    let deb = built.lines().last().expect("the package's path").to_owned();
    assert!(
        deb.ends_with("_amd64.deb") || deb.ends_with(".deb"),
        "{built}"
    );

    let contents = run(Command::new("dpkg-deb").args(["--contents", &deb]));
    for f in [
        "./usr/sbin/tandemd",
        "./usr/sbin/tandemctl",
        "./lib/systemd/system/tandemd.service",
        "./etc/tandem/tandem.toml",
        "./usr/share/man/man8/tandemd.8.gz",
        "./usr/share/man/man8/tandemctl.8.gz",
        "./usr/share/man/man5/tandem.toml.5.gz",
        "./usr/share/bash-completion/completions/tandemctl",
        "./usr/share/tandem/monitoring/alerts.yml",
    ] {
        assert!(
            contents.lines().any(|l| l.ends_with(f)),
            "{f} not in the package:\n{contents}"
        );
    }
    // The shipped example configuration is valid as it is.
    run(Command::new(env!("CARGO_BIN_EXE_tandemd"))
        .args(["--check", "--config"])
        .arg(format!("{PACKAGING}/tandem.toml")));

    let report = run(Command::new("bash")
        .arg(format!("{PACKAGING}/test-install"))
        .arg(&deb));
    let mut seen: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for line in report.lines() {
        if let Some((k, v)) = line.split_once(": ") {
            seen.entry(k).or_default().push(v);
        }
    }
    let one = |k: &str| -> &str {
        seen.get(k)
            .and_then(|v| v.first())
            .copied()
            .unwrap_or_else(|| panic!("no {k:?} in the report:\n{report}"))
    };
    assert!(
        one("installed").ends_with("install ok installed"),
        "{report}"
    );
    assert_eq!(
        one("user"),
        "tandem:/var/lib/tandem:/usr/sbin/nologin",
        "{report}"
    );
    let modes = &seen["mode"];
    for want in [
        "/var/lib/tandem 750 tandem:tandem",
        "/etc/tandem 750 root:tandem",
        "/etc/tandem/tandem.toml 640 root:tandem",
    ] {
        assert!(modes.contains(&want), "{want}: {report}");
    }
    assert_eq!(one("manpages"), "3", "{report}");
    assert_eq!(one("man-render"), "1", "{report}");
    assert_eq!(
        one("completion"),
        "complete -F _tandemctl tandemctl",
        "{report}"
    );
    assert_eq!(one("verify"), "ok", "systemd-analyze verify: {report}");
    let exposure: f64 = one("security")
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score: {report}"));
    assert!(
        exposure <= 3.0,
        "systemd-analyze security exposure {exposure}: {report}"
    );
    assert!(
        one("status").contains(env!("CARGO_PKG_VERSION")),
        "{report}"
    );

    // The process: not root, exactly the unit's capabilities, no way to gain more.
    let proc: BTreeMap<&str, &str> = seen["proc"]
        .iter()
        .filter_map(|l| l.split_once(": "))
        .collect();
    let uid = proc["Uid"].split_whitespace().collect::<Vec<_>>();
    assert!(
        uid.len() == 4 && uid.iter().all(|u| *u != "0" && *u == uid[0]),
        "{report}"
    );
    for set in ["CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        let v = u64::from_str_radix(proc[set].trim(), 16).expect("hex");
        assert_eq!(
            v, UNIT_CAPS,
            "{set} is {v:#x}, not {UNIT_CAPS:#x}: {report}"
        );
    }
    assert_eq!(proc["NoNewPrivs"].trim(), "1", "{report}");

    // What it wrote is the tandem user's, files 0600 (the socket too) and directories 0750.
    let data = &seen["data"];
    assert!(data.len() >= 5, "{report}");
    for entry in data {
        let f: Vec<&str> = entry.split_whitespace().collect();
        let want = if f[3] == "d" { "750" } else { "600" };
        assert_eq!((f[1], f[2]), (want, "tandem"), "{entry}: {report}");
    }
    assert!(
        one("metrics").parse::<u64>().unwrap_or(0) > 1000,
        "{report}"
    );
    assert_eq!(one("stopped"), "0", "{report}");
    assert_eq!(one("purged"), "user-gone data-gone", "{report}");
    println!("{report}");
}
