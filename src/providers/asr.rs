//! The ASR stand-in, in the two forms a xiaozhi server can call:
//!
//! - the FunASR runtime WebSocket protocol (the server's `fun_server`
//!   provider): a JSON config message (`mode`, `wav_name`, `is_speaking:
//!   true`, ...), binary 16 kHz 16-bit PCM, then `{"is_speaking": false}`;
//!   the answer is `{"mode", "wav_name", "text", "is_final": true,
//!   "timestamp"}`. Served on `/` of the same address (the upgrade is taken
//!   from hyper and handed to tokio-tungstenite).
//! - OpenAI-compatible `POST /v1/audio/transcriptions` (multipart `file`,
//!   a WAV), answering `{"text"}` (or plain text for `response_format=text`).
//!
//! The transcript is that of the bundled clip the audio matches
//! ([`super::matcher`]), else the configured fallback.

use super::State;
use super::http::bad_request;
use super::voice::{CLIP_RATE, read_wav_16k, samples_of};
use axum::body::Body;
use axum::extract::{Multipart, Request, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// Recognises 16 kHz audio after the configured delay; the ticket is the
/// caller's (taken when the audio was complete). Returns the transcript and
/// the outcome (`matched` or `fallback`).
async fn recognise(state: &State, pcm: &[i16]) -> (String, &'static str) {
    let cfg = state.config().asr.clone();
    let delay = cfg.delay.sample(&mut *state.rng(2));
    let found = state.matcher.best(pcm).filter(|m| m.score >= cfg.min_match);
    tokio::time::sleep(delay).await;
    match found {
        Some(m) => (m.transcript, "matched"),
        None => (cfg.fallback, "fallback"),
    }
}

/// `POST /v1/audio/transcriptions`.
pub(crate) async fn transcriptions(AxState(state): AxState<Arc<State>>, mut form: Multipart) -> Response {
    let mut file = None;
    let mut format = "json".to_string();
    loop {
        match form.next_field().await {
            Ok(Some(field)) => match field.name() {
                Some("file") => match field.bytes().await {
                    Ok(b) => file = Some(b),
                    Err(e) => return reject(&state, &format!("cannot read `file`: {e}")),
                },
                Some("response_format") => format = field.text().await.unwrap_or_default(),
                _ => {}
            },
            Ok(None) => break,
            Err(e) => return reject(&state, &format!("multipart form: {e}")),
        }
    }
    let Some(file) = file else {
        return reject(&state, "the form has no `file` field");
    };
    let pcm = match read_wav_16k(&file) {
        Ok(p) => p,
        Err(e) => return reject(&state, &format!("`file`: {e}; send a 16-bit PCM WAV")),
    };
    let seconds = (pcm.len() as f64 / CLIP_RATE as f64 * 1000.0).round() / 1000.0;
    let ticket = state.asr.admit().await;
    let (text, outcome) = recognise(&state, &pcm).await;
    ticket.complete(outcome);
    match format.as_str() {
        "text" => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response(),
        // `usage` as whisper-1 reports it: seconds of audio.
        _ => axum::Json(json!({"text": text, "usage": {"type": "duration", "seconds": seconds}})).into_response(),
    }
}

fn reject(state: &State, message: &str) -> Response {
    state.asr.reject();
    bad_request(message)
}

/// `GET /`: the FunASR WebSocket when the request is an upgrade, else a
/// short page naming the endpoints.
pub(crate) async fn root(AxState(state): AxState<Arc<State>>, req: Request) -> Response {
    let h = req.headers();
    let is_upgrade = h
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = h
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| derive_accept_key(k.as_bytes()));
    let (true, Some(accept)) = (is_upgrade, key) else {
        return index(&state);
    };
    let binary = offers_binary(h);
    let on_upgrade = hyper::upgrade::on(req);
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            tokio::select! {
                _ = funasr_session(ws, &state) => {}
                _ = shutdown.cancelled() => {}
            }
        }
    });
    let mut res = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept);
    if binary {
        res = res.header(header::SEC_WEBSOCKET_PROTOCOL, "binary");
    }
    res.body(Body::empty())
        .unwrap_or_else(|e| super::http::error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()))
}

/// The xiaozhi server's FunASR client asks for the `binary` subprotocol.
fn offers_binary(h: &HeaderMap) -> bool {
    h.get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == "binary")
}

fn index(state: &State) -> Response {
    let (u, w) = (&state.base, state.base.replacen("http://", "ws://", 1));
    let rows = [
        (
            "POST",
            format!("{u}/v1/chat/completions"),
            "LLM (OpenAI-compatible, streaming or not)",
        ),
        (
            "POST",
            format!("{u}/v1/audio/speech"),
            "TTS (OpenAI-compatible, wav or pcm)",
        ),
        (
            "POST",
            format!("{u}/v1/audio/transcriptions"),
            "ASR (OpenAI-compatible, multipart WAV)",
        ),
        ("WS", format!("{w}/"), "ASR (FunASR runtime protocol, fun_server)"),
        ("GET", format!("{u}/stats"), "counters and latencies (JSON)"),
    ];
    let mut text = String::from("xiaozhi-fleet AI provider stand-ins\n\n");
    for (method, url, what) in rows {
        text += &format!("{method:<5}{url:<48} {what}\n");
    }
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

/// One FunASR connection: any number of utterances, each ended by `is_speaking: false`.
async fn funasr_session<S>(mut ws: WebSocketStream<S>, state: &State)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut wav_name = String::new();
    let mut mode = "offline".to_string();
    let mut audio: Vec<u8> = Vec::new();
    while let Some(Ok(msg)) = ws.next().await {
        match msg {
            Message::Binary(b) => audio.extend_from_slice(&b),
            Message::Text(t) => {
                let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else {
                    state.asr.reject();
                    let _ = ws.close(None).await;
                    return;
                };
                if let Some(name) = v.get("wav_name").and_then(Value::as_str) {
                    wav_name = name.to_string();
                }
                if let Some(m) = v.get("mode").and_then(Value::as_str) {
                    mode = m.to_string();
                }
                if v.get("is_speaking").and_then(Value::as_bool) == Some(false) {
                    let ticket = state.asr.admit().await;
                    let pcm = samples_of(&std::mem::take(&mut audio));
                    let (text, outcome) = recognise(state, &pcm).await;
                    let answer = json!({"mode": mode, "wav_name": wav_name, "text": text,
                                        "is_final": true, "timestamp": ""});
                    if ws.send(Message::text(answer.to_string())).await.is_err() {
                        return;
                    }
                    ticket.complete(outcome);
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
}
