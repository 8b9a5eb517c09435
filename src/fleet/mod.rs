//! Running a fleet: resolve each group's clips, start the collector, let the
//! [`driver`] spawn devices on the ramp and drive conversations (each device
//! on its own, a closed-loop step plan, or open arrivals), end the run, and
//! hand back the collector's metrics and the generator's self-check.
//!
//! Large runs: [`shard`] splits one run over processes or machines, and
//! [`source_addrs`] spreads a big loopback fleet over 127.0.0.x addresses.
//!
//! Two cancellation tokens: `no_new_turns` (the run is over: finish what you
//! are doing) and `cancel` (stop now: grace over or Ctrl-C; turns cut short
//! are `cancelled`, never `failed`).

pub mod arrivals;
mod driver;
pub mod generator;
pub mod limits;
mod ramp;
mod shape;
pub mod shard;

use crate::audio::ClipSet;
use crate::config::Plan;
use crate::device::ota::OtaClient;
use crate::device::transcript::TranscriptCheck;
use crate::device::{DeviceSettings, GroupRun};
use crate::metrics::{Collector, Metrics, Snapshot};
use crate::record::RecordRule;
use generator::{GeneratorProbe, GeneratorReport, ShardReport};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
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
    #[error(transparent)]
    Tls(#[from] crate::device::tls::TlsError),
    #[error("OTA client: {0}")]
    Ota(String),
}

/// Test-only ways to disturb a run (never set by the CLI).
#[derive(Clone, Copy, Debug, Default)]
pub struct Hooks {
    /// Block the generator's runtime thread for `.0` every `.1`, to prove
    /// the self-check notices a starved generator.
    pub starve: Option<(Duration, Duration)>,
}

/// Who else watches the run besides the progress display: sinks for every
/// finished turn (the streamed CSV, the latency series) and whether each
/// snapshot carries the metrics so far (Prometheus, the web dashboard).
#[derive(Default)]
pub struct Observers {
    pub turn_sinks: Vec<Box<dyn crate::metrics::TurnSink>>,
    pub share_metrics: bool,
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
    run_fleet_observed(plan, url, clips, interrupt, snapshots, hooks, Observers::default()).await
}

/// [`run_fleet_with`], handing every finished turn to `observers` too.
pub async fn run_fleet_observed(
    plan: &Plan,
    url: &str,
    clips: &ClipSet,
    interrupt: CancellationToken,
    snapshots: watch::Sender<Snapshot>,
    hooks: Hooks,
    observers: Observers,
) -> Result<RunOutcome, FleetError> {
    let groups = plan
        .groups
        .iter()
        .map(|g| {
            let mut picked = clips.select(&g.clips)?;
            if let Some(pause) = g.pause {
                picked = picked
                    .iter()
                    .map(|c| Arc::new(c.with_pause(pause, &clips.silence)))
                    .collect();
            }
            Ok(Arc::new(GroupRun {
                plan: g.clone(),
                clips: picked,
            }))
        })
        .collect::<Result<Vec<_>, FleetError>>()?;
    let settings = Arc::new(DeviceSettings {
        url: url.to_string(),
        protocol_version: plan.protocol_version,
        timeouts: plan.timeouts,
        silence: clips.silence.clone(),
        playback: plan.playback,
        seed: plan.seed,
        record_all: plan.record.iter().any(|r| matches!(r, RecordRule::Worst(_))),
        record_devices: plan
            .record
            .iter()
            .filter_map(|r| match r {
                RecordRule::Device(id) => Some(id.to_lowercase()),
                RecordRule::Worst(_) => None,
            })
            .collect(),
        transcript_check: plan
            .transcript_check
            .max_cer(plan.target == crate::config::Target::BuiltInMock && plan.audio_dir.is_none())
            .map(|max_cer| TranscriptCheck {
                max_cer,
                book: clips
                    .clips
                    .iter()
                    .map(|c| (c.name.clone(), c.transcript.clone()))
                    .collect(),
            }),
        tls: if url.starts_with("wss://") {
            Some(crate::device::tls::client_config(&plan.tls)?)
        } else if plan.ota.is_some() {
            // The OTA answer may name a wss:// URL; without usable TLS
            // settings such a device fails to connect, with the reason.
            crate::device::tls::client_config(&plan.tls).ok()
        } else {
            None
        },
        ramp_over: AtomicBool::new(false),
        source_addrs: source_addrs(plan, url),
        ota: match &plan.ota {
            Some(u) => {
                let tls = match u.starts_with("https://") {
                    true => Some(crate::device::tls::client_config(&plan.tls)?),
                    false => None,
                };
                Some(OtaClient::new(u, tls.as_deref()).map_err(|e| FleetError::Ota(e.to_string()))?)
            }
            None => None,
        },
    });
    if let Some(w) = limits::open_files_warning(u64::from(plan.shard.share_u32(plan.devices))) {
        tracing::warn!("{w}");
        eprintln!("warning: {w}");
    }
    let (mut collector, events) = Collector::new(plan.record.clone());
    collector.share_metrics(observers.share_metrics);
    for sink in observers.turn_sinks {
        collector.add_turn_sink(sink);
    }
    let collecting = tokio::spawn(collector.run(snapshots));
    let probe = GeneratorProbe::start();
    let starver = hooks.starve.map(|(block, every)| tokio::spawn(starve(block, every)));
    let started_at = SystemTime::now();
    let start = Instant::now();
    let driven = driver::Driver::new(plan, settings, groups, events, interrupt)
        .run()
        .await;
    if let Some(s) = starver {
        s.abort();
    }
    let metrics = collecting.await.unwrap_or_default();
    log_failures(&metrics);
    let mut generator = probe.finish(&metrics, driven.ramp);
    if !plan.shard.is_whole() {
        generator.shard = Some(ShardReport {
            index: plan.shard.index,
            count: plan.shard.count,
            devices: plan.shard.share_u32(plan.devices),
        });
    }
    Ok(RunOutcome {
        metrics,
        generator,
        started_at,
        duration: start.elapsed(),
        interrupted: driven.interrupted,
    })
}

