//! `tandemd`'s log: tracing to stderr in a compact human format.

use tracing_subscriber::EnvFilter;

/// The environment variable that overrides `server.log_level`.
pub const ENV: &str = "TANDEM_LOG";

/// The filter in force: `TANDEM_LOG` if set and valid, else `server.log_level`, else `info`.
pub fn filter(config_level: Option<&str>) -> EnvFilter {
    if let Ok(env) = std::env::var(ENV)
        && !env.trim().is_empty()
    {
        match EnvFilter::builder().parse(&env) {
            Ok(f) => return f,
            Err(e) => eprintln!("tandemd: ignoring {ENV}={env:?}: {e}"),
        }
    }
    config_level
        .and_then(|l| EnvFilter::builder().parse(l).ok())
        .unwrap_or_else(|| EnvFilter::new("info"))
}

/// Installs the subscriber; a second call does nothing.
pub fn init(config_level: Option<&str>) {
    let _ = tracing_subscriber::fmt()
        .compact()
        .with_writer(std::io::stderr)
        .with_ansi(use_color())
        .with_env_filter(filter(config_level))
        .try_init();
}

/// Colour only on a terminal, and never with `NO_COLOR` set (no-color.org).
fn use_color() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}
