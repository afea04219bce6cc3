//! `tandemctl`: the operator CLI.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    eprintln!("tandemctl: not yet wired up");
    std::process::exit(2);
}
