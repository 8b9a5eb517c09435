//! The OTA version check a device makes before its first connection
//! (PROTOCOL.md §1.4): the shell that sends the request built by
//! [`crate::ota::request`] over HTTP, times it, drives the activation loop
//! ([`crate::ota::ActivationLoop`]) when the answer asks for activation,
//! and turns the answer into where to connect. What the answer means is decided by the pure
//! [`crate::ota`] pieces; [`endpoint`] maps that decision to an endpoint
//! (a WebSocket URL, or the MQTT settings) or an `ota` failure, and is
//! tested without a network.

use crate::metrics::{Failure, FailureKind};
use crate::ota::answer::MqttSettings;
use crate::ota::request::{self, version_check};
use crate::ota::{
    Activation, ActivationFailure, ActivationLoop, ActivationOutcome, Bootstrap, HttpRequest, OtaProfile, Transport,
    decide, parse_answer,
};
use crate::protocol::{DeviceIdentity, ProtocolVersion};
use std::error::Error as _;
use std::time::Duration;
use tokio::time::Instant;

/// What every device of a run needs to make its version check.
#[derive(Debug)]
pub struct OtaClient {
    http: reqwest::Client,
    profile: OtaProfile,
    /// Activate tries per version check (the firmware's 10).
    activation_tries: u32,
}

impl OtaClient {
    /// A client for the OTA endpoint at `ota_url`; an `https://` URL is
    /// checked with `tls`, the run's TLS settings (the ones `wss://` uses:
    /// system roots, `--ca-cert`, `--insecure`).
    pub fn new(ota_url: &str, tls: Option<&rustls::ClientConfig>) -> Result<OtaClient, reqwest::Error> {
        let http = http_client(tls)?;
        Ok(OtaClient {
            http,
            profile: OtaProfile::bread_compact_wifi(ota_url),
            activation_tries: crate::ota::activation::MAX_TRIES,
        })
    }
}

/// An HTTP client over the run's TLS settings (none given: rustls with the
/// system's roots). Used for the OTA endpoint and the admin API.
pub fn http_client(tls: Option<&rustls::ClientConfig>) -> Result<reqwest::Client, reqwest::Error> {
    // Building a rustls client needs a process-wide crypto provider when
    // none is preconfigured. Ring is the provider this crate uses
    // everywhere; an earlier default stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let builder = reqwest::Client::builder();
    match tls {
        Some(config) => builder.tls_backend_preconfigured(config.clone()).build(),
        None => builder.build(),
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

/// Sends `request` and reads the whole answer within `limit`: the status
/// and body, or why there was none.
async fn exchange(client: &OtaClient, request: &HttpRequest, limit: Duration) -> Result<(u16, Vec<u8>), String> {
    let mut builder = client.http.post(&request.url).json(&request.body);
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let exchange = async {
        let response = builder.send().await?;
        let status = response.status().as_u16();
        let body = response.bytes().await?;
        Ok::<_, reqwest::Error>((status, body.to_vec()))
    };
    match tokio::time::timeout(limit, exchange).await {
        Err(_) => Err(format!(
            "no OTA answer from {} within {}",
            request.url,
            humantime::format_duration(limit)
        )),
        Ok(Err(e)) => Err(http_detail(&request.url, &e)),
        Ok(Ok(answer)) => Ok(answer),
    }
}

/// One version check for `identity`, decided: the bootstrap and how long
/// the exchange took.
pub async fn version(
    client: &OtaClient,
    identity: &DeviceIdentity,
    limit: Duration,
) -> Result<(Bootstrap, Duration), Failure> {
    let request = version_check(identity, &client.profile);
    let started = Instant::now();
    let (status, body) = exchange(client, &request, limit).await.map_err(ota_failure)?;
    let took = started.elapsed();
    let decided = parse_answer(status, &body)
        .and_then(|a| decide(&a))
        .map_err(|e| ota_failure(e.to_string()))?;
    Ok((decided, took))
}

/// Why a device did not get an endpoint from its OTA check.
#[derive(Debug, PartialEq)]
pub struct Refused {
    pub failure: Failure,
    /// The activation code, when the device still waits for activation.
    pub waiting: Option<String>,
}

impl From<Failure> for Refused {
    fn from(failure: Failure) -> Self {
        Refused { failure, waiting: None }
    }
}

/// The code of a pending activation ("(no code)" for a bare challenge).
fn code_of(a: &Activation) -> String {
    a.code.clone().unwrap_or_else(|| "(no code)".to_string())
}

/// Drives the firmware's activation loop (PROTOCOL.md §1.4) against
/// `POST <ota>/activate` until the device is activated or the loop gives up.
async fn activate(
    client: &OtaClient,
    identity: &DeviceIdentity,
    pending: &Activation,
    limit: Duration,
) -> Result<(), Refused> {
    let request = request::activate(identity, &client.profile);
    let mut lp = ActivationLoop::with_max_tries(pending, client.activation_tries);
    lp.start(Instant::now());
    // Each round sends a try or waits for one: at most two rounds a try.
    for _ in 0..=2 * client.activation_tries {
        if let Some(outcome) = lp.outcome() {
            return activation_result(outcome, pending);
        }
        if lp.poll_transmit().is_some() {
            match exchange(client, &request, limit).await {
                Ok((status, _)) => lp.on_response(status, Instant::now()),
                Err(reason) => lp.on_error(reason, Instant::now()),
            }
        } else if let Some(at) = lp.next_deadline() {
            tokio::time::sleep_until(at).await;
            lp.handle_timeout(Instant::now());
        }
    }
    let code = code_of(pending);
    let detail = format!("waiting for activation: code {code} (the activation loop did not end)");
    Err(Refused {
        failure: ota_failure(detail),
        waiting: Some(code),
    })
}

/// The loop's outcome as the device takes it.
fn activation_result(outcome: &ActivationOutcome, pending: &Activation) -> Result<(), Refused> {
    let code = code_of(pending);
    let detail = match outcome {
        ActivationOutcome::Activated { .. } => return Ok(()),
        ActivationOutcome::StillPending { tries, .. } => {
            format!("waiting for activation: code {code} (still pending after {tries} tries)")
        }
        ActivationOutcome::Failed { reason, tries, .. } => {
            let why = match reason {
                ActivationFailure::NoChallenge => "the answer has no challenge to post".to_string(),
                ActivationFailure::HttpStatus(s) => format!("activate answered HTTP {s}"),
                ActivationFailure::Transport(t) => t.clone(),
            };
            format!("waiting for activation: code {code} (activation failed after {tries} tries: {why})")
        }
    };
    Err(Refused {
        failure: ota_failure(detail),
        waiting: Some(code),
    })
}

/// The version check for `identity`, each exchange within `limit`; when
/// the answer asks for activation, the activation loop, then the version
/// check again. Gives where to connect and how long the last check took.
pub async fn check(client: &OtaClient, identity: &DeviceIdentity, limit: Duration) -> Result<Checked, Refused> {
    let (mut decided, mut took) = version(client, identity, limit).await?;
    if let Some(pending) = decided.activation.take() {
        activate(client, identity, &pending, limit).await?;
        (decided, took) = version(client, identity, limit).await?;
    }
    let waiting = decided.activation.as_ref().map(code_of);
    let endpoint = endpoint(decided).map_err(|failure| Refused { failure, waiting })?;
    Ok(Checked { endpoint, took })
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
