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

use super::{DeviceCore, Link, Output};
use crate::audio::{Clip, FRAME, Pacer};
use crate::metrics::{FailureKind, TurnOutcome, TurnRecord};
use crate::protocol::{ClientMessage, Listen, ListenMode};
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
enum Timer {
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
    fn timers(&self) -> impl Iterator<Item = (Instant, Timer)> {
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

fn new_record(index: u32, spec: &TurnSpec, think_frames: u64) -> TurnRecord {
    let clip = spec.clip.as_ref().map_or("(greeting)", |c| c.name.as_str());
    TurnRecord {
        think_frames,
        ..TurnRecord::new(index, spec.conversation, spec.turn_no, clip)
    }
}

impl DeviceCore {
    pub(super) fn begin_turn(&mut self, now: Instant, spec: TurnSpec) {
        let think_frames = spec.think.as_millis().div_ceil(FRAME.as_millis()) as u64;
        let record = new_record(self.index, &spec, think_frames);
        self.tracer.begin(self.index, spec.turn_no, &record.clip);
        let manual_wait = spec.mode == ListenMode::Manual && !spec.think.is_zero();
        let wait_until = manual_wait.then(|| now + spec.think);
        let streaming = spec.mode == ListenMode::Realtime && self.stream.is_some();
        let pacer = self
            .stream
            .take()
            .unwrap_or_else(|| Pacer::new(wait_until.unwrap_or(now)));
        let speech = spec.clip.as_ref().map_or(0, |c| c.packets.len() as u64);
        let silence_first = if spec.mode == ListenMode::Manual {
            0
        } else {
            think_frames
        };
        let speech_from = pacer.index() + silence_first;
        let speech_end = speech_from + speech;
        let eos = if speech == 0 {
            now
        } else {
            pacer.deadline_of(speech_end - 1)
        };
        let after_greeting = if spec.clip.is_some() {
            self.greeting_stop_at.take()
        } else {
            None
        };
        let turn = Turn {
            phase: if manual_wait { Phase::Waiting } else { Phase::Listening },
            eos,
            speech_at: pacer.deadline_of(speech_from),
            record,
            pacer,
            speech_from,
            speech_end,
            wait_until,
            no_reply_at: eos + self.settings.timeouts.no_reply,
            reply_deadline: None,
            abort_at: None,
            drain_at: None,
            aborted: false,
            stt_seen: false,
            verdict: None,
            sentences: Vec::new(),
            strays: 0,
            after_greeting,
            spec,
        };
        self.turn = Some(Box::new(turn));
        if !manual_wait {
            self.open_mic(streaming);
            // The microphone is on from `listen start`: the first packet
            // leaves at that instant, not a timer tick later.
            self.fire_turn(now);
        }
    }

    /// Presses the button: `listen detect` (wake word), `listen start`.
    fn open_mic(&mut self, streaming: bool) {
        let Some(t) = self.turn.as_mut() else { return };
        t.phase = Phase::Listening;
        let sid = self.session_id.clone();
        let detect = t.spec.detect.clone();
        let mode = t.spec.mode;
        if let Some(text) = detect {
            self.send_text(ClientMessage::Listen(Listen::detect(&sid, &text)));
        }
        if !streaming {
            self.send_text(ClientMessage::Listen(Listen::start(&sid, mode)));
        }
    }

    /// Handles the earliest due deadline of the turn.
    pub(super) fn fire_turn(&mut self, now: Instant) {
        let Some(t) = self.turn.as_ref() else { return };
        let Some((at, timer)) = t.timers().min_by_key(|(at, _)| *at) else {
            return;
        };
        if at > now {
            return;
        }
        match timer {
            Timer::Press => self.open_mic(false),
            Timer::Uplink => self.send_next(now),
            Timer::NoReply => self.no_reply(now),
            Timer::Reply => {
                let limit = self.settings.timeouts.reply;
                let detail = format!(
                    "no tts stop within {} of tts start ({} audio frames received)",
                    humantime::format_duration(limit),
                    t.record.frames_received
                );
                self.end_turn(now, TurnOutcome::Failed(FailureKind::ReplyTimeout), Some(detail), false);
            }
            Timer::Abort => {
                let sid = self.session_id.clone();
                self.send_text(ClientMessage::Abort {
                    session_id: sid,
                    reason: None,
                });
                if let Some(t) = self.turn.as_mut() {
                    t.phase = Phase::Aborting;
                    t.aborted = true;
                }
            }
            Timer::Drain => {
                let (outcome, detail) = match (t.aborted, t.verdict.clone()) {
                    (true, _) => (TurnOutcome::Interrupted, None),
                    (false, Some((kind, d))) => (TurnOutcome::Failed(kind), Some(d)),
                    (false, None) => (TurnOutcome::Completed, None),
                };
                self.end_turn(now, outcome, detail, false);
            }
        }
    }

    /// Sends the next uplink packet (think silence, speech or trailing
    /// silence); in manual mode, `listen stop` follows the last speech packet.
    fn send_next(&mut self, now: Instant) {
        let Some(t) = self.turn.as_mut() else { return };
        let n = t.pacer.index();
        let packet = match &t.spec.clip {
            Some(c) if n >= t.speech_from && n < t.speech_end => c.packets[(n - t.speech_from) as usize].clone(),
            _ => self.settings.silence.clone(),
        };
        let due = t.pacer.advance();
        t.record.uplink_frames += 1;
        let stop = t.spec.mode == ListenMode::Manual && t.pacer.index() == t.speech_end && t.phase == Phase::Listening;
        self.send_audio(now, &packet, due);
        if stop {
            let sid = self.session_id.clone();
            self.send_text(ClientMessage::Listen(Listen::stop(&sid)));
        }
    }

    /// No `tts start` in time: `no_reply`, or `muted_after_wake` when the
    /// speech began inside the server's post-greeting mute.
    fn no_reply(&mut self, now: Instant) {
        let Some(t) = self.turn.as_ref() else { return };
        let limit = humantime::format_duration(self.settings.timeouts.no_reply);
        let mut detail = match t.spec.clip {
            None => format!("no greeting (tts start) within {limit} of listen detect"),
            Some(_) => format!("no tts start within {limit} of end of speech"),
        };
        if t.stt_seen {
            detail.push_str(" (stt received)");
        }
        if t.strays > 0 {
            detail.push_str(&format!("; {} stray message(s) ignored", t.strays));
        }
        let kind = match t.after_greeting {
            Some(stop) if t.speech_at < stop + WAKE_MUTE_GUARD && !t.stt_seen => {
                detail = format!(
                    "speech began {} ms after the greeting's tts stop, inside the server's 2 s wake-word mute; no reply",
                    Turn::ms(t.speech_at.saturating_duration_since(stop))
                );
                FailureKind::MutedAfterWake
            }
            _ => FailureKind::NoReply,
        };
        self.end_turn(now, TurnOutcome::Failed(kind), Some(detail), false);
    }

    /// Ends the turn, reporting it.
    pub(super) fn end_turn(&mut self, _now: Instant, outcome: TurnOutcome, detail: Option<String>, lost: bool) {
        let Some(mut t) = self.turn.take() else { return };
        t.record.outcome = outcome;
        t.record.detail = detail;
        let pb = self.playback.finish();
        if t.record.tts_start.is_some() {
            t.record.first_play = pb.first_play_at.map(|at| at.saturating_duration_since(t.eos));
            t.record.playback = Some(pb.clone());
        }
        let trace = self.tracer.finish(&t.record, &pb, t.eos);
        if t.spec.mode == ListenMode::Realtime && !lost {
            self.stream = Some(t.pacer);
        }
        if lost {
            self.link = Link::Gone;
            self.out.push_back(Output::Close);
        }
        self.out.push_back(Output::TurnEnded(Box::new(TurnEnd {
            greeting: t.spec.clip.is_none(),
            record: t.record,
            connection_lost: lost,
            trace,
        })));
    }
}
