//! One turn on an open connection, as the firmware does it (PROTOCOL.md §4.1,
//! §6, §8.3): `listen start` (or, for a wake word, `listen detect` first),
//! think-time silence, the clip's packets on absolute 60 ms deadlines, then
//! by mode: `auto` streams silence until `tts start`; `manual` sends `listen
//! stop` right after the clip; `realtime` keeps streaming through the answer
//! and sends no new `listen start`. The answer goes through the playback
//! model until `tts stop`, and the turn ends when the modelled speaker has
//! drained. A barge-in sends `abort` partway through the answer.
//!
//! Timings are measured from end of speech: the scheduled send instant of
//! the clip's last (voiced) packet.

use super::session::{DeviceContext, Socket};
use super::trace::TurnTracer;
use crate::audio::playback::{FrameFate, Playback};
use crate::audio::{Clip, FRAME, Pacer};
use crate::metrics::{FailureKind, Tally, TurnOutcome, TurnRecord};
use crate::protocol::{
    ClientMessage, Listen, ListenMode, ProtocolVersion, ServerMessage, Tts, framing, mcp_reply, packet_duration,
};
use crate::record::trace::{Fate, TurnTrace};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};

/// What the device reports about itself over MCP (§2.3).
const BOARD_NAME: &str = "bread-compact-wifi";
const FIRMWARE_VERSION: &str = "2.0.4";

/// Answers a server MCP request the way the firmware does (§2.3, §10.1):
/// requests that get no reply (notifications, malformed ids) send nothing.
pub(crate) async fn answer_mcp(
    ws: &mut Socket,
    session_id: &str,
    payload: &serde_json::Value,
) -> Result<(), tungstenite::Error> {
    match mcp_reply(payload, BOARD_NAME, FIRMWARE_VERSION) {
        Some(reply) => {
            let m = ClientMessage::Mcp {
                session_id: session_id.to_string(),
                payload: reply,
            };
            ws.send(Message::text(m.to_json())).await
        }
        None => Ok(()),
    }
}

/// Where a turn is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
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

/// What to say in this turn.
pub(crate) struct TurnSpec<'a> {
    pub turn_no: u32,
    /// The utterance; `None` for the wake-word greeting (silence until the answer).
    pub clip: Option<&'a Clip>,
    pub think: Duration,
    pub mode: ListenMode,
    /// Send `listen detect` with this text first (wake word).
    pub detect: Option<&'a str>,
    /// Interrupt the answer this long after its first audio.
    pub barge_after: Option<Duration>,
}

/// How a turn ended, and whether the connection survived it.
pub(crate) struct TurnEnd {
    pub record: TurnRecord,
    pub connection_lost: bool,
    pub trace: Option<Box<TurnTrace>>,
}

/// Per-connection state that outlives single turns.
pub(crate) struct TurnRunner {
    session_id: String,
    tracer: TurnTracer,
    version: ProtocolVersion,
    playback: Playback,
    reply_timeout: Duration,
    /// The realtime-mode microphone stream, which spans turns.
    stream: Option<Pacer>,
    pub tally: Tally,
}

/// The mutable state of the turn in progress.
struct Turn {
    phase: Phase,
    eos: Instant,
    record: TurnRecord,
    wait_until: Option<Instant>,
    reply_deadline: Option<Instant>,
    drain_at: Option<Instant>,
    abort_at: Option<Instant>,
    barge_after: Option<Duration>,
    /// `abort` was sent.
    aborted: bool,
}

/// The turn's microphone stream: the schedule and where the speech sits in it.
struct Uplink {
    pacer: Pacer,
    /// Packet index of the first and one past the last speech packet.
    speech_from: u64,
    speech_end: u64,
}

/// Sleeps until `t`, or forever when there is nothing to wait for.
pub(crate) async fn until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

pub(crate) fn new_record(ctx: &DeviceContext, turn_no: u32, clip: &str, think_frames: u64) -> TurnRecord {
    TurnRecord {
        device: ctx.index,
        conversation: ctx.conversation,
        turn: turn_no,
        clip: clip.to_string(),
        outcome: TurnOutcome::Completed,
        stt: None,
        llm: None,
        tts_start: None,
        first_audio: None,
        turn_time: None,
        first_play: None,
        frames_received: 0,
        think_frames,
        uplink_frames: 0,
        playback: None,
    }
}

