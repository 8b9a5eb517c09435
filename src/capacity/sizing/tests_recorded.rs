//! The verdict on stages recorded against the real Python xiaozhi server
//! (`fixtures/`, copied from `../shared/runs/`): `--cpus 1,2 --target-speakers
//! 60` (knees 30 and 50, peaks at 2 cores ambiguous) and `--cpus 0.5,1`
//! (knees 13 and 29). The server's own allotment was unknown in both, and
//! the machine had 2 cores.

use super::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct Recorded {
    target_speakers: Option<u32>,
    curve: Vec<AllotmentRun>,
}

const ONE_TWO: &str = include_str!("fixtures/real-server-cpus-1-2.json");
const HALF_ONE: &str = include_str!("fixtures/real-server-cpus-0.5-1.json");

fn recorded(json: &str, target: Option<u32>) -> SizingInput {
    let r: Recorded = serde_json::from_str(json).expect("the fixture parses");
    SizingInput {
        target_speakers: target.or(r.target_speakers),
        tiers: default_tiers(),
        slos: Slo::defaults(),
        shape: "steady".into(),
        curve: r.curve,
        machine_cores: Some(2.0),
        ..SizingInput::default()
    }
}

fn sized(json: &str, target: Option<u32>) -> (Sizing, String) {
    let s = size(&recorded(json, target)).unwrap();
    let text = render_text(&s);
    (s, text)
}

/// One allotment's stages of a recorded run, judged alone at that allotment.
fn one_allotment(json: &str, cores: f64) -> SizingInput {
    let mut inp = recorded(json, None);
    let run = inp.curve.iter().find(|a| a.cores == cores).unwrap().clone();
    inp.curve.clear();
    inp.stages = run.stages;
    inp.allotment.cpu_cores = Some(cores);
    inp
}

#[test]
fn two_allotments_with_ambiguous_peaks_never_ask_for_two_more() {
    let (s, text) = sized(ONE_TWO, None);
    assert_eq!(s.saturated, Saturation::SerialPart);
    assert!(!text.contains("measure two allotments"), "{text}");
    assert!(!text.contains("Inconclusive"), "{text}");
    assert_eq!(
        s.explanation[0],
        "The server stops using its cores before the SLOs break: at 2 cores it failed at 52 speakers while using \
         1.39 of them (CPU p95; its busiest thread, python, at 55% of a core). A serial part limits it: σ = 0.2 \
         means about 20% of each turn's work runs one piece at a time (e.g. on the one event loop every audio \
         packet passes through), so each added core buys less, and no number of cores takes one process past \
         about 150 speakers."
    );
}

#[test]
fn a_proportional_curve_with_ambiguous_peaks_lets_the_curve_decide() {
    let s = saturation::with_curve(Saturation::Inconclusive, None);
    assert_eq!(s, Saturation::Inconclusive, "no curve: the peak rule stands");
    let (half_one, text) = sized(HALF_ONE, None);
    assert_eq!(half_one.scaling.as_ref().unwrap().curve, "proportional");
    assert_eq!(half_one.saturated, Saturation::Cpu, "12% of seconds at ≥ 90% of 1 core");
    assert!(!text.contains("measure two allotments"), "{text}");
}

#[test]
fn one_allotment_still_gets_the_peak_based_answer() {
    let at_two = size(&one_allotment(ONE_TWO, 2.0)).unwrap();
    assert_eq!(at_two.saturated, Saturation::Inconclusive);
    assert!(
        at_two.explanation[0].starts_with(
            "Inconclusive — measure two allotments with --cpus: at 52 speakers the CPU peaks (p95 1.39, p99 1.47, \
             max 1.47 cores of 2 cores, 0% of seconds ≥ 90%)"
        ),
        "{}",
        at_two.explanation[0]
    );
    let at_one = size(&one_allotment(HALF_ONE, 1.0)).unwrap();
    assert_eq!(at_one.saturated, Saturation::Cpu);
}

#[test]
fn knees_at_half_and_one_core_predict_no_tier_as_a_single_number() {
    let (s, text) = sized(HALF_ONE, None);
    let sc = s.scaling.as_ref().unwrap();
    let tiers: Vec<(f64, Option<f64>, Option<KneeRange>)> =
        sc.predictions.iter().map(|p| (p.cores, p.knee, p.knee_range)).collect();
    assert_eq!(
        tiers,
        vec![
            (4.0, None, None),
            (8.0, None, None),
            (16.0, None, None),
            (24.0, None, None)
        ]
    );
    assert_eq!(
        sc.next_allotment,
        Some(NextAllotment {
            cores: 2.0,
            on_this_machine: true
        })
    );
    let json = serde_json::to_value(&s).unwrap();
    assert!(json["scaling"]["predictions"][0]["knee"].is_null());
    assert!(json["scaling"]["predictions"][0]["knee_range"].is_null());
    assert_eq!(json["scaling"]["next_allotment"]["cores"], 2.0);
    assert!(!text.contains('≈'), "{text}");
    assert!(
        text.contains(
            "- No prediction for current (4 cores), plan A (8 cores), plan B (16 cores), plan C (24 cores): beyond \
             2 cores (twice the largest measured allotment), and the knees measured admit no range"
        ),
        "{text}"
    );
    assert!(
        text.contains("- Measure 2 cores next (the most this machine gives: --cpus 0.5,1,2)"),
        "{text}"
    );
}

