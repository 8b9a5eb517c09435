//! The MQTT password rule of PY's OTA and the gateway (PROTOCOL.md §1.4):
//! base64 of HMAC-SHA256 keyed with the signature key over
//! `client_id + '|' + username`. The mock's OTA hands it out and its
//! gateway checks it, when `[mock] mqtt_signature_key` is set.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// `mqtt.password` for this client id and username.
pub fn password(key: &str, client_id: &str, username: &str) -> String {
    // HMAC takes keys of any length: `new_from_slice` cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_bytes()) else {
        return String::new();
    };
    mac.update(format!("{client_id}|{username}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_base64_hmac_sha256_of_client_id_and_username() {
        // Made with Python's hmac module:
        // base64(hmac.new(key, b"<client id>|<username>", sha256).digest())
        let p = password(
            "mock-signature-key",
            "GID_bread@@@02_aa_00_00_00_01@@@02_aa_00_00_00_01",
            "eyJpcCI6ICJ1bmtub3duIn0=",
        );
        assert_eq!(p, "JfJQtTGfYkVIhIW/mY8yj9LWULHtmp0OzMf0zP9X2OI=");
    }
}
