//! Whole turns by mode: auto, manual, realtime, wake word, barge-in.

use super::*;

#[test]
fn auto_turn_is_timed_from_end_of_speech_by_its_own_answer() {
    let mut h = Harness::connected(settings());
    h.start(100, spec(Some(clip("a", "一加一等于几", 20)), ListenMode::Auto, 0));
    // Speech: packets at 100 + 60k; the 20th (end of speech) at 1240.
    let stop = h.answer(1740, 10);
    assert_eq!(stop, 3160);
    let end = h.only_end();
    let r = &end.record;
    assert_eq!(r.outcome, TurnOutcome::Completed);
    assert_eq!((r.stt, r.tts_start, r.llm), (ms(500), ms(500), ms(1000)));
    assert_eq!(
        (r.first_audio, r.first_play, r.turn_time),
        (ms(1200), ms(1200), ms(1920))
    );
    assert_eq!(r.frames_received, 10);
    assert_eq!(
        h.ends[0].0, 3160,
        "the speaker drained before tts stop: the turn ends at tts stop"
    );
    assert_eq!(h.texts(), vec![(0, "hello".into()), (100, "listen:start".into())]);
    // 20 speech packets then silence until tts start at 1740 (1300..=1720).
    let audio = h.audio_times();
    assert_eq!(audio.len(), 28);
    assert_eq!((audio[0], audio[19], audio[27]), (100, 1240, 1720));
    assert_eq!(r.uplink_frames, 28);
    let pb = r.playback.as_ref().expect("playback of a completed answer");
    assert_eq!((pb.underruns, pb.overflow_drops), (0, 0));
    assert!(h.core.tally.stray.is_empty());
}

