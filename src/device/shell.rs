//! The async shell around [`DeviceCore`]: one `select!` over the socket,
//! the core's next deadline, cancellation and whatever else the caller waits
//! for (the load driver's next command while idle). It reads the clock once
//! per wake-up, hands the core what happened, and carries out its outputs.
//! Generic over any `Stream + Sink` of WebSocket messages, so the same loop
//! runs over TCP, TLS or an in-memory pipe. With injected network
//! conditions a [`NetLink`] sits between the socket and the core, both
//! ways, and the same timer wakes the loop for its releases.

use super::core::{DeviceCore, Output, TurnEnd, error_failure};
use super::netlink::{NetLink, feed};
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

/// Runs the core on `ws` until it reports something (or `extra` finishes);
/// through `net` when the device's link has conditions.
pub(crate) async fn pump<S, F, T>(
    core: &mut DeviceCore,
    ws: &mut S,
    mut net: Option<&mut NetLink>,
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
    if let Some(n) = net.as_deref_mut() {
        n.not_before(Instant::now());
    }
    loop {
        while let Some(out) = core.poll_output() {
            let sent = match out {
                // Through the delay line when there is one (boxed: a
                // perfect link's devices carry no room for it).
                Output::Text(t) => match net.as_deref_mut() {
                    None => ws.send(Message::text(t)).await,
                    Some(n) => Box::pin(n.send(ws, Message::text(t))).await,
                },
                Output::Binary(b) => match net.as_deref_mut() {
                    None => ws.send(Message::Binary(b)).await,
                    Some(n) => Box::pin(n.send(ws, Message::Binary(b))).await,
                },
                Output::Close => {
                    // Hanging up: what is still on its way goes first.
                    if let Some(n) = net.as_deref_mut() {
                        let _ = Box::pin(n.send_due(ws, Instant::now(), true)).await;
                    }
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
        let release = net.as_ref().and_then(|n| n.next_release());
        alarm.set(match (core.next_deadline(), release) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        });
        let reading = net.as_ref().is_none_or(|n| n.reading());
        tokio::select! {
            _ = &mut cancellation => {
                core.cancel(Instant::now());
                cancelled = true;
            }
            m = ws.next(), if reading => {
                let now = Instant::now();
                match net.as_deref_mut() {
                    Some(n) => n.arrive(now, m),
                    None => feed(core, now, now, m),
                }
            }
            _ = alarm.fired() => {
                let now = Instant::now();
                if let Some(n) = net.as_deref_mut() {
                    n.deliver_due(core, now);
                    if let Err(e) = Box::pin(n.send_due(ws, now, false)).await {
                        core.handle_gone(now, error_failure(&e));
                    }
                }
                core.handle_timeout(now);
                if let Some(n) = net.as_deref_mut() {
                    n.not_before(now);
                }
            }
            r = &mut extra => return Pumped::Extra(r),
        }
    }
}
