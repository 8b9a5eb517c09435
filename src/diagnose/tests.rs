//! The matrix and the verdict on hand-written cell figures.

use super::verdict::{Diagnosis, diagnose};
use super::*;

fn cell(factor: Factor, turns: u64, stutter_turns: u64, ms: (f64, f64, f64)) -> CellResult {
    let mut spec = matrix(&MatrixOptions::default()).remove(0);
    match &factor {
        Factor::Devices(n) => spec.devices = *n,
        Factor::Network(p) => spec.network = p.clone(),
        Factor::DeviceQueue(q) => spec.queue = Some(*q),
        _ => {}
    }
    spec.factor = factor;
    let mut c = CellResult {
        spec,
        turns,
        failed: 0,
        stutter_turns,
        server_ms: ms.0,
        network_ms: ms.1,
        device_ms: ms.2,
        first_audio_p95_ms: Some(900.0),
        server_cpu_cores: None,
        inconclusive: None,
    };
    c.check_turns();
    c
}

fn clean(factor: Factor) -> CellResult {
    cell(factor, 10, 0, (0.0, 0.0, 0.0))
}

#[test]
fn the_default_matrix_changes_one_factor_at_a_time_from_two_devices_on_lan() {
    let cells = matrix(&MatrixOptions::default());
    let labels: Vec<String> = cells.iter().map(|c| c.factor.label()).collect();
    assert_eq!(
        labels,
        [
            "baseline",
            "5 devices",
            "10 devices",
            "network wifi-poor",
            "network 4g",
            "device queue 10 frames"
        ]
    );
    assert_eq!(
        (cells[0].devices, cells[0].network.as_str(), cells[0].queue),
        (2, "lan", None)
    );
    assert_eq!((cells[2].devices, cells[2].network.as_str()), (10, "lan"));
    assert_eq!((cells[3].devices, cells[3].network.as_str()), (2, "wifi-poor"));
    assert_eq!((cells[5].devices, cells[5].queue), (2, Some(10)));
    let with_mqtt = matrix(&MatrixOptions {
        other_transport: true,
        ..MatrixOptions::default()
    });
    let t = with_mqtt.iter().find(|c| c.factor.family() == "transport").unwrap();
    assert_eq!(
        (t.transport, t.devices, t.network.as_str()),
        (TransportChoice::Mqtt, 2, "lan")
    );
}

#[test]
fn a_clean_matrix_names_nothing() {
    let d = diagnose(&[
        clean(Factor::Baseline),
        clean(Factor::Devices(10)),
        clean(Factor::Network("wifi-poor".into())),
    ]);
    assert!(!d.stutter_found && !d.baseline_stutters && !d.no_verdict);
    assert!(d.headline.starts_with("no stutter"), "{}", d.headline);
    assert!(d.findings.iter().all(|f| !f.brings_stutter));
}

#[test]
fn a_poor_network_is_named_with_its_share_and_cause() {
    let d = diagnose(&[
        clean(Factor::Baseline),
        clean(Factor::Devices(10)),
        cell(Factor::Network("wifi-poor".into()), 10, 8, (0.0, 4200.0, 0.0)),
    ]);
    assert!(d.stutter_found && !d.baseline_stutters);
    assert_eq!(
        d.headline,
        "stutter comes with network wifi-poor (80% of turns vs 0% at baseline, 420 ms per turn, mostly network)"
    );
    let f = &d.findings[1];
    assert_eq!((f.brings_stutter, f.cause), (true, Some(Cause::Network)));
    assert!(d.advice[0].contains("tts_audio_send_delay"), "{:?}", d.advice);
}

#[test]
fn a_late_server_at_baseline_is_named_as_the_server_side() {
    let mut base = cell(Factor::Baseline, 10, 10, (6000.0, 0.0, 0.0));
    base.server_cpu_cores = Some(0.12);
    let d = diagnose(&[
        base,
        cell(Factor::Network("wifi-poor".into()), 10, 10, (6000.0, 900.0, 0.0)),
    ]);
    assert!(d.baseline_stutters && d.stutter_found);
    assert_eq!(d.baseline_cause, Some(Cause::Server));
    assert!(d.headline.contains("100% of turns, 600 ms per turn"), "{}", d.headline);
    assert!(d.headline.contains("the server side"), "{}", d.headline);
    // Same share as the baseline: the network is not what brings it.
    assert!(!d.findings[0].brings_stutter);
    assert!(
        d.advice[0].contains("0.12 cores") && d.advice[0].contains("TTS"),
        "{:?}",
        d.advice
    );
}

#[test]
fn more_speakers_with_server_late_frames_point_at_cpu() {
    let d = diagnose(&[
        clean(Factor::Baseline),
        cell(Factor::Devices(10), 30, 12, (3000.0, 0.0, 0.0)),
    ]);
    assert!(d.findings[0].brings_stutter);
    assert!(
        d.advice.iter().any(|a| a.contains("fewer devices on each core")),
        "{:?}",
        d.advice
    );
}

#[test]
fn one_stuttering_turn_or_a_small_share_is_not_a_finding() {
    let one = cell(Factor::Network("4g".into()), 10, 1, (0.0, 300.0, 0.0));
    let few = cell(Factor::Devices(10), 40, 3, (200.0, 0.0, 0.0));
    let d = diagnose(&[clean(Factor::Baseline), one, few]);
    assert!(!d.stutter_found, "{d:?}");
}

#[test]
fn a_cell_with_too_few_turns_is_left_out_and_said_why() {
    let short = cell(Factor::Network("wifi-poor".into()), 3, 3, (0.0, 900.0, 0.0));
    assert_eq!(
        short.inconclusive.as_deref(),
        Some("only 3 turn(s) with audio completed (0 failed); 6 needed")
    );
    let d = diagnose(&[clean(Factor::Baseline), short]);
    assert!(d.findings.is_empty() && !d.stutter_found);
    assert_eq!(d.inconclusive[0].0, "network wifi-poor");
}

#[test]
fn without_a_measured_baseline_there_is_no_verdict() {
    let d: Diagnosis = diagnose(&[cell(Factor::Baseline, 0, 0, (0.0, 0.0, 0.0)), clean(Factor::Devices(5))]);
    assert!(d.no_verdict && !d.stutter_found);
    assert!(
        d.headline
            .starts_with("no verdict: the baseline could not be measured (only 0 turn(s)")
    );
}

#[test]
fn dropped_audio_on_a_small_queue_is_the_device() {
    let d = diagnose(&[
        clean(Factor::Baseline),
        cell(Factor::DeviceQueue(10), 10, 6, (0.0, 0.0, 2400.0)),
    ]);
    assert_eq!(d.findings[0].cause, Some(Cause::Device));
    assert!(d.headline.contains("device queue 10 frames"), "{}", d.headline);
    assert!(
        d.advice.iter().any(|a| a.contains("Devices drop audio")),
        "{:?}",
        d.advice
    );
}
