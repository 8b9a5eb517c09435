//! The generator's self-check: is the load generator itself keeping up? A
//! slow generator must never be mistaken for a slow server. Reads this
//! process's CPU from `/proc/self` (utime + stime over wall time) and
//! judges the run: send-lag p99 above 5 ms, CPU above 90% of the cores the
//! process may use, or any dropped event makes the results invalid.
//!
//! Starting thousands of devices (TCP, WebSocket upgrade, hello) costs far
//! more CPU than keeping them, so the run is judged after the ramp (once
//! every device has started and connected or failed to), and the ramp is
//! reported on its own: how long it took, its CPU, its send lag.

use crate::metrics::{LagHistogram, Metrics, Percentiles};
use crate::watch::proc::{clock_ticks_per_sec, read_proc};
use serde::Serialize;
// The run's clock: the wall clock in a real run; on a paused test clock,
// the time the run lived, so CPU per second is per second of the run.
use tokio::time::Instant as WallInstant;

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
    /// The most resident memory this process has had (VmHWM).
    pub rss_peak_mb: f64,
    /// Send lag after the ramp (the whole run when the ramp never ended).
    pub send_lag_ms: Percentiles,
    pub dropped_events: u64,
    pub missed_arrivals: u64,
    /// Starting the devices, reported apart from the run it is not judged with.
    pub ramp: RampReport,
    /// This process's part of a sharded run (`--shard I/N`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardReport>,
    pub valid: bool,
    pub invalid_reasons: Vec<String>,
    pub warnings: Vec<String>,
}

/// The ramp: from the start of the run until every device had started and
/// connected (or failed to), and, with stages, the first stage's speakers
/// were all talking.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RampReport {
    /// False when the run ended first.
    pub finished: bool,
    pub duration_s: f64,
    /// Devices started by then, and how many of them were connected.
    pub devices: u32,
    pub connected: u32,
    /// CPU during the ramp, in percent of one core.
    pub cpu_percent: f64,
    /// Resident memory when the ramp ended (every device connected).
    pub rss_mb: f64,
    pub send_lag_ms: Percentiles,
}

/// Which part of a sharded run this report is.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ShardReport {
    pub index: u32,
    pub count: u32,
    /// Devices this shard ran (the report's `run.devices` is the whole fleet).
    pub devices: u32,
}

/// A CPU reading of this process.
#[derive(Clone, Copy, Debug)]
pub struct CpuMark {
    ticks: Option<u64>,
    rss_bytes: Option<u64>,
    at: WallInstant,
}

impl CpuMark {
    /// This process's CPU ticks and resident memory, now.
    pub fn now() -> Self {
        let me = read_proc(std::process::id()).ok();
        CpuMark {
            ticks: me.as_ref().map(|p| p.cpu_ticks),
            rss_bytes: me.map(|p| p.rss_bytes),
            at: WallInstant::now(),
        }
    }

    /// CPU between `self` and `later`, in percent of one core.
    fn percent_until(&self, later: &CpuMark) -> f64 {
        let wall = later.at.duration_since(self.at).as_secs_f64();
        match (self.ticks, later.ticks) {
            (Some(a), Some(b)) if wall > 0.0 => {
                let secs = b.saturating_sub(a) as f64 / clock_ticks_per_sec() as f64;
                (secs / wall * 1000.0).round() / 10.0
            }
            _ => 0.0,
        }
    }
}

/// Where the ramp ended (from the load driver).
#[derive(Clone, Copy, Debug)]
pub struct RampEnd {
    pub mark: CpuMark,
    pub devices: u32,
    pub connected: u32,
}

fn mb(bytes: u64) -> f64 {
    (bytes as f64 / 1048576.0 * 10.0).round() / 10.0
}

/// The most resident memory this process has had, from `/proc/self/status`.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU reading at the start of the run.
pub struct GeneratorProbe {
    start: CpuMark,
}

