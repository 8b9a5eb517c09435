//! What a set of metrics is (the run's, or one stage window's) and how one
//! finished turn adds to it. The [`super::collector`] owns the instances;
//! this file owns the folding rules, so they can be tested without a
//! running collector.

use super::event::{FailureKind, Tally, TurnOutcome, TurnRecord};
use super::stutter::{CauseTotals, ExtraAnswers};
use super::summary::LatencyHistogram;
use crate::audio::FRAME;
use crate::record::trace::TurnTrace;
use std::collections::BTreeMap;

/// Everything measured in a run.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    /// Histograms by metric name (see [`super::LATENCY_METRICS`]).
    pub latency: BTreeMap<&'static str, LatencyHistogram>,
    pub turns_started: u64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub interrupted: u64,
    /// Idle connections the server closed (its no-voice timeout).
    pub idle_closed: u64,
    /// Open-model arrivals with no idle device free.
    pub missed_arrivals: u64,
    /// Connects that failed outside a conversation (idle devices).
    pub connect_failures: BTreeMap<FailureKind, u64>,
    /// The first few distinct details of those connect failures, per kind.
    pub connect_failure_details: BTreeMap<FailureKind, Vec<String>>,
    /// Devices still waiting for activation, with their codes.
    pub activation: super::ActivationWaits,
    /// Connections that replaced one the server or the network took away.
    pub reconnects: u64,
    /// Per-stage results (step plans), each for its measure window only.
    pub stages: Vec<StageResult>,
    /// One point per second, on the run's clock (aligned with server samples).
    pub series: Vec<SeriesPoint>,
    pub failures: BTreeMap<FailureKind, u64>,
    /// The first few distinct details of failed turns, per kind.
    pub failure_details: BTreeMap<FailureKind, Vec<String>>,
    pub connections: u64,
    pub tally: Tally,
    /// Downlink datagrams of the turns over MQTT + UDP (`None`: no such turn).
    pub datagrams: Option<crate::protocol::udp::DatagramCounts>,
    /// Events lost because the channel was full.
    pub dropped_events: u64,
    pub playback: PlaybackTotals,
    /// Answers beyond the first for one utterance (issue #2268's double answer).
    pub extra_answers: ExtraAnswers,
    /// Turns kept as recordings (bounded: only what the rules need).
    pub recorded: Vec<TurnTrace>,
    /// The first few thousand per-turn records (memory stays flat), for
    /// tests and debugging.
    pub turn_records: Vec<TurnRecord>,
}

/// The fleet during one second of the run.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SeriesPoint {
    /// End of the second, from the start of the run.
    pub t_s: f64,
    pub connected: i64,
    pub talking: i64,
    /// Turns completed during this second.
    pub turns: u64,
    /// Turns that failed during this second.
    pub failed: u64,
    /// p95 first audio of those turns (ms), if any.
    pub first_audio_p95_ms: Option<f64>,
}

/// One stage's measure window.
#[derive(Clone, Debug)]
pub struct StageResult {
    pub name: String,
    pub speakers: u32,
    /// Seconds from the start of the run to the start of the window.
    pub started_at_s: f64,
    pub duration_s: f64,
    pub metrics: Metrics,
}

/// What the modelled speakers did, over turns that reached `tts start`.
#[derive(Clone, Debug, Default)]
pub struct PlaybackTotals {
    pub turns: u64,
    pub stutter_turns: u64,
    pub underruns: u64,
    pub overflow_drops: u64,
    /// Per-turn values.
    pub underrun_ms: LatencyHistogram,
    pub sentence_gap_ms: LatencyHistogram,
    /// Where the gaps came from (server, network, device).
    pub causes: CauseTotals,
}

/// Distinct failure details kept per kind.
pub const KEPT_FAILURE_DETAILS: usize = 5;

/// Keeps `detail` if it is new and there is room for it.
pub fn keep_detail(details: &mut BTreeMap<FailureKind, Vec<String>>, kind: FailureKind, detail: &str) {
    let list = details.entry(kind).or_default();
    if list.len() < KEPT_FAILURE_DETAILS && !list.iter().any(|d| d == detail) {
        list.push(detail.to_string());
    }
}

