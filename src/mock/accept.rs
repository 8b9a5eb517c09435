//! The mock's listener: accepts connections (backing off on errors such as
//! running out of file descriptors instead of spinning), applies the
//! connection faults that strike before the WebSocket exists (`refuse`,
//! `slow_handshake`, `reject_upgrade`), does the TLS and WebSocket
//! handshakes under one deadline, checks the device headers like PY, and
//! hands the upgraded socket to a session shell. One task per connection.

use super::core::{SessionCore, SessionParams};
use super::counters::MockCounters;
use super::fault::{Fault, FaultKind};
use super::shared::Shared;
use super::shell;
use crate::protocol::{ClientHeaders, ProtocolVersion, read_client_headers};
use futures_util::SinkExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::{Message, protocol::WebSocketConfig};
use tokio_util::sync::CancellationToken;

/// WebSocket messages (and frames) over this size are refused with close
/// code 1009, like PY's library (PROTOCOL.md §9.1).
pub const MAX_MESSAGE_SIZE: usize = 1 << 20;

/// First pause after a failed `accept()`; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Plain-text notices PY sends before closing (§1.3).
const NO_DEVICE_ID: &str = "端口正常，如需测试连接，请启动digital-human测试";
const AUTH_FAILED: &str = "认证失败";

/// Accepts connections until `shutdown`, one task per connection.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut sessions = JoinSet::new();
    let mut index = 0u64;
    let mut backoff = Backoff::default();
    let mut paused_until: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept(), if paused_until.is_none() => match accepted {
                Ok((stream, _)) => {
                    backoff.reset();
                    let _ = stream.set_nodelay(true);
                    sessions.spawn(connection(stream, index, shared.clone(), shutdown.child_token()));
                    index += 1;
                }
                Err(e) => {
                    MockCounters::bump(&shared.counters.accept_errors);
                    let pause = backoff.next_pause();
                    tracing::warn!("mock server: accept failed ({e}); pausing {} ms", pause.as_millis());
                    paused_until = Some(Instant::now() + pause);
                }
            },
            _ = sleep_until(paused_until) => paused_until = None,
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    while sessions.join_next().await.is_some() {}
}

/// Pauses after consecutive accept errors: 100 ms, doubling up to 1 s.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn next_pause(&mut self) -> Duration {
        let pause = FIRST_BACKOFF
            .saturating_mul(1 << self.failures.min(10))
            .min(MAX_BACKOFF);
        self.failures += 1;
        pause
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// One accepted connection, from TCP to the end of its session.
async fn connection(stream: TcpStream, index: u64, sh: Arc<Shared>, cancel: CancellationToken) {
    let fault = sh.cfg.faults.for_connection(index, false).cloned();
    let log = &sh.counters.faults;
    match fault.as_ref().map(|f| f.kind) {
        Some(FaultKind::Refuse) => {
            log.record("", index, FaultKind::Refuse);
            // SO_LINGER 0: closing sends RST, before any HTTP.
            let _ = stream.set_zero_linger();
            return;
        }
        Some(FaultKind::SlowHandshake) => {
            log.record("", index, FaultKind::SlowHandshake);
            let delay = fault.as_ref().map_or(Duration::ZERO, |f| f.delay);
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = tokio::time::sleep(delay) => {}
            }
            return;
        }
        _ => {}
    }
    let deadline = Instant::now() + sh.handshake_timeout;
    match sh.tls.clone() {
        Some(acceptor) => {
            let tls = tokio::select! {
                _ = cancel.cancelled() => return,
                r = tokio::time::timeout_at(deadline, acceptor.accept(stream)) => r,
            };
            match tls {
                // Boxed (here and below): each path's future is several KiB,
                // and only one of them is ever needed.
                Ok(Ok(s)) => Box::pin(upgrade(s, index, fault, deadline, sh, cancel)).await,
                Ok(Err(_)) => {}
                Err(_) => MockCounters::bump(&sh.counters.handshake_timeouts),
            }
        }
        None => Box::pin(upgrade(stream, index, fault, deadline, sh, cancel)).await,
    }
}