impl GeneratorProbe {
    pub fn start() -> Self {
        GeneratorProbe { start: CpuMark::now() }
    }

    /// Judges the run from the metrics and the CPU used since `start`
    /// (after `ramp` when it ended).
    pub fn finish(&self, m: &Metrics, ramp: Option<RampEnd>) -> GeneratorReport {
        let end = CpuMark::now();
        let me = read_proc(std::process::id()).ok();
        let t = &m.tally;
        let (cpu_percent, send_lag_ms, ramp) = match ramp {
            Some(r) => (
                r.mark.percent_until(&end),
                t.send_lag.percentiles(),
                RampReport {
                    finished: true,
                    duration_s: (r.mark.at.duration_since(self.start.at).as_secs_f64() * 1000.0).round() / 1000.0,
                    devices: r.devices,
                    connected: r.connected,
                    cpu_percent: self.start.percent_until(&r.mark),
                    rss_mb: r.mark.rss_bytes.map_or(0.0, mb),
                    send_lag_ms: t.ramp_send_lag.percentiles(),
                },
            ),
            None => {
                let mut whole = LagHistogram::default();
                whole.merge(&t.ramp_send_lag);
                whole.merge(&t.send_lag);
                let cpu = self.start.percent_until(&end);
                let ramp = RampReport {
                    duration_s: (end.at.duration_since(self.start.at).as_secs_f64() * 1000.0).round() / 1000.0,
                    cpu_percent: cpu,
                    send_lag_ms: t.ramp_send_lag.percentiles(),
                    ..RampReport::default()
                };
                (cpu, whole.percentiles(), ramp)
            }
        };
        judge(GeneratorReport {
            cpu_percent,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            threads: me.as_ref().map_or(0, |p| p.threads),
            rss_mb: me.map_or(0.0, |p| mb(p.rss_bytes)),
            rss_peak_mb: peak_rss_bytes().map_or(0.0, mb),
            send_lag_ms,
            dropped_events: m.dropped_events,
            missed_arrivals: m.missed_arrivals,
            ramp,
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
    if !r.ramp.finished && r.send_lag_ms.count > 0 {
        r.warnings.push(
            "the run ended before every device had started and connected: pacing and CPU are judged over the \
             whole run, ramp included"
                .to_string(),
        );
    } else if r.ramp.send_lag_ms.count > 0 && r.ramp.send_lag_ms.p99 > SEND_LAG_P99_LIMIT_MS {
        r.warnings.push(format!(
            "send lag p99 was {:.1} ms while {} devices were being started ({:.1} s ramp); not counted against \
             the run, which is judged after the ramp",
            r.ramp.send_lag_ms.p99, r.ramp.devices, r.ramp.duration_s
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
            ramp: RampReport {
                finished: true,
                ..RampReport::default()
            },
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

    #[test]
    fn a_slow_ramp_is_reported_but_judged_apart_from_the_run() {
        let r = judge(GeneratorReport {
            cores: 1,
            cpu_percent: 30.0,
            send_lag_ms: lag(1.5),
            ramp: RampReport {
                finished: true,
                devices: 20_000,
                duration_s: 12.0,
                cpu_percent: 98.0,
                send_lag_ms: lag(40.0),
                ..RampReport::default()
            },
            ..GeneratorReport::default()
        });
        assert!(r.valid, "{:?}", r.invalid_reasons);
        assert_eq!(r.warnings.len(), 1);
        assert!(r.warnings[0].contains("20000 devices"), "{}", r.warnings[0]);
    }

    #[test]
    fn a_run_that_ends_inside_its_ramp_says_so() {
        let r = judge(GeneratorReport {
            cores: 2,
            send_lag_ms: lag(6.0),
            ..GeneratorReport::default()
        });
        assert!(!r.valid);
        assert!(
            r.warnings.iter().any(|w| w.contains("ramp included")),
            "{:?}",
            r.warnings
        );
    }
}
