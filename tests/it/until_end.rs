//! `run --devices 5 --duration 20s` (no `--turns`): the built-in fleet's
//! `turns = 2` no longer stops the devices; every device keeps taking turns
//! until the end of the run (paused clock, in-process mock).

use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use xiaozhi_fleet::config::plan::Overrides;
use xiaozhi_fleet::config::{Plan, Stop};
use xiaozhi_fleet::fleet::{load_clips, run_fleet};
use xiaozhi_fleet::metrics::Snapshot;
use xiaozhi_fleet::mock::MockServer;

#[tokio::test(start_paused = true)]
async fn duration_without_turns_keeps_every_device_talking_until_the_end() {
    let ov = Overrides {
        devices: Some(5),
        duration: Some(Duration::from_secs(20)),
        ..Overrides::default()
    };
    let plan = Plan::load(None, &ov).unwrap();
    assert_eq!(plan.stop, Stop::Duration(Duration::from_secs(20)));
    assert!(plan.groups.iter().all(|g| g.turns.is_none()), "{:?}", plan.groups);

    let mock = MockServer::start("127.0.0.1:0", plan.mock.clone()).await.unwrap();
    let t0 = Instant::now();
    let counters = mock.counters.clone();
    // (second, listen starts so far, turns open on the mock) every second.
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        for s in 1..=20u64 {
            tokio::time::sleep_until(t0 + Duration::from_secs(s)).await;
            let starts = counters.listen_starts.load(Ordering::Relaxed);
            samples.push((s, starts, counters.open_turns.load(Ordering::Relaxed)));
        }
        samples
    });
    let clips = load_clips(&plan).unwrap();
    let (tx, _rx) = watch::channel(Snapshot::default());
    let out = run_fleet(&plan, &mock.url(), &clips, CancellationToken::new(), tx)
        .await
        .unwrap();
    let samples = sampler.await.unwrap();
    mock.stop().await;

    let records = &out.metrics.turn_records;
    assert_eq!(out.metrics.failed, 0, "{:?}", out.metrics.failures);
    assert!(records.len() >= 5 * 2, "{} turns", records.len());
    for device in 0..5 {
        let n = records.iter().filter(|r| r.device == device).count();
        assert!(n >= 2, "device {device} took {n} turns");
    }
    // Turns keep starting in the final 10 s: the built-in 2 turns per device
    // would all have started by then.
    let at_10 = samples[9].1;
    let at_end = samples[19].1;
    assert!(at_end >= at_10 + 5, "listen starts: {at_10} at 10 s, {at_end} at 20 s");
    // And in the run's last second every device is in a turn.
    assert_eq!(samples[18].2, 5, "turns open at 19 s: {samples:?}");
}
