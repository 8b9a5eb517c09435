//! `capacity --prometheus --dashboard`: the search on the rig, against the
//! mock on a paused clock, publishes each stage; `/metrics` scraped during
//! stage 2 carries that stage's labels (speakers, CPU allotment, shape), and
//! once stage 2 is over its series equal stage 2 of the report, exactly; the
//! dashboard's `/state` holds the knee curve so far. Headless Chromium sees
//! the page name the stage in progress and draw the knee curve point by
//! point as stages finish.

use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use xiaozhi_fleet::capacity::run::{CapacityOptions, search_on};
use xiaozhi_fleet::capacity::search::{Resolution, SearchConfig};
use xiaozhi_fleet::capacity::slo::Slo;
use xiaozhi_fleet::config::{FleetFile, Plan, Target, plan::Overrides};
use xiaozhi_fleet::metrics::Snapshot;
use xiaozhi_fleet::mock::MockServer;
use xiaozhi_fleet::report::feed::{StageInfo, StagePoint};
use xiaozhi_fleet::report::outputs::{OutputOptions, RunOutputs, SharedWatch};
use xiaozhi_fleet::rig::{Rig, RigOptions};

const FLEET: &str = r#"
think_time = "0s"
clips = ["*"]
ramp = 4
seed = 3

[mock]
asr_delay = "100ms"
llm_delay = "300ms"
tts_delay = "100ms"
sentence_delay = "0ms"
sentences = 1
"#;

/// GET `path` over plain HTTP/1.1; the body.
async fn get(addr: SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    body.split("\r\n\r\n").nth(1).unwrap().to_string()
}

/// The sample line of `metric` for the stage numbered `index`.
fn line_of<'a>(text: &'a str, metric: &str, index: u32) -> Option<&'a str> {
    let (head, want) = (format!("{metric}{{"), format!("index=\"{index}\""));
    text.lines().find(|l| l.starts_with(&head) && l.contains(&want))
}

/// The labels of that line.
fn labels_of(text: &str, metric: &str, index: u32) -> Option<BTreeMap<String, String>> {
    let line = line_of(text, metric, index)?;
    let inner = line.split_once('{')?.1.rsplit_once('}')?.0;
    let pairs = inner.split("\",").filter_map(|kv| kv.split_once("=\""));
    Some(
        pairs
            .map(|(k, v)| (k.to_string(), v.trim_end_matches('"').to_string()))
            .collect(),
    )
}

/// The value on that line.
fn value_of(text: &str, metric: &str, index: u32) -> Option<f64> {
    line_of(text, metric, index)?.rsplit_once(' ')?.1.parse().ok()
}

/// What the scraper saw: labels during stage 2, the exposition after it,
/// the dashboard's state after stages 1 and 2.
struct Seen {
    during_stage_2: BTreeMap<String, String>,
    after_stage_2: String,
    knee_lengths: Vec<usize>,
}

