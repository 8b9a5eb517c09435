//! The mock's answer pipeline: ASR, LLM and TTS stages with configurable
//! delays, each behind an optional bounded worker pool, so latency rises
//! with load the way a CPU-bound container's does. Runs as a task per turn
//! and reports each stage to the session over a channel; the session owns
//! the socket and the pacing. The session's core orders a job
//! ([`ReplyOrder`]); its shell runs it here.

use super::burn::burn_cpu;
use super::config::MockConfig;
use super::voice_bank::VoiceBank;
use bytes::Bytes;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// What starts an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyKind {
    /// Speech ended (VAD or `listen stop`): ASR time, then `stt` with this
    /// text (the session recognised the clip), then LLM, then TTS.
    Speech(String),
    /// `listen detect` with non-wake-word text: taken as the utterance (no ASR).
    Text(String),
    /// `listen detect` with a wake word: a short greeting.
    Greeting(String),
    /// The idle timeout's farewell: no `stt`.
    Goodbye,
}

/// A stage finished.
#[derive(Clone, Debug)]
pub enum ReplyEvent {
    /// ASR done: the session sends `stt` then `tts start` (PY order).
    Stt(String),
    /// First LLM token: `llm` (emotion).
    Llm,
    /// One sentence's audio is ready.
    Sentence { text: String, frames: Arc<[Bytes]> },
    /// No more sentences.
    Done,
}

/// The three worker pools, shared by all sessions of one server.
#[derive(Debug, Default)]
pub struct Stages {
    asr: Option<Arc<Semaphore>>,
    llm: Option<Arc<Semaphore>>,
    tts: Option<Arc<Semaphore>>,
}

impl Stages {
    pub fn new(cfg: &MockConfig) -> Self {
        let pool = |n: Option<usize>| n.map(|n| Arc::new(Semaphore::new(n)));
        Stages {
            asr: pool(cfg.asr_workers),
            llm: pool(cfg.llm_workers),
            tts: pool(cfg.tts_workers),
        }
    }
}

/// Holds a worker for `delay` (or just waits when the pool is unbounded),
/// burning the configured CPU first.
async fn work(pool: &Option<Arc<Semaphore>>, delay: Duration, cfg: &MockConfig) {
    let _permit = match pool {
        Some(p) => p.clone().acquire_owned().await.ok(),
        None => None,
    };
    burn_cpu(cfg.cpu_burn, cfg.cpu_burn_threads).await;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

/// Everything one answer needs.
pub struct ReplyJob {
    pub kind: ReplyKind,
    /// Turn id echoed on every event so stale events can be told apart.
    pub id: u64,
    /// Index into the voice bank for the first sentence.
    pub voice_index: usize,
    pub cfg: Arc<MockConfig>,
    pub stages: Arc<Stages>,
    pub bank: Arc<VoiceBank>,
    pub tx: mpsc::Sender<(u64, ReplyEvent)>,
    pub cancel: CancellationToken,
    /// Draws the per-sentence TTS delays.
    pub rng: ChaCha8Rng,
}

/// Runs the pipeline until done or cancelled (abort, barge-in, close).
pub async fn run_reply(mut job: ReplyJob) {
    let cancel = job.cancel.clone();
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = pipeline(&mut job) => {}
    }
}

async fn pipeline(job: &mut ReplyJob) {
    let tx = job.tx.clone();
    let id = job.id;
    let send = |ev: ReplyEvent| {
        let tx = tx.clone();
        async move { tx.send((id, ev)).await }
    };
    let cfg = job.cfg.clone();
    let sentences = match &job.kind {
        ReplyKind::Speech(text) => {
            work(&job.stages.asr, cfg.asr_delay, &cfg).await;
            if send(ReplyEvent::Stt(text.clone())).await.is_err() {
                return;
            }
            cfg.sentences
        }
        ReplyKind::Text(t) | ReplyKind::Greeting(t) => {
            if send(ReplyEvent::Stt(t.clone())).await.is_err() {
                return;
            }
            if matches!(job.kind, ReplyKind::Greeting(_)) {
                1
            } else {
                cfg.sentences
            }
        }
        ReplyKind::Goodbye => 1,
    };
    work(&job.stages.llm, cfg.llm_delay, &cfg).await;
    if send(ReplyEvent::Llm).await.is_err() {
        return;
    }
    for k in 0..sentences as usize {
        let delay = if k == 0 {
            cfg.tts_delay
        } else {
            cfg.sentence_delay.sample(&mut job.rng)
        };
        work(&job.stages.tts, delay, &cfg).await;
        let (text, frames) = job.bank.sentence(job.voice_index + k);
        if send(ReplyEvent::Sentence { text, frames }).await.is_err() {
            return;
        }
    }
    let _ = send(ReplyEvent::Done).await;
}
