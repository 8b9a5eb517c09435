//! One provider's admission gate and counters: a concurrency limit
//! (requests past it queue, as at a rate-limited API or a local model with
//! N workers), and the figures `/stats` and the run report show: requests,
//! how many had to wait and for how long, latency from arrival to the last
//! byte, and (LLM) to the first token.
//!
//! Times come from `tokio::time::Instant`, so they hold on a paused clock.

use crate::metrics::{LatencyHistogram, Percentiles};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// One provider's figures, as `/stats` and the report's `providers` section show them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProviderReport {
    /// Concurrency limit (`None` = unbounded).
    pub workers: Option<usize>,
    /// Requests received.
    pub requests: u64,
    /// Answered in full.
    pub completed: u64,
    /// Rejected (bad request) or abandoned by the client.
    pub failed: u64,
    /// Being served or waiting right now.
    pub in_flight: u64,
    /// Requests that found every worker busy and queued.
    pub waited: u64,
    /// Most requests queued at once.
    pub max_queued: u64,
    /// Time spent queued (every admitted request; 0 when a worker was free).
    pub wait_ms: Percentiles,
    /// Arrival → last byte sent (queue wait included).
    pub latency_ms: Percentiles,
    /// Arrival → first token (LLM streaming only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub first_token_ms: Option<Percentiles>,
    /// Kinds of answers: LLM `text`/`tool_call`, TTS `wav`/`pcm`, ASR `matched`/`fallback`.
    pub outcomes: BTreeMap<String, u64>,
}

#[derive(Default)]
struct Tally {
    requests: u64,
    completed: u64,
    failed: u64,
    in_flight: u64,
    queued: u64,
    waited: u64,
    max_queued: u64,
    wait: LatencyHistogram,
    latency: LatencyHistogram,
    first_token: LatencyHistogram,
    outcomes: BTreeMap<String, u64>,
}

/// A provider's limit and counters; cheap to share.
#[derive(Clone)]
pub struct Gate {
    workers: Option<usize>,
    sem: Option<Arc<Semaphore>>,
    tally: Arc<Mutex<Tally>>,
}

impl Gate {
    /// A gate with at most `workers` requests served at once (`None` = no limit).
    pub fn new(workers: Option<usize>) -> Gate {
        Gate {
            workers,
            sem: workers.map(|n| Arc::new(Semaphore::new(n))),
            tally: Arc::default(),
        }
    }

    fn tally(&self) -> MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts the request, waits for a worker, and returns the ticket that
    /// records how it ends.
    pub async fn admit(&self) -> Ticket {
        let arrived = Instant::now();
        let permit = match &self.sem {
            None => {
                let mut t = self.tally();
                t.requests += 1;
                t.in_flight += 1;
                None
            }
            Some(sem) => {
                let must_wait = {
                    let mut t = self.tally();
                    t.requests += 1;
                    t.in_flight += 1;
                    let busy = sem.available_permits() == 0;
                    if busy {
                        t.waited += 1;
                        t.queued += 1;
                        t.max_queued = t.max_queued.max(t.queued);
                    }
                    busy
                };
                let permit = sem.clone().acquire_owned().await.ok();
                if must_wait {
                    self.tally().queued -= 1;
                }
                permit
            }
        };
        self.tally().wait.record(arrived.elapsed());
        Ticket {
            gate: self.clone(),
            arrived,
            _permit: permit,
            done: false,
        }
    }

    /// Counts one request turned away before admission (bad input).
    pub fn reject(&self) {
        let mut t = self.tally();
        t.requests += 1;
        t.failed += 1;
    }

    /// Forgets every figure (between the searches of a sweep).
    pub fn reset(&self) {
        let mut t = self.tally();
        let (in_flight, queued) = (t.in_flight, t.queued);
        *t = Tally::default();
        t.in_flight = in_flight;
        t.queued = queued;
    }

    /// The figures so far.
    pub fn report(&self) -> ProviderReport {
        let t = self.tally();
        ProviderReport {
            workers: self.workers,
            requests: t.requests,
            completed: t.completed,
            failed: t.failed,
            in_flight: t.in_flight,
            waited: t.waited,
            max_queued: t.max_queued,
            wait_ms: t.wait.percentiles(),
            latency_ms: t.latency.percentiles(),
            first_token_ms: (t.first_token.count() > 0).then(|| t.first_token.percentiles()),
            outcomes: t.outcomes.clone(),
        }
    }
}

/// An admitted request holding its worker until it finishes or is dropped
/// (a dropped ticket is a request the client abandoned: counted as failed).
pub struct Ticket {
    gate: Gate,
    arrived: Instant,
    _permit: Option<OwnedSemaphorePermit>,
    done: bool,
}

impl Ticket {
    /// When the request arrived (before any queueing).
    pub fn arrived(&self) -> Instant {
        self.arrived
    }

    /// Records the first token's latency.
    pub fn first_token(&self) {
        self.gate.tally().first_token.record(self.arrived.elapsed());
    }

    /// Records a complete answer of this kind.
    pub fn complete(mut self, outcome: &str) {
        self.done = true;
        let mut t = self.gate.tally();
        t.completed += 1;
        t.in_flight -= 1;
        t.latency.record(self.arrived.elapsed());
        *t.outcomes.entry(outcome.to_string()).or_default() += 1;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.done {
            let mut t = self.gate.tally();
            t.failed += 1;
            t.in_flight = t.in_flight.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn third_request_past_a_limit_of_two_waits_for_a_worker() {
        let gate = Gate::new(Some(2));
        let t0 = Instant::now();
        let run = |g: Gate| async move {
            let ticket = g.admit().await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            ticket.complete("text");
            t0.elapsed()
        };
        let (a, b, c) = tokio::join!(run(gate.clone()), run(gate.clone()), run(gate.clone()));
        let mut ends = [a, b, c];
        ends.sort();
        assert_eq!(
            ends,
            [Duration::from_secs(1), Duration::from_secs(1), Duration::from_secs(2)]
        );
        let r = gate.report();
        assert_eq!(
            (r.requests, r.completed, r.waited, r.max_queued, r.in_flight),
            (3, 3, 1, 1, 0)
        );
        assert_eq!(
            (r.wait_ms.max, r.latency_ms.max, r.latency_ms.min),
            (1000.0, 2000.0, 1000.0)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn dropped_ticket_counts_as_failed_and_frees_its_worker() {
        let gate = Gate::new(Some(1));
        drop(gate.admit().await);
        let t = gate.admit().await;
        t.complete("wav");
        let r = gate.report();
        assert_eq!((r.requests, r.completed, r.failed, r.waited), (2, 1, 1, 0));
        assert_eq!(r.outcomes.get("wav"), Some(&1));
    }
}
