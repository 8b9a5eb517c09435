//! WebSocket upgrade request: identity headers on both sides (PROTOCOL.md §1.2, §1.3).
//!
//! The device proves who it is only through HTTP headers on the upgrade
//! request (`Authorization`, `Protocol-Version`, `Device-Id`, `Client-Id`),
//! and PY refuses the upgrade unless `Connection` is exactly `Upgrade`. This
//! module owns building that request for the simulator and reading it back
//! for the mock server, including PY's query-string fallback, so both sides
//! share one definition of the handshake.

use crate::protocol::framing::ProtocolVersion;
use thiserror::Error;
use tokio_tungstenite::tungstenite::http::header::{AUTHORIZATION, CONNECTION, HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http};

const PROTOCOL_VERSION: HeaderName = HeaderName::from_static("protocol-version");
const DEVICE_ID: HeaderName = HeaderName::from_static("device-id");
const CLIENT_ID: HeaderName = HeaderName::from_static("client-id");

/// Who a simulated device claims to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceIdentity {
    /// MAC-format device id, e.g. `aa:bb:cc:dd:ee:ff`.
    pub device_id: String,
    /// UUID v4 client id.
    pub client_id: String,
    /// Access token; sent as `Bearer <token>` when non-empty.
    pub token: Option<String>,
}

/// Why the upgrade request could not be built.
#[derive(Debug, Error)]
pub enum HandshakeError {
    /// The WebSocket URL could not be turned into a request.
    #[error("invalid WebSocket URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// A header value contains bytes HTTP does not allow (e.g. a newline).
    #[error("invalid value for header `{name}`")]
    InvalidHeader { name: &'static str },
}

/// Builds the device's upgrade request: tungstenite's WebSocket headers plus
/// the identity headers of §1.2, with `Connection: Upgrade` exactly.
pub fn client_request(
    url: &str,
    identity: &DeviceIdentity,
    version: ProtocolVersion,
) -> Result<http::Request<()>, HandshakeError> {
    let mut request = url.into_client_request().map_err(|e| HandshakeError::InvalidUrl {
        url: url.to_owned(),
        reason: e.to_string(),
    })?;
    let headers = request.headers_mut();
    // tungstenite already sends exactly this; insert anyway so a library
    // change cannot silently break PY's exact-match check (§1.1).
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Some(token) = identity.token.as_deref().filter(|t| !t.is_empty()) {
        let value = if token.contains(' ') {
            token.to_owned()
        } else {
            format!("Bearer {token}")
        };
        headers.insert(AUTHORIZATION, header_value("Authorization", &value)?);
    }
    let version = version.as_u8().to_string();
    headers.insert(PROTOCOL_VERSION, header_value("Protocol-Version", &version)?);
    headers.insert(DEVICE_ID, header_value("Device-Id", &identity.device_id)?);
    headers.insert(CLIENT_ID, header_value("Client-Id", &identity.client_id)?);
    Ok(request)
}

fn header_value(name: &'static str, value: &str) -> Result<HeaderValue, HandshakeError> {
    HeaderValue::from_str(value).map_err(|_| HandshakeError::InvalidHeader { name })
}

/// Identity fields the mock server reads from an upgrade request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientHeaders {
    pub device_id: Option<String>,
    pub client_id: Option<String>,
    pub authorization: Option<String>,
    pub protocol_version: Option<String>,
}

/// Reads the identity headers like PY does: names are case-insensitive, and
/// when `device-id` is absent the query parameters `device-id`, `client-id`
/// and `authorization` are used instead (§1.3).
pub fn read_client_headers(req: &http::Request<()>) -> ClientHeaders {
    let header = |name: &HeaderName| {
        req.headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let mut out = ClientHeaders {
        device_id: header(&DEVICE_ID),
        client_id: header(&CLIENT_ID),
        authorization: header(&AUTHORIZATION),
        protocol_version: header(&PROTOCOL_VERSION),
    };
    if out.device_id.is_none() {
        // Query values replace headers; the first occurrence of a key wins,
        // like PY's `parse_qs(query)[key][0]`.
        let (mut device_id, mut client_id, mut authorization) = (None, None, None);
        for (key, value) in query_pairs(req.uri().query().unwrap_or("")) {
            let slot = match key.as_str() {
                "device-id" => &mut device_id,
                "client-id" => &mut client_id,
                "authorization" => &mut authorization,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        out.device_id = device_id;
        out.client_id = client_id.or(out.client_id);
        out.authorization = authorization.or(out.authorization);
    }
    out
}

/// Splits a query string into percent-decoded `(key, value)` pairs.
fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key), percent_decode(value))
    })
}

