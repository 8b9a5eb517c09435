use super::*;

const FRAME: Duration = Duration::from_millis(60);

fn d(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

fn with(queue_capacity: usize, start_threshold: usize) -> (Playback, Instant) {
    let t0 = Instant::now();
    let mut p = Playback::new(PlaybackConfig {
        queue_capacity,
        start_threshold,
        overflow: Overflow::Drop,
    });
    p.start_turn(t0);
    (p, t0)
}

fn burst(p: &mut Playback, at: Instant, n: usize) -> Vec<FrameFate> {
    (0..n).map(|_| p.frame(at, FRAME)).collect()
}

/// PY pacing (PROTOCOL.md §7.2): frames 1–6 at `start`, then one every 60 ms.
fn py_paced(p: &mut Playback, start: Instant, frames: u32) {
    for k in 0..frames {
        let at = start + FRAME * k.saturating_sub(5);
        assert_ne!(p.frame(at, FRAME), FrameFate::Dropped);
    }
}

#[test]
fn realtime_pacing_has_no_underrun_or_drop() {
    let (mut p, t0) = with(40, 0);
    py_paced(&mut p, t0, 46);
    assert_eq!(p.drained_at(), Some(t0 + d(46 * 60)));
    let s = p.finish();
    assert_eq!((s.underruns, s.overflow_drops, s.frames), (0, 0, 46));
    assert_eq!((s.underrun_ms, s.tts_audio_ms), (0.0, 2760.0));
}

#[test]
fn five_frame_burst_is_neither_underrun_nor_overflow() {
    let (mut p, t0) = with(40, 0);
    let (play, q) = (FrameFate::Played, FrameFate::Queued);
    assert_eq!(burst(&mut p, t0, 6), [play, q, q, q, q, q]);
    assert_eq!(p.queue_depth(t0), 5);
    for k in 1..=20 {
        assert_eq!(p.frame(t0 + FRAME * k, FRAME), FrameFate::Queued);
        assert_eq!(p.queue_depth(t0 + FRAME * k), 5);
    }
    let s = p.finish();
    assert_eq!((s.underruns, s.overflow_drops), (0, 0));
    assert_eq!(s.max_queue_frames, 5);
}

#[test]
fn stall_after_ten_frames_gives_one_underrun_of_stall_minus_buffered() {
    let (mut p, t0) = with(40, 0);
    py_paced(&mut p, t0, 10);
    let tenth = t0 + d(4 * 60);
    assert_eq!(p.drained_at().map(|end| end - tenth), Some(d(360)));
    let resume = tenth + d(500);
    for k in 0..10 {
        assert_eq!(p.frame(resume + FRAME * k, FRAME), FrameFate::Played);
    }
    let s = p.finish();
    assert_eq!((s.underruns, s.sentence_gap_ms), (1, 0.0));
    assert_eq!(s.underrun_ms, (500 - 360) as f64);
    let span = &s.underrun_spans[0];
    assert_eq!((span.duration(), span.at_ms), (d(140), 600.0));
    assert!(!span.between_sentences);
    let json = serde_json::to_value(&s).unwrap_or_default();
    assert_eq!(json["underrun_spans"][0]["duration_ms"], 140.0);
    assert!(json.get("first_play_at").is_none());
    assert!(json["underrun_spans"][0].get("start").is_none());
}

#[test]
fn burst_larger_than_queue_drops_m_minus_41() {
    for (m, drops) in [(60, 19), (41, 0)] {
        let (mut p, t0) = with(40, 0);
        burst(&mut p, t0, m);
        let s = p.finish();
        assert_eq!((s.overflow_drops, s.frames, s.underruns), (drops, 41, 0));
        assert_eq!(s.max_queue_frames, 40);
    }
}

#[test]
fn late_second_sentence_counts_as_sentence_gap() {
    let (mut p, t0) = with(40, 0);
    p.sentence_start(t0);
    py_paced(&mut p, t0, 20);
    let due = t0 + d(15 * 60);
    assert_eq!(p.drained_at().map(|end| end - due), Some(d(300)));
    let late = due + d(800);
    p.sentence_start(late);
    for k in 0..20 {
        p.frame(late + FRAME * k, FRAME);
    }
    p.stop(late + d(20 * 60 + 420));
    let s = p.finish();
    assert_eq!((s.underruns, s.sentence_gap_ms), (1, (800 - 300) as f64));
    assert_eq!(s.underrun_ms, s.sentence_gap_ms);
    assert!(s.underrun_spans[0].between_sentences);
}

#[test]
fn zero_gap_is_not_underrun() {
    let (mut p, t0) = with(40, 0);
    assert_eq!(p.frame(t0, FRAME), FrameFate::Played);
    assert_eq!(p.frame(t0 + FRAME, FRAME), FrameFate::Played);
    let s = p.finish();
    assert_eq!((s.underruns, s.underrun_spans.len()), (0, 0));
}

#[test]
fn frames_dropped_after_queue_full_are_counted() {
    let (mut p, t0) = with(3, 0);
    assert!(!burst(&mut p, t0, 4).contains(&FrameFate::Dropped));
    assert_eq!(p.frame(t0, FRAME), FrameFate::Dropped);
    assert_eq!(p.frame(t0 + FRAME, FRAME), FrameFate::Queued);
    assert_eq!(p.frame(t0 + FRAME, FRAME), FrameFate::Dropped);
    let s = p.finish();
    assert_eq!((s.overflow_drops, s.frames, s.tts_audio_ms), (2, 5, 300.0));
}

#[test]
fn start_turn_flushes_queue() {
    let (mut p, t0) = with(40, 0);
    burst(&mut p, t0, 10);
    p.start_turn(t0 + d(100));
    assert_eq!((p.drained_at(), p.first_play_at()), (None, None));
    assert_eq!(p.queue_depth(t0 + d(100)), 0);
    assert_eq!(p.frame(t0 + d(200), FRAME), FrameFate::Played);
    assert_eq!(p.drained_at(), Some(t0 + d(260)));
    let s = p.finish();
    assert_eq!((s.frames, s.underruns), (1, 0));
}

#[test]
fn stutter_needs_a_full_frame_of_silence() {
    let (mut p, t0) = with(40, 0);
    p.frame(t0, FRAME);
    p.frame(t0 + d(119), FRAME);
    let s = p.clone().finish();
    assert_eq!((s.underruns, s.underrun_ms), (1, 59.0));
    assert!(!s.stutters(FRAME));
    p.frame(t0 + d(179 + 60), FRAME);
    let s = p.finish();
    assert_eq!((s.underruns, s.underrun_ms), (2, 119.0));
    assert!(s.stutters(FRAME));
}

#[test]
fn max_queue_frames_tracks_peak() {
    let (mut p, t0) = with(40, 0);
    burst(&mut p, t0, 8);
    assert_eq!(p.queue_depth(t0 + d(120)), 5);
    assert_eq!(p.queue_depth(t0 + d(479)), 0);
    p.frame(t0 + d(300), FRAME);
    assert_eq!(p.queue_depth(t0 + d(300)), 3);
    assert_eq!(p.finish().max_queue_frames, 7);
}

#[test]
fn drained_at_is_end_of_last_frame() {
    let (mut p, t0) = with(40, 0);
    assert_eq!(p.drained_at(), None);
    p.frame(t0, FRAME);
    p.frame(t0, d(20));
    assert_eq!(p.drained_at(), Some(t0 + d(80)));
    p.frame(t0 + d(200), d(40));
    p.stop(t0 + d(200));
    assert_eq!(p.drained_at(), Some(t0 + d(240)));
    let s = p.finish();
    assert_eq!((s.underruns, s.underrun_ms), (1, 120.0));
    assert_eq!(s.tts_audio_ms, 120.0);
}

#[test]
fn start_threshold_delays_playout() {
    let (mut p, t0) = with(40, 3);
    assert_eq!(p.frame(t0, FRAME), FrameFate::Queued);
    assert_eq!(p.frame(t0 + d(10), FRAME), FrameFate::Queued);
    assert_eq!((p.first_play_at(), p.drained_at()), (None, None));
    assert_eq!(p.queue_depth(t0 + d(10)), 2);
    assert_eq!(p.frame(t0 + d(20), FRAME), FrameFate::Queued);
    assert_eq!(p.first_play_at(), Some(t0 + d(20)));
    assert_eq!(p.drained_at(), Some(t0 + d(200)));
    assert_eq!(p.queue_depth(t0 + d(20)), 2);
    // Fewer frames than the threshold: `tts stop` starts playout.
    let (mut p, t0) = with(40, 5);
    burst(&mut p, t0, 2);
    p.stop(t0 + d(100));
    assert_eq!(p.first_play_at(), Some(t0 + d(100)));
    assert_eq!(p.drained_at(), Some(t0 + d(220)));
    // Threshold 1 behaves like the firmware.
    let (mut p, t0) = with(40, 1);
    assert_eq!(p.frame(t0, FRAME), FrameFate::Played);
}

#[test]
fn a_gap_is_split_between_server_and_network_at_the_socket_instant() {
    let (mut p, t0) = with(40, 0);
    p.frame(t0, FRAME);
    // Speaker dry at 60; the frame reached the socket at 100, the device at 160.
    p.frame_from(t0 + d(160), t0 + d(100), FRAME);
    // Dry at 220; on time at the socket (200), held by the network until 300.
    p.frame_from(t0 + d(300), t0 + d(200), FRAME);
    // Dry at 360; straight from the socket at 400: all the server's.
    p.frame(t0 + d(400), FRAME);
    let s = p.finish();
    assert_eq!((s.underruns, s.underrun_ms), (3, 220.0));
    assert_eq!((s.server_gap_ms, s.network_gap_ms), (80.0, 140.0));
    let parts: Vec<_> = s
        .underrun_spans
        .iter()
        .map(|u| (u.server_ms, u.network_ms, u.cause))
        .collect();
    assert_eq!(
        parts,
        [
            (40.0, 60.0, GapCause::Network),
            (0.0, 80.0, GapCause::Network),
            (40.0, 0.0, GapCause::Server),
        ]
    );
}

#[test]
fn frames_a_full_queue_rejects_count_as_audio_the_device_dropped() {
    let (mut p, t0) = with(2, 0);
    let fates = burst(&mut p, t0, 5);
    assert_eq!(fates.iter().filter(|f| **f == FrameFate::Dropped).count(), 2);
    let s = p.finish();
    assert_eq!((s.overflow_drops, s.dropped_ms), (2, 120.0));
    assert_eq!((s.server_gap_ms, s.network_gap_ms), (0.0, 0.0));
}

#[test]
fn a_waiting_queue_holds_the_frames_a_dropping_one_rejects() {
    let t0 = Instant::now();
    let run = |overflow| {
        let mut p = Playback::new(PlaybackConfig {
            queue_capacity: 5,
            start_threshold: 0,
            overflow,
        });
        p.start_turn(t0);
        let fates: Vec<FrameFate> = (0..20).map(|_| p.frame(t0, FRAME)).collect();
        (fates, p.drained_at(), p.finish())
    };
    // Dropping: the playing frame and 5 queued; 14 rejected, their audio counted.
    let (fates, drained, stats) = run(Overflow::Drop);
    assert_eq!(fates.iter().filter(|f| **f == FrameFate::Dropped).count(), 14);
    assert_eq!(drained, Some(t0 + FRAME * 6));
    assert_eq!((stats.overflow_drops, stats.dropped_ms), (14, 14.0 * 60.0));
    // Waiting: nothing lost, every frame plays in turn, the queue never shown above its depth.
    let (fates, drained, stats) = run(Overflow::Wait);
    assert!(!fates.contains(&FrameFate::Dropped));
    assert_eq!(drained, Some(t0 + FRAME * 20));
    assert_eq!((stats.overflow_drops, stats.dropped_ms, stats.frames), (0, 0.0, 20));
    assert_eq!(stats.max_queue_frames, 5);
}
