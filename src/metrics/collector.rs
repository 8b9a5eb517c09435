//! The collector: single owner of histograms and counters. Devices send
//! [`Event`]s; the collector folds them, publishes a [`Snapshot`] every
//! second on a watch channel, and returns the final [`Metrics`] when every
//! sender is gone.

use super::event::{Event, FailureKind, StageMark, Tally, TurnOutcome, TurnRecord};
use super::summary::{LatencyHistogram, ratio};
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
    pub interrupted: u64,
    /// Idle connections the server closed (its no-voice timeout).
    pub idle_closed: u64,
    /// Open-model arrivals with no idle device free.
    pub missed_arrivals: u64,
    /// Connects that failed outside a conversation (idle devices).
    pub connect_failures: BTreeMap<FailureKind, u64>,
    /// Per-stage results (step plans), each for its measure window only.
    pub stages: Vec<StageResult>,
    /// One point per second, on the run's clock (aligned with server samples).
    pub series: Vec<SeriesPoint>,
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

/// The fleet during one second of the run.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SeriesPoint {
    /// End of the second, from the start of the run.
    pub t_s: f64,
    pub connected: i64,
    pub talking: i64,
    /// Turns completed during this second.
    pub turns: u64,
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
}

/// The live view's sliding window, in one-second slots.
const RECENT_SECONDS: usize = 10;

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
    /// p95 first audio over the last 10 s.
    pub first_audio_p95_ms: Option<f64>,
    /// Completed turns per second over the last 10 s.
    pub turns_per_sec: f64,
    pub interrupted: u64,
    pub idle_closed: u64,
    pub missed_arrivals: u64,
    /// The stage being measured, if any.
    pub stage: Option<String>,
    pub send_lag_p99_ms: Option<f64>,
    pub stutter_ratio: Option<f64>,
    pub failures: BTreeMap<FailureKind, u64>,
    /// Everything measured so far (only when asked for with
    /// [`Collector::share_metrics`]: the Prometheus exporter and the web
    /// dashboard read it; the last snapshot holds the final metrics).
    pub metrics: Option<Arc<Metrics>>,
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
    started: Instant,
    /// The open stage window: (name, speakers, opened at, metrics so far).
    window: Option<(String, u32, Instant, Metrics)>,
    /// Per-second (completed turns, first_audio histogram), last 10 s.
    recent: std::collections::VecDeque<(u64, LatencyHistogram)>,
    /// Every finished turn goes to these too (streamed CSV, latency series).
    sinks: Vec<Box<dyn super::TurnSink>>,
    /// Put a copy of the metrics in each snapshot.
    share_metrics: bool,
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
            started: Instant::now(),
            window: None,
            recent: std::collections::VecDeque::from(vec![(0, LatencyHistogram::new())]),
            sinks: Vec::new(),
            share_metrics: false,
        };
        (c, sender)
    }

    /// Hands every finished turn to `sink` as well.
    pub fn add_turn_sink(&mut self, sink: Box<dyn super::TurnSink>) {
        self.sinks.push(sink);
    }

    /// Publishes a copy of the metrics with every snapshot.
    pub fn share_metrics(&mut self, on: bool) {
        self.share_metrics = on;
    }

    /// Runs until every sender is dropped, publishing a snapshot each second.
    pub async fn run(mut self, snapshots: watch::Sender<Snapshot>) -> Metrics {
        self.started = Instant::now();
        let started = self.started;
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
                    self.push_series(started.elapsed());
                    if self.recent.len() >= RECENT_SECONDS {
                        self.recent.pop_front();
                    }
                    self.recent.push_back((0, LatencyHistogram::new()));
                }
            }
        }
        self.metrics.dropped_events = self.dropped.load(Ordering::Relaxed);
        self.metrics.recorded = std::mem::replace(&mut self.recorder, Recorder::new(Vec::new())).into_kept();
        for sink in &mut self.sinks {
            sink.finish();
        }
        let _ = snapshots.send(self.snapshot(started.elapsed()));
        self.metrics
    }

    fn snapshot(&self, elapsed: Duration) -> Snapshot {
        let m = &self.metrics;
        let mut fa = LatencyHistogram::new();
        let mut recent_turns = 0;
        for (n, h) in &self.recent {
            recent_turns += n;
            fa.merge(h);
        }
        let window = (self.recent.len() as f64).max(1.0);
        Snapshot {
            turns_per_sec: recent_turns as f64 / window,
            idle_closed: m.idle_closed,
            missed_arrivals: m.missed_arrivals,
            interrupted: m.interrupted,
            stage: self.window.as_ref().map(|w| w.0.clone()),
            elapsed,
            connected: self.connected,
            talking: self.talking,
            completed: m.completed,
            failed: m.failed,
            cancelled: m.cancelled,
            first_audio_p95_ms: (fa.count() > 0).then(|| fa.quantile_ms(0.95)),
            send_lag_p99_ms: (m.tally.send_lag.count() > 0).then(|| m.tally.send_lag.quantile_ms(0.99)),
            stutter_ratio: (m.playback.turns > 0).then(|| ratio(m.playback.stutter_turns, m.playback.turns)),
            failures: m.failures.clone(),
            metrics: self.share_metrics.then(|| Arc::new(m.clone())),
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
                let lat = &mut self.metrics.latency;
                lat.entry("connect").or_default().record(connect);
                lat.entry("hello").or_default().record(hello);
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
            Event::IdleClosed => self.metrics.idle_closed += 1,
            Event::MissedArrival => self.metrics.missed_arrivals += 1,
            Event::ConnectFailed(kind) => *self.metrics.connect_failures.entry(kind).or_default() += 1,
            Event::Stage(mark) => self.on_stage(mark),
        }
    }

    /// Closes the current one-second slot into the series.
    fn push_series(&mut self, elapsed: Duration) {
        let Some((turns, fa)) = self.recent.back() else { return };
        if elapsed.is_zero() {
            return;
        }
        self.metrics.series.push(SeriesPoint {
            t_s: (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            connected: self.connected,
            talking: self.talking,
            turns: *turns,
            first_audio_p95_ms: (fa.count() > 0).then(|| fa.quantile_ms(0.95)),
        });
    }

    fn on_stage(&mut self, mark: StageMark) {
        let now = Instant::now();
        match mark {
            StageMark::Measure { name, speakers } => self.window = Some((name, speakers, now, Metrics::default())),
            StageMark::End => {
                if let Some((name, speakers, at, metrics)) = self.window.take() {
                    self.metrics.stages.push(StageResult {
                        name,
                        speakers,
                        started_at_s: at.duration_since(self.started).as_secs_f64(),
                        duration_s: now.duration_since(at).as_secs_f64(),
                        metrics,
                    });
                }
            }
        }
    }

    fn fold_turn(&mut self, rec: TurnRecord) {
        let at = self.started.elapsed();
        for sink in &mut self.sinks {
            sink.turn(at, &rec);
        }
        // A turn that failed before `listen start` (connect, hello) never
        // counted as talking.
        if !matches!(
            rec.outcome,
            TurnOutcome::Failed(FailureKind::Connect | FailureKind::Handshake | FailureKind::HelloTimeout)
        ) {
            self.talking -= 1;
        }
        if rec.outcome == TurnOutcome::Completed
            && let Some(slot) = self.recent.back_mut()
        {
            slot.0 += 1;
            if let Some(fa) = rec.first_audio {
                slot.1.record(fa);
            }
        }
        if let Some((_, _, _, w)) = self.window.as_mut() {
            fold_into(w, &rec);
        }
        fold_into(&mut self.metrics, &rec);
        if self.metrics.turn_records.len() < KEPT_TURN_RECORDS {
            self.metrics.turn_records.push(rec);
        }
    }
}

