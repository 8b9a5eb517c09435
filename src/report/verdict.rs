//! The report's `slo` section as data: the verdict and its checks. How
//! they are reached lives in [`super::slo`].

use serde::{Deserialize, Serialize};

/// The report's `slo` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SloVerdict {
    /// Every check passed.
    pub passed: bool,
    pub checks: Vec<SloCheck>,
}

/// One rule checked against the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SloCheck {
    /// The rule as written back, e.g. `first_audio.p95<=1500ms`.
    pub rule: String,
    /// In operators' words, e.g. `p95 first audio ≤ 1.5 s`.
    pub description: String,
    /// `ms` for latencies, `ratio` for ratios.
    pub unit: String,
    pub limit: f64,
    /// The run's value; absent when nothing was measured (then it fails).
    pub observed: Option<f64>,
    pub passed: bool,
}
