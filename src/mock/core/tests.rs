//! The session core driven by scripted inputs at scripted instants: no
//! socket, no runtime. A fake reply pipeline plays the worker pools'
//! part with the configured delays, so every expected time below is plain
//! arithmetic on the config.

use super::*;
use crate::audio::ClipSet;
use crate::dist::Dist;
use crate::mock::VoiceBank;
use crate::mock::config::MockSettings;
use crate::mock::hearing::FALLBACK_TRANSCRIPT;
use serde_json::{Value, json};

pub(super) const F: u64 = 60;

/// One thing the core did, at a millisecond offset.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Out {
    Json(Value),
    Raw(String),
    Bin(Bytes),
    Close(Option<u16>),
    Abandon,
    Start(u64),
    Cancel(u64),
}

impl Out {
    /// A short label: `stt:<text>`, `tts:start`, `sentence:<frames>`, `llm`,
    /// `hello`, `mcp:<method>`, `bin`, `close:1000`, ...
    pub(super) fn label(&self) -> String {
        match self {
            Out::Json(v) => {
                let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
                match s("type").as_str() {
                    "stt" => format!("stt:{}", s("text")),
                    "tts" if s("state") == "sentence_start" => format!("sentence:{}", v["frames"]),
                    "tts" => format!("tts:{}", s("state")),
                    "mcp" => format!("mcp:{}", v["payload"]["method"].as_str().unwrap_or("")),
                    t => t.to_string(),
                }
            }
            Out::Raw(t) => format!("raw:{t}"),
            Out::Bin(_) => "bin".into(),
            Out::Close(c) => format!("close:{}", c.map_or("none".into(), |c| c.to_string())),
            Out::Abandon => "abandon".into(),
            Out::Start(id) => format!("start:{id}"),
            Out::Cancel(id) => format!("cancel:{id}"),
        }
    }
}

/// A core, a fake pipeline and a log.
pub(super) struct Rig {
    pub core: SessionCore,
    pub t0: Instant,
    pub counters: Arc<MockCounters>,
    pub cfg: Arc<MockConfig>,
    pub set: Arc<ClipSet>,
    pub log: Vec<(u64, Out)>,
    pending: Vec<(Instant, u64, u64, ReplyEvent)>,
    seq: u64,
}

/// Fast, fixed delays; `extra` is more `[mock]` TOML.
pub(super) fn config(extra: &str) -> MockConfig {
    let base = [
        "asr_delay = \"300ms\"",
        "llm_delay = \"500ms\"",
        "tts_delay = \"200ms\"",
        "sentences = 1",
        "sentence_delay = \"300ms\"",
    ];
    let mut text: String = base
        .iter()
        .filter(|l| !extra.contains(l.split(' ').next().unwrap_or("")))
        .map(|l| format!("{l}\n"))
        .collect();
    text.push_str(extra);
    let s: MockSettings = toml::from_str(&text).expect("test [mock] parses");
    s.resolve().expect("test [mock] is valid")
}

impl Rig {
    pub(super) fn new(cfg: MockConfig) -> Rig {
        Self::with(cfg, None)
    }

    pub(super) fn with(cfg: MockConfig, conn_fault: Option<FaultKind>) -> Rig {
        let counters = Arc::new(MockCounters::default());
        let cfg = Arc::new(cfg);
        let t0 = Instant::now();
        let params = SessionParams {
            cfg: cfg.clone(),
            counters: counters.clone(),
            hearing: ClipIndex::embedded().unwrap(),
            version: ProtocolVersion::V1,
            device_id: "dev-1".into(),
            session_id: "s-1".into(),
            connection: 4,
            conn_fault,
        };
        Rig {
            core: SessionCore::new(params, t0),
            t0,
            counters,
            cfg,
            set: ClipSet::embedded().unwrap(),
            log: Vec::new(),
            pending: Vec::new(),
            seq: 0,
        }
    }

