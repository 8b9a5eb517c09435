//! The collector: single owner of histograms and counters. Devices send
//! [`Event`]s; the collector folds them, publishes a [`Snapshot`] every
//! second on a watch channel, and returns the final [`Metrics`] when every
//! sender is gone.
//!
//! Three paths, by what may be lost: per-turn data rides a bounded channel
//! whose overflow is counted (and makes the run invalid); the connected and
//! talking gauges are atomics every device updates in place; stage marks
//! ride an unbounded control channel (a handful per run), so a measure
//! window can never vanish under load.

use super::event::{Event, Failure, FailureKind, StageMark, Tally, TurnOutcome, TurnRecord};
use super::summary::{LatencyHistogram, ratio};
use super::totals::{fold_into, keep_detail};
use super::{EVENT_CHANNEL_CAPACITY, LATENCY_METRICS};
use crate::record::{RecordRule, Recorder};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

pub use super::totals::{KEPT_FAILURE_DETAILS, Metrics, PlaybackTotals, SeriesPoint, StageResult};

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
    pub reconnects: u64,
    /// Everything measured so far (only when asked for with
    /// [`Collector::share_metrics`]: the Prometheus exporter and the web
    /// dashboard read it; the last snapshot holds the final metrics).
    pub metrics: Option<Arc<Metrics>>,
}

/// Live gauges: updated in place by devices, read by the collector.
#[derive(Debug, Default)]
pub struct Gauges {
    connected: AtomicI64,
    talking: AtomicI64,
}

/// The sending side handed to devices and the load driver.
#[derive(Clone, Debug)]
pub struct EventSender {
    tx: mpsc::Sender<Event>,
    control: mpsc::UnboundedSender<StageMark>,
    gauges: Arc<Gauges>,
    dropped: Arc<AtomicU64>,
}

