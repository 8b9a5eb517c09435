//! Injected network and device conditions against the mock, on a paused
//! clock: the same fleet and seed hears no stutter on `lan`, stutters on
//! `wifi-poor` with every gap blamed on the network (the frames were on
//! time at the socket), and a memory-tight board fed faster than it plays
//! drops audio the device is blamed for.

use crate::support::{plan, run_against_mock};
use xiaozhi_fleet::audio::playback::TurnPlayback;
use xiaozhi_fleet::metrics::TurnOutcome;

/// Four devices, three turns each, a three-sentence answer paced like
/// the real server (`sentence_delay = "300ms"` unless `mock` sets it).
/// The transcript is not checked: an uplink stall longer than the mock's
/// 300 ms silence window ends an utterance on a pause inside it, as the
/// real server's wall-clock VAD does, and the answer is to part of the clip.
fn fleet(extra: &str, mock: &str) -> String {
    let pace = if mock.contains("sentence_delay") {
        ""
    } else {
        "sentence_delay = \"300ms\"\n"
    };
    format!(
        "devices = 4\nturns = 3\nthink_time = \"1s\"\nseed = 7\nramp = 100\ntranscript_check = \"off\"\n{extra}\n\n\
         [mock]\nasr_delay = \"100ms\"\nllm_delay = \"100ms\"\ntts_delay = \"100ms\"\nsentences = 3\n{pace}{mock}\n"
    )
}

/// Every turn's playback (every turn must have completed).
async fn playbacks(text: &str) -> Vec<TurnPlayback> {
    let (out, server) = run_against_mock(&plan(text)).await;
    server.stop().await;
    let m = &out.metrics;
    assert_eq!(m.turn_records.len(), 12, "{:?}", m.failures);
    m.turn_records
        .iter()
        .map(|r| {
            assert_eq!(r.outcome, TurnOutcome::Completed, "{:?}", r.detail);
            r.playback.clone().expect("the turn played")
        })
        .collect()
}

fn total(pb: &[TurnPlayback], f: impl Fn(&TurnPlayback) -> f64) -> f64 {
    pb.iter().map(f).sum()
}

#[tokio::test(start_paused = true)]
async fn lan_gives_no_stutter_and_wifi_poor_stutters_by_the_network_alone() {
    let lan = playbacks(&fleet("network = \"lan\"", "")).await;
    assert_eq!(total(&lan, |p| p.underrun_ms), 0.0);
    assert_eq!(total(&lan, |p| p.dropped_ms), 0.0);
    assert!(lan.iter().all(|p| !p.stutters(std::time::Duration::from_millis(60))));

    let poor = playbacks(&fleet("network = \"wifi-poor\"", "")).await;
    let (underrun, network, server) = (
        total(&poor, |p| p.underrun_ms),
        total(&poor, |p| p.network_gap_ms),
        total(&poor, |p| p.server_gap_ms),
    );
    eprintln!("wifi-poor: underrun {underrun} ms, network {network} ms, server {server} ms");
    assert!(poor.iter().any(|p| p.stutters(std::time::Duration::from_millis(60))));
    assert!(network > 0.0);
    // Every gap is the network's: the mock's frames were on time at the socket.
    assert_eq!(network, underrun);
    assert_eq!(server, 0.0);
    assert_eq!(total(&poor, |p| p.dropped_ms), 0.0);
    // The same seed hears the same gaps.
    let again = playbacks(&fleet("network = \"wifi-poor\"", "")).await;
    assert_eq!(total(&again, |p| p.network_gap_ms), network);
}

#[tokio::test(start_paused = true)]
async fn a_small_queue_fed_ahead_drops_audio_the_device_is_blamed_for() {
    let burst = "downlink = \"burst\"\nsentence_delay = \"0ms\"";
    let small = playbacks(&fleet("[device]\nqueue = 5\noverflow = \"drop\"", burst)).await;
    let dropped = total(&small, |p| p.dropped_ms);
    eprintln!("queue 5, burst: dropped {dropped} ms");
    assert!(dropped > 0.0);
    assert!(small.iter().all(|p| p.overflow_drops > 0 && p.max_queue_frames <= 5));
    // Not the network's, nor a late server's.
    assert_eq!(total(&small, |p| p.network_gap_ms), 0.0);
    assert_eq!(total(&small, |p| p.server_gap_ms), 0.0);
    // A board that waits for a slot loses nothing of the same answers.
    let waiting = playbacks(&fleet("[device]\nqueue = 5\noverflow = \"wait\"", burst)).await;
    assert_eq!(total(&waiting, |p| p.dropped_ms), 0.0);
    assert_eq!(
        total(&waiting, |p| p.tts_audio_ms),
        total(&small, |p| p.tts_audio_ms + p.dropped_ms)
    );
}
