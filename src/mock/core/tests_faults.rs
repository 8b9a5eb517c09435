//! The wake-word hold and mute (PROTOCOL.md §13.1) and every fault that
//! the session core injects, at scripted instants.

use super::answer::{BAD_JSON, BAD_OPUS};
use super::tests::{F, Rig, config, paced, sentence_frames};
use super::*;
use crate::mock::fault::InjectedFault;
use serde_json::json;

/// `listen detect` with the wake word at 0; a `listen start` (5 ms) and an
/// MCP result (7 ms) sent during the greeting, and silence every 60 ms from
/// 65 ms until the greeting's `tts stop` has been sent. Returns the stop's
/// time, the frames sent before it and the next free 60 ms slot.
fn greet(rig: &mut Rig) -> (u64, u64, u64) {
    rig.hello(0);
    rig.text(
        0,
        json!({"session_id":"s-1","type":"listen","state":"detect","text":"你好小智"}),
    );
    rig.listen(5, "start", "auto");
    rig.text(7, json!({"type":"mcp","payload":{"jsonrpc":"2.0","id":1,"result":{}}}));
    let mut t = 65;
    let mut held = 0;
    for _ in 0..1_000 {
        rig.advance(t);
        if !rig.times("tts:stop").is_empty() {
            break;
        }
        // Nothing from the client is handled while the greeting plays.
        assert_eq!(rig.count(&rig.counters.listen_starts), 0);
        assert_eq!(rig.count(&rig.counters.frames_in), 0);
        rig.input(t, Input::Binary(rig.set.silence.clone()));
        held += 1;
        t += F;
    }
    (rig.times("tts:stop")[0], held, t)
}

/// The shortest bundled clip (its speech fits inside the 2 s mute, bar a few packets).
fn shortest(rig: &Rig) -> usize {
    (0..rig.set.clips.len())
        .min_by_key(|&i| rig.set.clips[i].packets.len())
        .unwrap()
}

#[test]
fn wake_word_greeting_holds_every_client_message_until_its_tts_stop() {
    let mut rig = Rig::new(config(""));
    let (stop, held, _) = greet(&mut rig);
    let n = sentence_frames(0);
    // Greeting: `stt` and `tts start` at once, llm 500 ms, audio 200 ms on.
    assert_eq!(rig.times("stt:你好小智"), vec![0]);
    assert_eq!(stop, paced(700, n).last().unwrap() + 420);
    // Released at the stop, in order: listen start, MCP result, frames.
    assert_eq!(rig.count(&rig.counters.listen_starts), 1);
    assert_eq!(rig.count(&rig.counters.frames_in), held);
    assert_eq!(rig.count(&rig.counters.muted_frames), held);
    rig.advance(stop + 1_000);
    assert_eq!(rig.times("mcp:tools/list"), vec![stop + 1_000]);
}

#[test]
fn speech_starting_at_the_greetings_tts_stop_is_muted_and_gets_no_stt() {
    let mut rig = Rig::new(config(""));
    let (stop, held, next) = greet(&mut rig);
    let i = shortest(&rig);
    let clip = rig.clip(i);
    assert!(clip.len() <= 43, "clip {i} too long for this test: {}", clip.len());
    let last = rig.stream(next, &clip, next + 6_000);
    rig.advance(last + 10_000);
    assert_eq!(rig.times("stt:"), vec![0], "only the greeting's stt");
    assert_eq!(rig.count(&rig.counters.too_short), 1);
    // Muted: the held frames plus every frame in [stop, stop + 2 s).
    let in_window = (0..).map(|k| next + k * F).take_while(|&t| t < stop + 2_000).count() as u64;
    assert_eq!(rig.count(&rig.counters.muted_frames), held + in_window);
}

#[test]
fn speech_starting_2_1s_after_the_greeting_is_heard_whole() {
    let mut rig = Rig::new(config(""));
    let (stop, _, next) = greet(&mut rig);
    let start = (0..).map(|k| next + k * F).find(|&t| t >= stop + 2_100).unwrap();
    rig.stream(next, &[], start);
    let clip = rig.clip(0);
    rig.stream(start, &clip, start + clip.len() as u64 * F + 1_000);
    rig.advance(start + 20_000);
    let spoken_last = start + (clip.len() as u64 - 1) * F;
    assert_eq!(rig.times("stt:"), vec![0, spoken_last + 300 + 300]);
    assert!(
        rig.messages()
            .iter()
            .any(|(_, l)| *l == format!("stt:{}", rig.set.clips[0].transcript)),
        "the whole clip was recognised"
    );
}

