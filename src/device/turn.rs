//! One turn on an open connection, as the firmware does it in auto mode:
//! `listen start`, think-time silence (after the first turn), the clip's
//! packets on absolute 60 ms deadlines, silence until `tts start`, then the
//! answer into the playback model until `tts stop`, then wait until the
//! modelled speaker has drained (PROTOCOL.md §8.3) before the next turn.
//!
//! All timings are measured from end of speech: the scheduled send instant
//! of the clip's last (voiced) packet.

use super::session::{DeviceContext, Socket};
use crate::audio::playback::{FrameFate, Playback};
use crate::audio::{Clip, FRAME, Pacer};
use crate::metrics::{FailureKind, Tally, TurnOutcome, TurnRecord};
use crate::protocol::{
    ClientMessage, Listen, ListenMode, ProtocolVersion, ServerMessage, Tts, framing, mcp_reply, packet_duration,
};
use crate::record::trace::{Fate, Gap, TraceEntry, TraceItem, TurnTrace};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};

/// What the device reports about itself over MCP (§2.3).
const BOARD_NAME: &str = "bread-compact-wifi";
const FIRMWARE_VERSION: &str = "2.0.4";

/// Where a turn is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Microphone on: think-time silence, speech, trailing silence.
    Listening,
    /// Between `tts start` and `tts stop`.
    Speaking,
    /// `tts stop` received; waiting for the modelled speaker to drain.
    Draining,
}

/// How a turn ended, and whether the connection survived it.
pub(crate) struct TurnEnd {
    pub record: TurnRecord,
    pub connection_lost: bool,
    pub trace: Option<Box<TurnTrace>>,
}

/// Per-connection turn state that outlives single turns.
pub(crate) struct TurnRunner {
    session_id: String,
    device_id: String,
    /// The rate the server hello announced (recordings decode at it).
    sample_rate: u32,
    /// Capture a trace of every turn (recording is on for this device).
    tracing: bool,
    version: ProtocolVersion,
    playback: Playback,
    reply_timeout: std::time::Duration,
    pub tally: Tally,
}

/// The mutable state of the turn in progress.
struct Turn {
    phase: Phase,
    eos: Instant,
    record: TurnRecord,
    reply_deadline: Option<Instant>,
    drain_at: Option<Instant>,
    trace: Option<Vec<TraceEntry>>,
}

/// Signed milliseconds from `eos` to `t`.
fn ms_from(eos: Instant, t: Instant) -> f64 {
    if t >= eos {
        (t - eos).as_secs_f64() * 1000.0
    } else {
        -((eos - t).as_secs_f64() * 1000.0)
    }
}

/// Sleeps until `t`, or forever when there is nothing to wait for.
async fn until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

impl TurnRunner {
    pub fn new(ctx: &DeviceContext, session_id: String, sample_rate: u32) -> Self {
        let s = &ctx.settings;
        TurnRunner {
            session_id,
            device_id: ctx.identity.device_id.clone(),
            sample_rate,
            tracing: s.record_all || s.record_devices.contains(&ctx.identity.device_id),
            version: s.protocol_version,
            playback: Playback::new(s.playback),
            reply_timeout: ctx.settings.timeouts.reply,
            tally: Tally::default(),
        }
    }

    /// Runs turn `turn_no` with `clip`.
    pub async fn run(
        &mut self,
        ws: &mut Socket,
        ctx: &DeviceContext,
        turn_no: u32,
        clip: &Clip,
        think: std::time::Duration,
    ) -> TurnEnd {
        let s = &ctx.settings;
        let think_frames = think.as_millis().div_ceil(FRAME.as_millis()) as u64;
        let speech = clip.packets.len() as u64;
        let mut turn = Turn {
            phase: Phase::Listening,
            eos: Instant::now(),
            record: TurnRecord {
                device: ctx.index,
                turn: turn_no,
                clip: clip.name.clone(),
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
            },
            reply_deadline: None,
            drain_at: None,
            trace: self.tracing.then(Vec::new),
        };
        let listen = ClientMessage::Listen(Listen::start(&self.session_id, ListenMode::Auto));
        if ws.send(Message::text(listen.to_json())).await.is_err() {
            return self.end(turn, TurnOutcome::Failed(FailureKind::Closed), true);
        }
        let mut pacer = Pacer::new(Instant::now());
        turn.eos = pacer.deadline_of(think_frames + speech - 1);
        let no_reply_at = turn.eos + s.timeouts.no_reply;
        loop {
            let listening = turn.phase == Phase::Listening;
            let send_at = listening.then(|| pacer.next_deadline());
            tokio::select! {
                _ = ctx.cancel.cancelled() => return self.end(turn, TurnOutcome::Cancelled, false),
                m = ws.next() => {
                    if let Err(kind) = self.on_message(ws, &mut turn, m).await {
                        let lost = kind == FailureKind::Closed;
                        return self.end(turn, TurnOutcome::Failed(kind), lost);
                    }
                }
                _ = until(send_at) => {
                    let n = pacer.index();
                    let packet = if n < think_frames || n >= think_frames + speech {
                        &s.silence
                    } else {
                        &clip.packets[(n - think_frames) as usize]
                    };
                    let due = pacer.advance();
                    turn.record.uplink_frames += 1;
                    if self.send_audio(ws, packet, due).await.is_err() {
                        return self.end(turn, TurnOutcome::Failed(FailureKind::Closed), true);
                    }
                }
                _ = until(listening.then_some(no_reply_at)) => {
                    return self.end(turn, TurnOutcome::Failed(FailureKind::NoReply), false);
                }
                _ = until(turn.reply_deadline.filter(|_| turn.phase == Phase::Speaking)) => {
                    return self.end(turn, TurnOutcome::Failed(FailureKind::ReplyTimeout), false);
                }
                _ = until(turn.drain_at) => return self.end(turn, TurnOutcome::Completed, false),
            }
        }
    }

