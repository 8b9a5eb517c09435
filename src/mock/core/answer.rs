//! The answer side of the session core: starting, pacing, ending and
//! aborting answers like PY (PROTOCOL.md §6, §7.2), and the faults that
//! strike inside an answer. The reply pipeline reports stages; this code
//! turns them into `stt`, `tts start`, `llm`, paced `sentence_start` +
//! frames and the final `tts stop`.
//!
//! Mock extension: every `sentence_start` carries `"frames": N`, the
//! sentence's frame count (the real server does not send it; the firmware
//! ignores unknown fields), so a device can tell a truncated answer.

use super::{Action, Active, CloseReason, DRAIN_ALLOWANCE, ReplyOrder, STOP_DELAY, SessionCore, count_out};
use crate::device::rng_for;
use crate::mock::MockCounters;
use crate::mock::fault::{Fault, FaultKind};
use crate::mock::pacing::Outgoing;
use crate::mock::reply::{ReplyEvent, ReplyKind};
use crate::protocol::{ProtocolVersion, ServerMessage, Tts, framing};
use bytes::Bytes;
use serde::Serialize;
use std::sync::atomic::Ordering;
use tokio::time::Instant;

/// `bad_json`: starts like a `tts` message and stops mid-object.
pub const BAD_JSON: &str = r#"{"type":"tts","state":"#;
/// `bad_binary`: a code-3 Opus packet that declares zero frames (RFC 6716 §3.2.5).
pub const BAD_OPUS: [u8; 2] = [0x6b, 0x00];

/// `sentence_start` with the mock's `frames` extension, in PY's key order.
#[derive(Serialize)]
struct SentenceStartWire<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    state: &'static str,
    text: &'a str,
    frames: usize,
    session_id: &'a str,
}

impl SessionCore {
    /// Starts an answer; one already speaking is cut off first (barge-in:
    /// PY sends `tts stop` before the new `stt`).
    pub(super) fn start_reply(&mut self, kind: ReplyKind, heard: Option<(u32, Option<usize>)>, fault: Option<Fault>) {
        let barge = self.reply.as_ref().is_some_and(|r| r.tts_started);
        self.cancel_reply();
        if barge {
            self.send(&ServerMessage::Tts(Tts::Stop), true);
        }
        let id = self.next_id;
        self.next_id += 1;
        let holding = matches!(kind, ReplyKind::Greeting(_));
        self.actions.push_back(Action::StartReply(Box::new(ReplyOrder {
            id,
            kind,
            voice_index: id as usize,
            rng: rng_for(self.seed, id as u32),
        })));
        self.holding |= holding;
        self.reply = Some(Active {
            id,
            tts_started: false,
            produced_all: false,
            holding,
            utterance: heard.map(|h| h.0),
            clip: heard.and_then(|h| h.1),
            fault,
            stt: None,
            frames_sent: 0,
            owed: 0,
            struck: false,
            halted: false,
            truncated: false,
        });
    }

    pub(super) fn cancel_reply(&mut self) {
        if let Some(r) = self.reply.take() {
            self.actions.push_back(Action::CancelReply(r.id));
            if r.tts_started {
                self.p.counters.open_replies.fetch_sub(1, Ordering::Relaxed);
            }
            if r.holding {
                self.holding = false;
            }
        }
        self.clear_downlink();
    }

    fn clear_downlink(&mut self) {
        self.synthesis.clear();
        self.pacer.next_turn();
        self.announced.clear();
        self.stop_at = None;
    }

    /// `abort`: stop at once, `tts stop` now and again 420 ms later (§13).
    pub(super) fn abort(&mut self, now: Instant) {
        MockCounters::bump(&self.p.counters.aborts);
        self.cancel_reply();
        self.dup_stop_at = Some(now + STOP_DELAY);
        self.send(&ServerMessage::Tts(Tts::Stop), true);
    }

