//! Device → server messages: the client hello, `listen`, `abort`, `mcp`,
//! `goodbye` (PROTOCOL.md §2.1, §4, §9.3).
//!
//! The simulator serialises these exactly as the firmware does (key order
//! `session_id`, `type`, …) and the mock server parses them with PY's
//! tolerance: unknown types pass through, a `listen` without `state` or a
//! `hello` with non-object `features`/`audio_params` is an error PY closes on.

use crate::protocol::message::{MessageError, invalid, parse_object, str_field, to_string};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Uplink audio parameters announced in the client hello.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AudioParams {
    pub format: String,
    pub sample_rate: u32,
    pub channels: u8,
    pub frame_duration: u32,
}

impl AudioParams {
    /// What the firmware always sends: Opus, 16 kHz, mono, 60 ms.
    pub fn device_uplink() -> Self {
        Self {
            format: "opus".into(),
            sample_rate: 16_000,
            channels: 1,
            frame_duration: 60,
        }
    }
}

impl Default for AudioParams {
    fn default() -> Self {
        Self::device_uplink()
    }
}

/// `features` of the client hello.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Features {
    pub mcp: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aec: Option<bool>,
    pub glyph_push: bool,
}

/// Client hello (§2.1). Missing members parse as version 1, no features,
/// empty transport and the firmware's uplink parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientHello {
    #[serde(default = "default_version")]
    pub version: u8,
    #[serde(default, deserialize_with = "null_as_default")]
    pub features: Features,
    #[serde(default)]
    pub transport: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub audio_params: AudioParams,
}

fn default_version() -> u8 {
    1
}

impl ClientHello {
    /// The hello a firmware build without glyph push sends.
    pub fn firmware(version: u8) -> Self {
        Self {
            version,
            features: Features {
                mcp: true,
                aec: None,
                glyph_push: false,
            },
            transport: "websocket".into(),
            audio_params: AudioParams::device_uplink(),
        }
    }
}

/// `state` of a `listen` message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenState {
    Start,
    Stop,
    Detect,
}

/// `mode` of a `listen start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenMode {
    Auto,
    Manual,
    Realtime,
}

/// A `listen` message (§4.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen {
    pub session_id: String,
    pub state: ListenState,
    pub mode: Option<ListenMode>,
    pub text: Option<String>,
}

impl Listen {
    /// `listen start` with a mode.
    pub fn start(session_id: impl Into<String>, mode: ListenMode) -> Self {
        Self {
            session_id: session_id.into(),
            state: ListenState::Start,
            mode: Some(mode),
            text: None,
        }
    }

    /// `listen stop` (end of a push-to-talk utterance).
    pub fn stop(session_id: impl Into<String>) -> Self {
        Self {
            session_id: session_id.into(),
            state: ListenState::Stop,
            mode: None,
            text: None,
        }
    }

    /// `listen detect` carrying a wake word (or, for PY, any user text).
    pub fn detect(session_id: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            session_id: session_id.into(),
            state: ListenState::Detect,
            mode: None,
            text: Some(text.into()),
        }
    }
}

/// Device → server text message.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientMessage {
    Hello(ClientHello),
    Listen(Listen),
    Abort {
        session_id: String,
        reason: Option<String>,
    },
    Mcp {
        session_id: String,
        payload: Value,
    },
    Goodbye {
        session_id: String,
    },
    /// Any other `type`, or none (kept verbatim).
    Unknown(Value),
}

/// Wire shape of every client message after the hello, in firmware key order.
#[derive(Serialize)]
struct SessionWire<'a> {
    session_id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<ListenState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<ListenMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a Value>,
}

impl<'a> SessionWire<'a> {
    fn new(session_id: &'a str, kind: &'static str) -> Self {
        Self {
            session_id,
            kind,
            state: None,
            mode: None,
            text: None,
            reason: None,
            payload: None,
        }
    }
}

#[derive(Serialize)]
struct HelloWire<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    hello: &'a ClientHello,
}

