//! Answers beyond the first for one utterance: the speaker's pause makes
//! the server answer the words before it while the user still speaks, and
//! a second `tts start` may come during the answer. Counted, never failing
//! the turn, never timed.

use super::*;
use crate::metrics::event::{STRAY_AUDIO, STRAY_LLM, STRAY_STT, STRAY_TTS_START, STRAY_TTS_STOP};

/// 10 speech packets, a 1.5 s pause (25 silence packets), 10 more: started
/// at 100, the pause starts at 700 and speech ends at 100 + 44 × 60 = 2740.
fn paused() -> Arc<Clip> {
    let c = clip("a", "一加一等于几", 20);
    Arc::new(c.with_pause(Duration::from_millis(1500), &Bytes::from_static(b"silence")))
}

fn pausing_from_100(settings: DeviceSettings) -> Harness {
    let mut h = Harness::connected(settings);
    h.start(100, spec(Some(paused()), ListenMode::Auto, 0));
    h
}

/// The server's answer to the words before the pause: `stt` + `tts start`
/// at 1000, `llm`, a sentence and 5 frames, and its `tts stop` at 2900
/// (after the end of speech: cut when the rest of the sentence ended).
fn early_answer(h: &mut Harness) {
    h.text(1000, r#"{"type":"stt","text":"一加"}"#);
    h.text(1000, r#"{"type":"tts","state":"start"}"#);
    h.text(1500, r#"{"type":"llm","emotion":"happy"}"#);
    h.text(1700, r#"{"type":"tts","state":"sentence_start","text":"一"}"#);
    h.frames(1700, 5);
    h.frames(2800, 2);
    h.text(2900, r#"{"type":"tts","state":"stop"}"#);
}

fn no_strays(h: &Harness) {
    for kind in [STRAY_STT, STRAY_TTS_START, STRAY_LLM, STRAY_AUDIO, STRAY_TTS_STOP] {
        assert_eq!(h.stray(kind), 0, "{kind}");
    }
}

#[test]
fn an_answer_during_the_pause_is_an_extra_answer_and_the_turn_is_timed_from_its_own() {
    let mut h = pausing_from_100(settings());
    early_answer(&mut h);
    h.answer(3240, 5);
    let r = &h.only_end().record;
    assert_eq!(r.outcome, TurnOutcome::Completed, "{:?}", r.detail);
    assert_eq!(r.extra_answers, 1);
    // Timed from the end of speech (2740) by the answer that followed it.
    assert_eq!(
        (r.stt, r.tts_start, r.llm, r.first_audio),
        (ms(500), ms(500), ms(1000), ms(1200))
    );
    assert_eq!(r.frames_received, 5, "the early answer's audio is not played");
    no_strays(&h);
    // The microphone stayed on through the early answer: the whole clip went out.
    let sent = h.audio_times();
    assert_eq!((sent[10], sent[35], sent[44]), (700, 2200, 2740));
}

#[test]
fn the_rest_of_a_split_sentence_is_not_a_wrong_transcript() {
    let mut s = settings();
    s.transcript_check = check(0.3, &[("a", "一加一等于几")]);
    let mut h = pausing_from_100(s);
    early_answer(&mut h);
    h.text(3240, r#"{"type":"stt","text":"等于几"}"#);
    h.text(3240, r#"{"type":"tts","state":"start"}"#);
    h.frames(3940, 5);
    h.text(4600, r#"{"type":"tts","state":"stop"}"#);
    h.run_to(5000);
    let r = &h.only_end().record;
    assert_eq!(
        (r.outcome, r.extra_answers),
        (TurnOutcome::Completed, 1),
        "{:?}",
        r.detail
    );
}

#[test]
fn a_second_tts_start_during_the_answer_is_counted_and_changes_nothing_measured() {
    let mut h = Harness::connected(settings());
    h.start(100, spec(Some(clip("a", "一加一等于几", 20)), ListenMode::Auto, 0));
    h.text(1740, r#"{"type":"tts","state":"start"}"#);
    h.text(1800, r#"{"type":"tts","state":"start"}"#);
    h.frames(2000, 1);
    h.text(2480, r#"{"type":"tts","state":"stop"}"#);
    h.run_to(3000);
    assert_eq!(h.stray(STRAY_TTS_START), 0);
    let r = &h.only_end().record;
    assert_eq!(r.outcome, TurnOutcome::Completed);
    assert_eq!(r.extra_answers, 1);
    assert_eq!((r.tts_start, r.first_audio, r.stt), (ms(500), ms(760), None));
}

#[test]
fn without_a_pause_an_early_tts_start_is_stray_not_an_extra_answer() {
    let mut h = Harness::connected(settings());
    h.start(100, spec(Some(clip("a", "一加一等于几", 45)), ListenMode::Auto, 0));
    h.text(1000, r#"{"type":"stt","text":"old"}"#);
    h.text(1000, r#"{"type":"tts","state":"start"}"#);
    h.answer(3240, 5);
    assert_eq!((h.stray(STRAY_STT), h.stray(STRAY_TTS_START)), (1, 1));
    assert_eq!(h.only_end().record.extra_answers, 0);
}

#[test]
fn before_the_pause_a_tts_start_is_stray_too() {
    let mut h = pausing_from_100(settings());
    h.text(600, r#"{"type":"tts","state":"start"}"#);
    h.answer(3240, 5);
    assert_eq!(h.stray(STRAY_TTS_START), 1);
    assert_eq!(h.only_end().record.extra_answers, 0);
}
