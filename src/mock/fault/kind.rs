//! [`FaultKind`]: every fault the mock can inject, its fleet-file name,
//! and the family it belongs to (which decides when it is picked and
//! which keys it takes).

use serde::{Deserialize, Serialize};

/// Every fault the mock can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Accept, then reset the TCP connection before any HTTP (MQTT: before CONNACK).
    Refuse,
    /// Answer the upgrade with an HTTP error status (MQTT: a refused CONNACK).
    RejectUpgrade,
    /// Never answer the upgrade (MQTT: the CONNECT); close after `delay`.
    SlowHandshake,
    /// Upgrade, never answer the hello.
    NoHello,
    /// Send the hello, then close (1000) at once (MQTT: `goodbye` right after the hello).
    CloseAfterHello,
    /// The VAD never ends the utterance.
    NoStt,
    /// `stt`, then nothing for that utterance.
    NoTtsStart,
    /// Audio stops mid-sentence; no `tts stop`.
    StallAudio,
    /// Close (1000) in the middle of the answer's audio.
    CloseMidTts,
    /// `tts stop` after only part of the announced audio.
    EarlyTtsStop,
    /// One binary frame that is not a valid Opus packet.
    BadBinary,
    /// One text frame that starts like JSON but does not parse.
    BadJson,
    /// `stt` carries another clip's transcript.
    CrossTalk,
    /// The session stops reading and writing for the rest of the connection.
    StallSocket,
    /// The answer's `stt` and `tts start` come again ~100 ms after the next `listen start`.
    LateStt,
    /// Gateway: each downlink datagram of the answer is dropped with `per_datagram`.
    UdpLoss,
    /// Gateway: a downlink datagram is held back and sent after the next one.
    UdpReorder,
    /// Gateway: a downlink datagram is sent twice.
    UdpDuplicate,
    /// Gateway: a downlink datagram is sent `delay` late (after later ones).
    UdpLate,
    /// Gateway: the device's MQTT connection is dropped mid-answer.
    MqttDisconnect,
    /// Gateway: the hello's `udp.key` is 15 bytes instead of 16.
    BadUdpKey,
}

impl FaultKind {
    pub const ALL: [FaultKind; 21] = [
        FaultKind::Refuse,
        FaultKind::RejectUpgrade,
        FaultKind::SlowHandshake,
        FaultKind::NoHello,
        FaultKind::CloseAfterHello,
        FaultKind::NoStt,
        FaultKind::NoTtsStart,
        FaultKind::StallAudio,
        FaultKind::CloseMidTts,
        FaultKind::EarlyTtsStop,
        FaultKind::BadBinary,
        FaultKind::BadJson,
        FaultKind::CrossTalk,
        FaultKind::StallSocket,
        FaultKind::LateStt,
        FaultKind::UdpLoss,
        FaultKind::UdpReorder,
        FaultKind::UdpDuplicate,
        FaultKind::UdpLate,
        FaultKind::MqttDisconnect,
        FaultKind::BadUdpKey,
    ];

    /// The name used in fleet files.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Refuse => "refuse",
            FaultKind::RejectUpgrade => "reject_upgrade",
            FaultKind::SlowHandshake => "slow_handshake",
            FaultKind::NoHello => "no_hello",
            FaultKind::CloseAfterHello => "close_after_hello",
            FaultKind::NoStt => "no_stt",
            FaultKind::NoTtsStart => "no_tts_start",
            FaultKind::StallAudio => "stall_audio",
            FaultKind::CloseMidTts => "close_mid_tts",
            FaultKind::EarlyTtsStop => "early_tts_stop",
            FaultKind::BadBinary => "bad_binary",
            FaultKind::BadJson => "bad_json",
            FaultKind::CrossTalk => "cross_talk",
            FaultKind::StallSocket => "stall_socket",
            FaultKind::LateStt => "late_stt",
            FaultKind::UdpLoss => "udp_loss",
            FaultKind::UdpReorder => "udp_reorder",
            FaultKind::UdpDuplicate => "udp_duplicate",
            FaultKind::UdpLate => "udp_late",
            FaultKind::MqttDisconnect => "mqtt_disconnect",
            FaultKind::BadUdpKey => "bad_udp_key",
        }
    }

    pub(crate) fn index(self) -> usize {
        FaultKind::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }

    /// Picked per connection (else per utterance or per answer).
    pub fn per_connection(self) -> bool {
        matches!(
            self,
            FaultKind::Refuse
                | FaultKind::RejectUpgrade
                | FaultKind::SlowHandshake
                | FaultKind::NoHello
                | FaultKind::CloseAfterHello
                | FaultKind::BadUdpKey
        )
    }

    /// Strikes partway through the answer's audio (takes `after_frames`).
    pub fn mid_answer(self) -> bool {
        matches!(
            self,
            FaultKind::StallAudio
                | FaultKind::CloseMidTts
                | FaultKind::EarlyTtsStop
                | FaultKind::BadBinary
                | FaultKind::BadJson
                | FaultKind::MqttDisconnect
        )
    }

    /// Acts on single downlink datagrams (takes `per_datagram`).
    pub fn per_datagram(self) -> bool {
        matches!(
            self,
            FaultKind::UdpLoss | FaultKind::UdpReorder | FaultKind::UdpDuplicate | FaultKind::UdpLate
        )
    }

    /// Only the MQTT + UDP gateway can inject it.
    pub fn gateway_only(self) -> bool {
        self.per_datagram() || matches!(self, FaultKind::MqttDisconnect | FaultKind::BadUdpKey)
    }

    /// A turn fault the gateway picks per answer (not the session core
    /// per utterance): the UDP downlink faults and `mqtt_disconnect`.
    pub fn per_answer(self) -> bool {
        self.gateway_only() && !self.per_connection()
    }
}
