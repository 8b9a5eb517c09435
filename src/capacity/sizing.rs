//! The sizing verdict: what one speaker costs, what saturated, what to buy.
//!
//! This file owns the pure step from per-stage server measurements
//! ([`StageServer`]) plus the container's allotment to a [`Sizing`] that other
//! tools read as JSON (field names are fixed) and operators read through
//! [`render_text`].
//!
//! Rules, all in one place:
//! - **Per-speaker cost**: least squares over the stages, x = speakers,
//!   y = CPU p95 cores (and y = peak memory MB). A negative slope is noise:
//!   it becomes 0 with the mean as baseline. A negative intercept means cost
//!   grows faster than linearly: the line is refitted through the origin so
//!   the baseline is never negative. With one distinct speaker count the whole
//!   cost is charged per speaker (baseline 0), which overestimates, the safe
//!   side. The spread is the residual standard deviation (n − 2 degrees of
//!   freedom), unknown below 3 stages. MB per connected device (peak memory
//!   against `connected_devices`) is fitted only when the device count takes
//!   two or more values and differs from the speaker count somewhere (idle
//!   devices); otherwise it would repeat MB per speaker and is `None`.
//! - **Saturation** is judged at the first (smallest) failing stage, or the
//!   largest stage if none failed, in this order of precedence:
//!   1. `memory` (peak ≥ 90 % of the limit): the OOM killer ends every
//!      conversation at once, so it outranks any CPU symptom;
//!   2. `hot_thread` (busiest thread p95 ≥ 0.9 of a core while process CPU p95
//!      < 50 % of the allotment): the remedy differs (more processes, not more
//!      cores), and throttling seen then is a side effect of that thread;
//!   3. `throttling` (cgroup throttled-period ratio ≥ [`THROTTLED_SATURATION`]):
//!      the quota bites in bursts before the p95 looks full, so it is the more
//!      direct evidence when both it and `cpu` hold;
//!   4. `cpu` (process CPU p95 ≥ 90 % of the allotted cores);
//!   5. `none`: the limit is outside the container (e.g. a slow AI provider).
//! - **Memory band** of the peak over all stages: safe < 80 %, elevated 80–90 %,
//!   warning 90–95 %, danger ≥ 95 % (OOM is near).
//! - **Need** for the target T (T = the knee, at least 1, when no target is
//!   given): `(baseline + slope × T) × 1.3`, i.e. 30 % headroom; cores are
//!   rounded up to the next 0.5 core (the finest CPU quota step sold), memory
//!   up to the next 64 MB.
//! - **Tier**: the smallest tier (by cores, then memory) covering both needs.
//! - **Verdict**: `SUFFICIENT` when the current allotment (or, absent it, the
//!   tier named `current`) covers both needs, and the knee ≥ T unless every
//!   stage passed and T lies beyond them (then only the model speaks). With
//!   `hot_thread`, T > knee is `INSUFFICIENT` whatever the cores, and the need
//!   is also given as ⌈T / knee⌉ server processes or instances.
//! - **Confidence**: `high` if T ≤ the largest measured stage, `medium` if
//!   ≤ 2× that, `low` beyond; `extrapolation` = T / largest measured stage.

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
    pub cpu_cores_max: f64,
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
pub use crate::server::Allotment;

