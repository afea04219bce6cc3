#![forbid(unsafe_code)]
/// Wall-clock time in whole seconds since 1970-01-01 UTC, as it travels to the failover
/// peer (draft-ietf-dhc-failover-12 §6.1 "time") and into lease records.
///
/// Deliberately not convertible to or from a monotonic instant, so the two cannot be mixed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(pub u32);

impl UnixTime {
    /// The current wall-clock time. Only the binaries' edges call this; cores take `now` in.
    pub fn now() -> Self {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Self(u32::try_from(secs).unwrap_or(u32::MAX))
    }

    /// `self + secs`, saturating (an infinite lease is `u32::MAX`).
    pub fn saturating_add(self, secs: u32) -> Self {
        Self(self.0.saturating_add(secs))
    }

    /// Seconds from `self` until `later`, zero if `later` is not later.
    pub fn until(self, later: UnixTime) -> u32 {
        later.0.saturating_sub(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::UnixTime;

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(UnixTime(5).saturating_add(3), UnixTime(8));
        assert_eq!(UnixTime(u32::MAX - 1).saturating_add(3), UnixTime(u32::MAX));
        assert_eq!(UnixTime(5).until(UnixTime(9)), 4);
        assert_eq!(UnixTime(9).until(UnixTime(5)), 0);
        assert!(UnixTime::now().0 > 1_600_000_000);
    }
}
