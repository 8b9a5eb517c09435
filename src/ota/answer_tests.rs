//! Tests of the OTA answer parser against the fixtures of both server
//! kinds and every refusal reason.

use super::*;

const PY_WS: &str = include_str!("fixtures/py_websocket.json");
const PY_MQTT: &str = include_str!("fixtures/py_mqtt.json");
const PY_REJECTED: &str = include_str!("fixtures/py_missing_headers.json");
const ADMIN_UNKNOWN: &str = include_str!("fixtures/admin_unknown_device.json");
const ADMIN_MQTT: &str = include_str!("fixtures/admin_bound_mqtt.json");
const ADMIN_ERROR: &str = include_str!("fixtures/admin_error.json");

fn ok(body: &str) -> OtaAnswer {
    parse_answer(200, body.as_bytes()).unwrap()
}

fn err(body: &str) -> OtaError {
    parse_answer(200, body.as_bytes()).unwrap_err()
}

fn mqtt_fixture_settings() -> MqttSettings {
    MqttSettings {
        endpoint: MqttEndpoint {
            host: "192.168.1.20".to_string(),
            port: 1883,
        },
        client_id: "GID_bread-compact-wifi@@@aa_bb_cc_dd_ee_ff@@@aa_bb_cc_dd_ee_ff".to_string(),
        username: "eyJpcCI6ICJ1bmtub3duIn0=".to_string(),
        password: "c2lnbmF0dXJlLXBsYWNlaG9sZGVy".to_string(),
        keepalive_s: 240,
        publish_topic: Some("device-server".to_string()),
        subscribe_topic: Some("devices/p2p/aa_bb_cc_dd_ee_ff".to_string()),
    }
}

#[test]
fn py_websocket_answer() {
    let a = ok(PY_WS);
    let expected = OtaAnswer {
        websocket: Some(WebsocketSettings {
            url: "ws://192.168.1.20:8000/xiaozhi/v1/".to_string(),
            token: None,
            version: None,
        }),
        mqtt: None,
        activation: None,
        server_time: Some(ServerTime {
            timestamp_ms: 1_786_500_000_000,
            timezone_offset_min: Some(480),
        }),
        firmware: Some(FirmwareOffer {
            version: "2.0.4".to_string(),
            url: String::new(),
            force: false,
        }),
    };
    assert_eq!(a, expected);
}

#[test]
fn py_mqtt_answer() {
    let a = ok(PY_MQTT);
    assert_eq!(a.websocket, None);
    assert_eq!(a.mqtt, Some(mqtt_fixture_settings()));
    assert_eq!(a.activation, None);
}

#[test]
fn py_rejection_keeps_its_message() {
    assert_eq!(
        err(PY_REJECTED),
        OtaError::Rejected {
            message: "request error.".to_string()
        }
    );
}

#[test]
fn admin_unknown_device_carries_activation_and_token() {
    let a = ok(ADMIN_UNKNOWN);
    let ws = a.websocket.unwrap();
    assert_eq!(ws.token.as_deref(), Some("c2ln.1786500000"));
    let act = a.activation.unwrap();
    assert_eq!(
        act,
        Activation {
            code: Some("123456".to_string()),
            message: Some("http://192.168.1.20:8001\n123456".to_string()),
            challenge: Some("aa:bb:cc:dd:ee:ff".to_string()),
            timeout_ms: None,
        }
    );
    assert!(act.is_pending());
}

#[test]
fn admin_with_gateway_has_both_transports() {
    let a = ok(ADMIN_MQTT);
    assert!(a.websocket.is_some());
    assert_eq!(a.mqtt, Some(mqtt_fixture_settings()));
}

#[test]
fn admin_error_keeps_status_and_message() {
    let e = parse_answer(400, ADMIN_ERROR.as_bytes()).unwrap_err();
    assert_eq!(
        e,
        OtaError::ServerError {
            status: 400,
            message: "Invalid device ID".to_string()
        }
    );
}

