//! The uplink side of the session core: framing, the wake-word mute,
//! voiced verdicts (known packets from the clip table, others through the
//! session's decoder), the VAD, clip recognition, and what happens at the
//! end of an utterance (answer it, or a turn fault instead).

use super::{SessionCore, WAKE_MUTE};
use crate::mock::MockCounters;
use crate::mock::fault::FaultKind;
use crate::mock::reply::ReplyKind;
use crate::mock::vad::VadDecision;
use crate::protocol::framing;
use tokio::time::Instant;

impl SessionCore {
    pub(super) fn on_audio(&mut self, now: Instant, data: &[u8]) {
        let c = self.p.counters.clone();
        MockCounters::bump(&c.frames_in);
        MockCounters::add(&c.bytes_in, data.len() as u64);
        if !self.hello_done {
            MockCounters::bump(&c.frames_before_hello);
            return;
        }
        let Ok(frame) = framing::decode(self.p.version, data) else {
            MockCounters::bump(&c.protocol_errors);
            return;
        };
        if self.ignore_uplink {
            return;
        }
        // The wake-word mute starts at the first frame handled after the
        // greeting (§13.1); frames inside it still feed the VAD but their
        // audio is discarded.
        if self.mute_pending {
            self.mute_pending = false;
            self.mute_until = Some(now + WAKE_MUTE);
        }
        let muted = self.mute_until.is_some_and(|m| now < m);
        let known = self.p.hearing.lookup(frame.payload);
        let voiced = match known {
            Some(k) => k.voiced,
            // A decoder that skipped known packets is in the state of a
            // fresh one, so making it now changes no verdict.
            None => self.ear.get_or_insert_with(Box::default).is_voiced(frame.payload),
        };
        if voiced {
            self.last_activity = now;
        }
        let decision = if muted {
            MockCounters::bump(&c.muted_frames);
            self.vad.muted_packet(now, voiced)
        } else {
            if voiced {
                self.tally.voiced(known.and_then(|k| k.clip));
            }
            self.vad.packet(now, voiced)
        };
        self.on_decision(now, decision);
        if self.closed || self.stalled_until.is_some() {
            return;
        }
        let idle = now.saturating_duration_since(self.last_activity) >= self.p.cfg.idle_timeout;
        if idle && self.reply.is_none() && !self.close_after_stop {
            self.close_after_stop = true;
            self.start_reply(ReplyKind::Goodbye, None, None);
        }
    }

    pub(super) fn on_decision(&mut self, now: Instant, d: VadDecision) {
        match d {
            VadDecision::Continue => {}
            VadDecision::TooShort(_) => {
                MockCounters::bump(&self.p.counters.too_short);
                self.tally.clear();
            }
            VadDecision::Utterance(_) => self.utterance_ended(now),
        }
    }

    /// The VAD (or `listen stop`) ended an utterance long enough to answer.
    fn utterance_ended(&mut self, now: Instant) {
        let index = self.utterance;
        self.utterance += 1;
        let clip = self.tally.heard();
        let heard = self.tally.count(clip);
        self.tally.clear();
        if clip.is_none() {
            MockCounters::bump(&self.p.counters.unrecognised);
        }
        let fault = self.p.cfg.faults.for_utterance(self.device_key, index).cloned();
        match fault.as_ref().map(|f| f.kind) {
            Some(FaultKind::NoStt) => {
                // The VAD "never ends" it: nothing until the next `listen start`.
                self.record_fault(u64::from(index), FaultKind::NoStt);
                self.set_turn_open(true);
                self.ignore_uplink = true;
                return;
            }
            Some(FaultKind::StallSocket) => {
                self.record_fault(u64::from(index), FaultKind::StallSocket);
                self.stall(now);
                return;
            }
            _ => {}
        }
        self.set_turn_open(true);
        let text = self.p.hearing.heard_transcript(clip, heard);
        self.start_reply(ReplyKind::Speech(text), Some((index, clip)), fault);
    }
}
