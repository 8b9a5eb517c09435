//! Realistic load on a paused clock: closed-loop stages hold exact speaker
//! counts on the mock's side; barge-in, push-to-talk and wake words put the
//! right messages on the wire; idle devices closed by the server are
//! counted, not failed; a starved generator flags itself.

use crate::support::{plan, run_against_mock};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use xiaozhi_fleet::fleet::{Hooks, load_clips, run_fleet_with};
use xiaozhi_fleet::metrics::Snapshot;
use xiaozhi_fleet::mock::{MockCounters, MockServer};
use xiaozhi_fleet::report::{Report, RunContext};

#[tokio::test(start_paused = true)]
async fn step_plan_holds_exactly_two_then_four_open_turns_on_the_mock() {
    let plan = plan("stages = [\"2 for 10s\", \"4 for 10s\"]\nthink_time = \"0s\"\nramp = 10\nseed = 4\n");
    assert_eq!(plan.devices, 4);
    let mock = MockServer::start("127.0.0.1:0", plan.mock.clone()).await.unwrap();
    let t0 = Instant::now();
    let counters = mock.counters.clone();
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        for s in 1..=40u64 {
            tokio::time::sleep_until(t0 + Duration::from_secs(s)).await;
            samples.push((s as f64, counters.open_turns.load(Ordering::Relaxed)));
        }
        samples
    });
    let clips = load_clips(&plan).unwrap();
    let (tx, _rx) = watch::channel(Snapshot::default());
    let out = run_fleet_with(
        &plan,
        &mock.url(),
        &clips,
        CancellationToken::new(),
        tx,
        Hooks::default(),
    )
    .await
    .unwrap();
    let samples = sampler.await.unwrap();
    let stages = &out.metrics.stages;
    assert_eq!(stages.len(), 2);
    let mut checked = 0;
    for st in stages {
        let (from, to) = (st.started_at_s, st.started_at_s + st.duration_s);
        for (t, open) in samples.iter().filter(|(t, _)| *t > from && *t < to) {
            assert_eq!(*open, st.speakers as i64, "at {t} s in stage {}", st.name);
            checked += 1;
        }
        assert!(st.metrics.completed > 0, "stage {} measured turns", st.name);
    }
    assert!(checked >= 18, "sampled {checked} seconds");
    assert_eq!(out.metrics.failed, 0, "{:?}", out.metrics.failures);
    // The report lists each stage's own window.
    let ctx = RunContext {
        target_url: "x",
        mock: true,
        devices: plan.devices,
        seed: plan.seed,
        fleet: "t",
    };
    let json = serde_json::to_value(Report::build(&ctx, &out)).unwrap();
    let st = &json["stages"][1];
    for key in [
        "name",
        "speakers",
        "turns",
        "latency_ms",
        "playback",
        "started_at",
        "duration_s",
    ] {
        assert!(!st[key].is_null(), "stages[1].{key} missing: {st}");
    }
    assert_eq!(st["speakers"], 4);
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn barge_in_sends_abort_the_mock_stops_and_the_turn_is_interrupted() {
    let plan = plan("[[group]]\ncount = 2\nturns = 3\nbarge_in = 1.0\nthink_time = \"0s\"\n\n[mock]\nsentences = 3\n");
    let (out, mock) = run_against_mock(&plan).await;
    let m = &out.metrics;
    assert_eq!(m.interrupted, 6, "every answer interrupted: {:?}", m.failures);
    assert_eq!((m.failed, m.completed), (0, 0));
    assert_eq!(MockCounters::get(&mock.counters.aborts), 6);
    // The mock stopped mid-answer: it sent fewer frames than full answers hold.
    assert_eq!(MockCounters::get(&mock.counters.replies_completed), 0);
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn manual_mode_sends_listen_stop_right_after_the_clip() {
    let plan = plan(
        "[[group]]\ncount = 2\nturns = 2\nmode = \"manual\"\nthink_time = \"1s\"\n\n[mock]\nasr_delay = \"300ms\"\n",
    );
    let (out, mock) = run_against_mock(&plan).await;
    let m = &out.metrics;
    assert_eq!(m.completed, 4, "{:?}", m.failures);
    assert_eq!(MockCounters::get(&mock.counters.listen_stops), 4);
    // `listen stop` arrives with the last packet, so `stt` is ASR time alone.
    for r in &m.turn_records {
        assert_eq!(
            r.stt,
            Some(Duration::from_millis(300)),
            "device {} turn {}",
            r.device,
            r.turn
        );
    }
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn wake_word_start_sends_listen_detect_with_the_configured_text() {
    let plan = plan(
        "[[group]]\ncount = 3\nturns = 1\nstart = \"wake_word\"\nwake_word = \"小爱同学\"\n\n[mock]\nwake_words = [\"小爱同学\"]\n",
    );
    let (out, mock) = run_against_mock(&plan).await;
    assert_eq!(out.metrics.completed, 3, "{:?}", out.metrics.failures);
    assert_eq!(MockCounters::get(&mock.counters.wake_words), 3);
    assert_eq!(MockCounters::get(&mock.counters.detect_texts), 0);
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn idle_listening_device_closed_by_no_voice_timeout_is_counted_and_reconnects() {
    let plan = plan(
        "[[group]]\ncount = 1\nturns = 1\nidle = \"listening\"\nconversations = 2\nidle_time = \"20s\"\n\n[mock]\nidle_timeout = \"5s\"\n",
    );
    let (out, mock) = run_against_mock(&plan).await;
    let m = &out.metrics;
    assert_eq!(m.completed, 2, "{:?}", m.failures);
    assert_eq!(m.failed, 0);
    assert_eq!(m.idle_closed, 1);
    assert_eq!(m.connections, 2, "reconnected for the second conversation");
    assert_eq!(MockCounters::get(&mock.counters.idle_closes), 1);
    mock.stop().await;
}

#[tokio::test]
async fn starved_generator_reports_itself_invalid() {
    // Real time: a worker blocked for 120 ms every 200 ms makes packets late.
    let plan = plan("devices = 2\nturns = 1\n");
    let mock = MockServer::start("127.0.0.1:0", plan.mock.clone()).await.unwrap();
    let clips = load_clips(&plan).unwrap();
    let (tx, _rx) = watch::channel(Snapshot::default());
    let hooks = Hooks {
        starve: Some((Duration::from_millis(120), Duration::from_millis(200))),
    };
    let out = run_fleet_with(&plan, &mock.url(), &clips, CancellationToken::new(), tx, hooks)
        .await
        .unwrap();
    let g = &out.generator;
    assert!(!g.valid, "{g:?}");
    assert!(
        g.invalid_reasons.iter().any(|r| r.contains("send lag")),
        "{:?}",
        g.invalid_reasons
    );
    assert!(g.send_lag_ms.p99 > 5.0);
    mock.stop().await;
}
