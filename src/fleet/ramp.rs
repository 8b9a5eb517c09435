//! When the ramp is over: every device of this process has been started
//! and has connected or failed to (a device idling disconnected counts at
//! once), and with a step plan the first stage is being measured. Send lag
//! from then on is what the generator's self-check judges; the ramp is
//! reported on its own.

use super::generator::{CpuMark, RampEnd};

/// Devices counted into the run so far.
#[derive(Debug, Default)]
pub(crate) struct RampCount {
    settled: u32,
    connected: u32,
    /// The first stage's measure window opened (or there are no stages).
    measuring: bool,
    end: Option<RampEnd>,
}

impl RampCount {
    /// A ramp that also waits for the first stage when `stages`.
    pub fn new(stages: bool) -> Self {
        RampCount {
            measuring: !stages,
            ..RampCount::default()
        }
    }

    /// A device has started (connected or not).
    pub fn settled(&mut self, connected: bool) {
        self.settled += 1;
        self.connected += u32::from(connected);
    }

    /// The first stage's measure window opened.
    pub fn measuring(&mut self) {
        self.measuring = true;
    }

    /// Ends the ramp if `spawned` of `own` devices says it is over; true
    /// the one time it ends.
    pub fn try_end(&mut self, spawned: u32, own: u32) -> bool {
        if self.end.is_some() || spawned < own || self.settled < own || !self.measuring {
            return false;
        }
        self.end = Some(RampEnd {
            mark: CpuMark::now(),
            devices: own,
            connected: self.connected,
        });
        true
    }

    /// Where the ramp ended, if it has.
    pub fn end(&self) -> Option<RampEnd> {
        self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ramp_ends_once_when_every_device_has_settled() {
        let mut r = RampCount::new(false);
        assert!(!r.try_end(2, 3), "a device is not spawned yet");
        r.settled(true);
        r.settled(false);
        assert!(!r.try_end(3, 3), "a device has not settled");
        r.settled(true);
        assert!(r.try_end(3, 3));
        assert!(!r.try_end(3, 3), "only once");
        let end = r.end().unwrap();
        assert_eq!((end.devices, end.connected), (3, 2));
    }

    #[test]
    fn with_stages_the_ramp_waits_for_the_first_measure_window() {
        let mut r = RampCount::new(true);
        r.settled(true);
        assert!(!r.try_end(1, 1));
        r.measuring();
        assert!(r.try_end(1, 1));
        // A shard with no device of its own: over at once.
        assert!(RampCount::new(false).try_end(0, 0));
    }
}