    pub(super) fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn ms(&self, t: Instant) -> u64 {
        (t - self.t0).as_millis() as u64
    }

    /// Runs deadlines and pipeline events up to `ms`.
    pub(super) fn advance(&mut self, ms: u64) {
        let to = self.at(ms);
        for _ in 0..100_000 {
            let deadline = self.core.next_deadline();
            let event = self.pending.first().map(|p| p.0);
            let next = [deadline, event].into_iter().flatten().min();
            match next {
                Some(t) if t <= to => {
                    if event == Some(t) {
                        let (_, _, id, ev) = self.pending.remove(0);
                        self.core.handle_input(t, Input::Reply { id, event: ev });
                    } else {
                        self.core.handle_timeout(t);
                    }
                    self.collect(t);
                }
                _ => return,
            }
        }
        panic!("runaway");
    }

    pub(super) fn input(&mut self, ms: u64, input: Input) {
        self.advance(ms);
        let t = self.at(ms);
        self.core.handle_input(t, input);
        self.collect(t);
    }

    pub(super) fn text(&mut self, ms: u64, v: Value) {
        self.input(ms, Input::Text(v.to_string()));
    }

    pub(super) fn hello(&mut self, ms: u64) {
        self.text(
            ms,
            json!({"type":"hello","version":1,"transport":"websocket","features":{"mcp":true},
                "audio_params":{"format":"opus","sample_rate":16000,"channels":1,"frame_duration":60}}),
        );
    }

    pub(super) fn listen(&mut self, ms: u64, state: &str, mode: &str) {
        self.text(
            ms,
            json!({"session_id":"s-1","type":"listen","state":state,"mode":mode}),
        );
    }

    pub(super) fn clip(&self, i: usize) -> Vec<Bytes> {
        self.set.clips[i].packets.to_vec()
    }

    /// Streams `packets` from `start` one per 60 ms, then silence until
    /// `until`; returns the instant (ms) of the last of `packets`.
    pub(super) fn stream(&mut self, start: u64, packets: &[Bytes], until: u64) -> u64 {
        let mut t = start;
        for p in packets {
            self.input(t, Input::Binary(p.clone()));
            t += F;
        }
        let last = t.saturating_sub(F);
        while t < until {
            self.input(t, Input::Binary(self.set.silence.clone()));
            t += F;
        }
        last
    }

    fn collect(&mut self, t: Instant) {
        let ms = self.ms(t);
        while let Some(a) = self.core.poll_action() {
            let out = match a {
                Action::Text(s) => match serde_json::from_str::<Value>(&s) {
                    Ok(v) => Out::Json(v),
                    Err(_) => Out::Raw(s),
                },
                Action::Binary(b) => Out::Bin(b),
                Action::Close(r) => Out::Close(r.map(|r| r.code)),
                Action::Abandon => Out::Abandon,
                Action::StartReply(o) => {
                    self.schedule(t, &o);
                    Out::Start(o.id)
                }
                Action::CancelReply(id) => {
                    self.pending.retain(|p| p.2 != id);
                    Out::Cancel(id)
                }
            };
            self.log.push((ms, out));
        }
    }

    /// What the worker pools would report for an order placed at `t`.
    fn schedule(&mut self, t: Instant, o: &ReplyOrder) {
        let c = self.cfg.clone();
        let (stt, sentences) = match &o.kind {
            ReplyKind::Speech(text) => (Some((t + c.asr_delay, text.clone())), c.sentences),
            ReplyKind::Text(text) => (Some((t, text.clone())), c.sentences),
            ReplyKind::Greeting(text) => (Some((t, text.clone())), 1),
            ReplyKind::Goodbye => (None, 1),
        };
        let mut at = t;
        if let Some((when, text)) = stt {
            self.push(when, o.id, ReplyEvent::Stt(text));
            at = when;
        }
        at += c.llm_delay;
        self.push(at, o.id, ReplyEvent::Llm);
        let step = match c.sentence_delay {
            Dist::Fixed(d) => d,
            other => panic!("tests use fixed sentence delays, not {other:?}"),
        };
        for k in 0..sentences as usize {
            at += if k == 0 { c.tts_delay } else { step };
            let (text, frames) = VoiceBank::shared().unwrap().sentence(o.voice_index + k);
            self.push(at, o.id, ReplyEvent::Sentence { text, frames });
        }
        self.push(at, o.id, ReplyEvent::Done);
    }

