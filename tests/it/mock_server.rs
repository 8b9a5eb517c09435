//! The mock's listener over real loopback sockets, on a paused clock: a
//! minimal client speaks the device protocol so these tests depend only on
//! the mock. Handshake stalls are closed after the timeout while a normal
//! session completes its turn; connection faults do what devices must see;
//! oversized messages get close code 1009; wss:// works with a certificate
//! made at test time.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use xiaozhi_fleet::audio::ClipSet;
use xiaozhi_fleet::config::{FleetFile, Plan, plan::Overrides};
use xiaozhi_fleet::mock::{FaultKind, MockConfig, MockCounters, MockOptions, MockServer, tls};

fn mock_config(mock: &str) -> MockConfig {
    let text = format!("[mock]\n{mock}\n");
    let raw = FleetFile::parse(&text, "t.toml").expect("parses");
    Plan::from_file(raw, "t.toml", &Overrides::default())
        .expect("valid")
        .mock
}

fn request(url: &str, device: &str) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("Device-Id", device.parse().unwrap());
    req
}

/// Connects with Nagle off, as devices do: on a paused clock a small
/// write held back for a delayed ACK would arrive only after the test.
async fn connect(
    req: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> Result<(WebSocketStream<MaybeTlsStream<TcpStream>>, Response), WsError> {
    tokio_tungstenite::connect_async_with_config(req, None, true).await
}

/// Hello, `listen start`, clip 0 then silence on a 60 ms clock until the
/// answer's `tts stop`; returns the answer's text messages (type or
/// `stt:<text>`).
async fn one_turn<S>(ws: &mut WebSocketStream<S>) -> Vec<String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let set = ClipSet::embedded().unwrap();
    let hello = json!({"type":"hello","version":1,"transport":"websocket",
        "audio_params":{"format":"opus","sample_rate":16000,"channels":1,"frame_duration":60}});
    ws.send(Message::text(hello.to_string())).await.unwrap();
    let m = ws.next().await.unwrap().unwrap();
    assert!(m.to_text().unwrap().contains("\"hello\""), "{m:?}");
    ws.send(Message::text(
        r#"{"session_id":"","type":"listen","state":"start","mode":"auto"}"#,
    ))
    .await
    .unwrap();
    let clip = &set.clips[0];
    let mut got = Vec::new();
    let start = Instant::now();
    for k in 0..2_000u32 {
        let at = start + Duration::from_millis(60) * k;
        loop {
            tokio::select! {
                m = ws.next() => {
                    let text = match m {
                        Some(Ok(Message::Text(t))) => t.to_string(),
                        Some(Ok(_)) => continue,
                        other => panic!("connection ended: {other:?}"),
                    };
                    let v: Value = serde_json::from_str(&text).unwrap();
                    let label = match v["type"].as_str().unwrap() {
                        "stt" => format!("stt:{}", v["text"].as_str().unwrap()),
                        "tts" => format!("tts:{}", v["state"].as_str().unwrap()),
                        t => t.to_string(),
                    };
                    let done = label == "tts:stop";
                    got.push(label);
                    if done {
                        return got;
                    }
                }
                _ = tokio::time::sleep_until(at) => break,
            }
        }
        let p = clip.packets.get(k as usize).unwrap_or(&set.silence).clone();
        if got.is_empty() {
            ws.send(Message::Binary(p)).await.unwrap();
        }
    }
    panic!("no tts stop: {got:?}");
}

