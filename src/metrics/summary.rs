//! Latency histograms and the one percentile shape every report section
//! uses: `{count, min, mean, p50, p90, p95, p99, max}` in milliseconds.
//!
//! Values are recorded in microseconds in an HdrHistogram (3 significant
//! digits). Count, min, max and mean are kept exactly beside it, and each
//! percentile is clamped into [min, max], so a run where every turn took
//! exactly 1300 ms reports exactly 1300 everywhere.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Duration;

/// `part / whole`, or 0 when there is nothing to divide.
pub fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

/// Highest latency recorded: one hour (anything longer is clamped).
const MAX_MICROS: u64 = 3_600_000_000;

/// The report's percentile object, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// An HdrHistogram of microseconds plus exact count/min/max/sum.
#[derive(Clone, Debug)]
pub struct LatencyHistogram {
    hist: Histogram<u64>,
    min: u64,
    max: u64,
    sum: u128,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    pub fn new() -> Self {
        let hist = match Histogram::new_with_bounds(1, MAX_MICROS, 3) {
            Ok(h) => h,
            Err(e) => unreachable!("constant histogram bounds are valid: {e}"),
        };
        LatencyHistogram {
            hist,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }

    /// Records a value in milliseconds (for per-turn quantities such as
    /// underrun time, which share the percentile shape).
    pub fn record_ms(&mut self, ms: f64) {
        self.record(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }

    /// Records one duration.
    pub fn record(&mut self, d: Duration) {
        let us = (d.as_micros() as u64).min(MAX_MICROS);
        self.hist.saturating_record(us);
        self.min = self.min.min(us);
        self.max = self.max.max(us);
        self.sum += us as u128;
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        if other.count() == 0 {
            return;
        }
        // Same bounds on both sides, so `add` cannot fail.
        let _ = self.hist.add(&other.hist);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// Value at quantile `q` (0..=1) in ms, clamped into the exact range.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.count() == 0 {
            return 0.0;
        }
        let v = self.hist.median_equivalent(self.hist.value_at_quantile(q));
        v.clamp(self.min, self.max) as f64 / 1000.0
    }

    /// The report's percentile object.
    pub fn percentiles(&self) -> Percentiles {
        let n = self.count();
        if n == 0 {
            return Percentiles::default();
        }
        Percentiles {
            count: n,
            min: self.min as f64 / 1000.0,
            mean: (self.sum as f64 / n as f64 / 1000.0 * 1000.0).round() / 1000.0,
            p50: self.quantile_ms(0.50),
            p90: self.quantile_ms(0.90),
            p95: self.quantile_ms(0.95),
            p99: self.quantile_ms(0.99),
            max: self.max as f64 / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_samples_report_exactly() {
        let mut h = LatencyHistogram::new();
        for _ in 0..20 {
            h.record(Duration::from_millis(1300));
        }
        let p = h.percentiles();
        assert_eq!(
            (p.count, p.min, p.mean, p.p50, p.p99, p.max),
            (20, 1300.0, 1300.0, 1300.0, 1300.0, 1300.0)
        );
    }

    #[test]
    fn percentiles_follow_the_distribution() {
        let mut h = LatencyHistogram::new();
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let p = h.percentiles();
        assert_eq!(p.count, 100);
        assert_eq!(p.min, 1.0);
        assert_eq!(p.max, 100.0);
        assert!((p.p50 - 50.0).abs() < 0.1, "{}", p.p50);
        assert!((p.p95 - 95.0).abs() < 0.1, "{}", p.p95);
        assert!((p.mean - 50.5).abs() < 1e-9);
    }

    #[test]
    fn merge_adds_counts_and_extremes() {
        let mut a = LatencyHistogram::new();
        let mut b = LatencyHistogram::new();
        a.record(Duration::from_millis(10));
        b.record(Duration::from_millis(30));
        a.merge(&b);
        let p = a.percentiles();
        assert_eq!((p.count, p.min, p.max, p.mean), (2, 10.0, 30.0, 20.0));
    }

    #[test]
    fn empty_histogram_reports_zero_count() {
        assert_eq!(LatencyHistogram::new().percentiles(), Percentiles::default());
    }
}
