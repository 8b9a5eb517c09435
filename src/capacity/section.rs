//! The report's `capacity` section as the runners fill it in: the search's
//! stages ([`CapacityStage`], each with its [`StageStatus`]), the section
//! itself ([`CapacitySection`]) and, with `--cpus`, one [`AllotmentSection`]
//! per allotment.
//!
//! Types only: [`run`](super::run) and [`allotments`](super::allotments)
//! fill them, the console and the report read them.

use super::slo::SloResult;
use crate::metrics::Percentiles;
use crate::report::{PlaybackSection, Turns};
use crate::watch::summary::ServerSummary;
use serde::Serialize;
use std::collections::BTreeMap;

/// A stage's outcome as the report names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    Pass,
    Fail,
    /// Too few turns, or the generator could not keep pace: not judged.
    Inconclusive,
}

impl StageStatus {
    /// The word on the console.
    pub fn label(self) -> &'static str {
        match self {
            StageStatus::Pass => "PASS",
            StageStatus::Fail => "FAIL",
            StageStatus::Inconclusive => "INCONCLUSIVE",
        }
    }
}

/// One stage as the report lists it.
#[derive(Clone, Debug, Serialize)]
pub struct CapacityStage {
    pub speakers: u32,
    /// The CPU allotment the stage ran at (`--cpus`).
    pub cpus: Option<f64>,
    pub status: StageStatus,
    pub passed: bool,
    /// Why the stage is inconclusive (if it is).
    pub inconclusive_reason: Option<String>,
    /// Length of the measure window (longer than the stage duration when
    /// it was extended for too few turns).
    pub measured_s: f64,
    pub extended: bool,
    pub slos: Vec<SloResult>,
    pub turns: Turns,
    pub latency_ms: BTreeMap<String, Percentiles>,
    pub playback: PlaybackSection,
    pub server: Option<ServerSummary>,
    pub generator_valid: bool,
    /// Why the generator's own figures were not trustworthy (if so).
    pub generator_invalid_reasons: Vec<String>,
}

/// The report's `capacity` section.
#[derive(Clone, Debug, Serialize)]
pub struct CapacitySection {
    /// The knee (at the largest allotment with `--cpus`); `None` when no
    /// stage could be judged (see [`SearchResult::knee`](super::search::SearchResult::knee)).
    pub max_speakers: Option<u32>,
    pub slos: Vec<String>,
    pub shape: String,
    pub min_turns: u64,
    pub stop_reason: String,
    /// Stages that finished and were judged (the knee comes from these).
    pub completed_stages: u32,
    pub stages: Vec<CapacityStage>,
    /// One search per `--cpus` allotment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allotments: Option<Vec<AllotmentSection>>,
}

/// One allotment's search, as the report lists it (`capacity.allotments`).
#[derive(Clone, Debug, Serialize)]
pub struct AllotmentSection {
    /// The allotment asked for, in cores.
    pub cpus: f64,
    /// What the server could really use (whole cores with CPU affinity).
    pub applied_cores: f64,
    /// How the limit was set.
    pub limit: String,
    /// The knee at this allotment; `None` when no stage could be judged.
    pub max_speakers: Option<u32>,
    pub stop_reason: String,
    pub stages: Vec<CapacityStage>,
    /// The server over the whole search at this allotment.
    pub server: Option<ServerSummary>,
    /// Why this knee is not a point of the scaling curve (it is only a
    /// lower bound, or unknown), if so.
    pub off_curve: Option<String>,
}
