//! Capacity search on a paused clock: against a mock whose LLM has 4
//! workers of 1 s, the search must find the same knee as a brute-force
//! sweep, with fewer stages, and list every stage it ran; `--shape burst`
//! gives a lower knee than `steady`, both exactly as the worker arithmetic
//! says; a stage with too few turns is extended, then inconclusive; with
//! 10 s turns the probe sizes the first stage so it is not extended.
//!
//! A test binary of its own: the comparison sits exactly at the SLO
//! boundary, and other tests loading the cores at the same time can shift
//! loopback delivery against the paused clock's auto-advance. Cargo runs
//! test binaries one at a time, so here nothing competes.

use std::time::Duration;
use tokio_util::sync::CancellationToken;
use xiaozhi_fleet::app::capacity::text::stage_line;
use xiaozhi_fleet::capacity::probe::probed_start;
use xiaozhi_fleet::capacity::run::{CapacityOptions, measure_of, run_capacity, run_stage};
use xiaozhi_fleet::capacity::search::{Resolution, SearchConfig};
use xiaozhi_fleet::capacity::section::StageStatus;
use xiaozhi_fleet::capacity::slo::{Slo, all_passed, check_all};
use xiaozhi_fleet::config::{FleetFile, Plan, Shape, plan::Overrides};
use xiaozhi_fleet::mock::MockServer;
use xiaozhi_fleet::rig::Rig;

/// One test at a time: on a paused clock a stage takes little wall time,
/// and the generator's self-check (CPU ≤ 90% of the cores over the run's
/// wall time) would see several tests' work as one overloaded generator.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn plan(text: &str) -> Plan {
    Plan::from_file(
        FleetFile::parse(text, "capacity.toml").unwrap(),
        "capacity.toml",
        &Overrides::default(),
    )
    .unwrap()
}

const FLEET: &str = r#"
think_time = "0s"
clips = ["*"]
ramp = 2
seed = 9

[mock]
llm_workers = 4
llm_delay = "1s"
asr_delay = "0ms"
tts_delay = "0ms"
sentence_delay = "0ms"
sentences = 2
"#;

const STAGE: Duration = Duration::from_secs(20);

#[tokio::test(start_paused = true)]
async fn capacity_finds_the_brute_force_knee_with_fewer_stages() {
    let _serial = SERIAL.lock().await;
    let plan = plan(FLEET);
    let mock = MockServer::start("127.0.0.1:0", plan.mock.clone()).await.unwrap();
    let url = mock.url();
    let slos = vec![Slo::parse("first_audio.p95<=1.5s").unwrap()];
    let mut knee = 0;
    for n in 1..=40 {
        let run = run_stage(&plan, &url, n, STAGE, CancellationToken::new())
            .await
            .unwrap();
        if all_passed(&check_all(&slos, &measure_of(&run.window))) {
            knee = n;
        } else {
            break;
        }
    }
    assert!(knee >= 3, "the mock should hold a few speakers, knee {knee}");
    assert!(knee < 40, "the LLM pool must saturate somewhere");
    let search = SearchConfig {
        start: 1,
        resolution: Resolution::Fixed(1),
        max_speakers: 1000,
        descend: false,
    };
    let opts = CapacityOptions {
        min_turns: 0,
        ..CapacityOptions::new(slos.clone(), search, STAGE)
    };
    let out = run_capacity(&plan, &url, &opts, CancellationToken::new(), |_| {})
        .await
        .unwrap();
    assert_eq!(out.capacity.max_speakers, Some(knee));
    let ran = out.capacity.stages.len();
    assert!(
        ran < knee as usize + 1,
        "search ran {ran} stages, sweep ran {}",
        knee + 1
    );
    assert_eq!(ran as u32, out.result.stages_run);
    println!("knee {knee}: sweep ran {} stages, search ran {ran}", knee + 1);
    let json = serde_json::to_value(&out.capacity).unwrap();
    assert_eq!(json["stages"].as_array().unwrap().len(), ran);
    for st in json["stages"].as_array().unwrap() {
        for key in [
            "speakers",
            "status",
            "passed",
            "latency_ms",
            "playback",
            "turns",
            "server",
        ] {
            assert!(st.get(key).is_some(), "stage lacks {key}: {st}");
        }
    }
    mock.stop().await;
}

