//! The built-in xiaozhi server: the server side of the protocol, behaving
//! like the real Python server where PROTOCOL.md describes it (hello, MCP
//! discovery, VAD end of utterance, `stt` → `tts start` → `llm` → paced
//! sentences → `tts stop` 420 ms after the last frame, abort, wake words
//! with the greeting hold and 2 s mute, idle timeout), plus seeded fault
//! injection (`[[mock.fault]]`). Used in-process by `run` and tests, and
//! standalone by `xiaozhi-fleet mock-server` (ws:// or wss://).
//!
//! Layout: `core` is each connection's sans-IO state machine; `shell` runs
//! it over a socket; `accept` is the listener (back-off, handshake timeout,
//! connection faults, TLS); `reply` the ASR/LLM/TTS worker pools; `hearing`
//! recognises the bundled clips; `fault` picks and logs faults; `pacing`,
//! `synthesis` (the TTS provider's pace), `vad` and `voice_bank` are pure pieces (no I/O, no clocks); `burn`
//! burns real CPU; `shared` is what every session of a server shares;
//! `ota` serves the OTA version check on a second (HTTP) listener, with
//! `activation` (codes, the admin API's bind calls) and `ota_fault`;
//! `gateway` is the MQTT + UDP side of the transport (`[mock] mqtt`), on
//! listeners of its own, bridged to the same session core; `signature`
//! the MQTT password rule both of them use.
//! [`MockCounters`] (`counters`) records what the server saw so tests can
//! compare both sides.

mod accept;
pub mod activation;
mod burn;
mod config;
pub mod core;
mod counters;
pub mod fault;
mod gateway;
pub mod hearing;
pub mod ota;
pub mod ota_fault;
mod pacing;
mod reply;
mod shared;
mod shell;
mod signature;
pub mod synthesis;
pub mod tls;
mod vad;
mod voice_bank;

pub use accept::MAX_MESSAGE_SIZE;
pub use burn::BurnThreads;
pub use config::{GatewayPorts, MockConfig, MockSettings};
pub use counters::MockCounters;
pub use fault::{FaultKind, FaultLog, FaultSettings, InjectedFault};
pub use gateway::GatewayAddrs;
pub use hearing::ClipIndex;
pub use ota::{OTA_PATH, OtaOffer};
pub use ota_fault::{OtaFault, OtaFaultKind};
pub use pacing::{DownlinkMode, DownlinkPacer, Outgoing, PACE, PRE_BUFFER_FRAMES};
pub use reply::{ReplyEvent, ReplyKind};
pub use vad::{Vad, VadDecision};
pub use voice_bank::VoiceBank;

