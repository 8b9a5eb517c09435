//! The capacity report as written to JSON: the run's facts
//! ([`CapacityRun`]), the search's section, the sizing verdict, the server
//! and the stand-ins ([`CapacityReport`]). Built by the parent module,
//! worded by `text`.

use crate::app::stand_ins::SweepPoint;
use crate::capacity::section::CapacitySection;
use crate::capacity::sizing::Sizing;
use crate::report::Tool;
use crate::watch::series::ServerReport;
use serde::Serialize;

/// The capacity report (JSON).
#[derive(Debug, Serialize)]
pub struct CapacityReport {
    pub schema_version: u32,
    pub tool: Tool,
    pub run: CapacityRun,
    pub capacity: CapacitySection,
    pub sizing: Option<Sizing>,
    pub server: Option<ServerReport>,
    /// The AI provider stand-ins (`--providers`) during the (first) search.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub providers: Option<crate::providers::ProvidersReport>,
    /// `--llm-delay`: one search per stand-in LLM first-token delay.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub llm_delay_sweep: Vec<SweepPoint<CapacitySection>>,
}

#[derive(Debug, Serialize)]
pub struct CapacityRun {
    pub target_url: String,
    pub mock: bool,
    pub started_at: String,
    pub duration_s: f64,
    pub fleet: String,
    pub seed: u64,
    pub stage_duration_s: f64,
    pub interrupted: bool,
}
