//! What arrives from the server, and whose it is. A turn's timings come
//! only from its own answer:
//!
//! - nothing that arrives before the turn's end of speech can answer it
//!   (a late `stt` or `tts start` from an earlier turn): stray; a stray
//!   `tts start` makes the rest of that answer stray too, up to its `tts
//!   stop`;
//! - `stt` and `tts start` after end of speech open the turn's answer; a
//!   second `stt`, a duplicate `tts start`, a `tts stop` outside *speaking*
//!   (the duplicate PY sends ~420 ms after an `abort`), audio outside
//!   *speaking*: stray, as the firmware ignores them (PROTOCOL.md §5.4);
//! - broken JSON or undecodable audio during a turn fails it (`protocol`,
//!   or `protocol_mismatch` when the audio parses as another binary
//!   version) once the answer is over; outside a turn it is counted.
//!
//! Stray messages are counted by type and never turned into a latency.

use super::link::excerpt;
use super::turn::{Phase, Sentence, WAKE_MUTE_GUARD};
use super::{DeviceCore, Link, Output};
use crate::audio::playback::FrameFate;
use crate::device::transcript::Heard;
use crate::metrics::event::{
    STRAY_AUDIO, STRAY_HELLO, STRAY_LLM, STRAY_MALFORMED, STRAY_SENTENCE, STRAY_STT, STRAY_TEXT, STRAY_TTS_START,
    STRAY_TTS_STOP, STRAY_UNKNOWN,
};
use crate::metrics::{Failure, FailureKind};
use crate::protocol::{ClientMessage, ProtocolVersion, ServerMessage, Tts, framing, mcp_reply, packet_duration};
use crate::record::trace::Fate;
use tokio::time::Instant;

/// What the device reports about itself over MCP (§2.3).
const BOARD_NAME: &str = "bread-compact-wifi";
const FIRMWARE_VERSION: &str = "2.0.4";

/// The frame count a `sentence_start` announces (a mock extension the
/// firmware ignores; real servers do not send it).
fn announced_frames(text: &str) -> Option<u32> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    v.get("frames")?.as_u64().and_then(|n| u32::try_from(n).ok())
}

impl DeviceCore {
    /// Counts a message that cannot belong to the turn in progress.
    pub(super) fn stray(&mut self, kind: &'static str) {
        self.tally.stray(kind);
        if let Some(t) = self.turn.as_mut() {
            t.strays += 1;
        }
    }

    /// A text frame arrived at `now`; whatever fell due by then follows.
    pub fn handle_text(&mut self, now: Instant, text: &str) {
        self.on_text(now, text);
        self.handle_timeout(now);
    }

    fn on_text(&mut self, now: Instant, text: &str) {
        if let Some(t) = self.turn.as_ref()
            && self.tracer.is_on()
        {
            let depth = self.playback.queue_depth(now);
            self.tracer.text(t.eos, now, text, depth);
        }
        let msg = match ServerMessage::parse(text) {
            Ok(m) => m,
            Err(_) => {
                if !self.note_said(text) {
                    self.not_a_message(text);
                }
                return;
            }
        };
        match msg {
            ServerMessage::Hello(h) => self.on_hello(now, h, text),
            ServerMessage::Mcp { payload } => {
                if let Some(reply) = mcp_reply(&payload, BOARD_NAME, FIRMWARE_VERSION) {
                    let session_id = self.session_id.clone();
                    self.send_text(ClientMessage::Mcp {
                        session_id,
                        payload: reply,
                    });
                }
            }
            ServerMessage::Goodbye => {
                self.handle_gone(now, Failure::new(FailureKind::Closed, "the server sent goodbye"));
                if matches!(self.link, Link::Gone) && !self.out.iter().any(|o| matches!(o, Output::Close)) {
                    self.out.push_back(Output::Close);
                }
            }
            other if !matches!(self.link, Link::Open) => {
                let _ = other;
                self.stray(STRAY_UNKNOWN);
            }
            other if self.turn.is_some() => self.on_turn_message(now, other, text),
            other => self.on_idle_message(other),
        }
    }

    /// Text that is not a JSON object: PY's echo (ignored), or broken JSON.
    fn not_a_message(&mut self, text: &str) {
        let trimmed = text.trim_start();
        if !(trimmed.starts_with('{') || trimmed.starts_with('[')) {
            self.stray(STRAY_TEXT);
            return;
        }
        let detail = format!("malformed JSON from the server: {}", excerpt(text));
        self.malformed(FailureKind::Protocol, detail);
    }

