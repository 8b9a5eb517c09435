//! The TTS stand-in: OpenAI-compatible `POST /v1/audio/speech`
//! (`{model, voice, input, response_format, speed}`). After the configured
//! delay it returns real speech from the bundled clips whose length follows
//! the text (`per_char` per spoken character, divided by `speed`): a 16-bit
//! mono WAV (`wav`, the default, what the xiaozhi server asks for) or raw
//! little-endian PCM (`pcm`), at the configured 16 or 24 kHz.

use super::State;
use super::http::bad_request;
use super::voice::{pcm_bytes, speech_len, wav_bytes};
use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
struct SpeechRequest {
    input: String,
    #[serde(default)]
    response_format: Option<String>,
    #[serde(default)]
    speed: Option<f64>,
}

/// `POST /v1/audio/speech`.
pub(crate) async fn speech(AxState(state): AxState<Arc<State>>, body: Bytes) -> Response {
    let req: SpeechRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            state.tts.reject();
            return bad_request(&format!("speech request: {e}"));
        }
    };
    let format = req.response_format.as_deref().unwrap_or("wav").to_string();
    let speed = req.speed.unwrap_or(1.0);
    let problem = if format != "wav" && format != "pcm" {
        Some(format!(
            "response_format `{format}` is not supported by the stand-in: use wav or pcm"
        ))
    } else if !(0.25..=4.0).contains(&speed) {
        Some(format!("speed {speed} is outside 0.25..4.0"))
    } else if req.input.trim().is_empty() {
        Some("`input` is empty".to_string())
    } else {
        None
    };
    if let Some(p) = problem {
        state.tts.reject();
        return bad_request(&p);
    }
    let cfg = state.config().tts.clone();
    let delay = cfg.delay.sample(&mut *state.rng(1));
    let ticket = state.tts.admit().await;
    tokio::time::sleep(delay).await;
    let tape = state.tape(cfg.sample_rate);
    let len = speech_len(&req.input, cfg.per_char, speed, tape.rate);
    let pcm = tape.speak(&req.input, len);
    let (bytes, mime) = if format == "wav" {
        match wav_bytes(&pcm, tape.rate) {
            Ok(b) => (b, "audio/wav"),
            Err(e) => return super::http::error(axum::http::StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        }
    } else {
        (pcm_bytes(&pcm), "audio/pcm")
    };
    ticket.complete(if format == "wav" { "wav" } else { "pcm" });
    ([(header::CONTENT_TYPE, mime)], bytes).into_response()
}