impl ClientMessage {
    /// Serialises the message as the firmware would send it.
    pub fn to_json(&self) -> String {
        let wire = match self {
            Self::Hello(hello) => {
                return to_string(&HelloWire { kind: "hello", hello });
            }
            Self::Unknown(value) => return value.to_string(),
            Self::Listen(listen) => SessionWire {
                state: Some(listen.state),
                mode: listen.mode,
                text: listen.text.as_deref(),
                ..SessionWire::new(&listen.session_id, "listen")
            },
            Self::Abort { session_id, reason } => SessionWire {
                reason: reason.as_deref(),
                ..SessionWire::new(session_id, "abort")
            },
            Self::Mcp { session_id, payload } => SessionWire {
                payload: Some(payload),
                ..SessionWire::new(session_id, "mcp")
            },
            Self::Goodbye { session_id } => SessionWire::new(session_id, "goodbye"),
        };
        to_string(&wire)
    }

    /// Parses a device text frame the way PY judges it (§9.3).
    pub fn parse(text: &str) -> Result<Self, MessageError> {
        let value = parse_object(text)?;
        let Some(obj) = value.as_object() else {
            return Err(MessageError::NotObject);
        };
        let session_id = str_field(obj, "session_id").unwrap_or_default();
        let message = match obj.get("type").and_then(Value::as_str) {
            Some("hello") => Self::Hello(parse_client_hello(&value)?),
            Some("listen") => match parse_listen(obj, session_id)? {
                Some(listen) => Self::Listen(listen),
                None => Self::Unknown(value),
            },
            Some("abort") => Self::Abort {
                session_id,
                reason: str_field(obj, "reason"),
            },
            Some("mcp") => Self::Mcp {
                session_id,
                payload: obj
                    .get("payload")
                    .cloned()
                    .ok_or_else(|| invalid("mcp", "missing `payload`"))?,
            },
            Some("goodbye") => Self::Goodbye { session_id },
            _ => Self::Unknown(value),
        };
        Ok(message)
    }
}

fn parse_client_hello(value: &Value) -> Result<ClientHello, MessageError> {
    for key in ["features", "audio_params"] {
        match value.get(key) {
            None | Some(Value::Null) | Some(Value::Object(_)) => {}
            Some(_) => return Err(invalid("hello", format!("`{key}` is not an object"))),
        }
    }
    ClientHello::deserialize(value).map_err(|e| invalid("hello", e.to_string()))
}

