//! The AI provider stand-ins, driven by real clients over loopback: the
//! async-openai crate for chat (streaming and not), speech and
//! transcription, reqwest for `/stats` and bad input, and a tokio-tungstenite
//! client running the FunASR exchange as the xiaozhi server's `fun_server`
//! provider does. Timing on a paused clock, so delays are exact.
//!
//! A test binary of its own: the timing assertions are exact, and other
//! tests loading the cores at the same time could shift loopback delivery
//! against the paused clock's auto-advance.

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::types::audio::{
    AudioInput, CreateSpeechRequestArgs, CreateTranscriptionRequestArgs, SpeechModel, SpeechResponseFormat, Voice,
};
use async_openai::types::chat::{
    ChatCompletionRequestUserMessageArgs, ChatCompletionTool, ChatCompletionToolChoiceOption, ChatCompletionTools,
    CreateChatCompletionRequest, CreateChatCompletionRequestArgs, FunctionObjectArgs, ToolChoiceOptions,
};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;
use xiaozhi_fleet::audio::clip::ClipSet;
use xiaozhi_fleet::config::FleetFile;
use xiaozhi_fleet::providers::{ProvidersConfig, ProvidersReport, ProvidersServer};

/// Stand-ins configured from a `[providers]` table, on 127.0.0.1:0.
async fn start(toml: &str) -> ProvidersServer {
    let file = FleetFile::parse(toml, "providers.toml").expect("fleet parses");
    let cfg = file
        .providers
        .unwrap_or_default()
        .resolve()
        .expect("settings are valid");
    ProvidersServer::start("127.0.0.1:0", cfg).await.expect("binds")
}

fn openai(server: &ProvidersServer) -> Client<OpenAIConfig> {
    // reqwest is built with rustls and no default crypto provider: use ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::with_config(
        OpenAIConfig::new()
            .with_api_base(format!("{}/v1", server.url()))
            .with_api_key("sk-not-needed"),
    )
}

fn chat_request(text: &str) -> CreateChatCompletionRequest {
    CreateChatCompletionRequestArgs::default()
        .model("glm-4-flash")
        .messages([ChatCompletionRequestUserMessageArgs::default()
            .content(text)
            .build()
            .unwrap()
            .into()])
        .build()
        .unwrap()
}

