//! The mock session as a sans-IO state machine (like quinn-proto / str0m):
//! every decision one connection's server makes, with no socket, no clock
//! and no runtime inside.
//!
//! Inputs ([`Input`]: a client text or binary message, a reply-pipeline
//! stage finished, the peer closed) come in with `now`; so does
//! [`SessionCore::handle_timeout`] when [`SessionCore::next_deadline`] is
//! reached. Out come [`Action`]s: send text, send binary, close, start or
//! cancel a reply job. Counters are bumped on the shared [`MockCounters`]
//! (plain atomics). The core owns the VAD, clip recognition, listen / detect
//! / abort handling, answer scheduling, PY's downlink pacing, MCP discovery
//! timing, the idle timeouts, the open-turn gauge, the wake-word hold and
//! mute (PROTOCOL.md §13.1) and fault injection. The shell
//! (`mock::shell`) owns the socket and the ASR/LLM/TTS worker pools.

mod answer;
mod audio;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_faults;
#[cfg(test)]
mod tests_speech;

use super::config::MockConfig;
use super::counters::MockCounters;
use super::fault::{Fault, FaultKind};
use super::hearing::{ClipIndex, Tally};
use super::pacing::DownlinkPacer;
use super::reply::{ReplyEvent, ReplyKind};
use super::synthesis::Synthesis;
use super::vad::Vad;
use crate::audio::voice::VoiceDetector;
use crate::protocol::{
    ClientMessage, ListenMode, ListenState, MessageError, ProtocolVersion, ServerAudioParams, ServerHello,
    ServerMessage, Tts, mcp_initialize_request, mcp_tools_list_request,
};
use bytes::Bytes;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

/// `tts stop` follows the last frame after (5 + 2) × 60 ms (PY, §7.2).
pub const STOP_DELAY: Duration = Duration::from_millis(420);
/// Uplink ignored after a wake word (PY, §4.1, §13.1).
pub const WAKE_MUTE: Duration = Duration::from_secs(2);
/// PY's MCP pause between the `initialize` result and `tools/list` (§2.3).
pub const MCP_LIST_DELAY: Duration = Duration::from_secs(1);
/// Hard idle close comes this long after the idle timeout (PY: +60 s).
pub const HARD_IDLE_EXTRA: Duration = Duration::from_secs(60);
/// After `tts stop`, a turn stays open this long: the most audio a device
/// can still hold (its 40-frame decode queue), so a device that drains and
/// speaks again is one continuous speaker.
pub const DRAIN_ALLOWANCE: Duration = Duration::from_millis(2400);
/// Client messages held while a wake-word greeting plays; past this the
/// shell stops reading the socket (TCP backpressure, as PY's blocked
/// handler gives).
pub const HOLD_CAPACITY: usize = 1024;
/// `late_stt`: the stray `stt` comes this long after the next `listen start`.
pub const LATE_STT_AFTER: Duration = Duration::from_millis(100);
/// `stall_socket`: the stalled session gives up after this long.
pub const STALL_BOUND: Duration = Duration::from_secs(60);

/// Something that happened to the connection.
#[derive(Clone, Debug)]
pub enum Input {
    /// A client text message.
    Text(String),
    /// A client binary message.
    Binary(Bytes),
    /// A reply-pipeline stage finished for job `id`.
    Reply { id: u64, event: ReplyEvent },
    /// The client closed the connection (close frame, FIN, error).
    PeerClosed,
}

/// A close frame's code and reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseReason {
    pub code: u16,
    pub reason: String,
}

/// What the shell must do.
#[derive(Clone, Debug)]
pub enum Action {
    Text(String),
    Binary(Bytes),
    /// Send a close frame (with this code, or none) and end the connection.
    Close(Option<CloseReason>),
    /// End the connection without a close handshake.
    Abandon,
    /// Start a reply job.
    StartReply(Box<ReplyOrder>),
    /// Cancel reply job `id` (abort, barge-in, a fault).
    CancelReply(u64),
}

/// A reply job to run on the worker pools.
#[derive(Clone, Debug)]
pub struct ReplyOrder {
    pub id: u64,
    pub kind: ReplyKind,
    /// Voice-bank index of the first sentence.
    pub voice_index: usize,
    /// Draws the per-sentence TTS delays.
    pub rng: ChaCha8Rng,
}

