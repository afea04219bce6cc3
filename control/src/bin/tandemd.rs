//! `tandemd`: the DHCP failover daemon. The front end lives in `control::daemon`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // The dataplane is wired here (fill `hooks.backend`, start workers observing `hooks.shutdown`).
    control::daemon::main(|_config, _hooks| Ok(()))
}
