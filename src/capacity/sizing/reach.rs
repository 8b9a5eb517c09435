//! How far the scaling curve's predictions reach, and what to measure when
//! they do not reach far enough.
//!
//! This file owns three rules (parent module docs):
//! - **A point figure** only up to [`POINT_REACH`] × the largest measured
//!   allotment. Two knees at 0.5 and 1 core fitted σ = 0 and predicted 109
//!   speakers at 4 cores; measuring 2 cores showed about 75. Beyond that
//!   reach a tier gets the **range** the measured knees allow: every
//!   Universal Scalability Law whose knees stay inside each measured
//!   bracket (`[knee, first fail]`, or `[knee, knee + search resolution]`
//!   when nothing failed), σ in [0, 1], κ = 0 with two points (Amdahl) and
//!   κ in [0, [`KAPPA_MAX`]] with three or more; none when no such law
//!   exists (e.g. knees rising faster than the cores: no serial part can
//!   be told yet).
//! - **A lower bound** for deciding whether a tier covers a target (never
//!   printed as a prediction): the measured knee, the point figure within
//!   reach, a tier's range's low end beyond it, or, with κ = 0 (capacity
//!   never falls as cores are added), the knee at the edge of the reach.
//! - **The allotment to measure next** when a tier was left without a
//!   point figure: the most this machine gives, if that is more than was
//!   measured; else the smallest such tier's cores, on a larger machine.

use super::model::{KneeRange, NextAllotment, Scaling, ScalingPoint};
use crate::capacity::search::Resolution;

/// Point predictions reach this multiple of the largest measured allotment.
pub const POINT_REACH: f64 = 2.0;
/// The largest coherency cost (κ) scanned for the range (three points or more).
pub const KAPPA_MAX: f64 = 0.05;
const SIGMA_STEPS: u32 = 1000;
const KAPPA_STEPS: u32 = 100;

/// The largest measured allotment.
pub fn largest(points: &[ScalingPoint]) -> f64 {
    points.iter().map(|p| p.cores).fold(0.0, f64::max)
}

/// Whether `c` cores is within reach of a point figure.
pub fn within_reach(points: &[ScalingPoint], c: f64) -> bool {
    c <= POINT_REACH * largest(points) + 1e-9
}

/// The bracket a measured knee lies in.
fn bracket(p: &ScalingPoint) -> (f64, f64) {
    let hi = p
        .first_fail
        .filter(|f| *f > p.knee)
        .unwrap_or(p.knee + Resolution::Auto.width(p.knee));
    (f64::from(p.knee), f64::from(hi))
}

/// The range of knees at `c` cores admitted by `points` (see module docs).
pub fn knee_range(points: &[ScalingPoint], c: f64) -> Option<KneeRange> {
    let pts: Vec<&ScalingPoint> = points.iter().filter(|p| p.knee > 0 && p.cores > 0.0).collect();
    if pts.len() < 2 {
        return None;
    }
    let kappa_steps = if pts.len() >= 3 { KAPPA_STEPS } else { 0 };
    let mut out: Option<KneeRange> = None;
    for i in 0..=SIGMA_STEPS {
        let sigma = f64::from(i) / f64::from(SIGMA_STEPS);
        for j in 0..=kappa_steps {
            let kappa = KAPPA_MAX * f64::from(j) / f64::from(KAPPA_STEPS);
            let denom = |x: f64| 1.0 + sigma * (x - 1.0) + kappa * x * (x - 1.0);
            // λ such that every measured knee stays inside its bracket.
            let (mut lam_lo, mut lam_hi) = (0.0_f64, f64::INFINITY);
            for p in &pts {
                let (lo, hi) = bracket(p);
                let per = p.cores / denom(p.cores);
                lam_lo = lam_lo.max(lo / per);
                lam_hi = lam_hi.min(hi / per);
            }
            if lam_lo > lam_hi * (1.0 + 1e-9) || denom(c) <= 0.0 {
                continue;
            }
            let at = |lam: f64| lam * c / denom(c);
            let r = out.get_or_insert(KneeRange {
                low: at(lam_lo),
                high: at(lam_hi),
                sigma_low: sigma,
                sigma_high: sigma,
            });
            r.low = r.low.min(at(lam_lo));
            r.high = r.high.max(at(lam_hi));
            r.sigma_low = r.sigma_low.min(sigma);
            r.sigma_high = r.sigma_high.max(sigma);
        }
    }
    out
}

