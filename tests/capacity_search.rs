//! Capacity search on a paused clock: against a mock whose LLM has 4
//! workers of 1 s, the search must find the same knee as a brute-force
//! sweep, with fewer stages, and list every stage it ran.
//!
//! A test binary of its own: the comparison sits exactly at the SLO
//! boundary, and other tests loading the cores at the same time can shift
//! loopback delivery against the paused clock's auto-advance. Cargo runs
//! test binaries one at a time, so here nothing competes.

use xiaozhi_fleet::config::{FleetFile, Plan, plan::Overrides};

fn plan(text: &str) -> Plan {
    Plan::from_file(
        FleetFile::parse(text, "capacity.toml").unwrap(),
        "capacity.toml",
        &Overrides::default(),
    )
    .unwrap()
}
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use xiaozhi_fleet::capacity::run::{CapacityOptions, measure_of, run_capacity, run_stage};
use xiaozhi_fleet::capacity::search::{Resolution, SearchConfig};
use xiaozhi_fleet::capacity::slo::{Slo, all_passed, check_all};
use xiaozhi_fleet::mock::MockServer;

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
    };
    let opts = CapacityOptions {
        min_turns: 0,
        ..CapacityOptions::new(slos.clone(), search, STAGE)
    };
    let out = run_capacity(&plan, &url, &opts, CancellationToken::new(), |_| {})
        .await
        .unwrap();
    assert_eq!(out.capacity.max_speakers, knee);
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
        for key in ["speakers", "status", "passed", "latency_ms", "playback", "turns", "server"] {
            assert!(st.get(key).is_some(), "stage lacks {key}: {st}");
        }
    }
    mock.stop().await;
}
