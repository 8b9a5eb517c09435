//! One device's MQTT connection to the gateway (PROTOCOL.md §11.1,
//! §11.4), framed by rumqttc's v3.1.1 codec: the connection faults that
//! strike before CONNACK (`refuse` drops the TCP connection,
//! `slow_handshake` never answers, `reject_upgrade` answers a refused
//! CONNACK; a password that is not the signature of the client id and
//! user name, with `[mock] mqtt_signature_key` set, is refused too), then
//! one `select!` over the socket, what the conversations
//! publish, the keep-alive limit and cancellation. SUBSCRIBE is acked
//! (the gateway delivers to `devices/p2p/<mac_>` either way), PINGREQ
//! answered, PUBLISH on `device-server` read as device JSON: a `hello`
//! (version 3, `udp`) opens a conversation, `goodbye` ends it, anything
//! else goes to it — or, with none open, is answered with a `goodbye`.
//! The connection's end (DISCONNECT, a drop, `mqtt_disconnect`) ends its
//! conversation.

use super::conversation::{self, Conversation, Link};
use super::hello::{UNSUPPORTED, check_device_hello, device_of, goodbye};
use super::hub::{Gateway, OUTBOUND, Outbound, sleep_until};
use crate::mock::counters::MockCounters;
use crate::mock::fault::{Fault, FaultKind};
use crate::mock::signature;
use crate::ota::mqtt_id::{PUBLISH_TOPIC, p2p_topic};
use futures_util::{SinkExt, StreamExt};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{
    Codec, ConnAck, Connect, ConnectReturnCode, Packet, PubAck, Publish, SubAck, SubscribeReasonCode,
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

/// Largest MQTT packet either way.
pub const MAX_PACKET: usize = 64 * 1024;
/// How long a closing connection waits for its conversation to finish.
const END_WAIT: Duration = Duration::from_secs(2);

type Mqtt = Framed<TcpStream, Codec>;

/// The CONNACK code a `reject_upgrade` fault's HTTP status stands for.
pub fn refusal(status: u16) -> ConnectReturnCode {
    match status {
        401 => ConnectReturnCode::BadUserNamePassword,
        503 => ConnectReturnCode::ServiceUnavailable,
        _ => ConnectReturnCode::NotAuthorized,
    }
}

/// One accepted MQTT connection, from TCP to the end of its conversation.
pub async fn connection(stream: TcpStream, index: u64, gw: Arc<Gateway>, cancel: CancellationToken) {
    let fault = gw.sh.cfg.faults.for_connection(index, true).cloned();
    let log = &gw.sh.counters.faults;
    match fault.as_ref().map(|f| f.kind) {
        Some(FaultKind::Refuse) => {
            log.record("", index, FaultKind::Refuse);
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
    let codec = Codec {
        max_incoming_size: MAX_PACKET,
        max_outgoing_size: MAX_PACKET,
    };
    let mut mqtt = Framed::new(stream, codec);
    let Some((device_id, keep_alive)) = handshake(&mut mqtt, index, fault.as_ref(), &gw, &cancel).await else {
        return;
    };
    MockCounters::bump(&gw.sh.counters.mqtt_connections);
    let (out, out_rx) = mpsc::channel(OUTBOUND);
    let link = Arc::new(Link {
        gw,
        device_id,
        index,
        conn_fault: fault,
        out,
        cancel: cancel.child_token(),
    });
    let mut client = Client {
        topic: p2p_topic(&link.device_id),
        link,
        current: None,
        tasks: JoinSet::new(),
    };
    client.serve(mqtt, out_rx, keep_alive, &cancel).await;
}

/// Reads the CONNECT (by the handshake timeout) and answers it; the
/// device's MAC and keep-alive when accepted.
async fn handshake(
    mqtt: &mut Mqtt,
    index: u64,
    fault: Option<&Fault>,
    gw: &Gateway,
    cancel: &CancellationToken,
) -> Option<(String, Duration)> {
    let first = tokio::select! {
        _ = cancel.cancelled() => return None,
        r = tokio::time::timeout(gw.sh.handshake_timeout, mqtt.next()) => r,
    };
    let connect = match first {
        Ok(Some(Ok(Packet::Connect(c)))) => c,
        Ok(_) => return None,
        Err(_) => {
            MockCounters::bump(&gw.sh.counters.handshake_timeouts);
            return None;
        }
    };
    let device = device_of(&connect.client_id);
    let code = match (fault.filter(|f| f.kind == FaultKind::RejectUpgrade), &device) {
        (Some(f), _) => {
            let who = device.as_deref().unwrap_or("");
            gw.sh.counters.faults.record(who, index, FaultKind::RejectUpgrade);
            refusal(f.status)
        }
        (None, None) => ConnectReturnCode::BadClientId,
        (None, Some(_)) if !signed(&connect, gw.sh.cfg.mqtt_signature_key.as_deref()) => {
            ConnectReturnCode::BadUserNamePassword
        }
        (None, Some(_)) => ConnectReturnCode::Success,
    };
    let _ = mqtt.send(Packet::ConnAck(ConnAck::new(code, false))).await;
    let device = device.filter(|_| code == ConnectReturnCode::Success)?;
    Some((device, Duration::from_secs(u64::from(connect.keep_alive))))
}

/// Whether the CONNECT's password is the signature of its client id and
/// user name (always, without a signature key).
pub fn signed(connect: &Connect, key: Option<&str>) -> bool {
    let Some(key) = key else { return true };
    connect
        .login
        .as_ref()
        .is_some_and(|l| l.password == signature::password(key, &connect.client_id, &l.username))
}

/// An accepted MQTT client and its conversation.
struct Client {
    link: Arc<Link>,
    topic: String,
    current: Option<Conversation>,
    tasks: JoinSet<()>,
}

impl Client {
    async fn serve(
        &mut self,
        mut mqtt: Mqtt,
        mut out_rx: mpsc::Receiver<Outbound>,
        keep_alive: Duration,
        cancel: &CancellationToken,
    ) {
        // MQTT 3.1.1 §3.1.2.10: silent for 1.5 × keep-alive → drop.
        let limit = (!keep_alive.is_zero()).then(|| keep_alive + keep_alive / 2);
        let mut heard_at = Instant::now();
        loop {
            let silent_until = limit.map(|l| heard_at + l);
            tokio::select! {
                _ = cancel.cancelled() => break,
                p = mqtt.next() => {
                    heard_at = Instant::now();
                    match p {
                        Some(Ok(packet)) => {
                            if !self.on_packet(&mut mqtt, packet).await {
                                break;
                            }
                        }
                        // A malformed packet or a closed socket ends it.
                        Some(Err(_)) | None => break,
                    }
                }
                Some(o) = out_rx.recv() => match o {
                    Outbound::Publish(text) => {
                        let p = Publish::new(self.topic.as_str(), QoS::AtMostOnce, text.into_bytes());
                        if mqtt.send(Packet::Publish(p)).await.is_err() {
                            break;
                        }
                    }
                    Outbound::Drop => break,
                    Outbound::Ended(sid) => {
                        if self.current.as_ref().is_some_and(|c| c.session_id == sid) {
                            self.current = None;
                        }
                    }
                },
                _ = sleep_until(silent_until) => break,
                // Reaps finished conversations (a device has many in its life).
                Some(_) = self.tasks.join_next(), if !self.tasks.is_empty() => {}
            }
        }
        drop(mqtt);
        if let Some(c) = self.current.take() {
            c.cancel.cancel();
        }
        // Pumps blocked on a full channel see it closed.
        drop(out_rx);
        let tasks = &mut self.tasks;
        let _ = tokio::time::timeout(END_WAIT, async { while tasks.join_next().await.is_some() {} }).await;
    }

    /// Handles one packet; false when the connection is over.
    async fn on_packet(&mut self, mqtt: &mut Mqtt, packet: Packet) -> bool {
        let reply = match packet {
            Packet::Publish(p) => {
                if p.qos != QoS::AtMostOnce {
                    let _ = mqtt.send(Packet::PubAck(PubAck::new(p.pkid))).await;
                }
                if p.topic == PUBLISH_TOPIC {
                    self.on_device(mqtt, &p.payload).await;
                }
                None
            }
            Packet::Subscribe(s) => {
                let codes = vec![SubscribeReasonCode::Success(QoS::AtMostOnce); s.filters.len()];
                Some(Packet::SubAck(SubAck::new(s.pkid, codes)))
            }
            Packet::PingReq => Some(Packet::PingResp),
            Packet::Disconnect | Packet::Connect(_) => return false,
            _ => None,
        };
        match reply {
            Some(r) => mqtt.send(r).await.is_ok(),
            None => true,
        }
    }

    /// One JSON message from the device.
    async fn on_device(&mut self, mqtt: &mut Mqtt, payload: &[u8]) {
        let counters = &self.link.gw.sh.counters;
        let Ok(v) = serde_json::from_slice::<Value>(payload) else {
            MockCounters::bump(&counters.protocol_errors);
            return;
        };
        let sid = v["session_id"].as_str().unwrap_or("");
        match v["type"].as_str() {
            Some("hello") => {
                if let Err(why) = check_device_hello(&v) {
                    tracing::debug!("gateway: {} refused: {why}", self.link.device_id);
                    MockCounters::bump(&counters.protocol_errors);
                    let error = json!({"type": "error", "message": UNSUPPORTED}).to_string();
                    return self.publish(mqtt, error).await;
                }
                if let Some(old) = self.current.take() {
                    old.cancel.cancel();
                }
                self.current = Some(conversation::start(&self.link, &v, &mut self.tasks).await);
            }
            Some("goodbye") => {
                if self
                    .current
                    .as_ref()
                    .is_some_and(|c| sid.is_empty() || c.session_id == sid)
                    && let Some(c) = self.current.take()
                {
                    c.cancel.cancel();
                }
            }
            _ => match &self.current {
                Some(c) => {
                    let text = String::from_utf8_lossy(payload).into_owned();
                    if c.to_core.try_send(Message::text(text)).is_err() {
                        MockCounters::bump(&counters.protocol_errors);
                    }
                }
                None => self.publish(mqtt, goodbye(sid)).await,
            },
        }
    }

    /// Publishes from this task directly (never through `out`, which
    /// this task itself drains).
    async fn publish(&self, mqtt: &mut Mqtt, text: String) {
        let p = Publish::new(self.topic.as_str(), QoS::AtMostOnce, text.into_bytes());
        let _ = mqtt.send(Packet::Publish(p)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_map_http_statuses_to_connack_codes() {
        assert_eq!(refusal(401), ConnectReturnCode::BadUserNamePassword);
        assert_eq!(refusal(503), ConnectReturnCode::ServiceUnavailable);
        assert_eq!(refusal(403), ConnectReturnCode::NotAuthorized);
    }

    #[test]
    fn passwords_are_checked_only_with_a_signature_key() {
        let id = "GID_b@@@02_aa_00_00_00_01@@@u";
        let mut c = Connect::new(id);
        assert!(signed(&c, None));
        assert!(!signed(&c, Some("k")), "no login");
        c.set_login("user", signature::password("k", id, "user"));
        assert!(signed(&c, Some("k")));
        assert!(!signed(&c, Some("other key")));
    }
}
