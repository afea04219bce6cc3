//! `tandemd`'s log: tracing to stderr, in a compact human format or as JSON lines
//! (`server.log_format`).

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The environment variable that overrides `server.log_level`.
pub const ENV: &str = "TANDEM_LOG";

/// The longest filter accepted.
const MAX_FILTER_LEN: usize = 1024;

/// Parses a log filter: comma-separated directives, each a level (`trace`, `debug`, `info`,
/// `warn`, `error`, `off`) or `target=level` with a module path as the target
/// (`control::failover=debug,info`). tracing's span and field filters (`[span{field=..}]`)
/// are refused: their values are compiled as regular expressions, and the fuzzer found a
/// `log_level` whose compilation ran for minutes.
pub fn parse(s: &str) -> Result<EnvFilter, String> {
    if s.trim().is_empty() {
        return Err("empty".to_owned());
    }
    if s.len() > MAX_FILTER_LEN {
        return Err(format!("longer than {MAX_FILTER_LEN} bytes"));
    }
    for d in s.split(',').map(str::trim) {
        let (target, level) = match d.split_once('=') {
            Some((t, l)) => (Some(t), l),
            None => (None, d),
        };
        if let Some(t) = target
            && (t.is_empty()
                || !t
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-' | '.')))
        {
            return Err(format!(
                "{d:?}: a target is a module path (span and field filters are not supported)"
            ));
        }
        let known = ["trace", "debug", "info", "warn", "error", "off"];
        if !known.iter().any(|k| k.eq_ignore_ascii_case(level)) {
            return Err(format!(
                "{d:?}: the level is one of trace, debug, info, warn, error, off"
            ));
        }
    }
    EnvFilter::builder().parse(s).map_err(|e| e.to_string())
}

/// The filter in force: `TANDEM_LOG` if set and valid, else `server.log_level`, else `info`.
pub fn filter(config_level: Option<&str>) -> EnvFilter {
    if let Ok(env) = std::env::var(ENV)
        && !env.trim().is_empty()
    {
        match parse(&env) {
            Ok(f) => return f,
            Err(e) => eprintln!("tandemd: ignoring {ENV}={env:?}: {e}"),
        }
    }
    config_level
        .and_then(|l| parse(l).ok())
        .unwrap_or_else(|| EnvFilter::new("info"))
}

/// Installs the subscriber; a second call does nothing. JSON lines carry `timestamp` (RFC
/// 3339, UTC), `level`, `target`, `threadName` and `fields` (`message` and the event's own
/// fields, `relationship`, `peer`, ...), one event a line.
pub fn init(config_level: Option<&str>, format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter(config_level));
    let _ = match format {
        LogFormat::Text => builder.compact().with_ansi(use_color()).try_init(),
        LogFormat::Json => builder
            .json()
            .with_ansi(false)
            .with_thread_names(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
}

/// Colour only on a terminal, and never with `NO_COLOR` set (no-color.org).
fn use_color() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}
