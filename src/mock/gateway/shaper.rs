//! The UDP downlink faults of one conversation, sans-IO: given the sealed
//! datagrams of an answer in order and `now`, which go out now, which are
//! dropped, sent twice, held back behind the next one, or sent late.
//! Draws come from the answer's seeded generator, so a run repeats.

use crate::mock::fault::{Fault, FaultKind};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// A datagram held back by `udp_reorder` goes out after the next one, or
/// this long after it was due if no next one comes.
pub const REORDER_HOLD: Duration = Duration::from_millis(120);

/// What happened to one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shaped {
    Sent,
    Dropped,
    Duplicated,
    HeldBack,
    Delayed,
}

/// The downlink faults of the answer in progress.
#[derive(Debug, Default)]
pub struct Shaper {
    /// The answer's per-datagram fault and its generator.
    fault: Option<(FaultKind, f64, Duration, ChaCha8Rng)>,
    /// Datagrams due later, in due order.
    later: VecDeque<(Instant, Vec<u8>)>,
    /// A datagram held back until the next one is sent.
    held: Option<Vec<u8>>,
}

impl Shaper {
    /// A new answer: its fault (a per-datagram kind, or none) and draws.
    pub fn set_answer(&mut self, fault: Option<&Fault>, rng: ChaCha8Rng) {
        self.fault = fault
            .filter(|f| f.kind.per_datagram())
            .map(|f| (f.kind, f.per_datagram, f.delay, rng));
    }

    /// One sealed datagram due `now`; what is to be sent now goes to `out`.
    pub fn push(&mut self, now: Instant, datagram: Vec<u8>, out: &mut Vec<Vec<u8>>) -> Shaped {
        let struck = match &mut self.fault {
            Some((kind, p, delay, rng)) => rng.random_bool(*p).then_some((*kind, *delay)),
            None => None,
        };
        let shaped = match struck {
            None => {
                out.push(datagram);
                Shaped::Sent
            }
            Some((FaultKind::UdpLoss, _)) => Shaped::Dropped,
            Some((FaultKind::UdpDuplicate, _)) => {
                out.push(datagram.clone());
                out.push(datagram);
                Shaped::Duplicated
            }
            Some((FaultKind::UdpReorder, _)) if self.held.is_none() => {
                self.held = Some(datagram);
                self.later.push_back((now + REORDER_HOLD, Vec::new()));
                return Shaped::HeldBack;
            }
            Some((FaultKind::UdpLate, delay)) => {
                let at = now + delay;
                let i = self.later.partition_point(|(t, _)| *t <= at);
                self.later.insert(i, (at, datagram));
                return Shaped::Delayed;
            }
            Some(_) => {
                out.push(datagram);
                Shaped::Sent
            }
        };
        out.extend(self.held.take());
        shaped
    }

    /// Datagrams whose time has come at `now`, into `out`.
    pub fn due(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        while self.later.front().is_some_and(|(t, _)| *t <= now) {
            if let Some((_, d)) = self.later.pop_front() {
                if d.is_empty() {
                    // The held-back datagram's deadline.
                    out.extend(self.held.take());
                } else {
                    out.push(d);
                }
            }
        }
    }

    /// When [`due`](Self::due) must next be called.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.later.front().map(|(t, _)| *t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::FaultSettings;
    use rand::SeedableRng;

    fn shaper(kind: FaultKind, p: f64) -> Shaper {
        let mut s = FaultSettings::of(kind);
        s.p = Some(1.0);
        s.per_datagram = Some(p);
        let mut sh = Shaper::default();
        sh.set_answer(Some(&s.resolve().unwrap()), ChaCha8Rng::seed_from_u64(1));
        sh
    }

    fn run(sh: &mut Shaper, n: u8) -> Vec<u8> {
        let t0 = Instant::now();
        let mut out = Vec::new();
        for i in 0..n {
            let now = t0 + Duration::from_millis(60 * u64::from(i));
            sh.due(now, &mut out);
            sh.push(now, vec![i], &mut out);
        }
        sh.due(t0 + Duration::from_secs(10), &mut out);
        out.into_iter().map(|d| d[0]).collect()
    }

    #[test]
    fn no_fault_sends_everything_in_order() {
        assert_eq!(run(&mut Shaper::default(), 5), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn loss_at_one_drops_everything_and_at_half_leaves_gaps() {
        assert!(run(&mut shaper(FaultKind::UdpLoss, 1.0), 5).is_empty());
        let got = run(&mut shaper(FaultKind::UdpLoss, 0.5), 40);
        assert!(
            got.len() > 5 && got.len() < 35 && got.windows(2).all(|w| w[0] < w[1]),
            "{got:?}"
        );
    }

    #[test]
    fn duplicate_sends_twice_and_reorder_swaps_with_the_next() {
        assert_eq!(run(&mut shaper(FaultKind::UdpDuplicate, 1.0), 2), vec![0, 0, 1, 1]);
        // Every datagram struck: each is held while the previous one is
        // released behind the next send; one at a time.
        let got = run(&mut shaper(FaultKind::UdpReorder, 1.0), 4);
        assert_eq!(got.len(), 4);
        assert_ne!(got, vec![0, 1, 2, 3]);
    }

    #[test]
    fn late_datagrams_come_after_later_ones() {
        let mut sh = shaper(FaultKind::UdpLate, 0.3);
        let got = run(&mut sh, 30);
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, (0..30).collect::<Vec<_>>());
        assert_ne!(got, sorted, "some came late");
    }
}
