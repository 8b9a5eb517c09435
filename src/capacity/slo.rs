//! Service-level objectives (SLOs): parsing, display and evaluation.
//!
//! This file owns the SLO grammar `METRIC<=LIMIT` (or `METRIC<LIMIT`), the
//! per-stage measurement shape the SLOs are checked against
//! ([`StageMeasure`], [`Percentiles`]) and the pass/fail rule of one SLO
//! ([`Slo::check`]). It does not measure anything itself.
//!
//! Metrics:
//! - latency: `ota|connect|hello|stt|llm|tts_start|first_audio|first_play|turn`
//!   followed by `.min|.mean|.p50|.p90|.p95|.p99|.max`; the limit needs a unit
//!   (`2s`, `1.5s`, `1500ms`) and is stored in milliseconds;
//! - ratios: `stutter_ratio`, `failed_ratio`; the limit is a plain number in
//!   `0..=1`.
//!
//! A stage that produced no replies never passes: a latency SLO with no
//! samples fails with no value, and a ratio SLO fails when no turn completed.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Every latency metric name, in pipeline order (defined once, in metrics).
pub use crate::metrics::LATENCY_METRICS;
/// Every statistic a latency metric can be judged by.
pub const STATS: [&str; 7] = ["min", "mean", "p50", "p90", "p95", "p99", "max"];
/// Every ratio metric name.
pub const RATIO_METRICS: [&str; 2] = ["stutter_ratio", "failed_ratio"];

/// Why an SLO string could not be parsed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SloError {
    #[error("SLO `{input}` has no comparison: write METRIC<=LIMIT, e.g. first_audio.p95<=2s")]
    MissingOperator { input: String },
    #[error(
        "unknown SLO metric `{metric}`; valid metrics: {} (each with .{}), or {}",
        LATENCY_METRICS.join("|"),
        STATS.join("|."),
        RATIO_METRICS.join(", ")
    )]
    UnknownMetric { metric: String },
    #[error("SLO limit `{limit}` for `{metric}` is not valid: {reason}")]
    BadLimit {
        metric: String,
        limit: String,
        reason: &'static str,
    },
}

/// A latency metric: one step of a conversation turn, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LatencyMetric {
    Ota,
    Connect,
    Hello,
    Stt,
    Llm,
    TtsStart,
    FirstAudio,
    FirstPlay,
    Turn,
}

impl LatencyMetric {
    const ALL: [LatencyMetric; 9] = [
        Self::Ota,
        Self::Connect,
        Self::Hello,
        Self::Stt,
        Self::Llm,
        Self::TtsStart,
        Self::FirstAudio,
        Self::FirstPlay,
        Self::Turn,
    ];

    /// The key used in SLO strings and in [`StageMeasure::latency_ms`].
    pub fn as_str(self) -> &'static str {
        LATENCY_METRICS[self as usize]
    }

    /// Words an operator reads, e.g. `first audio`.
    pub fn human(self) -> &'static str {
        match self {
            Self::Ota => "OTA version check",
            Self::Connect => "connect",
            Self::Hello => "hello",
            Self::Stt => "speech recognition",
            Self::Llm => "LLM reply",
            Self::TtsStart => "TTS start",
            Self::FirstAudio => "first audio",
            Self::FirstPlay => "first playback",
            Self::Turn => "whole turn",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

/// A statistic of a latency distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stat {
    Min,
    Mean,
    P50,
    P90,
    P95,
    P99,
    Max,
}

impl Stat {
    const ALL: [Stat; 7] = [
        Self::Min,
        Self::Mean,
        Self::P50,
        Self::P90,
        Self::P95,
        Self::P99,
        Self::Max,
    ];

    /// The suffix used in SLO strings, e.g. `p95`.
    pub fn as_str(self) -> &'static str {
        STATS[self as usize]
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// What an SLO constrains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SloMetric {
    Latency { metric: LatencyMetric, stat: Stat },
    StutterRatio,
    FailedRatio,
}

