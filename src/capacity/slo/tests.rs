//! Tests of SLO parsing, display round-trips and the pass/fail rule.
use super::*;

fn stage(first_audio_p95: f64, count: u64) -> StageMeasure {
    let p = Percentiles {
        count,
        p95: first_audio_p95,
        ..Percentiles::default()
    };
    StageMeasure {
        latency_ms: BTreeMap::from([("first_audio".to_string(), p)]),
        stutter_ratio: 0.005,
        failed_ratio: 0.0,
        turns_completed: count,
    }
}

#[test]
fn parses_latency_units_into_ms() {
    for (text, ms) in [
        ("first_audio.p95<=2s", 2000.0),
        ("turn.p99<=8000ms", 8000.0),
        ("stt.mean<=1.5s", 1500.0),
        (" llm.max < 750 ms ", 750.0),
    ] {
        let slo = Slo::parse(text).expect(text);
        assert_eq!(slo.limit, ms, "{text}");
    }
    assert_eq!(Slo::parse("llm.max<750ms").unwrap().comparison, Comparison::Below);
}

#[test]
fn parses_ratios() {
    let s = Slo::parse("stutter_ratio<=0.01").unwrap();
    assert_eq!(s.metric, SloMetric::StutterRatio);
    assert_eq!(s.limit, 0.01);
    assert_eq!(Slo::parse("failed_ratio<0.05").unwrap().metric, SloMetric::FailedRatio);
}

#[test]
fn display_round_trips() {
    for text in [
        "first_audio.p95<=2s",
        "turn.p99<=8000ms",
        "stt.mean<=1.5s",
        "tts_start.p50<300ms",
        "stutter_ratio<=0.01",
        "failed_ratio<0.2",
    ] {
        let slo = Slo::parse(text).unwrap();
        let shown = slo.to_string();
        assert_eq!(Slo::parse(&shown).unwrap(), slo, "{text} -> {shown}");
    }
    assert_eq!(
        Slo::parse("first_audio.p95<=2s").unwrap().to_string(),
        "first_audio.p95<=2000ms"
    );
}

#[test]
fn errors_are_clear() {
    let err = Slo::parse("first_sound.p95<=2s").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, SloError::UnknownMetric { .. }));
    for name in LATENCY_METRICS.iter().chain(RATIO_METRICS.iter()) {
        assert!(msg.contains(name), "{msg} lacks {name}");
    }
    assert!(msg.contains("p95"), "{msg}");
    assert!(matches!(
        Slo::parse("first_audio.p95>=2s"),
        Err(SloError::MissingOperator { .. })
    ));
    assert!(matches!(
        Slo::parse("first_audio.p42<=2s"),
        Err(SloError::UnknownMetric { .. })
    ));
    for bad in [
        "first_audio.p95<=2000",
        "first_audio.p95<=fast",
        "first_audio.p95<=-1s",
        "stutter_ratio<=5",
        "failed_ratio<=NaN",
    ] {
        assert!(matches!(Slo::parse(bad), Err(SloError::BadLimit { .. })), "{bad}");
    }
}

#[test]
fn defaults_are_the_three_documented() {
    let shown: Vec<String> = Slo::defaults().iter().map(Slo::to_string).collect();
    assert_eq!(
        shown,
        ["first_audio.p95<=2000ms", "stutter_ratio<=0.01", "failed_ratio<=0.01"]
    );
    assert_eq!(Slo::defaults()[0].describe(), "p95 first audio ≤ 2 s");
    assert_eq!(Slo::defaults()[1].describe(), "stutter ≤ 1%");
}

#[test]
fn check_passes_and_fails_on_limit() {
    let slo = Slo::parse("first_audio.p95<=2s").unwrap();
    let ok = slo.check(&stage(2000.0, 10));
    assert_eq!(
        ok,
        SloResult {
            slo: "first_audio.p95<=2000ms".into(),
            value: Some(2000.0),
            limit: 2000.0,
            passed: true
        }
    );
    assert!(!slo.check(&stage(2000.1, 10)).passed);
    let strict = Slo::parse("first_audio.p95<2s").unwrap();
    assert!(!strict.check(&stage(2000.0, 10)).passed);
}

#[test]
fn no_samples_fails_with_no_value() {
    let slo = Slo::parse("first_audio.p95<=2s").unwrap();
    let r = slo.check(&stage(0.0, 0));
    assert_eq!((r.value, r.passed), (None, false));
    let missing = Slo::parse("turn.p99<=8s").unwrap().check(&stage(10.0, 5));
    assert_eq!((missing.value, missing.passed), (None, false));
    let results = check_all(&Slo::defaults(), &stage(0.0, 0));
    assert!(results.iter().all(|r| !r.passed), "{results:?}");
    assert_eq!(results[1].value, None);
    assert_eq!(results[2].value, Some(0.0));
}

#[test]
fn ratios_check_and_all_passed() {
    let m = stage(1500.0, 20);
    let results = check_all(&Slo::defaults(), &m);
    assert!(all_passed(&results), "{results:?}");
    let mut stuttery = m.clone();
    stuttery.stutter_ratio = 0.02;
    assert!(!all_passed(&check_all(&Slo::defaults(), &stuttery)));
}

#[test]
fn serde_uses_the_string_form() {
    let slo = Slo::parse("stt.mean<=1.5s").unwrap();
    let json = serde_json::to_string(&slo).unwrap();
    assert_eq!(json, "\"stt.mean<=1500ms\"");
    let back: Slo = serde_json::from_str(&json).unwrap();
    assert_eq!(back, slo);
    assert!(serde_json::from_str::<Slo>("\"nope<=1\"").is_err());
}