#[test]
fn manual_turn_presses_after_think_and_releases_after_speech() {
    let mut h = Harness::connected(settings());
    h.start(100, spec(Some(clip("a", "一加一等于几", 20)), ListenMode::Manual, 1000));
    h.run_to(1099);
    assert!(h.audio_times().is_empty(), "nothing before the button press");
    // Press at 1100; speech 1100..=2240; release right after the last packet.
    h.text(2540, r#"{"type":"stt","text":"x"}"#);
    h.text(2540, r#"{"type":"tts","state":"start"}"#);
    assert_eq!(
        h.texts(),
        vec![
            (0, "hello".into()),
            (1100, "listen:start".into()),
            (2240, "listen:stop".into())
        ]
    );
    assert_eq!(h.audio_times().len(), 20, "the microphone is off after release");
    h.frames(2740, 1);
    h.text(3220, r#"{"type":"tts","state":"stop"}"#);
    let r = &h.only_end().record;
    assert_eq!((r.stt, r.first_audio, r.turn_time), (ms(300), ms(500), ms(980)));
    assert_eq!(r.think_frames, 17);
}

#[test]
fn realtime_turns_share_one_stream_and_one_listen_start() {
    let mut h = Harness::connected(settings());
    h.start(100, spec(Some(clip("a", "一加一等于几", 20)), ListenMode::Realtime, 0));
    let stop = h.answer(1740, 10);
    assert_eq!(h.ends.len(), 1);
    // The microphone kept streaming through the answer: 100, 160, …, 3160.
    assert_eq!(h.audio_times().last(), Some(&3160));
    assert_eq!(h.audio_times().len(), 52);
    let mut second = spec(Some(clip("b", "今天天气怎么样", 20)), ListenMode::Realtime, 1000);
    second.turn_no = 1;
    h.start(stop, second);
    // The stream goes on (next packet 52 at 3220); 17 think packets, then
    // 20 speech packets: end of speech is packet 88, at 100 + 88 × 60.
    h.text(5380 + 400, r#"{"type":"stt","text":"x"}"#);
    h.text(5380 + 400, r#"{"type":"tts","state":"start"}"#);
    h.frames(5380 + 600, 1);
    h.text(5380 + 1020, r#"{"type":"tts","state":"stop"}"#);
    let listen_starts = h.texts().iter().filter(|(_, t)| t == "listen:start").count();
    assert_eq!(listen_starts, 1, "realtime sends listen start once");
    let r = &h.ends[1].1.record;
    assert_eq!((r.stt, r.first_audio, r.turn_time), (ms(400), ms(600), ms(1020)));
}

/// A greeting at 400–1020 ms (stop at 1020), then the user's turn after
/// `think_ms`; the server answers `answer_at` ms after end of speech, or never.
fn wake_word(think_ms: u64, answer_at: Option<u64>) -> Harness {
    let mut h = Harness::connected(settings());
    let mut greeting = spec(None, ListenMode::Auto, 0);
    greeting.detect = Some("你好小智".into());
    h.start(100, greeting);
    h.text(400, r#"{"type":"stt","text":"你好小智"}"#);
    h.text(400, r#"{"type":"tts","state":"start"}"#);
    h.text(600, r#"{"type":"tts","state":"sentence_start","text":"你好"}"#);
    h.frames(600, 5);
    h.text(1020, r#"{"type":"tts","state":"stop"}"#);
    assert_eq!(h.ends.len(), 1);
    assert!(h.ends[0].1.greeting);
    assert_eq!(h.ends[0].1.record.outcome, TurnOutcome::Completed);
    h.start(
        1020,
        spec(Some(clip("a", "一加一等于几", 20)), ListenMode::Auto, think_ms),
    );
    let think = think_ms.div_ceil(FRAME_MS) * FRAME_MS;
    let eos = 1020 + think + 19 * FRAME_MS;
    match answer_at {
        Some(a) => {
            h.answer(eos + a, 5);
        }
        None => h.run_to(eos + 15_000),
    }
    h
}

#[test]
fn wake_word_sends_detect_then_listen_start_and_mutes_the_mic_while_greeting() {
    let h = wake_word(3000, Some(500));
    let texts = h.texts();
    assert_eq!(
        texts[..4],
        [
            (0, "hello".to_string()),
            (100, "listen:detect".to_string()),
            (100, "listen:start".to_string()),
            (1020, "listen:start".to_string())
        ]
    );
    // Silence from 100 until the greeting's tts start at 400, then nothing
    // until the user's listen start at 1020.
    let audio = h.audio_times();
    assert!(audio.iter().all(|&t| t <= 400 || t >= 1020), "{audio:?}");
    assert_eq!(audio[..7], [100, 160, 220, 280, 340, 400, 1020]);
    assert_eq!(h.ends[1].1.record.outcome, TurnOutcome::Completed);
    assert_eq!(h.ends[1].1.record.stt, ms(500));
}

#[test]
fn speech_inside_the_post_greeting_mute_without_reply_is_muted_after_wake() {
    let h = wake_word(1000, None);
    let (kind, detail) = failed(&h.ends[1].1);
    assert_eq!(kind, FailureKind::MutedAfterWake);
    // 17 think packets: speech starts 1020 ms after the greeting's tts stop.
    assert!(detail.contains("1020 ms after the greeting"), "{detail}");
}

#[test]
fn speech_cut_by_the_post_greeting_mute_is_muted_after_wake_when_the_words_are_checked() {
    let mut s = settings();
    s.transcript_check = check(0.2, &[("a", "一加一等于几")]);
    let mut h = Harness::connected(s);
    let mut greeting = spec(None, ListenMode::Auto, 0);
    greeting.detect = Some("你好小智".into());
    h.start(100, greeting);
    h.text(400, r#"{"type":"tts","state":"start"}"#);
    h.frames(600, 1);
    h.text(1020, r#"{"type":"tts","state":"stop"}"#);
    // Think 500 ms (9 packets): speech from 1560, end of speech 2700.
    h.start(1020, spec(Some(clip("a", "一加一等于几", 20)), ListenMode::Auto, 500));
    h.text(3200, r#"{"type":"stt","text":"等于几"}"#);
    h.text(3200, r#"{"type":"tts","state":"start"}"#);
    h.frames(3400, 1);
    h.text(3880, r#"{"type":"tts","state":"stop"}"#);
    let (kind, detail) = failed(&h.ends[1].1);
    assert_eq!(kind, FailureKind::MutedAfterWake);
    assert!(detail.contains("540 ms after") && detail.contains("等于几"), "{detail}");
    assert_eq!(h.ends[1].1.record.stt, ms(500));
}

#[test]
fn speech_after_the_mute_without_reply_is_plain_no_reply() {
    let h = wake_word(2500, None);
    let (kind, _) = failed(&h.ends[1].1);
    assert_eq!(kind, FailureKind::NoReply);
}

#[test]
fn barge_in_keeps_the_latencies_measured_before_the_abort() {
    let mut h = barging_from_100();
    h.text(2240, r#"{"type":"llm","emotion":"happy"}"#);
    h.frames(2440, 5);
    h.paced_frames(2500, 8);
    // Frames still in flight after the abort are ours, not stray.
    h.frames(2945, 1);
    h.text(2950, r#"{"type":"tts","state":"stop"}"#);
    // The abort went out 500 ms after the first audio (2440 + 500).
    assert!(h.texts().contains(&(2940, "abort".into())), "{:?}", h.texts());
    let end = h.only_end();
    let r = &end.record;
    assert_eq!(r.outcome, TurnOutcome::Interrupted);
    assert_eq!(
        (r.stt, r.tts_start, r.llm, r.first_audio),
        (ms(500), ms(500), ms(1000), ms(1200))
    );
    assert_eq!(h.ends[0].0, 2950, "an abort cuts local playback at once");
    assert!(h.core.tally.stray.is_empty(), "{:?}", h.core.tally.stray);
}

#[test]
fn idle_microphone_hands_its_send_lag_over_every_256_packets_split_at_the_ramp() {
    let s = DeviceSettings {
        ramp_over: std::sync::atomic::AtomicBool::new(false),
        ..settings()
    };
    let mut h = Harness::connected(s);
    h.core.idle_listen(h.now);
    h.drain();
    // Packets at 10 + 60k ms: 100 while the ramp runs, then 200 more.
    h.run_to(10 + 99 * FRAME_MS);
    h.core.settings.ramp_over.store(true, Ordering::Relaxed);
    h.run_to(10 + 299 * FRAME_MS);
    assert_eq!(h.audio_times().len(), 300);
    assert_eq!(h.flushed.len(), 1, "one hand-over at 256 samples");
    let f = &h.flushed[0];
    assert_eq!(
        (f.frames_sent, f.ramp_send_lag.count(), f.send_lag.count()),
        (256, 100, 156)
    );
    // Each packet left at its scheduled instant.
    assert_eq!(f.send_lag.percentiles().max, 0.0);
    let rest = &h.core.tally;
    assert_eq!(
        (rest.frames_sent, rest.send_lag.count(), rest.ramp_send_lag.count()),
        (44, 44, 0)
    );
}
