//! What a device captures about one turn when recording is on: every
//! received message and frame with its arrival time, where it went in the
//! playback model, and the underrun spans. Times are milliseconds from end
//! of speech (negative for anything before it).

pub use crate::audio::playback::GapCause;
use bytes::Bytes;
use serde::Serialize;

/// Where a received frame went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    /// Started playing on arrival.
    Played,
    /// Queued behind other audio.
    Queued,
    /// Dropped: the decode queue was full.
    Dropped,
    /// Arrived outside *speaking* (the firmware drops it).
    Ignored,
}

/// One received item.
#[derive(Clone, Debug)]
pub enum TraceItem {
    /// A text message, verbatim.
    Text(String),
    /// A binary TTS frame (Opus payload, framing header removed).
    Frame {
        packet: Bytes,
        fate: Fate,
        /// When the modelled speaker starts playing it (accepted frames).
        play_start_ms: Option<f64>,
        /// Its duration from the TOC byte.
        duration_ms: f64,
    },
}

/// One received item with its arrival time and the decode-queue depth
/// right after it was handled.
#[derive(Clone, Debug)]
pub struct TraceEntry {
    pub at_ms: f64,
    pub queue_depth: u32,
    pub item: TraceItem,
}

/// A silent stretch of the modelled speaker while the server still spoke.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Gap {
    pub start_ms: f64,
    pub end_ms: f64,
    pub between_sentences: bool,
    /// Part of the gap the late frame had not reached the socket yet.
    pub server_ms: f64,
    /// Part of the gap the network conditions held the frame.
    pub network_ms: f64,
    /// The larger part's cause (the server's on a tie).
    pub cause: GapCause,
}

/// Why a recorded turn failed, for its timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TurnFailure {
    /// The failure kind (`no_reply`, `closed`, ...), as in the report's `failures`.
    pub kind: String,
    /// What exactly happened (OS error, close code and reason, message
    /// excerpt), when the device knows it.
    pub detail: Option<String>,
}

/// Everything needed to write a turn's WAV and timeline.
#[derive(Clone, Debug)]
pub struct TurnTrace {
    pub device: u32,
    pub device_id: String,
    /// Conversation number on the device, from 0.
    pub conversation: u32,
    /// Turn number in the conversation, from 0.
    pub turn: u32,
    /// Set when the turn failed: its kind and detail.
    pub failure: Option<TurnFailure>,
    pub clip: String,
    /// The rate the server announced in its hello: decode at this rate.
    pub sample_rate: u32,
    pub outcome: String,
    pub underrun_ms: f64,
    pub underruns: u32,
    pub overflow_drops: u32,
    pub first_audio_ms: Option<f64>,
    pub turn_ms: Option<f64>,
    pub entries: Vec<TraceEntry>,
    pub gaps: Vec<Gap>,
}

impl TurnTrace {
    /// Audio the full decode queue dropped (the device's stutter), ms.
    pub fn dropped_ms(&self) -> f64 {
        self.entries
            .iter()
            .map(|e| match &e.item {
                TraceItem::Frame {
                    fate: Fate::Dropped,
                    duration_ms,
                    ..
                } => *duration_ms,
                _ => 0.0,
            })
            .sum()
    }
}
