//! A lenient reading of any saved report (a run's, a capacity search's, a
//! merge of runs), for the writers that re-render one (HTML, text). Every
//! section is optional and unknown fields are ignored, so a report from an
//! older or newer version renders what it has and says what it lacks.

use super::slo::SloVerdict;
use super::timeline::LatencyPoint;
use crate::metrics::{LatencyHistogram, Percentiles};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ReportView {
    pub schema_version: u32,
    pub run: RunView,
    pub turns: Option<TurnsView>,
    pub latency_ms: BTreeMap<String, Percentiles>,
    pub playback: Option<PlaybackView>,
    pub generator: Option<GeneratorView>,
    pub stages: Vec<StageView>,
    pub series: Vec<SeriesView>,
    pub latency_series: Vec<LatencyPoint>,
    pub server: Option<ServerView>,
    pub recordings: Vec<RecordingView>,
    pub slo: Option<SloVerdict>,
    /// Raw, decoded on demand (a bad one is skipped, not fatal).
    pub histograms: BTreeMap<String, Value>,
    pub capacity: Option<CapacityView>,
    pub sizing: Option<Value>,
    pub merged_from: Vec<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RunView {
    pub target_url: String,
    pub mock: bool,
    pub started_at: String,
    pub duration_s: f64,
    pub devices: u32,
    pub interrupted: bool,
    pub fleet: String,
    pub stage_duration_s: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TurnsView {
    pub started: u64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub interrupted: u64,
    pub failed_ratio: f64,
    pub failures: BTreeMap<String, u64>,
    /// The first few distinct details of each failure kind.
    pub failure_details: BTreeMap<String, Vec<String>>,
    /// Messages that could not belong to the turn in progress, by type.
    pub stray_messages: BTreeMap<String, u64>,
    /// Whatever else the section holds, shown as is.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PlaybackView {
    pub turns: u64,
    pub stutter_turns: u64,
    pub stutter_ratio: f64,
    pub underruns: u64,
    pub overflow_drops: u64,
    pub underrun_ms: Percentiles,
    /// Stutter per cause (absent from reports that predate it).
    pub by_cause: Option<crate::metrics::stutter::ByCause>,
    pub server_gap_ms: Percentiles,
    pub network_gap_ms: Percentiles,
    pub dropped_ms: Percentiles,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct GeneratorView {
    pub valid: bool,
    pub invalid_reasons: Vec<String>,
    pub send_lag_ms: Percentiles,
    pub cpu_percent: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StageView {
    pub name: String,
    pub speakers: u32,
    pub passed: Option<bool>,
    pub status: Option<String>,
    pub generator_valid: Option<bool>,
    pub turns: TurnsView,
    pub latency_ms: BTreeMap<String, Percentiles>,
    pub playback: PlaybackView,
    pub server: Option<ServerSummaryView>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SeriesView {
    pub t_s: f64,
    pub connected: i64,
    pub talking: i64,
    pub turns: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ServerView {
    pub targets: Vec<String>,
    pub allotment: AllotmentView,
    pub summary: ServerSummaryView,
    pub events: Vec<ServerEventView>,
    pub samples: Vec<ServerSampleView>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AllotmentView {
    pub cpu_cores: Option<f64>,
    pub memory_mb: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ServerSummaryView {
    pub cpu_cores: StatsView,
    pub memory_mb: StatsView,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StatsView {
    pub mean: f64,
    pub p95: f64,
    pub max: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ServerEventView {
    pub t_s: f64,
    pub kind: Value,
    pub target: String,
    pub detail: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ServerSampleView {
    pub t_s: f64,
    pub cpu_cores: f64,
    pub memory_mb: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RecordingView {
    pub device_id: String,
    pub turn: u32,
    pub wav: String,
    pub timeline: String,
    pub underruns: u32,
    pub underrun_ms: f64,
    /// Audacity's label track of the marked gaps, when any.
    pub labels: Option<String>,
    /// Marked gaps and skips by cause.
    pub marks: BTreeMap<String, u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CapacityView {
    /// `None` when no stage could be judged.
    pub max_speakers: Option<u32>,
    pub slos: Vec<String>,
    pub stop_reason: String,
    pub stages: Vec<StageView>,
    /// Searches at several CPU allotments, when measured: shown as is.
    pub allotments: Vec<Value>,
}

impl ReportView {
    /// Reads a report from JSON text.
    pub fn parse(v: &Value) -> Result<ReportView, serde_json::Error> {
        ReportView::deserialize(v)
    }

    /// Whether this is a capacity search's report.
    pub fn is_capacity(&self) -> bool {
        self.capacity.is_some()
    }

    /// A histogram by key (see [`super::exact`]), if present and valid.
    pub fn histogram(&self, key: &str) -> Option<LatencyHistogram> {
        self.histograms
            .get(key)
            .and_then(|v| LatencyHistogram::deserialize(v).ok())
            .filter(|h| h.count() > 0)
    }

    /// The sizing verdict's word (`SUFFICIENT`, `INSUFFICIENT`), if it gave one.
    pub fn sizing_verdict(&self) -> Option<&str> {
        self.sizing.as_ref()?.get("verdict")?.as_str()
    }

    /// The sizing verdict in plain words, when the report has one.
    pub fn sizing_text(&self) -> Option<String> {
        let v = self.sizing.as_ref().filter(|v| !v.is_null())?;
        if let Ok(s) = crate::capacity::sizing::Sizing::deserialize(v) {
            return Some(crate::capacity::sizing::render_text(&s));
        }
        // A newer or older shape: its verdict and explanation as written.
        let verdict = v.get("verdict").and_then(Value::as_str).unwrap_or("(no verdict)");
        let lines: Vec<&str> = v
            .get("explanation")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        Some(format!("{verdict}\n{}", lines.join("\n")))
    }
}
