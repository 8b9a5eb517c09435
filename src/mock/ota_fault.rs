//! Faults of the mock's OTA endpoint (`[mock] ota_fault`, `ota_fault_p`):
//! answers a device cannot use, each the way a misconfigured deployment
//! gives it (PROTOCOL.md §1.4). Which devices get one is drawn from the
//! mock's seed and the device id, so a device gets the fault on every
//! version check or never, and a run can be repeated exactly.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What goes wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtaFaultKind {
    /// HTTP 500 with a plain-text body (a crashed handler).
    #[serde(rename = "http_500")]
    Http500,
    /// HTTP 200 with an HTML page (a web UI or proxy page at the OTA path).
    Html,
    /// JSON without `websocket` and `mqtt` (only `server_time`, `firmware`).
    MissingFields,
    /// `websocket.url` that is not a ws:// URL.
    BadWebsocketUrl,
}

/// A resolved OTA fault.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OtaFault {
    pub kind: OtaFaultKind,
    /// Share of devices that get it (0 to 1).
    pub p: f64,
}

/// SplitMix64 step.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A number drawn from `seed`, a `salt` naming the use, and a device id:
/// the same for the same three, spread over all of `u64` otherwise.
pub(crate) fn device_draw(seed: u64, salt: u64, device_id: &str) -> u64 {
    // FNV-1a over the id, then mixed with the seed and salt.
    let h = device_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    });
    mix(h ^ mix(seed ^ mix(salt)))
}

impl OtaFault {
    /// Whether device `device_id` gets the fault under `seed`.
    pub fn hits(&self, seed: u64, device_id: &str) -> bool {
        let u = (device_draw(seed, 0x07a_fa17, device_id) >> 11) as f64 / (1u64 << 53) as f64;
        u < self.p
    }

    /// The faulty answer, given the good one.
    pub fn respond(&self, good: Value) -> Response {
        match self.kind {
            OtaFaultKind::Http500 => (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response(),
            OtaFaultKind::Html => (
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                "<!DOCTYPE html>\n<html><head><title>Admin</title></head><body>xiaozhi</body></html>\n",
            )
                .into_response(),
            OtaFaultKind::MissingFields => {
                let mut a = good;
                if let Some(o) = a.as_object_mut() {
                    o.remove("websocket");
                    o.remove("mqtt");
                }
                axum::Json(a).into_response()
            }
            OtaFaultKind::BadWebsocketUrl => {
                let mut a = good;
                if let Some(o) = a.as_object_mut() {
                    o.remove("mqtt");
                }
                a["websocket"] = serde_json::json!({"url": "http://127.0.0.1:8000/xiaozhi/v1/", "token": ""});
                axum::Json(a).into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_of_devices_is_hit_the_same_way_each_time() {
        let f = OtaFault {
            kind: OtaFaultKind::Html,
            p: 0.3,
        };
        let ids: Vec<String> = (0..1000)
            .map(|i| format!("02:00:00:00:{:02x}:{:02x}", i / 256, i % 256))
            .collect();
        let hit = ids.iter().filter(|id| f.hits(7, id)).count();
        assert!((250..350).contains(&hit), "{hit}");
        assert!(ids.iter().all(|id| f.hits(7, id) == f.hits(7, id)));
        let all = OtaFault { p: 1.0, ..f };
        assert!(ids.iter().all(|id| all.hits(7, id)));
    }
}
