//! Uplink pacing on absolute deadlines: packet `n` of a listening period is
//! due at `start + n × 60 ms`, never `last send + 60 ms`, so a late send does
//! not push every later packet back (and its lateness is measured as send
//! lag instead of silently stretching the speech).

use super::FRAME;
use tokio::time::Instant;

/// The schedule of one listening period.
#[derive(Clone, Copy, Debug)]
pub struct Pacer {
    start: Instant,
    next: u64,
}

impl Pacer {
    /// Starts a schedule whose first packet is due at `start`.
    pub fn new(start: Instant) -> Self {
        Pacer { start, next: 0 }
    }

    /// Index of the next packet to send.
    pub fn index(&self) -> u64 {
        self.next
    }

    /// When packet `n` is due.
    pub fn deadline_of(&self, n: u64) -> Instant {
        self.start + FRAME * n as u32
    }

    /// When the next packet is due.
    pub fn next_deadline(&self) -> Instant {
        self.deadline_of(self.next)
    }

    /// Marks the next packet sent; returns its scheduled instant.
    pub fn advance(&mut self) -> Instant {
        let due = self.next_deadline();
        self.next += 1;
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn deadlines_are_absolute_multiples_of_the_frame() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        assert_eq!(p.advance(), t0);
        assert_eq!(p.advance(), t0 + Duration::from_millis(60));
        assert_eq!(p.deadline_of(10), t0 + Duration::from_millis(600));
        assert_eq!(p.next_deadline(), t0 + Duration::from_millis(120));
        assert_eq!(p.index(), 2);
    }

    #[test]
    fn a_late_send_does_not_shift_later_deadlines() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        p.advance();
        // Whatever the wall clock did, packet 1 is still due at 60 ms.
        assert_eq!(p.advance(), t0 + Duration::from_millis(60));
    }
}
