//! Table tests of the sizing verdict at one allotment: exact needs, tiers
//! and verdicts, saturation from peaks, tier/verdict agreement, no verdict
//! without a target, and memory from baseline + devices + speakers.

use super::fit::fit_line;
use super::saturation::judge;
use super::*;

/// A stage whose CPU p95 and peak memory follow `cpu(n)` and `mem(n)`.
fn stage(n: u32, passed: bool, cpu: f64, mem: f64) -> StageServer {
    StageServer {
        speakers: n,
        connected_devices: n,
        passed,
        cpu_cores_mean: cpu * 0.8,
        cpu_cores_p95: cpu,
        cpu_cores_p99: cpu * 1.05,
        cpu_cores_max: cpu * 1.1,
        memory_mb_mean: mem * 0.9,
        memory_mb_max: mem,
        turns: u64::from(n) * 10,
        duration_s: 60.0,
        ..StageServer::default()
    }
}

/// Stages for the given counts, passing while `n <= knee`.
pub(super) fn linear(counts: &[u32], knee: u32, cpu: (f64, f64), mem: (f64, f64)) -> Vec<StageServer> {
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
        ..SizingInput::default()
    }
}

/// The knee-12 CPU-bound server: 0.5 + 0.25 n cores, 1200 + 300 n MB.
fn cpu_bound(target: u32) -> Sizing {
    let stages = linear(&[1, 2, 4, 8, 16, 12, 14, 13], 12, (0.5, 0.25), (1200.0, 300.0));
    size(&input(stages, 4.0, 8192.0, Some(target))).unwrap()
}

fn summary(s: &Sizing) -> (Option<Verdict>, Saturation, f64, f64, Option<&str>) {
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
    let want = (Some(Verdict::Sufficient), Saturation::Cpu, 4.0, 5504.0, Some("current"));
    assert_eq!(summary(&s), want);
    assert_eq!((s.knee, s.first_fail, s.confidence.as_str()), (12, Some(13), "high"));
    assert_eq!(s.memory_band, MemoryBand::Safe);
}

#[test]
fn insufficient_needs_plan_a() {
    // (0.5 + 0.25·20)·1.3 = 7.15 → 7.5 (≥ 4 × 20 / 12 = 6.67 → 7); 9360 → 9408 MB.
    let s = cpu_bound(20);
    let want = (
        Some(Verdict::Insufficient),
        Saturation::Cpu,
        7.5,
        9408.0,
        Some("plan A"),
    );
    assert_eq!(summary(&s), want);
    assert_eq!(s.confidence, "medium");
    assert_eq!(s.extrapolation, 1.25);
    let text = render_text(&s);
    let headline = text.lines().next().unwrap();
    assert_eq!(
        headline,
        "4 cores / 8 GB holds 12 concurrent speakers (steady load) at p95 first audio ≤ 2 s. \
         20 speakers at 4 cores / 8 GB (the server's allotment): Verdict: INSUFFICIENT — 13 speakers failed there \
         (confidence: medium, 1.2× beyond measured load); need about 7.5 cores / 9.2 GB → plan A (8 cores / 16 GB)."
    );
}

#[test]
fn measured_knee_outranks_a_cheap_cost_model() {
    // CPU p95 flat at 3.7 of 4 cores (bursty); the line says 0 per speaker,
    // but 12 speakers failed: 20 need at least 4 × 20 / 11 = 7.27 → 7.5 cores.
    let mut stages = linear(&[1, 2, 4, 8, 16, 12, 10, 11], 11, (3.7, 0.0), (500.0, 0.0));
    for s in &mut stages {
        s.cpu_burst_share = Some(0.2);
    }
    let s = size(&input(stages, 4.0, 8192.0, Some(20))).unwrap();
    assert_eq!(
        summary(&s),
        (Some(Verdict::Insufficient), Saturation::Cpu, 7.5, 704.0, Some("plan A"))
    );
}

