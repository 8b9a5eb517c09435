//! The MQTT control channel a device holds for its whole life (PROTOCOL.md
//! §11.1): connected once with the OTA answer's client id, username,
//! password and keep-alive, publishing JSON (QoS 0) on the answer's
//! `publish_topic`, and subscribed to `devices/p2p/<mac_>` so a generic
//! broker delivers the server's messages as the xiaozhi gateway does.
//!
//! rumqttc's `EventLoop::poll` is not documented as cancel-safe, so it is
//! never raced in a `select!`: it runs alone in its own small task, which
//! forwards the publishes it receives into a bounded channel
//! ([`MqttLink::recv`] is a plain `mpsc` receive, which is cancel-safe).
//! The task ends when the connection fails (the reason is the last thing
//! it forwards) or when the link is dropped.

use crate::metrics::{Failure, FailureKind};
use crate::ota::answer::MqttSettings;
use bytes::Bytes;
use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// Server messages waiting for the device (a conversation's JSON is a few
/// messages at a time; a parked link drops what does not fit).
const INBOUND: usize = 8;
/// rumqttc's request queue (our publishes and the subscription).
const REQUESTS: usize = 4;
/// QoS 0 only: nothing is ever in flight awaiting an acknowledgement.
const INFLIGHT: u16 = 1;
/// Largest MQTT packet either way (the JSON messages are < 1 KiB).
const MAX_PACKET: usize = 16 * 1024;

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

    fn options(&self) -> MqttOptions {
        let mut o = MqttOptions::new(self.client_id.clone(), self.host.clone(), self.port);
        // rumqttc refuses a keep-alive under 1 s; 0 means none (MQTT's rule).
        let keepalive = if self.keepalive.is_zero() {
            Duration::ZERO
        } else {
            self.keepalive.max(Duration::from_secs(1))
        };
        o.set_keep_alive(keepalive)
            .set_credentials(self.username.clone(), self.password.clone())
            .set_clean_session(true)
            .set_inflight(INFLIGHT)
            .set_request_channel_capacity(REQUESTS)
            .set_max_packet_size(MAX_PACKET, MAX_PACKET);
        o
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
    client: AsyncClient,
    inbound: mpsc::Receiver<Inbound>,
    publish_topic: String,
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
        // A DISCONNECT if the queue takes it (the task ends once it is
        // sent); otherwise the TCP connection is just dropped.
        if self.lost || self.client.try_disconnect().is_err() {
            self.task.abort();
        }
    }
}

/// Why a connection attempt or a connection failed, in words.
fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ConnectionRefused(code) => format!("the broker refused the connection (CONNACK {code:?})"),
        ConnectionError::Io(io) => io.to_string(),
        ConnectionError::NetworkTimeout => "no CONNACK in time".to_string(),
        other => other.to_string(),
    }
}

/// Connects to the broker within `limit`, subscribes to the device's p2p
/// topic, and returns the link with how long CONNACK took. Errors are
/// `connect` failures with the OS error or the CONNACK code.
pub(crate) async fn connect(target: &MqttTarget, limit: Duration) -> Result<(MqttLink, Duration), Failure> {
    let (client, mut events) = AsyncClient::new(target.options(), REQUESTS);
    let mut network = events.network_options();
    network.set_connection_timeout(limit.as_secs().max(1));
    events.set_network_options(network);
    let where_ = format!("MQTT broker {}:{}", target.host, target.port);
    let fail = |why: String| Failure::new(FailureKind::Connect, format!("{where_}: {why}"));
    // Queued now, sent right after CONNACK, before any publish of ours: a
    // broker handles one client's packets in order, so the subscription is
    // in place before the hello it answers.
    client
        .try_subscribe(target.p2p_topic.clone(), QoS::AtMostOnce)
        .map_err(|e| fail(e.to_string()))?;
    let (tx, inbound) = mpsc::channel(INBOUND);
    let (ready_tx, ready) = oneshot::channel();
    let started = Instant::now();
    let task = tokio::spawn(drive(events, tx, ready_tx)).abort_handle();
    let link = MqttLink {
        client,
        inbound,
        publish_topic: target.publish_topic.clone(),
        task,
        lost: false,
    };
    match tokio::time::timeout(limit, ready).await {
        Ok(Ok(Ok(()))) => Ok((link, started.elapsed())),
        Ok(Ok(Err(why))) => Err(fail(why)),
        Ok(Err(_)) => Err(fail("the connection task ended".to_string())),
        Err(_) => Err(fail(format!("no CONNACK within {}", humantime::format_duration(limit)))),
    }
}

/// The connection task: polls the event loop and forwards what matters.
/// Ends on the first error (the firmware reconnects when a conversation
/// next needs the channel, which here is a new link).
async fn drive(mut events: EventLoop, tx: mpsc::Sender<Inbound>, ready: oneshot::Sender<Result<(), String>>) {
    let mut ready = Some(ready);
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(Ok(()));
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                // Never blocks the event loop (keep-alive must go on): a
                // full channel means nobody is listening (parked link).
                if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(Inbound::Message(p.payload)) {
                    return;
                }
            }
            Ok(Event::Incoming(Packet::Disconnect)) => {
                let _ = tx.try_send(Inbound::Lost("the broker sent DISCONNECT".to_string()));
                return;
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(e) => {
                let why = describe(&e);
                match ready.take() {
                    Some(r) => {
                        let _ = r.send(Err(why));
                    }
                    None => {
                        let _ = tx.try_send(Inbound::Lost(why));
                    }
                }
                return;
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
    /// rumqttc's request queue has room. Owns what it needs.
    pub fn publish(&self, payload: Vec<u8>) -> impl Future<Output = Result<(), rumqttc::ClientError>> + Send + 'static {
        let client = self.client.clone();
        let topic = self.publish_topic.clone();
        async move { client.publish(topic, QoS::AtMostOnce, false, payload).await }
    }
}

#[cfg(test)]
#[path = "mqtt_tests.rs"]
mod tests;
