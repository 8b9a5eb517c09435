//! The sizing verdict: what one speaker costs, what saturated, how the knee
//! grows with cores, what to buy.
//!
//! This file owns the pure step from per-stage server measurements
//! ([`StageServer`], at one allotment or at several, [`AllotmentRun`]) plus
//! the known allotment to a [`Sizing`] that other tools read as JSON (field
//! names are fixed) and operators read through [`render_text`].
//!
//! Rules, all in one place:
//! - **Per-speaker cost**: least squares over the stages, x = speakers,
//!   y = CPU p95 cores (see `fit`). **Memory** is kept apart: baseline plus
//!   MB per connected device plus MB per speaker, fitted jointly when the
//!   device count varies independently of the speakers (idle devices), else
//!   one slope per speaker (MB per device unknown). A fitted figure is
//!   printed only when its spread is smaller than it; otherwise it is left
//!   out as noise, with the reason, next to what the stages measured
//!   directly (CPU-seconds per turn, the memory step up to the knee).
//! - **Saturation** is judged at the first failing stage (or the largest),
//!   from the CPU *peaks* against the known allotment (see `saturation`):
//!   `memory`, `hot_thread`, `throttling`, `cpu` (bursts: ≥ 5% of seconds at
//!   ≥ 90% of the allotment), `none` only when CPU p99 stays under 60% and no
//!   thread is hot, else `inconclusive` (measure two allotments). With a
//!   curve, the curve decides what the peaks cannot: `serial_part` when the
//!   knee grows more slowly than the cores (σ > 0).
//! - **Scaling** (several allotments, see `scaling`): speakers per added core
//!   between measured points, where the curve flattens (a step raises the
//!   knee by < 25% of proportional), a Universal Scalability Law fit, and a
//!   predicted knee per tier with a confidence that falls with the distance
//!   from measured allotments; beyond twice the largest measured allotment
//!   no point figure, only the range the measured knees admit (or none),
//!   and the allotment to measure next (see `reach`).
//! - **Need** for the target T (the knee when no target): cores
//!   `(baseline + slope × T) × 1.3` rounded up to 0.5 core, or, with a
//!   curve, the fewest cores whose predicted knee reaches T; memory
//!   `(baseline + MB/device × devices + MB/speaker × T) × 1.3` rounded up to
//!   64 MB. When the measured knee is below T at a CPU-bound allotment, the
//!   cores needed are at least `allotment × T / knee` (the measurement
//!   outranks the model).
//! - **Verdict** only with a target: `SUFFICIENT` when the known allotment
//!   covers the needs (unknown parts are not checked) and the knee (measured,
//!   or predicted by the curve at the allotment) reaches T; otherwise
//!   `INSUFFICIENT`. No target, no verdict. The verdict is about one
//!   allotment (`verdict_cores`): the server's own when known, else the
//!   largest measured one, and the headline names it.
//! - **Tier** agrees with the verdict: with `SUFFICIENT` only a tier no
//!   larger than the allotment; with `INSUFFICIENT` only a tier larger than
//!   the allotment in the saturated resource, and none at all when more of
//!   it cannot help (`hot_thread`, `none`, `inconclusive`, a flat curve).
//! - **Confidence**: `high` within measured load, `medium` up to 2× beyond,
//!   `low` further (`extrapolation` = T / largest measured stage; with a
//!   curve, the distance from measured allotments counts too).

use serde::{Deserialize, Serialize};

use super::slo::Slo;

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

/// Everything [`size`] needs.
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
    /// Band of a peak against a limit (see the module docs).
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

pub use fit::{MemoryStep, PerSpeaker};
pub use reach::{KneeRange, NextAllotment};
pub use scaling::{Scaling, ScalingPoint, TierPrediction, Usl};

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

/// What the stages showed, before any modelling.
struct Measured<'a> {
    max_measured: u32,
    first_fail: Option<u32>,
    knee: u32,
    /// The first failing stage, or the largest if none failed.
    judged: &'a StageServer,
}

