//! Answers beyond the first for one utterance (issue #2268 in the server's
//! tracker): a speaker who pauses mid-sentence for longer than the server's
//! VAD silence window gets the words before the pause answered while they
//! are still speaking, and the rest answered again; a server may also start
//! a second answer while (or after) the first one plays.
//!
//! Each such answer is counted on the turn ([`TurnRecord::extra_answers`])
//! and never fails it. The turn's timings still come from its own answer,
//! the first one to start after the end of speech: an early answer's
//! messages (its `stt`, `llm`, sentences, audio, `tts stop`) are taken here
//! and neither timed nor counted stray, and a second `tts start` during the
//! answer changes nothing measured. The microphone stays on through an
//! early answer (the user is still talking), as for any `tts start` that
//! comes before the end of speech.
//!
//! [`TurnRecord::extra_answers`]: crate::metrics::TurnRecord::extra_answers

use super::DeviceCore;
use super::turn::Phase;
use crate::protocol::{ServerMessage, Tts};
use tokio::time::Instant;

impl DeviceCore {
    /// Takes `msg` when it belongs to an answer beyond the turn's first,
    /// counting each such answer at its `tts start`. True when taken.
    pub(super) fn take_extra_answer(&mut self, now: Instant, msg: &ServerMessage) -> bool {
        let Some(t) = self.turn.as_mut() else { return false };
        let listening = t.phase == Phase::Listening;
        // The server ended the turn on the pause: the user still speaks.
        let in_pause = listening && now < t.eos && t.pause_at.is_some_and(|p| now >= p);
        let early = listening && t.early_answer;
        match msg {
            ServerMessage::Stt { .. } if in_pause => t.early_answer = true,
            ServerMessage::Tts(Tts::Start) if in_pause => {
                t.early_answer = true;
                t.record.extra_answers += 1;
            }
            ServerMessage::Tts(Tts::Start) if matches!(t.phase, Phase::Speaking | Phase::Draining) => {
                t.record.extra_answers += 1;
            }
            ServerMessage::Tts(Tts::Stop) if early => t.early_answer = false,
            ServerMessage::Llm { .. } | ServerMessage::Tts(Tts::SentenceStart { .. } | Tts::SentenceEnd { .. })
                if early => {}
            _ => return false,
        }
        true
    }

    /// True when audio in *listening* belongs to an early answer (dropped,
    /// as the firmware drops audio outside *speaking*, but not stray).
    pub(super) fn early_answer_audio(&self) -> bool {
        self.turn
            .as_ref()
            .is_some_and(|t| t.phase == Phase::Listening && t.early_answer)
    }

    /// True when the turn's answer followed an earlier one for part of the
    /// same sentence: its `stt` is the rest of the sentence, not all of it.
    pub(super) fn split_turn(&self) -> bool {
        self.turn
            .as_ref()
            .is_some_and(|t| t.pause_at.is_some() && t.record.extra_answers > 0)
    }
}
