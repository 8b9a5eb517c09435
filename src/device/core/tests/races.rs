//! Messages that arrive at the wrong moment or belong to another turn:
//! counted as stray, never turned into a latency; verdicts on what was heard.

use super::*;
use crate::metrics::event::{STRAY_AUDIO, STRAY_LLM, STRAY_STT, STRAY_TTS_START, STRAY_TTS_STOP, STRAY_UNKNOWN};

/// A connected device whose 20-packet turn starts at 100 (end of speech 1240).
fn speaking_from_100() -> Harness {
    let mut h = Harness::connected(settings());
    h.start(100, spec(Some(clip("a", "一加一等于几", 20)), ListenMode::Auto, 0));
    h
}

#[test]
fn duplicate_tts_stop_after_an_abort_lands_in_the_next_turn_as_stray() {
    let mut h = barging_from_100();
    h.frames(2440, 5);
    h.text(2940, r#"{"type":"tts","state":"stop"}"#);
    assert_eq!(h.ends.len(), 1);
    // The user speaks again at once; PY's duplicate stop comes 420 ms later.
    let mut next = spec(Some(clip("b", "今天天气怎么样", 20)), ListenMode::Auto, 0);
    next.turn_no = 1;
    h.start(2940, next);
    h.text(3360, r#"{"type":"tts","state":"stop"}"#);
    assert_eq!(h.stray(STRAY_TTS_STOP), 1);
    assert_eq!(h.ends.len(), 1, "a stray stop does not end the new turn");
    // The new turn's own answer: end of speech at 2940 + 1140 = 4080.
    h.answer(4580, 5);
    let r = &h.ends[1].1.record;
    assert_eq!(r.outcome, TurnOutcome::Completed);
    assert_eq!((r.stt, r.tts_start, r.first_audio), (ms(500), ms(500), ms(1200)));
}

#[test]
fn late_stt_and_tts_start_of_an_earlier_turn_are_stray_not_zero_latencies() {
    let mut h = speaking_from_100();
    // The previous turn's answer arrives while this turn still speaks.
    h.text(300, r#"{"type":"stt","text":"old"}"#);
    h.text(300, r#"{"type":"tts","state":"start"}"#);
    h.text(500, r#"{"type":"llm","emotion":"happy"}"#);
    h.frames(700, 5);
    h.text(1100, r#"{"type":"tts","state":"stop"}"#);
    assert_eq!(
        (h.stray(STRAY_STT), h.stray(STRAY_TTS_START), h.stray(STRAY_LLM)),
        (1, 1, 1)
    );
    assert_eq!((h.stray(STRAY_AUDIO), h.stray(STRAY_TTS_STOP)), (5, 1));
    h.answer(1740, 5);
    // The microphone stayed on: the user's speech went out whole.
    assert_eq!(h.audio_times()[19], 1240);
    let r = &h.only_end().record;
    assert_eq!(r.outcome, TurnOutcome::Completed);
    assert_eq!(
        (r.stt, r.tts_start, r.llm, r.first_audio),
        (ms(500), ms(500), ms(1000), ms(1200))
    );
}

#[test]
fn stt_before_end_of_speech_is_stray_and_never_clamped_to_zero() {
    let mut h = speaking_from_100();
    h.text(1000, r#"{"type":"stt","text":"early"}"#);
    assert_eq!(h.stray(STRAY_STT), 1);
    h.run_to(1240 + 15_000);
    let (kind, detail) = failed(h.only_end());
    assert_eq!(kind, FailureKind::NoReply);
    assert!(detail.contains("1 stray message"), "{detail}");
    assert_eq!(h.only_end().record.stt, None);
}

#[test]
fn audio_before_tts_start_is_stray_and_not_first_audio() {
    let mut h = speaking_from_100();
    h.frames(1500, 2);
    h.text(1740, r#"{"type":"tts","state":"start"}"#);
    h.frames(1900, 1);
    h.text(2380, r#"{"type":"tts","state":"stop"}"#);
    assert_eq!(h.stray(STRAY_AUDIO), 2);
    let r = &h.only_end().record;
    assert_eq!((r.first_audio, r.frames_received), (ms(660), 1));
}

#[test]
fn unknown_types_and_plain_text_are_counted_and_ignored() {
    let mut h = speaking_from_100();
    h.text(500, r#"{"type":"alert","status":"x","message":"y","emotion":"z"}"#);
    h.text(600, r#"{"no_type":true}"#);
    h.text(700, "端口正常");
    let stop = h.answer(1740, 5);
    assert_eq!(h.stray(STRAY_UNKNOWN), 2);
    assert_eq!(h.stray(crate::metrics::event::STRAY_TEXT), 1);
    assert_eq!(h.only_end().record.outcome, TurnOutcome::Completed);
    assert_eq!(h.ends[0].0, stop);
}

#[test]
fn broken_json_in_an_answer_fails_the_turn_as_protocol_after_it_ends() {
    let mut h = speaking_from_100();
    h.text(1740, r#"{"type":"tts","state":"start"}"#);
    h.text(1800, r#"{"type":"tts","state":"#);
    h.frames(2000, 1);
    h.text(2480, r#"{"type":"tts","state":"stop"}"#);
    let (kind, detail) = failed(h.only_end());
    assert_eq!(kind, FailureKind::Protocol);
    assert!(detail.contains(r#"{"type":"tts","state":"#), "{detail}");
    assert_eq!(h.ends[0].0, 2480);
}

#[test]
fn undecodable_audio_is_protocol_with_its_first_bytes() {
    let mut h = speaking_from_100();
    h.text(1740, r#"{"type":"tts","state":"start"}"#);
    h.run_to(1900);
    h.core.handle_binary(h.now, &[]);
    h.core.handle_binary(h.now, &[0x6b, 0x00]);
    h.frames(1960, 1);
    h.text(2440, r#"{"type":"tts","state":"stop"}"#);
    let (kind, detail) = failed(h.only_end());
    assert_eq!(kind, FailureKind::Protocol);
    assert!(
        detail.contains("undecodable audio frame") && detail.contains("0 bytes"),
        "{detail}"
    );
    assert_eq!(h.only_end().record.frames_received, 1);
}

#[test]
fn raw_opus_from_a_server_asked_for_v3_is_protocol_mismatch() {
    let mut s = settings();
    s.protocol_version = ProtocolVersion::V3;
    let mut h = Harness::opened(s);
    h.text(10, r#"{"type":"hello","transport":"websocket"}"#);
    h.start(100, spec(Some(clip("a", "一加一等于几", 20)), ListenMode::Auto, 0));
    h.text(1740, r#"{"type":"tts","state":"start"}"#);
    h.frames(1900, 1);
    h.text(2380, r#"{"type":"tts","state":"stop"}"#);
    let (kind, detail) = failed(h.only_end());
    assert_eq!(kind, FailureKind::ProtocolMismatch);
    assert!(detail.contains("v3") && detail.contains("v1"), "{detail}");
}

#[test]
fn tts_stop_before_the_announced_frames_is_truncated() {
    let mut h = speaking_from_100();
    h.text(1740, r#"{"type":"tts","state":"start"}"#);
    h.text(
        1900,
        r#"{"type":"tts","state":"sentence_start","text":"一","frames":3}"#,
    );
    h.frames(1900, 3);
    h.text(
        2100,
        r#"{"type":"tts","state":"sentence_start","text":"二","frames":4}"#,
    );
    h.frames(2100, 2);
    h.text(2520, r#"{"type":"tts","state":"stop"}"#);
    let (kind, detail) = failed(h.only_end());
    assert_eq!(kind, FailureKind::Truncated);
    assert_eq!(detail, "tts stop after 2 of sentence 2's 4 announced frames");
}

#[test]
fn another_devices_words_are_cross_talk_and_wrong_words_wrong_transcript() {
    let book = [("a", "一加一等于几"), ("b", "今天天气怎么样")];
    for (heard, expect) in [
        ("今天天气怎么样", FailureKind::CrossTalk),
        ("[mock ASR] 语音已识别", FailureKind::WrongTranscript),
    ] {
        let mut s = settings();
        s.transcript_check = check(0.2, &book);
        let mut h = Harness::connected(s);
        h.start(100, spec(Some(clip("a", "一加一等于几", 20)), ListenMode::Auto, 0));
        h.text(1740, &format!(r#"{{"type":"stt","text":"{heard}"}}"#));
        h.text(1740, r#"{"type":"tts","state":"start"}"#);
        h.frames(1900, 1);
        h.text(2380, r#"{"type":"tts","state":"stop"}"#);
        let (kind, _) = failed(h.only_end());
        assert_eq!(kind, expect, "{heard}");
        // The answer's timings were still measured.
        assert_eq!(h.only_end().record.stt, ms(500));
    }
}

#[test]
fn the_right_words_pass_the_transcript_check() {
    let mut s = settings();
    s.transcript_check = check(0.2, &[("a", "一加一等于几")]);
    let mut h = Harness::connected(s);
    h.start(100, spec(Some(clip("a", "一加一等于几", 20)), ListenMode::Auto, 0));
    h.answer(1740, 5);
    assert_eq!(h.only_end().record.outcome, TurnOutcome::Completed);
}

#[test]
fn stray_stop_while_idle_is_counted_but_an_idle_goodbye_turn_is_not() {
    let mut h = Harness::connected(settings());
    h.text(100, r#"{"type":"tts","state":"stop"}"#);
    assert_eq!(h.stray(STRAY_TTS_STOP), 1);
    h.text(200, r#"{"type":"tts","state":"start"}"#);
    h.frames(300, 5);
    h.text(1000, r#"{"type":"tts","state":"stop"}"#);
    assert_eq!(h.stray(STRAY_TTS_STOP), 1);
    assert_eq!(h.stray(STRAY_AUDIO), 0);
    assert_eq!(h.core.tally.frames_received, 5);
}
