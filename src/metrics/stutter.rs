//! Where stutter came from: the per-cause totals of a run (or a stage
//! window), folded from each turn's [`TurnPlayback`], and the count of
//! double answers. STUTTER.md names the causes; the device tells them apart
//! (`crate::audio::playback`): a gap's part during which the late frame had
//! not reached the socket is the **server**'s (pacing, synthesis), the part
//! during which the injected network conditions held it is the
//! **network**'s, and audio a full decode queue rejected is the
//! **device**'s. This file owns those rules and the report's
//! `playback.by_cause` object; every writer (JSON, console, CSV,
//! Prometheus, HTML, merge) takes its names from here.

use super::summary::LatencyHistogram;
use crate::audio::playback::TurnPlayback;
use serde::{Deserialize, Serialize};

/// One cause of stutter, as reports and Prometheus labels name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StutterCause {
    /// The frame was already late at the device's socket.
    Server,
    /// On time at the socket, held by the network conditions.
    Network,
    /// Dropped by the device's full decode queue.
    Device,
}

impl StutterCause {
    /// Every cause, in report order.
    pub const ALL: [StutterCause; 3] = [StutterCause::Server, StutterCause::Network, StutterCause::Device];

    /// The report name (`server`, `network`, `device`).
    pub fn as_str(self) -> &'static str {
        match self {
            StutterCause::Server => "server",
            StutterCause::Network => "network",
            StutterCause::Device => "device",
        }
    }
}

/// The report's `playback.by_cause`: total stutter per cause over the run,
/// and the turns with any of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ByCause {
    /// Gap time the server caused (frames late at the socket), ms, all turns.
    pub server_ms: f64,
    /// Gap time the network conditions caused, ms.
    pub network_ms: f64,
    /// Audio the device's full decode queue dropped, ms.
    pub device_ms: f64,
    /// Turns with any server-caused gap.
    pub turns_server: u64,
    /// Turns with any network-caused gap.
    pub turns_network: u64,
    /// Turns with any audio dropped by the device.
    pub turns_device: u64,
}

impl ByCause {
    /// Total ms of `cause`.
    pub fn ms(&self, cause: StutterCause) -> f64 {
        match cause {
            StutterCause::Server => self.server_ms,
            StutterCause::Network => self.network_ms,
            StutterCause::Device => self.device_ms,
        }
    }

    /// Turns with any stutter of `cause`.
    pub fn turns(&self, cause: StutterCause) -> u64 {
        match cause {
            StutterCause::Server => self.turns_server,
            StutterCause::Network => self.turns_network,
            StutterCause::Device => self.turns_device,
        }
    }

    /// Whether any cause has any stutter.
    pub fn is_empty(&self) -> bool {
        StutterCause::ALL
            .iter()
            .all(|&c| self.ms(c) == 0.0 && self.turns(c) == 0)
    }

    /// Adds another run's totals (merging reports of several machines).
    pub fn add(&mut self, o: &ByCause) {
        self.server_ms = round_us(self.server_ms + o.server_ms);
        self.network_ms = round_us(self.network_ms + o.network_ms);
        self.device_ms = round_us(self.device_ms + o.device_ms);
        self.turns_server += o.turns_server;
        self.turns_network += o.turns_network;
        self.turns_device += o.turns_device;
    }
}

/// Per-cause totals over the turns with audio (completed turns only, as
/// every other playback figure).
#[derive(Clone, Debug, Default)]
pub struct CauseTotals {
    /// Exact sums (ms) and turn counts.
    pub totals: ByCause,
    /// Per-turn server-caused gap time.
    pub server_gap_ms: LatencyHistogram,
    /// Per-turn network-caused gap time.
    pub network_gap_ms: LatencyHistogram,
    /// Per-turn audio dropped by the device.
    pub dropped_ms: LatencyHistogram,
}