/// Adds one turn to a set of metrics (the run's, or a stage window's).
fn fold_into(m: &mut Metrics, rec: &TurnRecord) {
    m.turns_started += 1;
    match rec.outcome {
        TurnOutcome::Completed => m.completed += 1,
        TurnOutcome::Cancelled => m.cancelled += 1,
        TurnOutcome::Interrupted => m.interrupted += 1,
        TurnOutcome::Failed(kind) => {
            m.failed += 1;
            *m.failures.entry(kind).or_default() += 1;
        }
    }
    if rec.outcome != TurnOutcome::Completed {
        return;
    }
    if let Some(pb) = &rec.playback {
        let p = &mut m.playback;
        p.turns += 1;
        p.stutter_turns += pb.stutters(FRAME) as u64;
        p.underruns += pb.underruns as u64;
        p.overflow_drops += pb.overflow_drops as u64;
        p.underrun_ms.record_ms(pb.underrun_ms);
        p.sentence_gap_ms.record_ms(pb.sentence_gap_ms);
    }
    for (name, d) in [
        ("first_play", rec.first_play),
        ("stt", rec.stt),
        ("llm", rec.llm),
        ("tts_start", rec.tts_start),
        ("first_audio", rec.first_audio),
        ("turn", rec.turn_time),
    ] {
        if let Some(d) = d {
            m.latency.entry(name).or_default().record(d);
        }
    }
}
