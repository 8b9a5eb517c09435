//! `diagnose` end to end against the built-in mock on a paused clock: a
//! mock synthesising speech slower than real time is named as the server
//! side, a clean mock behind `wifi-poor` links is named as the network, and
//! a clean mock is named as nothing; each with the exit code of the
//! README's table.

use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use xiaozhi_fleet::app::diagnose::{DiagnoseOptions, DiagnoseResult, diagnose};
use xiaozhi_fleet::diagnose::{Cause, MatrixOptions};

const CLEAN: &str = "think_time = \"1s\"\nclips = [\"*\"]\nseed = 1\n\n[mock]\nasr_delay = \"200ms\"\n\
llm_delay = \"300ms\"\ntts_delay = \"200ms\"\nsentences = 2\n";

fn fleet(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xf-diagnose-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("fleet.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A matrix of the baseline (2 speakers, lan, WebSocket) plus `networks`.
fn options(path: PathBuf, networks: &[&str], devices: Vec<u32>) -> DiagnoseOptions {
    DiagnoseOptions {
        fleet: Some(path),
        overrides: Default::default(),
        matrix: MatrixOptions {
            devices,
            networks: networks.iter().map(|n| n.to_string()).collect(),
            small_queue: None,
            ..MatrixOptions::default()
        },
        cell_duration: Duration::from_secs(40),
        watch: Default::default(),
        reports: Vec::new(),
        quiet: true,
    }
}

async fn diagnosed(name: &str, text: &str, networks: &[&str], devices: Vec<u32>) -> DiagnoseResult {
    let opts = options(fleet(name, text), networks, devices);
    let result = diagnose(&opts, CancellationToken::new()).await.expect("diagnose runs");
    for c in &result.cells {
        assert_eq!(
            c.inconclusive,
            None,
            "{}: every cell is measured",
            c.spec.factor.label()
        );
        assert_eq!(c.failed, 0, "{}: no turn failed", c.spec.factor.label());
    }
    result
}

#[tokio::test(start_paused = true)]
async fn slow_synthesis_is_named_as_the_server_side() {
    let text = format!("{CLEAN}tts_rtf = 0.8\n");
    let r = diagnosed("slow-tts", &text, &[], vec![]).await;
    let d = &r.diagnosis;
    assert!(d.baseline_stutters, "{}", d.headline);
    assert_eq!(d.baseline_cause, Some(Cause::Server));
    assert!(d.headline.contains("the server side"), "{}", d.headline);
    let base = &r.cells[0];
    assert!(base.server_ms > 0.0);
    assert_eq!((base.network_ms, base.device_ms), (0.0, 0.0));
    assert!(d.advice[0].contains("TTS"), "{:?}", d.advice);
    assert_eq!(r.exit_code(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_poor_wifi_link_is_named_as_the_network() {
    let r = diagnosed("wifi-poor", CLEAN, &["wifi-poor"], vec![]).await;
    let d = &r.diagnosis;
    assert!(!d.baseline_stutters, "{}", d.headline);
    assert_eq!(r.cells[0].ms_per_turn(), 0.0, "lan: no gap at all");
    let wifi = &d.findings[0];
    assert_eq!(wifi.label, "network wifi-poor");
    assert!(wifi.brings_stutter, "{wifi:?}");
    assert_eq!(wifi.cause, Some(Cause::Network));
    assert!(
        d.headline.starts_with("stutter comes with network wifi-poor"),
        "{}",
        d.headline
    );
    let cell = &r.cells[1];
    assert!(cell.network_ms > 0.0 && cell.server_ms == 0.0, "{cell:?}");
    assert!(
        d.advice.iter().any(|a| a.contains("tts_audio_send_delay")),
        "{:?}",
        d.advice
    );
    assert_eq!(r.exit_code(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_clean_server_is_named_as_nothing() {
    let r = diagnosed("clean", CLEAN, &[], vec![5]).await;
    let d = &r.diagnosis;
    assert!(!d.stutter_found, "{}", d.headline);
    assert!(d.headline.starts_with("no stutter"), "{}", d.headline);
    assert_eq!(r.cells.len(), 2);
    assert!(r.cells.iter().all(|c| c.ms_per_turn() == 0.0), "{:?}", r.cells);
    assert_eq!(r.exit_code(), 0);
}
