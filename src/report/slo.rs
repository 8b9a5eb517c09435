//! SLO gates on `run`: the rules of `--slo` and `[[slo]]` (the grammar and
//! the pass/fail rule live in [`crate::capacity::slo`]) checked against the
//! whole run, as the report's `slo: {passed, checks}` and the exit code.

pub use super::verdict::{SloCheck, SloVerdict};

use super::model::Report;
use crate::capacity::slo::{Slo, SloMetric, StageMeasure};
use std::fmt::Write;

/// What the run measured, in the shape the SLO checker reads.
pub fn measure(r: &Report) -> StageMeasure {
    StageMeasure {
        latency_ms: r.latency_ms.clone(),
        stutter_ratio: r.playback.stutter_ratio,
        failed_ratio: r.turns.failed_ratio,
        turns_completed: r.turns.completed,
    }
}

/// Checks every rule against the run.
pub fn check(slos: &[Slo], m: &StageMeasure) -> SloVerdict {
    let checks: Vec<SloCheck> = slos
        .iter()
        .map(|slo| {
            let res = slo.check(m);
            SloCheck {
                rule: res.slo,
                description: slo.describe(),
                unit: match slo.metric {
                    SloMetric::Latency { .. } => "ms",
                    SloMetric::StutterRatio | SloMetric::FailedRatio => "ratio",
                }
                .to_string(),
                limit: res.limit,
                observed: res.value,
                passed: res.passed,
            }
        })
        .collect();
    SloVerdict {
        passed: checks.iter().all(|c| c.passed),
        checks,
    }
}

/// A value in the check's unit, for people: `1530 ms`, `2.5%`.
pub fn human_value(unit: &str, v: f64) -> String {
    if unit == "ratio" {
        format!("{:.2}%", v * 100.0)
    } else {
        format!("{v:.0} ms")
    }
}

/// The console lines: one per check, failures named.
pub fn render(v: &SloVerdict) -> String {
    let mut out = String::new();
    let failed = v.checks.iter().filter(|c| !c.passed).count();
    let _ = writeln!(
        out,
        "\nSLOs: {}",
        if v.passed {
            "all passed".to_string()
        } else {
            format!("{failed} of {} FAILED", v.checks.len())
        }
    );
    for c in &v.checks {
        let seen = c.observed.map_or("nothing measured".to_string(), |o| {
            format!("was {}", human_value(&c.unit, o))
        });
        let mark = if c.passed { "pass" } else { "FAIL" };
        let _ = writeln!(out, "  {mark}  {} ({}): {seen}", c.description, c.rule);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Percentiles;

    fn measured(p95: f64) -> StageMeasure {
        let mut m = StageMeasure {
            turns_completed: 10,
            ..StageMeasure::default()
        };
        let p = Percentiles {
            count: 10,
            p95,
            ..Percentiles::default()
        };
        m.latency_ms.insert("first_audio".into(), p);
        m
    }

    #[test]
    fn a_failed_rule_fails_the_verdict_and_is_named() {
        let slos = [
            Slo::parse("first_audio.p95<=1ms").unwrap(),
            Slo::parse("failed_ratio<=0.01").unwrap(),
        ];
        let v = check(&slos, &measured(1200.0));
        assert!(!v.passed);
        assert_eq!(v.checks[0].rule, "first_audio.p95<=1ms");
        assert_eq!((v.checks[0].observed, v.checks[0].passed), (Some(1200.0), false));
        assert!(v.checks[1].passed);
        let text = render(&v);
        assert!(text.contains("1 of 2 FAILED"), "{text}");
        assert!(
            text.contains("FAIL  p95 first audio ≤ 1 ms (first_audio.p95<=1ms): was 1200 ms"),
            "{text}"
        );
    }

    #[test]
    fn generous_rules_pass() {
        let v = check(&[Slo::parse("first_audio.p95<=30s").unwrap()], &measured(1200.0));
        assert!(v.passed);
        assert_eq!(v.checks[0].limit, 30_000.0);
    }
}
