//! The commands behind the CLI, as library functions (so tests can call
//! them): `run` (start the built-in mock if no URL, run the fleet, print and
//! write the report), `mock-server`, `validate` ([`describe`]),
//! `capacity` ([`capacity`]), `provision` ([`provision`]) and `diagnose`
//! ([`diagnose`]).

pub mod capacity;
mod describe;
pub mod diagnose;
pub mod logging;
mod output;
pub mod provision;
mod signals;
pub mod stand_ins;

pub use describe::describe_plan;
pub use signals::{EXIT_INTERRUPTED, interrupt_token, stop_token};

use crate::config::Plan;
use crate::mock::{MockConfig, MockOptions, MockServer};
use crate::report::format::Format;
use crate::report::outputs::OutputOptions;
use crate::report::{Report, RunContext, render_summary};
use crate::rig::{MockPlacement, Rig, RigOptions};
use crate::watch::series::WatchOptions;
use std::path::PathBuf;
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
    let mut rig = Rig::start(plan, opts.rig()).await?;
    let url = rig.url.clone();
    eprintln!("Running {} devices from {} against {url}", plan.devices, plan.name);
    tracing::info!(devices = plan.devices, url = %url, fleet = %plan.name, "run starting");
    rig.begin_watch(rig.watch_options().clone());
    let outcome = match rig.run(plan, interrupt).await {
        Ok(o) => o,
        Err(e) => {
            rig.finish(true, None).await;
            return Err(e);
        }
    };
    let ctx = RunContext {
        target_url: &url,
        mock: rig.is_mock(),
        devices: plan.devices,
        seed: plan.seed,
        fleet: &plan.name,
    };
    let nothing_connected = outcome.metrics.connections == 0;
    let mut report = Report::build(&ctx, &outcome);
    let end = rig.finish(report.run.interrupted, Some(report.generator.valid)).await;
    report.latency_series = end.latency_series;
    if let Some(srv) = end.server {
        for (st, m) in report.stages.iter_mut().zip(&outcome.metrics.stages) {
            st.server = Some(srv.window(m.started_at_s, m.started_at_s + m.duration_s));
        }
        report.server = Some(srv);
    }
    report.providers = end.providers;
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
    Ok(RunResult {
        report,
        nothing_connected,
        output_errors,
    })
}

impl RunOptions {
    fn rig(&self) -> RigOptions {
        RigOptions {
            mock: MockPlacement::InProcess,
            watch: self.watch.clone(),
            outputs: OutputOptions {
                reports: self.reports.clone(),
                prometheus: self.prometheus.clone(),
                dashboard: self.dashboard.clone(),
                slos: self.slos.clone(),
            },
            progress: !self.quiet,
        }
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
    let activation = cfg.activation;
    let server = MockServer::start_with(listen, cfg, opts)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    eprintln!("xiaozhi mock server listening on {}", server.url());
    eprintln!("OTA version check at {}", server.ota_url());
    eprintln!("point devices at it with: xiaozhi-fleet run --url {}", server.url());
    eprintln!("or through its OTA with: xiaozhi-fleet run --ota {}", server.ota_url());
    if activation {
        eprintln!(
            "activation on: bind devices with: xiaozhi-fleet provision --ota {} --manager-api {} --token T --agent A",
            server.ota_url(),
            server.manager_api_url()
        );
    }
    shutdown.cancelled().await;
    server.stop().await;
    Ok(())
}
