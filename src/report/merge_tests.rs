use super::*;

#[test]
fn counts_add_and_unmergeable_numbers_become_null() {
    let mut a =
        json!({"started": 3, "failures": {"no_reply": 1}, "ratio": 0.5, "same": 0.25, "name": "x", "list": [1]});
    let b = json!({"started": 4, "failures": {"no_reply": 2, "closed": 1}, "ratio": 0.1, "same": 0.25, "name": "y", "list": [2]});
    add_counts(&mut a, &b);
    assert_eq!(
        a,
        json!({"started": 7, "failures": {"no_reply": 3, "closed": 1}, "ratio": null, "same": 0.25, "name": "x", "list": [1, 2]})
    );
}

#[test]
fn capacity_reports_and_other_versions_are_refused_with_the_file_named() {
    let cap = json!({"schema_version": 1, "capacity": {}, "histograms": {"x": {}}});
    assert_eq!(
        Shard::new("c.json", cap).err().unwrap().to_string(),
        "c.json: a capacity search's report; merge takes run reports"
    );
    let v2 = json!({"schema_version": 2, "histograms": {"x": {}}});
    assert_eq!(
        Shard::new("v2.json", v2).err().unwrap().to_string(),
        "v2.json: not a schema_version 1 report"
    );
    assert!(matches!(merge(&[]), Err(MergeError::TooFew)));
}

/// A report of one machine whose turns had these per-turn gaps
/// (server, network, dropped) and extra answers.
fn cause_shard(file: &str, turns: &[(f64, f64, f64)], extra: u64) -> Shard {
    use crate::audio::playback::TurnPlayback;
    let mut causes = crate::metrics::stutter::CauseTotals::default();
    for &(server, network, dropped) in turns {
        causes.add(&TurnPlayback {
            server_gap_ms: server,
            network_gap_ms: network,
            dropped_ms: dropped,
            ..TurnPlayback::default()
        });
    }
    let hist = |h: &LatencyHistogram| serde_json::to_value(h).unwrap();
    let playback = json!({"turns": turns.len(), "stutter_turns": 0, "by_cause": causes.by_cause()});
    let report = json!({
        "schema_version": 1,
        "run": {"started_at": "2026-12-05T23:00:00Z", "duration_s": 10.0},
        "turns": {"started": turns.len(), "extra_answers": extra, "extra_answer_turns": (extra > 0) as u64},
        "playback": playback.clone(),
        "stages": [{"name": "s", "speakers": 1, "started_at": 0.0, "duration_s": 5.0,
            "turns": {"started": turns.len()}, "playback": playback,
            "histograms": {super::super::exact::SERVER_GAP: hist(&causes.server_gap_ms)}}],
        "histograms": {
            super::super::exact::SERVER_GAP: hist(&causes.server_gap_ms),
            super::super::exact::NETWORK_GAP: hist(&causes.network_gap_ms),
            super::super::exact::DROPPED: hist(&causes.dropped_ms),
        },
    });
    Shard::new(file, report).unwrap()
}

#[test]
fn merged_reports_sum_stutter_per_cause_and_double_answers() {
    // Equal figures on both machines must add, not stay as they are.
    let a = cause_shard("a.json", &[(60.0, 0.0, 0.0), (0.0, 240.5, 120.0)], 1);
    let b = cause_shard("b.json", &[(60.0, 0.0, 0.0)], 2);
    let merged = merge(&[a, b]).unwrap();
    let by_cause = json!({"server_ms": 120.0, "network_ms": 240.5, "device_ms": 120.0,
        "turns_server": 2, "turns_network": 1, "turns_device": 1});
    assert_eq!(merged["playback"]["by_cause"], by_cause);
    assert_eq!(merged["stages"][0]["playback"]["by_cause"], by_cause);
    let server: Percentiles = serde_json::from_value(merged["playback"]["server_gap_ms"].clone()).unwrap();
    assert_eq!(
        (server.count, server.min, server.max, server.mean),
        (3, 0.0, 60.0, 40.0)
    );
    let network: Percentiles = serde_json::from_value(merged["playback"]["network_gap_ms"].clone()).unwrap();
    assert_eq!((network.count, network.max), (3, 240.5));
    let stage_server: Percentiles =
        serde_json::from_value(merged["stages"][0]["playback"]["server_gap_ms"].clone()).unwrap();
    assert_eq!(stage_server.count, 3);
    assert_eq!(
        (
            &merged["turns"]["extra_answers"],
            &merged["turns"]["extra_answer_turns"]
        ),
        (&json!(3), &json!(2))
    );
}
