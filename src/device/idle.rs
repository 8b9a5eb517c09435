//! A device between conversations, in the form real devices take
//! (PROTOCOL.md §8.3, §9.1): `listening` keeps the auto-mode microphone
//! streaming silence (so the server's no-voice timeout eventually says
//! goodbye and closes), `silent` keeps the connection open and sends
//! nothing, `disconnected` has no connection. The device still answers the
//! server's MCP requests and pings while connected. A close by the server
//! here is counted as `idle_closed`, never as a failure.

use super::session::{Command, Conn, DeviceContext, disconnect};
use super::turn::{answer_mcp, until};
use crate::audio::Pacer;
use crate::config::IdleForm;
use crate::metrics::Event;
use crate::protocol::{ClientMessage, Listen, ListenMode, ServerMessage};
use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// Idles until a command arrives (`None`: the run is over for this device).
pub(crate) async fn idle(ctx: &mut DeviceContext, conn: &mut Option<Conn>) -> Option<Command> {
    let listening = ctx.group.plan.idle == IdleForm::Listening;
    let mut mic: Option<Pacer> = None;
    if listening && let Some(c) = conn.as_mut() {
        let m = ClientMessage::Listen(Listen::start(c.runner.session_id(), ListenMode::Auto));
        if c.ws.send(Message::text(m.to_json())).await.is_ok() {
            mic = Some(Pacer::new(Instant::now()));
        }
    }
    loop {
        let send_at = mic.filter(|_| conn.is_some()).map(|p| p.next_deadline());
        let closed = match conn.as_mut() {
            None => {
                return tokio::select! {
                    cmd = ctx.commands.recv() => cmd,
                    _ = ctx.no_new_turns.cancelled() => None,
                    _ = ctx.cancel.cancelled() => None,
                };
            }
            Some(c) => tokio::select! {
                cmd = ctx.commands.recv() => return cmd,
                _ = ctx.no_new_turns.cancelled() => return None,
                _ = ctx.cancel.cancelled() => return None,
                m = c.ws.next() => on_idle_message(c, m).await,
                _ = until(send_at) => {
                    let Some(p) = mic.as_mut() else { continue };
                    let due = p.advance();
                    let silence = ctx.settings.silence.clone();
                    c.runner.send_packet(&mut c.ws, &silence, due).await.is_err()
                }
            },
        };
        if closed {
            ctx.events.send(Event::IdleClosed);
            disconnect(ctx, conn.take());
        }
    }
}

/// Handles a message while idle; true when the connection is gone.
async fn on_idle_message(c: &mut Conn, m: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>) -> bool {
    match m {
        Some(Ok(Message::Text(text))) => {
            if let Ok(ServerMessage::Mcp { payload }) = ServerMessage::parse(&text) {
                let sid = c.runner.session_id().to_string();
                return answer_mcp(&mut c.ws, &sid, &payload).await.is_err();
            }
            // The goodbye turn (tts start, audio, tts stop) before the
            // server's close is heard but not a user turn.
            false
        }
        Some(Ok(Message::Binary(data))) => {
            c.runner.tally.frames_received += 1;
            c.runner.tally.bytes_received += data.len() as u64;
            false
        }
        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => true,
        Some(Ok(_)) => false,
    }
}