    /// A broken message: fails the turn in progress once its answer is
    /// over (the firmware skips it and plays on); counted outside a turn.
    fn malformed(&mut self, kind: FailureKind, detail: String) {
        match self.turn.as_mut() {
            Some(t) => {
                t.verdict.get_or_insert((kind, detail));
            }
            None => self.stray(STRAY_MALFORMED),
        }
    }

    fn on_idle_message(&mut self, msg: ServerMessage) {
        match msg {
            // The server's goodbye turn on an idle connection (no-voice
            // timeout): heard, but nobody's turn.
            ServerMessage::Tts(Tts::Start) => self.idle_answer = true,
            ServerMessage::Tts(Tts::Stop) if self.idle_answer => self.idle_answer = false,
            _ if self.idle_answer => {}
            ServerMessage::Tts(Tts::SentenceEnd { .. }) => {}
            m => self.stray(stray_kind(&m)),
        }
    }

    fn on_turn_message(&mut self, now: Instant, msg: ServerMessage, text: &str) {
        if self.take_extra_answer(now, &msg) {
            return;
        }
        let Some(t) = self.turn.as_mut() else { return };
        let before_eos = now < t.eos;
        let answering = t.stt_seen || !matches!(t.phase, Phase::Listening | Phase::Waiting);
        match msg {
            ServerMessage::Stt { text } if !before_eos && !t.stt_seen && !matches!(t.phase, Phase::Waiting) => {
                t.stt_seen = true;
                t.record.stt = Some(now - t.eos);
                self.stale_answer = false;
                self.check_transcript(&text);
            }
            ServerMessage::Llm { .. } if !before_eos && (answering || !self.stale_answer) => {
                t.record.llm.get_or_insert(now - t.eos);
            }
            ServerMessage::Tts(Tts::Start) if t.phase == Phase::Listening && !before_eos => {
                t.phase = Phase::Speaking;
                t.record.tts_start = Some(now - t.eos);
                t.reply_deadline = Some(now + self.settings.timeouts.reply);
                self.stale_answer = false;
                self.playback.start_turn(now);
            }
            ServerMessage::Tts(Tts::Start) if matches!(t.phase, Phase::Listening | Phase::Waiting) => {
                self.stale_answer = true;
                self.stray(STRAY_TTS_START);
            }
            ServerMessage::Tts(Tts::SentenceStart { .. }) if t.phase == Phase::Speaking => {
                self.playback.sentence_start(now);
                let announced = announced_frames(text);
                t.sentences.push(Sentence { announced, received: 0 });
            }
            ServerMessage::Tts(Tts::SentenceStart { .. }) if t.phase == Phase::Aborting => {}
            ServerMessage::Tts(Tts::Stop) if matches!(t.phase, Phase::Speaking | Phase::Aborting) => {
                self.on_tts_stop(now);
            }
            ServerMessage::Tts(Tts::Stop) if matches!(t.phase, Phase::Listening | Phase::Waiting) => {
                self.stale_answer = false;
                self.stray(STRAY_TTS_STOP);
            }
            ServerMessage::Tts(Tts::SentenceEnd { .. }) => {}
            // JV sends one `llm` per sentence: later ones are part of the answer.
            ServerMessage::Llm { .. } if answering && !before_eos => {}
            m => self.stray(stray_kind(&m)),
        }
    }

    /// Checks `stt` against the spoken clip's transcript (when enabled).
    fn check_transcript(&mut self, heard: &str) {
        let Some(check) = self.settings.transcript_check.as_ref() else {
            return;
        };
        // The server heard the sentence in two parts: this is the rest.
        if self.split_turn() {
            return;
        }
        let Some(t) = self.turn.as_mut() else { return };
        let Some(clip) = t.spec.clip.as_ref() else { return };
        let judged = check.judge(heard, &clip.transcript);
        if judged == Heard::Right {
            return;
        }
        // Speech that began inside the real server's post-greeting mute was
        // cut (PROTOCOL.md §13.1): the wrong words are the mute's doing.
        if let Some(stop) = t.after_greeting
            && t.speech_at < stop + WAKE_MUTE_GUARD
        {
            let detail = format!(
                "speech began {} ms after the greeting's tts stop, inside the server's 2 s wake-word mute; it heard only \"{}\"",
                (t.speech_at - stop).as_millis(),
                excerpt(heard)
            );
            t.verdict.get_or_insert((FailureKind::MutedAfterWake, detail));
            return;
        }
        let verdict = match judged {
            Heard::Right => return,
            Heard::OtherDevice { clip: other, .. } => (
                FailureKind::CrossTalk,
                format!("stt \"{}\" is clip {other}'s text, not {}'s", excerpt(heard), clip.name),
            ),
            Heard::Wrong { cer } => (
                FailureKind::WrongTranscript,
                format!(
                    "stt \"{}\" vs \"{}\": character error rate {:.2} > {:.2}",
                    excerpt(heard),
                    clip.transcript,
                    cer,
                    check.max_cer
                ),
            ),
        };
        t.verdict.get_or_insert(verdict);
    }

