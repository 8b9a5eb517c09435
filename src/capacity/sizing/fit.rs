//! The cost model: least-squares lines of CPU and memory against load.
//!
//! This file owns the fit rules described in the parent module docs
//! (negative slope → 0, negative intercept → refit through the origin, one
//! distinct x → all cost per speaker, spread unknown below 3 points).

use super::{PerSpeaker, StageServer};

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
    let mut devices: Vec<u32> = stages.iter().map(|s| s.connected_devices).collect();
    devices.sort_unstable();
    devices.dedup();
    let idle_devices = stages.iter().any(|s| s.connected_devices != s.speakers);
    let mb_per_device = (devices.len() >= 2 && idle_devices).then(|| {
        let points: Vec<(f64, f64)> = stages
            .iter()
            .map(|s| (f64::from(s.connected_devices), s.memory_mb_max))
            .collect();
        fit_line(&points).slope
    });
    let turns: u64 = stages.iter().map(|s| s.turns).sum();
    let cpu_seconds: f64 = stages.iter().map(|s| s.cpu_cores_mean * s.duration_s).sum();
    PerSpeaker {
        cores_per_speaker: cpu.slope,
        cores_spread: cpu.spread,
        mb_per_speaker: mem.slope,
        mb_spread: mem.spread,
        baseline_cores: cpu.intercept,
        baseline_mb: mem.intercept,
        cpu_seconds_per_turn: (turns > 0).then(|| cpu_seconds / turns as f64),
        mb_per_device,
    }
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
