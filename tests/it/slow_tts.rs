//! The TTS provider as the bottleneck (`[mock] tts_rtf`), end to end on a
//! paused clock with no network conditions: a provider slower than real
//! time leaves every frame after the first late at the device's socket,
//! by exactly what synthesis took beyond the frame's length, and the
//! device puts every such gap on the server; over WebSocket and over
//! MQTT + UDP alike (both reach the same session core).

use crate::mqtt_mock;
use crate::support::{plan, run_against_mock};
use xiaozhi_fleet::audio::playback::TurnPlayback;
use xiaozhi_fleet::metrics::{TurnOutcome, TurnRecord};
use xiaozhi_fleet::mock::{MockCounters, VoiceBank};

/// One device, one turn, a two-sentence answer, with these `[mock]` lines.
fn one_turn(mock: &str) -> String {
    format!(
        "devices = 1\nturns = 1\nseed = 5\n\n[mock]\nasr_delay = \"100ms\"\nllm_delay = \"100ms\"\n\
         tts_delay = \"100ms\"\nsentences = 2\nsentence_delay = \"300ms\"\n{mock}\n"
    )
}

/// Frames of the first answer of a session (voice-bank sentences 0 and 1).
fn first_answer_frames() -> u32 {
    let bank = VoiceBank::shared().unwrap();
    (bank.sentence(0).1.len() + bank.sentence(1).1.len()) as u32
}

fn playback(rec: &TurnRecord) -> &TurnPlayback {
    assert_eq!(rec.outcome, TurnOutcome::Completed, "{:?}", rec.detail);
    rec.playback.as_ref().expect("turn reached tts start")
}

/// At `rtf` a 60 ms frame is made in 60 / rtf ms: every frame after the
/// first of the answer (the provider makes one sentence after another, so
/// sentence boundaries are no different) reaches the socket that much
/// minus 60 ms after the previous one ended playing.
fn assert_every_gap_is_the_servers(pb: &TurnPlayback, frames: u32, gap_ms: f64) {
    assert_eq!(pb.frames, frames);
    assert_eq!(pb.underruns, frames - 1);
    assert_eq!(pb.underrun_ms, gap_ms * f64::from(frames - 1));
    assert_eq!(pb.server_gap_ms, pb.underrun_ms);
    assert_eq!(pb.network_gap_ms, 0.0);
    assert_eq!(pb.overflow_drops, 0);
    assert!(
        pb.underrun_spans.iter().all(|s| s.duration_ms == gap_ms),
        "{:?}",
        pb.underrun_spans
    );
}

#[tokio::test(start_paused = true)]
async fn rtf_0_8_leaves_each_frame_15_ms_late_at_the_socket_a_server_gap() {
    let (out, server) = run_against_mock(&plan(&one_turn("tts_rtf = 0.8"))).await;
    let frames = first_answer_frames();
    assert_eq!(MockCounters::get(&server.counters.frames_out), u64::from(frames));
    let pb = playback(&out.metrics.turn_records[0]);
    // 75 ms to make each 60 ms frame: 15 ms of silence before each.
    assert_every_gap_is_the_servers(pb, frames, 15.0);
    assert_eq!(out.metrics.playback.underruns, u64::from(frames - 1));
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn rtf_0_5_gives_frame_long_gaps_that_stutter() {
    let (out, server) = run_against_mock(&plan(&one_turn("tts_rtf = 0.5"))).await;
    let pb = playback(&out.metrics.turn_records[0]);
    assert_every_gap_is_the_servers(pb, first_answer_frames(), 60.0);
    assert_eq!(out.metrics.playback.stutter_turns, 1);
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn without_a_factor_the_provider_keeps_ahead_and_nothing_underruns() {
    for mock in ["", "tts_rtf = 1.0"] {
        let (out, server) = run_against_mock(&plan(&one_turn(mock))).await;
        let pb = playback(&out.metrics.turn_records[0]);
        assert_eq!(
            (pb.underruns, pb.underrun_ms, pb.server_gap_ms),
            (0, 0.0, 0.0),
            "{mock:?}"
        );
        server.stop().await;
    }
}

#[tokio::test(start_paused = true)]
async fn over_mqtt_and_udp_the_slow_provider_is_the_servers_gap_too() {
    let (out, mock) = mqtt_mock::run("mqtt", "tts_rtf = 0.8\n").await;
    assert!(MockCounters::get(&mock.counters.mqtt_connections) > 0);
    let records = &out.metrics.turn_records;
    assert_eq!(records.len() as u64, mqtt_mock::DEVICES * mqtt_mock::TURNS);
    for rec in records {
        let pb = playback(rec);
        assert_every_gap_is_the_servers(pb, pb.frames, 15.0);
        assert_eq!(rec.datagrams.map(|d| d.lost), Some(0));
    }
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn shipped_slow_tts_fleet_puts_every_gap_on_the_server() {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fleets/slow-tts.toml");
    let text = std::fs::read_to_string(file).unwrap();
    let (out, server) = run_against_mock(&plan(&text)).await;
    assert_eq!(out.metrics.failed, 0, "{:?}", out.metrics.failure_details);
    assert!(!out.metrics.turn_records.is_empty());
    for rec in &out.metrics.turn_records {
        let pb = playback(rec);
        assert_every_gap_is_the_servers(pb, pb.frames, 15.0);
    }
    server.stop().await;
}

#[test]
fn validate_names_the_providers_pace() {
    let words = xiaozhi_fleet::app::describe_plan(&plan(&one_turn("tts_rtf = 0.8"))).unwrap();
    assert!(
        words.contains("real-time factor 0.8 (each 60 ms of audio made in 75ms)"),
        "{words}"
    );
    let plain = xiaozhi_fleet::app::describe_plan(&plan(&one_turn(""))).unwrap();
    assert!(!plain.contains("real-time factor"), "{plain}");
}
