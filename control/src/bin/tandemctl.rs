//! `tandemctl`: the operator CLI. The logic lives in `control::ctl`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    control::ctl::main()
}
