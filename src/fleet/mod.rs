//! Running a fleet: resolve each group's clips, start the collector, let the
//! [`driver`] spawn devices on the ramp and drive conversations (each device
//! on its own, a closed-loop step plan, or open arrivals), end the run, and
//! hand back the collector's metrics and the generator's self-check.
//!
//! Two cancellation tokens: `no_new_turns` (the run is over: finish what you
//! are doing) and `cancel` (stop now: grace over or Ctrl-C; turns cut short
//! are `cancelled`, never `failed`).

pub mod arrivals;
mod driver;
pub mod generator;
mod shape;

use crate::audio::ClipSet;
use crate::config::Plan;
use crate::device::{DeviceSettings, GroupRun};
use crate::metrics::{Collector, Metrics, Snapshot};
use crate::record::RecordRule;
use generator::{GeneratorProbe, GeneratorReport};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What a finished run produced.
#[derive(Debug)]
pub struct RunOutcome {
    pub metrics: Metrics,
    pub generator: GeneratorReport,
    pub started_at: SystemTime,
    pub duration: Duration,
    pub interrupted: bool,
}

/// Errors that stop a run before it starts.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(transparent)]
    Clips(#[from] crate::audio::ClipError),
}

/// Test-only ways to disturb a run (never set by the CLI).
#[derive(Clone, Copy, Debug, Default)]
pub struct Hooks {
    /// Block the generator's runtime thread for `.0` every `.1`, to prove
    /// the self-check notices a starved generator.
    pub starve: Option<(Duration, Duration)>,
}

/// Loads the plan's clips (built in, or from `audio_dir`).
pub fn load_clips(plan: &Plan) -> Result<Arc<ClipSet>, crate::audio::ClipError> {
    match &plan.audio_dir {
        Some(dir) => ClipSet::from_dir(dir),
        None => ClipSet::embedded(),
    }
}

/// Runs the plan's devices against `url`. `interrupt` is Ctrl-C.
pub async fn run_fleet(
    plan: &Plan,
    url: &str,
    clips: &ClipSet,
    interrupt: CancellationToken,
    snapshots: watch::Sender<Snapshot>,
) -> Result<RunOutcome, FleetError> {
    run_fleet_with(plan, url, clips, interrupt, snapshots, Hooks::default()).await
}

/// [`run_fleet`] with test hooks.
pub async fn run_fleet_with(
    plan: &Plan,
    url: &str,
    clips: &ClipSet,
    interrupt: CancellationToken,
    snapshots: watch::Sender<Snapshot>,
    hooks: Hooks,
) -> Result<RunOutcome, FleetError> {
    let groups = plan
        .groups
        .iter()
        .map(|g| {
            Ok(Arc::new(GroupRun {
                plan: g.clone(),
                clips: clips.select(&g.clips)?,
            }))
        })
        .collect::<Result<Vec<_>, FleetError>>()?;
    let settings = Arc::new(DeviceSettings {
        url: url.to_string(),
        protocol_version: plan.protocol_version,
        timeouts: plan.timeouts,
        silence: clips.silence.clone(),
        playback: plan.playback,
        record_all: plan.record.iter().any(|r| matches!(r, RecordRule::Worst(_))),
        record_devices: plan
            .record
            .iter()
            .filter_map(|r| match r {
                RecordRule::Device(id) => Some(id.to_lowercase()),
                RecordRule::Worst(_) => None,
            })
            .collect(),
    });
    let (collector, events) = Collector::new(plan.record.clone());
    let collecting = tokio::spawn(collector.run(snapshots));
    let probe = GeneratorProbe::start();
    let starver = hooks.starve.map(|(block, every)| tokio::spawn(starve(block, every)));
    let started_at = SystemTime::now();
    let start = Instant::now();
    let interrupted = driver::Driver::new(plan, settings, groups, events, interrupt)
        .run()
        .await;
    if let Some(s) = starver {
        s.abort();
    }
    let metrics = collecting.await.unwrap_or_default();
    let generator = probe.finish(&metrics);
    Ok(RunOutcome {
        metrics,
        generator,
        started_at,
        duration: start.elapsed(),
        interrupted,
    })
}

/// The starvation hook: hogs the runtime thread it runs on.
async fn starve(block: Duration, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        std::thread::sleep(block);
    }
}
