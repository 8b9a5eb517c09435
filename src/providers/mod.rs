//! Stand-ins for the AI providers a real xiaozhi server calls (LLM, TTS,
//! ASR), so an operator can load the server's own modules (VAD, Opus,
//! pipeline, tool calls) without paying for cloud AI, without hitting a
//! provider's rate limit first, and without the provider's latency
//! drowning what the container adds.
//!
//! One HTTP address serves them all ([`ProvidersServer`]):
//! `POST /v1/chat/completions` ([`llm`]), `POST /v1/audio/speech`
//! ([`tts`]), `POST /v1/audio/transcriptions` and the FunASR WebSocket on
//! `/` ([`asr`]), and `GET /stats` (the same [`ProvidersReport`] the run
//! report carries). Each provider has a seeded latency distribution, a
//! concurrency limit and counters ([`gate`]).

pub mod asr;
pub mod config;
pub mod gate;
mod http;
pub mod llm;
pub mod matcher;
mod report;
mod state;
pub mod tts;
pub mod voice;

pub use config::{ProvidersConfig, ProvidersSettings};
pub use gate::{Gate, ProviderReport};
pub use report::{ProvidersReport, ProvidersSettingsReport};

use crate::audio::clip::ClipSet;
use crate::dist::Dist;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use matcher::Matcher;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use state::State;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use voice::Tape;

/// Largest request body (a minute of 16 kHz WAV is ~2 MB; OpenAI allows 25 MB).
const BODY_LIMIT: usize = 25 * 1024 * 1024;
/// How long `stop` lets answers in progress finish.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// The stand-ins, serving on one address until stopped.
pub struct ProvidersServer {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl ProvidersServer {
    /// Binds `addr` (port 0 in tests) and starts serving.
    pub async fn start(addr: &str, cfg: ProvidersConfig) -> std::io::Result<ProvidersServer> {
        let clips = ClipSet::embedded().map_err(std::io::Error::other)?;
        let matcher = Matcher::new(&clips).map_err(std::io::Error::other)?;
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let seed = cfg.seed;
        let rng = |i: u64| Mutex::new(ChaCha8Rng::seed_from_u64(seed.wrapping_mul(31).wrapping_add(i)));
        let shutdown = CancellationToken::new();
        let state = Arc::new(State {
            llm: Gate::new(cfg.llm.workers),
            tts: Gate::new(cfg.tts.workers),
            asr: Gate::new(cfg.asr.workers),
            cfg: Mutex::new(Arc::new(cfg)),
            rngs: [rng(0), rng(1), rng(2)],
            tape16: Tape::new(&clips, 16_000),
            tape24: Tape::new(&clips, 24_000),
            matcher,
            base: format!("http://{addr}"),
            shutdown: shutdown.clone(),
        });
        let app = router(state.clone());
        // No Nagle: streamed tokens and short answers go out at once.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await;
        });
        Ok(ProvidersServer { addr, state, task })
    }

    /// `http://ADDR` (the OpenAI base URL is this plus `/v1`).
    pub fn url(&self) -> String {
        self.state.base.clone()
    }

    /// Every provider's figures so far.
    pub fn report(&self) -> ProvidersReport {
        self.state.report()
    }

    /// Forgets every figure (between the searches of a sweep).
    pub fn reset(&self) {
        self.state.llm.reset();
        self.state.tts.reset();
        self.state.asr.reset();
    }

    /// Changes the LLM's first-token delay for the requests that follow.
    pub fn set_llm_first_token(&self, first_token: Dist) {
        let mut cfg = self.state.cfg.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = (**cfg).clone();
        next.llm.first_token = first_token;
        *cfg = Arc::new(next);
    }

    /// Stops accepting; answers in progress get a short grace, then are cut.
    pub async fn stop(self) {
        self.state.shutdown.cancel();
        let mut task = self.task;
        if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
            task.abort();
        }
    }
}

fn router(state: Arc<State>) -> Router {
    let api = Router::new()
        .route("/chat/completions", post(llm::chat))
        .route("/audio/speech", post(tts::speech))
        .route("/audio/transcriptions", post(asr::transcriptions))
        .route("/models", get(models));
    Router::new()
        .route("/", get(asr::root))
        .route("/stats", get(stats))
        .nest("/v1", api.clone())
        .merge(api)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

async fn stats(AxState(state): AxState<Arc<State>>) -> Response {
    axum::Json(state.report()).into_response()
}

async fn models() -> Response {
    axum::Json(serde_json::json!({"object": "list", "data": [
        {"id": "stand-in", "object": "model", "created": 0, "owned_by": "xiaozhi-fleet"}
    ]}))
    .into_response()
}

async fn not_found(uri: axum::http::Uri) -> Response {
    http::error(
        StatusCode::NOT_FOUND,
        &format!(
            "no stand-in at {uri}: use /v1/chat/completions, /v1/audio/speech, /v1/audio/transcriptions, / (FunASR WebSocket) or /stats"
        ),
    )
}
