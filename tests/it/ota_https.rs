//! An `https://` OTA URL, end to end on a paused clock: the version check
//! goes over TLS with the run's TLS settings (the ones `wss://` uses), so a
//! certificate the run trusts (`--ca-cert`) lets every device through, and
//! one it does not trust fails each device with kind `ota` and the reason.
//! The OTA server here is a few lines of HTTP/1.1 over tokio-rustls
//! answering as PY's standalone OTA does, sending devices to the mock.

use crate::support::plan;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::rustls::ServerConfig;
use tokio_util::sync::CancellationToken;
use xiaozhi_fleet::config::Plan;
use xiaozhi_fleet::device::tls::TlsOptions;
use xiaozhi_fleet::fleet::{RunOutcome, load_clips, run_fleet};
use xiaozhi_fleet::metrics::{FailureKind, Snapshot};
use xiaozhi_fleet::mock::{MockConfig, MockServer, tls};

/// Serves PY's answer (the mock's WebSocket URL) over TLS; counts requests.
async fn https_ota(config: Arc<ServerConfig>, ws_url: String) -> (u16, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(AtomicU64::new(0));
    let count = served.clone();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let body = format!(
        r#"{{"server_time":{{"timestamp":0,"timezone_offset":480}},"firmware":{{"version":"2.0.4","url":""}},"websocket":{{"url":"{ws_url}","token":""}}}}"#
    );
    tokio::spawn(async move {
        // Bounded: the test's devices make 5 checks.
        for _ in 0..50 {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, body, count) = (acceptor.clone(), body.clone(), count.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // Headers, then the body its Content-Length announces.
                while let Ok(n) = tls.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request);
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(str::to_owned)
                            })
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                count.fetch_add(1, Ordering::Relaxed);
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, served)
}

fn fleet(port: u16, tls: TlsOptions) -> Plan {
    let mut p = plan(&format!(
        "devices = 5\nturns = 1\nthink_time = \"0s\"\nseed = 9\nota = \"https://127.0.0.1:{port}/xiaozhi/ota/\"\n\n\
         [mock]\nasr_delay = \"100ms\"\nllm_delay = \"100ms\"\ntts_delay = \"100ms\"\nsentences = 1\n\
         silence_window = \"300ms\"\n"
    ));
    p.tls = tls;
    p
}

async fn run(p: &Plan) -> RunOutcome {
    let clips = load_clips(p).expect("clips load");
    let (tx, _rx) = watch::channel(Snapshot::default());
    let url = p.ota.clone().expect("an OTA URL");
    run_fleet(p, &url, &clips, CancellationToken::new(), tx)
        .await
        .expect("fleet runs")
}

#[tokio::test(start_paused = true)]
async fn an_https_ota_is_checked_over_tls_with_the_runs_certificates() {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    let server = tls::from_pem(cert_pem.as_bytes(), "cert.pem", key_pem.as_bytes(), "key.pem").unwrap();
    let dir = std::env::temp_dir().join(format!("xf-ota-https-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &cert_pem).unwrap();
    let mock = MockServer::start("127.0.0.1:0", MockConfig::default()).await.unwrap();
    let (port, served) = https_ota(server, mock.url()).await;

    // Trusted through --ca-cert: every device checks in and talks.
    let trusted = TlsOptions {
        ca_cert: Some(ca.clone()),
        insecure: false,
    };
    let out = run(&fleet(port, trusted)).await;
    let m = &out.metrics;
    assert!(m.failures.is_empty(), "{:?} {:?}", m.failures, m.failure_details);
    assert!(m.connect_failures.is_empty(), "{:?}", m.connect_failure_details);
    assert_eq!(m.completed, 5);
    assert_eq!(m.latency["ota"].count(), 5);
    assert_eq!(served.load(Ordering::Relaxed), 5);

    // Not trusted: each device fails `ota`, saying why.
    let out = run(&fleet(port, TlsOptions::default())).await;
    let m = &out.metrics;
    assert_eq!(
        m.connect_failures.get(&FailureKind::Ota),
        Some(&5),
        "{:?}",
        m.connect_failures
    );
    for d in &m.connect_failure_details[&FailureKind::Ota] {
        assert!(d.contains("certificate") || d.contains("Certificate"), "{d}");
    }
    assert_eq!(served.load(Ordering::Relaxed), 5, "no request got past the handshake");
    let _ = std::fs::remove_dir_all(dir);
    mock.stop().await;
}
