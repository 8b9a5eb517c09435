//! Running a capacity search against a server: each stage is a fresh
//! closed-loop run of N concurrent speakers (ramp, reset, measure window),
//! judged by the SLOs; the pure [`Search`] picks the next N. The server is
//! watched throughout, each stage gets its measure window's CPU and memory,
//! and the sizing verdict is computed from all stages.
//!
//! A stage needs `min_turns` finished turns in its window: the driver
//! extends a short window (up to 3×); a stage still short is `inconclusive`
//! and left out of the knee. Ctrl-C discards the stage in progress and ends
//! the search with the knee from the completed stages.

use super::search::{Search, SearchConfig, SearchResult, StageOutcome, Step, StopReason};
use super::section::{CapacitySection, CapacityStage, StageStatus};
use super::sizing::{self, Sizing, SizingInput, StageServer, Tier};
use super::slo::{Slo, SloResult, StageMeasure, all_passed, check_all};
use crate::config::{Load, Plan, Shape, StagePlan};
use crate::fleet::generator::GeneratorReport;
use crate::metrics::Metrics;
use crate::report::feed::{StageInfo, StagePoint};
use crate::report::{latency_of, playback_of, turns_of};
use crate::rig::Rig;
use crate::watch::limit::quota::cores_label;
use crate::watch::series::{ServerReport, WatchOptions};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Peak memory at or above this share of the limit stops the search.
pub const MEMORY_STOP_SHARE: f64 = 0.9;
/// Default `--min-turns`.
pub const DEFAULT_MIN_TURNS: u64 = 20;

/// How to search.
#[derive(Clone, Debug)]
pub struct CapacityOptions {
    pub slos: Vec<Slo>,
    pub search: SearchConfig,
    /// Measure window per stage.
    pub stage_duration: Duration,
    pub target_speakers: Option<u32>,
    pub tiers: Vec<Tier>,
    pub watch: WatchOptions,
    /// Finished turns a stage needs in its window (0 = any).
    pub min_turns: u64,
    /// `--cpus`: allotments to search at (empty: the server as it is).
    pub cpus: Vec<f64>,
    /// Show a live progress line during each stage (the rig's `progress`).
    pub live: bool,
    /// `--prometheus ADDR`: live `/metrics` across the stages.
    pub prometheus: Option<String>,
    /// `--dashboard ADDR`: the live page across the stages.
    pub dashboard: Option<String>,
}

impl CapacityOptions {
    /// Options with the defaults of the command line.
    pub fn new(slos: Vec<Slo>, search: SearchConfig, stage_duration: Duration) -> CapacityOptions {
        CapacityOptions {
            slos,
            search,
            stage_duration,
            target_speakers: None,
            tiers: sizing::default_tiers(),
            watch: WatchOptions::default(),
            min_turns: DEFAULT_MIN_TURNS,
            cpus: Vec::new(),
            live: false,
            prometheus: None,
            dashboard: None,
        }
    }
}

/// Everything a capacity run produced.
#[derive(Debug)]
pub struct CapacityOutcome {
    pub capacity: CapacitySection,
    pub result: SearchResult,
    pub sizing: Option<Sizing>,
    pub server: Option<ServerReport>,
    pub interrupted: bool,
    /// No device could connect at the first stage (the server is down).
    pub nothing_connected: bool,
    /// The sizing inputs (conclusive, generator-valid stages).
    pub inputs: Vec<StageServer>,
}

/// The plan for one stage: `speakers` held for `duration`, enough devices
/// (twice as many for poisson arrivals, which may pile up).
pub fn stage_plan(plan: &Plan, speakers: u32, duration: Duration, min_turns: u64, label: &str) -> Plan {
    let mut p = plan.clone();
    p.load = Load::Stages(vec![StagePlan {
        name: label.to_string(),
        speakers,
        duration,
        min_turns,
    }]);
    let want = match plan.shape {
        Shape::Poisson => speakers.saturating_mul(2),
        _ => speakers,
    };
    let talkers: u32 = p.groups.iter().filter(|g| g.talks()).map(|g| g.count).sum();
    if talkers < want
        && let Some(g) = p.groups.iter_mut().find(|g| g.talks())
    {
        g.count += want - talkers;
    }
    p.devices = p.groups.iter().map(|g| g.count).sum();
    p.total_turns = None;
    p
}

