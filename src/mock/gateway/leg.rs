//! The inner leg of a conversation: a pair of bounded channels that looks
//! like a WebSocket (`Stream + Sink` of messages) to [`mock::shell::run`],
//! so the gateway drives the very same session core as a WebSocket
//! connection does. Device JSON comes in as text, decrypted UDP payloads as
//! binary (raw Opus, binary protocol v1); the core's sends go out to the
//! conversation's downlink pump.
//!
//! [`mock::shell::run`]: crate::mock::shell

use futures_util::{Sink, Stream};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::PollSender;

/// Messages to the core in flight per conversation (UDP audio and JSON).
pub const TO_CORE: usize = 256;
/// Core sends in flight to the downlink pump.
pub const FROM_CORE: usize = 64;

/// The core's side of the inner leg.
pub struct Leg {
    rx: mpsc::Receiver<Message>,
    tx: PollSender<Message>,
}

/// Makes a leg; returns it with the sender into the core and the receiver
/// of what the core sends.
pub fn leg() -> (Leg, mpsc::Sender<Message>, mpsc::Receiver<Message>) {
    let (to_core, rx) = mpsc::channel(TO_CORE);
    let (tx, from_core) = mpsc::channel(FROM_CORE);
    let leg = Leg {
        rx,
        tx: PollSender::new(tx),
    };
    (leg, to_core, from_core)
}

impl Stream for Leg {
    type Item = Result<Message, WsError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|m| m.map(Ok))
    }
}

fn closed<E>(_: E) -> WsError {
    WsError::ConnectionClosed
}

impl Sink<Message> for Leg {
    type Error = WsError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        self.tx.poll_reserve(cx).map_err(closed)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), WsError> {
        self.tx.send_item(item).map_err(closed)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        self.tx.close();
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};

    #[tokio::test]
    async fn leg_carries_both_ways_and_ends_when_the_sender_goes() {
        let (mut leg, to_core, mut from_core) = leg();
        to_core.send(Message::text("hi")).await.unwrap();
        drop(to_core);
        assert_eq!(leg.next().await.unwrap().unwrap(), Message::text("hi"));
        assert!(leg.next().await.is_none());
        leg.send(Message::binary(vec![1u8])).await.unwrap();
        assert_eq!(from_core.recv().await, Some(Message::binary(vec![1u8])));
        drop(from_core);
        assert!(leg.send(Message::text("x")).await.is_err());
    }
}
