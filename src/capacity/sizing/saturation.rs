//! What saturated, judged from one stage's peaks against the allotment.
//!
//! This file owns the precedence rule (parent module docs): memory at ≥ 90%
//! of its limit; a hot thread (p95 ≥ 90% of a core) while the process uses
//! under half its cores; throttling (≥ 10% of periods); CPU bursts (≥ 5% of
//! seconds at ≥ 90% of the allotment, or p95 there); `none` only when CPU
//! p99 stays under 60% of the allotment and no thread is hot; anything else
//! (including an unknown allotment) is `inconclusive`. With a curve, the
//! curve decides what the peaks cannot: `serial_part` when they stayed
//! well under the allotment while the knee grew more slowly than the cores
//! (σ > 0).

use super::model::{
    BURST_SATURATION, CLEARLY_IDLE_SHARE, HOT_THREAD_PROCESS_SHARE, HOT_THREAD_SHARE, SATURATION_SHARE, Saturation,
    StageServer, THROTTLED_SATURATION,
};

/// The saturation of stage `s` at `cores` (CPU) and `memory_mb` limits.
pub(super) fn judge(s: &StageServer, cores: Option<f64>, memory_mb: Option<f64>) -> Saturation {
    let cores = cores.filter(|c| *c > 0.0);
    let hot = s.hot_thread_p95.is_some_and(|h| h >= HOT_THREAD_SHARE);
    let process_not_busy = cores.is_none_or(|c| s.cpu_cores_p95 < HOT_THREAD_PROCESS_SHARE * c);
    if memory_mb.is_some_and(|l| l > 0.0 && s.memory_mb_max >= SATURATION_SHARE * l) {
        return Saturation::Memory;
    }
    if hot && process_not_busy {
        return Saturation::HotThread;
    }
    if s.throttled_ratio_max.is_some_and(|t| t >= THROTTLED_SATURATION) {
        return Saturation::Throttling;
    }
    let Some(c) = cores else {
        return Saturation::Inconclusive;
    };
    let bursts = s.cpu_burst_share.unwrap_or(0.0) >= BURST_SATURATION;
    if bursts || s.cpu_cores_p95 >= SATURATION_SHARE * c {
        return Saturation::Cpu;
    }
    if s.cpu_cores_p99 < CLEARLY_IDLE_SHARE * c && !hot {
        return Saturation::None;
    }
    Saturation::Inconclusive
}

/// The peak rule's answer, completed by the curve (see module docs).
pub(super) fn with_curve(peaks: Saturation, curve: Option<&super::model::Scaling>) -> Saturation {
    let serial = curve.is_some_and(|sc| sc.curve != "proportional" && sc.usl.is_some_and(|u| u.sigma > 0.0));
    match peaks {
        Saturation::Inconclusive if serial => Saturation::SerialPart,
        other => other,
    }
}
