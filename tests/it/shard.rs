//! Sharded runs on a paused clock: shards 0/2 and 1/2, each against its own
//! mock, add up to the unsharded run (device ids, turn counts, traffic, and
//! what the mock saw); two shards of a step plan together hold the stage's
//! speakers on one mock.

use crate::support::{plan, run_against_mock};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use xiaozhi_fleet::config::Plan;
use xiaozhi_fleet::device::identity_for;
use xiaozhi_fleet::fleet::shard::Shard;
use xiaozhi_fleet::fleet::{RunOutcome, load_clips, run_fleet};
use xiaozhi_fleet::metrics::Snapshot;
use xiaozhi_fleet::mock::{MockCounters, MockServer};
use xiaozhi_fleet::report::{Report, RunContext, merge};

const FLEET: &str = r#"
devices = 7
ramp = 20
turns = 2
think_time = "uniform(0s, 1500ms)"
seed = 21

[mock]
asr_delay = "200ms"
llm_delay = "300ms"
tts_delay = "100ms"
"#;

/// A bound on each run, in (paused, virtual) time: a wrong split fails
/// instead of waiting forever.
const BOUND: Duration = Duration::from_secs(600);

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {BOUND:?}"))
}

fn sharded(text: &str, index: u32, count: u32) -> Plan {
    let mut p = plan(text);
    p.apply_shard(Shard { index, count }).expect("shard has devices");
    p
}

/// The report's JSON, as `--report r.json` writes it.
fn report(plan: &Plan, out: &RunOutcome) -> Value {
    let ctx = RunContext {
        target_url: "ws://127.0.0.1/",
        mock: false,
        devices: plan.devices,
        seed: plan.seed,
        fleet: "shard-test",
    };
    serde_json::to_value(Report::build(&ctx, out)).expect("report serialises")
}

/// The counts a merge adds up: from the JSON report, and from the mock.
fn counts(json: &Value, mock: &MockServer) -> Vec<(&'static str, u64)> {
    let n = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"));
    let c = &mock.counters;
    vec![
        ("turns.started", n(&json["turns"]["started"])),
        ("turns.completed", n(&json["turns"]["completed"])),
        ("turns.failed", n(&json["turns"]["failed"])),
        (
            "latency_ms.first_audio.count",
            n(&json["latency_ms"]["first_audio"]["count"]),
        ),
        ("audio.frames_sent", n(&json["audio"]["frames_sent"])),
        ("audio.frames_received", n(&json["audio"]["frames_received"])),
        ("audio.bytes_sent", n(&json["audio"]["bytes_sent"])),
        ("connections.opened", n(&json["connections"]["opened"])),
        ("mock.sessions", MockCounters::get(&c.sessions)),
        ("mock.hellos", MockCounters::get(&c.hellos)),
        ("mock.listen_starts", MockCounters::get(&c.listen_starts)),
        ("mock.turns", MockCounters::get(&c.turns)),
        ("mock.replies_completed", MockCounters::get(&c.replies_completed)),
        ("mock.frames_in", MockCounters::get(&c.frames_in)),
        ("mock.frames_out", MockCounters::get(&c.frames_out)),
        ("mock.bytes_in", MockCounters::get(&c.bytes_in)),
    ]
}

