//! Running a fleet: resolve clips, start the collector, spawn devices on the
//! ramp schedule, end the run (turn budget, or duration then a grace period
//! for turns in progress), and hand back the collector's metrics.
//!
//! Two cancellation tokens: `no_new_turns` (the duration is over: finish
//! what you are doing) and `cancel` (stop now: grace over or Ctrl-C; turns
//! cut short are `cancelled`, never `failed`).

use crate::audio::ClipSet;
use crate::config::{Plan, Stop};
use crate::device::{DeviceContext, DeviceSettings, identity_for, rng_for, run_device};
use crate::metrics::{Collector, Metrics, Snapshot};
use crate::record::RecordRule;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What a finished run produced.
#[derive(Debug)]
pub struct RunOutcome {
    pub metrics: Metrics,
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
    let selected = clips.select(&plan.clips)?;
    let settings = Arc::new(DeviceSettings {
        url: url.to_string(),
        protocol_version: plan.protocol_version,
        timeouts: plan.timeouts,
        think_time: plan.think_time,
        turns: match plan.stop {
            Stop::Turns(n) => Some(n),
            Stop::Duration(_) => None,
        },
        clips: selected,
        silence: clips.silence.clone(),
        playback: plan.playback,
        record_all: plan.record.iter().any(|r| matches!(r, RecordRule::Worst(_))),
        record_devices: plan
            .record
            .iter()
            .filter_map(|r| match r {
                RecordRule::Device(id) => Some(id.clone()),
                RecordRule::Worst(_) => None,
            })
            .collect(),
    });
    let (collector, events) = Collector::new(plan.record.clone());
    let collecting = tokio::spawn(collector.run(snapshots));
    let no_new_turns = CancellationToken::new();
    let cancel = CancellationToken::new();
    let started_at = SystemTime::now();
    let start = Instant::now();
    let end_at = match plan.stop {
        Stop::Duration(d) => Some(start + d),
        Stop::Turns(_) => None,
    };
    let mut devices = JoinSet::new();
    let spawner = async {
        for index in 0..plan.devices {
            let due = start + Duration::from_secs_f64(index as f64 / plan.ramp_per_sec);
            tokio::time::sleep_until(due).await;
            devices.spawn(run_device(DeviceContext {
                index,
                identity: identity_for(plan.seed, index, plan.token.clone()),
                rng: rng_for(plan.seed, index),
                settings: settings.clone(),
                events: events.clone(),
                no_new_turns: no_new_turns.clone(),
                cancel: cancel.clone(),
            }));
        }
    };
    let interrupted = tokio::select! {
        _ = spawner => false,
        _ = interrupt.cancelled() => true,
        _ = until(end_at) => false,
    };
    drop(events);
    let interrupted = interrupted
        || wait_devices(
            &mut devices,
            end_at,
            plan.timeouts.grace,
            &no_new_turns,
            &cancel,
            &interrupt,
        )
        .await;
    let metrics = collecting.await.unwrap_or_default();
    Ok(RunOutcome {
        metrics,
        started_at,
        duration: start.elapsed(),
        interrupted,
    })
}

async fn until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Waits for every device, applying the run deadline and grace period.
/// Returns true when interrupted.
async fn wait_devices(
    devices: &mut JoinSet<()>,
    end_at: Option<Instant>,
    grace: Duration,
    no_new_turns: &CancellationToken,
    cancel: &CancellationToken,
    interrupt: &CancellationToken,
) -> bool {
    let mut hard_stop = None;
    let mut interrupted = interrupt.is_cancelled();
    if interrupted {
        no_new_turns.cancel();
        cancel.cancel();
    }
    loop {
        tokio::select! {
            next = devices.join_next() => if next.is_none() { break },
            _ = until(end_at.filter(|_| !no_new_turns.is_cancelled())) => {
                no_new_turns.cancel();
                hard_stop = Some(Instant::now() + grace);
            }
            _ = until(hard_stop.filter(|_| !cancel.is_cancelled())) => cancel.cancel(),
            _ = interrupt.cancelled(), if !interrupted => {
                interrupted = true;
                no_new_turns.cancel();
                cancel.cancel();
            }
        }
    }
    interrupted
}
