//! `tandemd`'s log: tracing to stderr, in a compact human format or as JSON lines
//! (`server.log_format`).

use std::sync::OnceLock;

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

/// Replaces the installed subscriber's filter ([`init`] sets it once).
type SetFilter = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;
static SET_FILTER: OnceLock<SetFilter> = OnceLock::new();

/// Installs the subscriber; a second call does nothing. JSON lines carry `timestamp` (RFC
/// 3339, UTC), `level`, `target`, `threadName` and `fields` (`message` and the event's own
/// fields, `relationship`, `peer`, ...), one event a line. The filter can be replaced later
/// ([`set_level`]).
pub fn init(config_level: Option<&str>, format: LogFormat) {
    let builder = tracing_subscriber::fmt().with_writer(std::io::stderr);
    macro_rules! install {
        ($builder:expr) => {{
            let builder = $builder
                .with_env_filter(filter(config_level))
                .with_filter_reloading();
            let handle = builder.reload_handle();
            if builder.try_init().is_ok() {
                let _ = SET_FILTER.set(Box::new(move |f| {
                    handle.reload(f).map_err(|e| e.to_string())
                }));
            }
        }};
    }
    match format {
        LogFormat::Text => install!(builder.compact().with_ansi(use_color())),
        LogFormat::Json => install!(
            builder
                .json()
                .with_ansi(false)
                .with_thread_names(true)
                .with_current_span(false)
                .with_span_list(false)
        ),
    }
}

/// Puts `server.log_level` in force while the daemon runs (a live reload), unless
/// `TANDEM_LOG` overrides it: then nothing changes and the answer says so.
pub fn set_level(config_level: Option<&str>) -> Result<(), String> {
    if std::env::var(ENV).is_ok_and(|e| !e.trim().is_empty()) {
        return Err(format!("{ENV} is set and overrides log_level"));
    }
    let set = SET_FILTER.get().ok_or("no log subscriber installed")?;
    set(filter(config_level))
}

/// Colour only on a terminal, and never with `NO_COLOR` set (no-color.org).
fn use_color() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}
