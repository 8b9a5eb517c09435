//! The live feed that the Prometheus exporter and the web dashboard read:
//! the collector's snapshots (with the metrics so far), the watched
//! server's latest sample, and the run's status (stage or capacity step,
//! the verdict so far, the generator's validity). Each part is a watch
//! channel with one writer; readers only ever see whole values.

use crate::capacity::slo::Slo;
use crate::metrics::Snapshot;
use crate::watch::EventKind;
use crate::watch::series::ServerWatch;
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

/// The run's state beyond the fleet's numbers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunStatus {
    /// `running`, then `finished` (or `interrupted`).
    pub phase: String,
    /// A capacity search's step, e.g. `stage 3: 12 speakers`.
    pub step: Option<String>,
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

/// Publishes the watched server's latest sample every `every` until `stop`,
/// then hands the watch back (for its final report).
pub fn pump_server(
    mut w: ServerWatch,
    tx: watch::Sender<ServerLive>,
    every: Duration,
    stop: CancellationToken,
) -> JoinHandle<ServerWatch> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {
                    let r = w.drain();
                    let last = r.samples.last();
                    let count = |k: EventKind| r.events.iter().filter(|e| e.kind == k).count() as u64;
                    let _ = tx.send(ServerLive {
                        watched: true,
                        cpu_cores: last.map(|s| s.cpu_cores),
                        memory_mb: last.map(|s| s.memory_mb),
                        cpu_allotment: r.allotment.cpu_cores,
                        memory_limit_mb: r.allotment.memory_mb,
                        restarts: count(EventKind::Restart),
                        oom_kills: count(EventKind::OomKill),
                    });
                }
            }
        }
        w
    })
}
