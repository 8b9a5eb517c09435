//! One conversation on the gateway: from a device `hello` to its end. A
//! [`SessionCore`] (the same one WebSocket connections get, binary
//! protocol v1) runs in [`shell::run`] over the inner [`leg`]; beside it the
//! downlink pump turns what the core sends into what the device gets: text
//! becomes an MQTT publish (the hello rewritten into the UDP hello with a
//! fresh key and nonce), audio a sealed datagram (sequence from 1,
//! timestamp in ms since the hello) through the answer's UDP faults, and
//! the core's close a `goodbye` — unless the device ended it. The pump also
//! picks the gateway's turn faults per answer (`tts start`).
//!
//! [`leg`]: super::leg

use super::hello::{goodbye, inner_hello, nonce, udp_hello};
use super::hub::{Gateway, Outbound, sleep_until};
use super::leg::leg;
use super::shaper::{Shaped, Shaper};
use super::udp::UdpCommand;
use crate::mock::accept::new_session_id;
use crate::mock::core::{SessionCore, SessionParams, device_hash};
use crate::mock::counters::MockCounters;
use crate::mock::fault::{Fault, FaultKind};
use crate::mock::shell;
use crate::protocol::ProtocolVersion;
use crate::protocol::udp::{UdpCipher, UdpParams};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// What one MQTT connection's conversations share.
pub struct Link {
    pub gw: Arc<Gateway>,
    /// The device's MAC, from its client id.
    pub device_id: String,
    /// Accept index of the MQTT connection.
    pub index: u64,
    pub conn_fault: Option<Fault>,
    /// To the MQTT connection task.
    pub out: mpsc::Sender<Outbound>,
    pub cancel: CancellationToken,
}

/// The MQTT connection's handle on a running conversation.
pub struct Conversation {
    pub session_id: String,
    pub to_core: mpsc::Sender<Message>,
    /// Cancelled when the device ends it (goodbye, new hello, disconnect).
    pub cancel: CancellationToken,
}

/// Starts a conversation for an accepted device `hello`.
pub async fn start(link: &Arc<Link>, device_hello: &Value, tasks: &mut JoinSet<()>) -> Conversation {
    let gw = &link.gw;
    let ssrc = rand::random::<u32>();
    let udp = UdpParams {
        server: gw.udp_addr.ip().to_string(),
        port: gw.udp_addr.port(),
        key: rand::random(),
        nonce: nonce(ssrc),
    };
    let cipher = UdpCipher::new(&udp.key);
    let (leg, to_core, from_core) = leg();
    let _ = to_core.try_send(Message::text(inner_hello(device_hello)));
    let open = UdpCommand::Open {
        ssrc,
        cipher: Box::new(cipher.clone()),
        to_core: to_core.clone(),
    };
    let _ = gw.udp.send(open).await;
    let session_id = new_session_id();
    let sh = gw.sh.clone();
    let params = SessionParams {
        cfg: sh.cfg.clone(),
        counters: sh.counters.clone(),
        hearing: sh.hearing.clone(),
        version: ProtocolVersion::V1,
        device_id: link.device_id.clone(),
        session_id: session_id.clone(),
        connection: link.index,
        conn_fault: link.conn_fault.as_ref().map(|f| f.kind),
    };
    let core = SessionCore::new(params, Instant::now());
    let cancel = link.cancel.child_token();
    MockCounters::bump(&sh.counters.conversations);
    sh.counters.active_sessions.fetch_add(1, Ordering::Relaxed);
    let pump = Pump::new(link.clone(), udp, cipher, cancel.clone(), session_id.clone());
    let (sid, shell_cancel) = (session_id.clone(), cancel.clone());
    tasks.spawn(async move {
        let udp_tx = pump.link.gw.udp.clone();
        let out = pump.link.out.clone();
        tokio::join!(shell::run(leg, core, sh.clone(), shell_cancel), pump.run(from_core));
        sh.counters.active_sessions.fetch_sub(1, Ordering::Relaxed);
        let _ = udp_tx.send(UdpCommand::Close { ssrc }).await;
        let _ = out.send(Outbound::Ended(sid)).await;
    });
    Conversation {
        session_id,
        to_core,
        cancel,
    }
}

/// The downlink side of a conversation.
struct Pump {
    link: Arc<Link>,
    udp: UdpParams,
    cipher: UdpCipher,
    cancel: CancellationToken,
    session_id: String,
    started: Instant,
    sequence: u32,
    shaper: Shaper,
    device_key: u64,
    /// `tts start`s seen: the index of the next answer.
    answers: u32,
    /// The answer in progress: its index, gateway fault, frames sent, and
    /// whether the fault has struck (logged once per answer).
    answer: Option<(u32, Option<Fault>, u32, bool)>,
}

