//! A speaker who pauses mid-sentence (`[[group]] pause`), end to end on a
//! paused clock against the in-process mock: the mock's VAD ends the turn
//! on the pause (longer than its silence window) and answers the words
//! before it, then hears the rest and answers again, as the real server
//! does (issue #2268 in its tracker); the device counts the extra answer,
//! completes the turn and times it from the answer to the whole sentence.

use crate::support::{plan, run_against_mock};
use std::time::Duration;
use xiaozhi_fleet::metrics::TurnOutcome;
use xiaozhi_fleet::mock::MockCounters;

const DEVICES: u64 = 3;
const TURNS: u64 = 2;

fn fleet(group: &str) -> String {
    format!(
        "devices = {DEVICES}\nturns = {TURNS}\nthink_time = \"1s\"\nseed = 11\n\n[[group]]\n{group}\n\n\
         [mock]\nasr_delay = \"200ms\"\nllm_delay = \"300ms\"\ntts_delay = \"200ms\"\nsilence_window = \"300ms\"\n"
    )
}

#[tokio::test(start_paused = true)]
async fn a_pause_longer_than_the_vad_window_gets_two_answers_counted_on_the_turn() {
    let (out, mock) = run_against_mock(&plan(&fleet("pause = \"1.5s\""))).await;
    let m = &out.metrics;
    assert!(m.failures.is_empty(), "{:?} {:?}", m.failures, m.failure_details);
    assert_eq!(m.completed, DEVICES * TURNS);
    for r in &m.turn_records {
        assert_eq!(r.outcome, TurnOutcome::Completed);
        assert_eq!(r.extra_answers, 1, "{r:?}");
        // Timed from the end of the whole sentence by the answer to it:
        // VAD window (the packet 300 ms after the last voiced one) + ASR.
        assert_eq!(r.stt, Some(Duration::from_millis(300 + 200)));
    }
    // The mock heard two utterances per turn and answered both.
    let c = &mock.counters;
    assert_eq!(MockCounters::get(&c.turns), 2 * DEVICES * TURNS);
    assert!(m.tally.stray.values().all(|&n| n == 0), "{:?}", m.tally.stray);
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn without_the_pause_each_turn_has_one_answer() {
    let (out, mock) = run_against_mock(&plan(&fleet("name = \"plain\""))).await;
    let m = &out.metrics;
    assert_eq!(m.completed, DEVICES * TURNS);
    assert!(m.turn_records.iter().all(|r| r.extra_answers == 0));
    assert_eq!(MockCounters::get(&mock.counters.turns), DEVICES * TURNS);
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_pause_shorter_than_the_vad_window_does_not_split_the_turn() {
    let (out, mock) = run_against_mock(&plan(&fleet("pause = \"120ms\""))).await;
    let m = &out.metrics;
    assert_eq!(m.completed, DEVICES * TURNS);
    assert!(m.turn_records.iter().all(|r| r.extra_answers == 0));
    assert_eq!(MockCounters::get(&mock.counters.turns), DEVICES * TURNS);
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn shipped_pause_split_fleet_counts_the_double_answer_of_its_pausing_group_only() {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fleets/pause-split.toml");
    let p = plan(&std::fs::read_to_string(file).unwrap());
    let pausing: u64 = p
        .groups
        .iter()
        .filter(|g| g.pause.is_some())
        .map(|g| u64::from(g.count))
        .sum();
    assert!(pausing > 0 && pausing < u64::from(p.devices));
    let (out, mock) = run_against_mock(&p).await;
    let m = &out.metrics;
    assert!(m.failures.is_empty(), "{:?} {:?}", m.failures, m.failure_details);
    let split = m.turn_records.iter().filter(|r| r.extra_answers == 1).count() as u64;
    let whole = m.turn_records.iter().filter(|r| r.extra_answers == 0).count() as u64;
    let turns = m.turn_records.len() as u64 / u64::from(p.devices);
    assert_eq!(
        (split, whole),
        (pausing * turns, (u64::from(p.devices) - pausing) * turns)
    );
    mock.stop().await;
}

#[test]
fn validate_says_where_the_pause_is_and_whether_the_mock_splits_on_it() {
    let words = |group: &str| xiaozhi_fleet::app::describe_plan(&plan(&fleet(group))).unwrap();
    let long = words("pause = \"1.5s\"");
    assert!(long.contains("pause 1500ms in the middle of every clip"), "{long}");
    assert!(long.contains("the mock's window is 300ms: it splits"), "{long}");
    assert!(words("pause = \"200ms\"").contains("it does not split"));
    assert!(!words("name = \"plain\"").contains("pause"));
}