    pub(super) fn on_reply_event(&mut self, now: Instant, id: u64, ev: ReplyEvent) {
        if self.reply.as_ref().is_none_or(|r| r.id != id || r.halted) {
            return;
        }
        match ev {
            ReplyEvent::Stt(text) => self.on_stt(text),
            ReplyEvent::Llm => {
                self.tts_start();
                let llm = ServerMessage::Llm {
                    text: Some("😊".into()),
                    emotion: Some("happy".into()),
                };
                self.send(&llm, true);
            }
            ReplyEvent::Sentence { text, frames } => {
                self.announced.push_back(frames.len());
                self.synthesis.sentence(now, text, &frames);
                self.flush_synthesised(now);
            }
            ReplyEvent::Done => {
                if let Some(r) = self.reply.as_mut() {
                    r.produced_all = true;
                }
                self.check_end(now);
            }
        }
    }

    fn on_stt(&mut self, text: String) {
        MockCounters::bump(&self.p.counters.turns);
        let Some(r) = self.reply.as_ref() else { return };
        let kind = r.fault.as_ref().map(|f| f.kind);
        let index = u64::from(r.utterance.unwrap_or(0));
        let text = if kind == Some(FaultKind::CrossTalk) {
            self.record_fault(index, FaultKind::CrossTalk);
            self.p.hearing.other_transcript(r.clip)
        } else {
            text
        };
        if let Some(r) = self.reply.as_mut() {
            r.stt = Some(text.clone());
        }
        self.send(&ServerMessage::Stt { text }, true);
        if kind == Some(FaultKind::NoTtsStart) {
            self.record_fault(index, FaultKind::NoTtsStart);
            self.cancel_reply();
            return;
        }
        self.tts_start();
    }

    /// Sends `tts start` once per answer.
    fn tts_start(&mut self) {
        match self.reply.as_mut() {
            Some(r) if !r.tts_started => {
                r.tts_started = true;
                self.p.counters.open_replies.fetch_add(1, Ordering::Relaxed);
                self.send(&ServerMessage::Tts(Tts::Start), true);
            }
            _ => {}
        }
    }

    fn check_end(&mut self, now: Instant) {
        let done = self.reply.as_ref().is_some_and(|r| r.produced_all);
        if done && self.synthesis.is_idle() && self.pacer.is_idle() && self.stop_at.is_none() {
            self.stop_at = Some(now + STOP_DELAY);
        }
    }

    /// The end of an answer: `tts stop`, then whatever waited for it.
    pub(super) fn finish_reply(&mut self, now: Instant) {
        self.stop_at = None;
        let mut released = false;
        if let Some(r) = self.reply.take() {
            if !r.truncated {
                MockCounters::bump(&self.p.counters.replies_completed);
            }
            if r.tts_started {
                self.p.counters.open_replies.fetch_sub(1, Ordering::Relaxed);
            }
            if r.holding {
                self.holding = false;
                released = true;
            }
            let late = r.fault.as_ref().is_some_and(|f| f.kind == FaultKind::LateStt);
            if let (true, false, Some(u), Some(stt)) = (late, r.truncated, r.utterance, r.stt) {
                self.late = Some((u, stt));
            }
        }
        self.send(&ServerMessage::Tts(Tts::Stop), true);
        if self.turn_open {
            self.close_turn_at = Some(now + DRAIN_ALLOWANCE);
        }
        if self.close_after_stop {
            MockCounters::bump(&self.p.counters.idle_closes);
            return self.close(None);
        }
        if released {
            self.release_held(now);
        }
    }

    /// `late_stt`: the previous answer's `stt` and `tts start`, again.
    pub(super) fn send_late_stt(&mut self) {
        self.late_at = None;
        if let Some((utterance, text)) = self.late.take() {
            self.record_fault(u64::from(utterance), FaultKind::LateStt);
            self.send(&ServerMessage::Stt { text }, true);
            self.send(&ServerMessage::Tts(Tts::Start), true);
        }
    }

