//! Log lines that a peer or a stranger can cause at will (a refused connection, a refused
//! binding, a bad message) are rate-limited: a flood of them must not fill the disk or drown
//! the lines an operator needs.

use std::time::Duration;

use super::Instant;

/// Lines let through per [`LogLimit::WINDOW`]; the rest are counted.
pub const BURST: u32 = 10;

/// One kind of line's budget: [`BURST`] lines a minute, then silence, and the next line let
/// through says how many were held back.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogLimit {
    window_start: Instant,
    told: u32,
    held: u64,
}

impl LogLimit {
    /// The budget's period.
    pub const WINDOW: Duration = Duration::from_secs(60);

    pub const fn new() -> Self {
        Self {
            window_start: Instant::ZERO,
            told: 0,
            held: 0,
        }
    }

    /// Whether a line may be logged at `now`: `Some(n)`, with `n` lines held back since the
    /// last one logged, or `None` (this one is held back and counted).
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        if now.saturating_duration_since(self.window_start) >= Self::WINDOW {
            self.window_start = now;
            self.told = 0;
        }
        if self.told < BURST {
            self.told += 1;
            Some(std::mem::take(&mut self.held))
        } else {
            self.held += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_a_minute_then_the_count_of_what_was_held() {
        let mut l = LogLimit::new();
        let t0 = Instant::from_millis(5_000);
        let let_through = (0..1000).filter(|_| l.allow(t0).is_some()).count();
        assert_eq!(let_through, BURST as usize);
        // Still within the minute: held.
        assert_eq!(l.allow(t0 + Duration::from_secs(30)), None);
        // The next minute tells how many were held back.
        assert_eq!(l.allow(t0 + LogLimit::WINDOW), Some(1000 - 10 + 1));
        assert_eq!(l.allow(t0 + LogLimit::WINDOW), Some(0));
    }
}