/// What one stage measured, for the SLOs.
pub fn measure_of(m: &Metrics) -> StageMeasure {
    let t = turns_of(m);
    StageMeasure {
        latency_ms: latency_of(m),
        stutter_ratio: playback_of(m).stutter_ratio,
        failed_ratio: t.failed_ratio,
        turns_completed: m.completed,
    }
}

/// One stage's run.
#[derive(Debug)]
pub struct StageRun {
    /// The measure window's metrics (the whole run's if no window closed).
    pub window: Metrics,
    pub started_at_s: f64,
    pub duration_s: f64,
    pub generator: GeneratorReport,
    /// Connections over the whole stage run.
    pub connections: u64,
    pub interrupted: bool,
}

/// Runs one stage of `speakers` against `url` (nothing else assembled).
pub async fn run_stage(
    plan: &Plan,
    url: &str,
    speakers: u32,
    duration: Duration,
    interrupt: CancellationToken,
) -> anyhow::Result<StageRun> {
    let label = format!("{speakers} speakers");
    let mut rig = Rig::at_url(plan, url).await?;
    let run = run_stage_on(&mut rig, plan, speakers, (duration, 0), &label, interrupt).await;
    rig.finish(false, None).await;
    run
}

/// One stage on the rig: `speakers` held for `duration` with a minimum of
/// turns, named `label`.
pub async fn run_stage_on(
    rig: &mut Rig,
    plan: &Plan,
    speakers: u32,
    (duration, min_turns): (Duration, u64),
    label: &str,
    interrupt: CancellationToken,
) -> anyhow::Result<StageRun> {
    let p = stage_plan(plan, speakers, duration, min_turns, label);
    let out = rig.run(&p, interrupt).await?;
    let connections = out.metrics.connections;
    let mut m = out.metrics;
    let (window, started_at_s, duration_s) = match m.stages.pop() {
        Some(st) => (st.metrics, st.started_at_s, st.duration_s),
        None => (m, 0.0, out.duration.as_secs_f64()),
    };
    Ok(StageRun {
        window,
        started_at_s,
        duration_s,
        generator: out.generator,
        connections,
        interrupted: out.interrupted,
    })
}

/// The judgement of one finished stage.
fn judge_stage(opts: &CapacityOptions, run: &StageRun) -> (StageStatus, Vec<SloResult>, Option<String>) {
    let results = check_all(&opts.slos, &measure_of(&run.window));
    let ended = run.window.completed + run.window.failed;
    if !run.generator.valid {
        let why = "the load generator could not keep real-time pace".to_string();
        return (StageStatus::Inconclusive, results, Some(why));
    }
    if ended < opts.min_turns {
        let why = format!(
            "only {ended} turns finished in {:.0} s (need {}; the window was extended up to 3×)",
            run.duration_s, opts.min_turns
        );
        return (StageStatus::Inconclusive, results, Some(why));
    }
    let status = if all_passed(&results) {
        StageStatus::Pass
    } else {
        StageStatus::Fail
    };
    (status, results, None)
}

/// Searches for the most concurrent speakers within the SLOs against `url`
/// (nothing else assembled; the server watched as `opts.watch` says).
pub async fn run_capacity(
    plan: &Plan,
    url: &str,
    opts: &CapacityOptions,
    interrupt: CancellationToken,
    progress: impl Fn(&CapacityStage),
) -> anyhow::Result<CapacityOutcome> {
    let mut rig = Rig::at_url(plan, url).await?;
    let out = search_on(&mut rig, plan, opts, interrupt, progress).await;
    let interrupted = out.as_ref().map_or(true, |o| o.interrupted);
    rig.finish(interrupted, None).await;
    out
}

