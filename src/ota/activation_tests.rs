//! Scripted runs of the activation loop with exact instants.

use super::*;

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn pending() -> Activation {
    Activation {
        code: Some("123456".to_string()),
        message: Some("http://h:8001\n123456".to_string()),
        challenge: Some("aa:bb:cc:dd:ee:ff".to_string()),
        timeout_ms: None,
    }
}

/// Runs `answers` (status per try, answered `latency` after each send)
/// and returns the instants (from t0) at which each try was sent.
fn run(l: &mut ActivationLoop, t0: Instant, answers: &[u16], latency: Duration) -> Vec<Duration> {
    let mut now = t0;
    let mut sent = Vec::new();
    l.start(now);
    for &status in answers {
        if let Some(at) = l.next_deadline() {
            now = at;
            l.handle_timeout(now);
        }
        let Some(send) = l.poll_transmit() else { break };
        assert_eq!(send.attempt as usize, sent.len() + 1);
        sent.push(now - t0);
        now += latency;
        l.on_response(status, now);
    }
    sent
}

#[test]
fn three_tries_at_0_3_6_then_activated() {
    let t0 = Instant::now();
    let mut l = ActivationLoop::new(&pending());
    let sent = run(&mut l, t0, &[202, 202, 200], Duration::ZERO);
    assert_eq!(sent, vec![s(0), s(3), s(6)]);
    assert_eq!(
        l.outcome(),
        Some(&ActivationOutcome::Activated {
            tries: 3,
            elapsed: s(6)
        })
    );
    assert_eq!(l.next_deadline(), None);
    assert_eq!(l.poll_transmit(), None);
}

#[test]
fn retry_counts_from_the_answer_not_the_send() {
    let t0 = Instant::now();
    let mut l = ActivationLoop::new(&pending());
    let sent = run(&mut l, t0, &[202, 202, 200], Duration::from_millis(500));
    assert_eq!(sent, vec![s(0), Duration::from_millis(3500), s(7)]);
    let elapsed = Duration::from_millis(7500);
    assert_eq!(l.outcome(), Some(&ActivationOutcome::Activated { tries: 3, elapsed }));
}

#[test]
fn other_statuses_wait_10_s() {
    let t0 = Instant::now();
    let mut l = ActivationLoop::new(&pending());
    let sent = run(&mut l, t0, &[500, 202, 200], Duration::ZERO);
    assert_eq!(sent, vec![s(0), s(10), s(13)]);
}

#[test]
fn ten_pending_answers_leave_the_code_waiting() {
    let t0 = Instant::now();
    let mut l = ActivationLoop::new(&pending());
    let sent = run(&mut l, t0, &[202; 12], Duration::ZERO);
    assert_eq!(sent, (0..10).map(|i| s(3 * i)).collect::<Vec<_>>());
    let code = Some("123456".to_string());
    assert_eq!(l.outcome(), Some(&ActivationOutcome::StillPending { code, tries: 10 }));
}

#[test]
fn failing_last_try_fails_with_its_reason() {
    let t0 = Instant::now();
    let mut l = ActivationLoop::with_max_tries(&pending(), 2);
    let sent = run(&mut l, t0, &[202, 404], Duration::ZERO);
    assert_eq!(sent, vec![s(0), s(3)]);
    let reason = ActivationFailure::HttpStatus(404);
    let code = Some("123456".to_string());
    assert_eq!(l.outcome(), Some(&ActivationOutcome::Failed { reason, tries: 2, code }));
}

#[test]
fn transport_errors_wait_10_s_and_end_the_loop_when_last() {
    let t0 = Instant::now();
    let mut l = ActivationLoop::with_max_tries(&pending(), 2);
    l.start(t0);
    assert_eq!(l.poll_transmit(), Some(ActivateNow { attempt: 1 }));
    l.on_error("connection refused".to_string(), t0 + s(1));
    assert_eq!(l.next_deadline(), Some(t0 + s(11)));
    l.handle_timeout(t0 + s(10));
    assert_eq!(l.poll_transmit(), None, "not due before the deadline");
    l.handle_timeout(t0 + s(11));
    assert_eq!(l.poll_transmit(), Some(ActivateNow { attempt: 2 }));
    l.on_error("reset".to_string(), t0 + s(12));
    let reason = ActivationFailure::Transport("reset".to_string());
    let code = Some("123456".to_string());
    assert_eq!(l.outcome(), Some(&ActivationOutcome::Failed { reason, tries: 2, code }));
    assert_eq!(l.next_deadline(), None);
}

#[test]
fn no_challenge_ends_at_start_without_a_request() {
    let t0 = Instant::now();
    let mut l = ActivationLoop::new(&Activation {
        challenge: None,
        ..pending()
    });
    assert_eq!(l.poll_transmit(), None, "nothing before start");
    l.start(t0);
    assert_eq!(l.poll_transmit(), None);
    let reason = ActivationFailure::NoChallenge;
    let code = Some("123456".to_string());
    assert_eq!(l.outcome(), Some(&ActivationOutcome::Failed { reason, tries: 0, code }));
}

#[test]
fn stray_inputs_are_ignored() {
    let t0 = Instant::now();
    let mut l = ActivationLoop::new(&pending());
    l.on_response(200, t0);
    assert_eq!(l.outcome(), None);
    l.start(t0);
    l.on_response(200, t0);
    assert_eq!(l.outcome(), None, "no request in flight yet");
    assert_eq!(l.poll_transmit(), Some(ActivateNow { attempt: 1 }));
    assert_eq!(l.poll_transmit(), None, "one request at a time");
    l.start(t0 + s(1));
    l.on_response(202, t0 + s(1));
    assert_eq!(l.next_deadline(), Some(t0 + s(4)));
}
