//! Typed JSON text messages in both directions (PROTOCOL.md §2, §4, §5, §9.3).
//!
//! This file owns what the directions share — the [`MessageError`] type and
//! the small parse/serialise helpers — and re-exports the three halves:
//! `client` (device → server: hello, listen, abort, mcp, goodbye), `server`
//! (server → device: hello, stt, llm, tts, mcp, goodbye) and `mcp` (the
//! device's JSON-RPC answers and PY's discovery requests). The split keeps
//! each file small; callers only ever name `crate::protocol::message::…`.

use serde::Serialize;
use serde_json::{Map, Value};
use thiserror::Error;

mod client;
mod mcp;
mod server;

pub use client::{AudioParams, ClientHello, ClientMessage, Features, Listen, ListenMode, ListenState};
pub use mcp::{
    MCP_PROTOCOL_VERSION, TOOL_GET_DEVICE_STATUS, TOOL_SET_VOLUME, mcp_initialize_request, mcp_reply,
    mcp_tools_list_request,
};
pub use server::{
    DEFAULT_DOWNLINK_SAMPLE_RATE, DEFAULT_FRAME_DURATION_MS, ServerAudioParams, ServerHello, ServerMessage, Tts,
};

/// Why a text frame is not a usable message.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum MessageError {
    /// Not JSON at all (PY echoes such text; the firmware ignores it).
    #[error("text frame is not JSON")]
    NotJson,
    /// JSON, but not an object (array, number, string…).
    #[error("JSON text frame is not an object")]
    NotObject,
    /// Known `type` with an unusable shape; PY closes the connection on the
    /// `listen` and `hello` cases (§9.3).
    #[error("invalid `{type_}` message: {reason}")]
    Invalid { type_: &'static str, reason: String },
}

fn invalid(type_: &'static str, reason: impl Into<String>) -> MessageError {
    MessageError::Invalid {
        type_,
        reason: reason.into(),
    }
}

fn parse_object(text: &str) -> Result<Value, MessageError> {
    let value: Value = serde_json::from_str(text).map_err(|_| MessageError::NotJson)?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(MessageError::NotObject)
    }
}

fn str_field(obj: &Map<String, Value>, key: &str) -> Option<String> {
    obj.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// Serialises wire structs; they hold only strings, enums and JSON values,
/// for which serde_json cannot fail, so an empty object is a safe fallback.
fn to_string<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| String::from("{}"))
}
