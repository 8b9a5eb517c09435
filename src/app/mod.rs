//! The commands behind the CLI, as library functions (so tests can call
//! them): `run` (start the built-in mock if no URL, run the fleet, print and
//! write the report), `mock-server`, `validate` ([`describe`]) and
//! `capacity` ([`capacity`]).

pub mod capacity;
mod describe;
pub mod logging;
mod output;
mod signals;
pub mod stand_ins;

pub use describe::describe_plan;
pub use signals::{EXIT_INTERRUPTED, interrupt_token, stop_token};

use crate::config::{Plan, Target};
use crate::fleet::{Hooks, load_clips, run_fleet_observed};
use crate::metrics::Snapshot;
use crate::mock::{MockConfig, MockOptions, MockServer};
use crate::report::format::Format;
use crate::report::outputs::{LiveAddresses, OutputOptions, RunOutputs};
use crate::report::{Report, RunContext, render_summary};
use crate::watch::series::{ServerWatch, WatchOptions};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How `run` talks to the console.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub reports: Vec<PathBuf>,
    /// No live status line.
    pub quiet: bool,
    /// The server to watch beside the fleet.
    pub watch: WatchOptions,
    /// SLO gates (`--slo`, `[[slo]]`); none = no verdict.
    pub slos: Vec<crate::capacity::slo::Slo>,
    /// `--prometheus ADDR`.
    pub prometheus: Option<String>,
    /// `--dashboard ADDR`.
    pub dashboard: Option<String>,
}

/// How a run ended, for the exit code.
#[derive(Debug)]
pub struct RunResult {
    pub report: Report,
    /// Nothing could connect at all.
    pub nothing_connected: bool,
    /// Outputs that could not be written at the end (reports, recordings),
    /// each with its reason; the others were written all the same.
    pub output_errors: Vec<String>,
}

/// Prints the plan's warnings (valid, but probably not what was meant) on stderr.
pub fn print_warnings(plan: &Plan) {
    for w in &plan.warnings {
        eprintln!("warning: {w}");
    }
}

/// Runs a plan to the end (or until `interrupt`), printing progress to
/// stderr and the summary to stdout, and writing the requested reports.
/// Every output is checked for writability first (an error before anything
/// connects); at the end a failing output does not stop the others.
pub async fn run(plan: &Plan, opts: &RunOptions, interrupt: CancellationToken) -> anyhow::Result<RunResult> {
    let files = output::Outputs::check(plan, &opts.reports)?;
    print_warnings(plan);
    let clips = load_clips(plan)?;
    let (mock, url) = match &plan.target {
        Target::Url(u) => (None, u.clone()),
        Target::BuiltInMock => {
            let opts = MockOptions {
                clips: Some(clips.clone()),
                ..MockOptions::default()
            };
            let server = MockServer::start_with("127.0.0.1:0", plan.mock.clone(), opts).await?;
            let url = server.url();
            eprintln!("No server URL given: using the built-in mock server at {url}");
            (Some(server), url)
        }
    };
    let stand_ins = stand_ins::start(plan).await?;
    eprintln!("Running {} devices from {} against {url}", plan.devices, plan.name);
    tracing::info!(devices = plan.devices, url = %url, fleet = %plan.name, "run starting");
    let server_watch = (!opts.watch.targets.is_empty()).then(|| ServerWatch::start(opts.watch.clone()));
    let (snap_tx, snap_rx) = watch::channel(Snapshot::default());
    let (mut outputs, observers) = RunOutputs::start(&opts.outputs(), snap_rx.clone(), server_watch).await?;
    print_live_addresses(&outputs.addresses);
    let progress =
        (!opts.quiet).then(|| tokio::spawn(crate::report::live::show_progress(snap_rx, expected_length(plan))));
    let outcome = run_fleet_observed(plan, &url, &clips, interrupt, snap_tx, Hooks::default(), observers).await?;
    if let Some(p) = progress {
        let _ = p.await;
    }
    if let Some(server) = mock {
        server.stop().await;
    }
    let ctx = RunContext {
        target_url: &url,
        mock: plan.target == Target::BuiltInMock,
        devices: plan.devices,
        seed: plan.seed,
        fleet: &plan.name,
    };
    let nothing_connected = outcome.metrics.connections == 0;
    let mut report = Report::build(&ctx, &outcome);
    outputs.finish(&mut report).await;
    if let Some(w) = outputs.take_server_watch().await {
        let srv = w.finish().await;
        for (st, m) in report.stages.iter_mut().zip(&outcome.metrics.stages) {
            st.server = Some(srv.window(m.started_at_s, m.started_at_s + m.duration_s));
        }
        report.server = Some(srv);
    }
    if let Some(s) = stand_ins {
        report.providers = Some(s.report());
        s.stop().await;
    }
    let mut output_errors = Vec::new();
    let (recordings, failed) = files.write_recordings(&outcome.metrics.recorded);
    report.recordings = recordings;
    output_errors.extend(failed);
    print!("{}", render_summary(&report));
    if !opts.slos.is_empty() {
        let verdict = crate::report::slo::check(&opts.slos, &crate::report::slo::measure(&report));
        print!("{}", crate::report::slo::render(&verdict));
        report.slo = Some(verdict);
    }
    // The CSV was streamed during the run; the others are written now.
    for path in opts.reports.iter().filter(|p| Format::of(p).ok() != Some(Format::Csv)) {
        match report.write(path) {
            Ok(()) => eprintln!("report written to {}", path.display()),
            Err(e) => output_errors.push(format!("cannot write report {}: {e}", path.display())),
        }
    }
    outputs.close(&report).await;
    Ok(RunResult {
        report,
        nothing_connected,
        output_errors,
    })
}

impl RunOptions {
    fn outputs(&self) -> OutputOptions {
        OutputOptions {
            reports: self.reports.clone(),
            prometheus: self.prometheus.clone(),
            dashboard: self.dashboard.clone(),
            slos: self.slos.clone(),
        }
    }
}

fn print_live_addresses(a: &LiveAddresses) {
    if let Some(addr) = a.prometheus {
        eprintln!("Prometheus metrics at http://{addr}/metrics");
    }
    if let Some(addr) = a.dashboard {
        eprintln!("Live dashboard at http://{addr}/");
    }
}

/// The run's planned length, for the progress bar (unknown for turn-based runs).
fn expected_length(plan: &Plan) -> Option<Duration> {
    use crate::config::{Load, Stop};
    match (&plan.load, plan.stop) {
        (Load::Stages(stages), _) => Some(stages.iter().map(|s| s.duration).sum()),
        (_, Stop::Duration(d)) => Some(d),
        _ => None,
    }
}

/// Serves the mock on `listen` until `shutdown`.
pub async fn mock_server(listen: &str, cfg: MockConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    mock_server_with(listen, cfg, MockOptions::default(), shutdown).await
}

/// Serves the mock on `listen` with `opts` (TLS, clips) until `shutdown`.
pub async fn mock_server_with(
    listen: &str,
    cfg: MockConfig,
    opts: MockOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let server = MockServer::start_with(listen, cfg, opts)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    eprintln!("xiaozhi mock server listening on {}", server.url());
    eprintln!("point devices at it with: xiaozhi-fleet run --url {}", server.url());
    shutdown.cancelled().await;
    server.stop().await;
    Ok(())
}