use crate::audio::ClipSet;
use reply::Stages;
use shared::Shared;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A connection that has not finished the WebSocket handshake (TLS
/// included) this long after it was accepted is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How to run a mock server beyond its `[mock]` settings.
#[derive(Clone)]
pub struct MockOptions {
    /// The clips devices will say, for recognition (default: the bundled ones).
    pub clips: Option<Arc<ClipSet>>,
    /// Serve wss:// with this TLS configuration (see [`tls`]).
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    /// Close connections that have not upgraded within this long.
    pub handshake_timeout: Duration,
}

impl Default for MockOptions {
    fn default() -> Self {
        MockOptions {
            clips: None,
            tls: None,
            handshake_timeout: HANDSHAKE_TIMEOUT,
        }
    }
}

/// A running mock server.
pub struct MockServer {
    pub addr: SocketAddr,
    /// The OTA endpoint's HTTP listener (same IP, another port).
    pub ota_addr: SocketAddr,
    /// The MQTT + UDP gateway's addresses, when it runs (`[mock] mqtt`).
    pub gateway: Option<GatewayAddrs>,
    pub counters: Arc<MockCounters>,
    tls: bool,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    ota_task: tokio::task::JoinHandle<()>,
}

impl MockServer {
    /// Binds `addr` (use port 0 in tests) and starts serving ws://,
    /// recognising the bundled clips.
    pub async fn start(addr: &str, cfg: MockConfig) -> std::io::Result<MockServer> {
        Self::start_with(addr, cfg, MockOptions::default()).await
    }

    /// Binds `addr` and starts serving with `opts` (the run's clips, TLS,
    /// handshake timeout).
    pub async fn start_with(addr: &str, cfg: MockConfig, opts: MockOptions) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(MockCounters::default());
        let shutdown = CancellationToken::new();
        let bank = VoiceBank::shared().map_err(std::io::Error::other)?;
        let hearing = match &opts.clips {
            Some(set) => Arc::new(ClipIndex::build(set)),
            None => ClipIndex::embedded().map_err(std::io::Error::other)?,
        };
        let tls = opts.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        let ota_listener = TcpListener::bind((addr.ip(), 0)).await?;
        let ota_addr = ota_listener.local_addr()?;
        let ws_url = ws_url(opts.tls.is_some(), addr);
        let gateway = match cfg.gateway {
            Some(ports) => Some(gateway::bind(addr.ip(), ports.mqtt, ports.udp).await?),
            None => None,
        };
        let addrs = gateway.as_ref().map(|g| g.addrs);
        let setup = ota::OtaSetup {
            offer: cfg.ota,
            ws_url,
            token: cfg.token.clone(),
            activation: cfg.activation,
            manager_token: cfg.manager_token.clone(),
            fault: cfg.ota_fault,
            seed: cfg.seed,
            mqtt: ota::MqttOffer {
                endpoint: addrs.map_or_else(|| "127.0.0.1:1883".to_string(), |a| a.mqtt.to_string()),
                signature_key: cfg.mqtt_signature_key.clone(),
            },
        };
        let ota_task = ota::spawn(ota_listener, setup, counters.clone(), shutdown.clone());
        let shutdown_ws = shutdown.clone();
        let shared = Arc::new(Shared {
            stages: Arc::new(Stages::new(&cfg)),
            cfg: Arc::new(cfg),
            counters: counters.clone(),
            bank,
            hearing,
            tls,
            handshake_timeout: opts.handshake_timeout,
        });
        let gateway_task = gateway.map(|g| gateway::spawn(g, shared.clone(), shutdown.clone()));
        let task = tokio::spawn(async move {
            accept::serve(listener, shared, shutdown_ws).await;
            if let Some(g) = gateway_task {
                let _ = g.await;
            }
        });
        Ok(MockServer {
            addr,
            ota_addr,
            gateway: addrs,
            ota_task,
            counters,
            tls: opts.tls.is_some(),
            shutdown,
            task,
        })
    }

    /// The URL devices should use (wss:// when serving TLS).
    pub fn url(&self) -> String {
        ws_url(self.tls, self.addr)
    }

    /// The gateway's MQTT endpoint (`host:port`), when it runs.
    pub fn mqtt_endpoint(&self) -> Option<String> {
        self.gateway.map(|g| g.mqtt.to_string())
    }

    /// The OTA version-check URL (http://, PY's path).
    pub fn ota_url(&self) -> String {
        format!("http://{}{OTA_PATH}", self.ota_addr)
    }

    /// The admin-API base URL of the bind calls (`[mock] activation = true`).
    pub fn manager_api_url(&self) -> String {
        format!("http://{}/xiaozhi", self.ota_addr)
    }

    /// Stops accepting, closes sessions and waits for them.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
        // Not graceful: idle keep-alive connections of OTA clients would hold it.
        self.ota_task.abort();
        let _ = self.ota_task.await;
    }
}

/// The WebSocket URL of a mock listening on `addr`.
fn ws_url(tls: bool, addr: SocketAddr) -> String {
    let scheme = if tls { "wss" } else { "ws" };
    format!("{scheme}://{addr}/xiaozhi/v1/")
}
