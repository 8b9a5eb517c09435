//! The run report as one value: every section of the JSON contract
//! (`schema/report.v1.json`), built from the collector's metrics and the
//! run's context. Writing it out belongs to [`super::format`].

use super::exact;
use super::timeline::LatencyPoint;
use super::verdict::SloVerdict;
use crate::fleet::RunOutcome;
use crate::fleet::generator::GeneratorReport;
pub use crate::metrics::stutter::ByCause;
use crate::metrics::{LATENCY_METRICS, Metrics, Percentiles, ratio};
use serde::Serialize;
use std::collections::BTreeMap;

/// Bump when a field changes meaning or disappears.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool: Tool,
    pub run: RunInfo,
    pub turns: Turns,
    pub latency_ms: BTreeMap<String, Percentiles>,
    pub playback: PlaybackSection,
    pub audio: Audio,
    pub generator: GeneratorReport,
    pub connections: Connections,
    /// Activation (runs with an OTA URL only): devices still waiting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activation: Option<ActivationSection>,
    /// Step plans: each stage's measure window.
    pub stages: Vec<StageReport>,
    /// The fleet second by second, on the same clock as `server.samples`.
    pub series: Vec<crate::metrics::SeriesPoint>,
    /// The watched server (`--watch-*`), on the run's clock.
    pub server: Option<crate::watch::series::ServerReport>,
    /// Files written for `--record` (empty when not recording).
    pub recordings: Vec<crate::record::Recording>,
    /// The AI provider stand-ins (`--providers`): what the server asked of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub providers: Option<crate::providers::ProvidersReport>,
    /// The SLO verdict (`--slo`, `[[slo]]`); absent when none was set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo: Option<SloVerdict>,
    /// Latency, turns and stutter second by second (see [`super::timeline`]).
    pub latency_series: Vec<LatencyPoint>,
    /// Every percentile object above, losslessly (see [`exact`]).
    pub histograms: BTreeMap<String, crate::metrics::LatencyHistogram>,
}

/// What users heard: the modelled decode queue of every device.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PlaybackSection {
    /// Completed turns with audio.
    pub turns: u64,
    /// Turns with at least one underrun of at least one frame (60 ms).
    pub stutter_turns: u64,
    pub stutter_ratio: f64,
    pub underruns: u64,
    pub overflow_drops: u64,
    /// Per-turn totals.
    pub underrun_ms: Percentiles,
    pub sentence_gap_ms: Percentiles,
    /// Per-turn gap time the server caused (frames late at the socket).
    pub server_gap_ms: Percentiles,
    /// Per-turn gap time the network conditions caused.
    pub network_gap_ms: Percentiles,
    /// Per-turn audio the device's full decode queue dropped.
    pub dropped_ms: Percentiles,
    /// Stutter per cause over the run (see [`crate::metrics::stutter`]).
    pub by_cause: ByCause,
}

#[derive(Clone, Debug, Serialize)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

