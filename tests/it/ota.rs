//! The OTA version check before the first connection, end to end on a
//! paused clock against the mock's OTA endpoint: devices connect where the
//! answer sends them (with its token), the check is timed, and an answer
//! the device cannot follow (MQTT) or no answer at all fails every device
//! with the `ota` kind while the run still ends and reports.

use crate::support::plan;
use serde_json::Value;
use std::sync::atomic::Ordering;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use xiaozhi_fleet::config::Plan;
use xiaozhi_fleet::device::identity_for;
use xiaozhi_fleet::fleet::{RunOutcome, load_clips, run_fleet};
use xiaozhi_fleet::metrics::{FailureKind, Snapshot};
use xiaozhi_fleet::mock::{MockConfig, MockServer};
use xiaozhi_fleet::report::{Report, RunContext};

/// Five devices × two turns; `mock` is extra `[mock]` lines.
fn fleet(ota_url: &str, mock: &str) -> Plan {
    plan(&format!(
        "devices = 5\nturns = 2\nthink_time = \"0s\"\nseed = 5\nota = \"{ota_url}\"\n\n\
         [mock]\nasr_delay = \"100ms\"\nllm_delay = \"100ms\"\ntts_delay = \"100ms\"\nsentences = 1\n\
         silence_window = \"300ms\"\n{mock}\n"
    ))
}

/// The mock's settings of a fleet whose OTA URL is not known yet.
fn mock_config(mock: &str) -> MockConfig {
    fleet("http://127.0.0.1:1/xiaozhi/ota/", mock).mock
}

async fn run(p: &Plan) -> RunOutcome {
    let clips = load_clips(p).expect("clips load");
    let (tx, _rx) = watch::channel(Snapshot::default());
    let url = p.ota.clone().expect("an OTA URL");
    run_fleet(p, &url, &clips, CancellationToken::new(), tx)
        .await
        .expect("fleet runs")
}

fn report_json(out: &RunOutcome) -> Value {
    let ctx = RunContext {
        target_url: "http://127.0.0.1/xiaozhi/ota/",
        mock: true,
        devices: 5,
        seed: 5,
        fleet: "test",
    };
    serde_json::to_value(Report::build(&ctx, out)).expect("report serialises")
}

/// Every failure of the run is `ota`, and each detail satisfies `detail_ok`.
fn all_failed_with_ota(out: &RunOutcome, detail_ok: impl Fn(&str) -> bool) {
    let m = &out.metrics;
    assert_eq!(
        m.connect_failures.get(&FailureKind::Ota),
        Some(&5),
        "{:?}",
        m.connect_failures
    );
    assert_eq!(m.connect_failures.len(), 1, "{:?}", m.connect_failures);
    assert_eq!(m.failures.get(&FailureKind::Ota), Some(&10), "{:?}", m.failures);
    assert_eq!(m.failures.len(), 1, "{:?}", m.failures);
    for d in m.failure_details[&FailureKind::Ota]
        .iter()
        .chain(&m.connect_failure_details[&FailureKind::Ota])
    {
        assert!(detail_ok(d), "{d}");
    }
    assert_eq!(m.connections, 0);
    let samples = m.latency.get("ota").map_or(0, |h| h.count());
    assert_eq!(samples, 0, "only usable answers are timed");
    let json = report_json(out);
    assert_eq!(json["turns"]["failed"], 10, "{}", json["turns"]);
}

#[tokio::test(start_paused = true)]
async fn devices_connect_where_the_ota_answer_sends_them_with_its_token() {
    // The mock demands the token: a device that did not take it from the
    // OTA answer would be refused at the upgrade.
    let mock = MockServer::start("127.0.0.1:0", mock_config("token = \"s3cret\""))
        .await
        .unwrap();
    let p = fleet(&mock.ota_url(), "token = \"s3cret\"");
    let out = run(&p).await;
    let m = &out.metrics;
    assert!(m.failures.is_empty(), "{:?} {:?}", m.failures, m.failure_details);
    assert!(m.connect_failures.is_empty(), "{:?}", m.connect_failure_details);
    assert_eq!(m.completed, 10);
    assert_eq!(m.latency["ota"].count(), 5);
    assert_eq!(m.latency["connect"].count(), 5);
    assert_eq!(mock.counters.ota_requests.load(Ordering::Relaxed), 5);
    let mut seen = mock.counters.ota_device_ids.lock().unwrap().clone();
    seen.sort();
    let mut expected: Vec<String> = (0..5).map(|i| identity_for(5, i, None).device_id).collect();
    expected.sort();
    assert_eq!(seen, expected);
    let json = report_json(&out);
    assert_eq!(json["latency_ms"]["ota"]["count"], 5, "{}", json["latency_ms"]);
}

#[tokio::test(start_paused = true)]
async fn an_mqtt_answer_sends_every_device_to_the_mqtt_broker_it_names() {
    let mock = MockServer::start("127.0.0.1:0", mock_config("ota = \"mqtt\""))
        .await
        .unwrap();
    let out = run(&fleet(&mock.ota_url(), "ota = \"mqtt\"")).await;
    // The answer is taken (timed), and the devices go to the broker it
    // names instead of the WebSocket: none is an `ota` failure.
    let m = &out.metrics;
    assert_eq!(m.latency["ota"].count(), 5);
    assert!(
        !m.connect_failures.contains_key(&FailureKind::Ota),
        "{:?}",
        m.connect_failure_details
    );
    assert_eq!(mock.counters.sessions.load(Ordering::Relaxed), 0);
    assert!(mock.counters.ota_requests.load(Ordering::Relaxed) >= 5);
}

#[tokio::test(start_paused = true)]
async fn an_ota_url_where_nothing_listens_fails_with_the_os_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let out = run(&fleet(&format!("http://127.0.0.1:{port}/xiaozhi/ota/"), "")).await;
    all_failed_with_ota(&out, |d| {
        d.contains("Connection refused") && d.contains(&port.to_string())
    });
}
