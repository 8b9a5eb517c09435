//! Table tests of the scaling curve: proportional, sublinear, flattening
//! and flat curves, the USL fit (exact for three points), tier
//! predictions, and the verdict read from a curve.

use super::scaling::{curve_of, fit_usl};
use super::tests::linear;
use super::*;

fn points(p: &[(f64, u32)]) -> Vec<ScalingPoint> {
    p.iter()
        .map(|&(cores, knee)| ScalingPoint {
            cores,
            knee,
            first_fail: None,
        })
        .collect()
}

#[test]
fn curve_shapes_table() {
    type Row = (&'static str, &'static [(f64, u32)], &'static str, Option<f64>);
    let rows: [Row; 6] = [
        ("proportional", &[(0.25, 6), (0.5, 12), (1.0, 24)], "proportional", None),
        ("sublinear", &[(1.0, 10), (2.0, 16), (4.0, 24)], "sublinear", None),
        ("flattening", &[(0.5, 6), (1.0, 12), (2.0, 13)], "flattens", Some(1.0)),
        ("flat", &[(1.0, 10), (2.0, 11), (4.0, 11)], "flat", Some(1.0)),
        (
            "two points, proportional",
            &[(1.0, 10), (2.0, 19)],
            "proportional",
            None,
        ),
        (
            "noisy small knees, proportional overall",
            &[(0.25, 6), (0.5, 10), (1.0, 35)],
            "proportional",
            None,
        ),
    ];
    for (name, p, curve, flat_at) in rows {
        let sc = curve_of(&points(p));
        assert_eq!((sc.curve.as_str(), sc.flattens_at_cores), (curve, flat_at), "{name}");
    }
    let sc = curve_of(&points(&[(0.5, 6), (1.0, 12), (2.0, 13)]));
    assert_eq!(sc.speakers_per_core, vec![12.0, 1.0]);
    assert_eq!(sc.step_efficiency, vec![Some(1.0), Some(1.0 / 12.0)]);
    // A knee of 0 gives no proportional reference.
    let zero = curve_of(&points(&[(0.25, 0), (1.0, 8)]));
    assert_eq!((zero.step_efficiency[0], zero.flattens_at_cores), (None, None));
}

#[test]
fn usl_fits_three_points_exactly() {
    // λ = 12, σ = 1/3, κ = 0: N(1) = 12, N(4) = 48 / 2 = 24, N(7) = 84 / 3 = 28.
    let u = fit_usl(&points(&[(1.0, 12), (4.0, 24), (7.0, 28)])).unwrap();
    assert!(
        (u.lambda - 12.0).abs() < 1e-9 && (u.sigma - 1.0 / 3.0).abs() < 1e-9,
        "{u:?}"
    );
    assert!(u.kappa.abs() < 1e-9 && u.peak_cores.is_none(), "{u:?}");
    // λ = 12, σ = 0, κ = 0.5: N(1) = 12, N(2) = 24 / 2 = 12, N(3) = 36 / 4 = 9.
    let u = fit_usl(&points(&[(1.0, 12), (2.0, 12), (3.0, 9)])).unwrap();
    assert!((u.lambda - 12.0).abs() < 1e-9 && u.sigma.abs() < 1e-9, "{u:?}");
    assert!((u.kappa - 0.5).abs() < 1e-9, "{u:?}");
    assert!((u.peak_cores.unwrap() - 2f64.sqrt()).abs() < 1e-9, "{u:?}");
    // Two points: Amdahl (κ = 0). N(1) = 10, N(2) = 15 → σ = 1/3.
    let u = fit_usl(&points(&[(1.0, 10), (2.0, 15)])).unwrap();
    assert!((u.sigma - 1.0 / 3.0).abs() < 1e-9 && u.kappa == 0.0, "{u:?}");
    assert!((u.knee(4.0) - 40.0 / 2.0).abs() < 1e-9);
    // Super-linear data would need σ < 0: clamped to 0.
    let u = fit_usl(&points(&[(1.0, 10), (2.0, 25)])).unwrap();
    assert!(u.sigma == 0.0, "{u:?}");
    assert_eq!(fit_usl(&points(&[(1.0, 10)])), None);
}

/// Stages at one allotment: passes up to `knee`, fails at `knee + 1`.
fn run_at(cores: f64, knee: u32, hot: Option<(&str, f64)>) -> AllotmentRun {
    let mut stages = linear(
        &[knee / 2, knee, knee + 1],
        knee,
        (0.05, cores * 0.9 / f64::from(knee + 1)),
        (100.0, 1.0),
    );
    for s in &mut stages {
        s.hot_thread_p95 = hot.map(|h| h.1);
        s.hot_thread_name = hot.map(|h| h.0.to_string());
    }
    AllotmentRun { cores, stages }
}

fn curve_input(runs: Vec<AllotmentRun>, cores: Option<f64>, target: Option<u32>) -> SizingInput {
    SizingInput {
        allotment: Allotment {
            cpu_cores: cores,
            memory_mb: Some(8192.0),
        },
        target_speakers: target,
        tiers: default_tiers(),
        shape: "steady".into(),
        curve: runs,
        ..SizingInput::default()
    }
}

#[test]
fn proportional_curve_predicts_tiers_and_decides() {
    let runs = vec![run_at(0.25, 6, None), run_at(0.5, 12, None), run_at(1.0, 24, None)];
    let s = size(&curve_input(runs.clone(), Some(1.0), Some(20))).unwrap();
    let sc = s.scaling.as_ref().unwrap();
    assert_eq!(sc.curve, "proportional");
    assert_eq!(
        s.verdict,
        Some(Verdict::Sufficient),
        "measured 24 ≥ 20 at the 1-core allotment"
    );
    assert_eq!(s.tier, None, "no listed tier is within 1 core");
    let current = sc.predictions.iter().find(|p| p.tier == "current").unwrap();
    assert_eq!(
        current.knee, None,
        "4 cores is 4× the largest measured: no single figure"
    );
    assert_eq!(current.confidence, "low");
    // 40 speakers at 1 core: INSUFFICIENT; the curve says 2 cores (within
    // its reach), so the current tier (4 cores) holds them.
    let s = size(&curve_input(runs, Some(1.0), Some(40))).unwrap();
    assert_eq!(
        (s.verdict, s.cores_needed, s.tier.as_deref()),
        (Some(Verdict::Insufficient), 2.0, Some("current")),
        "{:?}",
        s.scaling
    );
    let text = render_text(&s);
    assert!(
        text.starts_with(
            "Knee by CPU allotment (steady load, within the SLOs): 0.25 cores → 6, 0.5 cores → 12, 1 core → 24."
        ),
        "{text}"
    );
    assert!(text.contains("The knee grows in proportion to the cores"), "{text}");
}

#[test]
fn flat_curve_names_the_thread_and_sends_to_more_instances() {
    let runs = vec![
        run_at(0.5, 10, Some(("mock-burner", 0.6))),
        run_at(1.0, 19, Some(("mock-burner", 0.97))),
        run_at(2.0, 20, Some(("mock-burner", 0.98))),
    ];
    let s = size(&curve_input(runs, Some(2.0), Some(40))).unwrap();
    let sc = s.scaling.as_ref().unwrap();
    assert_eq!((sc.curve.as_str(), sc.flattens_at_cores), ("flattens", Some(1.0)));
    assert_eq!(sc.busiest_thread.as_deref(), Some("mock-burner"));
    assert_eq!((s.verdict, s.tier.as_deref()), (Some(Verdict::Insufficient), None));
    assert_eq!(s.processes_needed, Some(2));
    // Fitted from 1 core on: 19 at 1, 20 at 2 → σ = 0.9, a serial server.
    let u = sc.usl.unwrap();
    assert!((u.lambda - 19.0).abs() < 1e-9 && (u.sigma - 0.9).abs() < 1e-9, "{u:?}");
    let current = sc.predictions.iter().find(|p| p.tier == "current").unwrap();
    assert!(
        current.knee.is_some_and(|k| k < 21.0),
        "no growth predicted past the flattening: {current:?}"
    );
    let text = render_text(&s);
    assert!(
        text.contains(
            "Beyond about 1 core this server does not scale (its busiest thread, mock-burner, runs at 98% of a core): \
             more cores will not raise the knee; run more server instances behind a load balancer."
        ),
        "{text}"
    );
    assert!(
        text.contains("; need 2 server processes or instances (more cores will not help)."),
        "{text}"
    );
}

#[test]
fn curve_without_a_target_has_no_verdict() {
    let runs = vec![run_at(0.5, 6, None), run_at(1.0, 12, None)];
    let s = size(&curve_input(runs, None, None)).unwrap();
    assert_eq!((s.verdict, s.tier.as_deref()), (None, None));
    assert_eq!(s.scaling.as_ref().unwrap().points.len(), 2);
    assert!(!render_text(&s).contains("Verdict"));
}
