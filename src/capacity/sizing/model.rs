//! The sizing's shared vocabulary: what goes in ([`SizingInput`]: the
//! stages' server figures, the allotment, the tiers), what comes out
//! ([`Sizing`], whose JSON field names are fixed, with its cost model and
//! scaling curve), and the thresholds the rules are stated in.
//!
//! Types and constants only; every rule lives in the parent module and its
//! other children, which all read from here and none of which this file
//! names.

use serde::{Deserialize, Serialize};

use crate::capacity::slo::Slo;

/// Headroom multiplier applied to the modelled need.
pub const HEADROOM: f64 = 1.3;
/// Share of the allotment at which CPU or memory counts as saturated.
pub const SATURATION_SHARE: f64 = 0.9;
/// Share of one core at which the busiest thread counts as pinned.
pub const HOT_THREAD_SHARE: f64 = 0.9;
/// A hot thread is only the cause while process CPU p95 is below this share
/// of the allotment; above it the process as a whole is short of cores.
pub const HOT_THREAD_PROCESS_SHARE: f64 = 0.5;
/// Ratio of CFS periods throttled (cgroup `nr_throttled / nr_periods`) from
/// which the quota is the limit: with 100 ms periods, 1 in 10 throttled adds
/// tens of milliseconds to audio frame timing, which listeners hear.
pub const THROTTLED_SATURATION: f64 = 0.1;
/// Share of seconds at ≥ 90% of the allotment from which CPU is saturated
/// (in bursts): the same as a per-second p95 at 90%.
pub const BURST_SATURATION: f64 = 0.05;
/// CPU p99 under this share of the allotment is clearly unsaturated.
pub const CLEARLY_IDLE_SHARE: f64 = 0.6;

/// Why sizing could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SizingError {
    #[error("no stage with at least one speaker was measured, so nothing can be sized")]
    NoStages,
    #[error("{what} must be a finite number ≥ 0 (got {value})")]
    InvalidValue { what: String, value: f64 },
}

/// What the server container used during one stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageServer {
    pub speakers: u32,
    pub connected_devices: u32,
    pub passed: bool,
    pub cpu_cores_mean: f64,
    pub cpu_cores_p95: f64,
    #[serde(default)]
    pub cpu_cores_p99: f64,
    pub cpu_cores_max: f64,
    /// Share of seconds at ≥ 90% of the allotment (`None`: allotment unknown).
    #[serde(default)]
    pub cpu_burst_share: Option<f64>,
    pub memory_mb_mean: f64,
    pub memory_mb_max: f64,
    /// Busiest thread's p95, as a share of one core (0..1).
    pub hot_thread_p95: Option<f64>,
    pub hot_thread_name: Option<String>,
    pub throttled_ratio_max: Option<f64>,
    pub turns: u64,
    pub duration_s: f64,
}

/// The container's limits, where known (shared with the server watcher).
pub use crate::watch::Allotment;

impl StageServer {
    /// A stage's server figures from the watcher's summary of its window.
    pub fn from_window(
        speakers: u32,
        connected_devices: u32,
        passed: bool,
        w: &crate::watch::summary::ServerSummary,
        turns: u64,
        duration_s: f64,
    ) -> StageServer {
        StageServer {
            speakers,
            connected_devices,
            passed,
            cpu_cores_mean: w.cpu_cores.mean,
            cpu_cores_p95: w.cpu_cores.p95,
            cpu_cores_p99: w.cpu_cores.p99,
            cpu_cores_max: w.cpu_cores.max,
            cpu_burst_share: w.cpu_burst_share,
            memory_mb_mean: w.memory_mb.mean,
            memory_mb_max: w.memory_mb.max,
            hot_thread_p95: w.hot_thread_share.map(|s| s.p95),
            hot_thread_name: w.hot_thread_name.clone(),
            throttled_ratio_max: w.throttled_ratio_max,
            turns,
            duration_s,
        }
    }
}

/// A machine size one can buy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tier {
    pub name: String,
    pub cpu_cores: f64,
    pub memory_gb: f64,
}