/// The device ids whose turns the run reports.
fn device_ids(plan: &Plan, out: &RunOutcome) -> BTreeSet<String> {
    out.metrics
        .turn_records
        .iter()
        .map(|r| identity_for(plan.seed, r.device, None).device_id)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn shards_zero_and_one_of_two_add_up_to_the_unsharded_run() {
    let whole = plan(FLEET);
    let (out, mock) = bounded("the whole run", run_against_mock(&whole)).await;
    assert_eq!(out.metrics.completed, 14, "{:?}", out.metrics.failures);
    let expected = counts(&report(&whole, &out), &mock);
    let expected_ids = device_ids(&whole, &out);
    assert_eq!(expected_ids.len(), 7);
    mock.stop().await;

    let mut sum: Vec<(&str, u64)> = expected.iter().map(|(k, _)| (*k, 0)).collect();
    let mut ids = BTreeSet::new();
    let mut shard_reports = Vec::new();
    for i in 0..2 {
        let part = sharded(FLEET, i, 2);
        let (out, mock) = bounded("a shard", run_against_mock(&part)).await;
        let own = device_ids(&part, &out);
        // Shard 0 runs devices 0, 2, 4, 6; shard 1 runs 1, 3, 5.
        assert_eq!(own.len(), [4, 3][i as usize]);
        assert!(own.is_disjoint(&ids), "shards share a device");
        ids.extend(own);
        let g = &report(&part, &out)["generator"]["shard"];
        assert_eq!(
            (g["index"].as_u64(), g["count"].as_u64()),
            (Some(u64::from(i)), Some(2))
        );
        shard_reports.push(merge::Shard::new(&format!("shard-{i}.json"), report(&part, &out)).expect("a shard report"));
        for (total, (k, v)) in sum.iter_mut().zip(counts(&report(&part, &out), &mock)) {
            assert_eq!(total.0, k);
            total.1 += v;
        }
        mock.stop().await;
    }
    assert_eq!(ids, expected_ids);
    assert_eq!(sum, expected);
    // `xiaozhi-fleet merge` of the two shard reports says the same.
    let merged = merge::merge(&shard_reports).expect("merge");
    let whole_json = report(&whole, &out);
    for ptr in [
        "/turns/started",
        "/turns/completed",
        "/turns/failed",
        "/latency_ms/first_audio/count",
        "/audio/frames_sent",
        "/audio/frames_received",
        "/audio/bytes_sent",
        "/connections/opened",
        "/run/devices",
    ] {
        assert_eq!(merged.pointer(ptr), whole_json.pointer(ptr), "{ptr}");
    }
}

async fn run(plan: &Plan, url: &str, clips: &xiaozhi_fleet::audio::ClipSet) -> RunOutcome {
    let (tx, _rx) = watch::channel(Snapshot::default());
    run_fleet(plan, url, clips, CancellationToken::new(), tx)
        .await
        .expect("fleet runs")
}

#[tokio::test(start_paused = true)]
async fn two_shards_of_a_step_plan_hold_the_stage_speakers_together() {
    let text = "stages = [\"3 for 10s\"]\nthink_time = \"0s\"\nramp = 10\nseed = 5\n";
    let whole = plan(text);
    let mock = MockServer::start("127.0.0.1:0", whole.mock.clone()).await.unwrap();
    let clips = load_clips(&whole).unwrap();
    let t0 = Instant::now();
    let counters = mock.counters.clone();
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        for s in 1..=25u64 {
            tokio::time::sleep_until(t0 + Duration::from_secs(s)).await;
            samples.push(counters.open_turns.load(Ordering::Relaxed));
        }
        samples
    });
    let (p0, p1) = (sharded(text, 0, 2), sharded(text, 1, 2));
    let url = mock.url();
    let both = async { tokio::join!(run(&p0, &url, &clips), run(&p1, &url, &clips)) };
    let (a, b) = bounded("two shards", both).await;
    let samples = sampler.await.unwrap();
    // Shard 0 holds 2 speakers, shard 1 holds 1: the mock sees 3.
    let held: Vec<u32> = [&a, &b].iter().map(|o| o.metrics.stages[0].speakers).collect();
    assert_eq!(held, [2, 1]);
    let (sa, sb) = (&a.metrics.stages[0], &b.metrics.stages[0]);
    let from = sa.started_at_s.max(sb.started_at_s);
    let to = (sa.started_at_s + sa.duration_s).min(sb.started_at_s + sb.duration_s);
    let inside: Vec<i64> = (1..=25u64)
        .zip(&samples)
        .filter(|(t, _)| (*t as f64) > from && (*t as f64) < to)
        .map(|(_, open)| *open)
        .collect();
    assert!(
        inside.len() >= 8,
        "sampled {} seconds inside both windows",
        inside.len()
    );
    assert!(inside.iter().all(|&open| open == 3), "{inside:?}");
    assert_eq!(a.metrics.failed + b.metrics.failed, 0);
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn two_shards_of_an_open_model_run_take_every_arrival_once() {
    let text = "devices = 30\narrivals = \"1/s\"\nduration = \"20s\"\nturns = 1\nramp = 100\nseed = 8\n\
                think_time = \"0s\"\n";
    let (whole, mock) = bounded("the whole run", run_against_mock(&plan(text))).await;
    mock.stop().await;
    let m = &whole.metrics;
    assert!(m.turns_started >= 10, "{} arrivals in 20 s at 1/s", m.turns_started);
    assert_eq!(m.missed_arrivals, 0);
    let mut started = Vec::new();
    for i in 0..2 {
        let (out, mock) = bounded("a shard", run_against_mock(&sharded(text, i, 2))).await;
        mock.stop().await;
        assert_eq!(out.metrics.missed_arrivals, 0);
        started.push(out.metrics.turns_started);
    }
    // Arrival k goes to shard k mod 2: the shards split them and miss none.
    assert_eq!(started.iter().sum::<u64>(), m.turns_started, "{started:?}");
    assert!(started.iter().all(|&n| n > 0), "{started:?}");
}