impl SloMetric {
    fn parse(name: &str) -> Result<Self, SloError> {
        let unknown = || SloError::UnknownMetric {
            metric: name.to_string(),
        };
        match name {
            "stutter_ratio" => return Ok(Self::StutterRatio),
            "failed_ratio" => return Ok(Self::FailedRatio),
            _ => {}
        }
        let (metric, stat) = name.split_once('.').ok_or_else(unknown)?;
        let metric = LatencyMetric::from_name(metric).ok_or_else(unknown)?;
        let stat = Stat::from_name(stat).ok_or_else(unknown)?;
        Ok(Self::Latency { metric, stat })
    }
}

impl fmt::Display for SloMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Latency { metric, stat } => write!(f, "{}.{}", metric.as_str(), stat.as_str()),
            Self::StutterRatio => f.write_str("stutter_ratio"),
            Self::FailedRatio => f.write_str("failed_ratio"),
        }
    }
}

/// `<=` or `<`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Comparison {
    AtMost,
    Below,
}

impl Comparison {
    fn holds(self, value: f64, limit: f64) -> bool {
        match self {
            Self::AtMost => value <= limit,
            Self::Below => value < limit,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Self::AtMost => "<=",
            Self::Below => "<",
        }
    }

    fn human(self) -> &'static str {
        match self {
            Self::AtMost => "≤",
            Self::Below => "<",
        }
    }
}

/// One objective, e.g. `first_audio.p95<=2000ms`. Latency limits are in ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slo {
    pub metric: SloMetric,
    pub comparison: Comparison,
    pub limit: f64,
}

/// The outcome of checking one SLO against one stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloResult {
    pub slo: String,
    pub value: Option<f64>,
    pub limit: f64,
    pub passed: bool,
}

pub use crate::metrics::Percentiles;

/// The value of one statistic.
pub fn stat(p: &Percentiles, stat: Stat) -> f64 {
    match stat {
        Stat::Min => p.min,
        Stat::Mean => p.mean,
        Stat::P50 => p.p50,
        Stat::P90 => p.p90,
        Stat::P95 => p.p95,
        Stat::P99 => p.p99,
        Stat::Max => p.max,
    }
}

/// What one load stage measured, as far as the SLOs are concerned.
/// `latency_ms` is keyed by [`LatencyMetric::as_str`] (e.g. `first_audio`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageMeasure {
    pub latency_ms: BTreeMap<String, Percentiles>,
    pub stutter_ratio: f64,
    pub failed_ratio: f64,
    pub turns_completed: u64,
}

impl Slo {
    /// Parses `METRIC<=LIMIT` or `METRIC<LIMIT`; spaces around parts are allowed.
    pub fn parse(input: &str) -> Result<Slo, SloError> {
        let text = input.trim();
        let (name, comparison, limit) = if let Some((n, l)) = text.split_once("<=") {
            (n, Comparison::AtMost, l)
        } else if let Some((n, l)) = text.split_once('<') {
            (n, Comparison::Below, l)
        } else {
            return Err(SloError::MissingOperator {
                input: input.to_string(),
            });
        };
        let metric = SloMetric::parse(name.trim())?;
        let limit = parse_limit(metric, limit.trim())?;
        Ok(Slo {
            metric,
            comparison,
            limit,
        })
    }

    /// The three default objectives: p95 first audio ≤ 2 s, stutter ≤ 1 %,
    /// failed turns ≤ 1 %.
    pub fn defaults() -> Vec<Slo> {
        vec![
            Slo {
                metric: SloMetric::Latency {
                    metric: LatencyMetric::FirstAudio,
                    stat: Stat::P95,
                },
                comparison: Comparison::AtMost,
                limit: 2000.0,
            },
            Slo {
                metric: SloMetric::StutterRatio,
                comparison: Comparison::AtMost,
                limit: 0.01,
            },
            Slo {
                metric: SloMetric::FailedRatio,
                comparison: Comparison::AtMost,
                limit: 0.01,
            },
        ]
    }

