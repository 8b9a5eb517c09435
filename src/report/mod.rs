//! The run report: one [`Report`] value built from the collector's metrics,
//! written in the format its file extension names ([`format`]): JSON (the
//! contract other tools read, `schema/report.v1.json`), the CSV streamed
//! during the run ([`csv`]), HTML with charts ([`html`]), or the console
//! summary. The value and its sections live in `model`, the SLO verdict's
//! data in `verdict`. Beside it: SLO gates ([`slo`]), lossless histograms
//! and exact merges ([`exact`], [`merge`]), and the live outputs fed during
//! the run ([`outputs`]: [`prometheus`], [`dashboard`]).

pub mod chart;
pub mod csv;
pub mod dashboard;
pub mod exact;
pub mod feed;
pub mod format;
pub mod html;
pub mod live;
pub mod merge;
mod model;
pub mod outputs;
pub mod prometheus;
mod prometheus_stages;
pub mod slo;
pub mod stand_ins;
pub mod stutter;
mod text;
pub mod timeline;
mod verdict;
pub mod view;

pub use model::{
    ActivationSection, Audio, Connections, PlaybackSection, Report, RunContext, RunInfo, SCHEMA_VERSION, StageReport,
    Tool, Turns, latency_of, playback_of, turns_of,
};
pub use text::{render_status, render_summary};

use std::path::Path;

impl Report {
    /// Writes the report in the format its extension names (see [`format`]).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        format::write_run(self, path)
    }
}
