//! `diagnose`: runs the matrix of [`crate::diagnose`] one cell after the
//! other (each a short run of its own, against the same server, or a fresh
//! built-in mock), keeps each cell's figures, prints the verdict and writes
//! the page and the JSON. A cell that cannot be measured is left out with
//! its reason; an interrupt stops the matrix and still writes what ran.

use crate::config::plan::Overrides;
use crate::config::{FleetFile, Plan, Target, TransportChoice};
use crate::diagnose::verdict::{self, Diagnosis};
use crate::diagnose::{CellResult, CellSpec, MatrixOptions, html, matrix};
use crate::fleet::generator::SEND_LAG_P99_LIMIT_MS;
use crate::mock::{GatewayPorts, MockOptions, MockServer, OtaOffer};
use crate::report::{Report, RunContext};
use crate::rig::{MockPlacement, Rig, RigOptions};
use crate::watch::series::WatchOptions;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The fleet a diagnosis starts from when none is given.
pub const DIAGNOSE_FLEET: &str = include_str!("../../fleets/diagnose.toml");

/// What `diagnose` was asked.
#[derive(Clone, Debug)]
pub struct DiagnoseOptions {
    /// Base fleet file; `None`: [`DIAGNOSE_FLEET`].
    pub fleet: Option<PathBuf>,
    /// `--url`, `--ota`, `--seed`, TLS: applied to every cell.
    pub overrides: Overrides,
    pub matrix: MatrixOptions,
    /// How long each cell talks.
    pub cell_duration: Duration,
    pub watch: WatchOptions,
    /// Where to write the page (`.html`) and the figures (`.json`).
    pub reports: Vec<PathBuf>,
    pub quiet: bool,
}

/// What a diagnosis found.
#[derive(Debug, Serialize)]
pub struct DiagnoseResult {
    pub cells: Vec<CellResult>,
    pub diagnosis: Diagnosis,
    /// Stopped by a signal before every cell ran.
    pub interrupted: bool,
}

/// Where the cells find the server: the one given, or a built-in mock
/// started once for the whole matrix (so every cell meets the same server).
#[derive(Clone, Debug, Default)]
pub struct ServerAt {
    /// The built-in mock's WebSocket URL (`None`: the fleet's own target).
    pub mock_ws: Option<String>,
    /// The built-in mock's OTA URL, for MQTT cells.
    pub mock_ota: Option<String>,
}

impl DiagnoseResult {
    /// The README's exit code: 130 interrupted, 2 no verdict (the baseline
    /// could not be measured), 1 stutter found, 0 none.
    pub fn exit_code(&self) -> u8 {
        if self.interrupted {
            super::EXIT_INTERRUPTED as u8
        } else if self.diagnosis.no_verdict {
            2
        } else if self.diagnosis.stutter_found {
            1
        } else {
            0
        }
    }
}

/// Runs every cell, then judges them.
pub async fn diagnose(opts: &DiagnoseOptions, interrupt: CancellationToken) -> anyhow::Result<DiagnoseResult> {
    for p in &opts.reports {
        check_output(p)?;
    }
    let specs = matrix(&opts.matrix);
    // Every cell checked before anything runs: a bad file or name fails at once.
    let base = cell_plan(opts, &specs[0], &ServerAt::default())?;
    for spec in &specs[1..] {
        cell_plan(opts, spec, &ServerAt::default())?;
    }
    let wants_mqtt = specs.iter().any(|s| s.transport == TransportChoice::Mqtt);
    let mock = match base.target {
        Target::BuiltInMock => Some(start_mock(&base, wants_mqtt).await?),
        _ => None,
    };
    let at = ServerAt {
        mock_ws: mock.as_ref().map(|m| m.url()),
        mock_ota: mock.as_ref().map(|m| m.ota_url()),
    };
    let (cells, interrupted) = run_cells(opts, &specs, &at, interrupt).await;
    if let Some(m) = mock {
        m.stop().await;
    }
    let cells = cells?;
    let diagnosis = verdict::diagnose(&cells);
    let result = DiagnoseResult {
        cells,
        diagnosis,
        interrupted,
    };
    print!("{}", verdict::render(&result.cells, &result.diagnosis));
    for p in &opts.reports {
        write_output(p, &result)?;
        eprintln!("diagnosis written to {}", p.display());
    }
    Ok(result)
}