    fn push(&mut self, t: Instant, id: u64, ev: ReplyEvent) {
        self.seq += 1;
        self.pending.push((t, self.seq, id, ev));
        self.pending.sort_by_key(|p| (p.0, p.1));
    }

    /// Every logged label except binary frames, with its time.
    pub(super) fn messages(&self) -> Vec<(u64, String)> {
        self.log
            .iter()
            .filter(|(_, o)| !matches!(o, Out::Bin(_)))
            .map(|(t, o)| (*t, o.label()))
            .collect()
    }

    /// Times of the messages whose label starts with `prefix`.
    pub(super) fn times(&self, prefix: &str) -> Vec<u64> {
        self.messages()
            .into_iter()
            .filter(|(_, l)| l.starts_with(prefix))
            .map(|(t, _)| t)
            .collect()
    }

    pub(super) fn frame_times(&self) -> Vec<u64> {
        self.log
            .iter()
            .filter(|(_, o)| matches!(o, Out::Bin(_)))
            .map(|(t, _)| *t)
            .collect()
    }

    pub(super) fn count(&self, c: &std::sync::atomic::AtomicU64) -> u64 {
        MockCounters::get(c)
    }
}

/// Frames of the mock voice's sentence `i`.
pub(super) fn sentence_frames(i: usize) -> u64 {
    VoiceBank::shared().unwrap().sentence(i).1.len() as u64
}

/// The paced schedule of one answer's frames after `first` (ms): six at
/// once, then one per 60 ms.
pub(super) fn paced(first: u64, n: u64) -> Vec<u64> {
    (0..n).map(|i| first + i.saturating_sub(5) * F).collect()
}

#[test]
fn normal_auto_turn_has_exact_times_and_the_clips_transcript() {
    let mut rig = Rig::new(config(""));
    rig.hello(0);
    assert_eq!(rig.messages(), vec![(0, "hello".into()), (0, "mcp:initialize".into())]);
    rig.listen(10, "start", "auto");
    let clip = rig.clip(1);
    let last = rig.stream(10, &clip, 10 + clip.len() as u64 * F + 300);
    // VAD: the first packet ≥ 300 ms after the last voiced one; ASR 300 ms.
    let stt = last + 300 + 300;
    let (llm, first) = (stt + 500, stt + 500 + 200);
    let n = sentence_frames(0);
    let stop = paced(first, n).last().unwrap() + 420;
    rig.advance(stop + 2_399);
    let transcript = format!("stt:{}", rig.set.clips[1].transcript);
    let answer: Vec<(u64, String)> = rig.messages().into_iter().skip(2).collect();
    assert_eq!(
        answer,
        vec![
            (stt - 300, "start:0".into()),
            (stt, transcript),
            (stt, "tts:start".into()),
            (llm, "llm".into()),
            (first, format!("sentence:{n}")),
            (stop, "tts:stop".into()),
        ]
    );
    assert_eq!(rig.frame_times(), paced(first, n));
    assert_eq!(rig.count(&rig.counters.turns), 1);
    assert_eq!(rig.count(&rig.counters.replies_completed), 1);
    assert_eq!(rig.count(&rig.counters.frames_out), n);
    assert_eq!(rig.counters.open_replies.load(Ordering::Relaxed), 0);
    // The turn stays open for the drain allowance after `tts stop`.
    assert_eq!(rig.counters.open_turns.load(Ordering::Relaxed), 1);
    rig.advance(stop + 2_400);
    assert_eq!(rig.counters.open_turns.load(Ordering::Relaxed), 0);
}