/// current 4 cores / 8 GB, plan A 8 / 16, plan B 16 / 32, plan C 24 / 64.
pub fn default_tiers() -> Vec<Tier> {
    [("current", 4.0, 8.0), ("plan A", 8.0, 16.0)]
        .into_iter()
        .chain([("plan B", 16.0, 32.0), ("plan C", 24.0, 64.0)])
        .map(|(name, cpu_cores, memory_gb)| Tier {
            name: name.to_string(),
            cpu_cores,
            memory_gb,
        })
        .collect()
}

/// The stages measured at one CPU allotment of `capacity --cpus`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AllotmentRun {
    pub cores: f64,
    pub stages: Vec<StageServer>,
}

/// Everything [`size`](super::size) needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SizingInput {
    /// One allotment's stages (ignored when `curve` is given).
    pub stages: Vec<StageServer>,
    /// The server's own limits, where known (never a tier's).
    pub allotment: Allotment,
    pub target_speakers: Option<u32>,
    pub tiers: Vec<Tier>,
    /// The SLOs the stages were judged by (only used for wording).
    pub slos: Vec<Slo>,
    /// The load shape the stages ran (`steady`, `burst`, `poisson`).
    #[serde(default)]
    pub shape: String,
    /// Stages per allotment with `--cpus` (two or more give a curve).
    #[serde(default)]
    pub curve: Vec<AllotmentRun>,
    /// Connected devices when T speakers talk (idle devices included);
    /// default T.
    #[serde(default)]
    pub devices_for_target: Option<u32>,
    /// The most cores this machine gives (names the allotment to measure
    /// next when a tier is beyond the curve's reach).
    #[serde(default)]
    pub machine_cores: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    #[serde(rename = "SUFFICIENT")]
    Sufficient,
    #[serde(rename = "INSUFFICIENT")]
    Insufficient,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Saturation {
    Cpu,
    Throttling,
    Memory,
    HotThread,
    None,
    /// The peaks are neither clearly saturated nor clearly idle, or the
    /// allotment is unknown: measure two allotments with `--cpus` (with a
    /// curve, the curve decides).
    Inconclusive,
    /// With a curve: the process stopped using its cores before the SLOs
    /// broke (peaks well under the allotment) and the knee grows more
    /// slowly than the cores: a serial part (σ) limits it.
    SerialPart,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryBand {
    Safe,
    Elevated,
    Warning,
    Danger,
    /// No memory limit is known.
    Unknown,
}

impl MemoryBand {
    /// Band of a peak against a limit (see the parent module docs).
    pub fn of(peak_mb: f64, limit_mb: Option<f64>) -> Self {
        let Some(limit) = limit_mb.filter(|l| *l > 0.0) else {
            return Self::Unknown;
        };
        match peak_mb / limit {
            s if s >= 0.95 => Self::Danger,
            s if s >= 0.90 => Self::Warning,
            s if s >= 0.80 => Self::Elevated,
            _ => Self::Safe,
        }
    }
}

/// The fitted cost model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PerSpeaker {
    pub cores_per_speaker: f64,
    pub cores_spread: Option<f64>,
    /// MB per speaker beyond its connection (all of it when connections and
    /// speakers cannot be told apart).
    pub mb_per_speaker: f64,
    pub mb_spread: Option<f64>,
    pub baseline_cores: f64,
    pub baseline_mb: f64,
    pub cpu_seconds_per_turn: Option<f64>,
    /// MB per connected device (idle or talking), when measurable.
    pub mb_per_device: Option<f64>,
    /// Memory measured directly between the smallest judged stage and the
    /// knee's stage (at the judged allotment), when it grew.
    #[serde(default)]
    pub memory_step: Option<MemoryStep>,
}

/// Peak memory growth between two measured stages.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MemoryStep {
    pub from_speakers: u32,
    pub to_speakers: u32,
    pub mb_per_speaker: f64,
}

/// One measured allotment and its knee.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScalingPoint {
    pub cores: f64,
    pub knee: u32,
    /// The smallest failing count above the knee (its bracket's top).
    #[serde(default)]
    pub first_fail: Option<u32>,
}

