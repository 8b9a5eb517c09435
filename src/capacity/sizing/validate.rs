//! Input checks of the sizing: every figure finite and ≥ 0, so a NaN from a
//! broken reading becomes a typed error naming the stage and field instead
//! of a verdict built on it.

use super::model::{SizingError, SizingInput};

pub(super) fn validate(input: &SizingInput) -> Result<(), SizingError> {
    let check = |what: String, v: f64| {
        if v.is_finite() && v >= 0.0 {
            Ok(())
        } else {
            Err(SizingError::InvalidValue { what, value: v })
        }
    };
    let curve_stages = input.curve.iter().flat_map(|a| a.stages.iter());
    for s in input.stages.iter().chain(curve_stages) {
        let n = s.speakers;
        for (field, v) in [
            ("cpu_cores_mean", s.cpu_cores_mean),
            ("cpu_cores_p95", s.cpu_cores_p95),
            ("cpu_cores_p99", s.cpu_cores_p99),
            ("cpu_cores_max", s.cpu_cores_max),
            ("memory_mb_mean", s.memory_mb_mean),
            ("memory_mb_max", s.memory_mb_max),
            ("duration_s", s.duration_s),
            ("hot_thread_p95", s.hot_thread_p95.unwrap_or(0.0)),
            ("throttled_ratio_max", s.throttled_ratio_max.unwrap_or(0.0)),
            ("cpu_burst_share", s.cpu_burst_share.unwrap_or(0.0)),
        ] {
            check(format!("stage {n} {field}"), v)?;
        }
    }
    for a in &input.curve {
        check("allotment cores".into(), a.cores)?;
    }
    let a = input.allotment;
    check("allotment cpu_cores".into(), a.cpu_cores.unwrap_or(0.0))?;
    check("allotment memory_mb".into(), a.memory_mb.unwrap_or(0.0))?;
    for t in &input.tiers {
        check(format!("tier {} cpu_cores", t.name), t.cpu_cores)?;
        check(format!("tier {} memory_gb", t.name), t.memory_gb)?;
    }
    Ok(())
}