impl TurnRunner {
    pub fn new(ctx: &DeviceContext, session_id: String, sample_rate: u32) -> Self {
        let s = &ctx.settings;
        let on = s.record_all || s.record_devices.contains(&ctx.identity.device_id);
        TurnRunner {
            session_id,
            tracer: TurnTracer::new(on, ctx.identity.device_id.clone(), sample_rate),
            version: s.protocol_version,
            playback: Playback::new(s.playback),
            reply_timeout: s.timeouts.reply,
            stream: None,
            tally: Tally::default(),
        }
    }

    /// A new conversation: the realtime microphone stream starts afresh.
    pub fn new_conversation(&mut self) {
        self.stream = None;
    }

    /// The session id the server gave (sent with every message).
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// Sends one uplink packet at its scheduled instant `due`.
    pub async fn send_packet(
        &mut self,
        ws: &mut Socket,
        packet: &Bytes,
        due: Instant,
    ) -> Result<(), tungstenite::Error> {
        self.send_audio(ws, packet, due).await
    }

    /// Runs one turn.
    pub async fn run(&mut self, ws: &mut Socket, ctx: &DeviceContext, spec: TurnSpec<'_>) -> TurnEnd {
        let think_frames = spec.think.as_millis().div_ceil(FRAME.as_millis()) as u64;
        let name = spec.clip.map_or("(greeting)", |c| c.name.as_str());
        let mut turn = Turn {
            phase: Phase::Listening,
            eos: Instant::now(),
            record: new_record(ctx, spec.turn_no, name, think_frames),
            wait_until: None,
            reply_deadline: None,
            drain_at: None,
            abort_at: None,
            barge_after: spec.barge_after,
            aborted: false,
        };
        self.tracer.begin(ctx.index, spec.turn_no, name);
        if spec.mode == ListenMode::Manual && !spec.think.is_zero() {
            turn.phase = Phase::Waiting;
            turn.wait_until = Some(Instant::now() + spec.think);
        }
        let streaming_already = spec.mode == ListenMode::Realtime && self.stream.is_some();
        if turn.phase == Phase::Listening
            && let Err(kind) = self.open_mic(ws, &spec, streaming_already).await
        {
            return self.end(turn, TurnOutcome::Failed(kind), true);
        }
        let speech = spec.clip.map_or(0, |c| c.packets.len() as u64);
        let silence_first = if spec.mode == ListenMode::Manual {
            0
        } else {
            think_frames
        };
        let pacer = self.stream.take().unwrap_or_else(|| Pacer::new(Instant::now()));
        let speech_from = pacer.index() + silence_first;
        let mut up = Uplink {
            pacer,
            speech_from,
            speech_end: speech_from + speech,
        };
        turn.eos = up.pacer.deadline_of((speech_from + speech).saturating_sub(1));
        if let Some(w) = turn.wait_until {
            turn.eos = w + FRAME * speech.saturating_sub(1) as u32;
        }
        let no_reply_at = turn.eos + ctx.settings.timeouts.no_reply;
        let result = self.turn_loop(ws, ctx, &spec, &mut turn, &mut up, no_reply_at).await;
        if spec.mode == ListenMode::Realtime {
            self.stream = Some(up.pacer);
        }
        match result {
            Ok(outcome) => self.end(turn, outcome, false),
            Err(kind) => self.end(turn, TurnOutcome::Failed(kind), kind == FailureKind::Closed),
        }
    }

    /// Presses the button: `listen detect` (wake word), `listen start`.
    async fn open_mic(&mut self, ws: &mut Socket, spec: &TurnSpec<'_>, streaming: bool) -> Result<(), FailureKind> {
        if let Some(text) = spec.detect {
            let m = ClientMessage::Listen(Listen::detect(&self.session_id, text));
            ws.send(Message::text(m.to_json()))
                .await
                .map_err(|_| FailureKind::Closed)?;
        }
        if !streaming {
            let m = ClientMessage::Listen(Listen::start(&self.session_id, spec.mode));
            ws.send(Message::text(m.to_json()))
                .await
                .map_err(|_| FailureKind::Closed)?;
        }
        Ok(())
    }