/// The fitted Universal Scalability Law.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Usl {
    /// Speakers per core without contention.
    pub lambda: f64,
    /// Contention (the serial part).
    pub sigma: f64,
    /// Coherency cost (capacity falls past a peak when > 0).
    pub kappa: f64,
    /// Cores past which more cores lower capacity, `sqrt((1 − σ) / κ)`.
    pub peak_cores: Option<f64>,
}

impl Usl {
    /// The predicted knee at `c` cores.
    pub fn knee(&self, c: f64) -> f64 {
        let denom = 1.0 + self.sigma * (c - 1.0) + self.kappa * c * (c - 1.0);
        if denom <= 0.0 { 0.0 } else { self.lambda * c / denom }
    }
}

/// A tier's predicted knee.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierPrediction {
    pub tier: String,
    pub cores: f64,
    /// The point figure; `None` beyond twice the largest measured allotment.
    pub knee: Option<f64>,
    /// Beyond that reach: the knees the measured points admit (`None` when
    /// they admit no range, or within reach).
    #[serde(default)]
    pub knee_range: Option<KneeRange>,
    pub confidence: String,
}

/// The report's `sizing.scaling`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaling {
    pub points: Vec<ScalingPoint>,
    /// Speakers gained per added core, one per step between points.
    pub speakers_per_core: Vec<f64>,
    /// Knee gained ÷ proportional gain, per step (`None` from a knee of 0).
    pub step_efficiency: Vec<Option<f64>>,
    /// The allotment past which adding cores stops raising the knee.
    pub flattens_at_cores: Option<f64>,
    /// `proportional`, `sublinear`, `flattens` or `flat`.
    pub curve: String,
    pub usl: Option<Usl>,
    pub predictions: Vec<TierPrediction>,
    /// The busiest thread above the flattening point (the serial part).
    pub busiest_thread: Option<String>,
    pub busiest_thread_share: Option<f64>,
    /// What to measure next when a tier got no point figure.
    #[serde(default)]
    pub next_allotment: Option<NextAllotment>,
}

/// The knees a tier may have, from the USLs the measured knees admit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KneeRange {
    pub low: f64,
    pub high: f64,
    /// The contention (σ) span of the admitted laws.
    pub sigma_low: f64,
    pub sigma_high: f64,
}

/// The allotment to measure next (`sizing.scaling.next_allotment`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NextAllotment {
    pub cores: f64,
    /// `true`: the most this machine gives; `false`: a tier's cores, which
    /// need a larger machine.
    pub on_this_machine: bool,
}

/// The sizing answer. The first twelve fields are read by other tools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sizing {
    /// `None` without a target: only the knee and the curve.
    pub verdict: Option<Verdict>,
    pub saturated: Saturation,
    pub cores_needed: f64,
    pub memory_needed_mb: f64,
    pub tier: Option<String>,
    pub target_speakers: Option<u32>,
    pub confidence: String,
    pub extrapolation: f64,
    pub knee: u32,
    pub per_speaker: PerSpeaker,
    pub memory_band: MemoryBand,
    pub explanation: Vec<String>,
    /// The figures each verdict line stands on.
    pub evidence: Vec<String>,
    /// The load shape the knee was measured with.
    pub shape: String,
    /// How the knee grows with cores (`--cpus` with two or more allotments).
    pub scaling: Option<Scaling>,
    /// With `hot_thread` or a flat curve: server processes or instances
    /// needed (⌈T / knee⌉).
    pub processes_needed: Option<u32>,
    pub first_fail: Option<u32>,
    pub max_measured_speakers: u32,
    pub peak_memory_mb: f64,
    /// The CPU allotment the verdict is about: the server's own when known,
    /// else the largest measured one (`None`: unknown and unmeasured).
    #[serde(default)]
    pub verdict_cores: Option<f64>,
    /// The known allotment the verdict was judged against (`None` = unknown).
    pub current_cores: Option<f64>,
    pub current_memory_mb: Option<f64>,
    pub tier_cores: Option<f64>,
    pub tier_memory_gb: Option<f64>,
    /// The SLOs in operator words, e.g. `p95 first audio ≤ 2 s`.
    pub slo_summary: String,
}
