//! The mock's OTA faults (`[mock] ota_fault`, `ota_fault_p`) end to end on
//! a paused clock: each fails the devices it hits with exactly the `ota`
//! kind and the reason, the other devices talk as usual, and the run still
//! writes every report.

use crate::support::plan;
use std::collections::BTreeMap;
use std::path::PathBuf;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use xiaozhi_fleet::app::{RunOptions, run as app_run};
use xiaozhi_fleet::config::Plan;
use xiaozhi_fleet::device::identity_for;
use xiaozhi_fleet::fleet::{RunOutcome, load_clips, run_fleet};
use xiaozhi_fleet::metrics::{FailureKind, Snapshot};
use xiaozhi_fleet::mock::{MockServer, OtaFault, OtaFaultKind};

/// `devices` devices × two turns, seed 5, with extra `[mock]` lines.
fn fleet(devices: u32, ota_url: &str, mock: &str) -> Plan {
    plan(&format!(
        "devices = {devices}\nturns = 2\nthink_time = \"0s\"\nseed = 5\nota = \"{ota_url}\"\n\n\
         [mock]\nasr_delay = \"100ms\"\nllm_delay = \"100ms\"\ntts_delay = \"100ms\"\nsentences = 1\n\
         silence_window = \"300ms\"\n{mock}\n"
    ))
}

async fn run_with(devices: u32, mock_lines: &str) -> (RunOutcome, MockServer) {
    let cfg = fleet(devices, "http://127.0.0.1:1/xiaozhi/ota/", mock_lines).mock;
    let mock = MockServer::start("127.0.0.1:0", cfg).await.expect("mock binds");
    let p = fleet(devices, &mock.ota_url(), mock_lines);
    let clips = load_clips(&p).expect("clips load");
    let (tx, _rx) = watch::channel(Snapshot::default());
    let out = run_fleet(&p, &mock.ota_url(), &clips, CancellationToken::new(), tx)
        .await
        .expect("fleet runs");
    (out, mock)
}

/// `hit` devices failed every turn with `ota` and exactly `detail`; the rest completed.
fn only_ota_with(out: &RunOutcome, devices: u64, hit: u64, detail: &str) {
    let m = &out.metrics;
    let want = |n: u64| {
        if n > 0 {
            BTreeMap::from([(FailureKind::Ota, n)])
        } else {
            BTreeMap::new()
        }
    };
    assert_eq!(m.connect_failures, want(hit), "{:?}", m.connect_failure_details);
    assert_eq!(m.failures, want(2 * hit), "{:?}", m.failure_details);
    if hit > 0 {
        assert_eq!(m.failure_details[&FailureKind::Ota], [detail]);
        assert_eq!(m.connect_failure_details[&FailureKind::Ota], [detail]);
    }
    assert_eq!(m.completed, 2 * (devices - hit));
    assert_eq!(m.connections, devices - hit);
}

#[tokio::test(start_paused = true)]
async fn each_ota_fault_fails_every_device_with_the_ota_kind_and_its_reason() {
    let cases = [
        ("http_500", "OTA answered HTTP 500".to_string()),
        ("html", "OTA answered an HTML page (HTTP 200)".to_string()),
        (
            "missing_fields",
            "OTA answer names no transport (neither `websocket` nor `mqtt`)".to_string(),
        ),
        (
            "bad_websocket_url",
            "OTA answer's websocket URL \"http://127.0.0.1:8000/xiaozhi/v1/\" is unusable: scheme is not ws:// or wss://"
                .to_string(),
        ),
    ];
    for (kind, detail) in cases {
        let (out, mock) = run_with(3, &format!("ota_fault = \"{kind}\"")).await;
        only_ota_with(&out, 3, 3, &detail);
        mock.stop().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_share_of_devices_gets_the_fault_and_the_others_are_unaffected() {
    let (out, _mock) = run_with(10, "seed = 9\nota_fault = \"html\"\nota_fault_p = 0.5").await;
    let fault = OtaFault {
        kind: OtaFaultKind::Html,
        p: 0.5,
    };
    let hit = (0..10)
        .filter(|&i| fault.hits(9, &identity_for(5, i, None).device_id))
        .count() as u64;
    assert!((1..10).contains(&hit), "the seed should split the fleet: {hit}");
    only_ota_with(&out, 10, hit, "OTA answered an HTML page (HTTP 200)");
}

#[tokio::test(start_paused = true)]
async fn a_run_whose_every_device_hits_an_ota_fault_still_writes_every_report() {
    let mock_lines = "ota_fault = \"http_500\"";
    let cfg = fleet(2, "http://127.0.0.1:1/xiaozhi/ota/", mock_lines).mock;
    let mock = MockServer::start("127.0.0.1:0", cfg).await.expect("mock binds");
    let p = fleet(2, &mock.ota_url(), mock_lines);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ota-fault-reports");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let reports: Vec<PathBuf> = ["r.json", "r.csv", "r.html", "r.md"]
        .iter()
        .map(|f| dir.join(f))
        .collect();
    let opts = RunOptions {
        reports: reports.clone(),
        quiet: true,
        ..RunOptions::default()
    };
    let result = app_run(&p, &opts, CancellationToken::new())
        .await
        .expect("the run ends");
    assert!(result.output_errors.is_empty(), "{:?}", result.output_errors);
    assert!(result.nothing_connected);
    for path in &reports {
        assert!(
            std::fs::metadata(path).is_ok_and(|m| m.len() > 0),
            "{} missing",
            path.display()
        );
    }
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&reports[0]).unwrap()).unwrap();
    assert_eq!(json["turns"]["failures"], serde_json::json!({"ota": 4}));
    assert_eq!(json["connections"]["failed"], serde_json::json!({"ota": 2}));
    assert_eq!(
        json["turns"]["failure_details"]["ota"],
        serde_json::json!(["OTA answered HTTP 500"])
    );
}
