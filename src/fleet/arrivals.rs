//! The open model's arrival clock: conversations arrive as a seeded Poisson
//! process (exponential gaps) at a fixed rate, whatever the server's speed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::Exp1;
use std::time::Duration;

/// Seeded exponential inter-arrival gaps.
#[derive(Clone, Debug)]
pub struct ArrivalClock {
    mean_secs: f64,
    rng: ChaCha8Rng,
}

impl ArrivalClock {
    /// Arrivals at `per_sec` on average, from `seed`.
    pub fn new(per_sec: f64, seed: u64) -> Self {
        ArrivalClock {
            mean_secs: 1.0 / per_sec,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0xA331_7A15),
        }
    }

    /// The gap to the next arrival.
    pub fn next_gap(&mut self) -> Duration {
        let e: f64 = self.rng.sample(Exp1);
        crate::units::secs_capped(self.mean_secs * e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_at_2_per_second_over_600_seconds_has_mean_half_second_and_cv_one() {
        let mut clock = ArrivalClock::new(2.0, 11);
        let mut t = 0.0;
        let mut gaps = Vec::new();
        while t < 600.0 {
            let g = clock.next_gap().as_secs_f64();
            t += g;
            gaps.push(g);
        }
        let n = gaps.len() as f64;
        let mean = gaps.iter().sum::<f64>() / n;
        let sd = (gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        let cv = sd / mean;
        assert!((mean - 0.5).abs() <= 0.025, "mean inter-arrival {mean}");
        assert!((cv - 1.0).abs() <= 0.1, "coefficient of variation {cv}");
    }

    #[test]
    fn same_seed_same_arrivals() {
        let a: Vec<Duration> = {
            let mut c = ArrivalClock::new(1.0, 3);
            (0..10).map(|_| c.next_gap()).collect()
        };
        let mut c = ArrivalClock::new(1.0, 3);
        assert!(a.iter().all(|g| *g == c.next_gap()));
    }
}
