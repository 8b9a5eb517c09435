//! The mock's OTA endpoint: `POST /xiaozhi/ota/` on its own HTTP listener,
//! answering the way PY's standalone OTA does (PROTOCOL.md §1.4): the
//! server time, the current firmware, and either `websocket` (the mock's
//! own WebSocket URL and token) or `mqtt` (`[mock] ota = "mqtt"`, as PY
//! with an MQTT gateway). Requests without `Device-Id` and `Client-Id` get
//! PY's `{"success":false}`. GET answers a line of text, as PY's does.
//!
//! With `[mock] activation = true` the same listener serves activation and
//! the admin API's bind calls ([`super::activation`]); with `ota_fault` a
//! share of devices gets an unusable answer ([`super::ota_fault`]).

use super::activation::{self, Registry};
use super::counters::MockCounters;
use super::ota_fault::OtaFault;
use crate::ota::mqtt_id;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The path PY serves its OTA at.
pub const OTA_PATH: &str = "/xiaozhi/ota/";

/// Which transport the mock's OTA answer offers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtaOffer {
    /// `websocket`: the mock's own URL (PY without an MQTT gateway).
    #[default]
    Websocket,
    /// `mqtt`: PY with an MQTT gateway (the mock has none behind it).
    Mqtt,
}

/// What an answer needs beyond the request.
struct Ota {
    offer: OtaOffer,
    ws_url: String,
    token: Option<String>,
    counters: Arc<MockCounters>,
    /// Activation and binding, when on.
    registry: Option<Arc<Registry>>,
    fault: Option<OtaFault>,
    seed: u64,
}

/// PY's answer to a version check from `device_id` on `board_type`.
fn answer(offer: OtaOffer, ws_url: &str, token: Option<&str>, device_id: &str, board_type: &str) -> Value {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut a = json!({
        "server_time": {"timestamp": now_ms, "timezone_offset": 480},
        "firmware": {"version": "2.0.4", "url": ""},
    });
    a[match offer {
        OtaOffer::Websocket => "websocket",
        OtaOffer::Mqtt => "mqtt",
    }] = match offer {
        OtaOffer::Websocket => json!({"url": ws_url, "token": token.unwrap_or("")}),
        OtaOffer::Mqtt => json!({
            "endpoint": "127.0.0.1:1883",
            "client_id": mqtt_id::client_id(board_type, device_id),
            "username": "eyJpcCI6ICJ1bmtub3duIn0=",
            "password": "",
            "publish_topic": mqtt_id::PUBLISH_TOPIC,
            "subscribe_topic": mqtt_id::p2p_topic(device_id),
        }),
    };
    a
}

async fn version_check(State(ota): State<Arc<Ota>>, headers: HeaderMap, body: String) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (device_id, client_id) = (header("device-id"), header("client-id"));
    if device_id.is_empty() || client_id.is_empty() {
        return axum::Json(json!({"success": false, "message": "request error."})).into_response();
    }
    MockCounters::bump(&ota.counters.ota_requests);
    if let Ok(mut ids) = ota.counters.ota_device_ids.lock() {
        ids.push(device_id.to_string());
    }
    let info: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let board = info["board"]["type"].as_str().unwrap_or("unknown");
    let mut a = answer(ota.offer, &ota.ws_url, ota.token.as_deref(), device_id, board);
    if let Some(pending) = ota.registry.as_ref().and_then(|r| r.pending(device_id)) {
        a["activation"] = pending;
    }
    match ota.fault {
        Some(f) if f.hits(ota.seed, device_id) => f.respond(a),
        _ => axum::Json(a).into_response(),
    }
}

async fn status() -> &'static str {
    "OTA interface is running (xiaozhi-fleet mock)"
}

/// The `[mock]` settings the OTA listener needs.
pub(crate) struct OtaSetup {
    pub offer: OtaOffer,
    /// The mock's own WebSocket URL and token, for the `websocket` answer.
    pub ws_url: String,
    pub token: Option<String>,
    /// Activation and binding on.
    pub activation: bool,
    pub manager_token: Option<String>,
    pub fault: Option<OtaFault>,
    pub seed: u64,
}

/// Serves the OTA endpoint (and, with activation, the activate and bind
/// calls) on `listener`, until `shutdown`.
pub(crate) fn spawn(
    listener: TcpListener,
    setup: OtaSetup,
    counters: Arc<MockCounters>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let registry = setup
        .activation
        .then(|| Arc::new(Registry::new(setup.seed, setup.manager_token)));
    let state = Arc::new(Ota {
        offer: setup.offer,
        ws_url: setup.ws_url,
        token: setup.token,
        counters,
        registry: registry.clone(),
        fault: setup.fault,
        seed: setup.seed,
    });
    let mut app = Router::new()
        .route(OTA_PATH, post(version_check).get(status))
        .with_state(state);
    if let Some(r) = registry {
        app = app.merge(activation::router(r));
    }
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ota::{Transport, decide, parse_answer};

    fn decided(offer: OtaOffer) -> Transport {
        let a = answer(
            offer,
            "ws://127.0.0.1:9/xiaozhi/v1/",
            Some("t"),
            "02:aa:00:00:00:01",
            "bread",
        );
        decide(&parse_answer(200, a.to_string().as_bytes()).unwrap())
            .unwrap()
            .transport
    }

    #[test]
    fn websocket_offer_names_the_mocks_url_and_token() {
        let Transport::WebSocket(ws) = decided(OtaOffer::Websocket) else {
            panic!("not websocket")
        };
        assert_eq!(
            (ws.url.as_str(), ws.token.as_deref()),
            ("ws://127.0.0.1:9/xiaozhi/v1/", Some("t"))
        );
    }

    #[test]
    fn mqtt_offer_is_read_as_mqtt_with_pys_client_id() {
        let Transport::Mqtt(m) = decided(OtaOffer::Mqtt) else {
            panic!("not mqtt")
        };
        assert_eq!(m.client_id, "GID_bread@@@02_aa_00_00_00_01@@@02_aa_00_00_00_01");
    }
}
