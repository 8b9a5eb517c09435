//! The core running a turn: starting it ([`DeviceCore::begin_turn`]),
//! firing its timers (uplink packets, the button, no-reply and reply
//! limits, the barge-in `abort`, the drain) and ending it with its record.

use super::turn::{Phase, Timer, Turn, TurnEnd, TurnSpec, WAKE_MUTE_GUARD, new_record};
use super::{DeviceCore, Link, Output};
use crate::audio::{FRAME, Pacer};
use crate::metrics::{FailureKind, TurnOutcome};
use crate::protocol::{ClientMessage, Listen, ListenMode};
use tokio::time::Instant;

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
            pause_at: spec
                .clip
                .as_ref()
                .and_then(|c| c.pause)
                .map(|p| pacer.deadline_of(speech_from + p.at as u64)),
            early_answer: false,
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
            datagrams_at: self.udp.as_ref().map(|ch| ch.counts()),
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
        if let (Some(at), Some(ch)) = (t.datagrams_at, self.udp.as_ref()) {
            t.record.datagrams = Some(ch.counts() - at);
        }
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
