//! Exact latencies on a paused clock: the fleet and the mock run in one
//! current-thread runtime over real loopback TCP; time only moves when
//! every task waits, so each delay is exactly what was configured.

use crate::support::{plan, run_against_mock};
use std::time::Duration;
use xiaozhi_fleet::metrics::TurnOutcome;
use xiaozhi_fleet::mock::MockCounters;

const FLEET: &str = r#"
devices = 20
ramp = 50
turns = 3
think_time = "500ms"
seed = 3

[mock]
asr_delay = "300ms"
llm_delay = "500ms"
tts_delay = "200ms"
silence_window = "300ms"
"#;

#[tokio::test(start_paused = true)]
async fn first_audio_is_exactly_vad_window_plus_asr_llm_tts() {
    let plan = plan(FLEET);
    let (out, mock) = run_against_mock(&plan).await;
    let m = &out.metrics;
    assert_eq!(m.completed, 60, "failures: {:?}", m.failures);
    assert_eq!(m.failed, 0);
    assert_eq!(m.turn_records.len(), 60);
    for r in &m.turn_records {
        assert_eq!(r.outcome, TurnOutcome::Completed);
        // VAD: the first packet ≥ 300 ms after the last voiced one → +300 ms.
        assert_eq!(
            r.stt,
            Some(Duration::from_millis(600)),
            "device {} turn {}",
            r.device,
            r.turn
        );
        assert_eq!(r.tts_start, Some(Duration::from_millis(600)));
        assert_eq!(r.llm, Some(Duration::from_millis(1100)));
        assert_eq!(
            r.first_audio,
            Some(Duration::from_millis(1300)),
            "device {} turn {}",
            r.device,
            r.turn
        );
    }
    let fa = m.latency["first_audio"].percentiles();
    assert_eq!(
        (fa.count, fa.min, fa.p50, fa.p95, fa.max),
        (60, 1300.0, 1300.0, 1300.0, 1300.0)
    );
    let stt = m.latency["stt"].percentiles();
    assert_eq!((stt.min, stt.max), (600.0, 600.0));
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn fleet_counts_equal_the_mocks_counts() {
    let plan = plan(FLEET);
    let (out, mock) = run_against_mock(&plan).await;
    let m = &out.metrics;
    let c = &mock.counters;
    assert_eq!(m.connections, MockCounters::get(&c.hellos));
    assert_eq!(m.connections, MockCounters::get(&c.sessions));
    assert_eq!(m.turns_started, MockCounters::get(&c.listen_starts));
    assert_eq!(m.completed, MockCounters::get(&c.turns));
    assert_eq!(m.completed, MockCounters::get(&c.replies_completed));
    assert_eq!(m.tally.frames_sent, MockCounters::get(&c.frames_in));
    assert_eq!(m.tally.bytes_sent, MockCounters::get(&c.bytes_in));
    assert_eq!(m.tally.frames_received, MockCounters::get(&c.frames_out));
    assert_eq!(m.tally.bytes_received, MockCounters::get(&c.bytes_out));
    assert_eq!(MockCounters::get(&c.frames_before_hello), 0);
    // Every device answered MCP initialize and tools/list.
    assert_eq!(MockCounters::get(&c.mcp_results), 2 * m.connections);
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn send_lag_is_zero_on_a_paused_clock_and_every_packet_is_counted() {
    let plan = plan(FLEET);
    let (out, mock) = run_against_mock(&plan).await;
    // Packets sent while devices were still starting count as the ramp's.
    let lag = out.metrics.tally.send_lag.percentiles();
    let ramp = out.metrics.tally.ramp_send_lag.percentiles();
    assert_eq!(lag.count + ramp.count, out.metrics.tally.frames_sent);
    assert!(out.generator.ramp.finished && lag.count > 0 && ramp.count > 0);
    assert_eq!((lag.max, ramp.max), (0.0, 0.0));
    mock.stop().await;
}
