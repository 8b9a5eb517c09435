//! Opening a device's connection: DNS, TCP connect, TLS for `wss://`, and
//! the WebSocket upgrade with the firmware's headers, each step timed out
//! and each failure explained (the OS error, the HTTP status and the start
//! of the body, the TLS reason), so an operator sees why nothing connects.

use super::session::DeviceSettings;
use crate::metrics::{Failure, FailureKind};
use crate::protocol::{DeviceIdentity, client_request};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, http};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

/// The socket type a device owns.
pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// WebSocket read buffer: the default 128 KiB is zero-filled per read and
/// costs ~128 KiB RSS per device; 4 KiB fits this traffic (ARCHITECTURE.md).
const READ_BUFFER: usize = 4 * 1024;
/// Longest excerpt of an HTTP error body kept in a failure detail.
const BODY_EXCERPT: usize = 120;

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(READ_BUFFER)
}

/// An upgraded connection and how long it took.
pub(crate) struct Opened {
    pub ws: Socket,
    /// DNS + TCP + TLS + upgrade.
    pub connect: Duration,
}

fn fail(kind: FailureKind, detail: impl Into<String>) -> Failure {
    Failure::new(kind, detail)
}

/// Connects and upgrades, within the hello timeout for each step.
pub(crate) async fn open(settings: &DeviceSettings, identity: &DeviceIdentity) -> Result<Opened, Failure> {
    let limit = settings.timeouts.hello;
    let request = client_request(&settings.url, identity, settings.protocol_version)
        .map_err(|e| fail(FailureKind::Connect, e.to_string()))?;
    let (host, port) = host_port(&request)?;
    let started = Instant::now();
    tracing::debug!(device = %identity.device_id, %host, port, "connecting");
    let addrs = resolve(&host, port, limit).await?;
    let tcp = tcp_connect(&addrs, limit).await?;
    let _ = tcp.set_nodelay(true);
    let connector = match (request.uri().scheme_str(), &settings.tls) {
        (Some("wss"), Some(tls)) => Connector::Rustls(tls.clone()),
        _ => Connector::Plain,
    };
    let upgrading = tokio_tungstenite::client_async_tls_with_config(request, tcp, Some(ws_config()), Some(connector));
    let ws = match tokio::time::timeout(limit, upgrading).await {
        Err(_) => {
            let d = format!(
                "no answer to the WebSocket upgrade within {}",
                humantime::format_duration(limit)
            );
            return Err(fail(FailureKind::Handshake, d));
        }
        Ok(Err(e)) => return Err(upgrade_failure(&e)),
        Ok(Ok((ws, _response))) => ws,
    };
    Ok(Opened {
        ws,
        connect: started.elapsed(),
    })
}

fn host_port(request: &http::Request<()>) -> Result<(String, u16), Failure> {
    let uri = request.uri();
    let host = uri
        .host()
        .ok_or_else(|| fail(FailureKind::Connect, format!("URL {uri} has no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("wss") { 443 } else { 80 });
    Ok((host, port))
}

async fn resolve(host: &str, port: u16, limit: Duration) -> Result<Vec<SocketAddr>, Failure> {
    let lookup = tokio::net::lookup_host((host, port));
    let addrs: Vec<SocketAddr> = match tokio::time::timeout(limit, lookup).await {
        Err(_) => return Err(fail(FailureKind::Connect, format!("DNS lookup of {host} timed out"))),
        Ok(Err(e)) => return Err(fail(FailureKind::Connect, format!("DNS lookup of {host} failed: {e}"))),
        Ok(Ok(addrs)) => addrs.collect(),
    };
    if addrs.is_empty() {
        return Err(fail(
            FailureKind::Connect,
            format!("DNS lookup of {host} found no address"),
        ));
    }
    Ok(addrs)
}

/// Tries each address in turn (`localhost` may resolve to ::1 first while
/// the server listens on 127.0.0.1), within `limit` for all of them.
async fn tcp_connect(addrs: &[SocketAddr], limit: Duration) -> Result<TcpStream, Failure> {
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    for addr in addrs {
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => {
                let d = format!(
                    "timed out after {} connecting to {addr}",
                    humantime::format_duration(limit)
                );
                return Err(fail(FailureKind::Connect, d));
            }
            Ok(Err(e)) => last = format!("{addr}: {e}"),
            Ok(Ok(s)) => return Ok(s),
        }
    }
    Err(fail(FailureKind::Connect, last))
}

/// Why the upgrade failed: an HTTP status is `handshake` (with the start
/// of the body: servers say why), TLS and I/O problems are `connect`.
pub(crate) fn upgrade_failure(e: &tungstenite::Error) -> Failure {
    use tungstenite::Error as E;
    match e {
        E::Http(response) => {
            let status = response.status();
            let mut d = format!("HTTP {} {}", status.as_u16(), status.canonical_reason().unwrap_or(""));
            let body = response
                .body()
                .as_deref()
                .map(|b| {
                    String::from_utf8_lossy(b)
                        .trim()
                        .chars()
                        .take(BODY_EXCERPT)
                        .collect::<String>()
                })
                .unwrap_or_default();
            if !body.is_empty() {
                d.push_str(&format!(": {body}"));
            }
            fail(FailureKind::Handshake, d.trim_end().to_string())
        }
        E::Tls(t) => fail(FailureKind::Connect, format!("TLS: {t}")),
        E::Io(io) => match io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            Some(tls) => fail(FailureKind::Connect, format!("TLS: {tls}")),
            None => fail(FailureKind::Connect, format!("during the WebSocket upgrade: {io}")),
        },
        E::Url(u) => fail(FailureKind::Connect, format!("URL: {u}")),
        other => fail(FailureKind::Handshake, format!("WebSocket upgrade failed: {other}")),
    }
}
