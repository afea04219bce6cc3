//! `tandemd`'s configuration (DESIGN.md §6): TOML in, validated [`Config`] out.
//!
//! The file is first read into a tree that keeps the span of every key and value (`raw`); the
//! validator then walks it once, collecting every error it finds (syntax aside, where the TOML parser
//! stops at the first) as `FILE:LINE:COL: reason`. Unknown keys are errors.

pub mod edit;
mod raw;
mod types;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

pub use types::*;

/// One problem in a configuration file, at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line.
    pub line: u32,
    /// 1-based column (in characters).
    pub col: u32,
    /// What is wrong, in a sentence without a trailing period.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}

/// Every problem found in one file; displays one `FILE:LINE:COL: reason` per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    /// The file as named by the operator.
    pub file: PathBuf,
    /// In file order; never empty.
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{e}", self.file.display())?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Why [`load`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file was read but is not a valid configuration.
    #[error("{0}")]
    Invalid(ConfigErrors),
}

/// Reads and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, LoadError> {
    let src = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse(&src).map_err(|errors| {
        LoadError::Invalid(ConfigErrors {
            file: path.to_owned(),
            errors,
        })
    })
}

/// Validates a configuration held in memory; errors carry positions in `src`, sorted.
pub fn parse(src: &str) -> Result<Config, Vec<ConfigError>> {
    let index = raw::LineIndex::new(src);
    let root: raw::Node = match toml::from_str(src) {
        Ok(root) => root,
        Err(e) => {
            let (line, col) = e.span().map_or((1, 1), |span| index.span_position(&span));
            return Err(vec![ConfigError {
                line,
                col,
                message: format!(
                    "TOML syntax: {}",
                    e.message().trim_end().replace('\n', "; ")
                ),
            }]);
        }
    };
    validate::validate(&root, &index)
}

/// Why a duration string is not one ([`parse_duration`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not `<integer><unit>`s.
    #[error("invalid duration {0:?}: expected e.g. \"90s\", \"1h\", \"1d\" or \"1h30m\"")]
    Invalid(String),
    /// More seconds than 64 bits hold.
    #[error("duration {0:?} is too long")]
    Overflow(String),
    /// More seconds than the 32 bits the protocol and the lease records have.
    #[error("duration {0:?} is too long (at most {max} s)", max = u32::MAX)]
    TooLong(String),
}

/// Parses a duration: one or more `<integer><unit>` with units `w`, `d`, `h`, `m`, `s`
/// (`"90s"`, `"1h"`, `"1d"`, `"1h30m"`), in seconds.
pub fn parse_duration(text: &str) -> Result<u32, DurationError> {
    let bad = || DurationError::Invalid(text.to_owned());
    if text.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        let unit = rest[digits..].chars().next().ok_or_else(bad)?;
        let scale: u64 = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(bad()),
        };
        total = number
            .checked_mul(scale)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| DurationError::Overflow(text.to_owned()))?;
        rest = &rest[digits + 1..];
    }
    u32::try_from(total).map_err(|_| DurationError::TooLong(text.to_owned()))
}

/// Parses a MAC address, `02:00:00:00:00:01` (or with `-`).
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = text.split([':', '-']);
    for byte in &mut out {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// `bytes` as lowercase hex, two digits a byte, `sep` between bytes (`":"`: `01:02:0a`).
pub fn format_hex(bytes: &[u8], sep: &str) -> String {
    let mut s = String::with_capacity(bytes.len() * (2 + sep.len()));
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push_str(sep);
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Parses hex bytes, `01:02:0a`, `01-02-0a`, `01020a` or `0x01020a`; at least one byte.
pub fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let text = text.strip_prefix("0x").unwrap_or(text);
    let digits: String = if text.contains([':', '-']) {
        let mut s = String::new();
        for p in text.split([':', '-']) {
            match p.len() {
                1 => s.push('0'),
                2 => {}
                _ => return None,
            }
            s.push_str(p);
        }
        s
    } else {
        text.to_owned()
    };
    if digits.is_empty()
        || !digits.len().is_multiple_of(2)
        || !digits.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).ok())
        .collect()
}

/// Why a prefix string is not one ([`parse_prefix`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("invalid prefix {0:?}: expected ADDRESS/LENGTH, e.g. \"10.0.0.0/16\"")]
    NoLength(String),
    #[error("invalid prefix {text:?}: {addr:?} is not an IPv4 address")]
    Address { text: String, addr: String },
    #[error("invalid prefix {0:?}: length must be 0..=32")]
    Length(String),
    #[error("invalid prefix {text:?}: host bits are set (did you mean {network}/{len}?)")]
    HostBits {
        text: String,
        network: std::net::Ipv4Addr,
        len: u8,
    },
}