impl Pump {
    fn new(link: Arc<Link>, udp: UdpParams, cipher: UdpCipher, cancel: CancellationToken, session_id: String) -> Pump {
        Pump {
            session_id,
            device_key: device_hash(&link.device_id),
            link,
            udp,
            cipher,
            cancel,
            started: Instant::now(),
            sequence: 0,
            shaper: Shaper::default(),
            answers: 0,
            answer: None,
        }
    }

    async fn run(mut self, mut from_core: mpsc::Receiver<Message>) {
        let mut out = Vec::new();
        loop {
            let deadline = self.shaper.next_deadline();
            tokio::select! {
                m = from_core.recv() => match m {
                    None => break,
                    Some(Message::Text(t)) => self.on_text(t.as_str()).await,
                    Some(Message::Binary(b)) => self.on_audio(&b).await,
                    Some(Message::Close(_)) if !self.cancel.is_cancelled() => {
                        let bye = goodbye(&self.session_id);
                        let _ = self.link.out.send(Outbound::Publish(bye)).await;
                    }
                    Some(_) => {}
                },
                _ = sleep_until(deadline) => {
                    self.shaper.due(Instant::now(), &mut out);
                    self.send_all(&mut out).await;
                }
            }
        }
    }

    async fn publish(&self, text: String) {
        let _ = self.link.out.send(Outbound::Publish(text)).await;
    }

    async fn on_text(&mut self, text: &str) {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return self.publish(text.to_string()).await;
        };
        match (v["type"].as_str(), v["state"].as_str()) {
            (Some("hello"), _) => {
                let bad_key = self
                    .link
                    .conn_fault
                    .as_ref()
                    .is_some_and(|f| f.kind == FaultKind::BadUdpKey);
                if bad_key {
                    self.record(self.link.index, FaultKind::BadUdpKey);
                }
                return self.publish(udp_hello(&v, &self.udp, bad_key).to_string()).await;
            }
            (Some("tts"), Some("start")) => self.new_answer(),
            _ => {}
        }
        self.publish(text.to_string()).await;
    }

    fn new_answer(&mut self) {
        let index = self.answers;
        self.answers += 1;
        let plan = &self.link.gw.sh.cfg.faults;
        let fault = plan.for_answer(self.device_key, index).cloned();
        self.shaper
            .set_answer(fault.as_ref(), plan.datagram_rng(self.device_key, index));
        self.answer = Some((index, fault, 0, false));
    }

    fn record(&self, index: u64, kind: FaultKind) {
        let c = &self.link.gw.sh.counters;
        c.faults.record(&self.link.device_id, index, kind);
    }

    async fn on_audio(&mut self, opus: &[u8]) {
        self.sequence = self.sequence.wrapping_add(1);
        let timestamp = self.started.elapsed().as_millis() as u32;
        let datagram = self.cipher.seal(&self.udp.nonce, timestamp, self.sequence, opus);
        let mut out = Vec::with_capacity(2);
        let shaped = self.shaper.push(Instant::now(), datagram, &mut out);
        self.send_all(&mut out).await;
        let c = self.link.gw.sh.counters.clone();
        let counter = match shaped {
            Shaped::Sent => None,
            Shaped::Dropped => Some(&c.udp_dropped),
            Shaped::Duplicated => Some(&c.udp_duplicated),
            Shaped::HeldBack => Some(&c.udp_reordered),
            Shaped::Delayed => Some(&c.udp_delayed),
        };
        let Some((index, fault, frames, struck)) = self.answer.as_mut() else {
            return;
        };
        *frames += 1;
        let Some(f) = fault.as_ref() else { return };
        let (kind, index) = (f.kind, u64::from(*index));
        let strike_disconnect = kind == FaultKind::MqttDisconnect && *frames >= f.after_frames;
        if let Some(counter) = counter {
            MockCounters::bump(counter);
        }
        if (counter.is_some() || strike_disconnect) && !*struck {
            *struck = true;
            self.record(index, kind);
            if strike_disconnect {
                let _ = self.link.out.send(Outbound::Drop).await;
            }
        }
    }

    async fn send_all(&self, out: &mut Vec<Vec<u8>>) {
        let ssrc = self.udp.ssrc();
        for datagram in out.drain(..) {
            let _ = self.link.gw.udp.send(UdpCommand::Send { ssrc, datagram }).await;
        }
    }
}
