//! How the knee grows with cores, from knees measured at several CPU
//! allotments (`capacity --cpus`).
//!
//! This file owns the curve rules (parent module docs): speakers per added
//! core between measured points; a step's efficiency (knee gained ÷ the gain
//! proportional scaling would give) and the first step under 25%, where the
//! curve flattens; `proportional` when, without flattening, the whole span
//! gains at least 75% of proportional, else `sublinear`; the Universal Scalability Law
//! `N(c) = λc / (1 + σ(c − 1) + κc(c − 1))` fitted to the points (exact for
//! three, κ = 0 for two, least squares beyond; σ kept in [0, 1], κ ≥ 0;
//! once the curve flattens, only to the points from there on);
//! predicted knees per tier with a confidence by distance from the
//! measured allotments: a point figure within reach, a range beyond it
//! (see `reach`), and the allotment to measure next when a tier got none.

use super::model::{AllotmentRun, Scaling, ScalingPoint, SizingError, SizingInput, StageServer, TierPrediction, Usl};
use super::reach;

/// A step raising the knee by less than this share of proportional is flat.
pub const FLAT_EFFICIENCY: f64 = 0.25;
/// Every step at or above this share of proportional scales proportionally.
pub const PROPORTIONAL_EFFICIENCY: f64 = 0.75;

/// The knee of one allotment's stages (largest pass below the first fail)
/// and that first fail.
fn knee_of(stages: &[StageServer]) -> (u32, Option<u32>) {
    let first_fail = stages.iter().filter(|s| !s.passed).map(|s| s.speakers).min();
    let knee = stages
        .iter()
        .filter(|s| s.passed && first_fail.is_none_or(|f| s.speakers < f))
        .map(|s| s.speakers)
        .max()
        .unwrap_or(0);
    (knee, first_fail)
}

/// The curve from two or more allotments (`None` from fewer).
pub(super) fn analyse(curve: &[&AllotmentRun], input: &SizingInput) -> Result<Option<Scaling>, SizingError> {
    let mut runs: Vec<&AllotmentRun> = curve.to_vec();
    runs.sort_by(|a, b| a.cores.total_cmp(&b.cores));
    if runs.len() < 2 {
        return Ok(None);
    }
    let points: Vec<ScalingPoint> = runs
        .iter()
        .map(|a| {
            let (knee, first_fail) = knee_of(&a.stages);
            ScalingPoint {
                cores: a.cores,
                knee,
                first_fail,
            }
        })
        .collect();
    let mut sc = curve_of(&points);
    if let Some(c) = sc.flattens_at_cores
        && let Some(above) = runs.iter().find(|a| a.cores > c)
        && let Some(hot) = above
            .stages
            .iter()
            .filter(|s| s.hot_thread_p95.is_some())
            .max_by(|a, b| {
                a.hot_thread_p95
                    .unwrap_or(0.0)
                    .total_cmp(&b.hot_thread_p95.unwrap_or(0.0))
            })
    {
        sc.busiest_thread = hot.hot_thread_name.clone();
        sc.busiest_thread_share = hot.hot_thread_p95;
    }
    let fitted = fit_points(&sc.points, sc.flattens_at_cores);
    sc.predictions = input
        .tiers
        .iter()
        .filter_map(|t| {
            let c = t.cpu_cores;
            let reach = reach::within_reach(&sc.points, c);
            Some(TierPrediction {
                tier: t.name.clone(),
                cores: c,
                knee: if reach { Some(knee_at(&sc, c)?) } else { None },
                knee_range: if reach { None } else { reach::knee_range(&fitted, c) },
                confidence: distance_confidence(&sc, c).to_string(),
            })
        })
        .collect();
    let withheld: Vec<f64> = sc
        .predictions
        .iter()
        .filter(|p| p.knee.is_none())
        .map(|p| p.cores)
        .collect();
    sc.next_allotment = reach::next_allotment(&sc.points, &withheld, input.machine_cores);
    Ok(Some(sc))
}

/// The pure curve rules over sorted points.
pub fn curve_of(points: &[ScalingPoint]) -> Scaling {
    let mut speakers_per_core = Vec::new();
    let mut step_efficiency = Vec::new();
    let mut flattens_at_cores = None;
    for w in points.windows(2) {
        let (a, b) = (w[0], w[1]);
        let gained = f64::from(b.knee) - f64::from(a.knee);
        speakers_per_core.push(gained / (b.cores - a.cores));
        let proportional = f64::from(a.knee) * (b.cores / a.cores - 1.0);
        let eff = (a.knee > 0 && proportional > 0.0).then(|| gained / proportional);
        if flattens_at_cores.is_none() && eff.is_some_and(|e| e < FLAT_EFFICIENCY) {
            flattens_at_cores = Some(a.cores);
        }
        step_efficiency.push(eff);
    }
    let first = points.first().map(|p| p.cores);
    let curve = match flattens_at_cores {
        Some(c) if Some(c) == first => "flat",
        Some(_) => "flattens",
        None if overall_efficiency(points).is_none_or(|e| e >= PROPORTIONAL_EFFICIENCY) => "proportional",
        None => "sublinear",
    };
    Scaling {
        points: points.to_vec(),
        speakers_per_core,
        step_efficiency,
        flattens_at_cores,
        curve: curve.to_string(),
        usl: fit_usl(&fit_points(points, flattens_at_cores)),
        predictions: Vec::new(),
        busiest_thread: None,
        busiest_thread_share: None,
        next_allotment: None,
    }
}

