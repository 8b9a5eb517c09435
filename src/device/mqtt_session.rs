//! One conversation over MQTT + UDP as the same `Stream + Sink` of
//! WebSocket messages the shell pumps (PROTOCOL.md §11): text frames are
//! MQTT publishes on the device's lifelong [`MqttLink`], binary frames are
//! whole UDP datagrams (the core seals and opens them). The session opens
//! its UDP socket, connected to the server hello's `udp.server:port`, as
//! that hello passes through; it ignores a server `goodbye` for another
//! session, and answers one for its own by closing UDP (the core ends the
//! session as for a WebSocket close). Closing it from the device side
//! publishes `goodbye` and closes UDP (§11.4). The link outlives the
//! session: [`MqttSession::into_link`] hands it back.

use super::mqtt::{Inbound, MqttLink};
use crate::protocol::udp::UdpParams;
use bytes::Bytes;
use futures_util::{Sink, Stream};
use serde::Deserialize;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::ReadBuf;
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::{Error, Message};

/// Largest datagram read (Opus packets of 60 ms are a few hundred bytes).
const DATAGRAM_MAX: usize = 1500;

type Publishing = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// What the session needs to read from a server message.
#[derive(Deserialize)]
struct Peek {
    #[serde(rename = "type")]
    kind: Option<String>,
    session_id: Option<String>,
}

/// A conversation on the MQTT + UDP transport.
pub(crate) struct MqttSession {
    link: MqttLink,
    udp: Option<UdpSocket>,
    /// The server hello's session id.
    session_id: Option<String>,
    /// A publish in progress (at most one; the shell sends one at a time).
    publishing: Option<Publishing>,
    /// The session has ended (goodbye either way): nothing more to say.
    ended: bool,
}

fn lost(why: impl Into<String>) -> Error {
    Error::Io(io::Error::new(io::ErrorKind::ConnectionAborted, why.into()))
}

/// A UDP socket connected to the hello's server. A name (not an address)
/// is resolved here, blocking; gateways hand out addresses.
fn open_udp(params: &UdpParams) -> io::Result<UdpSocket> {
    let dst: SocketAddr = match params.server.parse() {
        Ok(ip) => SocketAddr::new(ip, params.port),
        Err(_) => (params.server.as_str(), params.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?,
    };
    let local: SocketAddr = if dst.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
        .parse()
        .map_err(io::Error::other)?;
    let std = std::net::UdpSocket::bind(local)?;
    std.set_nonblocking(true)?;
    std.connect(dst)?;
    UdpSocket::from_std(std)
}

impl MqttSession {
    /// A new conversation on `link` (messages left from an earlier one dropped).
    pub fn new(mut link: MqttLink) -> MqttSession {
        link.drain();
        MqttSession {
            link,
            udp: None,
            session_id: None,
            publishing: None,
            ended: false,
        }
    }

    /// The lifelong link back, if it is still connected.
    pub fn into_link(self) -> Option<MqttLink> {
        self.link.is_alive().then_some(self.link)
    }

    /// Looks at a server message on its way to the core: `None` drops it.
    fn inspect(&mut self, payload: &[u8]) -> Result<Option<Message>, Error> {
        let peek: Option<Peek> = serde_json::from_slice(payload).ok();
        match peek.as_ref().and_then(|p| p.kind.as_deref()) {
            Some("hello") if self.udp.is_none() => {
                let value: serde_json::Value = serde_json::from_slice(payload).unwrap_or_default();
                // An invalid block is the core's to name; only a valid one opens UDP.
                if value.get("transport").and_then(|t| t.as_str()) == Some("udp")
                    && let Ok(params) = UdpParams::from_hello(value.get("udp"))
                {
                    let socket = open_udp(&params)
                        .map_err(|e| lost(format!("UDP socket to {}:{}: {e}", params.server, params.port)))?;
                    self.udp = Some(socket);
                    self.session_id = peek.and_then(|p| p.session_id);
                }
            }
            Some("goodbye") => {
                let theirs = peek.and_then(|p| p.session_id);
                if theirs.is_some() && theirs != self.session_id {
                    return Ok(None);
                }
                self.udp = None;
                self.ended = true;
            }
            _ => {}
        }
        let text = String::from_utf8_lossy(payload).into_owned();
        Ok(Some(Message::text(text)))
    }

    fn poll_publish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if let Some(p) = self.publishing.as_mut() {
            let r = ready!(p.as_mut().poll(cx));
            self.publishing = None;
            r.map_err(|e| lost(format!("MQTT publish failed: {e}")))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl Stream for MqttSession {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        // Bounded: each pass takes one message; dropped ones are few.
        for _ in 0..64 {
            match this.link.poll_recv(cx) {
                Poll::Ready(Inbound::Message(payload)) => match this.inspect(&payload) {
                    Ok(Some(m)) => return Poll::Ready(Some(Ok(m))),
                    Ok(None) => continue,
                    Err(e) => return Poll::Ready(Some(Err(e))),
                },
                Poll::Ready(Inbound::Lost(why)) => return Poll::Ready(Some(Err(lost(format!("MQTT: {why}"))))),
                Poll::Pending => break,
            }
        }
        if let Some(udp) = this.udp.as_ref() {
            let mut buf = [0u8; DATAGRAM_MAX];
            let mut read = ReadBuf::new(&mut buf);
            match udp.poll_recv(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    return Poll::Ready(Some(Ok(Message::Binary(Bytes::copy_from_slice(read.filled())))));
                }
                // ICMP "port unreachable" on a connected socket: the
                // gateway is not there (yet); the turn's timers decide.
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    cx.waker().wake_by_ref();
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(lost(format!("UDP: {e}"))))),
                Poll::Pending => {}
            }
        }
        Poll::Pending
    }
}

