//! Scripted tests of the device core: inputs at exact instants, exact
//! outputs and turn records. No sockets, no runtime, no clock.

mod answers;
mod link;
mod races;
mod turns;
mod udp;

use super::*;
use crate::audio::Clip;
use crate::config::Timeouts;
use crate::device::settings::DeviceSettings;
use crate::device::transcript::TranscriptCheck;
use crate::metrics::{FailureKind, TurnOutcome};
use crate::protocol::{ListenMode, ProtocolVersion};
use serde_json::Value;

pub(super) const FRAME_MS: u64 = 60;
/// A 60 ms downlink packet (PY's hybrid SWB, 3 × 20 ms).
pub(super) const TTS_FRAME: [u8; 3] = [0x6b, 0x03, 0xaa];

pub(super) fn settings() -> DeviceSettings {
    DeviceSettings {
        url: "ws://127.0.0.1:1/xiaozhi/v1/".into(),
        protocol_version: ProtocolVersion::V1,
        timeouts: Timeouts {
            hello: Duration::from_secs(10),
            no_reply: Duration::from_secs(15),
            reply: Duration::from_secs(60),
            grace: Duration::from_secs(30),
        },
        silence: Bytes::from_static(b"silence"),
        playback: Default::default(),
        seed: 1,
        record_all: false,
        record_devices: Vec::new(),
        transcript_check: None,
        tls: None,
        ramp_over: std::sync::atomic::AtomicBool::new(true),
        source_addrs: Vec::new(),
        ota: None,
    }
}

/// A clip of `packets` distinct speech packets.
pub(super) fn clip(name: &str, transcript: &str, packets: usize) -> Arc<Clip> {
    Arc::new(Clip {
        name: name.into(),
        transcript: transcript.into(),
        packets: (0..packets).map(|i| Bytes::from(format!("speech-{i}"))).collect(),
        pcm: Arc::from(Vec::new()),
        pause: None,
    })
}

pub(super) fn spec(clip: Option<Arc<Clip>>, mode: ListenMode, think_ms: u64) -> TurnSpec {
    TurnSpec {
        conversation: 0,
        turn_no: 0,
        clip,
        think: Duration::from_millis(think_ms),
        mode,
        detect: None,
        barge_after: None,
    }
}

/// What the device sent, with the millisecond it sent it.
#[derive(Debug, PartialEq)]
pub(super) enum Sent {
    /// A text frame: `type` plus `state` when present, e.g. `listen:start`.
    Text(String),
    /// An uplink packet (its bytes as text).
    Audio(String),
    Close,
}

/// The core under test, on a scripted clock.
pub(super) struct Harness {
    pub core: DeviceCore,
    pub t0: Instant,
    pub now: Instant,
    pub sent: Vec<(u64, Sent)>,
    pub ends: Vec<(u64, TurnEnd)>,
    pub gone: Vec<(u64, Failure)>,
    pub ready: Vec<(u64, Duration)>,
    /// Counters the core handed over before a turn ended.
    pub flushed: Vec<Tally>,
    /// The uplink packets' bytes, in order.
    pub uplink: Vec<Bytes>,
}

impl Harness {
    /// A device whose hello was answered at 10 ms.
    pub fn connected(settings: DeviceSettings) -> Harness {
        let mut h = Harness::opened(settings);
        h.text(
            10,
            r#"{"type":"hello","version":1,"transport":"websocket","session_id":"s1"}"#,
        );
        assert_eq!(h.ready, vec![(10, Duration::from_millis(10))]);
        h
    }

    /// A device that sent its hello at 0 and waits for the server's.
    pub fn opened(settings: DeviceSettings) -> Harness {
        let t0 = Instant::now();
        let mut h = Harness {
            core: DeviceCore::new(Arc::new(settings), 7, "02:00:00:00:00:07"),
            t0,
            now: t0,
            sent: Vec::new(),
            ends: Vec::new(),
            gone: Vec::new(),
            ready: Vec::new(),
            flushed: Vec::new(),
            uplink: Vec::new(),
        };
        h.core.open(t0);
        h.drain();
        h
    }

    pub fn ms(&self, t: Instant) -> u64 {
        (t - self.t0).as_millis() as u64
    }

