//! The gateway's pure message rules (PROTOCOL.md §11.2, §11.4): which
//! device hellos it takes (version 3, transport `udp`), the hello the core
//! is handed (the WebSocket shape, binary protocol v1), the nonce it builds
//! (a UDP header: type 1, its 32-bit connection id in bytes 4–7, the rest
//! zero), the core's hello rewritten into the UDP hello the device needs,
//! `goodbye`, and the MQTT client id it reads the device from.

use crate::protocol::udp::{PACKET_TYPE, UdpParams};
use serde_json::{Value, json};

/// Why a device hello was not taken.
pub const UNSUPPORTED: &str = "Unsupported protocol version";

/// The device hello's check: `version` 3 and `transport` `udp`, as the
/// real gateway requires.
pub fn check_device_hello(hello: &Value) -> Result<(), String> {
    let version = hello.get("version").and_then(Value::as_u64);
    if version != Some(3) {
        return Err(format!("hello version {version:?}, the gateway takes only 3"));
    }
    match hello.get("transport").and_then(Value::as_str) {
        Some("udp") => Ok(()),
        other => Err(format!("hello transport {other:?}, the gateway takes only \"udp\"")),
    }
}

/// The hello handed to the session core: the device's, as a WebSocket
/// device with binary protocol v1 (raw Opus) would send it.
pub fn inner_hello(device_hello: &Value) -> String {
    let mut h = device_hello.clone();
    h["version"] = json!(1);
    h["transport"] = json!("websocket");
    h.to_string()
}

/// The 16-byte nonce of a conversation: a UDP header with type 1, flags 0,
/// length 0, `ssrc` in bytes 4–7, timestamp and sequence 0.
pub fn nonce(ssrc: u32) -> [u8; 16] {
    let mut n = [0u8; 16];
    n[0] = PACKET_TYPE;
    n[4..8].copy_from_slice(&ssrc.to_be_bytes());
    n
}

/// The core's hello rewritten for the device: version 3, transport `udp`,
/// the core's session id and audio parameters, and the `udp` block. With
/// `bad_key` (the `bad_udp_key` fault) the key is 15 bytes.
pub fn udp_hello(core_hello: &Value, udp: &UdpParams, bad_key: bool) -> Value {
    let mut block = udp.to_hello();
    if bad_key {
        block["key"] = json!(hex::encode(&udp.key[..15]));
    }
    json!({
        "type": "hello",
        "version": 3,
        "session_id": core_hello.get("session_id").cloned().unwrap_or(Value::Null),
        "transport": "udp",
        "udp": block,
        "audio_params": core_hello.get("audio_params").cloned().unwrap_or(Value::Null),
    })
}

/// The gateway's `goodbye` (§11.4).
pub fn goodbye(session_id: &str) -> String {
    json!({"type": "goodbye", "session_id": session_id}).to_string()
}

/// The device's MAC (`aa:bb:…`) from a client id
/// `GID_<model>@@@<mac_>@@@<uuid>`; `None` when it is not of that shape.
pub fn device_of(client_id: &str) -> Option<String> {
    let mut parts = client_id.split("@@@");
    let (group, mac, _uuid) = (parts.next()?, parts.next()?, parts.next()?);
    if !group.starts_with("GID_") || mac.is_empty() || parts.next().is_some() {
        return None;
    }
    Some(mac.replace('_', ":"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> UdpParams {
        UdpParams {
            server: "127.0.0.1".into(),
            port: 40000,
            key: [7; 16],
            nonce: nonce(0xa1b2_c3d4),
        }
    }

    #[test]
    fn nonce_is_a_header_with_the_connection_id_in_bytes_4_to_7() {
        assert_eq!(hex::encode(nonce(0xa1b2_c3d4)), "01000000a1b2c3d40000000000000000");
        assert_eq!(params().ssrc(), 0xa1b2_c3d4);
    }

    #[test]
    fn only_version_3_over_udp_is_taken() {
        assert!(check_device_hello(&json!({"type": "hello", "version": 3, "transport": "udp"})).is_ok());
        let e = check_device_hello(&json!({"type": "hello", "version": 1, "transport": "udp"})).unwrap_err();
        assert!(e.contains("version"), "{e}");
        assert!(check_device_hello(&json!({"type": "hello", "version": 3, "transport": "websocket"})).is_err());
    }

    #[test]
    fn core_sees_a_websocket_hello_with_the_devices_features() {
        let d = json!({"type": "hello", "version": 3, "transport": "udp", "features": {"mcp": true}});
        let inner: Value = serde_json::from_str(&inner_hello(&d)).unwrap();
        assert_eq!(inner["version"], 1);
        assert_eq!(inner["transport"], "websocket");
        assert_eq!(inner["features"]["mcp"], true);
    }

    #[test]
    fn core_hello_becomes_a_udp_hello_the_firmware_accepts() {
        let core = json!({"type": "hello", "version": 1, "transport": "websocket", "session_id": "s1",
            "audio_params": {"format": "opus", "sample_rate": 24000, "channels": 1, "frame_duration": 60}});
        let h = udp_hello(&core, &params(), false);
        assert_eq!((h["version"].as_u64(), h["transport"].as_str()), (Some(3), Some("udp")));
        assert_eq!(h["session_id"], "s1");
        assert_eq!(h["audio_params"]["sample_rate"], 24000);
        assert_eq!(UdpParams::from_hello(h.get("udp")).unwrap(), params());
        let bad = udp_hello(&core, &params(), true);
        let e = UdpParams::from_hello(bad.get("udp")).unwrap_err();
        assert!(e.contains("15 bytes"), "{e}");
    }

    #[test]
    fn client_id_names_the_device_mac() {
        let id = "GID_bread@@@aa_bb_cc_dd_ee_ff@@@3f6b2c1e";
        assert_eq!(device_of(id).as_deref(), Some("aa:bb:cc:dd:ee:ff"));
        assert_eq!(device_of("plain-client"), None);
        assert_eq!(device_of("GID_b@@@@@@x"), None);
    }
}
