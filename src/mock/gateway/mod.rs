//! The mock's MQTT + UDP gateway (PROTOCOL.md §11): the other side of the
//! transport that devices reach through PY's OTA `mqtt` answer. An MQTT
//! listener (rumqttc's v3.1.1 codec, no broker: the gateway only talks to
//! devices) and a UDP socket, each on a port of its own on the mock's IP,
//! bridged to the same session core as WebSocket connections, so every
//! mock behaviour (pacing, VAD, answers, faults, counters) works over both.
//!
//! Started when `[mock] mqtt = true` or `ota = "mqtt"` (whose answer
//! points devices here). Layout: `mqtt` is one device's MQTT connection;
//! `conversation` one hello-to-goodbye conversation (core in the shell,
//! downlink pump beside it); `leg` the channels that look like a WebSocket
//! to the shell; `udp` the socket task and its routing table; `shaper` the
//! UDP downlink faults; `hello` the pure message rules; `hub` what they all share.
//!
//! Simplifications against the real gateway (xiaozhi-mqtt-gateway): the
//! inner leg is the core itself (binary protocol v1, raw Opus) rather than
//! a WebSocket to PY with v2 headers; MCP discovery is the core's, carried
//! over MQTT, instead of the gateway's own cache; uplink timestamps are not
//! rewritten (the core does not read them).

mod conversation;
mod hello;
mod hub;
mod leg;
mod mqtt;
mod shaper;
mod udp;

use super::shared::Shared;
use hub::Gateway;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Where the gateway listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatewayAddrs {
    /// MQTT (TCP): the OTA answer's `mqtt.endpoint`.
    pub mqtt: SocketAddr,
    /// UDP audio: the hello's `udp.server` / `udp.port`.
    pub udp: SocketAddr,
}

/// The gateway's sockets, bound before the OTA endpoint starts (its
/// answer names them).
pub(crate) struct Bound {
    pub addrs: GatewayAddrs,
    mqtt: TcpListener,
    udp: UdpSocket,
}

/// Binds the MQTT listener and the UDP socket on `ip` (port 0 = any).
pub(crate) async fn bind(ip: std::net::IpAddr, mqtt_port: u16, udp_port: u16) -> std::io::Result<Bound> {
    let mqtt = TcpListener::bind((ip, mqtt_port)).await?;
    let udp = UdpSocket::bind((ip, udp_port)).await?;
    let addrs = GatewayAddrs {
        mqtt: mqtt.local_addr()?,
        udp: udp.local_addr()?,
    };
    Ok(Bound { addrs, mqtt, udp })
}

/// Serves the gateway until `shutdown`.
pub(crate) fn spawn(bound: Bound, sh: Arc<Shared>, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    let (udp_tx, udp_rx) = mpsc::channel(udp::COMMANDS);
    let gw = Arc::new(Gateway {
        udp_addr: bound.addrs.udp,
        udp: udp_tx,
        sh: sh.clone(),
    });
    let udp_task = tokio::spawn(udp::serve(bound.udp, udp_rx, sh.counters.clone(), shutdown.clone()));
    tokio::spawn(async move {
        accept(bound.mqtt, gw, shutdown).await;
        let _ = udp_task.await;
    })
}

/// Accepts MQTT connections until `shutdown`, one task each.
async fn accept(listener: TcpListener, gw: Arc<Gateway>, shutdown: CancellationToken) {
    let mut clients = JoinSet::new();
    let mut index = 0u64;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    clients.spawn(mqtt::connection(stream, index, gw.clone(), shutdown.child_token()));
                    index += 1;
                }
                Err(e) => {
                    super::counters::MockCounters::bump(&gw.sh.counters.accept_errors);
                    tracing::warn!("mock gateway: accept failed ({e})");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            Some(_) = clients.join_next(), if !clients.is_empty() => {}
        }
    }
    while clients.join_next().await.is_some() {}
}
