//! `capacity`: find the most concurrent speakers the server holds within
//! the SLOs, watch its CPU and memory, and give the sizing verdict. With no
//! URL the built-in mock runs as a child process (`mock-server`), watched by
//! pid, so its CPU is the server's alone and not mixed with the generator's.
//! With `--cpus` the server's CPU limit is set before each search and the
//! original is put back at the end, on Ctrl-C/SIGTERM and on errors.

mod report;
pub mod text;

pub use report::{CapacityReport, CapacityRun};

use crate::capacity::allotments::run_allotments;
use crate::capacity::run::{CapacityOptions, CapacityOutcome, search_on};
use crate::capacity::section::CapacitySection;
use crate::capacity::sizing::Verdict;
use crate::config::{Plan, Target};
use crate::providers::ProvidersServer;
use crate::report::outputs::OutputOptions;
use crate::report::{SCHEMA_VERSION, Tool};
use crate::rig::{MockPlacement, Rig, RigOptions};
use crate::watch::WatchTarget;
use crate::watch::docker::DEFAULT_DOCKER_SOCKET;
use crate::watch::limit::{CpuLimiter, LimitTarget};
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use tokio_util::sync::CancellationToken;

/// Exit code: an error, or nothing could connect.
pub const EXIT_ERROR: u8 = 2;

/// What `--cpus` limits: the one watched target (or the mock child).
fn limit_target(watch: &[WatchTarget]) -> anyhow::Result<LimitTarget> {
    match watch {
        [WatchTarget::Pid(pid)] => Ok(LimitTarget::Pid(*pid)),
        [WatchTarget::Cgroup(path)] => Ok(LimitTarget::Cgroup(path.clone())),
        [WatchTarget::Docker(name)] => Ok(LimitTarget::Docker {
            name: name.clone(),
            socket: docker_socket(),
        }),
        [] => anyhow::bail!("--cpus needs the server to limit: give --watch-pid, --watch-cgroup or --watch-docker"),
        _ => anyhow::bail!(
            "--cpus limits one server: watch exactly one target (got {})",
            watch.len()
        ),
    }
}

/// `DOCKER_HOST` (unix://) or the default socket.
fn docker_socket() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(str::to_string))
        .unwrap_or_else(|| DEFAULT_DOCKER_SOCKET.to_string())
}

/// Runs the capacity command; returns the exit code (0 done, 1 INSUFFICIENT
/// or the target fails its SLOs, 2 nothing could connect, 130 interrupted).
pub async fn capacity(
    plan: &Plan,
    mut opts: CapacityOptions,
    reports: &[PathBuf],
    interrupt: CancellationToken,
) -> anyhow::Result<u8> {
    if let Some(bad) = opts.cpus.iter().find(|c| !(c.is_finite() && **c > 0.0)) {
        anyhow::bail!("--cpus: {bad} is not a CPU allotment (write e.g. --cpus 0.5,1,2)");
    }
    if let Target::Url(u) = &plan.target {
        preflight(u, plan.timeouts.hello).await?;
    }
    let rig_opts = RigOptions {
        mock: MockPlacement::Child,
        watch: opts.watch.clone(),
        outputs: OutputOptions {
            reports: Vec::new(),
            prometheus: opts.prometheus.clone(),
            dashboard: opts.dashboard.clone(),
            slos: opts.slos.clone(),
        },
        progress: opts.live,
    };
    let mut rig = Rig::start(plan, rig_opts).await?;
    // A mock child is watched by its pid unless told otherwise.
    opts.watch = rig.watch_options().clone();
    let url = rig.url.clone();
    let slos: Vec<String> = opts.slos.iter().map(|s| s.describe()).collect();
    eprintln!(
        "Capacity search against {url}: {} load, {} s per stage (at least {} turns each), SLOs: {}",
        plan.shape.as_str(),
        opts.stage_duration.as_secs_f64(),
        opts.min_turns,
        slos.join(", ")
    );
    let started_at = SystemTime::now();
    let t0 = std::time::Instant::now();
    let delays = super::stand_ins::sweep_delays(rig.stand_ins(), &plan.providers.llm_delay_sweep);
    let mut runs = Vec::with_capacity(delays.len());
    for (i, delay) in delays.iter().enumerate() {
        super::stand_ins::before_search(rig.stand_ins(), i, delays.len(), *delay);
        let out = search(&mut rig, plan, &opts, interrupt.clone()).await;
        let stop = out.as_ref().map_or(true, |o| o.interrupted);
        runs.push((*delay, out, rig.stand_ins().map(ProvidersServer::report)));
        if stop {
            break;
        }
    }
    let (interrupted, valid) = match runs.first() {
        Some((_, Ok(o), _)) => (o.interrupted, Some(o.capacity.stages.iter().all(|s| s.generator_valid))),
        _ => (true, None),
    };
    rig.finish(interrupted, valid).await;
    let (out, providers, sweep) = super::stand_ins::first_and_sweep(runs)?;
    let stand_in = StandIns { providers, sweep };
    finish_report(plan, &url, &opts, out, stand_in, reports, (started_at, t0))
}