/// The points the USL is fitted to: all of them, or once the curve has
/// flattened, those from the flattening point on (a steep rise before it
/// would otherwise hide the serial part, σ, and predict growth that the
/// measurements contradict).
fn fit_points(points: &[ScalingPoint], flattens_at: Option<f64>) -> Vec<ScalingPoint> {
    match flattens_at {
        Some(k) => points.iter().copied().filter(|p| p.cores >= k - 1e-9).collect(),
        None => points.to_vec(),
    }
}

/// Knee gained from the first to the last point ÷ proportional gain (small
/// knees are noisy step by step; the whole span says how cores pay).
fn overall_efficiency(points: &[ScalingPoint]) -> Option<f64> {
    let (a, b) = (points.first()?, points.last()?);
    let proportional = f64::from(a.knee) * (b.cores / a.cores - 1.0);
    (a.knee > 0 && proportional > 0.0).then(|| (f64::from(b.knee) - f64::from(a.knee)) / proportional)
}

/// Fits the USL to the points with a knee above 0 (see module docs).
pub fn fit_usl(points: &[ScalingPoint]) -> Option<Usl> {
    let rows: Vec<[f64; 3]> = points
        .iter()
        .filter(|p| p.knee > 0 && p.cores > 0.0)
        .map(|p| {
            let c = p.cores;
            [c / f64::from(p.knee), -(c - 1.0), -c * (c - 1.0)]
        })
        .collect();
    if rows.len() < 2 {
        return None;
    }
    // Free parameters: λ always; σ and κ while the data allow them.
    let mut free = if rows.len() >= 3 { vec![0, 1, 2] } else { vec![0, 1] };
    for _ in 0..3 {
        let x = solve(&rows, &free)?;
        let mut p = [0.0; 3];
        for (i, &k) in free.iter().enumerate() {
            p[k] = x[i];
        }
        if p[1] < 0.0 && free.contains(&1) {
            free.retain(|&k| k != 1);
            continue;
        }
        if p[2] < 0.0 && free.contains(&2) {
            free.retain(|&k| k != 2);
            continue;
        }
        let (lambda, sigma, kappa) = (p[0], p[1].min(1.0), p[2]);
        if !(lambda.is_finite() && lambda > 0.0) {
            return None;
        }
        let peak_cores = (kappa > 0.0).then(|| ((1.0 - sigma) / kappa).sqrt());
        return Some(Usl {
            lambda,
            sigma,
            kappa,
            peak_cores,
        });
    }
    None
}

/// Least squares `rows[·][free] · x = 1`, by the normal equations.
fn solve(rows: &[[f64; 3]], free: &[usize]) -> Option<Vec<f64>> {
    let n = free.len();
    let mut m = vec![vec![0.0; n + 1]; n];
    for r in rows {
        for i in 0..n {
            for j in 0..n {
                m[i][j] += r[free[i]] * r[free[j]];
            }
            m[i][n] += r[free[i]];
        }
    }
    for col in 0..n {
        let pivot = (col..n).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))?;
        if m[pivot][col].abs() < 1e-12 {
            return None;
        }
        m.swap(col, pivot);
        let pivot_row = m[col].clone();
        for (row, r) in m.iter_mut().enumerate() {
            if row != col {
                let f = r[col] / pivot_row[col];
                for (x, p) in r.iter_mut().zip(&pivot_row).skip(col) {
                    *x -= f * p;
                }
            }
        }
    }
    Some((0..n).map(|i| m[i][n] / m[i][i]).collect())
}

/// The knee at `c` cores: measured if `c` was measured, else the USL's.
pub fn knee_at(sc: &Scaling, c: f64) -> Option<f64> {
    if let Some(p) = sc.points.iter().find(|p| (p.cores - c).abs() < 1e-9) {
        return Some(f64::from(p.knee));
    }
    sc.usl.map(|u| u.knee(c))
}

/// The fewest cores (0.5 steps, up to 256) that hold at least `t` (by
/// [`reach::knee_bound`]: no figure beyond reach that the data cannot carry).
pub fn cores_for(sc: &Scaling, t: f64) -> Option<f64> {
    (1..=512)
        .map(|i| f64::from(i) * 0.5)
        .find(|&c| reach::knee_bound(sc, c).is_some_and(|k| k >= t))
}

/// `high` within the measured allotments, `medium` up to 2× beyond
/// (or half below), `low` further.
pub fn distance_confidence(sc: &Scaling, c: f64) -> &'static str {
    let lo = sc.points.iter().map(|p| p.cores).fold(f64::INFINITY, f64::min);
    let hi = sc.points.iter().map(|p| p.cores).fold(0.0, f64::max);
    if c >= lo - 1e-9 && c <= hi + 1e-9 {
        "high"
    } else if c <= 2.0 * hi && c >= lo / 2.0 {
        "medium"
    } else {
        "low"
    }
}

/// The verdict's confidence: by distance from measured allotments when a
/// curve and the allotment are known, else by load extrapolation.
pub(super) fn confidence_at(sc: Option<&Scaling>, extrapolation: f64, cores: Option<f64>) -> &'static str {
    if let (Some(sc), Some(c)) = (sc, cores) {
        return distance_confidence(sc, c);
    }
    if extrapolation <= 1.0 {
        "high"
    } else if extrapolation <= 2.0 {
        "medium"
    } else {
        "low"
    }
}