/// The burst-vs-steady fleet: one 1.38 s clip, no think time, an LLM pool
/// of 4 workers taking exactly 1 s, everything else instant.
const SHAPES: &str = r#"
think_time = "0s"
clips = ["ji-dian"]
ramp = 2
seed = 9

[mock]
llm_workers = 4
llm_delay = "1s"
asr_delay = "0ms"
tts_delay = "0ms"
sentence_delay = "0ms"
sentences = 2
"#;

fn shaped(shape: Shape) -> Plan {
    let ov = Overrides {
        shape: Some(shape),
        ..Overrides::default()
    };
    Plan::from_file(FleetFile::parse(SHAPES, "shapes.toml").unwrap(), "shapes.toml", &ov).unwrap()
}

async fn knee(plan: &Plan, url: &str, slo: &str) -> u32 {
    let search = SearchConfig {
        start: 1,
        resolution: Resolution::Fixed(1),
        max_speakers: 1000,
        descend: false,
    };
    let opts = CapacityOptions::new(vec![Slo::parse(slo).unwrap()], search, Duration::from_secs(30));
    let out = run_capacity(plan, url, &opts, CancellationToken::new(), |_| {})
        .await
        .unwrap();
    assert_eq!(out.capacity.shape, plan.shape.as_str());
    out.capacity.max_speakers.expect("a judged knee")
}

/// Burst: every speaker ends speech at the same instant, so the 4 workers
/// serve them in levels of 4, each 1 s later: first audio is 1.3 s + k s
/// for the k-th level. With p95 ≤ 2.5 s two levels fit: 4 × 2 = 8.
/// Steady: one speaker's cycle is 7.5 s (12 turns in 90 s, measured below);
/// the pool serves 4 answers per second, i.e. 4 × 7.5 = 30 speakers' worth:
/// the steady knee is the largest count below saturation, 29.
#[tokio::test(start_paused = true)]
async fn burst_knee_is_lower_than_steady_by_the_worker_arithmetic() {
    let _serial = SERIAL.lock().await;
    let steady = shaped(Shape::Steady);
    let mock = MockServer::start("127.0.0.1:0", steady.mock.clone()).await.unwrap();
    let url = mock.url();
    let one = run_stage(&steady, &url, 1, Duration::from_secs(90), CancellationToken::new())
        .await
        .unwrap();
    let m = measure_of(&one.window);
    assert_eq!(
        m.latency_ms["first_audio"].max, 1300.0,
        "1 speaker: VAD 0.3 s + LLM 1 s"
    );
    assert_eq!(one.window.completed, 12, "a 7.5 s cycle over 90 s");
    let cycle_s = 90.0 / one.window.completed as f64;
    let (workers, llm_s, base_s, slo_s): (f64, f64, f64, f64) = (4.0, 1.0, 1.3, 2.5);
    let levels = ((slo_s - base_s) / llm_s + 1e-9).floor() + 1.0;
    let burst_expected = (workers * levels) as u32;
    let steady_expected = (workers * cycle_s / llm_s).ceil() as u32 - 1;
    assert_eq!((burst_expected, steady_expected), (8, 29));
    let slo = "first_audio.p95<=2.5s";
    let steady_knee = knee(&steady, &url, slo).await;
    let burst_knee = knee(&shaped(Shape::Burst), &url, slo).await;
    assert_eq!(burst_knee, burst_expected, "burst");
    assert_eq!(steady_knee, steady_expected, "steady");
    mock.stop().await;
}

