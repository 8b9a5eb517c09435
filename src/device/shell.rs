//! The async shell around [`DeviceCore`]: one `select!` over the socket,
//! the core's next deadline, cancellation and whatever else the caller waits
//! for (the load driver's next command while idle). It reads the clock once
//! per wake-up, hands the core what happened, and carries out its outputs.
//! Generic over any `Stream + Sink` of WebSocket messages, so the same loop
//! runs over TCP, TLS or an in-memory pipe.

use super::core::{DeviceCore, Output, TurnEnd, close_failure, error_failure};
use crate::alarm::Alarm;
use crate::metrics::collector::EventSender;
use crate::metrics::{Event, Failure};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

/// How long a close handshake may take before the socket is dropped.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// What stopped the pump.
#[derive(Debug)]
pub(crate) enum Pumped<T> {
    /// The server hello arrived.
    Ready { hello: Duration },
    /// A turn ended.
    Turn(Box<TurnEnd>),
    /// The connection is gone outside a turn.
    Gone(Failure),
    /// The caller's own future finished.
    Extra(T),
    /// Cancelled while no turn ran.
    Cancelled,
}

/// Runs the core on `ws` until it reports something (or `extra` finishes).
pub(crate) async fn pump<S, F, T>(
    core: &mut DeviceCore,
    ws: &mut S,
    cancel: &CancellationToken,
    events: &EventSender,
    extra: F,
) -> Pumped<T>
where
    S: Stream<Item = Result<Message, tungstenite::Error>> + Sink<Message, Error = tungstenite::Error> + Unpin,
    F: Future<Output = T>,
{
    tokio::pin!(extra);
    // Made once per pump, not per wake-up: each fresh `cancelled()` and
    // `sleep_until` would lock and register anew.
    let cancellation = cancel.cancelled();
    tokio::pin!(cancellation);
    let sleep = tokio::time::sleep_until(Instant::now());
    tokio::pin!(sleep);
    let mut alarm = Alarm::new(sleep);
    let mut cancelled = false;
    loop {
        while let Some(out) = core.poll_output() {
            let sent = match out {
                Output::Text(t) => ws.send(Message::text(t)).await,
                Output::Binary(b) => ws.send(Message::Binary(b)).await,
                Output::Close => {
                    let _ = tokio::time::timeout(CLOSE_WAIT, ws.close()).await;
                    Ok(())
                }
                Output::Ready { hello } => return Pumped::Ready { hello },
                Output::TurnEnded(t) => return Pumped::Turn(t),
                Output::Gone(f) => return Pumped::Gone(f),
                Output::Flush(t) => {
                    events.send(Event::Flush(*t));
                    continue;
                }
            };
            if let Err(e) = sent {
                core.handle_gone(Instant::now(), error_failure(&e));
            }
        }
        if cancelled {
            return Pumped::Cancelled;
        }
        alarm.set(core.next_deadline());
        tokio::select! {
            _ = &mut cancellation => {
                core.cancel(Instant::now());
                cancelled = true;
            }
            m = ws.next() => {
                let now = Instant::now();
                match m {
                    Some(Ok(Message::Text(t))) => core.handle_text(now, t.as_str()),
                    Some(Ok(Message::Binary(b))) => core.handle_binary(now, &b),
                    Some(Ok(Message::Close(frame))) => core.handle_gone(now, close_failure(frame.as_ref())),
                    // Pings are answered by tungstenite; pongs and raw frames need nothing.
                    Some(Ok(_)) => {}
                    Some(Err(e)) => core.handle_gone(now, error_failure(&e)),
                    None => core.handle_gone(now, close_failure(None)),
                }
            }
            _ = alarm.fired() => core.handle_timeout(Instant::now()),
            r = &mut extra => return Pumped::Extra(r),
        }
    }
}