#[test]
fn knees_at_one_and_two_cores_give_a_figure_within_reach_and_ranges_beyond() {
    let (s, text) = sized(ONE_TWO, None);
    let sc = s.scaling.as_ref().unwrap();
    let current = &sc.predictions[0];
    assert_eq!((current.cores, current.knee.map(f64::round)), (4.0, Some(75.0)));
    let ranges: Vec<(f64, f64, f64)> = sc.predictions[1..]
        .iter()
        .map(|p| {
            let r = p.knee_range.unwrap();
            (p.cores, r.low.floor(), r.high.ceil())
        })
        .collect();
    assert_eq!(
        ranges,
        vec![(8.0, 92.0, 116.0), (16.0, 107.0, 146.0), (24.0, 114.0, 159.0)]
    );
    assert!(
        text.contains("- Predicted knees: current (4 cores) ≈ 75 (medium confidence)."),
        "{text}"
    );
    assert!(
        text.contains(
            "(σ from 0.15 to 0.24): plan A (8 cores) 92–116, plan B (16 cores) 107–146, plan C (24 cores) 114–159."
        ),
        "{text}"
    );
    assert!(
        text.contains("- Measure 8 cores next, on a machine that has that many cores"),
        "{text}"
    );
}

#[test]
fn headline_verdict_word_and_tier_agree_on_the_recorded_runs() {
    // 60 speakers: above the knee measured at 2 cores (50), inside the one
    // predicted at 4 (75); the server's own allotment is unknown.
    let (s, text) = sized(ONE_TWO, None);
    assert_eq!(
        (s.verdict, s.tier.as_deref(), s.verdict_cores),
        (Some(Verdict::Insufficient), Some("current"), Some(2.0))
    );
    assert_eq!(
        text.lines().next().unwrap(),
        "Knee by CPU allotment (steady load, at p95 first audio ≤ 2 s, stutter ≤ 1%, failed turns ≤ 1%): \
         1 core → 30, 2 cores → 50. 60 speakers at 2 cores, as measured (the server's own allotment is unknown): \
         Verdict: INSUFFICIENT — 52 speakers failed there (confidence: high, within measured load); predicted to \
         hold at 3 cores / 0.3 GB, inside the current tier (4 cores / 8 GB)."
    );
    for (json, targets) in [(ONE_TWO, [20, 45, 60, 100]), (HALF_ONE, [20, 29, 40, 100])] {
        for t in targets {
            let (s, text) = sized(json, Some(t));
            let line = text.lines().next().unwrap();
            let head = &line[line.find(" speakers at ").unwrap()..];
            let ctx = format!("T={t}: {line}");
            assert!(
                head.contains("as measured (the server's own allotment is unknown): Verdict:"),
                "{ctx}"
            );
            let top = s.scaling.as_ref().unwrap().points.last().unwrap().knee;
            let word = if t <= top { "SUFFICIENT" } else { "INSUFFICIENT" };
            assert!(head.contains(&format!("Verdict: {word} ")), "{ctx}");
            if word == "INSUFFICIENT" && s.tier.is_some() {
                assert!(head.contains("predicted to hold at"), "{ctx}");
                assert!(
                    !head.contains('→'),
                    "no tier as the answer to an unknown allotment: {ctx}"
                );
            }
        }
    }
}

#[test]
fn cost_lines_only_when_the_spread_is_smaller_than_the_figure() {
    let (s, _) = sized(ONE_TWO, None);
    assert!(
        !s.explanation
            .iter()
            .any(|l| l.starts_with("Each concurrent speaker costs"))
    );
    assert!(
        s.explanation.contains(
            &"Left out as noise: cores per speaker (0.02 ± 0.1: the spread is larger than the figure); MB per \
              speaker (0.87 ± 12.38: the spread is larger than the figure)."
                .to_string()
        ),
        "{:?}",
        s.explanation
    );
    assert!(
        s.explanation.contains(
            &"Measured directly: a turn costs 0.18 CPU-seconds; peak memory grew 0.78 MB per speaker from 30 to 50 \
              speakers."
                .to_string()
        ),
        "{:?}",
        s.explanation
    );
}
