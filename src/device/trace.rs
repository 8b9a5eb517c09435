//! Capturing a turn's trace for recordings: every received message and
//! frame with its arrival time, fate in the playback model and play start.
//! Does nothing (and allocates nothing) when recording is off for the device.

use crate::audio::playback::TurnPlayback;
use crate::metrics::{TurnOutcome, TurnRecord};
use crate::record::trace::{Fate, Gap, TraceEntry, TraceItem, TurnFailure, TurnTrace};
use bytes::Bytes;
use std::time::Duration;
use tokio::time::Instant;

/// Signed milliseconds from `eos` to `t`.
fn ms_from(eos: Instant, t: Instant) -> f64 {
    if t >= eos {
        (t - eos).as_secs_f64() * 1000.0
    } else {
        -((eos - t).as_secs_f64() * 1000.0)
    }
}

/// Per-connection trace capture.
pub(crate) struct TurnTracer {
    on: bool,
    device_id: String,
    sample_rate: u32,
    device: u32,
    turn: u32,
    clip: String,
    entries: Vec<TraceEntry>,
}

impl TurnTracer {
    pub fn new(on: bool, device_id: String, sample_rate: u32) -> Self {
        TurnTracer {
            on,
            device_id,
            sample_rate,
            device: 0,
            turn: 0,
            clip: String::new(),
            entries: Vec::new(),
        }
    }

    /// The downlink rate from the server hello (for the recording's WAV).
    pub fn set_sample_rate(&mut self, rate: u32) {
        self.sample_rate = rate;
    }

    /// Whether this device records its turns.
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// Starts a new turn's trace.
    pub fn begin(&mut self, device: u32, turn: u32, clip: &str) {
        if self.on {
            self.device = device;
            self.turn = turn;
            self.clip = clip.to_string();
            self.entries.clear();
        }
    }

    pub fn text(&mut self, eos: Instant, now: Instant, text: &str, depth: usize) {
        if self.on {
            self.entries.push(TraceEntry {
                at_ms: ms_from(eos, now),
                queue_depth: depth as u32,
                item: TraceItem::Text(text.to_string()),
            });
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn frame(
        &mut self,
        eos: Instant,
        now: Instant,
        payload: &[u8],
        fate: Fate,
        play_start: Option<Instant>,
        duration: Duration,
        depth: usize,
    ) {
        if self.on {
            self.entries.push(TraceEntry {
                at_ms: ms_from(eos, now),
                queue_depth: depth as u32,
                item: TraceItem::Frame {
                    packet: Bytes::copy_from_slice(payload),
                    fate,
                    play_start_ms: play_start.map(|t| ms_from(eos, t)),
                    duration_ms: duration.as_secs_f64() * 1000.0,
                },
            });
        }
    }

    /// The finished trace, if recording is on.
    pub fn finish(&mut self, r: &TurnRecord, pb: &TurnPlayback, eos: Instant) -> Option<Box<TurnTrace>> {
        if !self.on {
            return None;
        }
        Some(Box::new(TurnTrace {
            device: self.device,
            device_id: self.device_id.clone(),
            conversation: r.conversation,
            turn: self.turn,
            failure: failure_of(r),
            clip: std::mem::take(&mut self.clip),
            sample_rate: self.sample_rate,
            outcome: outcome_name(r.outcome),
            underrun_ms: pb.underrun_ms,
            underruns: pb.underruns,
            overflow_drops: pb.overflow_drops,
            first_audio_ms: r.first_audio.map(|d| d.as_secs_f64() * 1000.0),
            turn_ms: r.turn_time.map(|d| d.as_secs_f64() * 1000.0),
            entries: std::mem::take(&mut self.entries),
            gaps: pb
                .underrun_spans
                .iter()
                .map(|u| Gap {
                    start_ms: ms_from(eos, u.start),
                    end_ms: ms_from(eos, u.end),
                    between_sentences: u.between_sentences,
                    server_ms: u.server_ms,
                    network_ms: u.network_ms,
                    cause: u.cause,
                })
                .collect(),
        }))
    }
}

fn outcome_name(o: TurnOutcome) -> String {
    match o {
        TurnOutcome::Completed => "completed".into(),
        TurnOutcome::Cancelled => "cancelled".into(),
        TurnOutcome::Interrupted => "interrupted".into(),
        TurnOutcome::Failed(k) => format!("failed: {}", k.as_str()),
    }
}

/// The failure of a failed turn, for its timeline; `None` for any other outcome.
fn failure_of(r: &TurnRecord) -> Option<TurnFailure> {
    match r.outcome {
        TurnOutcome::Failed(kind) => Some(TurnFailure {
            kind: kind.as_str().to_string(),
            detail: r.detail.clone(),
        }),
        _ => None,
    }
}
