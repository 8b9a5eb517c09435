//! The live feed that the Prometheus exporter and the web dashboard read:
//! the collector's snapshots (with the metrics so far), the watched
//! server's latest sample, and the run's status (stage or capacity step,
//! the verdict so far, the generator's validity). Each part is a watch
//! channel with one writer; readers only ever see whole values.

use crate::capacity::slo::Slo;
use crate::metrics::Snapshot;
use crate::watch::EventKind;
use crate::watch::series::ServerWatch;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The watched server now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerLive {
    pub watched: bool,
    pub cpu_cores: Option<f64>,
    pub memory_mb: Option<f64>,
    pub cpu_allotment: Option<f64>,
    pub memory_limit_mb: Option<f64>,
    pub restarts: u64,
    pub oom_kills: u64,
}

/// The capacity stage being measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StageInfo {
    /// 1 for the search's first stage (counted over every allotment).
    pub index: u32,
    /// How the console names it, e.g. `1 core · 12 speakers · closed`.
    pub label: String,
    pub speakers: u32,
    /// The CPU allotment (`--cpus`), if one was set.
    pub cpus: Option<f64>,
    /// The load shape (`closed`, `open`, `poisson`).
    pub shape: String,
}

/// A finished capacity stage: one point of the knee curve.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StagePoint {
    #[serde(flatten)]
    pub stage: StageInfo,
    /// `pass`, `fail` or `inconclusive`.
    pub status: String,
    pub turns_completed: u64,
    pub turns_failed: u64,
    /// p95 first audio in the measure window (no completed turn: none).
    pub first_audio_p95_ms: Option<f64>,
    pub stutter_ratio: f64,
    /// The watched server's p95 CPU in the window, in cores.
    pub server_cpu_p95: Option<f64>,
}

/// The run's state beyond the fleet's numbers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunStatus {
    /// `running`, then `finished` (or `interrupted`).
    pub phase: String,
    /// The capacity stage in progress.
    pub step: Option<StageInfo>,
    /// The capacity stages finished so far, in order (the knee curve).
    pub knee: Vec<StagePoint>,
    /// Set when the run is over.
    pub generator_valid: Option<bool>,
    pub slos: Vec<Slo>,
}

/// The readers' side.
#[derive(Clone, Debug)]
pub struct Feed {
    pub fleet: watch::Receiver<Snapshot>,
    pub server: watch::Receiver<ServerLive>,
    pub status: watch::Receiver<RunStatus>,
}

/// The writers' side of the server and status parts.
pub struct FeedWriter {
    pub server: watch::Sender<ServerLive>,
    pub status: watch::Sender<RunStatus>,
}

impl Feed {
    /// A feed over `fleet` and its writer for the rest.
    pub fn new(fleet: watch::Receiver<Snapshot>, slos: Vec<Slo>) -> (Feed, FeedWriter) {
        let (server, server_rx) = watch::channel(ServerLive::default());
        let (status, status_rx) = watch::channel(RunStatus {
            phase: "running".into(),
            slos,
            ..RunStatus::default()
        });
        (
            Feed {
                fleet,
                server: server_rx,
                status: status_rx,
            },
            FeedWriter { server, status },
        )
    }
}

/// The server watch, shared by its owner (who starts it, drains windows of
/// it and finishes it) and the live pump; `None` while nothing is watched.
pub type SharedWatch = Arc<Mutex<Option<ServerWatch>>>;

/// What the live outputs show of a watch drained just now.
fn live_of(w: &mut ServerWatch) -> ServerLive {
    let r = w.drain();
    let last = r.samples.last();
    let count = |k: EventKind| r.events.iter().filter(|e| e.kind == k).count() as u64;
    ServerLive {
        watched: true,
        cpu_cores: last.map(|s| s.cpu_cores),
        memory_mb: last.map(|s| s.memory_mb),
        cpu_allotment: r.allotment.cpu_cores,
        memory_limit_mb: r.allotment.memory_mb,
        restarts: count(EventKind::Restart),
        oom_kills: count(EventKind::OomKill),
    }
}

/// Publishes the watched server's latest sample every `every` until `stop`
/// (nothing while no watch is running).
pub fn pump_server(
    w: SharedWatch,
    tx: watch::Sender<ServerLive>,
    every: Duration,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {
                    let live = w.lock().unwrap_or_else(|e| e.into_inner()).as_mut().map(live_of);
                    if let Some(live) = live {
                        let _ = tx.send(live);
                    }
                }
            }
        }
    })
}