/// The built-in mock for the whole matrix; with its MQTT + UDP gateway and
/// an OTA answer naming it when a cell needs MQTT.
async fn start_mock(plan: &Plan, mqtt: bool) -> anyhow::Result<MockServer> {
    let mut cfg = plan.mock.clone();
    if mqtt {
        cfg.ota = OtaOffer::Mqtt;
        cfg.gateway.get_or_insert(GatewayPorts::default());
    }
    let opts = MockOptions {
        clips: Some(crate::fleet::load_clips(plan)?),
        ..MockOptions::default()
    };
    let server = MockServer::start_with("127.0.0.1:0", cfg, opts).await?;
    eprintln!(
        "No server URL given: diagnosing the built-in mock server at {}",
        server.url()
    );
    Ok(server)
}

/// The cells in order, until the end or an interrupt: (cells, interrupted).
async fn run_cells(
    opts: &DiagnoseOptions,
    specs: &[CellSpec],
    at: &ServerAt,
    interrupt: CancellationToken,
) -> (anyhow::Result<Vec<CellResult>>, bool) {
    let mut cells = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        if interrupt.is_cancelled() {
            return (Ok(cells), true);
        }
        eprintln!(
            "cell {}/{}: {} ({} speakers, network {}, {}) for {}s",
            i + 1,
            specs.len(),
            spec.factor.label(),
            spec.devices,
            spec.network,
            spec.transport.as_str(),
            opts.cell_duration.as_secs()
        );
        let cell = match run_one(opts, spec, at, interrupt.clone()).await {
            Ok(c) => c,
            Err(e) => return (Err(e), false),
        };
        eprintln!(
            "  {} turns, {:.0}% with gaps, {:.0} ms of gaps per turn (server {:.0}, network {:.0}, device {:.0})",
            cell.turns,
            cell.stutter_share() * 100.0,
            cell.ms_per_turn(),
            cell.per_turn(cell.server_ms),
            cell.per_turn(cell.network_ms),
            cell.per_turn(cell.device_ms)
        );
        let cut = cell.inconclusive.is_some() && interrupt.is_cancelled();
        cells.push(cell);
        if cut {
            return (Ok(cells), true);
        }
    }
    (Ok(cells), false)
}

/// One cell: its plan, its run, its figures.
async fn run_one(
    opts: &DiagnoseOptions,
    spec: &CellSpec,
    at: &ServerAt,
    interrupt: CancellationToken,
) -> anyhow::Result<CellResult> {
    let plan = cell_plan(opts, spec, at)?;
    let (report, cut) = run_cell(&plan, opts, interrupt).await?;
    let mut cell = cell_result(spec.clone(), &report);
    if cut {
        cell.inconclusive = Some("interrupted before the cell's end".into());
    }
    cell.check_turns();
    Ok(cell)
}

/// The plan of one cell: the base fleet with the cell's speakers, length,
/// transport, network and device queue, pointed at the server of `at`.
pub fn cell_plan(opts: &DiagnoseOptions, spec: &CellSpec, at: &ServerAt) -> anyhow::Result<Plan> {
    let ov = Overrides {
        speakers: Some(spec.devices),
        devices: Some(spec.devices),
        duration: Some(opts.cell_duration),
        ..opts.overrides.clone()
    };
    let mut plan = match &opts.fleet {
        Some(path) => Plan::load(Some(path), &ov)?,
        None => Plan::from_file(
            FleetFile::parse(DIAGNOSE_FLEET, "diagnose (built in)")?,
            "diagnose (built in)",
            &ov,
        )?,
    };
    point_at_server(&mut plan, spec.transport, at)?;
    for g in &mut plan.groups {
        g.transport = Some(spec.transport);
    }
    crate::network::profiles::set_network(&mut plan, &spec.network).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(q) = spec.queue {
        crate::network::profiles::set_device_queue(&mut plan, q);
    }
    Ok(plan)
}