#[test]
fn second_sentence_start_rides_the_pacing_queue() {
    let mut rig = Rig::new(config("sentences = 2\nsentence_delay = \"0ms\""));
    rig.hello(0);
    rig.text(5, json!({"type":"listen","state":"detect","text":"讲个笑话"}));
    rig.advance(10_000);
    // stt at once (detect text), llm 500 ms, both sentences ready at 700 ms.
    let (n0, n1) = (sentence_frames(0), sentence_frames(1));
    let frames = paced(705, n0 + n1);
    // Released with the frame before its sentence's first one.
    let second_at = frames[n0 as usize - 1];
    assert_eq!(rig.times("sentence:"), vec![705, second_at]);
    assert_eq!(rig.frame_times(), frames);
    assert_eq!(rig.times("tts:stop"), vec![frames.last().unwrap() + 420]);
    assert_eq!(rig.count(&rig.counters.detect_texts), 1);
}

#[test]
fn manual_turn_answers_at_listen_stop_plus_asr() {
    let mut rig = Rig::new(config(""));
    rig.hello(0);
    rig.listen(100, "start", "manual");
    let clip = rig.clip(0);
    let last = rig.stream(100, &clip, 0);
    rig.listen(last + 10, "stop", "manual");
    rig.advance(last + 5_000);
    assert_eq!(rig.times("stt:"), vec![last + 10 + 300]);
    assert_eq!(rig.count(&rig.counters.listen_stops), 1);
}

#[test]
fn abort_stops_at_once_and_repeats_tts_stop_420ms_later() {
    let mut rig = Rig::new(config(""));
    rig.hello(0);
    rig.listen(0, "start", "auto");
    let clip = rig.clip(0);
    let last = rig.stream(0, &clip, 2_000 + clip.len() as u64 * F);
    let first = last + 300 + 300 + 500 + 200;
    let abort_at = first + 130;
    rig.advance(abort_at);
    let sent_before = rig.frame_times().len();
    rig.text(abort_at, json!({"session_id":"s-1","type":"abort"}));
    rig.advance(abort_at + 10_000);
    assert_eq!(rig.times("tts:stop"), vec![abort_at, abort_at + 420]);
    assert_eq!(rig.frame_times().len(), sent_before, "no frame after the abort");
    assert_eq!(rig.times("cancel:0"), vec![abort_at]);
    assert_eq!(rig.count(&rig.counters.aborts), 1);
    assert_eq!(rig.count(&rig.counters.replies_completed), 0);
    assert_eq!(rig.counters.open_replies.load(Ordering::Relaxed), 0);
}

#[test]
fn new_utterance_while_speaking_stops_the_answer_first() {
    let mut rig = Rig::new(config("sentences = 3"));
    rig.hello(0);
    rig.listen(0, "start", "realtime");
    let a = rig.clip(0);
    let last_a = rig.stream(0, &a, last_packet(&a) + 1_500);
    let first = last_a + 300 + 300 + 500 + 200;
    assert!(rig.frame_times().first().is_some_and(|&t| t == first));
    // The user speaks again over the answer (full duplex).
    let b = rig.clip(2);
    let start_b = last_a + 1_560;
    let last_b = rig.stream(start_b, &b, start_b + 20_000);
    let vad_end = last_b + 300;
    let m = rig.messages();
    let at_end: Vec<&str> = m
        .iter()
        .filter(|(t, _)| *t == vad_end)
        .map(|(_, l)| l.as_str())
        .collect();
    assert_eq!(at_end, vec!["cancel:0", "tts:stop", "start:1"]);
    let stts: Vec<String> = m
        .iter()
        .filter(|(_, l)| l.starts_with("stt:"))
        .map(|(_, l)| l.clone())
        .collect();
    assert_eq!(
        stts,
        vec![
            format!("stt:{}", rig.set.clips[0].transcript),
            format!("stt:{}", rig.set.clips[2].transcript)
        ]
    );
    assert_eq!(rig.times("stt:")[1], vad_end + 300);
}

