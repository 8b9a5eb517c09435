//! `capacity --cpus 0.5,1,2`: one knee search per CPU allotment, the server's
//! limit set before each (by a [`CpuLimiter`]), each search starting from
//! the previous knee, and one sizing verdict from the measured curve.
//!
//! The limiter is the caller's: it restores the original limit at the end
//! (explicitly, and from its `Drop` on errors and panics).

use super::run::{CapacityOptions, CapacityOutcome, search_on};
use super::section::{AllotmentSection, CapacityStage, StageStatus};
use super::sizing::{self, AllotmentRun, SizingInput};
use crate::config::Plan;
use crate::rig::Rig;
use crate::watch::Allotment;
use crate::watch::limit::CpuLimiter;
use crate::watch::limit::quota::cores_label;
use tokio_util::sync::CancellationToken;

/// Why a search's knee cannot be a point of the curve: only a search that
/// ended by its own rule, or was cut short with its knee already between a
/// pass and a failure at most a quarter (or 2 speakers) above it, measured
/// the knee.
fn off_curve_reason(out: &CapacityOutcome) -> Option<String> {
    off_curve(
        &out.capacity.stop_reason,
        out.capacity.max_speakers.unwrap_or(0),
        out.result.first_fail,
    )
}

/// [`off_curve_reason`] from the stop reason, the knee and the first fail.
pub fn off_curve(stop_reason: &str, pass: u32, fail: Option<u32>) -> Option<String> {
    // Cut short between a pass and a close failure: the knee is bracketed.
    let bracketed = pass > 0 && fail.is_some_and(|f| f > pass && f - pass <= (pass / 4).max(2));
    let why = match stop_reason {
        "converged" | "hit_max_speakers" | "start_failed" | "memory_near_limit" => return None,
        "generator_invalid" | "inconclusive" if bracketed => return None,
        "generator_invalid" => "the load generator could not keep pace: the knee is only a lower bound",
        "inconclusive" => "a stage had too few turns to judge: the knee is only a lower bound",
        "interrupted" => "interrupted",
        "nothing_connected" => "nothing could connect",
        other => other,
    };
    Some(why.to_string())
}

/// The allotments in the order they are measured: ascending, no repeats.
pub fn allotment_order(cpus: &[f64]) -> Vec<f64> {
    let mut out: Vec<f64> = cpus.iter().copied().filter(|c| c.is_finite() && *c > 0.0).collect();
    out.sort_by(f64::total_cmp);
    out.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
    out
}

/// Runs a knee search at every allotment of `opts.cpus` (ascending).
pub async fn run_allotments(
    rig: &mut Rig,
    plan: &Plan,
    opts: &CapacityOptions,
    limiter: &mut CpuLimiter,
    interrupt: CancellationToken,
    progress: impl Fn(&CapacityStage),
    announce: impl Fn(&str),
) -> anyhow::Result<CapacityOutcome> {
    let mut sections = Vec::new();
    let mut curve = Vec::new();
    let mut stages = Vec::new();
    let mut last: Option<CapacityOutcome> = None;
    let mut start = opts.search.start;
    for cpus in allotment_order(&opts.cpus) {
        if interrupt.is_cancelled() {
            break;
        }
        let applied = limiter.set(cpus).await?;
        announce(&format!("CPU allotment {}: {}", cores_label(cpus), applied.how));
        let mut o = opts.clone();
        o.search.start = start;
        // A start taken from the last knee is a hint, not a floor.
        o.search.descend = start > opts.search.start;
        o.watch.allotment.cpu_cores = Some(applied.cores);
        let out = search_on(rig, plan, &o, interrupt.clone(), &progress).await?;
        start = out.capacity.max_speakers.unwrap_or(0).max(opts.search.start);
        let off_curve = off_curve_reason(&out);
        if off_curve.is_none() {
            curve.push(AllotmentRun {
                cores: applied.cores,
                stages: out.inputs.clone(),
            });
        }
        stages.extend(out.capacity.stages.iter().cloned());
        sections.push(AllotmentSection {
            cpus,
            applied_cores: applied.cores,
            limit: applied.how,
            max_speakers: out.capacity.max_speakers,
            stop_reason: out.capacity.stop_reason.clone(),
            stages: out.capacity.stages.clone(),
            server: out.server.as_ref().map(|s| s.summary.clone()),
            off_curve,
        });
        let stop = out.interrupted || out.nothing_connected;
        last = Some(out);
        if stop {
            break;
        }
    }
    let Some(mut out) = last else {
        anyhow::bail!("interrupted before the first allotment was measured");
    };
    if interrupt.is_cancelled() && !out.interrupted {
        // Ctrl-C between two allotments: the later ones were never run.
        out.interrupted = true;
        out.capacity.stop_reason = "interrupted".to_string();
    }
    let memory_mb = out
        .server
        .as_ref()
        .and_then(|s| s.allotment.memory_mb)
        .or(opts.watch.allotment.memory_mb);
    let supply = Allotment {
        cpu_cores: opts.watch.allotment.cpu_cores.or(limiter.original_cores()),
        memory_mb,
    };
    let measured = curve.iter().filter(|a| !a.stages.is_empty()).count();
    if measured > 0 {
        let target_devices = opts
            .target_speakers
            .map(|t| super::run::stage_plan(plan, t, opts.stage_duration, 0, "").devices);
        out.sizing = Some(sizing::size(&SizingInput {
            allotment: supply,
            target_speakers: opts.target_speakers,
            tiers: opts.tiers.clone(),
            slos: opts.slos.clone(),
            shape: plan.shape.as_str().to_string(),
            curve,
            devices_for_target: target_devices,
            machine_cores: std::thread::available_parallelism().ok().map(|n| n.get() as f64),
            ..SizingInput::default()
        })?);
    }
    out.capacity.completed_stages = stages.iter().filter(|s| s.status != StageStatus::Inconclusive).count() as u32;
    out.capacity.stages = stages;
    out.capacity.allotments = Some(sections);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_measured_knees_are_curve_points() {
        assert_eq!(off_curve("converged", 12, Some(13)), None);
        assert_eq!(off_curve("start_failed", 0, Some(1)), None);
        assert_eq!(
            off_curve("generator_invalid", 33, Some(37)),
            None,
            "bracketed within a quarter"
        );
        assert!(
            off_curve("generator_invalid", 33, Some(66)).is_some(),
            "only a lower bound"
        );
        assert!(off_curve("generator_invalid", 4, None).is_some());
        assert!(off_curve("inconclusive", 0, Some(8)).is_some());
        assert!(off_curve("interrupted", 10, Some(11)).is_some());
    }

    #[test]
    fn allotments_run_ascending_without_repeats() {
        assert_eq!(allotment_order(&[1.0, 0.25, 0.5, 1.0]), vec![0.25, 0.5, 1.0]);
        assert_eq!(allotment_order(&[2.0, f64::NAN, -1.0, 0.0]), vec![2.0]);
    }
}
