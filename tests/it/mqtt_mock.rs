//! The fleet's MQTT + UDP devices against the mock's gateway, end to end on
//! a paused clock over loopback: the OTA answer picks the transport
//! (`mqtt` → MQTT + UDP through the gateway, `websocket` → WebSocket), the
//! same fleet completes every turn both ways, and first audio over MQTT +
//! UDP is within one packet (60 ms) of first audio over WebSocket.

use crate::support::plan;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use xiaozhi_fleet::config::Plan;
use xiaozhi_fleet::fleet::{RunOutcome, load_clips, run_fleet};
use xiaozhi_fleet::metrics::{Snapshot, TurnOutcome};
use xiaozhi_fleet::mock::{MockCounters, MockServer};

pub(crate) const DEVICES: u64 = 20;
pub(crate) const TURNS: u64 = 3;

pub(crate) fn fleet(ota_url: &str, offer: &str, faults: &str) -> Plan {
    plan(&format!(
        "devices = {DEVICES}\nturns = {TURNS}\nthink_time = \"0s\"\nseed = 17\nramp = 100\nota = \"{ota_url}\"\n\n\
         [mock]\nota = \"{offer}\"\nasr_delay = \"200ms\"\nllm_delay = \"300ms\"\ntts_delay = \"200ms\"\n\
         sentences = 2\nsilence_window = \"300ms\"\n{faults}"
    ))
}

/// Runs the fleet against a mock that answers its OTA with `offer`.
pub(crate) async fn run(offer: &str, faults: &str) -> (RunOutcome, MockServer) {
    let settings = fleet("http://127.0.0.1:1/xiaozhi/ota/", offer, faults).mock;
    let mock = MockServer::start("127.0.0.1:0", settings).await.unwrap();
    let p = fleet(&mock.ota_url(), offer, faults);
    let clips = load_clips(&p).expect("clips load");
    let (tx, _rx) = watch::channel(Snapshot::default());
    let out = run_fleet(&p, &mock.ota_url(), &clips, CancellationToken::new(), tx)
        .await
        .expect("fleet runs");
    (out, mock)
}

fn every_turn_completed(out: &RunOutcome) {
    let m = &out.metrics;
    assert!(m.failures.is_empty(), "{:?} {:?}", m.failures, m.failure_details);
    assert!(m.connect_failures.is_empty(), "{:?}", m.connect_failure_details);
    assert_eq!(m.completed, DEVICES * TURNS);
    assert!(m.turn_records.iter().all(|r| r.outcome == TurnOutcome::Completed));
}

fn first_audio(out: &RunOutcome) -> Vec<Duration> {
    let mut v: Vec<Duration> = out.metrics.turn_records.iter().filter_map(|r| r.first_audio).collect();
    v.sort();
    v
}

#[tokio::test(start_paused = true)]
async fn twenty_devices_talk_over_mqtt_and_udp_as_fast_as_over_websocket() {
    let (udp, gateway) = run("mqtt", "").await;
    every_turn_completed(&udp);
    let c = &gateway.counters;
    // The OTA answer sent every device to the gateway, none to the WebSocket.
    assert_eq!(MockCounters::get(&c.sessions), 0);
    assert_eq!(MockCounters::get(&c.mqtt_connections), DEVICES);
    assert_eq!(MockCounters::get(&c.conversations), DEVICES);
    assert_eq!(MockCounters::get(&c.downlink_before_address), 0);
    // Every turn's downlink arrived whole: nothing lost, late or doubled.
    let d = udp.metrics.datagrams.expect("turns over UDP count their datagrams");
    assert_eq!((d.lost, d.reordered, d.duplicated, d.malformed), (0, 0, 0, 0));
    assert_eq!(d.received, MockCounters::get(&c.datagrams_out));
    assert!(udp.metrics.turn_records.iter().all(|r| r.datagrams.is_some()));

    let (ws, mock) = run("websocket", "").await;
    every_turn_completed(&ws);
    assert_eq!(MockCounters::get(&mock.counters.sessions), DEVICES);
    assert_eq!(MockCounters::get(&mock.counters.mqtt_connections), 0);
    assert!(ws.metrics.datagrams.is_none());
    assert!(ws.metrics.turn_records.iter().all(|r| r.datagrams.is_none()));

    // Within one 60 ms packet of each other, turn for turn (sorted).
    let (a, b) = (first_audio(&udp), first_audio(&ws));
    assert_eq!((a.len(), b.len()), (60, 60));
    for (x, y) in a.iter().zip(&b) {
        assert!(
            x.abs_diff(*y) <= Duration::from_millis(60),
            "mqtt {x:?} vs websocket {y:?}"
        );
    }
    gateway.stop().await;
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn udp_loss_the_playback_survives_is_a_count_and_no_device_fails() {
    let faults = "\n[[mock.fault]]\nkind = \"udp_loss\"\np = 1.0\nper_datagram = 0.1\n";
    let (out, mock) = run("mqtt", faults).await;
    every_turn_completed(&out);
    let d = out.metrics.datagrams.expect("datagram counts");
    let dropped = MockCounters::get(&mock.counters.udp_dropped);
    assert!(dropped > 0);
    // Every datagram the gateway dropped is counted lost by its device: a
    // sequence gap, or missing from the announced total at the end.
    assert_eq!(d.lost, dropped);
    assert_eq!(d.received, MockCounters::get(&mock.counters.datagrams_out));
    mock.stop().await;
}
