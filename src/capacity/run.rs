//! Running a capacity search against a server: each stage is a fresh
//! closed-loop run of N concurrent speakers (ramp, reset, measure window),
//! judged by the SLOs; the pure [`Search`] picks the next N. The server is
//! watched throughout, each stage gets its measure window's CPU and memory,
//! and the sizing verdict is computed from all stages.

use super::search::{Search, SearchConfig, SearchResult, StageOutcome, Step};
use super::sizing::{self, Sizing, SizingInput, StageServer, Tier};
use super::slo::{Slo, SloResult, StageMeasure, all_passed, check_all};
use crate::config::{Load, Plan, StagePlan};
use crate::fleet::generator::GeneratorReport;
use crate::fleet::{load_clips, run_fleet};
use crate::metrics::{Metrics, Percentiles, Snapshot};
use crate::report::{PlaybackSection, Turns, latency_of, playback_of, turns_of};
use crate::server::series::{ServerReport, ServerWatch, WatchOptions};
use crate::server::summary::ServerSummary;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Peak memory at or above this share of the limit stops the search.
pub const MEMORY_STOP_SHARE: f64 = 0.9;

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
}

/// One stage as the report lists it.
#[derive(Clone, Debug, Serialize)]
pub struct CapacityStage {
    pub speakers: u32,
    pub passed: bool,
    pub slos: Vec<SloResult>,
    pub turns: Turns,
    pub latency_ms: BTreeMap<String, Percentiles>,
    pub playback: PlaybackSection,
    pub server: Option<ServerSummary>,
    pub generator_valid: bool,
    /// Why the generator's own figures were not trustworthy (if so).
    pub generator_invalid_reasons: Vec<String>,
}

/// The report's `capacity` section.
#[derive(Clone, Debug, Serialize)]
pub struct CapacitySection {
    pub max_speakers: u32,
    pub slos: Vec<String>,
    pub stop_reason: String,
    pub stages: Vec<CapacityStage>,
}

/// Everything a capacity run produced.
#[derive(Debug)]
pub struct CapacityOutcome {
    pub capacity: CapacitySection,
    pub result: SearchResult,
    pub sizing: Option<Sizing>,
    pub server: Option<ServerReport>,
    pub interrupted: bool,
}