    fn end(&mut self, mut turn: Turn, outcome: TurnOutcome, connection_lost: bool) -> TurnEnd {
        let r = &mut turn.record;
        r.outcome = outcome;
        let pb = self.playback.finish();
        if r.tts_start.is_some() {
            r.first_play = pb.first_play_at.map(|t| t.saturating_duration_since(turn.eos));
            r.playback = Some(pb.clone());
        }
        let trace = turn.trace.take().map(|entries| {
            let eos = turn.eos;
            Box::new(TurnTrace {
                device: r.device,
                device_id: self.device_id.clone(),
                turn: r.turn,
                clip: r.clip.clone(),
                sample_rate: self.sample_rate,
                outcome: outcome_name(outcome),
                underrun_ms: pb.underrun_ms,
                underruns: pb.underruns,
                overflow_drops: pb.overflow_drops,
                first_audio_ms: r.first_audio.map(|d| d.as_secs_f64() * 1000.0),
                turn_ms: r.turn_time.map(|d| d.as_secs_f64() * 1000.0),
                entries,
                gaps: pb
                    .underrun_spans
                    .iter()
                    .map(|u| Gap {
                        start_ms: ms_from(eos, u.start),
                        end_ms: ms_from(eos, u.end),
                        between_sentences: u.between_sentences,
                    })
                    .collect(),
            })
        });
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
            turn.record
                .first_audio
                .get_or_insert(now.saturating_duration_since(turn.eos));
            match self.playback.frame(now, duration) {
                FrameFate::Played => Fate::Played,
                FrameFate::Queued => Fate::Queued,
                FrameFate::Dropped => Fate::Dropped,
            }
        } else {
            // The firmware drops audio outside *speaking* (§5.4).
            Fate::Ignored
        };
        if let Some(trace) = turn.trace.as_mut() {
            let heard = matches!(fate, Fate::Played | Fate::Queued);
            trace.push(TraceEntry {
                at_ms: ms_from(turn.eos, now),
                queue_depth: self.playback.queue_depth(now) as u32,
                item: TraceItem::Frame {
                    packet: bytes::Bytes::copy_from_slice(frame.payload),
                    fate,
                    play_start_ms: heard
                        .then(|| self.playback.last_play_start().map(|t| ms_from(turn.eos, t)))
                        .flatten(),
                    duration_ms: duration.as_secs_f64() * 1000.0,
                },
            });
        }
        Ok(())
    }

    async fn on_text(&mut self, ws: &mut Socket, turn: &mut Turn, text: &str, now: Instant) -> Result<(), FailureKind> {
        let since_eos = now.saturating_duration_since(turn.eos);
        if let Some(trace) = turn.trace.as_mut() {
            trace.push(TraceEntry {
                at_ms: ms_from(turn.eos, now),
                queue_depth: self.playback.queue_depth(now) as u32,
                item: TraceItem::Text(text.to_string()),
            });
        }
        let msg = match ServerMessage::parse(text) {
            Ok(m) => m,
            Err(_) => {
                // PY echoes non-JSON text; the firmware ignores it.
                self.tally.ignored_messages += 1;
                return Ok(());
            }
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
            ServerMessage::Tts(Tts::Stop) if turn.phase == Phase::Speaking => {
                r.turn_time = Some(since_eos);
                self.playback.stop(now);
                turn.phase = Phase::Draining;
                turn.drain_at = Some(self.playback.drained_at().map_or(now, |d| d.max(now)));
            }
            ServerMessage::Mcp { payload } => {
                if let Some(reply) = mcp_reply(&payload, BOARD_NAME, FIRMWARE_VERSION) {
                    let m = ClientMessage::Mcp {
                        session_id: self.session_id.clone(),
                        payload: reply,
                    };
                    ws.send(Message::text(m.to_json()))
                        .await
                        .map_err(|_| FailureKind::Closed)?;
                }
            }
            // A stray `tts stop` outside a turn (e.g. the duplicate after an
            // abort), later hellos, goodbye and unknown types are ignored,
            // as the firmware does.
            _ => {}
        }
        Ok(())
    }
}

fn outcome_name(o: TurnOutcome) -> String {
    match o {
        TurnOutcome::Completed => "completed".into(),
        TurnOutcome::Cancelled => "cancelled".into(),
        TurnOutcome::Failed(k) => format!("failed: {}", k.as_str()),
    }
}
