//! Compiles the XDP program (`src/xdp_dhcp.c`) with clang into `$OUT_DIR/xdp_dhcp.o`.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "src/xdp_dhcp.c";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-env-changed=CLANG");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("xdp_dhcp.o");
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());
    let status = Command::new(&clang)
        .args([
            "-O2",
            "-g",
            "-target",
            "bpf",
            "-mcpu=v3",
            "-Wall",
            "-Werror",
            "-I/usr/include/x86_64-linux-gnu",
            "-c",
            src,
            "-o",
        ])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("running {clang} (apt install clang libbpf-dev): {e}"));
    assert!(
        status.success(),
        "{clang} failed to compile {src}: {status}"
    );
}
