//! Capacity answers: "how many people can talk at once on this server, and
//! what should I buy for N?"
//!
//! The pure parts (no async, no clocks, no I/O):
//! - [`slo`]: the objectives a stage must meet and how one stage is judged;
//! - [`search`]: which speaker counts to run and when the knee is found;
//! - [`sizing`]: per-speaker cost, saturation, the scaling curve and the
//!   buy/keep verdict.
//!
//! The async runners: [`run`] (one knee search, stage by stage, against a
//! watched server), [`allotments`] (`--cpus`: one search per CPU
//! allotment, the limit set before each) and [`probe`] (the first stage's
//! size from one speaker's turn time; its rule is pure). Both runners fill
//! the report's `capacity` section, whose types are in [`section`].

pub mod allotments;
pub mod probe;
pub mod run;
pub mod search;
pub mod section;
pub mod sizing;
pub mod slo;

pub use search::{Resolution, Search, SearchConfig, SearchResult, StageOutcome, Step, StopReason};
pub use sizing::{
    Allotment, AllotmentRun, MemoryBand, PerSpeaker, Saturation, Scaling, Sizing, SizingError, SizingInput,
    StageServer, Tier, Verdict, default_tiers, render_text, size,
};
pub use slo::{Percentiles, Slo, SloError, SloResult, StageMeasure};
