//! Server → device messages: hello, `stt`, `llm`, `tts`, `mcp`, `goodbye`
//! (PROTOCOL.md §2.2, §5).
//!
//! The simulator parses these with the firmware's tolerance (unknown types and
//! states pass through as [`ServerMessage::Unknown`], missing hello members
//! stay `None` so the device logic can judge them) and the mock server
//! serialises them in PY's shape, with an optional `session_id` last.

use crate::protocol::message::{AudioParams, MessageError, parse_object, str_field, to_string};
use serde::Serialize;
use serde_json::{Map, Value};

/// Firmware default downlink sample rate when the server hello has none (§2.2).
pub const DEFAULT_DOWNLINK_SAMPLE_RATE: u32 = 24_000;
/// Firmware default downlink frame duration in ms (§2.2).
pub const DEFAULT_FRAME_DURATION_MS: u32 = 60;

fn uint<T: TryFrom<u64>>(obj: &Map<String, Value>, key: &str) -> Option<T> {
    obj.get(key)?.as_u64().and_then(|n| T::try_from(n).ok())
}

/// `audio_params` of the server hello; every member optional, wrongly typed
/// members read as absent (the firmware checks `cJSON_IsNumber`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ServerAudioParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame_duration: Option<u32>,
}

impl ServerAudioParams {
    fn from_object(obj: &Map<String, Value>) -> Self {
        Self {
            format: str_field(obj, "format"),
            sample_rate: uint(obj, "sample_rate"),
            channels: uint(obj, "channels"),
            frame_duration: uint(obj, "frame_duration"),
        }
    }
}

/// Echoes a client's uplink parameters, as PY's hello does (§2.2).
impl From<&AudioParams> for ServerAudioParams {
    fn from(params: &AudioParams) -> Self {
        Self {
            format: Some(params.format.clone()),
            sample_rate: Some(params.sample_rate),
            channels: Some(params.channels),
            frame_duration: Some(params.frame_duration),
        }
    }
}

/// Server hello (§2.2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerHello {
    pub version: Option<u8>,
    pub transport: Option<String>,
    pub session_id: Option<String>,
    pub audio_params: Option<ServerAudioParams>,
}

impl ServerHello {
    /// A PY-style hello: version 1, `transport: "websocket"`, the session id
    /// and the given audio parameters.
    pub fn websocket(session_id: impl Into<String>, audio_params: ServerAudioParams) -> Self {
        Self {
            version: Some(1),
            transport: Some("websocket".into()),
            session_id: Some(session_id.into()),
            audio_params: Some(audio_params),
        }
    }

    /// Whether the firmware would accept this hello (`transport` is `websocket`).
    pub fn is_websocket(&self) -> bool {
        self.transport.as_deref() == Some("websocket")
    }

    /// Downlink decoder rate: the advertised one or the firmware's 24000.
    pub fn downlink_sample_rate(&self) -> u32 {
        self.audio_params
            .as_ref()
            .and_then(|p| p.sample_rate)
            .unwrap_or(DEFAULT_DOWNLINK_SAMPLE_RATE)
    }

    /// Downlink frame duration in ms: the advertised one or the firmware's 60.
    pub fn frame_duration(&self) -> u32 {
        self.audio_params
            .as_ref()
            .and_then(|p| p.frame_duration)
            .unwrap_or(DEFAULT_FRAME_DURATION_MS)
    }

    fn from_object(obj: &Map<String, Value>) -> Self {
        Self {
            version: uint(obj, "version"),
            transport: str_field(obj, "transport"),
            session_id: str_field(obj, "session_id"),
            audio_params: obj
                .get("audio_params")
                .and_then(Value::as_object)
                .map(ServerAudioParams::from_object),
        }
    }
}

/// `tts` playback control (§5.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tts {
    Start,
    /// Subtitle; a missing `text` parses as empty.
    SentenceStart {
        text: String,
    },
    SentenceEnd {
        text: Option<String>,
    },
    Stop,
}

impl Tts {
    fn state(&self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::SentenceStart { .. } => "sentence_start",
            Self::SentenceEnd { .. } => "sentence_end",
            Self::Stop => "stop",
        }
    }

    fn text(&self) -> Option<&str> {
        match self {
            Self::SentenceStart { text } => Some(text),
            Self::SentenceEnd { text } => text.as_deref(),
            Self::Start | Self::Stop => None,
        }
    }

    fn from_object(obj: &Map<String, Value>) -> Option<Self> {
        let tts = match obj.get("state").and_then(Value::as_str)? {
            "start" => Self::Start,
            "stop" => Self::Stop,
            "sentence_start" => Self::SentenceStart {
                text: str_field(obj, "text").unwrap_or_default(),
            },
            "sentence_end" => Self::SentenceEnd {
                text: str_field(obj, "text"),
            },
            _ => return None,
        };
        Some(tts)
    }
}

