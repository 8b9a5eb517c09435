//! What every session of one mock server shares: the settings, the
//! counters, the answer stages, the voice bank, the clip index and TLS.

use super::config::MockConfig;
use super::counters::MockCounters;
use super::hearing::ClipIndex;
use super::reply::Stages;
use super::voice_bank::VoiceBank;
use std::sync::Arc;
use std::time::Duration;

/// State shared by every session of one server.
pub(crate) struct Shared {
    pub cfg: Arc<MockConfig>,
    pub counters: Arc<MockCounters>,
    pub stages: Arc<Stages>,
    pub bank: Arc<VoiceBank>,
    pub hearing: Arc<ClipIndex>,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub handshake_timeout: Duration,
}
