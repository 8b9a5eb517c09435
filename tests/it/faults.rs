//! Every fault the mock can inject, end to end on a paused clock: each maps
//! to exactly one failure kind in the report, with a detail; the other
//! turns are unaffected; the run ends normally. Plus the checks that make
//! the numbers trustworthy under faults: cross-talk and truncation found on
//! exactly the turns they were injected into, no latency below the mock's
//! minimum despite late and duplicate messages, and a server restart
//! mid-run that devices ride out by reconnecting.

use crate::support::{plan, run_against_mock};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use xiaozhi_fleet::device::identity_for;
use xiaozhi_fleet::fleet::{RunOutcome, load_clips, run_fleet};
use xiaozhi_fleet::metrics::{FailureKind, Snapshot, TurnOutcome};
use xiaozhi_fleet::mock::{FaultKind, MockServer};
use xiaozhi_fleet::report::{Report, RunContext};

const MOCK: &str = r#"
[mock]
asr_delay = "100ms"
llm_delay = "100ms"
tts_delay = "100ms"
sentences = 2
silence_window = "300ms"
seed = 11
"#;

/// Three devices × three turns with one fault table; connection faults run
/// with `idle = "disconnected"` so the fault lands on a turn.
fn fleet(fault: &str, connection_fault: bool) -> String {
    let idle = if connection_fault { "disconnected" } else { "silent" };
    format!(
        "devices = 3\nturns = 3\nthink_time = \"0s\"\nseed = 5\n{MOCK}\n[[mock.fault]]\n{fault}\n\n[[group]]\nidle = \"{idle}\"\n"
    )
}

fn report_json(out: &RunOutcome, devices: u32) -> Value {
    let ctx = RunContext {
        target_url: "ws://127.0.0.1/",
        mock: true,
        devices,
        seed: 5,
        fleet: "test",
    };
    serde_json::to_value(Report::build(&ctx, out)).expect("report serialises")
}

/// Runs one fault and checks: `expect` failures of `kind` (with a detail),
/// every other turn completed, the mock logged the injections.
async fn fault_maps_to(fault: &str, connection_fault: bool, kind: FailureKind, expect: u64) -> Value {
    let p = plan(&fleet(fault, connection_fault));
    let (out, mock) = run_against_mock(&p).await;
    let json = report_json(&out, 3);
    let turns = &json["turns"];
    let name = kind.as_str();
    assert_eq!(turns["started"], 9, "{fault}: {turns}");
    assert_eq!(turns["failed"], expect, "{fault}: {turns}");
    assert_eq!(turns["failures"][name], expect, "{fault}: {turns}");
    assert_eq!(turns["completed"], 9 - expect, "{fault}: {turns}");
    let details = turns["failure_details"][name].as_array().expect("details kept");
    assert!(
        !details.is_empty() && details.iter().all(|d| !d.as_str().unwrap_or("").is_empty()),
        "{fault}: {turns}"
    );
    assert!(mock.counters.faults.total() >= 1, "{fault}: nothing injected");
    assert!(out.generator.dropped_events == 0);
    mock.stop().await;
    json
}

