//! The TTS stand-in: OpenAI-compatible `POST /v1/audio/speech`
//! (`{model, voice, input, response_format, speed}`). After the configured
//! delay it returns real speech from the bundled clips whose length follows
//! the text (`per_char` per spoken character, divided by `speed`): a 16-bit
//! mono WAV (`wav`, the default, what the xiaozhi server asks for) or raw
//! little-endian PCM (`pcm`), at the configured 16 or 24 kHz. With a
//! real-time factor below 1 (`rtf`) the body streams: after the delay,
//! each 60 ms of audio is sent when it is made (60 ms / `rtf` each, on
//! absolute deadlines; the WAV header rides with the first piece), as a
//! streaming provider slower than real time would.

use super::State;
use super::http::bad_request;
use super::voice::{pcm_bytes, speech_len, wav_bytes};
use crate::mock::synthesis::synthesis_time;
use axum::body::{Body, Bytes};
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
    let outcome = if format == "wav" { "wav" } else { "pcm" };
    let piece = synthesis_time(PIECE, cfg.rtf);
    let Some(step) = piece else {
        ticket.complete(outcome);
        return ([(header::CONTENT_TYPE, mime)], bytes).into_response();
    };
    // Bytes of one 60 ms piece of 16-bit mono audio; the header goes first.
    let per_piece = (tape.rate as usize * PIECE.as_millis() as usize / 1000) * 2;
    let header_len = bytes.len() - pcm.len() * 2;
    let body = streamed(bytes, header_len, per_piece, step, ticket, outcome);
    ([(header::CONTENT_TYPE, mime)], Body::from_stream(body)).into_response()
}

/// Audio made per streamed piece.
const PIECE: std::time::Duration = std::time::Duration::from_millis(60);

/// The body in pieces of `per_piece` audio bytes (the first one also
/// carrying the `header_len` header bytes), piece `k` sent `(k + 1) ×
/// step` after now; the request completes with the last piece.
fn streamed(
    bytes: Vec<u8>,
    header_len: usize,
    per_piece: usize,
    step: std::time::Duration,
    ticket: super::gate::Ticket,
    outcome: &'static str,
) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> {
    let start = tokio::time::Instant::now();
    let bytes = Bytes::from(bytes);
    let state = (0usize, 0u32, Some(ticket));
    futures_util::stream::unfold(state, move |(from, k, ticket)| {
        let bytes = bytes.clone();
        async move {
            if from >= bytes.len() {
                return None;
            }
            let first = if k == 0 { header_len } else { 0 };
            let to = (from + first + per_piece).min(bytes.len());
            tokio::time::sleep_until(start + step * (k + 1)).await;
            let mut ticket = ticket;
            if to == bytes.len()
                && let Some(t) = ticket.take()
            {
                t.complete(outcome);
            }
            Some((Ok(bytes.slice(from..to)), (to, k + 1, ticket)))
        }
    })
}