fn last_packet(p: &[Bytes]) -> u64 {
    (p.len() as u64 - 1) * F
}

#[test]
fn idle_session_gets_a_goodbye_turn_and_a_close() {
    let mut rig = Rig::new(config("idle_timeout = \"5s\""));
    rig.hello(0);
    rig.listen(0, "start", "auto");
    rig.stream(0, &[], 12_000);
    // The frame at 5040 ms is the first 5 s after the last activity (the
    // upgrade at 0): goodbye, no `stt`.
    let first = 5_040 + 500 + 200;
    let n = sentence_frames(0);
    let stop = paced(first, n).last().unwrap() + 420;
    let m = rig.messages();
    assert!(rig.times("stt:").is_empty(), "{m:?}");
    assert_eq!(rig.times("tts:start"), vec![5_540]);
    assert_eq!(rig.times("tts:stop"), vec![stop]);
    assert_eq!(rig.times("close:none"), vec![stop]);
    assert_eq!(rig.count(&rig.counters.idle_closes), 1);
    assert!(rig.core.is_closed());
}

#[test]
fn silent_connection_is_closed_180s_after_its_last_activity() {
    let mut rig = Rig::new(config(""));
    rig.hello(0);
    rig.advance(200_000);
    assert_eq!(rig.times("close:none"), vec![180_000]);
    assert_eq!(rig.count(&rig.counters.idle_closes), 1);
}

#[test]
fn mcp_tools_list_follows_the_initialize_result_by_one_second() {
    let mut rig = Rig::new(config(""));
    rig.hello(0);
    rig.text(
        40,
        json!({"session_id":"s-1","type":"mcp","payload":{"jsonrpc":"2.0","id":1,"result":{}}}),
    );
    rig.advance(1_039);
    assert_eq!(rig.times("mcp:tools/list"), Vec::<u64>::new());
    rig.advance(1_040);
    assert_eq!(rig.times("mcp:tools/list"), vec![1_040]);
    rig.text(
        1_100,
        json!({"type":"mcp","payload":{"jsonrpc":"2.0","id":2,"result":{"tools":[],"nextCursor":"c2"}}}),
    );
    assert_eq!(rig.times("mcp:tools/list"), vec![1_040, 1_100]);
    let Some((_, Out::Json(v))) = rig.log.last() else {
        panic!()
    };
    assert_eq!(v["payload"]["params"]["cursor"], "c2");
    assert_eq!(rig.count(&rig.counters.mcp_results), 2);
}

#[test]
fn unknown_audio_gets_the_fallback_transcript_and_non_json_is_echoed() {
    let mut rig = Rig::new(config(""));
    rig.hello(0);
    rig.input(5, Input::Text("ping?".into()));
    assert_eq!(rig.messages().last().unwrap(), &(5, "raw:ping?".to_string()));
    rig.listen(10, "start", "auto");
    // TTS-voice packets: speech, but no uplink clip's.
    let (_, frames) = VoiceBank::shared().unwrap().sentence(3);
    rig.stream(10, &frames, 10 + frames.len() as u64 * F + 1_000);
    rig.advance(20_000);
    let stt: Vec<String> = rig
        .messages()
        .into_iter()
        .filter(|(_, l)| l.starts_with("stt:"))
        .map(|(_, l)| l)
        .collect();
    assert_eq!(stt, vec![format!("stt:{FALLBACK_TRANSCRIPT}")]);
    assert_eq!(rig.count(&rig.counters.unrecognised), 1);
}

#[test]
fn listen_without_state_closes_like_py() {
    let mut rig = Rig::new(config(""));
    rig.hello(0);
    rig.text(5, json!({"type":"listen","mode":"auto"}));
    assert_eq!(rig.times("close:none"), vec![5]);
    assert_eq!(rig.count(&rig.counters.protocol_errors), 1);
}
