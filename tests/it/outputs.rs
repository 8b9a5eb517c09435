//! The real binary's outputs: SLO gates set the exit code and name the
//! failed check; Ctrl-C (SIGINT) keeps every finished turn in the streamed
//! CSV and marks the JSON interrupted; `report` re-renders a saved report;
//! the live dashboard, opened in headless Chromium mid-run, shows numbers
//! that change and end equal to the report's.

use crate::report::{html_charts, schema_errors, scratch};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xiaozhi-fleet"))
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn slo_gates_exit_1_naming_the_failed_check_and_0_when_generous() {
    let dir = scratch("slo");
    let run = |slo: &str, json: &str| {
        bin()
            .args(["run", "--devices", "2", "--turns", "1", "-q", "--slo", slo, "--report"])
            .arg(dir.join(json))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let strict = run("first_audio.p95<=1ms", "strict.json");
    let generous = run("first_audio.p95<=30s", "generous.json");
    // The fleet file's [[slo]] gates the run too.
    let fleet = dir.join("slo.toml");
    std::fs::write(&fleet, "devices = 2\nturns = 1\n[[slo]]\nrule = \"turn.p50<=1ms\"\n").unwrap();
    let from_file = bin()
        .arg("run")
        .arg(&fleet)
        .args(["-q", "--report"])
        .arg(dir.join("file.json"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (strict, generous) = (strict.wait_with_output().unwrap(), generous.wait_with_output().unwrap());
    let from_file = from_file.wait_with_output().unwrap();
    assert_eq!(from_file.status.code(), Some(1), "{:?}", text(&from_file));
    assert_eq!(
        read_json(&dir.join("file.json"))["slo"]["checks"][0]["rule"],
        "turn.p50<=1ms"
    );
    let (out, err) = text(&strict);
    assert_eq!(strict.status.code(), Some(1), "{out}{err}");
    assert!(out.contains("SLOs: 1 of 1 FAILED"), "{out}");
    assert!(
        out.contains("FAIL  p95 first audio ≤ 1 ms (first_audio.p95<=1ms): was"),
        "{out}"
    );
    let json = read_json(&dir.join("strict.json"));
    assert_eq!(json["slo"]["passed"], false);
    assert_eq!(json["slo"]["checks"][0]["rule"], "first_audio.p95<=1ms");
    assert_eq!(json["slo"]["checks"][0]["passed"], false);
    assert!(json["slo"]["checks"][0]["observed"].as_f64().unwrap() > 1.0);
    let (out, err) = text(&generous);
    assert_eq!(generous.status.code(), Some(0), "{out}{err}");
    assert!(out.contains("SLOs: all passed"), "{out}");
    assert_eq!(read_json(&dir.join("generous.json"))["slo"]["passed"], true);

    // Any saved report re-renders.
    let html = dir.join("again.html");
    let o = bin()
        .arg("report")
        .arg(dir.join("strict.json"))
        .arg("--report")
        .arg(&html)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("SLO FAILED: p95 first audio ≤ 1 ms — was"),
        "verdict on top"
    );
    assert!(html_charts(&page).iter().all(|c| c.1 > 0));
    let o = bin()
        .args(["report", "nope.json", "--report", "x.pdf"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).1.contains("report x.pdf: unknown format `pdf`"),
        "{:?}",
        text(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Data rows of a CSV file (header excluded), by outcome column.
fn csv_outcomes(p: &Path) -> Vec<String> {
    let t = std::fs::read_to_string(p).unwrap_or_default();
    let mut lines = t.lines();
    let Some(header) = lines.next() else { return Vec::new() };
    let col = header.split(',').position(|h| h == "outcome").unwrap();
    lines.map(|l| l.split(',').nth(col).unwrap().to_string()).collect()
}

#[test]
fn sigint_keeps_every_finished_turn_in_the_csv_and_marks_the_json_interrupted() {
    let dir = scratch("sigint");
    let (csv, json) = (dir.join("r.csv"), dir.join("r.json"));
    let mut child = bin()
        .args(["run", "--devices", "6", "--duration", "120s", "-q", "--report"])
        .arg(&csv)
        .arg("--report")
        .arg(&json)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while csv_outcomes(&csv).iter().filter(|o| *o == "completed").count() < 2 {
        assert!(Instant::now() < deadline, "no turn completed within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let streamed = csv_outcomes(&csv).len();
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "still running 60 s after SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    let report = read_json(&json);
    assert_eq!(report["run"]["interrupted"], true);
    assert_eq!(schema_errors(&report), Vec::<String>::new());
    let rows = csv_outcomes(&csv);
    assert!(rows.len() >= streamed, "rows only grow: {streamed} then {}", rows.len());
    let t = &report["turns"];
    assert_eq!(rows.len() as u64, t["started"].as_u64().unwrap());
    for outcome in ["completed", "failed", "cancelled"] {
        let n = rows.iter().filter(|o| *o == outcome).count() as u64;
        assert_eq!(n, t[outcome].as_u64().unwrap(), "{outcome}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_dashboard_in_headless_chromium_changes_and_ends_equal_to_the_report() {
    let Some(chromium) = crate::tools::tool("chromium") else {
        return;
    };
    let dir = scratch("dashboard");
    let json = dir.join("r.json");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_xiaozhi-fleet"))
        .args([
            "run",
            "--devices",
            "4",
            "--duration",
            "15s",
            "-q",
            "--dashboard",
            "127.0.0.1:0",
        ])
        .args(["--slo", "first_audio.p95<=30s", "--report"])
        .arg(&json)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = dashboard_url(&mut child).await;
    let mut page = crate::cdp::Browser::open(&chromium, &url).await;
    let read = "(() => { const t = id => document.getElementById(id).textContent; \
        return {phase: t('phase'), elapsed: t('elapsed'), completed: t('completed'), failed: t('failed'), \
        p95: t('first_audio_p95'), verdict: t('verdict')}; })()";
    let mut seen: Vec<Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the run did not end");
        let v = page.eval(read).await;
        if v["phase"] == "running" {
            seen.push(v);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let distinct = |k: &str| {
        let mut vals: Vec<String> = seen.iter().map(|v| v[k].to_string()).collect();
        vals.dedup();
        vals.len()
    };
    assert!(distinct("elapsed") >= 3, "the page updated while running: {seen:?}");
    assert!(
        distinct("completed") >= 2,
        "completed turns moved on the page: {seen:?}"
    );
    let report = read_json(&json);
    let deadline = Instant::now() + Duration::from_secs(20);
    let last = loop {
        let v = page.eval(read).await;
        if v["phase"] == "finished" {
            break v;
        }
        assert!(Instant::now() < deadline, "the page never showed the end: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(last["completed"], report["turns"]["completed"].to_string());
    assert_eq!(last["failed"], report["turns"]["failed"].to_string());
    let p95 = report["latency_ms"]["first_audio"]["p95"].as_f64().unwrap();
    assert_eq!(last["p95"], format!("{p95:.0}"));
    assert!(
        last["verdict"].as_str().unwrap().starts_with("Final: every SLO holds"),
        "{last}"
    );
    if let Ok(path) = std::env::var("XF_DASHBOARD_PNG") {
        std::fs::write(path, page.screenshot().await).unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reads the binary's stderr until it prints the dashboard's address.
async fn dashboard_url(child: &mut tokio::process::Child) -> String {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(l)) = lines.next_line().await {
            if let Some(u) = l.strip_prefix("Live dashboard at ") {
                return u.to_string();
            }
        }
        panic!("the run ended without printing the dashboard's address");
    })
    .await
    .expect("the dashboard's address within 30 s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    url
}