/// Scrapes as the search goes: `finished` counts the stages finished.
async fn watch_stages(prom: SocketAddr, dash: SocketAddr, mut finished: watch::Receiver<u32>) -> Seen {
    let knee_len = |s: String| {
        serde_json::from_str::<Value>(&s).unwrap()["knee"]
            .as_array()
            .unwrap()
            .len()
    };
    finished.wait_for(|n| *n >= 1).await.unwrap();
    let mut knee_lengths = vec![knee_len(get(dash, "/state").await)];
    let mut during = None;
    for _ in 0..400 {
        let text = get(prom, "/metrics").await;
        if let Some(l) = labels_of(&text, "xiaozhi_fleet_stage", 2) {
            during = Some(l);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    finished.wait_for(|n| *n >= 2).await.unwrap();
    knee_lengths.push(knee_len(get(dash, "/state").await));
    Seen {
        during_stage_2: during.expect("the stage gauge named stage 2 while it ran"),
        after_stage_2: get(prom, "/metrics").await,
        knee_lengths,
    }
}

#[tokio::test(start_paused = true)]
async fn capacity_metrics_carry_the_stage_labels_and_equal_each_finished_stage() {
    let ov = Overrides::default();
    let mut plan = Plan::from_file(FleetFile::parse(FLEET, "c.toml").unwrap(), "c.toml", &ov).unwrap();
    let mock = MockServer::start("127.0.0.1:0", plan.mock.clone()).await.unwrap();
    plan.target = Target::Url(mock.url());
    let outputs = OutputOptions {
        prometheus: Some("127.0.0.1:0".into()),
        dashboard: Some("127.0.0.1:0".into()),
        ..OutputOptions::default()
    };
    let rig_opts = RigOptions {
        outputs,
        ..RigOptions::default()
    };
    let mut rig = Rig::start(&plan, rig_opts).await.unwrap();
    let (prom, dash) = (
        rig.live_addresses().prometheus.unwrap(),
        rig.live_addresses().dashboard.unwrap(),
    );
    let (finished_tx, finished_rx) = watch::channel(0u32);
    let seen = tokio::spawn(watch_stages(prom, dash, finished_rx));
    let search = SearchConfig {
        start: 1,
        resolution: Resolution::Fixed(1),
        max_speakers: 3,
        ..SearchConfig::default()
    };
    let opts = CapacityOptions {
        tiers: Vec::new(),
        min_turns: 0,
        ..CapacityOptions::new(Slo::defaults(), search, Duration::from_secs(6))
    };
    let progress = move |_: &_| finished_tx.send_modify(|n| *n += 1);
    let out = search_on(&mut rig, &plan, &opts, CancellationToken::new(), progress)
        .await
        .unwrap();
    let stages = &out.capacity.stages;
    assert!(
        stages.len() >= 3,
        "three stages: 1, 2, 3 speakers: {:#?}",
        serde_json::to_value(stages).unwrap()
    );
    let seen = seen.await.unwrap();
    rig.finish(false, Some(true)).await;
    mock.stop().await;

    let stage2 = serde_json::to_value(&stages[1]).unwrap();
    let labels = &seen.during_stage_2;
    assert_eq!(labels["speakers"], stage2["speakers"].to_string(), "{labels:?}");
    assert_eq!(labels["shape"], out.capacity.shape, "{labels:?}");
    assert_eq!(labels["cpus"], "", "no --cpus: no allotment");
    assert_eq!(labels["stage"], "2 speakers · steady", "{labels:?}");

    let text = &seen.after_stage_2;
    let metric = |m: &str| value_of(text, &format!("xiaozhi_fleet_capacity_stage_{m}"), 2);
    assert_eq!(metric("turns_completed"), stage2["turns"]["completed"].as_f64());
    assert_eq!(metric("turns_failed"), stage2["turns"]["failed"].as_f64());
    assert_eq!(metric("stutter_ratio"), stage2["playback"]["stutter_ratio"].as_f64());
    let p95_ms = stage2["latency_ms"]["first_audio"]["p95"].as_f64().unwrap();
    assert!(p95_ms > 0.0, "stage 2 completed turns: {stage2}");
    let p95_s = metric("first_audio_p95_seconds").unwrap();
    assert!((p95_s * 1000.0 - p95_ms).abs() < 1e-9, "{p95_s} s vs {p95_ms} ms");
    let finished = labels_of(text, "xiaozhi_fleet_capacity_stage_turns_completed", 2).unwrap();
    assert_eq!(finished["status"], stage2["status"].as_str().unwrap(), "{finished:?}");
    assert_eq!(finished["speakers"], labels["speakers"]);
    assert_eq!(
        seen.knee_lengths,
        vec![1, 2],
        "the dashboard's knee grew by one per stage"
    );
    if let Some(promtool) = crate::tools::tool("promtool") {
        crate::tools::promtool_check_metrics(&promtool, text);
    }
}

/// What the page shows of the capacity search.
const READ_PAGE: &str = "(() => ({step: document.getElementById('step').textContent, \
    points: document.querySelectorAll('#knee circle.knee-point').length, \
    rows: document.querySelectorAll('#stages tr').length}))()";

/// Polls the page (at most 10 s) until `ok` holds; the last value read.
async fn page_until(page: &mut crate::cdp::Browser, ok: impl Fn(&Value) -> bool) -> Value {
    let mut v = Value::Null;
    for _ in 0..100 {
        v = page.eval(READ_PAGE).await;
        if ok(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the page never showed it: {v}");
}

#[tokio::test]
async fn dashboard_in_headless_chromium_names_the_stage_and_grows_the_knee_curve() {
    let Some(chromium) = crate::tools::tool("chromium") else {
        return;
    };
    let (fleet, fleet_rx) = watch::channel(Snapshot::default());
    let opts = OutputOptions {
        dashboard: Some("127.0.0.1:0".into()),
        ..OutputOptions::default()
    };
    let outputs = RunOutputs::start(&opts, fleet_rx, SharedWatch::default())
        .await
        .unwrap();
    let url = format!("http://{}/", outputs.addresses.dashboard.unwrap());
    let mut page = crate::cdp::Browser::open(&chromium, &url).await;
    let stages = [(1, "pass", 900.0), (2, "pass", 1250.0), (4, "fail", 2600.0)];
    for (i, &(speakers, status, p95)) in stages.iter().enumerate() {
        let label = format!("{speakers} speakers · steady");
        outputs.set_step(Some(StageInfo {
            label: label.clone(),
            speakers,
            shape: "steady".into(),
            ..StageInfo::default()
        }));
        fleet.send_modify(|s| s.elapsed += Duration::from_secs(1));
        let want = format!("stage {}: {label}", i + 1);
        page_until(&mut page, |v| v["step"] == want.as_str()).await;
        outputs.stage_finished(StagePoint {
            status: status.into(),
            turns_completed: 20,
            first_audio_p95_ms: Some(p95),
            ..StagePoint::default()
        });
        let v = page_until(&mut page, |v| v["points"] == i + 1).await;
        assert_eq!(v["rows"], i + 1, "one table row per finished stage: {v}");
    }
    if let Ok(path) = std::env::var("XF_CAPACITY_DASHBOARD_PNG") {
        std::fs::write(path, page.screenshot().await).unwrap();
    }
    outputs.close(false, Some(true)).await;
}