#[test]
fn no_tier_fits() {
    // (0.5 + 25)·1.3 = 33.15 → 33.5 cores > plan C's 24; 31200·1.3 = 40560 → 40576.
    let s = cpu_bound(100);
    let want = (Some(Verdict::Insufficient), Saturation::Cpu, 33.5, 40576.0, None);
    assert_eq!(summary(&s), want);
    assert_eq!(s.confidence, "low");
    assert!(s.explanation.iter().any(|l| l.contains("No listed tier")));
    assert!(render_text(&s).contains("more than any listed tier"));
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
    let s = size(&input(stages.clone(), 4.0, 8192.0, Some(20))).unwrap();
    assert_eq!(
        summary(&s),
        (Some(Verdict::Insufficient), Saturation::HotThread, 3.0, 1984.0, None)
    );
    assert_eq!(s.processes_needed, Some(4));
    let text = render_text(&s);
    assert!(text.contains("more cores will not raise the knee"), "{text}");
    assert!(text.contains("more server processes or instances will"), "{text}");
    assert!(
        text.contains("Verdict: INSUFFICIENT — 7 speakers failed there (confidence: low, 2.5× beyond measured load); need 4 server processes or instances"),
        "{text}"
    );
    let within = size(&input(stages, 4.0, 8192.0, Some(5))).unwrap();
    assert_eq!(within.verdict, Some(Verdict::Sufficient));
}

#[test]
fn memory_saturation_outranks_throttling() {
    // 0.3 + 0.2 n cores, 1000 + 700 n MB on 8 cores / 8 GB; stage 10 peaks at 8000 MB.
    let mut stages = linear(&[1, 2, 4, 8, 10], 8, (0.3, 0.2), (1000.0, 700.0));
    stages[4].throttled_ratio_max = Some(0.2);
    // (0.3 + 2.4)·1.3 = 3.51 → 4.0; (1000 + 8400)·1.3 = 12220 → 12224 (≥ 8192 × 12 / 8).
    let s = size(&input(stages, 8.0, 8192.0, Some(12))).unwrap();
    let want = (
        Some(Verdict::Insufficient),
        Saturation::Memory,
        4.0,
        12288.0,
        Some("plan A"),
    );
    assert_eq!(summary(&s), want);
    assert_eq!(s.memory_band, MemoryBand::Danger);
    assert_eq!((s.knee, s.confidence.as_str()), (8, "medium"));
}

#[test]
fn none_saturation_means_the_limit_is_outside() {
    // 0.2 + 0.05 n cores: p99 0.79 of 4 cores at 11 speakers, yet they fail.
    let stages = linear(&[1, 2, 4, 8, 16, 12, 10, 11], 10, (0.2, 0.05), (400.0, 20.0));
    let s = size(&input(stages.clone(), 4.0, 8192.0, Some(20))).unwrap();
    assert_eq!(
        summary(&s),
        (Some(Verdict::Insufficient), Saturation::None, 2.0, 1088.0, None)
    );
    assert!(s.explanation.iter().any(|l| l.contains("outside")), "{s:?}");
    let headline = render_text(&s).lines().next().unwrap_or_default().to_string();
    assert!(headline.contains("limit is outside the container"), "{headline}");
    assert_eq!(s.per_speaker.mb_per_device, None, "devices == speakers");
    let ok = size(&input(stages, 4.0, 8192.0, Some(8))).unwrap();
    assert_eq!(ok.verdict, Some(Verdict::Sufficient));
}

/// One judged stage with the given CPU peaks (cores) and extras.
fn peaks(p95: f64, p99: f64, burst: Option<f64>) -> StageServer {
    StageServer {
        speakers: 30,
        cpu_cores_p95: p95,
        cpu_cores_p99: p99,
        cpu_cores_max: p99,
        cpu_burst_share: burst,
        memory_mb_max: 200.0,
        ..StageServer::default()
    }
}