/// What the AI provider stand-ins saw (`--providers`, `--llm-delay`).
struct StandIns {
    providers: Option<crate::providers::ProvidersReport>,
    sweep: Vec<super::stand_ins::SweepPoint<CapacitySection>>,
}

/// Fails at once (exit 2) when nothing listens at the URL's host and port,
/// instead of running a whole stage of refused connections.
async fn preflight(url: &str, timeout: std::time::Duration) -> anyhow::Result<()> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
    let addr = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => anyhow::bail!("no device could connect to {url}: {addr}: {e}"),
        Err(_) => anyhow::bail!("no device could connect to {url}: {addr}: no answer within {timeout:?}"),
    }
}

/// One search, or one per `--cpus` allotment with the limit restored after.
async fn search(
    rig: &mut Rig,
    plan: &Plan,
    opts: &CapacityOptions,
    interrupt: CancellationToken,
) -> anyhow::Result<CapacityOutcome> {
    let progress = |s: &crate::capacity::section::CapacityStage| eprintln!("{}", text::stage_line(s));
    let say = |l: &str| eprintln!("{l}");
    let opts = &crate::capacity::probe::probed_start(rig, plan, opts, interrupt.clone(), say).await?;
    if opts.cpus.is_empty() {
        return search_on(rig, plan, opts, interrupt, progress).await;
    }
    let target = limit_target(&opts.watch.targets)?;
    let mut limiter = CpuLimiter::prepare(&target)
        .await
        .map_err(|e| anyhow::anyhow!("cannot limit the server's CPU: {e}"))?;
    eprintln!("CPU limits via {}", limiter.method());
    if let Some(why) = &limiter.fallback_reason {
        eprintln!("note: {why}");
    }
    let out = run_allotments(rig, plan, opts, &mut limiter, interrupt, progress, |l| eprintln!("{l}")).await;
    match limiter.restore().await {
        Ok(done) => eprintln!("CPU limit restored: {done}"),
        Err(e) => eprintln!("warning: could not restore the server's CPU limit: {e}"),
    }
    out
}

fn finish_report(
    plan: &Plan,
    url: &str,
    opts: &CapacityOptions,
    out: CapacityOutcome,
    stand_ins: StandIns,
    reports: &[PathBuf],
    (started_at, t0): (SystemTime, std::time::Instant),
) -> anyhow::Result<u8> {
    let report = CapacityReport {
        schema_version: SCHEMA_VERSION,
        tool: Tool::this(),
        run: CapacityRun {
            target_url: url.to_string(),
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
        providers: stand_ins.providers,
        llm_delay_sweep: stand_ins.sweep,
    };
    let mut body = text::render(&report);
    if let Some(p) = &report.providers {
        crate::report::stand_ins::providers_lines(&mut body, p);
    }
    body.push_str(&super::stand_ins::sweep_lines(&report.llm_delay_sweep));
    print!("\n{body}");
    let mut failed_writes = 0;
    for path in reports {
        match write_report(&report, &body, path) {
            Ok(()) => eprintln!("report written to {}", path.display()),
            Err(e) => {
                failed_writes += 1;
                eprintln!("error: cannot write report {}: {e:#}", path.display());
            }
        }
    }
    Ok(exit_code(
        &report,
        opts.target_speakers,
        out.nothing_connected,
        failed_writes,
    ))
}

/// By extension: `.txt`/`.md` → the console text; `.json`, `.html`,
/// `.csv` (one row per stage) → the report's writers.
fn write_report(report: &CapacityReport, text: &str, path: &Path) -> anyhow::Result<()> {
    use crate::report::format::Format;
    match Format::of(path)? {
        Format::Text | Format::Markdown => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(path, text)?;
            Ok(())
        }
        _ => crate::report::format::write_value(&serde_json::to_value(report)?, path),
    }
}

/// The exit-code table (see [`capacity`]).
fn exit_code(r: &CapacityReport, target: Option<u32>, nothing_connected: bool, failed_writes: usize) -> u8 {
    if r.run.interrupted {
        return super::EXIT_INTERRUPTED as u8;
    }
    if nothing_connected {
        eprintln!("error: no device could connect to {}", r.run.target_url);
        return EXIT_ERROR;
    }
    if failed_writes > 0 {
        return EXIT_ERROR;
    }
    let verdict = r.sizing.as_ref().and_then(|s| s.verdict);
    let target_fails = verdict.is_none() && target.is_some_and(|t| r.capacity.max_speakers.is_none_or(|k| k < t));
    if verdict == Some(Verdict::Insufficient) || target_fails {
        1
    } else {
        0
    }
}
