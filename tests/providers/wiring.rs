//! The stand-ins inside the commands: `run --providers` reports their
//! figures beside the turn latencies, and the `providers` command's help
//! and config errors (`capacity --llm-delay`: `sweep.rs`, its own binary).

use crate::support::*;
use tokio_util::sync::CancellationToken;
use xiaozhi_fleet::audio::clip::ClipSet;
use xiaozhi_fleet::config::FleetFile;

#[tokio::test(start_paused = true)]
async fn run_with_providers_reports_their_figures_beside_the_turn_latencies() {
    use xiaozhi_fleet::app::{self, RunOptions};
    let raw = FleetFile::parse("devices = 2\nturns = 2\nseed = 3\n", "run.toml").unwrap();
    let mut plan = xiaozhi_fleet::config::Plan::from_file(raw, "run.toml", &Default::default()).unwrap();
    let port = free_port();
    plan.providers.listen = Some(format!("127.0.0.1:{port}"));
    let opts = RunOptions {
        quiet: true,
        ..RunOptions::default()
    };
    let clips = ClipSet::embedded().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let driver = async {
        wait_for(port).await;
        for clip in clips.clips.iter().take(2) {
            one_server_turn(&base, clip).await;
        }
    };
    let (result, ()) = tokio::join!(app::run(&plan, &opts, CancellationToken::new()), driver);
    let report = result.unwrap().report;
    let p = report.providers.clone().expect("a providers section");
    assert_eq!((p.llm.completed, p.tts.completed, p.asr.completed), (2, 2, 2));
    assert_eq!(p.asr.outcomes.get("matched"), Some(&2));
    assert_eq!(p.llm.first_token_ms.unwrap().min, 300.0, "default first token");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["providers"]["llm"]["requests"], 2);
    assert!(json["latency_ms"]["first_audio"]["count"].as_u64().unwrap() > 0);
    let text = xiaozhi_fleet::report::render_summary(&report);
    let (lat, prov) = (
        text.find("latency (ms)").unwrap(),
        text.find("AI provider stand-ins").unwrap(),
    );
    assert!(prov > lat, "stand-ins listed under the turn latencies:\n{text}");
    assert!(
        text.contains("LLM: 2 requests (2 text, 0 tool_call, 0 failed)"),
        "{text}"
    );
    assert!(
        text.contains("ASR: 2 requests (2 matched, 0 fallback, 0 failed)"),
        "{text}"
    );
}

#[test]
fn providers_command_has_help_and_rejects_a_misspelt_key_by_file_and_line() {
    let bin = env!("CARGO_BIN_EXE_xiaozhi-fleet");
    let out = std::process::Command::new(bin)
        .args(["providers", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && help.contains("--listen") && help.contains("Examples"),
        "{help}"
    );
    let dir = std::env::temp_dir().join(format!("xf-providers-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(&file, "devices = 2\n\n[providers.llm]\nfirst_tokne = \"1s\"\n").unwrap();
    let out = std::process::Command::new(bin)
        .args(["providers", "--listen", "127.0.0.1:0", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.toml:4:1") && err.contains("first_tokne"), "{err}");
    std::fs::write(&file, "[providers.tts]\nsample_rate = 44100\n").unwrap();
    let out = std::process::Command::new(bin)
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`providers.tts.sample_rate` must be 16000 or 24000"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
