//! Reports from real runs against the in-process mock on a paused clock:
//! every format by extension (the JSON checked against the committed
//! schema, the CSV's rows against the JSON's counts, the HTML's charts),
//! `/metrics` scraped over HTTP mid-run and at the end against the JSON,
//! and merges of two runs against one histogram of both runs' samples.

use crate::support::plan;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use xiaozhi_fleet::app::{self, RunOptions};
use xiaozhi_fleet::capacity::slo::Slo;
use xiaozhi_fleet::fleet::{Hooks, Observers, load_clips, run_fleet_observed};
use xiaozhi_fleet::metrics::{LatencyHistogram, Snapshot, TurnOutcome};
use xiaozhi_fleet::mock::MockServer;
use xiaozhi_fleet::report::feed::{Feed, ServerLive};
use xiaozhi_fleet::report::merge::{Shard, merge};
use xiaozhi_fleet::report::{Report, RunContext};

/// Four devices, two turns each, short mock delays, one failure kind
/// possible (none expected).
const FLEET: &str = "devices = 4\nturns = 2\nramp = 10\nthink_time = \"500ms\"\nclips = [\"*\"]\nseed = 3\n\
[mock]\nasr_delay = \"100ms\"\nllm_delay = \"300ms\"\ntts_delay = \"100ms\"\nsentences = 2\n";

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xf-report-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Errors of `report` against `schema/report.v1.json` (empty = valid).
pub fn schema_errors(report: &Value) -> Vec<String> {
    let schema: Value =
        serde_json::from_str(include_str!("../../schema/report.v1.json")).expect("the committed schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("the committed schema is a valid JSON Schema");
    validator
        .iter_errors(report)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect()
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// (outcome, failure) of every CSV row.
fn csv_rows(p: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(p).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name| header.iter().position(|h| *h == name).unwrap();
    let (o, f) = (col("outcome"), col("failure"));
    lines
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            assert_eq!(cells.len(), header.len(), "row {l}");
            (cells[o].to_string(), cells[f].to_string())
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn one_run_writes_json_csv_html_and_markdown_that_agree() {
    let dir = scratch("formats");
    let reports: Vec<PathBuf> = ["r.json", "r.csv", "r.html", "r.md"]
        .iter()
        .map(|f| dir.join(f))
        .collect();
    let opts = RunOptions {
        reports: reports.clone(),
        quiet: true,
        slos: vec![Slo::parse("first_audio.p95<=30s").unwrap()],
        ..RunOptions::default()
    };
    let result = app::run(&plan(FLEET), &opts, CancellationToken::new()).await.unwrap();
    let json = read_json(&reports[0]);
    assert_eq!(schema_errors(&json), Vec::<String>::new());
    let mut broken = json.clone();
    broken["turns"]["failed_ratio"] = serde_json::json!(1.5);
    broken["histograms"]["latency_ms.turn"]["hdr"] = serde_json::json!("not base64!");
    assert_eq!(
        schema_errors(&broken).len(),
        2,
        "the schema catches a bad ratio and a bad histogram"
    );
    assert_eq!(json["turns"]["completed"], 8);
    assert_eq!(json["slo"]["passed"], true);
    assert_eq!(result.report.turns.completed, 8);

    let rows = csv_rows(&reports[1]);
    let t = &json["turns"];
    assert_eq!(rows.len() as u64, t["started"].as_u64().unwrap());
    let count = |o: &str| rows.iter().filter(|r| r.0 == o).count() as u64;
    for outcome in ["completed", "failed", "cancelled", "interrupted"] {
        assert_eq!(count(outcome), t[outcome].as_u64().unwrap(), "{outcome}");
    }

    let html = std::fs::read_to_string(&reports[2]).unwrap();
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(
        !html.contains("<script") && !html.contains("<link"),
        "self-contained, no scripts"
    );
    let charts = html_charts(&html);
    let names: Vec<&str> = charts.iter().map(|c| c.0.as_str()).collect();
    for want in ["latency", "load", "stutter", "histogram"] {
        assert!(names.contains(&want), "chart {want} in {names:?}");
    }
    for (name, points, svg) in &charts {
        assert!(*points > 0, "chart {name} has no data points");
        assert!(
            svg.contains("<polyline") || svg.contains("<rect"),
            "chart {name} draws nothing"
        );
    }
    let md = std::fs::read_to_string(&reports[3]).unwrap();
    assert!(md.contains("turns: 8 started = 8 completed + 0 failed"), "{md}");
    assert!(md.contains("SLOs: all passed"), "{md}");
    if crate::tools::tool("chromium").is_some() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/render-report.sh");
        let png = dir.join("r.png");
        let out = std::process::Command::new(script)
            .arg(&reports[2])
            .arg(&png)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let bytes = std::fs::read(&png).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
            "a rendered page, {} bytes",
            bytes.len()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// (name, data points, svg) of every chart figure in a page.
pub fn html_charts(html: &str) -> Vec<(String, u64, String)> {
    html.split("<figure class=\"chart\" data-chart=\"")
        .skip(1)
        .map(|rest| {
            let name = rest.split('"').next().unwrap().to_string();
            let points = rest
                .split("data-points=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let svg = rest.split("</figure>").next().unwrap().to_string();
            (name, points, svg)
        })
        .collect()
}

/// GET /metrics over plain HTTP/1.1 (classic text format).
async fn scrape(addr: std::net::SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    body.split("\r\n\r\n").nth(1).unwrap().to_string()
}

/// The value of one sample line, e.g. `xiaozhi_fleet_turns_total{outcome="completed"}`.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(start_paused = true)]
async fn metrics_scraped_mid_run_and_at_the_end_match_the_report() {
    let plan = plan(FLEET);
    let mock = MockServer::start("127.0.0.1:0", plan.mock.clone()).await.unwrap();
    let (tx, rx) = watch::channel(Snapshot::default());
    let (feed, writer) = Feed::new(rx.clone(), Vec::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = tokio::spawn(xiaozhi_fleet::report::prometheus::serve(listener, feed, stop.clone()));
    let mid = tokio::spawn(async move {
        let mut rx = rx;
        while rx.changed().await.is_ok() {
            if rx.borrow().completed > 0 {
                return Some(scrape(addr).await);
            }
        }
        None
    });
    let observers = Observers {
        share_metrics: true,
        ..Observers::default()
    };
    let clips = load_clips(&plan).unwrap();
    let out = run_fleet_observed(
        &plan,
        &mock.url(),
        &clips,
        CancellationToken::new(),
        tx,
        Hooks::default(),
        observers,
    )
    .await
    .unwrap();
    let mid = mid.await.unwrap().expect("a scrape while turns were completing");
    let watched = ServerLive {
        watched: true,
        cpu_cores: Some(0.5),
        memory_mb: Some(100.0),
        cpu_allotment: Some(2.0),
        memory_limit_mb: Some(1024.0),
        restarts: 1,
        oom_kills: 0,
    };
    writer.server.send(watched).unwrap();
    let end = scrape(addr).await;
    stop.cancel();
    server.await.unwrap().unwrap();
    let ctx = RunContext {
        target_url: "x",
        mock: true,
        devices: plan.devices,
        seed: plan.seed,
        fleet: "t",
    };
    let json = serde_json::to_value(Report::build(&ctx, &out)).unwrap();

    let completed = "xiaozhi_fleet_turns_total{outcome=\"completed\"}";
    let mid_completed = sample(&mid, completed).unwrap();
    assert!((1.0..8.0).contains(&mid_completed), "mid-run {mid_completed}");
    assert_eq!(sample(&mid, "xiaozhi_fleet_run_finished"), Some(0.0));
    let n = |p: &str| json.pointer(p).and_then(Value::as_f64).unwrap();
    assert_eq!(sample(&end, completed), Some(n("/turns/completed")));
    assert_eq!(
        sample(&end, "xiaozhi_fleet_turns_started_total"),
        Some(n("/turns/started"))
    );
    assert_eq!(
        sample(&end, "xiaozhi_fleet_turns_total{outcome=\"failed\"}"),
        Some(n("/turns/failed"))
    );
    assert_eq!(
        sample(&end, "xiaozhi_fleet_underruns_total"),
        Some(n("/playback/underruns"))
    );
    assert_eq!(
        sample(&end, "xiaozhi_fleet_stutter_turns_total"),
        Some(n("/playback/stutter_turns"))
    );
    for cause in ["server", "network", "device"] {
        assert_eq!(
            sample(
                &end,
                &format!("xiaozhi_fleet_stutter_seconds_total{{cause=\"{cause}\"}}")
            ),
            Some(n(&format!("/playback/by_cause/{cause}_ms")) / 1000.0),
            "{cause}"
        );
        assert_eq!(
            sample(
                &end,
                &format!("xiaozhi_fleet_stutter_cause_turns_total{{cause=\"{cause}\"}}")
            ),
            Some(n(&format!("/playback/by_cause/turns_{cause}"))),
            "{cause}"
        );
    }
    assert_eq!(
        sample(&end, "xiaozhi_fleet_extra_answers_total"),
        Some(n("/turns/extra_answers"))
    );
    assert_eq!(
        sample(&end, "xiaozhi_fleet_frames_total{direction=\"sent\"}"),
        Some(n("/audio/frames_sent"))
    );
    assert_eq!(
        sample(&end, "xiaozhi_fleet_frames_total{direction=\"received\"}"),
        Some(n("/audio/frames_received"))
    );
    assert_eq!(
        sample(&end, "xiaozhi_fleet_audio_bytes_total{direction=\"sent\"}"),
        Some(n("/audio/bytes_sent"))
    );
    assert_eq!(
        sample(&end, "xiaozhi_fleet_audio_bytes_total{direction=\"received\"}"),
        Some(n("/audio/bytes_received"))
    );
    assert_eq!(
        sample(&end, "xiaozhi_fleet_connections_total"),
        Some(n("/connections/opened"))
    );
    for metric in ["first_audio", "turn", "stt", "connect"] {
        let count = format!("xiaozhi_fleet_latency_seconds_count{{metric=\"{metric}\"}}");
        assert_eq!(
            sample(&end, &count),
            Some(n(&format!("/latency_ms/{metric}/count"))),
            "{metric}"
        );
        let inf = format!("xiaozhi_fleet_latency_seconds_bucket{{le=\"+Inf\",metric=\"{metric}\"}}");
        assert_eq!(sample(&end, &inf), sample(&end, &count), "{metric}");
        let sum = sample(
            &end,
            &format!("xiaozhi_fleet_latency_seconds_sum{{metric=\"{metric}\"}}"),
        )
        .unwrap();
        let mean_ms = n(&format!("/latency_ms/{metric}/mean"));
        assert!(
            (sum / n(&format!("/latency_ms/{metric}/count")) * 1000.0 - mean_ms).abs() < 0.001,
            "{metric}"
        );
    }
    assert_eq!(
        sample(&end, "xiaozhi_fleet_server_memory_bytes"),
        Some(100.0 * 1048576.0)
    );
    assert_eq!(sample(&end, "xiaozhi_fleet_server_restarts_total"), Some(1.0));
    // Every name the Grafana dashboard and the alert rules use is served.
    // (a sample's name, or a declared family's: failures by kind has no
    // sample until a turn fails)
    let served: Vec<&str> = end
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ").or((!l.starts_with('#')).then_some(l)))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    for file in ["scripts/grafana/xiaozhi-fleet.json", "scripts/prometheus/alerts.yml"] {
        let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
        let used = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("xiaozhi_fleet_"));
        for name in used {
            assert!(
                served.contains(&name),
                "{file} uses {name}, which /metrics does not serve"
            );
        }
    }
    if let Some(promtool) = crate::tools::tool("promtool") {
        crate::tools::promtool_check_metrics(&promtool, &end);
    }
}

/// Runs the fleet with `seed` and returns its report as JSON, with the
/// first-audio samples of its turns.
async fn shard(seed: u64) -> (Value, Vec<Duration>) {
    let plan = plan(
        &FLEET
            .replace("seed = 3", &format!("seed = {seed}"))
            .replace("turns = 2", "turns = 3"),
    );
    let mock = MockServer::start("127.0.0.1:0", plan.mock.clone()).await.unwrap();
    let (tx, _rx) = watch::channel(Snapshot::default());
    let (timeline, series) = xiaozhi_fleet::report::timeline::Timeline::new();
    let observers = Observers {
        turn_sinks: vec![Box::new(timeline)],
        share_metrics: false,
    };
    let clips = load_clips(&plan).unwrap();
    let out = run_fleet_observed(
        &plan,
        &mock.url(),
        &clips,
        CancellationToken::new(),
        tx,
        Hooks::default(),
        observers,
    )
    .await
    .unwrap();
    let ctx = RunContext {
        target_url: &mock.url(),
        mock: true,
        devices: plan.devices,
        seed,
        fleet: "t",
    };
    let mut report = Report::build(&ctx, &out);
    report.latency_series = series.await.unwrap();
    let samples = out
        .metrics
        .turn_records
        .iter()
        .filter(|r| r.outcome == TurnOutcome::Completed)
        .filter_map(|r| r.first_audio)
        .collect();
    (serde_json::to_value(report).unwrap(), samples)
}

#[tokio::test(start_paused = true)]
async fn merging_two_runs_equals_one_histogram_of_both_runs_samples() {
    let (a, a_samples) = shard(11).await;
    let (b, b_samples) = shard(12).await;
    let merged = merge(&[
        Shard::new("a.json", a.clone()).unwrap(),
        Shard::new("b.json", b.clone()).unwrap(),
    ])
    .unwrap();
    assert_eq!(schema_errors(&merged), Vec::<String>::new());
    let mut all = LatencyHistogram::new();
    for d in a_samples.iter().chain(&b_samples) {
        all.record(*d);
    }
    let fa: xiaozhi_fleet::metrics::Percentiles =
        serde_json::from_value(merged["latency_ms"]["first_audio"].clone()).unwrap();
    assert_eq!(fa, all.percentiles());
    assert_eq!(fa.count, (a_samples.len() + b_samples.len()) as u64);
    for key in ["started", "completed", "failed", "cancelled"] {
        let sum = a["turns"][key].as_u64().unwrap() + b["turns"][key].as_u64().unwrap();
        assert_eq!(merged["turns"][key].as_u64().unwrap(), sum, "{key}");
    }
    let frames = a["audio"]["frames_sent"].as_u64().unwrap() + b["audio"]["frames_sent"].as_u64().unwrap();
    assert_eq!(merged["audio"]["frames_sent"].as_u64().unwrap(), frames);
    assert_eq!(merged["run"]["devices"], 8);
    let per_second: u64 = merged["latency_series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["completed"].as_u64().unwrap())
        .sum();
    assert_eq!(per_second, merged["turns"]["completed"].as_u64().unwrap());
    // A report without histograms is refused, naming the file.
    let err = Shard::new("old.json", serde_json::json!({"schema_version": 1, "run": {}}))
        .err()
        .unwrap();
    assert!(err.to_string().starts_with("old.json: has no histograms"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_capacity_search_writes_a_schema_valid_json_and_a_knee_curve() {
    use xiaozhi_fleet::capacity::run::CapacityOptions;
    use xiaozhi_fleet::capacity::search::{Resolution, SearchConfig};
    use xiaozhi_fleet::config::{FleetFile, Plan, plan::Overrides};
    let mock = MockServer::start("127.0.0.1:0", plan(FLEET).mock.clone())
        .await
        .unwrap();
    let ov = Overrides {
        url: Some(mock.url()),
        ..Overrides::default()
    };
    let plan = Plan::from_file(FleetFile::parse(FLEET, "c.toml").unwrap(), "c.toml", &ov).unwrap();
    let search = SearchConfig {
        start: 1,
        resolution: Resolution::Fixed(1),
        max_speakers: 2,
        ..SearchConfig::default()
    };
    let opts = CapacityOptions {
        tiers: Vec::new(),
        min_turns: 0,
        ..CapacityOptions::new(Slo::defaults(), search, Duration::from_secs(8))
    };
    let dir = scratch("capacity");
    let reports: Vec<PathBuf> = ["c.json", "c.html", "c.csv", "c.md"]
        .iter()
        .map(|f| dir.join(f))
        .collect();
    xiaozhi_fleet::app::capacity::capacity(&plan, opts, &reports, CancellationToken::new())
        .await
        .unwrap();
    let json = read_json(&reports[0]);
    assert_eq!(schema_errors(&json), Vec::<String>::new());
    // 1 then 2 speakers; a stage the generator's self-check could not vouch
    // for (other tests share this process's CPU) ends the search early, so
    // the formats are checked against however many stages ran.
    let stages = json["capacity"]["stages"].as_array().unwrap();
    let n = stages.len();
    assert!((1..=2).contains(&n), "{n} stages");
    let html = std::fs::read_to_string(&reports[1]).unwrap();
    assert!(!html.contains("http://") && !html.contains("https://"));
    let knee = html_charts(&html)
        .into_iter()
        .find(|c| c.0 == "knee")
        .expect("a knee curve");
    assert_eq!(knee.1, 2 * n as u64, "a line point and a pass/fail marker per stage");
    let csv = std::fs::read_to_string(&reports[2]).unwrap();
    assert_eq!(csv.lines().count(), n + 1, "header and one row per stage:\n{csv}");
    assert!(
        std::fs::read_to_string(&reports[3])
            .unwrap()
            .contains("most concurrent speakers within the SLOs")
    );
    let mut unknown = json.clone();
    unknown["capacity"]["max_speakers"] = Value::Null;
    assert_eq!(schema_errors(&unknown), Vec::<String>::new(), "an unknown knee is null");
    let mut broken = json.clone();
    broken["capacity"]["max_speakers"] = serde_json::json!(-1);
    assert!(
        !schema_errors(&broken).is_empty(),
        "the schema rejects a negative count"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
