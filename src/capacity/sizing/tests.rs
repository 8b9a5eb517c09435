//! Table tests of the sizing verdict: exact needs, tiers and verdicts.

use super::fit::fit_line;
use super::*;

/// A stage whose CPU p95 and peak memory follow `cpu(n)` and `mem(n)`.
fn stage(n: u32, passed: bool, cpu: f64, mem: f64) -> StageServer {
    StageServer {
        speakers: n,
        connected_devices: n,
        passed,
        cpu_cores_mean: cpu * 0.8,
        cpu_cores_p95: cpu,
        cpu_cores_max: cpu * 1.1,
        memory_mb_mean: mem * 0.9,
        memory_mb_max: mem,
        turns: u64::from(n) * 10,
        duration_s: 60.0,
        ..StageServer::default()
    }
}

/// Stages for the given counts, passing while `n <= knee`.
fn linear(counts: &[u32], knee: u32, cpu: (f64, f64), mem: (f64, f64)) -> Vec<StageServer> {
    counts
        .iter()
        .map(|&n| {
            let x = f64::from(n);
            stage(n, n <= knee, cpu.0 + cpu.1 * x, mem.0 + mem.1 * x)
        })
        .collect()
}

fn input(stages: Vec<StageServer>, cores: f64, mem_mb: f64, target: Option<u32>) -> SizingInput {
    SizingInput {
        stages,
        allotment: Allotment {
            cpu_cores: Some(cores),
            memory_mb: Some(mem_mb),
        },
        target_speakers: target,
        tiers: default_tiers(),
        slos: Slo::defaults()[..1].to_vec(),
    }
}

/// The knee-12 CPU-bound server: 0.5 + 0.25 n cores, 1200 + 300 n MB.
fn cpu_bound(target: u32) -> Sizing {
    let stages = linear(&[1, 2, 4, 8, 16, 12, 14, 13], 12, (0.5, 0.25), (1200.0, 300.0));
    size(&input(stages, 4.0, 8192.0, Some(target))).unwrap()
}

fn summary(s: &Sizing) -> (Verdict, Saturation, f64, f64, Option<&str>) {
    (
        s.verdict,
        s.saturated,
        s.cores_needed,
        s.memory_needed_mb,
        s.tier.as_deref(),
    )
}

#[test]
fn sufficient_when_target_within_knee_and_allotment() {
    // (0.5 + 0.25·10)·1.3 = 3.9 → 4.0; (1200 + 300·10)·1.3 = 5460 → 5504.
    let s = cpu_bound(10);
    let want = (Verdict::Sufficient, Saturation::Cpu, 4.0, 5504.0, Some("current"));
    assert_eq!(summary(&s), want);
    assert_eq!((s.knee, s.first_fail, s.confidence.as_str()), (12, Some(13), "high"));
    assert_eq!(s.memory_band, MemoryBand::Safe);
}

#[test]
fn insufficient_needs_plan_a() {
    // (0.5 + 0.25·20)·1.3 = 7.15 → 7.5; (1200 + 300·20)·1.3 = 9360 → 9408.
    let s = cpu_bound(20);
    let want = (Verdict::Insufficient, Saturation::Cpu, 7.5, 9408.0, Some("plan A"));
    assert_eq!(summary(&s), want);
    assert_eq!(s.confidence, "medium");
    assert_eq!(s.extrapolation, 1.25);
    let text = render_text(&s);
    let headline = text.lines().next().unwrap();
    assert_eq!(
        headline,
        "4 cores / 8 GB holds 12 concurrent speakers at p95 first audio ≤ 2 s; \
         20 speakers need about 7.5 cores / 9.2 GB → plan A (8 cores / 16 GB). \
         Verdict: INSUFFICIENT (confidence: medium, 1.2× beyond measured load)"
    );
}

#[test]
fn no_tier_fits() {
    // (0.5 + 25)·1.3 = 33.15 → 33.5 cores > plan C's 24; 31200·1.3 = 40560 → 40576.
    let s = cpu_bound(100);
    let want = (Verdict::Insufficient, Saturation::Cpu, 33.5, 40576.0, None);
    assert_eq!(summary(&s), want);
    assert_eq!(s.confidence, "low");
    assert!(s.explanation.iter().any(|l| l.contains("No listed tier")));
    assert!(render_text(&s).contains("no listed tier fits"));
}

