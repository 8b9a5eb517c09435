//! The commands behind the CLI, as library functions (so tests can call
//! them): `run` (start the built-in mock if no URL, run the fleet, print and
//! write the report) and `mock-server`.

use crate::config::{Plan, Target};
use crate::fleet::{load_clips, run_fleet};
use crate::metrics::Snapshot;
use crate::mock::{MockConfig, MockServer};
use crate::record::{Recording, write_recording};
use crate::report::{Report, RunContext, render_summary};
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
}

/// How a run ended, for the exit code.
#[derive(Debug)]
pub struct RunResult {
    pub report: Report,
    /// Nothing could connect at all.
    pub nothing_connected: bool,
}

/// Runs a plan to the end (or until `interrupt`), printing progress to
/// stderr and the summary to stdout, and writing the requested reports.
pub async fn run(plan: &Plan, opts: &RunOptions, interrupt: CancellationToken) -> anyhow::Result<RunResult> {
    let clips = load_clips(plan)?;
    let (mock, url) = match &plan.target {
        Target::Url(u) => (None, u.clone()),
        Target::BuiltInMock => {
            let server = MockServer::start("127.0.0.1:0", plan.mock.clone()).await?;
            let url = server.url();
            eprintln!("No server URL given: using the built-in mock server at {url}");
            (Some(server), url)
        }
    };
    eprintln!("Running {} devices from {} against {url}", plan.devices, plan.name);
    let (snap_tx, snap_rx) = watch::channel(Snapshot::default());
    let progress =
        (!opts.quiet).then(|| tokio::spawn(crate::report::live::show_progress(snap_rx, expected_length(plan))));
    let outcome = run_fleet(plan, &url, &clips, interrupt, snap_tx).await?;
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
    report.recordings = write_recordings(plan, &outcome.metrics.recorded)?;
    print!("{}", render_summary(&report));
    for path in &opts.reports {
        report
            .write(path)
            .map_err(|e| anyhow::anyhow!("cannot write report {}: {e}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    Ok(RunResult {
        report,
        nothing_connected,
    })
}

/// Writes the kept turns' WAVs and timelines into the run directory.
fn write_recordings(plan: &Plan, traces: &[crate::record::trace::TurnTrace]) -> anyhow::Result<Vec<Recording>> {
    if traces.is_empty() {
        return Ok(Vec::new());
    }
    let dir = plan.record_dir.clone().unwrap_or_else(|| {
        let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
            .to_string()
            .replace(':', "")
            .replace('T', "-")
            .trim_end_matches('Z')
            .to_string();
        PathBuf::from("runs").join(stamp)
    });
    let out: Vec<Recording> = traces
        .iter()
        .map(|t| write_recording(&dir, t))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("cannot write recordings to {}: {e}", dir.display()))?;
    eprintln!("{} recording(s) written to {}", out.len(), dir.display());
    Ok(out)
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
    let server = MockServer::start(listen, cfg)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    eprintln!("xiaozhi mock server listening on {}", server.url());
    eprintln!("point devices at it with: xiaozhi-fleet run --url {}", server.url());
    shutdown.cancelled().await;
    server.stop().await;
    Ok(())
}

/// The resolved plan in plain words (for `validate`).
pub fn describe_plan(plan: &Plan) -> anyhow::Result<String> {
    use crate::config::{Load, StartBy, Stop};
    use crate::units::format_duration as fd;
    use std::fmt::Write as _;
    let clips = load_clips(plan)?;
    let mut s = String::new();
    let target = match &plan.target {
        Target::Url(u) => u.clone(),
        Target::BuiltInMock => "built-in mock server (no url)".to_string(),
    };
    let _ = writeln!(s, "fleet: {}\ntarget: {target}", plan.name);
    let _ = writeln!(
        s,
        "devices: {} (connected at {} per second)",
        plan.devices, plan.ramp_per_sec
    );
    let load = match &plan.load {
        Load::PerDevice => "each device holds its own conversations".to_string(),
        Load::Stages(st) => {
            let steps: Vec<String> = st
                .iter()
                .map(|x| format!("{} for {}", x.speakers, fd(x.duration)))
                .collect();
            format!("step plan of concurrent speakers (closed loop): {}", steps.join(", "))
        }
        Load::Arrivals { per_sec } => format!("open model: conversations arrive at {per_sec} per second (Poisson)"),
    };
    let stop = match plan.stop {
        Stop::Turns(_) => "when every conversation is done".to_string(),
        Stop::Duration(d) => format!("after {} (then up to {} grace)", fd(d), fd(plan.timeouts.grace)),
    };
    let _ = writeln!(s, "load: {load}\nstop: {stop}");
    if let Some(n) = plan.total_turns {
        let _ = writeln!(s, "  or after {n} turns in total");
    }
    let _ = writeln!(
        s,
        "seed: {}\nprotocol version: {}",
        plan.seed,
        plan.protocol_version.as_u8()
    );
    let t = &plan.timeouts;
    let _ = writeln!(
        s,
        "timeouts: hello {}, no reply {}, reply {}",
        fd(t.hello),
        fd(t.no_reply),
        fd(t.reply)
    );
    let _ = writeln!(
        s,
        "device profile: {} (queue {} frames, start threshold {})",
        plan.profile, plan.playback.queue_capacity, plan.playback.start_threshold
    );
    let mut uplink_bytes = 0.0;
    for g in &plan.groups {
        let selected = clips.select(&g.clips)?;
        let turns = g.turns.map_or("until the run ends".to_string(), |t| t.to_string());
        let start = match &g.start {
            StartBy::Button => "button".to_string(),
            StartBy::WakeWord(w) => format!("wake word {w}"),
        };
        let _ = writeln!(
            s,
            "group {}: {} devices, mode {:?}, start by {start}, turns per conversation {turns}, think {}, barge-in {:.0}%, idle {:?}",
            g.name,
            g.count,
            g.mode,
            g.think_time,
            g.barge_in * 100.0,
            g.idle
        );
        for c in &selected {
            let _ = writeln!(
                s,
                "    {:<20} {:>5.2} s  {}",
                c.name,
                c.duration().as_secs_f64(),
                c.transcript
            );
        }
        let avg: f64 = selected
            .iter()
            .map(|c| c.packets.iter().map(|p| p.len()).sum::<usize>() as f64 / c.packets.len() as f64)
            .sum::<f64>()
            / selected.len().max(1) as f64;
        uplink_bytes += avg * g.count as f64;
    }
    let per_sec = 1000.0 / crate::audio::FRAME.as_millis() as f64;
    let _ = writeln!(
        s,
        "uplink if every device streamed at once: {:.0} frames/s, about {:.0} kbit/s (each speaker: {per_sec:.1} frames/s)",
        plan.devices as f64 * per_sec,
        uplink_bytes * per_sec * 8.0 / 1000.0
    );
    if plan.target == Target::BuiltInMock {
        let m = &plan.mock;
        let _ = writeln!(
            s,
            "mock: asr {}, llm {}, tts {}, {} sentences (+{} each), silence window {}, downlink {:?}",
            fd(m.asr_delay),
            fd(m.llm_delay),
            fd(m.tts_delay),
            m.sentences,
            m.sentence_delay,
            fd(m.silence_window),
            m.downlink
        );
    }
    Ok(s)
}