#[test]
fn saturation_from_peaks_table() {
    let hot = |mut s: StageServer, share: f64| {
        s.hot_thread_p95 = Some(share);
        s.hot_thread_name = Some("event-loop".into());
        s
    };
    let throttled = |mut s: StageServer| {
        s.throttled_ratio_max = Some(0.2);
        s
    };
    use Saturation as S;
    type Row = (&'static str, StageServer, Option<f64>, Option<f64>, Saturation);
    let rows: Vec<Row> = vec![
        (
            "bursty single core",
            peaks(0.9, 1.0, Some(0.18)),
            Some(1.0),
            None,
            S::Cpu,
        ),
        (
            "bursts at a low p95",
            peaks(0.6, 0.98, Some(0.06)),
            Some(1.0),
            None,
            S::Cpu,
        ),
        (
            "p95 at 90% without burst share",
            peaks(0.92, 0.95, None),
            Some(1.0),
            None,
            S::Cpu,
        ),
        ("low and steady", peaks(0.3, 0.35, Some(0.0)), Some(1.0), None, S::None),
        (
            "mixed: p99 between 60% and 90%",
            peaks(0.7, 0.85, Some(0.02)),
            Some(1.0),
            None,
            S::Inconclusive,
        ),
        ("allotment unknown", peaks(0.3, 0.35, None), None, None, S::Inconclusive),
        (
            "pinned thread, idle process",
            hot(peaks(1.0, 1.1, Some(0.0)), 0.95),
            Some(4.0),
            None,
            S::HotThread,
        ),
        (
            "pinned thread, busy process",
            hot(peaks(0.95, 1.0, Some(0.3)), 0.95),
            Some(1.0),
            None,
            S::Cpu,
        ),
        (
            "low p99 but a hot thread",
            hot(peaks(0.8, 0.85, Some(0.0)), 0.92),
            Some(1.5),
            None,
            S::Inconclusive,
        ),
        (
            "throttled",
            throttled(peaks(0.5, 0.7, Some(0.0))),
            Some(1.0),
            None,
            S::Throttling,
        ),
        (
            "memory at 90%",
            throttled(peaks(0.9, 1.0, Some(0.3))),
            Some(1.0),
            Some(210.0),
            S::Memory,
        ),
    ];
    for (name, s, cores, mem, want) in rows {
        assert_eq!(judge(&s, cores, mem), want, "{name}");
    }
}

#[test]
fn saturation_lines_name_their_figures() {
    let stages = vec![
        StageServer {
            passed: true,
            speakers: 16,
            ..peaks(0.5, 0.6, Some(0.0))
        },
        StageServer {
            passed: false,
            ..peaks(0.9, 1.0, Some(0.18))
        },
    ];
    let mut inp = input(stages, 1.0, 8192.0, None);
    inp.allotment.memory_mb = None;
    let s = size(&inp).unwrap();
    assert_eq!(s.saturated, Saturation::Cpu);
    let line = &s.explanation[0];
    assert!(line.contains("cpu (bursts: 18% of seconds ≥ 90% of 1 core)"), "{line}");
    assert!(line.contains("p95 0.9, p99 1, max 1 cores"), "{line}");
    assert!(
        s.evidence.iter().any(|e| e.contains("18% of seconds ≥ 90% of it")),
        "{:?}",
        s.evidence
    );
}

#[test]
fn unknown_allotment_is_inconclusive_and_printed_as_unknown() {
    // The reported case: 1 core, but nobody said so; CPU p95 0.9 cores.
    let mut stages = vec![peaks(0.5, 0.6, None), peaks(0.9, 0.95, None)];
    stages[0].speakers = 30;
    stages[0].passed = true;
    stages[1].speakers = 32;
    let inp = SizingInput {
        stages,
        target_speakers: Some(32),
        tiers: default_tiers(),
        ..SizingInput::default()
    };
    let s = size(&inp).unwrap();
    assert_eq!(
        summary(&s),
        (
            Some(Verdict::Insufficient),
            Saturation::Inconclusive,
            s.cores_needed,
            s.memory_needed_mb,
            None
        )
    );
    let text = render_text(&s);
    assert!(text.starts_with("This server (allotment unknown) holds 30"), "{text}");
    assert!(!text.contains("8 GB"), "no tier's memory as the allotment: {text}");
    assert!(
        text.contains("inconclusive — measure two allotments with --cpus"),
        "{text}"
    );
}

#[test]
fn no_verdict_without_a_target() {
    let stages = linear(&[1, 2, 4, 8, 16, 12, 14, 13], 12, (0.5, 0.25), (1200.0, 300.0));
    let s = size(&input(stages, 4.0, 8192.0, None)).unwrap();
    assert_eq!((s.verdict, s.tier.as_deref()), (None, None));
    let text = render_text(&s);
    assert!(!text.contains("Verdict"), "{text}");
    assert!(!text.lines().next().unwrap().contains("SUFFICIENT"), "{text}");
    assert!(s.explanation.iter().any(|l| l.starts_with("No --target-speakers")));
    let json = serde_json::to_value(&s).unwrap();
    assert!(json["verdict"].is_null());
}

/// The agreement rule over a grid of servers, allotments and targets.
#[test]
fn tier_and_verdict_always_agree() {
    let servers: Vec<(&str, Vec<StageServer>)> = vec![
        (
            "cpu",
            linear(&[1, 2, 4, 8, 16, 12, 14, 13], 12, (0.5, 0.25), (1200.0, 300.0)),
        ),
        (
            "outside",
            linear(&[1, 2, 4, 8, 16, 12, 10, 11], 10, (0.2, 0.05), (400.0, 20.0)),
        ),
        ("memory", linear(&[1, 2, 4, 8, 10], 8, (0.3, 0.2), (1000.0, 700.0))),
        ("cheap", linear(&[1, 2, 4, 8, 16, 32], 100, (0.1, 0.01), (100.0, 1.0))),
    ];
    let allotments = [
        (Some(2.0), Some(4096.0)),
        (Some(4.0), Some(8192.0)),
        (Some(8.0), None),
        (None, None),
    ];
    let mut checked = 0;
    for (name, stages) in &servers {
        for &(cpu_cores, memory_mb) in &allotments {
            for target in [1, 5, 10, 12, 13, 20, 40, 100] {
                let mut inp = input(stages.clone(), 1.0, 1.0, Some(target));
                inp.allotment = Allotment { cpu_cores, memory_mb };
                let s = size(&inp).unwrap();
                let ctx = format!("{name} {cpu_cores:?}/{memory_mb:?} T={target}: {s:?}");
                let Some(tier) = s.tier.as_ref().and_then(|t| inp.tiers.iter().find(|x| &x.name == t)) else {
                    checked += 1;
                    continue;
                };
                let mem = tier.memory_gb * 1024.0;
                match s.verdict {
                    Some(Verdict::Sufficient) => {
                        assert!(cpu_cores.is_none_or(|c| tier.cpu_cores <= c), "{ctx}");
                        assert!(memory_mb.is_none_or(|m| mem <= m), "{ctx}");
                    }
                    Some(Verdict::Insufficient) => {
                        let bigger = cpu_cores.is_none_or(|c| tier.cpu_cores > c) || memory_mb.is_none_or(|m| mem > m);
                        assert!(bigger, "INSUFFICIENT names a tier no larger than the allotment: {ctx}");
                        assert!(
                            matches!(
                                s.saturated,
                                Saturation::Cpu | Saturation::Throttling | Saturation::Memory
                            ),
                            "{ctx}"
                        );
                    }
                    None => panic!("a target always gets a verdict: {ctx}"),
                }
                if s.knee < target && s.first_fail.is_some_and(|f| f <= target) {
                    assert_eq!(
                        s.verdict,
                        Some(Verdict::Insufficient),
                        "measured failure below T: {ctx}"
                    );
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 4 * 4 * 8);
}

#[test]
fn memory_from_baseline_connections_and_speakers() {
    // memory = 100 + 2 × devices + 5 × speakers, devices varying on their own.
    let rows = [(1, 10), (2, 10), (4, 20), (8, 20), (8, 40)];
    let stages: Vec<StageServer> = rows
        .iter()
        .map(|&(n, d)| StageServer {
            connected_devices: d,
            ..stage(
                n,
                true,
                0.1 * f64::from(n),
                100.0 + 2.0 * f64::from(d) + 5.0 * f64::from(n),
            )
        })
        .collect();
    let mut inp = input(stages.clone(), 4.0, 8192.0, Some(10));
    inp.devices_for_target = Some(30);
    let s = size(&inp).unwrap();
    let c = s.per_speaker;
    assert!((c.baseline_mb - 100.0).abs() < 1e-6, "{c:?}");
    assert!((c.mb_per_device.unwrap() - 2.0).abs() < 1e-9, "{c:?}");
    assert!((c.mb_per_speaker - 5.0).abs() < 1e-9, "{c:?}");
    // (100 + 2·30 + 5·10)·1.3 = 273 → 320.
    assert_eq!(s.memory_needed_mb, 320.0);
    // Idle devices cost memory, not CPU: 100 idle devices more, same speakers.
    inp.devices_for_target = Some(130);
    assert_eq!(
        size(&inp).unwrap().memory_needed_mb,
        576.0,
        "(100 + 260 + 50)·1.3 = 533 → 576"
    );
    assert_eq!(size(&inp).unwrap().cores_needed, s.cores_needed);
    // Devices = speakers everywhere: not separable, all per speaker.
    let together = linear(&[1, 2, 4, 8], 8, (0.1, 0.1), (100.0, 7.0));
    let t = size(&input(together, 4.0, 8192.0, None)).unwrap().per_speaker;
    assert_eq!((t.mb_per_device, t.mb_per_speaker), (None, 7.0));
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
fn all_passing_target_beyond_measured_uses_the_model() {
    let stages = linear(&[1, 2, 4, 8], 100, (0.2, 0.1), (500.0, 50.0));
    let s = size(&input(stages, 4.0, 8192.0, Some(12))).unwrap();
    // (0.2 + 1.2)·1.3 = 1.82 → 2.0; (500 + 600)·1.3 = 1430 → 1472; p99 1.05 < 2.4.
    assert_eq!(
        summary(&s),
        (
            Some(Verdict::Sufficient),
            Saturation::None,
            2.0,
            1472.0,
            Some("current")
        )
    );
    assert_eq!((s.knee, s.first_fail), (8, None));
    assert!(s.explanation[0].starts_with("No stage failed"));
}

#[test]
fn start_failed_has_knee_zero() {
    let stages = vec![stage(1, false, 3.9, 500.0)];
    let s = size(&input(stages, 4.0, 8192.0, Some(1))).unwrap();
    assert_eq!((s.knee, s.verdict), (0, Some(Verdict::Insufficient)));
    assert_eq!(s.per_speaker.cores_spread, None);
}

#[test]
fn per_speaker_fit_spread_and_turns() {
    let mut stages = linear(&[2, 4, 6, 8], 8, (1.0, 0.5), (1000.0, 100.0));
    stages[1].cpu_cores_p95 += 0.2;
    stages[2].cpu_cores_p95 -= 0.2;
    let c = size(&input(stages.clone(), 8.0, 16384.0, None)).unwrap().per_speaker;
    assert!((c.cores_per_speaker - 0.48).abs() < 1e-9, "{c:?}");
    assert!((c.baseline_cores - 1.1).abs() < 1e-9, "{c:?}");
    // Residuals −0.06, 0.18, −0.18, 0.06 → sqrt(0.072 / 2).
    assert!((c.cores_spread.unwrap() - 0.036f64.sqrt()).abs() < 1e-9, "{c:?}");
    assert!(c.mb_spread.unwrap() < 1e-6);
    // Σ(mean · 60 s) / Σ turns, with 10 turns per speaker: 60·0.8·14 / 200.
    let want = 60.0 * 0.8 * 14.0 / 200.0;
    assert!((c.cpu_seconds_per_turn.unwrap() - want).abs() < 1e-9);
    let two = size(&input(stages[..2].to_vec(), 8.0, 16384.0, None)).unwrap();
    assert_eq!(two.per_speaker.cores_spread, None);
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
    assert_eq!(json["shape"], "");
    assert!(json["evidence"].as_array().is_some_and(|e| !e.is_empty()));
    assert!(json["scaling"].is_null());
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
    assert_eq!(back.verdict, Some(Verdict::Insufficient));
    assert_eq!(serde_json::to_value(Saturation::HotThread).unwrap(), "hot_thread");
    assert_eq!(serde_json::to_value(Saturation::Inconclusive).unwrap(), "inconclusive");
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
