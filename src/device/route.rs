//! Where a device connects, decided before it dials: the run's WebSocket
//! URL, the OTA answer's WebSocket, or the OTA answer's MQTT broker
//! (MQTT + UDP), as the group's `transport` and the answer allow. Pure.

use super::mqtt::MqttTarget;
use super::ota::Endpoint;
use crate::config::TransportChoice;
use crate::metrics::{Failure, FailureKind};
use crate::protocol::ProtocolVersion;

/// How to reach the server.
#[derive(Debug, PartialEq)]
pub(crate) enum Route<'a> {
    WebSocket { url: &'a str, version: ProtocolVersion },
    Mqtt(Box<MqttTarget>),
}

/// The route for a device with MAC `device_id`: the OTA answer's (when
/// there was an OTA check), else the run's URL; a group's `transport`
/// that the answer does not offer is an `ota` failure saying so.
pub(crate) fn pick<'a>(
    endpoint: Option<&'a Endpoint>,
    choice: Option<TransportChoice>,
    run_url: &'a str,
    run_version: ProtocolVersion,
    device_id: &str,
) -> Result<Route<'a>, Failure> {
    let Some(e) = endpoint else {
        return Ok(Route::WebSocket {
            url: run_url,
            version: run_version,
        });
    };
    match (&e.mqtt, choice) {
        (Some(m), None | Some(TransportChoice::Mqtt)) => {
            Ok(Route::Mqtt(Box::new(MqttTarget::from_answer(m, device_id))))
        }
        (None, Some(TransportChoice::Mqtt)) => Err(Failure::new(
            FailureKind::Ota,
            "the group asks for transport mqtt; the OTA answer has no `mqtt` settings",
        )),
        (Some(_), Some(TransportChoice::Websocket)) => Err(Failure::new(
            FailureKind::Ota,
            "the group asks for transport websocket; the OTA answer offers MQTT (which wins, as in the firmware)",
        )),
        (None, _) => Ok(Route::WebSocket {
            url: &e.url,
            version: e.version.unwrap_or(run_version),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ota::address::MqttEndpoint;
    use crate::ota::answer::MqttSettings;
    use std::time::Duration;

    fn mqtt() -> MqttSettings {
        MqttSettings {
            endpoint: MqttEndpoint {
                host: "127.0.0.1".into(),
                port: 1883,
            },
            client_id: "GID_b@@@aa_bb@@@aa_bb".into(),
            username: "u".into(),
            password: "p".into(),
            keepalive_s: 240,
            publish_topic: None,
            subscribe_topic: None,
        }
    }

    fn ws() -> Endpoint {
        Endpoint {
            url: "ws://h/".into(),
            token: None,
            version: Some(ProtocolVersion::V3),
            mqtt: None,
        }
    }

    #[test]
    fn without_ota_the_run_url_is_the_route() {
        let r = pick(None, None, "ws://run/", ProtocolVersion::V2, "aa:bb").unwrap();
        assert_eq!(
            r,
            Route::WebSocket {
                url: "ws://run/",
                version: ProtocolVersion::V2
            }
        );
    }

    #[test]
    fn an_mqtt_answer_routes_to_the_broker_with_the_p2p_topic_and_default_publish_topic() {
        let e = Endpoint {
            mqtt: Some(mqtt()),
            ..ws()
        };
        let Route::Mqtt(t) = pick(Some(&e), None, "", ProtocolVersion::V1, "aa:bb").unwrap() else {
            panic!("not mqtt")
        };
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 1883));
        assert_eq!(t.p2p_topic, "devices/p2p/aa_bb");
        assert_eq!(t.publish_topic, "device-server");
        assert_eq!(t.keepalive, Duration::from_secs(240));
        assert!(matches!(
            pick(Some(&e), Some(TransportChoice::Mqtt), "", ProtocolVersion::V1, "aa:bb"),
            Ok(Route::Mqtt(_))
        ));
    }

    #[test]
    fn a_websocket_answer_routes_to_its_url_and_version() {
        let e = ws();
        let r = pick(
            Some(&e),
            Some(TransportChoice::Websocket),
            "ws://run/",
            ProtocolVersion::V1,
            "x",
        )
        .unwrap();
        assert_eq!(
            r,
            Route::WebSocket {
                url: "ws://h/",
                version: ProtocolVersion::V3
            }
        );
    }

    #[test]
    fn a_transport_the_answer_does_not_offer_is_an_ota_failure() {
        let f = pick(Some(&ws()), Some(TransportChoice::Mqtt), "", ProtocolVersion::V1, "x").unwrap_err();
        assert_eq!(f.kind, FailureKind::Ota);
        assert!(f.detail.contains("no `mqtt`"), "{}", f.detail);
        let e = Endpoint {
            mqtt: Some(mqtt()),
            ..ws()
        };
        let f = pick(Some(&e), Some(TransportChoice::Websocket), "", ProtocolVersion::V1, "x").unwrap_err();
        assert_eq!(f.kind, FailureKind::Ota);
    }
}