#[test]
fn hot_thread_says_more_cores_will_not_help() {
    // 0.2 + 0.1 n cores, 500 + 50 n MB; knee 6, first fail 7 with a pinned thread.
    let mut stages = linear(&[1, 2, 4, 8, 6, 7], 6, (0.2, 0.1), (500.0, 50.0));
    for s in stages.iter_mut().filter(|s| s.speakers >= 7) {
        s.hot_thread_p95 = Some(0.95);
        s.hot_thread_name = Some("asr-worker".into());
        s.throttled_ratio_max = Some(0.3);
    }
    // (0.2 + 2)·1.3 = 2.86 → 3.0 cores; (500 + 1000)·1.3 = 1950 → 1984 MB.
    let s = size(&input(stages.clone(), 4.0, 8192.0, Some(20))).unwrap();
    let want = (
        Verdict::Insufficient,
        Saturation::HotThread,
        3.0,
        1984.0,
        Some("current"),
    );
    assert_eq!(summary(&s), want);
    assert_eq!(s.processes_needed, Some(4));
    let text = render_text(&s);
    assert!(text.contains("more cores will not raise the knee"), "{text}");
    assert!(text.contains("more server processes or instances will"), "{text}");
    assert!(
        text.contains("20 speakers need 4 server processes or instances"),
        "{text}"
    );
    let within = size(&input(stages, 4.0, 8192.0, Some(5))).unwrap();
    assert_eq!(within.verdict, Verdict::Sufficient);
}

#[test]
fn memory_saturation_outranks_throttling() {
    // 0.3 + 0.2 n cores, 1000 + 700 n MB on 8 cores / 8 GB; stage 10 peaks at 8000 MB.
    let mut stages = linear(&[1, 2, 4, 8, 10], 8, (0.3, 0.2), (1000.0, 700.0));
    stages[4].throttled_ratio_max = Some(0.2);
    // (0.3 + 2.4)·1.3 = 3.51 → 4.0; (1000 + 8400)·1.3 = 12220 → 12224.
    let s = size(&input(stages, 8.0, 8192.0, Some(12))).unwrap();
    let want = (Verdict::Insufficient, Saturation::Memory, 4.0, 12224.0, Some("plan A"));
    assert_eq!(summary(&s), want);
    assert_eq!(s.memory_band, MemoryBand::Danger);
    assert_eq!((s.knee, s.confidence.as_str()), (8, "medium"));
}

#[test]
fn none_saturation_means_the_limit_is_outside() {
    // 0.2 + 0.05 n cores, 400 + 20 n MB: nothing busy, yet 11 speakers fail.
    let stages = linear(&[1, 2, 4, 8, 16, 12, 10, 11], 10, (0.2, 0.05), (400.0, 20.0));
    // (0.2 + 1.0)·1.3 = 1.56 → 2.0; (400 + 400)·1.3 = 1040 → 1088.
    let s = size(&input(stages.clone(), 4.0, 8192.0, Some(20))).unwrap();
    let want = (Verdict::Insufficient, Saturation::None, 2.0, 1088.0, Some("current"));
    assert_eq!(summary(&s), want);
    assert!(s.explanation.iter().any(|l| l.contains("outside")), "{s:?}");
    let headline = render_text(&s).lines().next().unwrap_or_default().to_string();
    assert!(headline.contains("limit is outside the container"), "{headline}");
    assert_eq!(s.per_speaker.mb_per_device, None, "devices == speakers");
    let ok = size(&input(stages, 4.0, 8192.0, Some(8))).unwrap();
    assert_eq!(ok.verdict, Verdict::Sufficient);
}

#[test]
fn throttling_and_cpu_saturation() {
    let mut stages = linear(&[1, 2, 4, 8], 4, (0.1, 0.375), (300.0, 10.0));
    // Stage 8 uses 3.1 of 4 cores (78 %): not cpu by share, but throttled.
    stages[3].throttled_ratio_max = Some(0.25);
    let s = size(&input(stages.clone(), 4.0, 8192.0, None)).unwrap();
    assert_eq!(s.saturated, Saturation::Throttling);
    stages[3].throttled_ratio_max = Some(0.05);
    stages[3].cpu_cores_p95 = 3.7;
    let s = size(&input(stages, 4.0, 8192.0, None)).unwrap();
    assert_eq!(s.saturated, Saturation::Cpu);
}

#[test]
fn no_target_sizes_the_knee_and_falls_back_to_current_tier() {
    let stages = linear(&[1, 2, 4, 8, 16, 12, 14, 13], 12, (0.5, 0.25), (1200.0, 300.0));
    let mut inp = input(stages, 4.0, 8192.0, None);
    inp.allotment = Allotment::default();
    let s = size(&inp).unwrap();
    // Knee 12: (0.5 + 3)·1.3 = 4.55 → 5.0 cores > the current tier's 4;
    // (1200 + 3600)·1.3 = 6240 → 6272 MB.
    assert_eq!(
        summary(&s),
        (Verdict::Insufficient, Saturation::Cpu, 5.0, 6272.0, Some("plan A"))
    );
    assert_eq!((s.current_cores, s.current_memory_mb), (Some(4.0), Some(8192.0)));
    assert_eq!(s.target_speakers, None);
}

#[test]
fn all_passing_target_beyond_measured_uses_the_model() {
    let stages = linear(&[1, 2, 4, 8], 100, (0.2, 0.1), (500.0, 50.0));
    let s = size(&input(stages, 4.0, 8192.0, Some(12))).unwrap();
    // (0.2 + 1.2)·1.3 = 1.82 → 2.0; (500 + 600)·1.3 = 1430 → 1472.
    assert_eq!(
        summary(&s),
        (Verdict::Sufficient, Saturation::None, 2.0, 1472.0, Some("current"))
    );
    assert_eq!((s.knee, s.first_fail), (8, None));
    assert!(s.explanation[0].starts_with("No stage failed"));
}

