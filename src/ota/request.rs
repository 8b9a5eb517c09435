//! The OTA version-check request and the activation request, exactly as
//! the firmware sends them (PROTOCOL.md §1.4): method, URL, headers and the
//! system-information body, built from a device identity. Pure: no HTTP
//! client here; the shell that sends these comes later.

use crate::protocol::DeviceIdentity;
use serde::Serialize;

/// What the simulated board claims to be: the parts of the OTA request that
/// do not come from the device identity.
#[derive(Clone, Debug, PartialEq)]
pub struct OtaProfile {
    /// The OTA URL (`wifi.ota_url`), e.g. `http://host:8003/xiaozhi/ota/`.
    pub ota_url: String,
    /// `board.type` and `board.name` (the device model; ★ read by servers).
    pub board_type: String,
    /// `application.version` (★ read by servers) and the `User-Agent` version.
    pub firmware_version: String,
    /// `Accept-Language` and `language`, e.g. `zh-CN`.
    pub language: String,
}

impl OtaProfile {
    /// A breadboard Wi-Fi build at firmware 2.0.4, `zh-CN`: the values of
    /// PROTOCOL.md §1.4's example body.
    pub fn bread_compact_wifi(ota_url: &str) -> Self {
        Self {
            ota_url: ota_url.to_string(),
            board_type: "bread-compact-wifi".to_string(),
            firmware_version: "2.0.4".to_string(),
            language: "zh-CN".to_string(),
        }
    }
}

/// One HTTP request, as plain data.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpRequest {
    /// Always `POST` here (the firmware uses GET only for an empty body).
    pub method: &'static str,
    pub url: String,
    /// In the order the firmware sets them.
    pub headers: Vec<(String, String)>,
    pub body: serde_json::Value,
}