/// Decodes `%XX` escapes and `+` (space), leaving malformed escapes as-is.
fn percent_decode(input: &str) -> String {
    // A `+` that means itself arrives as `%2B`: every bare one is a space.
    let spaced = input.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::handshake::client::generate_request;

    fn identity(token: Option<&str>) -> DeviceIdentity {
        DeviceIdentity {
            device_id: "aa:bb:cc:dd:ee:ff".into(),
            client_id: "3f6b2c1e-8d4a-4b7e-9c2f-1a2b3c4d5e6f".into(),
            token: token.map(str::to_owned),
        }
    }

    fn get<'a>(req: &'a http::Request<()>, name: &str) -> Option<&'a str> {
        req.headers().get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn client_request_carries_exact_identity_headers() {
        let req = client_request(
            "ws://127.0.0.1:8000/xiaozhi/v1/",
            &identity(Some("sig.123")),
            ProtocolVersion::V3,
        )
        .expect("request");
        assert_eq!(get(&req, "Authorization"), Some("Bearer sig.123"));
        assert_eq!(get(&req, "Protocol-Version"), Some("3"));
        assert_eq!(get(&req, "Device-Id"), Some("aa:bb:cc:dd:ee:ff"));
        assert_eq!(get(&req, "Client-Id"), Some("3f6b2c1e-8d4a-4b7e-9c2f-1a2b3c4d5e6f"));
        assert_eq!(req.uri().path(), "/xiaozhi/v1/");
    }

    #[test]
    fn connection_header_is_exactly_upgrade_on_the_wire() {
        let req = client_request("ws://h:1/", &identity(None), ProtocolVersion::V1).expect("request");
        let values: Vec<_> = req.headers().get_all("connection").iter().collect();
        assert_eq!(values, vec!["Upgrade"]);
        let (bytes, _key) = generate_request(req).expect("serialise");
        let text = String::from_utf8(bytes).expect("utf8");
        assert!(text.contains("\r\nConnection: Upgrade\r\n"), "{text}");
        assert!(!text.to_ascii_lowercase().contains("sec-websocket-extensions"));
    }

    #[test]
    fn token_with_space_is_sent_verbatim() {
        let req = client_request("ws://h/", &identity(Some("Token abc")), ProtocolVersion::V1).expect("request");
        assert_eq!(get(&req, "Authorization"), Some("Token abc"));
    }

    #[test]
    fn empty_or_missing_token_sends_no_authorization() {
        for token in [None, Some("")] {
            let req = client_request("ws://h/", &identity(token), ProtocolVersion::V1).expect("request");
            assert_eq!(get(&req, "Authorization"), None);
        }
    }

    #[test]
    fn client_request_rejects_bad_url_and_bad_header_value() {
        assert!(matches!(
            client_request("not a url", &identity(None), ProtocolVersion::V1),
            Err(HandshakeError::InvalidUrl { .. })
        ));
        let mut bad = identity(None);
        bad.device_id = "a\nb".into();
        assert!(matches!(
            client_request("ws://h/", &bad, ProtocolVersion::V1),
            Err(HandshakeError::InvalidHeader { name: "Device-Id" })
        ));
    }

    #[test]
    fn server_reads_back_what_client_sends() {
        let req = client_request("ws://h/", &identity(Some("t")), ProtocolVersion::V2).expect("request");
        let headers = read_client_headers(&req);
        assert_eq!(headers.device_id.as_deref(), Some("aa:bb:cc:dd:ee:ff"));
        assert_eq!(
            headers.client_id.as_deref(),
            Some("3f6b2c1e-8d4a-4b7e-9c2f-1a2b3c4d5e6f")
        );
        assert_eq!(headers.authorization.as_deref(), Some("Bearer t"));
        assert_eq!(headers.protocol_version.as_deref(), Some("2"));
    }

    #[test]
    fn header_names_are_case_insensitive() {
        let req = http::Request::builder()
            .uri("/")
            .header("DEVICE-ID", "d")
            .header("Client-ID", "c")
            .body(())
            .expect("request");
        let headers = read_client_headers(&req);
        assert_eq!(headers.device_id.as_deref(), Some("d"));
        assert_eq!(headers.client_id.as_deref(), Some("c"));
    }

    #[test]
    fn query_fallback_when_device_id_header_missing() {
        let req = http::Request::builder()
            .uri("/xiaozhi/v1/?device-id=aa%3Abb&client-id=c1&authorization=Bearer+x%2Fy&z=1&device-id=late")
            .body(())
            .expect("request");
        let headers = read_client_headers(&req);
        assert_eq!(headers.device_id.as_deref(), Some("aa:bb"));
        assert_eq!(headers.client_id.as_deref(), Some("c1"));
        assert_eq!(headers.authorization.as_deref(), Some("Bearer x/y"));
        assert_eq!(headers.protocol_version, None);
    }

    #[test]
    fn query_ignored_when_device_id_header_present() {
        let req = http::Request::builder()
            .uri("/?device-id=q&client-id=q")
            .header("device-id", "h")
            .body(())
            .expect("request");
        let headers = read_client_headers(&req);
        assert_eq!(headers.device_id.as_deref(), Some("h"));
        assert_eq!(headers.client_id, None);
    }

    #[test]
    fn no_device_id_anywhere_yields_none() {
        let req = http::Request::builder().uri("/?client-id=c").body(()).expect("request");
        let headers = read_client_headers(&req);
        assert_eq!(headers.device_id, None);
        assert_eq!(headers.client_id.as_deref(), Some("c"));
    }

    #[test]
    fn percent_decode_keeps_malformed_escapes() {
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
        assert_eq!(percent_decode("%E4%BD%A0"), "你");
    }
}
