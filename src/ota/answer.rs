//! The OTA version-check answer, parsed into a typed [`OtaAnswer`] for both
//! server kinds (PY's standalone `/xiaozhi/ota/` and the admin API's
//! `/ota/`, PROTOCOL.md §1.4). Every unusable answer is an [`OtaError`]
//! with its reason. Unknown members are ignored, as the firmware does.

use super::address::{MqttEndpoint, check_ws_url, parse_endpoint};
use super::error::OtaError;
use serde_json::{Map, Value};

/// The firmware's MQTT keep-alive when the answer names none (§1.4).
pub const DEFAULT_KEEPALIVE_S: u32 = 240;

/// Everything in an OTA answer the firmware reads.
#[derive(Clone, Debug, PartialEq)]
pub struct OtaAnswer {
    pub websocket: Option<WebsocketSettings>,
    pub mqtt: Option<MqttSettings>,
    pub activation: Option<Activation>,
    pub server_time: Option<ServerTime>,
    pub firmware: Option<FirmwareOffer>,
}

/// `websocket`: where and how to open the WebSocket.
#[derive(Clone, Debug, PartialEq)]
pub struct WebsocketSettings {
    pub url: String,
    /// `None` when absent or empty (PY sends `""` without auth).
    pub token: Option<String>,
    /// The binary protocol version (§3), when the server sets one.
    pub version: Option<u8>,
}

/// `mqtt`: the MQTT control channel's credentials (§11.1).
#[derive(Clone, Debug, PartialEq)]
pub struct MqttSettings {
    pub endpoint: MqttEndpoint,
    pub client_id: String,
    pub username: String,
    pub password: String,
    pub keepalive_s: u32,
    pub publish_topic: Option<String>,
    /// Stored but unused by current firmware.
    pub subscribe_topic: Option<String>,
}

/// `activation`: the device is unknown to the admin API.
#[derive(Clone, Debug, PartialEq)]
pub struct Activation {
    /// The 6-digit code a user types to bind the device.
    pub code: Option<String>,
    pub message: Option<String>,
    /// What `POST <ota>/activate` answers to (the device id on the admin API).
    pub challenge: Option<String>,
    pub timeout_ms: Option<u64>,
}

impl Activation {
    /// §1.4: the device enters activation if `code` or `challenge` is present.
    pub fn is_pending(&self) -> bool {
        self.code.is_some() || self.challenge.is_some()
    }
}

/// `server_time`: the clock the device sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerTime {
    pub timestamp_ms: i64,
    pub timezone_offset_min: Option<i32>,
}

/// `firmware`: a firmware image on offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirmwareOffer {
    pub version: String,
    pub url: String,
    /// `force == 1`.
    pub force: bool,
}

/// Parses a version-check answer from its HTTP status and body.
pub fn parse_answer(status: u16, body: &[u8]) -> Result<OtaAnswer, OtaError> {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim_start();
    if trimmed.starts_with('<') {
        return Err(OtaError::Html { status });
    }
    let value: Value = match serde_json::from_str(trimmed) {
        Ok(v) => v,
        Err(_) if status != 200 => return Err(OtaError::HttpStatus { status }),
        Err(e) => return Err(OtaError::NotJson { reason: e.to_string() }),
    };
    let Value::Object(root) = value else {
        return Err(match status {
            200 => OtaError::NotAnObject,
            _ => OtaError::HttpStatus { status },
        });
    };
    if let Some(message) = root.get("error") {
        let message = message.as_str().map_or_else(|| message.to_string(), str::to_string);
        return Err(OtaError::ServerError { status, message });
    }
    if status != 200 {
        return Err(OtaError::HttpStatus { status });
    }
    if root.get("success") == Some(&Value::Bool(false)) {
        let message = opt_str(&root, "message", "message")?.unwrap_or_default();
        return Err(OtaError::Rejected { message });
    }
    Ok(OtaAnswer {
        websocket: section(&root, "websocket")?.map(websocket).transpose()?,
        mqtt: section(&root, "mqtt")?.map(mqtt).transpose()?,
        activation: section(&root, "activation")?.map(activation).transpose()?,
        server_time: section(&root, "server_time")?.map(server_time).transpose()?,
        firmware: section(&root, "firmware")?.map(firmware).transpose()?,
    })
}

