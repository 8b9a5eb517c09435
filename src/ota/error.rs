//! Why an OTA answer was refused: one typed reason per way a server's
//! answer can be unusable. These become the `ota` failure kind of a run.

use thiserror::Error;

/// An OTA version-check answer the device cannot use.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum OtaError {
    /// A status other than 200 without an error message in the body (the
    /// firmware treats any non-200 version check as failed).
    #[error("OTA answered HTTP {status}")]
    HttpStatus { status: u16 },
    /// An HTML page (a proxy's error page, a web UI at the wrong path).
    #[error("OTA answered an HTML page (HTTP {status})")]
    Html { status: u16 },
    /// Not JSON at all.
    #[error("OTA answer is not JSON: {reason}")]
    NotJson { reason: String },
    /// JSON, but not an object.
    #[error("OTA answer is not a JSON object")]
    NotAnObject,
    /// The admin API's `{"error":"..."}`.
    #[error("OTA server error (HTTP {status}): {message}")]
    ServerError { status: u16, message: String },
    /// PY's `{"success":false,"message":"..."}` (e.g. missing identity headers).
    #[error("OTA request rejected: {message}")]
    Rejected { message: String },
    /// A member the device needs is absent.
    #[error("OTA answer lacks `{field}`")]
    MissingField { field: &'static str },
    /// A member has the wrong JSON type.
    #[error("OTA answer's `{field}` is not {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    /// `websocket.url` is not a usable `ws://` / `wss://` URL.
    #[error("OTA answer's websocket URL {url:?} is unusable: {reason}")]
    BadUrl { url: String, reason: &'static str },
    /// `mqtt.endpoint` is not `host` or `host:port`.
    #[error("OTA answer's MQTT endpoint {endpoint:?} is unusable: {reason}")]
    BadEndpoint { endpoint: String, reason: &'static str },
    /// `websocket.version` is not a binary protocol version (1, 2 or 3).
    #[error("OTA answer's websocket version {version} is not 1, 2 or 3")]
    BadProtocolVersion { version: i64 },
    /// Neither `websocket` nor `mqtt`: the firmware would fall back to
    /// stored MQTT settings, which a fresh simulated device does not have.
    #[error("OTA answer names no transport (neither `websocket` nor `mqtt`)")]
    NoTransport,
}
