//! The socket a device owns: a WebSocket over plain TCP or over TLS, or a
//! conversation over MQTT + UDP, each boxed at its own size. One type over
//! all would be as large as the TLS state (~1.1 KiB more per device) for
//! every plain connection too.

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// An upgraded device connection.
pub(crate) enum Socket {
    Plain(Box<WebSocketStream<TcpStream>>),
    Tls(Box<WebSocketStream<MaybeTlsStream<TcpStream>>>),
    Mqtt(Box<super::mqtt_session::MqttSession>),
}

/// Calls `$call` on whichever stream the socket holds.
macro_rules! each {
    ($socket:expr, $s:ident => $call:expr) => {
        match $socket.get_mut() {
            Socket::Plain($s) => $call,
            Socket::Tls($s) => $call,
            Socket::Mqtt($s) => $call,
        }
    };
}

impl Stream for Socket {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        each!(self, s => s.poll_next_unpin(cx))
    }
}

impl Sink<Message> for Socket {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        each!(self, s => s.poll_ready_unpin(cx))
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        each!(self, s => s.start_send_unpin(item))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        each!(self, s => s.poll_flush_unpin(cx))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        each!(self, s => s.poll_close_unpin(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_socket_costs_a_pointer_in_the_device() {
        assert_eq!(std::mem::size_of::<Socket>(), 16);
        assert!(
            std::mem::size_of::<WebSocketStream<TcpStream>>() + 1024
                < std::mem::size_of::<WebSocketStream<MaybeTlsStream<TcpStream>>>()
        );
    }
}