/// Devices per source address past which a loopback fleet is spread over
/// several 127.0.0.x addresses (`connect()` slows down as one address's
/// ephemeral ports fill up).
pub const DEVICES_PER_SOURCE: u32 = 4000;

/// Where devices connect from: the plan's `--source-addr` list, or for a
/// large fleet against an IPv4 loopback address, 127.0.0.1, 127.0.0.2, …
/// (one per [`DEVICES_PER_SOURCE`] devices); otherwise the system picks.
pub fn source_addrs(plan: &Plan, url: &str) -> Vec<IpAddr> {
    if !plan.source_addrs.is_empty() {
        return plan.source_addrs.clone();
    }
    let devices = plan.shard.share_u32(plan.devices);
    let loopback = url
        .parse::<tokio_tungstenite::tungstenite::http::Uri>()
        .ok()
        .and_then(|u| u.host().and_then(|h| h.parse::<IpAddr>().ok()))
        .is_some_and(|ip| ip.is_ipv4() && ip.is_loopback());
    let n = devices.div_ceil(DEVICES_PER_SOURCE).min(250);
    if !loopback || n < 2 {
        return Vec::new();
    }
    (1..=n as u8).map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i))).collect()
}

/// Diagnostics events for the run's failures by kind (`-v`, `RUST_LOG=info`).
fn log_failures(m: &Metrics) {
    for (kind, n) in &m.failures {
        tracing::info!(kind = kind.as_str(), count = n, "turns failed");
    }
    for (kind, n) in &m.connect_failures {
        tracing::info!(
            kind = kind.as_str(),
            count = n,
            "connections failed outside a conversation"
        );
    }
}

/// The starvation hook: hogs the runtime thread it runs on.
async fn starve(block: Duration, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        std::thread::sleep(block);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(devices: u32) -> Plan {
        let text = format!("devices = {devices}\n");
        let raw = crate::config::FleetFile::parse(&text, "t.toml").unwrap();
        Plan::from_file(raw, "t.toml", &Default::default()).unwrap()
    }

    #[test]
    fn big_loopback_fleets_connect_from_one_127_address_per_4000_devices() {
        let url = "ws://127.0.0.1:8000/xiaozhi/v1/";
        assert!(source_addrs(&plan(4000), url).is_empty());
        let spread = source_addrs(&plan(9000), url);
        let expect: Vec<IpAddr> = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(spread, expect);
        // A shard counts its own devices only.
        let mut half = plan(9000);
        half.shard = shard::Shard { index: 1, count: 2 };
        assert_eq!(source_addrs(&half, url).len(), 2);
        // Not loopback (or not IPv4): the system picks.
        assert!(source_addrs(&plan(9000), "ws://10.0.0.5:8000/").is_empty());
        assert!(source_addrs(&plan(9000), "ws://[::1]:8000/").is_empty());
        // A --source-addr list wins.
        let mut listed = plan(9000);
        listed.source_addrs = vec!["10.1.2.3".parse().unwrap()];
        assert_eq!(source_addrs(&listed, url), listed.source_addrs);
    }
}
