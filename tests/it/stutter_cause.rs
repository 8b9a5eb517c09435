//! Stutter per cause end to end, on a paused clock over loopback (no
//! network conditions): a late sentence is the server's, a burst beyond the
//! decode queue is the device's, with exact figures in the report's
//! `playback.by_cause`; the worst turn's recording marks each gap so.

use crate::support::{plan, run_against_mock};
use xiaozhi_fleet::mock::VoiceBank;
use xiaozhi_fleet::record::write_recording;
use xiaozhi_fleet::report::playback_of;

/// One device, one turn, with the given `[mock]` lines.
fn one_turn(mock: &str) -> String {
    format!(
        "devices = 1\nturns = 1\nseed = 5\n\n[record]\nworst = 1\n\n[mock]\nasr_delay = \"100ms\"\nllm_delay = \"100ms\"\ntts_delay = \"100ms\"\n{mock}\n"
    )
}

#[tokio::test(start_paused = true)]
async fn a_late_sentence_is_the_servers_stutter_and_marked_so_in_the_recording() {
    let (out, server) = run_against_mock(&plan(&one_turn("sentences = 2\nsentence_delay = \"4s\""))).await;
    server.stop().await;
    // Sentence 2 is ready 4 s after sentence 1, whose audio covers part of it.
    let gap_ms = 4000.0 - VoiceBank::shared().unwrap().sentence(0).1.len() as f64 * 60.0;
    let p = playback_of(&out.metrics);
    assert_eq!(
        (p.by_cause.server_ms, p.by_cause.network_ms, p.by_cause.device_ms),
        (gap_ms, 0.0, 0.0)
    );
    assert_eq!(
        (
            p.by_cause.turns_server,
            p.by_cause.turns_network,
            p.by_cause.turns_device
        ),
        (1, 0, 0)
    );
    assert_eq!((p.server_gap_ms.count, p.server_gap_ms.max), (1, gap_ms));

    let dir = std::env::temp_dir().join(format!("xiaozhi-it-cause-{}", std::process::id()));
    let rec = write_recording(&dir, &out.metrics.recorded[0]).unwrap();
    let timeline: serde_json::Value = serde_json::from_slice(&std::fs::read(&rec.timeline).unwrap()).unwrap();
    let marks = timeline["gap_marks"].as_array().unwrap();
    assert_eq!(marks.len(), 1);
    assert_eq!(
        (&marks[0]["cause"], &marks[0]["duration_ms"]),
        (&"server".into(), &gap_ms.into())
    );
    assert_eq!(timeline["underrun_spans"][0]["server_ms"], gap_ms);
    assert_eq!(rec.marks.get("server"), Some(&1));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_burst_beyond_the_queue_is_the_devices_stutter() {
    let mock = "sentences = 3\nsentence_delay = \"0ms\"\ndownlink = \"burst\"";
    let (out, server) = run_against_mock(&plan(&one_turn(mock))).await;
    server.stop().await;
    let pb = out.metrics.turn_records[0].playback.clone().unwrap();
    assert!(pb.overflow_drops > 0, "the burst overflows the 40-frame queue");
    let p = playback_of(&out.metrics);
    assert_eq!(
        (p.by_cause.server_ms, p.by_cause.network_ms, p.by_cause.device_ms),
        (0.0, 0.0, f64::from(pb.overflow_drops) * 60.0)
    );
    assert_eq!(
        (
            p.by_cause.turns_server,
            p.by_cause.turns_network,
            p.by_cause.turns_device
        ),
        (0, 0, 1)
    );
    let dir = std::env::temp_dir().join(format!("xiaozhi-it-burst-{}", std::process::id()));
    let rec = write_recording(&dir, &out.metrics.recorded[0]).unwrap();
    assert_eq!(rec.marks.get("device"), Some(&1), "one run of dropped frames, one skip");
    std::fs::remove_dir_all(&dir).unwrap();
}
