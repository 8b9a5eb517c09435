//! The cost model: least-squares lines of CPU and memory against load.
//!
//! This file owns the fit rules described in the parent module docs
//! (negative slope → 0, negative intercept → refit through the origin, one
//! distinct x → all cost per speaker, spread unknown below 3 points), and the
//! memory model kept apart from CPU: `baseline + MB/device × devices +
//! MB/speaker × speakers`, fitted jointly only when devices and speakers
//! vary independently (idle devices) over three or more stages; and the
//! direct memory step between two measured stages (no fit).

use super::model::{MemoryStep, PerSpeaker, StageServer};

/// A least-squares line with its residual spread.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Fit {
    pub(super) slope: f64,
    pub(super) intercept: f64,
    pub(super) spread: Option<f64>,
}

pub(super) fn per_speaker(stages: &[&StageServer]) -> PerSpeaker {
    let xy = |y: fn(&StageServer) -> f64| -> Vec<(f64, f64)> {
        stages.iter().map(|s| (f64::from(s.speakers), y(s))).collect()
    };
    let cpu = fit_line(&xy(|s| s.cpu_cores_p95));
    let mem = fit_line(&xy(|s| s.memory_mb_max));
    let joint = memory_joint(stages);
    let (mb_per_speaker, baseline_mb, mb_per_device) = match joint {
        Some(j) => (j.per_speaker, j.baseline, Some(j.per_device)),
        None => (mem.slope, mem.intercept, None),
    };
    let turns: u64 = stages.iter().map(|s| s.turns).sum();
    let cpu_seconds: f64 = stages.iter().map(|s| s.cpu_cores_mean * s.duration_s).sum();
    PerSpeaker {
        cores_per_speaker: cpu.slope,
        cores_spread: cpu.spread,
        mb_per_speaker,
        mb_spread: mem.spread,
        baseline_cores: cpu.intercept,
        baseline_mb,
        cpu_seconds_per_turn: (turns > 0).then(|| cpu_seconds / turns as f64),
        mb_per_device,
        memory_step: None,
    }
}

/// Peak memory growth per speaker from the smallest judged stage to the
/// knee's stage, measured directly (no fit); `None` unless it grew.
pub(super) fn memory_step(stages: &[StageServer], knee: u32) -> Option<MemoryStep> {
    let at = |n: u32| stages.iter().find(|s| s.speakers == n);
    let from = stages.iter().filter(|s| s.speakers < knee).min_by_key(|s| s.speakers)?;
    let to = at(knee)?;
    let grown = to.memory_mb_max - from.memory_mb_max;
    (grown > 0.0).then(|| MemoryStep {
        from_speakers: from.speakers,
        to_speakers: to.speakers,
        mb_per_speaker: grown / f64::from(to.speakers - from.speakers),
    })
}

pub(super) fn fit_line(points: &[(f64, f64)]) -> Fit {
    let n = points.len() as f64;
    if points.is_empty() {
        return Fit {
            slope: 0.0,
            intercept: 0.0,
            spread: None,
        };
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let (slope, intercept) = if sxx <= f64::EPSILON {
        // One distinct x: charge everything per speaker (the safe side).
        if mean_x > 0.0 {
            (mean_y / mean_x, 0.0)
        } else {
            (0.0, mean_y)
        }
    } else {
        let slope = sxy / sxx;
        let intercept = mean_y - slope * mean_x;
        if slope < 0.0 {
            (0.0, mean_y)
        } else if intercept < 0.0 {
            let sxx0: f64 = points.iter().map(|p| p.0 * p.0).sum();
            let sxy0: f64 = points.iter().map(|p| p.0 * p.1).sum();
            (sxy0 / sxx0, 0.0)
        } else {
            (slope, intercept)
        }
    };
    let spread = (points.len() >= 3).then(|| {
        let ssr: f64 = points.iter().map(|p| (p.1 - intercept - slope * p.0).powi(2)).sum();
        (ssr / (n - 2.0)).sqrt()
    });
    Fit {
        slope,
        intercept,
        spread,
    }
}

/// Memory = baseline + per_device × devices + per_speaker × speakers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct MemoryJoint {
    pub(super) baseline: f64,
    pub(super) per_device: f64,
    pub(super) per_speaker: f64,
}

/// The joint memory fit, when devices and speakers are not collinear over
/// three or more stages and no cost comes out negative.
pub(super) fn memory_joint(stages: &[&StageServer]) -> Option<MemoryJoint> {
    if stages.len() < 3 {
        return None;
    }
    let n = stages.len() as f64;
    let mean = |f: &dyn Fn(&StageServer) -> f64| stages.iter().map(|s| f(s)).sum::<f64>() / n;
    let dev = |s: &StageServer| f64::from(s.connected_devices);
    let spk = |s: &StageServer| f64::from(s.speakers);
    let mem = |s: &StageServer| s.memory_mb_max;
    let (md, ms, mm) = (mean(&dev), mean(&spk), mean(&mem));
    let sum = |f: &dyn Fn(&StageServer) -> f64| stages.iter().map(|s| f(s)).sum::<f64>();
    let sdd = sum(&|s| (dev(s) - md).powi(2));
    let sss = sum(&|s| (spk(s) - ms).powi(2));
    let sds = sum(&|s| (dev(s) - md) * (spk(s) - ms));
    let sdm = sum(&|s| (dev(s) - md) * (mem(s) - mm));
    let ssm = sum(&|s| (spk(s) - ms) * (mem(s) - mm));
    let det = sdd * sss - sds * sds;
    // Collinear (e.g. devices = speakers, or = 2 × speakers): not separable.
    if det.abs() <= 1e-9 * (sdd * sss).max(1.0) {
        return None;
    }
    let per_device = (sdm * sss - ssm * sds) / det;
    let per_speaker = (ssm * sdd - sdm * sds) / det;
    let baseline = mm - per_device * md - per_speaker * ms;
    (per_device >= 0.0 && per_speaker >= 0.0 && baseline >= 0.0).then_some(MemoryJoint {
        baseline,
        per_device,
        per_speaker,
    })
}