/// Server → device text message. `session_id` is ignored on parse (the
/// firmware ignores it too) except inside the hello.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerMessage {
    Hello(ServerHello),
    /// Recognised user text; a missing `text` parses as empty.
    Stt {
        text: String,
    },
    Llm {
        text: Option<String>,
        emotion: Option<String>,
    },
    Tts(Tts),
    /// JSON-RPC request to the device; a missing `payload` parses as null.
    Mcp {
        payload: Value,
    },
    Goodbye,
    /// Unknown or missing `type`, or a `tts` with an unknown state.
    Unknown(Value),
}

/// Wire shape of every server message, in PY's key order.
#[derive(Default, Serialize)]
struct ServerWire<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    transport: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    audio_params: Option<&'a ServerAudioParams>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    emotion: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<&'a str>,
}

impl ServerMessage {
    /// Parses a server text frame with the firmware's tolerance.
    pub fn parse(text: &str) -> Result<Self, MessageError> {
        let value = parse_object(text)?;
        let Some(obj) = value.as_object() else {
            return Err(MessageError::NotObject);
        };
        let message = match obj.get("type").and_then(Value::as_str) {
            Some("hello") => Self::Hello(ServerHello::from_object(obj)),
            Some("stt") => Self::Stt {
                text: str_field(obj, "text").unwrap_or_default(),
            },
            Some("llm") => Self::Llm {
                text: str_field(obj, "text"),
                emotion: str_field(obj, "emotion"),
            },
            Some("tts") => match Tts::from_object(obj) {
                Some(tts) => Self::Tts(tts),
                None => Self::Unknown(value),
            },
            Some("mcp") => Self::Mcp {
                payload: obj.get("payload").cloned().unwrap_or(Value::Null),
            },
            Some("goodbye") => Self::Goodbye,
            _ => Self::Unknown(value),
        };
        Ok(message)
    }

    /// Serialises without a `session_id` (except the hello's own).
    pub fn to_json(&self) -> String {
        self.to_json_with_session(None)
    }

