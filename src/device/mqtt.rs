//! The MQTT control channel a device holds for its whole life (PROTOCOL.md
//! §11.1): connected once with the OTA answer's client id, username,
//! password and keep-alive, publishing JSON (QoS 0) on the answer's
//! `publish_topic`, and subscribed to `devices/p2p/<mac_>` so a generic
//! broker delivers the server's messages as the xiaozhi gateway does.
//!
//! The packets are rumqttc's (its MQTT 3.1.1 codec reads and writes every
//! byte; nothing here parses MQTT by hand), but not its `EventLoop`: that
//! one costs ~27 KiB per idle connection (an 8 KiB bitset of QoS 2 packet
//! ids, 100 preallocated events, 8 KiB read and write buffers; measured
//! with 2,000 links against mosquitto), more than an idle device may cost.
//! A device needs little of it: QoS 0 both ways, one subscription, pings.
//! So each link is one small task that owns the TCP stream and `select!`s
//! over it (`read_buf`, cancel-safe), the device's publishes (a bounded
//! channel) and the keep-alive; what it receives goes into a bounded
//! channel ([`MqttLink::poll_recv`] is a plain `mpsc` receive, cancel-safe).
//! The task ends when the connection fails (the reason is the last thing
//! it forwards) or when the link is dropped (with a DISCONNECT).

use crate::metrics::{Failure, FailureKind};
use crate::ota::answer::MqttSettings;
use bytes::{Bytes, BytesMut};
use rumqttc::{ConnectReturnCode, Packet, QoS};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// Server messages waiting for the device (a conversation's JSON is a few
/// messages at a time; a parked link drops what does not fit).
const INBOUND: usize = 8;
/// The device's publishes waiting for the connection task.
const OUTBOUND: usize = 4;
/// Largest MQTT packet either way (the JSON messages are < 1 KiB).
const MAX_PACKET: usize = 16 * 1024;
/// Read buffer to start with (grows for a larger packet, up to [`MAX_PACKET`]).
const READ_BUFFER: usize = 512;

/// Where and as whom a device connects to the broker.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct MqttTarget {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub username: String,
    pub password: String,
    pub keepalive: Duration,
    pub publish_topic: String,
    /// `devices/p2p/<mac_>`.
    pub p2p_topic: String,
}

impl MqttTarget {
    /// The OTA answer's settings for the device with MAC `device_id`.
    pub fn from_answer(m: &MqttSettings, device_id: &str) -> MqttTarget {
        MqttTarget {
            host: m.endpoint.host.clone(),
            port: m.endpoint.port,
            client_id: m.client_id.clone(),
            username: m.username.clone(),
            password: m.password.clone(),
            keepalive: Duration::from_secs(u64::from(m.keepalive_s)),
            publish_topic: m
                .publish_topic
                .clone()
                .unwrap_or_else(|| crate::ota::mqtt_id::PUBLISH_TOPIC.to_string()),
            p2p_topic: crate::ota::mqtt_id::p2p_topic(device_id),
        }
    }
}

/// What the connection task forwards.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// A publish's payload (the server's JSON).
    Message(Bytes),
    /// The connection failed, and why.
    Lost(String),
}

/// A connected MQTT control channel.
pub(crate) struct MqttLink {
    outbound: mpsc::Sender<Bytes>,
    inbound: mpsc::Receiver<Inbound>,
    task: AbortHandle,
    /// The connection task has said it is gone.
    lost: bool,
}

impl std::fmt::Debug for MqttLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttLink")
            .field("lost", &self.lost)
            .finish_non_exhaustive()
    }
}

impl Drop for MqttLink {
    fn drop(&mut self) {
        // The task sees its publish channel close, sends DISCONNECT and
        // ends; a dead one is just stopped.
        if self.lost {
            self.task.abort();
        }
    }
}

/// Why a connection failed, in words.
fn codec_error(e: &rumqttc::Error) -> String {
    format!("invalid MQTT packet from the broker: {e:?}")
}

