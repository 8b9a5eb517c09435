//! The two addresses an OTA answer hands out, checked before use: the
//! WebSocket URL (`ws://` or `wss://`, a host, an optional numeric port)
//! and the MQTT endpoint (`host` or `host:port`, port 8883 by default).

use super::error::OtaError;

/// The firmware's MQTT port when the endpoint names none (§1.4).
pub const DEFAULT_MQTT_PORT: u16 = 8883;

/// An MQTT endpoint split into host and port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttEndpoint {
    pub host: String,
    pub port: u16,
}

/// Checks a `websocket.url`: scheme `ws`/`wss`, a non-empty host, and a
/// port in 1–65535 if one is given.
pub fn check_ws_url(url: &str) -> Result<(), OtaError> {
    let bad = |reason| OtaError::BadUrl {
        url: url.to_string(),
        reason,
    };
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))
        .ok_or_else(|| bad("scheme is not ws:// or wss://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let (host, port) = split_host_port(host_port);
    if host.is_empty() {
        return Err(bad("no host"));
    }
    if let Some(p) = port {
        parse_port(p).ok_or_else(|| bad("port is not 1-65535"))?;
    }
    Ok(())
}

/// Parses `mqtt.endpoint` as the firmware does: `host` or `host:port`.
pub fn parse_endpoint(endpoint: &str) -> Result<MqttEndpoint, OtaError> {
    let bad = |reason| OtaError::BadEndpoint {
        endpoint: endpoint.to_string(),
        reason,
    };
    let (host, port) = split_host_port(endpoint);
    if host.is_empty() {
        return Err(bad("no host"));
    }
    if host.contains('/') {
        return Err(bad("not host or host:port"));
    }
    let port = match port {
        None => DEFAULT_MQTT_PORT,
        Some(p) => parse_port(p).ok_or_else(|| bad("port is not 1-65535"))?,
    };
    Ok(MqttEndpoint {
        host: host.to_string(),
        port,
    })
}

/// `host[:port]`, with `[v6]` hosts kept whole.
fn split_host_port(s: &str) -> (&str, Option<&str>) {
    if let Some(end) = s.strip_prefix('[').and_then(|r| r.find(']')) {
        let host = &s[..end + 2];
        let port = s[end + 2..].strip_prefix(':');
        return (host, port);
    }
    match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    }
}

fn parse_port(p: &str) -> Option<u16> {
    p.parse::<u16>().ok().filter(|&n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_urls_of_both_servers_pass() {
        assert_eq!(check_ws_url("ws://192.168.1.20:8000/xiaozhi/v1/"), Ok(()));
        assert_eq!(check_ws_url("wss://api.example.com/xiaozhi/v1/"), Ok(()));
        assert_eq!(check_ws_url("ws://[::1]:8000/"), Ok(()));
    }

    #[test]
    fn bad_ws_urls_say_why() {
        let reason = |u| match check_ws_url(u) {
            Err(OtaError::BadUrl { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(reason("http://h:8000/xiaozhi/v1/"), "scheme is not ws:// or wss://");
        assert_eq!(reason(""), "scheme is not ws:// or wss://");
        assert_eq!(reason("ws:///xiaozhi/v1/"), "no host");
        assert_eq!(reason("ws://h:0/"), "port is not 1-65535");
        assert_eq!(reason("ws://h:70000/"), "port is not 1-65535");
        assert_eq!(reason("ws://h:x/"), "port is not 1-65535");
    }

    #[test]
    fn endpoint_port_defaults_to_8883() {
        let e = parse_endpoint("mqtt.example.com").unwrap();
        assert_eq!(
            e,
            MqttEndpoint {
                host: "mqtt.example.com".to_string(),
                port: 8883
            }
        );
        let e = parse_endpoint("192.168.1.20:1883").unwrap();
        assert_eq!(
            e,
            MqttEndpoint {
                host: "192.168.1.20".to_string(),
                port: 1883
            }
        );
    }

    #[test]
    fn bad_endpoints_say_why() {
        let reason = |e| match parse_endpoint(e) {
            Err(OtaError::BadEndpoint { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(reason(""), "no host");
        assert_eq!(reason(":1883"), "no host");
        assert_eq!(reason("h:0"), "port is not 1-65535");
        assert_eq!(reason("mqtt://h:1883"), "not host or host:port");
    }
}
