//! Measurements: devices fold per-frame facts themselves and send one
//! [`Event`] per turn (never per frame) over a bounded channel to the
//! [`collector`], the single owner of every histogram and counter. The
//! collector publishes small [`Snapshot`]s for live progress and hands back
//! the final [`Metrics`] for the report. What a set of metrics holds and how
//! a turn adds to it is [`totals`]; where stutter came from, [`stutter`].

pub mod activation;
pub mod collector;
pub mod event;
pub mod lag;
pub mod sink;
pub mod stutter;
pub mod summary;
pub mod totals;

pub use activation::ActivationWaits;
pub use collector::{Collector, Metrics, PlaybackTotals, SeriesPoint, Snapshot, StageResult};
pub use event::{Event, Failure, FailureKind, Tally, TurnOutcome, TurnRecord};
pub use lag::LagHistogram;
pub use sink::TurnSink;
pub use summary::{LatencyHistogram, Percentiles, ratio};

/// Capacity of the device → collector event channel. A full channel is
/// counted as `dropped_events`, never waited on (a device must not stall
/// its pacing because the collector is busy).
pub const EVENT_CHANNEL_CAPACITY: usize = 16_384;

/// Latency metric names, in report order. Defined once, used by JSON,
/// console and SLO parsing.
pub const LATENCY_METRICS: [&str; 9] = [
    "ota",
    "connect",
    "hello",
    "stt",
    "llm",
    "tts_start",
    "first_audio",
    "first_play",
    "turn",
];