#[test]
fn html_and_non_json_bodies() {
    let html = parse_answer(502, b"\n<html><body>Bad Gateway</body></html>").unwrap_err();
    assert_eq!(html, OtaError::Html { status: 502 });
    assert!(matches!(err("OTA ok"), OtaError::NotJson { .. }));
    assert_eq!(
        parse_answer(404, b"Not Found").unwrap_err(),
        OtaError::HttpStatus { status: 404 }
    );
    assert_eq!(
        parse_answer(500, b"{}").unwrap_err(),
        OtaError::HttpStatus { status: 500 }
    );
    assert_eq!(err("[1, 2]"), OtaError::NotAnObject);
}

#[test]
fn missing_and_mistyped_members_name_the_field() {
    assert_eq!(
        err(r#"{"websocket": {"token": ""}}"#),
        OtaError::MissingField { field: "websocket.url" }
    );
    assert_eq!(
        err(r#"{"mqtt": {"endpoint": "h"}}"#),
        OtaError::MissingField {
            field: "mqtt.client_id"
        }
    );
    assert_eq!(
        err(r#"{"server_time": {}}"#),
        OtaError::MissingField {
            field: "server_time.timestamp"
        }
    );
    assert_eq!(
        err(r#"{"websocket": "ws://h/"}"#),
        OtaError::WrongType {
            field: "websocket",
            expected: "an object"
        }
    );
    assert_eq!(
        err(r#"{"websocket": {"url": 5}}"#),
        OtaError::WrongType {
            field: "websocket.url",
            expected: "a string"
        }
    );
    let e =
        err(r#"{"mqtt": {"endpoint": "h", "client_id": "c", "username": "u", "password": "p", "keepalive": "60"}}"#);
    assert_eq!(
        e,
        OtaError::WrongType {
            field: "mqtt.keepalive",
            expected: "an integer"
        }
    );
}

#[test]
fn bad_addresses_and_versions() {
    let e = err(r#"{"websocket": {"url": "http://h:8000/xiaozhi/v1/"}}"#);
    assert_eq!(
        e,
        OtaError::BadUrl {
            url: "http://h:8000/xiaozhi/v1/".to_string(),
            reason: "scheme is not ws:// or wss://"
        }
    );
    let e = err(r#"{"mqtt": {"endpoint": "h:99999", "client_id": "c", "username": "u", "password": "p"}}"#);
    assert_eq!(
        e,
        OtaError::BadEndpoint {
            endpoint: "h:99999".to_string(),
            reason: "port is not 1-65535"
        }
    );
    let e = err(r#"{"websocket": {"url": "ws://h/", "version": 4}}"#);
    assert_eq!(e, OtaError::BadProtocolVersion { version: 4 });
}

#[test]
fn optional_members_and_defaults() {
    let a = ok(
        r#"{"websocket": {"url": "wss://h/x/", "token": "t", "version": 3}, "extra": 1,
        "mqtt": {"endpoint": "m", "client_id": "c", "username": "u", "password": "p", "keepalive": 60},
        "firmware": {"version": "2.1.0", "force": 1},
        "activation": {"message": "hi", "timeout_ms": 30000}}"#,
    );
    assert_eq!(
        a.websocket,
        Some(WebsocketSettings {
            url: "wss://h/x/".to_string(),
            token: Some("t".to_string()),
            version: Some(3)
        })
    );
    let m = a.mqtt.unwrap();
    assert_eq!((m.endpoint.port, m.keepalive_s, m.publish_topic), (8883, 60, None));
    assert_eq!(
        a.firmware.unwrap(),
        FirmwareOffer {
            version: "2.1.0".to_string(),
            url: String::new(),
            force: true
        }
    );
    let act = a.activation.unwrap();
    assert_eq!(act.timeout_ms, Some(30_000));
    assert!(!act.is_pending());
    assert_eq!(
        ok("{}"),
        OtaAnswer {
            websocket: None,
            mqtt: None,
            activation: None,
            server_time: None,
            firmware: None
        }
    );
}
