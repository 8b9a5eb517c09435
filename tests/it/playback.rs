//! What the user hears, on a paused clock: the mock's downlink modes drive
//! the device's decode-queue model to exact underrun and drop figures.

use crate::support::{plan, run_against_mock};
use xiaozhi_fleet::audio::playback::TurnPlayback;
use xiaozhi_fleet::metrics::TurnOutcome;
use xiaozhi_fleet::mock::{MockCounters, VoiceBank};

/// One device, one turn, with the given `[mock]` lines.
fn one_turn(mock: &str) -> String {
    format!(
        "devices = 1\nturns = 1\nseed = 5\n\n[mock]\nasr_delay = \"100ms\"\nllm_delay = \"100ms\"\ntts_delay = \"100ms\"\n{mock}\n"
    )
}

async fn playback_of(mock: &str) -> (TurnPlayback, u64) {
    let plan = plan(&one_turn(mock));
    let (out, server) = run_against_mock(&plan).await;
    let rec = &out.metrics.turn_records[0];
    assert_eq!(rec.outcome, TurnOutcome::Completed, "{:?}", out.metrics.failures);
    let frames_out = MockCounters::get(&server.counters.frames_out);
    server.stop().await;
    (rec.playback.clone().expect("turn reached tts start"), frames_out)
}

/// Frames in sentence `i` of the mock's voice (a session's first answer
/// uses sentences 0, 1, 2, …).
fn sentence_frames(i: usize) -> u64 {
    VoiceBank::shared().unwrap().sentence(i).1.len() as u64
}

#[tokio::test(start_paused = true)]
async fn realtime_pacing_gives_no_underrun_and_no_drop() {
    let (pb, frames) = playback_of("sentences = 3\nsentence_delay = \"300ms\"").await;
    assert_eq!(frames, sentence_frames(0) + sentence_frames(1) + sentence_frames(2));
    assert_eq!((pb.underruns, pb.overflow_drops), (0, 0));
    assert_eq!(pb.underrun_ms, 0.0);
    assert_eq!(pb.frames as u64, frames);
}

#[tokio::test(start_paused = true)]
async fn five_frame_burst_at_turn_start_is_neither_underrun_nor_drop() {
    let (pb, _) = playback_of("sentences = 1").await;
    assert_eq!((pb.underruns, pb.overflow_drops), (0, 0));
    // Six frames arrive together (5-frame burst + the first paced one):
    // one plays, five wait — the server's deliberate ~300 ms lead.
    assert_eq!(pb.max_queue_frames, 5);
}

#[tokio::test(start_paused = true)]
async fn stall_after_ten_frames_gives_one_underrun_of_stall_minus_buffered_audio() {
    let (pb, _) = playback_of("sentences = 1\ndownlink = \"stall\"\nstall_after = 10\nstall = \"500ms\"").await;
    // Frames 1–6 at t0, 7–10 at 60..240 ms: when frame 10 arrives (240 ms)
    // the device holds audio until 600 ms, i.e. 360 ms buffered.
    let buffered = 360.0;
    assert_eq!(pb.underruns, 1);
    assert_eq!(pb.underrun_ms, 500.0 - buffered);
    assert_eq!(pb.overflow_drops, 0);
}

#[tokio::test(start_paused = true)]
async fn burst_larger_than_the_queue_drops_m_minus_41() {
    // All three sentences produced at once and sent at once.
    let (pb, frames) = playback_of("sentences = 3\nsentence_delay = \"0ms\"\ndownlink = \"burst\"").await;
    assert!(frames > 41, "need more frames than the queue holds, got {frames}");
    assert_eq!(pb.overflow_drops as u64, frames - 41);
    assert_eq!(pb.underruns, 0);
}

#[tokio::test(start_paused = true)]
async fn late_second_sentence_gives_sentence_gap_of_lateness_minus_buffered() {
    let (pb, _) = playback_of("sentences = 2\nsentence_delay = \"4s\"").await;
    // Sentence 2 is ready 4 s after sentence 1; sentence 1's audio
    // (F × 60 ms, all buffered or playing by then) covers part of it.
    let buffered = sentence_frames(0) as f64 * 60.0;
    assert_eq!(pb.underruns, 1);
    assert_eq!(pb.sentence_gap_ms, 4000.0 - buffered);
    assert_eq!(pb.underrun_ms, pb.sentence_gap_ms);
}

#[tokio::test(start_paused = true)]
async fn control_fleet_never_stutters_and_repro_always_does() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fleets");
    for (file, stutters) in [("stutter-control.toml", false), ("stutter-repro.toml", true)] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let (out, server) = run_against_mock(&plan(&text)).await;
        let p = &out.metrics.playback;
        assert_eq!(out.metrics.failed, 0, "{file}");
        assert!(p.turns > 0, "{file}");
        if stutters {
            assert_eq!(p.stutter_turns, p.turns, "{file}: every turn has late sentences");
        } else {
            assert_eq!((p.underruns, p.stutter_turns), (0, 0), "{file}");
        }
        server.stop().await;
    }
}
