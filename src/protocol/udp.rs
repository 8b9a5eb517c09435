//! The MQTT + UDP audio channel's datagrams (PROTOCOL.md §11.2, §11.3),
//! sans-IO: the `udp` block of the server hello checked as the firmware
//! checks it, the 16-byte clear header, AES-128-CTR with that header as
//! the initial counter block, and the receiver's sequence rule (drop
//! anything at or below the last accepted sequence) with counts of what
//! the network did: datagrams lost, reordered, duplicated, malformed.
//!
//! Used by both ends: the device's UDP link and the mock gateway.

use aes::Aes128;
use aes::cipher::{InnerIvInit, KeyInit, StreamCipher};
use serde_json::Value;
use std::ops::Sub;

/// The clear header in front of every datagram.
pub const HEADER_LEN: usize = 16;
/// `type` byte of an audio datagram.
pub const PACKET_TYPE: u8 = 0x01;

type Aes128Ctr = ctr::Ctr128BE<Aes128>;

/// The UDP channel a server hello hands the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpParams {
    pub server: String,
    pub port: u16,
    pub key: [u8; 16],
    pub nonce: [u8; 16],
}

impl UdpParams {
    /// Reads the hello's `udp` member the way the firmware does: string
    /// `server`, numeric `port` in 1–65535, hex `key` and `nonce` of
    /// exactly 16 bytes each (`encryption` is not read). The error says
    /// which member is wrong and how.
    pub fn from_hello(udp: Option<&Value>) -> Result<UdpParams, String> {
        let udp = udp.ok_or("server hello has no `udp` object")?;
        let server = udp
            .get("server")
            .and_then(Value::as_str)
            .ok_or("server hello `udp.server` is missing or not a string")?;
        let port = udp
            .get("port")
            .and_then(Value::as_f64)
            .ok_or("server hello `udp.port` is missing or not a number")?;
        if !(1.0..=65535.0).contains(&port) || port.fract() != 0.0 {
            return Err(format!("server hello `udp.port` {port} is not a port (1-65535)"));
        }
        Ok(UdpParams {
            server: server.to_owned(),
            port: port as u16,
            key: hex16(udp, "key")?,
            nonce: hex16(udp, "nonce")?,
        })
    }

    /// The `udp` member a gateway sends for these parameters.
    pub fn to_hello(&self) -> Value {
        serde_json::json!({
            "server": self.server,
            "port": self.port,
            "encryption": "aes-128-ctr",
            "key": hex::encode(self.key),
            "nonce": hex::encode(self.nonce),
        })
    }

    /// The connection id the gateway routes by (nonce bytes 4–7).
    pub fn ssrc(&self) -> u32 {
        u32::from_be_bytes([self.nonce[4], self.nonce[5], self.nonce[6], self.nonce[7]])
    }
}

fn hex16(udp: &Value, field: &str) -> Result<[u8; 16], String> {
    let text = udp
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("server hello `udp.{field}` is missing or not a string"))?;
    let bytes = hex::decode(text).map_err(|e| format!("server hello `udp.{field}` is not hex: {e}"))?;
    <[u8; 16]>::try_from(bytes.as_slice())
        .map_err(|_| format!("server hello `udp.{field}` is {} bytes, not 16", bytes.len()))
}

/// The clear header of a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpHeader {
    pub flags: u8,
    pub payload_len: u16,
    pub ssrc: u32,
    pub timestamp: u32,
    pub sequence: u32,
}

impl UdpHeader {
    /// The sender's header: the nonce with the length, timestamp and
    /// sequence written over it.
    pub fn for_packet(nonce: &[u8; 16], payload_len: u16, timestamp: u32, sequence: u32) -> [u8; HEADER_LEN] {
        let mut h = *nonce;
        h[2..4].copy_from_slice(&payload_len.to_be_bytes());
        h[8..12].copy_from_slice(&timestamp.to_be_bytes());
        h[12..16].copy_from_slice(&sequence.to_be_bytes());
        h
    }

    fn parse(h: &[u8; HEADER_LEN]) -> UdpHeader {
        let word = |at: usize| u32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
        UdpHeader {
            flags: h[1],
            payload_len: u16::from_be_bytes([h[2], h[3]]),
            ssrc: word(4),
            timestamp: word(8),
            sequence: word(12),
        }
    }
}

/// Why a datagram was dropped before its sequence number was looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than the header.
    Short(usize),
    /// `type` is not 1.
    Type(u8),
    /// Length is not 16 + `payload_len`.
    Length { said: u16, got: usize },
}

/// One direction's cipher: the key schedule made once, the counter block
/// taken from each datagram's header.
#[derive(Clone)]
pub struct UdpCipher {
    cipher: Aes128,
}

impl std::fmt::Debug for UdpCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UdpCipher(..)")
    }
}

impl UdpCipher {
    pub fn new(key: &[u8; 16]) -> UdpCipher {
        UdpCipher {
            cipher: Aes128::new(key.into()),
        }
    }