/// The WebSocket upgrade (by `deadline`), the header checks and the session.
async fn upgrade<S>(
    stream: S,
    index: u64,
    fault: Option<Fault>,
    deadline: Instant,
    sh: Arc<Shared>,
    cancel: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut headers: Option<ClientHeaders> = None;
    let reject = fault.as_ref().filter(|f| f.kind == FaultKind::RejectUpgrade);
    let counters = sh.counters.clone();
    // The error type is fixed by tungstenite's `Callback` trait.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let h = read_client_headers(req);
        if let Some(f) = reject {
            counters
                .faults
                .record(h.device_id.as_deref().unwrap_or(""), index, FaultKind::RejectUpgrade);
            let mut err = ErrorResponse::new(Some(f.body.clone()));
            *err.status_mut() = StatusCode::from_u16(f.status).unwrap_or(StatusCode::UNAUTHORIZED);
            return Err(err);
        }
        headers = Some(h);
        Ok(resp)
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .max_message_size(Some(MAX_MESSAGE_SIZE))
        .max_frame_size(Some(MAX_MESSAGE_SIZE));
    // Boxed: the handshake's state is not kept for the session's life.
    let handshake = Box::pin(tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        callback,
        Some(config),
    ));
    let mut ws = tokio::select! {
        _ = cancel.cancelled() => return,
        r = tokio::time::timeout_at(deadline, handshake) => match r {
            Ok(Ok(ws)) => ws,
            Ok(Err(_)) => return,
            Err(_) => {
                MockCounters::bump(&sh.counters.handshake_timeouts);
                return;
            }
        },
    };
    let c = &sh.counters;
    MockCounters::bump(&c.sessions);
    c.active_sessions.fetch_add(1, Ordering::Relaxed);
    let headers = headers.unwrap_or_default();
    if let Some(notice) = refuse(&headers, sh.cfg.token.as_deref()) {
        let _ = ws.send(Message::text(notice)).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    } else {
        let version = headers
            .protocol_version
            .as_deref()
            .and_then(|v| v.trim().parse::<u8>().ok())
            .and_then(|v| ProtocolVersion::try_from(v).ok())
            .unwrap_or(ProtocolVersion::V1);
        let params = SessionParams {
            cfg: sh.cfg.clone(),
            counters: sh.counters.clone(),
            hearing: sh.hearing.clone(),
            version,
            device_id: headers.device_id.clone().unwrap_or_default(),
            session_id: new_session_id(),
            connection: index,
            conn_fault: fault.map(|f| f.kind),
        };
        let core = SessionCore::new(params, Instant::now());
        shell::run(ws, core, sh.clone(), cancel).await;
    }
    sh.counters.active_sessions.fetch_sub(1, Ordering::Relaxed);
}

/// The plain-text notice to send before closing, if the headers are refused.
fn refuse(h: &ClientHeaders, token: Option<&str>) -> Option<&'static str> {
    if h.device_id.as_deref().is_none_or(str::is_empty) {
        return Some(NO_DEVICE_ID);
    }
    match token {
        Some(t) if h.authorization.as_deref() != Some(format!("Bearer {t}").as_str()) => Some(AUTH_FAILED),
        _ => None,
    }
}

/// Session ids: unique per server process, UUID-shaped like PY's.
pub(crate) fn new_session_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("00000000-0000-4000-8000-{n:012x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_errors_back_off_from_100ms_doubling_to_1s_and_reset() {
        let mut b = Backoff::default();
        let ms: Vec<u128> = (0..6).map(|_| b.next_pause().as_millis()).collect();
        assert_eq!(ms, vec![100, 200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_pause(), FIRST_BACKOFF);
    }
}