impl StageServer {
    /// A stage's server figures from the watcher's summary of its window.
    pub fn from_window(
        speakers: u32,
        connected_devices: u32,
        passed: bool,
        w: &crate::server::summary::ServerSummary,
        turns: u64,
        duration_s: f64,
    ) -> StageServer {
        StageServer {
            speakers,
            connected_devices,
            passed,
            cpu_cores_mean: w.cpu_cores.mean,
            cpu_cores_p95: w.cpu_cores.p95,
            cpu_cores_max: w.cpu_cores.max,
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

/// Everything [`size`] needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SizingInput {
    pub stages: Vec<StageServer>,
    pub allotment: Allotment,
    pub target_speakers: Option<u32>,
    pub tiers: Vec<Tier>,
    /// The SLOs the stages were judged by (only used for wording).
    pub slos: Vec<Slo>,
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

/// The fitted cost model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PerSpeaker {
    pub cores_per_speaker: f64,
    pub cores_spread: Option<f64>,
    pub mb_per_speaker: f64,
    pub mb_spread: Option<f64>,
    pub baseline_cores: f64,
    pub baseline_mb: f64,
    pub cpu_seconds_per_turn: Option<f64>,
    pub mb_per_device: Option<f64>,
}

/// The sizing answer. The first twelve fields are read by other tools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sizing {
    pub verdict: Verdict,
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
    /// With `hot_thread`: server processes or instances needed (⌈T / knee⌉).
    pub processes_needed: Option<u32>,
    pub first_fail: Option<u32>,
    pub max_measured_speakers: u32,
    pub peak_memory_mb: f64,
    /// The limits the verdict was judged against.
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
    /// `stages` must be sorted by speakers.
    fn of(stages: &[&'a StageServer]) -> Result<Self, SizingError> {
        let last = *stages.last().ok_or(SizingError::NoStages)?;
        if last.speakers == 0 {
            return Err(SizingError::NoStages);
        }
        let failing = stages.iter().find(|s| !s.passed).copied();
        let first_fail = failing.map(|s| s.speakers);
        let knee = stages
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

/// The limits judged against: the allotment, else the tier named `current`.
fn supply(input: &SizingInput) -> Allotment {
    let current = input.tiers.iter().find(|t| t.name == "current");
    Allotment {
        cpu_cores: input.allotment.cpu_cores.or(current.map(|t| t.cpu_cores)),
        memory_mb: (input.allotment.memory_mb).or(current.map(|t| t.memory_gb * 1024.0)),
    }
}

/// Computes the sizing verdict. See the module docs for every rule.
pub fn size(input: &SizingInput) -> Result<Sizing, SizingError> {
    validate(input)?;
    let mut stages: Vec<&StageServer> = input.stages.iter().collect();
    stages.sort_by_key(|s| s.speakers);
    let m = Measured::of(&stages)?;
    let supply = supply(input);
    let saturated = saturation(m.judged, &supply);
    let peak_memory_mb = stages.iter().map(|s| s.memory_mb_max).fold(0.0, f64::max);
    let cost = per_speaker(&stages);
    let target = input.target_speakers.unwrap_or(m.knee.max(1));
    let t = f64::from(target);
    let cores_needed = round_cores((cost.baseline_cores + cost.cores_per_speaker * t) * HEADROOM);
    let memory_needed_mb = round_mb((cost.baseline_mb + cost.mb_per_speaker * t) * HEADROOM);
    let tier = pick_tier(&input.tiers, cores_needed, memory_needed_mb);
    let covers =
        supply.cpu_cores.is_none_or(|c| c >= cores_needed) && supply.memory_mb.is_none_or(|mb| mb >= memory_needed_mb);
    let knee_ok = m.knee >= target || (m.first_fail.is_none() && target > m.max_measured);
    let hot_blocks = saturated == Saturation::HotThread && target > m.knee;
    let verdict = if covers && knee_ok && !hot_blocks {
        Verdict::Sufficient
    } else {
        Verdict::Insufficient
    };
    let extrapolation = t / f64::from(m.max_measured);
    let mut sizing = Sizing {
        verdict,
        saturated,
        cores_needed,
        memory_needed_mb,
        tier: tier.map(|t| t.name.clone()),
        target_speakers: input.target_speakers,
        confidence: confidence(extrapolation).to_string(),
        extrapolation,
        knee: m.knee,
        per_speaker: cost,
        memory_band: MemoryBand::of(peak_memory_mb, supply.memory_mb),
        explanation: Vec::new(),
        processes_needed: (saturated == Saturation::HotThread && m.knee > 0).then(|| target.div_ceil(m.knee)),
        first_fail: m.first_fail,
        max_measured_speakers: m.max_measured,
        peak_memory_mb,
        current_cores: supply.cpu_cores,
        current_memory_mb: supply.memory_mb,
        tier_cores: tier.map(|t| t.cpu_cores),
        tier_memory_gb: tier.map(|t| t.memory_gb),
        slo_summary: slo_summary(&input.slos),
    };
    sizing.explanation = explain(&sizing, m.judged);
    Ok(sizing)
}

fn validate(input: &SizingInput) -> Result<(), SizingError> {
    let check = |what: String, v: f64| {
        if v.is_finite() && v >= 0.0 {
            Ok(())
        } else {
            Err(SizingError::InvalidValue { what, value: v })
        }
    };
    for s in &input.stages {
        let n = s.speakers;
        for (field, v) in [
            ("cpu_cores_mean", s.cpu_cores_mean),
            ("cpu_cores_p95", s.cpu_cores_p95),
            ("cpu_cores_max", s.cpu_cores_max),
            ("memory_mb_mean", s.memory_mb_mean),
            ("memory_mb_max", s.memory_mb_max),
            ("duration_s", s.duration_s),
            ("hot_thread_p95", s.hot_thread_p95.unwrap_or(0.0)),
            ("throttled_ratio_max", s.throttled_ratio_max.unwrap_or(0.0)),
        ] {
            check(format!("stage {n} {field}"), v)?;
        }
    }
    let a = input.allotment;
    check("allotment cpu_cores".into(), a.cpu_cores.unwrap_or(0.0))?;
    check("allotment memory_mb".into(), a.memory_mb.unwrap_or(0.0))?;
    for t in &input.tiers {
        check(format!("tier {} cpu_cores", t.name), t.cpu_cores)?;
        check(format!("tier {} memory_gb", t.name), t.memory_gb)?;
    }
    Ok(())
}

fn saturation(stage: &StageServer, supply: &Allotment) -> Saturation {
    let share_of = |used: f64, limit: Option<f64>, share: f64| limit.is_some_and(|l| l > 0.0 && used >= share * l);
    let hot = stage.hot_thread_p95.is_some_and(|h| h >= HOT_THREAD_SHARE);
    let process_not_busy = supply
        .cpu_cores
        .is_none_or(|c| stage.cpu_cores_p95 < HOT_THREAD_PROCESS_SHARE * c);
    if share_of(stage.memory_mb_max, supply.memory_mb, SATURATION_SHARE) {
        Saturation::Memory
    } else if hot && process_not_busy {
        Saturation::HotThread
    } else if stage.throttled_ratio_max.is_some_and(|t| t >= THROTTLED_SATURATION) {
        Saturation::Throttling
    } else if share_of(stage.cpu_cores_p95, supply.cpu_cores, SATURATION_SHARE) {
        Saturation::Cpu
    } else {
        Saturation::None
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

fn pick_tier(tiers: &[Tier], cores: f64, memory_mb: f64) -> Option<&Tier> {
    tiers
        .iter()
        .filter(|t| t.cpu_cores >= cores && t.memory_gb * 1024.0 >= memory_mb)
        .min_by(|a, b| (a.cpu_cores.total_cmp(&b.cpu_cores)).then(a.memory_gb.total_cmp(&b.memory_gb)))
}

fn confidence(extrapolation: f64) -> &'static str {
    if extrapolation <= 1.0 {
        "high"
    } else if extrapolation <= 2.0 {
        "medium"
    } else {
        "low"
    }
}

fn slo_summary(slos: &[Slo]) -> String {
    slos.iter().map(Slo::describe).collect::<Vec<_>>().join(", ")
}

mod fit;
mod text;
use fit::per_speaker;
use text::explain;
pub use text::render_text;

#[cfg(test)]
mod tests;
