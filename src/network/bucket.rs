//! A bandwidth cap as a token bucket, kept as virtual time (the generic
//! cell rate algorithm): each message costs `bytes / rate` seconds of the
//! link, up to `burst` bytes may go at once, and messages leave in the
//! order they came. Over any interval T at most `burst + rate × T` bytes
//! leave.

use std::time::Duration;
use tokio::time::Instant;

#[derive(Clone, Debug)]
pub struct TokenBucket {
    /// Bytes per second.
    rate: f64,
    /// How far ahead of `tat` a message may leave (the burst, in time).
    tolerance: Duration,
    /// When the link would be idle if every message so far had left at the rate.
    tat: Instant,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: u32, start: Instant) -> TokenBucket {
        let rate = rate.max(1.0);
        TokenBucket {
            rate,
            tolerance: Duration::from_secs_f64(f64::from(burst) / rate),
            tat: start,
        }
    }

    /// When a message of `bytes` handed over at `now` leaves.
    pub fn take(&mut self, now: Instant, bytes: usize) -> Instant {
        let cost = Duration::from_secs_f64(bytes as f64 / self.rate);
        let earliest = self.tat.checked_sub(self.tolerance).unwrap_or(self.tat);
        let leave = now.max(earliest);
        self.tat = self.tat.max(leave) + cost;
        leave
    }
}
