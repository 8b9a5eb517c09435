//! Scripted tests of the session core with speech conditions: a TTS
//! provider slower than real time (`tts_rtf`) and a speaker who pauses
//! mid-sentence for longer than the VAD window.

use super::tests::{F, Rig, config, sentence_frames};
use std::time::Duration;

#[test]
fn a_slow_provider_hands_each_frame_over_when_made_and_stops_after_the_last() {
    let mut rig = Rig::new(config("tts_rtf = 0.8\nsentences = 2\n"));
    rig.hello(0);
    rig.listen(10, "start", "auto");
    let clip = rig.clip(1);
    let last = rig.stream(10, &clip, 10 + clip.len() as u64 * F + 300);
    // VAD 300 ms, ASR 300 ms, LLM 500 ms, TTS 200 ms: sentence 1 ready.
    let ready = last + 300 + 300 + 500 + 200;
    let n = sentence_frames(0) + sentence_frames(1);
    rig.advance(ready + 75 * n + 420 + 1);
    // Sentence 2 was ready 300 ms after sentence 1, long before the
    // provider finished sentence 1: it follows at once, at the same pace.
    let made: Vec<u64> = (1..=n).map(|k| ready + 75 * k).collect();
    assert_eq!(rig.frame_times(), made);
    assert_eq!(rig.times("sentence"), vec![ready, ready + 75 * sentence_frames(0)]);
    assert_eq!(rig.times("tts:stop"), vec![ready + 75 * n + 420]);
}

#[test]
fn a_pause_longer_than_the_vad_window_is_two_utterances_and_two_answers() {
    let mut rig = Rig::new(config("sentences = 1\n"));
    let clip = rig.set.clips[1].with_pause(Duration::from_millis(1500), &rig.set.silence);
    let pause = clip.pause.expect("a pause");
    rig.hello(0);
    rig.listen(10, "start", "auto");
    // One second of think-time silence (pre-roll), then the sentence.
    let silence = vec![rig.set.silence.clone(); 17];
    let mut packets = silence;
    packets.extend(clip.packets.iter().cloned());
    let start = 10;
    let last = rig.stream(start, &packets, start + packets.len() as u64 * F + 300);
    rig.advance(last + 5_000);
    let first_part_end = start + (17 + pause.at as u64 - 1) * F;
    let stts = rig.times("stt");
    // The first part: VAD window after its last packet, then ASR.
    assert_eq!(stts[0], first_part_end + 300 + 300);
    // The rest: heard after the pause, answered after the whole sentence.
    assert_eq!(stts, vec![first_part_end + 600, last + 600]);
    assert_eq!(rig.count(&rig.counters.turns), 2);
    // The first answer still spoke when the rest ended: cut (`tts stop`) first.
    let barge = rig.times("tts:stop")[0];
    assert_eq!(barge, last + 300);
}
