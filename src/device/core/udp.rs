//! The core's side of the MQTT + UDP transport (PROTOCOL.md §11.2, §11.3),
//! pure: which hello the device sends and accepts on each transport, and
//! the audio channel a valid `udp` hello opens: uplink Opus sealed with
//! sequence numbers 1, 2, 3, … (from 0 again at every hello), downlink
//! datagrams opened and put through the firmware's sequence rule, with
//! counts of what the network did. The shell only carries whole datagrams.

use crate::metrics::{Failure, FailureKind};
use crate::protocol::udp::{Arrival, DatagramCounts, SequenceWindow, UdpCipher, UdpParams};
use crate::protocol::{ClientHello, ServerHello};

/// How the device reaches the server: which hello it sends and expects,
/// and how its audio travels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Transport {
    /// JSON and audio frames on one WebSocket.
    #[default]
    WebSocket,
    /// JSON over MQTT, audio in encrypted UDP datagrams (hello version 3,
    /// `transport: "udp"`; raw Opus inside the datagrams).
    Udp,
}

impl Transport {
    /// The client hello: the firmware's, with version 3 and `udp` over MQTT.
    pub fn client_hello(self, version: u8) -> ClientHello {
        match self {
            Transport::WebSocket => ClientHello::firmware(version),
            Transport::Udp => ClientHello {
                transport: "udp".into(),
                ..ClientHello::firmware(3)
            },
        }
    }
}

/// The UDP audio channel a server hello opened.
#[derive(Debug)]
pub(crate) struct UdpChannel {
    cipher: UdpCipher,
    nonce: [u8; 16],
    /// The last uplink sequence number sent.
    sent: u32,
    window: SequenceWindow,
}

/// What became of a downlink datagram.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Opened {
    /// In order: the Opus packet to play.
    Play(Vec<u8>),
    /// Dropped (malformed, late or a copy) and counted.
    Dropped,
}

impl UdpChannel {
    /// Checks a server hello on the UDP transport as the firmware does:
    /// `transport` must be `udp` and the `udp` member well formed (the
    /// raw `udp` value is read from the hello's text).
    pub fn from_hello(hello: &ServerHello, text: &str) -> Result<UdpChannel, Failure> {
        match hello.transport.as_deref() {
            Some("udp") => {}
            None => return Err(Failure::new(FailureKind::Protocol, "server hello has no transport")),
            Some(t) => {
                // The start only: a hostile hello cannot flood the report.
                let t: String = t.chars().take(40).collect();
                return Err(Failure::new(
                    FailureKind::Protocol,
                    format!("server hello has transport \"{t}\", not \"udp\""),
                ));
            }
        }
        let value: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
        let params = UdpParams::from_hello(value.get("udp")).map_err(|why| Failure::new(FailureKind::Protocol, why))?;
        Ok(UdpChannel::new(&params))
    }

    pub fn new(params: &UdpParams) -> UdpChannel {
        UdpChannel {
            cipher: UdpCipher::new(&params.key),
            nonce: params.nonce,
            sent: 0,
            window: SequenceWindow::default(),
        }
    }

    /// The next uplink datagram carrying `opus`.
    pub fn seal(&mut self, opus: &[u8]) -> Vec<u8> {
        self.sent = self.sent.wrapping_add(1);
        self.cipher.seal(&self.nonce, 0, self.sent, opus)
    }

    /// A downlink datagram through the checks and the sequence rule.
    pub fn open(&mut self, datagram: &[u8]) -> Opened {
        let Ok((header, payload)) = self.cipher.open(datagram) else {
            self.window.malformed();
            return Opened::Dropped;
        };
        match self.window.arrive(header.sequence) {
            Arrival::Accept => Opened::Play(payload),
            Arrival::Late | Arrival::Duplicate => Opened::Dropped,
        }
    }

    /// `n` datagrams the server announced never came, and no later one
    /// showed the gap (lost at the end of an answer).
    pub fn missing_at_end(&mut self, n: u32) {
        self.window.lost_unseen(n);
    }