impl Tool {
    /// This program's name and version.
    pub fn this() -> Tool {
        Tool {
            name: env!("CARGO_PKG_NAME").to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct RunInfo {
    pub target_url: String,
    pub mock: bool,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub duration_s: f64,
    pub devices: u32,
    pub seed: u64,
    pub interrupted: bool,
    pub fleet: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Turns {
    pub started: u64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    /// Answers the user cut off (barge-in); not failures.
    pub interrupted: u64,
    pub failed_ratio: f64,
    pub failures: BTreeMap<String, u64>,
    /// The first few distinct details of each failure kind (OS error, HTTP
    /// status, close code and reason, message excerpt).
    pub failure_details: BTreeMap<String, Vec<String>>,
    /// Messages that could not belong to the turn in progress, by type:
    /// counted, never turned into a latency.
    pub stray_messages: BTreeMap<String, u64>,
    /// Downlink UDP datagrams of the turns over MQTT + UDP (absent when no
    /// turn used that transport).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datagrams: Option<crate::protocol::udp::DatagramCounts>,
    /// Answers beyond the first for one utterance (issue #2268's double
    /// answer: the server ended the turn on a pause and answered twice).
    pub extra_answers: u64,
    /// Turns with at least one extra answer.
    pub extra_answer_turns: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Audio {
    pub frames_sent: u64,
    pub frames_received: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Connections {
    /// Connections opened (hello completed).
    pub opened: u64,
    /// Idle connections the server closed (no-voice timeout): not failures.
    pub idle_closed: u64,
    /// Connects that failed outside a conversation, by kind.
    pub failed: BTreeMap<String, u64>,
    /// The first few distinct details of those failures, per kind.
    pub failure_details: BTreeMap<String, Vec<String>>,
    /// Connections that replaced one the server or the network took away.
    pub reconnects: u64,
}

/// Devices whose OTA answer still asked for activation after their
/// activation loop, at the end of the run.
#[derive(Clone, Debug, Serialize)]
pub struct ActivationSection {
    pub waiting: u64,
    /// Their activation codes, in device order.
    pub codes: Vec<String>,
}

/// One stage of a step plan, measured after its ramp-up.
#[derive(Clone, Debug, Serialize)]
pub struct StageReport {
    pub name: String,
    pub speakers: u32,
    pub started_at: f64,
    pub duration_s: f64,
    pub turns: Turns,
    pub latency_ms: BTreeMap<String, Percentiles>,
    pub playback: PlaybackSection,
    /// The server during this window (when watched).
    pub server: Option<crate::watch::summary::ServerSummary>,
    /// This window's percentile objects, losslessly (see [`exact`]).
    pub histograms: BTreeMap<String, crate::metrics::LatencyHistogram>,
}

/// Facts about the run that the metrics do not hold.
pub struct RunContext<'a> {
    pub target_url: &'a str,
    pub mock: bool,
    pub devices: u32,
    pub seed: u64,
    pub fleet: &'a str,
}

pub fn turns_of(m: &Metrics) -> Turns {
    Turns {
        started: m.turns_started,
        completed: m.completed,
        failed: m.failed,
        cancelled: m.cancelled,
        interrupted: m.interrupted,
        failed_ratio: ratio(m.failed, m.turns_started),
        failures: m.failures.iter().map(|(k, v)| (k.as_str().to_string(), *v)).collect(),
        failure_details: details(&m.failure_details),
        stray_messages: m.tally.stray.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        datagrams: m.datagrams,
        extra_answers: m.extra_answers.answers,
        extra_answer_turns: m.extra_answers.turns,
    }
}

fn details(d: &BTreeMap<crate::metrics::FailureKind, Vec<String>>) -> BTreeMap<String, Vec<String>> {
    d.iter().map(|(k, v)| (k.as_str().to_string(), v.clone())).collect()
}

pub fn latency_of(m: &Metrics) -> BTreeMap<String, Percentiles> {
    LATENCY_METRICS
        .iter()
        .map(|name| {
            (
                name.to_string(),
                m.latency.get(name).map(|h| h.percentiles()).unwrap_or_default(),
            )
        })
        .collect()
}

pub fn playback_of(m: &Metrics) -> PlaybackSection {
    let p = &m.playback;
    PlaybackSection {
        turns: p.turns,
        stutter_turns: p.stutter_turns,
        stutter_ratio: ratio(p.stutter_turns, p.turns),
        underruns: p.underruns,
        overflow_drops: p.overflow_drops,
        underrun_ms: p.underrun_ms.percentiles(),
        sentence_gap_ms: p.sentence_gap_ms.percentiles(),
        server_gap_ms: p.causes.server_gap_ms.percentiles(),
        network_gap_ms: p.causes.network_gap_ms.percentiles(),
        dropped_ms: p.causes.dropped_ms.percentiles(),
        by_cause: p.causes.by_cause(),
    }
}

impl Report {
    pub fn build(ctx: &RunContext<'_>, out: &RunOutcome) -> Report {
        let m = &out.metrics;
        Report {
            schema_version: SCHEMA_VERSION,
            tool: Tool::this(),
            run: RunInfo {
                target_url: ctx.target_url.to_string(),
                mock: ctx.mock,
                started_at: humantime::format_rfc3339_seconds(out.started_at).to_string(),
                duration_s: (out.duration.as_secs_f64() * 1000.0).round() / 1000.0,
                devices: ctx.devices,
                seed: ctx.seed,
                interrupted: out.interrupted,
                fleet: ctx.fleet.to_string(),
            },
            turns: turns_of(m),
            latency_ms: latency_of(m),
            playback: playback_of(m),
            audio: Audio {
                frames_sent: m.tally.frames_sent,
                frames_received: m.tally.frames_received,
                bytes_sent: m.tally.bytes_sent,
                bytes_received: m.tally.bytes_received,
            },
            generator: out.generator.clone(),
            connections: Connections {
                opened: m.connections,
                idle_closed: m.idle_closed,
                failed: m
                    .connect_failures
                    .iter()
                    .map(|(k, v)| (k.as_str().to_string(), *v))
                    .collect(),
                failure_details: details(&m.connect_failure_details),
                reconnects: m.reconnects,
            },
            activation: m.activation.checked.then(|| ActivationSection {
                waiting: m.activation.waiting.len() as u64,
                codes: m.activation.codes(),
            }),
            stages: m
                .stages
                .iter()
                .map(|st| StageReport {
                    name: st.name.clone(),
                    speakers: st.speakers,
                    started_at: (st.started_at_s * 1000.0).round() / 1000.0,
                    duration_s: (st.duration_s * 1000.0).round() / 1000.0,
                    turns: turns_of(&st.metrics),
                    latency_ms: latency_of(&st.metrics),
                    playback: playback_of(&st.metrics),
                    server: None,
                    histograms: exact::histograms_of(&st.metrics),
                })
                .collect(),
            series: m.series.clone(),
            server: None,
            recordings: Vec::new(),
            providers: None,
            slo: None,
            latency_series: Vec::new(),
            histograms: {
                let mut h = exact::histograms_of(m);
                h.insert(exact::SEND_LAG.to_string(), m.tally.send_lag.to_histogram());
                h
            },
        }
    }
}
