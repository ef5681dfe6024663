//! A token bucket for the bandwidth limit, re-reading the limit on every
//! call so MIGRATE_SET_MAX_SPEED applies to a running transfer.

use std::time::{Duration, Instant};

/// How much unused bandwidth may accumulate, as time at the current rate.
const BURST: Duration = Duration::from_millis(50);

/// Paces a byte stream to a rate that may change.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A bucket that starts empty.
    pub fn new() -> Self {
        Self {
            tokens: 0.0,
            last: Instant::now(),
        }
    }

    /// Accounts for `bytes` about to be sent at `rate` bytes/s (`None` =
    /// unlimited) and returns how long to wait first.
    pub fn take(&mut self, bytes: u64, rate: Option<u64>) -> Duration {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        let Some(rate) = rate.filter(|&r| r > 0) else {
            self.tokens = 0.0;
            return Duration::ZERO;
        };
        let rate = rate as f64;
        self.tokens = (self.tokens + elapsed * rate).min(rate * BURST.as_secs_f64());
        self.tokens -= bytes as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_never_waits() {
        let mut b = TokenBucket::new();
        assert_eq!(b.take(1 << 30, None), Duration::ZERO);
        assert_eq!(b.take(1 << 30, Some(0)), Duration::ZERO);
    }

    #[test]
    fn a_limit_makes_the_sender_wait_in_proportion() {
        let mut b = TokenBucket::new();
        // 1 MiB at 1 MiB/s from an empty bucket: about a second.
        let wait = b.take(1 << 20, Some(1 << 20));
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        // The debt carries over.
        let wait = b.take(1 << 20, Some(1 << 20));
        assert!(wait > Duration::from_millis(1900), "{wait:?}");
    }
}