/// The plan for one stage: `speakers` held for `duration`, enough devices.
pub fn stage_plan(plan: &Plan, speakers: u32, duration: Duration) -> Plan {
    let mut p = plan.clone();
    p.load = Load::Stages(vec![StagePlan {
        name: format!("{speakers} speakers"),
        speakers,
        duration,
    }]);
    let talkers: u32 = p.groups.iter().filter(|g| g.talks()).map(|g| g.count).sum();
    if talkers < speakers
        && let Some(g) = p.groups.iter_mut().find(|g| g.talks())
    {
        g.count += speakers - talkers;
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

/// Runs one stage of `speakers` against `url`; returns the stage window's
/// metrics (the whole run's if no window closed) and generator validity.
pub async fn run_stage(
    plan: &Plan,
    url: &str,
    speakers: u32,
    duration: Duration,
    interrupt: CancellationToken,
) -> anyhow::Result<(Metrics, f64, f64, GeneratorReport)> {
    let p = stage_plan(plan, speakers, duration);
    let clips = load_clips(&p)?;
    let (tx, _rx) = watch::channel(Snapshot::default());
    let out = run_fleet(&p, url, &clips, interrupt, tx).await?;
    let generator = out.generator;
    let mut m = out.metrics;
    Ok(match m.stages.pop() {
        Some(st) => (st.metrics, st.started_at_s, st.duration_s, generator),
        None => (m, 0.0, out.duration.as_secs_f64(), generator),
    })
}

/// Searches for the most concurrent speakers within the SLOs.
pub async fn run_capacity(
    plan: &Plan,
    url: &str,
    opts: &CapacityOptions,
    interrupt: CancellationToken,
    progress: impl Fn(&CapacityStage),
) -> anyhow::Result<CapacityOutcome> {
    let watching = !opts.watch.targets.is_empty();
    let mut server_watch = watching.then(|| ServerWatch::start(opts.watch.clone()));
    let t0 = Instant::now();
    let mut search = Search::new(opts.search);
    let mut stages = Vec::new();
    let mut windows = Vec::new();
    let mut interrupted = false;
    while let Step::Run(n) = search.next() {
        if interrupt.is_cancelled() {
            interrupted = true;
            break;
        }
        let offset = t0.elapsed().as_secs_f64();
        let (m, from, dur, generator) = run_stage(plan, url, n, opts.stage_duration, interrupt.clone()).await?;
        let valid = generator.valid;
        let results = check_all(&opts.slos, &measure_of(&m));
        let passed = all_passed(&results) && valid;
        let window = (offset + from, offset + from + dur);
        windows.push((window.0, window.1, m.completed, dur));
        let server = server_watch.as_mut().map(|w| {
            let r = w.drain();
            (r.window(window.0, window.1), r.allotment.memory_mb)
        });
        let memory_near_limit = server
            .as_ref()
            .is_some_and(|(w, limit)| limit.is_some_and(|l| w.memory_mb.max >= MEMORY_STOP_SHARE * l));
        let stage = CapacityStage {
            speakers: n,
            passed,
            slos: results,
            turns: turns_of(&m),
            latency_ms: latency_of(&m),
            playback: playback_of(&m),
            server: server.map(|(w, _)| w),
            generator_valid: valid,
            generator_invalid_reasons: generator.invalid_reasons,
        };
        progress(&stage);
        stages.push(stage);
        search.record(
            n,
            StageOutcome {
                passed,
                memory_near_limit,
                generator_invalid: !valid,
            },
        );
    }
    let server = match server_watch {
        Some(w) => Some(w.finish().await),
        None => None,
    };
    let result = match search.next() {
        Step::Done(r) => r,
        Step::Run(_) => search_result_so_far(&search),
    };
    finish(plan, opts, stages, windows, server, result, interrupted)
}

fn search_result_so_far(search: &Search) -> SearchResult {
    let best = search
        .history()
        .iter()
        .filter(|(_, o)| o.passed)
        .map(|(n, _)| *n)
        .max()
        .unwrap_or(0);
    SearchResult {
        max_speakers: best,
        stages_run: search.history().len() as u32,
        stop_reason: super::search::StopReason::Converged,
        first_fail: None,
    }
}

/// Attaches server windows, applies the memory stop, and sizes.
fn finish(
    plan: &Plan,
    opts: &CapacityOptions,
    mut stages: Vec<CapacityStage>,
    windows: Vec<(f64, f64, u64, f64)>,
    server: Option<ServerReport>,
    result: SearchResult,
    interrupted: bool,
) -> anyhow::Result<CapacityOutcome> {
    let mut inputs = Vec::new();
    for (stage, (from, to, turns, dur)) in stages.iter_mut().zip(&windows) {
        let Some(srv) = &server else { continue };
        let w = srv.window(*from, *to);
        if !stage.generator_valid {
            // The generator could not keep pace: this stage says nothing
            // about the server, so it does not enter the sizing.
            stage.server = Some(w);
            continue;
        }
        let devices = stage_plan(plan, stage.speakers, opts.stage_duration).devices;
        inputs.push(StageServer::from_window(
            stage.speakers,
            devices,
            stage.passed,
            &w,
            *turns,
            *dur,
        ));
        stage.server = Some(w);
    }
    let sizing = match &server {
        Some(srv) if !inputs.is_empty() => Some(sizing::size(&SizingInput {
            stages: inputs,
            allotment: srv.allotment,
            target_speakers: opts.target_speakers,
            tiers: opts.tiers.clone(),
            slos: opts.slos.clone(),
            ..SizingInput::default()
        })?),
        _ => None,
    };
    let stop_reason = match result.stop_reason {
        super::search::StopReason::Converged => "converged",
        super::search::StopReason::MemoryNearLimit => "memory_near_limit",
        super::search::StopReason::GeneratorInvalid => "generator_invalid",
        super::search::StopReason::StartFailed => "start_failed",
        super::search::StopReason::HitMaxSpeakers => "hit_max_speakers",
    }
    .to_string();
    Ok(CapacityOutcome {
        capacity: CapacitySection {
            max_speakers: result.max_speakers,
            slos: opts.slos.iter().map(|s| s.to_string()).collect(),
            stop_reason,
            stages,
        },
        result,
        sizing,
        server,
        interrupted,
    })
}