#[test]
fn start_failed_has_knee_zero() {
    let stages = vec![stage(1, false, 3.9, 500.0)];
    let s = size(&input(stages, 4.0, 8192.0, None)).unwrap();
    assert_eq!((s.knee, s.verdict), (0, Verdict::Insufficient));
    assert_eq!(s.per_speaker.cores_spread, None);
}

#[test]
fn per_speaker_fit_spread_turns_and_devices() {
    let mut stages = linear(&[2, 4, 6, 8], 8, (1.0, 0.5), (1000.0, 100.0));
    stages[1].cpu_cores_p95 += 0.2;
    stages[2].cpu_cores_p95 -= 0.2;
    for s in &mut stages {
        s.connected_devices = s.speakers * 2;
    }
    let c = size(&input(stages.clone(), 8.0, 16384.0, None)).unwrap().per_speaker;
    assert!((c.cores_per_speaker - 0.48).abs() < 1e-9, "{c:?}");
    assert!((c.baseline_cores - 1.1).abs() < 1e-9, "{c:?}");
    // Residuals −0.06, 0.18, −0.18, 0.06 → sqrt(0.072 / 2).
    assert!((c.cores_spread.unwrap() - 0.036f64.sqrt()).abs() < 1e-9, "{c:?}");
    assert!(c.mb_spread.unwrap() < 1e-6);
    assert!((c.mb_per_device.unwrap() - 50.0).abs() < 1e-9, "{c:?}");
    // Σ(mean · 60 s) / Σ turns, with 10 turns per speaker: 60·0.8·14 / 200.
    let want = 60.0 * 0.8 * 14.0 / 200.0;
    assert!((c.cpu_seconds_per_turn.unwrap() - want).abs() < 1e-9);
    let two = size(&input(stages[..2].to_vec(), 8.0, 16384.0, None)).unwrap();
    assert_eq!(two.per_speaker.cores_spread, None);
    assert_eq!(two.per_speaker.mb_per_device.map(|_| ()), Some(()));
}

#[test]
fn fit_edge_cases() {
    let flat = fit_line(&[(4.0, 2.0), (4.0, 2.0)]);
    assert_eq!((flat.slope, flat.intercept), (0.5, 0.0));
    let falling = fit_line(&[(1.0, 3.0), (2.0, 2.0), (3.0, 1.0)]);
    assert_eq!((falling.slope, falling.intercept), (0.0, 2.0));
    let convex = fit_line(&[(1.0, 0.0), (2.0, 1.0), (3.0, 4.0)]);
    assert_eq!(convex.intercept, 0.0);
    assert!((convex.slope - 14.0 / 14.0).abs() < 1e-12, "{convex:?}");
}

#[test]
fn memory_bands_and_rounding() {
    let bands = [0.79, 0.80, 0.89, 0.90, 0.94, 0.95, 1.2].map(|s| MemoryBand::of(s * 1000.0, Some(1000.0)));
    use MemoryBand::*;
    assert_eq!(bands, [Safe, Elevated, Elevated, Warning, Warning, Danger, Danger]);
    assert_eq!(MemoryBand::of(500.0, None), Unknown);
    assert_eq!([3.9, 4.0, 4.0000000001, 4.01].map(round_cores), [4.0, 4.0, 4.0, 4.5]);
    assert_eq!([1.0, 64.0, 65.0].map(round_mb), [64.0, 64.0, 128.0]);
}

#[test]
fn serde_field_names_are_fixed() {
    let json = serde_json::to_value(cpu_bound(20)).unwrap();
    assert_eq!(json["verdict"], "INSUFFICIENT");
    assert_eq!(json["saturated"], "cpu");
    assert_eq!(json["memory_band"], "safe");
    assert_eq!(json["tier"], "plan A");
    for key in [
        "cores_per_speaker",
        "cores_spread",
        "mb_per_speaker",
        "mb_spread",
        "baseline_cores",
        "baseline_mb",
        "cpu_seconds_per_turn",
        "mb_per_device",
    ] {
        assert!(json["per_speaker"].get(key).is_some(), "{key}");
    }
    let back: Sizing = serde_json::from_value(json).unwrap();
    assert_eq!(back.verdict, Verdict::Insufficient);
    let hot = serde_json::to_value(Saturation::HotThread).unwrap();
    assert_eq!(hot, "hot_thread");
}

#[test]
fn invalid_input_is_a_typed_error() {
    assert_eq!(size(&SizingInput::default()), Err(SizingError::NoStages));
    let mut bad = input(vec![stage(2, true, f64::NAN, 10.0)], 4.0, 8192.0, None);
    assert!(matches!(size(&bad), Err(SizingError::InvalidValue { .. })));
    bad.stages = vec![stage(2, true, 1.0, 10.0)];
    bad.allotment.cpu_cores = Some(-1.0);
    assert!(matches!(size(&bad), Err(SizingError::InvalidValue { .. })));
}
