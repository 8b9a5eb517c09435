//! What every stand-in handler shares: the settings in force, one seeded
//! RNG per provider, the gates with their counters, the voice tapes and the
//! clip matcher.

use super::config::ProvidersConfig;
use super::gate::Gate;
use super::matcher::Matcher;
use super::report::{ProvidersReport, ProvidersSettingsReport};
use super::voice::Tape;
use rand_chacha::ChaCha8Rng;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio_util::sync::CancellationToken;

/// State every handler shares.
pub(crate) struct State {
    pub(super) cfg: Mutex<Arc<ProvidersConfig>>,
    pub(super) rngs: [Mutex<ChaCha8Rng>; 3],
    pub llm: Gate,
    pub tts: Gate,
    pub asr: Gate,
    pub(super) tape16: Tape,
    pub(super) tape24: Tape,
    pub matcher: Matcher,
    /// `http://ADDR`.
    pub base: String,
    pub shutdown: CancellationToken,
}

impl State {
    /// The settings in force (a cheap snapshot).
    pub fn config(&self) -> Arc<ProvidersConfig> {
        self.cfg.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Provider `i`'s RNG (0 LLM, 1 TTS, 2 ASR): draws of one provider do
    /// not shift another's.
    pub fn rng(&self, i: usize) -> MutexGuard<'_, ChaCha8Rng> {
        self.rngs[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn tape(&self, rate: u32) -> &Tape {
        if rate == self.tape16.rate {
            &self.tape16
        } else {
            &self.tape24
        }
    }

    pub(super) fn report(&self) -> ProvidersReport {
        let c = self.config();
        ProvidersReport {
            url: self.base.clone(),
            settings: ProvidersSettingsReport {
                llm_first_token: c.llm.first_token.to_string(),
                llm_token_interval: c.llm.token_interval.to_string(),
                tts_delay: c.tts.delay.to_string(),
                asr_delay: c.asr.delay.to_string(),
            },
            llm: self.llm.report(),
            tts: self.tts.report(),
            asr: self.asr.report(),
        }
    }
}
