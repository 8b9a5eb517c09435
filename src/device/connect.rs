//! Opening a device's connection: DNS, TCP connect, TLS for `wss://`, and
//! the WebSocket upgrade with the firmware's headers, each step timed out
//! and each failure explained (the OS error, the HTTP status and the start
//! of the body, the TLS reason), so an operator sees why nothing connects.
//! Large fleets connect from several local addresses (`source_for`): past
//! ~10k connections from one address, `connect()` spends most of its time
//! searching for a free ephemeral port.

use super::settings::DeviceSettings;
use super::socket::Socket;
use crate::metrics::{Failure, FailureKind};
use crate::protocol::{DeviceIdentity, ProtocolVersion, client_request};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, http};

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

/// Where and how a device connects: the run's URL and protocol version,
/// or the OTA answer's.
pub(crate) struct Dial<'a> {
    pub url: &'a str,
    pub version: ProtocolVersion,
    pub identity: &'a DeviceIdentity,
    pub index: u32,
}

/// Connects and upgrades, within the hello timeout for each step. Device
/// `index` connects from its share of the source addresses, if any.
pub(crate) async fn open(settings: &DeviceSettings, dial: Dial<'_>) -> Result<Opened, Failure> {
    let Dial {
        url,
        version,
        identity,
        index,
    } = dial;
    let limit = settings.timeouts.hello;
    let request = client_request(url, identity, version).map_err(|e| fail(FailureKind::Connect, e.to_string()))?;
    let (host, port) = host_port(&request)?;
    let started = Instant::now();
    tracing::debug!(device = %identity.device_id, %host, port, "connecting");
    let addrs = resolve(&host, port, limit).await?;
    let tcp = connect_any(&addrs, &settings.source_addrs, index, limit).await?;
    let _ = tcp.set_nodelay(true);
    let ws = match (request.uri().scheme_str(), &settings.tls) {
        (Some("wss"), Some(tls)) => {
            let connector = Some(Connector::Rustls(tls.clone()));
            let upgrading = tokio_tungstenite::client_async_tls_with_config(request, tcp, Some(ws_config()), connector);
            Socket::Tls(Box::new(upgraded(limit, upgrading).await?))
        }
        _ => {
            let upgrading = tokio_tungstenite::client_async_with_config(request, tcp, Some(ws_config()));
            Socket::Plain(Box::new(upgraded(limit, upgrading).await?))
        }
    };
    Ok(Opened {
        ws,
        connect: started.elapsed(),
    })
}

/// The upgrade, within `limit`.
async fn upgraded<S, R>(
    limit: Duration,
    upgrading: impl std::future::Future<Output = Result<(S, R), tungstenite::Error>>,
) -> Result<S, Failure> {
    match tokio::time::timeout(limit, upgrading).await {
        Err(_) => {
            let d = format!(
                "no answer to the WebSocket upgrade within {}",
                humantime::format_duration(limit)
            );
            Err(fail(FailureKind::Handshake, d))
        }
        Ok(Err(e)) => Err(upgrade_failure(&e)),
        Ok(Ok((ws, _response))) => Ok(ws),
    }
}

/// The local address device `index` connects to `dst` from: entry
/// `index mod n` of the addresses of `dst`'s family (none given: the system
/// picks).
pub(crate) fn source_for(sources: &[IpAddr], index: u32, dst: SocketAddr) -> Result<Option<IpAddr>, Failure> {
    if sources.is_empty() {
        return Ok(None);
    }
    let family: Vec<&IpAddr> = sources.iter().filter(|a| a.is_ipv4() == dst.is_ipv4()).collect();
    if family.is_empty() {
        let v = if dst.is_ipv4() { "IPv4" } else { "IPv6" };
        return Err(fail(
            FailureKind::Connect,
            format!("{dst} is {v}, and no source address (--source-addr) is"),
        ));
    }
    Ok(Some(*family[index as usize % family.len()]))
}

/// TCP connect, from `source` when given. The port is picked at
/// `connect()` for the 4-tuple (`IP_BIND_ADDRESS_NO_PORT` on Linux), so
/// each source address has the whole ephemeral range for each server.
async fn tcp_connect(dst: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect(dst).await;
    };
    let socket = if dst.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    bind_address_no_port(&socket);
    socket
        .bind(SocketAddr::new(source, 0))
        .map_err(|e| std::io::Error::new(e.kind(), format!("binding source address {source}: {e}")))?;
    socket.connect(dst).await
}

