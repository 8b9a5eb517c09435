//! Operator wording of the scaling curve ([`super::Scaling`]): speakers per
//! added core, where the curve flattens and what that means, the USL fit,
//! the tiers' predicted knees (a figure within reach, a range or none
//! beyond) and the allotment to measure next. Words only; the rules live
//! in `scaling` and `reach`.

use super::model::{Scaling, Sizing, TierPrediction};
use super::reach::{POINT_REACH, largest};
use super::words::num;

fn cores(c: f64) -> String {
    if (c - 1.0).abs() < 1e-9 {
        "1 core".into()
    } else {
        format!("{} cores", num(c))
    }
}

/// Explanation lines about the curve (none without one).
pub(super) fn lines(s: &Sizing) -> Vec<String> {
    let Some(sc) = &s.scaling else {
        return Vec::new();
    };
    let steps: Vec<String> = sc
        .points
        .windows(2)
        .zip(sc.speakers_per_core.iter().zip(&sc.step_efficiency))
        .map(|(w, (per_core, eff))| {
            let share = eff.map_or(String::new(), |e| format!(", {:.0}% of proportional", e * 100.0));
            format!(
                "{} → {}: {:+.1} speakers per added core{share}",
                num(w[0].cores),
                cores(w[1].cores),
                per_core
            )
        })
        .collect();
    let mut out = vec![format!("Speakers per added core: {}.", steps.join("; "))];
    match (sc.curve.as_str(), sc.flattens_at_cores) {
        (_, Some(k)) => {
            let thread = match (&sc.busiest_thread, sc.busiest_thread_share) {
                (Some(name), Some(share)) => {
                    // Sampling jitter can read a pinned thread as 101%.
                    format!(
                        "its busiest thread, {name}, runs at {:.0}% of a core",
                        share.min(1.0) * 100.0
                    )
                }
                _ => "no per-thread figures: watch the process with --watch-pid to name its busiest thread".into(),
            };
            out.push(format!(
                "Beyond about {} this server does not scale ({thread}): more cores will not raise the knee; run more server instances behind a load balancer.",
                cores(k)
            ));
        }
        ("proportional", None) => out.push("The knee grows in proportion to the cores: more cores help.".into()),
        _ => out.push("The knee grows more slowly than the cores: more cores help, with diminishing returns.".into()),
    }
    if let Some(u) = sc.usl {
        let peak = u
            .peak_cores
            .map_or(String::new(), |c| format!("; capacity peaks at about {}", cores(c)));
        out.push(format!(
            "Universal Scalability Law fit{}: λ = {} speakers per core, σ = {} (contention, the serial part), κ = {} (coherency){peak}.",
            sc.flattens_at_cores.map_or(String::new(), |k| format!(" (from {} on)", cores(k))),
            num(u.lambda),
            num(u.sigma),
            num(u.kappa)
        ));
    }
    out.extend(prediction_lines(sc));
    out
}

/// The tiers' predicted knees: a figure within reach, a range beyond it,
/// and the allotment to measure next when a tier got no figure.
fn prediction_lines(sc: &Scaling) -> Vec<String> {
    let mut out = Vec::new();
    let points: Vec<String> = sc
        .predictions
        .iter()
        .filter_map(|p| {
            let k = p.knee?;
            Some(format!(
                "{} ({}) ≈ {k:.0} ({} confidence)",
                p.tier,
                cores(p.cores),
                p.confidence
            ))
        })
        .collect();
    if !points.is_empty() {
        out.push(format!("Predicted knees: {}.", points.join(", ")));
    }
    let beyond: Vec<&TierPrediction> = sc.predictions.iter().filter(|p| p.knee.is_none()).collect();
    let Some(first) = beyond.first() else {
        return out;
    };
    let reach = cores(POINT_REACH * largest(&sc.points));
    let ranged: Vec<String> = beyond
        .iter()
        .filter_map(|p| {
            let r = p.knee_range?;
            Some(format!(
                "{} ({}) {:.0}–{:.0}",
                p.tier,
                cores(p.cores),
                r.low.floor(),
                r.high.ceil()
            ))
        })
        .collect();
    let names: Vec<String> = beyond
        .iter()
        .map(|p| format!("{} ({})", p.tier, cores(p.cores)))
        .collect();
    out.push(match (ranged.is_empty(), first.knee_range) {
        (false, Some(r)) => format!(
            "Beyond {reach} (twice the largest measured allotment) no single figure, only the range the measured knees allow (σ from {} to {}): {}.",
            num(r.sigma_low),
            num(r.sigma_high),
            ranged.join(", ")
        ),
        _ => format!(
            "No prediction for {}: beyond {reach} (twice the largest measured allotment), and the knees measured admit no range (no serial part can be told from them yet, so σ = 0 would be a guess).",
            names.join(", ")
        ),
    });
    if let Some(next) = sc.next_allotment {
        let list: Vec<String> = sc.points.iter().map(|p| num(p.cores)).collect();
        out.push(if next.on_this_machine {
            format!(
                "Measure {} next (the most this machine gives: --cpus {},{}); for larger tiers, measure their cores on a machine that has them.",
                cores(next.cores),
                list.join(","),
                num(next.cores)
            )
        } else {
            format!(
                "Measure {} next, on a machine that has that many cores (the knees measured reach only {}).",
                cores(next.cores),
                cores(largest(&sc.points))
            )
        });
    }
    out
}

/// The figures the curve lines stand on.
pub(super) fn evidence(s: &Sizing) -> Vec<String> {
    let Some(sc) = &s.scaling else {
        return Vec::new();
    };
    let points: Vec<String> = sc
        .points
        .iter()
        .map(|p| format!("{} → {}", cores(p.cores), p.knee))
        .collect();
    let effs: Vec<String> = sc
        .step_efficiency
        .iter()
        .map(|e| e.map_or("n/a".into(), |e| format!("{:.0}%", e * 100.0)))
        .collect();
    vec![format!(
        "scaling: knees {}; step efficiency {} (flat below 25%)",
        points.join(", "),
        effs.join(", ")
    )]
}