#[tokio::test(start_paused = true)]
async fn refused_connection_is_connect() {
    let j = fault_maps_to("kind = \"refuse\"\nconnections = [0]", true, FailureKind::Connect, 1).await;
    let d = j["turns"]["failure_details"]["connect"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert!(d.contains("reset") || d.contains("refused"), "{d}");
}

#[tokio::test(start_paused = true)]
async fn rejected_upgrade_is_handshake_with_the_status_and_body() {
    let j = fault_maps_to(
        "kind = \"reject_upgrade\"\nconnections = [0]\nstatus = 403",
        true,
        FailureKind::Handshake,
        1,
    )
    .await;
    let d = j["turns"]["failure_details"]["handshake"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert!(d.starts_with("HTTP 403 Forbidden"), "{d}");
}

#[tokio::test(start_paused = true)]
async fn slow_handshake_is_handshake() {
    fault_maps_to(
        "kind = \"slow_handshake\"\nconnections = [0]",
        true,
        FailureKind::Handshake,
        1,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn missing_hello_is_hello_timeout() {
    fault_maps_to(
        "kind = \"no_hello\"\nconnections = [0]",
        true,
        FailureKind::HelloTimeout,
        1,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn close_after_hello_is_closed() {
    fault_maps_to(
        "kind = \"close_after_hello\"\nconnections = [0]",
        true,
        FailureKind::Closed,
        1,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn utterance_never_ended_is_no_reply() {
    fault_maps_to("kind = \"no_stt\"\nturns = [1]", false, FailureKind::NoReply, 3).await;
}

#[tokio::test(start_paused = true)]
async fn stt_without_answer_is_no_reply_and_says_stt_came() {
    let j = fault_maps_to("kind = \"no_tts_start\"\nturns = [1]", false, FailureKind::NoReply, 3).await;
    let d = j["turns"]["failure_details"]["no_reply"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert!(d.contains("stt received"), "{d}");
}

#[tokio::test(start_paused = true)]
async fn stalled_audio_is_reply_timeout() {
    fault_maps_to(
        "kind = \"stall_audio\"\nturns = [1]",
        false,
        FailureKind::ReplyTimeout,
        3,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn close_mid_answer_is_closed_and_the_conversation_goes_on() {
    let j = fault_maps_to("kind = \"close_mid_tts\"\nturns = [1]", false, FailureKind::Closed, 3).await;
    assert_eq!(j["connections"]["reconnects"], 3, "{}", j["connections"]);
    let d = j["turns"]["failure_details"]["closed"][0].as_str().unwrap().to_string();
    assert!(d.contains("code 1000"), "{d}");
}

#[tokio::test(start_paused = true)]
async fn early_tts_stop_is_truncated() {
    fault_maps_to(
        "kind = \"early_tts_stop\"\nturns = [1]",
        false,
        FailureKind::Truncated,
        3,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn bad_binary_is_protocol() {
    fault_maps_to("kind = \"bad_binary\"\nturns = [1]", false, FailureKind::Protocol, 3).await;
}

#[tokio::test(start_paused = true)]
async fn bad_json_is_protocol() {
    fault_maps_to("kind = \"bad_json\"\nturns = [1]", false, FailureKind::Protocol, 3).await;
}

#[tokio::test(start_paused = true)]
async fn another_devices_words_are_cross_talk() {
    fault_maps_to("kind = \"cross_talk\"\nturns = [1]", false, FailureKind::CrossTalk, 3).await;
}

#[tokio::test(start_paused = true)]
async fn stalled_socket_is_no_reply() {
    fault_maps_to("kind = \"stall_socket\"\nturns = [1]", false, FailureKind::NoReply, 3).await;
}

#[tokio::test(start_paused = true)]
async fn late_stt_is_stray_and_fails_nothing() {
    let p = plan(&fleet("kind = \"late_stt\"\nturns = [1]", false));
    let (out, mock) = run_against_mock(&p).await;
    let j = report_json(&out, 3);
    assert_eq!(
        (j["turns"]["completed"].as_u64(), j["turns"]["failed"].as_u64()),
        (Some(9), Some(0))
    );
    assert_eq!(j["turns"]["stray_messages"]["stt"], 3, "{}", j["turns"]);
    assert_eq!(j["turns"]["stray_messages"]["tts_start"], 3, "{}", j["turns"]);
    assert_eq!(mock.counters.faults.count(FaultKind::LateStt), 3);
    mock.stop().await;
}

/// (device id, turn) of every turn that failed with `kind`.
fn failed_turns(out: &RunOutcome, seed: u64, kind: FailureKind) -> BTreeSet<(String, u64)> {
    out.metrics
        .turn_records
        .iter()
        .filter(|r| r.outcome == TurnOutcome::Failed(kind))
        .map(|r| (identity_for(seed, r.device, None).device_id, u64::from(r.turn)))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn cross_talk_on_five_percent_of_turns_is_found_on_exactly_those_turns() {
    let text = format!(
        "devices = 10\nturns = 10\nthink_time = \"0s\"\nseed = 21\n{MOCK}\n[[mock.fault]]\nkind = \"cross_talk\"\np = 0.05\n"
    );
    let (out, mock) = run_against_mock(&plan(&text)).await;
    let injected: BTreeSet<(String, u64)> = mock
        .counters
        .faults
        .injected()
        .into_iter()
        .map(|f| (f.device, f.index))
        .collect();
    assert!(!injected.is_empty(), "5% of 100 turns should inject some");
    assert_eq!(failed_turns(&out, 21, FailureKind::CrossTalk), injected);
    assert_eq!(out.metrics.failed, injected.len() as u64);
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn truncation_on_turn_three_is_found_on_turn_three_only() {
    let text = format!(
        "devices = 4\nturns = 6\nthink_time = \"0s\"\nseed = 22\n{MOCK}\n[[mock.fault]]\nkind = \"early_tts_stop\"\nturns = [3]\n"
    );
    let (out, mock) = run_against_mock(&plan(&text)).await;
    let truncated = failed_turns(&out, 22, FailureKind::Truncated);
    let turns: BTreeSet<u64> = truncated.iter().map(|(_, t)| *t).collect();
    assert_eq!(turns, BTreeSet::from([3]));
    assert_eq!(truncated.len(), 4);
    assert_eq!(out.metrics.failed, 4);
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn late_and_duplicate_messages_never_make_a_latency_below_the_mocks_minimum() {
    let text = r#"
devices = 10
turns = 20
think_time = "0s"
seed = 23

[mock]
asr_delay = "200ms"
llm_delay = "300ms"
tts_delay = "200ms"
sentences = 2
seed = 23

[[mock.fault]]
kind = "late_stt"
p = 0.1

[[group]]
barge_in = 0.3
"#;
    let (out, mock) = run_against_mock(&plan(text)).await;
    let m = &out.metrics;
    assert_eq!(m.turns_started, 200);
    assert!(
        m.interrupted > 20 && m.completed > 100,
        "{} interrupted, {} completed",
        m.interrupted,
        m.completed
    );
    assert!(
        m.tally.stray.get("tts_stop").copied().unwrap_or(0) > 0,
        "abort's duplicate stop seen"
    );
    assert!(m.tally.stray.get("stt").copied().unwrap_or(0) > 0, "late stt seen");
    let ms = Duration::from_millis;
    for r in &m.turn_records {
        if !matches!(r.outcome, TurnOutcome::Completed | TurnOutcome::Interrupted) {
            continue;
        }
        let at_least = |d: Option<Duration>, min: Duration, what: &str| {
            let d = d.unwrap_or_else(|| panic!("{what} missing in {r:?}"));
            assert!(d >= min, "{what} {d:?} below the mock's minimum {min:?}: {r:?}");
        };
        at_least(r.stt, ms(200), "stt");
        at_least(r.tts_start, ms(200), "tts_start");
        at_least(r.llm, ms(500), "llm");
        at_least(r.first_audio, ms(700), "first_audio");
    }
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn server_restart_mid_run_devices_reconnect_and_the_outage_shows_in_the_series() {
    let cfg = plan(MOCK).mock;
    let mock = MockServer::start("127.0.0.1:0", cfg.clone()).await.expect("mock binds");
    let addr = mock.addr;
    let url = mock.url();
    let text = format!("url = \"{url}\"\ndevices = 4\nduration = \"60s\"\nthink_time = \"1s\"\nseed = 24\n");
    let p = plan(&text);
    let clips = load_clips(&p).expect("clips");
    let (tx, _rx) = watch::channel(Snapshot::default());
    let run = tokio::spawn(async move { run_fleet(&p, &url, &clips, CancellationToken::new(), tx).await });
    tokio::time::sleep(Duration::from_secs(20)).await;
    mock.stop().await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let back = MockServer::start(&addr.to_string(), cfg)
        .await
        .expect("same port again");
    let out = run.await.expect("fleet task").expect("fleet runs");
    let m = &out.metrics;
    assert!(!out.interrupted);
    assert_eq!(m.reconnects, 4, "every device came back once");
    let during = |from: f64, to: f64| m.series.iter().filter(move |p| p.t_s > from && p.t_s <= to);
    assert!(during(15.0, 20.0).all(|p| p.connected == 4), "{:?}", m.series);
    assert!(during(22.0, 30.0).all(|p| p.connected == 0), "{:?}", m.series);
    assert!(during(20.0, 40.0).map(|p| p.failed).sum::<u64>() >= 4, "{:?}", m.series);
    assert!(during(45.0, 60.0).all(|p| p.connected == 4), "{:?}", m.series);
    assert!(during(45.0, 60.0).map(|p| p.turns).sum::<u64>() > 0);
    assert!(m.failures.get(&FailureKind::Connect).copied().unwrap_or(0) > 0);
    back.stop().await;
}

#[tokio::test(start_paused = true)]
async fn two_hundred_stalled_handshakes_leave_a_normal_fleet_without_failures() {
    use tokio::io::AsyncWriteExt;
    let p = plan(&format!(
        "devices = 5\nturns = 2\nthink_time = \"1s\"\nseed = 25\n{MOCK}"
    ));
    let mock = MockServer::start("127.0.0.1:0", p.mock.clone())
        .await
        .expect("mock binds");
    let mut stalled = Vec::new();
    for _ in 0..200 {
        let mut s = tokio::net::TcpStream::connect(mock.addr).await.expect("connects");
        s.write_all(b"GET /xiaozhi/v1/ HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("writes");
        stalled.push(s);
    }
    let clips = load_clips(&p).expect("clips");
    let (tx, _rx) = watch::channel(Snapshot::default());
    let out = run_fleet(&p, &mock.url(), &clips, CancellationToken::new(), tx)
        .await
        .expect("fleet runs");
    assert_eq!((out.metrics.completed, out.metrics.failed), (10, 0));
    tokio::time::sleep(Duration::from_secs(15)).await;
    let c = &mock.counters;
    assert_eq!(xiaozhi_fleet::mock::MockCounters::get(&c.handshake_timeouts), 200);
    drop(stalled);
    mock.stop().await;
}
