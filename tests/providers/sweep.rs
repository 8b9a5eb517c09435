//! `capacity --llm-delay`: one search per stand-in LLM first-token delay,
//! each with that delay in force. In a test binary of its own
//! (`tests/providers_sweep.rs`): each stage's generator self-check reads
//! this process's CPU, which the other provider tests would add to.

use crate::support::*;
use async_openai::Client;
use async_openai::config::OpenAIConfig;
use futures_util::StreamExt;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use xiaozhi_fleet::config::FleetFile;
use xiaozhi_fleet::providers::ProvidersReport;

#[tokio::test(start_paused = true)]
async fn capacity_llm_delay_sweep_searches_once_per_delay_with_that_delay_in_force() {
    use xiaozhi_fleet::capacity::run::CapacityOptions;
    use xiaozhi_fleet::capacity::search::{Resolution, SearchConfig};
    let mock = xiaozhi_fleet::mock::MockServer::start("127.0.0.1:0", Default::default())
        .await
        .unwrap();
    let raw = FleetFile::parse("think_time = \"0s\"\nramp = 10\nseed = 5\n", "cap.toml").unwrap();
    let ov = xiaozhi_fleet::config::plan::Overrides {
        url: Some(mock.url()),
        ..Default::default()
    };
    let mut plan = xiaozhi_fleet::config::Plan::from_file(raw, "cap.toml", &ov).unwrap();
    let port = free_port();
    plan.providers.listen = Some(format!("127.0.0.1:{port}"));
    plan.providers.llm_delay_sweep = xiaozhi_fleet::providers::config::parse_delay_list("300ms,1s").unwrap();
    let search = SearchConfig {
        start: 1,
        resolution: Resolution::Fixed(1),
        max_speakers: 1,
        ..SearchConfig::default()
    };
    let opts = CapacityOptions {
        tiers: plan.tiers.clone(),
        min_turns: 0,
        ..CapacityOptions::new(plan.slos.clone(), search, Duration::from_secs(6))
    };
    let dir = std::env::temp_dir().join(format!("xf-providers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("capacity.json");
    let base = format!("http://127.0.0.1:{port}");
    // During each search, a streamed chat measures the LLM delay in force;
    // the second waits until /stats shows the sweep moved on.
    let probe = async {
        wait_for(port).await;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::with_config(
            OpenAIConfig::new()
                .with_api_base(format!("{base}/v1"))
                .with_api_key("x"),
        );
        let mut firsts = Vec::new();
        for want in ["300ms", "1s"] {
            for _ in 0..600 {
                let r: ProvidersReport = reqwest::get(format!("{base}/stats"))
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if r.settings.llm_first_token == want {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let t0 = Instant::now();
            let mut stream = client.chat().create_stream(chat_request("你好")).await.unwrap();
            stream.next().await.unwrap().unwrap();
            firsts.push(t0.elapsed());
            while stream.next().await.is_some() {}
        }
        firsts
    };
    let search =
        xiaozhi_fleet::app::capacity::capacity(&plan, opts, std::slice::from_ref(&path), CancellationToken::new());
    let (code, firsts) = tokio::join!(search, probe);
    code.unwrap();
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let sweep = json["llm_delay_sweep"].as_array().expect("a sweep section");
    let delays: Vec<&str> = sweep.iter().map(|p| p["llm_first_token"].as_str().unwrap()).collect();
    assert_eq!(delays, ["300ms", "1s"]);
    for p in sweep {
        assert!(p["max_speakers"].is_u64() && p["stages"].is_array(), "{p}");
        assert_eq!(p["providers"]["settings"]["llm_first_token"], p["llm_first_token"]);
        assert_eq!(
            p["providers"]["llm"]["completed"], 1,
            "figures cleared between searches"
        );
    }
    assert_eq!(firsts, [Duration::from_millis(300), Duration::from_secs(1)]);
    assert!(json["providers"]["llm"].is_object());
    let _ = std::fs::remove_dir_all(&dir);
    mock.stop().await;
}
