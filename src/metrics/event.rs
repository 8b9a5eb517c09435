//! What a device reports: one event per connection and per turn, carrying
//! everything the device folded from the frames it sent and received.

use super::summary::LatencyHistogram;
use crate::audio::playback::TurnPlayback;
use crate::record::trace::TurnTrace;
use serde::Serialize;
use std::time::Duration;

/// Why a turn failed. Names are the report's `failures` keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// TCP connect or TLS failed, or timed out.
    Connect,
    /// The WebSocket upgrade was refused (HTTP status, bad response).
    Handshake,
    /// No valid server hello within the hello timeout.
    HelloTimeout,
    /// No `tts start` within the limit after end of speech.
    NoReply,
    /// No `tts stop` within the limit after `tts start`.
    ReplyTimeout,
    /// The server closed the connection in the middle of a turn.
    Closed,
    /// The server sent something malformed (bad framing, hello without
    /// transport, undecodable TOC, non-JSON text).
    Protocol,
}

impl FailureKind {
    /// The report name of this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Connect => "connect",
            FailureKind::Handshake => "handshake",
            FailureKind::HelloTimeout => "hello_timeout",
            FailureKind::NoReply => "no_reply",
            FailureKind::ReplyTimeout => "reply_timeout",
            FailureKind::Closed => "closed",
            FailureKind::Protocol => "protocol",
        }
    }
}

/// How a turn ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnOutcome {
    /// `tts stop` received.
    Completed,
    Failed(FailureKind),
    /// Cut short by the end of the run (or Ctrl-C); not the server's fault.
    Cancelled,
    /// The user interrupted the answer (`abort`, barge-in) and spoke again.
    Interrupted,
}

/// One turn, timed from end of speech (the scheduled send instant of the
/// clip's last voiced packet).
#[derive(Clone, Debug, PartialEq)]
pub struct TurnRecord {
    pub device: u32,
    /// Conversation number on this device, from 0; with `turn` it names
    /// the turn uniquely (recording file names use both).
    pub conversation: u32,
    /// Turn number in its conversation, from 0.
    pub turn: u32,
    pub clip: String,
    pub outcome: TurnOutcome,
    pub stt: Option<Duration>,
    pub llm: Option<Duration>,
    pub tts_start: Option<Duration>,
    pub first_audio: Option<Duration>,
    pub turn_time: Option<Duration>,
    /// End of speech → playout actually starts.
    pub first_play: Option<Duration>,
    /// TTS frames received in this turn.
    pub frames_received: u64,
    /// Think-time silence packets before the clip (the drawn think time).
    pub think_frames: u64,
    /// Uplink packets sent in this turn (think silence, speech, trailing silence).
    pub uplink_frames: u64,
    /// What the modelled speaker did (turns that reached `tts start`).
    pub playback: Option<TurnPlayback>,
}

/// Counters a device accumulates between events (flushed with each one).
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub frames_sent: u64,
    pub bytes_sent: u64,
    pub frames_received: u64,
    pub bytes_received: u64,
    /// Non-JSON or unknown text the device tolerated.
    pub ignored_messages: u64,
    /// Actual send instant − scheduled instant, per uplink packet.
    pub send_lag: LatencyHistogram,
}

impl Tally {
    /// Takes the accumulated values, leaving an empty tally.
    pub fn take(&mut self) -> Tally {
        std::mem::take(self)
    }
}

/// Device → collector messages.
#[derive(Debug)]
pub enum Event {
    /// A connection was opened and the server hello received.
    Connected { connect: Duration, hello: Duration },
    /// A connection ended (any reason).
    Disconnected,
    /// A turn began (`listen start` sent).
    TurnStarted,
    /// A turn ended (with its trace when recording is on).
    Turn(Box<TurnRecord>, Tally, Option<Box<TurnTrace>>),
    /// Counters accumulated outside a turn (e.g. at close, while idling).
    Flush(Tally),
    /// Connecting outside a conversation (an idle device) failed.
    ConnectFailed(FailureKind),
    /// The server closed an idle connection (its no-voice timeout): not a failure.
    IdleClosed,
    /// A conversation was due but no idle device was free (open model).
    MissedArrival,
    /// The load driver moved to a stage phase.
    Stage(StageMark),
}

/// Stage boundaries, sent by the load driver.
#[derive(Clone, Debug, PartialEq)]
pub enum StageMark {
    /// Ramp-up done: reset the stage window and start measuring.
    Measure { name: String, speakers: u32 },
    /// Measure window over: keep the window as this stage's results.
    End,
}