impl CauseTotals {
    /// Adds one turn's playback.
    pub fn add(&mut self, pb: &TurnPlayback) {
        let t = &mut self.totals;
        t.server_ms += pb.server_gap_ms;
        t.network_ms += pb.network_gap_ms;
        t.device_ms += pb.dropped_ms;
        t.turns_server += (pb.server_gap_ms > 0.0) as u64;
        t.turns_network += (pb.network_gap_ms > 0.0) as u64;
        t.turns_device += (pb.dropped_ms > 0.0) as u64;
        self.server_gap_ms.record_ms(pb.server_gap_ms);
        self.network_gap_ms.record_ms(pb.network_gap_ms);
        self.dropped_ms.record_ms(pb.dropped_ms);
    }

    /// The report's object, ms rounded to the microsecond.
    pub fn by_cause(&self) -> ByCause {
        let t = self.totals;
        ByCause {
            server_ms: round_us(t.server_ms),
            network_ms: round_us(t.network_ms),
            device_ms: round_us(t.device_ms),
            ..t
        }
    }
}

/// Answers beyond the first for one utterance (issue #2268's double
/// answer), over every turn whatever its outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtraAnswers {
    /// Extra answers in total.
    pub answers: u64,
    /// Turns with at least one.
    pub turns: u64,
}

impl ExtraAnswers {
    /// Adds one turn's count.
    pub fn add(&mut self, extra: u32) {
        self.answers += u64::from(extra);
        self.turns += (extra > 0) as u64;
    }
}

/// Milliseconds rounded to the microsecond (sums of fractions print clean).
fn round_us(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(server: f64, network: f64, dropped: f64) -> TurnPlayback {
        TurnPlayback {
            server_gap_ms: server,
            network_gap_ms: network,
            underrun_ms: server + network,
            dropped_ms: dropped,
            ..TurnPlayback::default()
        }
    }

    #[test]
    fn cause_totals_sum_each_cause_and_count_turns_with_any_of_it() {
        let mut c = CauseTotals::default();
        for pb in [
            turn(120.0, 0.0, 0.0),
            turn(30.5, 240.25, 0.0),
            turn(0.0, 0.0, 180.0),
            turn(0.0, 0.0, 0.0),
        ] {
            c.add(&pb);
        }
        assert_eq!(
            c.by_cause(),
            ByCause {
                server_ms: 150.5,
                network_ms: 240.25,
                device_ms: 180.0,
                turns_server: 2,
                turns_network: 1,
                turns_device: 1,
            }
        );
        let (s, n, d) = (
            c.server_gap_ms.percentiles(),
            c.network_gap_ms.percentiles(),
            c.dropped_ms.percentiles(),
        );
        assert_eq!((s.count, s.min, s.max), (4, 0.0, 120.0));
        assert_eq!((n.count, n.max), (4, 240.25));
        assert_eq!((d.count, d.max, d.mean), (4, 180.0, 45.0));
    }

    #[test]
    fn by_cause_adds_across_runs_and_reads_per_cause() {
        let mut a = ByCause {
            server_ms: 0.1,
            turns_server: 1,
            ..ByCause::default()
        };
        let b = ByCause {
            server_ms: 0.2,
            network_ms: 60.0,
            device_ms: 120.0,
            turns_server: 2,
            turns_network: 1,
            turns_device: 3,
        };
        a.add(&b);
        assert_eq!((a.server_ms, a.network_ms, a.device_ms), (0.3, 60.0, 120.0));
        let turns: Vec<u64> = StutterCause::ALL.iter().map(|&c| a.turns(c)).collect();
        assert_eq!(turns, vec![3, 1, 3]);
        assert!(!a.is_empty());
        assert!(ByCause::default().is_empty());
    }

    #[test]
    fn extra_answers_count_answers_and_turns_with_any() {
        let mut e = ExtraAnswers::default();
        for n in [0, 2, 1, 0] {
            e.add(n);
        }
        assert_eq!(e, ExtraAnswers { answers: 3, turns: 2 });
    }
}
