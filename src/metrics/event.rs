//! What a device reports: one event per connection and per turn, carrying
//! everything the device folded from the frames it sent and received.

use super::lag::LagHistogram;
use crate::audio::playback::TurnPlayback;
use crate::protocol::udp::DatagramCounts;
use crate::record::trace::TurnTrace;
use serde::Serialize;
use std::collections::BTreeMap;
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
    /// transport, undecodable TOC, broken JSON, an invalid close frame).
    Protocol,
    /// No reply to an utterance that started inside the server's 2 s
    /// uplink mute after a wake-word greeting (PROTOCOL.md §13.1).
    MutedAfterWake,
    /// The server speaks another binary protocol version than the device
    /// asked for (its hello says so, or its frames do not parse).
    ProtocolMismatch,
    /// `stt` carried another device's words (another clip's transcript).
    CrossTalk,
    /// `tts stop` came before the announced sentences' audio had arrived.
    Truncated,
    /// `stt` is too far from the clip's transcript (character error rate
    /// above the configured limit).
    WrongTranscript,
    /// The OTA version check before connecting failed: no answer, an
    /// unusable answer, or one the device cannot follow (MQTT, activation).
    Ota,
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
            FailureKind::MutedAfterWake => "muted_after_wake",
            FailureKind::ProtocolMismatch => "protocol_mismatch",
            FailureKind::CrossTalk => "cross_talk",
            FailureKind::Truncated => "truncated",
            FailureKind::WrongTranscript => "wrong_transcript",
            FailureKind::Ota => "ota",
        }
    }

    /// Every kind, in report order.
    pub const ALL: [FailureKind; 13] = [
        FailureKind::Ota,
        FailureKind::Connect,
        FailureKind::Handshake,
        FailureKind::HelloTimeout,
        FailureKind::NoReply,
        FailureKind::ReplyTimeout,
        FailureKind::Closed,
        FailureKind::Protocol,
        FailureKind::MutedAfterWake,
        FailureKind::ProtocolMismatch,
        FailureKind::CrossTalk,
        FailureKind::Truncated,
        FailureKind::WrongTranscript,
    ];

    /// True for failures before the turn's `listen start` (the connection
    /// could not be opened), which never counted as talking.
    pub fn before_listening(self) -> bool {
        matches!(
            self,
            FailureKind::Ota
                | FailureKind::Connect
                | FailureKind::Handshake
                | FailureKind::HelloTimeout
                | FailureKind::ProtocolMismatch
        )
    }
}

/// A failure with what explains it: the OS error, HTTP status, close code
/// and reason, or an excerpt of the offending message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub detail: String,
}

