//! The LLM stand-in: OpenAI-compatible `POST /v1/chat/completions`.
//!
//! `stream: true` answers with server-sent events of `chat.completion.chunk`
//! objects (the first token after the first-token delay, the rest one per
//! token interval, then `data: [DONE]`); otherwise one `chat.completion`
//! after the same total time. When the request offers `tools`, a tool call
//! is made when `tool_choice` asks for one, or for a configured share of
//! requests, so the server's function-calling path is loaded too; after a
//! `tool` message the answer is text again.

use super::State;
use super::config::{LlmConfig, ReplyPick};
use super::http::{bad_request, sse_body};
use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;

/// The part of a chat request the stand-in reads; other fields are accepted and ignored.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub tools: Option<Vec<Tool>>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct Message {
    pub role: String,
    #[serde(default)]
    pub content: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct Tool {
    #[serde(default)]
    pub function: Option<FunctionName>,
}

#[derive(Debug, Deserialize)]
pub struct FunctionName {
    pub name: String,
}

/// What the stand-in will say.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Text(String),
    ToolCall { name: String, arguments: String },
}

/// The device-status tool every xiaozhi device offers over MCP: calling it
/// loads the server's tool path without side effects on the session.
const PREFERRED_TOOL: &str = "self.get_device_status";

/// Decides the answer to a request (pure: all randomness from `rng`).
pub fn plan_answer(req: &ChatRequest, cfg: &LlmConfig, rng: &mut impl Rng) -> Answer {
    let offered: Vec<&str> = req
        .tools
        .iter()
        .flatten()
        .filter_map(|t| t.function.as_ref().map(|f| f.name.as_str()))
        .collect();
    let after_tool = req.messages.last().is_some_and(|m| m.role == "tool");
    let forced = match &req.tool_choice {
        Some(Value::String(s)) if s == "required" => Some(None),
        Some(Value::Object(o)) => Some(o.get("function").and_then(|f| f.get("name")).and_then(Value::as_str)),
        _ => None,
    };
    let refused = matches!(&req.tool_choice, Some(Value::String(s)) if s == "none");
    let draw: f64 = rng.random();
    let call = !offered.is_empty() && !after_tool && !refused && (forced.is_some() || draw < cfg.tool_call_ratio);
    if call {
        let configured = cfg.tool.as_deref().filter(|t| offered.contains(t));
        let name = forced
            .flatten()
            .or(configured)
            .or_else(|| offered.iter().copied().find(|t| *t == PREFERRED_TOOL))
            .unwrap_or(offered[0]);
        return Answer::ToolCall {
            name: name.to_string(),
            arguments: cfg.tool_arguments.clone(),
        };
    }
    let i = match cfg.pick {
        ReplyPick::Seed => rng.random_range(0..cfg.replies.len()),
        ReplyPick::Turn => {
            let users = req.messages.iter().filter(|m| m.role == "user").count();
            users.saturating_sub(1) % cfg.replies.len()
        }
    };
    Answer::Text(cfg.replies[i].clone())
}

/// Splits a reply into streamed tokens: a run of ASCII letters/digits with
/// the spaces after it is one token, any other character (a CJK character,
/// punctuation) is one. The tokens concatenate to the text exactly.
pub fn tokens(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            if word.ends_with(' ') {
                out.push(std::mem::take(&mut word));
            }
            word.push(c);
        } else if c == ' ' && !word.is_empty() {
            word.push(c);
        } else {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            out.push(c.to_string());
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `POST /v1/chat/completions`.
pub(crate) async fn chat(AxState(state): AxState<Arc<State>>, body: Bytes) -> Response {
    let req: ChatRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            state.llm.reject();
            return bad_request(&format!("chat completion request: {e}"));
        }
    };
    if req.messages.is_empty() {
        state.llm.reject();
        return bad_request("`messages` must hold at least one message");
    }
    let cfg = state.config().llm.clone();
    let (answer, delays) = {
        let mut rng = state.rng(0);
        let answer = plan_answer(&req, &cfg, &mut *rng);
        let n = match &answer {
            Answer::Text(t) => tokens(t).len().max(1),
            Answer::ToolCall { .. } => 2,
        };
        let mut delays = vec![cfg.first_token.sample(&mut *rng)];
        delays.extend((1..n).map(|_| cfg.token_interval.sample(&mut *rng)));
        (answer, delays)
    };
    let reply = Reply {
        id: format!("chatcmpl-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed)),
        created: unix_now(),
        model: req.model.clone().unwrap_or_else(|| "stand-in".to_string()),
    };
    let prompt_chars: usize = req
        .messages
        .iter()
        .filter_map(|m| m.content.as_ref().and_then(Value::as_str))
        .map(|s| s.chars().count())
        .sum();
    let ticket = state.llm.admit().await;
    if req.stream == Some(true) {
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(async move {
            let outcome = match stream_answer(&reply, &answer, &delays, &ticket, &tx).await {
                Some(o) => o,
                None => return, // the client went away: the dropped ticket counts it
            };
            ticket.complete(outcome);
        });
        return sse_body(rx);
    }
    let total: Duration = delays.iter().sum();
    tokio::time::sleep(total).await;
    let (message, finish, completion_tokens, outcome) = match &answer {
        Answer::Text(t) => (
            json!({"role": "assistant", "content": t}),
            "stop",
            tokens(t).len(),
            "text",
        ),
        Answer::ToolCall { name, arguments } => (
            json!({"role": "assistant", "content": null, "tool_calls": [tool_call_json(&reply.id, name, arguments)]}),
            "tool_calls",
            2,
            "tool_call",
        ),
    };
    let body = json!({
        "id": reply.id, "object": "chat.completion", "created": reply.created, "model": reply.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": null}],
        "usage": {"prompt_tokens": prompt_chars, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_chars + completion_tokens},
    });
    ticket.complete(outcome);
    axum::Json(body).into_response()
}

