//! The answer side of a mock session: starting, pacing, ending and
//! aborting answers. The reply pipeline reports stages; this code turns them
//! into `stt`, `tts start`, `llm`, paced `sentence_start` + frames and the
//! final `tts stop`, like PY (PROTOCOL.md §6, §7.2).

use super::MockCounters;
use super::pacing::Outgoing;
use super::reply::{ReplyEvent, ReplyJob, ReplyKind, run_reply};
use super::session::{Active, DRAIN_ALLOWANCE, STOP_DELAY, Session};
use crate::device::rng_for;
use crate::protocol::{ProtocolVersion, ServerMessage, Tts, framing};
use futures_util::SinkExt;
use std::sync::atomic::Ordering;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

impl Session {
    /// Starts an answer; one already running is cut off first (barge-in:
    /// PY sends `tts stop` before the new `stt`).
    pub(super) async fn start_reply(&mut self, kind: ReplyKind) -> bool {
        if self.reply.as_ref().is_some_and(|r| r.tts_started) {
            self.cancel_reply();
            if !self.send_json(&ServerMessage::Tts(Tts::Stop), true).await {
                return false;
            }
        } else {
            self.cancel_reply();
        }
        let id = self.next_id;
        self.next_id += 1;
        let cancel = CancellationToken::new();
        let job = ReplyJob {
            kind,
            id,
            voice_index: id as usize,
            cfg: self.sh.cfg.clone(),
            stages: self.sh.stages.clone(),
            bank: self.sh.bank.clone(),
            tx: self.tx.clone(),
            cancel: cancel.clone(),
            rng: rng_for(self.seed, id as u32),
        };
        tokio::spawn(run_reply(job));
        self.reply = Some(Active {
            id,
            cancel,
            tts_started: false,
            produced_all: false,
        });
        self.pacer.next_turn();
        self.stop_at = None;
        true
    }

    pub(super) fn cancel_reply(&mut self) {
        if let Some(r) = self.reply.take() {
            r.cancel.cancel();
            if r.tts_started {
                self.sh.counters.open_replies.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.pacer.next_turn();
        self.stop_at = None;
    }

    /// `abort`: stop at once, `tts stop` now and again 420 ms later (§13).
    pub(super) async fn abort(&mut self, now: Instant) -> bool {
        MockCounters::bump(&self.sh.counters.aborts);
        self.cancel_reply();
        self.dup_stop_at = Some(now + STOP_DELAY);
        self.send_json(&ServerMessage::Tts(Tts::Stop), true).await
    }

    pub(super) async fn on_reply_event(&mut self, id: u64, ev: ReplyEvent) -> bool {
        let now = Instant::now();
        if self.reply.as_ref().is_none_or(|r| r.id != id) {
            return true;
        }
        match ev {
            ReplyEvent::Stt(text) => {
                MockCounters::bump(&self.sh.counters.turns);
                self.send_json(&ServerMessage::Stt { text }, true).await && self.tts_start().await
            }
            ReplyEvent::Llm => {
                let llm = ServerMessage::Llm {
                    text: Some("😊".into()),
                    emotion: Some("happy".into()),
                };
                self.tts_start().await && self.send_json(&llm, true).await
            }
            ReplyEvent::Sentence { text, frames } => {
                self.pacer.push(now, Outgoing::SentenceStart(text), &mut self.out);
                for f in frames.iter() {
                    self.pacer.push(now, Outgoing::Frame(f.clone()), &mut self.out);
                }
                self.flush_out(now).await
            }
            ReplyEvent::Done => {
                if let Some(r) = self.reply.as_mut() {
                    r.produced_all = true;
                }
                self.check_end(now);
                true
            }
        }
    }

    /// Sends `tts start` once per answer.
    pub(super) async fn tts_start(&mut self) -> bool {
        match self.reply.as_mut() {
            Some(r) if !r.tts_started => {
                r.tts_started = true;
                self.sh.counters.open_replies.fetch_add(1, Ordering::Relaxed);
                self.send_json(&ServerMessage::Tts(Tts::Start), true).await
            }
            _ => true,
        }
    }

    pub(super) fn check_end(&mut self, now: Instant) {
        let done = self.reply.as_ref().is_some_and(|r| r.produced_all);
        if done && self.pacer.is_idle() && self.stop_at.is_none() {
            self.stop_at = Some(now + STOP_DELAY);
        }
    }

    /// The natural end of an answer: `tts stop`.
    pub(super) async fn finish_reply(&mut self) -> bool {
        self.stop_at = None;
        if let Some(r) = self.reply.take() {
            MockCounters::bump(&self.sh.counters.replies_completed);
            if r.tts_started {
                self.sh.counters.open_replies.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let ok = self.send_json(&ServerMessage::Tts(Tts::Stop), true).await;
        if self.turn_open {
            self.close_turn_at = Some(Instant::now() + DRAIN_ALLOWANCE);
        }
        if self.close_after_stop {
            MockCounters::bump(&self.sh.counters.idle_closes);
            return false;
        }
        ok
    }

    /// Writes what the pacer released, then checks for the end of the answer.
    pub(super) async fn flush_out(&mut self, now: Instant) -> bool {
        let items: Vec<Outgoing> = self.out.drain(..).collect();
        for item in items {
            let msg = match item {
                Outgoing::Frame(f) => {
                    let c = &self.sh.counters;
                    MockCounters::bump(&c.frames_out);
                    MockCounters::add(&c.bytes_out, f.len() as u64);
                    self.last_activity = now;
                    match self.version {
                        ProtocolVersion::V1 => Message::Binary(f),
                        v => match framing::encode(v, &f, 0) {
                            Ok(framed) => Message::Binary(framed.into()),
                            Err(_) => continue,
                        },
                    }
                }
                Outgoing::SentenceStart(text) => {
                    let m = ServerMessage::Tts(Tts::SentenceStart { text });
                    Message::text(m.to_json_with_session(Some(&self.session_id)))
                }
            };
            if self.ws.feed(msg).await.is_err() {
                return false;
            }
        }
        if self.ws.flush().await.is_err() {
            return false;
        }
        self.check_end(now);
        true
    }

    pub(super) async fn send_json(&mut self, msg: &ServerMessage, with_session: bool) -> bool {
        let sid = with_session.then_some(self.session_id.as_str());
        self.ws.send(Message::text(msg.to_json_with_session(sid))).await.is_ok()
    }
}
