//! The sizing verdict: what one speaker costs, what saturated, how the knee
//! grows with cores, what to buy.
//!
//! This file owns the pure step from per-stage server measurements
//! ([`StageServer`], at one allotment or at several, [`AllotmentRun`]) plus
//! the known allotment to a [`Sizing`] that other tools read as JSON (field
//! names are fixed) and operators read through [`render_text`]. The types
//! and thresholds live in `model` (re-exported here), what the stages
//! showed in `measured`; this file joins the rules into the answer.
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

use super::slo::Slo;

pub use model::{
    Allotment, AllotmentRun, BURST_SATURATION, CLEARLY_IDLE_SHARE, HEADROOM, HOT_THREAD_PROCESS_SHARE,
    HOT_THREAD_SHARE, KneeRange, MemoryBand, MemoryStep, NextAllotment, PerSpeaker, SATURATION_SHARE, Saturation,
    Scaling, ScalingPoint, Sizing, SizingError, SizingInput, StageServer, THROTTLED_SATURATION, Tier, TierPrediction,
    Usl, Verdict, default_tiers,
};

use measured::{Judged, Measured};

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
mod measured;
mod model;
mod saturation;
mod validate;
use validate::validate;
mod reach;
mod scaling;
mod text;
mod text_scaling;
mod tiers;
mod words;
pub use text::render_text;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_recorded;
#[cfg(test)]
mod tests_scaling;
