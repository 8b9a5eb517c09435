//! Shared helpers: stand-ins from a `[providers]` table, an async-openai
//! client for them, `/stats`, clips decoded as a server decodes them, and
//! the FunASR exchange as the xiaozhi server's `fun_server` provider runs it.

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::types::audio::{CreateSpeechRequestArgs, SpeechModel, SpeechResponseFormat, Voice};
use async_openai::types::chat::{
    ChatCompletionRequestUserMessageArgs, CreateChatCompletionRequest, CreateChatCompletionRequestArgs,
};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use xiaozhi_fleet::config::FleetFile;
use xiaozhi_fleet::providers::{ProvidersReport, ProvidersServer};

/// Stand-ins configured from a `[providers]` table, on 127.0.0.1:0.
pub async fn start(toml: &str) -> ProvidersServer {
    let file = FleetFile::parse(toml, "providers.toml").expect("fleet parses");
    let cfg = file
        .providers
        .unwrap_or_default()
        .resolve()
        .expect("settings are valid");
    ProvidersServer::start("127.0.0.1:0", cfg).await.expect("binds")
}

pub fn openai(server: &ProvidersServer) -> Client<OpenAIConfig> {
    // reqwest is built with rustls and no default crypto provider: use ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::with_config(
        OpenAIConfig::new()
            .with_api_base(format!("{}/v1", server.url()))
            .with_api_key("sk-not-needed"),
    )
}

pub fn chat_request(text: &str) -> CreateChatCompletionRequest {
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

pub async fn stats(server: &ProvidersServer) -> ProvidersReport {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::get(format!("{}/stats", server.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A clip's packets decoded at 16 kHz, as the server hands them to its ASR.
pub fn decoded(clip: &xiaozhi_fleet::audio::clip::Clip) -> Vec<i16> {
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

pub fn wav(pcm: &[i16]) -> Vec<u8> {
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

/// One FunASR exchange as the xiaozhi server's `fun_server` provider runs
/// it; returns the parsed answer.
pub async fn funasr(server: &ProvidersServer, id: &str, pcm: &[i16]) -> serde_json::Value {
    funasr_url(&server.url(), id, pcm).await
}

pub async fn funasr_url(base: &str, id: &str, pcm: &[i16]) -> serde_json::Value {
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

/// A loopback port free right now (the stand-ins are started by the
/// command under test, which must be told where before it runs).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (bounded) until something accepts on `port`.
pub async fn wait_for(port: u16) {
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("nothing listens on {port}");
}

/// What a real server does per turn: ASR (FunASR), LLM (streamed), TTS.
pub async fn one_server_turn(base: &str, clip: &xiaozhi_fleet::audio::clip::Clip) {
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
