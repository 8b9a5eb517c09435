//! The OTA version check a device makes before its first connection
//! (PROTOCOL.md §1.4): the shell that sends the request built by
//! [`crate::ota::request`] over HTTP, times it, and turns the answer into
//! where to connect. What the answer means is decided by the pure
//! [`crate::ota`] pieces; [`endpoint`] maps that decision to an endpoint
//! (a WebSocket URL, or the MQTT settings) or an `ota` failure, and is
//! tested without a network.

use crate::metrics::{Failure, FailureKind};
use crate::ota::answer::MqttSettings;
use crate::ota::request::version_check;
use crate::ota::{Bootstrap, OtaProfile, Transport, decide, parse_answer};
use crate::protocol::{DeviceIdentity, ProtocolVersion};
use std::error::Error as _;
use std::time::Duration;
use tokio::time::Instant;

/// What every device of a run needs to make its version check.
#[derive(Debug)]
pub struct OtaClient {
    http: reqwest::Client,
    profile: OtaProfile,
}

impl OtaClient {
    /// A client for the OTA endpoint at `ota_url` (http:// only).
    pub fn new(ota_url: &str) -> Result<OtaClient, reqwest::Error> {
        // Our reqwest has no TLS, but another crate of the build may switch
        // on its rustls without a crypto provider (async-openai does in the
        // tests), and then building a client needs a process default. Ring
        // is the provider this crate uses everywhere; an earlier default stays.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder().build()?;
        Ok(OtaClient {
            http,
            profile: OtaProfile::bread_compact_wifi(ota_url),
        })
    }
}

/// Where the OTA answer sends a device.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    pub url: String,
    /// The answer's token, sent as `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// The answer's binary protocol version, if it names one.
    pub version: Option<ProtocolVersion>,
    /// The answer's MQTT settings: the device uses MQTT + UDP (`url` is
    /// then empty: `mqtt` wins over `websocket`, as in the firmware).
    pub mqtt: Option<MqttSettings>,
}

/// A checked version check: where to connect, and how long the check took.
pub struct Checked {
    pub endpoint: Endpoint,
    pub took: Duration,
}

fn ota_failure(detail: impl Into<String>) -> Failure {
    Failure::new(FailureKind::Ota, detail)
}

/// The bootstrap decision as an endpoint, or why the device cannot follow
/// it (pending activation).
pub fn endpoint(b: Bootstrap) -> Result<Endpoint, Failure> {
    if let Some(code) = b.activation.as_ref().and_then(|a| a.code.as_deref()) {
        return Err(ota_failure(format!("waiting for activation: code {code}")));
    }
    if b.activation.is_some() {
        return Err(ota_failure("waiting for activation (a challenge, no code)"));
    }
    match b.transport {
        Transport::Mqtt(m) => Ok(Endpoint {
            url: String::new(),
            token: None,
            version: None,
            mqtt: Some(m),
        }),
        Transport::WebSocket(ws) => Ok(Endpoint {
            url: ws.url,
            token: ws.token.filter(|t| !t.is_empty()),
            version: ws.version.and_then(|v| ProtocolVersion::try_from(v).ok()),
            mqtt: None,
        }),
    }
}

/// An HTTP error with its causes (the OS error is at the end of the chain).
fn http_detail(url: &str, e: &reqwest::Error) -> String {
    let mut d = format!("OTA request to {url} failed: {e}");
    let mut cause = e.source();
    while let Some(c) = cause {
        d.push_str(&format!(": {c}"));
        cause = c.source();
    }
    d
}

/// POSTs the version check for `identity`, within `limit`, and decides.
pub async fn check(client: &OtaClient, identity: &DeviceIdentity, limit: Duration) -> Result<Checked, Failure> {
    let request = version_check(identity, &client.profile);
    let mut builder = client.http.post(&request.url).json(&request.body);
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let started = Instant::now();
    let exchange = async {
        let response = builder.send().await?;
        let status = response.status().as_u16();
        let body = response.bytes().await?;
        Ok::<_, reqwest::Error>((status, body))
    };
    let (status, body) = match tokio::time::timeout(limit, exchange).await {
        Err(_) => {
            let d = format!(
                "no OTA answer from {} within {}",
                request.url,
                humantime::format_duration(limit)
            );
            return Err(ota_failure(d));
        }
        Ok(Err(e)) => return Err(ota_failure(http_detail(&request.url, &e))),
        Ok(Ok(answer)) => answer,
    };
    let took = started.elapsed();
    let decided = parse_answer(status, &body)
        .and_then(|a| decide(&a))
        .map_err(|e| ota_failure(e.to_string()))?;
    Ok(Checked {
        endpoint: endpoint(decided)?,
        took,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decided(body: &str) -> Bootstrap {
        decide(&parse_answer(200, body.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn websocket_answer_gives_url_token_and_version() {
        let e = endpoint(decided(
            r#"{"websocket": {"url": "ws://h:8000/xiaozhi/v1/", "token": "t0k", "version": 3}}"#,
        ))
        .unwrap();
        assert_eq!(e.url, "ws://h:8000/xiaozhi/v1/");
        assert_eq!(e.token.as_deref(), Some("t0k"));
        assert_eq!(e.version, Some(ProtocolVersion::V3));
    }

    #[test]
    fn empty_token_means_no_token() {
        let e = endpoint(decided(r#"{"websocket": {"url": "ws://h/", "token": ""}}"#)).unwrap();
        assert_eq!((e.token, e.version), (None, None));
    }

    #[test]
    fn mqtt_answer_gives_the_mqtt_settings() {
        let e = endpoint(decided(include_str!("../ota/fixtures/py_mqtt.json"))).unwrap();
        let m = e.mqtt.unwrap();
        assert_eq!((m.endpoint.host.as_str(), m.endpoint.port), ("192.168.1.20", 1883));
        assert_eq!(m.publish_topic.as_deref(), Some("device-server"));
        assert_eq!((e.url.as_str(), e.token, e.version), ("", None, None));
    }

    #[test]
    fn pending_activation_is_an_ota_failure_with_the_code() {
        let f = endpoint(decided(include_str!("../ota/fixtures/admin_unknown_device.json"))).unwrap_err();
        assert_eq!(f, Failure::new(FailureKind::Ota, "waiting for activation: code 123456"));
    }
}
