//! Shared helpers: build plans from TOML text, run a fleet against an
//! in-process mock on 127.0.0.1:0, wait for the mock to see every close.

use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use xiaozhi_fleet::config::plan::Overrides;
use xiaozhi_fleet::config::{FleetFile, Plan};
use xiaozhi_fleet::fleet::{RunOutcome, load_clips, run_fleet};
use xiaozhi_fleet::metrics::Snapshot;
use xiaozhi_fleet::mock::MockServer;

/// A validated plan from fleet-file text.
pub fn plan(text: &str) -> Plan {
    let raw = FleetFile::parse(text, "test.toml").expect("test fleet parses");
    Plan::from_file(raw, "test.toml", &Overrides::default()).expect("test fleet is valid")
}

/// Starts the plan's mock, runs the fleet against it, waits until the mock
/// has seen every session close, and returns both.
pub async fn run_against_mock(plan: &Plan) -> (RunOutcome, MockServer) {
    let mock = MockServer::start("127.0.0.1:0", plan.mock.clone())
        .await
        .expect("mock binds");
    let clips = load_clips(plan).expect("clips load");
    let (tx, _rx) = watch::channel(Snapshot::default());
    let outcome = run_fleet(plan, &mock.url(), &clips, CancellationToken::new(), tx)
        .await
        .expect("fleet runs");
    for _ in 0..1000 {
        if mock.counters.active_sessions.load(Ordering::Relaxed) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (outcome, mock)
}
