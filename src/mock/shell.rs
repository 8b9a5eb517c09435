//! The thin async shell around one [`SessionCore`]: one `select!` over the
//! socket, the core's next deadline, the reply-event channel and
//! cancellation. It carries out the core's actions (sends, closes, reply
//! jobs on the worker pools) and nothing else. Generic over any `Stream +
//! Sink` of WebSocket messages, so plain TCP and TLS share it.

use super::core::{Action, CloseReason, Input, SessionCore};
use super::counters::MockCounters;
use super::reply::{ReplyEvent, ReplyJob, run_reply};
use super::shared::Shared;
use crate::alarm::Alarm;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;

/// Reply events in flight per session.
const REPLY_CHANNEL: usize = 64;
/// How long a closing handshake may take before the socket is dropped.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// Close code for a message over the size limit (RFC 6455 §7.4.1).
const TOO_BIG: u16 = 1009;

/// How the loop ended.
enum End {
    /// Close the socket politely (close frame, if not sent yet).
    Close(Option<CloseReason>),
    /// The close frame went out already, or the socket is gone / abandoned.
    Done,
}

/// Serves one upgraded connection until the core, the peer or `cancel` ends it.
pub(crate) async fn run<W>(mut ws: W, mut core: SessionCore, sh: Arc<Shared>, cancel: CancellationToken)
where
    W: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
{
    let (tx, mut rx) = mpsc::channel::<(u64, ReplyEvent)>(REPLY_CHANNEL);
    let mut jobs: HashMap<u64, CancellationToken> = HashMap::new();
    // Made once, not per wake-up: a fresh `cancelled()` and `sleep_until`
    // per iteration lock and register anew for every uplink packet.
    let cancellation = cancel.cancelled();
    tokio::pin!(cancellation);
    let sleep = tokio::time::sleep_until(Instant::now());
    tokio::pin!(sleep);
    let mut alarm = Alarm::new(sleep);
    let end = loop {
        if let Some(end) = perform(&mut ws, &mut core, &mut jobs, &tx, &sh).await {
            break end;
        }
        alarm.set(core.next_deadline());
        let reading = core.wants_input();
        tokio::select! {
            _ = &mut cancellation => break End::Close(None),
            m = ws.next(), if reading => {
                let now = Instant::now();
                match m {
                    Some(Ok(Message::Text(t))) => core.handle_input(now, Input::Text(t.as_str().to_owned())),
                    Some(Ok(Message::Binary(b))) => core.handle_input(now, Input::Binary(b)),
                    Some(Ok(Message::Close(_))) | None => core.handle_input(now, Input::PeerClosed),
                    Some(Ok(_)) => {}
                    Some(Err(WsError::Capacity(_))) => {
                        MockCounters::bump(&sh.counters.oversized);
                        core.end();
                        break End::Close(Some(CloseReason { code: TOO_BIG, reason: "message too big".into() }));
                    }
                    Some(Err(_)) => core.handle_input(now, Input::PeerClosed),
                }
            }
            // Only while a reply job runs: events of cancelled jobs are
            // ignored by the core whenever they come, and polling an empty
            // channel on every uplink packet showed in the profile.
            Some((id, event)) = rx.recv(), if !jobs.is_empty() => {
                if matches!(event, ReplyEvent::Done) {
                    jobs.remove(&id);
                }
                core.handle_input(Instant::now(), Input::Reply { id, event });
            }
            _ = alarm.fired() => core.handle_timeout(Instant::now()),
        }
    };
    core.end();
    for job in jobs.values() {
        job.cancel();
    }
    if let End::Close(reason) = end {
        let _ = tokio::time::timeout(CLOSE_WAIT, ws.send(Message::Close(reason.map(frame)))).await;
    }
}

fn frame(r: CloseReason) -> CloseFrame {
    CloseFrame {
        code: CloseCode::from(r.code),
        reason: r.reason.into(),
    }
}

/// Carries out every pending action; `Some` when the connection is over.
async fn perform<W>(
    ws: &mut W,
    core: &mut SessionCore,
    jobs: &mut HashMap<u64, CancellationToken>,
    tx: &mpsc::Sender<(u64, ReplyEvent)>,
    sh: &Arc<Shared>,
) -> Option<End>
where
    W: Sink<Message, Error = WsError> + Unpin,
{
    let mut fed = false;
    while let Some(action) = core.poll_action() {
        let sent = match action {
            Action::Text(t) => ws.feed(Message::text(t)).await,
            Action::Binary(b) => ws.feed(Message::Binary(b)).await,
            Action::Close(reason) => {
                let _ = ws.flush().await;
                let _ = tokio::time::timeout(CLOSE_WAIT, ws.send(Message::Close(reason.map(frame)))).await;
                return Some(End::Done);
            }
            Action::Abandon => return Some(End::Done),
            Action::StartReply(order) => {
                for (_, old) in jobs.drain() {
                    old.cancel();
                }
                let cancel = CancellationToken::new();
                jobs.insert(order.id, cancel.clone());
                tokio::spawn(run_reply(ReplyJob {
                    kind: order.kind,
                    id: order.id,
                    voice_index: order.voice_index,
                    cfg: sh.cfg.clone(),
                    stages: sh.stages.clone(),
                    bank: sh.bank.clone(),
                    tx: tx.clone(),
                    cancel,
                    rng: order.rng,
                }));
                continue;
            }
            Action::CancelReply(id) => {
                if let Some(job) = jobs.remove(&id) {
                    job.cancel();
                }
                continue;
            }
        };
        if sent.is_err() {
            core.end();
            return Some(End::Done);
        }
        fed = true;
    }
    if fed && ws.flush().await.is_err() {
        core.end();
        return Some(End::Done);
    }
    core.is_closed().then_some(End::Close(None))
}
