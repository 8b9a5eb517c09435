//! The report's `histograms`: every percentile object of the report kept
//! losslessly beside it (HdrHistogram V2, base64; see
//! [`crate::metrics::summary`]), keyed by the JSON path of the object it
//! backs, e.g. `latency_ms.first_audio` or `playback.underrun_ms`. This is
//! what lets `merge` add runs exactly.

use crate::metrics::{LATENCY_METRICS, LatencyHistogram, Metrics};
use std::collections::BTreeMap;

/// Key of a latency metric's histogram.
pub fn latency_key(name: &str) -> String {
    format!("latency_ms.{name}")
}

pub const UNDERRUN: &str = "playback.underrun_ms";
pub const SENTENCE_GAP: &str = "playback.sentence_gap_ms";
pub const SERVER_GAP: &str = "playback.server_gap_ms";
pub const NETWORK_GAP: &str = "playback.network_gap_ms";
pub const DROPPED: &str = "playback.dropped_ms";
pub const SEND_LAG: &str = "generator.send_lag_ms";

/// The histograms behind a run's (or a stage's) percentile objects.
pub fn histograms_of(m: &Metrics) -> BTreeMap<String, LatencyHistogram> {
    let mut out: BTreeMap<String, LatencyHistogram> = LATENCY_METRICS
        .iter()
        .map(|name| (latency_key(name), m.latency.get(name).cloned().unwrap_or_default()))
        .collect();
    out.insert(UNDERRUN.to_string(), m.playback.underrun_ms.clone());
    out.insert(SENTENCE_GAP.to_string(), m.playback.sentence_gap_ms.clone());
    let causes = &m.playback.causes;
    out.insert(SERVER_GAP.to_string(), causes.server_gap_ms.clone());
    out.insert(NETWORK_GAP.to_string(), causes.network_gap_ms.clone());
    out.insert(DROPPED.to_string(), causes.dropped_ms.clone());
    out
}