/// WebSocket cells dial the URL (the OTA only when there is no URL); MQTT
/// cells boot through the OTA, whose answer names the gateway.
fn point_at_server(plan: &mut Plan, transport: TransportChoice, at: &ServerAt) -> anyhow::Result<()> {
    match (transport, &at.mock_ws, &at.mock_ota) {
        (TransportChoice::Websocket, Some(ws), _) => {
            plan.target = Target::Url(ws.clone());
            plan.ota = None;
        }
        (TransportChoice::Mqtt, _, Some(ota)) => {
            plan.target = Target::OtaAnswer;
            plan.ota = Some(ota.clone());
        }
        (TransportChoice::Websocket, None, _) => {
            if matches!(plan.target, Target::Url(_)) {
                plan.ota = None;
            }
        }
        (TransportChoice::Mqtt, _, None) => {
            if plan.ota.is_none() && !matches!(plan.target, Target::BuiltInMock) {
                anyhow::bail!(
                    "an MQTT cell needs the server's OTA URL (--ota): the gateway's address comes from its answer"
                );
            }
            if plan.ota.is_some() {
                plan.target = Target::OtaAnswer;
            }
        }
    }
    Ok(())
}

/// One cell's run, quietly; `true` when it was cut short.
async fn run_cell(plan: &Plan, opts: &DiagnoseOptions, interrupt: CancellationToken) -> anyhow::Result<(Report, bool)> {
    let rig_opts = RigOptions {
        mock: MockPlacement::InProcess,
        watch: opts.watch.clone(),
        outputs: Default::default(),
        progress: !opts.quiet,
    };
    let mut rig = Rig::start(plan, rig_opts).await?;
    let url = rig.url.clone();
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
    let mut report = Report::build(&ctx, &outcome);
    let end = rig.finish(report.run.interrupted, Some(report.generator.valid)).await;
    report.server = end.server;
    let cut = report.run.interrupted;
    Ok((report, cut))
}

/// The figures a cell keeps from its report.
pub fn cell_result(spec: CellSpec, r: &Report) -> CellResult {
    let p = &r.playback;
    let causes = &p.by_cause;
    CellResult {
        spec,
        turns: p.turns,
        failed: r.turns.failed,
        // A turn with a gap of any cause and length: a 15 ms gap in every
        // 60 ms frame (TTS at 0.8× real time) is heard, though no single
        // gap reaches the run report's one-frame stutter threshold.
        stutter_turns: p
            .stutter_turns
            .max(causes.turns_server)
            .max(causes.turns_network)
            .max(causes.turns_device),
        server_ms: causes.server_ms,
        network_ms: causes.network_ms,
        device_ms: causes.device_ms,
        first_audio_p95_ms: r.latency_ms.get("first_audio").filter(|p| p.count > 0).map(|p| p.p95),
        server_cpu_cores: r.server.as_ref().map(|s| s.summary.cpu_cores.max),
        // A generator that fell behind reads frames late, and a frame read
        // late looks late from the server: such a cell cannot be judged.
        // (Its send lag says so; its CPU reading counts an in-process mock.)
        inconclusive: behind(r),
    }
}

/// Why the generator's own timing cannot be trusted in this cell, if so.
fn behind(r: &Report) -> Option<String> {
    let lag = &r.generator.send_lag_ms;
    (lag.count > 0 && lag.p99 > SEND_LAG_P99_LIMIT_MS).then(|| {
        format!(
            "the generator fell behind (send lag p99 {:.1} ms > {SEND_LAG_P99_LIMIT_MS} ms), so gaps could be its own",
            lag.p99
        )
    })
}

fn check_output(p: &Path) -> anyhow::Result<()> {
    match p.extension().and_then(|e| e.to_str()) {
        Some("html" | "json") => Ok(()),
        _ => anyhow::bail!("{}: diagnose writes .html or .json", p.display()),
    }
}

fn write_output(p: &Path, result: &DiagnoseResult) -> anyhow::Result<()> {
    let text = match p.extension().and_then(|e| e.to_str()) {
        Some("html") => html::page("xiaozhi-fleet diagnosis", &result.cells, &result.diagnosis),
        _ => serde_json::to_string_pretty(result)? + "\n",
    };
    std::fs::write(p, text).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))
}