    /// Hands what the provider has synthesised by `now` to the pacer.
    pub(super) fn flush_synthesised(&mut self, now: Instant) {
        let mut made = Vec::new();
        self.synthesis.pop_due(now, &mut made);
        let mut out = Vec::new();
        for item in made {
            self.pacer.push(now, item, &mut out);
        }
        self.emit(now, out);
    }

    /// Releases what the pacer holds that is due at `now`.
    pub(super) fn flush_paced(&mut self, now: Instant) {
        let mut out = Vec::new();
        self.pacer.pop_due(now, &mut out);
        self.emit(now, out);
    }

    /// Sends what the pacer released, then checks for the end of the answer.
    fn emit(&mut self, now: Instant, items: Vec<Outgoing>) {
        for item in items {
            match item {
                Outgoing::Frame(f) => {
                    count_out(&self.p.counters, f.len());
                    self.last_activity = now;
                    if let Some(b) = self.frame(&f) {
                        self.actions.push_back(Action::Binary(b));
                    }
                    if let Some(r) = self.reply.as_mut() {
                        r.frames_sent += 1;
                        r.owed = r.owed.saturating_sub(1);
                    }
                    if self.strike_mid_answer(now) {
                        return;
                    }
                }
                Outgoing::SentenceStart(text) => {
                    let frames = self.announced.pop_front().unwrap_or(0);
                    if let Some(r) = self.reply.as_mut() {
                        r.owed += frames;
                    }
                    let wire = SentenceStartWire {
                        kind: "tts",
                        state: "sentence_start",
                        text: &text,
                        frames,
                        session_id: &self.p.session_id,
                    };
                    let json = serde_json::to_string(&wire).unwrap_or_default();
                    self.actions.push_back(Action::Text(json));
                }
            }
        }
        self.check_end(now);
    }

    /// One downlink frame in the session's binary protocol.
    fn frame(&self, payload: &Bytes) -> Option<Bytes> {
        match self.p.version {
            ProtocolVersion::V1 => Some(payload.clone()),
            v => framing::encode(v, payload, 0).ok().map(Bytes::from),
        }
    }

    /// A mid-answer fault whose moment has come. True when the rest of
    /// this batch must not be sent.
    fn strike_mid_answer(&mut self, now: Instant) -> bool {
        let Some(r) = self.reply.as_mut() else { return false };
        let Some(f) = r.fault.as_ref().filter(|f| f.kind.mid_answer()) else {
            return false;
        };
        let kind = f.kind;
        // A truncation must leave announced audio unsent, or nobody could tell.
        if r.struck || r.frames_sent < f.after_frames || kind == FaultKind::EarlyTtsStop && r.owed == 0 {
            return false;
        }
        r.struck = true;
        let (id, index) = (r.id, u64::from(r.utterance.unwrap_or(0)));
        self.record_fault(index, kind);
        match kind {
            FaultKind::BadBinary => {
                if let Some(b) = self.frame(&Bytes::from_static(&BAD_OPUS)) {
                    self.actions.push_back(Action::Binary(b));
                }
                false
            }
            FaultKind::BadJson => {
                self.actions.push_back(Action::Text(BAD_JSON.to_string()));
                false
            }
            FaultKind::CloseMidTts => {
                self.close(Some(CloseReason {
                    code: 1000,
                    reason: String::new(),
                }));
                true
            }
            _ => {
                // stall_audio: no more frames, no `tts stop`;
                // early_tts_stop: no more frames, `tts stop` 420 ms on.
                let early = kind == FaultKind::EarlyTtsStop;
                if let Some(r) = self.reply.as_mut() {
                    r.halted = true;
                    r.truncated = early;
                    r.produced_all = early;
                }
                self.actions.push_back(Action::CancelReply(id));
                self.clear_downlink();
                self.check_end(now);
                true
            }
        }
    }
}