/// Everything one connection's core is told at birth.
#[derive(Clone)]
pub struct SessionParams {
    pub cfg: Arc<MockConfig>,
    pub counters: Arc<MockCounters>,
    pub hearing: Arc<ClipIndex>,
    pub version: ProtocolVersion,
    pub device_id: String,
    pub session_id: String,
    /// Accept index of the connection.
    pub connection: u64,
    /// A connection fault picked at accept (`no_hello`, `close_after_hello`).
    pub conn_fault: Option<FaultKind>,
}

/// The answer in progress.
struct Active {
    id: u64,
    tts_started: bool,
    produced_all: bool,
    /// A wake-word greeting: client input waits until its `tts stop`.
    holding: bool,
    /// The utterance it answers and the clip heard in it.
    utterance: Option<u32>,
    clip: Option<usize>,
    fault: Option<Fault>,
    /// The `stt` text sent (for `late_stt`).
    stt: Option<String>,
    frames_sent: u32,
    /// Frames of announced sentences not sent yet.
    owed: usize,
    /// The mid-answer fault has struck.
    struck: bool,
    /// A fault stopped its audio (`stall_audio`, `early_tts_stop`).
    halted: bool,
    truncated: bool,
}

/// One connection's server logic.
pub struct SessionCore {
    p: SessionParams,
    /// Seed of this session's draws (per device id).
    seed: u64,
    /// Hash of the device id, for per-utterance fault draws.
    device_key: u64,
    actions: VecDeque<Action>,
    closed: bool,
    stalled_until: Option<Instant>,
    /// `no_hello`: everything from the client is ignored.
    deaf: bool,
    hello_done: bool,
    vad: Vad,
    /// The session's Opus decoder for audio that is not a known clip
    /// packet; made on the first such packet (a decoder is ~170 KiB, and
    /// a fleet's packets are all known).
    ear: Option<Box<VoiceDetector>>,
    tally: Tally,
    /// Index of the next utterance heard on this session.
    utterance: u32,
    /// `no_stt`: uplink ignored until the next `listen start`.
    ignore_uplink: bool,
    /// The TTS provider's pace: sentences wait here until synthesised.
    synthesis: Synthesis,
    pacer: DownlinkPacer,
    /// Frame counts of sentences queued in the pacer, in order.
    announced: VecDeque<usize>,
    reply: Option<Active>,
    next_id: u64,
    held: VecDeque<Input>,
    holding: bool,
    stop_at: Option<Instant>,
    dup_stop_at: Option<Instant>,
    mcp_list_at: Option<Instant>,
    close_turn_at: Option<Instant>,
    mute_pending: bool,
    mute_until: Option<Instant>,
    last_activity: Instant,
    close_after_stop: bool,
    turn_open: bool,
    /// `late_stt`: the previous answer's utterance and `stt`, sent again
    /// after the next `listen start`.
    late: Option<(u32, String)>,
    late_at: Option<Instant>,
}