async fn stats(server: &ProvidersServer) -> ProvidersReport {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::get(format!("{}/stats", server.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

const REPLY: &str = "好的，明天早上八点提醒你。Have a nice day!";

#[tokio::test(start_paused = true)]
async fn streamed_chat_first_token_after_the_delay_and_tokens_make_the_reply() {
    let server = start(&format!(
        "[providers.llm]\nfirst_token = \"700ms\"\ntoken_interval = \"40ms\"\nreply = \"{REPLY}\"\n"
    ))
    .await;
    let client = openai(&server);
    let t0 = Instant::now();
    let mut stream = client.chat().create_stream(chat_request("明天提醒我")).await.unwrap();
    let mut text = String::new();
    let mut first = None;
    let mut chunks = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        if let Some(c) = chunk.choices.first().and_then(|c| c.delta.content.clone()) {
            first.get_or_insert(t0.elapsed());
            text.push_str(&c);
            chunks += 1;
        }
    }
    let total = t0.elapsed();
    assert_eq!(text, REPLY);
    assert_eq!(first, Some(Duration::from_millis(700)));
    assert_eq!(total, Duration::from_millis(700 + 40 * (chunks - 1)));
    let r = stats(&server).await;
    assert_eq!((r.llm.requests, r.llm.completed, r.llm.failed), (1, 1, 0));
    assert_eq!(r.llm.first_token_ms.unwrap().max, 700.0);
    assert_eq!(r.llm.outcomes.get("text"), Some(&1));
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn tool_call_when_asked_streamed_and_not() {
    let server = start("[providers.llm]\nfirst_token = \"100ms\"\n").await;
    let client = openai(&server);
    let tool = ChatCompletionTools::Function(ChatCompletionTool {
        function: FunctionObjectArgs::default()
            .name("self.get_device_status")
            .parameters(serde_json::json!({"type": "object", "properties": {}}))
            .build()
            .unwrap(),
    });
    let mut req = chat_request("现在音量多少？");
    req.tools = Some(vec![tool]);
    req.tool_choice = Some(ChatCompletionToolChoiceOption::Mode(ToolChoiceOptions::Required));
    let resp = client.chat().create(req.clone()).await.unwrap();
    let calls = resp.choices[0].message.tool_calls.clone().unwrap();
    let json = serde_json::to_value(&calls[0]).unwrap();
    assert_eq!(json["function"]["name"], "self.get_device_status");
    let mut stream = client.chat().create_stream(req).await.unwrap();
    let (mut name, mut args) = (String::new(), String::new());
    while let Some(chunk) = stream.next().await {
        for call in chunk.unwrap().choices[0].delta.tool_calls.iter().flatten() {
            if let Some(f) = &call.function {
                name.push_str(f.name.as_deref().unwrap_or(""));
                args.push_str(f.arguments.as_deref().unwrap_or(""));
            }
        }
    }
    assert_eq!((name.as_str(), args.as_str()), ("self.get_device_status", "{}"));
    assert_eq!(stats(&server).await.llm.outcomes.get("tool_call"), Some(&2));
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn speech_is_a_wav_whose_length_follows_the_text() {
    let server = start("[providers.tts]\ndelay = \"150ms\"\nper_char = \"200ms\"\nsample_rate = 24000\n").await;
    let client = openai(&server);
    let input = "今天天气晴朗，适合出门。"; // 10 spoken characters → 2.0 s
    for (format, rate) in [(SpeechResponseFormat::Wav, 24_000), (SpeechResponseFormat::Pcm, 24_000)] {
        let req = CreateSpeechRequestArgs::default()
            .input(input)
            .model(SpeechModel::Other("tts-1".into()))
            .voice(Voice::Alloy)
            .response_format(format)
            .build()
            .unwrap();
        let t0 = Instant::now();
        let audio = client.audio().speech().create(req).await.unwrap().bytes;
        assert_eq!(t0.elapsed(), Duration::from_millis(150));
        let samples: Vec<i16> = if format == SpeechResponseFormat::Wav {
            let reader = hound::WavReader::new(std::io::Cursor::new(audio.to_vec())).unwrap();
            let spec = reader.spec();
            assert_eq!((spec.channels, spec.sample_rate, spec.bits_per_sample), (1, rate, 16));
            reader.into_samples::<i16>().map(Result::unwrap).collect()
        } else {
            audio
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect()
        };
        assert_eq!(samples.len(), 2 * rate as usize, "2.0 s of audio");
        let rms = (samples.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / samples.len() as f64).sqrt();
        assert!(rms > 300.0, "speech, not silence (rms {rms})");
    }
    let r = stats(&server).await;
    assert_eq!((r.tts.completed, r.tts.latency_ms.max), (2, 150.0));
    server.stop().await;
}

/// A clip's packets decoded at 16 kHz, as the server hands them to its ASR.
fn decoded(clip: &xiaozhi_fleet::audio::clip::Clip) -> Vec<i16> {
    let mut dec = opus_rs::OpusDecoder::new(16_000, 1).unwrap();
    let mut out = vec![0f32; 1920];
    let mut pcm = vec![0i16; 4_800]; // pre-roll silence
    for p in clip.packets.iter() {
        let n = dec.decode(p, 960, &mut out).unwrap();
        pcm.extend(out[..n].iter().map(|&s| (s * 32767.0) as i16));
    }
    pcm.extend(vec![0i16; 3_200]);
    pcm
}

fn wav(pcm: &[i16]) -> Vec<u8> {
    let mut cur = std::io::Cursor::new(Vec::new());
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::new(&mut cur, spec).unwrap();
    pcm.iter().for_each(|&s| w.write_sample(s).unwrap());
    w.finalize().unwrap();
    cur.into_inner()
}

#[tokio::test(start_paused = true)]
async fn transcription_returns_each_bundled_clips_transcript() {
    let server = start("[providers.asr]\ndelay = \"200ms\"\n").await;
    let client = openai(&server);
    let clips = ClipSet::embedded().unwrap();
    assert!(clips.clips.len() >= 6);
    for clip in &clips.clips {
        let req = CreateTranscriptionRequestArgs::default()
            .file(AudioInput::from_vec_u8(
                format!("{}.wav", clip.name),
                wav(&decoded(clip)),
            ))
            .model("whisper-1")
            .build()
            .unwrap();
        let t0 = Instant::now();
        let text = client.audio().transcription().create(req).await.unwrap().text;
        assert_eq!(text, clip.transcript, "{}", clip.name);
        assert_eq!(t0.elapsed(), Duration::from_millis(200));
    }
    let r = stats(&server).await;
    assert_eq!(r.asr.outcomes.get("matched"), Some(&(clips.clips.len() as u64)));
    server.stop().await;
}

/// One FunASR exchange as the xiaozhi server's `fun_server` provider runs
/// it; returns the parsed answer.
async fn funasr(server: &ProvidersServer, id: &str, pcm: &[i16]) -> serde_json::Value {
    funasr_url(&server.url(), id, pcm).await
}

async fn funasr_url(base: &str, id: &str, pcm: &[i16]) -> serde_json::Value {
    let url = format!("{}/", base.replacen("http://", "ws://", 1));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "binary".parse().unwrap());
    req.headers_mut()
        .insert("Authorization", "Bearer; none".parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async_with_config(req, None, true)
        .await
        .unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "binary");
    let config = serde_json::json!({"mode": "offline", "chunk_size": [5, 10, 5], "chunk_interval": 10,
                                    "wav_name": id, "is_speaking": true, "itn": false});
    ws.send(Message::text(config.to_string())).await.unwrap();
    let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
    for chunk in bytes.chunks(9_600) {
        ws.send(Message::binary(chunk.to_vec())).await.unwrap();
    }
    ws.send(Message::text(r#"{"is_speaking": false}"#)).await.unwrap();
    let answer = loop {
        match ws.next().await.unwrap().unwrap() {
            Message::Text(t) => break serde_json::from_str(t.as_str()).unwrap(),
            _ => continue,
        }
    };
    let _ = ws.close(None).await;
    answer
}

#[tokio::test(start_paused = true)]
async fn funasr_exchange_returns_each_bundled_clips_transcript_else_the_fallback() {
    let server = start("[providers.asr]\ndelay = \"250ms\"\nfallback = \"听不清\"\n").await;
    let clips = ClipSet::embedded().unwrap();
    for clip in &clips.clips {
        let t0 = Instant::now();
        let answer = funasr(&server, &clip.name, &decoded(clip)).await;
        assert_eq!(t0.elapsed(), Duration::from_millis(250), "{}", clip.name);
        assert_eq!(answer["text"], clip.transcript.as_str(), "{}", clip.name);
        assert_eq!(answer["wav_name"], clip.name.as_str());
        assert_eq!(
            (answer["mode"].as_str(), answer["is_final"].as_bool()),
            (Some("offline"), Some(true))
        );
    }
    let answer = funasr(&server, "silence", &vec![0i16; 32_000]).await;
    assert_eq!(answer["text"], "听不清");
    let r = stats(&server).await;
    let n = clips.clips.len() as u64;
    assert_eq!(
        (r.asr.outcomes.get("matched"), r.asr.outcomes.get("fallback")),
        (Some(&n), Some(&1))
    );
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn limit_of_two_with_one_second_delay_makes_the_third_wait_one_second() {
    let server = start("[providers.llm]\nworkers = 2\nfirst_token = \"1s\"\ntoken_interval = \"0ms\"\n").await;
    let client = openai(&server);
    let t0 = Instant::now();
    let one = || {
        let client = client.clone();
        async move {
            let r = client.chat().create(chat_request("你好")).await.unwrap();
            assert!(r.choices[0].message.content.is_some());
            t0.elapsed()
        }
    };
    let (a, b, c) = tokio::join!(one(), one(), one());
    let mut ends = [a, b, c];
    ends.sort();
    assert_eq!(
        ends,
        [Duration::from_secs(1), Duration::from_secs(1), Duration::from_secs(2)]
    );
    let r = stats(&server).await;
    assert_eq!(r.llm.workers, Some(2));
    assert_eq!(
        (r.llm.requests, r.llm.completed, r.llm.waited, r.llm.max_queued),
        (3, 3, 1, 1)
    );
    assert_eq!(
        (r.llm.wait_ms.max, r.llm.latency_ms.min, r.llm.latency_ms.max),
        (1000.0, 1000.0, 2000.0)
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_requests_get_clear_openai_shaped_errors() {
    let server = ProvidersServer::start("127.0.0.1:0", ProvidersConfig::default())
        .await
        .unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let cases = [
        ("/v1/chat/completions", "{not json", "chat completion request"),
        ("/v1/chat/completions", r#"{"messages": []}"#, "at least one message"),
        (
            "/v1/audio/speech",
            r#"{"input": "你好", "response_format": "mp3"}"#,
            "use wav or pcm",
        ),
        ("/v1/audio/speech", r#"{"input": "  "}"#, "`input` is empty"),
        ("/v1/nothing", "{}", "no stand-in at /v1/nothing"),
    ];
    for (path, body, says) in cases {
        let resp = http
            .post(format!("{}{path}", server.url()))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_client_error(), "{path}: {}", resp.status());
        let v: serde_json::Value = resp.json().await.unwrap();
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(says), "{path}: {msg}");
    }
    let r = server.report();
    assert_eq!((r.llm.failed, r.tts.failed), (2, 2));
    server.stop().await;
}

/// A loopback port free right now (the stand-ins are started by the
/// command under test, which must be told where before it runs).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (bounded) until something accepts on `port`.
async fn wait_for(port: u16) {
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("nothing listens on {port}");
}

/// What a real server does per turn: ASR (FunASR), LLM (streamed), TTS.
async fn one_server_turn(base: &str, clip: &xiaozhi_fleet::audio::clip::Clip) {
    let answer = funasr_url(base, "turn", &decoded(clip)).await;
    assert_eq!(answer["text"], clip.transcript.as_str());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::with_config(
        OpenAIConfig::new()
            .with_api_base(format!("{base}/v1"))
            .with_api_key("x"),
    );
    let mut stream = client
        .chat()
        .create_stream(chat_request(&clip.transcript))
        .await
        .unwrap();
    while stream.next().await.is_some() {}
    let req = CreateSpeechRequestArgs::default()
        .input("好的")
        .model(SpeechModel::Other("tts-1".into()))
        .voice(Voice::Alloy)
        .response_format(SpeechResponseFormat::Wav)
        .build()
        .unwrap();
    client.audio().speech().create(req).await.unwrap();
}

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
    let opts = CapacityOptions {
        slos: plan.slos.clone(),
        search: SearchConfig {
            start: 1,
            resolution: Resolution::Fixed(1),
            max_speakers: 1,
        },
        stage_duration: Duration::from_secs(6),
        target_speakers: None,
        tiers: plan.tiers.clone(),
        watch: Default::default(),
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
    let search = xiaozhi_fleet::app::capacity::capacity(
        &plan,
        None,
        opts,
        std::slice::from_ref(&path),
        CancellationToken::new(),
    );
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