/// A knee `c` cores holds at least (see module docs); never printed.
pub fn knee_bound(sc: &Scaling, c: f64) -> Option<f64> {
    if let Some(p) = sc.points.iter().find(|p| (p.cores - c).abs() < 1e-9) {
        return Some(f64::from(p.knee));
    }
    let usl = sc.usl?;
    if within_reach(&sc.points, c) {
        return Some(usl.knee(c));
    }
    if let Some(r) = sc
        .predictions
        .iter()
        .find(|p| (p.cores - c).abs() < 1e-9)
        .and_then(|p| p.knee_range)
    {
        return Some(r.low);
    }
    (usl.kappa == 0.0).then(|| usl.knee(POINT_REACH * largest(&sc.points)))
}

/// What to measure next when `withheld` tiers' cores got no point figure.
pub fn next_allotment(points: &[ScalingPoint], withheld: &[f64], machine_cores: Option<f64>) -> Option<NextAllotment> {
    let smallest = withheld.iter().copied().reduce(f64::min)?;
    let top = largest(points);
    match machine_cores.filter(|m| *m > top + 1e-9) {
        Some(m) => Some(NextAllotment {
            cores: m,
            on_this_machine: true,
        }),
        None => Some(NextAllotment {
            cores: smallest,
            on_this_machine: false,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(cores: f64, knee: u32, first_fail: u32) -> ScalingPoint {
        ScalingPoint {
            cores,
            knee,
            first_fail: Some(first_fail),
        }
    }

    fn rounded(r: KneeRange) -> (f64, f64, f64, f64) {
        let r3 = |v: f64| (v * 1000.0).round() / 1000.0;
        (r.low.round(), r.high.round(), r3(r.sigma_low), r3(r.sigma_high))
    }

    #[test]
    fn recorded_one_and_two_cores_give_a_range_beyond_four() {
        // 1 core: 30 passed, 31 failed; 2 cores: 50 passed, 52 failed.
        let pts = [pt(1.0, 30, 31), pt(2.0, 50, 52)];
        assert!(within_reach(&pts, 4.0));
        assert!(!within_reach(&pts, 8.0));
        // σ ∈ [0.154, 0.24]: 8 cores between 8·31/(1 + 7·0.24) and 8·30.004/(1 + 7·0.154).
        let r = knee_range(&pts, 8.0).unwrap();
        assert_eq!(rounded(r), (93.0, 116.0, 0.154, 0.24));
        assert_eq!(rounded(knee_range(&pts, 24.0).unwrap()), (114.0, 159.0, 0.154, 0.24));
    }

    #[test]
    fn knees_rising_faster_than_the_cores_admit_no_range() {
        // 0.5 core: 13 passed, 14 failed; 1 core: 29 passed, 30 failed.
        let pts = [pt(0.5, 13, 14), pt(1.0, 29, 30)];
        assert_eq!(knee_range(&pts, 4.0), None);
        assert!(!within_reach(&pts, 4.0) && within_reach(&pts, 2.0));
    }

    #[test]
    fn a_knee_without_a_failure_is_bracketed_by_the_resolution() {
        // 10 at 1 core (no failure: [10, 11]), 20 at 2 cores (20 and 21):
        // σ ≤ 0.1; 8 cores from 8·11/(1 + 7·0.1) to 8·10.5 (σ = 0).
        let pts = [
            ScalingPoint {
                cores: 1.0,
                knee: 10,
                first_fail: None,
            },
            pt(2.0, 20, 21),
        ];
        let r = knee_range(&pts, 8.0).unwrap();
        assert_eq!(rounded(r), (52.0, 84.0, 0.0, 0.1));
    }

    #[test]
    fn next_allotment_is_this_machine_first_then_the_tier() {
        let pts = [pt(0.5, 13, 14), pt(1.0, 29, 30)];
        let withheld = [4.0, 8.0, 16.0, 24.0];
        assert_eq!(
            next_allotment(&pts, &withheld, Some(2.0)),
            Some(NextAllotment {
                cores: 2.0,
                on_this_machine: true
            })
        );
        assert_eq!(
            next_allotment(&pts, &withheld, Some(1.0)),
            Some(NextAllotment {
                cores: 4.0,
                on_this_machine: false
            })
        );
        assert_eq!(next_allotment(&pts, &[], Some(2.0)), None);
    }
}