    fn on_tts_stop(&mut self, now: Instant) {
        let Some(t) = self.turn.as_mut() else { return };
        t.record.turn_time = Some(now - t.eos);
        self.playback.stop(now);
        // An abort cuts local playback; otherwise wait for the drain.
        let drained = self.playback.drained_at().map_or(now, |d| d.max(now));
        t.drain_at = Some(if t.phase == Phase::Aborting { now } else { drained });
        if t.phase == Phase::Speaking && self.transport == super::Transport::Udp {
            // Over MQTT + UDP the sentence texts and the audio take two
            // roads, so a sentence's first frames may come before its
            // `sentence_start`: only the answer's total can be checked.
            // Datagrams are lost without a word: a sequence gap is counted
            // lost, and so are announced frames missing at the end (a
            // device cannot tell them from a server that stopped early:
            // the answer plays short either way, and the count says so).
            let announced: Option<u32> = t.sentences.iter().map(|s| s.announced).sum();
            // Announced = played + dropped as late or as copies of
            // nothing new (reordered) + lost in a gap + lost at the end.
            let seen = match (t.datagrams_at, self.udp.as_ref()) {
                (Some(at), Some(ch)) => {
                    let c = ch.counts() - at;
                    c.lost + c.reordered
                }
                _ => 0,
            };
            let accounted = t.record.frames_received + seen;
            if let (Some(n), Some(ch)) = (announced, self.udp.as_mut())
                && accounted < u64::from(n)
            {
                ch.missing_at_end(u32::try_from(u64::from(n) - accounted).unwrap_or(u32::MAX));
            }
        } else if t.phase == Phase::Speaking {
            let short = t
                .sentences
                .iter()
                .enumerate()
                .find(|(_, s)| s.announced.is_some_and(|n| s.received < n));
            if let Some((i, s)) = short {
                let detail = format!(
                    "tts stop after {} of sentence {}'s {} announced frames",
                    s.received,
                    i + 1,
                    s.announced.unwrap_or_default()
                );
                t.verdict.get_or_insert((FailureKind::Truncated, detail));
            }
        }
        if t.spec.clip.is_none() {
            // A wake-word greeting: the server's uplink mute follows it.
            self.greeting_stop_at = Some(now);
        }
        t.phase = Phase::Draining;
    }

    /// A binary frame arrived at `now`; whatever fell due by then follows.
    #[cfg(test)]
    pub fn handle_binary(&mut self, now: Instant, data: &[u8]) {
        self.handle_binary_from(now, now, data);
    }

    /// A binary frame that reached the device's socket at `wire` and was
    /// handed over at `now`, after the injected network conditions held it
    /// (`wire <= now`): playback splits a gap it closes between the server
    /// and the network.
    pub fn handle_binary_from(&mut self, now: Instant, wire: Instant, data: &[u8]) {
        if self.transport == super::Transport::Udp {
            // A datagram: opened, and played only when in order.
            match self.udp.as_mut().map(|ch| ch.open(data)) {
                Some(super::Opened::Play(opus)) => self.on_binary(now, wire, &opus),
                Some(super::Opened::Dropped) => {}
                None => self.stray(STRAY_AUDIO),
            }
        } else {
            self.on_binary(now, wire, data);
        }
        self.handle_timeout(now);
    }

