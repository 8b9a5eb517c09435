//! The server watcher against a real child process: a `mock-server` child
//! burning CPU shows more CPU in the larger stage; burning on one thread
//! makes the verdict name the hot thread; a child that dies mid-run is an
//! event, the summary covers only its life (no zeros after it), and the run
//! still finishes. Real time, bounded to seconds.
//!
//! A test binary of its own: it burns CPU for real, and cargo runs test
//! binaries one after another, so it never loads the cores while the
//! paused-clock tests (in `tests/it`) assert exact timings.

use std::path::{Path, PathBuf};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use xiaozhi_fleet::capacity::sizing::{Allotment, Saturation, SizingInput, StageServer, default_tiers, size};
use xiaozhi_fleet::config::{FleetFile, Plan, plan::Overrides};
use xiaozhi_fleet::fleet::{load_clips, run_fleet};
use xiaozhi_fleet::metrics::Snapshot;
use xiaozhi_fleet::rig::{ChildSettings, spawn_mock_child};
use xiaozhi_fleet::watch::series::{ServerReport, ServerWatch, WatchOptions};
use xiaozhi_fleet::watch::{EventKind, WatchTarget};

fn fleet_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xf-server-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_xiaozhi-fleet"))
}

const STAGES: &str = "stages = [\"1 for 6s\", \"6 for 6s\"]\nramp = 20\nthink_time = \"0s\"\nclips = [\"ji-dian\"]\n";

/// Runs the two-stage plan against a burning mock child, watching its pid.
async fn burn_run(threads: &str) -> (ServerReport, Vec<(u32, f64, f64)>) {
    let text = format!(
        "{STAGES}\n[mock]\ncpu_burn = \"150ms\"\ncpu_burn_threads = \"{threads}\"\nllm_delay = \"100ms\"\ntts_delay = \"50ms\"\nasr_delay = \"50ms\"\nsentences = 1\n"
    );
    let path = fleet_file(&format!("burn-{threads}.toml"), &text);
    let plan = Plan::load(Some(&path), &Overrides::default()).unwrap();
    let (mut child, url) = spawn_mock_child(bin(), &ChildSettings::of(&plan)).await.unwrap();
    let watch = ServerWatch::start(WatchOptions {
        targets: vec![WatchTarget::Pid(child.id().unwrap())],
        interval: std::time::Duration::from_millis(500),
        allotment: Allotment {
            cpu_cores: Some(4.0),
            memory_mb: Some(8192.0),
        },
    });
    let clips = load_clips(&plan).unwrap();
    let (tx, _rx) = watch::channel(Snapshot::default());
    let out = run_fleet(&plan, &url, &clips, CancellationToken::new(), tx)
        .await
        .unwrap();
    let srv = watch.finish().await;
    let _ = child.kill().await;
    let windows = out
        .metrics
        .stages
        .iter()
        .map(|s| (s.speakers, s.started_at_s, s.started_at_s + s.duration_s))
        .collect();
    (srv, windows)
}

fn stage_servers(srv: &ServerReport, windows: &[(u32, f64, f64)]) -> Vec<StageServer> {
    windows
        .iter()
        .map(|&(speakers, from, to)| {
            StageServer::from_window(speakers, speakers, true, &srv.window(from, to), 1, to - from)
        })
        .collect()
}

fn verdict(stages: Vec<StageServer>) -> xiaozhi_fleet::capacity::sizing::Sizing {
    size(&SizingInput {
        stages,
        allotment: Allotment {
            cpu_cores: Some(4.0),
            memory_mb: Some(8192.0),
        },
        target_speakers: Some(12),
        tiers: default_tiers(),
        ..SizingInput::default()
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burning_mock_shows_more_cpu_in_the_larger_stage_and_a_single_burner_is_a_hot_thread() {
    let (srv, windows) = burn_run("single").await;
    let stages = stage_servers(&srv, &windows);
    assert_eq!(stages.len(), 2);
    assert!(
        stages[1].cpu_cores_mean > stages[0].cpu_cores_mean,
        "CPU should rise with speakers: {:?}",
        stages.iter().map(|s| s.cpu_cores_mean).collect::<Vec<_>>()
    );
    let s = verdict(stages);
    assert_eq!(s.saturated, Saturation::HotThread, "{s:?}");
    let text = s.explanation.join("\n");
    assert!(text.contains("mock-burner"), "names the hot thread: {text}");
    assert!(text.to_lowercase().contains("more cores"), "{text}");

    let (srv, windows) = burn_run("pool").await;
    let s = verdict(stage_servers(&srv, &windows));
    assert_ne!(s.saturated, Saturation::HotThread, "a pool spreads the work: {s:?}");
}

#[tokio::test]
async fn watched_process_that_dies_mid_run_is_an_event_and_the_run_finishes() {
    let path = fleet_file("die.toml", "devices = 2\nturns = 2\n");
    let plan = Plan::from_file(FleetFile::read(&path).unwrap(), "die", &Overrides::default()).unwrap();
    let mut victim = tokio::process::Command::new("sleep")
        .arg("30")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let watch = ServerWatch::start(WatchOptions {
        targets: vec![WatchTarget::Pid(victim.id().unwrap())],
        interval: std::time::Duration::from_millis(200),
        allotment: Allotment::default(),
    });
    let (mock, url) = spawn_mock_child(bin(), &ChildSettings::of(&plan)).await.unwrap();
    let killer = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let _ = victim.kill().await;
        let _ = victim.wait().await;
    });
    let clips = load_clips(&plan).unwrap();
    let (tx, _rx) = watch::channel(Snapshot::default());
    let out = run_fleet(&plan, &url, &clips, CancellationToken::new(), tx)
        .await
        .unwrap();
    killer.await.unwrap();
    let srv = watch.finish().await;
    drop(mock);
    assert_eq!(out.metrics.completed, 4, "the run finished: {:?}", out.metrics.failures);
    let gone = srv.events.iter().find(|e| e.kind == EventKind::ProcessGone);
    let Some(gone) = gone else {
        panic!("no ProcessGone event: {:?}", srv.events);
    };
    // The summary covers only the process's life: no zero samples after it.
    assert!(!srv.samples.is_empty());
    assert!(srv.samples.iter().all(|s| s.t_s <= gone.t_s), "{:?}", srv.samples);
    assert!(srv.samples.iter().all(|s| s.memory_mb > 0.0), "{:?}", srv.samples);
    assert!(srv.summary.memory_mb.mean > 0.0);
}
