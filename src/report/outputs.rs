//! Everything a run writes or serves besides the console: the streamed CSV
//! reports, the latency series, the Prometheus exporter and the web
//! dashboard. [`RunOutputs::start`] opens them before the first device
//! connects (so a bad path or a busy port fails before any load is sent)
//! and hands back the fleet's [`Observers`]; [`RunOutputs::finish`] puts
//! what they gathered into the report; [`RunOutputs::close`] publishes the
//! final status and stops the servers once their last event is out.

use super::Report;
use super::csv::{CsvStatus, CsvStream};
use super::feed::{Feed, FeedWriter, RunStatus, pump_server};
use super::format::{Format, check_formats};
use super::timeline::{LatencyPoint, Timeline};
use crate::capacity::slo::Slo;
use crate::fleet::Observers;
use crate::metrics::Snapshot;
use crate::watch::series::ServerWatch;
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
    timeline: oneshot::Receiver<Vec<LatencyPoint>>,
    writer: FeedWriter,
    servers: Vec<JoinHandle<std::io::Result<()>>>,
    shutdown: CancellationToken,
    pump: Option<(JoinHandle<ServerWatch>, CancellationToken)>,
    server_watch: Option<ServerWatch>,
    pub addresses: LiveAddresses,
}

async fn bind(addr: &str, flag: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for {flag}"))
}

impl RunOutputs {
    /// Opens every output; see the module docs.
    pub async fn start(
        opts: &OutputOptions,
        fleet: watch::Receiver<Snapshot>,
        server_watch: Option<ServerWatch>,
    ) -> anyhow::Result<(RunOutputs, Observers)> {
        check_formats(&opts.reports)?;
        let mut observers = Observers::default();
        let mut csv = Vec::new();
        for path in opts.reports.iter().filter(|p| Format::of(p).ok() == Some(Format::Csv)) {
            let (stream, status) =
                CsvStream::create(path).with_context(|| format!("cannot write report {}", path.display()))?;
            observers.turn_sinks.push(Box::new(stream));
            csv.push(status);
        }
        let (timeline, timeline_rx) = Timeline::new();
        observers.turn_sinks.push(Box::new(timeline));
        let live = opts.prometheus.is_some() || opts.dashboard.is_some();
        observers.share_metrics = live;
        let (feed, writer) = Feed::new(fleet, opts.slos.clone());
        let shutdown = CancellationToken::new();
        let mut out = RunOutputs {
            csv,
            timeline: timeline_rx,
            writer,
            servers: Vec::new(),
            shutdown,
            pump: None,
            server_watch,
            addresses: LiveAddresses::default(),
        };
        if let Some(addr) = &opts.prometheus {
            let l = bind(addr, "--prometheus").await?;
            out.addresses.prometheus = l.local_addr().ok();
            out.servers.push(tokio::spawn(super::prometheus::serve(
                l,
                feed.clone(),
                out.shutdown.clone(),
            )));
        }
        if let Some(addr) = &opts.dashboard {
            let l = bind(addr, "--dashboard").await?;
            out.addresses.dashboard = l.local_addr().ok();
            out.servers.push(tokio::spawn(super::dashboard::serve(
                l,
                feed.clone(),
                out.shutdown.clone(),
            )));
        }
        if live && let Some(w) = out.server_watch.take() {
            let stop = CancellationToken::new();
            let pump = pump_server(w, out.writer.server.clone(), Duration::from_secs(1), stop.clone());
            out.pump = Some((pump, stop));
        }
        Ok((out, observers))
    }

    /// The server watch, back from the live pump (to finish it).
    pub async fn take_server_watch(&mut self) -> Option<ServerWatch> {
        if let Some((pump, stop)) = self.pump.take() {
            stop.cancel();
            return pump.await.ok();
        }
        self.server_watch.take()
    }

    /// Puts the latency series into the report and reports on the CSVs.
    pub async fn finish(&mut self, report: &mut Report) {
        report.latency_series = (&mut self.timeline).await.unwrap_or_default();
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
    }

    /// Publishes the final status, then stops the servers once they have
    /// sent it (bounded by `CLOSE_TIMEOUT`).
    pub async fn close(self, report: &Report) {
        let last = self.writer.status.borrow().clone();
        let _ = self.writer.status.send(RunStatus {
            phase: if report.run.interrupted {
                "interrupted"
            } else {
                "finished"
            }
            .into(),
            generator_valid: Some(report.generator.valid),
            ..last
        });
        drop(self.writer);
        self.shutdown.cancel();
        let all = futures_util::future::join_all(self.servers);
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, all).await;
    }
}
