//! The collector: single owner of histograms and counters. Devices send
//! [`Event`]s; the collector folds them, publishes a [`Snapshot`] every
//! second on a watch channel, and returns the final [`Metrics`] when every
//! sender is gone.

use super::event::{Event, FailureKind, Tally, TurnOutcome, TurnRecord};
use super::summary::LatencyHistogram;
use super::{EVENT_CHANNEL_CAPACITY, LATENCY_METRICS};
use crate::audio::FRAME;
use crate::record::trace::TurnTrace;
use crate::record::{RecordRule, Recorder};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Everything measured in a run.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    /// Histograms by metric name (see [`LATENCY_METRICS`]).
    pub latency: BTreeMap<&'static str, LatencyHistogram>,
    pub turns_started: u64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub failures: BTreeMap<FailureKind, u64>,
    pub connections: u64,
    pub tally: Tally,
    /// Events lost because the channel was full.
    pub dropped_events: u64,
    pub playback: PlaybackTotals,
    /// Turns kept as recordings (bounded: only what the rules need).
    pub recorded: Vec<TurnTrace>,
    /// The first few thousand per-turn records (memory stays flat), for
    /// tests and debugging.
    pub turn_records: Vec<TurnRecord>,
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
}

/// How many turn records to keep.
const KEPT_TURN_RECORDS: usize = 4096;

/// A small live view for progress output.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub elapsed: Duration,
    pub connected: i64,
    pub talking: i64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub first_audio_p95_ms: Option<f64>,
    pub send_lag_p99_ms: Option<f64>,
    pub stutter_ratio: Option<f64>,
    pub failures: BTreeMap<FailureKind, u64>,
}

/// The sending side handed to devices.
#[derive(Clone, Debug)]
pub struct EventSender {
    tx: mpsc::Sender<Event>,
    dropped: Arc<AtomicU64>,
}

impl EventSender {
    /// Sends without waiting; a full channel is counted, never blocks.
    pub fn send(&self, event: Event) {
        if self.tx.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Builds the channel and the collector task state.
pub struct Collector {
    rx: mpsc::Receiver<Event>,
    dropped: Arc<AtomicU64>,
    metrics: Metrics,
    recorder: Recorder,
    connected: i64,
    talking: i64,
}

impl Collector {
    /// A collector and the sender devices use.
    pub fn new(record: Vec<RecordRule>) -> (Collector, EventSender) {
        let (tx, rx) = mpsc::channel(EVENT_CHANNEL_CAPACITY);
        let dropped = Arc::new(AtomicU64::new(0));
        let mut metrics = Metrics::default();
        for name in LATENCY_METRICS {
            metrics.latency.insert(name, LatencyHistogram::new());
        }
        let sender = EventSender {
            tx,
            dropped: dropped.clone(),
        };
        let c = Collector {
            rx,
            dropped,
            metrics,
            recorder: Recorder::new(record),
            connected: 0,
            talking: 0,
        };
        (c, sender)
    }

    /// Runs until every sender is dropped, publishing a snapshot each second.
    pub async fn run(mut self, snapshots: watch::Sender<Snapshot>) -> Metrics {
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = self.rx.recv() => match ev {
                    Some(ev) => self.fold(ev),
                    None => break,
                },
                _ = tick.tick() => {
                    let _ = snapshots.send(self.snapshot(started.elapsed()));
                }
            }
        }
        self.metrics.dropped_events = self.dropped.load(Ordering::Relaxed);
        self.metrics.recorded = std::mem::replace(&mut self.recorder, Recorder::new(Vec::new())).into_kept();
        let _ = snapshots.send(self.snapshot(started.elapsed()));
        self.metrics
    }

    fn snapshot(&self, elapsed: Duration) -> Snapshot {
        let m = &self.metrics;
        let fa = &m.latency["first_audio"];
        Snapshot {
            elapsed,
            connected: self.connected,
            talking: self.talking,
            completed: m.completed,
            failed: m.failed,
            cancelled: m.cancelled,
            first_audio_p95_ms: (fa.count() > 0).then(|| fa.quantile_ms(0.95)),
            send_lag_p99_ms: (m.tally.send_lag.count() > 0).then(|| m.tally.send_lag.quantile_ms(0.99)),
            stutter_ratio: (m.playback.turns > 0).then(|| m.playback.stutter_turns as f64 / m.playback.turns as f64),
            failures: m.failures.clone(),
        }
    }

    fn add_tally(&mut self, t: &Tally) {
        let m = &mut self.metrics.tally;
        m.frames_sent += t.frames_sent;
        m.bytes_sent += t.bytes_sent;
        m.frames_received += t.frames_received;
        m.bytes_received += t.bytes_received;
        m.ignored_messages += t.ignored_messages;
        m.send_lag.merge(&t.send_lag);
    }

    fn fold(&mut self, ev: Event) {
        match ev {
            Event::Connected { connect, hello } => {
                self.connected += 1;
                self.metrics.connections += 1;
                self.record("connect", Some(connect));
                self.record("hello", Some(hello));
            }
            Event::Disconnected => self.connected -= 1,
            Event::TurnStarted => self.talking += 1,
            Event::Turn(rec, tally, trace) => {
                self.add_tally(&tally);
                self.fold_turn(*rec);
                if let Some(t) = trace {
                    self.recorder.offer(*t);
                }
            }
            Event::Flush(tally) => self.add_tally(&tally),
        }
    }

    fn fold_turn(&mut self, rec: TurnRecord) {
        // A turn that failed before `listen start` (connect, hello) never
        // counted as talking.
        if !matches!(
            rec.outcome,
            TurnOutcome::Failed(FailureKind::Connect | FailureKind::Handshake | FailureKind::HelloTimeout)
        ) {
            self.talking -= 1;
        }
        let m = &mut self.metrics;
        m.turns_started += 1;
        match rec.outcome {
            TurnOutcome::Completed => m.completed += 1,
            TurnOutcome::Cancelled => m.cancelled += 1,
            TurnOutcome::Failed(kind) => {
                m.failed += 1;
                *m.failures.entry(kind).or_default() += 1;
            }
        }
        if rec.outcome == TurnOutcome::Completed {
            if let Some(pb) = &rec.playback {
                let p = &mut self.metrics.playback;
                p.turns += 1;
                p.stutter_turns += pb.stutters(FRAME) as u64;
                p.underruns += pb.underruns as u64;
                p.overflow_drops += pb.overflow_drops as u64;
                p.underrun_ms.record_ms(pb.underrun_ms);
                p.sentence_gap_ms.record_ms(pb.sentence_gap_ms);
            }
            self.record("first_play", rec.first_play);
            self.record("stt", rec.stt);
            self.record("llm", rec.llm);
            self.record("tts_start", rec.tts_start);
            self.record("first_audio", rec.first_audio);
            self.record("turn", rec.turn_time);
        }
        if self.metrics.turn_records.len() < KEPT_TURN_RECORDS {
            self.metrics.turn_records.push(rec);
        }
    }

    fn record(&mut self, name: &'static str, d: Option<Duration>) {
        if let (Some(d), Some(h)) = (d, self.metrics.latency.get_mut(name)) {
            h.record(d);
        }
    }
}