    /// Serialises for the mock server, appending `session_id` when given. PY
    /// passes it on hello, stt, llm and tts but not on mcp. A hello that
    /// carries its own `session_id` uses that one. `Unknown` is sent verbatim.
    pub fn to_json_with_session(&self, session_id: Option<&str>) -> String {
        let base = |kind| ServerWire {
            kind,
            session_id,
            ..ServerWire::default()
        };
        let wire = match self {
            Self::Unknown(value) => return value.to_string(),
            Self::Hello(hello) => ServerWire {
                version: hello.version,
                transport: hello.transport.as_deref(),
                audio_params: hello.audio_params.as_ref(),
                session_id: hello.session_id.as_deref().or(session_id),
                ..base("hello")
            },
            Self::Stt { text } => ServerWire {
                text: Some(text),
                ..base("stt")
            },
            Self::Llm { text, emotion } => ServerWire {
                text: text.as_deref(),
                emotion: emotion.as_deref(),
                ..base("llm")
            },
            Self::Tts(tts) => ServerWire {
                state: Some(tts.state()),
                text: tts.text(),
                ..base("tts")
            },
            Self::Mcp { payload } => ServerWire {
                payload: Some(payload),
                ..base("mcp")
            },
            Self::Goodbye => base("goodbye"),
        };
        to_string(&wire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PY_HELLO: &str = r#"{"type":"hello","version":1,"transport":"websocket","audio_params":{"format":"opus","sample_rate":16000,"channels":1,"frame_duration":60},"session_id":"6f1c"}"#;

    fn hello(text: &str) -> ServerHello {
        match ServerMessage::parse(text) {
            Ok(ServerMessage::Hello(hello)) => hello,
            other => panic!("expected hello, got {other:?}"),
        }
    }

    #[test]
    fn py_hello_parses_with_advertised_rate() {
        let hello = hello(PY_HELLO);
        assert!(hello.is_websocket());
        assert_eq!(hello.version, Some(1));
        assert_eq!(hello.session_id.as_deref(), Some("6f1c"));
        assert_eq!(hello.downlink_sample_rate(), 16_000);
        assert_eq!(hello.frame_duration(), 60);
    }

    #[test]
    fn hello_without_audio_params_uses_firmware_defaults() {
        let hello = hello(r#"{"type":"hello","transport":"websocket","audio_params":{"sample_rate":"x"}}"#);
        assert_eq!(hello.version, None);
        assert_eq!(hello.downlink_sample_rate(), 24_000);
        assert_eq!(hello.frame_duration(), 60);
    }

    #[test]
    fn hello_missing_transport_is_returned_for_the_device_to_judge() {
        let hello = hello(r#"{"type":"hello","session_id":"s"}"#);
        assert_eq!(hello.transport, None);
        assert!(!hello.is_websocket());
    }

    #[test]
    fn server_parse_rejects_non_json_text() {
        assert_eq!(ServerMessage::parse("认证失败"), Err(MessageError::NotJson));
        assert_eq!(ServerMessage::parse("7"), Err(MessageError::NotObject));
    }

    #[test]
    fn object_without_string_type_is_unknown() {
        for text in [r#"{"state":"start"}"#, r#"{"type":5}"#, r#"{"type":"alert"}"#] {
            assert!(matches!(ServerMessage::parse(text), Ok(ServerMessage::Unknown(_))));
        }
    }

    #[test]
    fn tts_states_parse_and_unknown_state_is_unknown() {
        let parse = |t: &str| ServerMessage::parse(t).expect("parse");
        assert_eq!(
            parse(r#"{"type":"tts","state":"start","session_id":"s"}"#),
            ServerMessage::Tts(Tts::Start)
        );
        assert_eq!(
            parse(r#"{"type":"tts","state":"sentence_start","text":"hi"}"#),
            ServerMessage::Tts(Tts::SentenceStart { text: "hi".into() })
        );
        assert_eq!(
            parse(r#"{"type":"tts","state":"sentence_end"}"#),
            ServerMessage::Tts(Tts::SentenceEnd { text: None })
        );
        assert_eq!(parse(r#"{"type":"tts","state":"stop"}"#), ServerMessage::Tts(Tts::Stop));
        assert!(matches!(
            parse(r#"{"type":"tts","state":"pause"}"#),
            ServerMessage::Unknown(_)
        ));
        assert!(matches!(parse(r#"{"type":"tts"}"#), ServerMessage::Unknown(_)));
    }

    #[test]
    fn py_shaped_messages_serialise_with_session_last() {
        let sid = Some("6f1c");
        let stt = ServerMessage::Stt { text: "你好".into() };
        assert_eq!(
            stt.to_json_with_session(sid),
            r#"{"type":"stt","text":"你好","session_id":"6f1c"}"#
        );
        let sentence = ServerMessage::Tts(Tts::SentenceStart { text: "a".into() });
        assert_eq!(
            sentence.to_json_with_session(sid),
            r#"{"type":"tts","state":"sentence_start","text":"a","session_id":"6f1c"}"#
        );
        let llm = ServerMessage::Llm {
            text: Some("🙂".into()),
            emotion: Some("happy".into()),
        };
        assert_eq!(
            llm.to_json_with_session(sid),
            r#"{"type":"llm","text":"🙂","emotion":"happy","session_id":"6f1c"}"#
        );
        let mcp = ServerMessage::Mcp {
            payload: json!({"id": 2}),
        };
        assert_eq!(mcp.to_json(), r#"{"type":"mcp","payload":{"id":2}}"#);
    }

    #[test]
    fn py_hello_serialises_exactly() {
        let params = ServerAudioParams::from(&AudioParams::device_uplink());
        let msg = ServerMessage::Hello(ServerHello::websocket("6f1c", params));
        assert_eq!(msg.to_json_with_session(Some("ignored")), PY_HELLO);
    }

    #[test]
    fn server_messages_round_trip_through_parse() {
        let messages = [
            ServerMessage::Hello(hello(PY_HELLO)),
            ServerMessage::Stt { text: "t".into() },
            ServerMessage::Llm {
                text: None,
                emotion: Some("sad".into()),
            },
            ServerMessage::Tts(Tts::Start),
            ServerMessage::Tts(Tts::SentenceEnd { text: Some("x".into()) }),
            ServerMessage::Tts(Tts::Stop),
            ServerMessage::Mcp {
                payload: json!({"jsonrpc": "2.0", "id": 1, "method": "initialize"}),
            },
            ServerMessage::Goodbye,
            ServerMessage::Unknown(json!({"type": "system", "command": "reboot"})),
        ];
        for message in messages {
            let text = message.to_json_with_session(Some("s"));
            assert_eq!(ServerMessage::parse(&text), Ok(message));
        }
    }
}
