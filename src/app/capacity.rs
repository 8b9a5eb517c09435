//! `capacity`: find the most concurrent speakers the server holds within
//! the SLOs, watch its CPU and memory, and give the sizing verdict. With no
//! URL the built-in mock runs as a child process (`mock-server`), watched by
//! pid, so its CPU is the server's alone and not mixed with the generator's.

use crate::capacity::run::{CapacityOptions, CapacitySection, CapacityStage, run_capacity};
use crate::capacity::sizing::{Sizing, Verdict, render_text};
use crate::config::{Plan, Target};
use crate::report::{SCHEMA_VERSION, Tool};
use crate::server::WatchTarget;
use crate::server::series::ServerReport;
use anyhow::Context;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

/// How long the mock child may take to print its address.
const MOCK_START_TIMEOUT: Duration = Duration::from_secs(30);

/// The capacity report (JSON).
#[derive(Debug, Serialize)]
pub struct CapacityReport {
    pub schema_version: u32,
    pub tool: Tool,
    pub run: CapacityRun,
    pub capacity: CapacitySection,
    pub sizing: Option<Sizing>,
    pub server: Option<ServerReport>,
}

#[derive(Debug, Serialize)]
pub struct CapacityRun {
    pub target_url: String,
    pub mock: bool,
    pub started_at: String,
    pub duration_s: f64,
    pub fleet: String,
    pub seed: u64,
    pub stage_duration_s: f64,
    pub interrupted: bool,
}

/// Starts `xiaozhi-fleet mock-server` on 127.0.0.1:0 as a child and reads
/// its URL from its first line of output.
pub async fn spawn_mock_child(exe: &Path, fleet: Option<&Path>) -> anyhow::Result<(Child, String)> {
    let mut cmd = Command::new(exe);
    cmd.args(["mock-server", "--listen", "127.0.0.1:0"]);
    if let Some(f) = fleet {
        cmd.arg("--config").arg(f);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the mock server")?;
    let stderr = child.stderr.take().context("mock server has no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let url = tokio::time::timeout(MOCK_START_TIMEOUT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(u) = line.split_whitespace().find(|w| w.starts_with("ws://")) {
                return Some(u.to_string());
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .context("the mock server did not say where it listens")?;
    // Keep draining its output so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, url))
}

fn print_stage(s: &CapacityStage) {
    let fa = s.latency_ms.get("first_audio").map_or(0.0, |p| p.p95);
    let cpu = s.server.as_ref().map_or(String::new(), |w| {
        format!(
            ", server CPU p95 {:.2} cores, memory max {:.0} MB",
            w.cpu_cores.p95, w.memory_mb.max
        )
    });
    let verdict = match (s.generator_valid, s.passed) {
        (false, _) => "GENERATOR TOO SLOW",
        (true, true) => "PASS",
        (true, false) => "FAIL",
    };
    eprintln!(
        "  {:>4} speakers: {verdict}  (p95 first audio {:.0} ms, stutter {:.1}%, failed {:.1}%{cpu})",
        s.speakers,
        fa,
        s.playback.stutter_ratio * 100.0,
        s.turns.failed_ratio * 100.0
    );
    for reason in &s.generator_invalid_reasons {
        eprintln!("        {reason}");
    }
}

/// Runs the capacity command; returns the exit code (1 = INSUFFICIENT or
/// the target fails its SLOs).
pub async fn capacity(
    plan: &Plan,
    fleet: Option<&Path>,
    mut opts: CapacityOptions,
    reports: &[PathBuf],
    interrupt: CancellationToken,
) -> anyhow::Result<u8> {
    let (child, url) = match &plan.target {
        Target::Url(u) => (None, u.clone()),
        Target::BuiltInMock => {
            let exe = std::env::current_exe().context("cannot find this program to start the mock server")?;
            let (child, url) = spawn_mock_child(&exe, fleet).await?;
            eprintln!("No server URL given: started the built-in mock server as a child process at {url}");
            if opts.watch.targets.is_empty()
                && let Some(pid) = child.id()
            {
                opts.watch.targets.push(WatchTarget::Pid(pid));
            }
            (Some(child), url)
        }
    };
    let slos: Vec<String> = opts.slos.iter().map(|s| s.describe()).collect();
    eprintln!(
        "Capacity search against {url}: {} s per stage, SLOs: {}",
        opts.stage_duration.as_secs(),
        slos.join(", ")
    );
    let started_at = SystemTime::now();
    let t0 = std::time::Instant::now();
    let out = run_capacity(plan, &url, &opts, interrupt, print_stage).await;
    if let Some(mut c) = child {
        let _ = c.kill().await;
    }
    let out = out?;
    let c = &out.capacity;
    println!(
        "\nmost concurrent speakers within the SLOs: {} ({} stages, stopped: {})",
        c.max_speakers,
        c.stages.len(),
        c.stop_reason
    );
    if c.stop_reason == "generator_invalid" {
        println!(
            "The load generator could not keep real-time pace at the last stage, so the search stopped there and \
             that stage is left out of the sizing: the knee may be higher. Run the generator on another machine \
             (or give it more cores) and search again."
        );
    }
    match &out.sizing {
        Some(s) => println!("{}", render_text(s)),
        None => println!(
            "(no server CPU/memory was watched: add --watch-pid, --watch-cgroup or --watch-docker for a sizing verdict)"
        ),
    }
    let report = CapacityReport {
        schema_version: SCHEMA_VERSION,
        tool: Tool::this(),
        run: CapacityRun {
            target_url: url.clone(),
            mock: plan.target == Target::BuiltInMock,
            started_at: humantime::format_rfc3339_seconds(started_at).to_string(),
            duration_s: (t0.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
            fleet: plan.name.clone(),
            seed: plan.seed,
            stage_duration_s: opts.stage_duration.as_secs_f64(),
            interrupted: out.interrupted,
        },
        capacity: out.capacity,
        sizing: out.sizing,
        server: out.server,
    };
    for path in reports {
        let body = serde_json::to_string_pretty(&report)? + "\n";
        std::fs::write(path, body).with_context(|| format!("cannot write report {}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    if out.interrupted {
        return Ok(130);
    }
    let target_fails = opts.target_speakers.is_some_and(|t| report.capacity.max_speakers < t);
    let insufficient = report
        .sizing
        .as_ref()
        .is_some_and(|s| s.verdict == Some(Verdict::Insufficient));
    Ok(if insufficient || target_fails { 1 } else { 0 })
}