    async fn turn_loop(
        &mut self,
        ws: &mut Socket,
        ctx: &DeviceContext,
        spec: &TurnSpec<'_>,
        turn: &mut Turn,
        up: &mut Uplink,
        no_reply_at: Instant,
    ) -> Result<TurnOutcome, FailureKind> {
        // The microphone is on from `listen start`: the first packet leaves
        // at that instant, not a timer tick later, so the server sees audio
        // before it can answer (PY starts its wake-word mute on the next frame).
        if turn.phase == Phase::Listening && up.pacer.next_deadline() <= Instant::now() {
            self.send_next(ws, ctx, spec, turn, up).await?;
        }
        loop {
            let mic_on = match (turn.phase, spec.mode) {
                (Phase::Waiting, _) => false,
                (_, ListenMode::Realtime) => true,
                (Phase::Listening, ListenMode::Manual) => up.pacer.index() < up.speech_end,
                (Phase::Listening, _) => true,
                _ => false,
            };
            let send_at = mic_on.then(|| up.pacer.next_deadline());
            let listening = turn.phase == Phase::Listening;
            tokio::select! {
                _ = ctx.cancel.cancelled() => return Ok(TurnOutcome::Cancelled),
                m = ws.next() => self.on_message(ws, turn, m).await?,
                _ = until(turn.wait_until.filter(|_| turn.phase == Phase::Waiting)) => {
                    turn.phase = Phase::Listening;
                    up.pacer = Pacer::new(Instant::now());
                    self.open_mic(ws, spec, false).await?;
                    self.send_next(ws, ctx, spec, turn, up).await?;
                }
                _ = until(send_at) => self.send_next(ws, ctx, spec, turn, up).await?,
                _ = until(listening.then_some(no_reply_at)) => return Err(FailureKind::NoReply),
                _ = until(turn.reply_deadline.filter(|_| matches!(turn.phase, Phase::Speaking | Phase::Aborting))) => {
                    return Err(FailureKind::ReplyTimeout);
                }
                _ = until(turn.abort_at.filter(|_| turn.phase == Phase::Speaking)) => {
                    let m = ClientMessage::Abort { session_id: self.session_id.clone(), reason: None };
                    ws.send(Message::text(m.to_json())).await.map_err(|_| FailureKind::Closed)?;
                    turn.phase = Phase::Aborting;
                    turn.aborted = true;
                }
                _ = until(turn.drain_at) => {
                    return Ok(if turn.aborted { TurnOutcome::Interrupted } else { TurnOutcome::Completed });
                }
            }
        }
    }

    /// Sends the next uplink packet (think silence, speech or trailing
    /// silence); in manual mode, `listen stop` follows the last speech packet.
    async fn send_next(
        &mut self,
        ws: &mut Socket,
        ctx: &DeviceContext,
        spec: &TurnSpec<'_>,
        turn: &mut Turn,
        up: &mut Uplink,
    ) -> Result<(), FailureKind> {
        let n = up.pacer.index();
        let packet = match spec.clip {
            Some(c) if n >= up.speech_from && n < up.speech_end => &c.packets[(n - up.speech_from) as usize],
            _ => &ctx.settings.silence,
        };
        let due = up.pacer.advance();
        turn.record.uplink_frames += 1;
        self.send_audio(ws, packet, due)
            .await
            .map_err(|_| FailureKind::Closed)?;
        if spec.mode == ListenMode::Manual && up.pacer.index() == up.speech_end && turn.phase == Phase::Listening {
            let m = ClientMessage::Listen(Listen::stop(&self.session_id));
            ws.send(Message::text(m.to_json()))
                .await
                .map_err(|_| FailureKind::Closed)?;
        }
        Ok(())
    }

    fn end(&mut self, mut turn: Turn, outcome: TurnOutcome, connection_lost: bool) -> TurnEnd {
        let r = &mut turn.record;
        r.outcome = outcome;
        let pb = self.playback.finish();
        if r.tts_start.is_some() {
            r.first_play = pb.first_play_at.map(|t| t.saturating_duration_since(turn.eos));
            r.playback = Some(pb.clone());
        }
        let trace = self.tracer.finish(r, &pb, turn.eos);
        TurnEnd {
            record: turn.record,
            connection_lost,
            trace,
        }
    }

    async fn send_audio(&mut self, ws: &mut Socket, packet: &Bytes, due: Instant) -> Result<(), tungstenite::Error> {
        let payload = match self.version {
            ProtocolVersion::V1 => packet.clone(),
            v => match framing::encode(v, packet, 0) {
                Ok(framed) => Bytes::from(framed),
                Err(_) => packet.clone(),
            },
        };
        let len = payload.len() as u64;
        self.tally
            .send_lag
            .record(Instant::now().saturating_duration_since(due));
        ws.send(Message::Binary(payload)).await?;
        self.tally.frames_sent += 1;
        self.tally.bytes_sent += len;
        Ok(())
    }

