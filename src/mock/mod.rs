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
//! `vad`, `voice_bank`, `burn` are the pure pieces and the CPU burner.
//! [`MockCounters`] records what the server saw so tests can compare both
//! sides.

mod accept;
mod burn;
mod config;
pub mod core;
pub mod fault;
pub mod hearing;
mod pacing;
mod reply;
mod shell;
pub mod tls;
mod vad;
mod voice_bank;

pub use burn::BurnThreads;
pub use config::{MockConfig, MockSettings};
pub use fault::{FaultKind, FaultLog, FaultSettings, InjectedFault};
pub use hearing::ClipIndex;
pub use pacing::{DownlinkMode, DownlinkPacer, Outgoing, PACE, PRE_BUFFER_FRAMES};
pub use reply::{ReplyEvent, ReplyKind};
pub use vad::{Vad, VadDecision};
pub use voice_bank::VoiceBank;

use crate::audio::ClipSet;
use reply::Stages;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A connection that has not finished the WebSocket handshake (TLS
/// included) this long after it was accepted is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// WebSocket messages (and frames) over this size are refused with close
/// code 1009, like PY's library (PROTOCOL.md §9.1).
pub const MAX_MESSAGE_SIZE: usize = 1 << 20;

/// What the mock saw. Plain atomic counters that sessions bump (the fault
/// log keeps its bounded record list behind a lock; faults are rare).
#[derive(Debug, Default)]
pub struct MockCounters {
    /// Upgraded WebSocket connections.
    pub sessions: AtomicU64,
    /// Sessions currently open.
    pub active_sessions: AtomicI64,
    /// Client hellos answered.
    pub hellos: AtomicU64,
    /// `listen start` messages.
    pub listen_starts: AtomicU64,
    /// `listen stop` messages (push-to-talk release).
    pub listen_stops: AtomicU64,
    /// `listen detect` with a configured wake word (answered with a greeting).
    pub wake_words: AtomicU64,
    /// `listen detect` with other text (taken as the utterance).
    pub detect_texts: AtomicU64,
    /// Turns open now: from `listen start` (or speech) until `tts stop` was
    /// sent and the device could have drained its queue without starting
    /// another turn. A closed-loop speaker with no think time stays open.
    pub open_turns: AtomicI64,
    /// Utterances answered (`stt` sent for speech or detect text).
    pub turns: AtomicU64,
    /// Utterances too short to answer.
    pub too_short: AtomicU64,
    /// `tts stop` sent at the natural end of an answer.
    pub replies_completed: AtomicU64,
    /// Answers open now (`stt` sent, `tts stop` not yet).
    pub open_replies: AtomicI64,
    /// `abort` messages.
    pub aborts: AtomicU64,
    /// Binary frames received / TTS frames sent.
    pub frames_in: AtomicU64,
    pub frames_out: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Audio that arrived before the hello (dropped, as PY does).
    pub frames_before_hello: AtomicU64,
    /// MCP results received from devices.
    pub mcp_results: AtomicU64,
    /// Sessions closed by the idle timeout (goodbye turn or hard close).
    pub idle_closes: AtomicU64,
    /// Malformed client input (bad JSON shapes, bad framing).
    pub protocol_errors: AtomicU64,
    /// Uplink frames discarded by the wake-word mute (§13.1).
    pub muted_frames: AtomicU64,
    /// Utterances whose audio matched no bundled clip (answered with the
    /// fallback text).
    pub unrecognised: AtomicU64,
    /// Connections closed for not finishing the handshake in time.
    pub handshake_timeouts: AtomicU64,
    /// `accept()` errors (e.g. out of file descriptors); the loop backs off.
    pub accept_errors: AtomicU64,
    /// Connections closed (1009) for a message over [`MAX_MESSAGE_SIZE`].
    pub oversized: AtomicU64,
    /// Faults injected: a count per kind and the first 10,000 records.
    pub faults: FaultLog,
}

impl MockCounters {
    /// Reads a counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    pub(crate) fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

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
    pub counters: Arc<MockCounters>,
    tls: bool,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
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
        let shared = Arc::new(Shared {
            stages: Arc::new(Stages::new(&cfg)),
            cfg: Arc::new(cfg),
            counters: counters.clone(),
            bank,
            hearing,
            tls,
            handshake_timeout: opts.handshake_timeout,
        });
        let task = tokio::spawn(accept::serve(listener, shared, shutdown.clone()));
        Ok(MockServer {
            addr,
            counters,
            tls: opts.tls.is_some(),
            shutdown,
            task,
        })
    }

    /// The URL devices should use (wss:// when serving TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}/xiaozhi/v1/", self.addr)
    }

    /// Stops accepting, closes sessions and waits for them.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}
