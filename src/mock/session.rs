//! One mock connection: checks the headers and hello, runs the VAD over the
//! uplink, drives answers through the reply pipeline and paces their audio
//! like PY. The session task alone owns the socket; the pipeline reports to
//! it over a channel.

use super::pacing::{DownlinkPacer, Outgoing};
use super::reply::{ReplyEvent, ReplyKind};
use super::vad::{Vad, VadDecision};
use super::{MockCounters, Shared};
use crate::audio::voice::VoiceDetector;
use crate::protocol::{
    ClientHeaders, ClientMessage, ListenMode, ListenState, MessageError, ProtocolVersion, ServerAudioParams,
    ServerHello, ServerMessage, Tts, framing, mcp_initialize_request, mcp_tools_list_request, read_client_headers,
};
use futures_util::{SinkExt, StreamExt};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

/// `tts stop` follows the last frame after (5 + 2) × 60 ms (PY, §7.2).
pub(super) const STOP_DELAY: Duration = Duration::from_millis(420);
/// Uplink ignored after a wake word (PY, §4.1).
const WAKE_MUTE: Duration = Duration::from_secs(2);
/// PY's MCP pause between the `initialize` result and `tools/list` (§2.3).
const MCP_LIST_DELAY: Duration = Duration::from_secs(1);
/// Hard idle close comes this long after the idle timeout (PY: +60 s).
const HARD_IDLE_EXTRA: Duration = Duration::from_secs(60);
/// Plain-text notices PY sends before closing (§1.3).
const NO_DEVICE_ID: &str = "端口正常，如需测试连接，请启动digital-human测试";
const AUTH_FAILED: &str = "认证失败";
/// After `tts stop`, a turn stays open this long: the most audio a device
/// can still hold (its 40-frame decode queue), so a device that drains and
/// speaks again is one continuous speaker.
pub(super) const DRAIN_ALLOWANCE: Duration = Duration::from_millis(2400);
/// Reply events in flight per session.
const REPLY_CHANNEL: usize = 64;

pub(super) type Ws = WebSocketStream<TcpStream>;

/// The answer in progress.
pub(super) struct Active {
    pub(super) id: u64,
    pub(super) cancel: CancellationToken,
    pub(super) tts_started: bool,
    pub(super) produced_all: bool,
}

pub(super) struct Session {
    pub(super) sh: Arc<Shared>,
    pub(super) ws: Ws,
    pub(super) version: ProtocolVersion,
    pub(super) session_id: String,
    pub(super) hello_done: bool,
    pub(super) vad: Vad,
    pub(super) detector: VoiceDetector,
    pub(super) pacer: DownlinkPacer,
    pub(super) out: Vec<Outgoing>,
    pub(super) reply: Option<Active>,
    pub(super) next_id: u64,
    pub(super) stop_at: Option<Instant>,
    pub(super) dup_stop_at: Option<Instant>,
    pub(super) mcp_list_at: Option<Instant>,
    pub(super) mute_pending: bool,
    pub(super) mute_until: Option<Instant>,
    pub(super) last_activity: Instant,
    pub(super) close_after_stop: bool,
    pub(super) tx: mpsc::Sender<(u64, ReplyEvent)>,
    pub(super) rx: mpsc::Receiver<(u64, ReplyEvent)>,
    pub(super) seed: u64,
    pub(super) turn_open: bool,
    pub(super) close_turn_at: Option<Instant>,
}

async fn until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Serves one connection to its end.
pub(crate) async fn run(stream: TcpStream, sh: Arc<Shared>, cancel: CancellationToken) {
    let mut headers: Option<ClientHeaders> = None;
    // The error type is fixed by tungstenite's `Callback` trait.
    #[allow(clippy::result_large_err)]
    let callback = |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
        headers = Some(read_client_headers(req));
        Ok(resp)
    };
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await else {
        return;
    };
    let c = &sh.counters;
    MockCounters::bump(&c.sessions);
    c.active_sessions.fetch_add(1, Ordering::Relaxed);
    let headers = headers.unwrap_or_default();
    if let Some(notice) = refuse(&headers, sh.cfg.token.as_deref()) {
        let _ = ws.send(Message::text(notice)).await;
        let _ = ws.close(None).await;
    } else {
        let version = headers
            .protocol_version
            .as_deref()
            .and_then(|v| v.trim().parse::<u8>().ok())
            .and_then(|v| ProtocolVersion::try_from(v).ok())
            .unwrap_or(ProtocolVersion::V1);
        let device_id = headers.device_id.clone().unwrap_or_default();
        Session::new(sh.clone(), ws, version, &device_id).run(cancel).await;
    }
    sh.counters.active_sessions.fetch_sub(1, Ordering::Relaxed);
}

