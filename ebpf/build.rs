//! Compiles the XDP programs with clang: `src/xdp_dhcp.c` into `$OUT_DIR/xdp_dhcp.o` (the
//! server's steering program) and `src/xdp_lg_client.c` into `$OUT_DIR/xdp_lg_client.o` (the
//! load generator's reply steering).

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    compile("src/xdp_dhcp.c", "xdp_dhcp.o");
    compile("src/xdp_lg_client.c", "xdp_lg_client.o");
}

fn compile(src: &str, obj: &str) {
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-env-changed=CLANG");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join(obj);
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
