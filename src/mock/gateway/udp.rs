//! The gateway's UDP socket (PROTOCOL.md §11.3): one task owns it and the
//! routing table. Uplink datagrams are routed by `ssrc` (header bytes
//! 4–7) to their conversation, decrypted, and handed to its core as
//! binary messages; the device's address is learned from its first
//! datagram. Downlink datagrams (sealed by the conversation) go to that
//! address, or are dropped and counted while it is unknown, as the real
//! gateway drops them. The table ([`Routes`]) is a plain struct.

use crate::mock::counters::MockCounters;
use crate::protocol::udp::{HEADER_LEN, UdpCipher};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Commands to the UDP task in flight.
pub const COMMANDS: usize = 1024;
/// Largest datagram read.
const MAX_DATAGRAM: usize = 2048;

/// What conversations ask of the UDP task.
#[derive(Debug)]
pub enum UdpCommand {
    /// Route `ssrc` to a conversation.
    Open {
        ssrc: u32,
        /// Boxed: the key schedule is ~700 bytes, every `Send` would carry it.
        cipher: Box<UdpCipher>,
        to_core: mpsc::Sender<Message>,
    },
    /// The conversation is over.
    Close { ssrc: u32 },
    /// Send a sealed datagram to the device of `ssrc`.
    Send { ssrc: u32, datagram: Vec<u8> },
}

/// One conversation's route.
#[derive(Debug)]
struct Route {
    cipher: UdpCipher,
    to_core: mpsc::Sender<Message>,
    peer: Option<SocketAddr>,
}

/// Where an uplink datagram goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Uplink {
    /// Decrypted payload for the conversation of this ssrc.
    Deliver(u32, Vec<u8>),
    /// Malformed, or no conversation has that ssrc.
    Unrouted,
}

/// The routing table: ssrc → conversation and the device's address.
#[derive(Debug, Default)]
pub struct Routes {
    routes: HashMap<u32, Route>,
}

impl Routes {
    pub fn open(&mut self, ssrc: u32, cipher: UdpCipher, to_core: mpsc::Sender<Message>) {
        let route = Route {
            cipher,
            to_core,
            peer: None,
        };
        self.routes.insert(ssrc, route);
    }

    pub fn close(&mut self, ssrc: u32) {
        self.routes.remove(&ssrc);
    }

    /// Routes and decrypts a datagram from `from`, learning the address.
    pub fn uplink(&mut self, from: SocketAddr, datagram: &[u8]) -> Uplink {
        let Some(ssrc) = datagram
            .get(4..8)
            .filter(|_| datagram.len() >= HEADER_LEN)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        else {
            return Uplink::Unrouted;
        };
        let Some(route) = self.routes.get_mut(&ssrc) else {
            return Uplink::Unrouted;
        };
        match route.cipher.open(datagram) {
            Ok((_, payload)) => {
                route.peer.get_or_insert(from);
                Uplink::Deliver(ssrc, payload)
            }
            Err(_) => Uplink::Unrouted,
        }
    }

    /// Where the device of `ssrc` listens, once it has sent a datagram.
    pub fn peer(&self, ssrc: u32) -> Option<SocketAddr> {
        self.routes.get(&ssrc).and_then(|r| r.peer)
    }

    fn to_core(&self, ssrc: u32) -> Option<&mpsc::Sender<Message>> {
        self.routes.get(&ssrc).map(|r| &r.to_core)
    }
}

/// Runs the UDP socket until `cancel`.
pub async fn serve(
    socket: UdpSocket,
    mut commands: mpsc::Receiver<UdpCommand>,
    counters: Arc<MockCounters>,
    cancel: CancellationToken,
) {
    let mut routes = Routes::default();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            r = socket.recv_from(&mut buf) => {
                // Errors (ICMP port unreachable surfacing on Linux) are
                // about one peer; the socket goes on.
                let Ok((n, from)) = r else { continue };
                match routes.uplink(from, &buf[..n]) {
                    Uplink::Deliver(ssrc, payload) => {
                        MockCounters::bump(&counters.datagrams_in);
                        // Full: the core is behind; UDP drops, like a network would.
                        if let Some(tx) = routes.to_core(ssrc)
                            && tx.try_send(Message::binary(payload)).is_err()
                        {
                            MockCounters::bump(&counters.datagrams_unrouted);
                        }
                    }
                    Uplink::Unrouted => MockCounters::bump(&counters.datagrams_unrouted),
                }
            }
            cmd = commands.recv() => match cmd {
                None => break,
                Some(UdpCommand::Open { ssrc, cipher, to_core }) => routes.open(ssrc, *cipher, to_core),
                Some(UdpCommand::Close { ssrc }) => routes.close(ssrc),
                Some(UdpCommand::Send { ssrc, datagram }) => match routes.peer(ssrc) {
                    Some(peer) => {
                        if socket.send_to(&datagram, peer).await.is_ok() {
                            MockCounters::bump(&counters.datagrams_out);
                        }
                    }
                    None => MockCounters::bump(&counters.downlink_before_address),
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::gateway::hello::nonce;

    #[test]
    fn datagrams_route_by_ssrc_and_teach_the_devices_address() {
        let key = [3u8; 16];
        let (tx, _rx) = mpsc::channel(1);
        let mut routes = Routes::default();
        routes.open(0x0102_0304, UdpCipher::new(&key), tx);
        let from: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let later: SocketAddr = "127.0.0.1:6000".parse().unwrap();
        assert_eq!(routes.peer(0x0102_0304), None);
        let d = UdpCipher::new(&key).seal(&nonce(0x0102_0304), 0, 1, b"opus");
        assert_eq!(routes.uplink(from, &d), Uplink::Deliver(0x0102_0304, b"opus".to_vec()));
        assert_eq!(routes.uplink(later, &d), Uplink::Deliver(0x0102_0304, b"opus".to_vec()));
        assert_eq!(routes.peer(0x0102_0304), Some(from), "learned from the first datagram");
        let other = UdpCipher::new(&key).seal(&nonce(9), 0, 1, b"opus");
        assert_eq!(routes.uplink(from, &other), Uplink::Unrouted);
        assert_eq!(routes.uplink(from, &d[..10]), Uplink::Unrouted);
        routes.close(0x0102_0304);
        assert_eq!(routes.uplink(from, &d), Uplink::Unrouted);
    }
}
