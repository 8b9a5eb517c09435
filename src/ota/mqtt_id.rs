//! The MQTT credentials PY's OTA hands out when an MQTT gateway is
//! configured (PROTOCOL.md §1.4, §11.1), derived from the device: the
//! client id `GID_<model>@@@<mac_>@@@<mac_>`, the username (base64 of
//! `{"ip": "unknown"}`), the text the password signs, and the gateway's
//! per-device topic. The password itself is base64(HMAC-SHA256(key, that
//! text)); no HMAC crate is a dependency yet, so it is not computed here.

/// `username`: base64 of the JSON text `{"ip": "unknown"}` (§1.4).
pub const GATEWAY_USERNAME: &str = "eyJpcCI6ICJ1bmtub3duIn0=";

/// `publish_topic` of PY's OTA answer (§11.1).
pub const PUBLISH_TOPIC: &str = "device-server";

/// The MAC with `:` replaced by `_`, as the gateway writes it.
pub fn mac_safe(mac: &str) -> String {
    mac.replace(':', "_")
}

/// `GID_` + the device model with `:` and spaces replaced by `_`.
pub fn group_id(board_type: &str) -> String {
    format!("GID_{}", board_type.replace([':', ' '], "_"))
}

/// `mqtt.client_id`: `<group id>@@@<mac_>@@@<mac_>`.
pub fn client_id(board_type: &str, mac: &str) -> String {
    let m = mac_safe(mac);
    format!("{}@@@{m}@@@{m}", group_id(board_type))
}

/// The text whose HMAC-SHA256 (keyed with PY's `mqtt_signature_key`),
/// base64-encoded, is `mqtt.password`: `client_id + '|' + username`.
pub fn password_message(client_id: &str, username: &str) -> String {
    format!("{client_id}|{username}")
}

/// The topic the gateway publishes to the device on: `devices/p2p/<mac_>`.
pub fn p2p_topic(mac: &str) -> String {
    format!("devices/p2p/{}", mac_safe(mac))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn client_id_matches_the_protocol_example() {
        assert_eq!(
            client_id("bread-compact-wifi", "aa:bb:cc:dd:ee:ff"),
            "GID_bread-compact-wifi@@@aa_bb_cc_dd_ee_ff@@@aa_bb_cc_dd_ee_ff"
        );
    }

    #[test]
    fn group_id_replaces_colons_and_spaces() {
        assert_eq!(group_id("my board:v2"), "GID_my_board_v2");
    }

    #[test]
    fn username_is_base64_of_unknown_ip() {
        let text = base64::engine::general_purpose::STANDARD.encode(r#"{"ip": "unknown"}"#);
        assert_eq!(text, GATEWAY_USERNAME);
    }

    #[test]
    fn password_message_and_topic() {
        assert_eq!(
            password_message("GID_b@@@m@@@m", GATEWAY_USERNAME),
            "GID_b@@@m@@@m|eyJpcCI6ICJ1bmtub3duIn0="
        );
        assert_eq!(p2p_topic("aa:bb:cc:dd:ee:ff"), "devices/p2p/aa_bb_cc_dd_ee_ff");
    }
}
