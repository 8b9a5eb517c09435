//! The stand-ins' figures as `GET /stats` and the run report show them.

use super::gate::ProviderReport;
use serde::{Deserialize, Serialize};

/// Every provider's figures: `GET /stats` and the run report's `providers` section.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProvidersReport {
    /// Base URL of the stand-ins (`http://ADDR`).
    pub url: String,
    /// The latency settings in force (`Dist` syntax).
    pub settings: ProvidersSettingsReport,
    pub llm: ProviderReport,
    pub tts: ProviderReport,
    pub asr: ProviderReport,
}

/// The latencies in force, as written in a fleet file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProvidersSettingsReport {
    pub llm_first_token: String,
    pub llm_token_interval: String,
    pub tts_delay: String,
    pub asr_delay: String,
}

impl ProvidersReport {
    /// Requests that reached any stand-in.
    pub fn requests(&self) -> u64 {
        self.llm.requests + self.tts.requests + self.asr.requests
    }
}
