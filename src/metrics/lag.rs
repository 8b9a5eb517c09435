//! Send lag as each device holds it: a histogram that costs nothing while
//! empty and four bytes per sample while small.
//!
//! A [`LatencyHistogram`] (HdrHistogram, 1 µs .. 1 h, 3 significant digits)
//! is ~184 KiB of counters, which per device was most of a device's memory.
//! A device only needs the samples of one turn (or one flush) before it hands
//! them to the collector, so [`LagHistogram`] keeps up to [`SMALL_SAMPLES`]
//! raw microsecond values and only becomes a full histogram past that (the
//! collector's totals do; a device hands its samples over first, see
//! [`super::Tally::is_full`]). Every figure is the one the full histogram
//! gives for the same samples: the raw values are recorded into it exactly
//! as they would have been one by one.

use super::summary::{LatencyHistogram, Percentiles};
use std::time::Duration;

/// Raw samples kept before a full histogram is needed (1 KiB).
pub const SMALL_SAMPLES: usize = 256;

/// The highest value a sample keeps, in µs (the full histogram's ceiling, one hour).
const MAX_MICROS: u64 = 3_600_000_000;

/// Samples as raw microseconds, or a full histogram once there are many.
#[derive(Clone, Debug)]
enum Store {
    Small(Vec<u32>),
    Full(Box<LatencyHistogram>),
}

/// A latency histogram that starts as a short list of raw samples.
#[derive(Clone, Debug)]
pub struct LagHistogram {
    store: Store,
}

impl Default for LagHistogram {
    fn default() -> Self {
        LagHistogram {
            store: Store::Small(Vec::new()),
        }
    }
}

fn micros(d: Duration) -> u32 {
    // MAX_MICROS < u32::MAX, so the cast is lossless.
    (d.as_micros().min(u128::from(MAX_MICROS))) as u32
}

impl LagHistogram {
    /// Records one duration (clamped to one hour, like [`LatencyHistogram`]).
    pub fn record(&mut self, d: Duration) {
        match &mut self.store {
            Store::Small(v) if v.len() < SMALL_SAMPLES => v.push(micros(d)),
            Store::Small(_) => {
                self.grow().record(d);
            }
            Store::Full(h) => h.record(d),
        }
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        match &self.store {
            Store::Small(v) => v.len() as u64,
            Store::Full(h) => h.count(),
        }
    }

    /// True when the next sample would need a full histogram: a device
    /// hands its samples to the collector at this point.
    pub fn is_full(&self) -> bool {
        match &self.store {
            Store::Small(v) => v.len() >= SMALL_SAMPLES,
            Store::Full(_) => true,
        }
    }

    /// Turns the raw samples into a full histogram (from now on).
    fn grow(&mut self) -> &mut LatencyHistogram {
        if let Store::Small(v) = &self.store {
            let mut h = LatencyHistogram::new();
            for &us in v {
                h.record(Duration::from_micros(u64::from(us)));
            }
            self.store = Store::Full(Box::new(h));
        }
        match &mut self.store {
            Store::Full(h) => h,
            Store::Small(_) => unreachable!("grown just above"),
        }
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, other: &LagHistogram) {
        match (&mut self.store, &other.store) {
            (_, Store::Small(o)) if o.is_empty() => {}
            (Store::Small(v), Store::Small(o)) if v.len() + o.len() <= SMALL_SAMPLES => v.extend_from_slice(o),
            (_, Store::Small(o)) => {
                let h = self.grow();
                for &us in o {
                    h.record(Duration::from_micros(u64::from(us)));
                }
            }
            (_, Store::Full(o)) => self.grow().merge(o),
        }
    }

    /// The same samples as a full histogram.
    pub fn to_histogram(&self) -> LatencyHistogram {
        match &self.store {
            Store::Full(h) => (**h).clone(),
            Store::Small(_) => {
                let mut copy = self.clone();
                copy.grow();
                copy.to_histogram()
            }
        }
    }

    /// Value at quantile `q` (0..=1) in ms, as [`LatencyHistogram::quantile_ms`].
    pub fn quantile_ms(&self, q: f64) -> f64 {
        match &self.store {
            Store::Full(h) => h.quantile_ms(q),
            Store::Small(_) => self.to_histogram().quantile_ms(q),
        }
    }

    /// The report's percentile object.
    pub fn percentiles(&self) -> Percentiles {
        match &self.store {
            Store::Full(h) => h.percentiles(),
            Store::Small(_) => self.to_histogram().percentiles(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lags(n: u64) -> impl Iterator<Item = Duration> {
        // A spread of values from 0 µs to ~40 ms, with repeats.
        (0..n).map(|i| Duration::from_micros((i * 7919) % 40_000))
    }

    #[test]
    fn small_and_full_give_the_figures_of_one_histogram() {
        for n in [0, 1, 17, SMALL_SAMPLES as u64, SMALL_SAMPLES as u64 + 1, 5000] {
            let mut small = LagHistogram::default();
            let mut reference = LatencyHistogram::new();
            for d in lags(n) {
                small.record(d);
                reference.record(d);
            }
            assert_eq!(small.percentiles(), reference.percentiles(), "{n} samples");
            assert_eq!(small.count(), n);
            assert_eq!(small.quantile_ms(0.99), reference.quantile_ms(0.99));
        }
    }

    #[test]
    fn merging_many_small_histograms_equals_recording_every_sample() {
        let mut total = LagHistogram::default();
        let mut reference = LatencyHistogram::new();
        for device in 0..40u64 {
            let mut one = LagHistogram::default();
            for d in lags(30 + device) {
                one.record(d + Duration::from_micros(device));
                reference.record(d + Duration::from_micros(device));
            }
            total.merge(&one);
        }
        assert_eq!(total.percentiles(), reference.percentiles());
        let mut full = LagHistogram::default();
        full.merge(&total);
        full.merge(&LagHistogram::default());
        assert_eq!(full.percentiles(), reference.percentiles());
    }

    #[test]
    fn a_device_sized_histogram_reports_full_at_the_limit_and_stays_small() {
        let mut h = LagHistogram::default();
        for d in lags(SMALL_SAMPLES as u64 - 1) {
            h.record(d);
        }
        assert!(!h.is_full());
        h.record(Duration::from_millis(2));
        assert!(h.is_full());
        assert!(matches!(h.store, Store::Small(ref v) if v.len() == SMALL_SAMPLES));
    }

    #[test]
    fn hour_long_lag_is_clamped_like_the_full_histogram() {
        let mut h = LagHistogram::default();
        h.record(Duration::from_secs(7200));
        assert_eq!(h.percentiles().max, 3_600_000.0);
    }
}
