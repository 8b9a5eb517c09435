//! What every device of a run shares: the server, the protocol version,
//! timeouts, the playback model and the run-wide switches. The fleet builds
//! it once; the core, the connector and the session only read it.

use super::transcript::TranscriptCheck;
use crate::audio::playback::PlaybackConfig;
use crate::config::Timeouts;
use crate::protocol::ProtocolVersion;
use bytes::Bytes;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// What every device of a run shares.
#[derive(Debug)]
pub struct DeviceSettings {
    pub url: String,
    pub protocol_version: ProtocolVersion,
    pub timeouts: Timeouts,
    pub silence: Bytes,
    /// The board's playback model.
    pub playback: PlaybackConfig,
    /// The fleet's seed: each device's network draws derive from it.
    pub seed: u64,
    /// Trace every turn (a `worst=N` rule is on).
    pub record_all: bool,
    /// Trace every turn of these devices.
    pub record_devices: Vec<String>,
    /// Check `stt` against the clips' transcripts (off: `None`).
    pub transcript_check: Option<TranscriptCheck>,
    /// TLS for `wss://` URLs.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Set by the load driver once every device has been started and has
    /// connected (or failed to): send lag measured before counts as the
    /// ramp's, so the self-check judges pacing after it.
    pub ramp_over: AtomicBool,
    /// Local addresses to connect from, device `i` from entry `i % len`
    /// (empty: the system picks), so big fleets do not run out of
    /// ephemeral ports on one address.
    pub source_addrs: Vec<IpAddr>,
    /// The OTA version check made before a device's first connection
    /// (`--ota`); its answer replaces `url`.
    pub ota: Option<super::ota::OtaClient>,
}