/// Searches for the most concurrent speakers within the SLOs on the rig,
/// watching the server as `opts.watch` says for the search's length, and
/// publishing each stage to the rig's live outputs.
pub async fn search_on(
    rig: &mut Rig,
    plan: &Plan,
    opts: &CapacityOptions,
    interrupt: CancellationToken,
    progress: impl Fn(&CapacityStage),
) -> anyhow::Result<CapacityOutcome> {
    rig.begin_watch(opts.watch.clone());
    let t0 = Instant::now();
    let mut search = Search::new(opts.search);
    let mut stages = Vec::new();
    let mut windows = Vec::new();
    let (mut interrupted, mut nothing_connected) = (false, false);
    let cpus = opts.watch.allotment.cpu_cores.filter(|_| !opts.cpus.is_empty());
    while let Step::Run(n) = search.next() {
        if interrupt.is_cancelled() {
            interrupted = true;
            break;
        }
        let offset = t0.elapsed().as_secs_f64();
        let label = stage_label(cpus, n, plan.shape);
        rig.set_step(Some(StageInfo {
            index: 0,
            label: label.clone(),
            speakers: n,
            cpus,
            shape: plan.shape.as_str().to_string(),
        }));
        let budget = (opts.stage_duration, opts.min_turns);
        let run = run_stage_on(rig, plan, n, budget, &label, interrupt.clone()).await?;
        if run.interrupted || interrupt.is_cancelled() {
            // The stage in progress is discarded: it was cut short.
            interrupted = true;
            break;
        }
        if run.connections == 0 && search.history().is_empty() {
            nothing_connected = true;
            break;
        }
        let (status, results, reason) = judge_stage(opts, &run);
        let window = (offset + run.started_at_s, offset + run.started_at_s + run.duration_s);
        windows.push((window.0, window.1, run.window.completed, run.duration_s));
        let server = rig.watched(|r| (r.window(window.0, window.1), r.allotment.memory_mb));
        let memory_near_limit = server
            .as_ref()
            .is_some_and(|(w, limit)| limit.is_some_and(|l| w.memory_mb.max >= MEMORY_STOP_SHARE * l));
        let m = &run.window;
        let stage = CapacityStage {
            speakers: n,
            cpus,
            status,
            passed: status == StageStatus::Pass,
            inconclusive_reason: reason,
            measured_s: (run.duration_s * 1000.0).round() / 1000.0,
            extended: run.duration_s > opts.stage_duration.as_secs_f64() + 0.5,
            slos: results,
            turns: turns_of(m),
            latency_ms: latency_of(m),
            playback: playback_of(m),
            server: server.map(|(w, _)| w),
            generator_valid: run.generator.valid,
            generator_invalid_reasons: run.generator.invalid_reasons,
        };
        rig.stage_finished(point_of(&stage));
        progress(&stage);
        stages.push(stage);
        search.record(
            n,
            StageOutcome {
                passed: status == StageStatus::Pass,
                memory_near_limit,
                generator_invalid: !run.generator.valid,
                inconclusive: status == StageStatus::Inconclusive,
            },
        );
    }
    rig.set_step(None);
    let server = rig.end_watch().await;
    let result = match search.next() {
        Step::Done(r) => r,
        Step::Run(_) => search_result_so_far(&search),
    };
    let ended = Ended {
        interrupted,
        nothing_connected,
    };
    finish(plan, opts, stages, windows, server, result, ended)
}

/// A finished stage as the live outputs show it (the stage itself is filled
/// in by the rig from the step in progress).
fn point_of(s: &CapacityStage) -> StagePoint {
    StagePoint {
        stage: StageInfo::default(),
        status: s.status.label().to_lowercase(),
        turns_completed: s.turns.completed,
        turns_failed: s.turns.failed,
        first_audio_p95_ms: s.latency_ms.get("first_audio").filter(|p| p.count > 0).map(|p| p.p95),
        stutter_ratio: s.playback.stutter_ratio,
        server_cpu_p95: s.server.as_ref().filter(|w| w.samples > 0).map(|w| w.cpu_cores.p95),
    }
}

