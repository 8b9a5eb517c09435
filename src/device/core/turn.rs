//! One turn as the firmware does it (PROTOCOL.md §4.1, §6, §8.3): `listen
//! start` (after `listen detect` for a wake word), think-time silence, the
//! clip's packets on absolute 60 ms deadlines, then by mode: `auto` streams
//! silence until `tts start`; `manual` waits for the button (think time),
//! then sends `listen stop` right after the clip; `realtime` keeps
//! streaming through the answer and sends no new `listen start`. The answer
//! goes through the playback model until `tts stop`; the turn ends when the
//! modelled speaker has drained (at once after an `abort`).
//!
//! Timings are measured from end of speech: the scheduled send instant of
//! the clip's last (voiced) packet. A wake-word greeting is a turn without
//! a clip, timed from its `listen detect`.

use crate::audio::{Clip, Pacer};
use crate::metrics::{FailureKind, TurnRecord};
use crate::protocol::ListenMode;
use crate::record::trace::TurnTrace;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// After a wake-word greeting the real server discards uplink audio for
/// 2 s from the first frame it handles after the greeting's `tts stop`
/// (PROTOCOL.md §13.1): speech starting within this long of that `tts
/// stop` is cut. Speech from +2.1 s on was heard whole.
pub(crate) const WAKE_MUTE_GUARD: Duration = Duration::from_millis(2100);

/// What to say in a turn.
#[derive(Clone, Debug)]
pub(crate) struct TurnSpec {
    pub conversation: u32,
    pub turn_no: u32,
    /// The utterance; `None` for the wake-word greeting (silence until the answer).
    pub clip: Option<Arc<Clip>>,
    /// Silence before speaking (manual mode: time before the button press).
    pub think: Duration,
    pub mode: ListenMode,
    /// Send `listen detect` with this text first (wake word).
    pub detect: Option<String>,
    /// Interrupt the answer this long after its first audio.
    pub barge_after: Option<Duration>,
}

/// How a turn ended.
#[derive(Debug)]
pub(crate) struct TurnEnd {
    pub record: TurnRecord,
    /// The connection did not survive the turn.
    pub connection_lost: bool,
    /// The turn was a wake-word greeting (not a user turn).
    pub greeting: bool,
    pub trace: Option<Box<TurnTrace>>,
}

/// Where a turn is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Manual mode's think time: the button is not pressed yet.
    Waiting,
    /// Microphone on: think-time silence, speech, trailing silence.
    Listening,
    /// Between `tts start` and `tts stop`.
    Speaking,
    /// `abort` sent: waiting for the server's `tts stop`.
    Aborting,
    /// `tts stop` received; waiting for the modelled speaker to drain.
    Draining,
}

/// A turn's deadlines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Timer {
    /// Manual mode: the button is pressed.
    Press,
    /// The next uplink packet is due.
    Uplink,
    /// No `tts start` in time.
    NoReply,
    /// No `tts stop` in time.
    Reply,
    /// The user interrupts (barge-in).
    Abort,
    /// The modelled speaker has drained.
    Drain,
}

/// What the announced sentences should bring (servers that say so).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Sentence {
    pub announced: Option<u32>,
    pub received: u32,
}

/// The turn in progress.
pub(super) struct Turn {
    pub spec: TurnSpec,
    pub phase: Phase,
    /// End of speech (the greeting: its `listen detect`).
    pub eos: Instant,
    /// When the speech starts (its first packet's slot).
    pub speech_at: Instant,
    /// When the speaker's pause mid-clip starts (its first silence
    /// packet's slot), for a clip with a pause.
    pub pause_at: Option<Instant>,
    /// An answer to the words before the pause is arriving while the user
    /// still speaks: its messages up to its `tts stop` are that answer's.
    pub early_answer: bool,
    pub record: TurnRecord,
    pub pacer: Pacer,
    /// Packet index of the first and one past the last speech packet.
    pub speech_from: u64,
    pub speech_end: u64,
    pub wait_until: Option<Instant>,
    pub no_reply_at: Instant,
    pub reply_deadline: Option<Instant>,
    pub abort_at: Option<Instant>,
    pub drain_at: Option<Instant>,
    /// `abort` was sent.
    pub aborted: bool,
    /// Our own `stt` arrived.
    pub stt_seen: bool,
    /// A verdict on a turn that otherwise completes (cross-talk, wrong
    /// transcript, truncated answer).
    pub verdict: Option<(FailureKind, String)>,
    pub sentences: Vec<Sentence>,
    /// Stray messages seen during this turn (for the failure detail).
    pub strays: u32,
    /// The greeting's `tts stop` this turn's speech follows, if any.
    pub after_greeting: Option<Instant>,
    /// The UDP channel's counts when the turn began (MQTT + UDP only).
    pub datagrams_at: Option<crate::protocol::udp::DatagramCounts>,
}

impl Turn {
    fn mic_on(&self) -> bool {
        match (self.phase, self.spec.mode) {
            (Phase::Waiting, _) => false,
            (_, ListenMode::Realtime) => true,
            (Phase::Listening, ListenMode::Manual) => self.pacer.index() < self.speech_end,
            (Phase::Listening, _) => true,
            _ => false,
        }
    }

    /// The turn's armed timers; on equal instants the earlier one in this
    /// list fires first (a packet due at the no-reply instant is still sent).
    pub(super) fn timers(&self) -> impl Iterator<Item = (Instant, Timer)> {
        let p = self.phase;
        [
            (self.wait_until.filter(|_| p == Phase::Waiting), Timer::Press),
            (self.mic_on().then(|| self.pacer.next_deadline()), Timer::Uplink),
            ((p == Phase::Listening).then_some(self.no_reply_at), Timer::NoReply),
            (
                self.reply_deadline
                    .filter(|_| matches!(p, Phase::Speaking | Phase::Aborting)),
                Timer::Reply,
            ),
            (self.abort_at.filter(|_| p == Phase::Speaking), Timer::Abort),
            (self.drain_at.filter(|_| p == Phase::Draining), Timer::Drain),
        ]
        .into_iter()
        .filter_map(|(at, timer)| at.map(|at| (at, timer)))
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers().map(|(at, _)| at).min()
    }

    /// Milliseconds, for failure details.
    pub fn ms(d: Duration) -> u128 {
        d.as_millis()
    }
}

pub(super) fn new_record(index: u32, spec: &TurnSpec, think_frames: u64) -> TurnRecord {
    let clip = spec.clip.as_ref().map_or("(greeting)", |c| c.name.as_str());
    TurnRecord {
        think_frames,
        ..TurnRecord::new(index, spec.conversation, spec.turn_no, clip)
    }
}