/// One device turn (clip 0 from 0 ms, silence to 40 s) under `[[fault]]`
/// lines; returns the rig and the instant the VAD ended the utterance.
fn faulted(fault: &str) -> (Rig, u64) {
    let mut rig = Rig::new(config(&format!("[[fault]]\n{fault}\n")));
    rig.hello(0);
    rig.listen(0, "start", "auto");
    let clip = rig.clip(0);
    let vad_end = (clip.len() as u64 - 1) * F + 300;
    rig.stream(0, &clip, 40_000);
    rig.advance(40_000);
    (rig, vad_end)
}

fn injected(rig: &Rig) -> Vec<InjectedFault> {
    rig.counters.faults.injected()
}

fn one(kind: FaultKind, index: u64) -> Vec<InjectedFault> {
    vec![InjectedFault {
        device: "dev-1".into(),
        index,
        kind,
    }]
}

#[test]
fn no_stt_ignores_the_utterance_until_the_next_listen_start() {
    let (mut rig, _) = faulted("kind = \"no_stt\"\nturns = [0]");
    assert!(rig.times("stt:").is_empty());
    assert!(rig.times("tts:").is_empty());
    assert_eq!(injected(&rig), one(FaultKind::NoStt, 0));
    // The next turn is utterance 1, answered as usual.
    rig.listen(40_000, "start", "auto");
    let clip = rig.clip(2);
    rig.stream(40_000, &clip, 46_000);
    rig.advance(50_000);
    assert_eq!(rig.times("stt:"), vec![40_000 + (clip.len() as u64 - 1) * F + 600]);
    assert_eq!(rig.counters.faults.total(), 1);
}

#[test]
fn no_tts_start_sends_stt_and_nothing_after_it() {
    let (rig, vad_end) = faulted("kind = \"no_tts_start\"\nturns = [0]");
    let after: Vec<String> = rig
        .messages()
        .into_iter()
        .filter(|(t, _)| *t > 0)
        .map(|(_, l)| l)
        .collect();
    assert_eq!(
        after,
        vec![
            "start:0".to_string(),
            format!("stt:{}", rig.set.clips[0].transcript),
            "cancel:0".into()
        ]
    );
    assert_eq!(rig.times("stt:"), vec![vad_end + 300]);
    assert!(rig.frame_times().is_empty());
    assert_eq!(injected(&rig), one(FaultKind::NoTtsStart, 0));
}

#[test]
fn stall_audio_stops_after_eight_frames_without_tts_stop() {
    let (rig, vad_end) = faulted("kind = \"stall_audio\"\nturns = [0]");
    let first = vad_end + 300 + 500 + 200;
    assert_eq!(rig.frame_times(), paced(first, 8));
    assert!(rig.times("tts:stop").is_empty());
    assert_eq!(injected(&rig), one(FaultKind::StallAudio, 0));
}

#[test]
fn close_mid_tts_closes_with_1000_after_the_eighth_frame() {
    let (rig, vad_end) = faulted("kind = \"close_mid_tts\"\nturns = [0]");
    let frames = paced(vad_end + 1_000, 8);
    assert_eq!(rig.frame_times(), frames);
    assert_eq!(rig.times("close:1000"), vec![frames[7]]);
    assert!(rig.core.is_closed());
}

#[test]
fn early_tts_stop_truncates_the_announced_sentence() {
    let (rig, vad_end) = faulted("kind = \"early_tts_stop\"\nturns = [0]\nafter_frames = 10");
    let frames = paced(vad_end + 1_000, 10);
    assert_eq!(rig.frame_times(), frames);
    assert_eq!(rig.times("tts:stop"), vec![frames[9] + 420]);
    let n = sentence_frames(0);
    assert!(n > 10);
    assert_eq!(rig.times(&format!("sentence:{n}")), vec![frames[0]]);
    assert_eq!(
        rig.count(&rig.counters.replies_completed),
        0,
        "a truncated answer is not complete"
    );
}