impl Failure {
    pub fn new(kind: FailureKind, detail: impl Into<String>) -> Self {
        Failure {
            kind,
            detail: detail.into(),
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
    /// What explains a failure (OS error, HTTP status, close code, excerpt).
    pub detail: Option<String>,
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
    /// Downlink datagrams of this turn (MQTT + UDP only; `None` over WebSocket).
    pub datagrams: Option<DatagramCounts>,
    /// Answers beyond the first for this one utterance: a `tts start` that
    /// came while the user was still speaking (the server ended the turn on
    /// a pause) or after this turn's answer had already begun (issue #2268's
    /// double answer).
    pub extra_answers: u32,
}

impl TurnRecord {
    /// A turn with nothing measured yet (outcome `completed` until told otherwise).
    pub fn new(device: u32, conversation: u32, turn: u32, clip: &str) -> TurnRecord {
        TurnRecord {
            device,
            conversation,
            turn,
            clip: clip.to_string(),
            outcome: TurnOutcome::Completed,
            detail: None,
            stt: None,
            llm: None,
            tts_start: None,
            first_audio: None,
            turn_time: None,
            first_play: None,
            frames_received: 0,
            think_frames: 0,
            uplink_frames: 0,
            playback: None,
            datagrams: None,
            extra_answers: 0,
        }
    }
}

/// Stray-message types, as the report's `turns.stray_messages` names them.
pub const STRAY_STT: &str = "stt";
pub const STRAY_LLM: &str = "llm";
pub const STRAY_TTS_START: &str = "tts_start";
pub const STRAY_SENTENCE: &str = "tts_sentence_start";
pub const STRAY_TTS_STOP: &str = "tts_stop";
/// Binary audio outside *speaking* (the firmware drops it).
pub const STRAY_AUDIO: &str = "audio";
/// A second server hello.
pub const STRAY_HELLO: &str = "hello";
/// Text that is not JSON (PY echoes such text back; the firmware ignores it).
pub const STRAY_TEXT: &str = "text";
/// Unknown types and states (the firmware logs and ignores them).
pub const STRAY_UNKNOWN: &str = "unknown";
/// Broken JSON or audio outside a turn (inside one it fails the turn).
pub const STRAY_MALFORMED: &str = "malformed";

/// Counters a device accumulates between events (flushed with each one).
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub frames_sent: u64,
    pub bytes_sent: u64,
    pub frames_received: u64,
    pub bytes_received: u64,
    /// Messages that could not belong to the turn in progress (a late
    /// answer to an earlier turn, the duplicate `tts stop` after an abort,
    /// audio outside *speaking*, unknown types), by type: counted, never
    /// turned into a latency.
    pub stray: BTreeMap<&'static str, u64>,
    /// Actual send instant − scheduled instant, per uplink packet, once
    /// the ramp is over (what the generator's self-check judges).
    pub send_lag: LagHistogram,
    /// The same while devices were still being started (the ramp).
    pub ramp_send_lag: LagHistogram,
}

impl Tally {
    /// Counts one stray message of type `kind`.
    pub fn stray(&mut self, kind: &'static str) {
        *self.stray.entry(kind).or_default() += 1;
    }

    /// True when the send-lag samples should go to the collector now,
    /// before they would need a full histogram on the device.
    pub fn is_full(&self) -> bool {
        self.send_lag.count() + self.ramp_send_lag.count() >= super::lag::SMALL_SAMPLES as u64
    }

    /// Nothing counted (an idle, silent device's tally): not worth an event.
    pub fn is_empty(&self) -> bool {
        self.frames_sent == 0
            && self.frames_received == 0
            && self.bytes_sent == 0
            && self.bytes_received == 0
            && self.stray.is_empty()
            && self.send_lag.count() == 0
            && self.ramp_send_lag.count() == 0
    }

    /// Takes the accumulated values, leaving an empty tally.
    pub fn take(&mut self) -> Tally {
        std::mem::take(self)
    }
}

/// Device → collector data. Gauges (connected, talking) and stage marks
/// do not travel here: they take paths that cannot drop them
/// ([`crate::metrics::collector::EventSender`]).
#[derive(Debug)]
pub enum Event {
    /// A connection was opened and the server hello received; `reconnect`
    /// when it replaces one the server or the network took away.
    Connected {
        /// `None`: nothing was connected (a new conversation on the lifelong MQTT link).
        connect: Option<Duration>,
        hello: Duration,
        reconnect: bool,
    },
    /// A turn ended (with its trace when recording is on).
    Turn(Box<TurnRecord>, Tally, Option<Box<TurnTrace>>),
    /// Counters accumulated outside a turn (e.g. at close, while idling).
    Flush(Tally),
    /// The OTA version check answered, after this long.
    OtaChecked(Duration),
    /// Device `index`'s OTA check ended: `code` when it still waits for
    /// activation after its activation loop, `None` when it went through.
    Activation { index: u32, code: Option<Box<str>> },
    /// Connecting outside a conversation (an idle device) failed.
    ConnectFailed(Failure),
    /// The server closed an idle connection (its no-voice timeout): not a failure.
    IdleClosed,
    /// A conversation was due but no idle device was free (open model).
    MissedArrival,
}

/// Stage boundaries, sent by the load driver.
#[derive(Clone, Debug, PartialEq)]
pub enum StageMark {
    /// Ramp-up done: reset the stage window and start measuring.
    Measure { name: String, speakers: u32 },
    /// Measure window over: keep the window as this stage's results.
    End,
}
