//! The generator's self-check: is the load generator itself keeping up? A
//! slow generator must never be mistaken for a slow server. Reads this
//! process's CPU from `/proc/self` (utime + stime over wall time) and
//! judges the run: send-lag p99 above 5 ms, CPU above 90% of the cores the
//! process may use, or any dropped event makes the results invalid.

use crate::metrics::{Metrics, Percentiles};
use crate::server::proc::{clock_ticks_per_sec, read_proc};
use serde::Serialize;
use std::time::Instant as WallInstant;

/// Send lag p99 above this means the generator fell behind (ms).
pub const SEND_LAG_P99_LIMIT_MS: f64 = 5.0;
/// CPU above this share of the available cores means the generator is saturated.
pub const CPU_LIMIT_SHARE: f64 = 0.9;

/// The report's `generator` section.
#[derive(Clone, Debug, Default, Serialize)]
pub struct GeneratorReport {
    /// CPU used by this process, in percent of ONE core (200 = two cores busy).
    pub cpu_percent: f64,
    /// Cores this process may run on.
    pub cores: usize,
    pub threads: u32,
    /// Resident memory of this process at the end of the run.
    pub rss_mb: f64,
    pub send_lag_ms: Percentiles,
    pub dropped_events: u64,
    pub missed_arrivals: u64,
    pub valid: bool,
    pub invalid_reasons: Vec<String>,
    pub warnings: Vec<String>,
}

/// CPU reading at the start of the run.
pub struct GeneratorProbe {
    ticks: Option<u64>,
    at: WallInstant,
}

impl GeneratorProbe {
    pub fn start() -> Self {
        GeneratorProbe {
            ticks: read_proc(std::process::id()).ok().map(|p| p.cpu_ticks),
            at: WallInstant::now(),
        }
    }

    /// Judges the run from the metrics and the CPU used since `start`.
    pub fn finish(&self, m: &Metrics) -> GeneratorReport {
        let me = read_proc(std::process::id()).ok();
        let wall = self.at.elapsed().as_secs_f64();
        let cpu_percent = match (self.ticks, me.as_ref()) {
            (Some(a), Some(b)) if wall > 0.0 => {
                let secs = b.cpu_ticks.saturating_sub(a) as f64 / clock_ticks_per_sec() as f64;
                (secs / wall * 1000.0).round() / 10.0
            }
            _ => 0.0,
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        judge(GeneratorReport {
            cpu_percent,
            cores,
            threads: me.as_ref().map_or(0, |p| p.threads),
            rss_mb: me.map_or(0.0, |p| (p.rss_bytes as f64 / 1048576.0 * 10.0).round() / 10.0),
            send_lag_ms: m.tally.send_lag.percentiles(),
            dropped_events: m.dropped_events,
            missed_arrivals: m.missed_arrivals,
            ..GeneratorReport::default()
        })
    }
}

/// Applies the validity rules and the advice.
pub fn judge(mut r: GeneratorReport) -> GeneratorReport {
    let advice =
        "run fewer devices per process, give it more cores (or threads), or shard the fleet over several machines";
    if r.send_lag_ms.count > 0 && r.send_lag_ms.p99 > SEND_LAG_P99_LIMIT_MS {
        r.invalid_reasons.push(format!(
            "send lag p99 {:.1} ms is above {SEND_LAG_P99_LIMIT_MS} ms: audio left late, so latencies are not the server's alone; {advice}",
            r.send_lag_ms.p99
        ));
    }
    let limit = CPU_LIMIT_SHARE * 100.0 * r.cores as f64;
    if r.cpu_percent > limit {
        r.invalid_reasons.push(format!(
            "generator CPU {:.0}% is above 90% of its {} core(s); {advice}",
            r.cpu_percent, r.cores
        ));
    }
    if r.dropped_events > 0 {
        r.invalid_reasons.push(format!(
            "{} measurement events were dropped (collector overloaded); {advice}",
            r.dropped_events
        ));
    }
    if r.missed_arrivals > 0 {
        r.warnings.push(format!(
            "{} conversations arrived with no idle device free: add idle devices or lower the arrival rate",
            r.missed_arrivals
        ));
    }
    r.valid = r.invalid_reasons.is_empty();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lag(p99: f64) -> Percentiles {
        Percentiles {
            count: 100,
            p99,
            ..Percentiles::default()
        }
    }

    #[test]
    fn fast_generator_is_valid() {
        let r = judge(GeneratorReport {
            cores: 2,
            cpu_percent: 40.0,
            send_lag_ms: lag(2.0),
            ..GeneratorReport::default()
        });
        assert!(r.valid, "{:?}", r.invalid_reasons);
    }

    #[test]
    fn each_rule_invalidates_with_a_reason() {
        let base = GeneratorReport {
            cores: 2,
            send_lag_ms: lag(1.0),
            ..GeneratorReport::default()
        };
        let slow = judge(GeneratorReport {
            send_lag_ms: lag(5.1),
            ..base.clone()
        });
        assert!(!slow.valid && slow.invalid_reasons[0].contains("send lag"));
        let hot = judge(GeneratorReport {
            cpu_percent: 181.0,
            ..base.clone()
        });
        assert!(!hot.valid && hot.invalid_reasons[0].contains("CPU"));
        let dropped = judge(GeneratorReport {
            dropped_events: 1,
            ..base.clone()
        });
        assert!(!dropped.valid);
        let missed = judge(GeneratorReport {
            missed_arrivals: 3,
            ..base
        });
        assert!(missed.valid && missed.warnings.len() == 1);
    }
}