struct Reply {
    id: String,
    created: u64,
    model: String,
}

impl Reply {
    fn chunk(&self, delta: Value, finish: Option<&str>) -> Bytes {
        let v = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
        });
        Bytes::from(format!("data: {v}\n\n"))
    }
}

fn tool_call_json(id: &str, name: &str, arguments: &str) -> Value {
    json!({"id": format!("call_{id}"), "type": "function", "function": {"name": name, "arguments": arguments}})
}

/// Sends the answer as SSE chunks on its schedule; `None` if the client left.
async fn stream_answer(
    reply: &Reply,
    answer: &Answer,
    delays: &[Duration],
    ticket: &super::gate::Ticket,
    tx: &mpsc::Sender<Bytes>,
) -> Option<&'static str> {
    let chunks: Vec<Value> = match answer {
        Answer::Text(t) => tokens(t)
            .into_iter()
            .enumerate()
            .map(|(i, tok)| match i {
                0 => json!({"role": "assistant", "content": tok}),
                _ => json!({"content": tok}),
            })
            .collect(),
        Answer::ToolCall { name, arguments } => {
            let mut first = tool_call_json(&reply.id, name, "");
            first["index"] = json!(0);
            vec![
                json!({"role": "assistant", "content": null, "tool_calls": [first]}),
                json!({"tool_calls": [{"index": 0, "function": {"arguments": arguments}}]}),
            ]
        }
    };
    for (i, (delta, wait)) in chunks.into_iter().zip(delays).enumerate() {
        tokio::time::sleep(*wait).await;
        tx.send(reply.chunk(delta, None)).await.ok()?;
        if i == 0 {
            ticket.first_token();
        }
    }
    let (finish, outcome) = match answer {
        Answer::Text(_) => ("stop", "text"),
        Answer::ToolCall { .. } => ("tool_calls", "tool_call"),
    };
    tx.send(reply.chunk(json!({}), Some(finish))).await.ok()?;
    tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await.ok()?;
    Some(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::config::ProvidersConfig;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn req(text: &str) -> ChatRequest {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn tokens_concatenate_to_the_reply() {
        for t in ["好的，我明白了。", "Hello world, 2 cats!", "今天 sunny 吗？", ""] {
            assert_eq!(tokens(t).concat(), t);
        }
        assert_eq!(tokens("你好 hi there!"), ["你", "好", " ", "hi ", "there", "!"]);
    }

    #[test]
    fn turn_pick_follows_the_number_of_user_messages() {
        let mut cfg = ProvidersConfig::default().llm;
        cfg.replies = vec!["一".into(), "二".into()];
        cfg.pick = ReplyPick::Turn;
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let one = req(r#"{"messages":[{"role":"system","content":"s"},{"role":"user","content":"a"}]}"#);
        let three = req(
            r#"{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},
            {"role":"user","content":"c"},{"role":"user","content":"d"}]}"#,
        );
        assert_eq!(plan_answer(&one, &cfg, &mut rng), Answer::Text("一".into()));
        assert_eq!(plan_answer(&three, &cfg, &mut rng), Answer::Text("一".into()));
    }

    #[test]
    fn tool_calls_when_asked_and_text_after_the_tool_answers() {
        let cfg = ProvidersConfig::default().llm;
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let tools = r#""tools":[{"type":"function","function":{"name":"play_music"}},
            {"type":"function","function":{"name":"self.get_device_status"}}]"#;
        let required = req(&format!(
            r#"{{"messages":[{{"role":"user"}}],{tools},"tool_choice":"required"}}"#
        ));
        assert!(matches!(plan_answer(&required, &cfg, &mut rng),
            Answer::ToolCall { name, .. } if name == "self.get_device_status"));
        let named = req(&format!(
            r#"{{"messages":[{{"role":"user"}}],{tools},"tool_choice":{{"type":"function","function":{{"name":"play_music"}}}}}}"#
        ));
        assert!(matches!(plan_answer(&named, &cfg, &mut rng), Answer::ToolCall { name, .. } if name == "play_music"));
        let auto = req(&format!(r#"{{"messages":[{{"role":"user"}}],{tools}}}"#));
        assert!(
            matches!(plan_answer(&auto, &cfg, &mut rng), Answer::Text(_)),
            "ratio 0: never on its own"
        );
        let after = req(&format!(
            r#"{{"messages":[{{"role":"user"}},{{"role":"tool","content":"ok"}}],{tools},"tool_choice":"required"}}"#
        ));
        assert!(matches!(plan_answer(&after, &cfg, &mut rng), Answer::Text(_)));
    }

    #[test]
    fn tool_call_ratio_is_a_seeded_share() {
        let mut cfg = ProvidersConfig::default().llm;
        cfg.tool_call_ratio = 0.25;
        let r = req(r#"{"messages":[{"role":"user"}],"tools":[{"function":{"name":"x"}}]}"#);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let calls = (0..4000)
            .filter(|_| matches!(plan_answer(&r, &cfg, &mut rng), Answer::ToolCall { .. }))
            .count();
        assert!((900..1100).contains(&calls), "{calls} of 4000");
    }
}
