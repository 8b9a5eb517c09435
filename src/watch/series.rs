//! Watching the server during a run: starts the sampler beside the fleet
//! (same clock: `t_s` counts from the run's start), keeps the per-interval
//! samples and events, and summarises any window of them (a stage's measure
//! window) by mean, p95 and max, because CPU must be judged by its peaks.

use super::sample::{Allotment, ServerEvent, ServerSample, WatchMessage, WatchTarget};
use super::sampler::Watcher;
use super::sampler::run_watcher_with;
use super::summary::ServerSummary;
use super::summary::summarize_with;
use serde::Serialize;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Messages in flight from the sampler.
const WATCH_CHANNEL: usize = 1024;

/// What to watch and how.
#[derive(Clone, Debug, Default)]
pub struct WatchOptions {
    pub targets: Vec<WatchTarget>,
    pub interval: Duration,
    /// `--server-cpus` / `--server-memory`: used where the cgroup or Docker
    /// does not say.
    pub allotment: Allotment,
}

/// The report's `server` section.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ServerReport {
    pub targets: Vec<String>,
    pub allotment: Allotment,
    pub summary: ServerSummary,
    pub events: Vec<ServerEvent>,
    pub samples: Vec<ServerSample>,
}

impl ServerReport {
    /// Summary of the samples with `from_s < t_s ≤ to_s`.
    pub fn window(&self, from_s: f64, to_s: f64) -> ServerSummary {
        let w: Vec<ServerSample> = self
            .samples
            .iter()
            .filter(|s| s.t_s > from_s && s.t_s <= to_s)
            .cloned()
            .collect();
        summarize_with(&w, self.allotment.cpu_cores)
    }
}

/// A running watch. The owner drains it between stages (non-blocking) and
/// reads windows of what arrived so far.
pub struct ServerWatch {
    opts: WatchOptions,
    cancel: CancellationToken,
    rx: mpsc::Receiver<WatchMessage>,
    report: ServerReport,
}

impl ServerWatch {
    /// Starts sampling now (t_s = 0 is now).
    pub fn start(opts: WatchOptions) -> ServerWatch {
        let cancel = CancellationToken::new();
        let (tx, rx) = mpsc::channel(WATCH_CHANNEL);
        let watcher = Watcher::new(opts.targets.clone());
        let interval = if opts.interval.is_zero() {
            Duration::from_secs(1)
        } else {
            opts.interval
        };
        tokio::spawn(run_watcher_with(watcher, interval, cancel.clone(), tx));
        let report = ServerReport {
            targets: opts.targets.iter().map(|t| t.label()).collect(),
            allotment: opts.allotment,
            ..ServerReport::default()
        };
        ServerWatch {
            opts,
            cancel,
            rx,
            report,
        }
    }

    fn fold(&mut self, m: WatchMessage) {
        match m {
            WatchMessage::Sample(s) => self.report.samples.push(s),
            WatchMessage::Event(e) => self.report.events.push(e),
            WatchMessage::Allotment(a) => {
                // Limits read from the cgroup or Docker win; the flags fill
                // in what they do not say.
                self.report.allotment.cpu_cores = a.cpu_cores.or(self.opts.allotment.cpu_cores);
                self.report.allotment.memory_mb = a.memory_mb.or(self.opts.allotment.memory_mb);
            }
        }
    }

    /// Takes in whatever the sampler sent so far.
    pub fn drain(&mut self) -> &ServerReport {
        while let Ok(m) = self.rx.try_recv() {
            self.fold(m);
        }
        &self.report
    }

    /// Stops sampling and returns everything seen.
    pub async fn finish(mut self) -> ServerReport {
        self.cancel.cancel();
        while let Some(m) = self.rx.recv().await {
            self.fold(m);
        }
        self.report.summary = summarize_with(&self.report.samples, self.report.allotment.cpu_cores);
        self.report
    }
}
