//! Per-run summary of the server samples: mean / p95 / p99 / max of CPU
//! cores, memory and the busiest thread's share of a core, the share of
//! samples at or above 90% of the CPU allotment (bursts), plus worst
//! throttling. Percentiles are nearest-rank over the per-interval samples.
//! Only samples taken while a watched target could be read exist, so a
//! process that exits early is summarised over its life, not averaged with
//! zeros.

use serde::Serialize;

use super::sample::ServerSample;

/// Share of the CPU allotment from which a sample counts as a burst.
pub const BURST_SHARE: f64 = 0.9;

/// Mean, 95th and 99th percentiles (nearest rank) and maximum of a series.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Stats {
    pub mean: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Stats {
    /// Stats of `values` (all zero when empty). NaNs are ignored.
    pub fn of(values: &[f64]) -> Stats {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        if sorted.is_empty() {
            return Stats::default();
        }
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        // Nearest rank: ceil(q n / 100), computed in integers.
        let rank = |q: usize| (q * n).div_ceil(100).clamp(1, n);
        Stats {
            mean: sorted.iter().sum::<f64>() / n as f64,
            p95: sorted[rank(95) - 1],
            p99: sorted[rank(99) - 1],
            max: sorted[n - 1],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ServerSummary {
    pub samples: usize,
    pub cpu_cores: Stats,
    pub memory_mb: Stats,
    /// Over the samples that had a hot thread (pid targets).
    pub hot_thread_share: Option<Stats>,
    /// Name of the thread in the sample with the highest share.
    pub hot_thread_name: Option<String>,
    pub throttled_ratio_max: Option<f64>,
    /// Share of samples using at least 90% of the CPU allotment (bursts);
    /// `None` when the allotment is unknown.
    pub cpu_burst_share: Option<f64>,
    pub threads_max: Option<u32>,
    pub fds_max: Option<u32>,
    pub swap_mb_max: Option<f64>,
}

/// Summarizes a run's samples (allotment unknown: no burst share).
pub fn summarize(samples: &[ServerSample]) -> ServerSummary {
    summarize_with(samples, None)
}

/// Summarizes samples, counting bursts against `cpu_limit` cores.
pub fn summarize_with(samples: &[ServerSample], cpu_limit: Option<f64>) -> ServerSummary {
    let col = |f: fn(&ServerSample) -> f64| samples.iter().map(f).collect::<Vec<f64>>();
    let hot: Vec<_> = samples.iter().filter_map(|s| s.hot_thread.as_ref()).collect();
    let shares: Vec<f64> = hot.iter().map(|h| h.core_share).collect();
    let hottest = hot.iter().max_by(|a, b| a.core_share.total_cmp(&b.core_share));
    let max_f = |it: &mut dyn Iterator<Item = f64>| it.fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    ServerSummary {
        samples: samples.len(),
        cpu_cores: Stats::of(&col(|s| s.cpu_cores)),
        memory_mb: Stats::of(&col(|s| s.memory_mb)),
        hot_thread_share: (!shares.is_empty()).then(|| Stats::of(&shares)),
        hot_thread_name: hottest.map(|h| h.name.clone()),
        throttled_ratio_max: max_f(&mut samples.iter().filter_map(|s| s.throttled_ratio)),
        cpu_burst_share: cpu_limit.filter(|c| *c > 0.0 && !samples.is_empty()).map(|c| {
            let bursts = samples.iter().filter(|s| s.cpu_cores >= BURST_SHARE * c).count();
            bursts as f64 / samples.len() as f64
        }),
        threads_max: samples.iter().filter_map(|s| s.threads).max(),
        fds_max: samples.iter().filter_map(|s| s.fds).max(),
        swap_mb_max: max_f(&mut samples.iter().filter_map(|s| s.swap_mb)),
    }
}
