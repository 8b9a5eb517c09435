//! Turn sinks: where the collector hands each finished [`TurnRecord`], in
//! the order it folds them, with the instant it did (time since the run
//! started, on the same clock as the per-second series). The streamed CSV
//! report and the per-second latency series are sinks.
//!
//! A sink runs inside the collector's task: it must be quick (a buffered
//! write and a flush per row is fine) and it keeps its own errors, to be
//! reported when the run is over; it never fails the run.

use super::event::TurnRecord;
use std::time::Duration;

/// Receives every finished turn.
pub trait TurnSink: Send {
    /// One turn, `at` seconds into the run.
    fn turn(&mut self, at: Duration, rec: &TurnRecord);
    /// The run is over (called once, after the last turn).
    fn finish(&mut self) {}
}