/// FNV-1a of the device id.
pub(crate) fn device_hash(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

fn is_wake_word(text: &str, words: &[String]) -> bool {
    let clean = |s: &str| s.chars().filter(|c| c.is_alphanumeric()).collect::<String>();
    let t = clean(text);
    words.iter().any(|w| clean(w) == t)
}

impl SessionCore {
    /// A session whose WebSocket upgrade completed at `now`.
    pub fn new(p: SessionParams, now: Instant) -> Self {
        let device_key = device_hash(&p.device_id);
        // Per-device seed: the same fleet and seed give the same mock draws.
        let seed = p.cfg.seed ^ device_key;
        let cfg = p.cfg.clone();
        SessionCore {
            vad: Vad::new(cfg.silence_window, cfg.min_utterance_frames),
            synthesis: Synthesis::new(cfg.tts_rtf),
            pacer: DownlinkPacer::new_turn(cfg.downlink, ChaCha8Rng::seed_from_u64(seed ^ 0x5eed)),
            p,
            seed,
            device_key,
            actions: VecDeque::new(),
            closed: false,
            stalled_until: None,
            deaf: false,
            hello_done: false,
            ear: None,
            tally: Tally::default(),
            utterance: 0,
            ignore_uplink: false,
            announced: VecDeque::new(),
            reply: None,
            next_id: 0,
            held: VecDeque::new(),
            holding: false,
            stop_at: None,
            dup_stop_at: None,
            mcp_list_at: None,
            close_turn_at: None,
            mute_pending: false,
            mute_until: None,
            last_activity: now,
            close_after_stop: false,
            turn_open: false,
            late: None,
            late_at: None,
        }
    }

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// True once the session has ended (no more input is handled).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// False while the wake-word hold queue is full: stop reading the socket.
    pub fn wants_input(&self) -> bool {
        !self.closed && self.held.len() < HOLD_CAPACITY
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        if self.stalled_until.is_some() {
            return self.stalled_until;
        }
        let hard_idle = self.last_activity + self.p.cfg.idle_timeout + HARD_IDLE_EXTRA;
        [
            self.synthesis.next_deadline(),
            self.pacer.next_deadline(),
            self.stop_at,
            self.dup_stop_at,
            self.mcp_list_at,
            self.close_turn_at,
            self.late_at,
            Some(hard_idle),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Handles one input at `now`.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        if self.closed {
            return;
        }
        if matches!(input, Input::PeerClosed) {
            self.end();
            return;
        }
        if self.stalled_until.is_some() || self.deaf {
            return;
        }
        match input {
            Input::Reply { id, event } => self.on_reply_event(now, id, event),
            client if self.holding => self.held.push_back(client),
            client => self.on_client(now, client),
        }
    }

    /// Acts on every deadline that is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        if let Some(until) = self.stalled_until {
            if now >= until {
                self.actions.push_back(Action::Abandon);
                self.end();
            }
            return;
        }
        if self.synthesis.next_deadline().is_some_and(|t| t <= now) {
            self.flush_synthesised(now);
        }
        if self.pacer.next_deadline().is_some_and(|t| t <= now) {
            self.flush_paced(now);
        }
        if self.stop_at.is_some_and(|t| t <= now) {
            self.finish_reply(now);
        }
        if self.dup_stop_at.is_some_and(|t| t <= now) {
            self.dup_stop_at = None;
            self.send(&ServerMessage::Tts(Tts::Stop), true);
        }
        if self.mcp_list_at.is_some_and(|t| t <= now) {
            self.mcp_list_at = None;
            let payload = mcp_tools_list_request(2, None);
            self.send(&ServerMessage::Mcp { payload }, false);
        }
        if self.close_turn_at.is_some_and(|t| t <= now) {
            self.set_turn_open(false);
        }
        if self.late_at.is_some_and(|t| t <= now) {
            self.send_late_stt();
        }
        let hard_idle = self.last_activity + self.p.cfg.idle_timeout + HARD_IDLE_EXTRA;
        if !self.closed && now >= hard_idle {
            MockCounters::bump(&self.p.counters.idle_closes);
            self.close(None);
        }
    }

    /// The connection is over (peer left, shutdown, or the core closed it):
    /// settles the gauges. Idempotent.
    pub fn end(&mut self) {
        if let Some(r) = self.reply.take()
            && r.tts_started
        {
            self.p.counters.open_replies.fetch_sub(1, Ordering::Relaxed);
        }
        self.set_turn_open(false);
        self.closed = true;
    }

    fn close(&mut self, reason: Option<CloseReason>) {
        self.actions.push_back(Action::Close(reason));
        self.end();
    }

    fn on_client(&mut self, now: Instant, input: Input) {
        match input {
            Input::Text(text) => self.on_text(now, &text),
            Input::Binary(data) => self.on_audio(now, &data),
            Input::Reply { .. } | Input::PeerClosed => {}
        }
    }

    /// Tracks the open-turns gauge.
    fn set_turn_open(&mut self, open: bool) {
        self.close_turn_at = None;
        if open != self.turn_open {
            self.turn_open = open;
            let delta = if open { 1 } else { -1 };
            self.p.counters.open_turns.fetch_add(delta, Ordering::Relaxed);
        }
    }

    fn send(&mut self, msg: &ServerMessage, with_session: bool) {
        let sid = with_session.then_some(self.p.session_id.as_str());
        self.actions.push_back(Action::Text(msg.to_json_with_session(sid)));
    }

    fn record_fault(&self, index: u64, kind: FaultKind) {
        self.p.counters.faults.record(&self.p.device_id, index, kind);
    }

    fn on_text(&mut self, now: Instant, text: &str) {
        let c = self.p.counters.clone();
        let msg = match ClientMessage::parse(text) {
            Ok(m) => m,
            // PY echoes non-JSON text verbatim (§5.10) and ignores other
            // non-objects; a `listen` without `state` closes the connection.
            Err(MessageError::NotJson) => return self.actions.push_back(Action::Text(text.to_string())),
            Err(MessageError::NotObject) => return,
            Err(MessageError::Invalid { .. }) => {
                MockCounters::bump(&c.protocol_errors);
                return self.close(None);
            }
        };
        match msg {
            ClientMessage::Hello(h) => {
                if self.p.conn_fault == Some(FaultKind::NoHello) {
                    self.record_fault(self.p.connection, FaultKind::NoHello);
                    self.deaf = true;
                    return;
                }
                MockCounters::bump(&c.hellos);
                self.hello_done = true;
                let hello = ServerHello::websocket(self.p.session_id.clone(), ServerAudioParams::from(&h.audio_params));
                self.send(&ServerMessage::Hello(hello), false);
                if self.p.conn_fault == Some(FaultKind::CloseAfterHello) {
                    self.record_fault(self.p.connection, FaultKind::CloseAfterHello);
                    return self.close(Some(CloseReason {
                        code: 1000,
                        reason: String::new(),
                    }));
                }
                if h.features.mcp && self.p.cfg.mcp {
                    let payload = mcp_initialize_request(1);
                    self.send(&ServerMessage::Mcp { payload }, false);
                }
            }
            ClientMessage::Listen(l) => match l.state {
                ListenState::Start => {
                    MockCounters::bump(&c.listen_starts);
                    self.set_turn_open(true);
                    self.vad.reset(l.mode == Some(ListenMode::Manual));
                    self.tally.clear();
                    self.ignore_uplink = false;
                    if self.late.is_some() && self.late_at.is_none() {
                        self.late_at = Some(now + LATE_STT_AFTER);
                    }
                }
                ListenState::Stop => {
                    MockCounters::bump(&c.listen_stops);
                    if !self.ignore_uplink {
                        let d = self.vad.force_end();
                        self.on_decision(now, d);
                    }
                }
                ListenState::Detect => {
                    self.last_activity = now;
                    let t = l.text.unwrap_or_default();
                    if is_wake_word(&t, &self.p.cfg.wake_words) {
                        MockCounters::bump(&c.wake_words);
                        self.mute_pending = true;
                        self.start_reply(ReplyKind::Greeting(t), None, None);
                    } else {
                        MockCounters::bump(&c.detect_texts);
                        self.start_reply(ReplyKind::Text(t), None, None);
                    }
                }
            },
            ClientMessage::Abort { .. } => self.abort(now),
            ClientMessage::Mcp { payload, .. } => self.on_mcp(now, &payload),
            ClientMessage::Goodbye { .. } | ClientMessage::Unknown(_) => {}
        }
    }

    fn on_mcp(&mut self, now: Instant, payload: &serde_json::Value) {
        let Some(result) = payload.get("result") else {
            return;
        };
        MockCounters::bump(&self.p.counters.mcp_results);
        match payload.get("id").and_then(serde_json::Value::as_u64) {
            Some(1) => self.mcp_list_at = Some(now + MCP_LIST_DELAY),
            Some(2) => {
                if let Some(cursor) = result
                    .get("nextCursor")
                    .and_then(|c| c.as_str())
                    .filter(|c| !c.is_empty())
                {
                    let payload = mcp_tools_list_request(2, Some(cursor));
                    self.send(&ServerMessage::Mcp { payload }, false);
                }
            }
            _ => {}
        }
    }

    /// Hands held client input back after a greeting's `tts stop`, in
    /// order, until something holds again.
    fn release_held(&mut self, now: Instant) {
        while !self.holding && !self.closed && self.stalled_until.is_none() {
            let Some(input) = self.held.pop_front() else { break };
            self.on_client(now, input);
        }
    }

    /// Stops reading and writing for the rest of the connection.
    fn stall(&mut self, now: Instant) {
        self.cancel_reply();
        self.stalled_until = Some(now + STALL_BOUND);
        self.held.clear();
    }
}

/// Bumps `frames_out`/`bytes_out` for one downlink frame.
fn count_out(c: &MockCounters, len: usize) {
    MockCounters::bump(&c.frames_out);
    MockCounters::add(&c.bytes_out, len as u64);
}
