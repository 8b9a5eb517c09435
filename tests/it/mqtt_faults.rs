//! The gateway's faults as the fleet's MQTT + UDP devices see them, end to
//! end on a paused clock: each gives exactly one failure kind with its
//! detail, or a count for the UDP kinds that playback survives, and no
//! device or turn it did not pick is affected.

use crate::mqtt_mock::{DEVICES, TURNS, run};
use xiaozhi_fleet::metrics::{FailureKind, TurnOutcome};
use xiaozhi_fleet::mock::MockCounters;

#[tokio::test(start_paused = true)]
async fn bad_udp_key_fails_only_the_device_it_hits_with_the_reason() {
    let (out, mock) = run("mqtt", "\n[[mock.fault]]\nkind = \"bad_udp_key\"\nconnections = [0]\n").await;
    let m = &out.metrics;
    // One device's MQTT connection gets the bad key on every hello: its
    // three turns fail, each with the firmware's reason; the others talk.
    assert_eq!(m.failures.get(&FailureKind::Protocol), Some(&TURNS), "{:?}", m.failures);
    assert_eq!(m.failures.len(), 1, "{:?}", m.failure_details);
    for d in &m.failure_details[&FailureKind::Protocol] {
        assert_eq!(d, "server hello `udp.key` is 15 bytes, not 16");
    }
    assert_eq!(m.completed, (DEVICES - 1) * TURNS);
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn mqtt_disconnect_mid_answer_is_closed_and_the_next_turn_reconnects() {
    let (out, mock) = run("mqtt", "\n[[mock.fault]]\nkind = \"mqtt_disconnect\"\nturns = [1]\n").await;
    let m = &out.metrics;
    assert_eq!(
        m.failures.get(&FailureKind::Closed),
        Some(&DEVICES),
        "{:?}",
        m.failure_details
    );
    assert_eq!(m.failures.len(), 1, "{:?}", m.failure_details);
    assert_eq!(m.completed, DEVICES * (TURNS - 1));
    for r in &m.turn_records {
        let failed = r.outcome != TurnOutcome::Completed;
        assert_eq!(
            failed,
            r.turn == 1,
            "device {} turn {}: {:?}",
            r.device,
            r.turn,
            r.outcome
        );
    }
    assert_eq!(
        mock.counters
            .faults
            .count(xiaozhi_fleet::mock::FaultKind::MqttDisconnect),
        DEVICES
    );
    // Each device came back for its third turn over a new MQTT connection.
    assert_eq!(MockCounters::get(&mock.counters.mqtt_connections), 2 * DEVICES);
    mock.stop().await;
}

/// Runs a UDP fault on every answer; every turn completes and the
/// devices' counts of what the network did are returned with the mock.
async fn survived(
    kind: &str,
) -> (
    xiaozhi_fleet::protocol::udp::DatagramCounts,
    xiaozhi_fleet::mock::MockServer,
) {
    let faults = format!("\n[[mock.fault]]\nkind = \"{kind}\"\np = 1.0\nper_datagram = 0.1\n");
    let (out, mock) = run("mqtt", &faults).await;
    let m = &out.metrics;
    assert!(
        m.failures.is_empty(),
        "{kind}: {:?} {:?}",
        m.failures,
        m.failure_details
    );
    assert_eq!(m.completed, DEVICES * TURNS, "{kind}");
    (m.datagrams.expect("datagram counts"), mock)
}

#[tokio::test(start_paused = true)]
async fn duplicated_datagrams_are_counted_and_dropped_and_nothing_fails() {
    let (d, mock) = survived("udp_duplicate").await;
    assert_eq!(d.duplicated, MockCounters::get(&mock.counters.udp_duplicated));
    assert!(d.duplicated > 0);
    assert_eq!((d.lost, d.reordered), (0, 0));
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn reordered_and_late_datagrams_are_counted_and_nothing_fails() {
    for (kind, counter) in [("udp_reorder", "udp_reordered"), ("udp_late", "udp_delayed")] {
        let (d, mock) = survived(kind).await;
        let c = &mock.counters;
        let struck = MockCounters::get(if counter == "udp_reordered" {
            &c.udp_reordered
        } else {
            &c.udp_delayed
        });
        // A struck datagram arrives after a later one (late: dropped and
        // counted), unless it was the answer's last: then it is in order.
        assert!(
            d.reordered > 0 && d.reordered <= struck,
            "{kind}: {d:?}, struck {struck}"
        );
        assert_eq!(d.duplicated, 0, "{kind}");
        // Each late one was a gap first, filled when it came: not lost.
        assert_eq!(d.lost, 0, "{kind}: {d:?}");
        mock.stop().await;
    }
}
