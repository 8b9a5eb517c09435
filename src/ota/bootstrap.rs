//! What a device does with a parsed OTA answer, as the firmware decides it
//! (PROTOCOL.md §1.4): which transport (`mqtt` wins over `websocket`),
//! whether activation is pending, and whether a firmware upgrade is offered.

use super::answer::{Activation, FirmwareOffer, MqttSettings, OtaAnswer, WebsocketSettings};
use super::error::OtaError;
use std::cmp::Ordering;

/// The transport the device will use after the version check.
#[derive(Clone, Debug, PartialEq)]
pub enum Transport {
    Mqtt(MqttSettings),
    WebSocket(WebsocketSettings),
}

/// The bootstrap decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Bootstrap {
    pub transport: Transport,
    /// `Some` when the device must activate first (`code` or `challenge`).
    pub activation: Option<Activation>,
}

/// Picks the transport (`mqtt` if present, else `websocket`) and the
/// pending activation. Neither transport is [`OtaError::NoTransport`]: the
/// firmware would fall back to MQTT settings a fresh device does not have.
pub fn decide(answer: &OtaAnswer) -> Result<Bootstrap, OtaError> {
    let transport = match (&answer.mqtt, &answer.websocket) {
        (Some(m), _) => Transport::Mqtt(m.clone()),
        (None, Some(w)) => Transport::WebSocket(w.clone()),
        (None, None) => return Err(OtaError::NoTransport),
    };
    let activation = answer.activation.clone().filter(Activation::is_pending);
    Ok(Bootstrap { transport, activation })
}

/// The firmware's rule: upgrade if `force` or the offered version is newer,
/// comparing dot-separated integers (a part that is not a number counts 0;
/// equal common parts: the longer version is newer).
pub fn upgrade_offered(current: &str, offer: &FirmwareOffer) -> bool {
    offer.force || compare_versions(&offer.version, current) == Ordering::Greater
}

fn compare_versions(a: &str, b: &str) -> Ordering {
    let parts = |v: &str| {
        v.split('.')
            .map(|p| p.trim().parse::<u64>().unwrap_or(0))
            .collect::<Vec<_>>()
    };
    let (a, b) = (parts(a), parts(b));
    for (x, y) in a.iter().zip(&b) {
        match x.cmp(y) {
            Ordering::Equal => continue,
            other => return other,
        }
    }
    a.len().cmp(&b.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ota::answer::parse_answer;

    fn answer(body: &str) -> OtaAnswer {
        parse_answer(200, body.as_bytes()).unwrap()
    }

    fn offer(version: &str, force: bool) -> FirmwareOffer {
        FirmwareOffer {
            version: version.to_string(),
            url: String::new(),
            force,
        }
    }

    #[test]
    fn py_websocket_means_websocket_without_activation() {
        let b = decide(&answer(include_str!("fixtures/py_websocket.json"))).unwrap();
        let Transport::WebSocket(ws) = b.transport else {
            panic!("{:?}", b.transport)
        };
        assert_eq!(ws.url, "ws://192.168.1.20:8000/xiaozhi/v1/");
        assert_eq!(b.activation, None);
    }

    #[test]
    fn mqtt_wins_over_websocket() {
        let b = decide(&answer(include_str!("fixtures/admin_bound_mqtt.json"))).unwrap();
        let Transport::Mqtt(m) = b.transport else {
            panic!("{:?}", b.transport)
        };
        assert_eq!((m.endpoint.host.as_str(), m.endpoint.port), ("192.168.1.20", 1883));
        let b = decide(&answer(include_str!("fixtures/py_mqtt.json"))).unwrap();
        assert!(matches!(b.transport, Transport::Mqtt(_)));
    }

    #[test]
    fn unknown_device_on_admin_api_must_activate() {
        let b = decide(&answer(include_str!("fixtures/admin_unknown_device.json"))).unwrap();
        assert!(matches!(b.transport, Transport::WebSocket(_)));
        let a = b.activation.unwrap();
        assert_eq!(a.code.as_deref(), Some("123456"));
        assert_eq!(a.challenge.as_deref(), Some("aa:bb:cc:dd:ee:ff"));
    }

    #[test]
    fn activation_without_code_or_challenge_is_not_pending() {
        let b = decide(&answer(
            r#"{"websocket": {"url": "ws://h/"}, "activation": {"message": "m"}}"#,
        ))
        .unwrap();
        assert_eq!(b.activation, None);
        let b = decide(&answer(
            r#"{"websocket": {"url": "ws://h/"}, "activation": {"code": "000111"}}"#,
        ))
        .unwrap();
        assert_eq!(b.activation.unwrap().code.as_deref(), Some("000111"));
    }

    #[test]
    fn no_transport_is_an_error() {
        assert_eq!(
            decide(&answer(r#"{"firmware": {"version": "1.0.0"}}"#)),
            Err(OtaError::NoTransport)
        );
    }

    #[test]
    fn upgrade_rule_compares_integers_and_honours_force() {
        assert!(!upgrade_offered("2.0.4", &offer("2.0.4", false)));
        assert!(upgrade_offered("2.0.4", &offer("2.0.10", false)));
        assert!(!upgrade_offered("2.0.10", &offer("2.0.9", false)));
        assert!(upgrade_offered("2.0", &offer("2.0.1", false)));
        assert!(!upgrade_offered("2.0.1", &offer("2.0", false)));
        assert!(upgrade_offered("2.0.4", &offer("1.0.0", true)));
    }
}
