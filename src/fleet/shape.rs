//! The load shapes of a stage plan besides the steady closed loop: state the
//! driver keeps per stage, and the pure rules it follows.
//!
//! - `burst`: every speaker gets a one-turn conversation at the same instant;
//!   when all have ended, the next round starts after one think time drawn
//!   for the whole room.
//! - `poisson`: a warm-up of back-to-back one-turn conversations by the N
//!   speakers measures how long a turn takes (W); then one-turn
//!   conversations arrive as a Poisson process at N / W per second (Little's
//!   law: N busy on average), whatever the server's speed.

use super::arrivals::ArrivalClock;
use crate::config::Shape;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// Per-stage state of the shape.
#[derive(Debug)]
pub(crate) enum ShapeState {
    Steady,
    Burst(Burst),
    Poisson(Box<Poisson>),
}

impl ShapeState {
    pub(crate) fn new(shape: Shape) -> ShapeState {
        match shape {
            Shape::Steady => ShapeState::Steady,
            Shape::Burst => ShapeState::Burst(Burst::default()),
            Shape::Poisson => ShapeState::Poisson(Box::default()),
        }
    }

    /// When the shape next needs the driver (a round, an arrival).
    pub(crate) fn next_at(&self) -> Option<Instant> {
        match self {
            ShapeState::Steady => None,
            ShapeState::Burst(b) => b.round_at,
            ShapeState::Poisson(p) => p.arrivals.as_ref().map(|a| a.1),
        }
    }
}

/// `burst`: rounds of simultaneous turns.
#[derive(Debug, Default)]
pub(crate) struct Burst {
    /// When the next round starts.
    pub(crate) round_at: Option<Instant>,
    /// A round is in progress.
    pub(crate) in_round: bool,
    pub(crate) rounds: u64,
}

/// `poisson`: warm-up, then open arrivals.
#[derive(Debug, Default)]
pub(crate) struct Poisson {
    started: HashMap<u32, Instant>,
    warm: Vec<Duration>,
    arrivals: Option<(ArrivalClock, Instant)>,
    /// Arrivals per second, once measuring.
    pub(crate) rate: Option<f64>,
}

/// Arrivals per second that keep `speakers` busy when a turn takes `turns`
/// on average (Little's law); `None` without a measured turn.
pub fn rate_for(speakers: u32, turns: &[Duration]) -> Option<f64> {
    let total: f64 = turns.iter().map(Duration::as_secs_f64).sum();
    (total > 0.0).then(|| f64::from(speakers) * turns.len() as f64 / total)
}

impl Poisson {
    /// A warm-up conversation started on device `i`.
    pub(crate) fn started(&mut self, i: u32, now: Instant) {
        if self.rate.is_none() {
            self.started.insert(i, now);
        }
    }

    /// A conversation of device `i` ended; true while still warming up.
    pub(crate) fn ended(&mut self, i: u32, now: Instant) -> bool {
        if let Some(at) = self.started.remove(&i) {
            self.warm.push(now.duration_since(at));
        }
        self.rate.is_none()
    }

    /// Enough turns measured: one per speaker.
    pub(crate) fn ready(&self, speakers: u32) -> bool {
        self.warm.len() >= speakers.max(1) as usize
    }

    /// Starts the arrivals; returns the rate.
    pub(crate) fn begin(&mut self, speakers: u32, seed: u64, now: Instant) -> Option<f64> {
        let rate = rate_for(speakers, &self.warm)?;
        let mut clock = ArrivalClock::new(rate, seed);
        let first = now + clock.next_gap();
        self.arrivals = Some((clock, first));
        self.rate = Some(rate);
        self.started.clear();
        Some(rate)
    }

    /// Moves the arrival clock past the arrival due now.
    pub(crate) fn advance(&mut self) {
        if let Some((clock, at)) = self.arrivals.as_mut() {
            *at += clock.next_gap();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_keeps_n_speakers_busy() {
        let ms = Duration::from_millis;
        // Turns of 4 s on average: 10 speakers busy → 2.5 arrivals per second.
        assert_eq!(rate_for(10, &[ms(3000), ms(5000), ms(4000), ms(4000)]), Some(2.5));
        assert_eq!(rate_for(10, &[]), None);
        assert_eq!(rate_for(1, &[ms(2000)]), Some(0.5));
    }

    #[tokio::test(start_paused = true)]
    async fn warm_up_measures_turns_then_arrivals_begin() {
        let t0 = Instant::now();
        let mut p = Poisson::default();
        p.started(0, t0);
        p.started(1, t0);
        assert!(p.ended(0, t0 + Duration::from_secs(2)));
        assert!(!p.ready(2));
        assert!(p.ended(1, t0 + Duration::from_secs(4)));
        assert!(p.ready(2));
        assert_eq!(p.begin(2, 7, t0), Some(2.0 / 3.0));
        assert!(!p.ended(1, t0 + Duration::from_secs(9)), "measuring, not warming");
        let state = ShapeState::Poisson(Box::new(p));
        assert!(state.next_at().is_some_and(|at| at > t0));
    }
}