    /// Handles one incoming message. `Err` ends the turn with that kind.
    async fn on_message(
        &mut self,
        ws: &mut Socket,
        turn: &mut Turn,
        msg: Option<Result<Message, tungstenite::Error>>,
    ) -> Result<(), FailureKind> {
        let now = Instant::now();
        match msg {
            Some(Ok(Message::Text(text))) => self.on_text(ws, turn, &text, now).await,
            Some(Ok(Message::Binary(data))) => self.on_audio(turn, &data, now),
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => Err(FailureKind::Closed),
            Some(Ok(_)) => Ok(()),
        }
    }

    fn on_audio(&mut self, turn: &mut Turn, data: &[u8], now: Instant) -> Result<(), FailureKind> {
        self.tally.frames_received += 1;
        self.tally.bytes_received += data.len() as u64;
        let speaking = turn.phase == Phase::Speaking;
        let parsed = framing::decode(self.version, data)
            .ok()
            .and_then(|f| packet_duration(f.payload).ok().map(|d| (f, d)));
        let Some((frame, duration)) = parsed else {
            // Malformed audio ends the turn while it matters (speaking);
            // outside speaking the firmware drops it unread.
            return if speaking { Err(FailureKind::Protocol) } else { Ok(()) };
        };
        let fate = if speaking {
            turn.record.frames_received += 1;
            if turn.record.first_audio.is_none() {
                turn.record.first_audio = Some(now.saturating_duration_since(turn.eos));
                turn.abort_at = turn.barge_after.map(|d| now + d);
            }
            match self.playback.frame(now, duration) {
                FrameFate::Played => Fate::Played,
                FrameFate::Queued => Fate::Queued,
                FrameFate::Dropped => Fate::Dropped,
            }
        } else {
            // The firmware drops audio outside *speaking* (§5.4).
            Fate::Ignored
        };
        let start = matches!(fate, Fate::Played | Fate::Queued)
            .then(|| self.playback.last_play_start())
            .flatten();
        // Recording is off for most devices: no per-frame trace work then.
        if self.tracer.is_on() {
            let depth = self.playback.queue_depth(now);
            self.tracer
                .frame(turn.eos, now, frame.payload, fate, start, duration, depth);
        }
        Ok(())
    }

    async fn on_text(&mut self, ws: &mut Socket, turn: &mut Turn, text: &str, now: Instant) -> Result<(), FailureKind> {
        let since_eos = now.saturating_duration_since(turn.eos);
        if self.tracer.is_on() {
            self.tracer.text(turn.eos, now, text, self.playback.queue_depth(now));
        }
        let Ok(msg) = ServerMessage::parse(text) else {
            // PY echoes non-JSON text; the firmware ignores it.
            self.tally.ignored_messages += 1;
            return Ok(());
        };
        let r = &mut turn.record;
        match msg {
            ServerMessage::Stt { .. } => {
                r.stt.get_or_insert(since_eos);
            }
            ServerMessage::Llm { .. } => {
                r.llm.get_or_insert(since_eos);
            }
            ServerMessage::Tts(Tts::Start) if turn.phase == Phase::Listening => {
                turn.phase = Phase::Speaking;
                r.tts_start = Some(since_eos);
                turn.reply_deadline = Some(now + self.reply_timeout);
                self.playback.start_turn(now);
            }
            ServerMessage::Tts(Tts::SentenceStart { .. }) if turn.phase == Phase::Speaking => {
                self.playback.sentence_start(now);
            }
            ServerMessage::Tts(Tts::Stop) if matches!(turn.phase, Phase::Speaking | Phase::Aborting) => {
                r.turn_time = Some(since_eos);
                self.playback.stop(now);
                // An abort cuts local playback; otherwise wait for the drain.
                let drained = self.playback.drained_at().map_or(now, |d| d.max(now));
                turn.drain_at = Some(if turn.phase == Phase::Aborting { now } else { drained });
                turn.phase = Phase::Draining;
            }
            ServerMessage::Mcp { payload } => {
                answer_mcp(ws, &self.session_id, &payload)
                    .await
                    .map_err(|_| FailureKind::Closed)?;
            }
            // A stray `tts stop` outside a turn (e.g. the duplicate after an
            // abort), later hellos, goodbye and unknown types are ignored,
            // as the firmware does.
            _ => {}
        }
        Ok(())
    }
}
