//! Which tier to name, so that it never contradicts the verdict.
//!
//! This file owns the agreement rule (parent module docs): no target, no
//! tier; `SUFFICIENT` names the smallest tier covering the needs that is no
//! larger than the known allotment (or none); `INSUFFICIENT` names the
//! smallest covering tier larger than the allotment in the saturated
//! resource, and none when more of it cannot help.

use super::measured::Judged;
use super::model::{Saturation, Scaling, Tier, Verdict};
use super::scaling;

pub(super) fn pick<'a>(
    j: &Judged,
    verdict: Option<Verdict>,
    sc: Option<&Scaling>,
    tiers: &'a [Tier],
    cores: f64,
    memory_mb: f64,
) -> Option<&'a Tier> {
    let verdict = verdict?;
    let t = f64::from(j.target);
    let covers = |tier: &Tier| {
        let cpu_ok = match sc {
            Some(sc) => super::reach::knee_bound(sc, tier.cpu_cores).is_some_and(|k| k >= t),
            None => tier.cpu_cores >= cores,
        };
        cpu_ok && tier.memory_gb * 1024.0 >= memory_mb
    };
    let supply = j.supply;
    let within = |tier: &Tier| {
        supply.cpu_cores.is_none_or(|c| tier.cpu_cores <= c)
            && supply.memory_mb.is_none_or(|m| tier.memory_gb * 1024.0 <= m)
    };
    let more_cores = |tier: &Tier| supply.cpu_cores.is_none_or(|c| tier.cpu_cores > c);
    let more_memory = |tier: &Tier| supply.memory_mb.is_none_or(|m| tier.memory_gb * 1024.0 > m);
    let bigger: &dyn Fn(&Tier) -> bool = match (verdict, j.saturated, sc) {
        (Verdict::Sufficient, ..) => &within,
        (Verdict::Insufficient, _, Some(sc)) if sc.flattens_at_cores.is_some() && cores_unreachable(sc, t) => {
            return None;
        }
        (Verdict::Insufficient, _, Some(_)) => &more_cores,
        (Verdict::Insufficient, Saturation::Cpu | Saturation::Throttling, None) => &more_cores,
        (Verdict::Insufficient, Saturation::Memory, None) => &more_memory,
        (
            Verdict::Insufficient,
            Saturation::HotThread | Saturation::None | Saturation::Inconclusive | Saturation::SerialPart,
            None,
        ) => {
            return None;
        }
    };
    tiers
        .iter()
        .filter(|tier| covers(tier) && bigger(tier))
        .min_by(|a, b| (a.cpu_cores.total_cmp(&b.cpu_cores)).then(a.memory_gb.total_cmp(&b.memory_gb)))
}

/// A flat curve that never reaches `t`: no number of cores will do.
fn cores_unreachable(sc: &Scaling, t: f64) -> bool {
    scaling::cores_for(sc, t).is_none()
}
