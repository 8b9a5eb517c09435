//! The report's `latency_series`: what users felt, second by second. Each
//! point covers the turns that ended during one second of the run (the
//! second ending at `t_s`, the clock of `series` and `server.samples`): how
//! many completed and failed, first-audio and turn latency percentiles, and
//! the silence (underrun time) the modelled speakers heard. Latencies and
//! playback count completed turns only, as everywhere in the report. Each
//! point keeps its histograms, so merged runs get exact per-second
//! percentiles too.

use crate::audio::FRAME;
use crate::metrics::{LatencyHistogram, Percentiles, TurnOutcome, TurnRecord, TurnSink};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::oneshot;

/// One second of the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyPoint {
    /// End of the second, from the start of the run.
    pub t_s: f64,
    pub completed: u64,
    pub failed: u64,
    pub first_audio_ms: Percentiles,
    pub turn_ms: Percentiles,
    /// Completed turns with playback, and how many of them stuttered.
    pub playback_turns: u64,
    pub stutter_turns: u64,
    /// Silence heard in those turns, summed.
    pub underrun_ms: f64,
    /// `first_audio_ms` and `turn_ms` as histograms (lossless).
    pub histograms: BTreeMap<String, LatencyHistogram>,
}

/// Histogram keys of a point.
pub const FIRST_AUDIO: &str = "first_audio_ms";
pub const TURN: &str = "turn_ms";

impl LatencyPoint {
    fn new(t_s: f64) -> Self {
        let mut histograms = BTreeMap::new();
        histograms.insert(FIRST_AUDIO.to_string(), LatencyHistogram::new());
        histograms.insert(TURN.to_string(), LatencyHistogram::new());
        LatencyPoint {
            t_s,
            histograms,
            ..LatencyPoint::default()
        }
    }

    /// Recomputes the percentile objects from the histograms.
    pub fn refresh(&mut self) {
        let p = |k| self.histograms.get(k).map(|h| h.percentiles()).unwrap_or_default();
        self.first_audio_ms = p(FIRST_AUDIO);
        self.turn_ms = p(TURN);
        self.underrun_ms = (self.underrun_ms * 1000.0).round() / 1000.0;
    }

    /// Adds another point's turns (same second, another machine).
    pub fn absorb(&mut self, o: &LatencyPoint) {
        self.completed += o.completed;
        self.failed += o.failed;
        self.playback_turns += o.playback_turns;
        self.stutter_turns += o.stutter_turns;
        self.underrun_ms += o.underrun_ms;
        for (k, h) in &o.histograms {
            self.histograms.entry(k.clone()).or_default().merge(h);
        }
        self.refresh();
    }

    fn add(&mut self, rec: &TurnRecord) {
        match rec.outcome {
            TurnOutcome::Completed => self.completed += 1,
            TurnOutcome::Failed(_) => self.failed += 1,
            TurnOutcome::Cancelled | TurnOutcome::Interrupted => return,
        }
        if rec.outcome != TurnOutcome::Completed {
            return;
        }
        for (key, d) in [(FIRST_AUDIO, rec.first_audio), (TURN, rec.turn_time)] {
            if let Some(d) = d {
                self.histograms.entry(key.to_string()).or_default().record(d);
            }
        }
        if let Some(pb) = &rec.playback {
            self.playback_turns += 1;
            self.stutter_turns += pb.stutters(FRAME) as u64;
            self.underrun_ms += pb.underrun_ms;
        }
    }
}

/// Builds the series from the collector's turns (a [`TurnSink`]).
pub struct Timeline {
    points: Vec<LatencyPoint>,
    done: Option<oneshot::Sender<Vec<LatencyPoint>>>,
}

impl Timeline {
    /// A sink and the receiver that gets the series when the run is over.
    pub fn new() -> (Timeline, oneshot::Receiver<Vec<LatencyPoint>>) {
        let (tx, rx) = oneshot::channel();
        (
            Timeline {
                points: Vec::new(),
                done: Some(tx),
            },
            rx,
        )
    }

    /// The point for a turn ending at `at` (the second that ends after it).
    fn point(&mut self, at: Duration) -> &mut LatencyPoint {
        let t_s = (at.as_secs() + 1) as f64;
        if self.points.last().is_none_or(|p| p.t_s < t_s) {
            self.points.push(LatencyPoint::new(t_s));
        }
        let i = self.points.iter().rposition(|p| p.t_s <= t_s).unwrap_or(0);
        &mut self.points[i]
    }
}

impl TurnSink for Timeline {
    fn turn(&mut self, at: Duration, rec: &TurnRecord) {
        if matches!(rec.outcome, TurnOutcome::Cancelled | TurnOutcome::Interrupted) {
            return;
        }
        self.point(at).add(rec);
    }

    fn finish(&mut self) {
        let mut points = std::mem::take(&mut self.points);
        for p in &mut points {
            p.refresh();
        }
        if let Some(tx) = self.done.take() {
            let _ = tx.send(points);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::FailureKind;

    fn turn(outcome: TurnOutcome, first_audio_ms: u64) -> TurnRecord {
        TurnRecord {
            outcome,
            first_audio: Some(Duration::from_millis(first_audio_ms)),
            turn_time: Some(Duration::from_millis(first_audio_ms * 2)),
            ..TurnRecord::new(0, 0, 0, "c")
        }
    }

    #[test]
    fn turns_land_in_the_second_they_ended() {
        let (mut t, mut rx) = Timeline::new();
        t.turn(Duration::from_millis(300), &turn(TurnOutcome::Completed, 900));
        t.turn(Duration::from_millis(999), &turn(TurnOutcome::Completed, 1100));
        t.turn(
            Duration::from_millis(2500),
            &turn(TurnOutcome::Failed(FailureKind::NoReply), 5),
        );
        t.turn(Duration::from_millis(2600), &turn(TurnOutcome::Cancelled, 5));
        t.turn(Duration::from_millis(2700), &turn(TurnOutcome::Completed, 700));
        t.finish();
        let pts = rx.try_recv().unwrap();
        assert_eq!(pts.len(), 2);
        assert_eq!((pts[0].t_s, pts[0].completed, pts[0].failed), (1.0, 2, 0));
        assert_eq!((pts[0].first_audio_ms.min, pts[0].first_audio_ms.max), (900.0, 1100.0));
        assert_eq!((pts[1].t_s, pts[1].completed, pts[1].failed), (3.0, 1, 1));
        assert_eq!(pts[1].turn_ms.count, 1);
        assert_eq!(pts[1].turn_ms.p50, 1400.0);
    }
}
