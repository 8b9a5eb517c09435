//! Periodic stalls: the link freezes for `length` every `every`, starting
//! at `first` (Wi-Fi roaming, a 4G handover). Nothing comes out during a
//! freeze; whatever would have, comes out when it ends.

use std::time::Duration;
use tokio::time::Instant;

#[derive(Clone, Debug)]
pub struct Stalls {
    first: Instant,
    every: Duration,
    length: Duration,
}

impl Stalls {
    pub fn new(first: Instant, every: Duration, length: Duration) -> Stalls {
        Stalls {
            first,
            every: every.max(Duration::from_millis(1)),
            length: length.min(every),
        }
    }

    /// The end of the freeze `t` falls in, if it falls in one.
    pub fn frozen_until(&self, t: Instant) -> Option<Instant> {
        let since = t.checked_duration_since(self.first)?;
        let k = since.as_nanos() / self.every.as_nanos();
        let start = self.first + self.every * u32::try_from(k).ok()?;
        let end = start + self.length;
        (t < end).then_some(end)
    }
}
