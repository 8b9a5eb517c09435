//! The built-in xiaozhi server: the server side of the protocol, behaving
//! like the real Python server where PROTOCOL.md describes it (hello, MCP
//! discovery, VAD end of utterance, `stt` → `tts start` → `llm` → paced
//! sentences → `tts stop` 420 ms after the last frame, abort, wake words,
//! idle timeout). Used in-process by `run` and tests, and standalone by
//! `xiaozhi-fleet mock-server`.
//!
//! `serve(listener, config, shutdown)` accepts connections, one task per
//! connection; [`MockCounters`] records what the server saw so tests can
//! compare both sides.

mod answer;
mod burn;
mod config;
mod pacing;
mod reply;
mod session;
mod vad;
mod voice_bank;

pub use burn::BurnThreads;
pub use config::{MockConfig, MockSettings};
pub use pacing::{DownlinkMode, DownlinkPacer, Outgoing, PACE, PRE_BUFFER_FRAMES};
pub use vad::{Vad, VadDecision};
pub use voice_bank::VoiceBank;

use reply::Stages;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What the mock saw. Plain atomic counters (no locks): sessions bump them.
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
}

/// A running mock server.
pub struct MockServer {
    pub addr: SocketAddr,
    pub counters: Arc<MockCounters>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl MockServer {
    /// Binds `addr` (use port 0 in tests) and starts serving.
    pub async fn start(addr: &str, cfg: MockConfig) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(MockCounters::default());
        let shutdown = CancellationToken::new();
        let bank = VoiceBank::shared().map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            stages: Arc::new(Stages::new(&cfg)),
            cfg: Arc::new(cfg),
            counters: counters.clone(),
            bank,
        });
        let task = tokio::spawn(serve(listener, shared, shutdown.clone()));
        Ok(MockServer {
            addr,
            counters,
            shutdown,
            task,
        })
    }

    /// The URL devices should use.
    pub fn url(&self) -> String {
        format!("ws://{}/xiaozhi/v1/", self.addr)
    }

    /// Stops accepting, closes sessions and waits for them.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// Accepts connections until `shutdown`, one task per connection.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    let _ = stream.set_nodelay(true);
                    sessions.spawn(session::run(stream, shared.clone(), shutdown.child_token()));
                }
            }
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    while sessions.join_next().await.is_some() {}
}