/// `Ok(None)` for a `state` PY does not know (it ignores those).
fn parse_listen(obj: &Map<String, Value>, session_id: String) -> Result<Option<Listen>, MessageError> {
    let state = match obj.get("state") {
        None => return Err(invalid("listen", "missing `state`")),
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(invalid("listen", "`state` is not a string")),
    };
    let state = match state {
        "start" => ListenState::Start,
        "stop" => ListenState::Stop,
        "detect" => ListenState::Detect,
        _ => return Ok(None),
    };
    let mode = obj.get("mode").and_then(|m| ListenMode::deserialize(m).ok());
    Ok(Some(Listen {
        session_id,
        state,
        mode,
        text: str_field(obj, "text"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn firmware_hello_matches_firmware_bytes() {
        let text = ClientMessage::Hello(ClientHello::firmware(1)).to_json();
        assert_eq!(
            text,
            r#"{"type":"hello","version":1,"features":{"mcp":true,"glyph_push":false},"transport":"websocket","audio_params":{"format":"opus","sample_rate":16000,"channels":1,"frame_duration":60}}"#
        );
    }

    #[test]
    fn hello_includes_aec_only_when_set() {
        let mut hello = ClientHello::firmware(3);
        hello.features.aec = Some(true);
        let text = ClientMessage::Hello(hello.clone()).to_json();
        assert!(text.contains(r#""features":{"mcp":true,"aec":true,"glyph_push":false}"#));
        assert_eq!(ClientMessage::parse(&text), Ok(ClientMessage::Hello(hello)));
    }

    #[test]
    fn listen_messages_use_firmware_key_order() {
        let start = ClientMessage::Listen(Listen::start("s1", ListenMode::Auto));
        assert_eq!(
            start.to_json(),
            r#"{"session_id":"s1","type":"listen","state":"start","mode":"auto"}"#
        );
        let stop = ClientMessage::Listen(Listen::stop("s1"));
        assert_eq!(stop.to_json(), r#"{"session_id":"s1","type":"listen","state":"stop"}"#);
        let detect = ClientMessage::Listen(Listen::detect("", "你好小智"));
        assert_eq!(
            detect.to_json(),
            r#"{"session_id":"","type":"listen","state":"detect","text":"你好小智"}"#
        );
    }

    #[test]
    fn abort_mcp_goodbye_serialise_with_session_first() {
        let abort = ClientMessage::Abort {
            session_id: "s".into(),
            reason: Some("wake_word_detected".into()),
        };
        assert_eq!(
            abort.to_json(),
            r#"{"session_id":"s","type":"abort","reason":"wake_word_detected"}"#
        );
        let mcp = ClientMessage::Mcp {
            session_id: "s".into(),
            payload: json!({"id": 1}),
        };
        assert_eq!(mcp.to_json(), r#"{"session_id":"s","type":"mcp","payload":{"id":1}}"#);
        let bye = ClientMessage::Goodbye { session_id: "s".into() };
        assert_eq!(bye.to_json(), r#"{"session_id":"s","type":"goodbye"}"#);
    }

    #[test]
    fn client_messages_round_trip_through_parse() {
        let messages = [
            ClientMessage::Hello(ClientHello::firmware(2)),
            ClientMessage::Listen(Listen::start("s", ListenMode::Realtime)),
            ClientMessage::Listen(Listen::stop("s")),
            ClientMessage::Listen(Listen::detect("s", "hi")),
            ClientMessage::Abort {
                session_id: "s".into(),
                reason: None,
            },
            ClientMessage::Mcp {
                session_id: "s".into(),
                payload: json!({"jsonrpc": "2.0"}),
            },
            ClientMessage::Goodbye { session_id: "s".into() },
            ClientMessage::Unknown(json!({"type": "ping"})),
        ];
        for message in messages {
            assert_eq!(ClientMessage::parse(&message.to_json()), Ok(message));
        }
    }

    #[test]
    fn client_parse_rejects_non_json_and_non_object() {
        assert_eq!(ClientMessage::parse("hello"), Err(MessageError::NotJson));
        assert_eq!(ClientMessage::parse("42"), Err(MessageError::NotObject));
        assert_eq!(ClientMessage::parse("[1]"), Err(MessageError::NotObject));
    }

    #[test]
    fn listen_without_state_is_invalid() {
        let err = ClientMessage::parse(r#"{"type":"listen","mode":"auto"}"#);
        assert!(matches!(err, Err(MessageError::Invalid { type_: "listen", .. })));
    }

    #[test]
    fn listen_with_unknown_state_or_mode_is_tolerated() {
        let text = r#"{"type":"listen","state":"text","text":"x"}"#;
        assert!(matches!(ClientMessage::parse(text), Ok(ClientMessage::Unknown(_))));
        let odd_mode = r#"{"type":"listen","state":"start","mode":"weird"}"#;
        let Ok(ClientMessage::Listen(listen)) = ClientMessage::parse(odd_mode) else {
            panic!("expected listen");
        };
        assert_eq!((listen.state, listen.mode), (ListenState::Start, None));
        assert_eq!(listen.session_id, "");
    }

    #[test]
    fn hello_with_non_object_features_or_audio_params_is_invalid() {
        for text in [
            r#"{"type":"hello","features":"mcp"}"#,
            r#"{"type":"hello","audio_params":[16000]}"#,
        ] {
            assert!(matches!(
                ClientMessage::parse(text),
                Err(MessageError::Invalid { type_: "hello", .. })
            ));
        }
    }

    #[test]
    fn sparse_hello_gets_defaults() {
        let parsed = ClientMessage::parse(r#"{"type":"hello","features":null,"audio_params":{"sample_rate":8000}}"#);
        let Ok(ClientMessage::Hello(hello)) = parsed else {
            panic!("expected hello");
        };
        assert_eq!(hello.version, 1);
        assert!(!hello.features.mcp);
        assert_eq!(hello.transport, "");
        assert_eq!(hello.audio_params.sample_rate, 8000);
        assert_eq!(hello.audio_params.frame_duration, 60);
    }

    #[test]
    fn unknown_or_missing_type_is_kept_verbatim() {
        let ping = ClientMessage::parse(r#"{"type":"ping"}"#);
        assert_eq!(ping, Ok(ClientMessage::Unknown(json!({"type": "ping"}))));
        let untyped = ClientMessage::parse(r#"{"state":"start"}"#);
        assert_eq!(untyped, Ok(ClientMessage::Unknown(json!({"state": "start"}))));
    }

    #[test]
    fn mcp_without_payload_is_invalid() {
        assert!(matches!(
            ClientMessage::parse(r#"{"type":"mcp","session_id":"s"}"#),
            Err(MessageError::Invalid { type_: "mcp", .. })
        ));
    }
}