impl EventSender {
    /// Sends without waiting; a full channel is counted, never blocks.
    pub fn send(&self, event: Event) {
        if self.tx.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sends, waiting for room: for a device's last event, when pacing no
    /// longer matters (a whole fleet hanging up at once would overflow the
    /// channel otherwise).
    pub async fn send_last(&self, event: Event) {
        if self.tx.send(event).await.is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A stage boundary: never dropped (the control channel is unbounded and
    /// carries two marks per stage).
    pub fn stage(&self, mark: StageMark) {
        let _ = self.control.send(mark);
    }

    /// A connection opened (+1) or closed (−1).
    pub fn connected(&self, delta: i64) {
        self.gauges.connected.fetch_add(delta, Ordering::Relaxed);
    }

    /// A turn started talking (+1: `listen start` sent) or ended (−1).
    pub fn talking(&self, delta: i64) {
        self.gauges.talking.fetch_add(delta, Ordering::Relaxed);
    }
}

/// Builds the channel and the collector task state.
pub struct Collector {
    rx: mpsc::Receiver<Event>,
    control: mpsc::UnboundedReceiver<StageMark>,
    gauges: Arc<Gauges>,
    dropped: Arc<AtomicU64>,
    metrics: Metrics,
    recorder: Recorder,
    started: Instant,
    /// The open stage window: (name, speakers, opened at, metrics so far).
    window: Option<(String, u32, Instant, Metrics)>,
    /// Per-second (completed turns, first_audio histogram), last 10 s.
    recent: std::collections::VecDeque<(u64, LatencyHistogram)>,
    /// Turns failed in the current second.
    failed_this_second: u64,
    /// Every finished turn goes to these too (streamed CSV, latency series).
    sinks: Vec<Box<dyn super::TurnSink>>,
    /// Put a copy of the metrics in each snapshot.
    share_metrics: bool,
}

impl Collector {
    /// A collector and the sender devices use.
    pub fn new(record: Vec<RecordRule>) -> (Collector, EventSender) {
        let (tx, rx) = mpsc::channel(EVENT_CHANNEL_CAPACITY);
        let (control_tx, control) = mpsc::unbounded_channel();
        let dropped = Arc::new(AtomicU64::new(0));
        let gauges = Arc::new(Gauges::default());
        let mut metrics = Metrics::default();
        for name in LATENCY_METRICS {
            metrics.latency.insert(name, LatencyHistogram::new());
        }
        let sender = EventSender {
            tx,
            control: control_tx,
            gauges: gauges.clone(),
            dropped: dropped.clone(),
        };
        let c = Collector {
            rx,
            control,
            gauges,
            dropped,
            metrics,
            recorder: Recorder::new(record),
            started: Instant::now(),
            window: None,
            recent: std::collections::VecDeque::from(vec![(0, LatencyHistogram::new())]),
            failed_this_second: 0,
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
                biased;
                Some(mark) = self.control.recv() => self.on_stage(mark),
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
        while let Ok(mark) = self.control.try_recv() {
            self.on_stage(mark);
        }
        // The last, partial second belongs in the series too.
        let end = started.elapsed();
        if self.metrics.series.last().is_none_or(|p| p.t_s < secs_ms(end)) {
            self.push_series(end);
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
            connected: self.gauges.connected.load(Ordering::Relaxed),
            talking: self.gauges.talking.load(Ordering::Relaxed),
            reconnects: m.reconnects,
            completed: m.completed,
            failed: m.failed,
            cancelled: m.cancelled,
            first_audio_p95_ms: (fa.count() > 0).then(|| fa.quantile_ms(0.95)),
            send_lag_p99_ms: live_send_lag_p99(&m.tally),
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
        for (kind, n) in &t.stray {
            *m.stray.entry(kind).or_default() += n;
        }
        m.send_lag.merge(&t.send_lag);
        m.ramp_send_lag.merge(&t.ramp_send_lag);
    }

    fn fold(&mut self, ev: Event) {
        match ev {
            Event::Connected {
                connect,
                hello,
                reconnect,
            } => {
                self.metrics.connections += 1;
                self.metrics.reconnects += reconnect as u64;
                let lat = &mut self.metrics.latency;
                if let Some(connect) = connect {
                    lat.entry("connect").or_default().record(connect);
                }
                lat.entry("hello").or_default().record(hello);
            }
            Event::Turn(rec, tally, trace) => {
                self.add_tally(&tally);
                self.fold_turn(*rec);
                if let Some(t) = trace {
                    self.recorder.offer(*t);
                }
            }
            Event::Flush(tally) => self.add_tally(&tally),
            Event::OtaChecked(d) => self.metrics.latency.entry("ota").or_default().record(d),
            Event::Activation { index, code } => self.metrics.activation.note(index, code.as_deref()),
            Event::IdleClosed => self.metrics.idle_closed += 1,
            Event::MissedArrival => self.metrics.missed_arrivals += 1,
            Event::ConnectFailed(Failure { kind, detail }) => {
                *self.metrics.connect_failures.entry(kind).or_default() += 1;
                keep_detail(&mut self.metrics.connect_failure_details, kind, &detail);
            }
        }
    }

    /// Closes the current one-second slot into the series.
    fn push_series(&mut self, elapsed: Duration) {
        let Some((turns, fa)) = self.recent.back() else { return };
        if elapsed.is_zero() {
            return;
        }
        self.metrics.series.push(SeriesPoint {
            t_s: secs_ms(elapsed),
            connected: self.gauges.connected.load(Ordering::Relaxed),
            talking: self.gauges.talking.load(Ordering::Relaxed),
            turns: *turns,
            failed: std::mem::take(&mut self.failed_this_second),
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
        if matches!(rec.outcome, TurnOutcome::Failed(_)) {
            self.failed_this_second += 1;
        }
        if let Some(d) = rec.datagrams {
            *self.metrics.datagrams.get_or_insert_default() += d;
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

/// Send lag p99 for the live view: after the ramp once there is any, the
/// ramp's until then.
fn live_send_lag_p99(t: &Tally) -> Option<f64> {
    [&t.send_lag, &t.ramp_send_lag]
        .into_iter()
        .find(|h| h.count() > 0)
        .map(|h| h.quantile_ms(0.99))
}

/// Seconds with millisecond resolution, as the series prints them.
fn secs_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}