impl<'a> Measured<'a> {
    fn of(stages: &'a [StageServer]) -> Result<Self, SizingError> {
        let mut sorted: Vec<&StageServer> = stages.iter().collect();
        sorted.sort_by_key(|s| s.speakers);
        let last = *sorted.last().ok_or(SizingError::NoStages)?;
        if last.speakers == 0 {
            return Err(SizingError::NoStages);
        }
        let failing = sorted.iter().find(|s| !s.passed).copied();
        let first_fail = failing.map(|s| s.speakers);
        let knee = sorted
            .iter()
            .filter(|s| s.passed && first_fail.is_none_or(|f| s.speakers < f))
            .map(|s| s.speakers)
            .max()
            .unwrap_or(0);
        Ok(Self {
            max_measured: last.speakers,
            first_fail,
            knee,
            judged: failing.unwrap_or(last),
        })
    }
}

/// Computes the sizing answer. See the module docs for every rule.
pub fn size(input: &SizingInput) -> Result<Sizing, SizingError> {
    validate(input)?;
    let curve: Vec<&AllotmentRun> = input.curve.iter().filter(|a| !a.stages.is_empty()).collect();
    // The allotment judged: the largest measured one with a curve.
    let (stages, judged_cores): (Vec<StageServer>, Option<f64>) = match curve.last() {
        Some(top) => (top.stages.clone(), Some(top.cores)),
        None => (input.stages.clone(), input.allotment.cpu_cores),
    };
    let m = Measured::of(&stages)?;
    let all_stages: Vec<StageServer> = match curve.is_empty() {
        true => input.stages.clone(),
        false => curve.iter().flat_map(|a| a.stages.clone()).collect(),
    };
    let all_refs: Vec<&StageServer> = all_stages.iter().collect();
    let mut cost = fit::per_speaker(&all_refs);
    cost.memory_step = fit::memory_step(&stages, m.knee);
    let scaling = scaling::analyse(&curve, input)?;
    let peaks = saturation::judge(m.judged, judged_cores, input.allotment.memory_mb);
    let saturated = saturation::with_curve(peaks, scaling.as_ref());
    let target = input.target_speakers.unwrap_or(m.knee.max(1));
    let t = f64::from(target);
    let devices = f64::from(input.devices_for_target.unwrap_or(target));
    let mut cores_needed = round_cores((cost.baseline_cores + cost.cores_per_speaker * t) * HEADROOM);
    let mb_device = cost.mb_per_device.unwrap_or(0.0);
    let mut memory_needed_mb = round_mb((cost.baseline_mb + mb_device * devices + cost.mb_per_speaker * t) * HEADROOM);
    let ctx = Judged {
        m: &m,
        saturated,
        supply: input.allotment,
        judged_cores,
        target,
    };
    raise_to_measurement(&ctx, &mut cores_needed, &mut memory_needed_mb);
    if let Some(sc) = &scaling {
        cores_needed = scaling::cores_for(sc, t).map_or(cores_needed, round_cores);
    }
    let verdict = input
        .target_speakers
        .map(|_| verdict_of(&ctx, scaling.as_ref(), cores_needed, memory_needed_mb));
    let tier = tiers::pick(
        &ctx,
        verdict,
        scaling.as_ref(),
        &input.tiers,
        cores_needed,
        memory_needed_mb,
    );
    let peak_memory_mb = all_stages.iter().map(|s| s.memory_mb_max).fold(0.0, f64::max);
    let extrapolation = t / f64::from(m.max_measured);
    let flat = scaling.as_ref().is_some_and(|s| s.flattens_at_cores.is_some());
    let blocked = saturated == Saturation::HotThread || flat;
    let best_knee = scaling
        .as_ref()
        .map_or(m.knee, |s| s.points.iter().map(|p| p.knee).max().unwrap_or(0));
    let mut sizing = Sizing {
        verdict,
        saturated,
        cores_needed,
        memory_needed_mb,
        tier: tier.map(|t| t.name.clone()),
        target_speakers: input.target_speakers,
        confidence: scaling::confidence_at(scaling.as_ref(), extrapolation, input.allotment.cpu_cores).to_string(),
        extrapolation,
        knee: m.knee,
        per_speaker: cost,
        memory_band: MemoryBand::of(peak_memory_mb, input.allotment.memory_mb),
        explanation: Vec::new(),
        evidence: Vec::new(),
        shape: input.shape.clone(),
        scaling,
        processes_needed: (blocked && best_knee > 0 && target > best_knee).then(|| target.div_ceil(best_knee)),
        first_fail: m.first_fail,
        max_measured_speakers: m.max_measured,
        peak_memory_mb,
        verdict_cores: input.allotment.cpu_cores.or(judged_cores),
        current_cores: input.allotment.cpu_cores,
        current_memory_mb: input.allotment.memory_mb,
        tier_cores: tier.map(|t| t.cpu_cores),
        tier_memory_gb: tier.map(|t| t.memory_gb),
        slo_summary: slo_summary(&input.slos),
    };
    sizing.evidence = text::evidence(&sizing, m.judged, judged_cores);
    sizing.explanation = text::explain(&sizing, m.judged, judged_cores);
    Ok(sizing)
}