/// The progress label of a stage: allotment, speakers, shape.
fn stage_label(cpus: Option<f64>, n: u32, shape: Shape) -> String {
    match cpus {
        Some(c) => format!("{} · {n} speakers · {}", cores_label(c), shape.as_str()),
        None => format!("{n} speakers · {}", shape.as_str()),
    }
}

fn search_result_so_far(search: &Search) -> SearchResult {
    let passes: Vec<u32> = search
        .history()
        .iter()
        .filter(|(_, o)| o.passed)
        .map(|(n, _)| *n)
        .collect();
    let first_fail = search
        .history()
        .iter()
        .filter(|(_, o)| !o.passed && !o.inconclusive && !o.generator_invalid)
        .map(|(n, _)| *n)
        .min();
    SearchResult {
        max_speakers: passes
            .into_iter()
            .filter(|n| first_fail.is_none_or(|f| *n < f))
            .max()
            .unwrap_or(0),
        stages_run: search.history().len() as u32,
        stop_reason: StopReason::Converged,
        first_fail,
    }
}

/// How the search ended besides its own rule.
struct Ended {
    interrupted: bool,
    nothing_connected: bool,
}

/// Attaches server windows, applies the memory stop, and sizes.
fn finish(
    plan: &Plan,
    opts: &CapacityOptions,
    mut stages: Vec<CapacityStage>,
    windows: Vec<(f64, f64, u64, f64)>,
    server: Option<ServerReport>,
    result: SearchResult,
    ended: Ended,
) -> anyhow::Result<CapacityOutcome> {
    let mut inputs = Vec::new();
    for (stage, (from, to, turns, dur)) in stages.iter_mut().zip(&windows) {
        let Some(srv) = &server else { continue };
        let w = srv.window(*from, *to);
        stage.server = Some(w.clone());
        if stage.status == StageStatus::Inconclusive {
            // Too few turns, or a generator that could not keep pace: this
            // stage says nothing about the server.
            continue;
        }
        let devices = stage_plan(plan, stage.speakers, opts.stage_duration, 0, "").devices;
        inputs.push(StageServer::from_window(
            stage.speakers,
            devices,
            stage.passed,
            &w,
            *turns,
            *dur,
        ));
    }
    let target_devices = opts
        .target_speakers
        .map(|t| stage_plan(plan, t, opts.stage_duration, 0, "").devices);
    let sizing = match &server {
        Some(srv) if !inputs.is_empty() => Some(sizing::size(&SizingInput {
            stages: inputs.clone(),
            allotment: srv.allotment,
            target_speakers: opts.target_speakers,
            tiers: opts.tiers.clone(),
            slos: opts.slos.clone(),
            shape: plan.shape.as_str().to_string(),
            devices_for_target: target_devices,
            ..SizingInput::default()
        })?),
        _ => None,
    };
    let stop_reason = match (ended.interrupted, ended.nothing_connected, result.stop_reason) {
        (true, ..) => "interrupted",
        (_, true, _) => "nothing_connected",
        (_, _, StopReason::Converged) => "converged",
        (_, _, StopReason::MemoryNearLimit) => "memory_near_limit",
        (_, _, StopReason::GeneratorInvalid) => "generator_invalid",
        (_, _, StopReason::StartFailed) => "start_failed",
        (_, _, StopReason::HitMaxSpeakers) => "hit_max_speakers",
        (_, _, StopReason::Inconclusive) => "inconclusive",
    }
    .to_string();
    let completed_stages = stages.iter().filter(|s| s.status != StageStatus::Inconclusive).count() as u32;
    Ok(CapacityOutcome {
        capacity: CapacitySection {
            max_speakers: result.knee(),
            slos: opts.slos.iter().map(|s| s.to_string()).collect(),
            shape: plan.shape.as_str().to_string(),
            min_turns: opts.min_turns,
            stop_reason,
            completed_stages,
            stages,
            allotments: None,
        },
        result,
        sizing,
        server,
        interrupted: ended.interrupted,
        nothing_connected: ended.nothing_connected,
        inputs,
    })
}