/// The connection as its task holds it.
struct Connection {
    stream: TcpStream,
    read: BytesMut,
    publish_topic: String,
}

impl Connection {
    async fn write(&mut self, packet: Packet) -> std::io::Result<()> {
        let mut out = BytesMut::with_capacity(packet.size() + 5);
        packet
            .write(&mut out, MAX_PACKET)
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        self.stream.write_all(&out).await
    }

    /// The next whole packet already read, if any.
    fn parse(&mut self) -> Result<Option<Packet>, String> {
        match Packet::read(&mut self.read, MAX_PACKET) {
            Ok(p) => Ok(Some(p)),
            Err(rumqttc::Error::InsufficientBytes(_)) => Ok(None),
            Err(e) => Err(codec_error(&e)),
        }
    }

    /// Reads until one whole packet is in (or the stream ends).
    async fn next_packet(&mut self) -> Result<Packet, String> {
        loop {
            if let Some(p) = self.parse()? {
                return Ok(p);
            }
            match self.stream.read_buf(&mut self.read).await {
                Ok(0) => return Err("the broker closed the connection".to_string()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

/// TCP connect, CONNECT, CONNACK, SUBSCRIBE.
async fn handshake(target: &MqttTarget) -> Result<Connection, String> {
    let stream = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let mut c = Connection {
        stream,
        read: BytesMut::with_capacity(READ_BUFFER),
        publish_topic: target.publish_topic.clone(),
    };
    let mut connect = rumqttc::Connect::new(target.client_id.clone());
    connect.keep_alive = u16::try_from(target.keepalive.as_secs()).unwrap_or(u16::MAX);
    connect.clean_session = true;
    connect.set_login(target.username.clone(), target.password.clone());
    c.write(Packet::Connect(connect)).await.map_err(|e| e.to_string())?;
    match c.next_packet().await? {
        Packet::ConnAck(ack) if ack.code == ConnectReturnCode::Success => {}
        Packet::ConnAck(ack) => return Err(format!("the broker refused the connection (CONNACK {:?})", ack.code)),
        other => return Err(format!("expected CONNACK, got {other:?}")),
    }
    // Sent before any publish of ours: a broker handles one client's
    // packets in order, so the subscription is in place before the hello
    // it answers. The SUBACK is not waited for.
    let mut subscribe = rumqttc::Subscribe::new(target.p2p_topic.clone(), QoS::AtMostOnce);
    // Packet id 0 is not allowed (MQTT 3.1.1 §2.3.1); it is our only one.
    subscribe.pkid = 1;
    c.write(Packet::Subscribe(subscribe)).await.map_err(|e| e.to_string())?;
    Ok(c)
}

/// Connects to the broker within `limit`, subscribes to the device's p2p
/// topic, and returns the link with how long CONNACK took. Errors are
/// `connect` failures with the OS error or the CONNACK code.
pub(crate) async fn connect(target: &MqttTarget, limit: Duration) -> Result<(MqttLink, Duration), Failure> {
    let fail = |why: String| {
        Failure::new(
            FailureKind::Connect,
            format!("MQTT broker {}:{}: {why}", target.host, target.port),
        )
    };
    let started = Instant::now();
    let conn = match tokio::time::timeout(limit, handshake(target)).await {
        Err(_) => return Err(fail(format!("no CONNACK within {}", humantime::format_duration(limit)))),
        Ok(Err(why)) => return Err(fail(why)),
        Ok(Ok(c)) => c,
    };
    let took = started.elapsed();
    let (tx, inbound) = mpsc::channel(INBOUND);
    let (outbound, rx) = mpsc::channel(OUTBOUND);
    let task = tokio::spawn(drive(conn, target.keepalive, rx, tx)).abort_handle();
    let link = MqttLink {
        outbound,
        inbound,
        task,
        lost: false,
    };
    Ok((link, took))
}

/// The connection task: forwards publishes both ways, answers QoS 1
/// deliveries, pings every keep-alive and fails when a ping goes
/// unanswered for a whole keep-alive. Ends on the first error (the
/// firmware reconnects when a conversation next needs the channel, which
/// here is a new link) or when the device drops the link.
async fn drive(mut c: Connection, keepalive: Duration, mut rx: mpsc::Receiver<Bytes>, tx: mpsc::Sender<Inbound>) {
    let why = match serve(&mut c, keepalive, &mut rx, &tx).await {
        Ok(()) => {
            let _ = c.write(Packet::Disconnect).await;
            return;
        }
        Err(why) => why,
    };
    let _ = tx.try_send(Inbound::Lost(why));
}

async fn serve(
    c: &mut Connection,
    keepalive: Duration,
    rx: &mut mpsc::Receiver<Bytes>,
    tx: &mpsc::Sender<Inbound>,
) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    let mut ping_at = (!keepalive.is_zero()).then(|| Instant::now() + keepalive);
    let mut awaiting_pong = false;
    loop {
        while let Some(packet) = c.parse()? {
            match packet {
                Packet::Publish(p) => {
                    if p.qos != QoS::AtMostOnce {
                        c.write(Packet::PubAck(rumqttc::PubAck::new(p.pkid)))
                            .await
                            .map_err(io)?;
                    }
                    // Never blocks the connection (pings must go on): a
                    // full channel means nobody is listening (parked link).
                    if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(Inbound::Message(p.payload)) {
                        return Ok(());
                    }
                }
                Packet::PingResp => awaiting_pong = false,
                Packet::Disconnect => return Err("the broker sent DISCONNECT".to_string()),
                _ => {}
            }
        }
        let ping = async {
            match ping_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = c.stream.read_buf(&mut c.read) => match r {
                Ok(0) => return Err("the broker closed the connection".to_string()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            },
            m = rx.recv() => {
                let Some(payload) = m else { return Ok(()) };
                let publish = rumqttc::Publish::new(c.publish_topic.clone(), QoS::AtMostOnce, payload.to_vec());
                c.write(Packet::Publish(publish)).await.map_err(io)?;
            }
            _ = ping => {
                if awaiting_pong {
                    return Err(format!("no PINGRESP within the keep-alive ({})", humantime::format_duration(keepalive)));
                }
                c.write(Packet::PingReq).await.map_err(io)?;
                awaiting_pong = true;
                ping_at = Some(Instant::now() + keepalive);
            }
        }
    }
}

impl MqttLink {
    /// The next server message (cancel-safe). `Lost` once the connection
    /// is gone; after that, always `Lost`.
    pub fn poll_recv(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Inbound> {
        if self.lost {
            return std::task::Poll::Ready(Inbound::Lost("the MQTT connection is gone".to_string()));
        }
        self.inbound.poll_recv(cx).map(|m| {
            let m = m.unwrap_or_else(|| Inbound::Lost("the MQTT connection closed".to_string()));
            if matches!(m, Inbound::Lost(_)) {
                self.lost = true;
            }
            m
        })
    }

    /// The next server message.
    #[cfg(test)]
    pub async fn recv(&mut self) -> Inbound {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Drops server messages left over from an earlier session.
    pub fn drain(&mut self) {
        while let Ok(m) = self.inbound.try_recv() {
            if matches!(m, Inbound::Lost(_)) {
                self.lost = true;
            }
        }
    }

    /// False once the connection failed: a new conversation needs a new link.
    pub fn is_alive(&self) -> bool {
        !self.lost && !self.task.is_finished()
    }

    /// A future that publishes `payload` (QoS 0) on the publish topic, once
    /// the connection task has room. Owns what it needs.
    pub fn publish(&self, payload: Vec<u8>) -> impl Future<Output = Result<(), String>> + Send + 'static {
        let tx = self.outbound.clone();
        async move {
            tx.send(Bytes::from(payload))
                .await
                .map_err(|_| "the MQTT connection is gone".to_string())
        }
    }
}

#[cfg(test)]
#[path = "mqtt_tests.rs"]
pub(crate) mod tests;
