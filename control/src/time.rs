//! Wall-clock seconds to and from RFC 3339 (UTC), for the CLI; no time zone database needed.

/// `2026-11-22T04:00:00Z` for Unix seconds `t`.
pub fn format_rfc3339(t: u64) -> String {
    let days = i64::try_from(t / 86_400).unwrap_or(i64::MAX / 2);
    let secs = t % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Why a time string is not one ([`parse_time`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Unix seconds beyond 64 bits.
    #[error("time {0:?} is out of range")]
    OutOfRange(String),
    /// Neither Unix seconds nor RFC 3339.
    #[error("invalid time {0:?}: expected RFC 3339 (2026-11-22T04:00:00Z) or Unix seconds")]
    Invalid(String),
    /// RFC 3339 before the Unix epoch.
    #[error("time {0:?} is before 1970")]
    BeforeEpoch(String),
}

/// Parses Unix seconds (`1763784000`) or RFC 3339 (`2026-11-22T04:00:00Z`, `...+01:00`, fractional
/// seconds ignored, `t`/`z`/space accepted).
pub fn parse_time(text: &str) -> Result<u64, TimeError> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map_err(|_| TimeError::OutOfRange(text.to_owned()));
    }
    let bad = || TimeError::Invalid(text.to_owned());
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, TimeError> {
        let s = text.get(r).ok_or_else(bad)?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let (y, mo, d, h, mi, s) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 60 {
        return Err(bad());
    }
    let mut rest = &text[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let rb = rest.as_bytes();
            if rb.len() != 6 || !matches!(rb[0], b'+' | b'-') || rb[3] != b':' {
                return Err(bad());
            }
            let oh: i64 = rest[1..3].parse().map_err(|_| bad())?;
            let om: i64 = rest[4..6].parse().map_err(|_| bad())?;
            if oh > 23 || om > 59 {
                return Err(bad());
            }
            let o = oh * 3600 + om * 60;
            if rb[0] == b'-' { -o } else { o }
        }
    };
    let t = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s.min(59) - offset;
    u64::try_from(t).map_err(|_| TimeError::BeforeEpoch(text.to_owned()))
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's `days_from_civil` / `civil_from_days`.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// `1h02m03s`, `3d04h`, `42s`.
pub fn format_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s:02}s"),
        (0, _, _) => format!("{h}h{m:02}m{s:02}s"),
        _ => format!("{d}d{h:02}h{m:02}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for t in [
            0,
            1,
            86_399,
            951_782_400,
            1_763_784_000,
            4_102_444_800,
            253_402_300_799,
        ] {
            assert_eq!(parse_time(&format_rfc3339(t)), Ok(t), "{t}");
        }
        assert_eq!(format_rfc3339(1_763_784_000), "2025-11-22T04:00:00Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn parses() {
        assert_eq!(parse_time("1763784000"), Ok(1_763_784_000));
        assert_eq!(parse_time("2025-11-22T05:00:00+01:00"), Ok(1_763_784_000));
        assert_eq!(parse_time("2025-11-22t04:00:00.123z"), Ok(1_763_784_000));
        assert_eq!(parse_time("2025-11-21T23:00:00-05:00"), Ok(1_763_784_000));
        for bad in [
            "",
            "yesterday",
            "2025-11-22",
            "2025-02-30T00:00:00Z",
            "2025-11-22T24:00:00Z",
            "2025-11-22T04:00:00",
            "1969-12-31T23:59:59Z",
            "2025-11-22T04:00:00+1:00",
            "२०२५-11-22T04:00:00Z",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(42), "42s");
        assert_eq!(format_duration(3723), "1h02m03s");
        assert_eq!(format_duration(3 * 86_400 + 4 * 3600), "3d04h00m");
    }
}