#[cfg(target_os = "linux")]
fn bind_address_no_port(socket: &TcpSocket) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor, a c_int option value of the size given.
    let _ = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

#[cfg(not(target_os = "linux"))]
fn bind_address_no_port(_socket: &TcpSocket) {}

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
/// the server listens on 127.0.0.1), each from this device's source address
/// when there are several, within `limit` for all of them.
async fn connect_any(
    addrs: &[SocketAddr],
    sources: &[IpAddr],
    index: u32,
    limit: Duration,
) -> Result<TcpStream, Failure> {
    let deadline = Instant::now() + limit;
    let mut last = None;
    for &addr in addrs {
        let source = match source_for(sources, index, addr) {
            Ok(s) => s,
            Err(f) => {
                last = Some(f);
                continue;
            }
        };
        match tokio::time::timeout_at(deadline, tcp_connect(addr, source)).await {
            Err(_) => {
                let d = format!(
                    "timed out after {} connecting to {addr}",
                    humantime::format_duration(limit)
                );
                return Err(fail(FailureKind::Connect, d));
            }
            Ok(Err(e)) => last = Some(fail(FailureKind::Connect, format!("{addr}: {e}"))),
            Ok(Ok(s)) => return Ok(s),
        }
    }
    Err(last.unwrap_or_else(|| fail(FailureKind::Connect, "no address to connect to")))
}

/// A TLS failure, with what to do about the common ones.
fn tls_detail(why: &str) -> String {
    let hint = if why.contains("CaUsedAsEndEntity") {
        " (the server's certificate is a CA certificate serving as its own leaf, as `openssl req -x509` makes \
         by default: serve a leaf signed by that CA and pass the CA with --ca-cert, or use --insecure for a test server)"
    } else if why.contains("UnknownIssuer") {
        " (not signed by a CA this machine trusts: pass the CA with --ca-cert, or --insecure for a test server)"
    } else if why.contains("NotValidForName") {
        " (the certificate does not name the host in the URL)"
    } else {
        ""
    };
    format!("TLS: {why}{hint}")
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
        E::Tls(t) => fail(FailureKind::Connect, tls_detail(&t.to_string())),
        E::Io(io) => match io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            Some(tls) => fail(FailureKind::Connect, tls_detail(&tls.to_string())),
            None => fail(FailureKind::Connect, format!("during the WebSocket upgrade: {io}")),
        },
        E::Url(u) => fail(FailureKind::Connect, format!("URL: {u}")),
        other => fail(FailureKind::Handshake, format!("WebSocket upgrade failed: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_take_turns_over_the_source_addresses_of_the_servers_family() {
        let v4: IpAddr = "127.0.0.2".parse().unwrap();
        let v4b: IpAddr = "127.0.0.3".parse().unwrap();
        let v6: IpAddr = "::1".parse().unwrap();
        let dst: SocketAddr = "127.0.0.1:8000".parse().unwrap();
        assert_eq!(source_for(&[], 5, dst), Ok(None));
        let list = [v4, v6, v4b];
        let picks: Vec<_> = (0..4).map(|i| source_for(&list, i, dst).unwrap()).collect();
        assert_eq!(picks, [Some(v4), Some(v4b), Some(v4), Some(v4b)]);
        let dst6: SocketAddr = "[::1]:8000".parse().unwrap();
        let e = source_for(&[v4], 0, dst6).unwrap_err();
        assert_eq!(e.kind, FailureKind::Connect);
        assert!(e.detail.contains("IPv6"), "{}", e.detail);
    }

    #[tokio::test]
    async fn a_device_connects_from_its_source_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dst = listener.local_addr().unwrap();
        let source: IpAddr = "127.0.0.7".parse().unwrap();
        let (client, accepted) = tokio::join!(tcp_connect(dst, Some(source)), listener.accept());
        let (_server, peer) = accepted.unwrap();
        assert_eq!(peer.ip(), source);
        assert_eq!(client.unwrap().local_addr().unwrap().ip(), source);
    }
}