/// The measured facts the verdict and the tier are judged on.
pub(super) struct Judged<'a> {
    m: &'a Measured<'a>,
    saturated: Saturation,
    /// The server's own known limits.
    supply: Allotment,
    /// The CPU allotment the judged stages ran at.
    judged_cores: Option<f64>,
    target: u32,
}

/// A measured knee below the target at a CPU-bound allotment means at
/// least `allotment × T / knee` cores (and likewise memory).
fn raise_to_measurement(j: &Judged, cores: &mut f64, memory_mb: &mut f64) {
    let (knee, t) = (j.m.knee, j.target);
    if knee == 0 || knee >= t {
        return;
    }
    let scale = f64::from(t) / f64::from(knee);
    match (j.saturated, j.judged_cores, j.supply.memory_mb) {
        (Saturation::Cpu | Saturation::Throttling, Some(c), _) => *cores = cores.max(round_cores(c * scale)),
        (Saturation::Memory, _, Some(mb)) => *memory_mb = memory_mb.max(round_mb(mb * scale)),
        _ => {}
    }
}

fn verdict_of(j: &Judged, scaling: Option<&Scaling>, cores_needed: f64, memory_needed_mb: f64) -> Verdict {
    let t = j.target;
    let mem_ok = j.supply.memory_mb.is_none_or(|mb| mb >= memory_needed_mb);
    let knee_ok = match (scaling, j.supply.cpu_cores) {
        // With a curve: the knee predicted (or measured) at the allotment.
        (Some(sc), Some(c)) => reach::knee_bound(sc, c).is_some_and(|k| k >= f64::from(t)),
        (Some(sc), None) => sc.points.iter().any(|p| p.knee >= t),
        (None, _) => {
            let beyond = j.m.first_fail.is_none() && t > j.m.max_measured;
            let cores_ok = j.supply.cpu_cores.is_none_or(|c| c >= cores_needed);
            (j.m.knee >= t || beyond) && cores_ok
        }
    };
    let hot_blocks = j.saturated == Saturation::HotThread && t > j.m.knee;
    if knee_ok && mem_ok && !hot_blocks {
        Verdict::Sufficient
    } else {
        Verdict::Insufficient
    }
}

/// Rounds up to the next 0.5 core; the epsilon keeps float noise from
/// pushing an exact value (e.g. 4.0000000001) a whole step up.
fn round_cores(cores: f64) -> f64 {
    ((cores * 2.0 - 1e-9).ceil() / 2.0).max(0.0)
}

/// Rounds up to the next 64 MB (same epsilon rule as [`round_cores`]).
fn round_mb(mb: f64) -> f64 {
    ((mb / 64.0 - 1e-9).ceil() * 64.0).max(0.0)
}

fn slo_summary(slos: &[Slo]) -> String {
    slos.iter().map(Slo::describe).collect::<Vec<_>>().join(", ")
}

mod fit;
mod saturation;
mod validate;
use validate::validate;
mod reach;
mod scaling;
mod text;
mod text_scaling;
mod tiers;
pub use text::render_text;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_recorded;
#[cfg(test)]
mod tests_scaling;