#[tokio::test(start_paused = true)]
async fn two_hundred_stalled_handshakes_are_closed_while_a_session_completes_its_turn() {
    let mock = MockServer::start("127.0.0.1:0", MockConfig::default()).await.unwrap();
    let mut stalled = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(mock.addr).await.unwrap();
        s.write_all(b"GET /xiaozhi/v1/ HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        stalled.push(s);
    }
    let t0 = Instant::now();
    let (mut ws, _) = connect(request(&mock.url(), "aa:bb")).await.unwrap();
    let got = one_turn(&mut ws).await;
    let transcript = &ClipSet::embedded().unwrap().clips[0].transcript;
    assert_eq!(got[0], format!("stt:{transcript}"));
    assert_eq!(got.last().unwrap(), "tts:stop");
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "the turn finished before the timeout: {:?}",
        t0.elapsed()
    );
    for s in &mut stalled {
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf)).await;
        assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "closed, not answered: {n:?}");
    }
    assert_eq!(
        t0.elapsed(),
        Duration::from_secs(10),
        "closed at the 10 s handshake timeout"
    );
    assert_eq!(MockCounters::get(&mock.counters.handshake_timeouts), 200);
    assert_eq!(MockCounters::get(&mock.counters.sessions), 1);
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn connection_faults_refuse_reject_and_stall_the_handshake() {
    let cfg = mock_config(
        "[[mock.fault]]\nkind = \"refuse\"\nconnections = [0]\n\
         [[mock.fault]]\nkind = \"reject_upgrade\"\nconnections = [1]\n\
         [[mock.fault]]\nkind = \"slow_handshake\"\nconnections = [2]\ndelay = \"15s\"\n",
    );
    let mock = MockServer::start("127.0.0.1:0", cfg).await.unwrap();
    // 0: reset before any HTTP.
    let mut s = TcpStream::connect(mock.addr).await.unwrap();
    let mut buf = [0u8; 256];
    let r = s.read(&mut buf).await;
    assert_eq!(r.map_err(|e| e.kind()), Err(std::io::ErrorKind::ConnectionReset));
    // 1: HTTP 401 with a body.
    match connect(request(&mock.url(), "aa:01")).await {
        Err(WsError::Http(resp)) => {
            assert_eq!(resp.status(), 401);
            let body = resp.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default();
            assert_eq!(body, "401 Unauthorized: token required");
        }
        other => panic!(
            "expected an HTTP error, got {other:?}; {:?}",
            mock.counters.faults.injected()
        ),
    }
    // 2: the upgrade goes unanswered for 15 s, then the socket closes.
    let mut s = TcpStream::connect(mock.addr).await.unwrap();
    let t0 = Instant::now();
    s.write_all(b"GET /xiaozhi/v1/ HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nDevice-Id: aa:02\r\n\r\n")
        .await
        .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(60), s.read(&mut buf))
        .await
        .unwrap();
    // Closed with the request unread: FIN or RST, both a failed handshake.
    let reset = |e: &std::io::Error| e.kind() == std::io::ErrorKind::ConnectionReset;
    assert!(matches!(&n, Ok(0)) || n.as_ref().is_err_and(reset), "{n:?}");
    assert_eq!(t0.elapsed(), Duration::from_secs(15));
    let log = &mock.counters.faults;
    for kind in [FaultKind::Refuse, FaultKind::RejectUpgrade, FaultKind::SlowHandshake] {
        assert_eq!(log.count(kind), 1, "{kind:?}");
    }
    let rejected = log
        .injected()
        .into_iter()
        .find(|f| f.kind == FaultKind::RejectUpgrade)
        .unwrap();
    assert_eq!((rejected.device.as_str(), rejected.index), ("aa:01", 1));
    // 3: no fault; a normal session.
    let (mut ws, _) = connect(request(&mock.url(), "aa:03")).await.unwrap();
    assert_eq!(one_turn(&mut ws).await.last().unwrap(), "tts:stop");
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn message_over_one_mib_is_refused_with_close_code_1009() {
    let mock = MockServer::start("127.0.0.1:0", MockConfig::default()).await.unwrap();
    let (mut ws, _) = connect(request(&mock.url(), "aa:bb")).await.unwrap();
    ws.send(Message::Binary(vec![0u8; (1 << 20) + 1].into())).await.unwrap();
    let mut code = None;
    for _ in 0..10 {
        match ws.next().await {
            Some(Ok(Message::Close(f))) => {
                code = f.map(|f| u16::from(f.code));
                break;
            }
            Some(Ok(_)) => continue,
            _ => break,
        }
    }
    assert_eq!(code, Some(1009));
    assert_eq!(MockCounters::get(&mock.counters.oversized), 1);
    mock.stop().await;
}

#[tokio::test(start_paused = true)]
async fn wss_turn_with_a_certificate_made_at_test_time() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let server_tls = tls::from_pem(
        cert.cert.pem().as_bytes(),
        "cert.pem",
        cert.signing_key.serialize_pem().as_bytes(),
        "key.pem",
    )
    .unwrap();
    let opts = MockOptions {
        tls: Some(server_tls),
        ..MockOptions::default()
    };
    let mock = MockServer::start_with("127.0.0.1:0", MockConfig::default(), opts)
        .await
        .unwrap();
    assert!(mock.url().starts_with("wss://127.0.0.1:"), "{}", mock.url());
    use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto::ring};
    let mut roots = RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let client = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(mock.addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(name, tcp)
        .await
        .unwrap();
    let url = format!("wss://localhost:{}/xiaozhi/v1/", mock.addr.port());
    let (mut ws, _) = tokio_tungstenite::client_async(request(&url, "aa:bb"), tls)
        .await
        .unwrap();
    let got = one_turn(&mut ws).await;
    let transcript = &ClipSet::embedded().unwrap().clips[0].transcript;
    assert_eq!(got[0], format!("stt:{transcript}"));
    assert_eq!(got.last().unwrap(), "tts:stop");
    mock.stop().await;
}