/// The plain-text notice to send before closing, if the headers are refused.
fn refuse(h: &ClientHeaders, token: Option<&str>) -> Option<&'static str> {
    if h.device_id.as_deref().is_none_or(str::is_empty) {
        return Some(NO_DEVICE_ID);
    }
    match token {
        Some(t) if h.authorization.as_deref() != Some(format!("Bearer {t}").as_str()) => Some(AUTH_FAILED),
        _ => None,
    }
}

/// Session ids: unique per server process, UUID-shaped like PY's.
fn new_session_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("00000000-0000-4000-8000-{n:012x}")
}

fn is_wake_word(text: &str, words: &[String]) -> bool {
    let clean = |s: &str| s.chars().filter(|c| c.is_alphanumeric()).collect::<String>();
    let t = clean(text);
    words.iter().any(|w| clean(w) == t)
}

impl Session {
    fn new(sh: Arc<Shared>, ws: Ws, version: ProtocolVersion, device_id: &str) -> Self {
        // Per-device seed: the same fleet and seed give the same mock draws.
        let seed = sh.cfg.seed
            ^ device_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
            });
        let (tx, rx) = mpsc::channel(REPLY_CHANNEL);
        let cfg = &sh.cfg;
        Session {
            vad: Vad::new(cfg.silence_window, cfg.min_utterance_frames),
            sh: sh.clone(),
            ws,
            version,
            session_id: new_session_id(),
            hello_done: false,
            detector: VoiceDetector::new(),
            pacer: DownlinkPacer::new_turn(cfg.downlink, ChaCha8Rng::seed_from_u64(seed ^ 0x5eed)),
            seed,
            turn_open: false,
            close_turn_at: None,
            out: Vec::new(),
            reply: None,
            next_id: 0,
            stop_at: None,
            dup_stop_at: None,
            mcp_list_at: None,
            mute_pending: false,
            mute_until: None,
            last_activity: Instant::now(),
            close_after_stop: false,
            tx,
            rx,
        }
    }

    async fn run(mut self, cancel: CancellationToken) {
        let s = &mut self;
        let hard_idle = s.sh.cfg.idle_timeout + HARD_IDLE_EXTRA;
        loop {
            let keep = tokio::select! {
                _ = cancel.cancelled() => false,
                m = s.ws.next() => match m {
                    Some(Ok(msg)) => s.on_message(msg).await,
                    _ => false,
                },
                Some((id, ev)) = s.rx.recv() => s.on_reply_event(id, ev).await,
                _ = until(s.pacer.next_deadline()) => {
                    let now = Instant::now();
                    s.pacer.pop_due(now, &mut s.out);
                    s.flush_out(now).await
                }
                _ = until(s.stop_at) => s.finish_reply().await,
                _ = until(s.dup_stop_at) => {
                    s.dup_stop_at = None;
                    s.send_json(&ServerMessage::Tts(Tts::Stop), true).await
                }
                _ = until(s.mcp_list_at) => {
                    s.mcp_list_at = None;
                    let payload = mcp_tools_list_request(2, None);
                    s.send_json(&ServerMessage::Mcp { payload }, false).await
                }
                _ = until(s.close_turn_at) => {
                    s.set_turn_open(false);
                    true
                }
                _ = tokio::time::sleep_until(s.last_activity + hard_idle) => {
                    MockCounters::bump(&s.sh.counters.idle_closes);
                    false
                }
            };
            if !keep {
                break;
            }
        }
        s.cancel_reply();
        s.set_turn_open(false);
        let _ = tokio::time::timeout(Duration::from_secs(1), s.ws.close(None)).await;
    }

    /// Tracks the open-turns gauge.
    fn set_turn_open(&mut self, open: bool) {
        self.close_turn_at = None;
        if open != self.turn_open {
            self.turn_open = open;
            let delta = if open { 1 } else { -1 };
            self.sh.counters.open_turns.fetch_add(delta, Ordering::Relaxed);
        }
    }

    async fn on_message(&mut self, msg: Message) -> bool {
        match msg {
            Message::Text(text) => self.on_text(&text).await,
            Message::Binary(data) => self.on_audio(&data).await,
            Message::Close(_) => false,
            _ => true,
        }
    }

    async fn on_text(&mut self, text: &str) -> bool {
        let now = Instant::now();
        let c = self.sh.counters.clone();
        let msg = match ClientMessage::parse(text) {
            Ok(m) => m,
            // PY echoes non-JSON text verbatim (§5.10) and ignores other
            // non-objects; a `listen` without `state` closes the connection.
            Err(MessageError::NotJson) => return self.ws.send(Message::text(text)).await.is_ok(),
            Err(MessageError::NotObject) => return true,
            Err(MessageError::Invalid { .. }) => {
                MockCounters::bump(&c.protocol_errors);
                return false;
            }
        };
        match msg {
            ClientMessage::Hello(h) => {
                MockCounters::bump(&c.hellos);
                self.hello_done = true;
                let hello = ServerHello::websocket(self.session_id.clone(), ServerAudioParams::from(&h.audio_params));
                if !self.send_json(&ServerMessage::Hello(hello), false).await {
                    return false;
                }
                if h.features.mcp && self.sh.cfg.mcp {
                    let payload = mcp_initialize_request(1);
                    return self.send_json(&ServerMessage::Mcp { payload }, false).await;
                }
                true
            }
            ClientMessage::Listen(l) => match l.state {
                ListenState::Start => {
                    MockCounters::bump(&c.listen_starts);
                    self.set_turn_open(true);
                    self.vad.reset(l.mode == Some(ListenMode::Manual));
                    true
                }
                ListenState::Stop => {
                    MockCounters::bump(&c.listen_stops);
                    let d = self.vad.force_end();
                    self.on_decision(d).await
                }
                ListenState::Detect => {
                    self.last_activity = now;
                    let t = l.text.unwrap_or_default();
                    if is_wake_word(&t, &self.sh.cfg.wake_words) {
                        MockCounters::bump(&c.wake_words);
                        self.mute_pending = true;
                        self.start_reply(ReplyKind::Greeting(t)).await
                    } else {
                        MockCounters::bump(&c.detect_texts);
                        self.start_reply(ReplyKind::Text(t)).await
                    }
                }
            },
            ClientMessage::Abort { .. } => self.abort(now).await,
            ClientMessage::Mcp { payload, .. } => self.on_mcp(&payload, now).await,
            ClientMessage::Goodbye { .. } | ClientMessage::Unknown(_) => true,
        }
    }

    async fn on_mcp(&mut self, payload: &serde_json::Value, now: Instant) -> bool {
        let Some(result) = payload.get("result") else {
            return true;
        };
        MockCounters::bump(&self.sh.counters.mcp_results);
        match payload.get("id").and_then(serde_json::Value::as_u64) {
            Some(1) => self.mcp_list_at = Some(now + MCP_LIST_DELAY),
            Some(2) => {
                if let Some(cursor) = result
                    .get("nextCursor")
                    .and_then(|c| c.as_str())
                    .filter(|c| !c.is_empty())
                {
                    let payload = mcp_tools_list_request(2, Some(cursor));
                    return self.send_json(&ServerMessage::Mcp { payload }, false).await;
                }
            }
            _ => {}
        }
        true
    }

    async fn on_audio(&mut self, data: &[u8]) -> bool {
        let now = Instant::now();
        let c = self.sh.counters.clone();
        MockCounters::bump(&c.frames_in);
        MockCounters::add(&c.bytes_in, data.len() as u64);
        if !self.hello_done {
            MockCounters::bump(&c.frames_before_hello);
            return true;
        }
        let Ok(frame) = framing::decode(self.version, data) else {
            MockCounters::bump(&c.protocol_errors);
            return true;
        };
        if self.mute_pending {
            self.mute_pending = false;
            self.mute_until = Some(now + WAKE_MUTE);
        }
        if self.mute_until.is_some_and(|m| now < m) {
            return true;
        }
        let voiced = self.detector.is_voiced(frame.payload);
        if voiced {
            self.last_activity = now;
        }
        let decision = self.vad.packet(now, voiced);
        if !self.on_decision(decision).await {
            return false;
        }
        let idle = now.saturating_duration_since(self.last_activity) >= self.sh.cfg.idle_timeout;
        if idle && self.reply.is_none() && !self.close_after_stop {
            self.close_after_stop = true;
            return self.start_reply(ReplyKind::Goodbye).await;
        }
        true
    }

    async fn on_decision(&mut self, d: VadDecision) -> bool {
        match d {
            VadDecision::Continue => true,
            VadDecision::TooShort(_) => {
                MockCounters::bump(&self.sh.counters.too_short);
                true
            }
            VadDecision::Utterance(_) => {
                self.set_turn_open(true);
                self.start_reply(ReplyKind::Speech).await
            }
        }
    }
}
