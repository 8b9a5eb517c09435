//! The mock server's settings: the `[mock]` table of a fleet file (or
//! `mock-server --config FILE`), resolved into [`MockConfig`].

use crate::units::Span;
use serde::Deserialize;
use std::time::Duration;

/// `[mock]` as written. Unknown keys are errors.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockSettings {
    /// End of speech → `stt` (ASR time).
    pub asr_delay: Option<Span>,
    /// `stt` → first LLM token (`llm` message).
    pub llm_delay: Option<Span>,
    /// First LLM token → first sentence's audio ready.
    pub tts_delay: Option<Span>,
    /// Each later sentence's audio is ready this long after the previous one.
    pub sentence_delay: Option<Span>,
    /// Sentences per answer.
    pub sentences: Option<u32>,
    /// Trailing silence that ends an utterance (VAD window W).
    pub silence_window: Option<Span>,
    /// Utterances of this many packets or fewer get no answer (PY: 15).
    pub min_utterance_frames: Option<u32>,
    /// Concurrent ASR / LLM / TTS jobs; 0 = unbounded.
    pub asr_workers: Option<usize>,
    pub llm_workers: Option<usize>,
    pub tts_workers: Option<usize>,
    /// No voice and no TTS for this long → goodbye turn and close (PY: 120 s).
    pub idle_timeout: Option<Span>,
    /// Run MCP discovery after the hello, like PY.
    pub mcp: Option<bool>,
    /// Require `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// `listen detect` texts treated as wake words.
    pub wake_words: Option<Vec<String>>,
}

/// Resolved mock settings.
#[derive(Clone, Debug, PartialEq)]
pub struct MockConfig {
    pub asr_delay: Duration,
    pub llm_delay: Duration,
    pub tts_delay: Duration,
    pub sentence_delay: Duration,
    pub sentences: u32,
    pub silence_window: Duration,
    pub min_utterance_frames: u32,
    pub asr_workers: Option<usize>,
    pub llm_workers: Option<usize>,
    pub tts_workers: Option<usize>,
    pub idle_timeout: Duration,
    pub mcp: bool,
    pub token: Option<String>,
    pub wake_words: Vec<String>,
}

impl Default for MockConfig {
    fn default() -> Self {
        match MockSettings::default().resolve() {
            Ok(c) => c,
            Err((k, m)) => unreachable!("defaults are valid ({k}: {m})"),
        }
    }
}

impl MockSettings {
    /// Fills defaults and checks values; errors are `(key, message)`.
    ///
    /// Defaults follow PROTOCOL.md §13 (a real PY server with fast providers:
    /// `stt` ≈ 0.5 s and first audio ≈ 1.3 s after end of speech) and §9.2
    /// (shipped VAD: 200 ms of silence plus ~100 ms of smoothing-window lag;
    /// utterances of ≤ 15 packets are discarded).
    pub fn resolve(self) -> Result<MockConfig, (String, String)> {
        let d = |s: Option<Span>, ms: u64| s.map(|s| s.0).unwrap_or(Duration::from_millis(ms));
        let workers = |w: Option<usize>| w.filter(|&n| n > 0);
        let cfg = MockConfig {
            asr_delay: d(self.asr_delay, 200),
            llm_delay: d(self.llm_delay, 550),
            tts_delay: d(self.tts_delay, 250),
            sentence_delay: d(self.sentence_delay, 300),
            sentences: self.sentences.unwrap_or(2),
            silence_window: d(self.silence_window, 300),
            min_utterance_frames: self.min_utterance_frames.unwrap_or(15),
            asr_workers: workers(self.asr_workers),
            llm_workers: workers(self.llm_workers),
            tts_workers: workers(self.tts_workers),
            idle_timeout: d(self.idle_timeout, 120_000),
            mcp: self.mcp.unwrap_or(true),
            token: self.token.filter(|t| !t.is_empty()),
            wake_words: self.wake_words.unwrap_or_else(|| vec!["你好小智".to_string()]),
        };
        if cfg.sentences == 0 {
            return Err(("sentences".into(), "must be at least 1".into()));
        }
        if cfg.silence_window.is_zero() {
            return Err(("silence_window".into(), "must be longer than 0ms".into()));
        }
        if cfg.idle_timeout < Duration::from_secs(1) {
            return Err(("idle_timeout".into(), "must be at least 1s".into()));
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_real_servers_shipped_vad() {
        let c = MockConfig::default();
        assert_eq!(c.silence_window, Duration::from_millis(300));
        assert_eq!(c.min_utterance_frames, 15);
        assert_eq!(c.asr_workers, None);
    }

    #[test]
    fn zero_workers_means_unbounded_and_zero_sentences_is_rejected() {
        let s = MockSettings {
            llm_workers: Some(0),
            ..MockSettings::default()
        };
        assert_eq!(s.resolve().unwrap().llm_workers, None);
        let s = MockSettings {
            sentences: Some(0),
            ..MockSettings::default()
        };
        assert_eq!(s.resolve().unwrap_err().0, "sentences");
    }
}