    /// Everything counted on this channel so far.
    pub fn counts(&self) -> DatagramCounts {
        self.window.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ServerMessage;

    const KEY: [u8; 16] = [7; 16];
    const NONCE: [u8; 16] = [1, 0, 0, 0, 0xa1, 0xb2, 0xc3, 0xd4, 0, 0, 0, 0, 0, 0, 0, 0];

    fn params() -> UdpParams {
        UdpParams {
            server: "127.0.0.1".into(),
            port: 9,
            key: KEY,
            nonce: NONCE,
        }
    }

    fn hello_text(udp: serde_json::Value) -> String {
        serde_json::json!({"type": "hello", "version": 3, "transport": "udp", "session_id": "s", "udp": udp})
            .to_string()
    }

    fn check(text: &str) -> Result<UdpChannel, Failure> {
        let ServerMessage::Hello(h) = ServerMessage::parse(text).unwrap() else {
            panic!("not a hello")
        };
        UdpChannel::from_hello(&h, text)
    }

    #[test]
    fn client_hello_over_mqtt_is_version_3_with_udp_transport() {
        let h: serde_json::Value = serde_json::to_value(Transport::Udp.client_hello(1)).unwrap();
        assert_eq!(h["version"], 3);
        assert_eq!(h["transport"], "udp");
        assert_eq!(h["audio_params"]["frame_duration"], 60);
        let ws: serde_json::Value = serde_json::to_value(Transport::WebSocket.client_hello(2)).unwrap();
        assert_eq!(
            (ws["version"].as_u64(), ws["transport"].as_str()),
            (Some(2), Some("websocket"))
        );
    }

    #[test]
    fn a_valid_udp_hello_opens_the_channel() {
        assert!(check(&hello_text(params().to_hello())).is_ok());
    }

    #[test]
    fn a_bad_udp_block_is_a_protocol_failure_with_the_firmware_reason() {
        let mut udp = params().to_hello();
        udp["key"] = "0011".into();
        let f = check(&hello_text(udp)).unwrap_err();
        assert_eq!(f.kind, FailureKind::Protocol);
        assert_eq!(f.detail, "server hello `udp.key` is 2 bytes, not 16");
        let f = check(r#"{"type":"hello","transport":"udp"}"#).unwrap_err();
        assert_eq!(f.detail, "server hello has no `udp` object");
        let f = check(r#"{"type":"hello","transport":"websocket"}"#).unwrap_err();
        assert_eq!(f.detail, "server hello has transport \"websocket\", not \"udp\"");
    }

    #[test]
    fn uplink_sequence_counts_from_one_per_channel() {
        let mut ch = UdpChannel::new(&params());
        let peer = UdpCipher::new(&KEY);
        for want in 1..=3u32 {
            let d = ch.seal(b"opus");
            let (h, payload) = peer.open(&d).unwrap();
            assert_eq!(
                (h.sequence, h.ssrc, payload.as_slice()),
                (want, 0xa1b2_c3d4, &b"opus"[..])
            );
        }
        let mut again = UdpChannel::new(&params());
        assert_eq!(peer.open(&again.seal(b"x")).unwrap().0.sequence, 1);
    }

    #[test]
    fn downlink_drops_and_counts_malformed_late_and_duplicate_datagrams() {
        let mut ch = UdpChannel::new(&params());
        let server = UdpCipher::new(&KEY);
        let d = |seq: u32| server.seal(&NONCE, 0, seq, b"tts");
        assert_eq!(ch.open(&d(1)), Opened::Play(b"tts".to_vec()));
        assert_eq!(ch.open(&d(3)), Opened::Play(b"tts".to_vec()));
        assert_eq!(ch.open(&d(3)), Opened::Dropped);
        assert_eq!(ch.open(&d(2)), Opened::Dropped);
        assert_eq!(ch.open(&d(6)), Opened::Play(b"tts".to_vec()));
        assert_eq!(ch.open(&[1, 2, 3]), Opened::Dropped);
        let c = ch.counts();
        assert_eq!(
            (c.received, c.lost, c.reordered, c.duplicated, c.malformed),
            (3, 2, 1, 1, 1)
        );
    }
}