    fn on_binary(&mut self, now: Instant, wire: Instant, data: &[u8]) {
        self.tally.frames_received += 1;
        self.tally.bytes_received += data.len() as u64;
        let phase = self.turn.as_ref().map(|t| t.phase);
        match phase {
            None if self.idle_answer => {}
            Some(Phase::Speaking) => self.play(now, wire, data),
            // Frames of our own answer still in flight after the `abort`,
            // or of an answer to the words before a pause.
            Some(Phase::Aborting) => self.trace_frame(now, data, Fate::Ignored, None),
            Some(Phase::Listening) if self.early_answer_audio() => self.trace_frame(now, data, Fate::Ignored, None),
            _ => {
                self.stray(STRAY_AUDIO);
                self.trace_frame(now, data, Fate::Ignored, None);
            }
        }
    }

    /// A frame while *speaking*: through the playback model.
    fn play(&mut self, now: Instant, wire: Instant, data: &[u8]) {
        let version = self.version;
        let parsed = framing::decode(version, data).map_err(|e| e.to_string()).and_then(|f| {
            packet_duration(f.payload)
                .map(|d| (f.payload, d))
                .map_err(|e| e.to_string())
        });
        let (payload, duration) = match parsed {
            Ok(p) => p,
            Err(why) => {
                let f = undecodable(version, data, &why);
                self.malformed(f.kind, f.detail);
                return;
            }
        };
        let Some(t) = self.turn.as_mut() else { return };
        t.record.frames_received += 1;
        if let Some(s) = t.sentences.last_mut() {
            s.received += 1;
        }
        if t.record.first_audio.is_none() {
            t.record.first_audio = Some(now - t.eos);
            t.abort_at = t.spec.barge_after.map(|d| now + d);
        }
        let fate = match self.playback.frame_from(now, wire, duration) {
            FrameFate::Played => Fate::Played,
            FrameFate::Queued => Fate::Queued,
            FrameFate::Dropped => Fate::Dropped,
        };
        let start = (fate != Fate::Dropped)
            .then(|| self.playback.last_play_start())
            .flatten();
        self.trace_frame_payload(now, payload, fate, start, duration);
    }

    fn trace_frame(&mut self, now: Instant, data: &[u8], fate: Fate, start: Option<Instant>) {
        if self.tracer.is_on() {
            let version = self.version;
            let payload = framing::decode(version, data).map_or(data, |f| f.payload);
            let duration = packet_duration(payload).unwrap_or_default();
            let payload = payload.to_vec();
            self.trace_frame_payload(now, &payload, fate, start, duration);
        }
    }

    fn trace_frame_payload(
        &mut self,
        now: Instant,
        payload: &[u8],
        fate: Fate,
        start: Option<Instant>,
        duration: std::time::Duration,
    ) {
        // Recording is off for most devices: no per-frame trace work then.
        if !self.tracer.is_on() {
            return;
        }
        let Some(eos) = self.turn.as_ref().map(|t| t.eos) else {
            return;
        };
        let depth = self.playback.queue_depth(now);
        self.tracer.frame(eos, now, payload, fate, start, duration, depth);
    }
}

/// Why a downlink frame could not be played: the wrong binary version
/// (it parses as raw v1 Opus while v2/v3 was asked for), or plain garbage.
fn undecodable(version: ProtocolVersion, data: &[u8], why: &str) -> Failure {
    if version != ProtocolVersion::V1 && packet_duration(data).is_ok() {
        return Failure::new(
            FailureKind::ProtocolMismatch,
            format!(
                "asked for binary protocol v{}; downlink frames parse as v1 (raw Opus)",
                version.as_u8()
            ),
        );
    }
    let head: Vec<String> = data.iter().take(8).map(|b| format!("{b:02x}")).collect();
    Failure::new(
        FailureKind::Protocol,
        format!(
            "undecodable audio frame ({why}): {} bytes starting {}",
            data.len(),
            head.join(" ")
        ),
    )
}

/// The stray-message type of a server message.
fn stray_kind(m: &ServerMessage) -> &'static str {
    match m {
        ServerMessage::Stt { .. } => STRAY_STT,
        ServerMessage::Llm { .. } => STRAY_LLM,
        ServerMessage::Tts(Tts::Start) => STRAY_TTS_START,
        ServerMessage::Tts(Tts::SentenceStart { .. }) => STRAY_SENTENCE,
        ServerMessage::Tts(Tts::Stop) => STRAY_TTS_STOP,
        ServerMessage::Hello(_) => STRAY_HELLO,
        _ => STRAY_UNKNOWN,
    }
}
