//! Everything a run writes or serves besides the console: the streamed CSV
//! reports, the latency series, the Prometheus exporter and the web
//! dashboard. [`RunOutputs::start`] opens them before the first device
//! connects (so a bad path or a busy port fails before any load is sent);
//! [`RunOutputs::observers`] hands each fleet run its [`Observers`] (the
//! first run gets the turn sinks); [`RunOutputs::finish`] returns what they
//! gathered; [`RunOutputs::close`] publishes the final status and stops the
//! servers once their last event is out.

use super::csv::{CsvStatus, CsvStream};
pub use super::feed::SharedWatch;
use super::feed::{Feed, FeedWriter, RunStatus, StageInfo, StagePoint, pump_server};
use super::format::{Format, check_formats};
use super::timeline::{LatencyPoint, Timeline};
use crate::capacity::slo::Slo;
use crate::fleet::Observers;
use crate::metrics::Snapshot;
use anyhow::Context;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long the servers may take to send their last event at the end.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// What to open.
#[derive(Clone, Debug, Default)]
pub struct OutputOptions {
    pub reports: Vec<PathBuf>,
    /// `--prometheus ADDR`.
    pub prometheus: Option<String>,
    /// `--dashboard ADDR`.
    pub dashboard: Option<String>,
    /// Judged live on the dashboard and at the end.
    pub slos: Vec<Slo>,
}

/// Where the live servers listen (port 0 resolved).
#[derive(Clone, Debug, Default)]
pub struct LiveAddresses {
    pub prometheus: Option<std::net::SocketAddr>,
    pub dashboard: Option<std::net::SocketAddr>,
}

pub struct RunOutputs {
    csv: Vec<oneshot::Receiver<CsvStatus>>,
    timeline: Option<oneshot::Receiver<Vec<LatencyPoint>>>,
    /// The turn sinks for the first fleet run (streamed CSV, latency series).
    sinks: Vec<Box<dyn crate::metrics::TurnSink>>,
    live: bool,
    writer: FeedWriter,
    servers: Vec<JoinHandle<std::io::Result<()>>>,
    shutdown: CancellationToken,
    pump: Option<(JoinHandle<()>, CancellationToken)>,
    pub addresses: LiveAddresses,
}

async fn bind(addr: &str, flag: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for {flag}"))
}

impl RunOutputs {
    /// Opens every output; see the module docs. `fleet` carries every fleet
    /// run's snapshots; `server` is the watch the live outputs show.
    pub async fn start(
        opts: &OutputOptions,
        fleet: watch::Receiver<Snapshot>,
        server: SharedWatch,
    ) -> anyhow::Result<RunOutputs> {
        check_formats(&opts.reports)?;
        let mut sinks: Vec<Box<dyn crate::metrics::TurnSink>> = Vec::new();
        let mut csv = Vec::new();
        for path in opts.reports.iter().filter(|p| Format::of(p).ok() == Some(Format::Csv)) {
            let (stream, status) =
                CsvStream::create(path).with_context(|| format!("cannot write report {}", path.display()))?;
            sinks.push(Box::new(stream));
            csv.push(status);
        }
        let (timeline, timeline_rx) = Timeline::new();
        sinks.push(Box::new(timeline));
        let live = opts.prometheus.is_some() || opts.dashboard.is_some();
        let (feed, writer) = Feed::new(fleet, opts.slos.clone());
        let mut out = RunOutputs {
            csv,
            timeline: Some(timeline_rx),
            sinks,
            live,
            writer,
            servers: Vec::new(),
            shutdown: CancellationToken::new(),
            pump: None,
            addresses: LiveAddresses::default(),
        };
        if let Some(addr) = &opts.prometheus {
            let l = bind(addr, "--prometheus").await?;
            out.addresses.prometheus = l.local_addr().ok();
            let serving = super::prometheus::serve(l, feed.clone(), out.shutdown.clone());
            out.servers.push(tokio::spawn(serving));
        }
        if let Some(addr) = &opts.dashboard {
            let l = bind(addr, "--dashboard").await?;
            out.addresses.dashboard = l.local_addr().ok();
            let serving = super::dashboard::serve(l, feed.clone(), out.shutdown.clone());
            out.servers.push(tokio::spawn(serving));
        }
        if live {
            let stop = CancellationToken::new();
            let pump = pump_server(server, out.writer.server.clone(), Duration::from_secs(1), stop.clone());
            out.pump = Some((pump, stop));
        }
        Ok(out)
    }

    /// What a fleet run hands its finished turns and snapshots to: the first
    /// run (`first`) gets the turn sinks; every run shares its metrics with
    /// the live outputs when they are on.
    pub fn observers(&mut self, first: bool) -> Observers {
        Observers {
            turn_sinks: if first {
                std::mem::take(&mut self.sinks)
            } else {
                Vec::new()
            },
            share_metrics: self.live,
        }
    }

    /// Publishes the capacity stage in progress (numbered after the stages
    /// finished so far).
    pub fn set_step(&self, step: Option<StageInfo>) {
        self.writer.status.send_modify(|s| {
            s.step = step.map(|st| StageInfo {
                index: s.knee.len() as u32 + 1,
                ..st
            });
        });
    }

    /// Publishes the stage in progress as finished with `point`'s figures
    /// (the knee curve grows by one).
    pub fn stage_finished(&self, point: StagePoint) {
        self.writer.status.send_modify(|s| {
            let stage = s.step.clone().unwrap_or_default();
            s.knee.push(StagePoint { stage, ..point });
        });
    }

    /// Stops the live server pump, reports on the CSVs and returns the
    /// latency series.
    pub async fn finish(&mut self) -> Vec<LatencyPoint> {
        // Sinks no fleet run took would hold their receivers open.
        self.sinks.clear();
        if let Some((pump, stop)) = self.pump.take() {
            stop.cancel();
            let _ = pump.await;
        }
        let series = match self.timeline.take() {
            Some(rx) => rx.await.unwrap_or_default(),
            None => Vec::new(),
        };
        for rx in &mut self.csv {
            let Ok(st) = rx.await else { continue };
            match st.error {
                None => eprintln!("report written to {} ({} turns)", st.path.display(), st.rows),
                Some(e) => eprintln!(
                    "warning: report {} stopped after {} turns: {e}",
                    st.path.display(),
                    st.rows
                ),
            }
        }
        series
    }

    /// Publishes the final status (`interrupted` or `finished`, and whether
    /// the generator kept pace), then stops the servers once they have sent
    /// it (bounded by `CLOSE_TIMEOUT`).
    pub async fn close(self, interrupted: bool, generator_valid: Option<bool>) {
        let last = self.writer.status.borrow().clone();
        let _ = self.writer.status.send(RunStatus {
            phase: if interrupted { "interrupted" } else { "finished" }.into(),
            generator_valid,
            step: None,
            ..last
        });
        drop(self.writer);
        self.shutdown.cancel();
        let all = futures_util::future::join_all(self.servers);
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, all).await;
    }
}