#[test]
fn bad_binary_slips_one_invalid_opus_packet_into_the_audio() {
    let (rig, _) = faulted("kind = \"bad_binary\"\nturns = [0]");
    let bins: Vec<&Bytes> = rig
        .log
        .iter()
        .filter_map(|(_, o)| match o {
            super::tests::Out::Bin(b) => Some(b),
            _ => None,
        })
        .collect();
    assert_eq!(bins.len() as u64, sentence_frames(0) + 1);
    assert_eq!(bins[8].as_ref(), &BAD_OPUS);
    assert!(crate::protocol::packet_duration(bins[8]).is_err());
    assert_eq!(rig.times("tts:stop").len(), 1);
}

#[test]
fn bad_json_sends_a_broken_text_frame_mid_answer() {
    let (rig, vad_end) = faulted("kind = \"bad_json\"\nturns = [0]");
    let frames = paced(vad_end + 1_000, 8);
    assert_eq!(rig.times(&format!("raw:{BAD_JSON}")), vec![frames[7]]);
    assert!(serde_json::from_str::<serde_json::Value>(BAD_JSON).is_err());
}

#[test]
fn cross_talk_sends_another_clips_transcript() {
    let (rig, vad_end) = faulted("kind = \"cross_talk\"\nturns = [0]");
    let other = &rig.set.clips[1].transcript;
    assert_eq!(rig.times(&format!("stt:{other}")), vec![vad_end + 300]);
    assert_eq!(injected(&rig), one(FaultKind::CrossTalk, 0));
}

#[test]
fn stall_socket_goes_silent_and_gives_up_after_60s() {
    let (mut rig, vad_end) = faulted("kind = \"stall_socket\"\nturns = [0]");
    rig.listen(41_000, "start", "auto");
    rig.advance(vad_end + 60_000);
    let after: Vec<(u64, String)> = rig.messages().into_iter().filter(|(t, _)| *t > 0).collect();
    assert_eq!(after, vec![(vad_end + 60_000, "abandon".to_string())]);
    assert_eq!(rig.count(&rig.counters.listen_starts), 1, "input ignored while stalled");
}

#[test]
fn late_stt_repeats_the_previous_answer_after_the_next_listen_start() {
    let (mut rig, _) = faulted("kind = \"late_stt\"\nturns = [0]");
    assert!(rig.counters.faults.injected().is_empty(), "not until the next turn");
    rig.listen(40_010, "start", "auto");
    rig.advance(40_200);
    let late: Vec<(u64, String)> = rig.messages().into_iter().filter(|(t, _)| *t >= 40_010).collect();
    assert_eq!(
        late,
        vec![
            (40_110, format!("stt:{}", rig.set.clips[0].transcript)),
            (40_110, "tts:start".to_string())
        ]
    );
    assert_eq!(injected(&rig), one(FaultKind::LateStt, 0));
}

#[test]
fn turn_list_hits_only_that_utterance() {
    let mut rig = Rig::new(config("[[fault]]\nkind = \"cross_talk\"\nturns = [1]\n"));
    rig.hello(0);
    let mut t = 0;
    for _ in 0..3 {
        rig.listen(t, "start", "auto");
        let clip = rig.clip(0);
        t = rig.stream(t, &clip, t + 8_000) + F;
    }
    rig.advance(t + 10_000);
    let own = format!("stt:{}", rig.set.clips[0].transcript);
    let stts: Vec<bool> = rig
        .messages()
        .iter()
        .filter(|(_, l)| l.starts_with("stt:"))
        .map(|(_, l)| *l == own)
        .collect();
    assert_eq!(stts, vec![true, false, true]);
    assert_eq!(injected(&rig), one(FaultKind::CrossTalk, 1));
}

#[test]
fn no_hello_never_answers_and_close_after_hello_closes_at_once() {
    let mut rig = Rig::with(config(""), Some(FaultKind::NoHello));
    rig.hello(0);
    rig.listen(10, "start", "auto");
    rig.advance(5_000);
    assert!(rig.log.is_empty());
    assert_eq!(rig.count(&rig.counters.hellos), 0);
    assert_eq!(injected(&rig), one(FaultKind::NoHello, 4));
    let mut rig = Rig::with(config(""), Some(FaultKind::CloseAfterHello));
    rig.hello(0);
    assert_eq!(rig.messages(), vec![(0, "hello".into()), (0, "close:1000".into())]);
    assert_eq!(injected(&rig), one(FaultKind::CloseAfterHello, 4));
}
