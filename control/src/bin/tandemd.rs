//! `tandemd`: the DHCP failover daemon.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    eprintln!("tandemd: not yet wired up");
    std::process::exit(2);
}