/// Adds one turn to a set of metrics (the run's, or a stage window's).
pub fn fold_into(m: &mut Metrics, rec: &TurnRecord) {
    m.turns_started += 1;
    m.extra_answers.add(rec.extra_answers);
    match rec.outcome {
        TurnOutcome::Completed => m.completed += 1,
        TurnOutcome::Cancelled => m.cancelled += 1,
        TurnOutcome::Interrupted => m.interrupted += 1,
        TurnOutcome::Failed(kind) => {
            m.failed += 1;
            *m.failures.entry(kind).or_default() += 1;
            if let Some(d) = &rec.detail {
                keep_detail(&mut m.failure_details, kind, d);
            }
        }
    }
    // An interrupted answer keeps what was measured before the `abort`:
    // the answer's start, not its end or its playback.
    let whole = match rec.outcome {
        TurnOutcome::Completed => true,
        TurnOutcome::Interrupted => false,
        _ => return,
    };
    for (name, d) in [
        ("first_play", rec.first_play),
        ("stt", rec.stt),
        ("llm", rec.llm),
        ("tts_start", rec.tts_start),
        ("first_audio", rec.first_audio),
    ] {
        if let Some(d) = d {
            m.latency.entry(name).or_default().record(d);
        }
    }
    if !whole {
        return;
    }
    if let Some(d) = rec.turn_time {
        m.latency.entry("turn").or_default().record(d);
    }
    if let Some(pb) = &rec.playback {
        let p = &mut m.playback;
        p.turns += 1;
        p.stutter_turns += pb.stutters(FRAME) as u64;
        p.underruns += pb.underruns as u64;
        p.overflow_drops += pb.overflow_drops as u64;
        p.underrun_ms.record_ms(pb.underrun_ms);
        p.sentence_gap_ms.record_ms(pb.sentence_gap_ms);
        p.causes.add(pb);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::playback::TurnPlayback;
    use crate::report::{playback_of, turns_of};

    fn record(outcome: TurnOutcome, gaps: Option<(f64, f64, f64)>, extra_answers: u32) -> TurnRecord {
        let mut r = TurnRecord::new(1, 0, 0, "a.wav");
        r.outcome = outcome;
        r.extra_answers = extra_answers;
        r.playback = gaps.map(|(server, network, dropped)| TurnPlayback {
            server_gap_ms: server,
            network_gap_ms: network,
            underrun_ms: server + network,
            dropped_ms: dropped,
            ..TurnPlayback::default()
        });
        r
    }

    #[test]
    fn folded_turns_give_exact_stutter_by_cause_and_double_answers() {
        let mut m = Metrics::default();
        for r in [
            record(TurnOutcome::Completed, Some((240.0, 0.0, 0.0)), 0),
            record(TurnOutcome::Completed, Some((60.0, 420.5, 0.0)), 1),
            record(TurnOutcome::Completed, Some((0.0, 0.0, 360.0)), 0),
            // An interrupted answer's playback is not the user's stutter;
            // its extra answers still count.
            record(TurnOutcome::Interrupted, Some((900.0, 900.0, 900.0)), 2),
            record(TurnOutcome::Failed(FailureKind::NoReply), None, 0),
        ] {
            fold_into(&mut m, &r);
        }
        let p = playback_of(&m);
        assert_eq!(p.turns, 3);
        assert_eq!(
            p.by_cause,
            super::super::stutter::ByCause {
                server_ms: 300.0,
                network_ms: 420.5,
                device_ms: 360.0,
                turns_server: 2,
                turns_network: 1,
                turns_device: 1,
            }
        );
        assert_eq!(
            (p.server_gap_ms.count, p.server_gap_ms.max, p.server_gap_ms.mean),
            (3, 240.0, 100.0)
        );
        assert_eq!((p.network_gap_ms.count, p.network_gap_ms.max), (3, 420.5));
        assert_eq!(
            (p.dropped_ms.count, p.dropped_ms.min, p.dropped_ms.max),
            (3, 0.0, 360.0)
        );
        let t = turns_of(&m);
        assert_eq!((t.extra_answers, t.extra_answer_turns), (3, 2));
    }
}