impl Sink<Message> for MqttSession {
    type Error = Error;

    /// Ready when no publish is pending and UDP (if open) is writable: a
    /// new socket is not known writable until polled, and `try_send`
    /// would drop the first datagram.
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        ready!(this.poll_publish(cx))?;
        if let Some(udp) = this.udp.as_ref() {
            ready!(udp.poll_send_ready(cx)).map_err(|e| lost(format!("UDP: {e}")))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        let this = self.get_mut();
        match item {
            Message::Text(t) => {
                this.publishing = Some(Box::pin(this.link.publish(t.as_bytes().to_vec())));
            }
            Message::Binary(b) => {
                // UDP: a full send buffer drops the datagram, as a network would.
                if let Some(udp) = this.udp.as_ref() {
                    match udp.try_send(&b) {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                        Err(e) => return Err(lost(format!("UDP: {e}"))),
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_publish(cx)
    }

    /// The device hangs up: `goodbye` with its session id, UDP closed.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        ready!(this.poll_publish(cx))?;
        if !this.ended {
            this.ended = true;
            this.udp = None;
            if let Some(sid) = this.session_id.clone() {
                let bye = crate::protocol::ClientMessage::Goodbye { session_id: sid }.to_json();
                this.publishing = Some(Box::pin(this.link.publish(bye.into_bytes())));
                ready!(this.poll_publish(cx))?;
            }
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::mqtt::tests::{Broker, target};
    use crate::device::mqtt::{MqttLink, connect};
    use futures_util::{SinkExt, StreamExt};
    use std::time::Duration;

    const LIMIT: Duration = Duration::from_secs(5);
    const MAC: &str = "02:00:00:00:01:01";

    async fn next(s: &mut MqttSession) -> Message {
        tokio::time::timeout(LIMIT, s.next()).await.unwrap().unwrap().unwrap()
    }

    fn hello(sid: &str, port: u16) -> Vec<u8> {
        let udp = UdpParams {
            server: "127.0.0.1".into(),
            port,
            key: [1; 16],
            nonce: [1; 16],
        };
        serde_json::json!({"type": "hello", "version": 3, "transport": "udp", "session_id": sid, "udp": udp.to_hello()})
            .to_string()
            .into_bytes()
    }

    /// The device's link (publishing to itself) and a "gateway" link
    /// publishing to the device's p2p topic.
    async fn links(port: u16) -> (MqttLink, MqttLink) {
        let p2p = crate::ota::mqtt_id::p2p_topic(MAC);
        let (device, _) = connect(&target(port, MAC, &p2p), LIMIT).await.unwrap();
        let (gateway, _) = connect(&target(port, "02:00:00:00:01:99", &p2p), LIMIT).await.unwrap();
        (device, gateway)
    }

    #[tokio::test]
    async fn a_session_opens_udp_from_the_hello_and_honours_only_its_own_goodbye() {
        let Some(broker) = Broker::start().await else { return };
        let (device, gateway) = links(broker.port).await;
        let gw_udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut s = MqttSession::new(device);
        gateway
            .publish(hello("s1", gw_udp.local_addr().unwrap().port()))
            .await
            .unwrap();
        assert!(matches!(next(&mut s).await, Message::Text(t) if t.contains("\"hello\"")));
        // Uplink datagrams go to the hello's server; the gateway answers
        // to the address it learnt from them.
        s.send(Message::Binary(Bytes::from_static(b"up"))).await.unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = tokio::time::timeout(LIMIT, gw_udp.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], b"up");
        gw_udp.send_to(b"down", from).await.unwrap();
        assert_eq!(next(&mut s).await, Message::Binary(Bytes::from_static(b"down")));
        // Another session's goodbye is not ours: dropped.
        gateway
            .publish(br#"{"type":"goodbye","session_id":"s0"}"#.to_vec())
            .await
            .unwrap();
        gateway.publish(br#"{"type":"stt","text":"x"}"#.to_vec()).await.unwrap();
        assert!(matches!(next(&mut s).await, Message::Text(t) if t.contains("stt")));
        gateway
            .publish(br#"{"type":"goodbye","session_id":"s1"}"#.to_vec())
            .await
            .unwrap();
        assert!(matches!(next(&mut s).await, Message::Text(t) if t.contains("goodbye")));
        assert!(s.udp.is_none() && s.ended);
        // Closed by the server: the device does not answer its goodbye.
        s.close().await.unwrap();
        let mut device = s.into_link().expect("the link outlives the session");
        device.drain();
        assert!(device.is_alive());
    }

    #[tokio::test]
    async fn hanging_up_publishes_goodbye_with_the_session_id_and_keeps_the_link() {
        let Some(broker) = Broker::start().await else { return };
        let (device, gateway) = links(broker.port).await;
        let mut s = MqttSession::new(device);
        gateway.publish(hello("s2", 9)).await.unwrap();
        let _ = next(&mut s).await;
        s.close().await.unwrap();
        assert!(s.udp.is_none());
        // The device publishes to its own p2p topic here: its goodbye comes back.
        let mut device = s.into_link().unwrap();
        match tokio::time::timeout(LIMIT, device.recv()).await.unwrap() {
            crate::device::mqtt::Inbound::Message(m) => assert_eq!(&m[..], br#"{"session_id":"s2","type":"goodbye"}"#),
            other => panic!("{other:?}"),
        }
    }
}
