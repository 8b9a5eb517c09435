//! The connection around the turns: hello, closes and their reasons.

use super::*;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Error as WsError};

#[test]
fn hello_saying_another_binary_version_is_protocol_mismatch() {
    let mut s = settings();
    s.protocol_version = ProtocolVersion::V3;
    let mut h = Harness::opened(s);
    h.text(
        30,
        r#"{"type":"hello","version":1,"transport":"websocket","session_id":"s"}"#,
    );
    assert!(h.ready.is_empty());
    assert_eq!(h.gone.len(), 1);
    assert_eq!(h.gone[0].1.kind, FailureKind::ProtocolMismatch);
    assert_eq!(
        h.gone[0].1.detail,
        "asked for binary protocol v3; the server hello says v1"
    );
    assert!(h.sent.contains(&(30, Sent::Close)));
}

#[test]
fn hello_without_transport_is_protocol() {
    let mut h = Harness::opened(settings());
    h.text(30, r#"{"type":"hello","session_id":"s"}"#);
    assert_eq!(
        h.gone[0].1,
        Failure::new(FailureKind::Protocol, "server hello has no transport")
    );
}

#[test]
fn no_hello_within_the_limit_is_hello_timeout_at_exactly_the_limit() {
    let mut h = Harness::opened(settings());
    h.run_to(9_999);
    assert!(h.gone.is_empty());
    h.run_to(10_000);
    assert_eq!(h.gone.len(), 1);
    assert_eq!(h.gone[0].0, 10_000);
    assert_eq!(h.gone[0].1.kind, FailureKind::HelloTimeout);
}

#[test]
fn a_refused_token_shows_what_the_server_said() {
    let mut h = Harness::opened(settings());
    h.text(20, "认证失败");
    h.gone_at(21, close_failure(None));
    let f = &h.gone[0].1;
    assert_eq!(f.kind, FailureKind::Closed);
    assert!(f.detail.contains("认证失败"), "{}", f.detail);
}

#[test]
fn mcp_requests_are_answered_even_before_the_hello() {
    let mut h = Harness::opened(settings());
    h.text(
        5,
        r#"{"type":"mcp","payload":{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}}"#,
    );
    assert_eq!(h.texts().last(), Some(&(5, "mcp".to_string())));
}

/// A turn whose answer has begun (tts start at 1740, two frames).
fn mid_answer() -> Harness {
    let mut h = Harness::connected(settings());
    h.start(100, spec(Some(clip("a", "一加一等于几", 20)), ListenMode::Auto, 0));
    h.text(1740, r#"{"type":"tts","state":"start"}"#);
    h.frames(1900, 2);
    h
}

#[test]
fn close_frame_mid_answer_fails_closed_with_code_and_reason() {
    let mut h = mid_answer();
    let frame = CloseFrame {
        code: CloseCode::Away,
        reason: "restarting".into(),
    };
    h.gone_at(2000, close_failure(Some(&frame)));
    let end = h.only_end();
    assert!(end.connection_lost);
    let (kind, detail) = failed(end);
    assert_eq!(kind, FailureKind::Closed);
    assert_eq!(
        detail,
        r#"closed by the server: code 1001 (going away), reason "restarting""#
    );
    assert_eq!(end.record.first_audio, ms(660));
}

#[test]
fn fin_and_reset_mid_answer_are_closed_and_say_which() {
    for (error, expect) in [
        (
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake),
            "without a close handshake",
        ),
        (
            WsError::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
            "connection lost",
        ),
    ] {
        let mut h = mid_answer();
        h.gone_at(2000, error_failure(&error));
        let (kind, detail) = failed(h.only_end());
        assert_eq!(kind, FailureKind::Closed);
        assert!(detail.contains(expect), "{detail}");
    }
}

#[test]
fn invalid_close_frames_are_protocol_not_closed() {
    for error in [
        WsError::Protocol(ProtocolError::InvalidCloseSequence),
        WsError::Protocol(ProtocolError::NonZeroReservedBits),
        WsError::Utf8(String::new()),
    ] {
        let mut h = mid_answer();
        h.gone_at(2000, error_failure(&error));
        assert_eq!(failed(h.only_end()).0, FailureKind::Protocol, "{error:?}");
    }
}

#[test]
fn goodbye_mid_answer_is_closed_at_once_not_a_reply_timeout() {
    let mut h = mid_answer();
    h.text(2000, r#"{"type":"goodbye"}"#);
    let end = h.only_end();
    assert_eq!(h.ends[0].0, 2000);
    assert!(end.connection_lost);
    assert_eq!(failed(end), (FailureKind::Closed, "the server sent goodbye"));
    assert!(h.sent.contains(&(2000, Sent::Close)));
}

#[test]
fn no_tts_stop_within_the_limit_is_reply_timeout() {
    let mut h = mid_answer();
    h.run_to(1740 + 60_000);
    let (kind, detail) = failed(h.only_end());
    assert_eq!(kind, FailureKind::ReplyTimeout);
    assert!(detail.contains("2 audio frames"), "{detail}");
    assert_eq!(h.ends[0].0, 1740 + 60_000);
}

#[test]
fn cancel_mid_turn_is_cancelled_not_failed() {
    let mut h = mid_answer();
    h.run_to(2100);
    h.core.cancel(h.now);
    while let Some(o) = h.core.poll_output() {
        if let Output::TurnEnded(e) = o {
            assert_eq!(e.record.outcome, TurnOutcome::Cancelled);
            return;
        }
    }
    panic!("no turn end after cancel");
}

#[test]
fn close_error_text_is_kept_for_unexpected_errors() {
    let f = error_failure(&tungstenite::Error::AttackAttempt);
    assert_eq!(f.kind, FailureKind::Protocol);
    assert!(f.detail.starts_with("WebSocket error"), "{}", f.detail);
}