    /// A whole datagram: header then the encrypted payload.
    pub fn seal(&self, nonce: &[u8; 16], timestamp: u32, sequence: u32, payload: &[u8]) -> Vec<u8> {
        let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
        let header = UdpHeader::for_packet(nonce, len, timestamp, sequence);
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(&payload[..usize::from(len)]);
        self.apply(&header, &mut out[HEADER_LEN..]);
        out
    }

    /// Checks and decrypts a datagram (the receiver's rules of §11.3 that
    /// need no state; the sequence rule is [`SequenceWindow`]'s).
    pub fn open(&self, datagram: &[u8]) -> Result<(UdpHeader, Vec<u8>), Malformed> {
        let Some(head) = datagram.first_chunk::<HEADER_LEN>() else {
            return Err(Malformed::Short(datagram.len()));
        };
        if head[0] != PACKET_TYPE {
            return Err(Malformed::Type(head[0]));
        }
        let header = UdpHeader::parse(head);
        if datagram.len() != HEADER_LEN + usize::from(header.payload_len) {
            return Err(Malformed::Length {
                said: header.payload_len,
                got: datagram.len(),
            });
        }
        let mut payload = datagram[HEADER_LEN..].to_vec();
        self.apply(head, &mut payload);
        Ok((header, payload))
    }

    fn apply(&self, counter_block: &[u8; HEADER_LEN], data: &mut [u8]) {
        let core = ctr::CtrCore::inner_iv_init(self.cipher.clone(), counter_block.into());
        let mut ctr = Aes128Ctr::from_core(core);
        ctr.apply_keystream(data);
    }
}

/// What the network did to one direction's datagrams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DatagramCounts {
    /// Accepted (in order, first copy).
    pub received: u64,
    /// Sequence numbers skipped and never seen since.
    pub lost: u64,
    /// Arrived after a later one (dropped, as the firmware drops them).
    pub reordered: u64,
    /// A sequence number seen before (dropped).
    pub duplicated: u64,
    /// Too short, wrong type or wrong length (dropped).
    pub malformed: u64,
}

impl std::ops::AddAssign for DatagramCounts {
    fn add_assign(&mut self, more: DatagramCounts) {
        self.received += more.received;
        self.lost += more.lost;
        self.reordered += more.reordered;
        self.duplicated += more.duplicated;
        self.malformed += more.malformed;
    }
}

impl Sub for DatagramCounts {
    type Output = DatagramCounts;

    fn sub(self, earlier: DatagramCounts) -> DatagramCounts {
        DatagramCounts {
            received: self.received.saturating_sub(earlier.received),
            lost: self.lost.saturating_sub(earlier.lost),
            reordered: self.reordered.saturating_sub(earlier.reordered),
            duplicated: self.duplicated.saturating_sub(earlier.duplicated),
            malformed: self.malformed.saturating_sub(earlier.malformed),
        }
    }
}

/// What the receiver does with a datagram's sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Newer than anything before: play it.
    Accept,
    /// At or below the last accepted and not seen: late, dropped.
    Late,
    /// Seen before: dropped.
    Duplicate,
}

/// Sequence numbers seen by the ones newer than `last` can tell apart:
/// the last 64 are remembered, so a late datagram is told from a copy.
#[derive(Clone, Copy, Debug, Default)]
pub struct SequenceWindow {
    last: u32,
    /// Bit i set: `last - i` was seen.
    seen: u64,
    /// Losses counted by [`SequenceWindow::lost_unseen`] that the next
    /// gap will show again (not to be counted twice).
    owed: u64,
    pub counts: DatagramCounts,
}

impl SequenceWindow {
    /// Back to sequence 0, as a new hello does; counts are kept.
    pub fn reset(&mut self) {
        self.last = 0;
        self.seen = 0;
        self.owed = 0;
    }

    /// `n` datagrams lost that no sequence gap showed yet (the sender said
    /// how many it sent). Counted now; the window is left as it is, so the
    /// sender's next datagram is judged by its own number, and the gap it
    /// shows is not counted a second time.
    pub fn lost_unseen(&mut self, n: u32) {
        self.counts.lost += u64::from(n);
        self.owed += u64::from(n);
    }

    pub fn malformed(&mut self) {
        self.counts.malformed += 1;
    }

    pub fn arrive(&mut self, sequence: u32) -> Arrival {
        if sequence > self.last {
            let step = sequence - self.last;
            let gap = u64::from(step - 1);
            let known = gap.min(self.owed);
            self.owed -= known;
            self.counts.lost += gap - known;
            self.seen = if step >= 64 { 0 } else { self.seen << step };
            self.seen |= 1;
            self.last = sequence;
            self.counts.received += 1;
            return Arrival::Accept;
        }
        let back = self.last - sequence;
        if back < 64 {
            let bit = 1u64 << back;
            if self.seen & bit != 0 {
                self.counts.duplicated += 1;
                return Arrival::Duplicate;
            }
            self.seen |= bit;
            // It was counted lost when a later one skipped it.
            self.counts.lost = self.counts.lost.saturating_sub(1);
        }
        self.counts.reordered += 1;
        Arrival::Late
    }
}

#[cfg(test)]
#[path = "udp_tests.rs"]
mod tests;