/// A 5 s stage at 1 speaker against the default mock: the window is
/// extended (not failed with "p95 first audio 0 ms"); one that stays short
/// is `inconclusive` in the JSON and on the console, and out of the knee:
/// a search of only inconclusive stages writes `max_speakers: null`.
#[tokio::test(start_paused = true)]
async fn short_stage_is_extended_then_inconclusive() {
    let _serial = SERIAL.lock().await;
    let plan = Plan::load(None, &Overrides::default()).unwrap();
    let mock = MockServer::start("127.0.0.1:0", plan.mock.clone()).await.unwrap();
    let search = SearchConfig {
        start: 1,
        resolution: Resolution::Auto,
        max_speakers: 1,
        descend: false,
    };
    let run = |min_turns: u64| {
        let opts = CapacityOptions {
            min_turns,
            ..CapacityOptions::new(Slo::defaults(), search, Duration::from_secs(5))
        };
        let url = mock.url();
        let plan = plan.clone();
        async move {
            run_capacity(&plan, &url, &opts, CancellationToken::new(), |_| {})
                .await
                .unwrap()
        }
    };
    // One turn needs more than 5 s here: extended once to 10 s, then judged.
    let out = run(1).await;
    let st = &out.capacity.stages[0];
    assert_eq!((st.status, st.extended, st.measured_s), (StageStatus::Pass, true, 10.0));
    assert_eq!(out.capacity.max_speakers, Some(1));
    // 20 turns never come: extended to 15 s (3×), then inconclusive.
    let out = run(20).await;
    let st = &out.capacity.stages[0];
    assert_eq!(
        (st.status, st.extended, st.measured_s),
        (StageStatus::Inconclusive, true, 15.0)
    );
    assert!(!st.passed);
    assert_eq!(
        (out.capacity.max_speakers, out.capacity.stop_reason.as_str()),
        (None, "inconclusive")
    );
    let json = serde_json::to_value(&out.capacity).unwrap();
    assert_eq!(json["max_speakers"], serde_json::Value::Null, "unknown, not 0");
    assert_eq!(json["stages"][0]["status"], "inconclusive");
    assert_eq!(json["completed_stages"], 0);
    let line = stage_line(st);
    assert!(line.contains("1 speakers: INCONCLUSIVE"), "{line}");
    assert!(line.contains("(need 20; the window was extended up to 3×)"), "{line}");
    assert!(!line.contains("p95 first audio 0 ms"), "{line}");
    mock.stop().await;
}

/// Turns of 10 s: a 1.38 s clip, no think time, an LLM answering after
/// 3.5 s (the 7.5 s cycle above with 2.5 s more), everything else instant.
const SLOW_TURNS: &str = r#"
think_time = "0s"
clips = ["ji-dian"]
ramp = 2
seed = 9

[mock]
llm_delay = "3500ms"
asr_delay = "0ms"
tts_delay = "0ms"
sentence_delay = "0ms"
sentences = 2
"#;

/// The real server's case: 10 s turns, 60 s stages, at least 20 turns. One
/// speaker would end 6 turns and be stretched to 180 s; the probe starts at
/// 4 speakers, which end their 20 turns inside the 60 s window, and says so.
#[tokio::test(start_paused = true)]
async fn probe_sizes_the_first_stage_so_it_is_not_stretched() {
    let _serial = SERIAL.lock().await;
    let plan = plan(SLOW_TURNS);
    let mock = MockServer::start("127.0.0.1:0", plan.mock.clone()).await.unwrap();
    let url = mock.url();
    let search = SearchConfig {
        start: 1,
        resolution: Resolution::Auto,
        max_speakers: 4,
        descend: false,
    };
    let slos = vec![Slo::parse("first_audio.p95<=5s").unwrap()];
    let opts = CapacityOptions::new(slos, search, Duration::from_secs(60));
    assert_eq!(opts.min_turns, 20);
    let said = std::sync::Mutex::new(Vec::new());
    let say = |l: &str| said.lock().unwrap().push(l.to_string());
    let mut rig = Rig::at_url(&plan, &url).await.unwrap();
    let probed = probed_start(&mut rig, &plan, &opts, CancellationToken::new(), say)
        .await
        .unwrap();
    rig.finish(false, None).await;
    assert_eq!((probed.search.start, probed.search.descend), (4, true));
    assert_eq!(
        said.into_inner().unwrap(),
        vec![
            "First stage: 4 speakers (not 1). A probe speaker's turns took 10 s each (turn and think time), so each \
             speaker ends at least 6 turns in a 60 s window: 4 end the 20 turns a stage needs without stretching its \
             window."
                .to_string()
        ]
    );
    let out = run_capacity(&plan, &url, &probed, CancellationToken::new(), |_| {})
        .await
        .unwrap();
    let st = &out.capacity.stages[0];
    assert_eq!(
        (st.speakers, st.status, st.extended, st.measured_s),
        (4, StageStatus::Pass, false, 60.0)
    );
    assert_eq!(st.turns.completed, 24, "4 speakers × 6 turns of 10 s");
    mock.stop().await;
}