fn websocket(o: &Map<String, Value>) -> Result<WebsocketSettings, OtaError> {
    let url = req_str(o, "url", "websocket.url")?;
    check_ws_url(&url)?;
    let token = opt_str(o, "token", "websocket.token")?.filter(|t| !t.is_empty());
    let version = match opt_int(o, "version", "websocket.version")? {
        None => None,
        Some(v @ 1..=3) => Some(v as u8),
        Some(version) => return Err(OtaError::BadProtocolVersion { version }),
    };
    Ok(WebsocketSettings { url, token, version })
}

fn mqtt(o: &Map<String, Value>) -> Result<MqttSettings, OtaError> {
    let endpoint = parse_endpoint(&req_str(o, "endpoint", "mqtt.endpoint")?)?;
    let keepalive_s = match opt_int(o, "keepalive", "mqtt.keepalive")? {
        None => DEFAULT_KEEPALIVE_S,
        Some(k) => u32::try_from(k).map_err(|_| OtaError::WrongType {
            field: "mqtt.keepalive",
            expected: "a non-negative integer",
        })?,
    };
    Ok(MqttSettings {
        endpoint,
        client_id: req_str(o, "client_id", "mqtt.client_id")?,
        username: req_str(o, "username", "mqtt.username")?,
        password: req_str(o, "password", "mqtt.password")?,
        keepalive_s,
        publish_topic: opt_str(o, "publish_topic", "mqtt.publish_topic")?,
        subscribe_topic: opt_str(o, "subscribe_topic", "mqtt.subscribe_topic")?,
    })
}

fn activation(o: &Map<String, Value>) -> Result<Activation, OtaError> {
    let timeout_ms = opt_int(o, "timeout_ms", "activation.timeout_ms")?;
    Ok(Activation {
        code: opt_str(o, "code", "activation.code")?,
        message: opt_str(o, "message", "activation.message")?,
        challenge: opt_str(o, "challenge", "activation.challenge")?,
        timeout_ms: timeout_ms.map(|t| t.max(0) as u64),
    })
}

fn server_time(o: &Map<String, Value>) -> Result<ServerTime, OtaError> {
    let field = "server_time.timestamp";
    let ts = o.get("timestamp").ok_or(OtaError::MissingField { field })?;
    let timestamp_ms = ts.as_f64().ok_or(OtaError::WrongType {
        field,
        expected: "a number",
    })? as i64;
    let offset = opt_int(o, "timezone_offset", "server_time.timezone_offset")?;
    Ok(ServerTime {
        timestamp_ms,
        timezone_offset_min: offset.map(|m| m as i32),
    })
}

fn firmware(o: &Map<String, Value>) -> Result<FirmwareOffer, OtaError> {
    Ok(FirmwareOffer {
        version: req_str(o, "version", "firmware.version")?,
        url: opt_str(o, "url", "firmware.url")?.unwrap_or_default(),
        force: opt_int(o, "force", "firmware.force")? == Some(1),
    })
}

/// A top-level member that must be an object when present.
fn section<'a>(root: &'a Map<String, Value>, key: &'static str) -> Result<Option<&'a Map<String, Value>>, OtaError> {
    match root.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(OtaError::WrongType {
            field: key,
            expected: "an object",
        }),
    }
}

fn opt_str(o: &Map<String, Value>, key: &str, field: &'static str) -> Result<Option<String>, OtaError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(OtaError::WrongType {
            field,
            expected: "a string",
        }),
    }
}

fn req_str(o: &Map<String, Value>, key: &str, field: &'static str) -> Result<String, OtaError> {
    opt_str(o, key, field)?.ok_or(OtaError::MissingField { field })
}

fn opt_int(o: &Map<String, Value>, key: &str, field: &'static str) -> Result<Option<i64>, OtaError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or(OtaError::WrongType {
            field,
            expected: "an integer",
        }),
    }
}

#[cfg(test)]
#[path = "answer_tests.rs"]
mod tests;
