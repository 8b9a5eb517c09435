//! What every connection and conversation of the gateway shares: the
//! mock's [`Shared`] state, the UDP socket's address and command channel,
//! and the messages a conversation sends its MQTT connection task.

use super::udp::UdpCommand;
use crate::mock::shared::Shared;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Publishes in flight from one connection's conversations to its socket.
pub const OUTBOUND: usize = 64;

/// What every connection of the gateway shares.
pub(crate) struct Gateway {
    pub sh: Arc<Shared>,
    /// The UDP socket's address, named in every hello.
    pub udp_addr: SocketAddr,
    /// Commands to the UDP task.
    pub udp: mpsc::Sender<UdpCommand>,
}

/// What a conversation sends its MQTT connection task.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// Publish this JSON on the device's p2p topic.
    Publish(String),
    /// Drop the connection at once (`mqtt_disconnect`).
    Drop,
    /// The conversation with this session id is over.
    Ended(String),
}

/// Sleeps until `t`, or forever without one.
pub async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
