//! `tandemd`: the DHCP failover daemon. The front end lives in `control::daemon`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    control::daemon::main(control::serve::start)
}