    /// Checks this SLO against one stage. See the module docs for the rule
    /// that a stage without replies fails.
    pub fn check(&self, m: &StageMeasure) -> SloResult {
        let value = match self.metric {
            SloMetric::Latency { metric, stat } => m
                .latency_ms
                .get(metric.as_str())
                .filter(|p| p.count > 0)
                .map(|p| self::stat(p, stat)),
            SloMetric::StutterRatio => (m.turns_completed > 0).then_some(m.stutter_ratio),
            SloMetric::FailedRatio => Some(m.failed_ratio),
        };
        // Latency SLOs rely on their sample count; ratio SLOs need a completed
        // turn, or a stage with no replies would pass them.
        let has_replies = match self.metric {
            SloMetric::Latency { .. } => true,
            SloMetric::StutterRatio | SloMetric::FailedRatio => m.turns_completed > 0,
        };
        let passed = has_replies && value.is_some_and(|v| self.comparison.holds(v, self.limit));
        SloResult {
            slo: self.to_string(),
            value,
            limit: self.limit,
            passed,
        }
    }

    /// Operator wording, e.g. `p95 first audio ≤ 2 s` or `stutter ≤ 1%`.
    pub fn describe(&self) -> String {
        let cmp = self.comparison.human();
        match self.metric {
            SloMetric::Latency { metric, stat } => {
                format!("{} {} {cmp} {}", stat.as_str(), metric.human(), human_ms(self.limit))
            }
            SloMetric::StutterRatio => format!("stutter {cmp} {}%", self.limit * 100.0),
            SloMetric::FailedRatio => format!("failed turns {cmp} {}%", self.limit * 100.0),
        }
    }
}

/// Checks every SLO against one stage.
pub fn check_all(slos: &[Slo], m: &StageMeasure) -> Vec<SloResult> {
    slos.iter().map(|s| s.check(m)).collect()
}

/// True when every result passed (an empty list passes).
pub fn all_passed(results: &[SloResult]) -> bool {
    results.iter().all(|r| r.passed)
}

fn parse_limit(metric: SloMetric, text: &str) -> Result<f64, SloError> {
    let bad = |reason| SloError::BadLimit {
        metric: metric.to_string(),
        limit: text.to_string(),
        reason,
    };
    let number = |s: &str| -> Result<f64, SloError> {
        let v: f64 = s.trim().parse().map_err(|_| bad("not a number"))?;
        if !v.is_finite() || v < 0.0 {
            return Err(bad("must be a finite number ≥ 0"));
        }
        Ok(v)
    };
    match metric {
        SloMetric::Latency { .. } => {
            if let Some(ms) = text.strip_suffix("ms") {
                number(ms)
            } else if let Some(s) = text.strip_suffix('s') {
                Ok(number(s)? * 1000.0)
            } else {
                Err(bad("a latency limit needs a unit: ms or s (e.g. 2s, 1500ms)"))
            }
        }
        SloMetric::StutterRatio | SloMetric::FailedRatio => {
            let v = number(text)?;
            if v > 1.0 {
                return Err(bad("a ratio is between 0 and 1 (e.g. 0.01 for 1%)"));
            }
            Ok(v)
        }
    }
}

fn human_ms(ms: f64) -> String {
    if ms >= 1000.0 && (ms / 100.0).fract() == 0.0 {
        format!("{} s", ms / 1000.0)
    } else {
        format!("{ms} ms")
    }
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.metric {
            SloMetric::Latency { .. } => "ms",
            SloMetric::StutterRatio | SloMetric::FailedRatio => "",
        };
        let op = self.comparison.symbol();
        write!(f, "{}{op}{}{unit}", self.metric, self.limit)
    }
}

impl FromStr for Slo {
    type Err = SloError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Slo::parse(s)
    }
}

impl Serialize for Slo {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Slo {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Slo::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