/// The firmware's system-information body (§1.4), the members a simulator
/// can fill meaningfully; static hardware facts are fixed values.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SystemInfo {
    pub version: u32,
    pub language: String,
    pub flash_size: u64,
    /// A JSON *string* in the firmware output.
    pub minimum_free_heap_size: String,
    pub mac_address: String,
    pub uuid: String,
    pub chip_model_name: String,
    pub chip_info: ChipInfo,
    pub application: Application,
    pub partition_table: Vec<Partition>,
    pub ota: OtaPartition,
    pub display: Display,
    pub board: Board,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChipInfo {
    pub model: u32,
    pub cores: u32,
    pub revision: u32,
    pub features: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Application {
    pub name: String,
    pub version: String,
    pub compile_time: String,
    pub idf_version: String,
    pub elf_sha256: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Partition {
    pub label: String,
    #[serde(rename = "type")]
    pub kind: u32,
    pub subtype: u32,
    pub address: u64,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OtaPartition {
    pub label: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Display {
    pub monochrome: bool,
    pub width: u32,
    pub height: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Board {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub manufacturer: String,
    pub ssid: String,
    pub rssi: i32,
    pub channel: u32,
    pub ip: String,
    pub mac: String,
}

/// The body of §1.4's example, with this device's MAC, UUID, board and
/// firmware version.
pub fn system_info(id: &DeviceIdentity, p: &OtaProfile) -> SystemInfo {
    SystemInfo {
        version: 2,
        language: p.language.clone(),
        flash_size: 16 * 1024 * 1024,
        minimum_free_heap_size: "8298356".to_string(),
        mac_address: id.device_id.clone(),
        uuid: id.client_id.clone(),
        chip_model_name: "esp32s3".to_string(),
        chip_info: ChipInfo {
            model: 9,
            cores: 2,
            revision: 2,
            features: 18,
        },
        application: Application {
            name: "xiaozhi".to_string(),
            version: p.firmware_version.clone(),
            compile_time: "Aug  1 2026T10:00:00Z".to_string(),
            idf_version: "v5.5".to_string(),
            elf_sha256: "0".repeat(64),
        },
        partition_table: vec![Partition {
            label: "nvs".to_string(),
            kind: 1,
            subtype: 2,
            address: 36864,
            size: 16384,
        }],
        ota: OtaPartition {
            label: "ota_0".to_string(),
        },
        display: Display {
            monochrome: false,
            width: 240,
            height: 240,
        },
        board: Board {
            kind: p.board_type.clone(),
            name: p.board_type.clone(),
            manufacturer: "xiaozhi-fleet".to_string(),
            ssid: "lab".to_string(),
            rssi: -50,
            channel: 6,
            ip: "192.168.1.50".to_string(),
            mac: id.device_id.clone(),
        },
    }
}

/// The headers of both OTA requests, in the firmware's order. No serial
/// number is simulated, so `Activation-Version` is `1` and no
/// `Serial-Number` header is sent.
pub fn ota_headers(id: &DeviceIdentity, p: &OtaProfile) -> Vec<(String, String)> {
    [
        ("Activation-Version", "1".to_string()),
        ("Device-Id", id.device_id.clone()),
        ("Client-Id", id.client_id.clone()),
        ("User-Agent", format!("{}/{}", p.board_type, p.firmware_version)),
        ("Accept-Language", p.language.clone()),
        ("Content-Type", "application/json".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The version check: `POST <ota_url>` with the system information.
pub fn version_check(id: &DeviceIdentity, p: &OtaProfile) -> HttpRequest {
    let body = serde_json::to_value(system_info(id, p)).expect("plain struct serialises");
    HttpRequest {
        method: "POST",
        url: p.ota_url.clone(),
        headers: ota_headers(id, p),
        body,
    }
}

/// `<ota_url>/activate`, a `/` inserted only if the URL lacks one.
pub fn activate_url(ota_url: &str) -> String {
    if ota_url.ends_with('/') {
        format!("{ota_url}activate")
    } else {
        format!("{ota_url}/activate")
    }
}

/// The activation poll: same headers, body `{}` (a board without a serial
/// number sends no HMAC answer).
pub fn activate(id: &DeviceIdentity, p: &OtaProfile) -> HttpRequest {
    HttpRequest {
        method: "POST",
        url: activate_url(&p.ota_url),
        headers: ota_headers(id, p),
        body: serde_json::json!({}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id() -> DeviceIdentity {
        DeviceIdentity {
            device_id: "aa:bb:cc:dd:ee:ff".to_string(),
            client_id: "3f6b2c1e-8d4a-4b7e-9c2f-1a2b3c4d5e6f".to_string(),
            token: None,
        }
    }

    fn profile() -> OtaProfile {
        OtaProfile::bread_compact_wifi("http://192.168.1.20:8003/xiaozhi/ota/")
    }

    #[test]
    fn headers_are_the_firmwares_in_order() {
        let h = ota_headers(&id(), &profile());
        let pairs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            vec![
                ("Activation-Version", "1"),
                ("Device-Id", "aa:bb:cc:dd:ee:ff"),
                ("Client-Id", "3f6b2c1e-8d4a-4b7e-9c2f-1a2b3c4d5e6f"),
                ("User-Agent", "bread-compact-wifi/2.0.4"),
                ("Accept-Language", "zh-CN"),
                ("Content-Type", "application/json"),
            ]
        );
    }

    #[test]
    fn body_is_the_protocol_example_with_this_device() {
        let r = version_check(&id(), &profile());
        assert_eq!(r.method, "POST");
        assert_eq!(r.url, "http://192.168.1.20:8003/xiaozhi/ota/");
        let expected = json!({
          "version": 2,
          "language": "zh-CN",
          "flash_size": 16777216,
          "minimum_free_heap_size": "8298356",
          "mac_address": "aa:bb:cc:dd:ee:ff",
          "uuid": "3f6b2c1e-8d4a-4b7e-9c2f-1a2b3c4d5e6f",
          "chip_model_name": "esp32s3",
          "chip_info": {"model": 9, "cores": 2, "revision": 2, "features": 18},
          "application": {
            "name": "xiaozhi",
            "version": "2.0.4",
            "compile_time": "Aug  1 2026T10:00:00Z",
            "idf_version": "v5.5",
            "elf_sha256": "0000000000000000000000000000000000000000000000000000000000000000"
          },
          "partition_table": [{"label": "nvs", "type": 1, "subtype": 2, "address": 36864, "size": 16384}],
          "ota": {"label": "ota_0"},
          "display": {"monochrome": false, "width": 240, "height": 240},
          "board": {
            "type": "bread-compact-wifi",
            "name": "bread-compact-wifi",
            "manufacturer": "xiaozhi-fleet",
            "ssid": "lab", "rssi": -50, "channel": 6, "ip": "192.168.1.50",
            "mac": "aa:bb:cc:dd:ee:ff"
          }
        });
        assert_eq!(r.body, expected);
    }

    #[test]
    fn seeded_identity_goes_into_mac_uuid_and_headers() {
        let ident = crate::device::identity_for(1, 3, None);
        let r = version_check(&ident, &profile());
        assert_eq!(r.body["mac_address"], json!(ident.device_id));
        assert_eq!(r.body["board"]["mac"], json!(ident.device_id));
        assert_eq!(r.body["uuid"], json!(ident.client_id));
        assert_eq!(r.headers[1], ("Device-Id".to_string(), ident.device_id.clone()));
        assert_eq!(r.headers[2], ("Client-Id".to_string(), ident.client_id.clone()));
    }

    #[test]
    fn activate_url_inserts_a_slash_only_when_missing() {
        assert_eq!(
            activate_url("http://h:8003/xiaozhi/ota/"),
            "http://h:8003/xiaozhi/ota/activate"
        );
        assert_eq!(
            activate_url("http://h:8002/xiaozhi/ota"),
            "http://h:8002/xiaozhi/ota/activate"
        );
    }

    #[test]
    fn activate_request_has_same_headers_and_empty_object() {
        let r = activate(&id(), &profile());
        assert_eq!(r.method, "POST");
        assert_eq!(r.url, "http://192.168.1.20:8003/xiaozhi/ota/activate");
        assert_eq!(r.headers, ota_headers(&id(), &profile()));
        assert_eq!(r.body, json!({}));
    }
}
