//! The connection around the turns: the server hello (transport, binary
//! protocol version, the notice PY sends before closing on a bad token),
//! and what a close or a socket error means for the report. Pure: the shell
//! hands over the close frame or the error it got.

use super::{DeviceCore, Link, Output};
use crate::metrics::{Failure, FailureKind, TurnOutcome};
use crate::protocol::ServerHello;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, protocol::frame::coding::CloseCode};

/// Longest excerpt of a server message kept in a failure detail.
pub(crate) const EXCERPT_CHARS: usize = 120;

/// The start of `text`, for a failure detail.
pub(crate) fn excerpt(text: &str) -> String {
    let mut s: String = text.chars().take(EXCERPT_CHARS).collect();
    if text.chars().count() > EXCERPT_CHARS {
        s.push('…');
    }
    s
}

fn code_name(code: CloseCode) -> &'static str {
    match code {
        CloseCode::Normal => "normal",
        CloseCode::Away => "going away",
        CloseCode::Protocol => "protocol error",
        CloseCode::Unsupported => "unsupported data",
        CloseCode::Invalid => "invalid data",
        CloseCode::Policy => "policy violation",
        CloseCode::Size => "message too big",
        CloseCode::Error => "server error",
        CloseCode::Restart => "service restart",
        CloseCode::Again => "try again later",
        _ => "other",
    }
}

/// A close frame from the server (or none: the stream just ended).
pub(crate) fn close_failure(frame: Option<&CloseFrame>) -> Failure {
    let detail = match frame {
        Some(f) => {
            let code = u16::from(f.code);
            let mut d = format!("closed by the server: code {code} ({})", code_name(f.code));
            if !f.reason.is_empty() {
                d.push_str(&format!(", reason \"{}\"", excerpt(&f.reason)));
            }
            d
        }
        None => "connection closed by the server without a close frame (FIN)".to_string(),
    };
    Failure::new(FailureKind::Closed, detail)
}

/// A socket or WebSocket error: a dead peer is `closed`, a broken frame
/// (invalid close code, bad UTF-8, reserved bits, oversized message) is
/// `protocol`.
pub(crate) fn error_failure(e: &tungstenite::Error) -> Failure {
    use tungstenite::Error as E;
    match e {
        E::Io(io) => Failure::new(FailureKind::Closed, format!("connection lost: {io}")),
        E::ConnectionClosed | E::AlreadyClosed => close_failure(None),
        E::Protocol(ProtocolError::ResetWithoutClosingHandshake) => Failure::new(
            FailureKind::Closed,
            "connection closed by the server without a close handshake (FIN or reset)",
        ),
        E::Protocol(p) => Failure::new(FailureKind::Protocol, format!("invalid WebSocket frame: {p}")),
        E::Utf8(_) => Failure::new(FailureKind::Protocol, "text or close reason is not valid UTF-8"),
        E::Capacity(c) => Failure::new(FailureKind::Protocol, format!("message too large: {c}")),
        other => Failure::new(FailureKind::Protocol, format!("WebSocket error: {other}")),
    }
}

impl DeviceCore {
    /// The server's hello.
    pub(super) fn on_hello(&mut self, now: Instant, hello: ServerHello, text: &str) {
        let Link::Hello { sent_at, .. } = self.link else {
            self.stray(crate::metrics::event::STRAY_HELLO);
            return;
        };
        if self.transport == super::Transport::Udp {
            match super::UdpChannel::from_hello(&hello, text) {
                Ok(ch) => self.udp = Some(Box::new(ch)),
                Err(f) => {
                    self.gone_outside_turn(f);
                    return;
                }
            }
        }
        let asked = self.version.as_u8();
        let failure = match (hello.transport.as_deref(), hello.version) {
            (Some("udp"), _) if self.udp.is_some() => None,
            (None, _) => Some(Failure::new(FailureKind::Protocol, "server hello has no transport")),
            (Some("websocket"), Some(v)) if v != asked => Some(Failure::new(
                FailureKind::ProtocolMismatch,
                format!("asked for binary protocol v{asked}; the server hello says v{v}"),
            )),
            (Some("websocket"), _) => None,
            (Some(t), _) => Some(Failure::new(
                FailureKind::Protocol,
                format!("server hello has transport \"{}\", not \"websocket\"", excerpt(t)),
            )),
        };
        if let Some(f) = failure {
            self.gone_outside_turn(f);
            return;
        }
        self.session_id = hello.session_id.clone().unwrap_or_default();
        self.tracer.set_sample_rate(hello.downlink_sample_rate());
        self.link = Link::Open;
        self.out.push_back(Output::Ready {
            hello: now.saturating_duration_since(sent_at),
        });
    }

    /// The connection ended (close frame, FIN, reset, broken frame).
    pub fn handle_gone(&mut self, now: Instant, failure: Failure) {
        match &self.link {
            Link::Gone | Link::Closed => return,
            Link::Hello { said: Some(said), .. } => {
                let f = Failure::new(
                    failure.kind,
                    format!(
                        "before the server hello, the server said \"{}\"; {}",
                        excerpt(said),
                        failure.detail
                    ),
                );
                self.gone_outside_turn(f);
                return;
            }
            Link::Hello { said: None, .. } => {
                let f = Failure::new(failure.kind, format!("before the server hello: {}", failure.detail));
                self.gone_outside_turn(f);
                return;
            }
            Link::Open => {}
        }
        if self.turn.is_some() {
            self.end_turn(now, TurnOutcome::Failed(failure.kind), Some(failure.detail), true);
        } else {
            self.gone_outside_turn(failure);
        }
    }

    /// Plain text while waiting for the hello (PY's notices before closing).
    pub(super) fn note_said(&mut self, text: &str) -> bool {
        if let Link::Hello { said, .. } = &mut self.link {
            *said = Some(text.to_string());
            return true;
        }
        false
    }
}