/// Parses `10.0.0.0/16`; host bits must be clear.
pub fn parse_prefix(text: &str) -> Result<Ipv4Prefix, PrefixError> {
    let (a, l) = text
        .split_once('/')
        .ok_or_else(|| PrefixError::NoLength(text.to_owned()))?;
    let addr: std::net::Ipv4Addr = a.parse().map_err(|_| PrefixError::Address {
        text: text.to_owned(),
        addr: a.to_owned(),
    })?;
    let len: u8 = l
        .parse()
        .ok()
        .filter(|l| *l <= 32)
        .ok_or_else(|| PrefixError::Length(text.to_owned()))?;
    let network = u32::from(addr) & types::mask(len);
    if network != u32::from(addr) {
        return Err(PrefixError::HostBits {
            text: text.to_owned(),
            network: std::net::Ipv4Addr::from(network),
            len,
        });
    }
    Ok(Ipv4Prefix { addr, len })
}

/// Why an address range string is not one ([`parse_range`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// A range written as a prefix, and not a valid one.
    #[error(transparent)]
    Prefix(#[from] PrefixError),
    #[error("invalid address range {text:?}: {addr:?} is not an IPv4 address")]
    Address { text: String, addr: String },
    #[error("invalid address range {text:?}: {first} is after {last}")]
    Reversed {
        text: String,
        first: std::net::Ipv4Addr,
        last: std::net::Ipv4Addr,
    },
}

/// Parses an address range: `A-B`, a single address `A`, or a prefix `A/N`.
pub fn parse_range(text: &str) -> Result<AddrRange, RangeError> {
    if text.contains('/') {
        return Ok(parse_prefix(text).map(Ipv4Prefix::range)?);
    }
    let ip = |s: &str| {
        s.trim()
            .parse::<std::net::Ipv4Addr>()
            .map_err(|_| RangeError::Address {
                text: text.to_owned(),
                addr: s.trim().to_owned(),
            })
    };
    let (first, last) = match text.split_once('-') {
        Some((a, b)) => (ip(a)?, ip(b)?),
        None => {
            let a = ip(text)?;
            (a, a)
        }
    };
    if first > last {
        return Err(RangeError::Reversed {
            text: text.to_owned(),
            first,
            last,
        });
    }
    Ok(AddrRange { first, last })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("1h"), Ok(3600));
        assert_eq!(parse_duration("1d"), Ok(86_400));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("0s"), Ok(0));
        assert_eq!(parse_duration("2w"), Ok(1_209_600));
        for bad in [
            "",
            "1",
            "h",
            "1x",
            "1h30",
            "-1s",
            "1.5h",
            " 1h",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert!(parse_duration("50000d").is_err());
    }

    #[test]
    fn macs_hex_prefixes_ranges() {
        assert_eq!(parse_mac("02:00:00:00:00:0a"), Some([2, 0, 0, 0, 0, 10]));
        assert_eq!(parse_mac("02-00-00-00-00-0A"), Some([2, 0, 0, 0, 0, 10]));
        for bad in [
            "02:00:00:00:00",
            "02:00:00:00:00:00:00",
            "2:0:0:0:0:0",
            "zz:00:00:00:00:00",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
        assert_eq!(parse_hex("01:02:0a"), Some(vec![1, 2, 10]));
        assert_eq!(format_hex(&[1, 2, 10], ":"), "01:02:0a");
        assert_eq!(format_hex(&[1, 2, 10], ""), "01020a");
        assert_eq!(format_hex(&[], ":"), "");
        assert_eq!(parse_hex("0x01020a"), Some(vec![1, 2, 10]));
        assert_eq!(parse_hex("1:2"), Some(vec![1, 2]));
        assert_eq!(parse_hex("abc"), None);
        assert_eq!(parse_hex(""), None);
        assert_eq!(parse_hex("é1"), None);
        let p = parse_prefix("10.0.0.0/16").unwrap();
        assert_eq!(p.last(), std::net::Ipv4Addr::new(10, 0, 255, 255));
        assert!(
            parse_prefix("10.0.0.1/16")
                .unwrap_err()
                .to_string()
                .contains("10.0.0.0/16")
        );
        assert!(parse_prefix("10.0.0.0/33").is_err());
        assert_eq!(
            parse_prefix("0.0.0.0/0").unwrap().last(),
            std::net::Ipv4Addr::BROADCAST
        );
        assert_eq!(parse_range("10.0.0.5").unwrap().len(), 1);
        assert_eq!(parse_range("10.0.0.0/24").unwrap().len(), 256);
        assert_eq!(parse_range("10.0.0.5 - 10.0.0.9").unwrap().len(), 5);
        assert!(parse_range("10.0.0.9-10.0.0.5").is_err());
    }
}
