//! Each endpoint with a real client: chat (streamed and not, tool calls),
//! speech, transcription, FunASR, the concurrency limit, bad input.

use crate::support::*;
use async_openai::types::audio::{
    AudioInput, CreateSpeechRequestArgs, CreateTranscriptionRequestArgs, SpeechModel, SpeechResponseFormat, Voice,
};
use async_openai::types::chat::{
    ChatCompletionTool, ChatCompletionToolChoiceOption, ChatCompletionTools, FunctionObjectArgs, ToolChoiceOptions,
};
use futures_util::StreamExt;
use std::time::Duration;
use tokio::time::Instant;
use xiaozhi_fleet::audio::clip::ClipSet;
use xiaozhi_fleet::providers::{ProvidersConfig, ProvidersServer};

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

#[tokio::test(start_paused = true)]
async fn speech_slower_than_real_time_streams_for_length_over_rtf() {
    let server =
        start("[providers.tts]\ndelay = \"150ms\"\nper_char = \"240ms\"\nsample_rate = 16000\nrtf = 0.8\n").await;
    let client = openai(&server);
    let req = CreateSpeechRequestArgs::default()
        .input("今天天气晴朗，适合出门。") // 10 spoken characters → 2.4 s: 40 pieces of 60 ms
        .model(SpeechModel::Other("tts-1".into()))
        .voice(Voice::Alloy)
        .response_format(SpeechResponseFormat::Wav)
        .build()
        .unwrap();
    let t0 = Instant::now();
    let audio = client.audio().speech().create(req).await.unwrap().bytes;
    // 2.4 s of audio made at 0.8 × real time takes 3 s, after the delay.
    assert_eq!(t0.elapsed(), Duration::from_millis(150 + 3000));
    let reader = hound::WavReader::new(std::io::Cursor::new(audio.to_vec())).unwrap();
    assert_eq!(reader.len(), 2400 * 16, "2.4 s of audio, whole");
    let r = stats(&server).await;
    assert_eq!((r.tts.completed, r.tts.latency_ms.max), (1, 3150.0));
    server.stop().await;
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