    pub fn at_ms(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn drain(&mut self) {
        let now = self.ms(self.now);
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Text(t) => self.sent.push((now, Sent::Text(summary(&t)))),
                Output::Binary(b) => {
                    self.sent.push((now, Sent::Audio(String::from_utf8_lossy(&b).into())));
                    self.uplink.push(b);
                }
                Output::Close => self.sent.push((now, Sent::Close)),
                Output::Ready { hello } => self.ready.push((now, hello)),
                Output::TurnEnded(e) => self.ends.push((now, *e)),
                Output::Gone(f) => self.gone.push((now, f)),
                Output::Flush(t) => self.flushed.push(*t),
            }
        }
    }

    /// Runs every deadline up to `ms` (each at its own instant), then sets the clock there.
    pub fn run_to(&mut self, ms: u64) {
        let target = self.at_ms(ms);
        for _ in 0..100_000 {
            match self.core.next_deadline() {
                Some(d) if d <= target => {
                    self.now = self.now.max(d);
                    self.core.handle_timeout(self.now);
                    self.drain();
                }
                _ => break,
            }
        }
        self.now = self.now.max(target);
    }

    pub fn text(&mut self, ms: u64, text: &str) {
        self.run_to(ms);
        self.core.handle_text(self.now, text);
        self.drain();
    }

    pub fn frames(&mut self, ms: u64, n: usize) {
        self.run_to(ms);
        for _ in 0..n {
            self.core.handle_binary(self.now, &TTS_FRAME);
        }
        self.drain();
    }

    /// `n` frames from `ms` on, one every 60 ms.
    pub fn paced_frames(&mut self, ms: u64, n: usize) {
        for k in 0..n as u64 {
            self.frames(ms + k * FRAME_MS, 1);
        }
    }

    /// Whole datagrams (or WebSocket binary frames) arriving at `ms`.
    pub fn binaries(&mut self, ms: u64, frames: &[Vec<u8>]) {
        self.run_to(ms);
        for f in frames {
            self.core.handle_binary(self.now, f);
        }
        self.drain();
    }

    pub fn gone_at(&mut self, ms: u64, failure: Failure) {
        self.run_to(ms);
        self.core.handle_gone(self.now, failure);
        self.drain();
    }

    pub fn start(&mut self, ms: u64, spec: TurnSpec) {
        self.run_to(ms);
        self.core.start_turn(self.now, spec);
        self.drain();
    }

    /// The PY answer: `stt` + `tts start` at `at`, `llm` 500 ms later, one
    /// sentence of `frames` frames (5 at once, then paced) from `at + 700`,
    /// `tts stop` 420 ms after the last frame. Returns the stop instant.
    pub fn answer(&mut self, at: u64, frames: usize) -> u64 {
        self.text(at, r#"{"type":"stt","text":"一加一等于几","session_id":"s1"}"#);
        self.text(at, r#"{"type":"tts","state":"start","session_id":"s1"}"#);
        self.text(at + 500, r#"{"type":"llm","text":"😊","emotion":"happy"}"#);
        self.text(at + 700, r#"{"type":"tts","state":"sentence_start","text":"二"}"#);
        let burst = frames.min(5);
        self.frames(at + 700, burst);
        let paced = frames - burst;
        self.paced_frames(at + 700 + FRAME_MS, paced);
        let last = at + 700 + FRAME_MS * paced as u64;
        self.text(last + 420, r#"{"type":"tts","state":"stop"}"#);
        last + 420
    }

    /// Texts sent, in order, as `type:state` summaries.
    pub fn texts(&self) -> Vec<(u64, String)> {
        self.sent
            .iter()
            .filter_map(|(t, s)| match s {
                Sent::Text(x) => Some((*t, x.clone())),
                _ => None,
            })
            .collect()
    }

    /// Times of the uplink packets sent.
    pub fn audio_times(&self) -> Vec<u64> {
        self.sent
            .iter()
            .filter_map(|(t, s)| matches!(s, Sent::Audio(_)).then_some(*t))
            .collect()
    }

    pub fn only_end(&self) -> &TurnEnd {
        assert_eq!(self.ends.len(), 1, "expected one turn end, got {:?}", self.ends);
        &self.ends[0].1
    }

    pub fn stray(&self, kind: &str) -> u64 {
        self.core.tally.stray.get(kind).copied().unwrap_or(0)
    }
}

/// `type` plus `state` of a JSON text, e.g. `listen:start`.
fn summary(text: &str) -> String {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let ty = v.get("type").and_then(Value::as_str).unwrap_or("?");
    match v.get("state").and_then(Value::as_str) {
        Some(state) => format!("{ty}:{state}"),
        None => ty.to_string(),
    }
}

/// A connected device whose 20-packet turn starts at 100 (end of speech at
/// 1240), set to interrupt 500 ms into the answer, which opens at 1740.
pub(super) fn barging_from_100() -> Harness {
    let mut h = Harness::connected(settings());
    let mut s = spec(Some(clip("a", "一加一等于几", 20)), ListenMode::Auto, 0);
    s.barge_after = Some(Duration::from_millis(500));
    h.start(100, s);
    h.text(1740, r#"{"type":"stt","text":"x"}"#);
    h.text(1740, r#"{"type":"tts","state":"start"}"#);
    h
}

pub(super) fn ms(n: u64) -> Option<Duration> {
    Some(Duration::from_millis(n))
}

pub(super) fn failed(end: &TurnEnd) -> (FailureKind, &str) {
    match end.record.outcome {
        TurnOutcome::Failed(k) => (k, end.record.detail.as_deref().unwrap_or("")),
        other => panic!("expected a failure, got {other:?}"),
    }
}

pub(super) fn check(max_cer: f64, book: &[(&str, &str)]) -> Option<TranscriptCheck> {
    Some(TranscriptCheck {
        max_cer,
        book: book.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect(),
    })
}
