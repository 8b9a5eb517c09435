//! Latency histograms and the one percentile shape every report section
//! uses: `{count, min, mean, p50, p90, p95, p99, max}` in milliseconds.
//!
//! Values are recorded in microseconds in an HdrHistogram (3 significant
//! digits). Count, min, max and mean are kept exactly beside it, and each
//! percentile is clamped into [min, max], so a run where every turn took
//! exactly 1300 ms reports exactly 1300 everywhere.
//!
//! A histogram serialises losslessly as `{min_us, max_us, sum_us, hdr}`:
//! `hdr` is the HdrHistogram V2 encoding (uncompressed), base64. Reading it
//! back gives the same counts, so reports from several machines merge
//! exactly (`xiaozhi-fleet merge`): counts add and percentiles are
//! recomputed from the merged histogram.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use serde::{Deserialize, Serialize};
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
#[derive(Clone, Debug, PartialEq)]
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

    /// Sum of every sample, in microseconds (exact).
    pub fn sum_us(&self) -> u128 {
        self.sum
    }

    /// How many samples are at most `us` microseconds. Exact below 2048 µs;
    /// above, values within the same 0.1% HdrHistogram bucket as `us` count
    /// as equal to it.
    pub fn count_at_most_us(&self, us: u64) -> u64 {
        if self.count() == 0 {
            return 0;
        }
        self.hist.count_between(0, us.min(MAX_MICROS))
    }

    /// The non-empty buckets as (upper edge in ms, samples), in order.
    pub fn buckets_ms(&self) -> Vec<(f64, u64)> {
        self.hist
            .iter_recorded()
            .map(|v| (v.value_iterated_to() as f64 / 1000.0, v.count_at_value()))
            .collect()
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

/// Why a serialised histogram could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistogramDecodeError {
    #[error("histogram is not valid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("histogram is not a valid HdrHistogram V2 encoding: {0:?}")]
    Hdr(hdrhistogram::serialization::DeserializeError),
    #[error("histogram holds values outside 1 µs..1 h")]
    OutOfRange,
    #[error("histogram's min/max/sum disagree with its counts")]
    Inconsistent,
}

/// The serialised form (see the module docs).
#[derive(Serialize, Deserialize)]
struct HistogramWire {
    min_us: u64,
    max_us: u64,
    sum_us: u64,
    hdr: String,
}

impl LatencyHistogram {
    /// The HdrHistogram V2 encoding, base64.
    pub fn hdr_base64(&self) -> String {
        let mut bytes = Vec::new();
        // Serialising into a Vec cannot fail for a histogram of u64 counts.
        if let Err(e) = V2Serializer::new().serialize(&self.hist, &mut bytes) {
            unreachable!("V2 serialisation into memory failed: {e:?}");
        }
        BASE64.encode(bytes)
    }

    /// Rebuilds a histogram from its encoding and exact extremes and sum.
    fn from_wire(w: &HistogramWire) -> Result<LatencyHistogram, HistogramDecodeError> {
        let bytes = BASE64.decode(&w.hdr)?;
        let read: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(HistogramDecodeError::Hdr)?;
        let mut h = LatencyHistogram::new();
        if read.is_empty() {
            return Ok(h);
        }
        if read.max() > MAX_MICROS {
            return Err(HistogramDecodeError::OutOfRange);
        }
        h.hist.add(&read).map_err(|_| HistogramDecodeError::OutOfRange)?;
        let (lo, hi) = (h.hist.lowest_equivalent(w.min_us), h.hist.highest_equivalent(w.max_us));
        if w.min_us > w.max_us || lo > h.hist.min() || hi < h.hist.max() {
            return Err(HistogramDecodeError::Inconsistent);
        }
        h.min = w.min_us;
        h.max = w.max_us;
        h.sum = w.sum_us as u128;
        Ok(h)
    }
}

impl Serialize for LatencyHistogram {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let empty = self.count() == 0;
        HistogramWire {
            min_us: if empty { 0 } else { self.min },
            max_us: self.max,
            sum_us: self.sum.min(u64::MAX as u128) as u64,
            hdr: self.hdr_base64(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for LatencyHistogram {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = HistogramWire::deserialize(d)?;
        LatencyHistogram::from_wire(&wire).map_err(serde::de::Error::custom)
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
    fn serialised_histogram_reads_back_identical() {
        let mut h = LatencyHistogram::new();
        for ms in [3u64, 250, 1300, 1301, 29_000] {
            h.record(Duration::from_millis(ms));
        }
        h.record(Duration::from_micros(1234));
        let json = serde_json::to_string(&h).unwrap();
        let back: LatencyHistogram = serde_json::from_str(&json).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.percentiles(), h.percentiles());
        let empty: LatencyHistogram =
            serde_json::from_str(&serde_json::to_string(&LatencyHistogram::new()).unwrap()).unwrap();
        assert_eq!(empty.count(), 0);
    }

    #[test]
    fn merged_serialised_halves_equal_one_histogram_of_all_samples() {
        let (mut a, mut b, mut all) = (
            LatencyHistogram::new(),
            LatencyHistogram::new(),
            LatencyHistogram::new(),
        );
        for i in 0..1000u64 {
            let d = Duration::from_micros(50_000 + i * i * 7);
            if i % 3 == 0 {
                a.record(d)
            } else {
                b.record(d)
            }
            all.record(d);
        }
        let a: LatencyHistogram = serde_json::from_value(serde_json::to_value(&a).unwrap()).unwrap();
        let mut b: LatencyHistogram = serde_json::from_value(serde_json::to_value(&b).unwrap()).unwrap();
        b.merge(&a);
        assert_eq!(b.percentiles(), all.percentiles());
        assert_eq!(b.sum_us(), all.sum_us());
    }

    #[test]
    fn corrupt_histogram_is_an_error_not_a_panic() {
        let bad = r#"{"min_us":1,"max_us":2,"sum_us":3,"hdr":"!!!"}"#;
        assert!(serde_json::from_str::<LatencyHistogram>(bad).is_err());
        let h = serde_json::to_value(&{
            let mut h = LatencyHistogram::new();
            h.record(Duration::from_millis(10));
            h
        })
        .unwrap();
        let mut lying = h.clone();
        lying["min_us"] = 20_000.into();
        assert!(serde_json::from_value::<LatencyHistogram>(lying).is_err());
        let mut truncated = h;
        truncated["hdr"] = "HISTFAAAAA==".into();
        assert!(serde_json::from_value::<LatencyHistogram>(truncated).is_err());
    }

    #[test]
    fn prometheus_style_counts_at_most_a_bound() {
        let mut h = LatencyHistogram::new();
        for ms in [40u64, 50, 60, 2000] {
            h.record(Duration::from_millis(ms));
        }
        assert_eq!(h.count_at_most_us(50_000), 2);
        assert_eq!(h.count_at_most_us(1_000_000), 3);
        assert_eq!(h.count_at_most_us(30_000_000), 4);
        assert_eq!(h.sum_us(), 2_150_000);
    }

    #[test]
    fn empty_histogram_reports_zero_count() {
        assert_eq!(LatencyHistogram::new().percentiles(), Percentiles::default());
    }
}
